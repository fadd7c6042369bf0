//! Faults and hostile input: escaping daemons, no inotify, FIFOs, dangling
//! symlinks, huge and unreadable config files. The manager must name the
//! problem, keep the child, and never hang.
// These tests drive Linux itself (PID namespaces, /proc, signalfd).
#![cfg(target_os = "linux")]

mod common;

use common::*;
use nix::libc;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// A plain manager watching `conf` (100 ms debounce) and running `script`.
fn watching(conf: &Path, script: &str) -> Manager {
    Manager::plain(&watching_args(conf, script))
}

/// The arguments `watching` gives the manager.
fn watching_args<'a>(conf: &'a Path, script: &'a str) -> Vec<&'a str> {
    sh_args(
        &["--config", conf.to_str().unwrap(), "--debounce", "100ms"],
        script,
    )
}

fn starts(s: &Scratch) -> usize {
    s.lines("starts").len()
}

#[test]
fn a_daemon_escaping_the_group_is_reaped_and_reported() {
    for mode in [Mode::Pid1, Mode::Plain] {
        if mode == Mode::Pid1 && pid1_or_skip("a_daemon_escaping_the_group").is_none() {
            continue;
        }
        if mode == Mode::Plain && qemu_limit(QEMU_NO_SUBREAPER) {
            continue;
        }
        let s = Scratch::new("daemon");
        // A daemon in its own session that exits soon (reaped by us) and
        // one that stays (reported at exit).
        let script = format!(
            "setsid sh -c 'sleep 0.2' & setsid sh -c 'echo $$ > {0}; exec sleep 300' & \
             while [ ! -s {0} ]; do sleep 0.01; done; sleep 0.5; exit 0",
            s.path("daemon").display()
        );
        let mut m = Manager::start_with(
            &["--config=", "--", "/bin/sh", "-c", &script],
            Opts {
                mode,
                ..Opts::default()
            },
        );
        assert_eq!(m.exit_code(), 0, "{mode:?}");
        let log = m.log();
        assert!(log.contains("Reaped"), "{mode:?}: {log}");
        assert!(
            log.contains("left outside the child's process group"),
            "{mode:?}: {log}"
        );
        assert!(log.contains("(sleep)"), "{mode:?}: {log}");
        if mode == Mode::Plain {
            let daemon: i32 = s.read("daemon").trim().parse().unwrap();
            // SAFETY: kill(2) on the test's own leftover.
            unsafe { libc::kill(daemon, libc::SIGKILL) };
        }
    }
}

/// `unshare --user --map-root-user sh -c 'echo 0 > /proc/sys/user/LIMIT; exec BIN …'`:
/// inotify limits are per user namespace.
fn without_inotify(limit: &str) -> Option<Vec<String>> {
    let probe = Command::new("unshare")
        .args(["--user", "--map-root-user", "sh", "-c"])
        .arg(format!("echo 0 > /proc/sys/user/{limit}"))
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        cannot_run(&format!(
            "cannot set {limit} in a user namespace here (unshare --user --map-root-user refused)"
        ));
        return None;
    }
    Some(vec![
        "unshare".into(),
        "--user".into(),
        "--map-root-user".into(),
        "sh".into(),
        "-c".into(),
        format!("echo 0 > /proc/sys/user/{limit} && exec \"$0\" \"$@\""),
        BIN.into(),
    ])
}

#[test]
fn without_inotify_polling_takes_over_loudly_and_changes_still_apply() {
    if qemu_limit(QEMU_NO_SUBREAPER) {
        return; // a second WARN, about the subreaper, is printed there
    }
    for (limit, expect) in [
        ("max_inotify_instances", "inotify unavailable"),
        ("max_inotify_watches", "inotify watch limit reached"),
    ] {
        let Some(launcher) = without_inotify(limit) else {
            return;
        };
        let s = Scratch::new("noinotify");
        let conf = s.path("app.conf");
        fs::write(&conf, "v1").unwrap();
        let script = recorder(&conf, &s.path("starts"), "exit 0");
        let conf_s = conf.to_str().unwrap();
        let flags = [
            "--config",
            conf_s,
            "--poll-interval",
            "300ms",
            "--debounce",
            "50ms",
        ];
        let m = Manager::start_with(
            &sh_args(&flags, &script),
            Opts {
                launcher: Some(launcher),
                ..Opts::plain()
            },
        );
        assert!(wait_for(LONG, || starts(&s) == 1), "{}", m.log());
        // The watcher starts after the child, off the loop: its warning
        // comes a moment after the start.
        assert!(m.wait_log(expect), "{limit}: {}", m.log());
        assert!(
            m.wait_log("falling back to polling every 300ms"),
            "{}",
            m.log()
        );
        assert_eq!(m.count("WARN"), 1, "one WARN: {}", m.log());
        write_in_place(&conf, b"v2");
        assert!(wait_for(LONG, || starts(&s) == 2), "{limit}: {}", m.log());
        assert!(s.lines("starts")[1].ends_with("v2"));
    }
}

#[test]
fn a_fifo_as_config_never_blocks_the_loop() {
    let s = Scratch::new("fifo");
    let conf = s.path("app.conf");
    let made = Command::new("mkfifo").arg(&conf).status().unwrap();
    assert!(made.success());
    let mut m = Manager::plain(&[
        "--config",
        conf.to_str().unwrap(),
        "--poll-interval",
        "200ms",
        "--",
        "/bin/sleep",
        "300",
    ]);
    assert!(m.wait_log("Child process started"), "{}", m.log());
    assert!(m.wait_log("is not a regular file"), "{}", m.log());
    // Polling ticks keep stat-ing it; the loop still answers signals.
    std::thread::sleep(Duration::from_millis(600));
    sigterm_exits(&mut m, 143, 10);
}

#[test]
fn a_dangling_symlink_is_missing_until_its_target_appears() {
    let s = Scratch::new("dangling");
    let conf = s.path("app.conf");
    let target = s.path("real.conf");
    std::os::unix::fs::symlink(&target, &conf).unwrap();
    let script = recorder(&conf, &s.path("starts"), "exit 0");
    let m = watching(&conf, &script);
    assert!(wait_for(LONG, || starts(&s) == 1));
    // The watcher starts after the child and says what the path is then:
    // wait for its last line rather than read the log at once.
    assert!(m.wait_log("is a symlink pointing to"), "{}", m.log());
    assert!(m.wait_log("Starting polling every"), "{}", m.log());
    fs::write(&target, "arrived").unwrap();
    assert!(wait_for(LONG, || starts(&s) == 2), "{}", m.log());
    assert!(s.lines("starts")[1].ends_with("arrived"));
}

#[test]
fn a_100_mb_config_is_hashed_streaming_with_flat_memory() {
    if qemu_limit("/proc/<pid>/status VmRSS under qemu-user is the emulator's, not the guest's") {
        return;
    }
    let s = Scratch::new("huge");
    let conf = s.path("big.conf");
    let chunk = vec![b'x'; 1 << 20];
    {
        use std::io::Write;
        let mut f = fs::File::create(&conf).unwrap();
        for _ in 0..100 {
            f.write_all(&chunk).unwrap();
        }
    }
    let script = recorder(&conf, &s.path("starts"), "exit 0");
    let m = watching(&conf, &script);
    assert!(wait_for(LONG, || starts(&s) == 1));
    // Change one byte in the middle: same length, new hash.
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = fs::OpenOptions::new().write(true).open(&conf).unwrap();
        f.seek(SeekFrom::Start(50 << 20)).unwrap();
        f.write_all(b"y").unwrap();
    }
    assert!(wait_for(LONG, || starts(&s) == 2), "{}", m.log());
    let rss = vm_rss_kib(m.pid());
    assert!(
        rss > 0 && rss < 8 * 1024,
        "the manager's RSS after hashing 100 MB several times: {rss} KiB"
    );
}

#[test]
fn an_unreadable_config_is_named_and_the_child_kept() {
    let s = Scratch::new("unreadable");
    let conf = s.path("secret.conf");
    fs::write(&conf, "v1").unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&s.0, fs::Permissions::from_mode(0o755)).unwrap();
    let script = recorder(&conf, &s.path("starts"), "exit 0");
    let args = watching_args(&conf, &script);
    // Mode 000. Root reads everything anyway: then the manager runs in a
    // fresh user namespace, whose capabilities do not cover host-owned files.
    // SAFETY: geteuid(2) cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let launcher = if root {
        let ok = Command::new("unshare")
            .args(["--user", "true"])
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            cannot_run(
                "running as root and no user namespace can be made (unshare --user refused)",
            );
            return;
        }
        Some(vec!["unshare".to_string(), "--user".into(), BIN.into()])
    } else {
        None
    };
    fs::set_permissions(&conf, fs::Permissions::from_mode(0o000)).unwrap();
    let mut m = Manager::start_with(
        &args,
        Opts {
            launcher,
            ..Opts::plain()
        },
    );
    assert!(m.wait_log("Child process started"), "{}", m.log());
    assert!(m.wait_log("Cannot read config file"), "{}", m.log());
    assert!(m.log().contains("Permission denied"), "{}", m.log());
    assert!(m.log().contains(conf.to_str().unwrap()), "{}", m.log());
    std::thread::sleep(Duration::from_millis(300));
    assert!(m.alive(), "the child and the manager keep running");
    assert!(!m.log().contains("restarting"), "{}", m.log());
    fs::set_permissions(&conf, fs::Permissions::from_mode(0o644)).unwrap();
}

/// A plain manager at trace level watching `conf` (a directory, given
/// `a.conf`) with `flags`, its log file written into `log_dir`, running a
/// child that writes "start" then "ready" to "got". Returns once the child
/// is ready and the directory watched.
fn tracing_with_log_in(s: &Scratch, conf: &Path, log_dir: &Path, flags: &[&str]) -> Manager {
    fs::create_dir_all(conf).unwrap();
    fs::write(conf.join("a.conf"), "a").unwrap();
    let child = TrapChild::new(&s.path("got"))
        .on_start("start")
        .on_term("exit 0")
        .ready("ready")
        .script();
    let mut args = vec!["-vvvv", "--config", conf.to_str().unwrap()];
    args.extend(flags);
    let m = Manager::start_with(
        &sh_args(&args, &child),
        Opts {
            log_in: Some(log_dir),
            ..Opts::plain()
        },
    );
    assert!(s.wait_contains("got", "ready"), "the child never started");
    assert!(m.wait_log("Watching directory"));
    m
}

/// SIGTERM to the manager: it exits with `code` within `limit` seconds.
fn sigterm_exits(m: &mut Manager, code: i32, limit: u64) {
    m.signal(libc::SIGTERM);
    let got = m.wait_code(Duration::from_secs(limit));
    assert_eq!(got, Some(code), "SIGTERM; log:\n{}", m.log());
}

#[test]
fn a_trace_log_next_to_the_watched_directory_does_not_feed_itself() {
    // The log file beside the watched directory: each line written is an
    // inotify event there. At trace level notify's line per event, and
    // ours, were each the next event: the log grew by about 40 MB/s, the
    // child never started, and SIGTERM waited out the stop timeout.
    let s = Scratch::new("log-feedback");
    let mut m = tracing_with_log_in(&s, &s.path("cfg/src"), &s.path("cfg"), &[]);
    std::thread::sleep(Duration::from_secs(1));
    let size = || fs::metadata(&m.log_path).map_or(0, |md| md.len());
    let before = size();
    std::thread::sleep(Duration::from_secs(1));
    let grown = size() - before;
    assert!(
        grown < 100_000,
        "the log grew {grown} bytes in a second, idle"
    );
    sigterm_exits(&mut m, 0, 5);
}

#[test]
fn a_log_written_inside_the_config_directory_is_not_config() {
    // The log file inside the watched directory: its lines must neither be
    // a change (a restart each time) nor an event worth a line.
    let s = Scratch::new("log-inside");
    let conf = s.path("conf");
    let mut m = tracing_with_log_in(&s, &conf, &conf, &["--debounce=50ms"]);
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !m.log().contains("manager.log"),
        "the log file was taken for config"
    );
    assert_eq!(s.lines("got").iter().filter(|l| *l == "start").count(), 1);
    sigterm_exits(&mut m, 0, 5);
}

#[test]
fn sigterm_during_the_startup_check_exits_at_once_and_blames_no_one() {
    let s = Scratch::new("term-startup-check");
    let conf = s.path("app.conf");
    fs::write(&conf, "v1").unwrap();
    let mut m = Manager::plain(&[
        "--config",
        conf.to_str().unwrap(),
        "--validate",
        "sleep 30",
        "--",
        "sleep",
        "1000",
    ]);
    assert!(m.wait_log("Validating config with"), "{}", m.log());
    sigterm_exits(&mut m, 143, 5);
    assert!(
        !m.log().contains("left outside the child's process group"),
        "the cancelled check was reported as left running\n{}",
        m.log()
    );
}
