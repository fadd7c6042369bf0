//! Signals the way real servers expect them: the child alone by default,
//! our own signals never forwarded, real-time signals counted, faults sent by
//! others forwarded every time, nothing lost between start and ready. The
//! release binary, as PID 1 of a fresh PID namespace and as a plain process.
// These tests drive Linux itself (PID namespaces, /proc, signalfd).
#![cfg(target_os = "linux")]

mod common;

use common::*;
use nix::libc;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const NO_CONFIG: &str = "--config=";

/// python3 runs the helper children; see `require_tool`.
fn python3() -> Option<&'static str> {
    require_tool("python3", "python3").then_some("python3")
}

/// A child that appends the name of each of `sigs` it gets to `out`, after
/// "ready".
fn trapper(out: &Path, sigs: &[&str]) -> String {
    TrapChild::new(out).record(sigs).ready("ready").script()
}

fn count_lines(s: &Scratch, name: &str, line: &str) -> usize {
    s.lines(name).iter().filter(|l| *l == line).count()
}

/// CPU time (user + system) of `pid` in clock ticks.
fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return 0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat; 12 and 13 after ")".
    f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

#[test]
fn by_default_signals_reach_the_child_alone_and_with_group_every_process() {
    for mode in both_modes("by_default_signals_reach_the_child_alone") {
        for (flag, grandchild_gets_it) in [(None, false), (Some("--signal-to=group"), true)] {
            let s = Scratch::new("target");
            let out = s.path("m");
            let grandchild = TrapChild::new(&out)
                .record_as("USR1", "grandchild-got")
                .ready("grandchild-armed")
                .script();
            let script = TrapChild::new(&out)
                .first(&format!("sh -c {} &", sh_quote(&grandchild)))
                .record_as("USR1", "child-got")
                .ready("child-armed")
                .script();
            let mut args = vec![NO_CONFIG];
            args.extend(flag);
            args.extend(["--", "/bin/sh", "-c", &script]);
            let mut m = run(mode, &args);
            let has = |line: &str| s.lines("m").iter().any(|l| l == line);
            assert!(wait_for(LONG, || has("child-armed") && has("grandchild-armed")));
            m.signal(libc::SIGUSR1);
            assert!(wait_for(LONG, || has("child-got")), "{mode:?} {flag:?}");
            if grandchild_gets_it {
                assert!(wait_for(LONG, || has("grandchild-got")), "{mode:?}");
            } else {
                // Signals go out one after the other: had the group been
                // addressed, the grandchild would have it by now.
                std::thread::sleep(Duration::from_millis(300));
                assert!(!has("grandchild-got"), "{mode:?}: the group was signalled");
            }
            // Shutdown still ends the whole group (SIGKILL after the timeout
            // for a grandchild that ignores nothing but never exits: it is
            // a leftover of the child, stopped as a group).
            m.signal(libc::SIGTERM);
            assert_eq!(m.exit_code(), 143, "{mode:?} {flag:?}");
            assert!(
                m.log().contains("died of the SIGTERM we sent"),
                "{}",
                m.log()
            );
        }
    }
}

#[test]
#[ignore = "needs python3: apt-get install python3"]
fn prefork_workers_survive_forwarded_and_reload_signals_by_default() {
    let Some(py) = python3() else { return };
    let prefork = helper("prefork.py");
    for mode in both_modes("prefork_workers_survive") {
        for group in [false, true] {
            let s = Scratch::new("prefork");
            let conf = s.path("app.conf");
            std::fs::write(&conf, "v1").unwrap();
            let out = s.path("out");
            let conf_arg = format!("--config={}", conf.display());
            let mut args = vec![
                conf_arg.as_str(),
                "--reload-signal=USR2",
                "--debounce=0",
                "--poll-interval=0",
            ];
            if group {
                args.push("--signal-to=group");
            }
            let out_arg = out.display().to_string();
            args.extend(["--", py, &prefork, &out_arg]);
            let mut m = run(mode, &args);
            assert!(s.wait_contains("out", "ready"), "{}", m.log());
            // Host pids (the child's own view differs as PID 1's child).
            let workers = children_of(m.child_pid());
            assert_eq!(workers.len(), 2, "{workers:?}");
            // A plain `kill -HUP` of the manager, then a config change with
            // --reload-signal USR2: the master handles both.
            m.signal(libc::SIGHUP);
            assert!(s.wait_contains("out", "master SIGHUP"), "{mode:?}");
            assert!(m.wait_log("Watching directory"));
            std::fs::write(&conf, "v2").unwrap();
            assert!(
                s.wait_contains("out", "master SIGUSR2"),
                "{mode:?} {}",
                m.log()
            );
            let all_alive = || workers.iter().all(|w| alive(*w));
            if group {
                assert!(
                    wait_for(LONG, || workers.iter().all(|w| !alive(*w))),
                    "{mode:?}: with --signal-to group the workers die of HUP"
                );
            } else {
                std::thread::sleep(Duration::from_millis(300));
                assert!(
                    all_alive(),
                    "{mode:?}: a worker died of a signal meant for the master"
                );
            }
            m.signal(libc::SIGTERM);
            assert_eq!(m.exit_code(), 0, "{}", m.log());
        }
    }
}

#[test]
fn own_sigpipe_from_a_closed_log_pipe_never_reaches_the_child() {
    for mode in both_modes("own_sigpipe") {
        let s = Scratch::new("epipe");
        let script = format!(
            "echo $$ > {}; while :; do sleep 0.05 & wait $!; done",
            s.path("pid").display()
        );
        // `flush-manager ... 2>&1 | head -n 1`: the reader goes away after
        // the first line; every later log line hits a broken pipe.
        let mut m = Manager::start_with(
            &[NO_CONFIG, "--", "/bin/sh", "-c", &script],
            Opts {
                mode,
                stderr_pipe: true,
                ..Opts::default()
            },
        );
        let mut first = String::new();
        BufReader::new(m.take_stderr())
            .read_line(&mut first)
            .unwrap();
        assert!(first.contains("flush-manager"), "{first}");
        assert!(s.wait_contains("pid", "\n"));
        let child = m.child_pid();
        // More log lines (debug level), each a write to the broken pipe.
        for _ in 0..20 {
            m.signal(libc::SIGWINCH);
        }
        std::thread::sleep(Duration::from_millis(300));
        assert!(alive(child), "{mode:?}: the child died of our SIGPIPE");
        assert!(m.alive(), "{mode:?}: the manager died of its SIGPIPE");
        m.signal(libc::SIGTERM);
        assert_eq!(m.wait_code(LONG), Some(143), "{mode:?}");
    }
}

#[test]
fn a_sigpipe_storm_with_a_closed_stderr_does_not_keep_a_failing_start_alive() {
    for mode in both_modes("sigpipe_storm") {
        let s = Scratch::new("storm");
        let check = format!(
            "/bin/sh -c 'echo up > {}; sleep 1; exit 1'",
            s.path("up").display()
        );
        let mut m = Manager::start_with(
            &[NO_CONFIG, "--validate", &check, "--", "/bin/true"],
            Opts {
                mode,
                stderr_pipe: true,
                ..Opts::default()
            },
        );
        drop(m.take_stderr());
        let pid = m.pid();
        assert!(s.wait_contains("up", "up"));
        let started = Instant::now();
        // SIGPIPE from outside, as fast as we can, until it exits; its own
        // log lines raise more of them.
        while m.alive() && started.elapsed() < LONG {
            // SAFETY: kill(2) on the manager this test started.
            unsafe { libc::kill(pid, libc::SIGPIPE) };
        }
        assert_eq!(
            m.wait_code(Duration::from_secs(1)),
            Some(78),
            "{mode:?}: a failed startup validation must end the manager"
        );
    }
}

#[test]
fn fault_signals_from_others_are_forwarded_every_time() {
    if qemu_limit("qemu-user keeps SIGSEGV/SIGBUS/SIGILL/SIGFPE for the guest's own faults") {
        return;
    }
    for mode in both_modes("fault_signals_forwarded") {
        let s = Scratch::new("faults");
        let out = s.path("m");
        let names = ["SEGV", "BUS", "ILL", "FPE", "ABRT", "TRAP", "SYS"];
        let m = run(
            mode,
            &[NO_CONFIG, "--", "/bin/sh", "-c", &trapper(&out, &names)],
        );
        assert!(s.wait_contains("m", "ready"));
        for (name, sig) in [
            ("SEGV", libc::SIGSEGV),
            ("BUS", libc::SIGBUS),
            ("ILL", libc::SIGILL),
            ("FPE", libc::SIGFPE),
            ("ABRT", libc::SIGABRT),
            ("TRAP", libc::SIGTRAP),
            ("SYS", libc::SIGSYS),
        ] {
            for n in 1..=3 {
                m.signal(sig);
                assert!(
                    wait_for(LONG, || count_lines(&s, "m", name) >= n),
                    "{mode:?}: {name} #{n} was not forwarded\n{}",
                    m.log()
                );
            }
        }
        let mut m = m;
        assert!(m.alive(), "{mode:?}");
    }
}

#[test]
#[ignore = "needs python3: apt-get install python3"]
fn queued_real_time_signals_keep_their_count() {
    if qemu_limit("real-time signal numbers differ by 2 between emulated and native processes") {
        return;
    }
    let Some(py) = python3() else { return };
    let counter = helper("rtcount.py");
    let sig = libc::SIGRTMIN() + 1;
    for mode in both_modes("queued_real_time_signals") {
        let s = Scratch::new("rt");
        let out = s.path("count");
        let (sig_s, out_s) = (sig.to_string(), out.display().to_string());
        let mut m = run(mode, &[NO_CONFIG, "--", py, &counter, &sig_s, &out_s]);
        assert!(s.wait_contains("count", "ready"));
        let pid = m.pid();
        for _ in 0..1000 {
            // SAFETY: kill(2) on the manager this test started.
            assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
        }
        assert!(
            wait_for(LONG, || s.read("count").trim() == "count 1000"),
            "{mode:?}: the child counted {:?} of 1000",
            s.read("count")
        );
        m.signal(libc::SIGTERM);
        assert_eq!(m.exit_code(), 0);
    }
}

/// Found by a hostile test: signals that came while the check before the
/// first start ran were dropped ("No child to send"), though the kernel had
/// kept them for us. They wait for the child, each real-time one counted,
/// as tini's child gets what came before its fork. The manager starts with
/// the signal blocked, so the child inherits it blocked and counts what was
/// pending at its exec instead of dying of it.
#[test]
#[ignore = "needs python3: apt-get install python3"]
fn signals_before_the_first_child_wait_for_it() {
    if qemu_limit("real-time signal numbers differ by 2 between emulated and native processes") {
        return;
    }
    let Some(py) = python3() else { return };
    fn block_rt() -> std::io::Result<()> {
        // SAFETY: async-signal-safe calls between fork and exec.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGRTMIN() + 1);
            libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        }
        Ok(())
    }
    let counter = helper("rtcount.py");
    let sig = libc::SIGRTMIN() + 1;
    for mode in both_modes("signals_before_the_first_child") {
        let s = Scratch::new("early");
        let out = s.path("count");
        let check = format!("/bin/sh -c 'echo up > {}; sleep 2'", s.path("up").display());
        let (sig_s, out_s) = (sig.to_string(), out.display().to_string());
        let mut m = Manager::start_with(
            &[
                NO_CONFIG,
                "--validate",
                &check,
                "--",
                py,
                &counter,
                &sig_s,
                &out_s,
            ],
            Opts {
                mode,
                pre_exec: Some(block_rt),
                ..Opts::default()
            },
        );
        assert!(s.wait_contains("up", "up"), "{}", m.log());
        let pid = m.pid();
        for _ in 0..100 {
            // SAFETY: kill(2) on the manager this test started.
            assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
        }
        assert!(
            !s.read("count").contains("ready"),
            "{mode:?}: the child ran before the check ended; the test proves nothing"
        );
        assert!(
            wait_for(LONG, || s.read("count").trim() == "count 100"),
            "{mode:?}: the child counted {:?} of 100\n{}",
            s.read("count"),
            m.log()
        );
        m.signal(libc::SIGTERM);
        assert_eq!(m.exit_code(), 0);
    }
}

/// Found by the next hostile test: a held SIGHUP went to the child the
/// instant it started, before it could install its handler, and killed it
/// (the manager exited 129). One the newborn would die of is dropped, with
/// a WARN saying so.
#[test]
fn a_held_signal_the_newborn_would_die_of_is_dropped_not_sent() {
    for mode in both_modes("a_held_signal_the_newborn") {
        let s = Scratch::new("held-hup");
        let check = format!("/bin/sh -c 'echo up > {}; sleep 1'", s.path("up").display());
        // Its handler comes half a second after it starts.
        let script = TrapChild::new(&s.path("out"))
            .first("sleep 0.5")
            .record(&["HUP"])
            .ready("ready")
            .script();
        let mut m = run(mode, &sh_args(&[NO_CONFIG, "--validate", &check], &script));
        assert!(s.wait_contains("up", "up"), "{}", m.log());
        m.signal(libc::SIGHUP);
        assert!(s.wait_contains("out", "ready"), "{mode:?}: {}", m.log());
        assert!(m.wait_log("Dropped SIGHUP"), "{mode:?}: {}", m.log());
        // Alive and still taking what comes now.
        m.signal(libc::SIGHUP);
        assert!(s.wait_contains("out", "HUP"), "{mode:?}: {}", m.log());
        m.signal(libc::SIGTERM);
        assert_eq!(m.exit_code(), 143, "{mode:?}: {}", m.log());
    }
}

#[test]
fn a_stopped_child_still_stops_gracefully() {
    for mode in both_modes("a_stopped_child_still_stops_gracefully") {
        let s = Scratch::new("stopped");
        let script = TrapChild::new(&s.path("pid"))
            .on_term("exit 0")
            .ready("$$")
            .script();
        let mut m = run(mode, &sh_args(&[NO_CONFIG, "--stop-timeout=20s"], &script));
        assert!(s.wait_contains("pid", "\n"));
        let child = m.child_pid();
        // SAFETY: kill(2) on the test's own grandchild.
        unsafe { libc::kill(child, libc::SIGSTOP) };
        assert!(wait_for(LONG, || {
            std::fs::read_to_string(format!("/proc/{child}/stat"))
                .is_ok_and(|st| st.rfind(')').is_some_and(|i| st[i + 2..].starts_with('T')))
        }));
        m.signal(libc::SIGTERM);
        // The trap ran (exit 0): SIGCONT followed the stop signal. Without
        // it, only SIGKILL after the timeout ends the child (137).
        assert_eq!(m.exit_code(), 0, "{mode:?}\n{}", m.log());
    }
}

#[test]
fn a_running_child_sees_exactly_the_signals_it_was_sent() {
    // dumb-init's own test: each signal sent is the next one the child
    // reads. SIGCONT goes only to a stopped child (the test above).
    for to in ["child", "group"] {
        for mode in both_modes("a_running_child_sees_exactly_the_signals_it_was_sent") {
            let s = Scratch::new("no-cont");
            let out = s.path("got");
            let script = TrapChild::new(&out)
                .record(&["INT", "CONT", "TERM"])
                .on_term("exit 0")
                .ready("ready")
                .script();
            let signal_to = format!("--signal-to={to}");
            let mut m = run(
                mode,
                &[NO_CONFIG, &signal_to, "--", "/bin/sh", "-c", &script],
            );
            assert!(s.wait_contains("got", "ready"), "{}", m.log());
            // SIGINT stops the child with SIGINT; it only notes it.
            m.signal(libc::SIGINT);
            assert!(s.wait_contains("got", "INT"), "{}", m.log());
            m.signal(libc::SIGTERM);
            assert_eq!(m.exit_code(), 0, "{to} {mode:?}\n{}", m.log());
            assert_eq!(
                s.lines("got"),
                ["ready", "INT", "TERM"],
                "{to} {mode:?}: a signal nobody sent"
            );
        }
    }
}

#[test]
fn too_few_file_descriptors_leave_no_process_behind() {
    for limit in 5..=11u64 {
        let s = Scratch::new("nofile");
        let marker = format!("fm-nofile-{}-{limit}", std::process::id());
        let script = format!(
            "echo up > {}; exec -a {marker} sleep 60",
            s.path("up").display()
        );
        let m = Manager::start_with(
            &[NO_CONFIG, "--", "/bin/bash", "-c", &script],
            Opts {
                mode: Mode::Plain,
                nofile: Some(limit),
                ..Opts::default()
            },
        );
        let mut m = m;
        // Either it refuses to start (exit 1, nothing spawned), or it runs
        // normally and stops normally.
        assert!(wait_for(LONG, || !m.alive() || !s.read("up").is_empty()));
        if m.alive() {
            m.signal(libc::SIGTERM);
            assert_eq!(m.exit_code(), 143, "ulimit -n {limit}\n{}", m.log());
        } else {
            assert_eq!(m.exit_code(), 1, "ulimit -n {limit}\n{}", m.log());
            assert!(m.log().contains("Cannot start"), "{}", m.log());
            assert!(
                s.read("up").is_empty(),
                "ulimit -n {limit}: a child was started"
            );
        }
        assert!(
            wait_for(LONG, || processes_named(&marker).is_empty()),
            "ulimit -n {limit}: the child outlived the manager"
        );
    }
}

#[test]
fn a_reload_signal_before_the_childs_handler_restarts_instead_of_killing() {
    for mode in both_modes("reload_before_handler") {
        let s = Scratch::new("early");
        let conf = s.path("app.conf");
        std::fs::write(&conf, "v1").unwrap();
        let starts = s.path("starts");
        let gate = s.path("gate");
        // The handler comes only once the test creates `gate` (a slow
        // import, a `--preload`): until then HUP would kill the child.
        let script = TrapChild::new(&starts)
            .on_start("start")
            .first(&format!(
                "while [ ! -e {} ]; do sleep 0.05; done",
                gate.display()
            ))
            .record_as("HUP", "hup")
            .ready("armed")
            .script();
        let conf_arg = format!("--config={}", conf.display());
        let flags = [conf_arg.as_str(), "--reload-signal=HUP", "--debounce=0"];
        let mut m = run(mode, &sh_args(&flags, &script));
        assert!(s.wait_contains("starts", "start"));
        assert!(m.wait_log("Watching directory"));
        std::fs::write(&conf, "v2").unwrap();
        assert!(
            m.wait_log("does not handle SIGHUP"),
            "{mode:?}\n{}",
            m.log()
        );
        assert!(wait_for(LONG, || count_lines(&s, "starts", "start") == 2));
        assert!(m.alive(), "{mode:?}: a reload killed the container");
        // Once it handles HUP, a change is a reload again.
        std::fs::write(&gate, "").unwrap();
        assert!(s.wait_contains("starts", "armed"));
        std::fs::write(&conf, "v3").unwrap();
        assert!(s.wait_contains("starts", "hup"), "{}", m.log());
        assert_eq!(count_lines(&s, "starts", "start"), 2);
        m.signal(libc::SIGTERM);
        assert_eq!(m.exit_code(), 143);
    }
}

#[test]
fn the_restart_signal_restarts_and_is_not_forwarded() {
    for mode in both_modes("restart_signal") {
        let s = Scratch::new("rsig");
        let conf = s.path("app.conf");
        std::fs::write(&conf, "v1").unwrap();
        let starts = s.path("starts");
        let script = TrapChild::new(&starts)
            .on_start("start")
            .record_as("USR2", "usr2")
            .on_term("exit 0")
            .script();
        let conf_arg = format!("--config={}", conf.display());
        let mut m = run(
            mode,
            &sh_args(&[&conf_arg, "--restart-signal=USR2"], &script),
        );
        assert!(s.wait_contains("starts", "start"));
        m.signal(libc::SIGUSR2);
        assert!(
            wait_for(LONG, || count_lines(&s, "starts", "start") == 2),
            "{}",
            m.log()
        );
        assert!(
            !s.read("starts").contains("usr2"),
            "the restart signal was forwarded"
        );
        assert!(m.alive());
        m.signal(libc::SIGTERM);
        assert_eq!(m.exit_code(), 0);

        // With --validate, a failing check keeps the running child.
        let mut m = run(
            mode,
            &[
                &conf_arg,
                "--restart-signal=USR2",
                "--validate",
                &format!("/bin/sh -c 'test ! -e {}'", s.path("bad").display()),
                "--",
                "/bin/sh",
                "-c",
                &script,
            ],
        );
        assert!(wait_for(LONG, || count_lines(&s, "starts", "start") == 3));
        std::fs::write(s.path("bad"), "").unwrap();
        m.signal(libc::SIGUSR2);
        assert!(m.wait_log("Config validation failed"), "{}", m.log());
        assert_eq!(count_lines(&s, "starts", "start"), 3);
        m.signal(libc::SIGTERM);
        assert_eq!(m.exit_code(), 0);
    }
}

#[test]
fn stop_delay_lets_the_child_serve_until_it_ends_or_is_cut_short() {
    for mode in both_modes("stop_delay") {
        let s = Scratch::new("delay");
        let out = s.path("m");
        let script = trapper(&out, &["TERM", "USR1"]);
        // A second SIGTERM, or a SIGINT, ends the delay at once.
        for second in [libc::SIGTERM, libc::SIGINT] {
            let _ = std::fs::remove_file(&out);
            let mut m = run(
                mode,
                &[
                    NO_CONFIG,
                    "--stop-delay=1h",
                    "--stop-timeout=1s",
                    "--",
                    "/bin/sh",
                    "-c",
                    &script,
                ],
            );
            assert!(s.wait_contains("m", "ready"));
            m.signal(libc::SIGTERM);
            assert!(m.wait_log("--stop-delay"));
            // Still served and transparent during the delay; USR1 after TERM
            // arrives first, so TERM was not sent.
            m.signal(libc::SIGUSR1);
            assert!(s.wait_contains("m", "USR1"));
            assert!(!s.read("m").contains("TERM"), "{mode:?}: no delay");
            m.signal(second);
            // The child survives TERM (trapped): SIGKILL ends it; INT kills it.
            let code = if second == libc::SIGTERM { 137 } else { 130 };
            assert_eq!(m.exit_code(), code, "{mode:?}\n{}", m.log());
            if second == libc::SIGTERM {
                assert!(s.read("m").contains("TERM"));
            }
        }
        // A delay that runs out sends the stop signal.
        let _ = std::fs::remove_file(&out);
        let graceful = TrapChild::new(&out)
            .record(&["TERM"])
            .on_term("exit 0")
            .ready("ready")
            .script();
        let mut m = run(
            mode,
            &sh_args(&[NO_CONFIG, "--stop-delay=200ms"], &graceful),
        );
        assert!(s.wait_contains("m", "ready"));
        m.signal(libc::SIGTERM);
        assert_eq!(m.exit_code(), 0, "{}", m.log());
        assert!(s.read("m").contains("TERM"));
    }
}

#[test]
fn map_signal_rewrites_and_drops() {
    for mode in both_modes("map_signal") {
        let s = Scratch::new("map");
        let out = s.path("m");
        let script = trapper(&out, &["HUP", "USR1", "USR2", "WINCH"]);
        let mut m = run(
            mode,
            &[
                NO_CONFIG,
                "--map-signal=USR1:HUP",
                "--map-signal",
                "WINCH:none",
                "--",
                "/bin/sh",
                "-c",
                &script,
            ],
        );
        assert!(s.wait_contains("m", "ready"));
        m.signal(libc::SIGUSR1);
        assert!(s.wait_contains("m", "HUP"));
        m.signal(libc::SIGWINCH);
        // Signals are forwarded in order: once USR2 is in, a WINCH would be too.
        m.signal(libc::SIGUSR2);
        assert!(s.wait_contains("m", "USR2"));
        assert!(!s.read("m").contains("WINCH"), "WINCH:none still forwarded");
        assert!(!s.read("m").contains("USR1"), "USR1 was not mapped");
        m.signal(libc::SIGTERM);
        assert_eq!(m.exit_code(), 143);
    }
}

/// Runs `line` under `script` (a pseudo-terminal); returns it with stdin piped.
fn on_a_terminal(line: &str) -> Option<std::process::Child> {
    if !require_tool("script", "bsdutils") {
        return None;
    }
    let child = Command::new("script")
        .args(["-qefc", line, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("script (util-linux)");
    Some(child)
}

use std::os::unix::process::CommandExt;

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[test]
fn started_in_the_background_the_manager_leaves_the_shell_its_terminal() {
    let s = Scratch::new("bg");
    let (up, fg) = (s.path("up"), s.path("fg"));
    let child = format!("echo up > {}; exec sleep 60", up.display());
    let shell = format!(
        "set -m; {BIN} --config= -- /bin/sh -c {child} & \
         while [ ! -s {up} ]; do sleep 0.05; done; sleep 0.2; \
         read -r _ _ _ _ pgrp _ _ tpgid _ < /proc/$$/stat; echo \"$pgrp $tpgid\" > {fg}; kill -TERM $!; wait",
        child = sh_quote(&child),
        up = up.display(),
        fg = fg.display()
    );
    let Some(mut term) = on_a_terminal(&format!("/bin/sh -c {}", sh_quote(&shell))) else {
        return;
    };
    let ok = s.wait_contains("fg", " ");
    let _ = term.wait();
    assert!(ok, "the shell never reported");
    let text = s.read("fg");
    let f: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(
        f[0], f[1],
        "the shell lost its terminal to a background manager's child"
    );
}

#[test]
fn ctrl_c_on_the_terminal_exits_130_even_with_restart_always() {
    let s = Scratch::new("ctrlc");
    let starts = s.path("starts");
    let child = format!("echo start >> {}; exec sleep 60", starts.display());
    let line = format!(
        "exec {BIN} --config= --restart=always -- /bin/sh -c {}",
        sh_quote(&child)
    );
    let Some(mut term) = on_a_terminal(&line) else {
        return;
    };
    assert!(s.wait_contains("starts", "start"));
    let mut stdin = term.stdin.take().unwrap();
    stdin.write_all(b"\x03").unwrap();
    stdin.flush().unwrap();
    let mut status = None;
    wait_for(LONG, || {
        status = term.try_wait().unwrap();
        status.is_some()
    });
    if status.is_none() {
        // SAFETY: kill(2) on the group of the `script` this test started.
        unsafe { libc::kill(-(term.id() as i32), libc::SIGKILL) };
    }
    let status = status.expect("Ctrl-C did not end the manager");
    assert_eq!(status.code(), Some(130));
    assert_eq!(s.lines("starts").len(), 1, "restarted after Ctrl-C");
}

#[test]
fn tostop_on_the_terminal_does_not_make_the_manager_spin() {
    let s = Scratch::new("tostop");
    let conf = s.path("app.conf");
    std::fs::write(&conf, "v1").unwrap();
    let starts = s.path("starts");
    let child = format!("echo start $$ >> {}; exec sleep 60", starts.display());
    // A foreground job of a job-control shell, as typed at a prompt: its
    // process group is not orphaned, so a background write with `tostop`
    // raises SIGTTOU instead of failing with EIO.
    let job = format!(
        "set -m; stty tostop; {BIN} --config={} --debounce=0 --log-level=debug -- /bin/sh -c {}; echo done",
        conf.display(),
        sh_quote(&child)
    );
    let line = format!("/bin/sh -c {}", sh_quote(&job));
    let Some(mut term) = on_a_terminal(&line) else {
        return;
    };
    assert!(s.wait_contains("starts", "start"));
    let manager = parent_of(
        s.read("starts")
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap(),
    );
    // Its child holds the terminal now: every log line is a background write.
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(&conf, "v2").unwrap();
    let restarted = wait_for(LONG, || s.lines("starts").len() == 2);
    let before = cpu_ticks(manager);
    std::thread::sleep(Duration::from_secs(1));
    let spent = cpu_ticks(manager).saturating_sub(before);
    // SAFETY: kill(2) on processes this test started.
    unsafe {
        libc::kill(manager, libc::SIGTERM);
    }
    let ok = wait_for(LONG, || term.try_wait().ok().flatten().is_some());
    if !ok {
        // SAFETY: kill(2) on what this test started: the manager and its
        // child (job control put them in groups of their own), then `script`.
        unsafe {
            for pid in children_of(manager) {
                libc::kill(-pid, libc::SIGKILL);
            }
            libc::kill(manager, libc::SIGKILL);
            libc::kill(-(term.id() as i32), libc::SIGKILL);
        }
        let _ = term.wait();
    }
    assert!(restarted, "a config change was not applied");
    // A spin is ~100 ticks a second; an idle manager 0.
    assert!(spent < 30, "the manager used {spent} ticks in 1 s");
    assert!(ok, "the manager did not exit on SIGTERM");
}
