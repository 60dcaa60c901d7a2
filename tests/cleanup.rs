//! The tests leave nothing behind: a tmux server of a test is gone with its socket when the
//! test ends, also when it panicked, and a test binary's scratch directory (HOME and control
//! sockets of the pacer processes it starts) is removed when the binary exits, also after a
//! failed test.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::tmux::{Tmux, process_gone};

/// Set in the environment of the child test binary that [`child_fails_after_using_its_scratch_dir`]
/// runs in.
const CHILD_ENV: &str = "PACER_TEST_CLEANUP_CHILD";

#[test]
fn a_tmux_server_and_its_socket_are_gone_after_the_test_also_when_it_panicked() {
    // A passing test: the drop asserts by itself; look once more from outside.
    let tmux = Tmux::start("sleep 60", 80, 24);
    tmux.wait_for("", Duration::from_secs(5));
    let (socket, pid) = (tmux.socket().to_path_buf(), tmux.server_pid());
    assert!(socket.exists());
    let pid = pid.expect("the server runs");
    drop(tmux);
    assert!(!socket.exists(), "{} left behind", socket.display());
    assert!(
        !socket.parent().unwrap().exists(),
        "the socket's directory was left behind"
    );
    assert!(process_gone(pid), "tmux server {pid} still runs");

    // A failing test: the panic unwinds through the guard.
    let (tx, rx) = std::sync::mpsc::channel();
    let failed = std::thread::spawn(move || {
        let tmux = Tmux::start("sleep 60", 80, 24);
        tx.send((tmux.socket().to_path_buf(), tmux.server_pid()))
            .unwrap();
        panic!("a test failing while its tmux server runs");
    })
    .join();
    assert!(failed.is_err());
    let (socket, pid) = rx.recv().unwrap();
    assert!(!socket.exists(), "{} left behind", socket.display());
    assert!(
        process_gone(pid.expect("the server ran")),
        "tmux server still runs"
    );
}

#[test]
fn the_scratch_directory_is_removed_when_the_test_binary_exits_also_after_a_failed_test() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_fails_after_using_its_scratch_dir",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .output()
        .expect("the test binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "the child test should fail:\n{stdout}"
    );
    let dir = stdout
        .lines()
        .find_map(|l| l.split_once("scratch: "))
        .map(|(_, path)| PathBuf::from(path.trim()))
        .unwrap_or_else(|| panic!("the child names its scratch dir:\n{stdout}"));
    assert!(
        dir.starts_with(std::env::temp_dir()),
        "{} is not in the temp dir",
        dir.display()
    );
    assert!(!dir.exists(), "{} was left behind", dir.display());
}

/// Only does something in the child binary of the test above: fills its scratch directory
/// as pacer does (a socket directory, an audit log under HOME), then fails.
#[test]
fn child_fails_after_using_its_scratch_dir() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let sockets = common::socket_dir();
    let state = common::scratch_dir().join(".local/state/pacer");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("audit.jsonl"), "{}\n").unwrap();
    assert!(sockets.starts_with(common::scratch_dir()));
    println!("scratch: {}", common::scratch_dir().display());
    panic!("failing on purpose, with a full scratch dir");
}
