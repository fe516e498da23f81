//! The process exit codes of every `weir` command, and of `weir run` as a service.

pub const OK: i32 = 0;
/// Invalid input (configuration, pattern) or a pipeline that failed.
pub const FAILED: i32 = 1;
/// The command could not run at all (bad arguments, settings).
pub const USAGE: i32 = 2;
