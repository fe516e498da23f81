//! What HTTPS requests trust: the system's roots (read once per process) and an optional
//! `ca_file`; and the client certificate sent for mutual TLS, if any. rustls with aws-lc-rs, the
//! provider the rest of the binary already links.

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::{Arc, OnceLock};

/// A client certificate chain and its private key, both PEM files.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientIdentity<'a> {
    pub(crate) cert: &'a Path,
    pub(crate) key: &'a Path,
}

/// Why a TLS client configuration could not be made: the file at fault and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TlsError {
    #[error("ca_file {path}: {message}")]
    CaFile { path: String, message: String },
    #[error("client_cert {path}: {message}")]
    ClientCert { path: String, message: String },
    #[error("client_key {path}: {message}")]
    ClientKey { path: String, message: String },
    #[error("TLS set-up: {0}")]
    Setup(String),
}

/// The system's roots. A certificate the system store holds but rustls cannot parse is skipped,
/// as browsers do: one bad root must not stop every client from reaching any HTTPS server.
fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| rustls_native_certs::load_native_certs().certs)
}

/// A client configuration trusting the system roots plus the certificates of `ca_file`, and
/// presenting `identity` if a server asks for a client certificate.
pub(crate) fn client_config(
    ca_file: Option<&Path>,
    identity: Option<ClientIdentity<'_>>,
) -> Result<rustls::ClientConfig, TlsError> {
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(system_roots().iter().cloned());
    if let Some(path) = ca_file {
        let ca_error = |message: String| TlsError::CaFile {
            path: path.display().to_string(),
            message,
        };
        for cert in certificates(path).map_err(ca_error)? {
            roots
                .add(cert)
                .map_err(|e| ca_error(format!("a certificate rustls cannot use: {e}")))?;
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup(e.to_string()))?
        .with_root_certificates(roots);
    let Some(identity) = identity else {
        return Ok(builder.with_no_client_auth());
    };
    let chain = certificates(identity.cert).map_err(|message| TlsError::ClientCert {
        path: identity.cert.display().to_string(),
        message,
    })?;
    let key_error = |message: String| TlsError::ClientKey {
        path: identity.key.display().to_string(),
        message,
    };
    let pem = std::fs::read(identity.key).map_err(|e| key_error(e.to_string()))?;
    let key = PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| key_error(format!("no PEM private key: {e}")))?;
    builder
        .with_client_auth_cert(chain, key)
        .map_err(|e| key_error(format!("does not go with client_cert: {e}")))
}

/// The PEM certificates of a file: at least one.
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = std::fs::read(path).map_err(|e| e.to_string())?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not PEM certificates: {e}"))?;
    if certs.is_empty() {
        return Err("holds no PEM certificate".into());
    }
    Ok(certs)
}
