//! TLS to PostgreSQL with libpq's `sslmode` and `sslrootcert`, so that the connection
//! strings teams already use (`?sslmode=verify-full&sslrootcert=/etc/ssl/rds-ca.pem`) work
//! unchanged.
//!
//! As in libpq: `disable` never encrypts; `prefer` (the default) and `require` encrypt
//! without checking the server's certificate (`prefer` falls back to plain text when the
//! server has no TLS), unless `sslrootcert` is given, which makes them `verify-ca`;
//! `verify-ca` checks the chain against the root certificates; `verify-full` also checks
//! that the certificate names the host. Roots come from `sslrootcert` (PEM), else from
//! the system's store. tokio-postgres knows only `disable`/`prefer`/`require`: the
//! verification level is ours, given to rustls.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

/// How much of the server's certificate is checked (libpq's `sslmode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(text: &str) -> Option<SslMode> {
        Some(match text {
            "disable" => SslMode::Disable,
            // libpq's `allow` tries plain text first; encrypting when offered is stricter.
            "allow" | "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    /// What tokio-postgres is told: whether TLS is tried and whether it is required.
    fn negotiation(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            _ => "require",
        }
    }
}

/// The TLS part of a connection string, taken out of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsParams {
    pub mode: SslMode,
    pub root_cert: Option<PathBuf>,
}

/// Why TLS cannot be set up as the connection string asks.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("sslmode={0:?} is not one of disable, allow, prefer, require, verify-ca, verify-full")]
    Mode(String),
    #[error("sslrootcert {}: {source}", path.display())]
    RootCert {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("sslrootcert {}: no certificate in it", path.display())]
    NoRoots { path: PathBuf },
    #[error("the system's root certificates cannot be loaded ({0}); give sslrootcert")]
    SystemRoots(String),
    #[error(transparent)]
    Verifier(#[from] rustls::client::VerifierBuilderError),
}

/// Takes `sslmode` and `sslrootcert` out of `url` (a URL's query, or `key=value` words),
/// returning the string tokio-postgres parses (with `sslmode` it knows) and the TLS params.
pub fn split(url: &str) -> Result<(String, TlsParams), TlsSetupError> {
    let mut params = TlsParams {
        mode: SslMode::Prefer,
        root_cert: None,
    };
    let mut take = |key: &str, value: &str| -> Result<bool, TlsSetupError> {
        match key {
            "sslmode" => {
                params.mode =
                    SslMode::parse(value).ok_or_else(|| TlsSetupError::Mode(value.to_string()))?;
                Ok(true)
            }
            "sslrootcert" => {
                params.root_cert = Some(PathBuf::from(percent_decode(value)));
                Ok(true)
            }
            _ => Ok(false),
        }
    };
    let rest = if url.contains("://") {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if !take(k, v)? {
                kept.push(pair);
            }
        }
        let mode = format!("sslmode={}", params.mode.negotiation());
        kept.push(&mode);
        format!("{base}?{}", kept.join("&"))
    } else {
        let mut kept = Vec::new();
        for word in url.split_whitespace() {
            let (k, v) = word.split_once('=').unwrap_or((word, ""));
            if !take(k, v)? {
                kept.push(word.to_string());
            }
        }
        kept.push(format!("sslmode={}", params.mode.negotiation()));
        kept.join(" ")
    };
    // sslrootcert without a verify mode makes libpq verify the chain.
    if params.root_cert.is_some() && matches!(params.mode, SslMode::Prefer | SslMode::Require) {
        params.mode = SslMode::VerifyCa;
    }
    Ok((rest, params))
}

/// `%2F` and friends in a URL's query value (a path given as `sslrootcert=%2Fetc%2F...`).
fn percent_decode(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The rustls client configuration for `params` (not called for `disable`).
pub fn client_config(params: &TlsParams) -> Result<ClientConfig, TlsSetupError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("the default provider supports the default protocol versions");
    let verifier: Arc<dyn ServerCertVerifier> = match params.mode {
        SslMode::Disable | SslMode::Prefer | SslMode::Require => Arc::new(Unverified(provider)),
        SslMode::VerifyCa | SslMode::VerifyFull => {
            let roots = Arc::new(roots(params.root_cert.as_deref())?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider).build()?;
            if params.mode == SslMode::VerifyCa {
                Arc::new(AnyName(webpki))
            } else {
                webpki
            }
        }
    };
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

fn roots(file: Option<&Path>) -> Result<RootCertStore, TlsSetupError> {
    let mut store = RootCertStore::empty();
    match file {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|source| TlsSetupError::RootCert {
                path: path.to_path_buf(),
                source,
            })?;
            let certs = pem_certs(&pem);
            let (added, _) = store.add_parsable_certificates(certs);
            if added == 0 {
                return Err(TlsSetupError::NoRoots {
                    path: path.to_path_buf(),
                });
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            if found.certs.is_empty() {
                let why = found
                    .errors
                    .first()
                    .map_or_else(|| "none found".to_string(), ToString::to_string);
                return Err(TlsSetupError::SystemRoots(why));
            }
            store.add_parsable_certificates(found.certs);
        }
    }
    Ok(store)
}

/// The certificates of a PEM file (other sections are skipped).
fn pem_certs(pem: &[u8]) -> Vec<CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .collect()
}

/// `prefer`/`require` without `sslrootcert`: encrypted, the certificate not checked (as
/// libpq does); the handshake's signatures still are, so the session is a real TLS one.
#[derive(Debug)]
struct Unverified(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain is checked against the roots, the host name is not.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_parameters_are_taken_out_of_urls_and_words() {
        let (rest, p) = split(
            "postgres://u@h:5432/db?sslmode=verify-full&sslrootcert=%2Fca.pem&application_name=x",
        )
        .unwrap();
        assert_eq!(
            rest,
            "postgres://u@h:5432/db?application_name=x&sslmode=require"
        );
        assert_eq!(p.mode, SslMode::VerifyFull);
        assert_eq!(p.root_cert.as_deref(), Some(Path::new("/ca.pem")));

        let (rest, p) = split("host=h user=u sslmode=disable").unwrap();
        assert_eq!(rest, "host=h user=u sslmode=disable");
        assert_eq!(p.mode, SslMode::Disable);

        let (rest, p) = split("postgres://u@h/db").unwrap();
        assert_eq!(rest, "postgres://u@h/db?sslmode=prefer");
        assert_eq!(p.mode, SslMode::Prefer);

        // A root certificate makes libpq check the chain even under `require`.
        let (_, p) = split("postgres://u@h/db?sslmode=require&sslrootcert=/ca.pem").unwrap();
        assert_eq!(p.mode, SslMode::VerifyCa);

        let e = split("postgres://u@h/db?sslmode=verify").unwrap_err();
        assert!(e.to_string().contains("\"verify\""), "{e}");
    }

    #[test]
    fn a_root_file_without_certificates_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let params = TlsParams {
            mode: SslMode::VerifyFull,
            root_cert: Some(path),
        };
        let e = client_config(&params).unwrap_err();
        assert!(e.to_string().contains("no certificate"), "{e}");
    }
}
