//! The `http` grant: what a plugin may request, and the client that sends it.
//!
//! ```text
//! grant.rs    the `[plugin.http]` table: prefixes, methods, limits, cache, secret headers
//! allow.rs    whether a URL is under an allowed prefix, after normalising it
//! access.rs   a plugin's client, limits and cache, shared by its instances: every request goes through it
//! cache.rs    the cache of GET responses
//! denials.rs  the rate-limited log line of denied requests
//! error.rs    why a plugin's HTTP access could not be set up
//! wasi.rs     wasi:http (wstd, componentize-js `fetch`): the same grant, through the same client
//! ```

mod access;
mod allow;
mod cache;
mod denials;
mod error;
mod grant;
#[cfg(test)]
mod tests;
pub(crate) mod wasi;

pub(crate) use access::count;
pub use access::{HttpAccess, HttpSetupError};
pub use allow::Prefix;
pub(crate) use grant::RawGrant;
pub use grant::{CacheSettings, HttpGrant};
