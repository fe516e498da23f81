//! The `http` grant: what a plugin may request, and the client that sends it.

use super::bindings::v2::weir::plugin::http::{HttpError, Request, Response};
use super::store::StoreData;

/// A plugin's `http` grant, its client, limits and cache: shared by its instances.
pub struct HttpAccess {}

impl HttpAccess {
    pub fn new(
        _grant: &HttpGrant,
        _pipeline: &str,
        _plugin: &str,
    ) -> Result<std::sync::Arc<HttpAccess>, String> {
        Ok(std::sync::Arc::new(HttpAccess {}))
    }
}

/// One answer per request, in order.
pub(crate) async fn send_all(
    data: &mut StoreData,
    requests: Vec<Request>,
) -> Vec<Result<Response, HttpError>> {
    requests
        .iter()
        .map(|r| {
            Err(HttpError::Denied(format!(
                "plugin {} has no http grant: {} {}",
                data.plugin, r.method, r.url
            )))
        })
        .collect()
}

/// `[plugin.http]`.
#[derive(Debug, Clone)]
pub struct HttpGrant {}

impl HttpGrant {
    pub fn parse(
        src: &crate::config::SourceText<'_>,
        at: &crate::config::KeyPath,
        _table: toml::Table,
    ) -> Result<Self, Vec<crate::config::ConfigError>> {
        Err(vec![src.error(at, "HTTP grants are being built")])
    }
}
