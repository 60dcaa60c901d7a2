//! How pacer finds and connects to a MySQL/MariaDB server, the way MySQL users expect.
//!
//! The target is `mysql://user[:password]@host[:port]/database` (or `mariadb://`) from
//! `--target`, else `PACER_TARGET`, else `DATABASE_URL`. What the URL leaves out comes, in this
//! order, from the environment (`MYSQL_PWD`, `MYSQL_HOST`, `MYSQL_TCP_PORT`,
//! `MYSQL_UNIX_PORT`), then from the option file: `?defaults-file=PATH` in the URL, else
//! `PACER_MYSQL_DEFAULTS_FILE`, else `~/.my.cnf` — its `[client]`, `[client-server]`,
//! `[client-mariadb]`, `[mysql]` and `[mariadb-client]` groups (later groups win, as the client
//! reads them; `!include` lines are skipped). The system files (/etc/mysql/…) are not read:
//! they describe the local server's socket, not the target.
//!
//! pacer connects where the target says: a TCP address stays TCP (the driver would otherwise
//! re-open a connection to 127.0.0.1 over the server's Unix socket); `?socket=/path` (or
//! `socket` in the option file, or `MYSQL_UNIX_PORT`, when the URL names no host) connects
//! over that socket.
//!
//! TLS through rustls, by `ssl-mode` (URL query or option file): DISABLED; PREFERRED (the
//! default, as the mysql client: TLS when the server offers it, unverified); REQUIRED (TLS,
//! unverified); VERIFY_CA (the chain against `ssl-ca`, or the system's roots); VERIFY_IDENTITY
//! (chain and host name). rustls cannot check a certificate against an IP address as this
//! driver passes it, so VERIFY_IDENTITY with an IP-address host is refused before connecting.

mod errors;
mod optfile;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mysql_async::{Conn, OptsBuilder, SslOpts};

pub use errors::MyConnectError;

/// How long a connection attempt may take before the server counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// TLS modes, as the mysql client names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// No TLS.
    Disabled,
    /// TLS when the server offers it, certificate not verified.
    Preferred,
    /// TLS, certificate not verified.
    Required,
    /// TLS, certificate chain verified.
    VerifyCa,
    /// TLS, chain and host name verified.
    VerifyIdentity,
}

impl SslMode {
    /// Reads `DISABLED`, `verify-ca`, `VERIFY_IDENTITY` …
    pub fn parse(text: &str) -> Option<SslMode> {
        Some(
            match text.trim().to_ascii_uppercase().replace('-', "_").as_str() {
                "DISABLED" => SslMode::Disabled,
                "PREFERRED" => SslMode::Preferred,
                "REQUIRED" => SslMode::Required,
                "VERIFY_CA" => SslMode::VerifyCa,
                "VERIFY_IDENTITY" => SslMode::VerifyIdentity,
                _ => return None,
            },
        )
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SslMode::Disabled => "DISABLED",
            SslMode::Preferred => "PREFERRED",
            SslMode::Required => "REQUIRED",
            SslMode::VerifyCa => "VERIFY_CA",
            SslMode::VerifyIdentity => "VERIFY_IDENTITY",
        })
    }
}

/// Where the server is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Address {
    Tcp { host: String, port: u16 },
    Socket(PathBuf),
}

/// A resolved MySQL-family target (clonable; never prints the password).
#[derive(Clone)]
pub struct MyTarget {
    address: Address,
    user: String,
    password: Option<String>,
    database: String,
    ssl_mode: SslMode,
    ssl_ca: Option<PathBuf>,
    /// Where each setting came from, in words.
    sources: Vec<String>,
}

impl fmt::Debug for MyTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MyTarget")
            .field("target", &self.redacted())
            .field("password", &self.password.as_ref().map(|_| "(hidden)"))
            .field("ssl_mode", &self.ssl_mode)
            .finish()
    }
}

/// The URL's parts before defaults.
#[derive(Debug, Default)]
struct Url {
    user: Option<String>,
    password: Option<String>,
    host: Option<String>,
    port: Option<u16>,
    database: Option<String>,
    query: BTreeMap<String, String>,
}

const QUERY_KEYS: [&str; 4] = ["socket", "ssl-mode", "ssl-ca", "defaults-file"];

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Parses `mysql://user:pass@host:port/db?k=v` (the password never enters an error).
fn parse_url(text: &str, source: &str) -> Result<Url, MyConnectError> {
    let bad = |why: String| MyConnectError::BadTarget {
        message: format!("the target from {source} {why}"),
    };
    let (scheme, rest) = text
        .trim()
        .split_once("://")
        .ok_or_else(|| bad("is not a mysql:// URL".into()))?;
    if !matches!(scheme.to_ascii_lowercase().as_str(), "mysql" | "mariadb") {
        return Err(bad(format!(
            "has scheme {scheme}://; write mysql://user@host:port/database"
        )));
    }
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match rest.split_once('/') {
        Some((a, p)) => (a, p),
        None => (rest, ""),
    };
    let mut url = Url::default();
    let hostport = match authority.rsplit_once('@') {
        Some((userinfo, hostport)) => {
            match userinfo.split_once(':') {
                Some((u, p)) => {
                    url.user = Some(decode(u));
                    url.password = Some(decode(p));
                }
                None => url.user = Some(decode(userinfo)),
            }
            hostport
        }
        None => authority,
    };
    if !hostport.is_empty() {
        let (host, port) = if let Some(inner) = hostport.strip_prefix('[') {
            let (h, after) = inner
                .split_once(']')
                .ok_or_else(|| bad("has an unclosed [ in its host".into()))?;
            (h.to_string(), after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (hostport.to_string(), None),
            }
        };
        if !host.is_empty() {
            url.host = Some(decode(&host));
        }
        if let Some(p) = port.filter(|p| !p.is_empty()) {
            url.port = Some(p.parse().map_err(|_| {
                bad(format!(
                    "has port {p:?}, which is not a number from 1 to 65535"
                ))
            })?);
        }
    }
    if !path.is_empty() {
        url.database = Some(decode(path));
    }
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let key = decode(k).to_ascii_lowercase().replace('_', "-");
        if !QUERY_KEYS.contains(&key.as_str()) {
            return Err(bad(format!(
                "has the query parameter {key:?}, which pacer does not know; it knows {}",
                QUERY_KEYS.join(", ")
            )));
        }
        url.query.insert(key, decode(v));
    }
    Ok(url)
}

impl MyTarget {
    /// Resolves the target: the flag, `PACER_TARGET`, `DATABASE_URL`; then the MYSQL_*
    /// variables and the option file for what the URL leaves out.
    pub fn resolve(
        flag: Option<&str>,
        env: &dyn Fn(&str) -> Option<String>,
        home: Option<&Path>,
    ) -> Result<MyTarget, MyConnectError> {
        let source = if flag.is_some_and(|f| !f.trim().is_empty()) {
            "--target"
        } else if env("PACER_TARGET").is_some_and(|v| !v.trim().is_empty()) {
            "PACER_TARGET"
        } else {
            "DATABASE_URL"
        };
        let text = crate::target::family::given_target(flag, env).ok_or_else(|| {
            MyConnectError::BadTarget {
                message: "no target: give --target mysql://user@host:port/database, or set \
                          PACER_TARGET or DATABASE_URL"
                    .into(),
            }
        })?;
        let url = parse_url(&text, source)?;
        let mut sources = vec![source.to_string()];

        // The option file: the URL's, else PACER_MYSQL_DEFAULTS_FILE, else ~/.my.cnf.
        let (file, explicit) = match url.query.get("defaults-file") {
            Some(f) => (Some(PathBuf::from(f)), true),
            None => match env("PACER_MYSQL_DEFAULTS_FILE").filter(|v| !v.trim().is_empty()) {
                Some(f) => (Some(PathBuf::from(f)), true),
                None => (home.map(|h| h.join(".my.cnf")), false),
            },
        };
        let options = match &file {
            Some(path) => match std::fs::read_to_string(path) {
                Ok(text) => optfile::client_options(&text),
                Err(e) if explicit || e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(MyConnectError::BadTarget {
                        message: format!(
                            "cannot read the option file {}: {e}. Give a readable file \
                             (?defaults-file= or PACER_MYSQL_DEFAULTS_FILE), or none.",
                            path.display()
                        ),
                    });
                }
                Err(_) => BTreeMap::new(),
            },
            None => BTreeMap::new(),
        };
        let file_name = file
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let mut from = |what: &str, origin: &str| sources.push(format!("{what} from {origin}"));
        let opt = |k: &str| options.get(k).cloned();

        let user = match url.user.clone().filter(|u| !u.is_empty()) {
            Some(u) => u,
            None => match opt("user") {
                Some(u) => {
                    from("user", &file_name);
                    u
                }
                None => {
                    let u = env("USER").unwrap_or_else(|| "root".into());
                    from("user", "the OS user");
                    u
                }
            },
        };
        let password = match url.password.clone() {
            Some(p) => Some(p),
            None => match env("MYSQL_PWD") {
                Some(p) => {
                    from("password", "MYSQL_PWD");
                    Some(p)
                }
                None => opt("password").inspect(|_| from("password", &file_name)),
            },
        };
        let socket = url.query.get("socket").cloned().or_else(|| {
            if url.host.is_some() {
                return None;
            }
            env("MYSQL_UNIX_PORT")
                .inspect(|_| from("socket", "MYSQL_UNIX_PORT"))
                .or_else(|| opt("socket").inspect(|_| from("socket", &file_name)))
        });
        let address = match socket {
            Some(s) => Address::Socket(PathBuf::from(s)),
            None => {
                let host = url
                    .host
                    .clone()
                    .or_else(|| env("MYSQL_HOST").inspect(|_| from("host", "MYSQL_HOST")))
                    .or_else(|| opt("host").inspect(|_| from("host", &file_name)))
                    .unwrap_or_else(|| "localhost".into());
                let port_text = url.port.map(|p| p.to_string()).or_else(|| {
                    env("MYSQL_TCP_PORT")
                        .inspect(|_| from("port", "MYSQL_TCP_PORT"))
                        .or_else(|| opt("port").inspect(|_| from("port", &file_name)))
                });
                let port = match port_text {
                    Some(p) => p.trim().parse().map_err(|_| MyConnectError::BadTarget {
                        message: format!("port {p:?} is not a number from 1 to 65535"),
                    })?,
                    None => 3306,
                };
                Address::Tcp { host, port }
            }
        };
        let database = url
            .database
            .clone()
            .filter(|d| !d.is_empty())
            .or_else(|| opt("database").inspect(|_| from("database", &file_name)))
            .ok_or_else(|| MyConnectError::BadTarget {
                message: format!(
                    "the target from {source} names no database; pacer needs one (its state and the \
                     plan's table are found there): mysql://user@host:port/DATABASE"
                ),
            })?;
        let ssl_text = url
            .query
            .get("ssl-mode")
            .cloned()
            .or_else(|| opt("ssl-mode").inspect(|_| from("ssl-mode", &file_name)));
        let ssl_mode = match ssl_text {
            Some(t) => SslMode::parse(&t).ok_or_else(|| MyConnectError::BadTarget {
                message: format!(
                    "ssl-mode {t:?} is none pacer knows: DISABLED, PREFERRED, REQUIRED, VERIFY_CA \
                     or VERIFY_IDENTITY"
                ),
            })?,
            None => SslMode::Preferred,
        };
        let ssl_ca = url
            .query
            .get("ssl-ca")
            .cloned()
            .or_else(|| opt("ssl-ca").inspect(|_| from("ssl-ca", &file_name)))
            .map(PathBuf::from);
        let target = MyTarget {
            address,
            user,
            password,
            database,
            ssl_mode,
            ssl_ca,
            sources,
        };
        if let Some(ca) = &target.ssl_ca
            && !ca.is_file()
        {
            return Err(MyConnectError::Tls {
                target: target.redacted(),
                message: format!(
                    "the ssl-ca file {} does not exist or is not a file",
                    ca.display()
                ),
            });
        }
        if target.ssl_mode == SslMode::VerifyIdentity
            && let Address::Tcp { host, .. } = &target.address
            && host.parse::<std::net::IpAddr>().is_ok()
        {
            return Err(MyConnectError::Tls {
                target: target.redacted(),
                message: format!(
                    "ssl-mode VERIFY_IDENTITY cannot check a certificate against the IP address \
                     {host} (rustls verifies host names here). Connect by the host name the \
                     server's certificate names, or use ssl-mode VERIFY_CA"
                ),
            });
        }
        Ok(target)
    }

    /// The target as shown to people: `mysql://app@db1:3306/shop` (never the password).
    pub fn redacted(&self) -> String {
        match &self.address {
            Address::Tcp { host, port } => {
                let host = if host.contains(':') {
                    format!("[{host}]")
                } else {
                    host.clone()
                };
                format!("mysql://{}@{host}:{port}/{}", self.user, self.database)
            }
            Address::Socket(path) => format!(
                "mysql://{}@localhost/{}?socket={}",
                self.user,
                self.database,
                path.display()
            ),
        }
    }

    /// Where the settings came from.
    pub fn source(&self) -> String {
        self.sources.join("; ")
    }

    /// The TLS mode.
    pub fn ssl_mode(&self) -> SslMode {
        self.ssl_mode
    }

    /// The target's database.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// The user.
    #[cfg(test)]
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The host (or the socket path).
    #[cfg(test)]
    pub fn host(&self) -> String {
        match &self.address {
            Address::Tcp { host, .. } => host.clone(),
            Address::Socket(p) => p.display().to_string(),
        }
    }

    /// The TCP port (0 over a socket).
    #[cfg(test)]
    pub fn port(&self) -> u16 {
        match &self.address {
            Address::Tcp { port, .. } => *port,
            Address::Socket(_) => 0,
        }
    }

    /// Same credentials and TLS settings, another address (a replica the primary names).
    pub fn with_address(&self, host: &str, port: u16) -> MyTarget {
        let mut t = self.clone();
        t.address = Address::Tcp {
            host: host.into(),
            port,
        };
        t
    }

    /// `host:port`, or the socket path: the server's name in figures.
    pub fn address_name(&self) -> String {
        match &self.address {
            Address::Tcp { host, port } => format!("{host}:{port}"),
            Address::Socket(p) => p.display().to_string(),
        }
    }

    fn opts(&self, program_name: &str, tls: bool) -> Result<OptsBuilder, MyConnectError> {
        let mut b = OptsBuilder::default()
            .user(Some(self.user.clone()))
            .pass(self.password.clone())
            .db_name(Some(self.database.clone()))
            .prefer_socket(false)
            .tcp_nodelay(true)
            .stmt_cache_size(64)
            .connect_attribute("program_name", program_name);
        b = match &self.address {
            Address::Tcp { host, port } => b.ip_or_hostname(host.clone()).tcp_port(*port),
            Address::Socket(path) => b.socket(Some(path.display().to_string())),
        };
        if tls {
            let mut ssl = SslOpts::default();
            match self.ssl_mode {
                SslMode::Disabled => return Ok(b),
                SslMode::Preferred | SslMode::Required => {
                    ssl = ssl
                        .with_danger_accept_invalid_certs(true)
                        .with_danger_skip_domain_validation(true);
                }
                SslMode::VerifyCa => ssl = ssl.with_danger_skip_domain_validation(true),
                SslMode::VerifyIdentity => {}
            }
            if let Some(ca) = &self.ssl_ca {
                ssl = ssl.with_root_certs(vec![ca.clone().into()]);
            }
            b = b.ssl_opts(Some(ssl));
        }
        Ok(b)
    }

    /// Connects, naming the connection `program_name`; bounded by a connect timeout.
    pub async fn connect(&self, program_name: &str) -> Result<Conn, MyConnectError> {
        let tls = self.ssl_mode != SslMode::Disabled && matches!(self.address, Address::Tcp { .. });
        let attempt = |tls: bool| async move {
            let opts = self.opts(program_name, tls)?;
            match tokio::time::timeout(CONNECT_TIMEOUT, Conn::new(opts)).await {
                Ok(Ok(c)) => Ok(c),
                Ok(Err(e)) => Err(errors::classify(&e, &self.redacted(), tls)),
                Err(_) => Err(MyConnectError::Unreachable {
                    target: self.redacted(),
                    message: format!(
                        "no answer within {}",
                        humantime::format_duration(CONNECT_TIMEOUT)
                    ),
                }),
            }
        };
        match attempt(tls).await {
            // PREFERRED falls back to plain TCP when the server offers no TLS.
            Err(MyConnectError::NoTls { .. }) if self.ssl_mode == SslMode::Preferred => {
                attempt(false).await
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests;
