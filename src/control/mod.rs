//! Out-of-band control: every running migration listens on a Unix socket (mode 0600, in a
//! directory only its user can enter) so `pacer ctl` and `pacer attach` work from any shell.
//!
//! - [`hub`]: between the engine and the interfaces; every command goes through it.
//! - [`server`]: the socket, one task per connection.
//! - [`client`]: finding a migration's socket, one-shot requests, and attaching a viewer.
//! - [`protocol`]: the JSON lines both sides speak.
//!
//! Where the sockets are: `$PACER_SOCKET_DIR` if set, else `$XDG_RUNTIME_DIR/pacer`, else
//! `/tmp/pacer-<uid>`; one file per running migration, `<job>.<pid>.sock`.

pub mod client;
pub mod hub;
pub mod protocol;
pub mod server;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub use hub::{Hub, OnHangup};

/// Longest socket path the kernel takes (`sun_path` is 108 bytes with its NUL).
const MAX_SOCKET_PATH: usize = 107;

/// The directory of the sockets (not created; see [`ensure_dir`]).
pub fn socket_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PACER_SOCKET_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        return Path::new(&dir).join("pacer");
    }
    PathBuf::from(format!("/tmp/pacer-{}", crate::os::euid()))
}

/// Creates the socket directory (mode 0700) and checks that it is ours and closed to others:
/// a directory another user could write to would let them plant a socket of their own.
pub fn ensure_dir(dir: &Path) -> Result<(), String> {
    if !dir.exists() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create the socket directory {}: {e}", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("cannot set the mode of {}: {e}", dir.display()))?;
    }
    let meta = std::fs::symlink_metadata(dir)
        .map_err(|e| format!("cannot read the socket directory {}: {e}", dir.display()))?;
    if !meta.is_dir() {
        return Err(format!(
            "the socket directory {} is not a directory; remove it or set PACER_SOCKET_DIR",
            dir.display()
        ));
    }
    if meta.uid() != crate::os::euid() {
        return Err(format!(
            "the socket directory {} belongs to uid {}, not to you (uid {}); set PACER_SOCKET_DIR \
             to a directory of your own",
            dir.display(),
            meta.uid(),
            crate::os::euid()
        ));
    }
    if meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| {
            format!(
                "the socket directory {} is open to other users and cannot be closed: {e}",
                dir.display()
            )
        })?;
    }
    Ok(())
}

/// The socket of migration `job` run by process `pid`: `<dir>/<job>.<pid>.sock`, with the job
/// reduced to safe characters and shortened to fit the kernel's limit.
pub fn socket_path(dir: &Path, job: &str, pid: u32) -> PathBuf {
    let mut name: String = job
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let suffix = format!(".{pid}.sock");
    let room = MAX_SOCKET_PATH
        .saturating_sub(dir.as_os_str().len() + 1 + suffix.len())
        .max(1);
    name.truncate(room);
    dir.join(format!("{name}{suffix}"))
}

/// The pid a socket's name ends with (`….<pid>.sock`).
pub fn pid_of(path: &Path) -> Option<u32> {
    let name = path.file_name()?.to_str()?.strip_suffix(".sock")?;
    name.rsplit('.').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_names_are_safe_and_short_enough() {
        let dir = Path::new("/run/user/1000/pacer");
        let p = socket_path(dir, "public.orders.amount", 4242);
        assert_eq!(
            p,
            Path::new("/run/user/1000/pacer/public.orders.amount.4242.sock")
        );
        assert_eq!(pid_of(&p), Some(4242));
        let odd = socket_path(dir, "my schema.\"Orders\"/x.col", 7);
        assert_eq!(
            odd.file_name().unwrap().to_str().unwrap(),
            "my_schema._Orders__x.col.7.sock"
        );
        let long = socket_path(dir, &"t".repeat(300), 123456);
        assert!(
            long.as_os_str().len() <= MAX_SOCKET_PATH,
            "{}",
            long.display()
        );
        assert_eq!(pid_of(&long), Some(123456));
    }

    #[test]
    fn the_directory_is_made_private() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("pacer");
        ensure_dir(&dir).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        ensure_dir(&dir).unwrap();
        assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        let file = tmp.path().join("file");
        std::fs::write(&file, "").unwrap();
        assert!(ensure_dir(&file).unwrap_err().contains("not a directory"));
    }
}
