//! Turns what the user gave (`--target`, `PACER_TARGET` or `DATABASE_URL`) into a PostgreSQL
//! connection, following libpq's conventions (URL and key=value forms, `PG*` environment
//! variables, `~/.pgpass`, all six `sslmode`s).
//!
//! The password lives only inside `tokio_postgres::Config` (whose own `Debug` hides it). Every
//! message built here names the target through [`PgTarget::redacted`], and every piece of text
//! that comes from elsewhere (parsers, the server, the TLS stack) is scrubbed of the password
//! before it is stored in a [`ConnectError`], so a password cannot reach a terminal or a log.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::{Host, SslMode as WireSslMode};
use tokio_postgres::error::{DbError, SqlState};
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{Client, Config, NoTls, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq has no connect timeout by default; a CLI that hangs forever on a black-holed host is
/// worse than one that says so after a while.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_PORT: u16 = 5432;
/// What a password is replaced with wherever it might show up in text.
const MASK: &str = "********";
/// Server errors that mean "not now" rather than "never": starting up / shutting down / in
/// recovery (57P03), administrator or crash shutdown (57P01, 57P02), and no free connection
/// slot (53300). A supervisor can wait and try again.
const RETRYABLE_SQLSTATES: [&str; 4] = ["57P03", "57P01", "57P02", "53300"];

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

/// Why a target could not be resolved or connected to. Messages never contain the password.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// Neither `--target`, `PACER_TARGET` nor `DATABASE_URL` was given.
    #[error(
        "no PostgreSQL target given: pass --target postgres://user@host/db, or set PACER_TARGET or DATABASE_URL"
    )]
    NoTarget,
    /// The target (or a `PG*` variable filling it in) is malformed; `source_name` says which.
    #[error(
        "invalid PostgreSQL target ({source_name}): {reason}. Fix {source_name}; a target looks like postgres://user@host:5432/dbname?sslmode=verify-full"
    )]
    BadTarget {
        /// Where the bad value came from: `--target`, `PACER_TARGET`, `DATABASE_URL` or a `PG*` variable.
        source_name: String,
        /// What is wrong with it (never the password).
        reason: String,
    },
    /// The target is a URL for another database (e.g. `mysql://`).
    #[error(
        "the target from {source_name} is a {scheme}:// URL, but {}",
        scheme_advice(scheme)
    )]
    UnsupportedScheme {
        /// Where the URL came from.
        source_name: String,
        /// The URL scheme, lower-cased.
        scheme: String,
    },
    /// Nothing answered: connection refused, timed out, host name not found, socket missing.
    #[error(
        "could not reach PostgreSQL at {target}: {detail}. Is the server running and accepting TCP connections on that host and port? Check --target (or PACER_TARGET / DATABASE_URL)"
    )]
    Unreachable {
        /// The target, redacted.
        target: String,
        /// What went wrong, as reported by the OS or the driver.
        detail: String,
    },
    /// The server rejected the user or password (SQLSTATE 28P01 or 28000).
    #[error(
        "password authentication failed for user {user} at {target}: {detail}. Check the user and password in --target, PGPASSWORD or ~/.pgpass (PGPASSFILE), and the server's pg_hba.conf"
    )]
    AuthFailed {
        /// The target, redacted.
        target: String,
        /// The user name that was rejected.
        user: String,
        /// The server's message.
        detail: String,
    },
    /// The database named in the target does not exist (SQLSTATE 3D000).
    #[error(
        "database {dbname} does not exist at {target}: {detail}. Check the database name at the end of --target (postgres://user@host/dbname) or PGDATABASE"
    )]
    DatabaseMissing {
        /// The target, redacted.
        target: String,
        /// The database that is missing.
        dbname: String,
        /// The server's message.
        detail: String,
    },
    /// TLS failed: handshake or certificate error, or TLS required but not offered by the server.
    #[error(
        "TLS connection to {target} failed: {detail}. Check sslmode and sslrootcert in --target (or PGSSLMODE / PGSSLROOTCERT)"
    )]
    Tls {
        /// The target, redacted.
        target: String,
        /// What the TLS layer reported.
        detail: String,
    },
    /// Any other failure; `detail` carries `(SQLSTATE xxxxx)` when the server sent an error.
    #[error("could not connect to PostgreSQL at {target}: {detail}")]
    Other {
        /// The target, redacted.
        target: String,
        /// What went wrong.
        detail: String,
    },
}

fn scheme_advice(scheme: &str) -> &'static str {
    match scheme {
        "mysql" | "mariadb" => {
            "MySQL/MariaDB support is not built yet in this version of pacer; for now only PostgreSQL targets (postgres:// or postgresql://) work"
        }
        _ => {
            "pacer only understands PostgreSQL targets: use postgres://user@host:5432/dbname (or postgresql://, or a libpq key=value string)"
        }
    }
}

impl ConnectError {
    /// True when trying again later may succeed: the server is unreachable, starting up,
    /// shutting down, in recovery or out of connection slots. Never for bad targets,
    /// authentication or TLS failures, which need the user to change something.
    pub fn is_retryable(&self) -> bool {
        match self {
            ConnectError::Unreachable { .. } => true,
            ConnectError::Other { detail, .. } => {
                RETRYABLE_SQLSTATES
                    .iter()
                    .any(|code| detail.contains(&format!("(SQLSTATE {code})")))
                    || detail.contains("the database system is starting up")
                    || detail.contains("the database system is shutting down")
            }
            _ => false,
        }
    }

    /// Masks the secrets in the free-text fields, the ones whose wording we do not control.
    fn scrubbed(self, secrets: &[String]) -> ConnectError {
        let s = |text: String| scrub(text, secrets);
        match self {
            ConnectError::BadTarget {
                source_name,
                reason,
            } => ConnectError::BadTarget {
                source_name,
                reason: s(reason),
            },
            ConnectError::Unreachable { target, detail } => ConnectError::Unreachable {
                target,
                detail: s(detail),
            },
            ConnectError::AuthFailed {
                target,
                user,
                detail,
            } => ConnectError::AuthFailed {
                target,
                user,
                detail: s(detail),
            },
            ConnectError::DatabaseMissing {
                target,
                dbname,
                detail,
            } => ConnectError::DatabaseMissing {
                target,
                dbname,
                detail: s(detail),
            },
            ConnectError::Tls { target, detail } => ConnectError::Tls {
                target,
                detail: s(detail),
            },
            ConnectError::Other { target, detail } => ConnectError::Other {
                target,
                detail: s(detail),
            },
            other @ (ConnectError::NoTarget | ConnectError::UnsupportedScheme { .. }) => other,
        }
    }
}

fn bad(source_name: &str, reason: impl Into<String>) -> ConnectError {
    ConnectError::BadTarget {
        source_name: source_name.to_owned(),
        reason: reason.into(),
    }
}

/// Replaces every occurrence of every non-empty secret; longest first so that a secret
/// containing another is masked whole.
fn scrub(mut text: String, secrets: &[String]) -> String {
    let mut sorted: Vec<&String> = secrets.iter().filter(|s| !s.is_empty()).collect();
    sorted.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for secret in sorted {
        if text.contains(secret.as_str()) {
            text = text.replace(secret.as_str(), MASK);
        }
    }
    text
}

/// Which root certificates verify the server when verification is on.
#[derive(Clone)]
enum RootCerts {
    /// Nothing configured: webpki-roots (Mozilla's list) if a mode verifies.
    Default,
    /// `sslrootcert=system`: webpki-roots, and counts as configured for `require`.
    System,
    /// A PEM file, already loaded so that a bad path is reported before connecting.
    File(PathBuf, Vec<CertificateDer<'static>>),
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
            RootCerts::System => Some(PathBuf::from("system")),
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

/// One connection setting and who supplied it, so an error can name the culprit.
struct Setting {
    key: String,
    value: String,
    origin: &'static str,
}

/// Settings parsed from the target, in libpq's "the last one given wins" fashion.
#[derive(Default)]
struct Settings(Vec<Setting>);

impl Settings {
    fn set(&mut self, key: &str, value: String, origin: &'static str) {
        self.0.retain(|s| s.key != key);
        self.0.push(Setting {
            key: key.to_owned(),
            value,
            origin,
        });
    }

    /// Removes and returns a setting; an empty value counts as not given, as libpq does.
    fn take(&mut self, key: &str) -> Option<Setting> {
        let idx = self.0.iter().position(|s| s.key == key)?;
        Some(self.0.remove(idx)).filter(|s| !s.value.is_empty())
    }
}

type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// An environment variable, with empty values treated as unset (`PGPASSWORD=` in CI scripts).
fn env_var(env: Env<'_>, name: &str) -> Option<String> {
    env(name).filter(|v| !v.is_empty())
}

/// The target's value for `key`, else the `var` environment variable: libpq's precedence.
fn pick(settings: &mut Settings, key: &str, var: &'static str, env: Env<'_>) -> Option<Setting> {
    settings.take(key).or_else(|| {
        env_var(env, var).map(|value| Setting {
            key: key.to_owned(),
            value,
            origin: var,
        })
    })
}

impl PgTarget {
    /// Resolves the target: `flag` (the --target value) else env PACER_TARGET else env DATABASE_URL; then fills gaps from
    /// the libpq environment and ~/.pgpass. `env` is injected (tests pass a closure over a HashMap; production passes std::env::var().ok()),
    /// `home` is the home directory (for ~/.pgpass; PGPASSFILE env overrides the path).
    pub fn resolve(
        flag: Option<&str>,
        env: &dyn Fn(&str) -> Option<String>,
        home: Option<&Path>,
    ) -> Result<PgTarget, ConnectError> {
        let given = |v: &str| !v.trim().is_empty();
        let (raw, source) = if let Some(flag) = flag.filter(|f| given(f)) {
            (flag.to_owned(), TargetSource::Flag)
        } else if let Some(v) = env("PACER_TARGET").filter(|v| given(v)) {
            (v, TargetSource::PacerTarget)
        } else if let Some(v) = env("DATABASE_URL").filter(|v| given(v)) {
            (v, TargetSource::DatabaseUrl)
        } else {
            return Err(ConnectError::NoTarget);
        };
        let mut secrets = Vec::new();
        Self::resolve_raw(raw.trim(), source, env, home, &mut secrets)
            .map_err(|e| e.scrubbed(&secrets))
    }

    fn resolve_raw(
        raw: &str,
        source: TargetSource,
        env: Env<'_>,
        home: Option<&Path>,
        secrets: &mut Vec<String>,
    ) -> Result<PgTarget, ConnectError> {
        let origin = source.name();
        let mut settings = Settings::default();
        match url_scheme(raw) {
            Some(scheme) if scheme == "postgres" || scheme == "postgresql" => {
                let rest = &raw[scheme.len() + 3..];
                for (key, value) in parse_url(rest, origin, secrets)? {
                    settings.set(&key, value, origin);
                }
            }
            Some(scheme) => {
                return Err(ConnectError::UnsupportedScheme {
                    source_name: origin.to_owned(),
                    scheme,
                });
            }
            None if raw.contains('=') => {
                for (key, value) in parse_key_value(raw).map_err(|r| bad(origin, r))? {
                    if key == "password" {
                        secrets.push(value.clone());
                    }
                    settings.set(&key, value, origin);
                }
            }
            None => {
                return Err(bad(
                    origin,
                    "it is neither a postgres:// URL nor a libpq key=value string (like \"host=db1 dbname=app\")",
                ));
            }
        }
        Self::build(settings, source, env, home, secrets)
    }

    fn build(
        mut settings: Settings,
        source: TargetSource,
        env: Env<'_>,
        home: Option<&Path>,
        secrets: &mut Vec<String>,
    ) -> Result<PgTarget, ConnectError> {
        // Hosts and host addresses.
        let hostaddrs = match pick(&mut settings, "hostaddr", "PGHOSTADDR", env) {
            Some(s) => s
                .value
                .split(',')
                .map(|a| a.trim().parse::<IpAddr>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| {
                    bad(
                        s.origin,
                        "hostaddr must be a comma-separated list of numeric IP addresses",
                    )
                })?,
            None => Vec::new(),
        };
        let hosts: Vec<String> = match pick(&mut settings, "host", "PGHOST", env) {
            // An empty entry in a host list means "the default", as in libpq.
            Some(s) => s
                .value
                .split(',')
                .map(|h| {
                    if h.is_empty() {
                        default_socket_dir()
                    } else {
                        h.to_owned()
                    }
                })
                .collect(),
            None if hostaddrs.is_empty() => vec![default_socket_dir()],
            None => Vec::new(),
        };
        if !hosts.is_empty() && !hostaddrs.is_empty() && hosts.len() != hostaddrs.len() {
            return Err(bad(
                source.name(),
                format!(
                    "{} hosts but {} hostaddrs were given; give one hostaddr per host",
                    hosts.len(),
                    hostaddrs.len()
                ),
            ));
        }
        let endpoints = hosts.len().max(hostaddrs.len());

        // Ports: one for all hosts, or one per host.
        let ports: Vec<u16> = match pick(&mut settings, "port", "PGPORT", env) {
            Some(s) => {
                let ports = s
                    .value
                    .split(',')
                    .map(|p| parse_port(p.trim()))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| {
                        // Values from the target are not echoed: a mis-split URL could put part
                        // of a password here. Environment variables are safe to quote.
                        let what = if s.origin.starts_with("PG") {
                            format!("{}={:?}", s.origin, s.value)
                        } else {
                            "the port".to_owned()
                        };
                        bad(
                            s.origin,
                            format!("{what} is not a number between 1 and 65535"),
                        )
                    })?;
                if ports.len() != 1 && ports.len() != endpoints {
                    return Err(bad(
                        s.origin,
                        format!(
                            "{} ports were given for {endpoints} hosts; give one port, or one per host",
                            ports.len()
                        ),
                    ));
                }
                ports
            }
            None => vec![DEFAULT_PORT],
        };

        let user = pick(&mut settings, "user", "PGUSER", env)
            .map(|s| s.value)
            .or_else(|| env_var(env, "USER"))
            .or_else(|| env_var(env, "LOGNAME"))
            .unwrap_or_else(|| "postgres".to_owned());
        let dbname = pick(&mut settings, "dbname", "PGDATABASE", env)
            .map(|s| s.value)
            .unwrap_or_else(|| user.clone());

        let ssl_mode = match pick(&mut settings, "sslmode", "PGSSLMODE", env) {
            Some(s) => SslMode::parse(&s.value).ok_or_else(|| {
                bad(
                    s.origin,
                    format!(
                        "unknown sslmode {:?}; use disable, allow, prefer, require, verify-ca or verify-full",
                        s.value
                    ),
                )
            })?,
            None => SslMode::Prefer,
        };
        let roots = match pick(&mut settings, "sslrootcert", "PGSSLROOTCERT", env) {
            Some(s) if s.value == "system" => RootCerts::System,
            Some(s) => {
                let path = PathBuf::from(&s.value);
                let certs = load_root_certs(&path).map_err(|r| bad(s.origin, r))?;
                RootCerts::File(path, certs)
            }
            None => RootCerts::Default,
        };
        let connect_timeout = match pick(&mut settings, "connect_timeout", "PGCONNECT_TIMEOUT", env)
        {
            Some(s) => match s.value.trim().parse::<i64>() {
                // libpq: zero or negative means wait forever.
                Ok(secs) if secs <= 0 => None,
                // libpq: anything under 2 s is raised to 2 s, so one slow packet is not fatal.
                Ok(secs) => Some(Duration::from_secs(secs.max(2).unsigned_abs())),
                Err(_) => {
                    return Err(bad(
                        s.origin,
                        "connect_timeout must be a whole number of seconds",
                    ));
                }
            },
            None => Some(DEFAULT_CONNECT_TIMEOUT),
        };
        let passfile = pick(&mut settings, "passfile", "PGPASSFILE", env)
            .map(|s| PathBuf::from(s.value))
            .or_else(|| home.map(|h| h.join(".pgpass")));

        // Password: the target, else PGPASSWORD, else the password file (libpq's order).
        let (password, password_origin) = if let Some(s) = settings.take("password") {
            (Some(s.value), PasswordOrigin::Target(source))
        } else if let Some(p) = env_var(env, "PGPASSWORD") {
            (Some(p), PasswordOrigin::PgPassword)
        } else {
            // Like libpq, with several hosts the file is consulted for the first one only.
            let host = hosts
                .first()
                .cloned()
                .or_else(|| hostaddrs.first().map(IpAddr::to_string))
                .unwrap_or_default();
            match passfile
                .as_deref()
                .and_then(|path| pgpass_password(path, &host, ports[0], &dbname, &user))
            {
                Some(p) => (
                    Some(p),
                    PasswordOrigin::PassFile(passfile.clone().unwrap_or_default()),
                ),
                None => (None, PasswordOrigin::None),
            }
        };
        if let Some(p) = &password {
            secrets.push(p.clone());
        }

        // Everything left (options, keepalives, target_session_attrs, ...) is tokio-postgres's.
        let rest = settings
            .0
            .iter()
            .map(|s| {
                if s.key.is_empty() || s.key.contains(|c: char| c.is_whitespace() || c == '=') {
                    Err(bad(s.origin, "an option name in the target is malformed"))
                } else {
                    Ok(format!("{}='{}'", s.key, quote_value(&s.value)))
                }
            })
            .collect::<Result<Vec<_>, _>>()?
            .join(" ");
        let mut config = Config::from_str(&rest).map_err(|e| {
            let reason = e.source().map_or_else(|| e.to_string(), |s| s.to_string());
            bad(source.name(), reason)
        })?;
        config.user(&user).dbname(&dbname);
        if let Some(p) = &password {
            config.password(p.as_bytes());
        }
        for host in &hosts {
            config.host(host);
        }
        for addr in &hostaddrs {
            config.hostaddr(*addr);
        }
        for port in &ports {
            config.port(*port);
        }

        Ok(PgTarget {
            config,
            ssl_mode,
            roots,
            connect_timeout,
            source,
            password_origin,
        })
    }

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

    /// Connects with the given application_name and a connect timeout (default 10 s), spawns the connection
    /// task on tokio, returns the client. Errors are classified (below).
    pub async fn connect(&self, application_name: &str) -> Result<Client, ConnectError> {
        let mut config = self.config.clone();
        config.application_name(application_name);
        if let Some(t) = self.connect_timeout {
            config.connect_timeout(t);
        }
        // libpq never uses TLS over Unix sockets whatever sslmode says; tokio-postgres would
        // fail `require` there, so do as libpq does.
        let unix_only = config.get_hostaddrs().is_empty()
            && config
                .get_hosts()
                .iter()
                .all(|h| !matches!(h, Host::Tcp(_)));
        let result = if unix_only {
            self.attempt(&config, TlsPlan::Plain).await
        } else {
            match self.ssl_mode {
                SslMode::Disable => self.attempt(&config, TlsPlan::Plain).await,
                // libpq's allow: plain first, TLS only when the server turned plain down.
                SslMode::Allow => match self.attempt(&config, TlsPlan::Plain).await {
                    Err(Failure::Pg(e)) if e.as_db_error().is_some() => {
                        self.attempt(&config, TlsPlan::Tls(WireSslMode::Prefer, Verify::Nothing))
                            .await
                    }
                    other => other,
                },
                // libpq's prefer also falls back to plain when the TLS handshake itself fails.
                SslMode::Prefer => {
                    match self
                        .attempt(&config, TlsPlan::Tls(WireSslMode::Prefer, Verify::Nothing))
                        .await
                    {
                        Err(Failure::Pg(e)) if is_tls_error(&e) => {
                            self.attempt(&config, TlsPlan::Plain).await
                        }
                        other => other,
                    }
                }
                SslMode::Require => {
                    // libpq: with a root certificate configured, require behaves as verify-ca.
                    let verify = match self.roots {
                        RootCerts::Default => Verify::Nothing,
                        RootCerts::System | RootCerts::File(..) => Verify::Chain,
                    };
                    self.attempt(&config, TlsPlan::Tls(WireSslMode::Require, verify))
                        .await
                }
                SslMode::VerifyCa => {
                    self.attempt(&config, TlsPlan::Tls(WireSslMode::Require, Verify::Chain))
                        .await
                }
                SslMode::VerifyFull => {
                    self.attempt(&config, TlsPlan::Tls(WireSslMode::Require, Verify::Full))
                        .await
                }
            }
        };
        result.map_err(|f| self.classify(f).scrubbed(&self.secrets()))
    }

    fn secrets(&self) -> Vec<String> {
        self.config
            .get_password()
            .map(|p| vec![String::from_utf8_lossy(p).into_owned()])
            .unwrap_or_default()
    }

    /// The whole attempt's deadline: tokio-postgres' connect_timeout covers only the TCP
    /// connect, so a server that accepts and then says nothing would hang us forever.
    fn overall_timeout(&self) -> Option<Duration> {
        let endpoints = self
            .config
            .get_hosts()
            .len()
            .max(self.config.get_hostaddrs().len())
            .max(1);
        self.connect_timeout
            .map(|t| t.saturating_mul(u32::try_from(endpoints).unwrap_or(u32::MAX)))
    }

    async fn attempt(&self, config: &Config, plan: TlsPlan) -> Result<Client, Failure> {
        let mut config = config.clone();
        match plan {
            TlsPlan::Plain => {
                config.ssl_mode(WireSslMode::Disable);
                self.open(&config, NoTls).await
            }
            TlsPlan::Tls(mode, verify) => {
                config.ssl_mode(mode);
                let tls = self.rustls_connector(verify).map_err(Failure::TlsSetup)?;
                self.open(&config, tls).await
            }
        }
    }

    async fn open<T>(&self, config: &Config, tls: T) -> Result<Client, Failure>
    where
        T: MakeTlsConnect<Socket>,
        T::Stream: Send + 'static,
    {
        let pending = config.connect(tls);
        let (client, connection) = match self.overall_timeout() {
            Some(limit) => tokio::time::timeout(limit, pending)
                .await
                .map_err(|_| Failure::TimedOut(limit))?,
            None => pending.await,
        }
        .map_err(Failure::Pg)?;
        let target = self.redacted();
        let secrets = self.secrets();
        tokio::spawn(async move {
            // The client only sees "connection closed"; the reason (e.g. the server was shut
            // down) exists only here, so it must be logged.
            if let Err(e) = connection.await {
                let error = scrub(error_text(&e), &secrets);
                tracing::warn!(target_db = %target, %error, "PostgreSQL connection ended with an error");
            }
        });
        Ok(client)
    }

    fn rustls_connector(&self, verify: Verify) -> Result<MakeRustlsConnect, String> {
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

    fn classify(&self, failure: Failure) -> ConnectError {
        let target = self.redacted();
        let err = match failure {
            Failure::TimedOut(limit) => {
                return ConnectError::Unreachable {
                    target,
                    detail: format!(
                        "no answer within {} s (connect_timeout; raise it with ?connect_timeout=SECONDS)",
                        limit.as_secs()
                    ),
                };
            }
            Failure::TlsSetup(detail) => return ConnectError::Tls { target, detail },
            Failure::Pg(err) => err,
        };

        if let Some(db) = err.as_db_error() {
            let detail = db_error_text(db);
            let code = db.code();
            return if *code == SqlState::INVALID_PASSWORD
                || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
            {
                ConnectError::AuthFailed {
                    target,
                    user: self.user().to_owned(),
                    detail: format!("{detail} (password: {})", self.password_origin),
                }
            } else if *code == SqlState::INVALID_CATALOG_NAME {
                ConnectError::DatabaseMissing {
                    target,
                    dbname: self.dbname().to_owned(),
                    detail,
                }
            } else {
                ConnectError::Other { target, detail }
            };
        }

        let detail = error_text(&err);
        if detail.contains("server does not support TLS") {
            return ConnectError::Tls {
                target,
                detail: format!(
                    "the server does not accept TLS connections, but sslmode={} requires TLS; enable ssl on the server, or use sslmode=prefer if an unencrypted connection is acceptable",
                    self.ssl_mode
                ),
            };
        }
        if is_tls_error(&err) {
            return ConnectError::Tls { target, detail };
        }
        if detail.contains("password missing") {
            return ConnectError::AuthFailed {
                target,
                user: self.user().to_owned(),
                detail: "the server asked for a password, but none was given in the target, PGPASSWORD or the password file".to_owned(),
            };
        }
        if err.to_string().starts_with("authentication error") {
            return ConnectError::AuthFailed {
                target,
                user: self.user().to_owned(),
                detail,
            };
        }
        let unreachable_kind = error_chain(&err).iter().any(|e| {
            e.downcast_ref::<io::Error>().is_some_and(|io| {
                matches!(
                    io.kind(),
                    io::ErrorKind::ConnectionRefused
                        | io::ErrorKind::ConnectionReset
                        | io::ErrorKind::ConnectionAborted
                        | io::ErrorKind::NotConnected
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::HostUnreachable
                        | io::ErrorKind::NetworkUnreachable
                        | io::ErrorKind::AddrNotAvailable
                        | io::ErrorKind::NotFound
                        | io::ErrorKind::BrokenPipe
                        | io::ErrorKind::UnexpectedEof
                )
            })
        });
        let top = err.to_string();
        // "error connecting to server" covers DNS failures, whose io kind is uncategorised;
        // "timeout waiting for server" is tokio-postgres' own TCP connect timeout; a server
        // hanging up during startup is usually one that is restarting.
        if unreachable_kind
            || top.starts_with("error connecting to server")
            || top.starts_with("timeout waiting for server")
            || err.is_closed()
        {
            return ConnectError::Unreachable { target, detail };
        }
        ConnectError::Other { target, detail }
    }
}

/// How one connection attempt negotiates TLS.
#[derive(Clone, Copy)]
enum TlsPlan {
    Plain,
    Tls(WireSslMode, Verify),
}

/// How much of the server certificate is checked.
#[derive(Clone, Copy)]
enum Verify {
    Nothing,
    Chain,
    Full,
}

/// Why one attempt failed, before classification.
enum Failure {
    Pg(tokio_postgres::Error),
    TimedOut(Duration),
    TlsSetup(String),
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

/// The error and its causes. `io::Error::source()` skips the error it wraps, so the wrapped
/// one (where rustls puts its certificate errors) is followed explicitly.
fn error_chain<'a>(err: &'a (dyn StdError + 'static)) -> Vec<&'a (dyn StdError + 'static)> {
    let mut chain = Vec::new();
    let mut current = Some(err);
    while let Some(e) = current {
        chain.push(e);
        if chain.len() > 16 {
            break;
        }
        current = match e.downcast_ref::<io::Error>().and_then(io::Error::get_ref) {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => e.source(),
        };
    }
    chain
}

/// The chain as one line, without repeating a cause its parent already printed.
fn error_text(err: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    for e in error_chain(err) {
        let text = e.to_string();
        if parts.last().is_some_and(|prev| prev.contains(&text)) {
            continue;
        }
        parts.push(text);
    }
    parts.join(": ")
}

fn is_tls_error(err: &tokio_postgres::Error) -> bool {
    err.to_string()
        .starts_with("error performing TLS handshake")
        || error_chain(err)
            .iter()
            .any(|e| e.downcast_ref::<rustls::Error>().is_some())
}

/// A server error on one line, with its SQLSTATE (which `is_retryable` relies on).
fn db_error_text(db: &DbError) -> String {
    let mut text = format!(
        "{}: {} (SQLSTATE {})",
        db.severity(),
        db.message(),
        db.code().code()
    );
    if let Some(detail) = db.detail() {
        text.push_str("; ");
        text.push_str(detail);
    }
    if let Some(hint) = db.hint() {
        text.push_str("; hint: ");
        text.push_str(hint);
    }
    text.replace('\n', " ")
}

fn endpoint(host: &Host, port: u16) -> String {
    match host {
        Host::Tcp(h) if h.contains(':') => format!("[{h}]:{port}"),
        Host::Tcp(h) => format!("{h}:{port}"),
        #[cfg(unix)]
        Host::Unix(path) => format!("{}:{port}", path.display()),
    }
}

/// libpq's compiled-in socket directory differs by distribution: Debian's when present, the
/// upstream /tmp otherwise.
fn default_socket_dir() -> String {
    if Path::new("/var/run/postgresql").is_dir() {
        "/var/run/postgresql".to_owned()
    } else {
        "/tmp".to_owned()
    }
}

/// An empty port means the default, as in libpq's host lists.
fn parse_port(p: &str) -> Option<u16> {
    if p.is_empty() {
        return Some(DEFAULT_PORT);
    }
    p.parse::<u16>().ok().filter(|p| *p != 0)
}

fn quote_value(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\'', "\\'")
}

fn load_root_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
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

/// The scheme of `scheme://...`, lower-cased, if the string starts with one.
fn url_scheme(raw: &str) -> Option<String> {
    let (scheme, _) = raw.split_once("://")?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then(|| scheme.to_ascii_lowercase())
}

/// Decodes %XX escapes; None on a malformed escape or non-UTF-8 result.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Parses the part of a postgres:// URL after the scheme into libpq keywords, as libpq's
/// conninfo_uri_parse does: `[user[:password]@][host[:port][,...]][/dbname][?key=value&...]`.
fn parse_url(
    rest: &str,
    origin: &str,
    secrets: &mut Vec<String>,
) -> Result<Vec<(String, String)>, ConnectError> {
    let decode = |part: &str, what: &str| {
        percent_decode(part).ok_or_else(|| {
            bad(
                origin,
                format!("the {what} has a malformed %-escape (use %XX with two hex digits)"),
            )
        })
    };
    let mut out = Vec::new();

    // Credentials end at the last '@' before the path: an unencoded '@' in a password is a
    // common slip, and a host name never contains one.
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let mut rest = match rest[..authority_end].rfind('@') {
        Some(at) => {
            let (user, password) = match rest[..at].split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (&rest[..at], None),
            };
            if let Some(p) = password {
                secrets.push(p.to_owned());
                let p = decode(p, "password")?;
                secrets.push(p.clone());
                out.push(("password".to_owned(), p));
            }
            out.push(("user".to_owned(), decode(user, "user name")?));
            &rest[at + 1..]
        }
        None => rest,
    };

    let host_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (hostspec, tail) = rest.split_at(host_end);
    rest = tail;
    if !hostspec.is_empty() {
        let mut hosts = Vec::new();
        let mut ports = Vec::new();
        for chunk in hostspec.split(',') {
            let (host, port) = if let Some(bracketed) = chunk.strip_prefix('[') {
                let (host, after) = bracketed.split_once(']').ok_or_else(|| {
                    bad(origin, "an IPv6 address in the URL lacks its closing ']'")
                })?;
                let port = match after {
                    "" => "",
                    _ => after.strip_prefix(':').ok_or_else(|| {
                        bad(origin, "unexpected text after an IPv6 address in the URL")
                    })?,
                };
                (host, port)
            } else {
                chunk.split_once(':').unwrap_or((chunk, ""))
            };
            hosts.push(decode(host, "host")?);
            ports.push(decode(port, "port")?);
        }
        if hosts.iter().any(|h| !h.is_empty()) {
            out.push(("host".to_owned(), hosts.join(",")));
        }
        // No port anywhere leaves the port unset, so PGPORT can still fill it in.
        if ports.iter().any(|p| !p.is_empty()) {
            out.push(("port".to_owned(), ports.join(",")));
        }
    }

    if let Some(path) = rest.strip_prefix('/') {
        let (db, tail) = path.split_at(path.find('?').unwrap_or(path.len()));
        rest = tail;
        let db = decode(db, "database name")?;
        if !db.is_empty() {
            out.push(("dbname".to_owned(), db));
        }
    }

    if let Some(query) = rest.strip_prefix('?') {
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').ok_or_else(|| {
                bad(
                    origin,
                    "a URL query parameter lacks '=' (write ?key=value&key=value)",
                )
            })?;
            let key = decode(key, "query parameter name")?;
            let value = decode(value, "query parameter value")?;
            match key.as_str() {
                // JDBC's spelling, which libpq also accepts.
                "ssl" if value == "true" => out.push(("sslmode".to_owned(), "require".to_owned())),
                "password" => {
                    secrets.push(value.clone());
                    out.push((key, value));
                }
                _ => out.push((key, value)),
            }
        }
    }
    Ok(out)
}

/// Parses libpq's `key=value key='quoted value'` form. Errors give byte offsets, not text,
/// since the text around a quoting mistake may well be a password.
fn parse_key_value(input: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut chars = input.char_indices().peekable();
    loop {
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let Some(&(start, _)) = chars.peek() else {
            break;
        };
        let mut key = String::new();
        while let Some((_, c)) = chars.next_if(|(_, c)| !c.is_whitespace() && *c != '=') {
            key.push(c);
        }
        if key.is_empty() {
            return Err(format!("expected an option name at byte {start}"));
        }
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        if chars.next_if(|(_, c)| *c == '=').is_none() {
            return Err(format!(
                "expected '=' after the option name that starts at byte {start}; quote values containing spaces, like password='a b'"
            ));
        }
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if(|(_, c)| *c == '\'').is_some() {
            loop {
                match chars.next() {
                    Some((_, '\'')) => break,
                    Some((_, '\\')) => {
                        if let Some((_, c)) = chars.next() {
                            value.push(c);
                        }
                    }
                    Some((_, c)) => value.push(c),
                    None => {
                        return Err(format!(
                            "the quoted value of the option that starts at byte {start} is not closed with '"
                        ));
                    }
                }
            }
        } else {
            while let Some((_, c)) = chars.next_if(|(_, c)| !c.is_whitespace()) {
                if c == '\\' {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(escaped);
                    }
                } else {
                    value.push(c);
                }
            }
        }
        out.push((key, value));
    }
    Ok(out)
}

/// Reads the password file and finds the password, like libpq: missing file is silent, a file
/// others can read is ignored with a warning.
fn pgpass_password(path: &Path, host: &str, port: u16, dbname: &str, user: &str) -> Option<String> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read the password file; ignoring it");
            return None;
        }
    };
    if !meta.is_file() {
        tracing::warn!(path = %path.display(), "the password file is not a plain file; ignoring it");
        return None;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                "the password file has group or world access; ignoring it (as libpq does). Fix with: chmod 0600 {}",
                path.display()
            );
            return None;
        }
    }
    match std::fs::read_to_string(path) {
        Ok(contents) => pgpass_lookup(&contents, host, port, dbname, user),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read the password file; ignoring it");
            None
        }
    }
}

/// The first matching line's password. Fields are `host:port:db:user:password`; `*` matches
/// anything; `\:` and `\\` escape. A Unix-socket host matches `localhost` or its path.
fn pgpass_lookup(
    contents: &str,
    host: &str,
    port: u16,
    dbname: &str,
    user: &str,
) -> Option<String> {
    let port = port.to_string();
    let hosts: Vec<&str> = if host.starts_with('/') || host.is_empty() {
        vec!["localhost", host]
    } else {
        vec![host]
    };
    for line in contents.lines() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields = split_pgpass_line(line);
        if fields.len() < 5 {
            continue;
        }
        let matches = |field: &(String, bool), want: &str| {
            let (value, literal_star) = field;
            (value == "*" && !literal_star) || value == want
        };
        if hosts.iter().any(|h| matches(&fields[0], h))
            && matches(&fields[1], &port)
            && matches(&fields[2], dbname)
            && matches(&fields[3], user)
        {
            return Some(fields[4].0.clone());
        }
    }
    None
}

/// Splits on unescaped ':' and unescapes. The flag marks a field that was written `\*`,
/// which is a literal star, not the wildcard. The fifth field (password) ends at the next
/// unescaped ':' as in libpq.
fn split_pgpass_line(line: &str) -> Vec<(String, bool)> {
    let mut fields = Vec::new();
    let mut current = String::new();
    let mut escaped_star = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(next) => {
                    if next == '*' && current.is_empty() {
                        escaped_star = true;
                    }
                    current.push(next);
                }
                None => current.push('\\'),
            },
            ':' => {
                fields.push((std::mem::take(&mut current), escaped_star));
                escaped_star = false;
                if fields.len() == 5 {
                    return fields;
                }
            }
            _ => current.push(c),
        }
    }
    fields.push((current, escaped_star));
    fields
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::io::{Read, Write};

    const SECRET: &str = "s3cr3t-Pa55";
    /// A self-signed P-256 CA, only ever parsed, never trusted for anything.
    const TEST_CA: &str = "-----BEGIN CERTIFICATE-----
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
    const TEST_CA_2: &str = "-----BEGIN CERTIFICATE-----
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

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k: &str| map.get(k).cloned()
    }

    fn resolve(flag: &str, pairs: &[(&str, &str)]) -> Result<PgTarget, ConnectError> {
        PgTarget::resolve(Some(flag), &env_of(pairs), None)
    }

    fn password(t: &PgTarget) -> Option<String> {
        t.config
            .get_password()
            .map(|p| String::from_utf8(p.to_vec()).unwrap())
    }

    fn tcp_hosts(t: &PgTarget) -> Vec<String> {
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

    fn write_file(dir: &Path, name: &str, contents: &str, mode: u32) -> PathBuf {
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

    #[test]
    fn parses_a_full_url() {
        let t = resolve(
            "postgres://alice:pw@db.example.com:6543/app?application_name=x&keepalives=0",
            &[],
        )
        .unwrap();
        assert_eq!(t.user(), "alice");
        assert_eq!(t.dbname(), "app");
        assert_eq!(password(&t).as_deref(), Some("pw"));
        assert_eq!(tcp_hosts(&t), ["db.example.com"]);
        assert_eq!(t.config.get_ports(), [6543]);
        assert_eq!(t.config.get_application_name(), Some("x"));
        assert!(!t.config.get_keepalives());
        assert_eq!(t.ssl_mode(), SslMode::Prefer);
        assert_eq!(t.source(), TargetSource::Flag);
        assert_eq!(t.redacted(), "alice@db.example.com:6543/app");
        assert_eq!(t.connect_timeout, Some(DEFAULT_CONNECT_TIMEOUT));
    }

    #[test]
    fn parses_postgresql_scheme_percent_escapes_ipv6_and_multi_host() {
        let t = resolve("postgresql://us%40er:p%3Aw%2Fd@[::1]:5433,h2/my%20db", &[]).unwrap();
        assert_eq!(t.user(), "us@er");
        assert_eq!(password(&t).as_deref(), Some("p:w/d"));
        assert_eq!(tcp_hosts(&t), ["::1", "h2"]);
        assert_eq!(t.config.get_ports(), [5433, 5432]);
        assert_eq!(t.dbname(), "my db");
        assert_eq!(t.redacted(), "us@er@[::1]:5433,h2:5432/my db");

        let t = resolve("POSTGRES://u@h", &[]).unwrap();
        assert_eq!(tcp_hosts(&t), ["h"]);
        assert_eq!(t.dbname(), "u", "dbname defaults to the user");
    }

    #[test]
    fn unencoded_at_sign_in_password_is_tolerated() {
        let t = resolve("postgres://u:p@ss@h/db", &[]).unwrap();
        assert_eq!(password(&t).as_deref(), Some("p@ss"));
        assert_eq!(tcp_hosts(&t), ["h"]);
    }

    #[cfg(unix)]
    #[test]
    fn unix_socket_hosts_in_url_and_query() {
        let t = resolve("postgres://u@%2Fvar%2Frun%2Fpostgresql/db", &[]).unwrap();
        assert_eq!(
            t.config.get_hosts(),
            [Host::Unix(PathBuf::from("/var/run/postgresql"))]
        );
        let t = resolve("postgresql:///db?host=/tmp/sock&port=6000&user=bob", &[]).unwrap();
        assert_eq!(
            t.config.get_hosts(),
            [Host::Unix(PathBuf::from("/tmp/sock"))]
        );
        assert_eq!(t.config.get_ports(), [6000]);
        assert_eq!(t.user(), "bob");
        assert_eq!(t.redacted(), "bob@/tmp/sock:6000/db");
    }

    #[test]
    fn parses_key_value_strings() {
        let t = resolve(
            r"host=db1 port=5440 dbname=app user=carol password='a b\'c' sslmode=verify-ca connect_timeout=3",
            &[],
        )
        .unwrap();
        assert_eq!(tcp_hosts(&t), ["db1"]);
        assert_eq!(t.config.get_ports(), [5440]);
        assert_eq!(t.dbname(), "app");
        assert_eq!(t.user(), "carol");
        assert_eq!(password(&t).as_deref(), Some("a b'c"));
        assert_eq!(t.ssl_mode(), SslMode::VerifyCa);
        assert_eq!(t.connect_timeout, Some(Duration::from_secs(3)));

        let t = resolve("host = db2  dbname = x", &[]).unwrap();
        assert_eq!(tcp_hosts(&t), ["db2"]);
        assert_eq!(t.dbname(), "x");

        let err = resolve("host=db2 password='unterminated", &[]).unwrap_err();
        assert!(matches!(err, ConnectError::BadTarget { .. }), "{err}");
        let err = resolve("host=db2 password=a b c", &[]).unwrap_err();
        assert!(matches!(err, ConnectError::BadTarget { .. }), "{err}");
    }

    #[test]
    fn malformed_targets_are_bad_target_naming_the_source() {
        for (target, needle) in [
            ("postgres://u@h:notaport/db", "port"),
            ("postgres://u@h:70000/db", "port"),
            ("postgres://u@h:0/db", "port"),
            ("postgres://u@h/d%zzb", "database name"),
            ("postgres://u@[::1/db", "IPv6"),
            ("postgres://u@h/db?sslmode", "'='"),
            ("postgres://u@h/db?frobnicate=1", "frobnicate"),
            ("postgres://u@h/db?keepalives=x", "keepalives"),
            ("postgres://u@h/db?connect_timeout=soon", "connect_timeout"),
            ("postgres://u@h1,h2/db?port=1,2,3", "ports"),
            ("just-a-name", "key=value"),
        ] {
            match resolve(target, &[]) {
                Err(ConnectError::BadTarget {
                    source_name,
                    reason,
                }) => {
                    assert_eq!(source_name, "--target", "{target}");
                    assert!(reason.contains(needle), "{target}: {reason}");
                }
                other => panic!("{target}: expected BadTarget, got {other:?}"),
            }
        }
        match PgTarget::resolve(
            None,
            &env_of(&[("DATABASE_URL", "postgres://u@h:x/")]),
            None,
        ) {
            Err(ConnectError::BadTarget { source_name, .. }) => {
                assert_eq!(source_name, "DATABASE_URL")
            }
            other => panic!("{other:?}"),
        }
        match resolve("postgres://u@h/db", &[("PGPORT", "abc")]) {
            Err(ConnectError::BadTarget {
                source_name,
                reason,
            }) => {
                assert_eq!(source_name, "PGPORT");
                assert!(reason.contains("\"abc\""), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn target_precedence_flag_then_pacer_target_then_database_url() {
        let env = env_of(&[
            ("PACER_TARGET", "postgres://u@from-pacer/db"),
            ("DATABASE_URL", "postgres://u@from-database-url/db"),
        ]);
        let t = PgTarget::resolve(Some("postgres://u@from-flag/db"), &env, None).unwrap();
        assert_eq!(tcp_hosts(&t), ["from-flag"]);
        assert_eq!(t.source(), TargetSource::Flag);

        let t = PgTarget::resolve(None, &env, None).unwrap();
        assert_eq!(tcp_hosts(&t), ["from-pacer"]);
        assert_eq!(t.source(), TargetSource::PacerTarget);

        // An empty flag or variable counts as not given.
        let env = env_of(&[
            ("PACER_TARGET", ""),
            ("DATABASE_URL", "postgres://u@from-database-url/db"),
        ]);
        let t = PgTarget::resolve(Some(" "), &env, None).unwrap();
        assert_eq!(tcp_hosts(&t), ["from-database-url"]);
        assert_eq!(t.source(), TargetSource::DatabaseUrl);

        let err = PgTarget::resolve(None, &env_of(&[("PGHOST", "h")]), None).unwrap_err();
        assert!(matches!(err, ConnectError::NoTarget));
        let msg = err.to_string();
        for needle in [
            "--target postgres://user@host/db",
            "PACER_TARGET",
            "DATABASE_URL",
        ] {
            assert!(msg.contains(needle), "{msg}");
        }
    }

    #[test]
    fn url_wins_over_pg_env_which_fills_the_gaps() {
        let pg_env = [
            ("PGHOST", "envhost"),
            ("PGPORT", "7000"),
            ("PGUSER", "envuser"),
            ("PGPASSWORD", "envpw"),
            ("PGDATABASE", "envdb"),
            ("PGSSLMODE", "require"),
            ("PGCONNECT_TIMEOUT", "0"),
        ];
        let t = resolve(
            "postgres://urluser:urlpw@urlhost:6000/urldb?sslmode=disable&connect_timeout=4",
            &pg_env,
        )
        .unwrap();
        assert_eq!(tcp_hosts(&t), ["urlhost"]);
        assert_eq!(t.config.get_ports(), [6000]);
        assert_eq!(t.user(), "urluser");
        assert_eq!(password(&t).as_deref(), Some("urlpw"));
        assert_eq!(t.dbname(), "urldb");
        assert_eq!(t.ssl_mode(), SslMode::Disable);
        assert_eq!(t.connect_timeout, Some(Duration::from_secs(4)));

        // A URL with only a host: everything else comes from the environment, including the
        // port, which the URL did not give.
        let t = resolve("postgres://urlhost", &pg_env).unwrap();
        assert_eq!(tcp_hosts(&t), ["urlhost"]);
        assert_eq!(t.config.get_ports(), [7000]);
        assert_eq!(t.user(), "envuser");
        assert_eq!(password(&t).as_deref(), Some("envpw"));
        assert!(matches!(t.password_origin, PasswordOrigin::PgPassword));
        assert_eq!(t.dbname(), "envdb");
        assert_eq!(t.ssl_mode(), SslMode::Require);
        assert_eq!(t.connect_timeout, None, "connect_timeout=0 means no limit");

        let t = resolve("dbname=kvdb", &pg_env).unwrap();
        assert_eq!(tcp_hosts(&t), ["envhost"]);
        assert_eq!(t.dbname(), "kvdb");
    }

    #[test]
    fn defaults_follow_libpq() {
        let t = resolve("postgres://", &[("USER", "dave")]).unwrap();
        assert_eq!(t.user(), "dave");
        assert_eq!(t.dbname(), "dave");
        assert_eq!(t.config.get_ports(), [5432]);
        assert_eq!(tcp_hosts(&t), [default_socket_dir()]);
        assert!(password(&t).is_none());

        let t = resolve("postgres:///db", &[("LOGNAME", "erin")]).unwrap();
        assert_eq!(t.user(), "erin");
        let t = resolve("postgres:///db", &[]).unwrap();
        assert_eq!(t.user(), "postgres");

        // hostaddr alone needs no host.
        let t = resolve("postgres:///db?hostaddr=127.0.0.1", &[]).unwrap();
        assert!(t.config.get_hosts().is_empty());
        assert_eq!(t.redacted(), "postgres@127.0.0.1:5432/db");
    }

    #[test]
    fn sslmode_parsing_and_fallbacks() {
        for mode in [
            "disable",
            "allow",
            "prefer",
            "require",
            "verify-ca",
            "verify-full",
        ] {
            let t = resolve(&format!("postgres://u@h/db?sslmode={mode}"), &[]).unwrap();
            assert_eq!(t.ssl_mode().as_str(), mode);
            let t = resolve(&format!("host=h sslmode={mode}"), &[]).unwrap();
            assert_eq!(t.ssl_mode().as_str(), mode);
            let t = resolve("postgres://u@h/db", &[("PGSSLMODE", mode)]).unwrap();
            assert_eq!(t.ssl_mode().as_str(), mode);
        }
        assert_eq!(
            resolve("postgres://u@h/db?ssl=true", &[])
                .unwrap()
                .ssl_mode(),
            SslMode::Require
        );
        assert_eq!(
            resolve(
                "postgres://u@h/db?sslmode=verify-full",
                &[("PGSSLMODE", "disable")]
            )
            .unwrap()
            .ssl_mode(),
            SslMode::VerifyFull
        );
        match resolve("postgres://u@h/db?sslmode=verify_full", &[]) {
            Err(ConnectError::BadTarget {
                source_name,
                reason,
            }) => {
                assert_eq!(source_name, "--target");
                assert!(
                    reason.contains("sslmode") && reason.contains("verify_full"),
                    "{reason}"
                );
            }
            other => panic!("{other:?}"),
        }
        match resolve("postgres://u@h/db", &[("PGSSLMODE", "strict")]) {
            Err(ConnectError::BadTarget { source_name, .. }) => {
                assert_eq!(source_name, "PGSSLMODE")
            }
            other => panic!("{other:?}"),
        }
    }

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

    #[test]
    fn unsupported_schemes() {
        for url in ["mysql://root@localhost/db", "MariaDB://root@h/db"] {
            let err = resolve(url, &[]).unwrap_err();
            assert!(
                matches!(err, ConnectError::UnsupportedScheme { .. }),
                "{err:?}"
            );
            let msg = err.to_string();
            assert!(
                msg.contains("MySQL/MariaDB support is not built yet"),
                "{msg}"
            );
            assert!(msg.contains("--target"), "{msg}");
        }
        let err = resolve("http://example.com", &[]).unwrap_err();
        assert!(
            matches!(err, ConnectError::UnsupportedScheme { .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("postgres://"), "{err}");
    }

    #[test]
    fn pgpass_matching() {
        let file = "\
# comment line:*:*:*:commented
db1:5432:app:alice:first
db1:5432:app:alice:second
*:5433:*:alice:wild
db\\:2:5432:*:*:escaped-host
localhost:5432:*:bob:socket-pw
h:*:d:u:pass\\:with\\\\escapes
\\*:5432:*:star:literal-star
short:line
";
        let look = |h: &str, p: u16, d: &str, u: &str| pgpass_lookup(file, h, p, d, u);
        assert_eq!(look("db1", 5432, "app", "alice").as_deref(), Some("first"));
        assert_eq!(look("db9", 5433, "other", "alice").as_deref(), Some("wild"));
        assert_eq!(look("db9", 5432, "app", "alice"), None);
        assert_eq!(
            look("db:2", 5432, "x", "y").as_deref(),
            Some("escaped-host")
        );
        assert_eq!(
            look("/var/run/postgresql", 5432, "x", "bob").as_deref(),
            Some("socket-pw")
        );
        assert_eq!(
            look("localhost", 5432, "x", "bob").as_deref(),
            Some("socket-pw")
        );
        assert_eq!(
            look("h", 1, "d", "u").as_deref(),
            Some("pass:with\\escapes")
        );
        assert_eq!(
            look("*", 5432, "d", "star").as_deref(),
            Some("literal-star")
        );
        assert_eq!(
            look("anyhost", 5432, "d", "star"),
            None,
            "\\* is not a wildcard"
        );
        assert_eq!(look("# comment line", 1, "x", "y"), None);
        assert_eq!(
            pgpass_lookup("h:1:d:u:crlf\r\n", "h", 1, "d", "u").as_deref(),
            Some("crlf")
        );
    }

    #[cfg(unix)]
    #[test]
    fn pgpass_file_permissions_and_precedence() {
        let dir = tempfile::tempdir().unwrap();
        write_file(dir.path(), ".pgpass", "h:5432:db:u:from-pgpass\n", 0o600);
        let home = Some(dir.path());
        let t = PgTarget::resolve(Some("postgres://u@h/db"), &env_of(&[]), home).unwrap();
        assert_eq!(password(&t).as_deref(), Some("from-pgpass"));
        assert!(matches!(t.password_origin, PasswordOrigin::PassFile(_)));
        assert!(!format!("{t:?}").contains("from-pgpass"));

        // PGPASSWORD and the URL win over the file.
        let env = env_of(&[("PGPASSWORD", "from-env")]);
        let t = PgTarget::resolve(Some("postgres://u@h/db"), &env, home).unwrap();
        assert_eq!(password(&t).as_deref(), Some("from-env"));
        let t = PgTarget::resolve(Some("postgres://u:from-url@h/db"), &env, home).unwrap();
        assert_eq!(password(&t).as_deref(), Some("from-url"));

        // Group- or world-readable: ignored.
        write_file(dir.path(), ".pgpass", "h:5432:db:u:from-pgpass\n", 0o644);
        let t = PgTarget::resolve(Some("postgres://u@h/db"), &env_of(&[]), home).unwrap();
        assert_eq!(password(&t), None);
        write_file(dir.path(), ".pgpass", "h:5432:db:u:from-pgpass\n", 0o640);
        let t = PgTarget::resolve(Some("postgres://u@h/db"), &env_of(&[]), home).unwrap();
        assert_eq!(password(&t), None);

        // PGPASSFILE (and passfile=) point elsewhere.
        let other = write_file(dir.path(), "other", "*:*:*:*:from-passfile\n", 0o600);
        let env = env_of(&[("PGPASSFILE", other.to_str().unwrap())]);
        let t = PgTarget::resolve(Some("postgres://u@h/db"), &env, home).unwrap();
        assert_eq!(password(&t).as_deref(), Some("from-passfile"));
        let t = PgTarget::resolve(
            Some(&format!("postgres://u@h/db?passfile={}", other.display())),
            &env_of(&[]),
            None,
        )
        .unwrap();
        assert_eq!(password(&t).as_deref(), Some("from-passfile"));

        // A Unix-socket target matches "localhost" lines.
        let sock = write_file(dir.path(), "sock", "localhost:5432:db:u:socket-pw\n", 0o600);
        let env = env_of(&[("PGPASSFILE", sock.to_str().unwrap())]);
        let t = PgTarget::resolve(Some("postgres://u@%2Frun%2Fpg/db"), &env, None).unwrap();
        assert_eq!(password(&t).as_deref(), Some("socket-pw"));
    }

    fn assert_no_secret(what: &str, text: &str) {
        assert!(!text.contains(SECRET), "{what} leaks the password: {text}");
        assert!(
            !text.contains("s3cr3t%2DPa55"),
            "{what} leaks the encoded password: {text}"
        );
    }

    #[test]
    fn password_never_shown_by_target_or_resolve_errors() {
        let t = resolve(
            &format!("postgres://alice:{SECRET}@db.example.com/app"),
            &[],
        )
        .unwrap();
        assert_eq!(password(&t).as_deref(), Some(SECRET));
        assert_no_secret("redacted()", &t.redacted());
        assert_no_secret("Debug", &format!("{t:?}"));
        assert_no_secret("Display", &format!("{t}"));
        assert_no_secret("Debug (pretty)", &format!("{t:#?}"));

        let t = resolve(&format!("host=h user=u password={SECRET}"), &[]).unwrap();
        assert_no_secret("Debug", &format!("{t:?}"));
        let t = resolve("postgres://u@h/db", &[("PGPASSWORD", SECRET)]).unwrap();
        assert_no_secret("Debug", &format!("{t:?}"));

        let bad_targets = [
            format!("postgres://alice:{SECRET}@h:99999/db"),
            format!("postgres://alice:{SECRET}@h:port/db"),
            format!("postgres://alice:{SECRET}@h/db%zz"),
            format!("postgres://alice:{SECRET}@h/db?sslmode={SECRET}"),
            format!("postgres://alice:{SECRET}@h/db?{SECRET}=1"),
            format!("postgres://alice:{SECRET}@h/db?keepalives={SECRET}"),
            format!("postgres://alice:{SECRET}@h/db?options=x&bad"),
            format!("postgres://alice:s3cr3t%2DPa55@h/db?{SECRET}=1"),
            format!("postgres://alice:{SECRET}@[::1/db"),
            format!("postgres://alice:{SECRET}/x@h/db"),
            format!("postgres://alice:{SECRET}@h/db?sslrootcert=/nonexistent/{SECRET}"),
            format!("mysql://alice:{SECRET}@h/db"),
            format!("host=h password={SECRET} sslmode={SECRET}"),
            format!("host=h password='{SECRET}"),
            format!("host=h password={SECRET} x"),
            format!("host=h password={SECRET} {SECRET}=1"),
            format!("alice:{SECRET}@h"),
        ];
        for target in &bad_targets {
            let err = resolve(target, &[]).unwrap_err();
            assert_no_secret(target, &err.to_string());
            assert_no_secret(target, &format!("{err:?}"));
        }
        let err = resolve(
            "postgres://u@h/db",
            &[("PGPASSWORD", SECRET), ("PGPORT", "x")],
        )
        .unwrap_err();
        assert_no_secret("PGPORT error", &err.to_string());
    }

    #[test]
    fn scrub_masks_every_occurrence_longest_first() {
        let secrets = vec!["ab".to_owned(), "abcd".to_owned(), String::new()];
        assert_eq!(scrub("xabcdyab".to_owned(), &secrets), "x********y********");
    }

    #[test]
    fn retryable_classification() {
        let other = |detail: &str| ConnectError::Other {
            target: "t".into(),
            detail: detail.into(),
        };
        assert!(other("FATAL: the database system is starting up (SQLSTATE 57P03)").is_retryable());
        assert!(other("FATAL: sorry, too many clients already (SQLSTATE 53300)").is_retryable());
        assert!(!other("FATAL: something else (SQLSTATE XX000)").is_retryable());
        assert!(
            ConnectError::Unreachable {
                target: "t".into(),
                detail: "refused".into()
            }
            .is_retryable()
        );
        for err in [
            ConnectError::NoTarget,
            bad("--target", "x"),
            ConnectError::AuthFailed {
                target: "t".into(),
                user: "u".into(),
                detail: "d".into(),
            },
            ConnectError::Tls {
                target: "t".into(),
                detail: "d".into(),
            },
        ] {
            assert!(!err.is_retryable(), "{err}");
        }
    }

    #[test]
    fn connect_future_is_send() {
        fn assert_send<T: Send>(_: &T) {}
        let t = resolve("postgres://u@h/db", &[]).unwrap();
        let fut = t.connect("pacer");
        assert_send(&fut);
    }

    /// What a fake server answers.
    #[derive(Clone, Copy)]
    enum Fake {
        /// Refuse TLS ('N'), then fail startup with this SQLSTATE and message.
        Error(&'static str, &'static str),
        /// Accept TLS ('S') and then send garbage instead of a handshake.
        BrokenTls,
        /// Accept the TCP connection and never say anything.
        Silent,
    }

    /// A one-connection fake PostgreSQL server on a loopback port, so the classification of
    /// server answers is tested without any real server.
    fn fake_server(behaviour: Fake) -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let Ok((mut sock, _)) = listener.accept() else {
                return;
            };
            sock.set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let read_message = |sock: &mut std::net::TcpStream| -> Option<Vec<u8>> {
                let mut len = [0u8; 4];
                sock.read_exact(&mut len).ok()?;
                let len = u32::from_be_bytes(len) as usize;
                let mut body = vec![0u8; len.saturating_sub(4)];
                sock.read_exact(&mut body).ok()?;
                Some(body)
            };
            if let Fake::Silent = behaviour {
                std::thread::sleep(Duration::from_secs(5));
                return;
            }
            let Some(mut body) = read_message(&mut sock) else {
                return;
            };
            if body == [4, 210, 22, 47] {
                // SSLRequest
                if let Fake::BrokenTls = behaviour {
                    sock.write_all(b"S").unwrap();
                    let _ = sock.write_all(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28, 0, 0, 0]);
                    std::thread::sleep(Duration::from_millis(200));
                    return;
                }
                sock.write_all(b"N").unwrap();
                let Some(next) = read_message(&mut sock) else {
                    return;
                };
                body = next;
            }
            let _ = body;
            if let Fake::Error(code, message) = behaviour {
                let mut fields = Vec::new();
                for (tag, value) in [
                    (b'S', "FATAL"),
                    (b'V', "FATAL"),
                    (b'C', code),
                    (b'M', message),
                ] {
                    fields.push(tag);
                    fields.extend_from_slice(value.as_bytes());
                    fields.push(0);
                }
                fields.push(0);
                let mut msg = vec![b'E'];
                msg.extend_from_slice(&(fields.len() as u32 + 4).to_be_bytes());
                msg.extend_from_slice(&fields);
                let _ = sock.write_all(&msg);
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        port
    }

    fn fake_target(port: u16, extra: &str) -> PgTarget {
        resolve(
            &format!("postgres://alice:{SECRET}@127.0.0.1:{port}/app?{extra}"),
            &[],
        )
        .unwrap()
    }

    fn check_error(err: &ConnectError) {
        assert_no_secret("connect error Display", &err.to_string());
        assert_no_secret("connect error Debug", &format!("{err:?}"));
        assert!(err.to_string().contains("alice@127.0.0.1:"), "{err}");
    }

    #[tokio::test]
    async fn server_errors_are_classified() {
        let port = fake_server(Fake::Error(
            "28P01",
            "password authentication failed for user \"alice\"",
        ));
        let err = fake_target(port, "").connect("pacer").await.unwrap_err();
        check_error(&err);
        assert!(
            matches!(err, ConnectError::AuthFailed { ref user, .. } if user == "alice"),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("password authentication failed for user alice"),
            "{err}"
        );
        assert!(err.to_string().contains("from --target"), "{err}");
        assert!(!err.is_retryable());

        let port = fake_server(Fake::Error("28000", "role \"alice\" does not exist"));
        let err = fake_target(port, "sslmode=disable")
            .connect("pacer")
            .await
            .unwrap_err();
        check_error(&err);
        assert!(matches!(err, ConnectError::AuthFailed { .. }), "{err}");

        let port = fake_server(Fake::Error("3D000", "database \"app\" does not exist"));
        let err = fake_target(port, "").connect("pacer").await.unwrap_err();
        check_error(&err);
        assert!(
            matches!(err, ConnectError::DatabaseMissing { ref dbname, .. } if dbname == "app"),
            "{err}"
        );
        assert!(!err.is_retryable());

        let port = fake_server(Fake::Error("57P03", "the database system is starting up"));
        let err = fake_target(port, "").connect("pacer").await.unwrap_err();
        check_error(&err);
        assert!(matches!(err, ConnectError::Other { .. }), "{err}");
        assert!(err.is_retryable(), "{err}");

        // The server echoing the password must not get it through either.
        let port = fake_server(Fake::Error("XX000", "weird: s3cr3t-Pa55"));
        let err = fake_target(port, "").connect("pacer").await.unwrap_err();
        check_error(&err);
        assert!(err.to_string().contains("weird: ********"), "{err}");
    }

    #[tokio::test]
    async fn tls_failures_are_classified() {
        let port = fake_server(Fake::Error("XX000", "unused"));
        let err = fake_target(port, "sslmode=require")
            .connect("pacer")
            .await
            .unwrap_err();
        check_error(&err);
        assert!(matches!(err, ConnectError::Tls { .. }), "{err}");
        assert!(err.to_string().contains("does not accept TLS"), "{err}");
        assert!(!err.is_retryable());

        let port = fake_server(Fake::BrokenTls);
        let err = fake_target(port, "sslmode=verify-full")
            .connect("pacer")
            .await
            .unwrap_err();
        check_error(&err);
        assert!(matches!(err, ConnectError::Tls { .. }), "{err}");
        assert!(!err.is_retryable());
    }

    #[tokio::test]
    async fn unreachable_and_timeouts_are_retryable() {
        // Bind then drop: the port is very likely closed for the next few milliseconds.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let started = std::time::Instant::now();
        let err = fake_target(port, "").connect("pacer").await.unwrap_err();
        check_error(&err);
        assert!(matches!(err, ConnectError::Unreachable { .. }), "{err}");
        assert!(err.is_retryable());
        assert!(
            err.to_string().contains("accepting TCP connections"),
            "{err}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));

        let port = fake_server(Fake::Silent);
        let started = std::time::Instant::now();
        let err = fake_target(port, "connect_timeout=2")
            .connect("pacer")
            .await
            .unwrap_err();
        check_error(&err);
        assert!(matches!(err, ConnectError::Unreachable { .. }), "{err}");
        assert!(err.to_string().contains("no answer within 2 s"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(4));
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn missing_unix_socket_is_unreachable() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!(
            "postgres://alice:{SECRET}@{}/app?sslmode=verify-full",
            dir.path().display().to_string().replace('/', "%2F")
        );
        let err = resolve(&url, &[])
            .unwrap()
            .connect("pacer")
            .await
            .unwrap_err();
        assert_no_secret("unix socket error", &err.to_string());
        assert!(matches!(err, ConnectError::Unreachable { .. }), "{err}");
    }
}
