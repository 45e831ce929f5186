use std::path::PathBuf;

pub type Result<T> = std::result::Result<T, CgroupError>;

/// Errors name the cgroup file or directory involved, so a caller can see what failed.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("reading the host's cgroup mounts from /proc/self/mountinfo: {0}")]
    Mountinfo(#[source] std::io::Error),
    #[error("no cgroup hierarchy is mounted on this host (looked in /proc/self/mountinfo)")]
    NoHierarchy,
    #[error("cgroup path {0:?} is invalid: it must not contain '..'")]
    InvalidPath(String),
    #[error(
        "cgroup path {0:?} names the root of the hierarchies; a container needs its own cgroup"
    )]
    RootPath(String),
    #[error("/proc/self/cgroup has no entry for the {0} hierarchy, so a relative cgroup path cannot be resolved in it")]
    OwnCgroup(String),
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing {value:?} to {path}: {source}")]
    Write {
        path: PathBuf,
        value: String,
        #[source]
        source: std::io::Error,
    },
    #[error("unexpected content in {path}: {content:?}")]
    Parse { path: PathBuf, content: String },
    /// Raised after a failed freeze has been undone (thawed) again.
    #[error("{path} did not reach {want} in time (still {state:?})")]
    FreezeTimeout {
        path: PathBuf,
        want: &'static str,
        state: crate::FreezerState,
    },
    #[error("bpf({op}) for the v2 devices controller on {path}: {source}{log}")]
    Bpf {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
        /// The verifier's log when loading failed, empty otherwise.
        log: String,
    },
    #[error("{what} is not supported on this host: {why}")]
    Unsupported { what: String, why: String },
    #[error("invalid value for {what}: {why}")]
    InvalidValue { what: String, why: String },
}
