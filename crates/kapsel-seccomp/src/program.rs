//! A compiled filter: the BPF program libseccomp generated, with the seccomp(2) flags to
//! load it. Generating the program is the expensive part of seccomp (about 10 ms for
//! Docker's default profile here); a `Program` can be kept (see `to_bytes`) and loaded by
//! any number of containers with one syscall, which is what the runtime does.

use std::io::{Read, Seek};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};

use crate::error::SeccompError;

// seccomp(2) operation and flags (linux/seccomp.h).
const SECCOMP_SET_MODE_FILTER: libc::c_uint = 1;
const FLAG_TSYNC: u32 = 1;
const FLAG_LOG: u32 = 2;
const FLAG_SPEC_ALLOW: u32 = 4;
const FLAG_NEW_LISTENER: u32 = 8;
const FLAG_TSYNC_ESRCH: u32 = 16;
/// One classic BPF instruction (struct sock_filter) is 8 bytes.
const INSTRUCTION: usize = 8;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    bpf: Vec<u8>,
    flags: u32,
}

impl Program {
    /// Exports what libseccomp would load for `ctx`, with the flags its attributes ask for.
    pub(crate) fn compile(
        ctx: &libseccomp::ScmpFilterContext,
        notifies: bool,
    ) -> Result<Program, SeccompError> {
        let mut file = memfd()?;
        ctx.export_bpf(file.as_fd())
            .map_err(|source| SeccompError::Export { source })?;
        let mut bpf = Vec::new();
        file.rewind()
            .and_then(|_| file.read_to_end(&mut bpf))
            .map_err(SeccompError::ExportIo)?;
        let attr = |on: Result<bool, _>, flag| if on.unwrap_or(false) { flag } else { 0 };
        let mut flags = attr(ctx.get_ctl_tsync(), FLAG_TSYNC)
            | attr(ctx.get_ctl_log(), FLAG_LOG)
            | attr(ctx.get_ctl_ssb(), FLAG_SPEC_ALLOW);
        if notifies {
            flags |= FLAG_NEW_LISTENER;
            // With both, the kernel wants TSYNC to report failure as ESRCH, since the
            // return value is the listener fd.
            if flags & FLAG_TSYNC != 0 {
                flags |= FLAG_TSYNC_ESRCH;
            }
        }
        Ok(Program { bpf, flags })
    }

    /// Loads the program into the calling thread (all threads with TSYNC); returns the
    /// notify fd when the program hands syscalls to an agent.
    pub fn load(&self) -> Result<Option<OwnedFd>, SeccompError> {
        let prog = libc::sock_fprog {
            len: (self.bpf.len() / INSTRUCTION) as libc::c_ushort,
            filter: self.bpf.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: a valid sock_fprog over our own buffer, which outlives the call.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                SECCOMP_SET_MODE_FILTER,
                self.flags,
                &prog as *const libc::sock_fprog,
            )
        };
        if ret < 0 {
            return Err(SeccompError::Load(std::io::Error::last_os_error()));
        }
        if self.flags & FLAG_NEW_LISTENER == 0 {
            return Ok(None);
        }
        // SAFETY: with NEW_LISTENER the kernel returns a new fd that we now own.
        Ok(Some(unsafe { OwnedFd::from_raw_fd(ret as i32) }))
    }

    /// flags (4 bytes, little endian) then the instructions.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.flags.to_le_bytes().to_vec();
        out.extend(&self.bpf);
        out
    }

    /// The inverse of [`Program::to_bytes`]; None for bytes that cannot be a program.
    pub fn from_bytes(bytes: &[u8]) -> Option<Program> {
        let (flags, bpf) = bytes.split_first_chunk::<4>()?;
        let whole = !bpf.is_empty() && bpf.len() % INSTRUCTION == 0;
        let fits = bpf.len() / INSTRUCTION <= usize::from(u16::MAX);
        (whole && fits).then(|| Program {
            bpf: bpf.to_vec(),
            flags: u32::from_le_bytes(*flags),
        })
    }
}

fn memfd() -> Result<std::fs::File, SeccompError> {
    let name = c"kapsel-seccomp-bpf";
    // SAFETY: memfd_create returns a new fd or -1.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(SeccompError::ExportIo(std::io::Error::last_os_error()));
    }
    // SAFETY: a fresh fd we own.
    Ok(std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_and_garbage_is_refused() {
        let p = Program {
            bpf: vec![7; 16],
            flags: FLAG_TSYNC | FLAG_SPEC_ALLOW,
        };
        assert_eq!(Program::from_bytes(&p.to_bytes()), Some(p));
        assert_eq!(Program::from_bytes(&[1, 0, 0]), None);
        assert_eq!(Program::from_bytes(&[0, 0, 0, 0, 1, 2, 3]), None);
        assert_eq!(Program::from_bytes(&[0, 0, 0, 0]), None);
    }
}
