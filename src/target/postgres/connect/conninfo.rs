//! The two spellings of a target: `postgres://` URLs (as libpq's `conninfo_uri_parse` reads
//! them) and libpq's `key=value` strings, each into libpq keywords.

use super::errors::{ConnectError, bad};

/// The scheme of `scheme://...`, lower-cased, if the string starts with one.
pub(super) fn url_scheme(raw: &str) -> Option<String> {
    let (scheme, _) = raw.split_once("://")?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then(|| scheme.to_ascii_lowercase())
}

/// Decodes %XX escapes; None on a malformed escape (libpq refuses those too, where the
/// crate's decoder would keep them as they are) or a result that is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let well_formed = s.split('%').skip(1).all(|after| {
        after
            .as_bytes()
            .get(..2)
            .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    });
    if !well_formed {
        return None;
    }
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|decoded| decoded.into_owned())
}

/// Parses the part of a postgres:// URL after the scheme into libpq keywords, as libpq's
/// conninfo_uri_parse does: `[user[:password]@][host[:port][,...]][/dbname][?key=value&...]`.
pub(super) fn parse_url(
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
pub(super) fn parse_key_value(input: &str) -> Result<Vec<(String, String)>, String> {
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

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::*;

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
    fn unsupported_schemes() {
        for url in ["mysql://root@localhost/db", "MariaDB://root@h/db"] {
            let err = resolve(url, &[]).unwrap_err();
            assert!(
                matches!(err, ConnectError::UnsupportedScheme { .. }),
                "{err:?}"
            );
            let msg = err.to_string();
            assert!(msg.contains("this is a MySQL/MariaDB target"), "{msg}");
            assert!(msg.contains("--target"), "{msg}");
        }
        let err = resolve("http://example.com", &[]).unwrap_err();
        assert!(
            matches!(err, ConnectError::UnsupportedScheme { .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("postgres://"), "{err}");
    }
}
