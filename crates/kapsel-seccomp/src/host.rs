//! What a Docker profile's `includes`/`excludes` are matched against besides capabilities:
//! the host's architecture and kernel version.

use oci_spec::runtime::Arch;
use serde::{Deserialize, Deserializer};

use crate::error::SeccompError;

/// A kernel version as Docker compares them: only "<kernel>.<major>", so 4.8.0-generic and
/// 4.8-rc5 are both 4.8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct KernelVersion {
    pub kernel: u32,
    pub major: u32,
}

impl KernelVersion {
    /// Parses a `uname -r` release such as "6.1.0-18-amd64" or "3.12-1-amd64".
    pub fn from_release(release: &str) -> Option<Self> {
        let (kernel, rest) = release.split_once('.')?;
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        Some(Self {
            kernel: kernel.parse().ok()?,
            major: rest[..digits].parse().ok()?,
        })
    }

    /// Parses a profile's `minKernel` the way Docker does: exactly "<kernel>.<major>", each
    /// 0-255 and not both 0. The empty string is no constraint (0.0), as in Docker.
    fn from_min_kernel(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Ok(Self {
                kernel: 0,
                major: 0,
            });
        }
        let invalid =
            || format!("invalid minKernel {text:?}: expected \"<kernel>.<major>\", e.g. \"4.8\"");
        let (kernel, major) = text.split_once('.').ok_or_else(invalid)?;
        let version = Self {
            kernel: kernel.parse::<u8>().map_err(|_| invalid())?.into(),
            major: major.parse::<u8>().map_err(|_| invalid())?.into(),
        };
        if version.kernel == 0 && version.major == 0 {
            return Err(format!(
                "invalid minKernel {text:?}: the version cannot be 0.0"
            ));
        }
        Ok(version)
    }
}

impl<'de> Deserialize<'de> for KernelVersion {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::from_min_kernel(&text).map_err(serde::de::Error::custom)
    }
}

/// The host a profile is converted for.
#[derive(Debug, Clone)]
pub struct Host {
    /// The architecture as the profile's `arches` conditions name it: Go's names ("amd64",
    /// "arm64", ...), empty on an architecture Docker does not know.
    pub arch: &'static str,
    /// The architecture as `archMap` names it.
    pub seccomp_arch: Option<Arch>,
    pub kernel: KernelVersion,
}

impl Host {
    /// The machine this runs on.
    pub fn current() -> Result<Self, SeccompError> {
        let (arch, seccomp_arch) = native_arch();
        Ok(Self {
            arch,
            seccomp_arch,
            kernel: running_kernel()?,
        })
    }
}

fn running_kernel() -> Result<KernelVersion, SeccompError> {
    let uts = nix::sys::utsname::uname().map_err(|e| SeccompError::KernelVersion(e.to_string()))?;
    let release = uts.release().to_string_lossy();
    KernelVersion::from_release(&release)
        .ok_or_else(|| SeccompError::KernelVersion(format!("cannot parse release {release:?}")))
}

/// The architectures Docker maps (moby's goToNative and nativeToSeccomp tables).
fn native_arch() -> (&'static str, Option<Arch>) {
    if cfg!(target_arch = "x86_64") {
        ("amd64", Some(Arch::ScmpArchX86_64))
    } else if cfg!(target_arch = "x86") {
        ("x86", Some(Arch::ScmpArchX86))
    } else if cfg!(target_arch = "aarch64") {
        ("arm64", Some(Arch::ScmpArchAarch64))
    } else if cfg!(target_arch = "arm") {
        ("arm", Some(Arch::ScmpArchArm))
    } else if cfg!(all(target_arch = "powerpc64", target_endian = "little")) {
        ("ppc64le", Some(Arch::ScmpArchPpc64le))
    } else if cfg!(target_arch = "powerpc64") {
        ("ppc64", Some(Arch::ScmpArchPpc64))
    } else if cfg!(target_arch = "s390x") {
        ("s390x", Some(Arch::ScmpArchS390x))
    } else if cfg!(target_arch = "riscv64") {
        ("riscv64", Some(Arch::ScmpArchRiscv64))
    } else if cfg!(target_arch = "loongarch64") {
        ("loong64", Some(Arch::ScmpArchLoongarch64))
    } else {
        ("", None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(kernel: u32, major: u32) -> KernelVersion {
        KernelVersion { kernel, major }
    }

    #[test]
    fn releases_keep_kernel_and_major_only() {
        assert_eq!(
            KernelVersion::from_release("6.18.44-fc-v769"),
            Some(v(6, 18))
        );
        assert_eq!(KernelVersion::from_release("3.12-1-amd64"), Some(v(3, 12)));
        assert_eq!(KernelVersion::from_release("4.8"), Some(v(4, 8)));
        assert_eq!(KernelVersion::from_release("5.10-rc5"), Some(v(5, 10)));
        assert_eq!(KernelVersion::from_release("garbage"), None);
        assert_eq!(KernelVersion::from_release("x.1"), None);
    }

    #[test]
    fn min_kernel_is_kernel_dot_major() {
        assert_eq!(KernelVersion::from_min_kernel("4.8"), Ok(v(4, 8)));
        assert_eq!(KernelVersion::from_min_kernel(""), Ok(v(0, 0)));
        for bad in ["4", "4.8.1", "0.0", "a.b", "4.256", "-1.2", "4."] {
            assert!(
                KernelVersion::from_min_kernel(bad).is_err(),
                "{bad} accepted"
            );
        }
    }

    #[test]
    fn versions_order_by_kernel_then_major() {
        assert!(v(4, 8) < v(4, 10));
        assert!(v(4, 20) < v(5, 0));
        assert!(v(6, 18) >= v(4, 8));
    }

    #[test]
    fn current_host_is_known() {
        let host = Host::current().unwrap();
        assert!(host.kernel >= v(3, 0));
        if cfg!(target_arch = "x86_64") {
            assert_eq!(host.arch, "amd64");
        }
    }
}
