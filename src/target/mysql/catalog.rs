//! Preflight on MySQL/MariaDB: read-only questions to `information_schema`, and a probe on a
//! temporary copy of the table's definition (session-private, never replicated, dropped at
//! once) that tries the column, its instant ADD and the backfill expression for real.

use mysql_async::Value;

use super::blockers::MdlView;
use super::errors::describe;
use super::grants::Grants;
use super::session::{int_at, text_at};
use super::sql::{Flavor, KeyKind, KeyPart, MySqlText, q, sync_trigger_names};
use super::{MIN_MARIADB, MIN_MYSQL, MySql};
use crate::plan::{Finding, Plan};
use crate::target::{KeyColumn, Preflight, TableInfo, TargetError, TargetResult};

fn refuse(message: impl Into<String>) -> TargetError {
    TargetError::Refused(message.into())
}

/// Measured on this kind of machine (DB-NOTES): `MODIFY … NOT NULL, ADD INDEX` in place on a
/// 1M-row, ~70 MB table took 2.8 s; a replica applies the rebuild after the primary, as long.
const REBUILD_BYTES_PER_S: f64 = 25.0e6;

/// Runs every preflight check; refuses with a clear message when the plan cannot run safely.
pub async fn preflight(my: &mut MySql, plan: &Plan) -> TargetResult<Preflight> {
    let server = my.server.clone().expect("session settings read the server");
    let min = match server.flavor {
        Flavor::MariaDb => MIN_MARIADB,
        Flavor::MySql => MIN_MYSQL,
    };
    if (server.version.0, server.version.1) < min {
        return Err(refuse(format!(
            "{} runs {} {}; pacer needs {} {}.{} or later (instant ADD COLUMN, several triggers \
             per event, bounded DDL lock waits)",
            my.conn.redacted(),
            server.flavor,
            server.text,
            server.flavor,
            min.0,
            min.1
        )));
    }
    my.mdl_view = mdl_view(my).await;
    let db = my.database.clone();
    let name = plan.table.name.clone();

    // The table.
    let rows = my
        .rows(
            "SELECT TABLE_TYPE, COALESCE(ENGINE, ''), COALESCE(ROW_FORMAT, ''), TABLE_ROWS, DATA_LENGTH, \
             INDEX_LENGTH, COALESCE(CREATE_OPTIONS, '') FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            vec![Value::from(db.clone()), Value::from(name.clone())],
            "looking up the table",
        )
        .await?;
    let Some(row) = rows.first() else {
        return Err(refuse(format!(
            "table {db}.{name} does not exist on {}. Check `table` in {} (on MySQL a `db.table` \
             name picks the database; without one the target URL's database, {}, is used; names \
             are case-sensitive on Linux).",
            my.conn.redacted(),
            plan.path.display(),
            my.conn.database()
        )));
    };
    let table_type = text_at(row, 0).unwrap_or_default();
    let engine = text_at(row, 1).unwrap_or_default();
    let row_format = text_at(row, 2).unwrap_or_default();
    let estimated_rows = text_at(row, 3).and_then(|t| t.parse::<u64>().ok());
    let table_bytes = int_at(row, 4).max(0) as u64;
    let index_bytes = int_at(row, 5).max(0) as u64;
    let create_options = text_at(row, 6).unwrap_or_default();
    if table_type != "BASE TABLE" {
        return Err(refuse(format!(
            "{db}.{name} is not a table ({table_type}); pacer adds columns to InnoDB base tables only"
        )));
    }
    if !engine.eq_ignore_ascii_case("InnoDB") {
        return Err(refuse(format!(
            "{db}.{name} uses the {engine} storage engine; pacer needs InnoDB: only InnoDB adds a \
             column instantly, and only InnoDB has transactions, so a batch and its checkpoint \
             could not commit together ({engine} would also lock the whole table for every batch). \
             Convert it first (ALTER TABLE … ENGINE=InnoDB copies the table: plan it, e.g. with \
             pt-online-schema-change), or add the column another way."
        )));
    }
    if row_format.eq_ignore_ascii_case("Compressed")
        || create_options
            .to_ascii_lowercase()
            .contains("row_format=compressed")
    {
        return Err(refuse(format!(
            "{db}.{name} has ROW_FORMAT=COMPRESSED, and InnoDB cannot add a column to a compressed \
             table instantly: the ALTER would copy the whole table. Nothing was changed. Rebuild \
             the table with another row format first (a copy: plan it), or add the column with a \
             copying tool such as pt-online-schema-change."
        )));
    }

    // MySQL 8.0.29+ counts instant changes per table: at 64 the next one must rebuild it.
    if server.flavor == Flavor::MySql && server.version >= (8, 0, 29) {
        let versions = my
            .rows(
                "SELECT TOTAL_ROW_VERSIONS FROM information_schema.INNODB_TABLES WHERE NAME = ?",
                vec![Value::from(format!("{db}/{name}"))],
                "reading the table's row versions",
            )
            .await?
            .first()
            .map_or(0, |r| int_at(r, 0));
        if versions >= 63 {
            return Err(refuse(format!(
                "{db}.{name} has had {versions} instant changes since it was last rebuilt; MySQL                  allows 64, after which an ADD COLUMN copies the table. Nothing was changed.                  Rebuild the table first (OPTIMIZE TABLE, or ALTER TABLE … FORCE, which run online                  but lag the replicas by their duration), then run pacer again."
            )));
        }
    }

    // Columns and indexes.
    let columns = my
        .rows(
            "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, EXTRA FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            vec![Value::from(db.clone()), Value::from(name.clone())],
            "reading the table's columns",
        )
        .await?;
    struct Col {
        name: String,
        data_type: String,
        column_type: String,
        nullable: bool,
        generated: bool,
    }
    let columns: Vec<Col> = columns
        .iter()
        .map(|r| {
            let extra = text_at(r, 4).unwrap_or_default().to_ascii_uppercase();
            Col {
                name: text_at(r, 0).unwrap_or_default(),
                data_type: text_at(r, 1).unwrap_or_default(),
                column_type: text_at(r, 2).unwrap_or_default(),
                nullable: text_at(r, 3).is_some_and(|n| n == "YES"),
                generated: extra.contains("GENERATED")
                    || extra.contains("VIRTUAL")
                    || extra.contains("STORED")
                    || extra.contains("PERSISTENT"),
            }
        })
        .collect();
    let indexes = my
        .rows(
            "SELECT INDEX_NAME, NON_UNIQUE, COLUMN_NAME, SUB_PART, INDEX_TYPE FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY INDEX_NAME = 'PRIMARY' DESC, INDEX_NAME, SEQ_IN_INDEX",
            vec![Value::from(db.clone()), Value::from(name.clone())],
            "reading the table's indexes",
        )
        .await?;
    if indexes
        .iter()
        .any(|r| text_at(r, 4).is_some_and(|t| t.eq_ignore_ascii_case("FULLTEXT")))
    {
        return Err(refuse(format!(
            "{db}.{name} has a FULLTEXT index, and InnoDB cannot add a column to it instantly (the \
             hidden FTS_DOC_ID column makes the ALTER copy the table, locking writes for the whole \
             copy). Nothing was changed. Add the column with a copying tool such as \
             pt-online-schema-change, or drop the FULLTEXT index for the migration."
        )));
    }

    // The key batches walk: the primary key, else the narrowest unique index on NOT NULL
    // columns without prefixes.
    let mut candidates: Vec<(String, Vec<String>, bool)> = Vec::new();
    for r in &indexes {
        let index = text_at(r, 0).unwrap_or_default();
        let unique = int_at(r, 1) == 0;
        let column = text_at(r, 2).unwrap_or_default();
        let prefix = text_at(r, 3).is_some();
        match candidates.iter_mut().find(|c| c.0 == index) {
            Some(c) => {
                c.1.push(column);
                c.2 &= unique && !prefix;
            }
            None => candidates.push((index, vec![column], unique && !prefix)),
        }
    }
    candidates.retain(|(_, cols, ok)| {
        *ok && cols
            .iter()
            .all(|c| columns.iter().any(|col| &col.name == c && !col.nullable))
    });
    candidates.sort_by_key(|(index, cols, _)| (index != "PRIMARY", cols.len()));
    let Some((key_index, key_names, _)) = candidates.into_iter().next() else {
        return Err(refuse(format!(
            "{db}.{name} has no primary key and no unique index on NOT NULL columns, so pacer cannot \
             walk it in key ranges (and could not resume exactly). Add a primary key first (on \
             InnoDB that rebuilds the table online: ALTER TABLE {} ADD PRIMARY KEY (…), \
             ALGORITHM=INPLACE, LOCK=NONE).",
            q(&db) + "." + &q(&name)
        )));
    };
    let mut key = Vec::new();
    for k in &key_names {
        let col = columns
            .iter()
            .find(|c| &c.name == k)
            .expect("key column listed");
        let kind = KeyKind::of(&col.data_type, &col.column_type).map_err(|why| {
            refuse(format!(
                "{db}.{name}'s key {key_index} includes column {k}, and {why}. Give the table a \
                 primary key or unique index of integer, decimal, string or date columns."
            ))
        })?;
        key.push(KeyPart {
            column: KeyColumn {
                name: k.clone(),
                sql_type: col.column_type.clone(),
            },
            kind,
        });
    }
    let key_source = if key_index == "PRIMARY" {
        "primary key".to_string()
    } else {
        format!("unique index {key_index}")
    };

    // The column, and whether this migration created it.
    let raw = my.job_row_raw().await?;
    if let Some((j, _)) = &raw
        && j.plan_digest != plan.digest()
    {
        let (sdb, st) = my.state_names();
        return Err(refuse(format!(
            "migration {} was started with a different definition (table, column, type, default, \
             backfill, not_null or index changed in {}). Finish it with the plan it started with. \
             To start over instead, drop the column and delete its state: DELETE FROM {}.{} WHERE job = '{}'",
            my.job,
            plan.path.display(),
            q(&sdb),
            q(&st),
            my.job.replace('\'', "''")
        )));
    }
    let created = raw.as_ref().map_or(0, |(_, c)| *c);
    let exists = columns
        .iter()
        .any(|c| c.name.eq_ignore_ascii_case(&plan.column.name));
    if exists && created == 0 {
        return Err(refuse(format!(
            "column {} already exists on {db}.{name} and was not created by this migration. Pick \
             another column name in {}, or drop the existing column if it is a leftover.",
            plan.column.name,
            plan.path.display()
        )));
    }
    if !exists && created == 1 {
        let (sdb, st) = my.state_names();
        return Err(refuse(format!(
            "this migration created column {} on {db}.{name}, but the column is gone (dropped by \
             someone). To start over, delete its state: DELETE FROM {}.{} WHERE job = '{}'",
            plan.column.name,
            q(&sdb),
            q(&st),
            my.job.replace('\'', "''")
        )));
    }
    let other_columns: Vec<String> = columns
        .iter()
        .filter(|c| !c.generated && !c.name.eq_ignore_ascii_case(&plan.column.name))
        .map(|c| c.name.clone())
        .collect();
    let sql = MySqlText::new(
        plan,
        server.flavor,
        (db.clone(), name.clone()),
        key.clone(),
        other_columns,
        my.state_names(),
    );
    my.sql = Some(sql.clone());

    let mut findings = Vec::new();
    privileges(my, plan, &db, &name, &mut findings).await?;

    // Replication: how row changes reach the replicas, and who they are.
    let binlog = my
        .rows(
            "SELECT @@GLOBAL.log_bin, @@GLOBAL.binlog_format",
            vec![],
            "reading the binary log settings",
        )
        .await?;
    let log_bin = binlog.first().is_some_and(|r| int_at(r, 0) == 1);
    let binlog_format = binlog
        .first()
        .and_then(|r| text_at(r, 1))
        .unwrap_or_default()
        .to_ascii_uppercase();
    let replicas = replica_hosts(my, server.flavor).await;
    if log_bin && binlog_format == "STATEMENT" {
        if !replicas.is_empty() {
            return Err(refuse(format!(
                "{} writes its binary log with binlog_format=STATEMENT and has replicas ({}). pacer's \
                 batches and sync triggers must reach the replicas as row changes: in statement \
                 format each replica would run the triggers and the batches' expression again, on its \
                 own data, and may compute other values. Nothing was changed. Set binlog_format=ROW \
                 (SET GLOBAL binlog_format = 'ROW', and in the server's configuration), then run \
                 pacer again.",
                my.conn.redacted(),
                replicas.join(", ")
            )));
        }
        findings.push(Finding::warning(
            "binlog_format=STATEMENT: batches run under REPEATABLE READ (InnoDB cannot log a READ \
             COMMITTED write as a statement), which takes gap locks under the application's \
             inserts; any replica added later would re-run pacer's triggers. Prefer ROW.",
        ));
    }
    if !replicas.is_empty() {
        findings.push(Finding::info(format!(
            "{} replica(s) report to this server ({}): batches reach them as row events and are \
             applied as they come",
            replicas.len(),
            replicas.join(", ")
        )));
        if plan.not_null_phase() || plan.column.index.is_some() {
            let secs = (table_bytes + index_bytes) as f64 / REBUILD_BYTES_PER_S;
            findings.push(Finding::warning(format!(
                "{} rebuilds {db}.{name} online on this server, but each replica applies the ALTER as \
                 one statement after this server has finished, and everything behind it waits: expect \
                 replica lag of about the rebuild's duration (~{} for {} of table and indexes, measured \
                 ~25 MB/s on a small machine), which pacer cannot throttle or pause. The shadow-copy \
                 strategy of a later pacer avoids this; until then, gate the phase and run it when the \
                 replicas can fall behind.",
                if plan.not_null_phase() { "NOT NULL" } else { "the index" },
                crate::format::secs(secs),
                crate::format::bytes(table_bytes + index_bytes)
            )));
        }
    }

    // The column definition, its instant ADD, and the expression, tried for real.
    probe(my, plan, &sql, exists).await?;

    // What matters around the table.
    findings.extend(dependents(my, plan, &db, &name).await?);
    if my.mdl_view == MdlView::None {
        findings.push(Finding::warning(
            "metadata locks are not visible on this server (neither the metadata_lock_info plugin \
             nor performance_schema's MDL instrument), so pacer cannot see which connection holds \
             the table before a DDL: it still bounds each DDL's wait by lock_timeout, and names \
             open transactions as the likely blockers. To see them: INSTALL SONAME 'metadata_lock_info'.",
        ));
    }
    if plan.column.index.as_ref().is_some_and(|i| i.unique)
        && plan.column.backfill.is_none()
        && plan.column.default.is_some()
    {
        findings.push(Finding::warning(
            "a unique index over a column whose rows all get the same default will fail on any table with more than one row",
        ));
    }

    Ok(Preflight {
        info: TableInfo {
            table: format!("{db}.{name}"),
            key: key.into_iter().map(|k| k.column).collect(),
            key_source,
            estimated_rows,
            table_bytes,
            index_bytes,
            server_version: server.text.clone(),
            server_product: server.flavor.to_string(),
            findings,
        },
        job: raw.map(|(j, _)| j),
    })
}

/// ALTER TABLE needs ALTER, CREATE and INSERT on the table, the sync triggers TRIGGER, the
/// batches SELECT and UPDATE, and pacer's state CREATE, SELECT, INSERT and UPDATE on its table
/// (CREATE on its database, to create that). Checked up front from `SHOW GRANTS`, so a run never
/// stops half-way for lack of a privilege; when a role is granted the lines cannot tell, and
/// preflight says so instead.
async fn privileges(
    my: &mut MySql,
    plan: &Plan,
    db: &str,
    name: &str,
    findings: &mut Vec<Finding>,
) -> TargetResult<()> {
    let lines = match my
        .rows("SHOW GRANTS", vec![], "reading the user's privileges")
        .await
    {
        Ok(rows) => rows
            .iter()
            .filter_map(|r| text_at(r, 0))
            .collect::<Vec<_>>(),
        Err(e) => {
            findings.push(Finding::warning(format!(
                "pacer could not read the user's privileges ({e}); a missing one stops the run at                  the step that needs it (resumable)"
            )));
            return Ok(());
        }
    };
    let grants = Grants::parse(&lines);
    if grants.roles {
        findings.push(Finding::info(
            "the user has a role: pacer cannot tell its privileges from SHOW GRANTS, so a missing              one would stop the run at the step that needs it (resumable). Needed: SELECT, UPDATE,              ALTER, CREATE, INSERT and TRIGGER on the table; CREATE, SELECT, INSERT, UPDATE on              pacer's state table.",
        ));
        return Ok(());
    }
    let mut needed = vec!["SELECT", "UPDATE", "ALTER", "CREATE", "INSERT"];
    if plan.column.backfill.is_some() {
        needed.push("TRIGGER");
    }
    let on_table = grants.missing(&needed, db, name);
    let (sdb, st) = my.state_names();
    let on_state = grants.missing(&["CREATE", "SELECT", "INSERT", "UPDATE"], &sdb, &st);
    if on_table.is_empty() && on_state.is_empty() {
        return Ok(());
    }
    let user = my.conn.redacted();
    let mut grants_needed = Vec::new();
    if !on_table.is_empty() {
        grants_needed.push(format!(
            "GRANT {} ON {}.{} TO <the user>",
            on_table.join(", "),
            q(db),
            q(name)
        ));
    }
    if !on_state.is_empty() {
        grants_needed.push(format!(
            "GRANT {} ON {}.* TO <the user>",
            on_state.join(", "),
            q(&sdb)
        ));
    }
    Err(refuse(format!(
        "the user of {user} lacks privileges pacer needs, so the run would stop half-way: {}.          Nothing was changed. Grant them ({}), or set `state_table` in {} to a database the user          may create tables in.",
        [
            (!on_table.is_empty()).then(|| format!("{} on {db}.{name}", on_table.join(", "))),
            (!on_state.is_empty())
                .then(|| format!("{} on pacer's state table {sdb}.{st}", on_state.join(", "))),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join("; "),
        grants_needed.join("; "),
        plan.path.display()
    )))
}

/// How this server shows metadata locks (on the main connection; none when it is lost).
async fn mdl_view(my: &mut MySql) -> MdlView {
    match my.main() {
        Ok(session) => super::blockers::mdl_view_of(session).await,
        Err(_) => MdlView::None,
    }
}

/// The replicas that report to this server (`SHOW SLAVE HOSTS`; `SHOW REPLICAS` on MySQL 8),
/// as `host:port`; none when they cannot be listed (no REPLICATION MASTER ADMIN privilege).
pub(super) async fn replica_hosts(my: &mut MySql, flavor: Flavor) -> Vec<String> {
    let statement = match flavor {
        Flavor::MariaDb => "SHOW SLAVE HOSTS",
        Flavor::MySql => "SHOW REPLICAS",
    };
    match my.rows(statement, vec![], "listing replicas").await {
        // Server_id, Host, Port, … in both.
        Ok(rows) => rows
            .iter()
            .map(|r| {
                format!(
                    "{}:{}",
                    text_at(r, 1).unwrap_or_default(),
                    text_at(r, 2).unwrap_or_default()
                )
            })
            .collect(),
        Err(e) => {
            tracing::warn!("listing replicas failed: {e}");
            Vec::new()
        }
    }
}

/// Tries the column on a temporary copy of the table's definition (session-private, not
/// replicated): the ADD with ALGORITHM=INSTANT, then the backfill expression over up to 1,000
/// of the table's rows under strict mode (a value that would truncate fails here, not in
/// batch 4,000), and the expression as the sync trigger evaluates it. Nothing is left behind.
async fn probe(
    my: &mut MySql,
    plan: &Plan,
    sql: &MySqlText,
    column_exists: bool,
) -> TargetResult<()> {
    let c = &plan.column;
    let file = plan.path.display().to_string();
    let probe = "pacer_probe";
    let bounded = |text: String| match sql.flavor {
        Flavor::MariaDb => format!("SET STATEMENT max_statement_time=15 FOR {text}"),
        Flavor::MySql => text,
    };
    let main = my.main()?;
    let _ = main
        .simple(&format!("DROP TEMPORARY TABLE IF EXISTS {}", q(probe)))
        .await;
    // Ok(whether the trigger may read the row's values directly).
    let result: TargetResult<bool> = async {
        main.simple(&format!("CREATE TEMPORARY TABLE {} LIKE {}", q(probe), sql.t()))
            .await
            .map_err(|e| {
                TargetError::Failed(format!(
                    "preflight could not create a temporary copy of {}'s definition: {}",
                    sql.table_name(),
                    describe(&e)
                ))
            })?;
        // A column this migration already added came with the definition: try it afresh.
        if column_exists {
            main.simple(&format!("ALTER TABLE {} DROP COLUMN {}", q(probe), q(&c.name)))
                .await
                .map_err(|e| TargetError::Failed(format!("preflight's probe: {}", describe(&e))))?;
        }
        main.simple(&sql.probe_add_column(probe)).await.map_err(|e| {
            let code = super::errors::code(&e);
            if code.is_some_and(|c| super::errors::ALTER_NOT_SUPPORTED.contains(&c)) {
                refuse(format!(
                    "column `{} {}` cannot be added instantly: {}. The server would copy the whole \
                     of {} to add it, blocking writes for the copy and lagging every replica as \
                     long. Nothing was changed. Use a nullable column or a constant default (put \
                     an expression in `backfill` instead of `default`), in {file}.",
                    c.name,
                    c.sql_type,
                    describe(&e),
                    sql.table_name()
                ))
            } else {
                refuse(format!(
                    "the column definition `{} {}{}` is not valid: {}. Fix `type`/`default` in {file}.",
                    c.name,
                    c.sql_type,
                    c.default.as_ref().map(|d| format!(" DEFAULT {d}")).unwrap_or_default(),
                    describe(&e)
                ))
            }
        })?;
        if let Some(expr) = &c.backfill {
            let key_order = sql
                .key
                .iter()
                .map(|k| q(&k.column.name))
                .collect::<Vec<_>>()
                .join(", ");
            let cols = sql.columns.iter().map(|c| q(c)).collect::<Vec<_>>().join(", ");
            // A derived table cannot read an outer row here (no LATERAL on MariaDB), so the
            // trigger's `NEW.` values are stood in for by user variables holding a sample row.
            let vars: Vec<String> = (0..sql.columns.len()).map(|i| format!("@pacer_probe_{i}")).collect();
            let values = sql
                .columns
                .iter()
                .zip(&vars)
                .map(|(c, v)| format!("{v} AS {}", q(c)))
                .collect::<Vec<_>>()
                .join(", ");
            let reset = format!(
                "SET {}",
                vars.iter().map(|v| format!("{v} = NULL")).collect::<Vec<_>>().join(", ")
            );
            let fetch = format!("SELECT {cols} INTO {} FROM {} LIMIT 1", vars.join(", "), q(probe));
            let steps = [
                (
                    "could not be tried on a sample",
                    bounded(format!(
                        "INSERT INTO {} ({cols}) SELECT {cols} FROM {} ORDER BY {key_order} LIMIT 1000",
                        q(probe),
                        sql.t()
                    )),
                ),
                (
                    "fails on existing rows",
                    bounded(format!(
                        "UPDATE {} SET {} = ({expr})",
                        q(probe),
                        q(&c.name)
                    )),
                ),
                ("could not be tried on a sample", reset),
                ("could not be tried on a sample", fetch),
                (
                    "cannot be evaluated over a new row, as the sync trigger does",
                    format!("SELECT (SELECT ({expr}) FROM (SELECT {values}) AS pacer_row)"),
                ),
            ];
            for (what, text) in steps {
                main.rows(&text, vec![]).await.map_err(|e| {
                    refuse(format!(
                        "the backfill expression `{expr}` {what} for column {} {} of {}: {}. Fix \
                         `backfill` in {file}; it is an SQL expression over the same row, with \
                         columns named as they are, e.g. \"amount_cents / 100.0\".",
                        c.name,
                        c.sql_type,
                        sql.table_name(),
                        describe(&e)
                    ))
                })?;
            }
            // The trigger's cheaper form, with the column names read from the row itself: kept
            // only when it evaluates too (else the derived-table form, tried above, is used).
            let index_of = |col: &str| sql.columns.iter().position(|c| c == col).unwrap_or(0);
            let rewritten = sql.expr_with(&|col| format!("@pacer_probe_{}", index_of(col)));
            let direct = match rewritten {
                Some(e) => main.rows(&format!("SELECT ({e})"), vec![]).await.is_ok(),
                None => false,
            };
            return Ok(direct);
        }
        Ok(true)
    }
    .await;
    let _ = main
        .simple(&format!("DROP TEMPORARY TABLE IF EXISTS {}", q(probe)))
        .await;
    if !result? {
        tracing::info!(
            "the sync trigger evaluates the backfill expression through a derived table"
        );
        if let Some(s) = my.sql.as_mut() {
            s.use_derived_table();
        }
    }
    Ok(())
}

/// Views, triggers and foreign keys: what matters around the table for a new column.
async fn dependents(
    my: &mut MySql,
    plan: &Plan,
    db: &str,
    name: &str,
) -> TargetResult<Vec<Finding>> {
    let mut findings = Vec::new();
    let views: Vec<String> = my
        .rows(
            "SELECT CONCAT(TABLE_SCHEMA, '.', TABLE_NAME) FROM information_schema.VIEWS \
             WHERE VIEW_DEFINITION LIKE CONCAT('%`', ?, '`.`', ?, '`%') ORDER BY 1",
            vec![Value::from(db), Value::from(name)],
            "looking for dependent views",
        )
        .await?
        .iter()
        .filter_map(|r| text_at(r, 0))
        .collect();
    if !views.is_empty() {
        findings.push(Finding::warning(format!(
            "views read the table: {}. A view keeps the column list it had when it was created \
             (even `SELECT *`), so it will not show the new column until it is recreated.",
            views.join(", ")
        )));
    }
    let names = sync_trigger_names(&plan.column.name);
    let triggers: Vec<String> = my
        .rows(
            "SELECT CONCAT(TRIGGER_NAME, ' (', ACTION_TIMING, ' ', EVENT_MANIPULATION, ')') \
             FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA = ? AND EVENT_OBJECT_TABLE = ? \
             AND TRIGGER_NAME NOT IN (?, ?) ORDER BY ACTION_TIMING, EVENT_MANIPULATION, ACTION_ORDER",
            vec![
                Value::from(db),
                Value::from(name),
                Value::from(names.insert.clone()),
                Value::from(names.update.clone()),
            ],
            "looking for triggers",
        )
        .await?
        .iter()
        .filter_map(|r| text_at(r, 0))
        .collect();
    if !triggers.is_empty() {
        findings.push(Finding::warning(format!(
            "the table has triggers ({}): UPDATE triggers fire for every row of every backfill \
             batch. pacer's BEFORE triggers ({}, {}) are created after the existing ones and so \
             run last (FOLLOWS order), seeing the values those set.",
            triggers.join(", "),
            names.insert,
            names.update
        )));
    }
    let fks: Vec<String> = my
        .rows(
            "SELECT CONCAT(CONSTRAINT_SCHEMA, '.', TABLE_NAME, ' → ', UNIQUE_CONSTRAINT_SCHEMA, '.', REFERENCED_TABLE_NAME) \
             FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE (CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?) \
             OR (UNIQUE_CONSTRAINT_SCHEMA = ? AND REFERENCED_TABLE_NAME = ?) ORDER BY 1",
            vec![Value::from(db), Value::from(name), Value::from(db), Value::from(name)],
            "looking for foreign keys",
        )
        .await?
        .iter()
        .filter_map(|r| text_at(r, 0))
        .collect();
    if !fks.is_empty() {
        findings.push(Finding::info(format!(
            "foreign keys touch the table ({}): a batch's UPDATE checks none of them (the new \
             column is in no foreign key), but their row locks can make batches and the \
             application wait for each other",
            fks.join(", ")
        )));
    }
    Ok(findings)
}
