//! MySQL/MariaDB statement text for every phase. Pure functions of the plan, the server's
//! flavour and the table's key.
//!
//! Differences from PostgreSQL that shape the text:
//! - DDL is not transactional and cannot wait on a per-statement lock timeout everywhere:
//!   MariaDB takes `ALTER TABLE t WAIT n` (fractional seconds), MySQL only the session's
//!   `lock_wait_timeout` (whole seconds), set by the caller.
//! - `ALGORITHM=INSTANT` is always named, so the server refuses instead of copying the table.
//!   MySQL accepts no `LOCK=` clause beside INSTANT; MariaDB does.
//! - Row-constructor comparisons `(a, b) > (x, y)` get no range access on MariaDB: composite
//!   key bounds are written out as `a > x OR (a = x AND b > y)`, led by `a >= x` for the range.
//! - Keys travel as text and are turned back into their type per column ([`KeyKind`]).
//! - Triggers have no `WHEN`: the sync rule is an `IF` in the body, and the backfill expression
//!   is evaluated over the new row through a derived table of `NEW.` values, so it is written
//!   with plain column names exactly as in the batches.

use crate::plan::{Dialect, Plan, dialect};
use crate::target::KeyColumn;

/// Quotes a MySQL identifier (`` `name` ``).
pub fn q(name: &str) -> String {
    MYSQL.quote_ident(name)
}

const MYSQL: &Dialect = &dialect::MYSQL;

/// Which server of the family pacer talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// MariaDB (10.6 and later).
    MariaDb,
    /// Oracle MySQL (8.0 and later).
    MySql,
}

impl std::fmt::Display for Flavor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Flavor::MariaDb => "MariaDB",
            Flavor::MySql => "MySQL",
        })
    }
}

/// How a key column's values are read as text and bound back as parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyKind {
    /// Signed integers: bound as an integer.
    Signed,
    /// Unsigned integers: bound as an unsigned integer.
    Unsigned,
    /// DECIMAL(p,s): compared as that decimal (a string beside a decimal compares as a double).
    Decimal(String),
    /// Binary strings: read as hex, bound through UNHEX (the text may not be UTF-8).
    Binary,
    /// Character strings and temporal types: text compared under the column's own rules.
    Text,
}

impl KeyKind {
    /// The kind for a column's `DATA_TYPE` and `COLUMN_TYPE`; Err names why the column cannot
    /// be walked in order.
    pub fn of(data_type: &str, column_type: &str) -> Result<KeyKind, String> {
        let dt = data_type.to_ascii_lowercase();
        let ct = column_type.to_ascii_lowercase();
        Ok(match dt.as_str() {
            "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" => {
                if ct.contains("unsigned") {
                    KeyKind::Unsigned
                } else {
                    KeyKind::Signed
                }
            }
            "decimal" | "numeric" => {
                let base = ct.split_whitespace().next().unwrap_or("decimal");
                KeyKind::Decimal(base.to_string())
            }
            "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => {
                KeyKind::Binary
            }
            "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" | "date"
            | "datetime" | "timestamp" | "time" | "year" => KeyKind::Text,
            other => {
                return Err(format!(
                    "its type {other} has no order pacer can walk by as text (enum, set, bit, \
                     float, json and spatial keys are not supported)"
                ));
            }
        })
    }

    /// The column read as text.
    fn select(&self, col: &str) -> String {
        match self {
            KeyKind::Signed | KeyKind::Unsigned => col.to_string(),
            KeyKind::Binary => format!("HEX({col})"),
            KeyKind::Decimal(_) | KeyKind::Text => format!("CAST({col} AS CHAR)"),
        }
    }

    /// The placeholder a value of this column is bound to.
    fn param(&self) -> String {
        match self {
            KeyKind::Signed | KeyKind::Unsigned | KeyKind::Text => "?".into(),
            KeyKind::Decimal(t) => format!("CAST(? AS {t})"),
            KeyKind::Binary => "UNHEX(?)".into(),
        }
    }
}

/// A key column with how it travels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPart {
    /// The column.
    pub column: KeyColumn,
    /// How its values are read and bound.
    pub kind: KeyKind,
}

/// Which bound a placeholder takes its value from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// The exclusive lower bound's key column `i`.
    Lo(usize),
    /// The inclusive upper bound's key column `i`.
    Hi(usize),
}

/// A statement with the bound values its placeholders take, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bound {
    /// The SQL text.
    pub sql: String,
    /// Where each `?` takes its value from (a trailing LIMIT/OFFSET placeholder is not listed).
    pub slots: Vec<Slot>,
}

/// Names of the sync triggers for a column (each within 64 characters, the suffix kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncTriggers {
    /// `BEFORE INSERT`.
    pub insert: String,
    /// `BEFORE UPDATE`.
    pub update: String,
}

/// The sync trigger names of a column.
pub fn sync_trigger_names(column: &str) -> SyncTriggers {
    let mut base = format!("pacer_sync_{column}");
    while base.chars().count() > 64 - 4 {
        base.pop();
    }
    SyncTriggers {
        insert: format!("{base}_ins"),
        update: format!("{base}_upd"),
    }
}

/// Renders the SQL of one migration on MySQL/MariaDB.
#[derive(Debug, Clone)]
pub struct MySqlText {
    /// The table's database.
    pub database: String,
    /// The table.
    pub table: String,
    /// The key batches walk.
    pub key: Vec<KeyPart>,
    /// The table's other columns (in order), for the trigger's view of the new row.
    pub columns: Vec<String>,
    /// The state table: database and name.
    pub state: (String, String),
    /// The server.
    pub flavor: Flavor,
    column: String,
    sql_type: String,
    default: Option<String>,
    backfill: Option<String>,
    not_null_at_add: bool,
    index: Option<(String, bool)>,
    lock_wait_s: f64,
    batch_timeout_s: f64,
    derived_table: bool,
}

/// A default the server takes without parentheses: a number, a quoted string, NULL, TRUE,
/// FALSE or CURRENT_TIMESTAMP. Anything else is an expression default and needs them (and
/// an expression default is never instant on MySQL).
fn literal_default(d: &str) -> bool {
    let t = d.trim();
    let upper = t.to_ascii_uppercase();
    let number = {
        let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
        !digits.is_empty()
            && digits.chars().all(|c| c.is_ascii_digit() || c == '.')
            && digits.chars().filter(|c| *c == '.').count() <= 1
    };
    let quoted = t.len() >= 2
        && ((t.starts_with('\'') && t.ends_with('\'')) || (t.starts_with('"') && t.ends_with('"')))
        && !t[1..t.len() - 1].contains(['\'', '"', '\\']);
    number
        || quoted
        || matches!(upper.as_str(), "NULL" | "TRUE" | "FALSE")
        || upper.starts_with("CURRENT_TIMESTAMP")
}

impl MySqlText {
    /// Builds the renderer for a plan on a resolved table and key.
    pub fn new(
        plan: &Plan,
        flavor: Flavor,
        (database, table): (String, String),
        key: Vec<KeyPart>,
        columns: Vec<String>,
        state: (String, String),
    ) -> MySqlText {
        let c = &plan.column;
        MySqlText {
            database,
            table,
            key,
            columns,
            state,
            flavor,
            column: c.name.clone(),
            sql_type: c.sql_type.clone(),
            default: c.default.clone(),
            backfill: c.backfill.clone(),
            not_null_at_add: plan.not_null_at_add(),
            index: c.index.as_ref().map(|i| (i.name.clone(), i.unique)),
            lock_wait_s: plan.safety.lock_timeout.as_secs_f64(),
            batch_timeout_s: plan.safety.batch_timeout.as_secs_f64(),
            derived_table: false,
        }
    }

    /// The table, qualified and quoted.
    pub fn t(&self) -> String {
        format!("{}.{}", q(&self.database), q(&self.table))
    }

    /// The table as people read it (`shop.orders`).
    pub fn table_name(&self) -> String {
        format!("{}.{}", self.database, self.table)
    }

    /// The state table, qualified and quoted.
    pub fn state_t(&self) -> String {
        format!("{}.{}", q(&self.state.0), q(&self.state.1))
    }

    fn col(&self) -> String {
        q(&self.column)
    }

    /// `DEFAULT …` as the column definition writes it.
    fn default_clause(&self) -> String {
        match &self.default {
            Some(d) if literal_default(d) => format!(" DEFAULT {}", d.trim()),
            Some(d) => format!(" DEFAULT ({d})"),
            None => String::new(),
        }
    }

    /// The lock-wait bound written into an ALTER: MariaDB's `WAIT n`; on MySQL the caller sets
    /// the session's `lock_wait_timeout`.
    fn wait(&self) -> String {
        match self.flavor {
            Flavor::MariaDb => format!(" WAIT {}", secs(self.lock_wait_s)),
            Flavor::MySql => String::new(),
        }
    }

    /// The session's `lock_wait_timeout` that bounds DDL on MySQL (whole seconds, at least 1).
    pub fn lock_wait_timeout_secs(&self) -> u64 {
        self.lock_wait_s.ceil().max(1.0) as u64
    }

    /// The column's definition after its name.
    fn definition(&self, not_null: bool) -> String {
        format!(
            "{}{}{}",
            self.sql_type,
            if not_null { " NOT NULL" } else { "" },
            self.default_clause()
        )
    }

    /// `ALTER TABLE … ADD COLUMN …, ALGORITHM=INSTANT`: a change of the data dictionary only;
    /// the server refuses rather than copy the table.
    pub fn add_column(&self) -> String {
        format!(
            "ALTER TABLE {}{} ADD COLUMN {} {}, ALGORITHM=INSTANT{}",
            self.t(),
            self.wait(),
            self.col(),
            self.definition(self.not_null_at_add),
            match self.flavor {
                Flavor::MariaDb => ", LOCK=NONE",
                Flavor::MySql => "",
            }
        )
    }

    /// The same ADD COLUMN on a temporary copy of the table, for preflight's probe.
    pub fn probe_add_column(&self, probe: &str) -> String {
        format!(
            "ALTER TABLE {} ADD COLUMN {} {}, ALGORITHM=INSTANT",
            q(probe),
            self.col(),
            self.definition(self.not_null_at_add)
        )
    }

    /// "This row still needs its value": NULL, or still the column default.
    pub fn pending(&self, qualifier: &str) -> String {
        let c = format!("{qualifier}{}", self.col());
        match &self.default {
            None => format!("{c} IS NULL"),
            Some(d) => format!("{c} <=> ({d})"),
        }
    }

    /// The backfill expression evaluated over the trigger's new row: the expression with its
    /// column names read as `NEW.` values ([`qualify`]), about 3× cheaper per row than the
    /// derived-table form, which preflight falls back to ([`MySqlText::use_derived_table`])
    /// when the rewritten form does not evaluate (or a column name is used where it may not
    /// be a column).
    fn expr_over_new(&self, expr: &str) -> String {
        if !self.derived_table
            && let Some(e) = qualify(expr, &self.columns, &|c| format!("NEW.{}", q(c)))
        {
            return format!("({e})");
        }
        self.derived_over_new(expr)
    }

    /// The expression with each column name replaced by `value(column)`, or None when it
    /// cannot be rewritten safely; for preflight's probe of the trigger's form.
    pub fn expr_with(&self, value: &dyn Fn(&str) -> String) -> Option<String> {
        let expr = self.backfill.as_ref()?;
        if self.derived_table {
            return None;
        }
        qualify(expr, &self.columns, value)
    }

    /// Evaluates the trigger's expression through a derived table of the `NEW.` values from now
    /// on (for expressions [`qualify`] cannot rewrite, or whose rewrite does not evaluate).
    pub fn use_derived_table(&mut self) {
        self.derived_table = true;
    }

    /// A derived table of the `NEW.` values under the columns' own names, so the expression
    /// reads as in the batches (one subquery per row).
    fn derived_over_new(&self, expr: &str) -> String {
        let values = self
            .columns
            .iter()
            .map(|c| format!("NEW.{} AS {}", q(c), q(c)))
            .collect::<Vec<_>>()
            .join(", ");
        format!("(SELECT ({expr}) FROM (SELECT {values}) AS pacer_row)")
    }

    /// The INSERT sync trigger: a row inserted without the column (NULL, or still the column
    /// default) gets the backfill expression; a value the application sets is kept.
    pub fn create_sync_insert_trigger(&self) -> Option<String> {
        let expr = self.backfill.as_ref()?;
        Some(format!(
            "CREATE TRIGGER {}.{} BEFORE INSERT ON {} FOR EACH ROW BEGIN IF {} THEN SET NEW.{} = {}; END IF; END",
            q(&self.database),
            q(&sync_trigger_names(&self.column).insert),
            self.t(),
            self.pending("NEW."),
            self.col(),
            self.expr_over_new(expr)
        ))
    }

    /// The UPDATE sync trigger: an update that leaves the column unchanged gets it recomputed
    /// from the new row. pacer's batches change it (from pending to the value), so for them the
    /// body is one comparison.
    pub fn create_sync_update_trigger(&self) -> Option<String> {
        let expr = self.backfill.as_ref()?;
        let col = self.col();
        Some(format!(
            "CREATE TRIGGER {}.{} BEFORE UPDATE ON {} FOR EACH ROW BEGIN IF NEW.{col} <=> OLD.{col} THEN SET NEW.{col} = {}; END IF; END",
            q(&self.database),
            q(&sync_trigger_names(&self.column).update),
            self.t(),
            self.expr_over_new(expr)
        ))
    }

    /// Drops the sync triggers (`IF EXISTS`: a resumed cleanup).
    pub fn drop_sync_triggers(&self) -> Vec<String> {
        let names = sync_trigger_names(&self.column);
        [names.insert, names.update]
            .iter()
            .map(|n| format!("DROP TRIGGER IF EXISTS {}.{}", q(&self.database), q(n)))
            .collect()
    }

    /// The key columns read as text, in order.
    fn key_select(&self) -> String {
        self.key
            .iter()
            .map(|k| {
                k.kind
                    .select(&format!("{}.{}", self.t(), q(&k.column.name)))
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// ORDER BY over the key, qualified with the table.
    fn order_by(&self, desc: bool) -> String {
        self.key
            .iter()
            .map(|k| {
                format!(
                    "{}.{}{}",
                    self.t(),
                    q(&k.column.name),
                    if desc { " DESC" } else { "" }
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `key > lo` (strict) or `key <= hi` (inclusive), written out column by column:
    /// `a > ? OR (a = ? AND b > ?)`, led by `a >= ?` (or `a <= ?`) for the range access.
    fn bound(&self, upper: bool, slots: &mut Vec<Slot>) -> String {
        let slot = |i: usize| if upper { Slot::Hi(i) } else { Slot::Lo(i) };
        let col = |i: usize| q(&self.key[i].column.name);
        let param = |i: usize| self.key[i].kind.param();
        let n = self.key.len();
        if n == 1 {
            slots.push(slot(0));
            return format!("{} {} {}", col(0), if upper { "<=" } else { ">" }, param(0));
        }
        let mut text = String::new();
        slots.push(slot(0));
        text.push_str(&format!(
            "{} {} {} AND (",
            col(0),
            if upper { "<=" } else { ">=" },
            param(0)
        ));
        let mut disjuncts = Vec::new();
        for last in 0..n {
            let mut parts = Vec::new();
            for i in 0..last {
                slots.push(slot(i));
                parts.push(format!("{} = {}", col(i), param(i)));
            }
            slots.push(slot(last));
            let op = match (upper, last == n - 1) {
                (false, _) => ">",
                (true, true) => "<=",
                (true, false) => "<",
            };
            parts.push(format!("{} {op} {}", col(last), param(last)));
            disjuncts.push(if parts.len() == 1 {
                parts.remove(0)
            } else {
                format!("({})", parts.join(" AND "))
            });
        }
        text.push_str(&disjuncts.join(" OR "));
        text.push(')');
        text
    }

    /// The range condition `(lo, hi]` with the bounds present, and its slots.
    pub fn range(&self, with_lo: bool, with_hi: bool) -> (String, Vec<Slot>) {
        let mut slots = Vec::new();
        let mut parts = Vec::new();
        if with_lo {
            parts.push(format!("({})", self.bound(false, &mut slots)));
        }
        if with_hi {
            parts.push(format!("({})", self.bound(true, &mut slots)));
        }
        if parts.is_empty() {
            ("TRUE".into(), slots)
        } else {
            (parts.join(" AND "), slots)
        }
    }

    /// The last key of the table: the end of the backfill range.
    pub fn max_key(&self) -> String {
        format!(
            "SELECT {} FROM {} ORDER BY {} LIMIT 1",
            self.key_select(),
            self.t(),
            self.order_by(true)
        )
    }

    /// The key `size - 1` rows after the first one in range: `LIMIT 1 OFFSET ?` (the offset is
    /// the last placeholder, after the slots).
    pub fn nth_key(&self, with_lo: bool, with_hi: bool) -> Bound {
        let (cond, slots) = self.range(with_lo, with_hi);
        Bound {
            sql: format!(
                "SELECT {} FROM {} WHERE {cond} ORDER BY {} LIMIT 1 OFFSET ?",
                self.key_select(),
                self.t(),
                self.order_by(false)
            ),
            slots,
        }
    }

    /// Counts keys in (lo, hi].
    pub fn count_range(&self, with_lo: bool) -> Bound {
        let (cond, slots) = self.range(with_lo, true);
        Bound {
            sql: format!("SELECT COUNT(*) FROM {} WHERE {cond}", self.t()),
            slots,
        }
    }

    /// The batch: fill pending rows in (lo, hi]. On MariaDB bounded by `max_statement_time`
    /// (error 1969); on MySQL the caller bounds it (KILL QUERY from a second session).
    pub fn batch_update(&self, with_lo: bool) -> Option<Bound> {
        let expr = self.backfill.as_ref()?;
        let (cond, slots) = self.range(with_lo, true);
        let bounded = match self.flavor {
            Flavor::MariaDb => format!(
                "SET STATEMENT max_statement_time={} FOR ",
                secs(self.batch_timeout_s)
            ),
            Flavor::MySql => String::new(),
        };
        Some(Bound {
            sql: format!(
                "{bounded}UPDATE {} SET {} = ({expr}) WHERE {cond} AND {}",
                self.t(),
                self.col(),
                self.pending("")
            ),
            slots,
        })
    }

    /// One verify chunk (lo, hi] (or (lo, ∞)): rows, rows still pending whose expression has a
    /// value (unfilled), and NULLs.
    pub fn verify_range(&self, with_lo: bool, with_hi: bool) -> Bound {
        let (cond, slots) = self.range(with_lo, with_hi);
        let unfilled = match &self.backfill {
            Some(expr) => format!(
                "COALESCE(SUM({} AND NOT (({expr}) <=> {})), 0)",
                self.pending(""),
                self.col()
            ),
            None => "0".into(),
        };
        Bound {
            sql: format!(
                "SELECT COUNT(*), {unfilled}, COALESCE(SUM({} IS NULL), 0) FROM {} WHERE {cond}",
                self.col(),
                self.t()
            ),
            slots,
        }
    }

    /// The first unfilled key of a chunk, to name in an error.
    pub fn first_unfilled(&self, with_lo: bool, with_hi: bool, nulls_only: bool) -> Bound {
        let (cond, slots) = self.range(with_lo, with_hi);
        let condition = match (&self.backfill, nulls_only) {
            (Some(expr), false) => {
                format!("{} AND NOT (({expr}) <=> {})", self.pending(""), self.col())
            }
            _ => format!("{} IS NULL", self.col()),
        };
        Bound {
            sql: format!(
                "SELECT {} FROM {} WHERE {cond} AND {condition} ORDER BY {} LIMIT 1",
                self.key_select(),
                self.t(),
                self.order_by(false)
            ),
            slots,
        }
    }

    /// The index clause: `ADD [UNIQUE] INDEX name (col)`.
    fn add_index_clause(&self) -> Option<String> {
        let (name, unique) = self.index.as_ref()?;
        Some(format!(
            "ADD {}INDEX {} ({})",
            if *unique { "UNIQUE " } else { "" },
            q(name),
            self.col()
        ))
    }

    /// The index name, if the plan builds one.
    pub fn index_name(&self) -> Option<&str> {
        self.index.as_ref().map(|(n, _)| n.as_str())
    }

    /// NOT NULL (and the index, when the plan builds one, in the same statement): an online
    /// rebuild of the table (`ALGORITHM=INPLACE, LOCK=NONE`; reads and writes go on).
    pub fn set_not_null(&self, with_index: bool) -> String {
        let mut clauses = vec![format!(
            "MODIFY COLUMN {} {}",
            self.col(),
            self.definition(true)
        )];
        if with_index && let Some(i) = self.add_index_clause() {
            clauses.push(i);
        }
        format!(
            "ALTER TABLE {}{} {}, ALGORITHM=INPLACE, LOCK=NONE",
            self.t(),
            self.wait(),
            clauses.join(", ")
        )
    }

    /// The index alone, online: MariaDB `ALGORITHM=NOCOPY` (no rebuild), MySQL `INPLACE`.
    pub fn add_index(&self) -> Option<String> {
        Some(format!(
            "ALTER TABLE {}{} {}, ALGORITHM={}, LOCK=NONE",
            self.t(),
            self.wait(),
            self.add_index_clause()?,
            match self.flavor {
                Flavor::MariaDb => "NOCOPY",
                Flavor::MySql => "INPLACE",
            }
        ))
    }

    /// The state table's database.
    pub fn create_state_database(&self) -> String {
        format!("CREATE DATABASE IF NOT EXISTS {}", q(&self.state.0))
    }

    /// The state table: one row per migration. Keys are JSON arrays of text; times are UTC.
    /// `column_created`: 0 no, 1 yes, 2 an ADD COLUMN was sent and its outcome is not known
    /// yet (MySQL DDL commits on its own: the record cannot commit with it).
    pub fn create_state_table(&self) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS {} (\n\
             \x20 job varchar(255) NOT NULL PRIMARY KEY,\n\
             \x20 table_name varchar(255) NOT NULL,\n\
             \x20 column_name varchar(255) NOT NULL,\n\
             \x20 plan_digest varchar(64) NOT NULL,\n\
             \x20 outcome varchar(16) NOT NULL DEFAULT 'running',\n\
             \x20 phase varchar(32) NOT NULL,\n\
             \x20 phases_done text NOT NULL,\n\
             \x20 column_created tinyint NOT NULL DEFAULT 0,\n\
             \x20 key_columns text NOT NULL,\n\
             \x20 range_end text NULL,\n\
             \x20 range_fixed tinyint NOT NULL DEFAULT 0,\n\
             \x20 last_key text NULL,\n\
             \x20 rows_done bigint NOT NULL DEFAULT 0,\n\
             \x20 rows_updated bigint NOT NULL DEFAULT 0,\n\
             \x20 rows_total bigint NULL,\n\
             \x20 batches bigint NOT NULL DEFAULT 0,\n\
             \x20 runner varchar(255) NULL,\n\
             \x20 message text NULL,\n\
             \x20 started_at datetime(6) NOT NULL,\n\
             \x20 updated_at datetime(6) NOT NULL,\n\
             \x20 finished_at datetime(6) NULL\n\
             ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
            self.state_t()
        )
    }

    /// Advances the checkpoint, guarded by the previous one so a second runner cannot.
    /// Parameters: new last_key (JSON), keys, rows updated, job, previous last_key (JSON or NULL).
    pub fn advance_checkpoint(&self) -> String {
        format!(
            "UPDATE {} SET last_key = ?, rows_done = rows_done + ?, rows_updated = rows_updated + ?, \
             batches = batches + 1, updated_at = UTC_TIMESTAMP(6) WHERE job = ? AND last_key <=> ?",
            self.state_t()
        )
    }
}

/// Rewrites the column names of an expression (bare or backquoted, matched case-insensitively
/// as MySQL does) with `value(column)`: not inside strings, not after a `.` (a qualified
/// name), not before `(` (a function). None when a column name stands where it may be a word
/// of the syntax rather than a column (after AS, INTERVAL or a type-taking keyword), or the
/// expression has a construct the scan does not follow (a `#` or `--` comment, an unclosed
/// quote): the caller then uses the derived-table form.
pub fn qualify(expr: &str, columns: &[String], value: &dyn Fn(&str) -> String) -> Option<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    let mut prev_word = String::new();
    let mut prev_char = ' ';
    let column = |name: &str| columns.iter().find(|c| c.eq_ignore_ascii_case(name));
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\'' | '"' => {
                let start = i;
                i += 1;
                loop {
                    let ch = *chars.get(i)?;
                    if ch == '\\' {
                        i += 2;
                        continue;
                    }
                    if ch == c {
                        if chars.get(i + 1) == Some(&c) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
                out.extend(&chars[start..i]);
                prev_char = c;
                prev_word.clear();
            }
            '#' => return None,
            '-' if chars.get(i + 1) == Some(&'-') => return None,
            '`' | 'a'..='z' | 'A'..='Z' | '_' | '$' => {
                let (name, end) = if c == '`' {
                    let mut name = String::new();
                    let mut j = i + 1;
                    loop {
                        let ch = *chars.get(j)?;
                        if ch == '`' {
                            if chars.get(j + 1) == Some(&'`') {
                                name.push('`');
                                j += 2;
                                continue;
                            }
                            break;
                        }
                        name.push(ch);
                        j += 1;
                    }
                    (name, j + 1)
                } else {
                    let mut j = i;
                    while j < chars.len()
                        && (chars[j].is_alphanumeric() || chars[j] == '_' || chars[j] == '$')
                    {
                        j += 1;
                    }
                    (chars[i..j].iter().collect::<String>(), j)
                };
                let next = chars[end..].iter().find(|ch| !ch.is_whitespace()).copied();
                let qualified = prev_char == '.' || next == Some('.');
                let function = next == Some('(') && c != '`';
                match column(&name) {
                    Some(col) if !qualified && !function => {
                        let upper = prev_word.to_ascii_uppercase();
                        if matches!(
                            upper.as_str(),
                            "AS" | "INTERVAL" | "CHAR" | "USING" | "SEPARATOR"
                        ) {
                            return None;
                        }
                        out.push_str(&value(col));
                    }
                    _ => out.extend(&chars[i..end]),
                }
                prev_word = name;
                prev_char = 'a';
                i = end;
            }
            _ => {
                if !c.is_whitespace() {
                    prev_char = c;
                    if !c.is_alphanumeric() {
                        prev_word.clear();
                    }
                }
                out.push(c);
                i += 1;
            }
        }
    }
    Some(out)
}

/// Seconds as MySQL reads them (`0.5`, `2`).
fn secs(s: f64) -> String {
    let text = format!("{s:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text.is_empty() || text == "0" {
        "0.001".into()
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn plan(extra: &str) -> Plan {
        Plan::parse_with(
            Path::new("p.toml"),
            &format!(
                "table = \"shop.Order Items\"\n[column]\nname = \"amount\"\ntype = \"decimal(14,2)\"\n{extra}"
            ),
            &dialect::MYSQL,
        )
        .unwrap()
    }

    fn text(extra: &str, flavor: Flavor, key: &[(&str, &str, &str)]) -> MySqlText {
        let p = plan(extra);
        MySqlText::new(
            &p,
            flavor,
            ("shop".into(), "Order Items".into()),
            key.iter()
                .map(|(n, dt, ct)| KeyPart {
                    column: KeyColumn {
                        name: n.to_string(),
                        sql_type: ct.to_string(),
                    },
                    kind: KeyKind::of(dt, ct).unwrap(),
                })
                .collect(),
            vec!["id".into(), "cents".into()],
            ("pacer".into(), "migrations".into()),
        )
    }

    #[test]
    fn add_column_names_instant_and_bounds_the_lock_wait() {
        let s = text("", Flavor::MariaDb, &[("id", "bigint", "bigint(20)")]);
        assert_eq!(
            s.add_column(),
            "ALTER TABLE `shop`.`Order Items` WAIT 2 ADD COLUMN `amount` decimal(14,2), ALGORITHM=INSTANT, LOCK=NONE"
        );
        let s = text("", Flavor::MySql, &[("id", "bigint", "bigint")]);
        assert_eq!(
            s.add_column(),
            "ALTER TABLE `shop`.`Order Items` ADD COLUMN `amount` decimal(14,2), ALGORITHM=INSTANT",
            "MySQL takes no LOCK clause beside INSTANT, and bounds the wait by lock_wait_timeout"
        );
    }

    #[test]
    fn literal_defaults_go_bare_and_expressions_in_parentheses() {
        let s = text(
            "default = \"0\"\nnot_null = true\n",
            Flavor::MariaDb,
            &[("id", "int", "int(11)")],
        );
        assert!(
            s.add_column().contains("decimal(14,2) NOT NULL DEFAULT 0,"),
            "{}",
            s.add_column()
        );
        let s = text(
            "default = \"1 + 1\"\n",
            Flavor::MariaDb,
            &[("id", "int", "int(11)")],
        );
        assert!(
            s.add_column().contains("DEFAULT (1 + 1),"),
            "{}",
            s.add_column()
        );
        for d in ["'new'", "-1.5", "NULL", "CURRENT_TIMESTAMP"] {
            assert!(literal_default(d), "{d}");
        }
        for d in ["now()", "'a' || 'b'", "1+1", "'it''s'"] {
            assert!(!literal_default(d), "{d}");
        }
    }

    #[test]
    fn composite_bounds_are_written_out_for_range_access() {
        let s = text(
            "backfill = \"cents / 100\"\n",
            Flavor::MariaDb,
            &[
                ("tenant", "int", "int(11)"),
                ("no", "varchar", "varchar(20)"),
            ],
        );
        let (cond, slots) = s.range(true, true);
        assert_eq!(
            cond,
            "(`tenant` >= ? AND (`tenant` > ? OR (`tenant` = ? AND `no` > ?))) AND \
             (`tenant` <= ? AND (`tenant` < ? OR (`tenant` = ? AND `no` <= ?)))"
        );
        assert_eq!(
            slots,
            vec![
                Slot::Lo(0),
                Slot::Lo(0),
                Slot::Lo(0),
                Slot::Lo(1),
                Slot::Hi(0),
                Slot::Hi(0),
                Slot::Hi(0),
                Slot::Hi(1)
            ]
        );
    }

    #[test]
    fn a_single_key_batch_is_bounded_by_max_statement_time_on_mariadb() {
        let s = text(
            "backfill = \"cents / 100\"\n",
            Flavor::MariaDb,
            &[("id", "bigint", "bigint(20) unsigned")],
        );
        let b = s.batch_update(true).unwrap();
        assert_eq!(
            b.sql,
            "SET STATEMENT max_statement_time=30 FOR UPDATE `shop`.`Order Items` SET `amount` = (cents / 100) \
             WHERE (`id` > ?) AND (`id` <= ?) AND `amount` IS NULL"
        );
        assert_eq!(b.slots, vec![Slot::Lo(0), Slot::Hi(0)]);
        assert_eq!(s.key[0].kind, KeyKind::Unsigned);
        let n = s.nth_key(false, true);
        assert_eq!(
            n.sql,
            "SELECT `shop`.`Order Items`.`id` FROM `shop`.`Order Items` WHERE (`id` <= ?) \
             ORDER BY `shop`.`Order Items`.`id` LIMIT 1 OFFSET ?"
        );
    }

    #[test]
    fn key_kinds_read_and_bind_by_type() {
        assert_eq!(
            KeyKind::of("decimal", "decimal(10,2) unsigned").unwrap(),
            KeyKind::Decimal("decimal(10,2)".into())
        );
        assert_eq!(
            KeyKind::of("varbinary", "varbinary(16)").unwrap(),
            KeyKind::Binary
        );
        assert_eq!(
            KeyKind::of("datetime", "datetime(6)").unwrap(),
            KeyKind::Text
        );
        let err = KeyKind::of("enum", "enum('a','b')").unwrap_err();
        assert!(err.contains("enum"), "{err}");
        let s = text(
            "backfill = \"1\"\n",
            Flavor::MariaDb,
            &[("uuid", "binary", "binary(16)")],
        );
        assert_eq!(
            s.max_key(),
            "SELECT HEX(`shop`.`Order Items`.`uuid`) FROM `shop`.`Order Items` ORDER BY `shop`.`Order Items`.`uuid` DESC LIMIT 1"
        );
        assert!(s.range(true, false).0.contains("`uuid` > UNHEX(?)"));
    }

    #[test]
    fn sync_triggers_keep_the_rule_in_the_body_and_read_the_new_row_by_name() {
        let s = text(
            "default = \"0\"\nbackfill = \"cents / 100\"\n",
            Flavor::MariaDb,
            &[("id", "int", "int(11)")],
        );
        assert_eq!(
            s.create_sync_insert_trigger().unwrap(),
            "CREATE TRIGGER `shop`.`pacer_sync_amount_ins` BEFORE INSERT ON `shop`.`Order Items` FOR EACH ROW \
             BEGIN IF NEW.`amount` <=> (0) THEN SET NEW.`amount` = (NEW.`cents` / 100); END IF; END"
        );
        assert!(
            s.create_sync_update_trigger()
                .unwrap()
                .contains("BEGIN IF NEW.`amount` <=> OLD.`amount` THEN SET NEW.`amount` =")
        );
        assert_eq!(
            s.drop_sync_triggers(),
            vec![
                "DROP TRIGGER IF EXISTS `shop`.`pacer_sync_amount_ins`",
                "DROP TRIGGER IF EXISTS `shop`.`pacer_sync_amount_upd`"
            ]
        );
        let long = sync_trigger_names(&"c".repeat(70));
        assert_eq!(long.insert.chars().count(), 64);
        assert!(long.insert.ends_with("_ins"));
    }

    #[test]
    fn not_null_and_index_rebuild_online_in_one_statement() {
        let s = text(
            "backfill = \"cents\"\nnot_null = true\nindex = true\n",
            Flavor::MariaDb,
            &[("id", "int", "int(11)")],
        );
        assert_eq!(
            s.set_not_null(true),
            "ALTER TABLE `shop`.`Order Items` WAIT 2 MODIFY COLUMN `amount` decimal(14,2) NOT NULL, \
             ADD INDEX `Order Items_amount_idx` (`amount`), ALGORITHM=INPLACE, LOCK=NONE"
        );
        assert_eq!(
            s.add_index().unwrap(),
            "ALTER TABLE `shop`.`Order Items` WAIT 2 ADD INDEX `Order Items_amount_idx` (`amount`), ALGORITHM=NOCOPY, LOCK=NONE"
        );
    }

    #[test]
    fn verify_counts_unfilled_rows_null_safely() {
        let s = text(
            "backfill = \"cents\"\n",
            Flavor::MariaDb,
            &[("id", "int", "int(11)")],
        );
        let v = s.verify_range(true, false);
        assert_eq!(
            v.sql,
            "SELECT COUNT(*), COALESCE(SUM(`amount` IS NULL AND NOT ((cents) <=> `amount`)), 0), \
             COALESCE(SUM(`amount` IS NULL), 0) FROM `shop`.`Order Items` WHERE (`id` > ?)"
        );
        assert!(
            s.advance_checkpoint()
                .ends_with("WHERE job = ? AND last_key <=> ?")
        );
    }

    #[test]
    fn column_names_are_read_from_the_new_row_and_nothing_else_is() {
        let cols = vec!["cents".to_string(), "Note".to_string(), "date".to_string()];
        let new = |c: &str| format!("NEW.`{c}`");
        assert_eq!(
            qualify("cents / 100.0", &cols, &new).unwrap(),
            "NEW.`cents` / 100.0"
        );
        assert_eq!(
            qualify(
                "CONCAT(note, 'cents', `cents`, t.cents, cents())",
                &cols,
                &new
            )
            .unwrap(),
            "CONCAT(NEW.`Note`, 'cents', NEW.`cents`, t.cents, cents())",
            "strings, qualified names and functions stay"
        );
        assert_eq!(
            qualify("'it''s \\' cents' || cents", &cols, &new).unwrap(),
            "'it''s \\' cents' || NEW.`cents`"
        );
        assert_eq!(
            qualify("CAST(cents AS date)", &cols, &new),
            None,
            "a type named like a column"
        );
        assert_eq!(
            qualify("date + INTERVAL 1 DAY", &cols, &new).unwrap(),
            "NEW.`date` + INTERVAL 1 DAY"
        );
        assert_eq!(qualify("'open", &cols, &new), None);
        let s = text(
            "backfill = \"cents / 100\"\n",
            Flavor::MariaDb,
            &[("id", "int", "int(11)")],
        );
        assert!(
            s.create_sync_insert_trigger()
                .unwrap()
                .contains("SET NEW.`amount` = (NEW.`cents` / 100); END IF"),
            "{}",
            s.create_sync_insert_trigger().unwrap()
        );
        let mut s = s;
        s.use_derived_table();
        assert!(
            s.create_sync_insert_trigger()
                .unwrap()
                .contains("AS pacer_row")
        );
    }

    #[test]
    fn seconds_read_as_mysql_takes_them() {
        assert_eq!(secs(2.0), "2");
        assert_eq!(secs(0.25), "0.25");
        assert_eq!(secs(0.0), "0.001");
    }
}
