//! Issue #26: idle, a manager that watches a directory keeps three threads
//! (main, async-io's reactor, notify's inotify loop). The looks at the files
//! run on a thread of their own that ends with the look; `blocking`'s pool
//! kept one alive for the whole run, as a look came every few seconds.
// These tests read Linux's /proc.
#![cfg(target_os = "linux")]

mod common;

use common::*;
use nix::libc;
use std::fs;
use std::time::Duration;

/// The names of `pid`'s threads.
fn threads(pid: i32) -> Vec<String> {
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return vec![];
    };
    dir.flatten()
        .filter_map(|t| fs::read_to_string(t.path().join("comm")).ok())
        .map(|name| name.trim_end().to_string())
        .collect()
}

#[test]
fn a_watching_manager_idles_on_three_threads() {
    if qemu_limit(
        "qemu-user runs a thread of its own in every emulated process: /proc counts one more",
    ) {
        return;
    }
    let s = Scratch::new("idle-threads");
    let conf = s.path("app.conf");
    fs::write(&conf, "v1").expect("write config");
    let dir = s.0.to_string_lossy().into_owned();
    // Frequent ticks: a pool thread, once made, would be in every sample.
    let mut m = Manager::plain(&[
        "--config",
        &dir,
        "--poll-interval",
        "200ms",
        "--",
        "/bin/sleep",
        "300",
    ]);
    let first = m.child_pid();
    std::thread::sleep(Duration::from_secs(2));
    let samples: Vec<Vec<String>> = (0..20)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(100));
            threads(m.pid())
        })
        .collect();
    let fewest = samples.iter().map(Vec::len).min().unwrap_or(0);
    assert!(fewest > 0, "no thread seen: {samples:?}");
    assert!(
        fewest <= 3,
        "idle with {fewest} threads at the least: {samples:?}"
    );
    assert!(
        !samples.iter().flatten().any(|t| t.starts_with("blocking")),
        "a pool thread stays: {samples:?}"
    );
    // The looks did run meanwhile: a change is seen and restarts the child.
    write_in_place(&conf, b"v2");
    assert!(
        wait_for(LONG, || children_of(m.pid())
            .first()
            .is_some_and(|&p| p != first)),
        "the change was never seen\n{}",
        m.log()
    );
    m.signal(libc::SIGTERM);
    assert_eq!(m.exit_code(), 143, "{}", m.log());
}
