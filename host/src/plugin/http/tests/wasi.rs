//! wasi:http's `send_request` hook applies the same grant as the `http` import.

use super::super::wasi::Hooks;
use super::*;
use crate::plugin::io_clock::IoClock;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use wasmtime_wasi_http::{Error, WasiBody, WasiHttpHooks};

fn wasi_request(method: &str, url: &str, body: &'static [u8]) -> http::Request<WasiBody> {
    let body = if body.is_empty() {
        Empty::<Bytes>::new()
            .map_err(|never| match never {})
            .boxed_unsync()
    } else {
        Full::new(Bytes::from_static(body))
            .map_err(|never| match never {})
            .boxed_unsync()
    };
    http::Request::builder()
        .method(method)
        .uri(url)
        .body(body)
        .expect("a request")
}

async fn send_wasi(
    hooks: &mut Hooks,
    request: http::Request<WasiBody>,
) -> Result<(u16, Vec<u8>), Error> {
    let sent = hooks.send_request(request, None, Box::new(async { Ok(()) }));
    let (response, _io) = Box::into_pin(sent).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes().to_vec();
    Ok((status, body))
}

async fn get_wasi(hooks: &mut Hooks, url: &str) -> Result<(u16, Vec<u8>), Error> {
    send_wasi(hooks, wasi_request("GET", url, b"")).await
}

/// A test server, and the hooks of a Store whose plugin has the grant `grant(address)` (none
/// for `None`).
async fn hooked(grant: Option<&str>) -> (SocketAddr, Arc<Seen>, Hooks) {
    let (addr, seen) = server().await;
    let access = grant.map(|g| access(&g.replace("ADDR", &addr.to_string())));
    let io = IoClock::default();
    io.start(Duration::from_secs(60));
    (
        addr,
        seen,
        Hooks::new(access, "test".into(), "enrich".into(), io),
    )
}

#[tokio::test]
async fn wasi_http_goes_through_the_grant() {
    let grant = "allow = [\"http://ADDR/rates/\"]\ncache = { ttl_s = 60 }";
    let (addr, seen, mut hooks) = hooked(Some(grant)).await;
    let url = format!("http://{addr}/rates/USD");
    for _ in 0..2 {
        let (status, body) = get_wasi(&mut hooks, &url).await.expect("an answer");
        assert_eq!(status, 200);
        assert_eq!(body, br#"{"rate": 1.5}"#);
    }
    assert_eq!(seen.count(), 1, "the second answer comes from the cache");
    assert!(matches!(
        get_wasi(&mut hooks, &format!("http://{addr}/rates/../big")).await,
        Err(Error::HttpRequestDenied)
    ));
    assert_eq!(seen.count(), 1);
}

#[tokio::test]
async fn wasi_http_caps_the_response_size() {
    let grant = "allow = [\"http://ADDR/\"]\nmax_response_bytes = 100";
    let (addr, _seen, mut hooks) = hooked(Some(grant)).await;
    for path in ["big", "stream"] {
        assert!(matches!(
            get_wasi(&mut hooks, &format!("http://{addr}/{path}")).await,
            Err(Error::HttpResponseBodySize(_))
        ));
    }
}

#[tokio::test]
async fn without_a_grant_wasi_http_is_denied_and_nothing_leaves() {
    let (addr, seen, mut hooks) = hooked(None).await;
    assert!(matches!(
        get_wasi(&mut hooks, &format!("http://{addr}/rates/USD")).await,
        Err(Error::HttpRequestDenied)
    ));
    assert_eq!(seen.count(), 0);
}

#[tokio::test]
async fn wasi_http_sends_a_body() {
    let grant = "allow = [\"http://ADDR/\"]\nmethods = [\"POST\"]";
    let (addr, _seen, mut hooks) = hooked(Some(grant)).await;
    let mut request = wasi_request("POST", &format!("http://{addr}/echo"), b"payload");
    request
        .headers_mut()
        .insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(7));
    let answer = send_wasi(&mut hooks, request).await.expect("an answer");
    assert_eq!(answer, (200, b"payload".to_vec()));
}
