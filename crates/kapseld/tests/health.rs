//! Health checks through the real docker CLI: `--health-*` flags and an image's
//! HEALTHCHECK, the status in inspect and ps, the `health=` filter, `health_status`
//! events, timeouts, `--no-healthcheck`, and monitoring across a daemon crash.

mod common;

use std::time::Duration;

use common::{daemon_with_busybox, inspect, ok, wait_for, Daemon};

/// `docker run -d --name NAME FLAGS… busybox sleep 1000`.
#[track_caller]
fn run_checked(d: &Daemon, name: &str, flags: &[&str]) {
    run_sleeping_from(d, "busybox", name, flags);
}

/// `docker run -d --name NAME FLAGS… IMAGE sleep 1000`.
#[track_caller]
fn run_sleeping_from(d: &Daemon, image: &str, name: &str, flags: &[&str]) {
    let mut args = vec!["run", "-d", "--name", name];
    args.extend_from_slice(flags);
    args.extend([image, "sleep", "1000"]);
    ok(d, &args);
}

#[track_caller]
fn wait_for_health(d: &Daemon, name: &str, status: &str) {
    wait_for(
        || inspect(d, "{{.State.Health.Status}}", name) == status,
        &format!("{name} to become {status}"),
    );
}

#[test]
fn probes_make_containers_healthy_or_unhealthy_as_docker_reports_them() {
    let Some(d) = daemon_with_busybox("health") else {
        return;
    };
    let mut events = common::EventFollower::start(&d, &["event=health_status"]);
    let quick = ["--health-interval", "200ms", "--health-retries", "2"];
    run_checked(
        &d,
        "good",
        &[&["--health-cmd", "echo fine"], &quick[..]].concat(),
    );
    run_checked(
        &d,
        "bad",
        &[&["--health-cmd", "echo failing >&2; exit 1"], &quick[..]].concat(),
    );
    run_checked(
        &d,
        "slow",
        &[
            &[
                "--health-cmd",
                "echo begun; sleep 5",
                "--health-timeout",
                "1s",
            ],
            &quick[..],
        ]
        .concat(),
    );
    // The first probe runs after one interval.
    run_checked(
        &d,
        "late",
        &["--health-cmd", "true", "--health-interval", "1h"],
    );
    assert_eq!(inspect(&d, "{{.State.Health.Status}}", "late"), "starting");
    wait_for_health(&d, "good", "healthy");
    wait_for_health(&d, "bad", "unhealthy");
    wait_for_health(&d, "slow", "unhealthy");

    let good = inspect(&d, "{{json .State.Health}}", "good");
    let good: serde_json::Value = serde_json::from_str(&good).unwrap();
    assert_eq!(good["FailingStreak"], 0, "{good}");
    let last = good["Log"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["ExitCode"].as_i64(), last["Output"].as_str()),
        (Some(0), Some("fine\n"))
    );
    assert!(last["Start"].as_str() <= last["End"].as_str(), "{last}");

    // Failures keep counting; the log keeps the last five.
    wait_for(
        || {
            inspect(&d, "{{.State.Health.FailingStreak}}", "bad")
                .parse::<u32>()
                .unwrap()
                >= 6
        },
        "more failures of bad",
    );
    let bad = inspect(&d, "{{json .State.Health}}", "bad");
    let bad: serde_json::Value = serde_json::from_str(&bad).unwrap();
    let log = bad["Log"].as_array().unwrap();
    assert_eq!(log.len(), 5, "{bad}");
    assert!(
        log.iter()
            .all(|r| r["ExitCode"] == 1 && r["Output"] == "failing\n"),
        "{bad}"
    );
    assert_eq!(
        inspect(
            &d,
            "{{range .State.Health.Log}}{{.ExitCode}} {{.Output}}|{{end}}",
            "slow"
        )
        .split('|')
        .next()
        .unwrap(),
        "-1 Health check exceeded timeout (1s): begun\n"
    );

    let ps = ok(&d, &["ps", "--format", "{{.Names}} {{.Status}}"]);
    let status_of = |name: &str| {
        ps.lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_default()
            .to_string()
    };
    assert!(status_of("good").ends_with("(healthy)"), "{ps}");
    assert!(status_of("bad").ends_with("(unhealthy)"), "{ps}");
    assert!(status_of("late").ends_with("(health: starting)"), "{ps}");
    let filtered = |word: &str| {
        let out = ok(
            &d,
            &[
                "ps",
                "--filter",
                &format!("health={word}"),
                "--format",
                "{{.Names}}",
            ],
        );
        let mut names: Vec<String> = out.lines().map(String::from).collect();
        names.sort();
        names
    };
    assert_eq!(filtered("healthy"), ["good"]);
    assert_eq!(filtered("unhealthy"), ["bad", "slow"]);
    assert_eq!(filtered("starting"), ["late"]);
    assert!(filtered("none").is_empty());
    let (ok_, err) = d.docker(&["ps", "--filter", "health=sick"]);
    assert!(
        !ok_ && err.contains("Unrecognised filter value for health: sick"),
        "{err}"
    );

    for expected in [
        "health_status: healthy good",
        "health_status: unhealthy bad",
        "health_status: unhealthy slow",
    ] {
        let seen = events.wait_for(expected);
        assert_eq!(
            seen.iter().filter(|e| *e == expected).count(),
            1,
            "{expected} once, on the change: {seen:?}"
        );
    }

    // A stopped container is probed no more.
    ok(&d, &["stop", "-t", "0", "bad"]);
    let streak = inspect(&d, "{{.State.Health.FailingStreak}}", "bad");
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        inspect(&d, "{{.State.Health.FailingStreak}}", "bad"),
        streak
    );
    // Finished probes leave no exec behind (one may be under way).
    let execs: Option<Vec<String>> =
        serde_json::from_str(&inspect(&d, "{{json .ExecIDs}}", "good")).unwrap();
    assert!(execs.unwrap_or_default().len() <= 1);
}

#[test]
fn an_images_healthcheck_applies_unless_disabled() {
    let Some(d) = daemon_with_busybox("health-image") else {
        return;
    };
    ok(&d, &["create", "--name", "base", "busybox", "true"]);
    ok(
        &d,
        &[
            "commit",
            "--change",
            "HEALTHCHECK --interval=200ms --retries=1 CMD [\"test\", \"-e\", \"/tmp/ready\"]",
            "base",
            "checked:1",
        ],
    );
    run_sleeping_from(&d, "checked:1", "inherits", &[]);
    run_sleeping_from(&d, "checked:1", "disabled", &["--no-healthcheck"]);
    assert_eq!(
        inspect(&d, "{{json .Config.Healthcheck.Test}}", "inherits"),
        r#"["CMD","test","-e","/tmp/ready"]"#
    );
    wait_for_health(&d, "inherits", "unhealthy");
    ok(&d, &["exec", "inherits", "touch", "/tmp/ready"]);
    wait_for_health(&d, "inherits", "healthy");
    assert_eq!(inspect(&d, "{{.State.Health}}", "disabled"), "<nil>");
    assert_eq!(
        inspect(&d, "{{json .Config.Healthcheck.Test}}", "disabled"),
        r#"["NONE"]"#
    );
    let status = ok(
        &d,
        &["ps", "--filter", "name=disabled", "--format", "{{.Status}}"],
    );
    assert!(
        status.starts_with("Up") && !status.contains('('),
        "{status}"
    );
    assert_eq!(
        ok(
            &d,
            &["ps", "--filter", "health=none", "--format", "{{.Names}}"]
        )
        .trim(),
        "disabled"
    );
}

#[test]
fn health_monitoring_resumes_after_a_daemon_crash() {
    let Some(mut d) = daemon_with_busybox("health-crash") else {
        return;
    };
    run_checked(
        &d,
        "watched",
        &[
            "--health-cmd",
            "test -e /tmp/ready",
            "--health-interval",
            "200ms",
            "--health-retries",
            "1",
        ],
    );
    wait_for_health(&d, "watched", "unhealthy");
    d.crash_and_restart(Duration::ZERO);
    ok(&d, &["exec", "watched", "touch", "/tmp/ready"]);
    wait_for_health(&d, "watched", "healthy");
    ok(&d, &["exec", "watched", "rm", "/tmp/ready"]);
    wait_for_health(&d, "watched", "unhealthy");
}
