//! Turns what the user gave (`--target`, `PACER_TARGET` or `DATABASE_URL`) into a PostgreSQL
//! connection, following libpq's conventions (URL and key=value forms, `PG*` environment
//! variables, `~/.pgpass`, all six `sslmode`s).
//!
//! The password lives only inside `tokio_postgres::Config` (whose own `Debug` hides it). Every
//! message built here names the target through [`PgTarget::redacted`], and every piece of text
//! that comes from elsewhere (parsers, the server, the TLS stack) is scrubbed of the password
//! before it is stored in a [`ConnectError`], so a password cannot reach a terminal or a log.
//!
//! - `resolve`: where each setting comes from (target, `PG*` variables, defaults, password file).
//! - `conninfo`: the two spellings of a target, `postgres://` URLs and libpq `key=value`.
//! - `pgpass`: the password file.
//! - `tls`: root certificates and certificate verification for the six `sslmode`s.
//! - `attempt`: libpq's connection procedure (which `sslmode` tries what, in which order).
//! - `progress`: how far an attempt got, as pacer's own TLS connector saw it.
//! - `classify` and `errors`: what went wrong, in words that say what to do.

mod attempt;
mod classify;
mod conninfo;
mod errors;
mod pgpass;
mod progress;
mod resolve;
#[cfg(test)]
mod test_support;
mod tls;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use tokio_postgres::Config;
use tokio_postgres::config::Host;

pub use errors::ConnectError;
use tls::RootCerts;

/// libpq has no connect timeout by default; a CLI that hangs forever on a black-holed host is
/// worse than one that says so after a while.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_PORT: u16 = 5432;

/// Where the target URL came from (for messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetSource {
    /// The `--target` command-line flag.
    Flag,
    /// The `PACER_TARGET` environment variable.
    PacerTarget,
    /// The `DATABASE_URL` environment variable.
    DatabaseUrl,
}

impl TargetSource {
    /// How the user spells this source: `--target`, `PACER_TARGET` or `DATABASE_URL`.
    pub fn name(self) -> &'static str {
        match self {
            TargetSource::Flag => "--target",
            TargetSource::PacerTarget => "PACER_TARGET",
            TargetSource::DatabaseUrl => "DATABASE_URL",
        }
    }
}

impl fmt::Display for TargetSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// libpq's `sslmode`; implemented here because tokio-postgres knows only three of the six.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Never use TLS.
    Disable,
    /// Plain first; TLS (unverified) only if the server refuses the plain connection.
    Allow,
    /// TLS (unverified) if the server offers it, plain otherwise. libpq's default.
    Prefer,
    /// TLS mandatory; unverified unless a root certificate is configured (then as verify-ca).
    Require,
    /// TLS mandatory, certificate chain verified, host name not checked.
    VerifyCa,
    /// TLS mandatory, certificate chain and host name verified.
    VerifyFull,
}

impl SslMode {
    /// Parses a libpq `sslmode` value (`disable`, `allow`, `prefer`, `require`, `verify-ca`, `verify-full`).
    pub fn parse(value: &str) -> Option<SslMode> {
        Some(match value {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    /// The libpq spelling of this mode.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the password came from, so an authentication failure can point at the right place.
#[derive(Debug, Clone)]
enum PasswordOrigin {
    None,
    Target(TargetSource),
    PgPassword,
    PassFile(PathBuf),
}

impl fmt::Display for PasswordOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PasswordOrigin::None => f.write_str("none"),
            PasswordOrigin::Target(source) => write!(f, "from {source}"),
            PasswordOrigin::PgPassword => f.write_str("from PGPASSWORD"),
            PasswordOrigin::PassFile(path) => write!(f, "from {}", path.display()),
        }
    }
}

/// A resolved, connectable PostgreSQL target. Debug and Display never show the password.
#[derive(Clone)]
pub struct PgTarget {
    config: Config,
    ssl_mode: SslMode,
    roots: RootCerts,
    connect_timeout: Option<Duration>,
    source: TargetSource,
    password_origin: PasswordOrigin,
}

impl fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Hand-written so that no field that holds or may echo the password is ever printed.
        let root_cert = match &self.roots {
            RootCerts::Default => None,
            RootCerts::System(..) => Some(PathBuf::from("system")),
            RootCerts::File(path, _) => Some(path.clone()),
        };
        f.debug_struct("PgTarget")
            .field("target", &self.redacted())
            .field("source", &self.source)
            .field("sslmode", &self.ssl_mode)
            .field("sslrootcert", &root_cert)
            .field("connect_timeout", &self.connect_timeout)
            .field("password", &self.password_origin.to_string())
            .finish_non_exhaustive()
    }
}

impl fmt::Display for PgTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl PgTarget {
    /// user@host:port/dbname (no password, ever) — used in every message.
    pub fn redacted(&self) -> String {
        let ports = self.config.get_ports();
        let port_for = |i: usize| {
            ports
                .get(i)
                .or(ports.first())
                .copied()
                .unwrap_or(DEFAULT_PORT)
        };
        let hosts: Vec<String> = if self.config.get_hosts().is_empty() {
            self.config
                .get_hostaddrs()
                .iter()
                .enumerate()
                .map(|(i, a)| endpoint(&Host::Tcp(a.to_string()), port_for(i)))
                .collect()
        } else {
            self.config
                .get_hosts()
                .iter()
                .enumerate()
                .map(|(i, h)| endpoint(h, port_for(i)))
                .collect()
        };
        format!("{}@{}/{}", self.user(), hosts.join(","), self.dbname())
    }

    /// The database name (from the target, PGDATABASE, or the user name as libpq does).
    pub fn dbname(&self) -> &str {
        self.config.get_dbname().unwrap_or_default()
    }

    /// The user name (from the target, PGUSER, USER/LOGNAME, or "postgres").
    pub fn user(&self) -> &str {
        self.config.get_user().unwrap_or_default()
    }

    /// Where the target came from.
    pub fn source(&self) -> TargetSource {
        self.source
    }

    /// The effective sslmode (default prefer).
    pub fn ssl_mode(&self) -> SslMode {
        self.ssl_mode
    }

    fn secrets(&self) -> Vec<String> {
        self.config
            .get_password()
            .map(|p| vec![String::from_utf8_lossy(p).into_owned()])
            .unwrap_or_default()
    }
}

fn endpoint(host: &Host, port: u16) -> String {
    match host {
        Host::Tcp(h) if h.contains(':') => format!("[{h}]:{port}"),
        Host::Tcp(h) => format!("{h}:{port}"),
        #[cfg(unix)]
        Host::Unix(path) => format!("{}:{port}", path.display()),
    }
}
