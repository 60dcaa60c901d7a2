//! A throwaway server's private directory (`BASE/PREFIX-XXXXXXXX`, mode 0700), with an owner
//! file naming the process that made it, and the sweep that removes the directories of
//! processes killed before they could remove their own.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::process;

/// File in a server directory naming its owner: "PID STARTTIME".
const OWNER_FILE: &str = "owner";

/// A private directory for throwaway servers; removed when dropped unless [`ServerDir::keep`]
/// was called. Stopping the servers in it is the owner's job, before.
#[derive(Debug)]
pub(crate) struct ServerDir {
    path: PathBuf,
    /// Left in place for good, or already removed.
    done: bool,
}

impl ServerDir {
    /// Creates `BASE/PREFIXXXXXXXXX` (mode 0700) with its owner file, handed to `run_as` (the
    /// servers' OS user, when we are root).
    pub(crate) fn create(
        base: &Path,
        prefix: &str,
        run_as: Option<(u32, u32)>,
    ) -> Result<ServerDir, String> {
        for attempt in 0..20 {
            let dir = base.join(format!("{prefix}{:08x}", super::random_u64(attempt) as u32));
            match fs::create_dir(&dir) {
                Ok(()) => {
                    let dir = ServerDir {
                        path: dir,
                        done: false,
                    };
                    let _ = fs::set_permissions(&dir.path, fs::Permissions::from_mode(0o700));
                    write_owner_file(&dir.path);
                    if let Some((uid, gid)) = run_as {
                        std::os::unix::fs::chown(&dir.path, Some(uid), Some(gid)).map_err(|e| {
                            format!(
                                "cannot hand {} to the servers' OS user (uid {uid}): {e}",
                                dir.path.display()
                            )
                        })?;
                    }
                    return Ok(dir);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(format!(
                        "cannot create a directory for a throwaway server in {}: {e}. Set TMPDIR \
                         to a writable directory.",
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

    /// Takes charge of a directory made by another process (the demo's watchdog).
    pub(crate) fn adopt(path: &Path) -> ServerDir {
        ServerDir {
            path: path.to_path_buf(),
            done: false,
        }
    }

    /// Where it is.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Leaves the directory in place for good: without its owner file no sweep takes it for an
    /// orphan.
    pub(crate) fn keep(&mut self) {
        let _ = fs::remove_file(self.path.join(OWNER_FILE));
        self.done = true;
    }

    /// Removes the directory (the first call does it).
    pub(crate) fn remove(&mut self) -> Result<(), String> {
        if self.done {
            return Ok(());
        }
        self.done = true;
        match fs::remove_dir_all(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(format!("cannot remove {}: {e}", self.path.display()))
            }
            _ => Ok(()),
        }
    }
}

impl Drop for ServerDir {
    fn drop(&mut self) {
        let _ = self.remove();
    }
}

/// A directory the sweep removed.
#[derive(Debug)]
pub(crate) struct Orphan {
    /// The directory.
    pub(crate) dir: PathBuf,
    /// The process that made it, gone.
    pub(crate) pid: u32,
}

fn write_owner_file(dir: &Path) {
    let pid = std::process::id();
    if let Some(start) = process::start_time(pid) {
        let _ = fs::write(dir.join(OWNER_FILE), format!("{pid} {start}\n"));
    }
}

/// Finds the `BASE/PREFIX*` directories whose owner is gone (killed by a timeout, SIGKILL, a
/// closed terminal before it could clean up), has `stop` stop the servers in each, and removes
/// them. Directories without an owner file (being created, kept, or someone else's) are left
/// alone.
pub(crate) fn sweep_orphans(base: &Path, prefix: &str, mut stop: impl FnMut(&Path)) -> Vec<Orphan> {
    let Ok(entries) = fs::read_dir(base) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(prefix) {
            continue;
        }
        let dir = entry.path();
        let Ok(owner) = fs::read_to_string(dir.join(OWNER_FILE)) else {
            continue;
        };
        let mut parts = owner.split_whitespace().map(str::parse::<u64>);
        let (Some(Ok(pid)), Some(Ok(start))) = (parts.next(), parts.next()) else {
            continue;
        };
        let Ok(pid) = u32::try_from(pid) else {
            continue;
        };
        if process::start_time(pid) == Some(start) {
            continue; // its owner still runs
        }
        stop(&dir);
        if fs::remove_dir_all(&dir).is_ok() {
            removed.push(Orphan { dir, pid });
        }
    }
    removed
}
