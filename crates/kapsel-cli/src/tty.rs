//! The local terminal for `-it`: raw mode (so keys reach the container unprocessed) and
//! the window size the container's terminal should have.

use std::io::IsTerminal;
use std::os::fd::{AsFd, BorrowedFd};

use nix::sys::termios::{self, SetArg, Termios};

use crate::client::{Client, Query};

pub fn stdin_is_terminal() -> bool {
    std::io::stdin().is_terminal()
}

pub fn stdout_is_terminal() -> bool {
    std::io::stdout().is_terminal()
}

pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// Puts stdin's terminal in raw mode until dropped. The guard must live until the
/// container's output ended, or the user's shell is left without echo.
pub struct RawMode {
    saved: Termios,
}

impl RawMode {
    pub fn enable() -> nix::Result<RawMode> {
        let stdin = std::io::stdin();
        let fd = stdin.as_fd();
        let saved = termios::tcgetattr(fd)?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(fd, SetArg::TCSANOW, &raw)?;
        Ok(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let stdin = std::io::stdin();
        let _ = termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &self.saved);
    }
}

/// The terminal's (rows, columns), from stdout or else stdin; `None` off a terminal.
pub fn size() -> Option<(u16, u16)> {
    let out = std::io::stdout();
    let inp = std::io::stdin();
    winsize(out.as_fd()).or_else(|| winsize(inp.as_fd()))
}

fn winsize(fd: BorrowedFd<'_>) -> Option<(u16, u16)> {
    use std::os::fd::AsRawFd;
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes one `winsize` into the struct we pass and nothing else.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
    (rc == 0 && ws.ws_row > 0 && ws.ws_col > 0).then_some((ws.ws_row, ws.ws_col))
}

/// Sends the current size to `resize_path` (`/containers/{id}/resize` or
/// `/exec/{id}/resize`) now and on every SIGWINCH, until the task is dropped.
/// Failures are ignored: a container that already exited cannot be resized, and that
/// is no reason to fail the command.
pub async fn track_size(client: Client, resize_path: String) {
    let resize = |(h, w): (u16, u16)| {
        let client = client.clone();
        let path = resize_path.clone();
        async move {
            let q = Query::new().set("h", h).set("w", w);
            client.post(&path, &q, None).await.is_ok()
        }
    };
    // The process may not be running yet when the first resize arrives: docker retries
    // it a few times with a growing pause, and so do we.
    if let Some(s) = size() {
        for attempt in 1..=10u64 {
            if resize(s).await {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10 * attempt)).await;
        }
    }
    let Ok(mut winch) =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
    else {
        return;
    };
    while winch.recv().await.is_some() {
        if let Some(s) = size() {
            resize(s).await;
        }
    }
}
