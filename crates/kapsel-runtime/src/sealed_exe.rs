//! Running the runtime from a read-only view of its own binary.
//!
//! Until it execs the container's program, a container's init runs the runtime's binary
//! inside the container; and an image can make init exec the runtime again (a script whose
//! interpreter is `/proc/self/exe`). A container process holding `/proc/PID/exe` of such a
//! process could, once the binary is no longer running, write to it and replace the
//! host's runtime (the CVE-2019-5736 class). So the runtime re-executes itself from a
//! detached read-only bind mount of its binary (open_tree + mount_setattr): the exe every
//! later process sees is on a read-only mount, and writing it fails with EROFS. That costs
//! one execve and no copy; kernels without mount_setattr (before 5.12) get a sealed memfd
//! copy instead, as older runc did. A binary already on a read-only mount, or marked
//! immutable, needs none of this.

use std::ffi::{CString, OsString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use nix::sys::statvfs::{statvfs, FsFlags};

use crate::error::{Result, RuntimeError};

/// Re-executes the current process from a read-only view of its binary, unless it already
/// runs from one (so the re-executed process goes on). Returns only when nothing had to be
/// done.
pub fn ensure() -> Result<()> {
    if runs_read_only() || is_immutable() {
        return Ok(());
    }
    let exe = match read_only_clone() {
        Ok(fd) => fd,
        Err(_) => sealed_copy()?,
    };
    Err(exec_fd(&exe))
}

fn runs_read_only() -> bool {
    statvfs("/proc/self/exe").is_ok_and(|s| s.flags().contains(FsFlags::ST_RDONLY))
}

/// An installed binary marked immutable (`chattr +i`, as `scripts/install.sh` does) cannot
/// be written even by root without CAP_LINUX_IMMUTABLE, which containers do not get: then
/// the re-exec (about 1.5 ms per command) is not needed.
fn is_immutable() -> bool {
    // FS_IOC_GETFLAGS and FS_IMMUTABLE_FL (linux/fs.h).
    const FS_IOC_GETFLAGS: libc::c_ulong = 0x8008_6601;
    const FS_IMMUTABLE_FL: libc::c_long = 0x10;
    let Ok(exe) = std::fs::File::open("/proc/self/exe") else {
        return false;
    };
    let mut flags: libc::c_long = 0;
    // SAFETY: FS_IOC_GETFLAGS writes one long through a valid pointer.
    let ok = unsafe { libc::ioctl(exe.as_raw_fd(), FS_IOC_GETFLAGS, &mut flags) } == 0;
    ok && flags & FS_IMMUTABLE_FL != 0
}

fn sys_error(what: &str) -> RuntimeError {
    RuntimeError::Init(format!("{what}: {}", std::io::Error::last_os_error()))
}

/// A detached, read-only bind mount of /proc/self/exe (it disappears with its last user).
fn read_only_clone() -> Result<OwnedFd> {
    let path = CString::new("/proc/self/exe").expect("no NUL");
    // SAFETY: open_tree takes a path and flags and returns a new fd or -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            path.as_ptr(),
            libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(sys_error("open_tree of the runtime's binary"));
    }
    // SAFETY: a fresh fd we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let attr = libc::mount_attr {
        attr_set: libc::MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let empty = CString::new("").expect("no NUL");
    // SAFETY: mount_setattr reads `size` bytes of a valid mount_attr.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if ret < 0 {
        return Err(sys_error("mount_setattr read-only on the runtime's binary"));
    }
    Ok(fd)
}

/// Fallback: a memfd holding a copy of the binary, sealed against any write.
fn sealed_copy() -> Result<OwnedFd> {
    let name = CString::new("kapsel-runtime").expect("no NUL");
    // SAFETY: memfd_create returns a new fd or -1.
    let fd =
        unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    if fd < 0 {
        return Err(sys_error("memfd_create"));
    }
    // SAFETY: a fresh fd we own.
    let memfd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut src = std::fs::File::open("/proc/self/exe")
        .map_err(|e| RuntimeError::io("open", "/proc/self/exe", e))?;
    let mut dst = std::fs::File::from(
        memfd
            .try_clone()
            .map_err(|e| RuntimeError::io("dup", "memfd", e))?,
    );
    std::io::copy(&mut src, &mut dst).map_err(|e| RuntimeError::io("copy", "/proc/self/exe", e))?;
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: fcntl on an fd we own.
    if unsafe { libc::fcntl(memfd.as_raw_fd(), libc::F_ADD_SEALS, seals) } < 0 {
        return Err(sys_error("sealing the runtime's copy"));
    }
    Ok(memfd)
}

/// execveat(fd, "", AT_EMPTY_PATH) with this process's arguments and environment.
fn exec_fd(fd: &OwnedFd) -> RuntimeError {
    let to_c = |s: OsString| CString::new(s.as_bytes()).unwrap_or_default();
    let args: Vec<CString> = std::env::args_os().map(to_c).collect();
    let env: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k;
            kv.push("=");
            kv.push(v);
            to_c(kv)
        })
        .collect();
    let mut argv: Vec<*mut libc::c_char> = args.iter().map(|a| a.as_ptr().cast_mut()).collect();
    argv.push(std::ptr::null_mut());
    let mut envp: Vec<*mut libc::c_char> = env.iter().map(|e| e.as_ptr().cast_mut()).collect();
    envp.push(std::ptr::null_mut());
    let empty = CString::new("").expect("no NUL");
    // SAFETY: NULL-terminated arrays of valid C strings that outlive the call.
    unsafe {
        libc::execveat(
            fd.as_raw_fd(),
            empty.as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        );
    }
    sys_error("re-executing the runtime from its read-only view")
}
