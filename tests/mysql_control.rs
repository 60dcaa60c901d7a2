//! The engine's commands on MySQL/MariaDB: pause, resume, batch size and abort through
//! `pacer ctl` (by plan and target, as an operator would), a resume after the abort, and the
//! audit log of every statement pacer sent, without the password.

mod common;
use common::mariadb::{rows_done, skip};

use std::time::{Duration, Instant};

use common::*;
use pacer::servers::mariadb::{MariaDbServer, PASSWORD, PASSWORD_USER};

#[test]
fn pause_resize_resume_and_abort_work_on_mariadb_and_the_audit_log_has_every_statement() {
    if skip() {
        return;
    }
    let db = MariaDbServer::start();
    db.create_database("shop");
    db.sql(
        "shop",
        "CREATE TABLE orders (id bigint NOT NULL AUTO_INCREMENT PRIMARY KEY, amount_cents bigint NOT NULL) ENGINE=InnoDB;
         INSERT INTO orders (amount_cents) SELECT seq FROM seq_1_to_80000;",
    );
    let url = db.url_as(PASSWORD_USER, PASSWORD, "shop");
    let p = plan_file(
        r#"table = "orders"
[column]
name = "amount"
type = "decimal(14,2)"
backfill = "amount_cents / 100.0"
[backfill]
batch_size = 500
adaptive = false
pause_ms = 20
"#,
    );
    let audit = tempfile::tempdir().unwrap();
    let audit_log = audit.path().join("audit.jsonl");
    let child = spawn_run(&p.path, &url, &["--audit-log", audit_log.to_str().unwrap()]);
    let socket = socket_of(child.id());
    let sock = socket.to_str().unwrap();
    let start = Instant::now();
    while rows_done(&db) < 3_000 {
        assert!(start.elapsed() < Duration::from_secs(60), "no progress");
        std::thread::sleep(Duration::from_millis(50));
    }

    // Pause by plan and target, from another shell.
    let ran = ctl(&["pause", p.path.to_str().unwrap(), "--target", &url]);
    assert_eq!(ran.code, 0, "{ran}");
    wait_for_status(&socket, "paused", Duration::from_secs(10));
    let held = rows_done(&db);
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(rows_done(&db), held, "no batch runs while paused");

    // A new batch size, then resume: the next batches take it.
    let ran = ctl(&["batch-size", "2000", "--socket", sock]);
    assert_eq!(ran.code, 0, "{ran}");
    let ran = ctl(&["resume", "--socket", sock]);
    assert_eq!(ran.code, 0, "{ran}");
    let start = Instant::now();
    while rows_done(&db) < held + 4_000 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no progress after resume"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = status_json(&socket);
    assert_eq!(status["state"]["batch_size"], 2000, "{status}");
    let (done, batches): (i64, i64) = {
        let s = db.sql(
            "",
            "SELECT CONCAT(rows_done, ' ', batches) FROM pacer.migrations",
        );
        let mut it = s.split(' ').map(|v| v.parse().unwrap());
        (it.next().unwrap(), it.next().unwrap())
    };
    assert!(
        (done - held) / (batches - held / 500).max(1) > 500,
        "batches after resume are larger: {done} rows in {batches} batches"
    );

    // Abort: exit 3, recorded; a new run resumes and finishes.
    let ran = ctl(&["abort", "--socket", sock]);
    assert_eq!(ran.code, 0, "{ran}");
    let ran = finish(child);
    assert_eq!(ran.code, 3, "{ran}");
    assert_eq!(
        db.sql("", "SELECT outcome FROM pacer.migrations"),
        "aborted"
    );
    let ran = run_pacer(
        &[
            "run",
            "--headless",
            "--audit-log",
            audit_log.to_str().unwrap(),
        ],
        &p.path,
        &url,
    );
    assert_eq!(ran.code, 0, "{ran}");
    assert!(ran.stderr.contains("resuming after"), "{ran}");
    assert_eq!(
        db.sql(
            "shop",
            "SELECT COUNT(*) FROM orders WHERE NOT (amount <=> amount_cents / 100.0)"
        ),
        "0"
    );

    // The audit log: each statement pacer sent (batches with their key range), the operator's
    // actions, and never the password.
    let text = std::fs::read_to_string(&audit_log).unwrap();
    assert!(!text.contains(PASSWORD), "the password is in the audit log");
    let lines = audit_lines(&audit_log);
    let sql: Vec<&str> = lines.iter().filter_map(|l| l["sql"].as_str()).collect();
    for needle in [
        "ALTER TABLE `shop`.`orders` WAIT",
        "CREATE TRIGGER `shop`.`pacer_sync_amount_upd`",
        "SET STATEMENT max_statement_time=",
        "SELECT GET_LOCK(?, 0)",
        "DROP TRIGGER IF EXISTS",
    ] {
        assert!(
            sql.iter().any(|s| s.contains(needle)),
            "{needle} not audited"
        );
    }
    let batch = lines
        .iter()
        .find(|l| {
            l["sql"]
                .as_str()
                .is_some_and(|s| s.contains("FOR UPDATE `shop`.`orders`") && s.contains("`id` > ?"))
        })
        .expect("a batch is audited");
    assert!(
        batch["params"].as_array().is_some_and(|p| p.len() == 2),
        "{batch}"
    );
    for action in ["pause", "batch_size", "resume", "abort"] {
        assert!(
            lines.iter().any(|l| l["action"] == action),
            "operator action {action} not audited"
        );
    }
}
