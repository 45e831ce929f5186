//! kapsel-runtime: an OCI runtime (runtime-spec 1.2) as a library. The `kapsel-runtime`
//! binary is a thin runc-compatible command line over [`ops`]; the engine calls the same
//! operations in-process.

mod cgroup;
mod channel;
mod console;
pub mod error;
mod fsutil;
mod hooks;
mod init;
mod namespaces;
pub mod ops;
mod process;
mod rootfs;
pub mod sealed_exe;
mod seccomp;
mod spawn;
pub mod spec;
pub mod state;
mod terminal;

pub use error::{Result, RuntimeError};
pub use state::{Container, StateRoot, Status};
