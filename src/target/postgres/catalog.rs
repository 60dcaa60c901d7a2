//! Preflight on PostgreSQL: read-only questions to the catalog, and a rolled-back probe.

use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use super::errors::describe_db_error;
use super::sql::{PgSql, sync_trigger_names};
use super::wal::{WAL_PER_TABLE_BYTE, read_wal_state, wal_findings};
use super::{MIN_SERVER_VERSION, Postgres, job_id};
use crate::plan::ident::quote_ident;
use crate::plan::{Finding, Plan, TableName};
use crate::target::{KeyColumn, Preflight, TableInfo, TargetError, TargetResult};

fn refuse(message: impl Into<String>) -> TargetError {
    TargetError::Refused(message.into())
}

/// Runs every preflight check; refuses with a clear message when the plan cannot run safely.
pub async fn preflight(pg: &mut Postgres, plan: &Plan) -> TargetResult<Preflight> {
    let db = pg.conn.dbname().to_string();
    let row = pg
        .query(
            "SELECT current_setting('server_version')",
            &[],
            "reading the server version",
        )
        .await?
        .remove(0);
    let server_version: String = row.get(0);
    if pg.server_version < MIN_SERVER_VERSION {
        return Err(refuse(format!(
            "{} runs PostgreSQL {server_version}; pacer needs 12 or later (SET NOT NULL must be \
             able to use a valid CHECK constraint instead of scanning the table under an exclusive lock)",
            pg.conn.redacted()
        )));
    }

    // The table.
    let wanted = plan.table.quoted();
    let rows = pg
        .query(
            "SELECT n.nspname::text, c.relname::text, c.relkind::text, c.reltuples::float8, \
             pg_table_size(c.oid), pg_indexes_size(c.oid), c.relpersistence = 'u' \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass($1::text)",
            &[&wanted],
            "looking up the table",
        )
        .await?;
    let Some(row) = rows.first() else {
        let path: String = pg
            .query(
                "SELECT array_to_string(current_schemas(false), ', ')",
                &[],
                "reading search_path",
            )
            .await?[0]
            .get(0);
        return Err(refuse(format!(
            "table {} does not exist in database {db}{}. Check `table` in {} (names are exact and \
             case-sensitive, as \\d shows them).",
            plan.table,
            if plan.table.schema.is_none() {
                format!(" (searched schemas: {path})")
            } else {
                String::new()
            },
            plan.path.display()
        )));
    };
    let table = TableName {
        schema: Some(row.get(0)),
        name: row.get(1),
    };
    let relkind: String = row.get(2);
    let reltuples: f64 = row.get(3);
    let table_bytes: i64 = row.get(4);
    let index_bytes: i64 = row.get(5);
    let unlogged: bool = row.get(6);
    if relkind != "r" && relkind != "p" {
        return Err(refuse(format!(
            "{table} is not a table (relkind {relkind}: a view, materialized view or foreign table); \
             pacer adds columns to ordinary and partitioned tables only"
        )));
    }
    let partitioned = relkind == "p";
    pg.job = job_id(plan, table.schema.as_deref());
    pg.audit.set_job(&pg.job);
    let quoted = table.quoted();
    privileges(pg, plan, &table).await?;

    // The key batches walk.
    let key = key_columns(pg, &quoted).await?;
    let Some((key_source, key)) = key else {
        return Err(refuse(format!(
            "{table} has no primary key and no unique index on NOT NULL columns, so pacer cannot walk \
             it in key ranges (and could not resume exactly). Add a primary key first, without a long \
             lock: CREATE UNIQUE INDEX CONCURRENTLY …; ALTER TABLE {quoted} ADD PRIMARY KEY USING INDEX …"
        )));
    };
    let sql = PgSql::new(plan, table.clone(), key.clone());
    pg.sql = Some(sql.clone());

    // The column, and whether this migration created it.
    let job = pg.job_row().await?;
    if let Some(j) = &job
        && j.plan_digest != plan.digest()
    {
        return Err(refuse(format!(
            "migration {} was started with a different definition (table, column, type, default, \
             backfill, not_null or index changed in {}). Finish it with the plan it started with. \
             To start over instead, drop the column and delete its state: DELETE FROM {} WHERE job = '{}'",
            pg.job,
            plan.path.display(),
            plan.state_table,
            pg.job.replace('\'', "''")
        )));
    }
    let column_exists = pg.column_state().await?.is_some();
    let created_by_us = job.as_ref().is_some_and(|j| j.column_created);
    if column_exists && !created_by_us {
        return Err(refuse(format!(
            "column {} already exists on {table} and was not created by this migration. Pick another \
             column name in {}, or drop the existing column if it is a leftover.",
            plan.column.name,
            plan.path.display()
        )));
    }
    if !column_exists && created_by_us {
        return Err(refuse(format!(
            "this migration created column {} on {table}, but the column is gone (dropped by someone). \
             To start over, delete its state: DELETE FROM {} WHERE job = '{}'",
            plan.column.name,
            plan.state_table,
            pg.job.replace('\'', "''")
        )));
    }

    // The type, default and expression, tried for real in a transaction that is rolled back.
    let type_ok: bool = pg
        .query(
            "SELECT to_regtype($1::text) IS NOT NULL",
            &[&plan.column.sql_type],
            "checking the type",
        )
        .await
        .map(|r| r[0].get(0))
        .unwrap_or(false);
    if !type_ok {
        return Err(refuse(format!(
            "column type `{}` is not a type known to database {db}. Fix `type` in {} (e.g. \
             numeric(14,2), bigint, text, timestamptz).",
            plan.column.sql_type,
            plan.path.display()
        )));
    }
    probe(pg, plan, &sql).await?;

    // What matters around the table.
    let mut findings = dependents(pg, &quoted, plan).await?;
    if !unlogged {
        // An unlogged table's backfill writes no WAL.
        findings.extend(wal_findings(
            read_wal_state(pg).await.as_ref(),
            table_bytes.max(0) as u64,
        ));
    }
    if partitioned && plan.column.index.is_some() {
        return Err(refuse(format!(
            "{table} is partitioned, and PostgreSQL cannot CREATE INDEX CONCURRENTLY on a partitioned \
             table. Drop `index` from the plan and build the index per partition \
             (CREATE INDEX CONCURRENTLY on each, then CREATE INDEX ON ONLY the parent and ATTACH)."
        )));
    }
    if let Some(index) = sql.index_name() {
        let other: Option<bool> = pg
            .query(
                "SELECT i.indrelid = to_regclass($2::text) FROM pg_index i WHERE i.indexrelid = to_regclass($1::text)",
                &[&index.quoted(), &quoted],
                "looking up the index name",
            )
            .await?
            .first()
            .map(|r| r.get(0));
        if other == Some(false) {
            return Err(refuse(format!(
                "an index named {index} already exists on another table; set another name in {} \
                 (index = {{ name = \"…\" }})",
                plan.path.display()
            )));
        }
    }
    if plan.column.index.as_ref().is_some_and(|i| i.unique)
        && plan.column.backfill.is_none()
        && plan.column.default.is_some()
    {
        findings.push(Finding::warning(
            "a unique index over a column whose rows all get the same default will fail on any table with more than one row",
        ));
    }

    let estimated_rows = (reltuples >= 0.0).then_some(reltuples as u64);
    Ok(Preflight {
        info: TableInfo {
            table: table.to_string(),
            key,
            key_source,
            estimated_rows,
            table_bytes: table_bytes as u64,
            index_bytes: index_bytes as u64,
            server_version,
            server_product: "PostgreSQL".into(),
            findings,
        },
        job,
    })
}

/// ALTER TABLE needs the table's owner (or a member of the owning role); pacer's state needs
/// a schema it may create tables in. Checked up front so a run never stops half-way for lack
/// of a privilege.
async fn privileges(pg: &mut Postgres, plan: &Plan, table: &TableName) -> TargetResult<()> {
    let quoted = table.quoted();
    let state_schema = plan
        .state_table
        .schema
        .clone()
        .unwrap_or_else(|| "public".into());
    let row = pg
        .query(
            "SELECT current_user::text, pg_get_userbyid(c.relowner)::text, pg_has_role(c.relowner, 'USAGE'), \
                    CASE WHEN to_regnamespace(quote_ident($2::text)) IS NULL \
                         THEN has_database_privilege(current_database(), 'CREATE') \
                         ELSE has_schema_privilege(to_regnamespace(quote_ident($2::text)), 'CREATE') \
                              OR to_regclass($3::text) IS NOT NULL END \
             FROM pg_class c WHERE c.oid = to_regclass($1::text)",
            &[&quoted, &state_schema, &plan.state_table.quoted()],
            "checking privileges",
        )
        .await?
        .remove(0);
    let (user, owner, owns, can_keep_state): (String, String, bool, bool) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    if !owns {
        return Err(refuse(format!(
            "user {user} cannot alter {table}: PostgreSQL lets only the table's owner ({owner}) or a \
             member of that role add columns, triggers and indexes. Run pacer as {owner}, or \
             GRANT {owner} TO {user}."
        )));
    }
    if !can_keep_state {
        return Err(refuse(format!(
            "user {user} may not create pacer's state table {}: it needs CREATE on schema \
             {state_schema} (or on the database, to create that schema). Grant it, or set \
             `state_table` in {} to a schema {user} may create tables in.",
            plan.state_table,
            plan.path.display()
        )));
    }
    Ok(())
}

/// The key: the primary key, else the narrowest valid unique btree index on NOT NULL columns
/// without expressions or predicate.
async fn key_columns(
    pg: &mut Postgres,
    table: &str,
) -> TargetResult<Option<(String, Vec<KeyColumn>)>> {
    let rows = pg
        .query(
            "SELECT ic.relname::text, i.indisprimary, \
                    array_agg(a.attname::text ORDER BY k.ord), \
                    array_agg(format_type(a.atttypid, a.atttypmod) ORDER BY k.ord), \
                    bool_and(a.attnotnull) \
             FROM pg_index i \
             JOIN pg_class ic ON ic.oid = i.indexrelid \
             JOIN pg_am am ON am.oid = ic.relam AND am.amname = 'btree' \
             CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) \
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
             WHERE i.indrelid = to_regclass($1::text) AND i.indisunique AND i.indisvalid \
               AND i.indpred IS NULL AND i.indexprs IS NULL AND k.ord <= i.indnkeyatts \
             GROUP BY ic.relname, i.indisprimary, i.indnkeyatts \
             ORDER BY i.indisprimary DESC, i.indnkeyatts, ic.relname",
            &[&table],
            "looking up the table's keys",
        )
        .await?;
    for row in rows {
        let not_null: bool = row.get(4);
        if !not_null {
            continue;
        }
        let name: String = row.get(0);
        let primary: bool = row.get(1);
        let names: Vec<String> = row.get(2);
        let types: Vec<String> = row.get(3);
        let source = if primary {
            format!("primary key {name}")
        } else {
            format!("unique index {name}")
        };
        let key = names
            .into_iter()
            .zip(types)
            .map(|(name, sql_type)| KeyColumn { name, sql_type })
            .collect();
        return Ok(Some((source, key)));
    }
    Ok(None)
}

/// Tries the column definition and the backfill expression for real, in a transaction that is
/// rolled back, on temporary tables: the type and default are added to a one-row temporary
/// table (a changed relfilenode means PostgreSQL rewrote it: volatile default, domain check…),
/// and the expression is planned against the table with assignment casts and run on a sample.
async fn probe(pg: &mut Postgres, plan: &Plan, sql: &PgSql) -> TargetResult<()> {
    let c = &plan.column;
    let client = pg.client()?;
    let file = plan.path.display();
    let lock_ms = plan.safety.lock_timeout.as_millis();
    let run = |text: String| async move {
        client.batch_execute(&text).await.map_err(|e| {
            e.as_db_error()
                .map(describe_db_error)
                .unwrap_or_else(|| e.to_string())
        })
    };
    let result: Result<(), TargetError> = async {
        run(format!(
            "BEGIN; SET LOCAL statement_timeout = '15s'; SET LOCAL lock_timeout = '{lock_ms}ms'; \
             CREATE TEMP TABLE pacer_probe_rewrite (\"pacer probe\" int) ON COMMIT DROP; \
             INSERT INTO pacer_probe_rewrite VALUES (1)"
        ))
        .await
        .map_err(|m| TargetError::Failed(format!("preflight could not create a temporary table: {m}")))?;
        let before: i64 = client
            .query_one("SELECT pg_relation_filenode('pacer_probe_rewrite')::bigint", &[])
            .await
            .map_err(|e| TargetError::Failed(e.to_string()))?
            .get(0);
        let mut add = format!(
            "ALTER TABLE pacer_probe_rewrite ADD COLUMN {} {}",
            quote_ident(&c.name),
            c.sql_type
        );
        if let Some(d) = &c.default {
            add.push_str(&format!(" DEFAULT ({d})"));
        }
        if plan.not_null_at_add() {
            add.push_str(" NOT NULL");
        }
        client.execute(add.as_str(), &[]).await.map_err(|e| {
            refuse(format!(
                "the column definition `{} {}{}` is not valid: {}. Fix `type`/`default` in {file}.",
                c.name,
                c.sql_type,
                c.default.as_ref().map(|d| format!(" DEFAULT {d}")).unwrap_or_default(),
                e.as_db_error().map(describe_db_error).unwrap_or_else(|| e.to_string())
            ))
        })?;
        let after: i64 = client
            .query_one("SELECT pg_relation_filenode('pacer_probe_rewrite')::bigint", &[])
            .await
            .map_err(|e| TargetError::Failed(e.to_string()))?
            .get(0);
        if before != after {
            return Err(refuse(match &c.default {
                Some(d) => format!(
                    "default `{d}` would make PostgreSQL rewrite the whole of {} under an ACCESS EXCLUSIVE \
                     lock (it is volatile, like random(), gen_random_uuid() or clock_timestamp()): every \
                     query on the table would wait for the rewrite, roughly 1.5–3.5 s per million rows. \
                     Safe alternative: remove `default` (or use a constant), put the expression in \
                     `backfill = \"{d}\"` so existing rows are filled in batches, and set the default \
                     afterwards with ALTER TABLE … ALTER COLUMN … SET DEFAULT (instant).",
                    sql.table
                ),
                None => format!(
                    "adding a column of type `{}` would make PostgreSQL rewrite the whole of {} under an \
                     ACCESS EXCLUSIVE lock (a domain with constraints, or a similar type). Use the base \
                     type for the new column, backfill it, and add the constraint with NOT VALID + VALIDATE.",
                    c.sql_type, sql.table
                ),
            }));
        }
        if let Some(expr) = &c.backfill {
            run(format!(
                "CREATE TEMP TABLE pacer_probe_values (v {}) ON COMMIT DROP",
                c.sql_type
            ))
            .await
            .map_err(|m| TargetError::Failed(format!("preflight could not create a temporary table: {m}")))?;
            let key_order = sql
                .key
                .iter()
                .map(|k| quote_ident(&k.name))
                .collect::<Vec<_>>()
                .join(", ");
            let explain = format!(
                "EXPLAIN INSERT INTO pacer_probe_values SELECT ({expr}) FROM {}",
                sql.table.quoted()
            );
            let sample = format!(
                "INSERT INTO pacer_probe_values SELECT ({expr}) FROM (SELECT * FROM {} ORDER BY {key_order} LIMIT 1000) AS pacer_sample",
                sql.table.quoted()
            );
            for (what, text) in [("is not valid", explain), ("fails on existing rows", sample)] {
                let params: [&(dyn ToSql + Sync); 0] = [];
                client.execute(text.as_str(), &params).await.map_err(|e| {
                    let reason = e.as_db_error().map(describe_db_error).unwrap_or_else(|| e.to_string());
                    if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) {
                        TargetError::LockTimeout { blockers: Vec::new(), detail: format!("preflight sample: {reason}"), skipped: false }
                    } else {
                        refuse(format!(
                            "the backfill expression `{expr}` {what} for column {} {} of {}: {reason}. \
                             Fix `backfill` in {file}; it is an SQL expression over the same row, \
                             with columns named as they are, e.g. \"amount_cents / 100.0\".",
                            c.name, c.sql_type, sql.table
                        ))
                    }
                })?;
            }
        }
        Ok(())
    }
    .await;
    let _ = client.batch_execute("ROLLBACK").await;
    result
}

/// Views, publications, triggers and replicas: what matters around the table for a new column.
async fn dependents(pg: &mut Postgres, table: &str, plan: &Plan) -> TargetResult<Vec<Finding>> {
    let mut findings = Vec::new();
    let views: Vec<String> = pg
        .query(
            "SELECT DISTINCT v.oid::regclass::text FROM pg_depend d \
             JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class v ON v.oid = r.ev_class \
             WHERE d.classid = 'pg_rewrite'::regclass AND d.refobjid = to_regclass($1::text) \
               AND v.oid <> to_regclass($1::text) ORDER BY 1",
            &[&table],
            "looking for dependent views",
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if !views.is_empty() {
        findings.push(Finding::warning(format!(
            "views depend on the table: {}. A view keeps the column list it had when it was created \
             (even `SELECT *`), so it will not show the new column until it is recreated.",
            views.join(", ")
        )));
    }
    let publications: Vec<String> = pg
        .query(
            "SELECT p.pubname::text FROM pg_publication p WHERE p.puballtables \
             OR EXISTS (SELECT 1 FROM pg_publication_rel pr WHERE pr.prpubid = p.oid AND pr.prrelid = to_regclass($1::text)) \
             ORDER BY 1",
            &[&table],
            "looking for publications",
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if !publications.is_empty() {
        findings.push(Finding::warning(format!(
            "the table is published for logical replication ({}): add the column on every subscriber \
             before the backfill starts, or replication stops with \"missing replicated column\"; \
             the backfill also sends every updated row to the subscribers.",
            publications.join(", ")
        )));
    }
    let names = sync_trigger_names(&plan.column.name);
    let own: Vec<String> = names.all().iter().map(|n| n.to_string()).collect();
    let triggers: Vec<String> = pg
        .query(
            "SELECT tgname::text FROM pg_trigger WHERE tgrelid = to_regclass($1::text) AND NOT tgisinternal \
             AND tgname <> ALL ($2::text[]) ORDER BY 1",
            &[&table, &own],
            "looking for triggers",
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if !triggers.is_empty() {
        findings.push(Finding::warning(format!(
            "the table has triggers ({}): UPDATE triggers fire for every row of every backfill batch, \
             and BEFORE triggers named after \"{}\" (inserts) or \"{}\" (updates) run after pacer's \
             sync triggers.",
            triggers.join(", "),
            names.insert,
            names.update
        )));
    }
    let replicas: i64 = pg
        .query(
            "SELECT count(*) FROM pg_stat_replication",
            &[],
            "counting replicas",
        )
        .await
        .map(|r| r[0].get(0))
        .unwrap_or(0);
    if replicas > 0 {
        findings.push(Finding::info(format!(
            "{replicas} streaming replica(s) attached: the backfill writes WAL of \
             {WAL_PER_TABLE_BYTE}–6× the table's size; watch their replay lag"
        )));
    }
    Ok(findings)
}

/// Estimated rows: statistics when there are any; an exact count on tables under 256 MB.
pub async fn estimate_rows(pg: &mut Postgres, table: &str) -> TargetResult<Option<u64>> {
    let row = pg
        .query(
            "SELECT c.reltuples::float8, pg_table_size(c.oid) FROM pg_class c WHERE c.oid = to_regclass($1::text)",
            &[&table],
            "estimating the row count",
        )
        .await?
        .remove(0);
    let (reltuples, bytes): (f64, i64) = (row.get(0), row.get(1));
    if reltuples >= 0.0 {
        return Ok(Some(reltuples as u64));
    }
    if bytes < 256 * 1024 * 1024 {
        let count: i64 = pg
            .query(
                &format!("SELECT count(*) FROM {table}"),
                &[],
                "counting rows",
            )
            .await?[0]
            .get(0);
        return Ok(Some(count as u64));
    }
    Ok(None)
}
