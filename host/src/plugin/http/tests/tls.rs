//! HTTPS against a server whose certificate comes from a test CA: trusted through `ca_file`,
//! refused without it.

use super::*;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A CA (its PEM) and a server certificate for 127.0.0.1 it signed, with the server's key.
fn test_pki() -> (String, CertificateDer<'static>, PrivateKeyDer<'static>) {
    let ca_key = KeyPair::generate().expect("a CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "weir http grant test CA");
    let ca_cert = ca.self_signed(&ca_key).expect("a CA certificate");
    let issuer = Issuer::new(ca, ca_key);
    let server_key = KeyPair::generate().expect("a server key");
    let server = CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("parameters");
    let server_cert = server.signed_by(&server_key, &issuer).expect("signed");
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
    (ca_cert.pem(), server_cert.der().clone(), key)
}

/// An HTTPS test server with the test CA's certificate; its address, and what it saw.
async fn tls_server(
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
) -> (SocketAddr, Arc<Seen>) {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .expect("a server configuration");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("an address");
    let seen = Arc::new(Seen::default());
    let app = router(seen.clone());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let service = TowerToHyperService::new(app.clone());
            tokio::spawn(async move {
                // A client that refuses the certificate ends the handshake: nothing to serve.
                if let Ok(tls) = acceptor.accept(tcp).await {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                }
            });
        }
    });
    (addr, seen)
}

#[tokio::test]
async fn https_trusts_the_ca_file_and_only_with_it() {
    let (ca_pem, cert, key) = test_pki();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let ca_file = dir.path().join("test-ca.pem");
    std::fs::write(&ca_file, ca_pem).expect("written");
    let (addr, seen) = tls_server(cert, key).await;
    let url = format!("https://{addr}/rates/USD");

    let trusting = access(&format!(
        "allow = [\"https://{addr}/rates/\"]\nca_file = \"{}\"",
        ca_file.display()
    ));
    let answer = send(&trusting, get(&url)).await.expect("an answer");
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, br#"{"rate": 1.5}"#);
    assert_eq!(seen.count(), 1);

    let system_roots_only = access(&format!("allow = [\"https://{addr}/rates/\"]"));
    match send(&system_roots_only, get(&url)).await {
        Err(HttpError::Unavailable(why)) => assert!(why.contains("certificate"), "{why}"),
        other => panic!("expected the certificate to be refused, got {other:?}"),
    }
    assert_eq!(seen.count(), 1);
}
