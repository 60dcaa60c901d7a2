//! The audit log: one JSON object per line, appended to a local file, for every statement
//! pacer sends and every operator action.
//!
//! Each line is written with a single `write` call under a mutex, straight to the file (no
//! user-space buffer), so a line is in the kernel before the statement it records is sent: a
//! `kill -9` loses nothing already sent. (A power loss may: there is no fsync per line.)
//! Writing never stops the migration: a failed write logs one tracing warning and the run goes
//! on. The file is created with mode 0600 (SQL text and key values are data); no password is
//! ever written, because pacer never sends one in SQL (passwords travel only in the
//! connection handshake).
//!
//! Line shapes (`ts` is RFC 3339 UTC with milliseconds):
//! - `{"ts":…,"job":…,"pid":…,"user":…,"kind":"statement","session":"main","sql":"UPDATE …","params":["1000","2000"]}`
//!   (plus `"repeats":"every sample interval"` on a statement that is logged once although it
//!   runs again and again: see [`Audit::statement_repeating`]);
//! - `{…,"kind":"operator","action":"batch_size","from":"ctl","value":2000}`;
//! - `{…,"kind":"note","what":"run_started", …detail fields}`.

use std::collections::HashSet;
use std::fs::File;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde_json::Value;

/// Keys every line carries; `note` details with these names are renamed `detail_<key>`.
const RESERVED: [&str; 6] = ["ts", "job", "pid", "user", "kind", "what"];

/// The audit log: JSON lines appended to a file, one per statement sent and per operator
/// action. Cheap to clone. A write error never stops the migration: the first one logs a
/// tracing warning, and the run goes on.
#[derive(Clone, Debug)]
pub struct Audit {
    inner: Option<Arc<Inner>>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    file: Mutex<File>,
    /// The migration's id as JSON (see [`Audit::set_job`]).
    job: Mutex<String>,
    /// `"pid":…,"user":…`, serialized once.
    common: String,
    /// (session, sql) of the repeating statements already logged.
    seen: Mutex<HashSet<(String, String)>>,
    warned: AtomicBool,
}

impl Audit {
    /// Opens (creates, mode 0600, parent dirs created with mode 0700) the file for appending;
    /// every line names `job` (until [`Audit::set_job`] names it better).
    pub fn open(path: &Path, job: &str) -> std::io::Result<Audit> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        // An existing file keeps its mode on open: tighten it too (a regular file only).
        let meta = file.metadata()?;
        let mode = meta.mode();
        if meta.is_file() && mode & 0o077 != 0 {
            use std::os::unix::fs::PermissionsExt as _;
            file.set_permissions(std::fs::Permissions::from_mode(mode & 0o700))?;
        }
        let common = format!(
            "\"pid\":{},\"user\":{}",
            std::process::id(),
            Value::from(crate::os::user_name())
        );
        Ok(Audit {
            inner: Some(Arc::new(Inner {
                path: path.to_path_buf(),
                file: Mutex::new(file),
                job: Mutex::new(Value::from(job).to_string()),
                common,
                seen: Mutex::new(HashSet::new()),
                warned: AtomicBool::new(false),
            })),
        })
    }

    /// An audit that writes nothing (tests, and `--audit-log off`).
    pub fn disabled() -> Audit {
        Audit { inner: None }
    }

    /// Names the migration `job` on every line from now on: the id the state table uses, once
    /// the target has resolved the table's schema (a plan naming none is found through the
    /// `search_path`). Lines before it carry the id as the plan gives it (`.orders.amount`:
    /// the schema not yet known).
    pub fn set_job(&self, job: &str) {
        let Some(inner) = &self.inner else { return };
        *inner.job.lock().unwrap_or_else(|p| p.into_inner()) = Value::from(job).to_string();
    }

    /// The file, when enabled.
    pub fn path(&self) -> Option<&Path> {
        self.inner.as_deref().map(|i| i.path.as_path())
    }

    /// A statement about to be sent on one of pacer's sessions (`session`: "main",
    /// "observer", "sampler", ...), with its parameters as JSON values (each target says how
    /// its driver's parameters read as JSON).
    pub fn statement(&self, session: &str, sql: &str, params: &[Value]) {
        let Some(inner) = &self.inner else { return };
        inner.write(statement_fields(session, sql, params, None));
    }

    /// A statement that runs again and again with the same text (the sampler's queries every
    /// sample interval, the blocker watch while DDL waits): logged on its first use only, per
    /// session, with `"repeats": repeats` saying how often it runs (e.g. "every sample
    /// interval"). Its parameters are those of the first use.
    pub fn statement_repeating(&self, session: &str, sql: &str, params: &[Value], repeats: &str) {
        let Some(inner) = &self.inner else { return };
        let first = inner
            .seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((session.to_string(), sql.to_string()));
        if first {
            inner.write(statement_fields(session, sql, params, Some(repeats)));
        }
    }

    /// An operator action: `action` (pause, resume, batch_size, auto_batch_size, proceed,
    /// abort, detach, ...), `from` (the interface: "tui", "ctl", "signal", "hangup"), `value`
    /// (e.g. the new batch size).
    pub fn operator(&self, action: &str, from: &str, value: Option<Value>) {
        let Some(inner) = &self.inner else { return };
        let mut fields = vec![
            ("kind", Value::from("operator")),
            ("action", Value::from(action)),
            ("from", Value::from(from)),
        ];
        if let Some(v) = value {
            fields.push(("value", v));
        }
        inner.write(
            fields
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        );
    }

    /// Something about the run itself (`what`: "run_started", "run_ended", ...), with
    /// details: the fields of an object are merged into the line (a field named like a
    /// common one becomes `detail_<name>`); any other value goes under `detail`.
    pub fn note(&self, what: &str, detail: Value) {
        let Some(inner) = &self.inner else { return };
        let mut fields = vec![
            ("kind".to_string(), Value::from("note")),
            ("what".to_string(), Value::from(what)),
        ];
        match detail {
            Value::Object(map) => {
                for (k, v) in map {
                    let k = if RESERVED.contains(&k.as_str()) {
                        format!("detail_{k}")
                    } else {
                        k
                    };
                    fields.push((k, v));
                }
            }
            Value::Null => {}
            other => fields.push(("detail".to_string(), other)),
        }
        inner.write(fields);
    }
}

impl Inner {
    /// Writes one line: `ts`, the common fields, then `fields` in order.
    fn write(&self, fields: Vec<(String, Value)>) {
        let ts = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        let job = self.job.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut line = format!("{{\"ts\":\"{ts}\",\"job\":{job},{}", self.common);
        for (k, v) in fields {
            line.push(',');
            line.push_str(&Value::from(k).to_string());
            line.push(':');
            line.push_str(&v.to_string());
        }
        line.push_str("}\n");
        let result = {
            let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
            // One write call (the file has no user-space buffer): nothing to flush after it.
            file.write_all(line.as_bytes())
        };
        if let Err(e) = result
            && !self.warned.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                "cannot write the audit log {}: {e}; the migration goes on, but this and later \
                 audit lines may be missing",
                self.path.display()
            );
        }
    }
}

fn statement_fields(
    session: &str,
    sql: &str,
    params: &[Value],
    repeats: Option<&str>,
) -> Vec<(String, Value)> {
    let mut fields = vec![
        ("kind".to_string(), Value::from("statement")),
        ("session".to_string(), Value::from(session)),
        ("sql".to_string(), Value::from(sql)),
        ("params".to_string(), Value::Array(params.to_vec())),
    ];
    if let Some(r) = repeats {
        fields.push(("repeats".to_string(), Value::from(r)));
    }
    fields
}

/// `$XDG_STATE_HOME/pacer/audit.jsonl`, else `~/.local/state/pacer/audit.jsonl`.
pub fn default_path() -> Option<PathBuf> {
    default_path_in(std::env::var_os("XDG_STATE_HOME"), std::env::var_os("HOME"))
}

fn default_path_in(
    xdg_state_home: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
) -> Option<PathBuf> {
    let state = xdg_state_home
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| home.map(|h| Path::new(&h).join(".local/state")))?;
    Some(state.join("pacer").join("audit.jsonl"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn lines(path: &Path) -> Vec<Value> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    #[test]
    fn lines_name_the_job_as_resolved_once_the_target_has_found_the_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let audit = Audit::open(&path, ".orders.amount").unwrap();
        let sampler = audit.clone();
        audit.statement("main", "SELECT 1", &[]);
        audit.set_job("app.orders.amount");
        audit.statement("main", "SELECT 2", &[]);
        sampler.statement("sampler", "SELECT 3", &[]);
        audit.operator("pause", "ctl", None);
        let jobs: Vec<Value> = lines(&path).iter().map(|l| l["job"].clone()).collect();
        assert_eq!(
            jobs,
            [
                ".orders.amount",
                "app.orders.amount",
                "app.orders.amount",
                "app.orders.amount"
            ]
        );
        Audit::disabled().set_job("x");
    }

    #[test]
    fn every_kind_of_line_is_json_with_the_common_fields() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deep/er/audit.jsonl");
        let audit = Audit::open(&path, "public.orders.amount").unwrap();
        assert_eq!(audit.path(), Some(path.as_path()));
        let params = [
            Value::from("1000"),
            Value::from("2000"),
            Value::Null,
            serde_json::json!(["7"]),
            Value::from(4999),
        ];
        audit.statement(
            "main",
            "UPDATE t SET c = 1\nWHERE id > $1 AND id <= $2",
            &params,
        );
        audit.operator("batch_size", "ctl", Some(Value::from(2000)));
        audit.operator("pause", "tui", None);
        audit.note(
            "run_started",
            serde_json::json!({"target": "postgres://u@h/db", "kind": "x"}),
        );

        let got = lines(&path);
        assert_eq!(got.len(), 4);
        for l in &got {
            let ts = l["ts"].as_str().unwrap();
            assert!(humantime::parse_rfc3339(ts).is_ok(), "{ts}");
            assert!(ts.ends_with('Z') && ts.len() == "2026-01-01T00:00:00.000Z".len());
            assert_eq!(l["job"], "public.orders.amount");
            assert_eq!(l["pid"], std::process::id());
            assert!(!l["user"].as_str().unwrap().is_empty());
        }
        assert_eq!(got[0]["kind"], "statement");
        assert_eq!(got[0]["session"], "main");
        assert_eq!(
            got[0]["sql"],
            "UPDATE t SET c = 1\nWHERE id > $1 AND id <= $2"
        );
        assert_eq!(
            got[0]["params"],
            serde_json::json!(["1000", "2000", null, ["7"], 4999])
        );
        assert!(got[0].get("repeats").is_none());
        assert_eq!(
            got[1],
            serde_json::json!({"ts": got[1]["ts"], "job": "public.orders.amount",
                "pid": std::process::id(), "user": got[1]["user"], "kind": "operator",
                "action": "batch_size", "from": "ctl", "value": 2000})
        );
        assert!(got[2].get("value").is_none());
        assert_eq!(got[3]["kind"], "note");
        assert_eq!(got[3]["what"], "run_started");
        assert_eq!(got[3]["target"], "postgres://u@h/db");
        assert_eq!(
            got[3]["detail_kind"], "x",
            "a detail cannot hide a common field"
        );
        // ts comes first, as documented.
        let raw = std::fs::read_to_string(&path).unwrap();
        assert!(raw.lines().all(|l| l.starts_with("{\"ts\":\"")));
    }

    #[test]
    fn the_file_and_its_new_directory_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/pacer/audit.jsonl");
        Audit::open(&path, "j").unwrap().note("x", Value::Null);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);

        // An existing file readable by others is tightened, and appended to.
        let open = dir.path().join("open.jsonl");
        std::fs::write(&open, "{}\n").unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
        Audit::open(&open, "j").unwrap().note("x", Value::Null);
        assert_eq!(mode(&open), 0o600);
        assert_eq!(lines(&open).len(), 2);
    }

    #[test]
    fn repeating_statements_are_logged_once_per_session() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        let audit = Audit::open(&path, "j").unwrap();
        let clone = audit.clone();
        for _ in 0..3 {
            audit.statement_repeating("sampler", "SELECT 1", &[], "every sample interval");
            clone.statement_repeating("sampler", "SELECT 1", &[], "every sample interval");
        }
        audit.statement_repeating("observer", "SELECT 1", &[], "every 150 ms");
        audit.statement_repeating("sampler", "SELECT 2", &[], "every sample interval");
        let got = lines(&path);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0]["repeats"], "every sample interval");
        assert_eq!(got[1]["session"], "observer");
        assert_eq!(got[2]["sql"], "SELECT 2");
    }

    #[test]
    fn a_disabled_audit_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let audit = Audit::disabled();
        assert_eq!(audit.path(), None);
        audit.statement("main", "SELECT 1", &[]);
        audit.statement_repeating("sampler", "SELECT 1", &[], "always");
        audit.operator("pause", "tui", None);
        audit.note("run_started", serde_json::json!({}));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_write_error_does_not_panic() {
        // /dev/full accepts the open and fails every write (ENOSPC).
        let audit = Audit::open(Path::new("/dev/full"), "j").unwrap();
        audit.statement("main", "SELECT 1", &[]);
        audit.statement("main", "SELECT 2", &[]);
        assert!(audit.inner.as_ref().unwrap().warned.load(Ordering::Relaxed));
    }

    #[test]
    fn the_default_path_is_under_the_state_directory() {
        let os = |s: &str| Some(std::ffi::OsString::from(s));
        assert_eq!(
            default_path_in(os("/st"), os("/home/u")),
            Some(PathBuf::from("/st/pacer/audit.jsonl"))
        );
        assert_eq!(
            default_path_in(os(""), os("/home/u")),
            Some(PathBuf::from("/home/u/.local/state/pacer/audit.jsonl"))
        );
        assert_eq!(default_path_in(None, None), None);
    }
}
