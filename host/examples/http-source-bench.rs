//! The HTTP source's benchmark helpers (scripts/bench-http-source.sh), with the same library as
//! weir's listener (hyper):
//!
//! - `serve PORT FILE`: the baseline, a plain hyper server that appends each POST's body to
//!   FILE and fsyncs it before answering 200: the least a server must do to answer only once a
//!   request is durable.
//! - `load PORT EVENTS CONNECTIONS PER_REQUEST`: posts EVENTS ~400-byte order events over
//!   CONNECTIONS keep-alive connections, PER_REQUEST events a request (one JSON value, or a JSON
//!   array), each request sent again until it is answered 200. Prints the Unix time in
//!   milliseconds it started at, then the rate of answered events.
//! - `wait FILE LINES START_MS`: waits until FILE holds LINES lines, and prints the rate from
//!   START_MS to then.

#[path = "common/orders.rs"]
mod orders;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| -> &str {
        args.get(i).map(String::as_str).unwrap_or_else(|| {
            eprintln!("usage: http-source-bench serve|load|wait ...");
            std::process::exit(2)
        })
    };
    match arg(0) {
        "serve" => serve(arg(1).parse().expect("PORT"), arg(2)).await,
        "load" => {
            load(
                arg(1).parse().expect("PORT"),
                arg(2).parse().expect("EVENTS"),
                arg(3).parse().expect("CONNECTIONS"),
                arg(4).parse().expect("PER_REQUEST"),
            )
            .await
        }
        "wait" => wait(
            arg(1),
            arg(2).parse().expect("LINES"),
            arg(3).parse().expect("START_MS"),
        ),
        other => panic!("unknown command {other}"),
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

async fn serve(port: u16, path: &str) {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open output");
    let file = Arc::new(Mutex::new(file));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind");
    loop {
        let (stream, _) = listener.accept().await.expect("accept");
        let _ = stream.set_nodelay(true);
        let file = file.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let file = file.clone();
                    async move {
                        let body = req.into_body().collect().await?.to_bytes();
                        tokio::task::spawn_blocking(move || {
                            let mut f = file.lock().unwrap();
                            f.write_all(&body)?;
                            if !body.ends_with(b"\n") {
                                f.write_all(b"\n")?;
                            }
                            f.sync_data()
                        })
                        .await
                        .expect("writer")
                        .expect("write");
                        Ok::<_, hyper::Error>(hyper::Response::new(Full::new(Bytes::from_static(
                            b"{}",
                        ))))
                    }
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn load(port: u16, events: u64, connections: u64, per: u64) {
    let requests = events.div_ceil(per);
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    println!("{}", now_ms());
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let next = next.clone();
            tokio::spawn(async move {
                let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .expect("connect");
                let _ = stream.set_nodelay(true);
                let (mut sender, conn) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream))
                        .await
                        .expect("handshake");
                tokio::spawn(conn);
                loop {
                    let r = next.fetch_add(1, Relaxed);
                    if r >= requests {
                        break;
                    }
                    let first = r * per;
                    let last = (first + per).min(events);
                    let items: Vec<String> = (first..last).map(|n| orders::order(n).1).collect();
                    let body = if per == 1 {
                        items.concat()
                    } else {
                        format!("[{}]", items.join(","))
                    };
                    let body = Bytes::from(body);
                    loop {
                        let req = hyper::Request::post("/events")
                            .header("host", "127.0.0.1")
                            .header("content-type", "application/json")
                            .body(Full::new(body.clone()))
                            .expect("request");
                        sender.ready().await.expect("connection");
                        let answer = sender.send_request(req).await.expect("answer");
                        let ok = answer.status() == 200;
                        let _ = answer.into_body().collect().await;
                        if ok {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("client");
    }
    let s = start.elapsed().as_secs_f64();
    println!("{:.0}", events as f64 / s);
}

fn wait(path: &str, lines: u64, start_ms: u64) {
    loop {
        let n = std::fs::read(path)
            .map(|b| memchr::memchr_iter(b'\n', &b).count() as u64)
            .unwrap_or(0);
        if n >= lines {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let s = (now_ms() - start_ms) as f64 / 1000.0;
    println!("{:.0}", lines as f64 / s);
}
