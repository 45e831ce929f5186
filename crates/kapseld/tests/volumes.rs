//! Volumes through the real docker CLI, docker-py and docker-compose: named and anonymous
//! volumes, copy-up from the image, `:ro`, `--volumes-from`, `rm -v`, in-use refusals,
//! tmpfs volumes, bad input, and data that outlives containers and daemon crashes.

mod common;

use common::{
    compose, compose_project, daemon_with_busybox, docker_py, fails, inspect, ok, run_sh, wait_for,
    Daemon,
};

/// The volume names `docker volume ls -q` lists, sorted.
fn volume_names(d: &Daemon) -> Vec<String> {
    let mut names: Vec<String> = ok(d, &["volume", "ls", "-q"])
        .lines()
        .map(String::from)
        .collect();
    names.sort();
    names
}

#[test]
fn named_volume_data_outlives_containers_and_daemon_crashes() {
    let Some(mut d) = daemon_with_busybox("vol-persist") else {
        return;
    };
    run_sh(
        &d,
        &["--name", "writer", "-v", "keep:/data", "busybox"],
        "echo first > /data/file",
    );
    assert_eq!(volume_names(&d), ["keep"]);
    ok(&d, &["rm", "writer"]);
    let read = run_sh(
        &d,
        &["--rm", "-v", "keep:/data", "busybox"],
        "cat /data/file",
    );
    assert_eq!(read, "first\n");

    d.crash_and_restart(std::time::Duration::ZERO);
    let read = run_sh(
        &d,
        &["--rm", "-v", "keep:/data", "busybox"],
        "cat /data/file",
    );
    assert_eq!(read, "first\n");
    let mountpoint = inspect(&d, "{{.Mountpoint}}", "keep");
    assert_eq!(
        std::fs::read_to_string(format!("{mountpoint}/file")).unwrap(),
        "first\n"
    );
    assert!(mountpoint.ends_with("/volumes/keep/_data"), "{mountpoint}");
    let df = ok(&d, &["system", "df", "-v"]);
    assert!(df.contains("keep"), "{df}");
}

#[test]
fn copy_up_fills_new_volumes_with_the_images_files_owners_and_modes() {
    let Some(d) = daemon_with_busybox("vol-copyup") else {
        return;
    };
    run_sh(
        &d,
        &["--name", "base", "busybox"],
        "mkdir -p /seed/sub && echo seeded > /seed/sub/f && chown -R 65534:65534 /seed/sub \
         && chmod 0640 /seed/sub/f && chmod 0750 /seed && chown 65534:0 /seed",
    );
    ok(
        &d,
        &[
            "commit",
            "--change",
            "VOLUME /seed",
            "base",
            "seeded:latest",
        ],
    );
    let listing = "stat -c '%n %u:%g %a' /seed /seed/sub /seed/sub/f && cat /seed/sub/f";
    let want =
        "/seed 65534:0 750\n/seed/sub 65534:65534 755\n/seed/sub/f 65534:65534 640\nseeded\n";
    // The image's VOLUME: an anonymous volume, filled from the image.
    let anonymous = run_sh(&d, &["--name", "anon", "seeded"], listing);
    assert_eq!(anonymous, want);
    let mounts = inspect(
        &d,
        "{{range .Mounts}}{{.Type}} {{.Destination}} {{len .Name}}{{end}}",
        "anon",
    );
    assert_eq!(mounts, "volume /seed 64");
    // A new named volume over the same path is filled the same way.
    assert_eq!(
        run_sh(&d, &["--rm", "-v", "named:/seed", "seeded"], listing),
        want
    );
    // nocopy: the new volume stays empty.
    let empty = run_sh(
        &d,
        &["--rm", "-v", "bare:/seed:nocopy", "seeded"],
        "ls -A /seed | wc -l",
    );
    assert_eq!(empty.trim(), "0");
    // A volume that has data keeps it: no copy over it.
    run_sh(
        &d,
        &["--rm", "-v", "named:/seed", "busybox"],
        "rm /seed/sub/f",
    );
    let kept = run_sh(
        &d,
        &["--rm", "-v", "named:/seed", "seeded"],
        "ls /seed/sub | wc -l",
    );
    assert_eq!(kept.trim(), "0");
}

#[test]
fn read_only_mounts_and_volumes_from_share_data() {
    let Some(d) = daemon_with_busybox("vol-ro") else {
        return;
    };
    run_sh(
        &d,
        &[
            "--name",
            "owner",
            "-v",
            "shared:/shared",
            "-v",
            "/anon",
            "busybox",
        ],
        "echo hello > /shared/f && echo anon > /anon/g",
    );
    let (code, out, err) = common::docker_full(
        &d,
        &[
            "run",
            "--rm",
            "-v",
            "shared:/shared:ro",
            "busybox",
            "sh",
            "-c",
            "echo x > /shared/f",
        ],
        None,
    );
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("Read-only file system"), "{err}");
    let read = run_sh(
        &d,
        &["--rm", "--volumes-from", "owner", "busybox"],
        "cat /shared/f /anon/g && echo more >> /shared/f",
    );
    assert_eq!(read, "hello\nanon\n");
    let (code, _, err) = common::docker_full(
        &d,
        &[
            "run",
            "--rm",
            "--volumes-from",
            "owner:ro",
            "busybox",
            "sh",
            "-c",
            "echo x > /anon/g",
        ],
        None,
    );
    assert_ne!(code, 0);
    assert!(err.contains("Read-only file system"), "{err}");
    let bind_dir = d.dir.join("bind-src");
    std::fs::create_dir_all(&bind_dir).unwrap();
    std::fs::write(bind_dir.join("h"), "from host\n").unwrap();
    let spec = format!("type=bind,source={},target=/h,readonly", bind_dir.display());
    let read = run_sh(
        &d,
        &["--rm", "--mount", &spec, "busybox"],
        "cat /h/h; touch /h/x 2>&1 || true",
    );
    assert!(
        read.starts_with("from host\n") && read.contains("Read-only"),
        "{read}"
    );
}

#[test]
fn rm_v_drops_anonymous_volumes_and_keeps_named_ones() {
    let Some(d) = daemon_with_busybox("vol-rmv") else {
        return;
    };
    ok(
        &d,
        &[
            "run", "--name", "user", "-v", "named:/n", "-v", "/anon", "busybox", "true",
        ],
    );
    let before = volume_names(&d);
    assert_eq!(before.len(), 2, "{before:?}");
    let anonymous = before.iter().find(|n| n.len() == 64).unwrap().clone();
    // In use by a stopped container: refused, and still there.
    let refused = fails(&d, &["volume", "rm", "named"]);
    assert!(refused.contains("volume is in use"), "{refused}");
    let dangling = ok(&d, &["volume", "ls", "-q", "--filter", "dangling=true"]);
    assert!(dangling.trim().is_empty(), "{dangling}");
    ok(&d, &["rm", "-v", "user"]);
    assert_eq!(volume_names(&d), ["named"]);
    assert!(!volume_names(&d).contains(&anonymous));
    // --rm drops anonymous volumes too.
    ok(&d, &["run", "--rm", "-v", "/anon2", "busybox", "true"]);
    wait_for(
        || volume_names(&d) == ["named"],
        "--rm to drop its anonymous volume",
    );
    // prune keeps named volumes unless --all.
    ok(&d, &["volume", "prune", "-f"]);
    assert_eq!(volume_names(&d), ["named"]);
    let pruned = ok(&d, &["volume", "prune", "-af"]);
    assert!(pruned.contains("named"), "{pruned}");
    assert!(volume_names(&d).is_empty());
}

#[test]
fn tmpfs_volumes_vanish_when_their_container_stops() {
    let Some(d) = daemon_with_busybox("vol-tmpfs") else {
        return;
    };
    ok(
        &d,
        &[
            "volume",
            "create",
            "-o",
            "type=tmpfs",
            "-o",
            "device=tmpfs",
            "-o",
            "o=size=1m",
            "scratch",
        ],
    );
    ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "tmp",
            "-v",
            "scratch:/t",
            "busybox",
            "sh",
            "-c",
            "echo temp > /t/f; sleep 1000",
        ],
    );
    wait_for(
        || d.docker(&["exec", "tmp", "cat", "/t/f"]).1 == "temp\n",
        "the tmpfs write",
    );
    let fs = ok(&d, &["exec", "tmp", "sh", "-c", "grep ' /t ' /proc/mounts"]);
    assert!(fs.starts_with("tmpfs"), "{fs}");
    ok(&d, &["stop", "-t", "0", "tmp"]);
    let after = run_sh(
        &d,
        &["--rm", "-v", "scratch:/t", "busybox"],
        "ls -A /t | wc -l",
    );
    assert_eq!(after.trim(), "0");
    let options = inspect(&d, "{{.Options.type}} {{.Options.o}}", "scratch");
    assert_eq!(options, "tmpfs size=1m");
}

#[test]
fn bad_mounts_are_refused_with_dockers_errors_and_change_nothing() {
    let Some(d) = daemon_with_busybox("vol-bad") else {
        return;
    };
    let bad_name = fails(
        &d,
        &[
            "run", "--rm", "-v", "ok1:/a", "-v", "bad$:/x", "busybox", "true",
        ],
    );
    assert!(
        bad_name.contains("includes invalid characters for a local volume name"),
        "{bad_name}"
    );
    let missing = fails(
        &d,
        &[
            "run",
            "--rm",
            "--mount",
            "type=bind,source=/nonexistent/kapsel-test,target=/x",
            "busybox",
            "true",
        ],
    );
    assert!(
        missing.contains("bind source path does not exist: /nonexistent/kapsel-test"),
        "{missing}"
    );
    let relative = fails(
        &d,
        &[
            "run",
            "--rm",
            "--mount",
            "type=volume,source=v,target=rel",
            "busybox",
            "true",
        ],
    );
    assert!(relative.contains("must be absolute"), "{relative}");
    let bad_opt = fails(&d, &["volume", "create", "-o", "colour=red", "v2"]);
    assert!(bad_opt.contains("invalid option key"), "{bad_opt}");
    assert!(volume_names(&d).is_empty(), "{:?}", volume_names(&d));
    assert!(ok(&d, &["ps", "-aq"]).trim().is_empty());
    // -v creates a missing host directory, as Docker does.
    let source = d.dir.join("made-by-v");
    run_sh(
        &d,
        &["--rm", "-v", &format!("{}:/m", source.display()), "busybox"],
        "touch /m/x",
    );
    assert!(source.join("x").exists());
    let gone = fails(&d, &["volume", "inspect", "nope"]);
    assert!(gone.contains("no such volume"), "{gone}");
}

#[test]
fn volume_events_are_reported() {
    let Some(d) = daemon_with_busybox("vol-events") else {
        return;
    };
    ok(&d, &["run", "--rm", "-v", "ev:/e", "busybox", "true"]);
    ok(&d, &["volume", "rm", "ev"]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let (since, until) = (format!("{:.3}", now - 60.0), format!("{:.3}", now + 0.5));
    let events = ok(
        &d,
        &[
            "events",
            "--since",
            &since,
            "--until",
            &until,
            "--filter",
            "type=volume",
            "--format",
            "{{.Action}} {{.Actor.ID}}",
        ],
    );
    let actions: Vec<&str> = events
        .lines()
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["create", "mount", "unmount", "destroy"],
        "{events}"
    );
}

#[test]
fn docker_py_drives_volumes() {
    let Some(d) = daemon_with_busybox("vol-docker-py") else {
        return;
    };
    let Some(text) = docker_py(&d, "docker_py_volumes.py") else {
        return;
    };
    assert!(text.contains("docker-py volumes ok"), "{text}");
}

/// docker-compose 1.29 (Debian's package): a named volume and a bind mount.
#[test]
fn compose_project_keeps_its_named_volume_across_down_and_up() {
    let Some(d) = daemon_with_busybox("vol-compose") else {
        return;
    };
    let Some(project) = compose_project(
        &d,
        r#"version: "3.7"
services:
  app:
    image: busybox
    stop_signal: SIGKILL
    command: ["sh", "-c", "echo run >> /data/runs; cp /data/runs /host/runs; sleep 1000"]
    volumes:
      - appdata:/data
      - ./hostdir:/host
volumes:
  appdata:
"#,
    ) else {
        return;
    };
    std::fs::create_dir_all(project.join("hostdir")).unwrap();
    let compose = |args: &[&str]| compose(&d, &project, args);
    let runs = || std::fs::read_to_string(project.join("hostdir/runs")).unwrap_or_default();
    compose(&["up", "-d"]);
    wait_for(|| runs() == "run\n", "the first run to write");
    assert_eq!(volume_names(&d), ["kapseltest_appdata"]);
    compose(&["down"]);
    assert!(ok(&d, &["ps", "-aq"]).trim().is_empty());
    assert_eq!(volume_names(&d), ["kapseltest_appdata"]);
    compose(&["up", "-d"]);
    wait_for(
        || runs() == "run\nrun\n",
        "the second run to see the first one's data",
    );
    compose(&["down", "-v"]);
    assert!(volume_names(&d).is_empty(), "{:?}", volume_names(&d));
}

#[test]
fn bind_typed_volumes_and_propagation_modes_reach_the_container() {
    let Some(d) = daemon_with_busybox("vol-bindopt") else {
        return;
    };
    let device = d.dir.join("device");
    std::fs::create_dir_all(&device).unwrap();
    std::fs::write(device.join("f"), "on the device\n").unwrap();
    let device_opt = format!("device={}", device.display());
    ok(
        &d,
        &[
            "volume",
            "create",
            "-o",
            "type=none",
            "-o",
            "o=bind",
            "-o",
            &device_opt,
            "dev",
        ],
    );
    let read = run_sh(
        &d,
        &["--rm", "-v", "dev:/d", "busybox"],
        "cat /d/f; echo back > /d/g",
    );
    assert_eq!(read, "on the device\n");
    assert_eq!(std::fs::read_to_string(device.join("g")).unwrap(), "back\n");
    // The device has data: nothing of the image's is copied over it.
    run_sh(&d, &["--rm", "-v", "dev:/etc", "busybox"], "true");
    assert!(!device.join("passwd").exists());
    // Unmounted after the container: the volume's own _data stays empty.
    let mountpoint = inspect(&d, "{{.Mountpoint}}", "dev");
    assert_eq!(std::fs::read_dir(&mountpoint).unwrap().count(), 0);

    let bind = format!("{}:/b:ro,rshared", device.display());
    ok(
        &d,
        &["create", "--name", "prop", "-v", &bind, "busybox", "true"],
    );
    let mounts = inspect(
        &d,
        "{{range .Mounts}}{{.Type}} {{.Mode}} {{.RW}} {{.Propagation}}{{end}}",
        "prop",
    );
    assert_eq!(mounts, "bind ro,rshared false rshared");
    ok(&d, &["start", "-a", "prop"]);
}
