//! kapsel-seccomp against the real kernel: each test forks a child, installs a filter in the
//! child only, and checks from the (unfiltered) parent what the child's syscalls got.

mod actions;
mod arguments;
mod child;
mod docker;
mod notify;
mod program;
mod validation;
