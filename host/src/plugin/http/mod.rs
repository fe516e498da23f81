//! The `http` grant: what a plugin may request, and the client that sends it.
//!
//! ```text
//! grant.rs    the `[plugin.http]` table: prefixes, methods, limits, cache, secret headers
//! allow.rs    whether a URL is under an allowed prefix, after normalising it
//! access.rs   a plugin's client, limits and cache, shared by its instances: every request goes through it
//! limits.rs   `rate_limit_per_s`
//! cache.rs    the cache of GET responses
//! tls.rs      the roots HTTPS trusts: the system's and `ca_file`
//! denials.rs  the rate-limited log line of denied requests
//! wasi.rs     wasi:http (wstd, componentize-js `fetch`): the same grant, through the same client
//! ```

mod access;
mod allow;
mod cache;
mod denials;
mod grant;
mod limits;
#[cfg(test)]
mod tests;
mod tls;
pub(crate) mod wasi;

pub use access::{HttpAccess, HttpSetupError};
pub use allow::Prefix;
pub use grant::{CacheSettings, HttpGrant, Secret};

use super::bindings::v2::weir::plugin::http::{HttpError, Request, Response};
use super::store::StoreData;

/// One answer per request, in order: through the plugin's grant, by the call's deadline.
pub(crate) async fn send_all(
    data: &mut StoreData,
    requests: Vec<Request>,
) -> Vec<Result<Response, HttpError>> {
    let Some(access) = data.grants.http.clone() else {
        return requests
            .iter()
            .map(|r| Err(no_grant(&data.plugin, &r.method, &r.url)))
            .collect();
    };
    access.send_all(requests, data.io.deadline()).await
}

fn no_grant(plugin: &str, method: &str, url: &str) -> HttpError {
    HttpError::Denied(format!(
        "plugin {plugin} has no http grant (`[plugin.http]` in its [[plugin]] entry): {method} {url}"
    ))
}
