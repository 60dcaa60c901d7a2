//! Checks on SQL fragments taken from the plan (`type`, `default`, `backfill`).
//!
//! pacer splices these fragments into its statements, so it makes sure each one is a single,
//! self-contained piece: parentheses balanced, no statement separator, no unterminated quote or
//! comment. The database still has the last word on what the fragment means (preflight asks it).

/// Checks that `sql` is one self-contained expression fragment.
pub fn check_fragment(what: &str, sql: &str) -> Result<(), String> {
    if sql.trim().is_empty() {
        return Err(format!("{what} is empty"));
    }
    let bytes = sql.as_bytes();
    let mut depth: i32 = 0;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'\'' | b'"' => {
                i = skip_quoted(bytes, i, c).ok_or_else(|| {
                    format!("{what} `{sql}` has an unterminated {} quote", quote_name(c))
                })?;
                continue;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                return Err(format!(
                    "{what} `{sql}` contains a `--` comment; remove it (pacer adds text after the expression)"
                ));
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                return Err(format!(
                    "{what} `{sql}` contains a `/* */` comment; remove it"
                ));
            }
            b'$' => {
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

fn quote_name(c: u8) -> &'static str {
    if c == b'\'' { "single" } else { "double" }
}

/// Returns the index just past the closing quote, or None when unterminated.
fn skip_quoted(bytes: &[u8], start: usize, quote: u8) -> Option<usize> {
    let mut i = start + 1;
    while i < bytes.len() {
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
