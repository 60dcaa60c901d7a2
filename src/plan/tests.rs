use std::path::Path;
use std::time::Duration;

use super::*;

const EXAMPLE: &str = r#"table = "public.orders"             # schema-qualified or not; pacer quotes identifiers itself

[column]
name = "amount"
type = "numeric(14,2)"
# default = "0"                      # optional; must be a constant expression
backfill = "amount_cents / 100.0"    # optional SQL expression over the same row
not_null = true                      # optional
index = true                         # optional; also index = { name = "orders_amount_idx", unique = false }

[backfill]
batch_size = 5000                    # rows per batch at start
target_batch_ms = 200                # stored now; the adaptive sizer of a later issue steers toward it
pause_ms = 0                         # sleep between batches

[safety]
lock_timeout = "2s"
ddl_retries = 30
"#;

fn parse(text: &str) -> Result<Plan, PlanError> {
    Plan::parse(Path::new("plan.toml"), text)
}

fn err(text: &str) -> String {
    parse(text).unwrap_err().0
}

#[test]
fn parses_the_documented_example_exactly_as_written() {
    let plan = parse(EXAMPLE).unwrap();
    assert_eq!(plan.table.schema.as_deref(), Some("public"));
    assert_eq!(plan.table.name, "orders");
    assert_eq!(plan.column.name, "amount");
    assert_eq!(plan.column.sql_type, "numeric(14,2)");
    assert_eq!(plan.column.default, None);
    assert_eq!(
        plan.column.backfill.as_deref(),
        Some("amount_cents / 100.0")
    );
    assert!(plan.column.not_null);
    assert_eq!(
        plan.column.index,
        Some(IndexSpec {
            name: "orders_amount_idx".into(),
            unique: false
        })
    );
    assert_eq!(plan.backfill.batch_size, 5000);
    assert_eq!(plan.backfill.target_batch_ms, 200);
    assert_eq!(plan.backfill.pause, Duration::ZERO);
    assert_eq!(plan.safety.lock_timeout, Duration::from_secs(2));
    assert_eq!(plan.safety.ddl_retries, 30);
    assert_eq!(plan.state_table.to_string(), "pacer.migrations");
    assert_eq!(
        plan.phases(),
        vec![
            Phase::Preflight,
            Phase::AddColumn,
            Phase::Sync,
            Phase::Backfill,
            Phase::Verify,
            Phase::NotNull,
            Phase::Index,
            Phase::Cleanup
        ]
    );
}

#[test]
fn minimal_plan_gets_defaults_and_only_the_phases_it_needs() {
    let plan = parse("table = \"orders\"\n[column]\nname = \"note\"\ntype = \"text\"\n").unwrap();
    assert_eq!(plan.table.schema, None);
    assert_eq!(plan.backfill.batch_size, 5000);
    assert_eq!(plan.safety.ddl_retries, 30);
    assert_eq!(plan.safety.reconnect_attempts, 10);
    assert_eq!(
        plan.phases(),
        vec![Phase::Preflight, Phase::AddColumn, Phase::Cleanup]
    );
}

#[test]
fn backfill_defaults_are_short_batches_without_pause() {
    let plan =
        parse("table = \"t\"\n[column]\nname = \"c\"\ntype = \"int\"\nbackfill = \"1\"\n").unwrap();
    assert_eq!(plan.backfill.target_batch_ms, 20);
    assert_eq!(plan.backfill.batch_size, 5000);
    assert!(plan.backfill.pause.is_zero());
    assert!(plan.backfill.adaptive);
}

#[test]
fn not_null_with_constant_default_and_no_backfill_is_done_at_add_time() {
    let plan = parse(
        "table = \"t\"\n[column]\nname = \"c\"\ntype = \"int\"\ndefault = \"0\"\nnot_null = true\n",
    )
    .unwrap();
    assert!(plan.not_null_at_add());
    assert!(!plan.phases().contains(&Phase::NotNull));
}

#[test]
fn index_table_form_with_name_and_unique() {
    let plan = parse(
        "table = \"t\"\n[column]\nname = \"c\"\ntype = \"int\"\nindex = { name = \"my_idx\", unique = true }\n",
    )
    .unwrap();
    assert_eq!(
        plan.column.index,
        Some(IndexSpec {
            name: "my_idx".into(),
            unique: true
        })
    );
    let plan =
        parse("table = \"t\"\n[column]\nname = \"c\"\ntype = \"int\"\nindex = false\n").unwrap();
    assert_eq!(plan.column.index, None);
}

#[test]
fn unknown_key_is_an_error_with_file_and_line() {
    let text = EXAMPLE.replace("pause_ms = 0", "pause_ms = 0\nbatch_sise = 10");
    let e = err(&text);
    assert!(e.starts_with("plan.toml:15:"), "{e}");
    assert!(e.contains("batch_sise"), "{e}");
}

#[test]
fn malformed_toml_is_an_error_with_file_and_line() {
    let e = err("table = \"t\"\n[column\nname = \"c\"\n");
    assert!(e.starts_with("plan.toml:2:"), "{e}");
}

#[test]
fn missing_required_key_is_named() {
    let e = err("table = \"t\"\n[column]\nname = \"c\"\n");
    assert!(e.contains("type"), "{e}");
}

#[test]
fn bad_values_name_their_line() {
    let e =
        err("table = \"t\"\n[column]\nname = \"c\"\ntype = \"int\"\n[backfill]\nbatch_size = 0\n");
    assert!(e.starts_with("plan.toml:6:"), "{e}");
    assert!(e.contains("batch_size"), "{e}");
    let e = err(
        "table = \"t\"\n[column]\nname = \"c\"\ntype = \"int\"\n[safety]\nlock_timeout = \"soon\"\n",
    );
    assert!(e.starts_with("plan.toml:6:"), "{e}");
    assert!(e.contains("not a duration"), "{e}");
    let e = err(
        "table = \"t\"\n[column]\nname = \"c\"\ntype = \"int\"\nbackfill = \"1; drop table t\"\n",
    );
    assert!(e.starts_with("plan.toml:5:"), "{e}");
    let e = err("table = \"a.b.c\"\n[column]\nname = \"c\"\ntype = \"int\"\n");
    assert!(e.starts_with("plan.toml:1:"), "{e}");
    let e = err("table = \"t\"\n[column]\nname = \"c\"\ntype = \"int\"\nindex = 3\n");
    assert!(e.contains("`index` takes"), "{e}");
}

#[test]
fn refuses_types_that_smuggle_in_rewrites_or_constraints() {
    for t in [
        "bigint generated always as identity",
        "int references other(id)",
        "int primary key",
        "numeric generated always as (a * 2) stored",
    ] {
        let e = err(&format!(
            "table = \"t\"\n[column]\nname = \"c\"\ntype = \"{t}\"\n"
        ));
        assert!(e.contains("type name only"), "{t}: {e}");
    }
}

#[test]
fn not_null_without_a_value_source_is_refused() {
    let e = err("table = \"t\"\n[column]\nname = \"c\"\ntype = \"int\"\nnot_null = true\n");
    assert!(e.contains("neither a default nor a backfill"), "{e}");
}

#[test]
fn digest_ignores_tuning_but_not_definition() {
    let a = parse(EXAMPLE).unwrap();
    let b = parse(&EXAMPLE.replace("batch_size = 5000", "batch_size = 100")).unwrap();
    let c = parse(&EXAMPLE.replace("/ 100.0", "/ 10.0")).unwrap();
    assert_eq!(a.digest(), b.digest());
    assert_ne!(a.digest(), c.digest());
}

#[test]
fn default_index_name_fits_postgres_limit() {
    let long = "t".repeat(60);
    assert_eq!(default_index_name(&long, "column").len(), 63);
    assert_eq!(default_index_name("orders", "amount"), "orders_amount_idx");
}

#[test]
fn lint_flags_long_lock_timeout_and_huge_batches() {
    let plan = parse(
        &EXAMPLE
            .replace("lock_timeout = \"2s\"", "lock_timeout = \"10s\"")
            .replace("batch_size = 5000", "batch_size = 200000"),
    )
    .unwrap();
    let findings = lint::lint(&plan);
    assert!(
        findings
            .iter()
            .any(|f| f.message.contains("lock_timeout is 10s"))
    );
    assert!(
        findings
            .iter()
            .any(|f| f.message.contains("batch_size 200000"))
    );
    let example = lint::lint(&parse(EXAMPLE).unwrap());
    assert!(
        example
            .iter()
            .all(|f| f.message.starts_with("not_null without a default")),
        "{example:?}"
    );
}

#[test]
fn not_null_without_a_default_warns_that_writers_fail_once_cleanup_drops_the_trigger() {
    let findings = lint::lint(&parse(EXAMPLE).unwrap());
    let f = findings
        .iter()
        .find(|f| f.message.starts_with("not_null without a default"))
        .expect("a finding");
    assert_eq!(f.severity, lint::Severity::Warning);
    for words in [
        "once cleanup drops the sync trigger, any writer that does not set `amount` fails",
        "deploy application code that writes `amount` (as `amount_cents / 100.0`) before cleanup",
        "[gates] before = [\"cleanup\"]",
        "or give the column a default",
    ] {
        assert!(
            f.message.contains(words),
            "{words:?} missing: {}",
            f.message
        );
    }
}

#[test]
fn with_cleanup_gated_the_warning_says_the_gate_is_where_the_deploy_must_happen() {
    let plan = parse(&format!("{EXAMPLE}\n[gates]\nbefore = [\"cleanup\"]\n")).unwrap();
    let findings = lint::lint(&plan);
    let f = findings
        .iter()
        .find(|f| f.message.starts_with("not_null without a default"))
        .expect("still a warning: the trap is still there");
    assert!(
        f.message.contains(
            "the gate before cleanup is where to deploy application code that writes `amount`"
        ),
        "{}",
        f.message
    );
    assert!(!f.message.contains("[gates]"), "{}", f.message);
}

#[test]
fn a_default_or_a_nullable_column_gives_no_cleanup_warning() {
    let cleanup_warning = |text: &str| {
        lint::lint(&parse(text).unwrap())
            .iter()
            .any(|f| f.message.contains("drops the sync trigger"))
    };
    assert!(!cleanup_warning(
        &EXAMPLE.replace("# default = \"0\"", "default = \"0\"")
    ));
    assert!(!cleanup_warning(
        &EXAMPLE.replace("not_null = true", "not_null = false")
    ));
}

#[test]
fn adaptive_sizing_is_on_by_default_with_bounds_around_batch_size() {
    let plan = parse(EXAMPLE).unwrap();
    assert!(plan.backfill.adaptive);
    assert_eq!(
        (plan.backfill.min_batch_size, plan.backfill.max_batch_size),
        (100, 50_000)
    );
    let plan = parse(&EXAMPLE.replace("batch_size = 5000", "batch_size = 50")).unwrap();
    assert_eq!(
        plan.backfill.min_batch_size, 50,
        "min follows a smaller batch_size"
    );
    let plan = parse(&EXAMPLE.replace(
        "pause_ms = 0",
        "pause_ms = 0\nmin_batch_size = 1000\nmax_batch_size = 20000\nadaptive = false",
    ))
    .unwrap();
    assert_eq!(
        (plan.backfill.min_batch_size, plan.backfill.max_batch_size),
        (1000, 20_000)
    );
    assert!(!plan.backfill.adaptive);
}

#[test]
fn batch_size_outside_its_bounds_is_refused_with_the_line() {
    let e = err(&EXAMPLE.replace("pause_ms = 0", "pause_ms = 0\nmin_batch_size = 6000"));
    assert!(e.starts_with("plan.toml:15:"), "{e}");
    assert!(e.contains("must lie between"), "{e}");
}

#[test]
fn gates_are_read_in_run_order_and_default_to_none() {
    assert!(parse(EXAMPLE).unwrap().gates.is_empty());
    let plan = parse(&format!(
        "{EXAMPLE}\n[gates]\nbefore = [\"index\", \"not_null\", \"add_column\"]\n"
    ))
    .unwrap();
    assert_eq!(
        plan.gates,
        vec![Phase::AddColumn, Phase::NotNull, Phase::Index]
    );
    assert!(plan.gated(Phase::NotNull));
    assert!(!plan.gated(Phase::Backfill));
    let plan = parse(&format!("{EXAMPLE}\n[gates]\n")).unwrap();
    assert!(
        plan.gates.is_empty(),
        "an empty [gates] table gates nothing"
    );
}

#[test]
fn an_unknown_gate_names_its_line_and_the_valid_phases() {
    let text = format!("{EXAMPLE}\n[gates]\nbefore = [\"index\", \"notnull\"]\n");
    let line = text.lines().count();
    let e = err(&text);
    assert!(e.starts_with(&format!("plan.toml:{line}:20:")), "{e}");
    assert!(e.contains("unknown phase `notnull`"), "{e}");
    assert!(
        e.contains("add_column, sync, backfill, verify, not_null, index, cleanup"),
        "{e}"
    );
    let e = err(&format!("{EXAMPLE}\n[gates]\nafter = [\"index\"]\n"));
    assert!(e.contains("unknown field `after`"), "{e}");
    let e = err(&format!("{EXAMPLE}\n[gates]\nbefore = \"index\"\n"));
    assert!(e.contains("sequence"), "a list is required: {e}");
}

#[test]
fn preflight_cannot_be_gated() {
    let e = err(&format!("{EXAMPLE}\n[gates]\nbefore = [\"preflight\"]\n"));
    assert!(e.contains("preflight cannot be gated"), "{e}");
}

#[test]
fn a_gate_on_a_phase_the_plan_does_not_run_says_why() {
    let minimal = "table = \"t\"\n[column]\nname = \"c\"\ntype = \"int\"\n";
    let e = err(&format!("{minimal}[gates]\nbefore = [\"index\"]\n"));
    assert!(e.starts_with("plan.toml:6:"), "{e}");
    assert!(
        e.contains("no index phase (`index` is not set on the column)"),
        "{e}"
    );
    let e = err(&format!("{minimal}[gates]\nbefore = [\"not_null\"]\n"));
    assert!(e.contains("`not_null` is not set"), "{e}");
    let e = err(&format!("{minimal}[gates]\nbefore = [\"backfill\"]\n"));
    assert!(e.contains("no `backfill` expression"), "{e}");
    let e = err(&format!(
        "{minimal}default = \"0\"\nnot_null = true\n[gates]\nbefore = [\"not_null\"]\n"
    ));
    assert!(e.contains("added by add_column itself"), "{e}");
    let plan = parse(&format!(
        "{minimal}[gates]\nbefore = [\"add_column\", \"cleanup\"]\n"
    ))
    .unwrap();
    assert_eq!(plan.gates, vec![Phase::AddColumn, Phase::Cleanup]);
}

#[test]
fn a_gate_listed_twice_is_refused() {
    let e = err(&format!(
        "{EXAMPLE}\n[gates]\nbefore = [\"index\", \"index\"]\n"
    ));
    assert!(e.contains("`index` is listed twice"), "{e}");
}

#[test]
fn gates_are_not_part_of_the_digest() {
    let a = parse(EXAMPLE).unwrap();
    let b = parse(&format!(
        "{EXAMPLE}\n[gates]\nbefore = [\"not_null\", \"index\"]\n"
    ))
    .unwrap();
    assert_eq!(
        a.digest(),
        b.digest(),
        "adding a gate to a resumed run is allowed"
    );
}

#[test]
fn the_load_throttles_are_read_and_bounded() {
    let base = "table = \"orders\"\n[column]\nname = \"amount\"\ntype = \"int\"\n[throttle]\n";
    let plan = parse(&format!(
        "{base}max_threads_running = 25\nmax_history_length = 1000000\nmax_binlog_rate = 50000000\n"
    ))
    .unwrap();
    assert_eq!(plan.throttle.max_threads_running, Some(25));
    assert_eq!(plan.throttle.max_history_length, Some(1_000_000));
    assert_eq!(plan.throttle.max_binlog_rate, Some(50_000_000));
    assert_eq!(
        plan.throttle.write_volume_limit(),
        Some((50_000_000, "binlog rate"))
    );
    assert!(plan.throttle.any());
    let pg = parse(&format!("{base}max_wal_rate = 1000\n")).unwrap();
    assert_eq!(pg.throttle.write_volume_limit(), Some((1000, "WAL rate")));

    let e = err(&format!("{base}max_threads_running = 0\n"));
    assert!(
        e.contains("max_threads_running = 0 is out of range; use 1 to 100000"),
        "{e}"
    );
    let e = err(&format!("{base}max_history_length = 0\n"));
    assert!(
        e.contains("max_history_length = 0 would never let a batch run"),
        "{e}"
    );
    let e = err(&format!(
        "{base}max_wal_rate = 1000\nmax_binlog_rate = 1000\n"
    ));
    assert!(e.contains("bound the same thing"), "{e}");
    assert!(e.contains("plan.toml:7:"), "points at max_binlog_rate: {e}");
}
