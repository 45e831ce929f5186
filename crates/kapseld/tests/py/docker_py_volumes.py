"""docker-py (Debian's python3-docker) against a kapseld socket: volumes as scripts use them.

Usage: docker_py_volumes.py unix:///path/to/api.sock
Exits non-zero with the failed assertion on stderr.
"""
import sys

import docker

client = docker.DockerClient(base_url=sys.argv[1], version="1.41")

vol = client.volumes.create("pyvol", labels={"owner": "py"})
assert vol.attrs["Mountpoint"].endswith("/volumes/pyvol/_data"), vol.attrs
assert [v.name for v in client.volumes.list(filters={"label": "owner=py"})] == ["pyvol"]

out = client.containers.run(
    "busybox", ["sh", "-c", "echo from-py > /data/f && cat /data/f"],
    volumes={"pyvol": {"bind": "/data", "mode": "rw"}}, name="pywriter",
)
assert out == b"from-py\n", out
writer = client.containers.get("pywriter")
mounts = writer.attrs["Mounts"]
assert [(m["Type"], m["Name"], m["Destination"], m["RW"]) for m in mounts] == [
    ("volume", "pyvol", "/data", True)], mounts

# In use by a container (even a stopped one): refused with a 409.
try:
    vol.remove()
    raise AssertionError("APIError expected")
except docker.errors.APIError as e:
    assert e.status_code == 409, e
    assert "in use" in str(e), e

writer.remove(v=True)
out = client.containers.run(
    "busybox", ["cat", "/data/f"], volumes=["pyvol:/data:ro"], remove=True)
assert out == b"from-py\n", out

vol.reload()
vol.remove()
try:
    client.volumes.get("pyvol")
    raise AssertionError("NotFound expected")
except docker.errors.NotFound:
    pass
print("docker-py volumes ok")
