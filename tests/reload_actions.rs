//! Reload by command or URL, rate control for fleets (--splay,
//! --min-interval), --metrics and --log-format json: the release binary
//! against real files, a real HTTP server (Python's http.server) and
//! promtool.
// These tests drive Linux itself (PID namespaces, /proc, signalfd).
#![cfg(target_os = "linux")]

mod common;

use common::*;
use nix::libc;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A recorder child that never reloads by itself: its starts are counted.
fn manager(s: &Scratch, conf: &Path, extra: &[&str]) -> Manager {
    fs::write(conf, "v1").unwrap();
    let script = recorder(conf, &s.path("starts"), "exit 0");
    let mut args = vec!["--config", conf.to_str().unwrap(), "--debounce=50ms"];
    args.extend_from_slice(extra);
    args.extend(["--", "/bin/sh", "-c", &script]);
    let m = Manager::plain(&args);
    assert!(s.wait_contains("starts", "start"), "{}", m.log());
    assert!(m.wait_log("Watching directory"), "{}", m.log());
    m
}

fn starts(s: &Scratch) -> usize {
    recorded_starts(s).len()
}

#[test]
fn a_reload_command_runs_once_per_change_and_leaves_the_child_alone() {
    let s = Scratch::new("rcmd");
    let conf = s.path("app.conf");
    let cmd = format!(
        "sh -c 'echo \"$FLUSH_MANAGER_CHANGED $(cat {})\" >> {}'",
        conf.display(),
        s.path("runs").display()
    );
    let m = manager(&s, &conf, &["--reload-command", &cmd]);
    for (n, bytes) in [(1, "v2"), (2, "v3")] {
        write_in_place(&conf, bytes.as_bytes());
        assert!(wait_for(LONG, || s.lines("runs").len() == n), "{}", m.log());
        assert_eq!(
            s.lines("runs")[n - 1],
            format!("{} {bytes}", conf.display())
        );
    }
    assert!(m.wait_log_count("Reload succeeded", 2));
    assert_eq!(starts(&s), 1, "the child was restarted");
}

#[test]
fn a_failing_reload_command_is_retried_until_it_succeeds() {
    let s = Scratch::new("rretry");
    let conf = s.path("app.conf");
    let cmd = format!(
        "sh -c 'echo run >> {}; test -e {}'",
        s.path("runs").display(),
        s.path("gate").display()
    );
    let m = manager(&s, &conf, &["--reload-command", &cmd]);
    write_in_place(&conf, b"v2");
    assert!(
        m.wait_log_count("Reload failed; retrying in", 2),
        "{}",
        m.log()
    );
    assert!(
        m.log()
            .contains("Reload command sh failed with exit code 1")
    );
    fs::write(s.path("gate"), "").unwrap();
    assert!(m.wait_log("Reload succeeded"), "{}", m.log());
    assert!(s.lines("runs").len() >= 3);
    assert_eq!(starts(&s), 1);
}

#[test]
fn a_newer_change_supersedes_a_failing_reload() {
    let s = Scratch::new("rsuper");
    let conf = s.path("app.conf");
    // Fails on "bad" bytes, succeeds on anything else.
    let cmd = format!(
        "sh -c 'cat {} >> {}; echo >> {1}; ! grep -q bad {0}'",
        conf.display(),
        s.path("runs").display()
    );
    let m = manager(&s, &conf, &["--reload-command", &cmd]);
    write_in_place(&conf, b"bad v2");
    assert!(m.wait_log("Reload failed; retrying in"), "{}", m.log());
    write_in_place(&conf, b"good v3");
    assert!(m.wait_log("Reload succeeded"), "{}", m.log());
    let runs = s.lines("runs").len();
    // The retry of the superseded change never comes back (1 s, then 2 s).
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(s.lines("runs").len(), runs, "{:?}", s.lines("runs"));
    assert_eq!(s.lines("runs").last().unwrap(), "good v3");
}

/// Python's http.server answering with scripted statuses; killed on drop.
struct Httpd {
    child: Child,
    port: u16,
}

impl Httpd {
    fn start(s: &Scratch, statuses: &str) -> Option<Httpd> {
        if !require_tool("python3", "python3") {
            return None;
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/helpers/httpd.py");
        let child = Command::new("python3")
            .arg(script)
            .arg(s.path("port"))
            .arg(s.path("requests"))
            .arg(statuses)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3");
        let mut httpd = Httpd { child, port: 0 };
        assert!(
            wait_for(LONG, || !s.read("port").is_empty()),
            "httpd never started"
        );
        httpd.port = s.read("port").trim().parse().unwrap();
        Some(httpd)
    }
}

impl Drop for Httpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_reload_url_is_posted_once_per_change_and_retried_on_503() {
    let s = Scratch::new("rurl");
    let Some(httpd) = Httpd::start(&s, "200,503,503,200") else {
        return;
    };
    let conf = s.path("app.conf");
    let url = format!("http://127.0.0.1:{}/-/reload", httpd.port);
    let m = manager(&s, &conf, &["--reload-url", &url]);
    write_in_place(&conf, b"v2");
    assert!(m.wait_log("Reload succeeded"), "{}", m.log());
    assert_eq!(s.lines("requests"), ["POST /-/reload"]);
    // 503, 503, 200: three tries, one success.
    write_in_place(&conf, b"v3");
    assert!(m.wait_log_count("Reload succeeded", 2), "{}", m.log());
    assert_eq!(s.lines("requests").len(), 4, "{:?}", s.lines("requests"));
    assert_eq!(m.count("answered 503"), 2, "{}", m.log());
    assert_eq!(starts(&s), 1);
}

#[test]
fn a_refused_reload_url_is_retried() {
    let s = Scratch::new("rrefused");
    // A port nobody listens on: bind, note, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = s.path("app.conf");
    let url = format!("http://127.0.0.1:{port}/-/reload");
    let m = manager(&s, &conf, &["--reload-url", &url]);
    write_in_place(&conf, b"v2");
    assert!(m.wait_log_count("Reload URL failed", 2), "{}", m.log());
    assert!(m.log().contains("retrying in 2s"), "{}", m.log());
}

#[test]
fn reload_options_are_exclusive() {
    for extra in [
        ["--reload-signal", "HUP", "--reload-command", "true"],
        [
            "--reload-command",
            "true",
            "--reload-url",
            "http://127.0.0.1:1/",
        ],
    ] {
        let mut args = extra.to_vec();
        args.extend(["--", "/bin/true"]);
        let mut m = Manager::plain(&args);
        assert_eq!(m.exit_code(), 2, "{}", m.log());
        assert!(m.log().contains("exclusive"), "{}", m.log());
    }
}

#[test]
fn splay_spreads_a_fleet_and_each_acts_once() {
    let s = Scratch::new("splay");
    let conf = s.path("shared.conf");
    fs::write(&conf, "v1").unwrap();
    let cmd = format!("sh -c 'date +%s.%N >> {}'", s.path("acted").display());
    let fleet: Vec<Manager> = (0..10)
        .map(|_| {
            Manager::plain(&[
                "--config",
                conf.to_str().unwrap(),
                "--debounce=0",
                "--splay=2s",
                "--reload-command",
                &cmd,
                "--",
                "/bin/sleep",
                "60",
            ])
        })
        .collect();
    for m in &fleet {
        assert!(m.wait_log("Watching directory"), "{}", m.log());
    }
    // One atomic change (an in-place write is two: empty, then v2, and
    // with --debounce=0 a slow replica may act on both).
    replace_by_rename(&conf, b"v2", "shared.conf.tmp");
    assert!(wait_for(LONG, || s.lines("acted").len() == 10));
    std::thread::sleep(Duration::from_millis(500));
    let times: Vec<f64> = s
        .lines("acted")
        .iter()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(times.len(), 10, "each replica acts once");
    let spread = times.iter().cloned().fold(f64::MIN, f64::max)
        - times.iter().cloned().fold(f64::MAX, f64::min);
    // Ten uniform draws in a 2 s window all within 0.3 s: p < 1e-6.
    assert!(spread > 0.3, "not spread: {spread:.3} s");
}

#[test]
fn min_interval_folds_a_burst_without_losing_the_last_bytes() {
    let s = Scratch::new("minint");
    let conf = s.path("app.conf");
    let cmd = format!(
        "sh -c 'cat {} >> {}; echo >> {1}'",
        conf.display(),
        s.path("acted").display()
    );
    let m = manager(&s, &conf, &["--min-interval=2s", "--reload-command", &cmd]);
    write_in_place(&conf, b"v2");
    assert!(s.wait_contains("acted", "v2"), "{}", m.log());
    for n in 3..=8 {
        write_in_place(&conf, format!("v{n}").as_bytes());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(s.wait_contains("acted", "v8"), "{}", m.log());
    let acted = s.lines("acted");
    assert!(acted.len() <= 3, "a burst within the interval: {acted:?}");
    assert_eq!(acted.last().unwrap(), "v8");
}

/// GET `path` from the metrics server; (status line, body).
fn get(port: u16, path: &str) -> (String, String) {
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(LONG)).unwrap();
    write!(c, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut text = String::new();
    let _ = c.read_to_string(&mut text);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    )
}

fn value(body: &str, sample: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{sample} missing in\n{body}"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn metrics_pass_promtool_move_and_survive_a_silent_client() {
    let s = Scratch::new("metrics");
    let conf = s.path("app.conf");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let check = format!("sh -c '! grep -q bad {}'", conf.display());
    let m = manager(
        &s,
        &conf,
        &[
            "--metrics",
            &addr,
            "--validate",
            &check,
            "--reload-signal",
            "HUP",
            "--restart-signal",
            "USR2",
        ],
    );
    let (status, body) = get(port, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(value(&body, "flush_manager_child_up "), 1.0);
    assert_eq!(
        value(&body, "flush_manager_child_starts_total{reason=\"first\"} "),
        1.0
    );
    assert_eq!(get(port, "/nope").0, "HTTP/1.1 404 Not Found");
    if require_tool("promtool", "prometheus") {
        let (ok, out) = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .output_with(&body);
        assert!(ok, "promtool check metrics: {out}\n{body}");
    }

    // A client that connects and sends nothing must not block a reload.
    let _silent = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write_in_place(&conf, b"v2");
    assert!(s.wait_contains("starts", "hup"), "{}", m.log());
    write_in_place(&conf, b"bad v3");
    assert!(m.wait_log("Config validation failed"), "{}", m.log());
    let (_, body) = get(port, "/metrics");
    assert_eq!(
        value(&body, "flush_manager_reloads_total{result=\"success\"} "),
        1.0
    );
    assert_eq!(
        value(
            &body,
            "flush_manager_validations_total{result=\"failure\"} "
        ),
        1.0
    );
    assert_eq!(value(&body, "flush_manager_config_changes_total "), 2.0);
    assert!(
        value(
            &body,
            "flush_manager_last_reload_success_timestamp_seconds "
        ) > 1e9
    );
    // A restart (by the restart signal, after the check) moves its counter.
    write_in_place(&conf, b"v4");
    assert!(wait_for(LONG, || s.read("starts").matches("hup").count() == 2));
    let mut m = m;
    m.signal(libc::SIGUSR2);
    assert!(wait_for(LONG, || starts(&s) == 2), "{}", m.log());
    let (_, body) = get(port, "/metrics");
    assert_eq!(
        value(
            &body,
            "flush_manager_child_starts_total{reason=\"signal\"} "
        ),
        1.0
    );
    m.signal(libc::SIGTERM);
    assert_eq!(m.exit_code(), 0);
}

/// `Command::output` with `input` on stdin: (success, stdout + stderr).
trait OutputWith {
    fn output_with(&mut self, input: &str) -> (bool, String);
}

impl OutputWith for Command {
    fn output_with(&mut self, input: &str) -> (bool, String) {
        let mut child = self
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    }
}

#[test]
fn json_logs_parse_line_by_line_and_hold_no_config_content() {
    let s = Scratch::new("json");
    let conf = s.path("app.conf");
    let m = manager(&s, &conf, &["--log-format", "json"]);
    write_in_place(&conf, b"secret-token-123");
    assert!(wait_for(LONG, || starts(&s) == 2), "{}", m.log());
    let log = m.log();
    assert!(
        !log.contains("secret-token-123"),
        "config content in the log"
    );
    if !require_tool("python3", "python3") {
        return;
    }
    let check = "import json,sys\nfor l in sys.stdin:\n    o=json.loads(l)\n    assert {'ts','level','message'} <= o.keys(), o\n";
    let (ok, out) = Command::new("python3")
        .args(["-c", check])
        .stdin(Stdio::piped())
        .output_with(&log);
    assert!(ok, "{out}\n{log}");
    assert!(log.contains("\"pid\":"), "structured fields: {log}");
    assert!(log.contains("\"path\":"), "{log}");
}
