//! Foreground `run` with a terminal and no `--console-socket`: the runtime itself holds the
//! pty master and copies between it and its own stdin/stdout, as runc does.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::pty::Winsize;
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg, Termios};

use crate::error::{Result, SysContext};

nix::ioctl_read_bad!(get_winsize, libc::TIOCGWINSZ, Winsize);
nix::ioctl_write_ptr_bad!(set_winsize, libc::TIOCSWINSZ, Winsize);

pub struct TerminalProxy {
    master: OwnedFd,
    /// The caller's terminal settings, restored on drop (None when stdin is no terminal).
    saved: Option<Termios>,
    stdin_open: bool,
}

/// A socket pair standing in for `--console-socket`: init (or exec's process) sends the
/// master on one end, the runtime takes it from the other.
pub fn socket_pair() -> Result<(OwnedFd, OwnedFd)> {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair()
        .map_err(|e| crate::error::RuntimeError::io("socketpair", "console", e))?;
    Ok((ours.into(), theirs.into()))
}

impl TerminalProxy {
    /// The proxy for the master sent over `ours`, if one was sent.
    pub fn receive(ours: &OwnedFd) -> Result<Option<Self>> {
        crate::console::take_fd(ours)?.map(Self::new).transpose()
    }

    /// Puts the caller's terminal (if stdin is one) in raw mode, so keystrokes such as ^C
    /// reach the container's terminal instead of acting on the runtime.
    pub fn new(master: OwnedFd) -> Result<Self> {
        let stdin = std::io::stdin();
        let saved = tcgetattr(stdin.as_fd()).ok();
        if let Some(original) = &saved {
            let mut raw = original.clone();
            cfmakeraw(&mut raw);
            tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw)
                .ctx(|| "set the terminal to raw mode")?;
        }
        let proxy = TerminalProxy {
            master,
            saved,
            stdin_open: true,
        };
        proxy.resize();
        Ok(proxy)
    }

    pub fn master(&self) -> BorrowedFd<'_> {
        self.master.as_fd()
    }

    pub fn stdin_open(&self) -> bool {
        self.stdin_open
    }

    /// Gives the container's terminal the caller's window size.
    pub fn resize(&self) {
        let mut ws = Winsize {
            ws_row: 0,
            ws_col: 0,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCGWINSZ/TIOCSWINSZ read or write one Winsize through valid pointers.
        unsafe {
            if get_winsize(libc::STDIN_FILENO, &mut ws).is_ok() {
                let _ = set_winsize(self.master.as_raw_fd(), &ws);
            }
        }
    }

    /// Copies what the caller typed to the container; at end of input stops reading it.
    pub fn copy_in(&mut self) {
        let mut buf = [0u8; 4096];
        match nix::unistd::read(std::io::stdin().as_fd(), &mut buf) {
            Ok(0) | Err(_) => self.stdin_open = false,
            Ok(n) => write_all(self.master.as_fd(), &buf[..n]),
        }
    }

    /// Copies the container's output to the caller; false once the container side closed.
    pub fn copy_out(&mut self) -> bool {
        let mut buf = [0u8; 16384];
        match nix::unistd::read(self.master.as_fd(), &mut buf) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                write_all(std::io::stdout().as_fd(), &buf[..n]);
                true
            }
        }
    }
}

fn write_all(fd: BorrowedFd, mut data: &[u8]) {
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(nix::Error::EINTR) => {}
            Err(_) => return,
        }
    }
}

impl Drop for TerminalProxy {
    fn drop(&mut self) {
        if let Some(original) = &self.saved {
            let _ = tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, original);
        }
    }
}
