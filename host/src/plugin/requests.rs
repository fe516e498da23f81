//! The `http` import: a plugin's requests, sent through its `http` grant (http/) by the call's
//! deadline (io_clock.rs); without a grant, each is denied.

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
            .map(|r| {
                super::http::count(&data.pipeline, &data.plugin, "denied");
                Err(no_grant(&data.plugin, &r.method, &r.url))
            })
            .collect();
    };
    access.send_all(requests, data.io.deadline()).await
}

fn no_grant(plugin: &str, method: &str, url: &str) -> HttpError {
    HttpError::Denied(format!(
        "plugin {plugin} has no http grant (`[plugin.http]` in its [[plugin]] entry): {method} {url}"
    ))
}
