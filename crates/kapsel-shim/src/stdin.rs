//! The container's stdin, fed from attach clients. Writes never block the shim: what the
//! container has not taken yet waits in `pending`, and while anything waits the shim
//! stops reading clients, so the backpressure reaches them through their sockets and
//! `pending` stays within one read.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::errno::Errno;

/// The byte a terminal's line discipline turns into end-of-file (VEOF, ^D).
const TTY_EOF: u8 = 0x04;

pub struct StdinWriter {
    /// The stdin pipe or pty master; None without stdin, or once it is closed.
    fd: Option<OwnedFd>,
    tty: bool,
    pending: Vec<u8>,
    /// A client asked to close stdin while data was pending.
    close_after: bool,
}

impl StdinWriter {
    pub fn new(fd: Option<OwnedFd>, tty: bool) -> Self {
        StdinWriter {
            fd,
            tty,
            pending: Vec::new(),
            close_after: false,
        }
    }

    /// True while data waits for the container: clients are not read meanwhile.
    pub fn blocked(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The fd to poll for POLLOUT while data waits.
    pub fn waiting_fd(&self) -> Option<RawFd> {
        self.fd
            .as_ref()
            .filter(|_| self.blocked())
            .map(AsRawFd::as_raw_fd)
    }

    /// Data for the container's stdin (dropped if there is none).
    pub fn write(&mut self, data: &[u8]) {
        if self.fd.is_none() {
            return;
        }
        if self.blocked() {
            self.pending.extend_from_slice(data);
        } else {
            let done = self.write_now(data);
            self.pending.extend_from_slice(&data[done..]);
        }
    }

    /// A client closed stdin: the pipe is closed (once what is pending is written); a
    /// terminal gets its EOF character instead, as typing ^D would.
    pub fn close(&mut self) {
        if self.tty {
            self.write(&[TTY_EOF]);
        } else if self.blocked() {
            self.close_after = true;
        } else {
            self.fd = None;
        }
    }

    /// The container can take more: writes what is pending.
    pub fn flush(&mut self) {
        let mut pending = std::mem::take(&mut self.pending);
        let done = self.write_now(&pending);
        pending.drain(..done);
        if pending.is_empty() {
            // The buffer is released rather than kept for the next burst.
            if self.close_after {
                self.fd = None;
            }
        } else {
            self.pending = pending;
        }
    }

    /// Writes as much as the fd takes now; returns how much that was. On an error (the
    /// container closed its stdin, or exited) stdin is dropped, and so is what is pending.
    fn write_now(&mut self, data: &[u8]) -> usize {
        let Some(fd) = &self.fd else {
            return data.len();
        };
        let mut done = 0;
        while done < data.len() {
            match nix::unistd::write(fd, &data[done..]) {
                Ok(n) => done += n,
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => return done,
                Err(e) => {
                    if e != Errno::EPIPE && e != Errno::EIO {
                        crate::diag::log(format_args!("write the container's stdin: {e}"));
                    }
                    self.fd = None;
                    self.pending.clear();
                    return data.len();
                }
            }
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stdio::set_nonblocking;
    use std::os::fd::AsFd;

    fn read_all(fd: &OwnedFd) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = [0u8; 65536];
        while let Ok(n @ 1..) = nix::unistd::read(fd, &mut buf) {
            out.extend_from_slice(&buf[..n]);
        }
        out
    }

    #[test]
    fn backpressure_keeps_order_and_closes_after_flush() {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        set_nonblocking(w.as_fd()).unwrap();
        set_nonblocking(r.as_fd()).unwrap();
        let mut s = StdinWriter::new(Some(w), false);
        // More than a pipe holds, so some must wait.
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        s.write(&big);
        assert!(s.blocked());
        s.write(b"tail");
        s.close();
        assert!(s.waiting_fd().is_some());
        let mut got = Vec::new();
        while s.blocked() {
            got.extend(read_all(&r));
            s.flush();
        }
        got.extend(read_all(&r));
        assert!(s.fd.is_none(), "closed once flushed");
        assert_eq!(got.len(), big.len() + 4);
        assert_eq!(&got[..big.len()], &big[..]);
        assert_eq!(&got[big.len()..], b"tail");
    }

    #[test]
    fn without_stdin_data_is_dropped() {
        let mut s = StdinWriter::new(None, false);
        s.write(b"x");
        s.close();
        assert!(!s.blocked());
    }
}
