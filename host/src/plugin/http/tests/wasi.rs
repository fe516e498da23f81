//! wasi:http's `send_request` hook applies the same grant as the `http` import.

use super::super::wasi::Hooks;
use super::*;
use crate::plugin::io_clock::IoClock;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use wasmtime_wasi_http::{Error, WasiBody, WasiHttpHooks};

fn wasi_get(url: &str) -> http::Request<WasiBody> {
    let body = Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed_unsync();
    http::Request::get(url).body(body).expect("a request")
}

async fn send_wasi(hooks: &mut Hooks, url: &str) -> Result<(u16, Vec<u8>), Error> {
    let sent = hooks.send_request(wasi_get(url), None, Box::new(async { Ok(()) }));
    let (response, _io) = Box::into_pin(sent).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes().to_vec();
    Ok((status, body))
}

fn hooks(access: Option<Arc<HttpAccess>>) -> Hooks {
    let io = IoClock::default();
    io.start(Duration::from_secs(60));
    Hooks::new(access, "enrich".into(), io)
}

#[tokio::test]
async fn wasi_http_goes_through_the_grant() {
    let (addr, seen) = server().await;
    let access = access(&format!(
        "allow = [\"http://{addr}/rates/\"]\nmax_response_bytes = 100\n\
         cache = {{ ttl_s = 60 }}"
    ));
    let mut hooks = hooks(Some(access));
    let url = format!("http://{addr}/rates/USD");
    for _ in 0..2 {
        let (status, body) = send_wasi(&mut hooks, &url).await.expect("an answer");
        assert_eq!(status, 200);
        assert_eq!(body, br#"{"rate": 1.5}"#);
    }
    assert_eq!(seen.count(), 1, "the second answer comes from the cache");
    assert!(matches!(
        send_wasi(&mut hooks, &format!("http://{addr}/rates/../big")).await,
        Err(Error::HttpRequestDenied)
    ));
    assert_eq!(seen.count(), 1);
}

#[tokio::test]
async fn wasi_http_caps_the_response_size() {
    let (addr, _seen) = server().await;
    let access = access(&format!(
        "allow = [\"http://{addr}/\"]\nmax_response_bytes = 100"
    ));
    let mut hooks = hooks(Some(access));
    for path in ["big", "stream"] {
        assert!(matches!(
            send_wasi(&mut hooks, &format!("http://{addr}/{path}")).await,
            Err(Error::HttpResponseBodySize(_))
        ));
    }
}

#[tokio::test]
async fn without_a_grant_wasi_http_is_denied_and_nothing_leaves() {
    let (addr, seen) = server().await;
    let mut hooks = hooks(None);
    assert!(matches!(
        send_wasi(&mut hooks, &format!("http://{addr}/rates/USD")).await,
        Err(Error::HttpRequestDenied)
    ));
    assert_eq!(seen.count(), 0);
}
