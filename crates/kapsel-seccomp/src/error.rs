use oci_spec::runtime::{LinuxSeccompAction, LinuxSeccompFilterFlag};

/// libseccomp's own error type, renamed so it does not clash with ours.
pub type LibseccompError = libseccomp::error::SeccompError;

/// Everything that can go wrong building, loading or converting a seccomp filter. Each
/// message names the config field (or profile entry) at fault and how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("exporting the compiled seccomp program: {source}")]
    Export {
        #[source]
        source: LibseccompError,
    },
    #[error("reading the compiled seccomp program: {0}")]
    ExportIo(#[source] std::io::Error),
    #[error("{field}: errnoRet {value} does not fit the 16 bits seccomp returns; use 0..=65535")]
    ErrnoOutOfRange { field: String, value: u32 },

    #[error(
        "{field}: errnoRet is set but {action} returns no errno; \
         remove errnoRet or use SCMP_ACT_ERRNO / SCMP_ACT_TRACE"
    )]
    ErrnoNotSupported {
        field: String,
        action: LinuxSeccompAction,
    },

    #[error("{field}: names is empty; list at least one syscall")]
    NoNames { field: String },

    #[error("{field}: a syscall name is the empty string; remove it")]
    EmptyName { field: String },

    #[error("{field}: args index {index} is out of range; syscall arguments are numbered 0 to 5")]
    ArgIndex { field: String, index: usize },

    #[error(
        "linux.seccomp.defaultAction SCMP_ACT_NOTIFY cannot work: the container would block on \
         the very syscalls that hand the notify fd to the seccomp agent; \
         use SCMP_ACT_NOTIFY on individual syscalls instead"
    )]
    NotifyAsDefault,

    #[error(
        "{field}: SCMP_ACT_NOTIFY on {syscall} would block the container before the notify fd \
         reaches the seccomp agent; use another action for {syscall}"
    )]
    NotifyForbidden { field: String, syscall: String },

    #[error(
        "{field}: SCMP_ACT_NOTIFY needs libseccomp >= 2.5.0 and Linux >= 5.7 \
         (libseccomp API level 6, this host has {api_level}); upgrade or use another action"
    )]
    NotifyUnsupported { field: String, api_level: u32 },

    #[error(
        "{field}: SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath, the seccomp agent's socket; \
         set it or use another action"
    )]
    NotifyWithoutListener { field: String },

    #[error("linux.seccomp.listenerMetadata is set without listenerPath; set listenerPath or remove listenerMetadata")]
    MetadataWithoutListener,

    #[error("linux.seccomp.flags: {flag} is not supported here ({source}); remove the flag")]
    UnsupportedFlag {
        flag: LinuxSeccompFilterFlag,
        source: LibseccompError,
    },

    #[error("seccomp: {what}: {source}")]
    Libseccomp {
        what: String,
        source: LibseccompError,
    },

    #[error(
        "loading the seccomp filter: {0} (without no_new_privs the caller needs \
         CAP_SYS_ADMIN: load it before dropping capabilities, or set process.noNewPrivileges)"
    )]
    Load(#[source] std::io::Error),

    #[error("parsing the Docker seccomp profile: {0}")]
    ProfileJson(#[from] serde_json::Error),

    #[error("seccomp profile has no defaultAction; set one (Docker's default profile uses SCMP_ACT_ERRNO)")]
    ProfileNoDefaultAction,

    #[error("seccomp profile sets both architectures and archMap; keep only one of them")]
    ProfileArchitecturesAndArchMap,

    #[error("seccomp profile syscalls[{index}] sets both name ({name}) and names; move {name} into names")]
    ProfileNameAndNames { index: usize, name: String },

    #[error("reading the host kernel version for minKernel: {0}")]
    KernelVersion(String),
}
