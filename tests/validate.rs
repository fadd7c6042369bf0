//! `--validate`: a change is checked before the manager acts on it; a bad
//! config never takes the running child down.
// These tests drive Linux itself (PID namespaces, /proc, signalfd).
#![cfg(target_os = "linux")]

mod common;

use common::*;
use nix::libc;
use std::fs;
use std::path::Path;

/// A validator: passes when the config contains "ok", else prints an error
/// and exits 3. It logs every run and FLUSH_MANAGER_CHANGED.
fn checker(s: &Scratch, conf: &Path) -> String {
    format!(
        "sh -c 'echo \"$FLUSH_MANAGER_CHANGED\" >> {runs}; echo checking {conf}; \
         grep -q ok {conf} || {{ echo \"line 1: syntax error\" >&2; exit 3; }}'",
        runs = s.path("runs").display(),
        conf = conf.display()
    )
}

fn starts(s: &Scratch) -> Vec<String> {
    recorded_starts(s)
}

fn manager(s: &Scratch, conf: &Path, validate: &str, extra: &[&str]) -> Manager {
    manager_with(s, conf, validate, "100ms", extra)
}

/// `manager` with another `--debounce`.
fn manager_with(
    s: &Scratch,
    conf: &Path,
    validate: &str,
    debounce: &str,
    extra: &[&str],
) -> Manager {
    let script = recorder(conf, &s.path("starts"), "exit 0");
    let mut args = vec![
        "--config",
        conf.to_str().unwrap(),
        "--debounce",
        debounce,
        "--validate",
        validate,
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--", "/bin/sh", "-c", &script]);
    let m = Manager::plain(&args);
    assert!(wait_for(LONG, || starts(s).len() == 1), "{}", m.log());
    m
}

#[test]
fn good_change_restarts_bad_change_keeps_the_child_and_a_fix_restarts() {
    let s = Scratch::new("val");
    let conf = s.path("app.conf");
    fs::write(&conf, "ok v1").unwrap();
    let m = manager(&s, &conf, &checker(&s, &conf), &[]);
    assert_eq!(
        s.lines("runs"),
        [conf.display().to_string()],
        "validated once at startup"
    );

    write_in_place(&conf, b"ok v2");
    assert!(wait_for(LONG, || starts(&s).len() == 2), "{}", m.log());
    assert!(starts(&s)[1].ends_with("ok v2"));
    assert_eq!(
        s.lines("runs").last().unwrap(),
        &conf.display().to_string(),
        "FLUSH_MANAGER_CHANGED"
    );

    let pid_before = starts(&s)[1].split(' ').nth(1).unwrap().to_string();
    write_in_place(&conf, b"bad v3");
    assert!(
        m.wait_log("Validator sh failed with exit code 3"),
        "{}",
        m.log()
    );
    assert!(
        m.log().contains("ERROR:   | line 1: syntax error"),
        "the tail of its output: {}",
        m.log()
    );
    std::thread::sleep(std::time::Duration::from_millis(1000));
    assert_eq!(starts(&s).len(), 2, "no restart on a bad config");
    assert!(
        alive(pid_before.parse().unwrap()),
        "the same child still runs"
    );

    write_in_place(&conf, b"ok v4");
    assert!(wait_for(LONG, || starts(&s).len() == 3), "{}", m.log());
    assert!(starts(&s)[2].ends_with("ok v4"));
}

#[test]
fn a_hanging_validator_times_out_and_nothing_restarts() {
    let s = Scratch::new("valhang");
    let conf = s.path("app.conf");
    fs::write(&conf, "ok").unwrap();
    let check = format!(
        "sh -c 'grep -q hang {} && exec sleep 60; exit 0'",
        conf.display()
    );
    let m = manager(&s, &conf, &check, &["--validate-timeout", "1s"]);
    write_in_place(&conf, b"ok hang");
    assert!(
        m.wait_log("timed out after 1s and was killed"),
        "{}",
        m.log()
    );
    assert_eq!(starts(&s).len(), 1);
}

#[test]
fn a_bad_config_at_startup_exits_78_and_starts_nothing() {
    let s = Scratch::new("val78");
    let conf = s.path("app.conf");
    fs::write(&conf, "bad").unwrap();
    let script = recorder(&conf, &s.path("starts"), "exit 0");
    let mut m = Manager::plain(&[
        "--config",
        conf.to_str().unwrap(),
        "--validate",
        &checker(&s, &conf),
        "--",
        "/bin/sh",
        "-c",
        &script,
    ]);
    assert_eq!(m.exit_code(), 78);
    assert!(starts(&s).is_empty());
    assert!(
        m.log().contains("Config validation failed at startup"),
        "{}",
        m.log()
    );
    // A validator that cannot even start is a failed check too.
    let mut m = Manager::plain(&[
        "--config",
        conf.to_str().unwrap(),
        "--validate",
        "/no/such/validator",
        "--",
        "/bin/true",
    ]);
    assert_eq!(m.exit_code(), 78);
}

#[test]
fn sigterm_during_a_validation_kills_the_validator_and_shuts_down() {
    let s = Scratch::new("valterm");
    let conf = s.path("app.conf");
    fs::write(&conf, "ok").unwrap();
    let check = format!(
        "sh -c 'grep -q slow {0} || exit 0; echo $$ > {1}; exec sleep 60'",
        conf.display(),
        s.path("validator").display()
    );
    let mut m = manager(&s, &conf, &check, &[]);
    write_in_place(&conf, b"ok slow");
    assert!(s.wait_contains("validator", "\n"));
    let validator: i32 = s.read("validator").trim().parse().unwrap();
    assert!(alive(validator));
    m.signal(libc::SIGTERM);
    assert_eq!(m.exit_code(), 0, "the child handled TERM");
    assert!(
        wait_for(LONG, || !alive(validator)),
        "the validator was killed"
    );
    assert_eq!(starts(&s).len(), 1);
}

#[test]
fn a_change_during_a_validation_is_not_lost() {
    let s = Scratch::new("valrace");
    let conf = s.path("app.conf");
    fs::write(&conf, "ok v1").unwrap();
    // Slow to judge "v2" (and rejects it); "v3" passes at once.
    let check = format!(
        "sh -c 'grep -q v2 {0} && {{ echo $$ > {1}; sleep 3; exit 1; }}; grep -q ok {0}'",
        conf.display(),
        s.path("slow").display()
    );
    let m = manager(&s, &conf, &check, &[]);
    write_in_place(&conf, b"ok v2");
    assert!(s.wait_contains("slow", "\n"), "{}", m.log());
    write_in_place(&conf, b"ok v3");
    assert!(wait_for(LONG, || starts(&s).len() == 2), "{}", m.log());
    assert!(
        starts(&s)[1].ends_with("ok v3"),
        "the newest bytes won: {:?}",
        starts(&s)
    );
    assert!(
        m.log().contains("Cancelling the running config validation"),
        "{}",
        m.log()
    );
}

#[test]
fn the_reload_signal_obeys_the_same_rules() {
    let s = Scratch::new("valhup");
    let conf = s.path("app.conf");
    fs::write(&conf, "ok v1").unwrap();
    let m = manager(&s, &conf, &checker(&s, &conf), &["--reload-signal", "HUP"]);
    write_in_place(&conf, b"bad");
    assert!(m.wait_log("Validator sh failed"), "{}", m.log());
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        !s.read("starts").contains("hup"),
        "no reload on a bad config"
    );
    write_in_place(&conf, b"ok v2");
    assert!(s.wait_contains("starts", "hup"), "{}", m.log());
    assert_eq!(starts(&s).len(), 1, "signalled, not restarted");
}

#[test]
fn bytes_written_during_a_restart_are_validated_before_the_next_child_starts() {
    let s = Scratch::new("val-gate");
    let conf = s.path("app.conf");
    fs::write(&conf, "ok v1").unwrap();
    // The child takes a while to stop: the push lands while it does.
    let script = recorder(&conf, &s.path("starts"), "sleep 1; exit 0");
    let check = checker(&s, &conf);
    let args = [
        "--config",
        conf.to_str().unwrap(),
        "--debounce",
        "100ms",
        "--validate",
        &check,
        "--",
        "/bin/sh",
        "-c",
        &script,
    ];
    let m = Manager::plain(&args);
    assert!(wait_for(LONG, || starts(&s).len() == 1), "{}", m.log());
    write_in_place(&conf, b"ok v2");
    assert!(m.wait_log("Stopping child process"), "{}", m.log());
    write_in_place(&conf, b"bad v3");
    assert!(
        m.wait_log("Not starting the child on a config that --validate rejected"),
        "{}",
        m.log()
    );
    assert_eq!(starts(&s).len(), 1, "a child started on unvalidated bytes");
    // A fix starts a child, on the fixed bytes.
    write_in_place(&conf, b"ok v4");
    assert!(wait_for(LONG, || starts(&s).len() == 2), "{}", m.log());
    assert!(starts(&s)[1].ends_with("ok v4"), "{:?}", starts(&s));
}

#[test]
fn a_crash_after_a_rejected_push_holds_instead_of_starting_the_bad_bytes() {
    let s = Scratch::new("val-bomb");
    let conf = s.path("app.conf");
    fs::write(&conf, "ok v1").unwrap();
    let m = manager(&s, &conf, &checker(&s, &conf), &["--restart", "on-failure"]);
    write_in_place(&conf, b"bad v2");
    assert!(m.wait_log("Config validation failed"), "{}", m.log());
    // The running child crashes.
    let pid: i32 = starts(&s)[0].split(' ').nth(1).unwrap().parse().unwrap();
    // SAFETY: kill(2) on the test's own grandchild (a plain manager).
    unsafe { libc::kill(pid, libc::SIGKILL) };
    assert!(
        m.wait_log("Not starting the child on a config that --validate rejected"),
        "{}",
        m.log()
    );
    assert_eq!(starts(&s).len(), 1, "restarted on the rejected bytes");
    write_in_place(&conf, b"ok v3");
    assert!(wait_for(LONG, || starts(&s).len() == 2), "{}", m.log());
    assert!(starts(&s)[1].ends_with("ok v3"));
}

#[test]
fn a_validator_that_leaves_a_helper_is_judged_by_its_exit_status() {
    let s = Scratch::new("val-helper");
    let conf = s.path("app.conf");
    fs::write(&conf, "ok v1").unwrap();
    let marker = format!("fm-helper-{}", std::process::id());
    // The helper keeps the check's stdout open long after the check exits.
    // Quoted in two halves, so that only the helper's name holds the marker
    // (not the manager's own command line).
    let (half1, half2) = marker.split_at(4);
    let check = format!("bash -c 'exec -a \"{half1}\"\"{half2}\" sleep 100 & echo ok; exit 0'");
    let m = manager(&s, &conf, &check, &["--validate-timeout", "1h"]);
    assert!(m.log().contains("Config validation passed"), "{}", m.log());
    assert!(
        wait_for(LONG, || processes_named(&marker).is_empty()),
        "the check's helper outlived the check"
    );
}

#[test]
fn thousands_of_changed_files_still_reach_the_validator() {
    let s = Scratch::new("val-many");
    let dir = s.path("conf.d");
    fs::create_dir(&dir).unwrap();
    for i in 0..4000 {
        fs::write(
            dir.join(format!("file-{i:05}-with-a-longish-name.conf")),
            "ok",
        )
        .unwrap();
    }
    let check = format!(
        "sh -c 'echo \"$FLUSH_MANAGER_CHANGED_COUNT $FLUSH_MANAGER_CHANGED_TRUNCATED\" > {}'",
        s.path("env").display()
    );
    let script = recorder(
        &dir.join("file-00000-with-a-longish-name.conf"),
        &s.path("starts"),
        "exit 0",
    );
    let m = Manager::plain(&[
        "--config",
        dir.to_str().unwrap(),
        "--validate",
        &check,
        "--",
        "/bin/sh",
        "-c",
        &script,
    ]);
    assert!(wait_for(LONG, || starts(&s).len() == 1), "{}", m.log());
    assert_eq!(s.read("env").trim(), "4000 1");
}

/// Issue 24, item 2: with `--promote-to DIR`, `--validate "grep -q good
/// /abs/dst/app.conf"` read what the child already had: with DIR holding a
/// good generation (an emptyDir after a container restart), `echo bad >
/// src/app.conf` passed, reached DIR and the child. Now refused at startup
/// (exit 2, both fixes named): nothing starts and DIR keeps the good bytes.
#[test]
fn a_check_that_reads_dir_instead_of_the_candidate_is_refused_at_startup() {
    let s = Scratch::new("validate-blind");
    let (src, dir) = (s.path("src"), s.path("dst"));
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("app.conf"), "good").unwrap();
    let child = recorder(&dir.join("app.conf"), &s.path("starts"), "exit 0");
    let run = |check: &str| {
        Manager::plain(&sh_args(
            &[
                "--config",
                src.to_str().unwrap(),
                "--promote-to",
                dir.to_str().unwrap(),
                "--validate",
                check,
            ],
            &child,
        ))
    };
    // A first run, checked the right way, leaves a good generation in DIR.
    let mut m = run("sh -c 'grep -q good $FLUSH_MANAGER_CANDIDATE/app.conf'");
    assert!(wait_for(LONG, || starts(&s).len() == 1), "{}", m.log());
    m.signal(libc::SIGTERM);
    assert_eq!(m.exit_code(), 0);
    assert_eq!(fs::read_to_string(dir.join("app.conf")).unwrap(), "good");

    fs::write(src.join("app.conf"), "bad").unwrap();
    let blind = format!("grep -q good {}", dir.join("app.conf").display());
    let mut m = run(&blind);
    assert_eq!(m.exit_code(), 2, "{}", m.log());
    let log = m.log();
    assert!(log.contains("$FLUSH_MANAGER_CANDIDATE/app.conf"), "{log}");
    assert!(log.contains("--validate-in-place"), "{log}");
    assert_eq!(
        fs::read_to_string(dir.join("app.conf")).unwrap(),
        "good",
        "the bad bytes never reached DIR"
    );
    assert_eq!(starts(&s).len(), 1, "no child started on them");
    // A check of the watched source reads whatever the source holds while
    // it runs (a fix pushed during a bad push's check let the bad one
    // through): refused too, named as the source.
    let of_source = format!(
        "sh -c 'sleep 1; grep -q good {}'",
        src.join("app.conf").display()
    );
    let mut m = run(&of_source);
    assert_eq!(m.exit_code(), 2, "{}", m.log());
    assert!(m.log().contains("watched --config"), "{}", m.log());
    // DIR through a variable of the environment the check inherits.
    let dir_s = dir.display().to_string();
    let mut m = Manager::start_with(
        &sh_args(
            &[
                "--config",
                src.to_str().unwrap(),
                "--promote-to",
                &dir_s,
                "--validate",
                "sh -c 'grep -q good $APPDIR/app.conf'",
            ],
            &child,
        ),
        Opts {
            mode: Mode::Plain,
            env: vec![("APPDIR", &dir_s)],
            ..Opts::default()
        },
    );
    assert_eq!(m.exit_code(), 2, "{}", m.log());
    assert_eq!(starts(&s).len(), 1, "no child started on them");
}

/// Where `pidfd_open` is missing (a kernel before 5.3) or refused (a
/// seccomp profile), async-process falls back to a SIGCHLD handler, which
/// our signalfd starves. CI runs the tests of everything that starts a
/// process again on a build that forces that backend
/// (`--cfg async_process_force_signal_backend`), with
/// `FLUSH_MANAGER_TEST_SIGNAL_BACKEND=1`: this test proves which backend the
/// binary under test runs (async-process's SIGCHLD handler is installed
/// only by the forced one), so the checks passing there mean something.
#[test]
fn the_binary_runs_the_process_backend_the_run_expects() {
    if qemu_limit("qemu-user installs its own handler for every signal: /proc shows the emulator's")
    {
        return;
    }
    let forced = std::env::var_os("FLUSH_MANAGER_TEST_SIGNAL_BACKEND").is_some();
    let s = Scratch::new("val-backend");
    let conf = s.path("app.conf");
    fs::write(&conf, "ok v1").unwrap();
    let m = manager(&s, &conf, &checker(&s, &conf), &[]);
    let status = fs::read_to_string(format!("/proc/{}/status", m.pid())).unwrap();
    let caught = status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or(0);
    let handler = caught & (1 << (libc::SIGCHLD - 1)) != 0;
    assert_eq!(
        handler, forced,
        "SIGCHLD handler in the manager: {handler}; forced signal backend expected: {forced}\n{status}"
    );
}

/// Hostile review: with file descriptors for the watcher but not for a
/// check (`ulimit -n` 14 to 17), the first check ran, the watcher then took
/// the rest, and every later check "failed" (EMFILE): good bytes were
/// rejected, never retried. The manager now asks at startup for what a
/// check needs and refuses to start without it (exit 1, nothing spawned);
/// with enough it runs, and a check that still cannot start is retried,
/// never a verdict on the bytes.
#[test]
fn too_few_descriptors_for_a_check_refuse_to_start_and_enough_run_it() {
    for limit in [14u64, 17, 64] {
        let s = Scratch::new("validate-nofile");
        let conf = s.path("app.conf");
        fs::write(&conf, "v0").unwrap();
        let script = format!(
            "trap 'exit 0' TERM; echo \"start $(cat {c})\" >> {out}; while :; do sleep 0.05 & wait $!; done",
            c = conf.display(),
            out = s.path("starts").display()
        );
        let cfg = format!("--config={}", conf.display());
        let mut m = Manager::start_with(
            &[
                &cfg,
                "--validate=true",
                "--debounce=50ms",
                "--",
                "/bin/sh",
                "-c",
                &script,
            ],
            Opts {
                nofile: Some(limit),
                ..Opts::plain()
            },
        );
        assert!(wait_for(LONG, || !m.alive() || !s.read("starts").is_empty()));
        if limit < 64 {
            assert_eq!(m.exit_code(), 1, "ulimit -n {limit}\n{}", m.log());
            assert!(m.log().contains("Cannot start"), "{}", m.log());
            assert!(
                s.read("starts").is_empty(),
                "ulimit -n {limit}: a child was started"
            );
            continue;
        }
        assert!(m.wait_log("Watching"), "{}", m.log());
        fs::write(&conf, "v1").unwrap();
        assert!(
            wait_for(LONG, || s.read("starts").contains("start v1")),
            "ulimit -n {limit}: the checked change never reached the child\n{}",
            m.log()
        );
        m.signal(libc::SIGTERM);
        assert_eq!(m.exit_code(), 0, "{}", m.log());
    }
}

/// Review: without `--promote-to` the check reads the live files. One that
/// read them while they were being rewritten (here "bad", then the same
/// good bytes again, within one settle) failed, and its verdict was taken
/// for the good bytes in flight: the settle then found "the bytes the
/// validator rejected", and they never reached the child. A check that ran
/// while the files moved does not count: it runs again once they settle.
#[test]
fn a_check_that_read_the_files_mid_rewrite_runs_again_once_they_settle() {
    let s = Scratch::new("val-mid-rewrite");
    let conf = s.path("app.conf");
    fs::write(&conf, "ok v1").unwrap();
    let marks = s.path("marks");
    // Says when it starts, reads the file half a second later.
    let check = format!(
        "sh -c 'echo start >> {m}; sleep 0.5; grep -q ok {c}; r=$?; echo done$r >> {m}; exit $r'",
        m = marks.display(),
        c = conf.display()
    );
    let m = manager_with(&s, &conf, &check, "2s", &[]);
    assert!(m.wait_log("Watching"), "{}", m.log());
    write_in_place(&conf, b"ok v2");
    assert!(
        wait_for(LONG, || s.lines("marks").len() == 3),
        "{}",
        m.log()
    );
    // The check of v2 runs: the file is rewritten under it.
    write_in_place(&conf, b"bad");
    assert!(
        wait_for(LONG, || s.lines("marks").len() == 4),
        "{}",
        m.log()
    );
    assert_eq!(s.lines("marks")[3], "done1", "it read the rewrite");
    write_in_place(&conf, b"ok v2");
    assert!(wait_for(LONG, || starts(&s).len() == 2), "{}", m.log());
    assert!(starts(&s)[1].ends_with("ok v2"), "{:?}", starts(&s));
}
