//! SCMP_ACT_NOTIFY: install returns the notify fd, and an agent holding it answers the
//! container's syscall.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};

use libseccomp::{ScmpNotifReq, ScmpNotifResp, ScmpNotifRespFlags, ScmpSyscall};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};
use serde_json::json;

use crate::child::{run_filtered, seccomp, sys, Exit};

/// What the agent makes the child's getppid return.
const ANSWER: i64 = 4242;

/// How long the agent waits for the child at each step before giving up.
const WAIT_MS: u16 = 10_000;

#[test]
fn notify_fd_reaches_an_agent_that_answers() {
    let (agent_end, child_end) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .unwrap();
    let agent = std::thread::spawn(move || answer_one(&agent_end));
    let filter = seccomp(json!({ "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": "/run/kapsel-seccomp-test-agent.sock",
        "syscalls": [{ "names": ["getppid"], "action": "SCMP_ACT_NOTIFY" }] }));
    let outcome = run_filtered(&filter, |p| {
        let Some(fd) = &p.notify_fd else {
            return p.report(0);
        };
        p.report(1);
        let fds = [fd.as_raw_fd()];
        let cmsg = [ControlMessage::ScmRights(&fds)];
        sendmsg::<()>(
            child_end.as_raw_fd(),
            &[IoSlice::new(b"fd")],
            &cmsg,
            MsgFlags::empty(),
            None,
        )
        .unwrap();
        // If the agent never answers, SIGALRM ends the child instead of hanging the test.
        // SAFETY: alarm takes a plain integer.
        unsafe { libc::alarm(20) };
        // SAFETY: getppid has no arguments.
        p.report(sys(unsafe { libc::syscall(libc::SYS_getppid) }));
    });
    let agent_saw = agent.join().unwrap();
    assert_eq!(outcome.exit, Exit::Code(0));
    assert_eq!(outcome.reports, [1, ANSWER]);
    let agent_saw = agent_saw.expect("agent");
    assert!(agent_saw > 0, "the notification names the calling pid");
}

/// The agent: receives the notify fd, then answers one getppid with ANSWER. Returns the
/// pid the notification came from.
fn answer_one(socket: &OwnedFd) -> Result<u32, String> {
    let notify_fd = receive_fd(socket)?;
    wait_readable(&notify_fd, "notification")?;
    let req = ScmpNotifReq::receive(notify_fd.as_raw_fd()).map_err(|e| e.to_string())?;
    if req.data.syscall != ScmpSyscall::from_name("getppid").unwrap() {
        return Err(format!("notified for {:?}", req.data.syscall));
    }
    ScmpNotifResp::new_val(req.id, ANSWER, ScmpNotifRespFlags::empty())
        .respond(notify_fd.as_raw_fd())
        .map_err(|e| e.to_string())?;
    Ok(req.pid)
}

fn receive_fd(socket: &OwnedFd) -> Result<OwnedFd, String> {
    wait_readable(socket, "the notify fd")?;
    let mut buf = [0u8; 8];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|e| e.to_string())?;
    for cmsg in msg.cmsgs().map_err(|e| e.to_string())? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            // SAFETY: SCM_RIGHTS just gave this process the fd.
            return Ok(unsafe { OwnedFd::from_raw_fd(fds[0]) });
        }
    }
    Err("no fd in the message".into())
}

fn wait_readable(fd: &OwnedFd, what: &str) -> Result<(), String> {
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    match poll(&mut fds, PollTimeout::from(WAIT_MS)) {
        Ok(1) => Ok(()),
        other => Err(format!("waiting for {what}: {other:?}")),
    }
}
