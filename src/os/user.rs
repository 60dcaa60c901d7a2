//! The user pacer runs as, other users' ids, and the host's name.

use std::ffi::CString;

/// This process's effective user id.
pub(crate) fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Whether pacer runs as root (effective uid 0).
pub(crate) fn is_root() -> bool {
    euid() == 0
}

/// Who runs pacer, for the audit log: `$USER`, else the numeric effective uid.
pub(crate) fn user_name() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| euid().to_string())
}

/// The uid and gid of the user `name` (from the system's user database: /etc/passwd, NSS,
/// or macOS's directory services), or None when there is no such user.
pub(crate) fn user_ids(name: &str) -> Option<(u32, u32)> {
    let name = CString::new(name).ok()?;
    let mut size = 16 * 1024;
    loop {
        let mut buf = vec![0 as libc::c_char; size];
        // SAFETY: a zeroed passwd is a valid out-parameter (plain integers and pointers).
        let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call, and `buf` outlives it; only the ids,
        // copied out below, are read from `entry`.
        let rc = unsafe {
            libc::getpwnam_r(
                name.as_ptr(),
                &mut entry,
                buf.as_mut_ptr(),
                buf.len(),
                &mut found,
            )
        };
        if rc == libc::ERANGE && size < 1024 * 1024 {
            size *= 4;
            continue;
        }
        if rc != 0 || found.is_null() {
            return None;
        }
        return Some((entry.pw_uid, entry.pw_gid));
    }
}

/// This host's name (`hostname`), or `unknown-host`.
pub(crate) fn hostname() -> String {
    sysinfo::System::host_name()
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_uid_0_and_unknown_users_have_no_ids() {
        assert_eq!(user_ids("root").map(|(uid, _)| uid), Some(0));
        assert_eq!(user_ids("no-such-user-pacer-test"), None);
        assert_eq!(user_ids("bad\0name"), None);
    }

    #[test]
    fn the_host_name_is_the_kernels() {
        let name = hostname();
        assert!(!name.is_empty());
        #[cfg(target_os = "linux")]
        assert_eq!(
            name,
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .unwrap()
                .trim()
        );
    }
}
