//! What the connection tests share: a password to hunt for, test CAs, an injected environment.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use tokio_postgres::config::Host;

use super::{ConnectError, PgTarget};

pub(super) const SECRET: &str = "s3cr3t-Pa55";
/// A self-signed P-256 CA, only ever parsed, never trusted for anything.
pub(super) const TEST_CA: &str = "-----BEGIN CERTIFICATE-----
MIIBhzCCAS2gAwIBAgIUVxc90W41KrtoZ86rNsMq1e+4DfwwCgYIKoZIzj0EAwIw
GDEWMBQGA1UEAwwNcGFjZXItdGVzdC1jYTAgFw0yNjExMjEwNTA5NDJaGA8yMTI2
MTAyODA1MDk0MlowGDEWMBQGA1UEAwwNcGFjZXItdGVzdC1jYTBZMBMGByqGSM49
AgEGCCqGSM49AwEHA0IABO1LDqYtP+CZpKc5n/XxIs3AjHcdEDSYJ6oiJ9EeGMwd
eeX40C6wZSS9/dbFvXUG6dRua5rQYWZWWkYbpND29VSjUzBRMB0GA1UdDgQWBBSV
+lryoPcWFtg6OOSLPdMOjVWkazAfBgNVHSMEGDAWgBSV+lryoPcWFtg6OOSLPdMO
jVWkazAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0gAMEUCIQC1qNCYs5XQ
KAh9n9V3TmGApzFDzQCYoMvdHaiB6o2WQwIgQR8lj8pTR7X0Gvn+5o/P7A7O6T8T
niUrB1Uk1Wwimk8=
-----END CERTIFICATE-----
";
/// A second, different test CA, so that a file with several certificates is exercised.
pub(super) const TEST_CA_2: &str = "-----BEGIN CERTIFICATE-----
MIIBijCCATGgAwIBAgIUeI6x5LPYYVzcc5krioE3nbNc3v8wCgYIKoZIzj0EAwIw
GjEYMBYGA1UEAwwPcGFjZXItdGVzdC1jYS0yMCAXDTI2MTEyMTA1MTQyOVoYDzIx
MjYxMDI4MDUxNDI5WjAaMRgwFgYDVQQDDA9wYWNlci10ZXN0LWNhLTIwWTATBgcq
hkjOPQIBBggqhkjOPQMBBwNCAASysH9WQ1pqlbLQYy68LSZ6/TMg+wFMswmOvAsw
B2bgYJRxKkTPeIuGXoppMdz6sqFEjOR1BAXefB/QdbPGMW11o1MwUTAdBgNVHQ4E
FgQUwkyi5dnPnn7x+RJlgPK/z4CNBH0wHwYDVR0jBBgwFoAUwkyi5dnPnn7x+RJl
gPK/z4CNBH0wDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNHADBEAiACJQZ5
UZuFch4OrpTkksgaxhxyAtS3hIjhEyPAzajqKgIgKqBe1aNCBPbCmAFk6qRErLR4
alrI2v5GSRhGzPKEAvg=
-----END CERTIFICATE-----
";

pub(super) fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |k: &str| map.get(k).cloned()
}

pub(super) fn resolve(flag: &str, pairs: &[(&str, &str)]) -> Result<PgTarget, ConnectError> {
    PgTarget::resolve(Some(flag), &env_of(pairs), None)
}

pub(super) fn password(t: &PgTarget) -> Option<String> {
    t.config
        .get_password()
        .map(|p| String::from_utf8(p.to_vec()).unwrap())
}

pub(super) fn tcp_hosts(t: &PgTarget) -> Vec<String> {
    t.config
        .get_hosts()
        .iter()
        .map(|h| match h {
            Host::Tcp(h) => h.clone(),
            #[cfg(unix)]
            Host::Unix(p) => p.display().to_string(),
        })
        .collect()
}

pub(super) fn write_file(dir: &Path, name: &str, contents: &str, mode: u32) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    #[cfg(not(unix))]
    let _ = mode;
    path
}

pub(super) fn assert_no_secret(what: &str, text: &str) {
    assert!(!text.contains(SECRET), "{what} leaks the password: {text}");
    assert!(
        !text.contains("s3cr3t%2DPa55"),
        "{what} leaks the encoded password: {text}"
    );
}
