//! kapsel-runtime as a drop-in OCI runtime under podman (`podman --runtime`),
//! as shipped by Debian 12 (podman 4.3, conmon, cgroupfs).
//!
//! Every test builds a private podman world below its temporary directory:
//! a `containers.conf` whose only runtime is the runtime under test, a vfs
//! storage (graph root, run root, libpod tmp dir, static dir, volumes, event
//! log, file locks, network config dir, image copy tmp dir), and a busybox
//! image imported from the shared test root filesystem. Podman never touches
//! /var/lib/containers, /run/libpod, /dev/shm/libpod_lock or /etc/containers
//! (it only reads policy.json there). Containers always run with
//! `--network none` and `--cgroup-parent /kapsel-test-podman-<pid>-<tag>`, a
//! cgroup the test owns and removes at the end, together with everything
//! podman left behind (`rm -af`, `rmi -af`, processes in that cgroup, mounts
//! below the temporary directory).
//!
//! The runtime is reached through a two-line wrapper that adds
//! `--root <tmp>/runtime-state`: podman passes its `--runtime-flag`s to the
//! runtime calls it makes itself but not to the ones of the `container
//! cleanup` exit command that conmon runs, so the wrapper is the only way to
//! keep the runtime's state directory private. It also logs every call (in
//! failure messages).
//!
//! Without podman installed every test prints `SKIP: podman not installed`.

mod common;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{
    cap_number, cgroup_cleanup, cgroup_existing_dirs, cgroup_mount_for, find_mount, host,
    parse_mask, parse_mountinfo, runtime, status_field, try_run_cmd, wait_until, write_script,
    Output, Test,
};

/// Time limit for one podman command.
const PODMAN_TIMEOUT: Duration = Duration::from_secs(90);

/// The image every test imports into its private storage.
const IMAGE: &str = "localhost/kapsel-test-busybox:latest";

/// Full path of `prog` found in $PATH.
fn which(prog: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(prog))
        .find(|p| p.is_file())
}

/// Prints the skip message and returns true when podman is not installed.
fn podman_missing() -> bool {
    if which("podman").is_none() {
        eprintln!("SKIP: podman not installed");
        return true;
    }
    false
}

/// A string as a single-quoted shell word.
fn sq(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A string as a TOML basic string.
fn toml_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', r"\\").replace('"', "\\\""))
}

/// The hard limit of an rlimit of this process (None when unlimited).
fn hard_rlimit(resource: libc::__rlimit_resource_t) -> Option<u64> {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit.
    let r = unsafe { libc::getrlimit(resource, &mut rl) };
    assert_eq!(r, 0, "getrlimit: {}", std::io::Error::last_os_error());
    (rl.rlim_max != libc::RLIM_INFINITY).then_some(rl.rlim_max)
}

/// The private podman world of one test.
#[derive(Clone)]
struct Podman {
    /// The test's temporary directory; everything podman writes is below it.
    dir: PathBuf,
    podman: PathBuf,
    /// `--cgroup-parent` of every container (absolute cgroup path).
    cgroup_parent: String,
}

impl Podman {
    /// Writes the configuration and the runtime wrapper, registers the
    /// cleanup and imports the busybox image.
    fn new(t: &Test, tag: &str) -> Podman {
        let p = Podman {
            dir: t.dir.clone(),
            podman: which("podman").expect("podman in $PATH"),
            cgroup_parent: format!("/kapsel-test-podman-{}-{tag}", std::process::id()),
        };
        for d in [
            "storage",
            "run",
            "libpod-tmp",
            "vartmp",
            "xdg-run",
            "networks",
        ] {
            fs::create_dir_all(p.dir.join(d)).unwrap();
        }
        fs::create_dir_all(p.runtime_state()).unwrap();

        let rt = fs::canonicalize(runtime())
            .unwrap_or_else(|e| panic!("runtime under test {}: {e}", runtime().display()));
        write_script(
            &p.dir.join("runtime"),
            &format!(
                "#!/bin/sh\nprintf '%s\\n' \"$*\" >> {log}\nexec {rt} --root {state} \"$@\"\n",
                log = sq(&p.path_str("runtime-calls.log")),
                rt = sq(&rt.to_string_lossy()),
                state = sq(&p.runtime_state().to_string_lossy()),
            ),
        );

        // Root here may lack CAP_SYS_RESOURCE: podman's default ulimits
        // (1048576 open files and processes) would make the runtime's
        // setrlimit fail, so default to what this process may have.
        let nofile = hard_rlimit(libc::RLIMIT_NOFILE).unwrap_or(1_048_576);
        let pid_max: u64 = fs::read_to_string("/proc/sys/kernel/pid_max")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let nproc = hard_rlimit(libc::RLIMIT_NPROC).map_or(pid_max, |h| h.min(pid_max));
        let q = |name: &str| toml_str(&p.path_str(name));
        let conf = format!(
            r#"[containers]
log_driver = "k8s-file"
default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]

[engine]
runtime = "kapsel"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = {events}
lock_type = "file"
tmp_dir = {tmp}
static_dir = {static_dir}
volume_path = {volumes}
image_copy_tmp_dir = {vartmp}

[engine.runtimes]
kapsel = [{runtime}]

[network]
network_config_dir = {networks}
"#,
            events = q("events.log"),
            tmp = q("libpod-tmp"),
            static_dir = q("storage/libpod"),
            volumes = q("storage/volumes"),
            vartmp = q("vartmp"),
            runtime = q("runtime"),
            networks = q("networks"),
        );
        fs::write(p.dir.join("containers.conf"), conf).unwrap();
        let storage = format!(
            "[storage]\ndriver = \"vfs\"\ngraphroot = {}\nrunroot = {}\n",
            q("storage"),
            q("run")
        );
        fs::write(p.dir.join("storage.conf"), storage).unwrap();
        fs::write(
            p.dir.join("registries.conf"),
            "unqualified-search-registries = []\n",
        )
        .unwrap();

        let cleanup = p.clone();
        t.on_cleanup(move || cleanup.cleanup());

        p.import_image();
        p
    }

    fn path_str(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }

    /// The runtime's `--root`.
    fn runtime_state(&self) -> PathBuf {
        self.dir.join("runtime-state")
    }

    /// The global podman options that select the private storage.
    fn global_args(&self) -> Vec<String> {
        vec![
            "--root".into(),
            self.path_str("storage"),
            "--runroot".into(),
            self.path_str("run"),
            "--storage-driver".into(),
            "vfs".into(),
            "--tmpdir".into(),
            self.path_str("libpod-tmp"),
        ]
    }

    /// Points podman's configuration and temporary files at the test dir.
    fn set_env(&self, c: &mut Command) {
        c.env("CONTAINERS_CONF", self.dir.join("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", self.dir.join("storage.conf"))
            .env(
                "CONTAINERS_REGISTRIES_CONF",
                self.dir.join("registries.conf"),
            )
            .env("TMPDIR", self.dir.join("vartmp"))
            .env("XDG_RUNTIME_DIR", self.dir.join("xdg-run"))
            .env("XDG_CONFIG_HOME", self.dir.join("xdg-config"))
            .env("XDG_DATA_HOME", self.dir.join("xdg-data"))
            .env_remove("CONTAINER_HOST")
            .env_remove("CONTAINER_CONNECTION")
            .env_remove("CONTAINERS_STORAGE_OPTS");
    }

    /// `podman <global args> args...`.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.podman);
        c.args(self.global_args()).args(args);
        self.set_env(&mut c);
        c
    }

    /// Runs podman with the output captured.
    fn run(&self, args: &[&str]) -> Output {
        try_run_cmd(&mut self.cmd(args), PODMAN_TIMEOUT).unwrap_or_else(|e| {
            panic!("podman {args:?}: {e}\n{}", self.runtime_calls());
        })
    }

    /// Runs podman and asserts that it exited 0.
    #[track_caller]
    fn ok(&self, args: &[&str]) -> Output {
        let o = self.run(args);
        assert!(
            o.success(),
            "podman {args:?} failed: {}\n{}",
            o.all(),
            self.runtime_calls()
        );
        o
    }

    /// The last runtime invocations (for failure messages).
    fn runtime_calls(&self) -> String {
        let log = fs::read_to_string(self.dir.join("runtime-calls.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = &lines[lines.len().saturating_sub(12)..];
        format!(
            "last runtime calls ({}):\n  {}",
            runtime().display(),
            tail.join("\n  ")
        )
    }

    /// The `run` options every container gets.
    fn run_opts(&self) -> Vec<&str> {
        vec!["--network", "none", "--cgroup-parent", &self.cgroup_parent]
    }

    /// `podman run --rm <opts> IMAGE argv...`, output captured.
    fn run_ctr(&self, opts: &[&str], argv: &[&str]) -> Output {
        let mut a = vec!["run", "--rm"];
        a.extend(self.run_opts());
        a.extend_from_slice(opts);
        a.push(IMAGE);
        a.extend_from_slice(argv);
        self.run(&a)
    }

    /// `podman run --rm <opts> IMAGE sh -c script`, asserting exit status 0.
    #[track_caller]
    fn sh_ok(&self, opts: &[&str], script: &str) -> String {
        let o = self.run_ctr(opts, &["sh", "-c", script]);
        assert!(
            o.success(),
            "podman run {opts:?} sh -c {script:?} failed: {}\n{}",
            o.all(),
            self.runtime_calls()
        );
        o.stdout
    }

    /// `podman run -d --name name IMAGE argv...`; returns the container id.
    #[track_caller]
    fn detached(&self, name: &str, argv: &[&str]) -> String {
        let mut a = vec!["run", "-d", "--name", name];
        a.extend(self.run_opts());
        a.push(IMAGE);
        a.extend_from_slice(argv);
        let id = self.ok(&a).stdout.trim().to_string();
        assert_eq!(id.len(), 64, "podman run -d printed {id:?}, not an id");
        id
    }

    /// `podman inspect -f format name`, trimmed.
    #[track_caller]
    fn inspect(&self, name: &str, format: &str) -> String {
        self.ok(&["inspect", "-f", format, name])
            .stdout
            .trim()
            .to_string()
    }

    /// Runs podman under `script` (so that it has a terminal on stdin and
    /// stdout) with `input` typed into that terminal; returns what appeared
    /// on the terminal and script's (that is, podman's) exit status.
    fn tty(&self, args: &[&str], input: &str) -> Output {
        let mut words = vec![sq(&self.podman.to_string_lossy())];
        words.extend(self.global_args().iter().map(|a| sq(a)));
        words.extend(args.iter().map(|a| sq(a)));
        let line = words.join(" ");
        let out_path = self.dir.join("tty.stdout");
        let err_path = self.dir.join("tty.stderr");
        let mut c = Command::new("script");
        c.args(["-qec", &line, "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(fs::File::create(&out_path).unwrap())
            .stderr(fs::File::create(&err_path).unwrap());
        self.set_env(&mut c);
        let mut child = c.spawn().expect("spawn script (bsdutils)");
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.as_bytes()).unwrap();
        drop(stdin);
        let deadline = Instant::now() + PODMAN_TIMEOUT;
        let status = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break st;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "timed out: script -qec {line:?}\nterminal:\n{}\n{}",
                    fs::read_to_string(&out_path).unwrap_or_default(),
                    self.runtime_calls()
                );
            }
            thread::sleep(Duration::from_millis(10));
        };
        let read = |p: &Path| {
            String::from_utf8_lossy(&fs::read(p).unwrap_or_default()).replace("\r\n", "\n")
        };
        Output {
            status: status.code().unwrap_or(-1),
            stdout: read(&out_path),
            stderr: read(&err_path),
        }
    }

    /// Imports the shared busybox root filesystem as [`IMAGE`].
    ///
    /// containers/image keeps a blob-info cache that, for root, always lives
    /// in /var/lib/containers/cache (podman 4.3 has no option or variable to
    /// move it). The import therefore runs in a private mount namespace with
    /// a tmpfs over that directory (or the nearest existing parent), so the
    /// host's copy is never written.
    fn import_image(&self) {
        let tar = self.dir.join("busybox.tar");
        host(
            "tar",
            &[
                "--numeric-owner",
                "-C",
                &common::shared_rootfs().to_string_lossy(),
                "-cf",
                &tar.to_string_lossy(),
                ".",
            ],
        )
        .ok("tar the busybox rootfs");
        let shield = [
            "/var/lib/containers/cache",
            "/var/lib/containers",
            "/var/lib",
        ]
        .into_iter()
        .find(|d| Path::new(d).is_dir())
        .expect("/var/lib exists");
        let mut c = Command::new("unshare");
        c.args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg("mount -t tmpfs kapsel-test-podman \"$0\" && exec \"$@\"")
            .arg(shield)
            .arg(&self.podman)
            .args(self.global_args())
            .args(["import", "-q", "--change", r#"CMD ["/bin/sh"]"#])
            .arg(&tar)
            .arg(IMAGE);
        self.set_env(&mut c);
        let o = try_run_cmd(&mut c, PODMAN_TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
        assert!(o.success(), "podman import failed: {}", o.all());
    }

    /// Removes every container and image of this test, kills what is left
    /// in its cgroup parent (conmon lives there too) and removes the cgroups.
    /// Mounts below the test dir and the dir itself are [`Test`]'s job.
    fn cleanup(&self) {
        let quick = Duration::from_secs(60);
        let _ = try_run_cmd(&mut self.cmd(&["rm", "-af", "-t", "0"]), quick);
        let _ = try_run_cmd(&mut self.cmd(&["rmi", "-af"]), quick);
        cgroup_cleanup(&self.cgroup_parent);
    }
}

/// The capability masks of a process, from /proc/<pid>/status text.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Caps {
    eff: u64,
    prm: u64,
    bnd: u64,
    amb: u64,
}

#[track_caller]
fn caps_of(status: &str) -> Caps {
    let f = |k: &str| {
        parse_mask(status_field(status, k).unwrap_or_else(|| panic!("no {k} in:\n{status}")))
    };
    Caps {
        eff: f("CapEff"),
        prm: f("CapPrm"),
        bnd: f("CapBnd"),
        amb: f("CapAmb"),
    }
}

/// The freezer cgroup of host process `pid` (the cgroup path, the host
/// directory) and its state: "FROZEN" or "THAWED" (v1 `freezer.state`, or
/// v2 `cgroup.events`' "frozen" key).
fn freezer_of(pid: i64) -> (String, PathBuf, String) {
    let cg = fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/cgroup: {e}"));
    let m = cgroup_mount_for("freezer");
    let path = cg
        .lines()
        .find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
            let hit = if m.v2 {
                ctrls.is_empty()
            } else {
                ctrls.split(',').any(|c| c == "freezer")
            };
            hit.then(|| path.to_string())
        })
        .unwrap_or_else(|| panic!("no freezer cgroup in /proc/{pid}/cgroup:\n{cg}"));
    let dir = m.path.join(path.trim_start_matches('/'));
    let state = if m.v2 {
        let ev = fs::read_to_string(dir.join("cgroup.events")).unwrap_or_default();
        if ev.lines().any(|l| l.trim() == "frozen 1") {
            "FROZEN"
        } else {
            "THAWED"
        }
        .to_string()
    } else {
        fs::read_to_string(dir.join("freezer.state"))
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    (path, dir, state)
}

/// The non-empty lines of `s`, trimmed.
fn lines(s: &str) -> Vec<&str> {
    s.lines().map(str::trim).filter(|l| !l.is_empty()).collect()
}

/// True if some line of `s` is a pty name "/dev/pts/<N>".
fn shows_pts(s: &str) -> bool {
    s.lines().any(|l| {
        l.trim()
            .strip_prefix("/dev/pts/")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// `run --rm`: output and exit status; capabilities (`--cap-drop all`,
/// `--cap-drop net_raw`); `--read-only`; `--uidmap/--gidmap`.
#[test]
fn podman_run_basics() {
    if podman_missing() {
        return;
    }
    let t = test_env!();
    let p = Podman::new(&t, "basics");

    // Output on both streams and the exit status come through.
    let o = p.run_ctr(
        &[],
        &[
            "sh",
            "-c",
            "echo hello-from-podman; echo to-stderr >&2; exit 3",
        ],
    );
    assert_eq!(o.status, 3, "exit status of `exit 3`: {}", o.all());
    assert_eq!(lines(&o.stdout), ["hello-from-podman"], "{}", o.all());
    assert!(o.stderr.contains("to-stderr"), "{}", o.all());

    // Capabilities: podman's default set (which includes NET_RAW), exactly
    // that set minus NET_RAW with --cap-drop net_raw, nothing with all.
    let net_raw = 1u64 << cap_number("NET_RAW");
    let def = caps_of(&p.sh_ok(&[], "cat /proc/self/status"));
    assert_ne!(def.eff & net_raw, 0, "default caps lack NET_RAW: {def:x?}");
    assert_eq!(def.eff, def.prm, "{def:x?}");
    assert_eq!(def.eff, def.bnd, "{def:x?}");
    assert_eq!(def.amb, 0, "{def:x?}");
    let no_raw = caps_of(&p.sh_ok(&["--cap-drop", "net_raw"], "cat /proc/self/status"));
    assert_eq!(
        no_raw,
        Caps {
            eff: def.eff & !net_raw,
            prm: def.prm & !net_raw,
            bnd: def.bnd & !net_raw,
            amb: 0
        },
        "--cap-drop net_raw (default {def:x?}) gave {no_raw:x?}"
    );
    let none = caps_of(&p.sh_ok(&["--cap-drop", "all"], "cat /proc/self/status"));
    assert_eq!(
        none,
        Caps {
            eff: 0,
            prm: 0,
            bnd: 0,
            amb: 0
        },
        "--cap-drop all gave {none:x?}"
    );

    // --read-only: the root is read-only, /tmp is podman's writable tmpfs.
    let out = p.sh_ok(
        &["--read-only"],
        "touch /x 2>&1; echo \"root=$?\"; touch /tmp/y && echo tmp-writable; \
         echo ===; cat /proc/self/mountinfo",
    );
    let (head, mi) = out.split_once("===\n").expect("separator");
    assert!(head.contains("Read-only file system"), "{out}");
    assert!(head.contains("root=1"), "touch /x did not fail: {out}");
    assert!(head.contains("tmp-writable"), "/tmp not writable: {out}");
    let mounts = parse_mountinfo(mi);
    assert!(find_mount(&mounts, "/").has_opt("ro"), "/ not ro:\n{mi}");
    let tmp = find_mount(&mounts, "/tmp");
    assert_eq!(tmp.fstype, "tmpfs", "/tmp:\n{mi}");
    assert!(tmp.has_opt("rw"), "/tmp not rw:\n{mi}");

    // User namespace with podman's id mappings.
    let out = p.sh_ok(
        &["--uidmap", "0:100000:65536", "--gidmap", "0:100000:65536"],
        "cat /proc/self/uid_map; echo ==; cat /proc/self/gid_map; echo ==; id -u; touch /tmp/f",
    );
    let parts: Vec<&str> = out.split("==\n").collect();
    assert_eq!(parts.len(), 3, "{out}");
    let map = |s: &str| -> Vec<Vec<String>> {
        lines(s)
            .iter()
            .map(|l| l.split_whitespace().map(String::from).collect())
            .collect()
    };
    let want = vec![vec!["0".to_string(), "100000".into(), "65536".into()]];
    assert_eq!(map(parts[0]), want, "uid_map: {out}");
    assert_eq!(map(parts[1]), want, "gid_map: {out}");
    assert_eq!(parts[2].trim(), "0", "uid inside: {out}");
}

/// `--memory 64m --pids-limit 50`: the limits are visible inside and a fork
/// loop stops at the pids limit.
#[test]
fn podman_resources() {
    if podman_missing() {
        return;
    }
    let t = test_env!();
    let p = Podman::new(&t, "resources");

    let mem_file = if cgroup_mount_for("memory").v2 {
        "/sys/fs/cgroup/memory.max"
    } else {
        "/sys/fs/cgroup/memory/memory.limit_in_bytes"
    };
    let pids_dir = if cgroup_mount_for("pids").v2 {
        "/sys/fs/cgroup"
    } else {
        "/sys/fs/cgroup/pids"
    };
    // Only builtins after the loop: no fork can succeed any more. ash gives
    // up (the subshell exits) at the first failed fork.
    let script = format!(
        "read mem < {mem_file}; echo \"mem=$mem\"; read pmax < {pids_dir}/pids.max; \
         echo \"pids.max=$pmax\"; \
         (i=0; while [ $i -lt 100 ]; do sleep 60 & i=$((i+1)); echo $i > /tmp/n; done) 2>/tmp/err; \
         read n < /tmp/n; echo \"started=$n\"; read cur < {pids_dir}/pids.current; \
         echo \"current=$cur\"; while read l; do echo \"err: $l\"; done < /tmp/err"
    );
    let out = p.sh_ok(&["--memory", "64m", "--pids-limit", "50"], &script);
    let val = |k: &str| -> String {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("no {k}= in:\n{out}"))
            .trim()
            .to_string()
    };
    assert_eq!(val("mem"), "67108864", "{out}");
    assert_eq!(val("pids.max"), "50", "{out}");
    let started: u32 = val("started").parse().unwrap();
    let current: u32 = val("current").parse().unwrap();
    assert!(
        (40..50).contains(&started),
        "fork loop started {started} processes under --pids-limit 50:\n{out}"
    );
    assert!(current <= 50, "pids.current {current} > 50:\n{out}");
    assert!(
        out.contains("Resource temporarily unavailable"),
        "fork did not fail with EAGAIN:\n{out}"
    );
}

/// `run -d`, `logs`, `exec` (output, exit status), `pause`/`unpause` (podman's
/// status and the freezer cgroup), `stop -t 1` (SIGTERM reaches the trap),
/// `kill -s KILL`, `rm` (runtime state and cgroups gone).
#[test]
fn podman_lifecycle() {
    if podman_missing() {
        return;
    }
    let t = test_env!();
    let p = Podman::new(&t, "lifecycle");

    let id1 = p.detached(
        "c1",
        &[
            "sh",
            "-c",
            "trap 'exit 7' TERM; echo started; while :; do sleep 0.1; done",
        ],
    );
    assert_eq!(p.inspect("c1", "{{.State.Status}}"), "running");
    let pid: i64 = p.inspect("c1", "{{.State.Pid}}").parse().unwrap();
    assert!(pid > 0, "no pid for c1");
    let mut logs = String::new();
    let ok = wait_until(Duration::from_secs(10), || {
        logs = p.ok(&["logs", "c1"]).stdout;
        logs.contains("started")
    });
    assert!(ok, "podman logs c1 never showed the output: {logs:?}");

    // The container's cgroup is below the parent we gave, named by podman.
    let (cg_path, _, state) = freezer_of(pid);
    assert_eq!(
        cg_path,
        format!("{}/libpod-{id1}", p.cgroup_parent),
        "cgroup of the container"
    );
    assert_eq!(state, "THAWED");

    // exec: output, exit status, same pid namespace as the init.
    let o = p.run(&[
        "exec",
        "c1",
        "sh",
        "-c",
        "echo in-exec; cat /proc/1/cmdline | tr '\\0' ' '; echo; exit 5",
    ]);
    assert_eq!(o.status, 5, "exec exit status: {}", o.all());
    let l = lines(&o.stdout);
    assert_eq!(l.first(), Some(&"in-exec"), "{}", o.all());
    assert!(
        l.get(1).is_some_and(|c| c.starts_with("sh -c trap")),
        "pid 1 seen by exec: {}",
        o.all()
    );

    // pause / unpause.
    p.ok(&["pause", "c1"]);
    assert_eq!(p.inspect("c1", "{{.State.Status}}"), "paused");
    let mut last = String::new();
    let frozen = wait_until(Duration::from_secs(5), || {
        last = freezer_of(pid).2;
        last == "FROZEN"
    });
    assert!(frozen, "freezer state after pause: {last:?}");
    p.ok(&["unpause", "c1"]);
    assert_eq!(p.inspect("c1", "{{.State.Status}}"), "running");
    assert_eq!(freezer_of(pid).2, "THAWED", "freezer state after unpause");
    let o = p.ok(&["exec", "c1", "echo", "thawed"]);
    assert_eq!(lines(&o.stdout), ["thawed"]);

    // stop -t 1: SIGTERM runs the trap, which exits 7.
    p.ok(&["stop", "-t", "1", "c1"]);
    assert_eq!(
        p.inspect("c1", "{{.State.Status}} {{.State.ExitCode}}"),
        "exited 7",
        "c1 after stop"
    );
    assert!(
        wait_until(Duration::from_secs(5), || !common::pid_alive(pid)),
        "init of c1 (pid {pid}) still alive after stop"
    );

    // kill -s KILL.
    let id2 = p.detached("c2", &["sleep", "1000"]);
    let pid2: i64 = p.inspect("c2", "{{.State.Pid}}").parse().unwrap();
    p.ok(&["kill", "-s", "KILL", "c2"]);
    let o = p.ok(&["wait", "c2"]);
    assert_eq!(o.stdout.trim(), "137", "exit code after SIGKILL");
    assert_eq!(
        p.inspect("c2", "{{.State.Status}} {{.State.ExitCode}}"),
        "exited 137"
    );
    assert!(!common::pid_alive(pid2), "c2 (pid {pid2}) survived SIGKILL");

    // rm: nothing left, not in podman, not in the runtime, not in cgroupfs.
    p.ok(&["rm", "c1", "c2"]);
    assert_eq!(p.ok(&["ps", "-aq"]).stdout.trim(), "", "containers left");
    let left: Vec<String> = fs::read_dir(p.runtime_state())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        // '@' names are the runtime's caches (e.g. compiled seccomp programs), never a
        // container's state: ids cannot contain '@'.
        .filter(|name| !name.starts_with('@'))
        .collect();
    assert!(left.is_empty(), "runtime state left after rm: {left:?}");
    for id in [&id1, &id2] {
        let cg = format!("{}/libpod-{id}", p.cgroup_parent);
        let mut dirs = Vec::new();
        let gone = wait_until(Duration::from_secs(5), || {
            dirs = cgroup_existing_dirs(&cg);
            dirs.is_empty()
        });
        assert!(gone, "cgroup dirs left after rm: {dirs:?}");
    }
}

/// `run -it` and `exec -it` under a terminal (`script`): the shell sees a
/// pty and its exit status comes back.
#[test]
fn podman_tty() {
    if podman_missing() {
        return;
    }
    let t = test_env!();
    let p = Podman::new(&t, "tty");

    let mut args = vec!["run", "--rm", "-it"];
    args.extend(p.run_opts());
    args.extend([IMAGE, "sh"]);
    let o = p.tty(&args, "tty; exit 4\n");
    assert_eq!(o.status, 4, "run -it exit status: {}", o.all());
    assert!(shows_pts(&o.stdout), "run -it: no /dev/pts/N: {}", o.all());

    p.detached("c1", &["sleep", "1000"]);
    let o = p.tty(&["exec", "-it", "c1", "sh"], "tty; exit 6\n");
    assert_eq!(o.status, 6, "exec -it exit status: {}", o.all());
    assert!(shows_pts(&o.stdout), "exec -it: no /dev/pts/N: {}", o.all());

    // Without -t the same shell has no terminal.
    let o = p.run(&["exec", "c1", "tty"]);
    assert_eq!(o.status, 1, "tty without -t: {}", o.all());
    assert!(o.stdout.contains("not a tty"), "{}", o.all());
}

/// `--security-opt seccomp=<profile>`: a profile that allows everything but
/// mkdir/mkdirat (EPERM).
#[test]
fn podman_seccomp_profile() {
    if podman_missing() {
        return;
    }
    let t = test_env!();
    let p = Podman::new(&t, "seccomp");
    let profile = p.dir.join("seccomp-no-mkdir.json");
    fs::write(
        &profile,
        r#"{
  "defaultAction": "SCMP_ACT_ALLOW",
  "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]
}
"#,
    )
    .unwrap();
    let script = "mkdir /tmp/x 2>&1; echo \"mkdir=$?\"; grep '^Seccomp:' /proc/self/status";

    // Control: without a filter mkdir works.
    let out = p.sh_ok(&["--security-opt", "seccomp=unconfined"], script);
    assert!(out.contains("mkdir=0"), "unconfined mkdir failed: {out}");

    let opt = format!("seccomp={}", profile.display());
    let out = p.sh_ok(&["--security-opt", &opt], script);
    assert!(
        out.contains("mkdir=1") && out.contains("Operation not permitted"),
        "mkdir was not refused with EPERM under the profile:\n{out}"
    );
    let mode = out
        .lines()
        .find_map(|l| l.strip_prefix("Seccomp:"))
        .map(str::trim);
    assert_eq!(mode, Some("2"), "seccomp mode (2 = filter):\n{out}");
}
