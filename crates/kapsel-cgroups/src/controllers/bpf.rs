//! The v2 device controller: a BPF_PROG_TYPE_CGROUP_DEVICE program, assembled here
//! instruction by instruction from a [`Policy`] and attached to the cgroup with bpf(2).

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use crate::controllers::devices::{Exception, Policy, ACC_MKNOD, ACC_READ, ACC_WRITE};
use crate::error::{CgroupError, Result};
use crate::fs::io_err;

/// One eBPF instruction (struct bpf_insn): opcode, dst and src registers, offset, immediate.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

const LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const ALU64_AND_K: u8 = 0x57; // BPF_ALU64 | BPF_AND | BPF_K
const ALU64_RSH_K: u8 = 0x77; // BPF_ALU64 | BPF_RSH | BPF_K
const ALU64_MOV_K: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const ALU64_MOV_X: u8 = 0xbf; // BPF_ALU64 | BPF_MOV | BPF_X
                              // 32-bit compares, so device numbers are compared as the u32s the context holds.
const JMP32_JNE_K: u8 = 0x56; // BPF_JMP32 | BPF_JNE | BPF_K
const JMP32_JEQ_K: u8 = 0x16; // BPF_JMP32 | BPF_JEQ | BPF_K
const EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

// Registers: R1 holds the context on entry and is reused as scratch once it is read.
const R0: u8 = 0;
const R1: u8 = 1;
const R_TYPE: u8 = 2;
const R_ACCESS: u8 = 3;
const R_MAJOR: u8 = 4;
const R_MINOR: u8 = 5;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: dst | (src << 4),
        off,
        imm,
    }
}

/// The program: returns 1 to allow the access, 0 to deny it. Each exception is one block
/// that returns the opposite of the default when it matches; otherwise the default is
/// returned at the end.
pub(crate) fn program(policy: &Policy) -> Vec<Insn> {
    // struct bpf_cgroup_dev_ctx { u32 access_type (access << 16 | type); u32 major, minor; }
    let mut prog = vec![
        insn(LDX_MEM_W, R_TYPE, R1, 0, 0),
        insn(ALU64_AND_K, R_TYPE, 0, 0, 0xffff),
        insn(LDX_MEM_W, R_ACCESS, R1, 0, 0),
        insn(ALU64_RSH_K, R_ACCESS, 0, 0, 16),
        insn(LDX_MEM_W, R_MAJOR, R1, 4, 0),
        insn(LDX_MEM_W, R_MINOR, R1, 8, 0),
    ];
    for ex in &policy.exceptions {
        prog.extend(exception_block(ex, !policy.default_allow));
    }
    prog.push(insn(ALU64_MOV_K, R0, 0, 0, i32::from(policy.default_allow)));
    prog.push(insn(EXIT, 0, 0, 0, 0));
    prog
}

/// Every check jumps past the end of the block when the access does not match.
fn exception_block(ex: &Exception, allow: bool) -> Vec<Insn> {
    let mut block = vec![insn(JMP32_JNE_K, R_TYPE, 0, 0, ex.kind as i32)];
    // The casts keep the bits: JMP32 compares the low 32 bits.
    if let Some(major) = ex.major {
        block.push(insn(JMP32_JNE_K, R_MAJOR, 0, 0, major as i32));
    }
    if let Some(minor) = ex.minor {
        block.push(insn(JMP32_JNE_K, R_MINOR, 0, 0, minor as i32));
    }
    let all = ACC_MKNOD | ACC_READ | ACC_WRITE;
    // An allowing exception must cover every requested bit, a denying one any of them
    // (what the v1 kernel does for whitelist and blacklist entries).
    let (mask, skip) = if allow {
        (all & !ex.access, JMP32_JNE_K)
    } else {
        (ex.access, JMP32_JEQ_K)
    };
    block.push(insn(ALU64_MOV_X, R1, R_ACCESS, 0, 0));
    block.push(insn(ALU64_AND_K, R1, 0, 0, i32::from(mask)));
    block.push(insn(skip, R1, 0, 0, 0));
    block.push(insn(ALU64_MOV_K, R0, 0, 0, i32::from(allow)));
    block.push(insn(EXIT, 0, 0, 0, 0));
    let len = block.len();
    for (i, ins) in block.iter_mut().enumerate() {
        if ins.code == JMP32_JNE_K || ins.code == JMP32_JEQ_K {
            // Offsets count from the next instruction.
            ins.off = (len - 1 - i) as i16;
        }
    }
    block
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
/// Several programs may be attached and all must allow; nested cgroups can add their own
/// but not override ours.
const BPF_F_ALLOW_MULTI: u32 = 2;
/// More programs than this on one cgroup is not something we set up.
const MAX_ATTACHED: usize = 64;

// Prefixes of union bpf_attr for each command; the kernel zero-fills the rest.
#[repr(C)]
struct LoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
}

#[repr(C)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
}

#[repr(C)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    pad: u32,
}

#[repr(C)]
struct GetFdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<i64> {
    // SAFETY: `attr` is a fully initialized #[repr(C)] prefix of union bpf_attr for `cmd`,
    // valid for the size passed; pointers inside it point to live buffers of the caller.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>(),
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn owned_fd(fd: i64) -> OwnedFd {
    // SAFETY: the kernel just returned this descriptor to us and nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

fn bpf_err(op: &'static str, path: &Path, source: io::Error, log: String) -> CgroupError {
    CgroupError::Bpf {
        op,
        path: path.to_path_buf(),
        source,
        log,
    }
}

/// Replaces the device program(s) on the cgroup directory `dir` with one for `policy`. The
/// new program is attached before the old ones are detached, so the cgroup is never
/// unfiltered in between (while both are attached, both must allow).
pub(crate) fn attach_device_filter(dir: &Path, policy: &Policy) -> Result<()> {
    let cgroup = File::open(dir).map_err(|e| io_err("opening", dir, e))?;
    let old = attached(&cgroup).map_err(|e| bpf_err("BPF_PROG_QUERY", dir, e, String::new()))?;
    let prog = load(&program(policy), dir)?;
    let mut attr = AttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
    };
    bpf(BPF_PROG_ATTACH, &mut attr)
        .map_err(|e| bpf_err("BPF_PROG_ATTACH", dir, e, String::new()))?;
    for id in old {
        detach(&cgroup, id).map_err(|e| bpf_err("BPF_PROG_DETACH", dir, e, String::new()))?;
    }
    Ok(())
}

/// The ids of the device programs attached to the cgroup itself.
pub(crate) fn attached(cgroup: &File) -> io::Result<Vec<u32>> {
    let mut ids = [0u32; MAX_ATTACHED];
    let mut attr = QueryAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        query_flags: 0,
        attach_flags: 0,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: MAX_ATTACHED as u32,
        pad: 0,
    };
    bpf(BPF_PROG_QUERY, &mut attr)?;
    Ok(ids[..attr.prog_cnt as usize].to_vec())
}

fn detach(cgroup: &File, id: u32) -> io::Result<()> {
    let mut get = GetFdAttr {
        prog_id: id,
        next_id: 0,
        open_flags: 0,
    };
    let prog = match bpf(BPF_PROG_GET_FD_BY_ID, &mut get) {
        Ok(fd) => owned_fd(fd),
        // Already gone: detached by someone else meanwhile.
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut attr = AttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: 0,
    };
    bpf(BPF_PROG_DETACH, &mut attr).map(drop)
}

/// Loads the program; when the kernel refuses it, loads again with the verifier's log on so
/// the error can say why.
fn load(insns: &[Insn], dir: &Path) -> Result<OwnedFd> {
    load_with_log(insns, &mut []).map_err(|first| {
        let mut log = vec![0u8; 1 << 16];
        let err = load_with_log(insns, &mut log).err().unwrap_or(first);
        let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
        let log = format!("\n{}", String::from_utf8_lossy(&log[..end]).trim_end());
        bpf_err("BPF_PROG_LOAD", dir, err, log)
    })
}

fn load_with_log(insns: &[Insn], log: &mut [u8]) -> io::Result<OwnedFd> {
    // No GPL-only helpers are called, so any license string is accepted.
    let license = b"Apache-2.0\0";
    let mut name = [0u8; 16];
    name[..10].copy_from_slice(b"kapsel_dev");
    let mut attr = LoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: u32::from(!log.is_empty()),
        log_size: log.len() as u32,
        // The kernel rejects a buffer without a log level, even an empty one.
        log_buf: if log.is_empty() {
            0
        } else {
            log.as_mut_ptr() as u64
        },
        kern_version: 0,
        prog_flags: 0,
        prog_name: name,
    };
    bpf(BPF_PROG_LOAD, &mut attr).map(owned_fd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::devices::Kind;

    fn null_only() -> Policy {
        Policy {
            default_allow: false,
            exceptions: vec![Exception {
                kind: Kind::Char,
                major: Some(1),
                minor: Some(3),
                access: ACC_READ | ACC_WRITE | ACC_MKNOD,
            }],
        }
    }

    #[test]
    fn block_jumps_land_after_it() {
        let prog = program(&null_only());
        // 6 prologue + 3 device checks + 5 access/verdict + 2 default.
        assert_eq!(prog.len(), 16);
        assert_eq!(prog[6].off, 7);
        assert_eq!(prog[8].off, 5);
        assert_eq!(prog[11].off, 2);
        assert_eq!(prog[12].imm, 1);
        assert_eq!(prog[14].imm, 0);
    }

    /// Needs root and a cgroup2 mount; skipped otherwise. Loads and attaches a program
    /// allowing only /dev/null and checks that a process in the cgroup can open /dev/null
    /// but not /dev/zero, and that attaching again replaces the program.
    #[test]
    fn filters_devices_on_a_real_cgroup() {
        use std::io::{Read, Write};
        use std::process::{Command, Stdio};

        let Ok(h) = crate::Hierarchy::detect() else {
            return;
        };
        let Some(mount) = h.unified_mount() else {
            return;
        };
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let dir = mount.join(format!("kapsel-bpf-unit-{}", std::process::id()));
        std::fs::create_dir(&dir).unwrap();
        let result = std::panic::catch_unwind(|| {
            attach_device_filter(&dir, &null_only()).unwrap();
            attach_device_filter(&dir, &null_only()).unwrap();
            let cgroup = File::open(&dir).unwrap();
            assert_eq!(attached(&cgroup).unwrap().len(), 1);

            let script =
                "read _; (: </dev/zero) 2>/dev/null && echo zero; : </dev/null && echo null";
            let mut child = Command::new("/bin/sh")
                .args(["-c", script])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            std::fs::write(dir.join("cgroup.procs"), child.id().to_string()).unwrap();
            child.stdin.take().unwrap().write_all(b"\n").unwrap();
            let mut out = String::new();
            child
                .stdout
                .take()
                .unwrap()
                .read_to_string(&mut out)
                .unwrap();
            child.wait().unwrap();
            assert_eq!(out, "null\n");
        });
        std::fs::remove_dir(&dir).unwrap();
        result.unwrap();
    }
}
