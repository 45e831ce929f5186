//! `kapsel` against a private kapseld: system and image commands, compared with what the
//! real docker CLI prints against the same daemon.

mod common;

use common::{have_docker_cli, hello_archive, same_as_docker, Daemon, DOCKER};

/// A daemon with `hello-test:1` loaded through `kapsel load`.
fn daemon_with_hello(name: &str) -> Daemon {
    let d = Daemon::start(name);
    let archive = hello_archive(&d.dir);
    let out = d.ok(&["load", "-i", &archive.to_string_lossy()]);
    assert_eq!(out, "Loaded image: hello-test:1\n");
    d
}

#[test]
fn image_listing_and_inspection_match_docker() {
    let d = daemon_with_hello("list");
    let list = d.ok(&["images"]);
    let mut lines = list.lines();
    assert_eq!(
        lines.next(),
        Some("REPOSITORY   TAG       IMAGE ID       CREATED       SIZE")
    );
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(&row[..2], ["hello-test", "1"]);
    assert_eq!(row[2].len(), 12);
    assert!(list.contains(" ago "), "{list}");
    for args in [
        &["images"][..],
        &["images", "-a", "--digests"],
        &["images", "--no-trunc"],
        &["images", "-q"],
        &["image", "ls", "--format", "{{json .}}"],
        &["images", "--format", "table {{.ID}}\\t{{.Repository}}:{{.Tag}}\\t{{.VirtualSize}}"],
        &["images", "--format", "{{.Repository}} {{.CreatedAt}} {{.Containers}}"],
        &["images", "-f", "dangling=true"],
        &["image", "inspect", "hello-test:1"],
        &["inspect", "hello-test:1"],
        &[
            "inspect",
            "-f",
            "{{.Id}} {{json .RootFS.Layers}} {{.Os}} {{.Config.Cmd}} {{index .Config.Labels \"test\"}}",
            "hello-test:1",
        ],
        &["image", "inspect", "--format", "{{json .Config}}", "hello-test:1"],
    ] {
        same_as_docker(&d, args);
    }
    let inspect = d.ok(&[
        "inspect",
        "-f",
        "{{.Config.Cmd}}|{{json .RepoTags}}",
        "hello-test:1",
    ]);
    assert_eq!(inspect, "[/hello]|[\"hello-test:1\"]\n");
}

#[test]
fn tag_save_load_and_remove() {
    let d = daemon_with_hello("roundtrip");
    assert_eq!(d.ok(&["tag", "hello-test:1", "localhost:5000/a/b:t"]), "");
    let repos = d.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    let mut repos: Vec<&str> = repos.lines().collect();
    repos.sort();
    assert_eq!(repos, ["hello-test:1", "localhost:5000/a/b:t"]);
    assert_eq!(
        d.ok(&["image", "rm", "localhost:5000/a/b:t"]),
        "Untagged: localhost:5000/a/b:t\n"
    );

    let saved = d.dir.join("saved.tar");
    assert_eq!(
        d.ok(&["save", "-o", &saved.to_string_lossy(), "hello-test:1"]),
        ""
    );
    let members = std::process::Command::new("tar")
        .arg("tf")
        .arg(&saved)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&members.stdout).contains("manifest.json"));
    // To a pipe, the archive goes to stdout (the same bytes).
    let piped = d.kapsel(&["save", "hello-test:1"]);
    assert_eq!(piped.code, 0, "{piped:?}");
    // (kapseld does not write byte-identical archives twice; the members must match)
    let members = |bytes: &[u8]| -> Vec<String> {
        tar::Archive::new(bytes)
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect()
    };
    let file = std::fs::read(&saved).unwrap();
    assert_eq!(piped.raw.len(), file.len());
    assert_eq!(members(&piped.raw), members(&file));

    let id = d.ok(&["inspect", "-f", "{{.Id}}", "hello-test:1"]);
    assert_eq!(
        d.ok(&["rmi", "hello-test:1"]),
        format!("Untagged: hello-test:1\nDeleted: {id}")
    );
    assert_eq!(d.ok(&["images", "-q"]), "");
    // Loading from stdin works as from a file.
    let data = std::fs::read(&saved).unwrap();
    let out = d.kapsel_in(&["load"], Some(&data));
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "Loaded image: hello-test:1\n"),
        "{out:?}"
    );
    assert_eq!(
        d.ok(&["load", "-q", "-i", &saved.to_string_lossy()]),
        "Loaded image: hello-test:1\n"
    );
    same_as_docker(&d, &["load", "-q", "-i", &saved.to_string_lossy()]);

    // `--format oci-archive`: an OCI layout only, which loads back as the same image.
    let oci = d.dir.join("saved-oci.tar");
    let args = [
        "save",
        "--format",
        "oci-archive",
        "-o",
        &oci.to_string_lossy(),
        "hello-test:1",
    ];
    assert_eq!(d.ok(&args), "");
    let oci_members = members(&std::fs::read(&oci).unwrap());
    assert!(
        oci_members.iter().any(|m| m == "oci-layout"),
        "{oci_members:?}"
    );
    assert!(
        !oci_members.iter().any(|m| m == "manifest.json"),
        "{oci_members:?}"
    );
    d.ok(&["rmi", "hello-test:1"]);
    let out = d.ok(&["load", "-i", &oci.to_string_lossy()]);
    assert!(out.contains("hello-test:1"), "{out}");
    assert_eq!(d.ok(&["inspect", "-f", "{{.Id}}", "hello-test:1"]), id);
    let out = d.kapsel(&["save", "--format", "tarball", "hello-test:1"]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("oci-archive"), "{out:?}");
}

#[test]
fn errors_are_reported_as_docker_does() {
    let d = daemon_with_hello("errors");
    for args in [
        &["image", "inspect", "nope"][..],
        &["rmi", "nope"],
        &["tag", "nope", "other:1"],
    ] {
        let out = d.kapsel(args);
        assert_eq!(out.code, 1, "{args:?}: {out:?}");
        assert_eq!(
            out.stderr, "Error response from daemon: No such image: nope\n",
            "{args:?}"
        );
        same_as_docker(&d, args);
    }
    let out = d.kapsel(&["inspect", "nope"]);
    assert_eq!((out.code, out.stdout.as_str()), (1, "[]\n"));
    assert_eq!(out.stderr, "Error: No such object: nope\n");
    same_as_docker(&d, &["inspect", "nope"]);
    same_as_docker(&d, &["inspect", "nope", "hello-test:1"]);

    let bogus = d.dir.join("bogus.tar");
    std::fs::write(&bogus, "not an archive").unwrap();
    let out = d.kapsel(&["load", "-i", &bogus.to_string_lossy()]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.starts_with("Error response from daemon: "),
        "{out:?}"
    );
    same_as_docker(&d, &["load", "-i", &bogus.to_string_lossy()]);

    // `run` of an image that is not there: docker's pull attempt, message and status.
    let out = d.kapsel(&["run", "--rm", "nope"]);
    assert_eq!(out.code, 125, "{out:?}");
    assert!(
        out.stderr
            .starts_with("Unable to find image 'nope:latest' locally\n"),
        "{out:?}"
    );
    assert!(
        out.stderr.contains("kapsel: Error response from daemon: "),
        "{out:?}"
    );
    assert!(
        out.stderr
            .ends_with("Run 'kapsel run --help' for more information\n"),
        "{out:?}"
    );

    // -it needs a terminal on stdin (here it is /dev/null), checked before anything is created.
    let out = d.kapsel(&["run", "-it", "hello-test:1"]);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (1, "the input device is not a TTY\n")
    );

    let out = d.kapsel(&["--format", "x"]);
    assert_eq!(out.code, 125, "unknown flags are usage errors: {out:?}");
    let out = d.kapsel(&["images", "--format", "{{.ID"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.starts_with("template parsing error"), "{out:?}");
}

#[test]
fn a_missing_daemon_names_the_socket_and_says_to_start_kapseld() {
    let dir = std::env::temp_dir().join(format!("kapsel-cli-nodaemon-{}", std::process::id()));
    let host = format!("unix://{}/none.sock", dir.display());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kapsel"))
        .args(["-H", &host, "images"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains(&format!("Cannot connect to kapseld at {host}")),
        "{stderr}"
    );
    assert!(
        stderr.contains("Is kapseld running? Start it with `kapseld"),
        "{stderr}"
    );

    // The environment chooses the host when -H is absent: KAPSEL_HOST before DOCKER_HOST.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kapsel"))
        .arg("version")
        .env("KAPSEL_HOST", &host)
        .env("DOCKER_HOST", "unix:///elsewhere.sock")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&host), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("Client: kapsel\n"));

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kapsel"))
        .args(["-H", "tcp://127.0.0.1:2375", "ps"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unix:///path"));
}

#[test]
fn version_and_info_match_docker_server_sections() {
    let d = daemon_with_hello("system");
    let version = d.ok(&["version"]);
    let server = version.split_once("\nServer: ").expect(&version).1;
    assert!(
        server.starts_with("kapsel\n Engine:\n  Version:          "),
        "{version}"
    );
    assert!(
        server.contains("  API version:      1.47 (minimum version 1.24)\n"),
        "{version}"
    );
    let info = d.ok(&["info"]);
    assert!(info.starts_with("Client:\n Version:    "), "{info}");
    assert!(info.contains("\nServer:\n Containers: "), "{info}");
    assert!(info.contains(" Storage Driver: overlay2\n"), "{info}");
    assert_eq!(d.ok(&["system", "info", "-f", "{{.Driver}}"]), "overlay2\n");
    assert_eq!(d.ok(&["version", "-f", "{{.Server.APIVersion}}"]), "1.47\n");
    if have_docker_cli() {
        let theirs = d.docker(&["version"]).stdout;
        let their_server = theirs.split_once("\nServer: ").expect(&theirs).1;
        assert_eq!(server, their_server);
        let theirs = d.docker(&["info"]).stdout;
        assert_eq!(
            info.split_once("\nServer:\n").unwrap().1,
            theirs.split_once("\nServer:\n").unwrap().1
        );
        same_as_docker(
            &d,
            &[
                "version",
                "--format",
                "{{.Server.Version}} {{.Server.Os}} {{.Server.KernelVersion}}",
            ],
        );
        same_as_docker(
            &d,
            &[
                "info",
                "--format",
                "{{.Name}} {{.NCPU}} {{.MemTotal}} {{.DockerRootDir}}",
            ],
        );
    } else {
        eprintln!("SKIP docker comparison: no docker CLI at {DOCKER}");
    }
}
