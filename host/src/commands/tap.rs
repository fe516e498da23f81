//! `weir tap PIPELINE [--stage S] [--limit N]`: prints events passing one stage of a running
//! pipeline, one JSON line each, as they pass (`GET /pipelines/{name}/tap`). Like `vector tap`.
//! Exit 0 after `--limit` events (or when the server ends the stream), 1 if the pipeline or
//! stage is unknown or the admin API unreachable.

use super::admin_client::AdminClient;
use crate::config::HostSettings;
use crate::exit;
use std::io::{BufRead, BufReader, Write};

pub struct TapArgs {
    pub pipeline: String,
    pub stage: String,
    pub limit: Option<u64>,
    pub admin: Option<String>,
}

pub fn tap(args: &TapArgs, settings: &HostSettings) -> i32 {
    let client = AdminClient::new(args.admin.as_deref(), settings, None);
    let mut path = format!(
        "/pipelines/{}/tap?stage={}",
        encode(&args.pipeline),
        encode(&args.stage)
    );
    if let Some(n) = args.limit {
        path.push_str(&format!("&limit={n}"));
    }
    let mut response = match client.get(&path) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::FAILED;
        }
    };
    if !response.status().is_success() {
        let status = response.status();
        let body = response.body_mut().read_to_string().unwrap_or_default();
        eprintln!("error: {status}: {}", body.trim());
        return exit::FAILED;
    }
    let reader = BufReader::new(response.into_body().into_reader());
    let mut out = std::io::stdout().lock();
    for line in reader.lines() {
        let Ok(line) = line else { break };
        // A reader gone (`| head`) ends the tap.
        if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
            break;
        }
    }
    exit::OK
}

/// Percent-encodes a query or path value (pipeline names are plain; stages hold a `:`).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
