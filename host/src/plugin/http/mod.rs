//! The `http` grant: what a plugin may request, and the client that sends it.

use super::bindings::v2::weir::plugin::http::{HttpError, Request, Response};
use super::store::StoreData;

/// A plugin's `http` grant, its client, limits and cache: shared by its instances.
pub struct HttpAccess {}

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
