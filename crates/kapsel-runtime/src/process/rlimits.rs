//! `process.rlimits`.

use oci_spec::runtime::{PosixRlimit, PosixRlimitType};

use crate::error::{Result, RuntimeError};

pub fn apply(rlimits: &[PosixRlimit]) -> Result<()> {
    for r in rlimits {
        let resource = resource(r.typ());
        let limit = libc::rlimit {
            rlim_cur: r.soft(),
            rlim_max: r.hard(),
        };
        // SAFETY: setrlimit reads a valid rlimit struct.
        if unsafe { libc::setrlimit(resource, &limit) } != 0 {
            return Err(RuntimeError::Init(format!(
                "setrlimit {:?} soft {} hard {}: {}",
                r.typ(),
                r.soft(),
                r.hard(),
                std::io::Error::last_os_error()
            )));
        }
    }
    Ok(())
}

fn resource(t: PosixRlimitType) -> libc::__rlimit_resource_t {
    use PosixRlimitType as T;
    match t {
        T::RlimitCpu => libc::RLIMIT_CPU,
        T::RlimitFsize => libc::RLIMIT_FSIZE,
        T::RlimitData => libc::RLIMIT_DATA,
        T::RlimitStack => libc::RLIMIT_STACK,
        T::RlimitCore => libc::RLIMIT_CORE,
        T::RlimitRss => libc::RLIMIT_RSS,
        T::RlimitNproc => libc::RLIMIT_NPROC,
        T::RlimitNofile => libc::RLIMIT_NOFILE,
        T::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        T::RlimitAs => libc::RLIMIT_AS,
        T::RlimitLocks => libc::RLIMIT_LOCKS,
        T::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        T::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        T::RlimitNice => libc::RLIMIT_NICE,
        T::RlimitRtprio => libc::RLIMIT_RTPRIO,
        T::RlimitRttime => libc::RLIMIT_RTTIME,
    }
}
