//! HTTPS with a test CA through `ca_file`, and a client certificate for a server that asks for
//! one (mTLS).

use super::*;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A CA, and certificates it signed: its PEM, and (certificate, key) for `name`.
struct Pki {
    ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
    ca_der: CertificateDer<'static>,
}

impl Pki {
    fn new() -> Pki {
        let ca_key = KeyPair::generate().expect("a CA key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "weir http sink test CA");
        let ca_cert = ca.self_signed(&ca_key).expect("a CA certificate");
        Pki {
            ca_pem: ca_cert.pem(),
            ca_der: ca_cert.der().clone(),
            issuer: Issuer::new(ca, ca_key),
        }
    }

    /// A certificate for `name` and its key, as DER and as PEM.
    fn issue(&self, name: &str) -> (CertificateDer<'static>, PrivateKeyDer<'static>, String, String) {
        let key = KeyPair::generate().expect("a key");
        let params = CertificateParams::new(vec![name.to_owned()]).expect("parameters");
        let cert = params.signed_by(&key, &self.issuer).expect("signed");
        let der_key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        (cert.der().clone(), der_key, cert.pem(), key.serialize_pem())
    }
}

/// An HTTPS server answering 200 to clients that present a certificate the CA signed.
async fn mtls_server(pki: &Pki) -> SocketAddr {
    let (cert, key, _, _) = pki.issue("127.0.0.1");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca_der.clone()).expect("the CA");
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .expect("a client verifier");
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![cert], key)
        .expect("a server configuration");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("an address");
    let app = axum::Router::new().fallback(|| async { "ok" });
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let service = TowerToHyperService::new(app.clone());
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn https_with_the_ca_file_and_a_client_certificate() {
    let pki = Pki::new();
    let addr = mtls_server(&pki).await;
    let dir = tempfile::tempdir().expect("a directory");
    let write_file = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("written");
        path.display().to_string()
    };
    let ca = write_file("ca.pem", &pki.ca_pem);
    let (_, _, cert_pem, key_pem) = pki.issue("weir-client");
    let cert = write_file("client.pem", &cert_pem);
    let key = write_file("client.key", &key_pem);
    let url = format!("https://{addr}/in");

    let with_cert = config(&format!(
        "url = \"{url}\"\nca_file = \"{ca}\"\nclient_cert = \"{cert}\"\nclient_key = \"{key}\""
    ));
    with_cert.preflight().expect("files usable");
    let reached = with_cert
        .reach("test", Duration::from_secs(5))
        .await
        .expect("reached")
        .expect("a literal host");
    assert!(reached.contains("certificate trusted"), "{reached}");
    let sink = open_config(&with_cert).await.expect("opens");
    let results = write(sink.as_ref(), &[event("e", None, "{}")]).await;
    assert!(results[0].is_ok(), "{results:?}");

    // Without a client certificate the server ends the handshake: retryable, as any
    // connection failure.
    let sink = open(&format!("url = \"{url}\"\nca_file = \"{ca}\"")).await;
    let e = write_one_err(sink.as_ref(), event("e", None, "{}")).await;
    assert!(e.retryable, "{e:?}");

    // Without the CA the server's certificate is not trusted.
    let sink = open(&format!("url = \"{url}\"")).await;
    let e = write_one_err(sink.as_ref(), event("e", None, "{}")).await;
    assert!(e.message.contains("certificate"), "{}", e.message);

    // A key that is not one is named at its key by `weir check`.
    let bad = config(&format!(
        "url = \"{url}\"\nclient_cert = \"{cert}\"\nclient_key = \"{ca}\""
    ));
    let (at, why) = bad.preflight().expect_err("no key");
    assert_eq!(at, "client_key");
    assert!(why.to_string().contains(&ca), "{why}");
}
