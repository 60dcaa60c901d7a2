//! What preflight says about WAL: a backfill writes about 4× the table's size, and when the
//! server must first create that many new segments every commit waits while they are
//! zero-filled (measured: the application's p99 from 2 ms to 35–41 ms); when it exceeds
//! `max_wal_size`, checkpoints come during the backfill.

use super::Postgres;
use crate::plan::Finding;

/// WAL a backfill writes per byte of the table, at least: a full-page image of each page, the
/// new row versions and their index entries. Measured: 3.7× on the benchmark's table (two
/// indexes), 6× on a 98 MB table with only its primary key (1.5M rows, 587 MB).
pub(super) const WAL_PER_TABLE_BYTE: u64 = 4;

/// Below this much WAL to create, creating segments does not stall commits for long enough
/// to warn about.
const WAL_TO_CREATE_WARNING: u64 = 256 << 20;

/// The server's WAL settings and the segments it has ready.
#[derive(Debug, Clone, PartialEq)]
pub struct WalState {
    pub min_wal_size: u64,
    pub max_wal_size: u64,
    pub wal_compression: String,
    /// Bytes of WAL segment files in pg_wal (written or recycled for reuse), when this role may
    /// list them (`pg_ls_waldir`: superuser or pg_monitor).
    pub segments_ready: Option<u64>,
}

/// Reads [`WalState`]; `None` when the settings cannot be read (the findings are then left out,
/// not the migration).
pub(super) async fn read_wal_state(pg: &mut Postgres) -> Option<WalState> {
    let row = pg
        .query(
            "SELECT pg_size_bytes(current_setting('min_wal_size')), \
             pg_size_bytes(current_setting('max_wal_size')), current_setting('wal_compression')",
            &[],
            "reading the WAL settings",
        )
        .await
        .ok()?
        .remove(0);
    let segments_ready = pg
        .query(
            "SELECT coalesce(sum(size), 0)::bigint FROM pg_ls_waldir() WHERE name ~ '^[0-9A-F]{24}$'",
            &[],
            "listing the WAL segments",
        )
        .await
        .ok()
        .map(|r| r[0].get::<_, i64>(0).max(0) as u64);
    Some(WalState {
        min_wal_size: row.get::<_, i64>(0).max(0) as u64,
        max_wal_size: row.get::<_, i64>(1).max(0) as u64,
        wal_compression: row.get(2),
        segments_ready,
    })
}

fn mb(bytes: u64) -> u64 {
    bytes >> 20
}

/// What the backfill's WAL will do to the server. A server keeps WAL segments it has used
/// (up to about max_wal_size); beyond those, it creates each new 16 MB segment zero-filled while
/// holding the WAL write lock, and every commit waits meanwhile (BENCHMARKS.md: the
/// application's p99 went from 2 ms to 35–41 ms during a backfill's first gigabyte). And WAL
/// beyond max_wal_size triggers checkpoints, after which every page is logged in full again.
pub(super) fn wal_findings(wal: Option<&WalState>, table_bytes: u64) -> Vec<Finding> {
    let Some(wal) = wal else {
        return Vec::new();
    };
    let mut findings = Vec::new();
    let estimate = table_bytes.saturating_mul(WAL_PER_TABLE_BYTE);
    if let Some(ready) = wal.segments_ready {
        let to_create = estimate.min(wal.max_wal_size).saturating_sub(ready);
        if to_create >= WAL_TO_CREATE_WARNING {
            findings.push(Finding::warning(format!(
                "the backfill writes {} MB of WAL or more ({WAL_PER_TABLE_BYTE}–6× the table's {} MB when measured) \
                 and the server has {} MB of WAL segments ready: it will create about {} MB more, and \
                 while it zero-fills each new segment every commit on the server waits (measured: the \
                 application's p99 went from 2 ms to 35–41 ms). Start at a quiet time or with a low \
                 max_wal_rate in [throttle]; min_wal_size (now {} MB) of at least {} MB keeps the \
                 segments for later runs.",
                mb(estimate),
                mb(table_bytes),
                mb(ready),
                mb(to_create),
                mb(wal.min_wal_size),
                mb(estimate.min(wal.max_wal_size)),
            )));
        }
    }
    if estimate > wal.max_wal_size {
        let compression = if wal.wal_compression == "off" {
            "; wal_compression = on (now off) makes those images smaller"
        } else {
            ""
        };
        findings.push(Finding::info(format!(
            "the backfill writes {} MB of WAL or more, above max_wal_size ({} MB): the server will \
             checkpoint during it, and log every page changed after a checkpoint in full again{compression}",
            mb(estimate),
            mb(wal.max_wal_size),
        )));
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Severity;

    const MB: u64 = 1 << 20;

    fn wal(ready: Option<u64>) -> WalState {
        WalState {
            min_wal_size: 80 * MB,
            max_wal_size: 1024 * MB,
            wal_compression: "off".into(),
            segments_ready: ready.map(|r| r * MB),
        }
    }

    #[test]
    fn a_server_with_few_segments_is_warned_of_the_stall_with_figures() {
        // A 150 MB table: about 600 MB of WAL, 5 segments ready.
        let f = wal_findings(Some(&wal(Some(80))), 150 * MB);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].severity, Severity::Warning);
        assert!(
            f[0].message.contains("600 MB of WAL or more")
                && f[0].message.contains("80 MB of WAL segments ready")
                && f[0].message.contains("create about 520 MB more")
                && f[0]
                    .message
                    .contains("min_wal_size (now 80 MB) of at least 600 MB"),
            "{}",
            f[0].message
        );
    }

    #[test]
    fn segments_already_there_or_a_small_backfill_give_no_warning() {
        assert!(wal_findings(Some(&wal(Some(640))), 150 * MB).is_empty());
        assert!(wal_findings(Some(&wal(Some(16))), 50 * MB).is_empty());
        // Unknown segments (no pg_monitor): no guess either way.
        assert!(wal_findings(Some(&wal(None)), 150 * MB).is_empty());
        assert!(wal_findings(None, 150 * MB).is_empty());
    }

    #[test]
    fn more_wal_than_max_wal_size_tells_of_checkpoints_and_at_most_max_wal_size_to_create() {
        let f = wal_findings(Some(&wal(Some(1024))), 2048 * MB);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].severity, Severity::Info);
        assert!(
            f[0].message
                .contains("8192 MB of WAL or more, above max_wal_size (1024 MB)")
        );
        assert!(f[0].message.contains("wal_compression = on (now off)"));
        // Cold: what must be created is bounded by max_wal_size (checkpoints recycle beyond it).
        let f = wal_findings(Some(&wal(Some(16))), 2048 * MB);
        assert!(
            f[0].message.contains("create about 1008 MB more"),
            "{}",
            f[0].message
        );
        let mut on = wal(Some(1024));
        on.wal_compression = "lz4".into();
        assert!(
            !wal_findings(Some(&on), 2048 * MB)[0]
                .message
                .contains("wal_compression")
        );
    }
}
