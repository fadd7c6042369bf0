//! Issue #19: the binary under the names tini, tini-static, docker-init and
//! dumb-init (symlinks made here), with those tools' flags and variables,
//! does what their users rely on: exit codes, signals to the child or the
//! group, rewrites, remaps, orphans, the parent-death signal, quiet logs.
// These tests drive Linux itself (PID namespaces, /proc, PR_SET_PDEATHSIG).
#![cfg(target_os = "linux")]

mod common;

use common::*;
use nix::libc;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const NAMES: [&str; 4] = ["tini", "tini-static", "docker-init", "dumb-init"];

/// The argv that runs the binary as `name` (a symlink in `s`), in `mode`,
/// with `vars` set and the test harness's FLUSH_MANAGER_LOG taken away,
/// so the tool's own quiet default shows.
fn as_tool(s: &Scratch, name: &str, mode: Mode, vars: &[(&str, &str)]) -> Vec<String> {
    let link = s.path(name);
    if !link.exists() {
        std::os::unix::fs::symlink(BIN, &link).expect("symlink to the binary");
    }
    let mut argv: Vec<String> = match mode {
        Mode::Pid1 => unshare_prefix()
            .expect("caller checks pid1_or_skip")
            .iter()
            .map(|a| a.to_string())
            .collect(),
        Mode::Plain => vec![],
    };
    argv.extend(["env", "-u", "FLUSH_MANAGER_LOG"].map(String::from));
    argv.extend(vars.iter().map(|(k, v)| format!("{k}={v}")));
    argv.push(link.to_string_lossy().into_owned());
    argv
}

fn start_as(s: &Scratch, name: &str, mode: Mode, vars: &[(&str, &str)], args: &[&str]) -> Manager {
    Manager::start_with(
        args,
        Opts {
            mode,
            launcher: Some(as_tool(s, name, mode, vars)),
            ..Opts::default()
        },
    )
}

/// Writes an executable shell script `name` into `s`; returns its path.
fn script(s: &Scratch, name: &str, body: &str) -> String {
    let path = s.path(name);
    fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
    let mut perm = fs::metadata(&path).expect("script").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    fs::set_permissions(&path, perm).expect("chmod");
    path.to_string_lossy().into_owned()
}

/// Writes the child `traps` describes (reporting to "out") into `s` as
/// the script `child.sh`; it appends "ready" once its traps are set.
/// Returns its path.
fn trap_script(s: &Scratch, traps: TrapChild) -> String {
    script(s, "child.sh", &traps.ready("ready").script())
}

/// Waits until the child of `trap_script` is ready.
fn wait_ready(s: &Scratch, m: &Manager) {
    let ready = || s.lines("out").iter().any(|l| l == "ready");
    assert!(wait_for(LONG, ready), "{}", m.log());
}

/// Log lines of a level (the manager's own, `[flush-manager] LEVEL:`).
fn lines_at(log: &str, level: &str) -> Vec<String> {
    let tag = format!("[flush-manager] {level}:");
    log.lines()
        .filter(|l| l.contains(&tag))
        .map(String::from)
        .collect()
}

/// Exit codes pass through under every name, 128+N for a death by signal
/// N, tini's -e turns the named code into 0 and no other; and nothing is
/// logged below WARN by default.
#[test]
fn exit_codes_128_plus_n_and_tinis_e_under_every_name_quietly() {
    if pid1_or_skip("exit codes as tini").is_none() {
        return;
    }
    let s = Scratch::new("dropin-exit");
    for name in NAMES {
        for (args, want) in [
            (vec!["--", "/bin/sh", "-c", "exit 3"], 3),
            (vec!["--", "/bin/sh", "-c", "kill -TERM $$"], 143),
            (vec!["--", "/bin/sh", "-c", "kill -KILL $$"], 137),
            (vec!["-e", "143", "--", "/bin/sh", "-c", "kill -TERM $$"], 0),
            (vec!["-e", "3", "/bin/sh", "-c", "exit 3"], 0),
            (vec!["-e3", "--", "/bin/sh", "-c", "exit 4"], 4),
        ] {
            let mut m = start_as(&s, name, Mode::Pid1, &[], &args);
            assert_eq!(m.exit_code(), want, "{name} {args:?}\n{}", m.log());
            let log = m.log();
            for level in ["INFO", "DEBUG", "TRACE"] {
                assert!(
                    lines_at(&log, level).is_empty(),
                    "{name} {args:?} logged at {level}:\n{log}"
                );
            }
        }
    }
}

/// Under those names nothing is watched without --config: Docker's
/// `docker-init -- cmd` has no "Watching" line even at INFO. Under the
/// normal name, a missing legacy default is announced in one INFO line.
#[test]
fn docker_init_watches_nothing_and_the_normal_name_says_what_it_waits_for() {
    if pid1_or_skip("docker-init watches nothing").is_none() {
        return;
    }
    let s = Scratch::new("dropin-watch");
    let cmd = ["/bin/sh", "-c", "echo child-ran"];
    for (name, vars, flags) in [
        ("docker-init", vec![], vec!["-v"]),
        ("tini", vec![("TINI_VERBOSITY", "2")], vec![]),
        ("dumb-init", vec![("DUMB_INIT_DEBUG", "1")], vec![]),
    ] {
        let args: Vec<&str> = flags.into_iter().chain(["--"]).chain(cmd).collect();
        let mut m = start_as(&s, name, Mode::Pid1, &vars, &args);
        assert_eq!(m.exit_code(), 0, "{name}\n{}", m.log());
        let log = m.log();
        assert!(log.contains("child-ran"), "{name}\n{log}");
        assert!(
            !lines_at(&log, "INFO").is_empty(),
            "{name} {vars:?}: asked for INFO lines, got none:\n{log}"
        );
        assert!(
            !log.contains("Watching"),
            "{name} watched something:\n{log}"
        );
        assert!(!log.contains("does not exist"), "{name}:\n{log}");
    }
    if Path::new("/usr/local/bin/conf/exporter.conf").exists() {
        return; // the legacy default exists here: nothing to announce
    }
    let args: Vec<&str> = ["--poll-interval", "0", "--"]
        .into_iter()
        .chain(cmd)
        .collect();
    let mut m = Manager::start(&args);
    assert_eq!(m.exit_code(), 0, "{}", m.log());
    let log = m.log();
    let said: Vec<String> = lines_at(&log, "INFO")
        .into_iter()
        .filter(|l| l.contains("No --config given"))
        .collect();
    assert_eq!(said.len(), 1, "{log}");
    // One line, not that one and the watcher's own.
    let missing = lines_at(&log, "INFO")
        .into_iter()
        .filter(|l| l.contains("does not exist"))
        .count();
    assert_eq!(missing, 1, "{log}");
    assert!(
        said[0].contains("/usr/local/bin/conf/exporter.conf") && said[0].contains("--config ''"),
        "{}",
        said[0]
    );
}

/// A child that records USR1 in `out` ("child"), with a grandchild in its
/// process group that records it too ("grandchild").
fn family(s: &Scratch, out: &Path) -> String {
    let out = out.display();
    script(
        s,
        "family.sh",
        &format!(
            "trap 'echo child >> {out}' USR1\n\
             /bin/sh -c 'trap \"echo grandchild >> {out}\" USR1; echo grand-ready >> {out}; \
             while :; do sleep 0.05 & wait $!; done' &\n\
             echo child-ready >> {out}\n\
             while :; do sleep 0.05 & wait $!; done"
        ),
    )
}

/// A name, its flags, its variables, and whether the group gets signals.
type Case<'a> = (&'a str, &'a [&'a str], &'a [(&'a str, &'a str)], bool);

/// Who gets a forwarded signal: tini's default the child alone, -g or
/// TINI_KILL_PROCESS_GROUP the group; dumb-init's default the group, -c,
/// --single-child or DUMB_INIT_SETSID=0 the child alone.
#[test]
fn signals_go_to_the_child_or_the_group_as_each_tool_says() {
    if pid1_or_skip("signal targets").is_none() {
        return;
    }
    let s = Scratch::new("dropin-target");
    let cases: [Case; 8] = [
        ("tini", &[], &[], false),
        ("tini", &["-g"], &[], true),
        (
            "tini-static",
            &[],
            &[("TINI_KILL_PROCESS_GROUP", "1")],
            true,
        ),
        ("dumb-init", &[], &[], true),
        ("dumb-init", &["-c"], &[], false),
        ("dumb-init", &["--single-child"], &[], false),
        ("dumb-init", &[], &[("DUMB_INIT_SETSID", "0")], false),
        ("docker-init", &["-sg"], &[], true),
    ];
    for (i, (name, flags, vars, group)) in cases.into_iter().enumerate() {
        let out = s.path(&format!("out{i}"));
        let child = family(&s, &out);
        let args: Vec<&str> = flags
            .iter()
            .copied()
            .chain(["--", child.as_str()])
            .collect();
        let mut m = start_as(&s, name, Mode::Pid1, vars, &args);
        let read = || fs::read_to_string(&out).unwrap_or_default();
        assert!(
            wait_for(LONG, || read().contains("child-ready")
                && read().contains("grand-ready")),
            "{name} {flags:?}: {}",
            m.log()
        );
        m.signal(libc::SIGUSR1);
        assert!(
            wait_for(LONG, || read().lines().any(|l| l == "child")),
            "{name} {flags:?} {vars:?}: the child never got USR1\n{}",
            m.log()
        );
        if group {
            assert!(
                wait_for(LONG, || read().contains("grandchild")),
                "{name} {flags:?} {vars:?}: the group did not get USR1"
            );
        } else {
            // Delivered to the child: a grandchild sent it at the same
            // time would have run its trap within this grace.
            std::thread::sleep(Duration::from_secs(1));
            assert!(
                !read().contains("grandchild"),
                "{name} {flags:?} {vars:?}: USR1 reached the grandchild"
            );
        }
        m.signal(libc::SIGTERM);
        assert!(m.wait_code(LONG).is_some(), "{name}: did not stop");
    }
}

/// dumb-init's -r: FROM:TO rewrites a forwarded signal, TO 0 drops it, and
/// 15:TO changes the signal that stops the child.
#[test]
fn dumb_init_rewrites_and_drops_signals() {
    if pid1_or_skip("dumb-init -r").is_none() {
        return;
    }
    let s = Scratch::new("dropin-rewrite");
    let out = s.path("out");
    let child = trap_script(
        &s,
        TrapChild::new(&out)
            .record(&["USR1", "USR2", "WINCH", "HUP", "QUIT", "TERM"])
            .on("QUIT", "exit 0")
            .on_term("exit 0"),
    );
    let usr1_to_usr2 = format!("{}:{}", libc::SIGUSR1, libc::SIGUSR2);
    let drop_winch = format!("{}:0", libc::SIGWINCH);
    let term_to_quit = format!("{}:{}", libc::SIGTERM, libc::SIGQUIT);
    let mut m = start_as(
        &s,
        "dumb-init",
        Mode::Pid1,
        &[],
        &[
            "-c",
            "-r",
            &usr1_to_usr2,
            "--rewrite",
            &drop_winch,
            "-r",
            &term_to_quit,
            &child,
        ],
    );
    wait_ready(&s, &m);
    let lines = || s.lines("out");
    m.signal(libc::SIGUSR1);
    assert!(
        wait_for(LONG, || lines().contains(&"USR2".into())),
        "{:?}\n{}",
        lines(),
        m.log()
    );
    m.signal(libc::SIGWINCH);
    m.signal(libc::SIGHUP);
    assert!(
        wait_for(LONG, || lines().contains(&"HUP".into())),
        "{:?}",
        lines()
    );
    m.signal(libc::SIGTERM);
    assert_eq!(m.exit_code(), 0, "{:?}\n{}", lines(), m.log());
    let seen = lines();
    assert!(
        seen.contains(&"QUIT".into()),
        "SIGTERM was not rewritten to QUIT: {seen:?}"
    );
    for never in ["USR1", "WINCH", "TERM"] {
        assert!(
            !seen.contains(&never.into()),
            "{never} reached the child: {seen:?}"
        );
    }
}

/// tini's -s, not PID 1: an orphan of the child is adopted by the manager
/// (not by the host's init), and with -w its reaping is a WARN line, even
/// at tini's quiet default.
#[test]
fn subreaper_adopts_orphans_and_w_warns_when_reaping() {
    if qemu_limit(QEMU_NO_SUBREAPER) {
        return;
    }
    let s = Scratch::new("dropin-reap");
    let pidfile = s.path("orphan.pid");
    // The middle shell starts the orphan-to-be and exits at once; the
    // orphan writes its pid, lives until `go` exists, then exits.
    let child = script(
        &s,
        "child.sh",
        &format!(
            "/bin/sh -c '/bin/sh -c \"echo \\$\\$ > {pid}; while [ ! -e {go} ]; do sleep 0.05; done\" &'\n\
             while :; do sleep 0.05 & wait $!; done",
            pid = pidfile.display(),
            go = s.path("go").display()
        ),
    );
    let mut m = start_as(&s, "tini", Mode::Plain, &[], &["-s", "-w", "--", &child]);
    let mut orphan = 0;
    assert!(
        wait_for(LONG, || {
            orphan = s.read("orphan.pid").trim().parse().unwrap_or(0);
            orphan != 0 && parent_of(orphan) == m.pid()
        }),
        "orphan {orphan} has parent {}, not the manager {}\n{}",
        parent_of(orphan),
        m.pid(),
        m.log()
    );
    fs::write(s.path("go"), "").expect("write go");
    let line = format!("WARN: Reaped zombie process with pid={orphan}");
    assert!(m.wait_log(&line), "no {line:?}:\n{}", m.log());
    assert!(lines_at(&m.log(), "INFO").is_empty(), "{}", m.log());
    m.signal(libc::SIGTERM);
    assert!(m.wait_code(LONG).is_some());
}

/// Kills what a test started by hand if it fails half-way.
struct Reap(Vec<i32>);

impl Drop for Reap {
    fn drop(&mut self) {
        for &pid in &self.0 {
            // SAFETY: kill(2) on processes this test started.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

/// tini's -p: when the manager's parent dies, the kernel sends the manager
/// the signal, and the manager stops its child as that signal says.
#[test]
fn parent_death_signal_stops_the_child_when_the_parent_dies() {
    let s = Scratch::new("dropin-pdeath");
    let out = s.path("out");
    let child = trap_script(&s, TrapChild::new(&out).record(&["TERM"]).on_term("exit 0"));
    let tini = as_tool(&s, "tini", Mode::Plain, &[]).join(" ");
    let mgr_pid = s.path("manager.pid");
    // The parent: a shell that starts the manager, says its pid, waits.
    let mut parent = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!(
            "{tini} -p SIGTERM -- {child} 2>> {log} & echo $! > {pid}; wait",
            log = s.path("log").display(),
            pid = mgr_pid.display()
        ))
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn the parent shell");
    let mut guard = Reap(vec![]);
    let mut manager = 0;
    assert!(wait_for(LONG, || {
        manager = s.read("manager.pid").trim().parse().unwrap_or(0);
        manager != 0
    }));
    guard.0.push(manager);
    assert!(
        wait_for(LONG, || s.read("out").contains("ready")),
        "{}",
        s.read("log")
    );
    let child_pid = children_of(manager).first().copied().unwrap_or(0);
    guard.0.push(child_pid);
    assert!(alive(manager));
    let _ = parent.kill();
    let _ = parent.wait();
    assert!(
        wait_for(LONG, || s.read("out").contains("TERM")),
        "the child never got the stop signal after the parent died:\n{}",
        s.read("log")
    );
    assert!(
        wait_for(LONG, || !alive(manager)),
        "the manager outlived its parent:\n{}",
        s.read("log")
    );
}

#[test]
fn on_a_terminal_the_child_gets_it_under_every_name() {
    if !require_tool("script", "bsdutils") {
        return;
    }
    let s = Scratch::new("dropin-tty");
    for name in ["tini", "docker-init", "dumb-init"] {
        let link = s.path(name);
        if !link.exists() {
            std::os::unix::fs::symlink(BIN, &link).expect("symlink to the binary");
        }
        let out = s.path(&format!("{name}.tty"));
        // The child writes whether its stdin is a terminal and whether it
        // is in the terminal's foreground process group.
        let child = script(
            &s,
            &format!("{name}-child"),
            &format!(
                "read -r _ _ _ _ pgid _ _ tpgid _ < /proc/$$/stat\n\
                 if [ -t 0 ] && [ \"$pgid\" = \"$tpgid\" ]; then echo foreground > {o}; else echo no > {o}; fi",
                o = out.display()
            ),
        );
        let line = format!("{} -- {child}", link.display());
        let status = std::process::Command::new("script")
            .args(["-qefc", &line, "/dev/null"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .env_remove("FLUSH_MANAGER_LOG")
            .status()
            .expect("script (bsdutils)");
        assert!(status.success(), "{name}: {status:?}");
        assert_eq!(
            s.read(&format!("{name}.tty")).trim(),
            "foreground",
            "{name}: the child did not get the terminal"
        );
    }
}

/// `dumb-init -r FROM:TO child.sh` as PID 1, the child being what `traps`
/// describes (reporting to "out"); returns once the child is ready.
fn dumb_init_rewriting(s: &Scratch, from: i32, to: i32, traps: TrapChild) -> Manager {
    let child = trap_script(s, traps);
    let rewrite = format!("{from}:{to}");
    let m = start_as(s, "dumb-init", Mode::Pid1, &[], &["-r", &rewrite, &child]);
    wait_ready(s, &m);
    m
}

/// Issue 24, item 8: `dumb-init -r 2:15 app` (SIGINT rewritten to SIGTERM,
/// a valid dumb-init entrypoint) was refused with exit 2. As in dumb-init,
/// SIGINT now reaches the child as SIGTERM, and the child's exit is ours.
#[test]
fn dumb_init_rewrites_sigint_to_sigterm() {
    if pid1_or_skip("dumb-init -r 2:15").is_none() {
        return;
    }
    let s = Scratch::new("dropin-rewrite-int");
    let child = TrapChild::new(&s.path("out"))
        .record(&["INT", "TERM"])
        .on("INT", "exit 7")
        .on_term("exit 0");
    let mut m = dumb_init_rewriting(&s, libc::SIGINT, libc::SIGTERM, child);
    let lines = || s.lines("out");
    m.signal(libc::SIGINT);
    assert_eq!(m.exit_code(), 0, "{:?}\n{}", lines(), m.log());
    assert_eq!(lines(), ["ready", "TERM"], "{}", m.log());
}

/// dumb-init's `-r 15:0`: SIGTERM is dropped (not forwarded, no stop), as
/// dumb-init does; it was refused with exit 1 though dumb-init takes it.
#[test]
fn dumb_init_drops_sigterm_when_told_to() {
    if pid1_or_skip("dumb-init -r 15:0").is_none() {
        return;
    }
    let s = Scratch::new("dropin-drop-term");
    let child = TrapChild::new(&s.path("out"))
        .record(&["TERM", "USR1"])
        .on_term("exit 0");
    let mut m = dumb_init_rewriting(&s, libc::SIGTERM, 0, child);
    let lines = || s.lines("out");
    m.signal(libc::SIGTERM);
    // A signal after it that is forwarded: once it arrives, the TERM
    // before it was handled (and dropped).
    m.signal(libc::SIGUSR1);
    assert!(
        wait_for(LONG, || lines().contains(&"USR1".into())),
        "{:?}\n{}",
        lines(),
        m.log()
    );
    assert!(m.alive(), "the manager stopped on a dropped SIGTERM");
    assert_eq!(lines(), ["ready", "USR1"], "{}", m.log());
    m.signal(libc::SIGKILL);
    m.exit_code();
}

/// A usage error (no program, an unknown flag) exits 1 under tini's and
/// dumb-init's names, as both tools do; under our own name it stays 2.
/// Where the real tools are installed, their codes are checked too.
#[test]
fn a_usage_error_exits_1_under_the_tools_names_and_2_under_ours() {
    let s = Scratch::new("dropin-usage");
    for name in NAMES {
        for args in [&[][..], &["-x", "--", "/bin/true"][..]] {
            let mut m = start_as(&s, name, Mode::Plain, &[], args);
            assert_eq!(m.exit_code(), 1, "{name} {args:?}\n{}", m.log());
            assert!(m.log().contains("--help"), "{name} {args:?}\n{}", m.log());
        }
    }
    let mut m = Manager::plain(&["--no-such-flag", "--", "/bin/true"]);
    assert_eq!(m.exit_code(), 2, "{}", m.log());
    for real in ["/usr/bin/tini", "/usr/bin/dumb-init"] {
        if !Path::new(real).exists() {
            continue;
        }
        for args in [&[][..], &["-x", "--", "/bin/true"][..]] {
            let status = Command::new(real)
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("run the real tool");
            assert_eq!(status.code(), Some(1), "{real} {args:?}");
        }
    }
}
