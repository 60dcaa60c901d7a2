//! Bad input on MySQL/MariaDB gets a clear paragraph, exit 2, and the database untouched: the
//! twin of each PostgreSQL case, and the MySQL family's own (MyISAM, a column form that would
//! copy the table, statement-based binlog with replicas, plan keys the family lacks).

mod common;
use common::mariadb::skip;

use common::*;
use pacer::servers::mariadb::{MariaDbServer, PASSWORD, PASSWORD_USER};

const TABLE: &str = "CREATE TABLE orders (id bigint NOT NULL AUTO_INCREMENT PRIMARY KEY, \
    amount_cents bigint NOT NULL, note varchar(40)) ENGINE=InnoDB; \
    INSERT INTO orders (amount_cents, note) SELECT seq, 'n' FROM seq_1_to_500;";

fn plan(column: &str) -> String {
    format!("table = \"orders\"\n[column]\n{column}\n")
}

const GOOD_COLUMN: &str =
    "name = \"amount\"\ntype = \"decimal(14,2)\"\nbackfill = \"amount_cents / 100.0\"";

/// What must not change: the table's definition, its triggers, and no state written.
fn snapshot(db: &MariaDbServer, name: &str, table: &str) -> String {
    format!(
        "{}\n{}\n{}",
        db.sql(name, &format!("SHOW CREATE TABLE {table}")),
        db.sql(
            "",
            &format!(
                "SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '{name}'"
            )
        ),
        db.sql(
            "",
            "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'pacer'"
        )
    )
}

/// Runs `pacer run --headless` and `pacer plan`; both must refuse with exit 2 naming `needle`,
/// and leave `table` as it was.
fn refused(db: &MariaDbServer, url: &str, name: &str, table: &str, plan_text: &str, needle: &str) {
    let before = snapshot(db, name, table);
    let p = plan_file(plan_text);
    for args in [&["run", "--headless"][..], &["plan"][..]] {
        let ran = run_pacer(args, &p.path, url);
        assert_eq!(ran.code, 2, "{args:?}: {ran}");
        assert!(
            ran.stderr.contains(needle),
            "{args:?} names {needle:?}: {ran}"
        );
        assert!(!ran.stderr.contains("panicked"), "{ran}");
    }
    assert_eq!(snapshot(db, name, table), before, "nothing changed");
}

#[test]
fn each_bad_input_is_refused_with_exit_2_and_the_database_untouched() {
    if skip() {
        return;
    }
    let db = MariaDbServer::start();
    let url = db.create_database("shop");
    db.sql("shop", TABLE);

    // A malformed plan.
    let p = plan_file("table = \"orders\"\n[column]\nname = \"amount\"\n");
    let ran = run_pacer(&["run", "--headless"], &p.path, &url);
    assert_eq!(ran.code, 2, "{ran}");
    assert!(ran.stderr.contains("type"), "{ran}");

    refused(
        &db,
        &url,
        "shop",
        "orders",
        &plan(GOOD_COLUMN).replace("\"orders\"", "\"nope\""),
        "table shop.nope does not exist",
    );
    refused(
        &db,
        &url,
        "shop",
        "orders",
        &plan("name = \"note\"\ntype = \"text\""),
        "column note already exists",
    );
    refused(
        &db,
        &url,
        "shop",
        "orders",
        &plan("name = \"amount\"\ntype = \"decimal(14,2)\"\nbackfill = \"no_such_column / 100\""),
        "the backfill expression `no_such_column / 100`",
    );
    refused(
        &db,
        &url,
        "shop",
        "orders",
        &plan("name = \"amount\"\ntype = \"decimal(3,2)\"\nbackfill = \"amount_cents * 1000\""),
        "fails on existing rows",
    );
    refused(
        &db,
        &url,
        "shop",
        "orders",
        &plan("name = \"amount\"\ntype = \"moneyish(3)\"\nbackfill = \"1\""),
        "the column definition `amount moneyish(3)` is not valid",
    );
    refused(
        &db,
        &url,
        "shop",
        "orders",
        &format!(
            "{}\n[throttle]\npause_on_autovacuum = true\nmax_wal_rate = 1000\n",
            plan(GOOD_COLUMN)
        ),
        "pause_on_autovacuum: MySQL/MariaDB has no autovacuum",
    );

    // A user who may read and update the table but not alter it, nor keep pacer's state.
    db.sql(
        "",
        "CREATE USER 'limited'@'%' IDENTIFIED BY 'lim1ted-pw'; \
         GRANT SELECT, UPDATE ON `shop`.`orders` TO 'limited'@'%';",
    );
    let limited = db.url_as("limited", "lim1ted-pw", "shop");
    let before = snapshot(&db, "shop", "orders");
    let p = plan_file(&plan(GOOD_COLUMN));
    let ran = run_pacer(&["run", "--headless"], &p.path, &limited);
    assert_eq!(ran.code, 2, "{ran}");
    for needle in [
        "lacks privileges pacer needs",
        "ALTER, CREATE, INSERT, TRIGGER on shop.orders",
        "on pacer's state table pacer.migrations",
    ] {
        assert!(ran.stderr.contains(needle), "{needle}: {ran}");
    }
    assert!(!ran.stderr.contains("lim1ted-pw"), "{ran}");
    assert_eq!(snapshot(&db, "shop", "orders"), before);

    // No usable key.
    db.sql(
        "shop",
        "CREATE TABLE nokey (a int, b int) ENGINE=InnoDB; INSERT INTO nokey VALUES (1, 2);",
    );
    refused(
        &db,
        &url,
        "shop",
        "nokey",
        &plan(GOOD_COLUMN.replace("amount_cents", "a").as_str()).replace("\"orders\"", "\"nokey\""),
        "no primary key and no unique index on NOT NULL columns",
    );

    // MyISAM.
    db.sql("shop", "CREATE TABLE old (id int PRIMARY KEY, amount_cents int) ENGINE=MyISAM; INSERT INTO old VALUES (1, 2);");
    refused(
        &db,
        &url,
        "shop",
        "old",
        &plan(GOOD_COLUMN).replace("\"orders\"", "\"old\""),
        "uses the MyISAM storage engine; pacer needs InnoDB",
    );

    // A column form that would copy the table: a FULLTEXT index.
    db.sql("shop", "CREATE TABLE docs (id int PRIMARY KEY, amount_cents int, body text, FULLTEXT KEY (body)) ENGINE=InnoDB;");
    refused(
        &db,
        &url,
        "shop",
        "docs",
        &plan(GOOD_COLUMN).replace("\"orders\"", "\"docs\""),
        "FULLTEXT index",
    );

    // Unreachable server, wrong password: exit 1 (unreachable may come back) and 2.
    let p = plan_file(&plan(GOOD_COLUMN));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let ran = run_pacer(
        &["plan"],
        &p.path,
        &format!("mysql://root@127.0.0.1:{port}/shop"),
    );
    assert_ne!(ran.code, 0, "{ran}");
    assert!(
        ran.stderr.contains(&format!("127.0.0.1:{port}")),
        "names the server: {ran}"
    );
    let bad = db.url_as(PASSWORD_USER, "wrong password", "shop");
    let ran = run_pacer(&["plan"], &p.path, &bad);
    assert_eq!(ran.code, 2, "{ran}");
    assert!(
        !ran.stderr.contains("wrong password"),
        "the password is never shown: {ran}"
    );
    let good = db.url_as(PASSWORD_USER, PASSWORD, "shop");
    let ran = run_pacer(&["plan"], &p.path, &good);
    assert_eq!(ran.code, 0, "{ran}");
    assert!(
        !ran.stdout.contains(PASSWORD) && !ran.stderr.contains(PASSWORD),
        "{ran}"
    );
}

#[test]
fn statement_based_binlog_with_replicas_is_refused() {
    if skip() {
        return;
    }
    let db = MariaDbServer::start();
    let replica = db.start_replica();
    let url = db.create_database("shop");
    db.sql("shop", TABLE);
    db.wait_for_replica(&replica);
    db.sql("", "SET GLOBAL binlog_format = 'STATEMENT'");
    refused(
        &db,
        &url,
        "shop",
        "orders",
        &plan(GOOD_COLUMN),
        "binlog_format=STATEMENT and has replicas",
    );

    // With ROW, the plan says what the NOT NULL rebuild does to the replica.
    db.sql("", "SET GLOBAL binlog_format = 'ROW'");
    let p = plan_file(&format!(
        "{}\nnot_null = true\nindex = true\n",
        plan(GOOD_COLUMN)
    ));
    let ran = run_pacer(&["plan"], &p.path, &url);
    assert_eq!(ran.code, 0, "{ran}");
    assert!(
        ran.stderr
            .contains("each replica applies the ALTER as one statement")
            || ran
                .stdout
                .contains("each replica applies the ALTER as one statement"),
        "{ran}"
    );
}

#[test]
fn tls_required_and_verify_ca_connect_to_a_server_with_a_test_certificate() {
    use pacer::servers::mariadb::Options;
    use pacer::servers::tls::TlsFiles;
    if skip() {
        return;
    }
    let certs = tempfile::tempdir().unwrap();
    let files = TlsFiles::for_localhost(certs.path());
    let db = MariaDbServer::start_with(Options {
        tls: Some(files.clone()),
        ..Options::default()
    });
    let url = db.create_database("shop");
    db.sql("shop", TABLE);
    let p = plan_file(&plan(GOOD_COLUMN));
    for query in [
        "?ssl-mode=REQUIRED".to_string(),
        format!("?ssl-mode=VERIFY_CA&ssl-ca={}", files.ca.display()),
    ] {
        let ran = run_pacer(&["plan"], &p.path, &format!("{url}{query}"));
        assert_eq!(ran.code, 0, "{query}: {ran}");
        assert!(ran.stdout.contains("ssl-mode"), "{ran}");
    }
    // A CA that did not sign the server's certificate fails VERIFY_CA, clearly.
    let other = tempfile::tempdir().unwrap();
    let stranger = TlsFiles::for_localhost(other.path());
    let ran = run_pacer(
        &["plan"],
        &p.path,
        &format!("{url}?ssl-mode=VERIFY_CA&ssl-ca={}", stranger.ca.display()),
    );
    assert_ne!(ran.code, 0, "{ran}");
    assert!(ran.stderr.contains("TLS"), "{ran}");
    // The server sees an encrypted connection from pacer.
    assert_eq!(db.sql("", "SELECT 1"), "1");
}

#[test]
fn a_unix_socket_target_connects_over_the_socket() {
    if skip() {
        return;
    }
    let db = MariaDbServer::start();
    db.create_database("shop");
    db.sql("shop", TABLE);
    let Some(socket) = db.socket().map(|s| s.display().to_string()) else {
        eprintln!("skipped: the server has no socket (its path would be too long)");
        return;
    };
    let p = plan_file(&plan(GOOD_COLUMN));
    let url = format!("mysql://root@localhost/shop?socket={socket}");
    let ran = run_pacer(&["plan"], &p.path, &url);
    assert_eq!(ran.code, 0, "{ran}");
    assert!(ran.stdout.contains(&format!("socket={socket}")), "{ran}");
    // The same from MYSQL_UNIX_PORT, when the URL names no host.
    let out = pacer()
        .args(["plan"])
        .arg(&p.path)
        .args(["--target", "mysql://root@/shop"])
        .env("MYSQL_UNIX_PORT", &socket)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let ran = Ran::from(out);
    assert_eq!(ran.code, 0, "{ran}");
    assert!(ran.stdout.contains("socket from MYSQL_UNIX_PORT"), "{ran}");
}
