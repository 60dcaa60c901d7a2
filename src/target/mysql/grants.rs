//! What `SHOW GRANTS` says the connected user may do, read so preflight can refuse a run that
//! would stop half-way for lack of a privilege (a column added, then no TRIGGER privilege for
//! the sync triggers). Pure.
//!
//! Grant lines: `GRANT <privileges> ON <object> TO <user> …`, where the object is `*.*`,
//! `` `db`.* `` (the database may be a LIKE pattern with `%`, `_` and `\` escapes) or
//! `` `db`.`table` ``. Column grants, routine grants and PROXY are not table privileges and are
//! skipped. A role granted to the user (`GRANT `role` TO …`) carries privileges these lines do
//! not show: then nothing can be concluded, and [`Grants::roles`] says so.

/// The privileges of the connected user, as its grant lines give them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Grants {
    grants: Vec<Grant>,
    /// Whether a role is granted (its privileges are not in the lines read).
    pub roles: bool,
}

#[derive(Debug, Clone, PartialEq)]
struct Grant {
    /// Upper-case privilege names; `ALL` for ALL [PRIVILEGES].
    privileges: Vec<String>,
    /// The database pattern (`*` any).
    db: String,
    /// The table (`*` any).
    table: String,
}

/// Reads `` `a`.`b` `` / `*` parts of an object name.
fn object_part(text: &str) -> (String, &str) {
    let text = text.trim_start();
    if let Some(rest) = text.strip_prefix('`') {
        let mut out = String::new();
        let mut chars = rest.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c == '`' {
                if chars.peek().is_some_and(|(_, n)| *n == '`') {
                    out.push('`');
                    chars.next();
                    continue;
                }
                return (out, &rest[i + 1..]);
            }
            out.push(c);
        }
        (out, "")
    } else {
        let end = text.find(['.', ' ']).unwrap_or(text.len());
        (text[..end].to_string(), &text[end..])
    }
}

impl Grants {
    /// Reads the lines of `SHOW GRANTS`.
    pub fn parse(lines: &[String]) -> Grants {
        let mut out = Grants::default();
        for line in lines {
            let Some(rest) = line.trim().strip_prefix("GRANT ") else {
                continue;
            };
            let Some((privs, after)) = split_on_keyword(rest) else {
                // `GRANT role TO user`: no ON.
                if rest.contains(" TO ") {
                    out.roles = true;
                }
                continue;
            };
            let after = after.trim_start();
            if ["PROCEDURE ", "FUNCTION ", "PACKAGE "]
                .iter()
                .any(|k| after.starts_with(k))
            {
                continue;
            }
            let (db, rest) = object_part(after);
            let Some(rest) = rest.strip_prefix('.') else {
                continue;
            };
            let (table, _) = object_part(rest);
            let privileges = split_privileges(privs);
            if privileges.is_empty() {
                continue;
            }
            out.grants.push(Grant {
                privileges,
                db,
                table,
            });
        }
        out
    }

    /// Whether `privilege` is granted on `db`.`table` (at any level).
    pub fn has(&self, privilege: &str, db: &str, table: &str) -> bool {
        self.grants.iter().any(|g| {
            (g.db == "*" || like(&g.db, db))
                && (g.table == "*" || g.table == table)
                && g.privileges.iter().any(|p| p == "ALL" || p == privilege)
        })
    }

    /// Of `needed`, the privileges not granted on `db`.`table`.
    pub fn missing<'a>(&self, needed: &[&'a str], db: &str, table: &str) -> Vec<&'a str> {
        needed
            .iter()
            .copied()
            .filter(|p| !self.has(p, db, table))
            .collect()
    }
}

/// Splits `SELECT, UPDATE ON obj TO …` at the ` ON ` outside parentheses (column lists).
fn split_on_keyword(text: &str) -> Option<(&str, &str)> {
    let mut depth = 0i32;
    let bytes = text.as_bytes();
    for i in 0..bytes.len() {
        match bytes[i] {
            b'(' => depth += 1,
            b')' => depth -= 1,
            b' ' if depth == 0 && text[i..].starts_with(" ON ") => {
                let after = &text[i + 4..];
                let object_end = after.find(" TO ").unwrap_or(after.len());
                return Some((&text[..i], &after[..object_end]));
            }
            _ => {}
        }
    }
    None
}

/// The table-level privileges of a list (`SELECT, UPDATE (a, b), ALL PRIVILEGES`); a
/// privilege with a column list applies to columns only and is left out.
fn split_privileges(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut current = String::new();
    let mut columns = false;
    for c in text.chars().chain(std::iter::once(',')) {
        match c {
            '(' => {
                depth += 1;
                columns = true;
            }
            ')' => depth -= 1,
            ',' if depth == 0 => {
                let name = current.trim().to_ascii_uppercase();
                if !columns && !name.is_empty() {
                    out.push(if name.starts_with("ALL") {
                        "ALL".into()
                    } else {
                        name
                    });
                }
                current.clear();
                columns = false;
            }
            _ if depth == 0 => current.push(c),
            _ => {}
        }
    }
    out
}

/// MySQL's database-name pattern in grants: `%` any run, `_` any one character, `\` escapes.
fn like(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some(('%', rest)) => (0..=n.len()).any(|i| go(rest, &n[i..])),
            Some(('_', rest)) => !n.is_empty() && go(rest, &n[1..]),
            Some(('\\', rest)) if !rest.is_empty() => {
                !n.is_empty() && n[0] == rest[0] && go(&rest[1..], &n[1..])
            }
            Some((c, rest)) => !n.is_empty() && n[0] == *c && go(rest, &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    go(&p, &n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants(lines: &[&str]) -> Grants {
        Grants::parse(&lines.iter().map(|l| l.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn all_privileges_on_everything_grants_everything() {
        let g = grants(&["GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION"]);
        assert!(
            g.missing(&["ALTER", "TRIGGER", "CREATE"], "shop", "orders")
                .is_empty()
        );
        assert!(!g.roles);
    }

    #[test]
    fn database_and_table_grants_are_matched_with_patterns_and_column_grants_skipped() {
        let g = grants(&[
            "GRANT USAGE ON *.* TO `app`@`%` IDENTIFIED BY PASSWORD '*ABC'",
            "GRANT SELECT, UPDATE, ALTER ON `shop\\_%`.* TO `app`@`%`",
            "GRANT TRIGGER, INSERT (note) ON `shop_eu`.`orders` TO `app`@`%`",
            "GRANT EXECUTE ON PROCEDURE `shop_eu`.`p` TO `app`@`%`",
        ]);
        assert!(g.has("ALTER", "shop_eu", "orders"));
        assert!(
            !g.has("ALTER", "shopxeu", "orders"),
            "\\_ is a literal underscore"
        );
        assert!(g.has("TRIGGER", "shop_eu", "orders"));
        assert!(!g.has("TRIGGER", "shop_eu", "items"));
        assert_eq!(
            g.missing(
                &["SELECT", "INSERT", "CREATE", "TRIGGER"],
                "shop_eu",
                "orders"
            ),
            vec!["INSERT", "CREATE"],
            "INSERT (note) is a column grant"
        );
    }

    #[test]
    fn a_granted_role_means_nothing_can_be_concluded() {
        let g = grants(&[
            "GRANT USAGE ON *.* TO `app`@`%`",
            "GRANT `migrator` TO `app`@`%`",
        ]);
        assert!(g.roles);
    }

    #[test]
    fn quoted_names_with_backticks_and_dots_read_whole() {
        let g = grants(&["GRANT ALTER ON `we``ird.db`.`t.1` TO `u`@`h`"]);
        assert!(g.has("ALTER", "we`ird.db", "t.1"));
    }
}
