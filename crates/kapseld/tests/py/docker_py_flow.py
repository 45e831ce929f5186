"""docker-py (Debian's python3-docker) against a kapseld socket: the calls scripts make.

Usage: docker_py_flow.py unix:///path/to/api.sock
Exits non-zero with the failed assertion on stderr.
"""
import sys

import docker

client = docker.DockerClient(base_url=sys.argv[1], version="1.41")
assert client.ping()
assert client.version()["ApiVersion"] == "1.47"

# Foreground run: output returned, container removed.
out = client.containers.run("busybox", ["sh", "-c", "echo hello from docker-py"], remove=True)
assert out == b"hello from docker-py\n", out

# A failing foreground run raises ContainerError with the exit status.
try:
    client.containers.run("busybox", ["sh", "-c", "echo oops >&2; exit 3"], remove=True)
    raise AssertionError("ContainerError expected")
except docker.errors.ContainerError as e:
    assert e.exit_status == 3, e.exit_status

# Detached: labels, logs, exec, stop, wait, remove.
c = client.containers.run(
    "busybox", ["sh", "-c", "echo started; sleep 1000"], detach=True, name="pyc",
    labels={"app": "py"}, environment={"X": "1"},
)
assert client.containers.get("pyc").status == "running"
assert [x.name for x in client.containers.list(filters={"label": "app=py"})] == ["pyc"]
code, output = c.exec_run(["sh", "-c", "echo $X; exit 4"])
assert (code, output) == (4, b"1\n"), (code, output)
for _ in range(100):
    if c.logs() == b"started\n":
        break
assert c.logs() == b"started\n", c.logs()
c.stop(timeout=1)
assert c.wait()["StatusCode"] == 137
c.reload()
assert c.status == "exited"
c.remove()
try:
    client.containers.get("pyc")
    raise AssertionError("NotFound expected")
except docker.errors.NotFound:
    pass

assert any("busybox:latest" in i.tags for i in client.images.list())
print("docker-py flow ok")
