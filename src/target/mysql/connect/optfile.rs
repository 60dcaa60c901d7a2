//! The MySQL option file format (`~/.my.cnf`): `[group]` headers, `key = value` lines, `#` and
//! `;` comments, quoted values, dash and underscore alike in keys. Pure.

use std::collections::BTreeMap;

/// The groups the `mariadb`/`mysql` command-line client reads, in the order it reads them
/// (a later group's value wins).
pub const CLIENT_GROUPS: [&str; 5] = [
    "client",
    "client-server",
    "client-mariadb",
    "mysql",
    "mariadb-client",
];

/// The client options in `text`: keys lower-case with dashes, values unquoted. `!include`
/// and `!includedir` lines are skipped.
pub fn client_options(text: &str) -> BTreeMap<String, String> {
    let mut by_group: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut group = String::new();
    for raw in text.lines() {
        let line = raw.trim();
        if line.is_empty()
            || line.starts_with('#')
            || line.starts_with(';')
            || line.starts_with('!')
        {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            group = name.trim().to_ascii_lowercase();
            continue;
        }
        let (key, value) = match line.split_once('=') {
            Some((k, v)) => (k.trim(), unquote(v.trim())),
            None => (line, String::new()),
        };
        let key = key.to_ascii_lowercase().replace('_', "-");
        by_group
            .entry(group.clone())
            .or_default()
            .insert(key, value);
    }
    let mut out = BTreeMap::new();
    for g in CLIENT_GROUPS {
        if let Some(values) = by_group.remove(g) {
            out.extend(values);
        }
    }
    out
}

/// A value without its quotes and trailing comment (`"a b" # c` → `a b`); backslash escapes in
/// quotes as the client reads them (`\"`, `\\`, `\n`, `\t`).
fn unquote(v: &str) -> String {
    let mut chars = v.chars();
    match chars.next() {
        Some(q @ ('"' | '\'')) => {
            let mut out = String::new();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some('n') => out.push('\n'),
                        Some('t') => out.push('\t'),
                        Some(other) => out.push(other),
                        None => {}
                    },
                    c if c == q => break,
                    c => out.push(c),
                }
            }
            out
        }
        _ => match v.find(" #") {
            Some(i) => v[..i].trim_end().to_string(),
            None => v.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_groups_are_read_in_the_clients_order_and_others_ignored() {
        let text = "# mine\n[mysqld]\nport = 1\n[client]\nuser = app\npassword = \"s3 #cr\\\"et\"\n\
                    port=3307\nssl_mode = VERIFY_CA # comment\n!include /etc/other.cnf\n[mysql]\nport = 3308\n";
        let o = client_options(text);
        assert_eq!(o.get("user").map(String::as_str), Some("app"));
        assert_eq!(o.get("password").map(String::as_str), Some("s3 #cr\"et"));
        assert_eq!(
            o.get("port").map(String::as_str),
            Some("3308"),
            "[mysql] after [client]"
        );
        assert_eq!(o.get("ssl-mode").map(String::as_str), Some("VERIFY_CA"));
        assert_eq!(o.len(), 4);
    }
}
