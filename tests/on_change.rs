//! `--on-change PATTERN=ACTION`: each file's own action, with the release
//! binary as PID 1 (where a namespace can be made), a shell child that
//! records the signals it gets, reload commands that record what they were
//! told, and a ConfigMap written by the kubelet's atomic writer (one update,
//! several keys: one burst).
// These tests drive Linux itself (PID namespaces, /proc, signalfd).
#![cfg(target_os = "linux")]

mod common;

use common::kubelet::AtomicWriter;
use common::*;

/// PID 1 where a namespace can be made (as in a container), else plain.
fn mode() -> Mode {
    match unshare_prefix() {
        Some(_) => Mode::Pid1,
        None => Mode::Plain,
    }
}

/// The ConfigMap's keys, each a version string.
fn keys(main: &str, pem: &str, lua: &str, docs: &str) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("main.conf", main.as_bytes().to_vec()),
        ("tls.pem", pem.as_bytes().to_vec()),
        ("lua/a.lua", lua.as_bytes().to_vec()),
        ("docs.md", docs.as_bytes().to_vec()),
    ]
}

/// The manager with `args` over a `/bin/sh -c child` that writes "ready"
/// to the scratch file "got" once its traps are set; returns once it is
/// ready and the manager watches.
fn start(s: &Scratch, args: &[String], child: &str) -> Manager {
    let mut argv: Vec<&str> = args.iter().map(String::as_str).collect();
    argv.extend(["--", "/bin/sh", "-c", child]);
    let m = run(mode(), &argv);
    assert!(s.wait_contains("got", "ready"), "{}", m.log());
    assert!(m.wait_log("Watching directory"), "{}", m.log());
    m
}

fn write(kube: &AtomicWriter, keys: &[(&'static str, Vec<u8>)]) {
    let payload: Vec<(&str, &[u8])> = keys.iter().map(|(k, v)| (*k, v.as_slice())).collect();
    kube.write(&payload);
}

#[test]
fn one_update_sends_each_signal_once_runs_each_command_once_and_ignores_docs() {
    let s = Scratch::new("on-change");
    let kube = AtomicWriter::new(&s.path("cm"));
    write(&kube, &keys("m1", "p1", "l1", "d1"));
    let got = s.path("got");
    let child = TrapChild::new(&got)
        .on_start("start $$")
        .record_as("HUP", "hup")
        .record_as("USR1", "usr1")
        .on_term("exit 0")
        .ready("ready")
        .script();
    // The same command named by two rules: one hook, told of both files.
    let hook = format!(
        "command:sh -c 'echo \"$FLUSH_MANAGER_CHANGED_COUNT $FLUSH_MANAGER_CHANGED\" >> {}'",
        s.path("runs").display()
    );
    let dir = kube.dir.display().to_string();
    let args = [
        format!("--config={dir}"),
        "--reload-signal=HUP".into(),
        "--on-change=*.pem=signal:USR1".into(),
        format!("--on-change=lua/*={hook}"),
        format!("--on-change={dir}/main.*={hook}"),
        "--on-change=docs.md=none".into(),
        "--debounce=200ms".into(),
    ];
    let m = start(&s, &args, &child);

    // Every key at once: USR1 once for the certificate, the command once
    // for two files (docs.md chose none; no file took the global HUP).
    write(&kube, &keys("m2", "p2", "l2", "d2"));
    assert!(wait_for(LONG, || s.lines("runs").len() == 1), "{}", m.log());
    assert!(s.wait_contains("got", "usr1"), "{}", m.log());
    let runs = s.lines("runs");
    assert_eq!(
        runs[0],
        format!("2 {dir}/lua/a.lua:{dir}/main.conf"),
        "the command is told of exactly the files that chose it"
    );
    // A second, lone key that takes the global action: HUP.
    let mut more = keys("m2", "p2", "l2", "d2");
    more.push(("other.conf", b"o1".to_vec()));
    write(&kube, &more);
    assert!(s.wait_contains("got", "hup"), "{}", m.log());

    // Docs alone: nothing.
    more[3].1 = b"d3".to_vec();
    write(&kube, &more);
    assert!(
        m.wait_log("Config change ignored (--on-change none)"),
        "{}",
        m.log()
    );
    // Time for a wrong action to show.
    std::thread::sleep(std::time::Duration::from_millis(700));
    let got = s.lines("got");
    let count = |what: &str| got.iter().filter(|l| l.as_str() == what).count();
    assert_eq!((count("usr1"), count("hup")), (1, 1), "{got:?}");
    assert_eq!(s.lines("runs").len(), 1, "{:?}", s.lines("runs"));
    assert_eq!(
        got.iter().filter(|l| l.starts_with("start")).count(),
        1,
        "restarted: {got:?}"
    );
}

#[test]
fn a_file_that_asks_for_a_restart_restarts_and_nothing_else_runs() {
    let s = Scratch::new("on-change-restart");
    let kube = AtomicWriter::new(&s.path("cm"));
    write(&kube, &keys("m1", "p1", "l1", "d1"));
    let got = s.path("got");
    let child = TrapChild::new(&got)
        .on_start("start $$")
        .record_as("USR1", "usr1")
        .on_term("exit 0")
        .ready("ready")
        .script();
    let hook = format!("command:sh -c 'echo ran >> {}'", s.path("runs").display());
    let args = [
        format!("--config={}", kube.dir.display()),
        format!(
            "--reload-command=sh -c 'echo global >> {}'",
            s.path("runs").display()
        ),
        "--on-change=main.conf=restart".into(),
        "--on-change=*.pem=signal:USR1".into(),
        format!("--on-change=*.lua={hook}"),
        "--debounce=200ms".into(),
    ];
    let m = start(&s, &args, &child);

    write(&kube, &keys("m2", "p2", "l2", "d2"));
    assert!(
        wait_for(LONG, || s
            .lines("got")
            .iter()
            .filter(|l| l.starts_with("start"))
            .count()
            == 2),
        "{}",
        m.log()
    );
    assert!(
        m.wait_log("restarting child process... (for "),
        "{}",
        m.log()
    );
    std::thread::sleep(std::time::Duration::from_millis(700));
    assert!(
        !s.lines("got").contains(&"usr1".to_string()),
        "{:?}",
        s.lines("got")
    );
    assert!(s.lines("runs").is_empty(), "{:?}", s.lines("runs"));

    // Only the docs key (no rule: the global command).
    write(&kube, &keys("m2", "p2", "l2", "d3"));
    assert!(
        wait_for(LONG, || s.lines("runs") == ["global"]),
        "{}",
        m.log()
    );
}

/// A loopback HTTP server answering 200 to everything; the request lines
/// it got.
fn recording_server() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let got = std::sync::Arc::new(std::sync::Mutex::new(vec![]));
    let seen = std::sync::Arc::clone(&got);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(&stream);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            // The rest of the head, then the answer.
            let mut header = String::new();
            while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
                header.clear();
            }
            seen.lock().expect("lock").push(line.trim().to_string());
            let _ = (&stream).write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n");
        }
    });
    (port, got)
}

#[test]
fn a_url_rule_is_posted_once_per_update_beside_the_global_url() {
    let s = Scratch::new("on-change-url");
    let kube = AtomicWriter::new(&s.path("cm"));
    write(&kube, &keys("m1", "p1", "l1", "d1"));
    let (port, posts) = recording_server();
    let child = TrapChild::new(&s.path("got"))
        .on_start("start $$")
        .on_term("exit 0")
        .ready("ready")
        .script();
    let args = [
        format!("--config={}", kube.dir.display()),
        format!("--reload-url=http://127.0.0.1:{port}/global"),
        format!("--on-change=*.pem=url:http://127.0.0.1:{port}/certs"),
        format!("--on-change=lua/**=url:http://127.0.0.1:{port}/certs"),
        "--debounce=200ms".into(),
    ];
    let m = start(&s, &args, &child);

    write(&kube, &keys("m2", "p2", "l2", "d1"));
    assert!(m.wait_log("Reload succeeded"), "{}", m.log());
    let mut got = posts.lock().expect("lock").clone();
    got.sort();
    assert_eq!(
        got,
        ["POST /certs HTTP/1.1", "POST /global HTTP/1.1"],
        "{}",
        m.log()
    );
    // The certificate alone: its URL alone.
    write(&kube, &keys("m2", "p3", "l2", "d1"));
    assert!(m.wait_log_count("Reload succeeded", 2), "{}", m.log());
    assert_eq!(posts.lock().expect("lock").len(), 3);
    assert_eq!(posts.lock().expect("lock")[2], "POST /certs HTTP/1.1");
}

#[test]
fn a_failed_hook_of_one_file_survives_a_newer_change_of_another() {
    let s = Scratch::new("on-change-owed");
    let dir = s.path("c");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("a.conf"), "1").unwrap();
    std::fs::write(dir.join("b.conf"), "1").unwrap();
    let runs = s.path("runs").display().to_string();
    // A fails until the file a-ok exists; B always succeeds.
    let hook_a = format!(
        "command:sh -c 'echo \"A $FLUSH_MANAGER_CHANGED\" >> {runs}; test -e {}'",
        s.path("a-ok").display()
    );
    let hook_b = format!("command:sh -c 'echo \"B $FLUSH_MANAGER_CHANGED\" >> {runs}'");
    let child = TrapChild::new(&s.path("got"))
        .on_term("exit 0")
        .ready("ready")
        .script();
    let args = [
        format!("--config={}", dir.display()),
        format!("--on-change=a.conf={hook_a}"),
        format!("--on-change=b.conf={hook_b}"),
        "--debounce=100ms".into(),
    ];
    let m = start(&s, &args, &child);

    write_in_place(&dir.join("a.conf"), b"2");
    assert!(m.wait_log("Reload failed"), "{}", m.log());
    std::fs::write(s.path("a-ok"), "").unwrap();
    // b.conf changes while A waits for its retry: A still runs again, and
    // is still told of a.conf.
    write_in_place(&dir.join("b.conf"), b"2");
    let a = format!("A {}", dir.join("a.conf").display());
    assert!(
        wait_for(LONG, || s.lines("runs").iter().filter(|l| **l == a).count()
            >= 2),
        "{:?}\n{}",
        s.lines("runs"),
        m.log()
    );
    assert!(m.wait_log("Reload succeeded"), "{}", m.log());
    assert!(
        s.lines("runs")
            .contains(&format!("B {}", dir.join("b.conf").display())),
        "{:?}",
        s.lines("runs")
    );
}
