//! What each `weir` subcommand does; `main.rs` only parses arguments and calls these. Each
//! returns the process exit code.

pub mod admin_client;
pub mod check;
pub mod connect;
pub mod dlq;
pub mod dry_run;
pub mod pattern;
pub mod plugin;
pub mod run;
pub mod tap;
pub mod top;

/// Exit codes shared by the commands.
pub mod exit {
    pub const OK: i32 = 0;
    /// Invalid input (configuration, pattern) or a pipeline that failed.
    pub const FAILED: i32 = 1;
    /// The command could not run at all (bad arguments, settings).
    pub const USAGE: i32 = 2;
}
