//! A complete add-column migration against a real, throwaway PostgreSQL.

mod common;

use common::*;
use pacer::servers::postgres::PgServer;

#[test]
fn full_run_fills_every_row_and_leaves_a_not_null_indexed_column() {
    let pg = PgServer::start();
    let url = pg.create_database("shop");
    seed_orders(&pg, "shop", 100_000);
    let plan = plan_file(&orders_plan(5000, "", ""));

    let ran = run_pacer(&["run", "--headless"], &plan.path, &url);
    assert_eq!(ran.code, 0, "{ran}");
    assert!(
        ran.stderr
            .contains("DONE: 100,000 rows walked, 100,000 updated"),
        "{ran}"
    );

    assert_eq!(wrong_amounts(&pg, "shop"), 0);
    assert_eq!(
        pg.psql("shop", "SELECT attnotnull FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attname = 'amount'"),
        "t"
    );
    assert_eq!(
        pg.psql(
            "shop",
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'orders_amount_idx'::regclass"
        ),
        "t"
    );
    assert_eq!(
        pg.psql("shop", "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'orders'::regclass AND NOT tgisinternal"),
        "0",
        "sync trigger dropped"
    );
    assert_eq!(
        pg.psql("shop", "SELECT count(*) FROM pg_constraint WHERE conrelid = 'orders'::regclass AND contype = 'c'"),
        "0",
        "temporary check dropped"
    );
    assert_eq!(
        pg.psql(
            "shop",
            "SELECT count(*) FROM pg_proc WHERE proname LIKE 'pacer_sync%'"
        ),
        "0"
    );
    assert_eq!(
        pg.psql(
            "shop",
            "SELECT outcome || ' ' || rows_done || ' ' || phase FROM pacer.migrations"
        ),
        "done 100000 done"
    );

    // Running it again is harmless and says so.
    let again = run_pacer(&["run", "--headless"], &plan.path, &url);
    assert_eq!(again.code, 0, "{again}");
    assert!(
        again.stderr.contains("finished in an earlier run"),
        "{again}"
    );
}

#[test]
fn preflight_says_when_the_backfill_writes_more_wal_than_max_wal_size() {
    let pg = PgServer::start();
    let url = pg.create_database("wal");
    seed_orders(&pg, "wal", 200_000); // ~15 MB: about 60 MB of WAL to write
    let plan = plan_file(&orders_plan(5000, "", ""));

    // max_wal_size at its default (1 GB): nothing to say about WAL.
    let ran = run_pacer(&["plan"], &plan.path, &url);
    assert_eq!(ran.code, 0, "{ran}");
    assert!(!ran.stdout.contains("max_wal_size"), "{ran}");

    pg.psql("postgres", "ALTER SYSTEM SET max_wal_size = '32MB'");
    pg.psql("postgres", "SELECT pg_reload_conf()");
    pg.wait_until(
        "wal",
        "SHOW max_wal_size",
        "32MB",
        std::time::Duration::from_secs(10),
    );
    let ran = run_pacer(&["plan"], &plan.path, &url);
    assert_eq!(ran.code, 0, "{ran}");
    assert!(
        ran.stdout.contains("above max_wal_size (32 MB)")
            && ran.stdout.contains("wal_compression = on (now off)"),
        "{ran}"
    );
    // The seeding left more segments than this small backfill needs: no stall to warn of.
    assert!(!ran.stdout.contains("segments ready"), "{ran}");
}
