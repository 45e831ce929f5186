use std::path::PathBuf;

pub type Result<T> = std::result::Result<T, RuntimeError>;

/// Everything that can go wrong in the runtime. Messages name the thing involved and, where
/// there is one, the fix.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("container id {0:?} is invalid: use letters, digits, '_', '-', '.' and '+' (no '/' or '..')")]
    InvalidId(String),
    #[error("container {0:?} already exists: choose another id or delete it first")]
    AlreadyExists(String),
    #[error("container {0:?} does not exist")]
    NotFound(String),
    #[error("reading {path}: {source}")]
    ConfigRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config.json at {path} is malformed: {reason}")]
    ConfigMalformed { path: PathBuf, reason: String },
    #[error("config.json is invalid: {field}: {reason}")]
    ConfigInvalid { field: String, reason: String },
    #[error("container {id:?} is {status}: {action} needs it to be {wanted}")]
    WrongState {
        id: String,
        status: String,
        action: &'static str,
        wanted: &'static str,
    },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{op}: {source}")]
    Sys {
        op: String,
        #[source]
        source: nix::Error,
    },
    #[error(transparent)]
    Cgroup(#[from] kapsel_cgroups::CgroupError),
    #[error("linux.seccomp: {0}")]
    Seccomp(#[from] kapsel_seccomp::SeccompError),
    #[error("{kind} hook {path}: {reason}")]
    Hook {
        kind: &'static str,
        path: PathBuf,
        reason: String,
    },
    /// Raised inside the container's processes; reaches the user wrapped in `Setup`.
    #[error("{0}")]
    Init(String),
    #[error("container setup failed: {0}")]
    Setup(String),
    #[error("{0}")]
    Usage(String),
}

impl RuntimeError {
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        RuntimeError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub fn sys(op: impl Into<String>, source: nix::Error) -> Self {
        RuntimeError::Sys {
            op: op.into(),
            source,
        }
    }

    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        RuntimeError::ConfigInvalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Adds context to `nix` results in one call: `mount(...).ctx(|| format!("mount {dest}"))`.
pub trait SysContext<T> {
    fn ctx<S: Into<String>>(self, op: impl FnOnce() -> S) -> Result<T>;
}

impl<T> SysContext<T> for std::result::Result<T, nix::Error> {
    fn ctx<S: Into<String>>(self, op: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| RuntimeError::sys(op(), e))
    }
}
