//! The audit log of a real run: every statement pacer sends, as JSON lines, and no password.

mod common;

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt as _;

use common::*;
use pacer::servers::postgres::{PASSWORD, PASSWORD_USER, PgServer};
use serde_json::Value;

fn statements<'a>(lines: &'a [Value], session: &str) -> Vec<&'a Value> {
    lines
        .iter()
        .filter(|l| l["kind"] == "statement" && l["session"] == session)
        .collect()
}

fn sql(l: &Value) -> &str {
    l["sql"].as_str().unwrap()
}

#[test]
fn a_run_writes_every_statement_it_sends_to_the_audit_log_without_the_password() {
    let pg = PgServer::start();
    pg.create_database("shop");
    seed_orders(&pg, "shop", 20_000);
    pg.psql(
        "shop",
        &format!(
            "ALTER TABLE orders OWNER TO {PASSWORD_USER}; GRANT CREATE ON DATABASE shop TO {PASSWORD_USER}; \
             GRANT CREATE ON SCHEMA public TO {PASSWORD_USER}"
        ),
    );
    let url = pg.url_as(PASSWORD_USER, PASSWORD, "shop");
    // The sampler runs (max_lock_waiters), and so does the operator's throttle query.
    let plan = plan_file(&orders_plan(
        5000,
        "pause_ms = 300\nadaptive = false",
        "\n[throttle]\nmax_lock_waiters = 100\nthrottle_query = \"SELECT 0\"",
    ));
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("logs/audit.jsonl");

    let ran = run_pacer(
        &["run", "--headless", "--audit-log", audit.to_str().unwrap()],
        &plan.path,
        &url,
    );
    assert_eq!(ran.code, 0, "{ran}");

    let raw = std::fs::read_to_string(&audit).unwrap();
    let encoded = PASSWORD.replace(' ', "%20");
    for text in [&raw, &ran.stderr, &ran.stdout] {
        assert!(!text.contains(PASSWORD), "the password is written: {text}");
        assert!(!text.contains(&encoded), "the password is written: {text}");
    }
    assert_eq!(
        std::fs::metadata(&audit).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let lines = audit_lines(&audit);
    for l in &lines {
        assert!(
            humantime::parse_rfc3339(l["ts"].as_str().unwrap()).is_ok(),
            "{l}"
        );
        assert_eq!(l["job"], "public.orders.amount", "{l}");
        assert!(l["pid"].as_u64().is_some(), "{l}");
        assert!(l["user"].as_str().is_some_and(|u| !u.is_empty()), "{l}");
        if l["kind"] == "statement" {
            assert!(l["params"].is_array(), "{l}");
        }
    }

    let main = statements(&lines, "main");
    let has = |needle: &str| main.iter().any(|l| sql(l).contains(needle));
    for needle in [
        "SET lock_timeout = '2000ms'",
        "ALTER TABLE \"public\".\"orders\" ADD COLUMN IF NOT EXISTS \"amount\" numeric(14,2)",
        "CREATE TRIGGER",
        "ALTER COLUMN \"amount\" SET NOT NULL",
        "CREATE INDEX CONCURRENTLY",
        "DROP TRIGGER",
        "INSERT INTO \"pacer\".\"migrations\"",
    ] {
        assert!(has(needle), "no statement with {needle} in {raw}");
    }

    // The batches: one statement each (end key, UPDATE, checkpoint) between its BEGIN and
    // COMMIT, with the checkpoint it expects and the range's end as parameters; each starts
    // where the one before ended, from the start of the table.
    let batches: Vec<&Value> = main
        .iter()
        .copied()
        .filter(|l| sql(l).starts_with("WITH guard AS MATERIALIZED"))
        .collect();
    assert_eq!(batches.len(), 4, "{raw}");
    for b in &batches {
        assert!(
            sql(b).contains("UPDATE \"public\".\"orders\" SET \"amount\""),
            "{b}"
        );
        assert!(
            sql(b).contains("SET last_key = ARRAY[hi.pacer_k1::text]"),
            "{b}"
        );
    }
    let mut lo: Option<i64> = None;
    for b in &batches {
        let p = b["params"].as_array().unwrap();
        assert_eq!(p[0], "public.orders.amount");
        match lo {
            None => {
                assert_eq!(p[1], Value::Null, "{b}");
                assert_eq!(p.len(), 4, "job, checkpoint, end, offset: {b}");
            }
            Some(k) => {
                let k = k.to_string();
                assert_eq!(p[1], Value::from(vec![k.as_str()]), "{b}");
                assert_eq!(p[2], Value::from(k.as_str()), "{b}");
                assert_eq!(p.len(), 5, "job, checkpoint, lo, end, offset: {b}");
            }
        }
        assert_eq!(p[p.len() - 2], "20000", "the end of the range: {b}");
        let offset = p[p.len() - 1].as_i64().unwrap();
        lo = Some(lo.unwrap_or(0) + offset + 1);
    }
    assert!(lo.unwrap() >= 20_000, "the batches reach the end");
    let begins = main
        .iter()
        .filter(|l| sql(l).contains("SET LOCAL synchronous_commit = off"))
        .count();
    assert_eq!(begins, 4, "each batch has its BEGIN: {raw}");

    // The operator's throttle query runs on the observer session, logged each time.
    let observer = statements(&lines, "observer");
    assert!(
        observer
            .iter()
            .any(|l| sql(l) == "SELECT ((SELECT 0))::float8" && l.get("repeats").is_none()),
        "{raw}"
    );

    // The sampler's queries, once each however many rounds ran.
    let sampler = statements(&lines, "sampler");
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for l in &sampler {
        *seen.entry(sql(l)).or_default() += 1;
        assert!(l["repeats"].is_string(), "{l}");
    }
    assert!(
        seen.keys().any(|s| s.contains("pg_stat_replication")),
        "{raw}"
    );
    assert!(
        seen.keys().any(|s| s.starts_with("SET statement_timeout")),
        "{raw}"
    );
    assert!(seen.values().all(|n| *n == 1), "{seen:?}");

    // A second command appends to the same file: `pacer status` sends statements too.
    let before = lines.len();
    let status = run_pacer(
        &["status", "--audit-log", audit.to_str().unwrap()],
        &plan.path,
        &url,
    );
    assert_eq!(status.code, 0, "{status}");
    let after = audit_lines(&audit);
    assert!(after.len() > before);
    assert!(
        after[before..]
            .iter()
            .any(|l| l["kind"] == "note" && l["command"] == "status")
    );
    assert!(
        after[before..]
            .iter()
            .any(|l| l["kind"] == "statement" && sql(l).starts_with("SELECT job, plan_digest"))
    );
}

#[test]
fn the_audit_log_names_the_job_as_the_state_table_does_when_the_schema_comes_from_search_path() {
    let pg = PgServer::start();
    let url = pg.create_database("shop");
    pg.psql(
        "shop",
        "CREATE SCHEMA app; ALTER DATABASE shop SET search_path = app, public",
    );
    seed_orders(&pg, "shop", 3_000); // in app: the first schema of the search_path
    let plan = plan_file(
        &orders_plan(1000, "", "").replace(r#"table = "public.orders""#, r#"table = "orders""#),
    );
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let ran = run_pacer(
        &["run", "--headless", "--audit-log", audit.to_str().unwrap()],
        &plan.path,
        &url,
    );
    assert_eq!(ran.code, 0, "{ran}");
    assert_eq!(
        pg.psql("shop", "SELECT string_agg(job, ',') FROM pacer.migrations"),
        "app.orders.amount"
    );

    let lines = audit_lines(&audit);
    let jobs: Vec<&str> = lines.iter().map(|l| l["job"].as_str().unwrap()).collect();
    // Until the preflight has found the table, the schema is not known (the plan names none):
    // the first statements and the run_started note say so; from then on, every line names
    // the job as the state table does, never `public`.
    let resolved = jobs
        .iter()
        .position(|j| *j == "app.orders.amount")
        .expect("lines name the resolved job");
    assert!(
        jobs[..resolved].iter().all(|j| *j == ".orders.amount"),
        "{jobs:?}"
    );
    assert!(
        jobs[resolved..].iter().all(|j| *j == "app.orders.amount"),
        "{jobs:?}"
    );
    let first = |what: &dyn Fn(&Value) -> bool| lines.iter().position(what).unwrap();
    assert!(
        first(&|l| sql_of(l).starts_with("INSERT INTO \"pacer\".\"migrations\"")) > resolved,
        "the state row is written under the resolved job: {jobs:?}"
    );
    assert!(
        first(&|l| sql_of(l).starts_with("ALTER TABLE")) > resolved,
        "{jobs:?}"
    );
    assert!(
        first(&|l| l["kind"] == "note" && l["what"] == "run_ended") > resolved,
        "{jobs:?}"
    );
}

fn sql_of(l: &Value) -> &str {
    l["sql"].as_str().unwrap_or("")
}

#[test]
fn audit_log_off_writes_nothing_and_an_unwritable_one_is_refused() {
    let pg = PgServer::start();
    let url = pg.create_database("shop");
    seed_orders(&pg, "shop", 100);
    let plan = plan_file(&orders_plan(1000, "", ""));
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");

    let off = pacer()
        .args(["status", "--audit-log", "off"])
        .arg(&plan.path)
        .arg("--target")
        .arg(&url)
        .env("XDG_STATE_HOME", &state)
        .output()
        .unwrap();
    assert_eq!(off.status.code(), Some(0), "{}", Ran::from(off));
    assert!(!state.exists(), "nothing written under the default place");

    // The default place, from XDG_STATE_HOME; PACER_AUDIT_LOG=off too.
    let default = pacer()
        .arg("status")
        .arg(&plan.path)
        .arg("--target")
        .arg(&url)
        .env("XDG_STATE_HOME", &state)
        .output()
        .unwrap();
    assert_eq!(default.status.code(), Some(0), "{}", Ran::from(default));
    assert!(!audit_lines(&state.join("pacer/audit.jsonl")).is_empty());
    let env_off = pacer()
        .arg("status")
        .arg(&plan.path)
        .arg("--target")
        .arg(&url)
        .env("XDG_STATE_HOME", dir.path().join("other"))
        .env("PACER_AUDIT_LOG", "off")
        .output()
        .unwrap();
    assert_eq!(env_off.status.code(), Some(0), "{}", Ran::from(env_off));
    assert!(!dir.path().join("other").exists());

    // A file asked for by name that cannot be opened: refused before connecting.
    let blocked = dir.path().join("a-file");
    std::fs::write(&blocked, "").unwrap();
    let ran = run_pacer(
        &[
            "run",
            "--headless",
            "--audit-log",
            blocked.join("audit.jsonl").to_str().unwrap(),
        ],
        &plan.path,
        &url,
    );
    assert_eq!(ran.code, 2, "{ran}");
    assert!(ran.stderr.contains("cannot open the audit log"), "{ran}");
    assert!(ran.stderr.contains("--audit-log off"), "{ran}");
    assert_eq!(
        pg.psql("shop", "SELECT count(*) FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attname = 'amount'"),
        "0"
    );
}

#[test]
fn statements_after_a_reconnect_are_still_logged() {
    let pg = PgServer::start();
    let url = pg.create_database("shop");
    seed_orders(&pg, "shop", 50_000);
    let plan = plan_file(&orders_plan(1000, "pause_ms = 20\nadaptive = false", ""));
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let child = spawn_run(&plan.path, &url, &["--audit-log", audit.to_str().unwrap()]);
    wait_for_number(
        &pg,
        "shop",
        "SELECT rows_done FROM pacer.migrations",
        10_000,
        std::time::Duration::from_secs(60),
    );
    assert_eq!(
        pg.psql(
            "shop",
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name LIKE 'pacer:%'"
        ),
        "1"
    );
    let ran = finish(child);
    assert_eq!(ran.code, 0, "{ran}");
    assert!(ran.stderr.contains("connection lost"), "{ran}");

    let lines = audit_lines(&audit);
    let main = statements(&lines, "main");
    // The session settings went again on the new connection, and the batches after it are
    // logged up to the last key, every range once.
    let settings: Vec<usize> = main
        .iter()
        .enumerate()
        .filter(|(_, l)| {
            sql(l).starts_with("SET lock_timeout = '2000ms'; SET statement_timeout")
                && sql(l).contains("TimeZone")
        })
        .map(|(i, _)| i)
        .collect();
    assert_eq!(settings.len(), 2, "settings at connect and at reconnect");
    let batches_after: Vec<&Value> = main[settings[1]..]
        .iter()
        .copied()
        .filter(|l| sql(l).starts_with("WITH guard AS MATERIALIZED"))
        .collect();
    assert!(!batches_after.is_empty());
    let p = batches_after.last().unwrap()["params"].as_array().unwrap();
    assert_eq!(
        p[p.len() - 2],
        "50000",
        "the last batch reaches the end of the range"
    );
    assert!(
        main[settings[1]..]
            .iter()
            .any(|l| sql(l).starts_with("SELECT pg_try_advisory_lock")),
        "the lock is claimed again on the new session"
    );
}
