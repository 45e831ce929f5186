//! Forking the runtime's helper processes straight into a container's cgroup (see
//! `kapsel_cgroups::ThreadPlacement` for why this beats moving them afterwards).

use std::os::fd::{AsRawFd, OwnedFd};

use kapsel_cgroups::Cgroup;
use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;
use nix::unistd::{ForkResult, Pid};

use crate::error::{Result, RuntimeError, SysContext};

/// clone3's argument block (linux/sched.h, CLONE_ARGS_SIZE_VER2). Written out because
/// neither `libc` nor `nix` wraps clone3.
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Forks a child that is a member of `cgroup` from its first instruction.
///
/// # Safety
/// As `fork`: the caller must be single-threaded, so the child may run arbitrary code.
pub unsafe fn fork_in_cgroup(cgroup: &Cgroup) -> Result<ForkResult> {
    let placement = cgroup.enter_thread()?;
    let unified = cgroup.unified_dir().map(|d| open_dir(&d)).transpose()?;
    let result = clone_into(unified.as_ref());
    match result {
        Ok(ForkResult::Child) => Ok(ForkResult::Child),
        parent_or_error => {
            placement.leave()?;
            parent_or_error
        }
    }
}

fn open_dir(dir: &std::path::Path) -> Result<OwnedFd> {
    open(
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| format!("open cgroup {}", dir.display()))
}

/// fork(), or clone3 with CLONE_INTO_CGROUP when a cgroup2 directory is given.
fn clone_into(cgroup2: Option<&OwnedFd>) -> Result<ForkResult> {
    let Some(dir) = cgroup2 else {
        // SAFETY: the caller guarantees a single-threaded process.
        return unsafe { nix::unistd::fork() }.ctx(|| "fork");
    };
    let args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: dir.as_raw_fd() as u64,
        ..Default::default()
    };
    // SAFETY: a valid clone_args of the size passed; without CLONE_VM and with no stack the
    // child continues on a copy of this stack, exactly like fork.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match ret {
        0 => Ok(ForkResult::Child),
        pid if pid > 0 => Ok(ForkResult::Parent {
            child: Pid::from_raw(pid as i32),
        }),
        _ => Err(RuntimeError::sys(
            "clone3 into the container's cgroup (needs Linux 5.7 or later)",
            nix::Error::last(),
        )),
    }
}
