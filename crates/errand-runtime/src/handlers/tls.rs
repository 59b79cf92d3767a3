//! TLS for HTTP tasks: the rustls configuration their client uses, on the ring provider (the
//! same rustls and provider as the PostgreSQL connections). Servers are checked against the
//! system's roots, read as OpenSSL-based tools read them (`rustls-native-certs`: the
//! distribution's bundle, or `SSL_CERT_FILE` and `SSL_CERT_DIR` when set), plus the PEM files
//! of [`HttpTls::ca_files`]. [`HttpTls::insecure_skip_verify`] accepts any certificate: for
//! development only, and the runtime warns about it at every start.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::PathBuf;
use std::sync::Arc;

/// How an HTTP client checks the servers it calls.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct HttpTls {
    /// PEM files of CA certificates trusted besides the system's roots.
    pub ca_files: Vec<PathBuf>,
    /// Accept any server certificate (no chain, name or date check). Development only.
    pub insecure_skip_verify: bool,
}

/// The process's crypto provider: ring (it builds with a C compiler alone, where aws-lc-rs
/// needs cmake; it lacks post-quantum key exchange, hence rustls's deprecation note).
pub fn provider() -> Arc<CryptoProvider> {
    #[allow(deprecated)]
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The rustls client configuration for `tls`. Fails naming a CA file that cannot be read or
/// holds no certificate.
pub fn client_config(tls: &HttpTls) -> Result<ClientConfig, String> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up: {e}"))?;
    if tls.insecure_skip_verify {
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
            .with_no_client_auth());
    }
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for e in &native.errors {
        tracing::warn!(error = %e, "could not read some of the system's CA certificates");
    }
    roots.add_parsable_certificates(native.certs);
    for file in &tls.ca_files {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(file)
            .and_then(|certs| certs.collect::<Result<_, _>>())
            .map_err(|e| format!("ca_file {}: cannot read it: {e}", file.display()))?;
        if certs.is_empty() {
            return Err(format!(
                "ca_file {}: holds no PEM certificate",
                file.display()
            ));
        }
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(format!(
                "ca_file {}: no usable CA certificate in it",
                file.display()
            ));
        }
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

/// `insecure_skip_verify`: any certificate is accepted; the handshake's signatures are still
/// checked, so the connection is encrypted to whoever answered.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
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
        verify_tls12_signature(
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
        verify_tls13_signature(
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
