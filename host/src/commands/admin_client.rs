//! The client side of the admin API, for the operator commands (`weir tap`, `weir top`): where
//! the server is (`--admin`, else the host settings' `admin.address`) and its token
//! (`admin.token`, e.g. WEIR_ADMIN__TOKEN).

use crate::config::HostSettings;
use std::time::Duration;

pub(crate) struct AdminClient {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

/// A response: status code and body reader.
pub(crate) type Response = ureq::http::Response<ureq::Body>;

impl AdminClient {
    /// `admin`: `host:port` or `http://host:port`; None uses the settings' address (a wildcard
    /// listen address is reached on loopback).
    pub(crate) fn new(
        admin: Option<&str>,
        settings: &HostSettings,
        timeout: Option<Duration>,
    ) -> Self {
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

    pub(crate) fn get(&self, path: &str) -> Result<Response, ClientError> {
        let mut req = self.agent.get(format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        req.call().map_err(|source| ClientError::Unreachable {
            base: self.base.clone(),
            source,
        })
    }

    /// The body of a successful response, or the server's error as text.
    pub(crate) fn text(&self, path: &str) -> Result<String, ClientError> {
        let mut r = self.get(path)?;
        let status = r.status();
        let body = r
            .body_mut()
            .read_to_string()
            .map_err(|source| ClientError::Read {
                path: path.to_owned(),
                source,
            })?;
        match status.is_success() {
            true => Ok(body),
            false => Err(ClientError::Status {
                path: path.to_owned(),
                status,
                body: body.trim().to_owned(),
            }),
        }
    }

    /// The JSON body of a successful response.
    pub(crate) fn json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<T, ClientError> {
        serde_json::from_str(&self.text(path)?).map_err(ClientError::Json)
    }
}

/// Why the admin API did not answer what was asked.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientError {
    #[error(
        "cannot reach the admin API at {base}: {source} (is `weir run` running? set --admin or admin.address)"
    )]
    Unreachable {
        base: String,
        #[source]
        source: ureq::Error,
    },
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: ureq::Error,
    },
    /// The server's refusal, with its body.
    #[error("{path}: {status}: {body}")]
    Status {
        path: String,
        status: ureq::http::StatusCode,
        body: String,
    },
    /// An answer that is not what this weir expects (the server's serde error).
    #[error(transparent)]
    Json(serde_json::Error),
}
