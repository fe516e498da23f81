//! wasi:http for plugins whose toolchain speaks it (Rust with wstd, JavaScript's `fetch` in
//! componentize-js): wasmtime-wasi-http turns the guest's outgoing request into an
//! `http::Request`, and the hook here sends it through the plugin's [`HttpAccess`], so the grant,
//! its limits, secret headers and cache hold exactly as for the `http` import. A plugin without
//! an `http` grant gets `HTTP-request-denied`, and nothing leaves weir.
//!
//! The response body is read whole by [`HttpAccess`] (so `max_response_bytes` holds) and handed
//! to the guest from memory.

use super::super::bindings::v2::weir::plugin::http::{HttpError, Request};
use super::super::io_clock::IoClock;
use super::HttpAccess;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use std::future::Future;
use std::sync::Arc;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// The wasi:http hooks of one Store: its plugin's access and the clock of the call under way.
pub(crate) struct Hooks {
    access: Option<Arc<HttpAccess>>,
    pipeline: Arc<str>,
    plugin: Arc<str>,
    io: IoClock,
}

impl Hooks {
    pub(crate) fn new(
        access: Option<Arc<HttpAccess>>,
        pipeline: Arc<str>,
        plugin: Arc<str>,
        io: IoClock,
    ) -> Hooks {
        Hooks {
            access,
            pipeline,
            plugin,
            io,
        }
    }
}

type Sent = Result<
    (
        http::Response<WasiBody>,
        Box<dyn Future<Output = Result<(), Error>> + Send>,
    ),
    Error,
>;

impl WasiHttpHooks for Hooks {
    /// The Host header comes from the URL the grant checked, set by the HTTP client.
    fn set_host_header(&mut self) -> bool {
        false
    }

    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        _options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<dyn Future<Output = Sent> + Send> {
        let access = self.access.clone();
        let (pipeline, plugin) = (self.pipeline.clone(), self.plugin.clone());
        let deadline = self.io.deadline();
        Box::new(async move {
            let (parts, body) = request.into_parts();
            let Some(access) = access else {
                super::access::count(&pipeline, &plugin, "denied");
                return Err(Error::HttpRequestDenied);
            };
            let body = body.collect().await?.to_bytes();
            // Content-Length among them is dropped by HttpAccess: the client sends the body's own.
            let headers = super::access::header_pairs(&parts.headers);
            let request = Request {
                method: parts.method.to_string(),
                url: parts.uri.to_string(),
                headers,
                body: body.to_vec(),
            };
            let response = access
                .send_one(request, deadline)
                .await
                .map_err(error_code)?;
            let mut builder = http::Response::builder().status(response.status);
            for (name, value) in &response.headers {
                builder = builder.header(name, value);
            }
            let body = Full::new(Bytes::from(response.body))
                .map_err(|never| match never {})
                .boxed_unsync();
            let response = builder
                .body(body)
                .map_err(|e| Error::InternalError(Some(e.to_string())))?;
            let done: Box<dyn Future<Output = Result<(), Error>> + Send> =
                Box::new(async { Ok(()) });
            Ok((response, done))
        })
    }
}

/// The wasi:http error code closest to each of the `http` import's errors.
fn error_code(error: HttpError) -> Error {
    match error {
        HttpError::Denied(_) => Error::HttpRequestDenied,
        HttpError::Invalid(why) => Error::InternalError(Some(why)),
        HttpError::TooLarge(_) => Error::HttpResponseBodySize(None),
        HttpError::Timeout(_) => Error::HttpResponseTimeout,
        HttpError::Unavailable(_) => Error::DestinationUnavailable,
    }
}
