//! HTTP client pieces shared by plugins' `http` grant (plugin/http/) and the HTTP sink
//! (sink/http/): one way to trust servers, to refer to secrets and to pace requests.
//!
//! ```text
//! tls.rs      what HTTPS trusts (system roots, a CA file) and the client certificate (mTLS)
//! client.rs   the pooled hyper client over that TLS, and errors' causes on one line
//! secret.rs   `{ env = "VAR" }` / `{ file = "path" }`: where a secret is read from, and reading it
//! rate.rs     `rate_limit_per_s`: evenly spaced request starts
//! ```

mod client;
mod rate;
mod secret;
mod tls;

pub(crate) use client::{HttpsClient, error_chain, https_client};
pub(crate) use rate::RateLimit;
pub(crate) use secret::{SECRET_SHAPE, Secret, SecretError};
pub(crate) use tls::{ClientIdentity, TlsError, client_config};
