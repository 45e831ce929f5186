//! Which seccomp filter a container's processes get (the filter itself is built by
//! `kapsel-seccomp`).

use kapsel_seccomp::Filter;
use oci_spec::runtime::LinuxSeccomp;

use crate::error::{Result, RuntimeError};

/// Builds the filter in the runtime, before forking: errors reach the caller of `create`
/// or `exec`, and the forked process only has to load it.
pub fn filter(seccomp: Option<&LinuxSeccomp>) -> Result<Option<Filter>> {
    let Some(seccomp) = seccomp else {
        return Ok(None);
    };
    let filter = kapsel_seccomp::build(seccomp)?;
    if filter.notifies() {
        return Err(RuntimeError::invalid(
            "linux.seccomp",
            "SCMP_ACT_NOTIFY (a seccomp agent at listenerPath) is not supported by \
             kapsel-runtime yet: use another action",
        ));
    }
    Ok(Some(filter))
}
