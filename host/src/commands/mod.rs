//! What each `weir` subcommand does; `main.rs` only parses arguments and calls these. Each
//! returns the process exit code.

pub(crate) mod admin_client;
pub mod check;
pub(crate) mod connect;
pub mod dlq;
pub mod dry_run;
pub(crate) mod evaluate;
pub mod new;
pub mod pattern;
pub mod plugin;
mod plugin_grants;
pub mod run;
pub mod schema;
pub mod tap;
pub mod test;
pub mod top;
