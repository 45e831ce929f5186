//! seccomp notify: a rule with SCMP_ACT_NOTIFY hands the syscall to an agent listening at
//! `linux.seccomp.listenerPath`. The runtime sends the agent the notify fd with the
//! container process state (runtime spec, config-linux.md#seccomp); the agent here answers
//! every `mkdir` with EDQUOT, which the container then reports.

mod common;

use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

use libseccomp::{ScmpNotifReq, ScmpNotifResp, ScmpNotifRespFlags};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use serde_json::{json, Value};

/// Accepts the runtime's connection: the state JSON and the notify fd.
fn accept_agent_message(listener: &UnixListener) -> (Value, OwnedFd) {
    let (stream, _) = listener
        .accept()
        .expect("the runtime connects to the agent");
    let mut buf = vec![0u8; 64 * 1024];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::empty(),
    )
    .expect("recvmsg from the runtime");
    let mut fd = None;
    for c in msg.cmsgs().expect("control messages") {
        if let ControlMessageOwned::ScmRights(fds) = c {
            // SAFETY: the kernel installed the fd for this process.
            fd = fds.first().map(|f| unsafe { OwnedFd::from_raw_fd(*f) });
        }
    }
    let n = msg.bytes;
    let state: Value = serde_json::from_slice(&buf[..n]).expect("state JSON");
    (state, fd.expect("the notify fd is attached"))
}

/// Answers notifications with EDQUOT until `deadline` or the fd stops working.
fn answer_with_edquot(fd: &OwnedFd, deadline: Instant) -> usize {
    let mut answered = 0;
    while Instant::now() < deadline {
        let mut pfd = [nix::poll::PollFd::new(
            std::os::fd::AsFd::as_fd(fd),
            nix::poll::PollFlags::POLLIN,
        )];
        match nix::poll::poll(&mut pfd, nix::poll::PollTimeout::from(100u16)) {
            Ok(0) => continue,
            Ok(_)
                if pfd[0]
                    .revents()
                    .is_some_and(|r| r.contains(nix::poll::PollFlags::POLLIN)) => {}
            _ => break,
        }
        let Ok(req) = ScmpNotifReq::receive(fd.as_raw_fd()) else {
            break;
        };
        let resp = ScmpNotifResp::new_error(req.id, -libc::EDQUOT, ScmpNotifRespFlags::empty());
        if resp.respond(fd.as_raw_fd()).is_ok() {
            answered += 1;
        }
    }
    answered
}

#[test]
fn notify_fd_reaches_the_agent_which_answers_for_the_container() {
    let t = test_env!();
    if common::skip_if_runc("runc 1.1 has seccomp notify, but this checks kapsel's agent protocol")
    {
        return;
    }
    let socket = t.dir.join("agent.sock");
    let listener = UnixListener::bind(&socket).expect("bind the agent socket");
    let agent = std::thread::spawn(move || {
        let (state, fd) = accept_agent_message(&listener);
        let answered = answer_with_edquot(&fd, Instant::now() + Duration::from_secs(10));
        (state, answered)
    });
    let id = t.id();
    let mut cfg = t.spec(&id, &["sh", "-c", "mkdir /tmp/x; echo mkdir=$?; ls /tmp"]);
    common::add_mount(
        &mut cfg,
        json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}),
    );
    cfg["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": socket,
        "listenerMetadata": "kapsel-test",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
    });
    let out = t.run(&id, &cfg).ok("run with a seccomp agent");
    let (state, answered) = agent.join().expect("agent thread");
    assert!(
        out.stdout.contains("mkdir=1"),
        "mkdir must fail: {}",
        out.all()
    );
    assert!(
        out.all().contains("quota"),
        "the agent's EDQUOT must reach the container: {}",
        out.all()
    );
    assert!(answered >= 1, "the agent answered no notification");
    assert_eq!(state["ociVersion"], "1.2.0");
    assert_eq!(state["fds"], json!(["seccompFd"]));
    assert_eq!(state["metadata"], "kapsel-test");
    assert_eq!(state["state"]["id"], id.as_str());
    assert!(state["pid"].as_i64().unwrap_or(0) > 0, "pid in {state}");
}
