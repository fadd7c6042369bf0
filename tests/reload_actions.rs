//! Reload by command or URL, rate control for fleets (--splay,
//! --min-interval), --metrics and --log-format json: the release binary
//! against real files, a real HTTP server (Python's http.server) and
//! promtool. The tests that need a package a bare Debian lacks are ignored
//! by default; `cargo test --release -- --include-ignored` runs them.
// These tests drive Linux itself (PID namespaces, /proc, signalfd).
#![cfg(target_os = "linux")]

mod common;

use common::*;
use nix::libc;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
        Httpd::start_as(s, "", statuses)
    }

    /// A second server beside the first: files `port<tag>`, `requests<tag>`.
    fn start_as(s: &Scratch, tag: &str, statuses: &str) -> Option<Httpd> {
        if !require_tool("python3", "python3") {
            return None;
        }
        let script = helper("httpd.py");
        let child = Command::new("python3")
            .arg(script)
            .arg(s.path(&format!("port{tag}")))
            .arg(s.path(&format!("requests{tag}")))
            .arg(statuses)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3");
        let mut httpd = Httpd { child, port: 0 };
        let port = format!("port{tag}");
        assert!(
            wait_for(LONG, || !s.read(&port).is_empty()),
            "httpd never started"
        );
        httpd.port = s.read(&port).trim().parse().unwrap();
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
#[ignore = "needs python3: apt-get install python3"]
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
#[ignore = "needs python3: apt-get install python3"]
fn several_reload_urls_are_each_posted_and_retried_on_their_own_with_basic_auth() {
    let s = Scratch::new("rurls");
    let (Some(a), Some(b)) = (
        Httpd::start_as(&s, "a", "200"),
        Httpd::start_as(&s, "b", "503,200"),
    ) else {
        return;
    };
    let conf = s.path("app.conf");
    let url_a = format!("http://admin:s%3Acret@127.0.0.1:{}/-/reload", a.port);
    let url_b = format!("http://127.0.0.1:{}/reload", b.port);
    let m = manager(&s, &conf, &["--reload-url", &url_a, "--reload-url", &url_b]);
    write_in_place(&conf, b"v2");
    assert!(m.wait_log("Reload succeeded"), "{}", m.log());
    // base64("admin:s:cret"); B failed once and alone was tried again.
    assert_eq!(
        s.lines("requestsa"),
        ["POST /-/reload auth=Basic YWRtaW46czpjcmV0"]
    );
    assert_eq!(s.lines("requestsb"), ["POST /reload", "POST /reload"]);
    assert_eq!(m.count("Reload succeeded"), 1, "{}", m.log());
    assert!(
        !m.log().contains("cret"),
        "a password in the log:\n{}",
        m.log()
    );
    // A host name is refused, saying why.
    let mut bad = Manager::plain(&[
        "--reload-url",
        "http://u:pw@prometheus:9090/-/reload",
        "--",
        "true",
    ]);
    assert_eq!(bad.exit_code(), 2);
    assert!(bad.log().contains("host name is refused"), "{}", bad.log());
    assert!(!bad.log().contains("pw@"), "{}", bad.log());
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

/// A recorder child under a manager serving metrics on a free port, that
/// rejects a config holding "bad" and reloads the child by HUP.
fn with_metrics(s: &Scratch, conf: &Path, extra: &[&str]) -> (Manager, u16) {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let check = format!("sh -c '! grep -q bad {}'", conf.display());
    let mut args = vec![
        "--metrics",
        &addr,
        "--validate",
        &check,
        "--reload-signal",
        "HUP",
    ];
    args.extend_from_slice(extra);
    (manager(s, conf, &args), port)
}

#[test]
fn metrics_move_and_survive_a_silent_client() {
    let s = Scratch::new("metrics");
    let conf = s.path("app.conf");
    let (m, port) = with_metrics(&s, &conf, &["--restart-signal", "USR2"]);
    let (status, body) = get(port, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(value(&body, "flush_manager_child_up "), 1.0);
    assert_eq!(
        value(&body, "flush_manager_child_starts_total{reason=\"first\"} "),
        1.0
    );
    assert_eq!(get(port, "/nope").0, "HTTP/1.1 404 Not Found");
    // Nothing failed yet: a fresh pod has nothing to alert on.
    let ok = "flush_manager_last_reload_successful ";
    let stamp = "flush_manager_last_reload_success_timestamp_seconds ";
    assert_eq!(value(&body, ok), 1.0);
    let started = value(&body, stamp);
    assert!(started > 1e9, "the first start took its config: {started}");

    // A client that connects and sends nothing must not block a reload.
    let _silent = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write_in_place(&conf, b"v2");
    assert!(s.wait_contains("starts", "hup"), "{}", m.log());
    // The reload is counted just after the HUP went out.
    assert!(wait_for(LONG, || value(&get(port, "/metrics").1, stamp) > started));
    let reloaded = value(&get(port, "/metrics").1, stamp);
    write_in_place(&conf, b"bad v3");
    assert!(m.wait_log("Config validation failed"), "{}", m.log());
    let (_, body) = get(port, "/metrics");
    assert_eq!(value(&body, ok), 0.0, "a rejected config alerts");
    assert_eq!(value(&body, stamp), reloaded, "a rejection is no success");
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
    assert!(wait_for(LONG, || value(&get(port, "/metrics").1, ok) == 1.0));
    assert!(value(&get(port, "/metrics").1, stamp) >= reloaded);
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

/// Prometheus's own linter accepts the /metrics text, at start and once a
/// reload and a rejected check have given every counter a sample.
#[test]
#[ignore = "needs promtool: apt-get install prometheus"]
fn metrics_pass_promtool_check_metrics() {
    if !require_tool("promtool", "prometheus") {
        return;
    }
    let s = Scratch::new("promtool");
    let conf = s.path("app.conf");
    let (m, port) = with_metrics(&s, &conf, &[]);
    let promtool = |body: &str| {
        let (ok, out) = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .output_with(body);
        assert!(ok, "promtool check metrics: {out}\n{body}");
    };
    promtool(&get(port, "/metrics").1);
    write_in_place(&conf, b"v2");
    assert!(s.wait_contains("starts", "hup"), "{}", m.log());
    write_in_place(&conf, b"bad v3");
    assert!(m.wait_log("Config validation failed"), "{}", m.log());
    promtool(&get(port, "/metrics").1);
}

/// Sends `request` to `addr` and reads the answer to its end: (status line,
/// headers, body), or why none came.
fn ask(addr: SocketAddr, request: &str) -> Result<(String, String, String), String> {
    let mut c = TcpStream::connect_timeout(&addr, LONG).map_err(|e| format!("{addr}: {e}"))?;
    c.set_read_timeout(Some(LONG)).map_err(|e| e.to_string())?;
    c.write_all(request.as_bytes())
        .map_err(|e| format!("{addr}: {e}"))?;
    let mut text = String::new();
    c.read_to_string(&mut text)
        .map_err(|e| format!("{addr}: {e}"))?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("{addr}: no complete answer: {text:?}"))?;
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    Ok((status.to_string(), headers.to_string(), body.to_string()))
}

fn scrape(addr: SocketAddr) -> Result<String, String> {
    let (status, _, body) = ask(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")?;
    if status != "HTTP/1.1 200 OK" || !body.contains("flush_manager_child_up 1") {
        return Err(format!("{addr}: {status}: {body:?}"));
    }
    Ok(body)
}

/// Issue #18: eight clients that connected and sent nothing locked every
/// scrape out for their 5 s deadline. Now a new connection always gets in
/// (the oldest idle one is closed for it): with a fresh crowd of 100
/// silent connections before each, 10 of 10 scrapes succeed, and signals
/// still reach the child.
#[test]
fn metrics_answer_every_scrape_beside_100_silent_clients() {
    let s = Scratch::new("silent");
    let conf = s.path("app.conf");
    let port = free_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let m = manager(&s, &conf, &["--metrics", &addr.to_string()]);
    let mut failed = vec![];
    let mut crowd = vec![];
    for round in 0..10 {
        let started = Instant::now();
        crowd.clear();
        crowd.extend((0..100).filter_map(|_| TcpStream::connect(addr).ok()));
        assert_eq!(
            crowd.len(),
            100,
            "round {round}: could not open 100 connections"
        );
        if let Err(e) = scrape(addr) {
            failed.push(format!("round {round}: {e}"));
        }
        // One scrape a second at most, as a fast Prometheus would.
        std::thread::sleep(Duration::from_secs(1).saturating_sub(started.elapsed()));
    }
    assert!(
        failed.is_empty(),
        "{} of 10 scrapes failed: {failed:?}",
        failed.len()
    );
    // The loop that serves them also forwards signals.
    m.signal(libc::SIGHUP);
    assert!(s.wait_contains("starts", "hup"), "{}", m.log());
    drop(crowd);
    let mut m = m;
    m.signal(libc::SIGTERM);
    assert_eq!(m.exit_code(), 0);
}

/// `HEAD /metrics` answered with the body too; HEAD gets GET's headers only.
#[test]
fn head_metrics_sends_the_headers_only() {
    let s = Scratch::new("head");
    let conf = s.path("app.conf");
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let _m = manager(&s, &conf, &["--metrics", &addr.to_string()]);
    let (status, headers, body) = ask(addr, "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(status, "HTTP/1.1 200 OK");
    let length: usize = headers
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Content-Length in {headers:?}"));
    assert!(length > 0, "the length GET's body would have");
    assert_eq!(body, "", "HEAD sends no body");
    let (status, _, body) = ask(addr, "HEAD /nope HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(
        (status.as_str(), body.as_str()),
        ("HTTP/1.1 404 Not Found", "")
    );
    // GET still has it.
    assert!(scrape(addr).is_ok_and(|b| !b.is_empty()));
}

/// A port free on both families here (or on IPv4, without IPv6).
fn free_port_both() -> u16 {
    TcpListener::bind("[::]:0")
        .or_else(|_| TcpListener::bind("127.0.0.1:0"))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Does this machine have IPv6 loopback? If not, the IPv6 halves of the
/// listen tests are skipped, saying so.
fn ipv6_loopback(test: &str) -> bool {
    let ok = TcpListener::bind("[::1]:0").is_ok();
    if !ok {
        eprintln!("SKIPPED ({test}): the IPv6 parts, this machine has no IPv6 loopback (::1)");
    }
    ok
}

/// `--metrics :PORT` listened on IPv4 only; now on both families, while an
/// address given in full is bound exactly.
#[test]
fn metrics_listen_on_both_families_for_a_bare_port_and_exactly_otherwise() {
    let v6 = ipv6_loopback("metrics_listen");
    for (form, on_v4, on_v6) in [
        (":{port}", true, true),
        ("[::1]:{port}", false, true),
        ("0.0.0.0:{port}", true, false),
        ("127.0.0.1:{port}", true, false),
    ] {
        if !v6 && form.starts_with('[') {
            continue;
        }
        let s = Scratch::new("listen");
        let conf = s.path("app.conf");
        let port = free_port_both();
        let flag = form.replace("{port}", &port.to_string());
        let m = manager(&s, &conf, &["--metrics", &flag]);
        assert!(m.wait_log("Serving metrics at"), "{}", m.log());
        let v4_addr = SocketAddr::from(([127, 0, 0, 1], port));
        let v6_addr = SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port));
        let mut checks = vec![(v4_addr, on_v4)];
        if v6 {
            checks.push((v6_addr, on_v6));
        }
        for (addr, served) in checks {
            match scrape(addr) {
                Ok(_) => assert!(served, "--metrics {flag} answers on {addr}"),
                Err(e) => assert!(!served, "--metrics {flag}: {e}\n{}", m.log()),
            }
        }
    }
}

/// Where the kernel makes `[::]` IPv6-only (`net.ipv6.bindv6only=1`),
/// `:PORT` still answers IPv4, on a second socket: checked in a network
/// namespace of its own, where that setting can be changed.
#[test]
#[ignore = "needs ip: apt-get install iproute2"]
fn metrics_bare_port_answers_ipv4_where_ipv6_sockets_are_v6_only() {
    if !require_tool("ip", "iproute2") {
        return;
    }
    let netns_ok = Command::new("unshare")
        .args(["--net", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !netns_ok {
        cannot_run("no network namespace can be made (unshare --net refused)");
        return;
    }
    let s = Scratch::new("v6only");
    let conf = s.path("app.conf");
    fs::write(&conf, "v1").unwrap();
    let script = recorder(&conf, &s.path("starts"), "exit 0");
    let setup = "ip link set lo up && echo 1 > /proc/sys/net/ipv6/bindv6only && exec \"$0\" \"$@\"";
    let launcher: Vec<String> = ["unshare", "--net", "sh", "-c", setup, BIN]
        .map(String::from)
        .to_vec();
    let m = Manager::start_with(
        &sh_args(
            &["--config", conf.to_str().unwrap(), "--metrics", ":9111"],
            &script,
        ),
        Opts {
            launcher: Some(launcher),
            ..Opts::plain()
        },
    );
    assert!(s.wait_contains("starts", "start"), "{}", m.log());
    assert!(m.wait_log("Serving metrics at"), "{}", m.log());
    let log = m.log();
    assert!(
        log.contains("listening on [::]:9111\n") && log.contains("listening on 0.0.0.0:9111"),
        "two sockets: {log}"
    );
    // Scrapes from inside the manager's network namespace (setns moves
    // only the calling thread).
    let netns = fs::File::open(format!("/proc/{}/ns/net", m.pid())).unwrap();
    let results = std::thread::spawn(move || {
        use std::os::fd::AsRawFd;
        // SAFETY: setns(2) on an open namespace file, for this thread only.
        if unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(std::io::Error::last_os_error().to_string());
        }
        let v6 = TcpListener::bind("[::1]:0").is_ok();
        let mut results = vec![scrape(SocketAddr::from(([127, 0, 0, 1], 9111)))];
        if v6 {
            results.push(scrape(SocketAddr::from((
                std::net::Ipv6Addr::LOCALHOST,
                9111,
            ))));
        } else {
            eprintln!("SKIPPED: the IPv6 part, no IPv6 loopback in the namespace");
        }
        Ok(results)
    })
    .join()
    .unwrap()
    .unwrap();
    for r in results {
        assert!(r.is_ok(), "{r:?}\n{}", m.log());
    }
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

/// The log of a manager with `--log-format json` whose config changed once
/// to bytes that look like a secret.
fn json_log() -> String {
    let s = Scratch::new("json");
    let conf = s.path("app.conf");
    let m = manager(&s, &conf, &["--log-format", "json"]);
    write_in_place(&conf, b"secret-token-123");
    assert!(wait_for(LONG, || starts(&s) == 2), "{}", m.log());
    m.log()
}

#[test]
fn json_logs_hold_structured_fields_and_no_config_content() {
    let log = json_log();
    assert!(
        !log.contains("secret-token-123"),
        "config content in the log"
    );
    assert!(log.contains("\"pid\":"), "structured fields: {log}");
    assert!(log.contains("\"path\":"), "{log}");
}

/// Python's json module, a parser of its own, reads every line as an object.
#[test]
#[ignore = "needs python3: apt-get install python3"]
fn json_logs_parse_line_by_line() {
    if !require_tool("python3", "python3") {
        return;
    }
    let log = json_log();
    let check = "import json,sys\nfor l in sys.stdin:\n    o=json.loads(l)\n    assert {'ts','level','message'} <= o.keys(), o\n";
    let (ok, out) = Command::new("python3")
        .args(["-c", check])
        .stdin(Stdio::piped())
        .output_with(&log);
    assert!(ok, "{out}\n{log}");
}
