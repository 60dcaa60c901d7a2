//! The adaptive batch sizer against a real PostgreSQL: slow batches shrink the size.

mod common;

use common::*;
use pacer::servers::postgres::PgServer;

#[test]
fn a_slow_batch_makes_the_size_shrink_toward_the_target() {
    let pg = PgServer::start();
    let url = pg.create_database("shop");
    seed_orders(&pg, "shop", 6_000);
    // Every updated row costs 0.5 ms: a 2,000-row batch takes about a second.
    pg.psql(
        "shop",
        "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN PERFORM pg_sleep(0.0005); RETURN NEW; END $$;
         CREATE TRIGGER slow BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION slow();",
    );
    let plan = plan_file(
        &orders_plan(2000, "target_batch_ms = 100", "")
            .replace("target_batch_ms = 200\n", "")
            .replace("not_null = true\nindex = true\n", ""),
    );
    let ran = run_pacer(&["run", "--headless", "--json"], &plan.path, &url);
    assert_eq!(ran.code, 0, "{ran}");
    let events: Vec<serde_json::Value> = ran
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    let sizes: Vec<u64> = events
        .iter()
        .filter(|e| e["event"] == "batch_done")
        .map(|e| e["batch_size"].as_u64().unwrap())
        .collect();
    assert_eq!(sizes[0], 2000, "{sizes:?}");
    let last = *sizes.iter().rev().nth(1).unwrap(); // the very last batch may be a remainder
    assert!(
        last <= 400,
        "sizes shrink toward 100 ms batches (~200 rows): {sizes:?}"
    );
    let cut = events
        .iter()
        .find(|e| e["event"] == "batch_size_changed")
        .expect("a size change");
    assert_eq!(cut["by"], "adaptive");
    assert!(
        cut["reason"].as_str().unwrap().starts_with("adaptive: cut"),
        "{cut}"
    );
    assert!(cut["to"].as_u64().unwrap() <= 1000, "{cut}");
    assert_eq!(wrong_amounts(&pg, "shop"), 0);
}
