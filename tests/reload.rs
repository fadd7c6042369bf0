//! Config reload: real files, a faithful kubelet atomic writer, the release
//! binary. Each child appends "start <pid> <config bytes>" to a log, so a
//! test counts restarts and sees which bytes each child read.
// These tests drive Linux itself (PID namespaces, /proc, signalfd).
#![cfg(target_os = "linux")]

mod common;

use common::kubelet::{AtomicWriter, Outcome};
use common::*;
use nix::libc;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Long enough after a kubelet swap that a restart from its trailing events
/// would have shown. Only the swap test waits it out: that nothing else
/// happens after a decision is the loop's logic, checked on a virtual clock
/// in the supervisor's fake-world tests.
const QUIET: Duration = Duration::from_millis(1500);

struct Rig {
    s: Scratch,
    m: Manager,
}

impl Rig {
    /// A manager watching `conf` (via `watch`, the --config value), with
    /// `extra` flags, running the recorder child.
    fn start(s: Scratch, mode: Mode, watch: &Path, conf: &Path, extra: &[&str]) -> Rig {
        let starts = s.path("starts");
        let script = recorder(conf, &starts, "exit 0");
        Rig::start_script(s, mode, watch, extra, &script)
    }

    fn start_script(s: Scratch, mode: Mode, watch: &Path, extra: &[&str], script: &str) -> Rig {
        let mut args = vec!["--config", watch.to_str().unwrap()];
        if !extra.iter().any(|a| a.starts_with("--debounce=")) {
            args.extend(["--debounce", "100ms"]);
        }
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--", "/bin/sh", "-c", script]);
        let m = Manager::start_with(
            &args,
            Opts {
                mode,
                ..Opts::default()
            },
        );
        let rig = Rig { s, m };
        assert!(rig.wait_starts(1), "first child never started");
        // The watcher starts just after the child: let it be up before the
        // test changes anything (a change before would be caught too, by
        // the catch-up check, but the log lines checked below come later).
        let ready = if extra.contains(&"--poll-only") {
            "Starting polling"
        } else {
            "Watching directory"
        };
        assert!(rig.m.wait_log(ready), "{}", rig.m.log());
        rig
    }

    fn starts(&self) -> Vec<String> {
        recorded_starts(&self.s)
    }

    fn wait_starts(&self, n: usize) -> bool {
        wait_for(LONG, || self.starts().len() >= n)
    }

    /// Waits for the n-th start and checks there was no more so far.
    fn expect_starts(&self, n: usize) {
        assert!(
            self.wait_starts(n),
            "expected {n} starts, saw {:?}\n{}",
            self.starts(),
            self.m.log()
        );
        assert_eq!(
            self.starts().len(),
            n,
            "too many starts: {:?}\n{}",
            self.starts(),
            self.m.log()
        );
    }

    /// Writes "b" to `conf`: the child is restarted on it (not signalled),
    /// and the log says `why`.
    fn change_restarts(&self, conf: &Path, why: &str) {
        write_in_place(conf, b"b");
        self.expect_starts(2);
        assert_eq!(self.last_bytes(), "b");
        assert!(self.m.log().contains(why), "{}", self.m.log());
    }

    /// The child was told of the change (it wrote "hup"), not restarted.
    fn expect_reloaded(&self) {
        assert!(
            wait_for(LONG, || self.s.read("starts").contains("hup")),
            "{}",
            self.m.log()
        );
        assert_eq!(self.starts().len(), 1, "{}", self.m.log());
    }

    fn last_bytes(&self) -> String {
        let last = self.starts().pop().unwrap_or_default();
        last.splitn(3, ' ').nth(2).unwrap_or("").trim().to_string()
    }
}

fn cm_dir(s: &Scratch) -> PathBuf {
    s.path("cm")
}

#[test]
fn configmap_swap_restarts_once_with_the_new_bytes() {
    let modes = match pid1_or_skip("configmap_swap_restarts_once_with_the_new_bytes") {
        Some(()) => vec![Mode::Pid1, Mode::Plain],
        None => vec![Mode::Plain],
    };
    for mode in modes {
        let s = Scratch::new("cm");
        let kube = AtomicWriter::new(&cm_dir(&s));
        kube.write(&[("app.conf", b"v1")]);
        let conf = cm_dir(&s).join("app.conf");
        let rig = Rig::start(s, mode, &conf, &conf, &[]);
        for line in [
            format!(
                "Config file {} is a symlink pointing to {}/..data/app.conf",
                conf.display(),
                cm_dir(&rig.s).display()
            ),
            // Watches are added one after the other (the volume's parent
            // first): wait for this one rather than read the log at once.
            format!("Watching directory: {}", cm_dir(&rig.s).display()),
            format!("Starting file watcher for {}", conf.display()),
        ] {
            assert!(
                rig.m.wait_log(&line),
                "{mode:?}: missing {line:?} in\n{}",
                rig.m.log()
            );
        }
        assert_eq!(kube.write(&[("app.conf", b"v2")]), Outcome::Swapped);
        rig.expect_starts(2);
        // The swap's trailing events (the old directory's removal) restart
        // nothing more.
        std::thread::sleep(QUIET);
        rig.expect_starts(2);
        assert_eq!(rig.last_bytes(), "v2");
        let log = rig.m.log();
        assert!(log.contains("File change detected"), "{log}");
        assert!(
            log.contains("Config file change detected, restarting child process..."),
            "{log}"
        );
        assert!(
            !log.contains("v1") && !log.contains("v2"),
            "the log never shows file content:\n{log}"
        );
    }
}

#[test]
fn three_swaps_in_a_row() {
    let s = Scratch::new("cm3");
    let kube = AtomicWriter::new(&cm_dir(&s));
    kube.write(&[("app.conf", b"v1")]);
    let conf = cm_dir(&s).join("app.conf");
    let rig = Rig::start(s, Mode::Plain, &conf, &conf, &[]);
    for (n, v) in [(2, "v2"), (3, "v3"), (4, "v4")] {
        kube.write(&[("app.conf", v.as_bytes())]);
        assert!(rig.wait_starts(n), "{}", rig.m.log());
        assert_eq!(rig.last_bytes(), v);
    }
    rig.expect_starts(4);
}

#[test]
fn other_key_updates_resyncs_and_touch_restart_nothing() {
    let s = Scratch::new("cmother");
    let kube = AtomicWriter::new(&cm_dir(&s));
    kube.write(&[("app.conf", b"mine"), ("other.conf", b"o1")]);
    let conf = cm_dir(&s).join("app.conf");
    let rig = Rig::start(s, Mode::Plain, &conf, &conf, &[]);
    // Only another key: ..data swaps, app.conf's inode changes, its bytes do not.
    assert_eq!(
        kube.write(&[("app.conf", b"mine"), ("other.conf", b"o2")]),
        Outcome::Swapped
    );
    // A resync: nothing written.
    assert_eq!(
        kube.write(&[("app.conf", b"mine"), ("other.conf", b"o2")]),
        Outcome::Unchanged
    );
    // touch: mtime only.
    let t = std::process::Command::new("touch")
        .arg(&conf)
        .status()
        .unwrap();
    assert!(t.success());
    // Each of the three was seen and judged unchanged (the decision is
    // logged): no start came of them.
    assert!(
        rig.m.wait_log_count("Config fingerprint unchanged", 1),
        "the swap was seen and judged:\n{}",
        rig.m.log()
    );
    rig.expect_starts(1);
    assert!(
        !rig.m.log().contains("File change detected"),
        "{}",
        rig.m.log()
    );
}

#[test]
fn a_config_directory_means_every_file_in_it() {
    let s = Scratch::new("cmdir");
    let kube = AtomicWriter::new(&cm_dir(&s));
    kube.write(&[("a.conf", b"a1"), ("b.conf", b"b1")]);
    let dir = cm_dir(&s);
    let conf = dir.join("a.conf");
    let rig = Rig::start(s, Mode::Plain, &dir, &conf, &[]);
    kube.write(&[("a.conf", b"a1"), ("b.conf", b"b2")]);
    rig.expect_starts(2);
    kube.write(&[("a.conf", b"a1"), ("b.conf", b"b2"), ("c.conf", b"new key")]);
    rig.expect_starts(3);
}

#[test]
fn config_missing_at_start_then_created_even_in_a_missing_directory() {
    let s = Scratch::new("missing");
    let conf = s.path("later/deeper/app.conf");
    let rig = Rig::start(s, Mode::Plain, &conf, &conf, &[]);
    assert!(rig.m.log().contains("does not exist"), "{}", rig.m.log());
    fs::create_dir_all(conf.parent().unwrap()).unwrap();
    fs::write(&conf, "born").unwrap();
    rig.expect_starts(2);
    assert_eq!(rig.last_bytes(), "born");
    // And the watch moved down: a later edit is seen too.
    write_in_place(&conf, b"grown");
    rig.expect_starts(3);
    assert_eq!(rig.last_bytes(), "grown");
}

#[test]
fn deleted_then_recreated() {
    let s = Scratch::new("deleted");
    let conf = s.path("app.conf");
    fs::write(&conf, "v1").unwrap();
    let rig = Rig::start(s, Mode::Plain, &conf, &conf, &[]);
    fs::remove_file(&conf).unwrap();
    assert!(
        rig.m.wait_log("is missing; the child keeps running"),
        "{}",
        rig.m.log()
    );
    fs::write(&conf, "v1").unwrap();
    rig.expect_starts(1);
    fs::remove_file(&conf).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    fs::write(&conf, "v2").unwrap();
    rig.expect_starts(2);
    assert_eq!(rig.last_bytes(), "v2");
}

#[test]
fn replaced_by_rename_twice_and_by_sed_i() {
    let s = Scratch::new("rename");
    let conf = s.path("app.conf");
    fs::write(&conf, "color=red").unwrap();
    let rig = Rig::start(s, Mode::Plain, &conf, &conf, &[]);
    // vim's dance: a probe file 4913, then write a temp and rename it over.
    fs::write(conf.with_file_name("4913"), "").unwrap();
    fs::remove_file(conf.with_file_name("4913")).unwrap();
    replace_by_rename(&conf, b"color=green", ".app.conf.swp");
    rig.expect_starts(2);
    replace_by_rename(&conf, b"color=blue", "app.conf~");
    rig.expect_starts(3);
    assert_eq!(rig.last_bytes(), "color=blue");
    let sed = std::process::Command::new("sed")
        .args(["-i", "s/blue/black/"])
        .arg(&conf)
        .status()
        .unwrap();
    assert!(sed.success());
    rig.expect_starts(4);
    assert_eq!(rig.last_bytes(), "color=black");
}

#[test]
fn a_burst_of_20_writes_gives_one_restart_with_the_final_bytes() {
    let s = Scratch::new("burst");
    let conf = s.path("app.conf");
    fs::write(&conf, "n=0").unwrap();
    // The default debounce (500ms, the seed's) against 20 writes in 200ms.
    let starts = s.path("starts");
    let script = recorder(&conf, &starts, "exit 0");
    let m = Manager::plain(&[
        "--config",
        conf.to_str().unwrap(),
        "--",
        "/bin/sh",
        "-c",
        &script,
    ]);
    assert!(wait_for(LONG, || s.lines("starts").len() == 1));
    // The watch comes up after the child's start: a burst begun before it
    // is caught at once, mid-burst (another test's matter). So is one begun
    // before the check the watcher's start asks for (it runs right after
    // the "Watching" lines, later on a loaded machine): a second's margin.
    assert!(m.wait_log("Watching"), "{}", m.log());
    std::thread::sleep(Duration::from_secs(1));
    for i in 1..=20 {
        write_in_place(&conf, format!("n={i}").as_bytes());
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        wait_for(LONG, || s.lines("starts").len() >= 2),
        "{}",
        m.log()
    );
    // The first restart has the final bytes: none came mid-burst.
    let lines = s.lines("starts");
    assert_eq!(lines.len(), 2, "one restart: {lines:?}\n{}", m.log());
    assert!(lines[1].ends_with("n=20"), "{lines:?}");
}

#[test]
fn polling_only_still_detects_within_the_interval() {
    let s = Scratch::new("poll");
    let conf = s.path("app.conf");
    fs::write(&conf, "p1").unwrap();
    let rig = Rig::start(
        s,
        Mode::Plain,
        &conf,
        &conf,
        &["--poll-only", "--poll-interval", "300ms"],
    );
    assert!(
        !rig.m.log().contains("Watching directory"),
        "no inotify with --poll-only"
    );
    assert!(
        rig.m.log().contains("polling every 300ms"),
        "{}",
        rig.m.log()
    );
    // Same length, same second: polling compares bytes, not mtime seconds.
    write_in_place(&conf, b"p2");
    rig.expect_starts(2);
    write_in_place(&conf, b"p3");
    rig.expect_starts(3);
    assert_eq!(rig.last_bytes(), "p3");
}

#[test]
fn a_child_ignoring_sigterm_during_a_restart_is_killed_and_replaced() {
    let s = Scratch::new("stubborn");
    let conf = s.path("app.conf");
    fs::write(&conf, "a").unwrap();
    let script = recorder(&conf, &s.path("starts"), "");
    let rig = Rig::start_script(s, Mode::Plain, &conf, &["--stop-timeout", "1s"], &script);
    write_in_place(&conf, b"b");
    rig.expect_starts(2);
    assert_eq!(rig.last_bytes(), "b");
    assert!(rig.m.log().contains("sending SIGKILL"), "{}", rig.m.log());
    // Never two children at once: the first is gone.
    let first_pid: i32 = rig.starts()[0].split(' ').nth(1).unwrap().parse().unwrap();
    assert!(!alive(first_pid));
}

#[test]
fn reload_signal_signals_without_restarting() {
    let s = Scratch::new("hup");
    let conf = s.path("app.conf");
    fs::write(&conf, "a").unwrap();
    let rig = Rig::start(s, Mode::Plain, &conf, &conf, &["--reload-signal", "HUP"]);
    write_in_place(&conf, b"b");
    assert!(rig.s.wait_contains("starts", "hup"), "{}", rig.m.log());
    rig.expect_starts(1);
    assert!(
        rig.m.log().contains("sending SIGHUP to child process"),
        "{}",
        rig.m.log()
    );
    // The same bytes again: judged unchanged, no second signal.
    let judged = rig.m.count("Config fingerprint unchanged");
    write_in_place(&conf, b"b");
    assert!(
        rig.m
            .wait_log_count("Config fingerprint unchanged", judged + 1)
    );
    assert_eq!(rig.s.read("starts").matches("hup").count(), 1);
}

#[test]
fn unrelated_files_in_the_watched_directory_restart_nothing() {
    let s = Scratch::new("noise");
    let conf = s.path("app.conf");
    fs::write(&conf, "a").unwrap();
    let rig = Rig::start(s, Mode::Plain, &conf, &conf, &["--log-level", "info"]);
    let noise = rig.s.path("app.log");
    for i in 0..500 {
        write_in_place(&noise, format!("line {i}\n").as_bytes());
    }
    // Then a real change: the next start is for it, with its bytes.
    write_in_place(&conf, b"b");
    rig.expect_starts(2);
    assert_eq!(rig.last_bytes(), "b");
    assert_eq!(rig.m.count("File change detected"), 1, "{}", rig.m.log());
}

/// A manager with no config running `script`, which can read its own start
/// count as $n (each start appends its time to the starts file).
fn exits(script: &str, extra: &[&str]) -> (Manager, Scratch) {
    let s = Scratch::new("policy");
    let mut args = vec!["--config="];
    args.extend_from_slice(extra);
    let starts = s.path("starts");
    let script = format!(
        "date +%s.%N >> {0}; n=$(wc -l < {0}); {script}",
        starts.display()
    );
    args.extend_from_slice(&["--", "/bin/sh", "-c", &script]);
    (Manager::plain(&args), s)
}

fn start_times(s: &Scratch) -> Vec<f64> {
    s.lines("starts")
        .iter()
        .map(|l| l.trim().parse().unwrap())
        .collect()
}

#[test]
fn restart_never_exits_with_the_childs_code() {
    let (mut m, s) = exits("exit 4", &["--restart", "never"]);
    assert_eq!(m.exit_code(), 4);
    assert_eq!(s.lines("starts").len(), 1);
}

#[test]
fn restart_on_failure_backs_off_and_stops_on_success() {
    // Fails twice, then succeeds.
    let (mut m, s) = exits(
        "[ $n -ge 3 ] && exit 0; exit 1",
        &["--restart", "on-failure"],
    );
    assert_eq!(m.exit_code(), 0);
    let t = start_times(&s);
    assert_eq!(t.len(), 3, "{}", m.log());
    // Backoff 1s then 2s: lower bounds only (load only makes gaps longer).
    assert!(t[1] - t[0] >= 0.9, "{t:?}");
    assert!(t[2] - t[1] >= 1.9, "{t:?}");
    let log = m.log();
    assert!(
        log.contains("Restarting child process in 1s")
            && log.contains("Restarting child process in 2s"),
        "{log}"
    );
}

#[test]
fn restart_always_restarts_success_and_max_restarts_gives_up() {
    let (mut m, s) = exits("exit 0", &["--restart", "always", "--max-restarts", "2"]);
    assert_eq!(m.exit_code(), 0);
    assert_eq!(start_times(&s).len(), 3, "{}", m.log());
    assert!(
        m.log().contains("giving up after 2 restarts"),
        "{}",
        m.log()
    );
    let (mut m, s) = exits(
        "exit 6",
        &["--restart", "on-failure", "--max-restarts", "1"],
    );
    assert_eq!(m.exit_code(), 6, "gives up with the child's code");
    assert_eq!(start_times(&s).len(), 2);
}

#[test]
fn sigterm_during_a_backoff_exits_at_once() {
    let (mut m, s) = exits("exit 3", &["--restart", "always"]);
    // After the second failure the backoff is 2s.
    assert!(m.wait_log("Restarting child process in 2s"), "{}", m.log());
    m.signal(libc::SIGTERM);
    assert_eq!(m.exit_code(), 3);
    assert_eq!(start_times(&s).len(), 2, "nothing started after SIGTERM");
    assert!(
        m.log().contains("during restart backoff, exiting"),
        "{}",
        m.log()
    );
}

/// Starts the manager with `--config target` in a private mount namespace
/// where `source` is bind-mounted on `target`; None where no mount
/// namespace can be made.
fn with_bind_mount(source: &Path, target: &Path) -> Option<Manager> {
    let mut launcher = mount_namespace()?;
    launcher.extend([
        "sh".into(),
        "-c".into(),
        format!(
            "mount --bind {} {} && exec \"$0\" \"$@\"",
            source.display(),
            target.display()
        ),
        BIN.into(),
    ]);
    Some(Manager::start_with(
        &[
            "--config",
            target.to_str().unwrap(),
            "--",
            "/bin/sleep",
            "60",
        ],
        Opts {
            mode: Mode::Plain,
            launcher: Some(launcher),
            ..Opts::default()
        },
    ))
}

#[test]
fn a_subpath_mount_is_warned_about_and_a_mounted_directory_is_not() {
    // A Kubernetes subPath mount is a bind mount of one file: the kubelet
    // never updates it. A mounted directory (a ConfigMap volume) is fine.
    let s = Scratch::new("subpath");
    let (src, dst) = (s.path("source.conf"), s.path("app.conf"));
    fs::write(&src, "a").unwrap();
    fs::write(&dst, "").unwrap();
    let Some(m) = with_bind_mount(&src, &dst) else {
        return;
    };
    assert!(m.wait_log("is itself a mount point"), "{}", m.log());
    assert!(m.log().contains("WARN"), "{}", m.log());

    let (src, dst) = (s.path("source.d"), s.path("conf.d"));
    fs::create_dir(&src).unwrap();
    fs::create_dir(&dst).unwrap();
    fs::write(src.join("a.conf"), "a").unwrap();
    let m = with_bind_mount(&src, &dst).expect("worked a moment ago");
    assert!(m.wait_log("Watching directory"), "{}", m.log());
    assert!(
        !m.log().contains("mount point"),
        "a false subPath warning for a mounted directory:\n{}",
        m.log()
    );
}

#[test]
fn debounce_max_bounds_how_long_a_busy_directory_postpones_a_change() {
    let s = Scratch::new("dmax");
    let conf = s.path("app.conf");
    fs::write(&conf, "v1").unwrap();
    // A quiet period that never comes: only --debounce-max lets it act.
    let rig = Rig::start(
        s,
        Mode::Plain,
        &conf,
        &conf,
        &["--debounce=1h", "--debounce-max=300ms", "--poll-interval=0"],
    );
    // A heartbeat in the same directory all along.
    let beat = rig.s.path("heartbeat");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = fs::write(&beat, n.to_string());
                n += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    write_in_place(&conf, b"v2");
    let ok = rig.wait_starts(2);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = writer.join();
    assert!(
        ok,
        "the change waited for a quiet that never came\n{}",
        rig.m.log()
    );
    assert_eq!(rig.last_bytes(), "v2");
}

#[test]
fn a_far_future_mtime_and_huge_durations_never_abort() {
    let s = Scratch::new("mtime");
    let conf = s.path("app.conf");
    fs::write(&conf, "v1").unwrap();
    let rig = Rig::start(s, Mode::Plain, &conf, &conf, &["--poll-interval=100ms"]);
    // Anyone who can write the file can set its mtime to the maximum
    // (the file system clamps it to what it can store).
    let st = std::process::Command::new("touch")
        .args(["-d", "@9223372036854775807"])
        .arg(&conf)
        .status()
        .expect("touch");
    if !st.success() {
        // Refused outright by this file system: the largest it takes.
        assert!(
            std::process::Command::new("touch")
                .args(["-d", "@253402300799"])
                .arg(&conf)
                .status()
                .expect("touch")
                .success()
        );
    }
    // Several poll ticks go by; then a real change still applies.
    std::thread::sleep(Duration::from_millis(500));
    write_in_place(&conf, b"v2");
    assert!(rig.wait_starts(2), "{}", rig.m.log());
    let mut m = rig.m;
    assert!(m.alive());

    for flag in [
        "--poll-interval",
        "--stop-timeout",
        "--debounce",
        "--stop-delay",
    ] {
        let mut m = Manager::plain(&[flag, "3000000000000000h", "--", "/bin/true"]);
        assert_eq!(m.exit_code(), 2, "{flag}: {}", m.log());
        assert!(m.log().contains("too large"), "{}", m.log());
    }
    m.signal(libc::SIGTERM);
    assert_eq!(m.exit_code(), 0);
}

#[test]
fn nested_configmap_items_are_seen_after_every_swap_by_inotify_alone() {
    // `items: [{key: site, path: sites/default.conf}]`: the mount holds
    // `sites -> ..data/sites`, a symlink to a directory, replaced whole at
    // every update.
    for (poll, watch_dir) in [("0", true), ("0", false), ("200ms", true)] {
        let s = Scratch::new("nested");
        let kube = AtomicWriter::new(&cm_dir(&s));
        kube.write(&[("sites/default.conf", b"v1"), ("app.conf", b"a")]);
        let nested = cm_dir(&s).join("sites/default.conf");
        let watch = if watch_dir {
            cm_dir(&s)
        } else {
            nested.clone()
        };
        let poll_flag = format!("--poll-interval={poll}");
        let rig = Rig::start(s, Mode::Plain, &watch, &nested, &[&poll_flag]);
        for (n, bytes) in [(2, &b"v2"[..]), (3, b"v3"), (4, b"v4")] {
            kube.write(&[("sites/default.conf", bytes), ("app.conf", b"a")]);
            assert!(
                rig.wait_starts(n),
                "poll {poll}, watching {}: update {} unseen\n{}",
                watch.display(),
                n - 1,
                rig.m.log()
            );
            assert_eq!(rig.last_bytes(), String::from_utf8_lossy(bytes));
        }
    }
}

#[test]
fn a_replaced_directory_and_a_switched_symlink_are_rewatched_by_inotify_alone() {
    // mv conf conf.old; mkdir conf; the new file in the new directory.
    let s = Scratch::new("replaced");
    let dir = s.path("conf");
    fs::create_dir(&dir).unwrap();
    let conf = dir.join("app.conf");
    fs::write(&conf, "v1").unwrap();
    let rig = Rig::start(s, Mode::Plain, &conf, &conf, &["--poll-interval=0"]);
    for n in 2..=3 {
        let old = rig.s.path(&format!("conf.old{n}"));
        fs::rename(&dir, &old).unwrap();
        fs::create_dir(&dir).unwrap();
        fs::write(&conf, format!("v{n}")).unwrap();
        assert!(
            rig.wait_starts(n),
            "replacement {n} unseen\n{}",
            rig.m.log()
        );
        assert_eq!(rig.last_bytes(), format!("v{n}"));
    }

    // current -> releases/rN, switched like `ln -sfn` (a new link renamed
    // over the old one).
    let s = Scratch::new("switched");
    let releases = s.path("releases");
    for r in 1..=3 {
        fs::create_dir_all(releases.join(format!("r{r}"))).unwrap();
        fs::write(releases.join(format!("r{r}/app.conf")), format!("v{r}")).unwrap();
    }
    std::os::unix::fs::symlink("releases/r1", s.path("current")).unwrap();
    let conf = s.path("current/app.conf");
    let rig = Rig::start(s, Mode::Plain, &conf, &conf, &["--poll-interval=0"]);
    for r in 2..=3 {
        let tmp = rig.s.path("current.tmp");
        std::os::unix::fs::symlink(format!("releases/r{r}"), &tmp).unwrap();
        fs::rename(&tmp, rig.s.path("current")).unwrap();
        assert!(rig.wait_starts(r), "switch to r{r} unseen\n{}", rig.m.log());
        assert_eq!(rig.last_bytes(), format!("v{r}"));
    }
}

/// Issue #18: deleting a watched directory made notify log
/// `WARN: Unable to remove the path from the watches: Error { kind:
/// WatchNotFound, … }`, a watch the kernel had already removed. At info
/// nothing of it shows now, and at debug it reads as a sentence, not a
/// Debug dump.
#[test]
fn a_deleted_config_directory_warns_about_nothing_and_dumps_no_error() {
    for level in ["info", "debug"] {
        let s = Scratch::new("rmdir");
        let dir = s.path("conf");
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("app.conf"), "v1").unwrap();
        let script = recorder(&dir.join("app.conf"), &s.path("starts"), "exit 0");
        let mut m = Manager::plain(&[
            "--log-level",
            level,
            "--config",
            dir.to_str().unwrap(),
            "--",
            "/bin/sh",
            "-c",
            &script,
        ]);
        assert!(m.wait_log("Watching directory"), "{}", m.log());
        assert!(s.wait_contains("starts", "start"), "{}", m.log());
        // The watcher comes up after the child, and one look follows it (a
        // change made meanwhile is caught): a removal racing that look is
        // another matter (see the closing note of this change). Let it end;
        // under qemu-user it takes some hundreds of milliseconds.
        std::thread::sleep(Duration::from_secs(2));
        // Twice: gone, back, gone again (each removal is a DELETE in the
        // parent and a DELETE_SELF in the directory: two removals of one
        // watch in notify).
        // The directory's own line: one for its file may come too, when
        // the directory is back before the file is.
        let gone = format!("{} does not exist (yet)", dir.display());
        for round in 1..=2 {
            let watching = m.count("Watching directory");
            fs::remove_dir_all(&dir).unwrap();
            assert!(wait_for(LONG, || m.count(&gone) >= round), "{}", m.log());
            fs::create_dir(&dir).unwrap();
            fs::write(dir.join("app.conf"), "v1").unwrap();
            assert!(
                wait_for(LONG, || m.count("Watching directory") >= watching + 2),
                "{}",
                m.log()
            );
        }
        m.signal(libc::SIGTERM);
        m.exit_code();
        let log = m.log();
        // qemu-user refuses PR_SET_CHILD_SUBREAPER: that WARN is the
        // emulator's, not the watcher's.
        let warned = log
            .lines()
            .any(|l| l.contains("WARN") && !l.contains("child subreaper"));
        assert!(!warned, "at {level}: {log}");
        assert!(!log.contains("Error {"), "at {level}: {log}");
    }
}

/// Issue 24, item 7: a child that blocks the reload signal and reads it
/// (sigwait, a signalfd: tini -s -g, dumb-init, many daemons) shows it in
/// `SigBlk`, not `SigCgt`: it was restarted on every change ("does not
/// handle SIGHUP"), dropping its connections. A blocked signal stays
/// pending and never kills: it is sent, and the child is not restarted.
#[test]
fn a_child_that_blocks_the_reload_signal_and_reads_it_is_reloaded() {
    if !require_tool("python3", "python3") {
        return;
    }
    if qemu_limit(
        "an emulated manager reads a native child's /proc/<pid>/syscall, whose system call numbers are the host's, not its own",
    ) {
        return;
    }
    let s = Scratch::new("hup-blocked");
    let conf = s.path("app.conf");
    fs::write(&conf, "a").unwrap();
    let py = s.path("sigwait.py");
    fs::write(
        &py,
        "import os, signal, sys\n\
         waited = {signal.SIGHUP, signal.SIGTERM}\n\
         signal.pthread_sigmask(signal.SIG_BLOCK, waited)\n\
         out = open(sys.argv[1], 'a', buffering=1)\n\
         out.write('start %d\\n' % os.getpid())\n\
         while signal.sigwait(waited) == signal.SIGHUP:\n\
         \x20   out.write('hup %d\\n' % os.getpid())\n",
    )
    .unwrap();
    let script = format!(
        "exec python3 {} {}",
        py.display(),
        s.path("starts").display()
    );
    let rig = Rig::start_script(s, Mode::Plain, &conf, &["--reload-signal", "HUP"], &script);
    let pid = rig.starts()[0].split(' ').nth(1).unwrap().to_string();
    write_in_place(&conf, b"b");
    assert!(
        rig.s.wait_contains("starts", &format!("hup {pid}")),
        "the same child got HUP\n{}",
        rig.m.log()
    );
    write_in_place(&conf, b"c");
    assert!(
        wait_for(LONG, || rig.s.read("starts").matches("hup").count() == 2),
        "{}",
        rig.m.log()
    );
    rig.expect_starts(1);
    assert!(!rig.m.log().contains("restarting it"), "{}", rig.m.log());
}

/// The other side of item 7: a child that ignores the reload signal
/// (`SigIgn`) would do nothing with it: restarted, with a line that says so.
/// A `--signal-to group --reload-signal HUP` manager whose child, the
/// group's leader, handles HUP and runs `worker` (a shell command) beside
/// it in its group; the config holds "a".
fn group_with_worker(name: &str, worker: &str, extra: &[&str]) -> (Rig, PathBuf) {
    let s = Scratch::new(name);
    let conf = s.path("app.conf");
    fs::write(&conf, "a").unwrap();
    let script = format!(
        "echo \"start $$ $(cat {conf})\" >> {out}; trap 'echo hup >> {out}' HUP; \
         trap 'echo usr1 >> {out}' USR1; trap 'exit 0' TERM; {worker} & w=$!; while :; do wait $w; done",
        conf = conf.display(),
        out = s.path("starts").display()
    );
    let mut flags = vec!["--reload-signal", "HUP", "--signal-to", "group"];
    flags.extend_from_slice(extra);
    let rig = Rig::start_script(s, Mode::Plain, &conf, &flags, &script);
    // The worker has set its disposition before the change.
    std::thread::sleep(Duration::from_millis(500));
    (rig, conf)
}

/// Found by a hostile test: with `--signal-to group` only the leader's
/// handlers were looked at, and the reload signal then killed a worker of
/// its group that keeps the default action.
#[test]
fn with_signal_to_group_a_member_without_a_handler_means_a_restart() {
    let (rig, conf) = group_with_worker("hup-group", "sleep 1000", &[]);
    rig.change_restarts(&conf, "does not handle SIGHUP");
}

/// Found by review: a member that ignores the reload signal (started under
/// nohup, say) is unharmed by it, and the leader reloads: no restart.
#[test]
fn with_signal_to_group_a_member_that_ignores_it_does_not_stop_the_reload() {
    let (rig, conf) = group_with_worker(
        "hup-group-ign",
        "sh -c \"trap '' HUP; exec sleep 1000\"",
        &[],
    );
    write_in_place(&conf, b"b");
    rig.expect_reloaded();
}

/// Found in CI: a worker killed by a signal forwarded to the group a moment
/// before a change is still in /proc while the kernel tears it down, and
/// its default action vetoed the reload. A member that is already dying
/// cannot be harmed by the reload signal. The worker holds 2 GiB so that
/// its teardown lasts long enough (a quarter of a second here) for the
/// change to land inside it.
#[test]
fn with_signal_to_group_a_member_already_dying_does_not_stop_the_reload() {
    const MIB: u64 = 2048;
    let worker = format!("perl -e '$m = \"x\" x ({MIB} << 20); sleep 1000'");
    let (rig, conf) = group_with_worker("hup-group-dying", &worker, &["--debounce=0"]);
    let leader = rig.m.child_pid();
    let full = || {
        children_of(leader)
            .into_iter()
            .any(|w| vm_rss_kib(w) > MIB * 1000)
    };
    assert!(wait_for(LONG, full), "the worker never filled its memory");
    // A forwarded USR1 kills the worker (default action); the leader
    // traps it. The change lands while the worker's memory is freed.
    rig.m.signal(libc::SIGUSR1);
    assert!(
        rig.m.wait_log("Sent SIGUSR1 to process group"),
        "{}",
        rig.m.log()
    );
    replace_by_rename(&conf, b"b", "app.conf.tmp");
    rig.expect_reloaded();
    assert!(!rig.m.log().contains("does not handle"), "{}", rig.m.log());
}

/// Found by a hostile test: a process whose main thread ended
/// (`pthread_exit`) while another runs shows its leader as a zombie in
/// exit, yet lives, and the reload signal's default action kills it. It
/// was taken for dying and sent the signal; it is asked like any other.
#[test]
#[ignore = "needs python3: apt-get install python3"]
fn a_child_whose_main_thread_ended_is_still_asked_about_the_reload_signal() {
    if !require_tool("python3", "python3") {
        return;
    }
    let s = Scratch::new("zombie-leader");
    let conf = s.path("app.conf");
    fs::write(&conf, "a").unwrap();
    let script = format!(
        "echo \"start $$ $(cat {conf})\" >> {out}; exec python3 -c '{py}'",
        conf = conf.display(),
        out = s.path("starts").display(),
        py = "import ctypes, threading, time; \
              threading.Thread(target=time.sleep, args=(1000,)).start(); \
              ctypes.CDLL(None).pthread_exit(None)",
    );
    let rig = Rig::start_script(s, Mode::Plain, &conf, &["--reload-signal", "HUP"], &script);
    let child = rig.m.child_pid();
    let leader_gone = || {
        fs::read_to_string(format!("/proc/{child}/stat"))
            .is_ok_and(|st| st.rfind(')').is_some_and(|i| st[i + 2..].starts_with('Z')))
    };
    assert!(wait_for(LONG, leader_gone), "the main thread never ended");
    rig.change_restarts(&conf, "does not handle SIGHUP");
}

/// Found by a hostile test: a member of the group that is the init of a
/// PID namespace of its own, at the default action, vetoed a group reload;
/// but the kernel never applies a default action to a namespace's init for
/// a signal from outside it: the restart was for nothing.
#[test]
#[ignore = "needs python3: apt-get install python3"]
fn with_signal_to_group_a_namespace_init_in_the_group_does_not_stop_the_reload() {
    if !require_tool("python3", "python3") {
        return;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 && cannot_run("a new PID namespace needs root") {
        return;
    }
    let s = Scratch::new("hup-group-nsinit");
    let conf = s.path("app.conf");
    fs::write(&conf, "a").unwrap();
    let out = s.path("starts");
    // The leader handles HUP; its child is the init of a new PID namespace
    // (unshare, then fork) with HUP at its default action.
    let py = format!(
        "import ctypes, os, signal, time\n\
         log = lambda l: open({out:?}, 'a').write(l + '\\n')\n\
         signal.signal(signal.SIGHUP, lambda *a: log('hup'))\n\
         signal.signal(signal.SIGTERM, lambda *a: os._exit(0))\n\
         assert ctypes.CDLL(None, use_errno=True).unshare(0x20000000) == 0\n\
         if os.fork() == 0:\n\
         \x20   ctypes.CDLL(None).prctl(1, 9)\n\
         \x20   signal.signal(signal.SIGHUP, signal.SIG_DFL)\n\
         \x20   signal.signal(signal.SIGTERM, signal.SIG_DFL)\n\
         \x20   time.sleep(1000)\n\
         log('start %d a' % os.getpid())\n\
         while True: time.sleep(1)\n",
        out = out.display().to_string()
    );
    fs::write(s.path("nsinit.py"), py).unwrap();
    let script = format!("exec python3 {}", s.path("nsinit.py").display());
    let extra = ["--reload-signal", "HUP", "--signal-to", "group"];
    let rig = Rig::start_script(s, Mode::Plain, &conf, &extra, &script);
    let leader = rig.m.child_pid();
    assert!(
        wait_for(LONG, || !children_of(leader).is_empty()),
        "no namespace init"
    );
    write_in_place(&conf, b"b");
    rig.expect_reloaded();
}

#[test]
fn a_child_that_ignores_the_reload_signal_is_restarted_and_told_why() {
    let s = Scratch::new("hup-ignored");
    let conf = s.path("app.conf");
    fs::write(&conf, "a").unwrap();
    let script = TrapChild::new(&s.path("starts"))
        .on_start(&format!("start $$ $(cat {})", conf.display()))
        .on("HUP", "")
        .on_term("exit 0")
        .script();
    let rig = Rig::start_script(s, Mode::Plain, &conf, &["--reload-signal", "HUP"], &script);
    rig.change_restarts(&conf, "ignores SIGHUP");
}
