//! Identifiers as the operator writes them in a plan, and their SQL quoting.
//!
//! Names in a plan are exact: `Orders` means the table whose name is `Orders`, as `\d` shows it,
//! not `orders`. pacer quotes every identifier it sends, so spaces, quotes, mixed case and
//! reserved words are all safe.

use std::fmt;

/// A table name with an optional schema, as written in the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableName {
    /// The schema, when the plan names one (`public.orders`).
    pub schema: Option<String>,
    /// The table itself.
    pub name: String,
}

impl TableName {
    /// Parses `table`, `schema.table`, or the SQL-quoted forms `"my.schema"."Order Items"`.
    pub fn parse(text: &str) -> Result<TableName, String> {
        let parts = split_dotted(text)?;
        match parts.as_slice() {
            [name] => Ok(TableName {
                schema: None,
                name: name.clone(),
            }),
            [schema, name] => Ok(TableName {
                schema: Some(schema.clone()),
                name: name.clone(),
            }),
            _ => Err(format!(
                "`{text}` has {} dot-separated parts; write `table` or `schema.table` \
                 (quote a name that contains a dot: `\"my.schema\".orders`)",
                parts.len()
            )),
        }
    }

    /// The name quoted for SQL, schema-qualified when a schema is known.
    pub fn quoted(&self) -> String {
        match &self.schema {
            Some(schema) => format!("{}.{}", quote_ident(schema), quote_ident(&self.name)),
            None => quote_ident(&self.name),
        }
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.schema {
            Some(schema) => write!(f, "{schema}.{}", self.name),
            None => write!(f, "{}", self.name),
        }
    }
}

/// Quotes an identifier for PostgreSQL: always double-quoted, inner quotes doubled.
pub fn quote_ident(name: &str) -> String {
    super::dialect::POSTGRES.quote_ident(name)
}

/// Splits `a.b` into parts, honouring double-quoted parts with `""` escapes.
fn split_dotted(text: &str) -> Result<Vec<String>, String> {
    let mut parts = Vec::new();
    let mut chars = text.trim().chars().peekable();
    loop {
        let mut part = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        part.push('"');
                    }
                    Some('"') => break,
                    Some(c) => part.push(c),
                    None => return Err(format!("`{text}` has an unclosed double quote")),
                }
            }
            match chars.peek() {
                None | Some('.') => {}
                Some(c) => {
                    return Err(format!(
                        "`{text}`: unexpected `{c}` after a quoted name; expected `.` or the end"
                    ));
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == '.' {
                    break;
                }
                if c == '"' {
                    return Err(format!(
                        "`{text}`: a double quote may only open a name (`\"My Table\"`)"
                    ));
                }
                part.push(c);
                chars.next();
            }
        }
        if part.is_empty() {
            return Err(format!("`{text}` has an empty name part"));
        }
        parts.push(part);
        match chars.next() {
            None => return Ok(parts),
            Some('.') => continue,
            Some(c) => return Err(format!("`{text}`: unexpected `{c}`")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::dialect::POSTGRES;
    use super::*;

    #[test]
    fn quotes_plain_mixed_case_reserved_and_odd_names() {
        assert_eq!(quote_ident("orders"), "\"orders\"");
        assert_eq!(quote_ident("Orders"), "\"Orders\"");
        assert_eq!(quote_ident("select"), "\"select\"");
        assert_eq!(quote_ident("order items"), "\"order items\"");
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
    }

    #[test]
    fn parses_bare_and_schema_qualified_tables() {
        let t = TableName::parse("public.orders").unwrap();
        assert_eq!(t.schema.as_deref(), Some("public"));
        assert_eq!(t.name, "orders");
        assert_eq!(t.quoted(), "\"public\".\"orders\"");
        let t = TableName::parse("Orders").unwrap();
        assert_eq!(t.schema, None);
        assert_eq!(t.quoted(), "\"Orders\"");
    }

    #[test]
    fn parses_quoted_parts_with_dots_spaces_and_quotes() {
        let t = TableName::parse("\"my.schema\".\"Order \"\"Items\"\"\"").unwrap();
        assert_eq!(t.schema.as_deref(), Some("my.schema"));
        assert_eq!(t.name, "Order \"Items\"");
        assert_eq!(t.quoted(), "\"my.schema\".\"Order \"\"Items\"\"\"");
        let t = TableName::parse("sales.\"select\"").unwrap();
        assert_eq!(t.name, "select");
    }

    #[test]
    fn rejects_malformed_table_names() {
        assert!(
            TableName::parse("a.b.c")
                .unwrap_err()
                .contains("3 dot-separated")
        );
        assert!(TableName::parse("").unwrap_err().contains("empty"));
        assert!(TableName::parse("public.").unwrap_err().contains("empty"));
        assert!(TableName::parse("\"open").unwrap_err().contains("unclosed"));
        assert!(
            TableName::parse("\"a\"b")
                .unwrap_err()
                .contains("unexpected")
        );
        assert!(TableName::parse("a\"b\"").is_err());
    }

    #[test]
    fn rejects_names_postgres_would_truncate() {
        assert!(POSTGRES.check_name("column name", &"x".repeat(63)).is_ok());
        assert!(
            POSTGRES
                .check_name("column name", &"x".repeat(64))
                .unwrap_err()
                .contains("63 bytes")
        );
        assert!(POSTGRES.check_name("column name", "").is_err());
    }
}
