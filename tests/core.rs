//! The init half: run, reap, forward, stop. The release binary, as PID 1 of
//! a fresh PID namespace and as a plain process, with real shell children.
// These tests drive Linux itself (PID namespaces, /proc, signalfd).
#![cfg(target_os = "linux")]

mod common;

use common::*;
use nix::libc;
use std::io::Write;
use std::process::Stdio;

const NO_CONFIG: &str = "--config=";

#[test]
fn exit_code_is_the_childs() {
    for mode in both_modes("exit_code_is_the_childs") {
        let mut m = run(mode, &[NO_CONFIG, "--", "/bin/sh", "-c", "exit 3"]);
        assert_eq!(m.exit_code(), 3, "{mode:?}");
        let mut m = run(mode, &[NO_CONFIG, "--", "/bin/true"]);
        assert_eq!(m.exit_code(), 0, "{mode:?}");
    }
}

#[test]
fn death_by_signal_is_128_plus_n() {
    for mode in both_modes("death_by_signal_is_128_plus_n") {
        let mut m = run(mode, &[NO_CONFIG, "--", "/bin/sh", "-c", "kill -USR1 $$"]);
        assert_eq!(m.exit_code(), 128 + libc::SIGUSR1, "{mode:?}");
    }
}

#[test]
fn seed_cli_forms_run_the_command_with_its_arguments() {
    let s = Scratch::new("cli");
    let out = s.path("args");
    let script = format!("printf '%s|' \"$@\" > {}; exit 4", out.display());
    // Go's rules: flags are parsed until the first non-flag or `--`, so
    // the command's own dash-arguments come after one of those.
    let mut m = Manager::plain(&[
        "-config=", "-command", "/bin/sh", "--", "-c", &script, "sh", "-x", "--y", "--",
    ]);
    assert_eq!(m.exit_code(), 4);
    assert_eq!(s.read("args"), "-x|--y|--|");
    // The seed's own example: -config after -command is still a flag, and
    // after the first non-flag everything is the command's, dashes included.
    let printer = s.path("args.sh");
    std::fs::write(
        &printer,
        format!("printf '%s|' \"$@\" > {}; exit 5", out.display()),
    )
    .unwrap();
    let p = printer.to_str().unwrap();
    let mut m = Manager::plain(&[
        "-command", "/bin/sh", "-config", "", p, "-x", "-config", "y",
    ]);
    assert_eq!(m.exit_code(), 5);
    assert_eq!(s.read("args"), "-x|-config|y|");
    let mut m = Manager::plain(&["-command", "/bin/sh", "-c", "exit 1"]);
    assert_eq!(
        m.exit_code(),
        2,
        "-c is not a flag of ours: a usage error, as in Go"
    );
}

#[test]
fn spawn_failures_exit_126_and_127_naming_the_path() {
    let s = Scratch::new("spawn");
    let mut m = Manager::plain(&[NO_CONFIG, "--", "/nonexistent/app"]);
    assert_eq!(m.exit_code(), 127);
    m.assert_logged(
        "ERROR: Failed to start child process /nonexistent/app",
        "a missing command",
    );
    let plain = s.path("not-executable");
    std::fs::write(&plain, "#!/bin/sh\n").unwrap();
    let mut m = Manager::plain(&[NO_CONFIG, "--", plain.to_str().unwrap()]);
    assert_eq!(m.exit_code(), 126);
    assert!(m.log().contains(plain.to_str().unwrap()));
    let mut m = Manager::plain(&[NO_CONFIG, "--", "no-such-command-anywhere"]);
    assert_eq!(m.exit_code(), 127);
}

#[test]
fn usage_errors_exit_2_and_start_nothing() {
    let s = Scratch::new("usage");
    let marker = s.path("started");
    let touch = format!("touch {}", marker.display());
    for bad in [
        vec!["--no-such-flag", "--", "/bin/sh", "-c", &touch],
        vec!["--stop-timeout", "soon", "--", "/bin/sh", "-c", &touch],
        vec!["--stop-signal", "SIGNOPE", "--", "/bin/sh", "-c", &touch],
        vec!["--command", ""],
    ] {
        let mut m = Manager::plain(&bad);
        assert_eq!(m.exit_code(), 2, "{bad:?}");
        let log = m.log();
        assert!(log.starts_with("[flush-manager] ERROR: "), "{log}");
        assert!(!log.contains("Starting child"), "{log}");
    }
    assert!(!marker.exists());
    let mut m = Manager::plain(&["--no-such-flag"]);
    m.exit_code();
    m.assert_logged("--no-such-flag", "the error names the flag");
}

/// Issue #18: nonsense that used to start the child (or, for RTMAX+1, to
/// stop it with RTMAX-1) is a usage error naming the reason, and nothing
/// starts.
#[test]
fn nonsensical_flags_exit_2_saying_why_and_start_nothing() {
    let s = Scratch::new("nonsense");
    let marker = s.path("started");
    let touch = format!("touch {}", marker.display());
    for (flags, why) in [
        (vec!["--reload-signal", "KILL"], "SIGKILL cannot be caught"),
        (
            vec!["--stop-signal", "RTMAX+1"],
            "no signal comes after RTMAX",
        ),
        (vec!["--stop-signal", "KILL"], "--stop-timeout 0"),
        (
            vec!["--remap-exit", "143:0", "--remap-exit", "143:1"],
            "mapped twice",
        ),
        (
            vec!["--restart-signal", "HUP", "--map-signal", "HUP:USR1"],
            "SIGHUP is claimed twice",
        ),
        (vec!["--validate", " "], "--validate: empty command"),
        (vec!["--stop-timeout", "1h1h"], "given twice"),
        (
            vec!["--reload-url", "http://::1:9090/x"],
            "must be in brackets",
        ),
    ] {
        let mut argv = flags.clone();
        argv.extend(["--", "/bin/sh", "-c", &touch]);
        let mut m = Manager::plain(&argv);
        assert_eq!(m.exit_code(), 2, "{flags:?}: {}", m.log());
        let log = m.log();
        assert!(log.starts_with("[flush-manager] ERROR: "), "{log}");
        assert!(log.contains(why), "{flags:?}: {log:?} does not say {why:?}");
    }
    assert!(!marker.exists(), "a child was started");
}

#[test]
fn version_flag_in_both_spellings() {
    for flag in ["-version", "--version"] {
        let out = std::process::Command::new(BIN).arg(flag).output().unwrap();
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.starts_with("flush-manager version "), "{text}");
    }
}

#[test]
fn sigterm_reaches_the_child_as_the_stop_signal() {
    for mode in both_modes("sigterm_reaches_the_child_as_the_stop_signal") {
        let s = Scratch::new("term");
        // The child handles TERM and exits 0: so does the manager.
        let script = TrapChild::new(&s.path("m"))
            .record(&["TERM"])
            .on_term("exit 0")
            .ready("ready")
            .script();
        let mut m = run(mode, &[NO_CONFIG, "--", "/bin/sh", "-c", &script]);
        assert!(s.wait_contains("m", "ready"));
        m.signal(libc::SIGTERM);
        assert_eq!(m.exit_code(), 0, "{mode:?}");
        assert_eq!(s.lines("m"), ["ready", "TERM"]);

        // A child that dies of it: 143.
        let mut m = run(mode, &[NO_CONFIG, "--", "/bin/sleep", "60"]);
        assert!(m.wait_log("Child process started"));
        m.signal(libc::SIGTERM);
        assert_eq!(m.exit_code(), 143, "{mode:?}");
    }
}

#[test]
fn custom_stop_signal_and_sigkill_after_the_timeout() {
    let s = Scratch::new("stop");
    let script = TrapChild::new(&s.path("m"))
        .record(&["QUIT", "TERM"])
        .ready("ready")
        .script();
    let mut m = Manager::plain(&sh_args(
        &[
            NO_CONFIG,
            "--stop-signal",
            "SIGQUIT",
            "--stop-timeout",
            "1s",
        ],
        &script,
    ));
    assert!(s.wait_contains("m", "ready"));
    m.signal(libc::SIGTERM);
    assert_eq!(m.exit_code(), 137, "ignored the stop signal: SIGKILLed");
    assert_eq!(
        s.lines("m"),
        ["ready", "QUIT"],
        "SIGTERM was translated to the stop signal"
    );
    m.assert_logged("Stop timeout", "the stop signal was ignored");
}

#[test]
fn sigint_is_forwarded_and_a_child_may_outlive_it_until_the_timer() {
    let s = Scratch::new("int");
    let script = TrapChild::new(&s.path("m"))
        .record(&["INT"])
        .ready("ready")
        .script();
    let mut m = Manager::plain(&sh_args(&[NO_CONFIG, "--stop-timeout", "2s"], &script));
    assert!(s.wait_contains("m", "ready"));
    m.signal(libc::SIGINT);
    assert!(s.wait_contains("m", "INT"));
    // Still transparent while waiting for the timer.
    assert!(m.alive());
    assert_eq!(m.exit_code(), 137);
}

/// Signals a trap-everything child must see, as (name for `trap`, number).
fn forwarded_signals() -> Vec<(String, i32)> {
    let mut sigs: Vec<(String, i32)> = [
        ("HUP", libc::SIGHUP),
        ("QUIT", libc::SIGQUIT),
        ("USR1", libc::SIGUSR1),
        ("USR2", libc::SIGUSR2),
        ("ALRM", libc::SIGALRM),
        ("PIPE", libc::SIGPIPE),
        ("WINCH", libc::SIGWINCH),
        ("URG", libc::SIGURG),
        ("PROF", libc::SIGPROF),
        ("XCPU", libc::SIGXCPU),
        ("PWR", libc::SIGPWR),
        // The fault signals, sent by kill(1): forwarded, not fatal to us.
        ("ILL", libc::SIGILL),
        ("FPE", libc::SIGFPE),
        ("SEGV", libc::SIGSEGV),
        ("BUS", libc::SIGBUS),
        ("ABRT", libc::SIGABRT),
        ("TRAP", libc::SIGTRAP),
        ("SYS", libc::SIGSYS),
    ]
    .into_iter()
    .map(|(n, s)| (n.to_string(), s))
    .collect();
    for rt in [libc::SIGRTMIN(), libc::SIGRTMIN() + 5, libc::SIGRTMAX()] {
        sigs.push((rt.to_string(), rt));
    }
    sigs
}

#[test]
fn every_signal_is_forwarded_and_none_stops_the_manager() {
    if qemu_limit(
        "qemu-user keeps SIGSEGV/SIGBUS/SIGILL/SIGFPE for the guest's own faults and numbers real-time signals 2 off the host's",
    ) {
        return;
    }
    for mode in both_modes("every_signal_is_forwarded_and_none_stops_the_manager") {
        let s = Scratch::new("fwd");
        let out = s.path("m");
        let sigs = forwarded_signals();
        let script = sigs
            .iter()
            .fold(TrapChild::new(&out), |c, (n, num)| {
                c.record_as(n, &num.to_string())
            })
            .ready("ready")
            .script();
        let mut m = run(mode, &[NO_CONFIG, "--", "/bin/sh", "-c", &script]);
        assert!(s.wait_contains("m", "ready"));
        for (name, num) in &sigs {
            m.signal(*num);
            assert!(
                wait_for(LONG, || s.lines("m").contains(&num.to_string())),
                "{mode:?}: {name} ({num}) never reached the child"
            );
            assert!(m.alive(), "{mode:?}: the manager died of {name}");
        }
        // A graceful end: SIGKILL of a plain manager would orphan the
        // trap-everything child for good (found by CI's leak check).
        m.signal(libc::SIGTERM);
        assert_eq!(m.exit_code(), 143, "{mode:?}");
    }
}

fn block_usr1_ignore_usr2() -> std::io::Result<()> {
    // SAFETY: async-signal-safe calls between fork and exec.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGUSR1);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        libc::signal(libc::SIGUSR2, libc::SIG_IGN);
    }
    Ok(())
}

/// Every signal but 32 and 33, which belong to the C library: glibc's
/// posix_spawn (used by the test harness) leaves them ignored in what it
/// starts, and they are passed on unchanged like everything else.
const USER_SIGNALS: u64 = !(0b11 << 31);

fn sig_field(status: &str, field: &str) -> u64 {
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("{field} in {status}"));
    u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
}

#[test]
fn the_child_gets_the_signal_state_the_manager_started_with() {
    // `cat` itself is the child: a shell would reset its own mask (dash does).
    let args = [NO_CONFIG, "--", "/bin/cat", "/proc/self/status"];
    for mode in both_modes("the_child_gets_the_signal_state_the_manager_started_with") {
        // Clean start: nothing blocked, nothing ignored.
        let mut m = Manager::start_with(
            &args,
            Opts {
                mode,
                ..Opts::default()
            },
        );
        assert_eq!(m.exit_code(), 0);
        let st = m.log();
        assert_eq!(sig_field(&st, "SigBlk:") & USER_SIGNALS, 0, "{mode:?} {st}");
        assert_eq!(sig_field(&st, "SigIgn:") & USER_SIGNALS, 0, "{mode:?} {st}");

        // Started with USR1 blocked and USR2 ignored: the child inherits
        // exactly that, although the manager catches both to forward them.
        let mut m = Manager::start_with(
            &args,
            Opts {
                mode,
                pre_exec: Some(block_usr1_ignore_usr2),
                ..Opts::default()
            },
        );
        assert_eq!(m.exit_code(), 0);
        let st = m.log();
        let bit = |sig: i32| 1u64 << (sig - 1);
        assert_eq!(
            sig_field(&st, "SigBlk:") & USER_SIGNALS,
            bit(libc::SIGUSR1),
            "{mode:?} {st}"
        );
        assert_eq!(
            sig_field(&st, "SigIgn:") & USER_SIGNALS,
            bit(libc::SIGUSR2),
            "{mode:?} {st}"
        );
    }
}

#[test]
fn a_manager_started_with_usr1_blocked_still_forwards_it() {
    for mode in both_modes("a_manager_started_with_usr1_blocked_still_forwards_it") {
        let s = Scratch::new("blocked");
        // dash unblocks what it traps, so the child can take the USR1 that
        // the manager must read and forward although it started blocked.
        let script = TrapChild::new(&s.path("m"))
            .record(&["USR1"])
            .ready("ready")
            .script();
        let mut m = Manager::start_with(
            &[NO_CONFIG, "--", "/bin/sh", "-c", &script],
            Opts {
                mode,
                pre_exec: Some(block_usr1_ignore_usr2),
                ..Opts::default()
            },
        );
        assert!(s.wait_contains("m", "ready"));
        m.signal(libc::SIGUSR1);
        assert!(
            s.wait_contains("m", "USR1"),
            "{mode:?}: USR1 was not forwarded"
        );
        m.signal(libc::SIGTERM);
        assert_eq!(m.exit_code(), 143);
    }
}

#[test]
fn child_starts_in_the_starting_directory_and_the_manager_leaves_it() {
    for mode in both_modes("child_starts_in_the_starting_directory") {
        let s = Scratch::new("cwd");
        let work = s.path("work");
        std::fs::create_dir(&work).unwrap();
        let script = format!("pwd > {}; sleep 60", s.path("pwd").display());
        let m = Manager::start_with(
            &[NO_CONFIG, "--", "/bin/sh", "-c", &script],
            Opts {
                mode,
                cwd: Some(&work),
                ..Opts::default()
            },
        );
        assert!(s.wait_contains("pwd", "work"));
        assert_eq!(s.read("pwd").trim(), work.to_str().unwrap());
        let cwd = std::fs::read_link(format!("/proc/{}/cwd", m.pid())).unwrap();
        assert_eq!(
            cwd,
            std::path::Path::new("/"),
            "{mode:?}: the manager keeps no directory busy"
        );
    }
}

#[test]
fn relative_command_runs_from_the_starting_directory() {
    let s = Scratch::new("rel");
    let script = s.path("app.sh");
    std::fs::write(&script, "#!/bin/sh\nexit 9\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut m = Manager::start_with(
        &[NO_CONFIG, "--", "./app.sh"],
        Opts {
            mode: Mode::Plain,
            cwd: Some(&s.0),
            ..Opts::default()
        },
    );
    assert_eq!(m.exit_code(), 9);
}

/// 100 times: the child leaves 1000 orphans and exits 7 at the same moment.
/// The manager's exit code must be 7 every time: the orphan sweep never
/// steals the managed child's status (a plain waitpid(-1) sweep beside
/// async-process lost it about one run in four).
#[test]
fn child_status_is_never_lost_to_the_orphan_sweep() {
    if pid1_or_skip("child_status_is_never_lost_to_the_orphan_sweep").is_none() {
        return;
    }
    let script = "i=0; while [ $i -lt 1000 ]; do (exit 0) & i=$((i+1)); done; exit 7";
    let mut wrong = vec![];
    for run in 0..100 {
        let mut m = Manager::start_with(
            &[
                NO_CONFIG,
                "--log-level",
                "warn",
                "--",
                "/bin/sh",
                "-c",
                script,
            ],
            Opts {
                env: vec![("FLUSH_MANAGER_LOG", "warn")],
                ..Opts::default()
            },
        );
        let code = m.exit_code();
        if code != 7 {
            wrong.push((run, code, m.log()));
        }
    }
    assert!(wrong.is_empty(), "wrong exit codes: {wrong:?}");
}

#[test]
fn orphans_are_reaped_while_the_child_runs() {
    for mode in both_modes("orphans_are_reaped_while_the_child_runs") {
        if mode == Mode::Plain && qemu_limit(QEMU_NO_SUBREAPER) {
            continue;
        }
        let s = Scratch::new("orphans");
        // 200 orphans (their parent subshell exits at once) in their own
        // sessions, away from the child's group, and the child keeps
        // running: only the manager can reap them.
        let script = format!(
            "i=0; while [ $i -lt 200 ]; do ( setsid sh -c 'exit 0' & ); i=$((i+1)); done; echo spawned > {}; exec sleep 60",
            s.path("m").display()
        );
        let m = run(mode, &[NO_CONFIG, "--", "/bin/sh", "-c", &script]);
        assert!(s.wait_contains("m", "spawned"));
        let pid = m.pid();
        assert!(
            wait_for(LONG, || zombies_of(pid).is_empty()),
            "{mode:?}: zombies left under the manager: {:?}",
            zombies_of(pid)
        );
        // The sleep (the exec'd child) is alive; nothing else is left.
        m.assert_logged("Reaped", &format!("{mode:?}"));
    }
}

#[test]
fn no_grandchild_outlives_the_manager() {
    // Not PID 1, so nothing else would clean up: the grandchild's pid is a
    // host pid we can check afterwards.
    let s = Scratch::new("grandchild");
    let script = format!(
        "sleep 300 & echo $! > {0}; sh -c 'trap \"\" TERM; echo ok > {1}; exec sleep 300' & echo $! >> {0}; \
         while [ ! -s {1} ]; do sleep 0.01; done; exit 0",
        s.path("pids").display(),
        s.path("trapped").display()
    );
    let mut m = Manager::plain(&sh_args(&[NO_CONFIG, "--stop-timeout", "1s"], &script));
    assert_eq!(m.exit_code(), 0, "the child's code, after the cleanup");
    let pids: Vec<i32> = s
        .lines("pids")
        .iter()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 2);
    for pid in pids {
        assert!(!alive(pid), "grandchild {pid} outlived the manager");
    }
    m.assert_logged("SIGKILL", "the TERM-ignoring one needed SIGKILL");
}

#[test]
fn warn_level_prints_nothing_in_normal_operation() {
    if qemu_limit(QEMU_NO_SUBREAPER) {
        return; // its WARN is printed in normal operation there
    }
    let mut m = Manager::start_with(
        &[NO_CONFIG, "--", "/bin/sh", "-c", "exit 0"],
        Opts {
            mode: Mode::Plain,
            env: vec![("FLUSH_MANAGER_LOG", "warn")],
            ..Opts::default()
        },
    );
    assert_eq!(m.exit_code(), 0);
    assert_eq!(m.log(), "");
    // The flag wins over the environment.
    let mut m = Manager::start_with(
        &["--log-level", "info", NO_CONFIG, "--", "/bin/true"],
        Opts {
            mode: Mode::Plain,
            env: vec![("FLUSH_MANAGER_LOG", "warn")],
            ..Opts::default()
        },
    );
    assert_eq!(m.exit_code(), 0);
    let log = m.log();
    for line in [
        "[flush-manager] INFO: === Flush Manager v",
        "[flush-manager] INFO: PID: ",
        "[flush-manager] INFO: Configuration: command=/bin/true",
        "[flush-manager] INFO: Starting child process: /bin/true",
        "[flush-manager] INFO: Child process started with PID: ",
    ] {
        assert!(log.contains(line), "missing {line:?} in\n{log}");
    }
}

#[test]
fn on_a_terminal_the_child_gets_the_foreground_and_ctrl_c() {
    let s = Scratch::new("tty");
    let fg = s.path("fg");
    // Fields 5 and 8 of /proc/self/stat: process group and the terminal's
    // foreground group.
    let script = format!(
        "read -r _ _ _ _ pgrp _ _ tpgid _ < /proc/$$/stat; echo \"$pgrp $tpgid\" > {}; exec sleep 60",
        fg.display()
    );
    if !require_tool("script", "bsdutils") {
        return;
    }
    let line = format!(
        "exec {BIN} --config= -- /bin/sh -c '{}'",
        script.replace('\'', "'\\''")
    );
    let mut term = std::process::Command::new("script")
        .args(["-qefc", &line, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("script (util-linux)");
    assert!(s.wait_contains("fg", " "), "the child never ran on the tty");
    let text = s.read("fg");
    let mut f = text.split_whitespace();
    let (pgrp, tpgid) = (f.next().unwrap(), f.next().unwrap());
    assert_eq!(
        pgrp, tpgid,
        "the child's group is the terminal's foreground group"
    );
    // Ctrl-C typed on the terminal reaches the child: it dies of SIGINT.
    let mut stdin = term.stdin.take().unwrap();
    stdin.write_all(b"\x03").unwrap();
    stdin.flush().unwrap();
    let mut status = None;
    wait_for(LONG, || {
        status = term.try_wait().unwrap();
        status.is_some()
    });
    let _ = term.kill();
    let status = status.expect("Ctrl-C did not end the manager");
    assert_eq!(status.code(), Some(130));
}

#[test]
fn remap_exit_turns_a_clean_docker_stop_into_success() {
    let mut m = Manager::plain(&[NO_CONFIG, "--remap-exit", "143:0", "--", "/bin/sleep", "60"]);
    assert!(m.wait_log("Child process started"));
    m.signal(libc::SIGTERM);
    assert_eq!(m.exit_code(), 0);
    let mut m = Manager::plain(&[
        NO_CONFIG,
        "--remap-exit=3:0",
        "--remap-exit",
        "4:9",
        "--",
        "/bin/sh",
        "-c",
        "exit 4",
    ]);
    assert_eq!(m.exit_code(), 9);
}

#[test]
fn every_flag_can_come_from_the_environment_and_the_command_line_wins() {
    let env = |vars: Vec<(&'static str, &'static str)>, args: &[&str]| {
        Manager::start_with(
            args,
            Opts {
                mode: Mode::Plain,
                env: vars,
                ..Opts::default()
            },
        )
    };
    let mut m = env(
        vec![
            ("FLUSH_MANAGER_COMMAND", "/bin/sleep"),
            ("FLUSH_MANAGER_REMAP_EXIT", "143:5"),
            ("FLUSH_MANAGER_CONFIG", ""),
        ],
        &["--", "/bin/sleep", "60"],
    );
    assert!(m.wait_log("Child process started"));
    m.signal(libc::SIGTERM);
    assert_eq!(m.exit_code(), 5);
    // An invalid value is an error at startup, not a silent default.
    let mut m = env(
        vec![("FLUSH_MANAGER_STOP_TIMEOUT", "forever")],
        &["--", "/bin/true"],
    );
    assert_eq!(m.exit_code(), 2);
    m.assert_logged(
        "--stop-timeout: invalid duration \"forever\"",
        "a bad duration from the environment",
    );
    // The flag wins.
    let mut m = env(
        vec![("FLUSH_MANAGER_STOP_TIMEOUT", "forever")],
        &["--stop-timeout", "1s", "--config=", "--", "/bin/true"],
    );
    assert_eq!(m.exit_code(), 0);
    // A value that is not UTF-8 is refused by name, not the silent default
    // (found by a hostile test: it counted as unset).
    use std::os::unix::ffi::OsStrExt;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_flush-manager"))
        .args(["--config=", "--", "/bin/true"])
        .env(
            "FLUSH_MANAGER_STOP_TIMEOUT",
            std::ffi::OsStr::from_bytes(b"\xff"),
        )
        .output()
        .expect("run the manager");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("environment variable FLUSH_MANAGER_STOP_TIMEOUT is not valid UTF-8"),
        "{out:?}"
    );
}
