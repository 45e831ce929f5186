//! Seccomp for kapsel containers.
//!
//! - [`build`] / [`install`]: config.json's `linux.seccomp` (runtime spec,
//!   config-linux.md#seccomp) as a libseccomp filter. The runtime builds it at `create` to
//!   report mistakes early, and installs it in the container's init just before exec.
//! - [`from_docker_profile`] / [`docker_default`]: a Docker seccomp profile, with its
//!   capability, architecture and kernel conditions resolved, as the `linux.seccomp` that an
//!   engine writes into config.json (what moby does for `docker run`).
//!
//! The filter leaves no_new_privs alone: the runtime sets it when `process.noNewPrivileges`
//! asks, and otherwise must install the filter while it still holds CAP_SYS_ADMIN.

mod error;
mod filter;
mod host;
mod profile;
mod program;

use std::os::fd::OwnedFd;

use oci_spec::runtime::LinuxSeccomp;

pub use error::{LibseccompError, SeccompError};
pub use filter::Filter;
pub use program::Program;

/// The version of the libseccomp library in use (compiled programs depend on it).
pub fn libseccomp_version() -> String {
    libseccomp::ScmpVersion::current()
        .map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro))
        .unwrap_or_default()
}

/// Docker's default capability set (what `docker run` grants without --cap-add/--cap-drop),
/// the set Docker's profile is usually converted for.
pub const DOCKER_DEFAULT_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Docker's default profile (moby profiles/seccomp/default.json).
const DOCKER_DEFAULT_PROFILE: &str = include_str!("../profiles/docker-default.json");

/// Builds the filter config.json describes, compiles it and loads it into the calling
/// thread (every thread with SECCOMP_FILTER_FLAG_TSYNC): the same path the runtime takes
/// with its cached programs. Returns the notify fd when a rule uses SCMP_ACT_NOTIFY, for
/// the seccomp agent at `listenerPath`.
pub fn install(seccomp: &LinuxSeccomp) -> Result<Option<OwnedFd>, SeccompError> {
    build(seccomp)?.compile()?.load()
}

/// Builds the filter without loading it, so the runtime can validate `linux.seccomp` at
/// create time and report errors before the container exists.
pub fn build(seccomp: &LinuxSeccomp) -> Result<Filter, SeccompError> {
    filter::build(seccomp)
}

/// Converts a Docker seccomp profile for a container whose capability (bounding) set is
/// `capabilities` (names as in config.json, e.g. "CAP_SYS_ADMIN"), on this host.
pub fn from_docker_profile(
    profile_json: &str,
    capabilities: &[String],
) -> Result<LinuxSeccomp, SeccompError> {
    profile::convert(profile_json, capabilities, &host::Host::current()?)
}

/// Docker's default profile converted for `capabilities`, as [`from_docker_profile`] does.
pub fn docker_default(capabilities: &[String]) -> Result<LinuxSeccomp, SeccompError> {
    from_docker_profile(DOCKER_DEFAULT_PROFILE, capabilities)
}
