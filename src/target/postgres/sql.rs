//! PostgreSQL statement text for every phase. Pure functions of the plan and the table's key.

use crate::plan::ident::quote_ident;
use crate::plan::{Plan, TableName};
use crate::target::KeyColumn;

/// Pages [$1, $2) of a table, as TIDs: `ctid >= '($1,0)' AND ctid < '($2,0)'`.
const PAGE_RANGE: &str =
    "ctid >= format('(%s,0)', $1::bigint)::tid AND ctid < format('(%s,0)', $2::bigint)::tid";

/// Renders the SQL of one migration on PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgSql {
    /// The table, schema-qualified (resolved by preflight).
    pub table: TableName,
    /// The key columns batches walk.
    pub key: Vec<KeyColumn>,
    /// The state table.
    pub state_table: TableName,
    column: String,
    sql_type: String,
    default: Option<String>,
    backfill: Option<String>,
    not_null_at_add: bool,
    index: Option<(String, bool)>,
}

/// The sync triggers on the table. pacer installs two, so that its own batch updates never
/// enter the trigger function: their `WHEN` conditions are checked without calling it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncTriggers {
    /// `BEFORE INSERT … WHEN (the new row's column is not set)`.
    pub insert: String,
    /// `BEFORE UPDATE … WHEN (the statement left the column unchanged)`.
    pub update: String,
    /// The single `BEFORE INSERT OR UPDATE` trigger of earlier pacer versions (same rule, but
    /// the function ran for every row, pacer's batches included). A migration started by one
    /// of them keeps it until its cleanup drops it.
    pub legacy: String,
}

impl SyncTriggers {
    /// All three names: what cleanup drops and what preflight counts as pacer's own.
    pub fn all(&self) -> [&str; 3] {
        [&self.insert, &self.update, &self.legacy]
    }
}

/// Names of the sync triggers for a column (each within PostgreSQL's 63 bytes, the suffix kept).
pub fn sync_trigger_names(column: &str) -> SyncTriggers {
    let base = truncate_to(format!("pacer_sync_{column}"), 63 - 4);
    SyncTriggers {
        insert: format!("{base}_ins"),
        update: format!("{base}_upd"),
        legacy: truncate(format!("pacer_sync_{column}")),
    }
}

/// Name of the temporary NOT VALID check constraint.
pub fn not_null_check_name(column: &str) -> String {
    truncate(format!("pacer_nn_{column}"))
}

/// One value per key column as one comparable value: itself for a one-column key, else a row.
fn as_key_value(parts: &[String]) -> String {
    if parts.len() == 1 {
        parts[0].clone()
    } else {
        format!("({})", parts.join(", "))
    }
}

fn truncate(name: String) -> String {
    truncate_to(name, 63)
}

fn truncate_to(mut name: String, bytes: usize) -> String {
    while name.len() > bytes {
        name.pop();
    }
    name
}

impl PgSql {
    /// Builds the renderer for a plan on a resolved table and key.
    pub fn new(plan: &Plan, table: TableName, key: Vec<KeyColumn>) -> PgSql {
        let c = &plan.column;
        PgSql {
            table,
            key,
            state_table: plan.state_table.clone(),
            column: c.name.clone(),
            sql_type: c.sql_type.clone(),
            default: c.default.clone(),
            backfill: c.backfill.clone(),
            not_null_at_add: plan.not_null_at_add(),
            index: c.index.as_ref().map(|i| (i.name.clone(), i.unique)),
        }
    }

    pub fn t(&self) -> String {
        self.table.quoted()
    }

    fn col(&self) -> String {
        quote_ident(&self.column)
    }

    /// `ALTER TABLE … ADD COLUMN IF NOT EXISTS …` (catalog-only with a constant default).
    pub fn add_column(&self) -> String {
        let mut sql = format!(
            "ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}",
            self.t(),
            self.col(),
            self.sql_type
        );
        if let Some(d) = &self.default {
            sql.push_str(&format!(" DEFAULT ({d})"));
        }
        if self.not_null_at_add {
            sql.push_str(" NOT NULL");
        }
        sql
    }

    /// Condition for "this row still needs its value": NULL, or still the column default.
    pub fn pending(&self, qualifier: &str) -> String {
        let c = format!("{qualifier}{}", self.col());
        match &self.default {
            None => format!("{c} IS NULL"),
            Some(d) => format!("{c} IS NOT DISTINCT FROM CAST(({d}) AS {})", self.sql_type),
        }
    }

    /// Name of the sync function, in the table's schema.
    pub fn sync_function(&self) -> TableName {
        TableName {
            schema: self.table.schema.clone(),
            name: truncate(format!("pacer_sync_{}_{}", self.table.name, self.column)),
        }
    }

    /// The sync function. Rule: on INSERT, a row whose new column is NULL (or still the
    /// default) gets the backfill expression; on UPDATE, a row whose new column the statement
    /// did not change gets the expression recomputed from the new row. A value the
    /// application sets itself is kept. The triggers' `WHEN` conditions make the same tests,
    /// so the function is only entered when it changes the row; it keeps the tests itself for
    /// the single trigger of earlier versions, which calls it for every row.
    pub fn create_sync_function(&self) -> Option<String> {
        let expr = self.backfill.as_ref()?;
        let col = self.col();
        Some(format!(
            "CREATE OR REPLACE FUNCTION {f}() RETURNS trigger LANGUAGE plpgsql AS $pacer$\n\
             BEGIN\n\
             \x20 IF TG_OP = 'INSERT' THEN\n\
             \x20   IF {pending} THEN\n\
             \x20     NEW.{col} := (SELECT ({expr}) FROM (SELECT NEW.*) AS pacer_row);\n\
             \x20   END IF;\n\
             \x20 ELSIF NEW.{col} IS NOT DISTINCT FROM OLD.{col} THEN\n\
             \x20   NEW.{col} := (SELECT ({expr}) FROM (SELECT NEW.*) AS pacer_row);\n\
             \x20 END IF;\n\
             \x20 RETURN NEW;\n\
             END\n\
             $pacer$",
            f = self.sync_function().quoted(),
            pending = self.pending("NEW."),
        ))
    }

    /// The INSERT sync trigger: calls the function only for a row whose column is not set
    /// (NULL, or still the column default), the same test the function makes.
    pub fn create_sync_insert_trigger(&self) -> String {
        format!(
            "CREATE TRIGGER {} BEFORE INSERT ON {} FOR EACH ROW WHEN ({}) EXECUTE FUNCTION {}()",
            quote_ident(&sync_trigger_names(&self.column).insert),
            self.t(),
            self.pending("NEW."),
            self.sync_function().quoted()
        )
    }

    /// The UPDATE sync trigger: calls the function only when the statement left the column
    /// unchanged. pacer's own batches change it (from pending to the value), so they never
    /// enter the function; a `WHEN` in a BEFORE trigger is checked just before the function
    /// would run, so the rule is the function's own.
    pub fn create_sync_update_trigger(&self) -> String {
        let col = self.col();
        format!(
            "CREATE TRIGGER {} BEFORE UPDATE ON {} FOR EACH ROW WHEN (NEW.{col} IS NOT DISTINCT FROM OLD.{col}) \
             EXECUTE FUNCTION {}()",
            quote_ident(&sync_trigger_names(&self.column).update),
            self.t(),
            self.sync_function().quoted()
        )
    }

    /// Drops the sync triggers: both of this version's and the single trigger of earlier
    /// versions (`IF EXISTS`: a resumed cleanup, or a migration from either version).
    pub fn drop_sync_triggers(&self) -> Vec<String> {
        sync_trigger_names(&self.column)
            .all()
            .iter()
            .map(|name| {
                format!(
                    "DROP TRIGGER IF EXISTS {} ON {}",
                    quote_ident(name),
                    self.t()
                )
            })
            .collect()
    }

    /// Drops the sync function.
    pub fn drop_sync_function(&self) -> String {
        format!(
            "DROP FUNCTION IF EXISTS {}()",
            self.sync_function().quoted()
        )
    }

    /// Key columns, quoted and comma-separated.
    fn key_list(&self) -> String {
        self.key
            .iter()
            .map(|k| quote_ident(&k.name))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The key as one comparable value: `"id"` or `("a", "b")`.
    fn key_expr(&self) -> String {
        if self.key.len() == 1 {
            quote_ident(&self.key[0].name)
        } else {
            format!("({})", self.key_list())
        }
    }

    /// Parameters `$first …` cast from text to each key type, one per key column.
    fn key_casts(&self, first: usize) -> Vec<String> {
        self.key
            .iter()
            .enumerate()
            .map(|(i, k)| format!("CAST(${}::text AS {})", first + i, k.sql_type))
            .collect()
    }

    /// Parameters `$first …` cast from text to each key type, as one comparable value.
    fn key_params(&self, first: usize) -> String {
        as_key_value(&self.key_casts(first))
    }

    /// `key > lo AND key <= hi` with lo at `$lo_param` (when present) and hi at `$hi_param`.
    pub fn range_condition(&self, lo_param: Option<usize>, hi_param: Option<usize>) -> String {
        let mut parts = Vec::new();
        if let Some(p) = lo_param {
            parts.push(format!("{} > {}", self.key_expr(), self.key_params(p)));
        }
        if let Some(p) = hi_param {
            parts.push(format!("{} <= {}", self.key_expr(), self.key_params(p)));
        }
        if parts.is_empty() {
            "true".into()
        } else {
            parts.join(" AND ")
        }
    }

    /// Parameter numbers of the lower and upper bound, when present (lower first).
    fn bounds(&self, with_lo: bool, with_hi: bool) -> (Option<usize>, Option<usize>) {
        let lo = with_lo.then_some(1);
        let hi = with_hi.then_some(if with_lo { self.key.len() + 1 } else { 1 });
        (lo, hi)
    }

    /// Key columns printed as text, in order (for reading keys back).
    fn key_as_text(&self, qualifier: &str) -> String {
        self.key
            .iter()
            .map(|k| format!("{qualifier}{}::text", quote_ident(&k.name)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// ORDER BY over the key. Qualified with the table: an unqualified name would sort by the
    /// `key::text` output column of the same name, in text order.
    fn order_by(&self, desc: bool) -> String {
        self.key
            .iter()
            .map(|k| {
                format!(
                    "{}.{}{}",
                    self.t(),
                    quote_ident(&k.name),
                    if desc { " DESC" } else { "" }
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The last key of the table: the end of the backfill range.
    pub fn max_key(&self) -> String {
        format!(
            "SELECT {} FROM {} ORDER BY {} LIMIT 1",
            self.key_as_text(""),
            self.t(),
            self.order_by(true)
        )
    }

    /// The `size`-th key after lo, bounded by an upper key (or not). Parameters: [lo…], [hi…],
    /// then the offset (size - 1) as bigint.
    pub fn nth_key(&self, with_lo: bool, with_hi: bool) -> String {
        let n = self.key.len();
        let lo = with_lo.then_some(1);
        let hi = with_hi.then_some(if with_lo { n + 1 } else { 1 });
        let offset_param = 1 + n * (usize::from(with_lo) + usize::from(with_hi));
        format!(
            "SELECT {} FROM {} WHERE {} ORDER BY {} OFFSET ${offset_param}::bigint LIMIT 1",
            self.key_as_text(""),
            self.t(),
            self.range_condition(lo, hi),
            self.order_by(false)
        )
    }

    /// A whole batch in one statement: the end of the batch (the `size`-th key after the
    /// checkpoint, or the end of the range), the update of its pending rows, and the checkpoint,
    /// guarded by the previous one. A runner that finds the checkpoint moved updates nothing
    /// and gets no row back. Parameters: job, previous last_key (text[] or NULL), [lo…],
    /// end…, then the offset (size - 1) as bigint. Returns the batch's last key (as text, one
    /// column per key column), whether it is the end of the range, the keys in the batch, and
    /// the rows updated.
    ///
    /// The end key reaches the UPDATE as scalar subqueries (InitPlans), so its range is an
    /// index condition; a join with the CTE instead plans as a scan of the whole table.
    pub fn batch_statement(&self, with_lo: bool) -> Option<String> {
        let expr = self.backfill.as_ref()?;
        let n = self.key.len();
        let lo = with_lo.then_some(3);
        let end = 3 + if with_lo { n } else { 0 };
        let offset = end + n;
        let hi_cols: Vec<String> = (1..=n).map(|i| format!("pacer_k{i}")).collect();
        let found_as: Vec<String> = self
            .key
            .iter()
            .zip(&hi_cols)
            .map(|(k, h)| format!("f.{} AS {h}", quote_ident(&k.name)))
            .collect();
        let end_values = self.key_casts(end);
        let hi_subqueries: Vec<String> = hi_cols
            .iter()
            .map(|h| format!("(SELECT {h} FROM hi)"))
            .collect();
        let hi_value = as_key_value(&hi_subqueries);
        let mut update_range = Vec::new();
        if let Some(p) = lo {
            update_range.push(format!("{} > {}", self.key_expr(), self.key_params(p)));
        }
        update_range.push(format!("{} <= {hi_value}", self.key_expr()));
        let hi_text: Vec<String> = hi_cols.iter().map(|h| format!("hi.{h}::text")).collect();
        let range = self.range_condition(lo, Some(end));
        Some(format!(
            "WITH guard AS MATERIALIZED (\
             SELECT job FROM {state} WHERE job = $1::text AND last_key IS NOT DISTINCT FROM $2::text[] \
             FOR UPDATE), \
             found AS MATERIALIZED (\
             SELECT {keys} FROM {t} WHERE {range} ORDER BY {order} OFFSET ${offset}::bigint LIMIT 1), \
             hi AS MATERIALIZED (\
             SELECT {found_as}, false AS pacer_last FROM found f \
             UNION ALL SELECT {end_values}, true WHERE NOT EXISTS (SELECT FROM found)), \
             upd AS (\
             UPDATE {t} SET {col} = ({expr}) WHERE EXISTS (SELECT FROM guard) AND {update_range} \
             AND {pending} RETURNING 1) \
             UPDATE {state} s SET last_key = ARRAY[{hi_text}], rows_done = s.rows_done + k.n, \
             rows_updated = s.rows_updated + (SELECT count(*) FROM upd), batches = s.batches + 1, \
             updated_at = now() \
             FROM guard g, hi, LATERAL (SELECT CASE WHEN hi.pacer_last \
             THEN (SELECT count(*) FROM {t} WHERE {range}) ELSE ${offset}::bigint + 1 END AS n) k \
             WHERE s.job = g.job \
             RETURNING {hi_text}, hi.pacer_last, k.n, (SELECT count(*) FROM upd)",
            state = self.state_table.quoted(),
            keys = self.key_list(),
            t = self.t(),
            order = self.order_by(false),
            found_as = found_as.join(", "),
            end_values = end_values.join(", "),
            col = self.col(),
            update_range = update_range.join(" AND "),
            pending = self.pending(""),
            hi_text = hi_text.join(", "),
        ))
    }

    /// Verification of one chunk of keys (lo, hi] (or (lo, ∞)): rows, rows still pending whose expression
    /// has a value (unfilled), and NULLs. Parameters: [lo…], hi….
    pub fn verify_range(&self, with_lo: bool, with_hi: bool) -> String {
        let (lo, hi) = self.bounds(with_lo, with_hi);
        self.verify_where(&self.range_condition(lo, hi))
    }

    /// Verification of the pages [$1, $2) (TIDs `($1,0)` up to `($2,0)`, a TID range scan on
    /// PostgreSQL 14+): rows, unfilled rows, NULLs, as [`Self::verify_range`].
    pub fn verify_pages(&self) -> String {
        self.verify_where(PAGE_RANGE)
    }

    /// First unfilled key in the pages [$1, $2), to name in an error.
    pub fn first_unfilled_in_pages(&self, nulls_only: bool) -> String {
        self.first_unfilled_where(PAGE_RANGE, nulls_only)
    }

    /// The table's size in pages now: `pg_relation_size` ÷ `block_size`. Parameter: the
    /// table's quoted name ([`Self::t`]).
    pub fn pages(&self) -> &'static str {
        "SELECT (pg_relation_size($1::text::regclass) / current_setting('block_size')::bigint)::bigint"
    }

    fn verify_where(&self, condition: &str) -> String {
        let unfilled = match &self.backfill {
            Some(expr) => format!(
                "count(*) FILTER (WHERE {} AND CAST(({expr}) AS {}) IS DISTINCT FROM {})",
                self.pending(""),
                self.sql_type,
                self.col()
            ),
            None => "0::bigint".into(),
        };
        format!(
            "SELECT count(*), {unfilled}, count(*) FILTER (WHERE {} IS NULL) FROM {} WHERE {condition}",
            self.col(),
            self.t(),
        )
    }

    /// First unfilled key in the chunk, to name in an error. Parameters: [lo…], [hi…].
    pub fn first_unfilled(&self, with_lo: bool, with_hi: bool, nulls_only: bool) -> String {
        let (lo, hi) = self.bounds(with_lo, with_hi);
        self.first_unfilled_where(&self.range_condition(lo, hi), nulls_only)
    }

    fn first_unfilled_where(&self, range: &str, nulls_only: bool) -> String {
        let condition = match (&self.backfill, nulls_only) {
            (Some(expr), false) => format!(
                "{} AND CAST(({expr}) AS {}) IS DISTINCT FROM {}",
                self.pending(""),
                self.sql_type,
                self.col()
            ),
            _ => format!("{} IS NULL", self.col()),
        };
        format!(
            "SELECT {} FROM {} WHERE {range} AND {condition} ORDER BY {} LIMIT 1",
            self.key_as_text(""),
            self.t(),
            self.order_by(false)
        )
    }

    /// `ADD CONSTRAINT … CHECK (col IS NOT NULL) NOT VALID`.
    pub fn add_not_null_check(&self) -> String {
        format!(
            "ALTER TABLE {} ADD CONSTRAINT {} CHECK ({} IS NOT NULL) NOT VALID",
            self.t(),
            quote_ident(&not_null_check_name(&self.column)),
            self.col()
        )
    }

    /// `VALIDATE CONSTRAINT` (SHARE UPDATE EXCLUSIVE: reads and writes go on).
    pub fn validate_not_null_check(&self) -> String {
        format!(
            "ALTER TABLE {} VALIDATE CONSTRAINT {}",
            self.t(),
            quote_ident(&not_null_check_name(&self.column))
        )
    }

    /// `SET NOT NULL` (PostgreSQL 12+ skips the scan thanks to the valid check).
    pub fn set_not_null(&self) -> String {
        format!(
            "ALTER TABLE {} ALTER COLUMN {} SET NOT NULL",
            self.t(),
            self.col()
        )
    }

    /// Drops the temporary check.
    pub fn drop_not_null_check(&self) -> String {
        format!(
            "ALTER TABLE {} DROP CONSTRAINT IF EXISTS {}",
            self.t(),
            quote_ident(&not_null_check_name(&self.column))
        )
    }

    /// The index, as a qualified name.
    pub fn index_name(&self) -> Option<TableName> {
        self.index.as_ref().map(|(name, _)| TableName {
            schema: self.table.schema.clone(),
            name: name.clone(),
        })
    }

    /// `CREATE [UNIQUE] INDEX CONCURRENTLY`.
    pub fn create_index(&self) -> Option<String> {
        let (name, unique) = self.index.as_ref()?;
        Some(format!(
            "CREATE {}INDEX CONCURRENTLY {} ON {} ({})",
            if *unique { "UNIQUE " } else { "" },
            quote_ident(name),
            self.t(),
            self.col()
        ))
    }

    /// `DROP INDEX CONCURRENTLY` of an invalid index left by an earlier attempt.
    pub fn drop_index(&self) -> Option<String> {
        Some(format!(
            "DROP INDEX CONCURRENTLY IF EXISTS {}",
            self.index_name()?.quoted()
        ))
    }

    /// The state table's schema.
    pub fn create_state_schema(&self) -> String {
        format!(
            "CREATE SCHEMA IF NOT EXISTS {}",
            quote_ident(self.state_table.schema.as_deref().unwrap_or("public"))
        )
    }

    /// The state table: one row per migration.
    pub fn create_state_table(&self) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS {} (\n\
             \x20 job text PRIMARY KEY,\n\
             \x20 table_name text NOT NULL,\n\
             \x20 column_name text NOT NULL,\n\
             \x20 plan_digest text NOT NULL,\n\
             \x20 outcome text NOT NULL DEFAULT 'running',\n\
             \x20 phase text NOT NULL,\n\
             \x20 phases_done text[] NOT NULL DEFAULT '{{}}',\n\
             \x20 column_created boolean NOT NULL DEFAULT false,\n\
             \x20 key_columns text[] NOT NULL,\n\
             \x20 range_end text[],\n\
             \x20 range_fixed boolean NOT NULL DEFAULT false,\n\
             \x20 last_key text[],\n\
             \x20 rows_done bigint NOT NULL DEFAULT 0,\n\
             \x20 rows_updated bigint NOT NULL DEFAULT 0,\n\
             \x20 rows_total bigint,\n\
             \x20 batches bigint NOT NULL DEFAULT 0,\n\
             \x20 runner text,\n\
             \x20 message text,\n\
             \x20 started_at timestamptz NOT NULL DEFAULT now(),\n\
             \x20 updated_at timestamptz NOT NULL DEFAULT now(),\n\
             \x20 finished_at timestamptz\n\
             )",
            self.state_table.quoted()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn plan(extra: &str) -> Plan {
        Plan::parse(
            Path::new("p.toml"),
            &format!(
                "table = \"Sales.Order Items\"\n[column]\nname = \"Amount\"\ntype = \"numeric(14,2)\"\n{extra}"
            ),
        )
        .unwrap()
    }

    fn sql(extra: &str, key: &[(&str, &str)]) -> PgSql {
        let p = plan(extra);
        let table = p.table.clone();
        PgSql::new(
            &p,
            table,
            key.iter()
                .map(|(n, t)| KeyColumn {
                    name: n.to_string(),
                    sql_type: t.to_string(),
                })
                .collect(),
        )
    }

    #[test]
    fn add_column_quotes_schema_table_and_column() {
        let s = sql("", &[("id", "bigint")]);
        assert_eq!(
            s.add_column(),
            "ALTER TABLE \"Sales\".\"Order Items\" ADD COLUMN IF NOT EXISTS \"Amount\" numeric(14,2)"
        );
    }

    #[test]
    fn add_column_with_default_and_instant_not_null() {
        let s = sql("default = \"0\"\nnot_null = true\n", &[("id", "bigint")]);
        assert!(
            s.add_column()
                .ends_with("numeric(14,2) DEFAULT (0) NOT NULL")
        );
        let s = sql(
            "default = \"0\"\nnot_null = true\nbackfill = \"1\"\n",
            &[("id", "bigint")],
        );
        assert!(
            s.add_column().ends_with("DEFAULT (0)"),
            "{}",
            s.add_column()
        );
    }

    #[test]
    fn the_batch_statement_updates_pending_rows_of_its_keyset_range_and_moves_the_checkpoint() {
        let s = sql("backfill = \"cents / 100.0\"\n", &[("id", "bigint")]);
        let b = s.batch_statement(true).unwrap();
        assert!(
            b.contains(
                "UPDATE \"Sales\".\"Order Items\" SET \"Amount\" = (cents / 100.0) WHERE EXISTS \
                 (SELECT FROM guard) AND \"id\" > CAST($3::text AS bigint) AND \"id\" <= \
                 (SELECT pacer_k1 FROM hi) AND \"Amount\" IS NULL"
            ),
            "{b}"
        );
        assert!(
            b.contains(
                "WHERE \"id\" > CAST($3::text AS bigint) AND \"id\" <= CAST($4::text AS bigint) \
                 ORDER BY \"Sales\".\"Order Items\".\"id\" OFFSET $5::bigint LIMIT 1"
            ),
            "{b}"
        );
        let first = s.batch_statement(false).unwrap();
        assert!(
            first.contains("WHERE \"id\" <= CAST($3::text AS bigint) ORDER BY"),
            "{first}"
        );
        assert!(first.contains("OFFSET $4::bigint"), "{first}");
        assert!(
            first.contains("AND \"id\" <= (SELECT pacer_k1 FROM hi) AND \"Amount\" IS NULL"),
            "{first}"
        );
    }

    #[test]
    fn composite_keys_compare_as_rows() {
        let s = sql(
            "backfill = \"1\"\n",
            &[("tenant", "integer"), ("Order", "text")],
        );
        assert_eq!(
            s.range_condition(Some(1), Some(3)),
            "(\"tenant\", \"Order\") > (CAST($1::text AS integer), CAST($2::text AS text)) AND \
             (\"tenant\", \"Order\") <= (CAST($3::text AS integer), CAST($4::text AS text))"
        );
        assert_eq!(
            s.nth_key(true, true),
            "SELECT \"tenant\"::text, \"Order\"::text FROM \"Sales\".\"Order Items\" WHERE (\"tenant\", \"Order\") > \
             (CAST($1::text AS integer), CAST($2::text AS text)) AND (\"tenant\", \"Order\") <= (CAST($3::text AS integer), \
             CAST($4::text AS text)) ORDER BY \"Sales\".\"Order Items\".\"tenant\", \"Sales\".\"Order Items\".\"Order\" OFFSET $5::bigint LIMIT 1"
        );
        let b = s.batch_statement(true).unwrap();
        assert!(
            b.contains(
                "(\"tenant\", \"Order\") <= ((SELECT pacer_k1 FROM hi), (SELECT pacer_k2 FROM hi))"
            ),
            "{b}"
        );
        assert!(
            b.contains(
                "SELECT f.\"tenant\" AS pacer_k1, f.\"Order\" AS pacer_k2, false AS pacer_last"
            ),
            "{b}"
        );
        assert!(
            b.contains("ARRAY[hi.pacer_k1::text, hi.pacer_k2::text]"),
            "{b}"
        );
        assert_eq!(
            s.max_key(),
            "SELECT \"tenant\"::text, \"Order\"::text FROM \"Sales\".\"Order Items\" ORDER BY \"Sales\".\"Order Items\".\"tenant\" DESC, \"Sales\".\"Order Items\".\"Order\" DESC LIMIT 1"
        );
    }

    #[test]
    fn nth_key_parameter_numbers_follow_the_bounds_present() {
        let s = sql("backfill = \"1\"\n", &[("id", "bigint")]);
        assert!(s.nth_key(false, true).contains("\"id\" <= CAST($1::text AS bigint) ORDER BY \"Sales\".\"Order Items\".\"id\" OFFSET $2::bigint"));
        assert!(s.nth_key(true, false).contains("\"id\" > CAST($1::text AS bigint) ORDER BY \"Sales\".\"Order Items\".\"id\" OFFSET $2::bigint"));
        assert!(
            s.nth_key(false, false)
                .contains("WHERE true ORDER BY \"Sales\".\"Order Items\".\"id\" OFFSET $1::bigint")
        );
    }

    #[test]
    fn pending_rows_with_a_default_are_those_still_at_the_default() {
        let s = sql(
            "default = \"0\"\nbackfill = \"cents\"\n",
            &[("id", "bigint")],
        );
        assert_eq!(
            s.pending(""),
            "\"Amount\" IS NOT DISTINCT FROM CAST((0) AS numeric(14,2))"
        );
    }

    #[test]
    fn sync_function_fills_inserts_and_recomputes_untouched_updates() {
        let s = sql("backfill = \"cents / 100.0\"\n", &[("id", "bigint")]);
        let f = s.create_sync_function().unwrap();
        assert!(f.starts_with(
            "CREATE OR REPLACE FUNCTION \"Sales\".\"pacer_sync_Order Items_Amount\"()"
        ));
        assert!(f.contains("IF NEW.\"Amount\" IS NULL THEN"));
        assert!(f.contains("ELSIF NEW.\"Amount\" IS NOT DISTINCT FROM OLD.\"Amount\" THEN"));
        assert!(f.contains("(SELECT (cents / 100.0) FROM (SELECT NEW.*) AS pacer_row)"));
        assert_eq!(
            s.create_sync_insert_trigger(),
            "CREATE TRIGGER \"pacer_sync_Amount_ins\" BEFORE INSERT ON \"Sales\".\"Order Items\" FOR EACH ROW \
             WHEN (NEW.\"Amount\" IS NULL) EXECUTE FUNCTION \"Sales\".\"pacer_sync_Order Items_Amount\"()"
        );
        assert_eq!(
            s.create_sync_update_trigger(),
            "CREATE TRIGGER \"pacer_sync_Amount_upd\" BEFORE UPDATE ON \"Sales\".\"Order Items\" FOR EACH ROW \
             WHEN (NEW.\"Amount\" IS NOT DISTINCT FROM OLD.\"Amount\") \
             EXECUTE FUNCTION \"Sales\".\"pacer_sync_Order Items_Amount\"()"
        );
    }

    #[test]
    fn insert_trigger_with_a_default_treats_the_default_as_not_set() {
        let s = sql(
            "default = \"0\"\nbackfill = \"cents\"\n",
            &[("id", "bigint")],
        );
        let t = s.create_sync_insert_trigger();
        assert!(
            t.contains(
                "BEFORE INSERT ON \"Sales\".\"Order Items\" FOR EACH ROW \
                 WHEN (NEW.\"Amount\" IS NOT DISTINCT FROM CAST((0) AS numeric(14,2))) EXECUTE FUNCTION"
            ),
            "{t}"
        );
        // The function makes the same test, so a call through either trigger keeps the rule.
        let f = s.create_sync_function().unwrap();
        assert!(
            f.contains("IF NEW.\"Amount\" IS NOT DISTINCT FROM CAST((0) AS numeric(14,2)) THEN"),
            "{f}"
        );
        // The update trigger does not depend on the default: only on whether the column changed.
        assert!(
            s.create_sync_update_trigger()
                .contains("WHEN (NEW.\"Amount\" IS NOT DISTINCT FROM OLD.\"Amount\")")
        );
    }

    #[test]
    fn cleanup_drops_both_triggers_and_the_single_trigger_of_earlier_versions() {
        let s = sql("backfill = \"1\"\n", &[("id", "bigint")]);
        assert_eq!(
            s.drop_sync_triggers(),
            vec![
                "DROP TRIGGER IF EXISTS \"pacer_sync_Amount_ins\" ON \"Sales\".\"Order Items\"",
                "DROP TRIGGER IF EXISTS \"pacer_sync_Amount_upd\" ON \"Sales\".\"Order Items\"",
                "DROP TRIGGER IF EXISTS \"pacer_sync_Amount\" ON \"Sales\".\"Order Items\"",
            ]
        );
    }

    #[test]
    fn long_column_names_keep_distinct_trigger_names_within_63_bytes() {
        let column = "c".repeat(70);
        let names = sync_trigger_names(&column);
        for name in names.all() {
            assert!(name.len() <= 63, "{name}");
        }
        assert!(names.insert.ends_with("_ins"), "{}", names.insert);
        assert!(names.update.ends_with("_upd"), "{}", names.update);
        assert_ne!(names.insert, names.legacy);
        assert_ne!(names.update, names.legacy);
        assert_eq!(names.legacy, format!("pacer_sync_{}", "c".repeat(52)));
        // Multi-byte characters are never cut in half.
        let names = sync_trigger_names(&"é".repeat(40));
        assert!(
            names.insert.len() <= 63 && names.insert.ends_with("é_ins"),
            "{}",
            names.insert
        );
    }

    #[test]
    fn not_null_steps_and_index() {
        let s = sql(
            "backfill = \"1\"\nnot_null = true\nindex = true\n",
            &[("id", "bigint")],
        );
        assert_eq!(
            s.add_not_null_check(),
            "ALTER TABLE \"Sales\".\"Order Items\" ADD CONSTRAINT \"pacer_nn_Amount\" CHECK (\"Amount\" IS NOT NULL) NOT VALID"
        );
        assert!(
            s.validate_not_null_check()
                .ends_with("VALIDATE CONSTRAINT \"pacer_nn_Amount\"")
        );
        assert_eq!(
            s.create_index().unwrap(),
            "CREATE INDEX CONCURRENTLY \"Order Items_Amount_idx\" ON \"Sales\".\"Order Items\" (\"Amount\")"
        );
        assert_eq!(
            s.drop_index().unwrap(),
            "DROP INDEX CONCURRENTLY IF EXISTS \"Sales\".\"Order Items_Amount_idx\""
        );
    }

    #[test]
    fn checkpoint_is_guarded_by_the_previous_position() {
        let s = sql("backfill = \"1\"\n", &[("id", "bigint")]);
        let b = s.batch_statement(true).unwrap();
        assert!(
            b.contains(
                "WHERE job = $1::text AND last_key IS NOT DISTINCT FROM $2::text[] FOR UPDATE"
            ),
            "{b}"
        );
        assert!(b.contains("WHERE EXISTS (SELECT FROM guard)"), "{b}");
        assert!(b.contains("FROM guard g, hi"), "{b}");
    }
}
