//! The readiness report on fd 4: one JSON line telling kapseld that the process runs,
//! `{"pid":N}`, or why it could not be started, `{"error":"…"}`. Closing the pipe after
//! it lets kapseld read to EOF.

use std::fs::File;
use std::io::Write;
use std::os::fd::{FromRawFd, RawFd};

use crate::json::push_string;

pub struct Readiness(Option<File>);

impl Readiness {
    /// Takes the inherited fd (absent when the shim is run by hand without it).
    pub fn inherit(fd: RawFd) -> Self {
        if !crate::process::set_cloexec(fd) {
            return Readiness(None);
        }
        // SAFETY: the fd is open (F_SETFD succeeded) and, by the shim's contract, is the
        // readiness pipe, owned by nothing else in this process.
        Readiness(Some(unsafe { File::from_raw_fd(fd) }))
    }

    pub fn started(self, pid: i32) {
        self.send(format!("{{\"pid\":{pid}}}\n").as_bytes());
    }

    pub fn failed(self, message: &str) {
        let mut line = b"{\"error\":".to_vec();
        push_string(&mut line, message.as_bytes());
        line.extend_from_slice(b"}\n");
        self.send(&line);
    }

    fn send(self, line: &[u8]) {
        if let Some(mut f) = self.0 {
            if let Err(e) = f.write_all(line) {
                crate::diag::log(format_args!("write the readiness report: {e}"));
            }
        }
    }
}
