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
use super::resolve::{Env, env_var};

/// Which root certificates verify the server when verification is on.
#[derive(Clone)]
pub(super) enum RootCerts {
    /// Nothing configured: webpki-roots (Mozilla's list, bundled) if a mode verifies.
    Default,
    /// `sslrootcert=system`: the operating system's trusted roots, as with libpq; counts as
    /// configured for `require`. Loaded when the target is resolved.
    System(Vec<CertificateDer<'static>>),
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
            RootCerts::Default => Ok(RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            }),
            RootCerts::System(certs) => {
                let mut store = RootCertStore::empty();
                let (added, _) = store.add_parsable_certificates(certs.iter().cloned());
                if added == 0 {
                    return Err(
                        "no usable CA certificate in the operating system's certificate store (sslrootcert=system)"
                            .to_owned(),
                    );
                }
                Ok(store)
            }
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

/// `sslrootcert=system`: the operating system's trusted roots, which is what libpq means by
/// it (OpenSSL's default store), read with rustls-native-certs. `SSL_CERT_FILE` and
/// `SSL_CERT_DIR` (from `env`) replace the store, as they do for OpenSSL. An empty store is an
/// error here, before any connection, rather than a certificate nobody can verify.
pub(super) fn load_system_roots(env: Env<'_>) -> Result<Vec<CertificateDer<'static>>, String> {
    let file = env_var(env, "SSL_CERT_FILE").map(PathBuf::from);
    let dirs: Vec<PathBuf> = env_var(env, "SSL_CERT_DIR")
        .map(|d| {
            std::env::split_paths(&d)
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        })
        .unwrap_or_default();
    let (found, place) = if file.is_some() || !dirs.is_empty() {
        let mut found = rustls_native_certs::load_certs_from_paths(file.as_deref(), None);
        for dir in &dirs {
            let more = rustls_native_certs::load_certs_from_paths(None, Some(dir));
            found.certs.extend(more.certs);
            found.errors.extend(more.errors);
        }
        let mut named = Vec::new();
        if let Some(file) = &file {
            named.push(format!("SSL_CERT_FILE ({})", file.display()));
        }
        if !dirs.is_empty() {
            let dirs: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
            named.push(format!("SSL_CERT_DIR ({})", dirs.join(", ")));
        }
        (found, named.join(" and "))
    } else {
        (rustls_native_certs::load_native_certs(), system_store())
    };
    for error in &found.errors {
        tracing::warn!(%error, "sslrootcert=system: part of the certificate store could not be read");
    }
    if found.certs.is_empty() {
        let why = found
            .errors
            .first()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default();
        return Err(format!(
            "sslrootcert=system, but no CA certificate was found in {place}{why}; install the system's CA \
             certificates (the ca-certificates package), point SSL_CERT_FILE or SSL_CERT_DIR at \
             them, or give sslrootcert a PEM file"
        ));
    }
    Ok(found.certs)
}

/// The operating system's store, named for a message: where OpenSSL (and so
/// rustls-native-certs) looks on this kind of system.
#[cfg(all(unix, not(target_os = "macos")))]
fn system_store() -> String {
    let probe = openssl_probe::probe();
    let places: Vec<String> = probe
        .cert_file
        .iter()
        .chain(probe.cert_dir.iter())
        .map(|p| p.display().to_string())
        .collect();
    if places.is_empty() {
        "the operating system's certificate store (no certificate file or directory found)"
            .to_owned()
    } else {
        format!(
            "the operating system's certificate store ({})",
            places.join(", ")
        )
    }
}

/// The operating system's store, named for a message.
#[cfg(not(all(unix, not(target_os = "macos"))))]
fn system_store() -> String {
    "the operating system's certificate store".to_owned()
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
        assert!(matches!(t.roots, RootCerts::System(..)));
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

    fn pem_certs(pem: &str) -> Vec<CertificateDer<'static>> {
        CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap()
    }

    fn system_roots(t: &PgTarget) -> &[CertificateDer<'static>] {
        match &t.roots {
            RootCerts::System(certs) => certs,
            _ => panic!("expected sslrootcert=system"),
        }
    }

    /// Debian's (and Ubuntu's, Alpine's …) bundle of the certificates the system trusts.
    const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

    #[test]
    fn sslrootcert_system_loads_the_operating_systems_store_not_the_bundled_roots() {
        // The injected environment sets nothing, so the store is the operating system's as
        // this process sees it: OpenSSL's SSL_CERT_FILE if the machine sets one, else the
        // distribution's bundle.
        let bundle_path = std::env::var("SSL_CERT_FILE").unwrap_or_else(|_| SYSTEM_BUNDLE.into());
        let bundle = std::fs::read(&bundle_path)
            .map(|pem| {
                CertificateDer::pem_slice_iter(&pem)
                    .filter_map(Result::ok)
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        let resolved = resolve(
            "postgres://u@h/db?sslmode=verify-full&sslrootcert=system",
            &[],
        );
        if bundle.is_empty() {
            // No bundle on this machine: the store is empty, and the error says so, or a
            // certificate directory holds the roots.
            match resolved {
                Ok(t) => assert!(!system_roots(&t).is_empty()),
                Err(e) => assert!(
                    e.to_string()
                        .contains("sslrootcert=system, but no CA certificate was found"),
                    "{e}"
                ),
            }
            return;
        }
        let t = resolved.unwrap();
        let roots = system_roots(&t);
        for cert in &bundle {
            assert!(
                roots.contains(cert),
                "a certificate of {bundle_path} is missing"
            );
        }
        assert!(t.root_store().unwrap().len() >= bundle.len());
        for verify in [Verify::Chain, Verify::Full] {
            assert!(t.rustls_connector(verify).is_ok());
        }
    }

    #[test]
    fn sslrootcert_system_follows_ssl_cert_file_and_ssl_cert_dir() {
        let dir = tempfile::tempdir().unwrap();
        let file = write_file(dir.path(), "roots.pem", TEST_CA, 0o644);
        let t = resolve(
            "postgres://u@h/db?sslrootcert=system",
            &[("SSL_CERT_FILE", &file.display().to_string())],
        )
        .unwrap();
        assert_eq!(system_roots(&t), pem_certs(TEST_CA));
        assert_eq!(t.root_store().unwrap().len(), 1);

        let certs = dir.path().join("certs");
        std::fs::create_dir(&certs).unwrap();
        write_file(&certs, "second.pem", TEST_CA_2, 0o644);
        let t = resolve(
            "postgres://u@h/db",
            &[
                ("PGSSLROOTCERT", "system"),
                ("SSL_CERT_FILE", &file.display().to_string()),
                ("SSL_CERT_DIR", &certs.display().to_string()),
            ],
        )
        .unwrap();
        let both = pem_certs(&format!("{TEST_CA}{TEST_CA_2}"));
        assert_eq!(system_roots(&t), both);
    }

    #[test]
    fn sslrootcert_system_with_an_empty_store_says_so_before_connecting() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().display().to_string();
        match resolve(
            "postgres://u@h/db?sslrootcert=system",
            &[("SSL_CERT_DIR", &empty)],
        ) {
            Err(ConnectError::BadTarget {
                source_name,
                reason,
            }) => {
                assert_eq!(source_name, "--target");
                assert!(
                    reason.contains("sslrootcert=system, but no CA certificate was found in"),
                    "{reason}"
                );
                assert!(
                    reason.contains(&format!("SSL_CERT_DIR ({empty})")),
                    "{reason}"
                );
                assert!(reason.contains("ca-certificates"), "{reason}");
            }
            other => panic!("{other:?}"),
        }

        let missing = dir.path().join("missing.pem").display().to_string();
        let err = resolve(
            "postgres://u@h/db",
            &[("PGSSLROOTCERT", "system"), ("SSL_CERT_FILE", &missing)],
        )
        .unwrap_err();
        assert!(
            matches!(&err, ConnectError::BadTarget { source_name, .. } if source_name == "PGSSLROOTCERT"),
            "{err:?}"
        );
        assert!(err.to_string().contains(&missing), "{err}");
    }
}
