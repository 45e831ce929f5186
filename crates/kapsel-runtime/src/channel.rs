//! The message channel between the runtime and the processes it forks (the intermediate
//! process that sets up namespaces, and the container's init). A SOCK_SEQPACKET socketpair
//! keeps message boundaries, so each message is one JSON datagram.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::sys::socket::{send, socketpair, AddressFamily, MsgFlags, SockFlag, SockType};
use serde::{Deserialize, Serialize};

use crate::error::{Result, RuntimeError, SysContext};

#[derive(Debug, Serialize, Deserialize)]
pub enum Message {
    /// Intermediate → runtime: I unshared a user namespace; write my id maps.
    MapIds { pid: i32 },
    /// Runtime → child: go on.
    Proceed,
    /// Intermediate → runtime: the container's init has this host PID.
    InitPid { pid: i32 },
    /// Init → runtime: mounts are done, pivot_root is next; run the prestart and
    /// createRuntime hooks now.
    RunCreateHooks,
    /// Runtime → init: the hooks ran; here is the state for the createContainer hooks.
    State { state: serde_json::Value },
    /// Init → runtime: setup is complete; init now waits for `start`.
    Ready,
    /// Child → runtime: the seccomp notify fd is attached (for the agent at listenerPath).
    SeccompNotify,
    /// Child → runtime: setup failed.
    Error { message: String },
}

const MAX_MESSAGE: usize = 64 * 1024;

pub struct Channel {
    fd: OwnedFd,
    /// An fd that came with the last message (SCM_RIGHTS), until taken.
    received_fd: std::cell::RefCell<Option<OwnedFd>>,
}

/// A connected pair: the runtime keeps one end, the child the other.
pub fn pair() -> Result<(Channel, Channel)> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .ctx(|| "socketpair for the runtime's sync channel")?;
    let channel = |fd| Channel {
        fd,
        received_fd: Default::default(),
    };
    Ok((channel(a), channel(b)))
}

impl Channel {
    pub fn send(&self, msg: &Message) -> Result<()> {
        let data = serde_json::to_vec(msg).expect("serializable");
        send(self.fd.as_raw_fd(), &data, MsgFlags::MSG_NOSIGNAL).ctx(|| "send on sync channel")?;
        Ok(())
    }

    /// Sends a message with an fd attached.
    pub fn send_fd(&self, msg: &Message, fd: &OwnedFd) -> Result<()> {
        let data = serde_json::to_vec(msg).expect("serializable");
        crate::console::send_fd(&self.fd, &data, fd.as_raw_fd())
    }

    /// The fd attached to the last message received, if any.
    pub fn take_fd(&self) -> Option<OwnedFd> {
        self.received_fd.borrow_mut().take()
    }

    /// The next message, or None when the other end closed (exited or exec'd).
    pub fn recv(&self) -> Result<Option<Message>> {
        let mut buf = vec![0u8; MAX_MESSAGE];
        let (n, fd) = crate::console::recv_with_fd(&self.fd, &mut buf)?;
        *self.received_fd.borrow_mut() = fd;
        if n == 0 {
            return Ok(None);
        }
        serde_json::from_slice(&buf[..n])
            .map(Some)
            .map_err(|e| RuntimeError::Init(format!("garbled sync message: {e}")))
    }

    /// Waits for `Proceed`; anything else is an error.
    pub fn wait_proceed(&self) -> Result<()> {
        match self.recv()? {
            Some(Message::Proceed) => Ok(()),
            other => Err(RuntimeError::Init(format!(
                "expected the runtime to proceed, got {other:?}"
            ))),
        }
    }

    /// Reports a setup error to the runtime (best effort: the runtime may be gone).
    pub fn report(&self, err: &RuntimeError) {
        let _ = self.send(&Message::Error {
            message: error_chain(err),
        });
    }
}

impl AsFd for Channel {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// An error and its sources on one line.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}
