//! Optional TLS for `serve` (`--tls-cert`, `--tls-key`), with rustls, for users who cannot
//! put a proxy in front of it.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::server::TlsFiles;

/// The certificate or key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("--tls-cert {path}: {detail}")]
    Cert { path: String, detail: String },
    /// The detail never contains key material (rustls-pki-types reports only what failed).
    #[error("--tls-key {path}: {detail}")]
    Key { path: String, detail: String },
    #[error("--tls-cert and --tls-key do not make a usable TLS configuration: {0}")]
    Config(#[source] rustls::Error),
}

/// The acceptor for the PEM files: a certificate chain (leaf first) and its private key
/// (PKCS#8, PKCS#1 or SEC1). HTTP/1.1 only, as the plain server.
pub fn acceptor(files: &TlsFiles) -> Result<tokio_rustls::TlsAcceptor, TlsError> {
    let cert_path = files.cert.display().to_string();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| TlsError::Cert {
            path: cert_path.clone(),
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Cert {
            path: cert_path,
            detail: "no CERTIFICATE in the file".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| TlsError::Key {
        path: files.key.display().to_string(),
        detail: e.to_string(),
    })?;
    // The provider is named, so that no process-wide default has to be installed.
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(TlsError::Config)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
