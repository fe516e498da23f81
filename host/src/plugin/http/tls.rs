//! The roots a plugin's HTTPS requests trust: the system's (read once per process) and the
//! grant's `ca_file`. rustls with aws-lc-rs, the provider the rest of the binary already links.

use super::error::HttpSetupError;
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::path::Path;
use std::sync::{Arc, OnceLock};

/// The system's roots. A certificate the system store holds but rustls cannot parse is skipped,
/// as browsers do: one bad root must not stop every plugin from reaching any HTTPS server.
fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| rustls_native_certs::load_native_certs().certs)
}

/// A client configuration trusting the system roots plus the certificates of `ca_file`.
pub(crate) fn client_config(
    plugin: &str,
    ca_file: Option<&Path>,
) -> Result<rustls::ClientConfig, HttpSetupError> {
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(system_roots().iter().cloned());
    if let Some(path) = ca_file {
        let ca_error = |message: String| HttpSetupError::CaFile {
            plugin: plugin.to_owned(),
            path: path.display().to_string(),
            message,
        };
        let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| ca_error(format!("not PEM certificates: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| ca_error(format!("a certificate rustls cannot use: {e}")))?;
            added += 1;
        }
        if added == 0 {
            return Err(ca_error("holds no PEM certificate".into()));
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| HttpSetupError::Tls {
            plugin: plugin.to_owned(),
            message: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
