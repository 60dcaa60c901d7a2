//! Certificates for throwaway servers that speak TLS: a CA of their own and a server certificate
//! it signed, made with the `openssl` command line (`.ci/run` installs it), so a test can give a
//! client the CA and have it verify the server. RSA 2048, valid for two days.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A CA certificate, and a server certificate and its key signed by that CA, as PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA's certificate: what a client verifies the server with.
    pub ca: PathBuf,
    /// The server's certificate.
    pub cert: PathBuf,
    /// The server certificate's private key (unencrypted).
    pub key: PathBuf,
}

impl TlsFiles {
    /// Makes a throwaway CA and a server certificate for `localhost` and `127.0.0.1` in `dir`.
    pub fn for_localhost(dir: &Path) -> TlsFiles {
        TlsFiles::make(dir, &["localhost", "127.0.0.1"])
    }

    /// Makes a throwaway CA (`ca.crt`, `ca.key`) and a server certificate (`server.crt`,
    /// `server.key`) in `dir` whose subject alternative names are `names`: host names, or IP
    /// addresses (which go in as such). Panics with openssl's error output if it fails.
    pub fn make(dir: &Path, names: &[&str]) -> TlsFiles {
        let first = names.first().copied().unwrap_or("localhost");
        let alt_names: Vec<String> = names
            .iter()
            .map(|name| match name.parse::<IpAddr>() {
                Ok(_) => format!("IP:{name}"),
                Err(_) => format!("DNS:{name}"),
            })
            .collect();
        let ext = dir.join("server-ext.cnf");
        std::fs::write(&ext, format!("subjectAltName={}\n", alt_names.join(",")))
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", ext.display()));
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=pacer test CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
            ],
        );
        let subject = format!("/CN={first}");
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                &subject,
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "server-ext.cnf",
                "-out",
                "server.crt",
            ],
        );
        TlsFiles {
            ca: dir.join("ca.crt"),
            cert: dir.join("server.crt"),
            key: dir.join("server.key"),
        }
    }
}

/// Runs `openssl ARGS` in `dir`; panics with its error output if it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run openssl to make test certificates: {e}. Install it (Debian/Ubuntu: \
                 apt-get install openssl)."
            )
        });
    assert!(
        out.status.success(),
        "openssl {} failed in {}: {}",
        args.join(" "),
        dir.display(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_certificate_names_localhost_and_its_ip_and_the_ca_signed_it() {
        let dir = tempfile::Builder::new()
            .prefix("pacer-unit-tls-")
            .tempdir()
            .unwrap();
        let files = TlsFiles::for_localhost(dir.path());
        let text = Command::new("openssl")
            .args(["x509", "-noout", "-text", "-in"])
            .arg(&files.cert)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&text.stdout);
        assert!(
            text.contains("DNS:localhost, IP Address:127.0.0.1"),
            "{text}"
        );
        let verify = Command::new("openssl")
            .arg("verify")
            .arg("-CAfile")
            .arg(&files.ca)
            .arg(&files.cert)
            .output()
            .unwrap();
        assert!(
            verify.status.success(),
            "{}",
            String::from_utf8_lossy(&verify.stderr)
        );
        assert!(files.key.is_file());
    }
}
