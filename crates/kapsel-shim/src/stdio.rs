//! The container's stdio as the shim holds it: either pipes (whose other ends are the
//! runtime's stdio, which the runtime hands to the container when there is no terminal,
//! as runc does), or a pty whose master the runtime sends over a console socket.

use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};

use crate::error::{Context, Error, Result};

/// An output stream, as Docker numbers and names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout = 1,
    Stderr = 2,
}

impl Stream {
    /// The json-file `stream` value.
    pub fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// One fd the container writes to.
pub struct Output {
    pub stream: Stream,
    pub fd: OwnedFd,
}

/// What one read of an output gave.
pub enum ReadOutcome {
    Data(usize),
    /// The writers are gone (a pty master reports that as EIO).
    Eof,
    /// Nothing to read now.
    Again,
}

impl Output {
    pub fn read(&self, buf: &mut [u8]) -> ReadOutcome {
        loop {
            return match nix::unistd::read(&self.fd, buf) {
                Ok(0) | Err(Errno::EIO) => ReadOutcome::Eof,
                Ok(n) => ReadOutcome::Data(n),
                Err(Errno::EAGAIN) => ReadOutcome::Again,
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    crate::diag::log(format_args!(
                        "read the container's {}: {e}",
                        self.stream.name()
                    ));
                    ReadOutcome::Eof
                }
            };
        }
    }
}

/// The container's stdio once it runs.
pub struct Io {
    pub outputs: Vec<Output>,
    /// Where client stdin goes: the stdin pipe, or the pty master (with `--stdin` only).
    pub stdin: Option<OwnedFd>,
    /// The pty master, for resizing (with `--tty`).
    pub console: Option<OwnedFd>,
}

/// Stdio made before the runtime runs; [`Prepared::finish`] turns it into [`Io`] after.
pub enum Prepared {
    Pipes(Io),
    Tty { socket: ConsoleSocket, stdin: bool },
}

/// Makes the container's stdio; also returns the runtime process's stdin, stdout and
/// stderr.
pub fn prepare(dir: &Path, tty: bool, stdin: bool) -> Result<(Prepared, [Stdio; 3])> {
    if tty {
        let socket = ConsoleSocket::bind(dir.join("console.sock"))?;
        let null = || Stdio::null();
        return Ok((Prepared::Tty { socket, stdin }, [null(), null(), null()]));
    }
    let (stdout_r, stdout_w) = pipe("stdout")?;
    let (stderr_r, stderr_w) = pipe("stderr")?;
    let (stdin_ours, stdin_theirs) = if stdin {
        let (r, w) = pipe("stdin")?;
        set_nonblocking(w.as_fd())?;
        (Some(w), Stdio::from(r))
    } else {
        (None, Stdio::null())
    };
    set_nonblocking(stdout_r.as_fd())?;
    set_nonblocking(stderr_r.as_fd())?;
    let io = Io {
        outputs: vec![
            Output {
                stream: Stream::Stdout,
                fd: stdout_r,
            },
            Output {
                stream: Stream::Stderr,
                fd: stderr_r,
            },
        ],
        stdin: stdin_ours,
        console: None,
    };
    Ok((
        Prepared::Pipes(io),
        [stdin_theirs, Stdio::from(stdout_w), Stdio::from(stderr_w)],
    ))
}

impl Prepared {
    /// The `--console-socket` to pass to the runtime, with a terminal.
    pub fn console_socket(&self) -> Option<&Path> {
        match self {
            Prepared::Tty { socket, .. } => Some(&socket.path),
            Prepared::Pipes(_) => None,
        }
    }

    /// After the runtime succeeded: with a terminal, takes the pty master it sent.
    pub fn finish(self) -> Result<Io> {
        match self {
            Prepared::Pipes(io) => Ok(io),
            Prepared::Tty { socket, stdin } => {
                let master = socket.receive()?;
                set_nonblocking(master.as_fd())?;
                let dup = || nix::unistd::dup(&master).ctx(|| "dup the pty master");
                Ok(Io {
                    stdin: if stdin { Some(dup()?) } else { None },
                    console: Some(dup()?),
                    outputs: vec![Output {
                        stream: Stream::Stdout,
                        fd: master,
                    }],
                })
            }
        }
    }
}

/// The socket the runtime connects to and sends the pty master over (runc's protocol:
/// one message carrying the fd with SCM_RIGHTS). Removed when dropped.
pub struct ConsoleSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl ConsoleSocket {
    fn bind(path: PathBuf) -> Result<Self> {
        // A socket left by an earlier shim for the same directory.
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)
            .ctx(|| format!("bind the console socket {}", path.display()))?;
        Ok(ConsoleSocket { listener, path })
    }

    /// Takes the fd the runtime sent. Called once the runtime has exited successfully, by
    /// which time the fd has been sent: nothing here waits.
    fn receive(&self) -> Result<OwnedFd> {
        self.listener
            .set_nonblocking(true)
            .ctx(|| "make the console socket non-blocking")?;
        let (conn, _) = self.listener.accept().map_err(|e| {
            Error::msg(format!(
                "the runtime did not connect to the console socket {} ({e}): is process.terminal true?",
                self.path.display()
            ))
        })?;
        let mut name = [0u8; 256];
        let mut iov = [IoSliceMut::new(&mut name)];
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let msg = recvmsg::<()>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .ctx(|| format!("receive the pty master on {}", self.path.display()))?;
        let mut master = None;
        for cmsg in msg
            .cmsgs()
            .ctx(|| "read the console socket's control message")?
        {
            if let ControlMessageOwned::ScmRights(fds) = cmsg {
                for fd in fds {
                    // SAFETY: the kernel just installed these fds in this process; the
                    // first is kept, any other is closed when dropped.
                    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
                    master.get_or_insert(owned);
                }
            }
        }
        master.ok_or_else(|| {
            Error::msg(format!(
                "the runtime sent no pty master over {}",
                self.path.display()
            ))
        })
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn pipe(what: &str) -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).ctx(|| format!("make the {what} pipe"))
}

pub fn set_nonblocking(fd: BorrowedFd<'_>) -> Result<()> {
    let flags = fcntl(fd, FcntlArg::F_GETFL).ctx(|| "fcntl(F_GETFL)")?;
    let flags = OFlag::from_bits_retain(flags) | OFlag::O_NONBLOCK;
    fcntl(fd, FcntlArg::F_SETFL(flags)).ctx(|| "fcntl(F_SETFL, O_NONBLOCK)")?;
    Ok(())
}

/// Sets the terminal's size (TIOCSWINSZ on the master); the kernel then signals the
/// container's foreground process group with SIGWINCH.
pub fn resize(console: BorrowedFd<'_>, rows: u16, cols: u16) {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from the pointer, which is valid.
    if unsafe { libc::ioctl(console.as_raw_fd(), libc::TIOCSWINSZ, &ws) } != 0 {
        crate::diag::log(format_args!(
            "resize the terminal to {rows}x{cols}: {}",
            std::io::Error::last_os_error()
        ));
    }
}
