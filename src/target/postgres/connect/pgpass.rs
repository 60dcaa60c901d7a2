//! The password file (`~/.pgpass`, or `PGPASSFILE` / `passfile=`), read as libpq reads it.

use std::io;
use std::path::Path;

/// Reads the password file and finds the password, like libpq: missing file is silent, a file
/// others can read is ignored with a warning.
pub(super) fn pgpass_password(
    path: &Path,
    host: &str,
    port: u16,
    dbname: &str,
    user: &str,
) -> Option<String> {
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
    use super::super::test_support::*;
    use super::super::*;
    use super::*;

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
}
