//! The client side of the admin API, for the operator commands (`weir tap`, `weir top`): where
//! the server is (`--admin`, else the host settings' `admin.address`) and its token
//! (`admin.token`, e.g. WEIR_ADMIN__TOKEN).

use crate::config::HostSettings;
use std::time::Duration;

pub struct AdminClient {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

/// A response: status code and body reader.
pub type Response = ureq::http::Response<ureq::Body>;

impl AdminClient {
    /// `admin`: `host:port` or `http://host:port`; None uses the settings' address (a wildcard
    /// listen address is reached on loopback).
    pub fn new(admin: Option<&str>, settings: &HostSettings, timeout: Option<Duration>) -> Self {
        let address = admin.unwrap_or(&settings.admin.address);
        let address = address
            .replace("0.0.0.0:", "127.0.0.1:")
            .replace("[::]:", "[::1]:");
        let base = match address.starts_with("http://") || address.starts_with("https://") {
            true => address.trim_end_matches('/').to_owned(),
            false => format!("http://{address}"),
        };
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(timeout)
            .build()
            .into();
        AdminClient {
            base,
            token: settings.admin.token.clone().filter(|t| !t.is_empty()),
            agent,
        }
    }

    pub fn get(&self, path: &str) -> Result<Response, String> {
        let mut req = self.agent.get(format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        req.call().map_err(|e| self.unreachable(e))
    }

    fn unreachable(&self, e: ureq::Error) -> String {
        format!(
            "cannot reach the admin API at {}: {e} (is `weir run` running? set --admin or admin.address)",
            self.base
        )
    }

    /// The body of a successful response, or the server's error as text.
    pub fn text(&self, path: &str) -> Result<String, String> {
        let mut r = self.get(path)?;
        let status = r.status();
        let body = r
            .body_mut()
            .read_to_string()
            .map_err(|e| format!("reading {path}: {e}"))?;
        match status.is_success() {
            true => Ok(body),
            false => Err(format!("{path}: {status}: {}", body.trim())),
        }
    }
}
