//! Bad input, read against the real binary and a real, throwaway PostgreSQL: every refusal
//! exits with the documented code, says what is wrong and what to do, and leaves the database
//! exactly as it was. Also the read-only commands, `pacer plan` and `pacer status`.

mod common;

use common::tmux::Tmux;
use common::*;
use pacer::servers::postgres::{PASSWORD, PASSWORD_USER, PgServer};

/// Rows seeded into `orders` by every test that has a database.
const ROWS: u64 = 10_000;

/// A fresh server with database `shop` holding a seeded, analyzed `orders` table.
fn shop() -> (PgServer, String) {
    let pg = PgServer::start();
    let url = pg.create_database("shop");
    seed_orders(&pg, "shop", ROWS);
    (pg, url)
}

/// The issue's plan (`amount numeric(14,2)` from `amount_cents / 100.0`, NOT NULL, indexed).
fn good_plan() -> String {
    orders_plan(1000, "", "")
}

/// 1-based number of the first line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} is not in the plan"))
        + 1
}

/// A port on 127.0.0.1 that nothing listens on (bound by the kernel's choice, then released).
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Pacer left no trace: no state schema, no pacer_* trigger, function, constraint, no index
/// on the new column, no column added and dropped again, and every row of `orders` exactly as
/// seeded and never rewritten (all rows still carry the seeding transaction's xmin).
fn assert_no_pacer_traces(pg: &PgServer, db: &str) {
    let count = |sql: &str| pg.psql(db, sql);
    assert_eq!(
        count("SELECT count(*) FROM pg_namespace WHERE nspname = 'pacer'"),
        "0",
        "pacer's state schema was created"
    );
    assert_eq!(
        count("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'pacer%'"),
        "0",
        "a pacer trigger was created"
    );
    assert_eq!(
        count("SELECT count(*) FROM pg_proc WHERE proname LIKE 'pacer%'"),
        "0",
        "a pacer function was created"
    );
    assert_eq!(
        count("SELECT count(*) FROM pg_constraint WHERE conname LIKE 'pacer%'"),
        "0",
        "a pacer constraint was created"
    );
    assert_eq!(
        count("SELECT count(*) FROM pg_class WHERE relname LIKE '%amount_idx%'"),
        "0",
        "an index on the new column was created"
    );
    assert_eq!(
        count(
            "SELECT count(*) FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attisdropped"
        ),
        "0",
        "a column was added to orders and dropped again"
    );
    assert_eq!(
        count(
            "SELECT count(*) || ' rows, ' \
             || count(*) FILTER (WHERE amount_cents <> (id * 7919) % 1000000 \
                                 OR note IS DISTINCT FROM 'order ' || id) || ' changed, ' \
             || count(DISTINCT xmin::text) || ' writer(s)' FROM orders"
        ),
        format!("{ROWS} rows, 0 changed, 1 writer(s)"),
        "the rows of orders are not as seeded"
    );
}

/// The database is as it was before pacer ran: no trace of pacer, and no table or view in
/// `public` has a column `amount`.
fn assert_untouched(pg: &PgServer, db: &str) {
    assert_no_pacer_traces(pg, db);
    assert_eq!(
        pg.psql(
            db,
            "SELECT coalesce(string_agg(c.relname, ', '), '') FROM pg_attribute a \
             JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'public' AND a.attname = 'amount' AND NOT a.attisdropped"
        ),
        "",
        "these relations got a column `amount`"
    );
}

/// Runs `pacer plan` and `pacer run --headless`; both refuse a bad plan file before connecting:
/// exit 2, nothing on stdout, and stderr starting with `pacer: PATH:LINE:` and saying `says`.
fn assert_plan_file_refused(plan: &PlanFile, url: &str, line: usize, says: &[&str]) {
    let at = format!("pacer: {}:{line}:", plan.path.display());
    for args in [&["plan"][..], &["run", "--headless"]] {
        let ran = run_pacer(args, &plan.path, url);
        assert_eq!(ran.code, 2, "pacer {args:?}: {ran}");
        assert_eq!(ran.stdout, "", "pacer {args:?}: {ran}");
        assert!(
            ran.stderr.starts_with(&at),
            "pacer {args:?} should start with {at:?}: {ran}"
        );
        for s in says {
            assert!(
                ran.stderr.contains(s),
                "pacer {args:?} should say {s:?}: {ran}"
            );
        }
    }
}

/// Runs `pacer plan` and `pacer run --headless`; preflight refuses both: exit 2, nothing on
/// stdout, stderr saying every one of `says` (`plan` prefixes it `pacer: preflight refuses PATH: `).
fn assert_preflight_refuses(plan: &PlanFile, url: &str, says: &[&str]) {
    for args in [&["plan"][..], &["run", "--headless"]] {
        let ran = run_pacer(args, &plan.path, url);
        assert_eq!(ran.code, 2, "pacer {args:?}: {ran}");
        assert_eq!(ran.stdout, "", "pacer {args:?}: {ran}");
        let prefix = format!("pacer: preflight refuses {}: ", plan.path.display());
        assert!(ran.stderr.contains(&prefix), "pacer {args:?}: {ran}");
        for s in says {
            assert!(
                ran.stderr.contains(s),
                "pacer {args:?} should say {s:?}: {ran}"
            );
        }
    }
}

// ----- the plan file -----

#[test]
fn malformed_toml_is_refused_at_its_file_and_line_and_changes_nothing() {
    let (pg, url) = shop();
    let text = good_plan().replacen("[column]", "[column", 1);
    let plan = plan_file(&text);

    assert_plan_file_refused(
        &plan,
        &url,
        line_of(&text, "[column"),
        &["unclosed table, expected `]`"],
    );
    assert_untouched(&pg, "shop");
}

#[test]
fn unknown_key_is_refused_naming_the_key_its_line_and_the_valid_keys_and_changes_nothing() {
    let (pg, url) = shop();
    let text = orders_plan(1000, "batch_sise = 10", "");
    let plan = plan_file(&text);

    assert_plan_file_refused(
        &plan,
        &url,
        line_of(&text, "batch_sise"),
        &["unknown field `batch_sise`", "`batch_size`"],
    );
    assert_untouched(&pg, "shop");
}

// ----- preflight -----

#[test]
fn unknown_table_is_refused_naming_the_table_and_database_and_changes_nothing() {
    let (pg, url) = shop();
    let plan = plan_file(&good_plan().replace("public.orders", "public.ordres"));

    assert_preflight_refuses(
        &plan,
        &url,
        &[
            "table public.ordres does not exist in database shop",
            &format!("Check `table` in {}", plan.path.display()),
        ],
    );
    assert_untouched(&pg, "shop");
}

#[test]
fn table_without_a_usable_key_is_refused_asking_for_a_primary_key_and_changes_nothing() {
    let (pg, url) = shop();
    // A unique index on a nullable column cannot drive key ranges either.
    pg.psql(
        "shop",
        "CREATE TABLE events (id bigint, amount_cents bigint NOT NULL);
         CREATE UNIQUE INDEX events_id_key ON events (id);
         INSERT INTO events SELECT g, g FROM generate_series(1, 100) g;",
    );
    let plan = plan_file(&good_plan().replace("public.orders", "public.events"));

    assert_preflight_refuses(
        &plan,
        &url,
        &[
            "public.events has no primary key and no unique index on NOT NULL columns",
            "Add a primary key first",
            "ADD PRIMARY KEY USING INDEX",
        ],
    );
    assert_untouched(&pg, "shop");
}

#[test]
fn column_created_by_someone_else_is_refused_and_left_as_it_was() {
    let (pg, url) = shop();
    pg.psql("shop", "ALTER TABLE orders ADD COLUMN amount numeric");
    let plan = plan_file(&good_plan());

    assert_preflight_refuses(
        &plan,
        &url,
        &[
            "column amount already exists on public.orders and was not created by this migration",
            "Pick another column name",
        ],
    );
    assert_no_pacer_traces(&pg, "shop");
    assert_eq!(
        pg.psql(
            "shop",
            "SELECT format_type(atttypid, atttypmod) || ' ' || attnotnull FROM pg_attribute \
             WHERE attrelid = 'orders'::regclass AND attname = 'amount'"
        ),
        "numeric false",
        "the existing column keeps its type and nullability"
    );
    assert_eq!(
        pg.psql("shop", "SELECT count(amount) FROM orders"),
        "0",
        "the existing column was not filled"
    );
}

#[test]
fn backfill_expression_over_an_unknown_column_is_refused_naming_the_expression() {
    let (pg, url) = shop();
    let plan = plan_file(&good_plan().replace("amount_cents / 100.0", "amount_cent / 100.0"));

    assert_preflight_refuses(
        &plan,
        &url,
        &[
            "the backfill expression `amount_cent / 100.0` is not valid",
            "column \"amount_cent\" does not exist",
            &format!("Fix `backfill` in {}", plan.path.display()),
        ],
    );
    assert_untouched(&pg, "shop");
}

#[test]
fn backfill_expression_that_fails_on_existing_rows_is_refused_before_anything_changes() {
    let (pg, url) = shop();
    let plan = plan_file(
        &good_plan().replace("amount_cents / 100.0", "1 / (amount_cents - amount_cents)"),
    );

    assert_preflight_refuses(
        &plan,
        &url,
        &[
            "the backfill expression `1 / (amount_cents - amount_cents)` fails on existing rows",
            "division by zero",
            "Fix `backfill`",
        ],
    );
    assert_untouched(&pg, "shop");
}

#[test]
fn unknown_column_type_is_refused_naming_the_type() {
    let (pg, url) = shop();
    let plan = plan_file(&good_plan().replace("numeric(14,2)", "numerik(14,2)"));

    assert_preflight_refuses(
        &plan,
        &url,
        &[
            "column type `numerik(14,2)` is not a type known to database shop",
            "Fix `type`",
        ],
    );
    assert_untouched(&pg, "shop");
}

#[test]
fn volatile_default_is_refused_explaining_the_rewrite_and_suggesting_a_backfill() {
    let (pg, url) = shop();
    let plan = plan_file(
        r#"table = "public.orders"

[column]
name = "amount"
type = "double precision"
default = "random()"
"#,
    );

    assert_preflight_refuses(
        &plan,
        &url,
        &[
            "default `random()` would make PostgreSQL rewrite the whole of public.orders",
            "ACCESS EXCLUSIVE",
            "backfill = \"random()\"",
        ],
    );
    assert_untouched(&pg, "shop");
}

#[test]
fn a_view_is_refused_as_not_a_table() {
    let (pg, url) = shop();
    pg.psql("shop", "CREATE VIEW orders_view AS SELECT * FROM orders");
    let plan = plan_file(&good_plan().replace("public.orders", "public.orders_view"));

    assert_preflight_refuses(
        &plan,
        &url,
        &[
            "public.orders_view is not a table (relkind v",
            "ordinary and partitioned tables only",
        ],
    );
    assert_untouched(&pg, "shop");
}

// ----- the target -----

#[test]
fn unreachable_server_fails_with_exit_1_naming_host_and_port() {
    let port = closed_port();
    let url = format!("postgres://postgres@127.0.0.1:{port}/shop");
    let plan = plan_file(&good_plan());

    for args in [&["plan"][..], &["run", "--headless"], &["status"]] {
        let ran = run_pacer(args, &plan.path, &url);
        assert_eq!(ran.code, 1, "pacer {args:?}: {ran}");
        assert!(
            ran.stderr.starts_with(&format!(
                "pacer: could not reach PostgreSQL at postgres@127.0.0.1:{port}/shop"
            )),
            "pacer {args:?}: {ran}"
        );
        assert!(
            ran.stderr.contains("Is the server running") && ran.stderr.contains("Check --target"),
            "pacer {args:?} should say what to check: {ran}"
        );
    }
}

#[test]
fn wrong_password_is_refused_without_ever_showing_it() {
    let (pg, _) = shop();
    let secret = "wrong-secret-XYZ";
    let url = pg.url_as(PASSWORD_USER, secret, "shop");
    let plan = plan_file(&good_plan());

    for args in [&["plan"][..], &["run", "--headless"], &["status"]] {
        let ran = run_pacer(args, &plan.path, &url);
        assert_eq!(ran.code, 2, "pacer {args:?}: {ran}");
        assert!(
            ran.stderr.starts_with(&format!(
                "pacer: password authentication failed for user {PASSWORD_USER}"
            )),
            "pacer {args:?}: {ran}"
        );
        assert!(
            ran.stderr
                .contains("Check the user and password in --target"),
            "pacer {args:?}: {ran}"
        );
        assert!(
            !ran.stdout.contains(secret) && !ran.stderr.contains(secret),
            "pacer {args:?} shows the password: {ran}"
        );
    }
    assert_untouched(&pg, "shop");
}

/// On a terminal the migration runs in a runner process that gets the target from the screen
/// process; the message still names where the user put the password.
#[test]
fn wrong_password_on_a_terminal_names_where_the_password_came_from() {
    let (pg, _) = shop();
    let secret = "wrong-secret-XYZ";
    let url = pg.url_as(PASSWORD_USER, secret, "shop");
    let plan = plan_file(&good_plan());
    let pacer = env!("CARGO_BIN_EXE_pacer");
    let plan = plan.path.display();
    for (how, command, says) in [
        (
            "--target",
            format!("{} {pacer} run {plan} --target '{url}'", shell_env()),
            "(password: from --target)",
        ),
        (
            "PACER_TARGET",
            format!("{} PACER_TARGET='{url}' {pacer} run {plan}", shell_env()),
            "(password: from PACER_TARGET)",
        ),
    ] {
        let tmux = Tmux::start(&format!("{command}; echo EXIT=$?; sleep 60"), 200, 50);
        let screen = tmux.wait_for("EXIT=", std::time::Duration::from_secs(30));
        // Long lines wrap at the screen's edge: join them.
        let text = screen.replace('\n', "");
        assert!(text.contains("EXIT=2"), "{how}:\n{screen}");
        assert!(
            text.contains(&format!(
                "pacer: password authentication failed for user {PASSWORD_USER}"
            )),
            "{how}:\n{screen}"
        );
        assert!(text.contains(says), "{how}: wanted {says:?}:\n{screen}");
        assert!(
            !text.contains(secret),
            "{how}: the password is shown:\n{screen}"
        );
    }
    assert_untouched(&pg, "shop");
}

#[test]
fn right_password_gets_past_authentication_without_ever_showing_it() {
    let (pg, _) = shop();
    let url = pg.url_as(PASSWORD_USER, PASSWORD, "shop");
    let encoded = PASSWORD.replace(' ', "%20");
    let plan = plan_file(&good_plan());

    // pacer_pw owns nothing: `plan` may be refused for privileges, but not for the password.
    let planned = run_pacer(&["plan"], &plan.path, &url);
    let status = run_pacer(&["status"], &plan.path, &url);
    assert!(planned.code == 0 || planned.code == 2, "{planned}");
    assert_eq!(status.code, 0, "{status}");
    assert!(status.stdout.contains("has not started"), "{status}");
    for ran in [&planned, &status] {
        for shown in [&ran.stdout, &ran.stderr] {
            assert!(!shown.contains(PASSWORD), "the password is shown: {ran}");
            assert!(!shown.contains(&encoded), "the password is shown: {ran}");
            assert!(
                !shown.contains("authentication failed"),
                "the right password was rejected: {ran}"
            );
        }
    }
    assert_untouched(&pg, "shop");
}

#[test]
fn a_user_who_does_not_own_the_table_is_refused_before_anything_changes() {
    let (pg, _) = shop();
    pg.psql(
        "shop",
        &format!(
            "GRANT SELECT, UPDATE ON orders TO {PASSWORD_USER}; GRANT CREATE ON DATABASE shop TO {PASSWORD_USER}"
        ),
    );
    let url = pg.url_as(PASSWORD_USER, PASSWORD, "shop");
    let plan = plan_file(&good_plan());
    assert_preflight_refuses(
        &plan,
        &url,
        &[
            "cannot alter public.orders",
            "owner (postgres)",
            "GRANT postgres TO pacer_pw",
        ],
    );
    assert_untouched(&pg, "shop");
}

#[test]
fn no_target_at_all_is_refused_naming_every_way_to_give_one() {
    let plan = plan_file(&good_plan());

    for args in [&["plan"][..], &["run", "--headless"], &["status"]] {
        let ran = Ran::from(
            pacer()
                .args(args)
                .arg(&plan.path)
                .output()
                .expect("pacer runs"),
        );
        assert_eq!(ran.code, 2, "pacer {args:?}: {ran}");
        assert!(
            ran.stderr.starts_with("pacer: no PostgreSQL target given"),
            "pacer {args:?}: {ran}"
        );
        for way in ["--target", "PACER_TARGET", "DATABASE_URL"] {
            assert!(
                ran.stderr.contains(way),
                "pacer {args:?} should name {way}: {ran}"
            );
        }
    }
}

#[test]
fn pacer_target_is_used_without_a_target_flag_and_wins_over_database_url() {
    let (pg, url) = shop();
    let nowhere = format!("postgres://postgres@127.0.0.1:{}/shop", closed_port());
    let plan = plan_file(&good_plan());

    let ran = Ran::from(
        pacer()
            .arg("plan")
            .arg(&plan.path)
            .env("PACER_TARGET", &url)
            .env("DATABASE_URL", &nowhere)
            .output()
            .expect("pacer runs"),
    );
    assert_eq!(ran.code, 0, "{ran}");
    // The port is the server's, not DATABASE_URL's closed one.
    assert!(
        ran.stdout
            .starts_with(&format!("target   postgres@127.0.0.1:{}/shop", pg.port())),
        "{ran}"
    );
    assert_untouched(&pg, "shop");
}

// ----- the read-only commands -----

#[test]
fn plan_shows_every_phase_its_sql_locks_size_and_key_and_changes_nothing() {
    let (pg, url) = shop();
    let plan = plan_file(&good_plan());

    let ran = run_pacer(&["plan"], &plan.path, &url);
    assert_eq!(ran.code, 0, "{ran}");
    let out = &ran.stdout;
    let phases = [
        "preflight",
        "add_column",
        "sync",
        "backfill",
        "verify",
        "not_null",
        "index",
        "cleanup",
    ];
    let mut from = 0;
    for (i, phase) in phases.iter().enumerate() {
        let heading = format!("\n{}. {phase}:", i + 1);
        let at = out[from..]
            .find(&heading)
            .unwrap_or_else(|| panic!("no {heading:?} after the previous phase: {ran}"));
        from += at + heading.len();
    }
    for expected in [
        "ALTER TABLE \"public\".\"orders\" ADD COLUMN IF NOT EXISTS \"amount\" numeric(14,2)\n",
        "ACCESS EXCLUSIVE",
        "SHARE UPDATE EXCLUSIVE",
        "CREATE INDEX CONCURRENTLY \"orders_amount_idx\" ON \"public\".\"orders\" (\"amount\")",
        "public.orders: 10,000 rows (estimate)",
        "key id bigint (primary key orders_pkey)",
    ] {
        assert!(
            out.contains(expected),
            "plan should show {expected:?}: {ran}"
        );
    }

    let json = run_pacer(&["plan", "--json"], &plan.path, &url);
    assert_eq!(json.code, 0, "{json}");
    let report: serde_json::Value = serde_json::from_str(&json.stdout)
        .unwrap_or_else(|e| panic!("plan --json is not JSON ({e}): {json}"));
    let names: Vec<&str> = report["phases"]
        .as_array()
        .expect("a phases array")
        .iter()
        .map(|p| p["phase"].as_str().expect("a phase name"))
        .collect();
    assert_eq!(names, phases, "{json}");
    assert_eq!(report["table"]["estimated_rows"], 10_000, "{json}");
    assert_eq!(report["resuming"], false, "{json}");

    assert_untouched(&pg, "shop");
}

#[test]
fn status_says_not_started_before_a_run_and_shows_the_finished_run_after() {
    let (pg, url) = shop();
    let plan = plan_file(&good_plan());

    let before = run_pacer(&["status"], &plan.path, &url);
    assert_eq!(before.code, 0, "{before}");
    assert!(
        before
            .stdout
            .starts_with("migration public.orders.amount has not started on "),
        "{before}"
    );
    let before_json = run_pacer(&["status", "--json"], &plan.path, &url);
    assert_eq!(before_json.code, 0, "{before_json}");
    let state: serde_json::Value = serde_json::from_str(&before_json.stdout)
        .unwrap_or_else(|e| panic!("status --json is not JSON ({e}): {before_json}"));
    assert_eq!(state["job"], "public.orders.amount", "{before_json}");
    assert!(state["state"].is_null(), "{before_json}");
    assert_untouched(&pg, "shop");

    let run = run_pacer(&["run", "--headless"], &plan.path, &url);
    assert_eq!(run.code, 0, "{run}");

    let after = run_pacer(&["status"], &plan.path, &url);
    assert_eq!(after.code, 0, "{after}");
    for line in [
        "\noutcome     done\n",
        "\nrows        10,000 walked",
        "\ncheckpoint  10000",
    ] {
        assert!(
            after.stdout.contains(line),
            "status should show {line:?}: {after}"
        );
    }
    let after_json = run_pacer(&["status", "--json"], &plan.path, &url);
    assert_eq!(after_json.code, 0, "{after_json}");
    let state: serde_json::Value = serde_json::from_str(&after_json.stdout)
        .unwrap_or_else(|e| panic!("status --json is not JSON ({e}): {after_json}"));
    assert_eq!(state["outcome"], "done", "{after_json}");
    assert_eq!(state["rows_done"], 10_000, "{after_json}");
    assert_eq!(
        state["last_key"],
        serde_json::json!(["10000"]),
        "{after_json}"
    );
}

#[test]
fn an_unreachable_mysql_target_exits_1_naming_the_server_and_never_shows_its_password() {
    let plan = plan_file(&good_plan());
    let port = closed_port();
    for scheme in ["mysql", "mariadb"] {
        let url = format!("{scheme}://app:s3cret-MySQL@127.0.0.1:{port}/shop");
        for args in [&["plan"][..], &["run", "--headless"], &["status"]] {
            let ran = run_pacer(args, &plan.path, &url);
            assert_eq!(ran.code, 1, "pacer {args:?} {scheme}: {ran}");
            assert!(
                ran.stderr
                    .contains(&format!("cannot reach mysql://app@127.0.0.1:{port}/shop")),
                "pacer {args:?} {scheme}: {ran}"
            );
            assert!(
                !ran.stderr.contains("s3cret"),
                "the password was shown: {ran}"
            );
        }
    }
}

#[test]
fn a_plan_key_the_target_family_cannot_honour_is_refused_naming_the_key_and_the_family() {
    let plan = plan_file(&orders_plan(
        1000,
        "",
        "\n[throttle]\npause_on_autovacuum = true\nmax_wal_rate = 50000000",
    ));
    let ran = run_pacer(&["plan"], &plan.path, "mysql://app@127.0.0.1:1/shop");
    assert_eq!(ran.code, 2, "{ran}");
    for says in [
        "the plan uses what a MySQL/MariaDB target cannot do",
        "[throttle] pause_on_autovacuum: MySQL/MariaDB has no autovacuum",
        "[throttle] max_wal_rate: MySQL/MariaDB writes no WAL",
    ] {
        assert!(ran.stderr.contains(says), "{says:?} missing: {ran}");
    }
}
