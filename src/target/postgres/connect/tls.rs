//! Which root certificates verify the server, and how much of its certificate each `sslmode`
//! checks.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::PgTarget;

/// Which root certificates verify the server when verification is on.
#[derive(Clone)]
pub(super) enum RootCerts {
    /// Nothing configured: webpki-roots (Mozilla's list) if a mode verifies.
    Default,
    /// `sslrootcert=system`: webpki-roots, and counts as configured for `require`.
    System,
    /// A PEM file, already loaded so that a bad path is reported before connecting.
    File(PathBuf, Vec<CertificateDer<'static>>),
}

/// How much of the server certificate is checked.
#[derive(Clone, Copy)]
pub(super) enum Verify {
    Nothing,
    Chain,
    Full,
}

impl PgTarget {
    pub(super) fn rustls_connector(&self, verify: Verify) -> Result<MakeRustlsConnect, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("cannot set up TLS: {e}"))?;
        let mut tls = match verify {
            Verify::Nothing => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerification { provider }))
                .with_no_client_auth(),
            Verify::Chain => {
                let inner = WebPkiServerVerifier::builder_with_provider(
                    Arc::new(self.root_store()?),
                    provider,
                )
                .build()
                .map_err(|e| format!("cannot set up certificate verification: {e}"))?;
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(ChainOnlyVerification { inner }))
                    .with_no_client_auth()
            }
            Verify::Full => builder
                .with_root_certificates(self.root_store()?)
                .with_no_client_auth(),
        };
        // What libpq 17 sends; needed for sslnegotiation=direct and harmless otherwise.
        tls.alpn_protocols = vec![b"postgresql".to_vec()];
        Ok(MakeRustlsConnect::new(tls))
    }

    fn root_store(&self) -> Result<RootCertStore, String> {
        match &self.roots {
            RootCerts::Default | RootCerts::System => Ok(RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            }),
            RootCerts::File(path, certs) => {
                let mut store = RootCertStore::empty();
                let (added, _) = store.add_parsable_certificates(certs.iter().cloned());
                if added == 0 {
                    return Err(format!(
                        "no usable CA certificate in the sslrootcert file {}",
                        path.display()
                    ));
                }
                Ok(store)
            }
        }
    }
}

pub(super) fn load_root_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = std::fs::read(path)
        .map_err(|e| format!("cannot read the sslrootcert file {}: {e}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            format!(
                "the sslrootcert file {} is not valid PEM: {e}",
                path.display()
            )
        })?;
    if certs.is_empty() {
        return Err(format!(
            "the sslrootcert file {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        ));
    }
    Ok(certs)
}

/// Accepts any certificate (sslmode allow/prefer/require): the connection is encrypted
/// against passive eavesdroppers only, exactly what libpq promises for these modes. The
/// handshake signatures are still checked so the session keys belong to that certificate.
#[derive(Debug)]
struct NoVerification {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for NoVerification {
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
            &self.provider.signature_verification_algorithms,
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
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// sslmode=verify-ca: the full webpki check, minus the host name. WebPkiServerVerifier checks
/// the chain first and the name last, so a name error means the chain was already accepted.
#[derive(Debug)]
struct ChainOnlyVerification {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for ChainOnlyVerification {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
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
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::super::ConnectError;
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn sslrootcert_is_loaded_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let two = format!("{TEST_CA}{TEST_CA_2}");
        let ca = write_file(dir.path(), "ca.pem", &two, 0o644);
        let t = resolve(
            &format!(
                "postgres://u@h/db?sslmode=verify-ca&sslrootcert={}",
                ca.display()
            ),
            &[],
        )
        .unwrap();
        match &t.roots {
            RootCerts::File(path, certs) => {
                assert_eq!(path, &ca);
                assert_eq!(certs.len(), 2);
            }
            _ => panic!("expected a root cert file"),
        }
        assert_eq!(t.root_store().unwrap().len(), 2);
        for verify in [Verify::Nothing, Verify::Chain, Verify::Full] {
            assert!(t.rustls_connector(verify).is_ok());
        }

        let t = resolve("postgres://u@h/db", &[("PGSSLROOTCERT", "system")]).unwrap();
        assert!(matches!(t.roots, RootCerts::System));
        assert!(!t.root_store().unwrap().is_empty());

        let missing = dir.path().join("missing.pem");
        match resolve(
            "postgres://u@h/db",
            &[("PGSSLROOTCERT", &missing.display().to_string())],
        ) {
            Err(ConnectError::BadTarget {
                source_name,
                reason,
            }) => {
                assert_eq!(source_name, "PGSSLROOTCERT");
                assert!(reason.contains("missing.pem"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        let junk = write_file(dir.path(), "junk.pem", "not a certificate\n", 0o644);
        let err = resolve(&format!("host=h sslrootcert={}", junk.display()), &[]).unwrap_err();
        assert!(err.to_string().contains("no PEM certificate"), "{err}");
    }
}
