//! How a database family writes SQL, as far as the plan's checks need it: identifier quoting,
//! the longest name it keeps, and the lexical rules (quotes, comments) by which a fragment of
//! the plan is one self-contained piece. Pure data and functions, one value per family.
//!
//! pacer splices the plan's fragments (`type`, `default`, `backfill`, `throttle_query`) into
//! its statements, so each must be a single, self-contained piece; the database still has the
//! last word on what it means (preflight asks it).

/// The SQL rules of one database family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dialect {
    /// The family's name in messages.
    pub name: &'static str,
    /// The quote around an identifier (doubled inside it).
    pub ident_quote: char,
    /// The longest name the server keeps, in bytes (PostgreSQL cuts longer ones silently).
    pub max_name_bytes: usize,
    /// Quotes that open a quoted piece of text in a fragment (strings and identifiers).
    pub quotes: &'static [u8],
    /// Whether a backslash escapes the next character inside quotes (MySQL's default).
    pub backslash_escapes: bool,
    /// Whether `$tag$ … $tag$` quotes text (PostgreSQL).
    pub dollar_quotes: bool,
    /// Whether `#` starts a comment (MySQL).
    pub hash_comments: bool,
}

/// PostgreSQL: `"name"`, 63-byte names (NAMEDATALEN − 1), `'…'` strings, `"…"` identifiers,
/// dollar quoting, `--` and `/* */` comments.
pub const POSTGRES: Dialect = Dialect {
    name: "PostgreSQL",
    ident_quote: '"',
    max_name_bytes: 63,
    quotes: b"'\"",
    backslash_escapes: false,
    dollar_quotes: true,
    hash_comments: false,
};

/// MySQL and MariaDB (default sql_mode): `` `name` ``, 64-character names (checked as bytes:
/// shorter for multi-byte names), `'…'` and `"…"` strings with backslash escapes, `` `…` ``
/// identifiers, `#`, `-- ` and `/* */` comments.
pub const MYSQL: Dialect = Dialect {
    name: "MySQL/MariaDB",
    ident_quote: '`',
    max_name_bytes: 64,
    quotes: b"'\"`",
    backslash_escapes: true,
    dollar_quotes: false,
    hash_comments: true,
};

impl Dialect {
    /// Quotes an identifier: always quoted, inner quotes doubled.
    pub fn quote_ident(&self, name: &str) -> String {
        let q = self.ident_quote;
        format!("{q}{}{q}", name.replace(q, &format!("{q}{q}")))
    }

    /// Checks a column or index name: not empty, not longer than the server keeps, no NUL.
    pub fn check_name(&self, what: &str, name: &str) -> Result<(), String> {
        if name.is_empty() {
            return Err(format!("{what} is empty"));
        }
        if name.len() > self.max_name_bytes {
            return Err(format!(
                "{what} `{name}` is {} bytes long; {} keeps only {} bytes of a name, pick a shorter one",
                name.len(),
                self.name,
                self.max_name_bytes
            ));
        }
        if name.contains('\0') {
            return Err(format!("{what} contains a NUL character"));
        }
        Ok(())
    }

    /// Checks that `sql` is one self-contained expression fragment: parentheses balanced, no
    /// statement separator, no comment, no unterminated quote.
    pub fn check_fragment(&self, what: &str, sql: &str) -> Result<(), String> {
        if sql.trim().is_empty() {
            return Err(format!("{what} is empty"));
        }
        let bytes = sql.as_bytes();
        let mut depth: i32 = 0;
        let mut i = 0;
        while i < bytes.len() {
            let c = bytes[i];
            match c {
                _ if self.quotes.contains(&c) => {
                    i = self.skip_quoted(bytes, i, c).ok_or_else(|| {
                        format!("{what} `{sql}` has an unterminated {} quote", quote_name(c))
                    })?;
                    continue;
                }
                b'-' if bytes.get(i + 1) == Some(&b'-') => {
                    return Err(format!(
                        "{what} `{sql}` contains a `--` comment; remove it (pacer adds text after the expression)"
                    ));
                }
                b'#' if self.hash_comments => {
                    return Err(format!(
                        "{what} `{sql}` contains a `#` comment; remove it (pacer adds text after the expression)"
                    ));
                }
                b'/' if bytes.get(i + 1) == Some(&b'*') => {
                    return Err(format!(
                        "{what} `{sql}` contains a `/* */` comment; remove it"
                    ));
                }
                b'$' if self.dollar_quotes => {
                    if let Some(end) = skip_dollar_quoted(bytes, i) {
                        i = end;
                        continue;
                    }
                }
                b'(' => depth += 1,
                b')' => {
                    depth -= 1;
                    if depth < 0 {
                        return Err(format!(
                            "{what} `{sql}` closes a parenthesis it never opened"
                        ));
                    }
                }
                b';' => {
                    return Err(format!(
                        "{what} `{sql}` contains `;`: it must be a single expression, not statements"
                    ));
                }
                _ => {}
            }
            i += 1;
        }
        if depth != 0 {
            return Err(format!("{what} `{sql}` has unbalanced parentheses"));
        }
        Ok(())
    }

    /// Returns the index just past the closing quote, or None when unterminated.
    fn skip_quoted(&self, bytes: &[u8], start: usize, quote: u8) -> Option<usize> {
        let mut i = start + 1;
        while i < bytes.len() {
            if self.backslash_escapes && quote != b'`' && bytes[i] == b'\\' {
                i += 2;
                continue;
            }
            if bytes[i] == quote {
                if bytes.get(i + 1) == Some(&quote) {
                    i += 2;
                    continue;
                }
                return Some(i + 1);
            }
            i += 1;
        }
        None
    }
}

fn quote_name(c: u8) -> &'static str {
    match c {
        b'\'' => "single",
        b'`' => "backtick",
        _ => "double",
    }
}

/// `$tag$ … $tag$`: returns the index past the closing tag, or None when `$` starts no dollar quote.
fn skip_dollar_quoted(bytes: &[u8], start: usize) -> Option<usize> {
    let mut j = start + 1;
    while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
        j += 1;
    }
    if bytes.get(j) != Some(&b'$') || (j > start + 1 && bytes[start + 1].is_ascii_digit()) {
        return None; // a positional parameter such as $1, or a lone dollar
    }
    let tag = &bytes[start..=j];
    let body = j + 1;
    bytes[body..]
        .windows(tag.len())
        .position(|w| w == tag)
        .map(|p| body + p + tag.len())
        .or(Some(bytes.len() + 1)) // unterminated: make the caller fail on depth/end
        .filter(|&end| end <= bytes.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_family_quotes_identifiers_its_own_way() {
        assert_eq!(POSTGRES.quote_ident("Order \"x\""), "\"Order \"\"x\"\"\"");
        assert_eq!(MYSQL.quote_ident("order `x`"), "`order ``x```");
    }

    #[test]
    fn the_name_limit_is_the_family_s() {
        let name = "n".repeat(64);
        assert!(
            POSTGRES
                .check_name("column name", &name)
                .unwrap_err()
                .contains("is 64 bytes long; PostgreSQL keeps only 63 bytes of a name")
        );
        assert_eq!(MYSQL.check_name("column name", &name), Ok(()));
        assert!(MYSQL.check_name("column name", &"n".repeat(65)).is_err());
    }

    #[test]
    fn dollar_quotes_are_postgresql_s_and_hash_comments_and_backslashes_mysql_s() {
        // A `;` inside a dollar quote is text on PostgreSQL, a separator elsewhere.
        assert_eq!(POSTGRES.check_fragment("x", "$$a;b$$"), Ok(()));
        assert!(MYSQL.check_fragment("x", "$$a;b$$").is_err());
        assert!(
            MYSQL
                .check_fragment("x", "1 # note")
                .unwrap_err()
                .contains("`#` comment")
        );
        assert_eq!(POSTGRES.check_fragment("x", "a # b"), Ok(()), "an operator");
        // `'it\'s'` is one string on MySQL; on PostgreSQL the quote closes at the backslash.
        assert_eq!(MYSQL.check_fragment("x", r"'it\'s'"), Ok(()));
        assert!(POSTGRES.check_fragment("x", r"'it\'s'").is_err());
        assert!(
            MYSQL
                .check_fragment("x", "`a")
                .unwrap_err()
                .contains("backtick")
        );
    }

    fn check_fragment(what: &str, sql: &str) -> Result<(), String> {
        POSTGRES.check_fragment(what, sql)
    }

    #[test]
    fn accepts_ordinary_expressions() {
        for ok in [
            "amount_cents / 100.0",
            "coalesce(a, b, 0)",
            "'it''s ok; really'",
            "\"Weird;Col\" || 'x'",
            "$$a;b$$",
            "$tag$ ) ; $tag$",
            "now()",
            "numeric(14,2)",
            "case when a > 0 then (a) else 0 end",
        ] {
            assert_eq!(check_fragment("backfill", ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn refuses_statement_stacking_and_unbalanced_text() {
        assert!(
            check_fragment("x", "1; drop table t")
                .unwrap_err()
                .contains("`;`")
        );
        assert!(
            check_fragment("x", "0) references t (id")
                .unwrap_err()
                .contains("never opened")
        );
        assert!(
            check_fragment("x", "(1")
                .unwrap_err()
                .contains("unbalanced")
        );
        assert!(
            check_fragment("x", "'abc")
                .unwrap_err()
                .contains("unterminated single")
        );
        assert!(
            check_fragment("x", "\"abc")
                .unwrap_err()
                .contains("unterminated double")
        );
        assert!(
            check_fragment("x", "1 -- note")
                .unwrap_err()
                .contains("comment")
        );
        assert!(
            check_fragment("x", "1 /* c */")
                .unwrap_err()
                .contains("comment")
        );
        assert!(check_fragment("x", "   ").unwrap_err().contains("empty"));
    }
}
