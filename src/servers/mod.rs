//! Throwaway database servers: the ones `pacer demo` runs its migration on, and the ones the
//! tests start (unit tests and `tests/` alike). One implementation for both, so what the tests
//! exercise is what the demo runs.
//!
//! Every server lives in a private directory of its own ([`dir`]: `$TMPDIR/PREFIX-XXXXXXXX`,
//! mode 0700, with an owner file), listens on 127.0.0.1 on a port picked at run time, and is
//! stopped and its directory removed by its owner: on drop, also when a test panics. A process
//! killed before it could (SIGKILL, a test timeout) leaves its servers running; the next start
//! finds them by the owner file, stops them and removes their directory.
//!
//! Databases refuse to run as root: when pacer runs as root, the server programs run as an
//! unprivileged OS user and the directory is handed to it.
//!
//! What is the same for every database is here (and [`tls`]: a test CA and server certificate
//! for either); what is particular to one lives in its own module, [`postgres`] and
//! [`mariadb`], which share the directory, the sweep, the ports and the OS user. Each sweeps
//! the orphans of its own kind (`pacer-pg-*`, `pacer-mdb-*`) when it starts a server.
//!
//! Everything here blocks (it runs external programs); from async code call it from
//! `spawn_blocking` (tests may just hold the thread for a moment).

pub(crate) mod dir;
pub mod mariadb;
pub mod postgres;
mod process;
pub mod tls;

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

/// A port free on 127.0.0.1 right now. Prefers ports below the kernel's ephemeral range, so that
/// outgoing connections cannot take a server's port while it is stopped for a restart; else the
/// kernel's choice.
pub(crate) fn free_port(attempt: usize) -> Result<u16, String> {
    let ephemeral_low = process::ephemeral_port_low().unwrap_or(32768);
    let low = 10_000u32;
    if ephemeral_low > low + 1_000 {
        let span = u64::from(ephemeral_low - low);
        for i in 0..50 {
            let Ok(port) = u16::try_from(low + (random_u64(attempt * 100 + i) % span) as u32)
            else {
                continue;
            };
            if TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return Ok(port);
            }
        }
    }
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free TCP port on 127.0.0.1: {e}"))
}

/// A number that differs between calls, processes and salts (names and ports, not secrets).
fn random_u64(salt: usize) -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.write_usize(salt);
    h.finish()
}

/// Where server directories go: the temp dir, unless the servers run as another OS user (pacer
/// runs as root) who could not reach it; then /tmp.
pub(crate) fn temp_base() -> PathBuf {
    let base = std::env::temp_dir();
    if !process::running_as_root() {
        return base;
    }
    let reachable = base
        .ancestors()
        .all(|dir| std::fs::metadata(dir).is_ok_and(|m| m.mode() & 0o001 != 0));
    if reachable {
        base
    } else {
        PathBuf::from("/tmp")
    }
}

/// The OS user the server programs run as: `None` unless we are root; else uid and gid of the
/// first of `names` that exists.
pub(crate) fn run_as(names: &[&str]) -> Result<Option<(u32, u32)>, String> {
    if !process::running_as_root() {
        return Ok(None);
    }
    names
        .iter()
        .find_map(|name| process::user_ids(name))
        .map(Some)
        .ok_or_else(|| {
            let names: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
            format!(
                "pacer runs as root, and database servers refuse to run as root, but there is no \
                 {} OS user to run them as",
                names.join(" or ")
            )
        })
}

/// A program's error output (else its standard output) and exit status.
fn describe(out: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let text = if stderr.trim().is_empty() {
        stdout.trim()
    } else {
        stderr.trim()
    };
    format!("{text} ({})", out.status)
}

/// Percent-encodes everything but unreserved characters, for a URL's user, password or path.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
