//! A throwaway PostgreSQL for `pacer demo`: finds the server binaries, creates a cluster in a
//! private temporary directory (`$TMPDIR/pacer-demo-*`), starts it on a free port of 127.0.0.1
//! (and, if asked, a streaming replica of it), and stops it and removes the directory when the
//! demo ends, also on an error, a panic or a second Ctrl-C ([`Cleanup`]).
//!
//! PostgreSQL refuses to run as root. When pacer runs as root, the server programs run as the
//! `postgres` OS user (made by the server packages), else as `nobody`, and the directory is
//! handed to that user.
//!
//! Everything here blocks (it runs external programs); call it from `spawn_blocking`.

use std::ffi::OsString;
use std::fs;
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Superuser of the demo cluster (trusted, from 127.0.0.1 and the unix socket only).
pub const DEMO_USER: &str = "pacer_demo";
/// Prefix of the demo's temporary directory.
pub const DIR_PREFIX: &str = "pacer-demo-";
/// Oldest PostgreSQL pacer supports.
pub const MIN_MAJOR: u32 = 12;

/// The programs every demo needs.
pub const SERVER_PROGRAMS: [&str; 3] = ["initdb", "pg_ctl", "postgres"];
/// The program a replica needs besides.
pub const REPLICA_PROGRAM: &str = "pg_basebackup";

/// What to install, for every message about missing binaries.
pub const INSTALL_HINT: &str = "Install the PostgreSQL server binaries (version 12 or later):\n  \
     Debian/Ubuntu:  sudo apt-get install postgresql-15\n  \
     RHEL/Fedora:    sudo dnf install postgresql15-server   (from the PGDG repository)\n  \
     macOS:          brew install postgresql@15\n\
     or set PACER_PG_BIN to the directory that holds initdb, pg_ctl, postgres and pg_basebackup.";

/// Settings of the demo's primary (a replica copies them). Sized for a laptop or a small VM.
///
/// fsync is off: the cluster is thrown away when the demo ends, so there is nothing to protect
/// from a power loss, and on a slow laptop disk the flushes would only make the demo's batch
/// times say more about the disk than about pacer. What the demo shows is unaffected: the
/// backfill writes the same WAL (wal_level = replica, full-page writes on), takes the same
/// locks, and a replica lags the same way. `pacer run` on a real database runs with its fsync.
const SERVER_CONF: &str = "
# --- written by pacer demo ---
listen_addresses = '127.0.0.1'
max_connections = 40
shared_buffers = 128MB
work_mem = 8MB
maintenance_work_mem = 128MB
fsync = off
full_page_writes = on
wal_level = replica
max_wal_senders = 4
max_replication_slots = 4
wal_keep_size = 512MB
max_wal_size = 1GB
hot_standby = on
hot_standby_feedback = on
log_line_prefix = '%m [%p] %q%a '
";

/// pg_hba.conf: trust, and only for the local socket and 127.0.0.1 (the server listens nowhere
/// else).
const HBA_CONF: &str = "\
# written by pacer demo: a throwaway cluster, reachable from this machine only
local   all             all                                     trust
host    all             all             127.0.0.1/32            trust
local   replication     all                                     trust
host    replication     all             127.0.0.1/32            trust
";

/// Seconds pg_ctl waits for a start or a fast stop.
const PG_CTL_WAIT_SECS: &str = "60";
/// Ports tried when the chosen one was taken meanwhile.
const PORT_ATTEMPTS: usize = 5;
/// File in the demo's directory naming the pacer process that owns it.
const OWNER_FILE: &str = "owner";
/// Longest unix socket path (sun_path holds 108 bytes with the NUL).
const MAX_SOCKET_PATH: usize = 100;

// ----- finding the binaries -----

/// Where to look for the server binaries (read from the environment by [`Lookup::from_env`];
/// tests build their own).
#[derive(Debug, Clone, Default)]
pub struct Lookup {
    /// `$PACER_PG_BIN`: when set, the only place looked at.
    pub pacer_pg_bin: Option<PathBuf>,
    /// What `pg_config --bindir` printed.
    pub pg_config_bindir: Option<PathBuf>,
    /// Directories holding one folder per major version with a `bin` inside
    /// (`/usr/lib/postgresql`).
    pub version_roots: Vec<PathBuf>,
    /// `$PATH`.
    pub path: Option<OsString>,
}

impl Lookup {
    /// The machine's: `$PACER_PG_BIN`, `pg_config --bindir`, `/usr/lib/postgresql/*/bin`,
    /// `$PATH`.
    pub fn from_env() -> Lookup {
        let pacer_pg_bin = std::env::var_os("PACER_PG_BIN")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        let pg_config_bindir = if pacer_pg_bin.is_some() {
            None
        } else {
            Command::new("pg_config")
                .arg("--bindir")
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
                .filter(|p| !p.as_os_str().is_empty())
        };
        Lookup {
            pacer_pg_bin,
            pg_config_bindir,
            version_roots: vec![PathBuf::from("/usr/lib/postgresql")],
            path: std::env::var_os("PATH"),
        }
    }

    /// The directory holding every program of `needed`, or a message that says what was
    /// searched and what to install.
    pub fn find(&self, needed: &[&str]) -> Result<PathBuf, String> {
        let list = needed.join(", ");
        if let Some(dir) = &self.pacer_pg_bin {
            let missing: Vec<&str> = needed
                .iter()
                .copied()
                .filter(|p| !is_executable(&dir.join(p)))
                .collect();
            if missing.is_empty() {
                return Ok(dir.clone());
            }
            return Err(format!(
                "PACER_PG_BIN is {}, but it holds no {}. pacer demo needs {list} there.\n\
                 {INSTALL_HINT}",
                dir.display(),
                missing.join(", ")
            ));
        }
        let mut searched = Vec::new();
        let mut candidates = Vec::new();
        if let Some(dir) = &self.pg_config_bindir {
            searched.push(format!("{} (pg_config --bindir)", dir.display()));
            candidates.push(dir.clone());
        }
        for root in &self.version_roots {
            searched.push(format!("{}/*/bin", root.display()));
            candidates.extend(newest_first(root));
        }
        if let Some(path) = &self.path {
            searched.push("PATH".into());
            candidates.extend(std::env::split_paths(path));
        }
        candidates
            .into_iter()
            .find(|dir| needed.iter().all(|p| is_executable(&dir.join(p))))
            .ok_or_else(|| {
                format!(
                    "PostgreSQL server binaries not found: pacer demo needs {list} (searched {}).\n\
                     {INSTALL_HINT}",
                    searched.join(", ")
                )
            })
    }
}

/// `ROOT/NN/bin` for every version folder of `root`, the highest version first.
fn newest_first(root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(root) else {
        return Vec::new();
    };
    let mut found: Vec<(Vec<u64>, PathBuf)> = entries
        .flatten()
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let version = name.split('.').map(|p| p.parse().unwrap_or(0)).collect();
            (version, e.path().join("bin"))
        })
        .collect();
    found.sort();
    found.into_iter().rev().map(|(_, dir)| dir).collect()
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The major version of `postgres --version` output ("postgres (PostgreSQL) 15.4 (Debian…)").
pub fn parse_major(version_output: &str) -> Option<u32> {
    let rest = version_output.split("(PostgreSQL)").nth(1)?.trim();
    let number: String = rest.chars().take_while(char::is_ascii_digit).collect();
    number.parse().ok()
}

/// Checks that the binaries in `bin` are PostgreSQL 12 or later; returns the version line.
pub fn check_version(bin: &Path) -> Result<String, String> {
    let postgres = bin.join("postgres");
    let out = Command::new(&postgres)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}.\n{INSTALL_HINT}", postgres.display()))?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    match parse_major(&text) {
        Some(major) if major >= MIN_MAJOR => Ok(text),
        Some(major) => Err(format!(
            "{} is PostgreSQL {major}; pacer needs 12 or later.\n{INSTALL_HINT}",
            postgres.display()
        )),
        None => Err(format!(
            "{} --version printed {text:?}, not a PostgreSQL version.\n{INSTALL_HINT}",
            postgres.display()
        )),
    }
}

// ----- the cluster -----

/// One running server of the demo.
#[derive(Debug, Clone)]
pub struct Server {
    /// Its data directory.
    pub data_dir: PathBuf,
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
    /// Its log file.
    pub log: PathBuf,
}

impl Server {
    /// `postgres://pacer_demo@127.0.0.1:PORT/DB`
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{DEMO_USER}@127.0.0.1:{}/{db}", self.port)
    }
}

/// The demo's temporary directory with its primary and optional replica. Dropping it stops the
/// servers and removes the directory (see [`Cleanup`]).
pub struct Cluster {
    /// The demo's directory.
    pub root: PathBuf,
    /// The primary.
    pub primary: Server,
    /// The streaming replica, when started.
    pub replica: Option<Server>,
    /// Whether the directory stays when the demo ends.
    pub keep: bool,
    programs: Programs,
    cleanup: Cleanup,
}

/// How to run the server programs.
#[derive(Debug, Clone)]
struct Programs {
    bin: PathBuf,
    /// uid and gid the server programs run as (when pacer runs as root).
    run_as: Option<(u32, u32)>,
    root: PathBuf,
}

impl Programs {
    /// A server program with a clean environment, run as the server's OS user.
    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin.join(program));
        let inherited: Vec<OsString> = std::env::vars_os()
            .map(|(k, _)| k)
            .filter(|k| k.to_string_lossy().starts_with("PG"))
            .collect();
        for key in inherited {
            cmd.env_remove(key);
        }
        cmd.env("LC_ALL", "C")
            .env("HOME", &self.root)
            .current_dir(&self.root)
            .stdin(Stdio::null());
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        cmd
    }

    fn run(&self, program: &str, args: &[&std::ffi::OsStr]) -> Result<Output, String> {
        self.command(program)
            .args(args)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.bin.join(program).display()))
    }
}

impl Cluster {
    /// Creates `BASE/pacer-demo-*`, runs initdb and starts the primary on a free port.
    /// `base` is normally [`std::env::temp_dir`]. `keep` leaves the directory in place at the
    /// end (the servers are still stopped).
    pub fn start(bin: &Path, base: &Path, keep: bool) -> Result<Cluster, String> {
        let run_as = if running_as_root() {
            Some(unprivileged_user().ok_or(
                "pacer runs as root, and PostgreSQL refuses to run as root, but there is neither \
                 a `postgres` nor a `nobody` OS user to run it as. Run pacer demo as an ordinary \
                 user, or create the `postgres` user (the server packages do).",
            )?)
        } else {
            None
        };
        sweep_orphans(base, bin, run_as);
        let root = make_private_dir(base)?;
        let cleanup = Cleanup::new(root.clone(), bin.to_path_buf(), run_as, keep);
        let programs = Programs {
            bin: bin.to_path_buf(),
            run_as,
            root: root.clone(),
        };
        // The watchdog is this program; a unit test's executable is the test harness, so unit
        // tests rely on the destructor alone.
        if !cfg!(test) {
            match spawn_reaper(&root, bin, keep) {
                Ok(reaper) => {
                    cleanup
                        .inner
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .reaper = Some(reaper)
                }
                Err(e) => {
                    let _ = cleanup.run();
                    return Err(e);
                }
            }
        }
        match init_primary(&programs, &cleanup) {
            Ok(primary) => Ok(Cluster {
                root,
                primary,
                replica: None,
                keep,
                programs,
                cleanup,
            }),
            Err(e) => {
                let _ = cleanup.run();
                Err(e)
            }
        }
    }

    /// Makes a streaming replica of the primary (`pg_basebackup -R -X stream`) and starts it on
    /// another free port.
    pub fn start_replica(&mut self) -> Result<&Server, String> {
        let data_dir = self.root.join("replica");
        let port = self.primary.port.to_string();
        let args: Vec<&std::ffi::OsStr> = vec![
            "-h".as_ref(),
            "127.0.0.1".as_ref(),
            "-p".as_ref(),
            port.as_ref(),
            "-U".as_ref(),
            DEMO_USER.as_ref(),
            "-w".as_ref(),
            "-D".as_ref(),
            data_dir.as_os_str(),
            "-R".as_ref(),
            "-X".as_ref(),
            "stream".as_ref(),
            "-c".as_ref(),
            "fast".as_ref(),
            "--no-sync".as_ref(),
        ];
        let out = self.programs.run(REPLICA_PROGRAM, &args)?;
        if !out.status.success() {
            return Err(format!(
                "pg_basebackup from the demo primary failed: {}",
                describe(&out)
            ));
        }
        // The replica's walreceiver reports this as its application name.
        append(
            &data_dir.join("postgresql.conf"),
            "cluster_name = 'replica'\n",
        )?;
        self.cleanup.add(&data_dir);
        let replica =
            start_on_free_port(&self.programs, &data_dir, &self.root.join("replica.log"))?;
        Ok(self.replica.insert(replica))
    }

    /// A handle that stops the servers and removes the directory; safe to run more than once.
    pub fn cleanup(&self) -> Cleanup {
        self.cleanup.clone()
    }

    /// Stops the servers and removes the directory (unless kept).
    pub fn stop(self) -> Result<(), String> {
        self.cleanup.run()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.cleanup.run();
    }
}

/// Stops the demo's servers and removes its directory. Idempotent; also run from the exit hook
/// when pacer exits at once (a second Ctrl-C), where no destructor runs.
#[derive(Debug, Clone)]
pub struct Cleanup {
    inner: Arc<Mutex<CleanupState>>,
}

#[derive(Debug)]
struct CleanupState {
    programs: Programs,
    /// Data directories of started servers, in start order.
    data_dirs: Vec<PathBuf>,
    keep: bool,
    done: bool,
    /// The watchdog process and our end of its pipe (see [`spawn_reaper`]).
    reaper: Option<(std::process::Child, std::process::ChildStdin)>,
}

impl Cleanup {
    fn new(root: PathBuf, bin: PathBuf, run_as: Option<(u32, u32)>, keep: bool) -> Cleanup {
        Cleanup {
            inner: Arc::new(Mutex::new(CleanupState {
                programs: Programs { bin, run_as, root },
                data_dirs: Vec::new(),
                keep,
                done: false,
                reaper: None,
            })),
        }
    }

    fn add(&self, data_dir: &Path) {
        let mut s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        s.data_dirs.push(data_dir.to_path_buf());
    }

    /// Stops the servers (replica first; fast, else immediate, else SIGKILL) and removes the
    /// directory unless it is to be kept. The first call does the work.
    pub fn run(&self) -> Result<(), String> {
        let mut s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if s.done {
            return Ok(());
        }
        s.done = true;
        let mut problems = Vec::new();
        for data_dir in s.data_dirs.iter().rev() {
            if let Err(e) = stop_server(&s.programs, data_dir) {
                problems.push(e);
            }
        }
        let root = &s.programs.root;
        if s.keep {
            // Kept on purpose: the next demo's sweep must not take it for an orphan.
            let _ = fs::remove_file(root.join(OWNER_FILE));
        } else if let Err(e) = fs::remove_dir_all(root)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            problems.push(format!("cannot remove {}: {e}", root.display()));
        }
        // Nothing left for the watchdog: closing its pipe ends it.
        if let Some((mut child, stdin)) = s.reaper.take() {
            drop(stdin);
            let _ = child.wait();
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

/// Hands the directory to the server's OS user, runs initdb, writes the settings and starts the
/// primary.
fn init_primary(programs: &Programs, cleanup: &Cleanup) -> Result<Server, String> {
    let root = &programs.root;
    write_owner_file(root);
    if let Some((uid, gid)) = programs.run_as {
        std::os::unix::fs::chown(root, Some(uid), Some(gid)).map_err(|e| {
            format!(
                "cannot hand {} to the PostgreSQL OS user: {e}",
                root.display()
            )
        })?;
    }
    let data_dir = root.join("primary");
    let mut initdb_args: Vec<&std::ffi::OsStr> = vec!["-D".as_ref(), data_dir.as_os_str()];
    for a in [
        "-U",
        DEMO_USER,
        "--auth=trust",
        "-E",
        "UTF8",
        "--locale=C",
        "--no-sync",
    ] {
        initdb_args.push(a.as_ref());
    }
    let out = programs.run("initdb", &initdb_args)?;
    if !out.status.success() {
        return Err(format!("initdb failed: {}", describe(&out)));
    }
    let socket_dir = if root.join(".s.PGSQL.65535").as_os_str().len() <= MAX_SOCKET_PATH {
        format!("'{}'", root.display().to_string().replace('\'', "''"))
    } else {
        // The path is too long for a unix socket: TCP only.
        "''".to_string()
    };
    let conf = format!("{SERVER_CONF}unix_socket_directories = {socket_dir}\n");
    append(&data_dir.join("postgresql.conf"), &conf)?;
    fs::write(data_dir.join("pg_hba.conf"), HBA_CONF)
        .map_err(|e| format!("cannot write pg_hba.conf in {}: {e}", data_dir.display()))?;
    cleanup.add(&data_dir);
    start_on_free_port(programs, &data_dir, &root.join("primary.log"))
}

/// Starts the watchdog: this very program as `pacer demo-reaper ROOT BIN [--keep]`, in a
/// process group of its own (a Ctrl-C on the terminal does not reach it), reading a pipe whose
/// other end only this process holds. When this process ends in any way (even SIGKILL or an
/// abort, where no destructor runs) the pipe closes and the watchdog stops the servers and
/// removes the directory. After a normal clean-up it finds nothing left to do.
fn spawn_reaper(
    root: &Path,
    bin: &Path,
    keep: bool,
) -> Result<(std::process::Child, std::process::ChildStdin), String> {
    let exe = std::env::current_exe()
        .map_err(|e| format!("cannot find pacer's own executable for the demo's watchdog: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.arg(REAPER_COMMAND)
        .arg(root)
        .arg(bin)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    if keep {
        cmd.arg("--keep");
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start the demo's watchdog: {e}"))?;
    let stdin = child.stdin.take().expect("stdin is piped");
    Ok((child, stdin))
}

/// The hidden subcommand the watchdog runs as.
pub const REAPER_COMMAND: &str = "demo-reaper";

/// The watchdog's work (see [`spawn_reaper`]): waits until standard input closes, then stops
/// the servers of `root` and removes it (unless `keep`).
pub fn reap(root: &Path, bin: &Path, keep: bool) -> Result<(), String> {
    let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
    if !root.exists() {
        return Ok(());
    }
    let run_as = if running_as_root() {
        unprivileged_user()
    } else {
        None
    };
    let cleanup = Cleanup::new(root.to_path_buf(), bin.to_path_buf(), run_as, keep);
    cleanup.add(&root.join("primary"));
    cleanup.add(&root.join("replica"));
    cleanup.run()
}

/// Starts the server of `data_dir` on a free port and waits until it accepts connections
/// (`pg_ctl -w`; a hot standby counts once it accepts read-only connections).
fn start_on_free_port(programs: &Programs, data_dir: &Path, log: &Path) -> Result<Server, String> {
    let mut last = String::new();
    for _ in 0..PORT_ATTEMPTS {
        let port = free_port()?;
        let options = format!("-p {port}");
        let log_before = fs::metadata(log).map(|m| m.len()).unwrap_or(0);
        let args: Vec<&std::ffi::OsStr> = vec![
            "start".as_ref(),
            "-D".as_ref(),
            data_dir.as_os_str(),
            "-w".as_ref(),
            "-t".as_ref(),
            PG_CTL_WAIT_SECS.as_ref(),
            "-l".as_ref(),
            log.as_os_str(),
            "-o".as_ref(),
            options.as_ref(),
        ];
        let out = programs.run("pg_ctl", &args)?;
        if out.status.success() {
            return Ok(Server {
                data_dir: data_dir.to_path_buf(),
                port,
                log: log.to_path_buf(),
            });
        }
        let _ = stop_server(programs, data_dir);
        let new_log = fs::read(log)
            .map(|b| String::from_utf8_lossy(&b[(log_before as usize).min(b.len())..]).into_owned())
            .unwrap_or_default();
        last = format!(
            "pg_ctl start failed: {}\n--- {} ---\n{}",
            describe(&out),
            log.display(),
            new_log.trim()
        );
        if !new_log.contains("Address already in use") {
            break;
        }
    }
    Err(last)
}

/// `pg_ctl stop -m fast`, then `-m immediate`, then SIGKILL to the postmaster's process group.
fn stop_server(programs: &Programs, data_dir: &Path) -> Result<(), String> {
    let Some(pid) = read_postmaster_pid(data_dir) else {
        return Ok(()); // not running
    };
    for mode in ["fast", "immediate"] {
        let args: Vec<&std::ffi::OsStr> = vec![
            "stop".as_ref(),
            "-D".as_ref(),
            data_dir.as_os_str(),
            "-m".as_ref(),
            mode.as_ref(),
            "-w".as_ref(),
            "-t".as_ref(),
            "20".as_ref(),
        ];
        let _ = programs.run("pg_ctl", &args);
        if wait_until_dead(pid, Duration::from_secs(5)) {
            return Ok(());
        }
    }
    if is_our_postmaster(pid, data_dir) {
        signal_kill(pid);
    }
    if wait_until_dead(pid, Duration::from_secs(5)) {
        Ok(())
    } else {
        Err(format!(
            "the PostgreSQL server of {} (pid {pid}) does not stop",
            data_dir.display()
        ))
    }
}

fn append(path: &Path, text: &str) -> Result<(), String> {
    fs::OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| format!("cannot append to {}: {e}", path.display()))
}

fn describe(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let text = if stderr.trim().is_empty() {
        stdout.trim().to_string()
    } else {
        stderr.trim().to_string()
    };
    format!("{} ({})", text, out.status)
}

/// A port free on 127.0.0.1 right now (the kernel's choice).
fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free TCP port on 127.0.0.1: {e}"))
}

// ----- the directory -----

/// Creates `BASE/pacer-demo-XXXXXXXX` (mode 0700, or 0755 when a server user must reach it).
fn make_private_dir(base: &Path) -> Result<PathBuf, String> {
    for attempt in 0..20u64 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(attempt);
        h.write_u32(std::process::id());
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        let dir = base.join(format!("{DIR_PREFIX}{:08x}", h.finish() as u32));
        match fs::create_dir(&dir) {
            Ok(()) => {
                let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(0o700));
                return Ok(dir);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(format!(
                    "cannot create a directory for the demo cluster in {}: {e}. Set TMPDIR to a \
                     writable directory.",
                    base.display()
                ));
            }
        }
    }
    Err(format!(
        "cannot create a fresh directory in {}",
        base.display()
    ))
}

/// Where the demo's directory goes: the temp dir, unless the server's OS user (when pacer runs
/// as root) could not reach it; then /tmp.
pub fn temp_base() -> PathBuf {
    let base = std::env::temp_dir();
    if !running_as_root() {
        return base;
    }
    let reachable = base
        .ancestors()
        .all(|dir| fs::metadata(dir).is_ok_and(|m| m.mode() & 0o001 != 0));
    if reachable {
        base
    } else {
        PathBuf::from("/tmp")
    }
}

fn running_as_root() -> bool {
    crate::os::is_root()
}

/// uid and gid of `postgres`, else `nobody`.
fn unprivileged_user() -> Option<(u32, u32)> {
    crate::os::user_ids("postgres").or_else(|| crate::os::user_ids("nobody"))
}

// ----- demos left behind by a killed pacer -----

/// Start time of a live process (see [`crate::os::process_start`]).
fn process_start_time(pid: u32) -> Option<u64> {
    crate::os::process_start(pid)
}

fn write_owner_file(root: &Path) {
    let pid = std::process::id();
    match process_start_time(pid) {
        Some(start) => {
            let _ = fs::write(root.join(OWNER_FILE), format!("{pid} {start}\n"));
        }
        None => eprintln!(
            "pacer demo: this system does not tell when a process started, so a later demo \
             cannot tell whether this one is still running: if pacer and its watchdog are both \
             killed, remove {} yourself",
            root.display()
        ),
    }
}

/// Stops the servers and removes the directories of demos whose pacer was killed (SIGKILL, a
/// closed terminal before the interface came up) before it could clean up.
fn sweep_orphans(base: &Path, bin: &Path, run_as: Option<(u32, u32)>) {
    let Ok(entries) = fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(DIR_PREFIX) {
            continue;
        }
        let root = entry.path();
        let Ok(owner) = fs::read_to_string(root.join(OWNER_FILE)) else {
            continue;
        };
        let mut parts = owner.split_whitespace().map(str::parse::<u64>);
        let (Some(Ok(pid)), Some(Ok(start))) = (parts.next(), parts.next()) else {
            continue;
        };
        let Ok(pid) = u32::try_from(pid) else {
            continue;
        };
        if process_start_time(pid) == Some(start) {
            continue; // its pacer still runs
        }
        let programs = Programs {
            bin: bin.to_path_buf(),
            run_as,
            root: root.clone(),
        };
        for data_dir in [root.join("replica"), root.join("primary")] {
            let _ = stop_server(&programs, &data_dir);
        }
        if fs::remove_dir_all(&root).is_ok() {
            eprintln!(
                "pacer demo: removed {}, left behind by an earlier demo (pid {pid}) that was killed",
                root.display()
            );
        }
    }
}

// ----- processes -----

fn read_postmaster_pid(data_dir: &Path) -> Option<u32> {
    let text = fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    text.lines().next()?.trim().parse().ok()
}

fn is_alive(pid: u32) -> bool {
    crate::os::process_alive(pid)
}

fn wait_until_dead(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while is_alive(pid) {
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
    true
}

/// Guards against signalling a recycled pid: the postmaster's command line names its data dir.
fn is_our_postmaster(pid: u32, data_dir: &Path) -> bool {
    crate::os::command_line_contains(pid, data_dir.as_os_str())
}

/// SIGKILL to the postmaster's process group (pg_ctl starts it as a session leader) and to it.
fn signal_kill(pid: u32) {
    crate::os::kill_group(pid);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_bin(dir: &Path, programs: &[&str]) {
        fs::create_dir_all(dir).unwrap();
        for p in programs {
            let path = dir.join(p);
            fs::write(&path, "#!/bin/sh\n").unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        }
    }

    /// A directory of the test's own, removed when dropped (also when the test fails).
    fn scratch(name: &str) -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix(&format!("pacer-unit-{name}-"))
            .tempdir()
            .unwrap()
    }

    const ALL: [&str; 4] = ["initdb", "pg_ctl", "postgres", "pg_basebackup"];

    #[test]
    fn pacer_pg_bin_is_the_only_place_looked_at_when_set() {
        let dir = scratch("env");
        let root = dir.path();
        fake_bin(&root.join("env"), &["initdb", "pg_ctl"]);
        fake_bin(&root.join("lib/15/bin"), &ALL);
        let lookup = Lookup {
            pacer_pg_bin: Some(root.join("env")),
            version_roots: vec![root.join("lib")],
            ..Lookup::default()
        };
        let err = lookup.find(&ALL).unwrap_err();
        assert!(err.contains("PACER_PG_BIN is"), "{err}");
        assert!(err.contains("holds no postgres, pg_basebackup"), "{err}");
        assert!(err.contains("apt-get install postgresql-15"), "{err}");
        fake_bin(&root.join("env"), &["postgres", "pg_basebackup"]);
        assert_eq!(lookup.find(&ALL).unwrap(), root.join("env"));
    }

    #[test]
    fn pg_config_comes_before_the_newest_version_folder_which_comes_before_path() {
        let dir = scratch("order");
        let root = dir.path();
        fake_bin(&root.join("lib/9.6/bin"), &ALL);
        fake_bin(&root.join("lib/13/bin"), &ALL);
        fake_bin(&root.join("lib/16/bin"), &ALL);
        fake_bin(&root.join("lib/17/bin"), &["initdb"]); // incomplete: skipped
        fake_bin(&root.join("onpath"), &ALL);
        fake_bin(&root.join("config"), &ALL);
        let mut lookup = Lookup {
            pacer_pg_bin: None,
            pg_config_bindir: Some(root.join("config")),
            version_roots: vec![root.join("lib")],
            path: Some(std::env::join_paths([root.join("onpath")]).unwrap()),
        };
        assert_eq!(lookup.find(&ALL).unwrap(), root.join("config"));
        lookup.pg_config_bindir = Some(root.join("nowhere"));
        assert_eq!(lookup.find(&ALL).unwrap(), root.join("lib/16/bin"));
        lookup.version_roots.clear();
        assert_eq!(lookup.find(&ALL).unwrap(), root.join("onpath"));
    }

    #[test]
    fn missing_binaries_say_what_was_searched_and_what_to_install() {
        let dir = scratch("missing");
        let root = dir.path();
        fake_bin(&root.join("onpath"), &["initdb", "pg_ctl"]);
        let not_executable = root.join("onpath/postgres");
        fs::write(&not_executable, "").unwrap();
        fs::set_permissions(&not_executable, fs::Permissions::from_mode(0o644)).unwrap();
        let lookup = Lookup {
            version_roots: vec![root.join("lib")],
            path: Some(std::env::join_paths([root.join("onpath")]).unwrap()),
            ..Lookup::default()
        };
        let err = lookup.find(&SERVER_PROGRAMS).unwrap_err();
        assert!(
            err.starts_with(
                "PostgreSQL server binaries not found: pacer demo needs initdb, pg_ctl, postgres"
            ),
            "{err}"
        );
        assert!(
            err.contains(&format!("{}/*/bin", root.join("lib").display())),
            "{err}"
        );
        for hint in [
            "apt-get install postgresql-15",
            "postgresql15-server",
            "brew install postgresql@15",
            "PACER_PG_BIN",
        ] {
            assert!(err.contains(hint), "{hint} missing from: {err}");
        }
    }

    #[test]
    fn reads_the_major_version() {
        assert_eq!(
            parse_major("postgres (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)"),
            Some(15)
        );
        assert_eq!(parse_major("postgres (PostgreSQL) 9.6.24"), Some(9));
        assert_eq!(parse_major("postgres (PostgreSQL) 17beta1"), Some(17));
        assert_eq!(parse_major("something else"), None);
    }
}
