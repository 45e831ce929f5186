//! Terminals: the container's pty is made inside the container (from its own devpts) and
//! the master end is sent to the caller over `--console-socket`, as runc does.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::fcntl::{open, OFlag};
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt, Winsize};
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use nix::sys::stat::Mode;

use crate::error::{Result, RuntimeError, SysContext};

nix::ioctl_write_ptr_bad!(set_winsize, libc::TIOCSWINSZ, Winsize);

/// Opens a pty in the current mount namespace, sends its master to `socket`, and makes the
/// slave this process's controlling terminal and stdio.
pub fn setup(socket: &OwnedFd, size: Option<(u16, u16)>) -> Result<()> {
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .ctx(|| "open /dev/ptmx (is devpts mounted at /dev/pts?)")?;
    grantpt(&master).ctx(|| "grantpt")?;
    unlockpt(&master).ctx(|| "unlockpt")?;
    let slave_path = ptsname_r(&master).ctx(|| "ptsname")?;
    if let Some((rows, cols)) = size {
        let ws = Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads a valid winsize from the pointer.
        unsafe { set_winsize(master.as_raw_fd(), &ws) }.ctx(|| "set the terminal size")?;
    }
    let slave = open(
        Path::new(&slave_path),
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| format!("open {slave_path}"))?;
    send_fd(socket, slave_path.as_bytes(), master.as_raw_fd())?;
    drop(master);
    // SAFETY: TIOCSCTTY takes an int argument; this process is a session leader.
    if unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) } != 0 {
        return Err(RuntimeError::Init(format!(
            "make {slave_path} the controlling terminal: {}",
            std::io::Error::last_os_error()
        )));
    }
    for target in 0..=2 {
        // SAFETY: dup2 onto the stdio numbers; both fds are valid.
        if unsafe { libc::dup2(slave.as_raw_fd(), target) } < 0 {
            return Err(RuntimeError::Init(format!(
                "dup2 the terminal onto fd {target}: {}",
                std::io::Error::last_os_error()
            )));
        }
    }
    Ok(())
}

/// Sends `fd` with a name as payload (runc's protocol: the name is the pty's path).
pub fn send_fd(socket: &OwnedFd, name: &[u8], fd: RawFd) -> Result<()> {
    let fds = [fd];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(name)];
    sendmsg::<()>(socket.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None)
        .ctx(|| "send the terminal over the console socket")?;
    Ok(())
}

/// Takes the fd that init sent over the console socket pair, if it sent one (it has by the
/// time create returns; a container without a terminal sent nothing and closed its end).
pub fn take_fd(socket: &OwnedFd) -> Result<Option<OwnedFd>> {
    let mut buf = [0u8; 4096];
    match receive(socket, &mut buf, MsgFlags::MSG_DONTWAIT) {
        Err(RuntimeError::Sys {
            source: nix::Error::EAGAIN,
            ..
        }) => Ok(None),
        other => other.map(|(_, fd)| fd),
    }
}

/// Receives one message into `buf` (waiting for it), with the fd attached to it if any.
pub fn recv_with_fd(socket: &OwnedFd, buf: &mut [u8]) -> Result<(usize, Option<OwnedFd>)> {
    receive(socket, buf, MsgFlags::empty())
}

fn receive(socket: &OwnedFd, buf: &mut [u8], flags: MsgFlags) -> Result<(usize, Option<OwnedFd>)> {
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let flags = flags | MsgFlags::MSG_CMSG_CLOEXEC;
    let msg = loop {
        match recvmsg::<()>(socket.as_raw_fd(), &mut iov, Some(&mut space), flags) {
            Err(nix::Error::EINTR) => continue,
            other => break other.ctx(|| "receive on a socket of the runtime")?,
        }
    };
    let mut fd = None;
    for c in msg.cmsgs().ctx(|| "read control messages")? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            // SAFETY: the kernel just installed these fds for us; any beyond the first are
            // closed right away.
            let mut owned = fds.into_iter().map(|f| unsafe { OwnedFd::from_raw_fd(f) });
            fd = owned.next();
        }
    }
    Ok((msg.bytes, fd))
}

/// Connects to the caller's `--console-socket`.
pub fn connect(path: &Path) -> Result<OwnedFd> {
    std::os::unix::net::UnixStream::connect(path)
        .map(OwnedFd::from)
        .map_err(|e| RuntimeError::io("connect to console socket", path, e))
}
