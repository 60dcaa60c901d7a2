//! Where each connection setting comes from, in libpq's order: the target, else its `PG*`
//! environment variable, else libpq's default; the password from the target, `PGPASSWORD` or
//! the password file.

use std::error::Error as StdError;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use tokio_postgres::Config;

use super::conninfo::{parse_key_value, parse_url, url_scheme};
use super::errors::{ConnectError, bad};
use super::pgpass::pgpass_password;
use super::tls::{RootCerts, load_root_certs, load_system_roots};
use super::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_PORT, PasswordOrigin, PgTarget, SslMode, TargetSource,
};

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

pub(super) type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// An environment variable, with empty values treated as unset (`PGPASSWORD=` in CI scripts).
pub(super) fn env_var(env: Env<'_>, name: &str) -> Option<String> {
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
            Some(s) if s.value == "system" => {
                RootCerts::System(load_system_roots(env).map_err(|r| bad(s.origin, r))?)
            }
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
}

/// libpq's compiled-in socket directory differs by distribution: Debian's when present, the
/// upstream /tmp otherwise.
pub(super) fn default_socket_dir() -> String {
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

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::*;
    use super::*;

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
}
