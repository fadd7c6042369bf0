//! Real servers from Debian packages, run the way users run them under the
//! manager: nginx validated by `nginx -t` and reloaded by HUP; gunicorn and
//! php-fpm keeping an in-flight request across a config reload and a
//! forwarded signal; redis-server with prometheus-redis-exporter, the Go
//! tool's own pairing. Each test is ignored by default, as a bare Debian
//! has none of these servers; `.ci/run` installs them and runs
//! `cargo test --release -- --include-ignored`, where a missing one fails
//! the test saying what to install (see `require_tool`). The release binary, as PID 1 of a fresh PID
//! namespace where one can be made.
// These tests drive Linux itself (PID namespaces, /proc, signalfd).
#![cfg(target_os = "linux")]

mod common;

use common::*;
use nix::libc;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::thread::JoinHandle;
use std::time::Duration;

/// PID 1 where a namespace can be made (as in a container), else plain.
fn mode() -> Mode {
    match unshare_prefix() {
        Some(_) => Mode::Pid1,
        None => Mode::Plain,
    }
}

/// `GET path` over HTTP/1.0: (status, body), or None if nobody answers.
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(LONG)).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut reply = String::new();
    s.read_to_string(&mut reply).ok()?;
    let status = reply.split_whitespace().nth(1)?.parse().ok()?;
    let body = reply.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Some((status, body.to_string()))
}

/// Waits until `GET path` answers 200 with a body containing `needle`.
fn wait_body(port: u16, path: &str, needle: &str) -> bool {
    wait_for(LONG, || {
        http_get(port, path).is_some_and(|(code, body)| code == 200 && body.contains(needle))
    })
}

/// One FastCGI request for `script` (the protocol php-fpm speaks): the
/// response body without its CGI headers, or None if the request failed or
/// never completed.
fn fcgi_get(port: u16, script: &Path) -> Option<String> {
    fn record(kind: u8, content: &[u8]) -> Vec<u8> {
        let len = content.len() as u16;
        let mut r = vec![1, kind, 0, 1, (len >> 8) as u8, len as u8, 0, 0];
        r.extend_from_slice(content);
        r
    }
    let mut params = vec![];
    for (k, v) in [
        ("SCRIPT_FILENAME", script.to_str()?),
        ("REQUEST_METHOD", "GET"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("GATEWAY_INTERFACE", "CGI/1.1"),
    ] {
        params.extend([k.len() as u8, v.len() as u8]);
        params.extend_from_slice(k.as_bytes());
        params.extend_from_slice(v.as_bytes());
    }
    let mut request = record(1, &[0, 1, 0, 0, 0, 0, 0, 0]); // BEGIN_REQUEST, responder
    request.extend(record(4, &params));
    request.extend(record(4, &[]));
    request.extend(record(5, &[])); // empty STDIN
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(LONG)).ok()?;
    s.write_all(&request).ok()?;
    let mut reply = vec![];
    s.read_to_end(&mut reply).ok()?;
    let (mut out, mut ended, mut at) = (vec![], false, 0);
    while at + 8 <= reply.len() {
        let kind = reply[at + 1];
        let len = u16::from_be_bytes([reply[at + 4], reply[at + 5]]) as usize;
        let end = at + 8 + len + reply[at + 6] as usize;
        let content = reply.get(at + 8..at + 8 + len)?;
        match kind {
            6 => out.extend_from_slice(content), // STDOUT
            3 => ended = true,                   // END_REQUEST
            _ => {}
        }
        at = end;
    }
    let text = String::from_utf8_lossy(&out).to_string();
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string());
    ended.then_some(body).flatten()
}

/// Starts a request in a thread and returns once the server has begun it
/// (the handler appends a line to `marker`); the thread returns the body.
fn in_flight(
    s: &Scratch,
    marker: &str,
    request: impl FnOnce() -> Option<String> + Send + 'static,
) -> JoinHandle<Option<String>> {
    let before = s.lines(marker).len();
    let t = std::thread::spawn(request);
    assert!(
        wait_for(LONG, || s.lines(marker).len() > before),
        "the slow request never started"
    );
    t
}

// ---------------------------------------------------------------------------
// nginx

fn nginx_conf(s: &Scratch, port: u16, body: &str) -> String {
    let d = s.0.display();
    format!(
        "daemon off;\nmaster_process on;\nworker_processes 1;\npid {d}/nginx.pid;\n\
         error_log stderr notice;\nevents {{ worker_connections 64; }}\nhttp {{\n  access_log off;\n\
         client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fcgi;\n\
         uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n\
         server {{ listen 127.0.0.1:{port}; location / {{ return 200 \"{body}\\n\"; }} }}\n}}\n"
    )
}

#[test]
#[ignore = "needs nginx: apt-get install nginx-light"]
fn nginx_reloads_validated_config_by_hup_and_keeps_serving_through_a_broken_push() {
    if !require_tool("nginx", "nginx-light") {
        return;
    }
    let s = Scratch::new("nginx");
    let port = free_port();
    let conf = s.path("nginx.conf");
    std::fs::write(&conf, nginx_conf(&s, port, "v1")).expect("write conf");
    let c = conf.display().to_string();
    let validate = format!("--validate=nginx -e stderr -t -c {c}");
    let m = run(
        mode(),
        &[
            &format!("--config={c}"),
            &validate,
            "--reload-signal=HUP",
            "--",
            "nginx",
            "-e",
            "stderr",
            "-c",
            &c,
        ],
    );
    assert!(wait_body(port, "/", "v1"), "nginx never served v1");
    let master = m.child_pid();

    // A good push: validated, then HUP; the master stays, the workers serve v2.
    replace_by_rename(&conf, nginx_conf(&s, port, "v2").as_bytes(), "nginx.tmp");
    assert!(wait_body(port, "/", "v2"), "nginx never served v2");
    assert_eq!(m.child_pid(), master, "the nginx master was restarted");
    assert!(m.wait_log("sending SIGHUP to child process"));

    // A broken push: `nginx -t` rejects it, nginx never hears of it.
    let broken = nginx_conf(&s, port, "v3").replace("location /", "locaton /");
    replace_by_rename(&conf, broken.as_bytes(), "nginx.tmp");
    assert!(m.wait_log("keeping the current child running untouched"));
    assert_eq!(http_get(port, "/"), Some((200, "v2\n".into())));
    assert_eq!(m.count("sending SIGHUP"), 1);

    // The fix reloads, still the same master.
    replace_by_rename(&conf, nginx_conf(&s, port, "v4").as_bytes(), "nginx.tmp");
    assert!(
        wait_body(port, "/", "v4"),
        "nginx never served the fixed config"
    );
    assert_eq!(m.child_pid(), master);
    assert_eq!(m.count("sending SIGHUP"), 2);
    assert!(alive(master));
}

// ---------------------------------------------------------------------------
// gunicorn

const WSGI_APP: &str = r#"import os, time
HERE = os.path.dirname(os.path.abspath(__file__))
def app(environ, start_response):
    body = b"ok"
    if environ["PATH_INFO"] == "/slow":
        with open(os.path.join(HERE, "in-flight"), "a") as f:
            f.write("started\n")
        time.sleep(3)
        body = b"slow-done"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
"#;

fn gunicorn_conf(port: u16, version: u32) -> String {
    format!(
        "bind = \"127.0.0.1:{port}\"\nworkers = 2\ngraceful_timeout = 30\ntimeout = 60\n# version {version}\n"
    )
}

/// gunicorn under the manager with `extra` options; (manager, port, scratch).
fn gunicorn(extra: &[&str]) -> (Manager, u16, Scratch) {
    let s = Scratch::new("gunicorn");
    let port = free_port();
    std::fs::write(s.path("app.py"), WSGI_APP).expect("write app");
    std::fs::write(s.path("gunicorn.conf.py"), gunicorn_conf(port, 1)).expect("write conf");
    let config = format!("--config={}", s.path("gunicorn.conf.py").display());
    let conf = s.path("gunicorn.conf.py").display().to_string();
    let dir = s.0.display().to_string();
    let mut args = vec![config.as_str(), "--reload-signal=HUP"];
    args.extend(extra);
    args.extend(["--", "gunicorn", "-c", &conf, "--chdir", &dir, "app:app"]);
    let m = run(mode(), &args);
    assert!(wait_body(port, "/", "ok"), "gunicorn never answered");
    // Both workers up: the slow request must not wait for a free one.
    let master = m.child_pid();
    assert!(wait_for(LONG, || children_of(master).len() == 2));
    (m, port, s)
}

#[test]
#[ignore = "needs gunicorn: apt-get install gunicorn"]
fn a_gunicorn_request_in_flight_survives_a_config_reload_and_a_forwarded_hup() {
    if !require_tool("gunicorn", "gunicorn") {
        return;
    }
    let (m, port, s) = gunicorn(&[]);
    let master = m.child_pid();

    // A config change: HUP to the master; its old workers finish their
    // request before they go.
    let req = in_flight(&s, "in-flight", move || {
        http_get(port, "/slow").map(|(code, body)| format!("{code} {body}"))
    });
    write_in_place(
        &s.path("gunicorn.conf.py"),
        gunicorn_conf(port, 2).as_bytes(),
    );
    assert!(m.wait_log("sending SIGHUP to child process"));
    assert_eq!(
        req.join().expect("request thread"),
        Some("200 slow-done".into())
    );

    // A HUP sent to the manager goes to the master alone.
    let req = in_flight(&s, "in-flight", move || {
        http_get(port, "/slow").map(|(code, body)| format!("{code} {body}"))
    });
    m.signal(libc::SIGHUP);
    assert_eq!(
        req.join().expect("request thread"),
        Some("200 slow-done".into())
    );
    assert_eq!(m.child_pid(), master, "gunicorn's master was restarted");
    assert!(wait_body(port, "/", "ok"));
}

#[test]
#[ignore = "needs gunicorn: apt-get install gunicorn"]
fn with_signal_to_group_the_same_hup_kills_the_gunicorn_worker_mid_request() {
    // The control for the test above: it can tell a worker that was
    // signalled from one that was not.
    if !require_tool("gunicorn", "gunicorn") {
        return;
    }
    let (m, port, s) = gunicorn(&["--signal-to=group"]);
    let req = in_flight(&s, "in-flight", move || {
        http_get(port, "/slow").map(|(code, body)| format!("{code} {body}"))
    });
    m.signal(libc::SIGHUP);
    let got = req.join().expect("request thread");
    assert_ne!(
        got,
        Some("200 slow-done".into()),
        "the worker survived a HUP of its own"
    );
}

// ---------------------------------------------------------------------------
// php-fpm

/// Debian names the binary after the PHP version (`php-fpm8.2`).
fn php_fpm() -> Option<String> {
    let found = std::fs::read_dir("/usr/sbin").ok().and_then(|d| {
        d.flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .find(|n| n.starts_with("php-fpm"))
    });
    match found {
        Some(name) => Some(format!("/usr/sbin/{name}")),
        None if cannot_run("php-fpm is not installed (apt-get install php-fpm)") => None,
        None => unreachable!("cannot_run fails the test"),
    }
}

fn fpm_conf(s: &Scratch, port: u16, version: u32) -> String {
    format!(
        "[global]\npid = {d}/fpm.pid\nerror_log = /proc/self/fd/2\ndaemonize = no\n\
         process_control_timeout = 30s\n\n[www]\nuser = root\ngroup = root\n\
         listen = 127.0.0.1:{port}\npm = static\npm.max_children = 2\n; version {version}\n",
        d = s.0.display()
    )
}

#[test]
#[ignore = "needs php-fpm: apt-get install php-fpm"]
fn a_php_fpm_request_in_flight_survives_a_config_reload_and_a_forwarded_usr2() {
    let Some(fpm) = php_fpm() else {
        return;
    };
    let s = Scratch::new("fpm");
    let port = free_port();
    let conf = s.path("fpm.conf");
    std::fs::write(&conf, fpm_conf(&s, port, 1)).expect("write conf");
    let script = s.path("slow.php");
    std::fs::write(
        &script,
        "<?php file_put_contents(__DIR__ . '/in-flight', \"started\\n\", FILE_APPEND); sleep(3); echo 'slow-done';",
    )
    .expect("write script");
    std::fs::write(s.path("fast.php"), "<?php echo 'ok';").expect("write script");
    let c = conf.display().to_string();
    let m = run(
        mode(),
        &[
            &format!("--config={c}"),
            "--reload-signal=USR2",
            "--",
            &fpm,
            "--nodaemonize",
            "--allow-to-run-as-root",
            "--no-php-ini",
            "--fpm-config",
            &c,
        ],
    );
    let fast = s.path("fast.php");
    assert!(
        wait_for(LONG, || fcgi_get(port, &fast).as_deref() == Some("ok")),
        "php-fpm never answered"
    );
    let master = m.child_pid();

    // A config change: USR2 to the master, which lets busy workers finish.
    let slow = script.clone();
    let req = in_flight(&s, "in-flight", move || fcgi_get(port, &slow));
    write_in_place(&conf, fpm_conf(&s, port, 2).as_bytes());
    assert!(m.wait_log("sending SIGUSR2 to child process"));
    assert_eq!(
        req.join().expect("request thread"),
        Some("slow-done".into())
    );

    // USR2 sent to the manager: forwarded to the master alone.
    let slow = script.clone();
    let req = in_flight(&s, "in-flight", move || fcgi_get(port, &slow));
    m.signal(libc::SIGUSR2);
    assert_eq!(
        req.join().expect("request thread"),
        Some("slow-done".into())
    );
    assert!(wait_for(LONG, || fcgi_get(port, &fast).as_deref() == Some("ok")));
    assert_eq!(m.child_pid(), master, "php-fpm's master was restarted");
}

// ---------------------------------------------------------------------------
// redis-server + prometheus-redis-exporter

#[test]
#[ignore = "needs redis: apt-get install redis-server prometheus-redis-exporter"]
fn a_config_change_restarts_the_redis_exporter_and_a_touch_restarts_nothing() {
    if !require_tool("redis-server", "redis-server")
        || !require_tool("prometheus-redis-exporter", "prometheus-redis-exporter")
    {
        return;
    }
    let s = Scratch::new("redis");
    let (redis_port, metrics_port) = (free_port(), free_port());
    let rp = redis_port.to_string();
    let _redis = Manager::plain(&[
        "--config=",
        "--",
        "redis-server",
        "--port",
        &rp,
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        &s.0.display().to_string(),
    ]);
    let conf = s.path("exporter.conf");
    std::fs::write(&conf, "namespace=redis\n").expect("write conf");
    let m = run(
        mode(),
        &[
            &format!("--config={}", conf.display()),
            "--",
            "prometheus-redis-exporter",
            &format!("--redis.addr=redis://127.0.0.1:{redis_port}"),
            &format!("--web.listen-address=127.0.0.1:{metrics_port}"),
        ],
    );
    assert!(
        wait_body(metrics_port, "/metrics", "redis_up 1"),
        "the exporter never reported redis up"
    );
    let first = m.child_pid();

    // A touch changes no byte: no restart. The change after it is the
    // sentinel: one restart in all proves the touch caused none.
    let f = std::fs::File::options()
        .append(true)
        .open(&conf)
        .expect("open");
    f.set_modified(std::time::SystemTime::now() + Duration::from_secs(60))
        .expect("touch");
    drop(f);
    write_in_place(&conf, b"namespace=redis\ncheck-keys=a\n");
    assert!(m.wait_log("restarting child process"));
    assert!(wait_for(LONG, || m.child_pid() != first && alive(m.child_pid())));
    assert!(
        wait_body(metrics_port, "/metrics", "redis_up 1"),
        "/metrics never answered after the restart"
    );
    assert_eq!(
        m.count("restarting child process"),
        1,
        "the touch restarted it"
    );
    assert!(!alive(first));
}

// ---------------------------------------------------------------------------
// nginx: a config that passes `nginx -t` and still breaks nginx

/// The first line of `GET path` on the metrics listener and its body.
fn probe_page(port: u16, path: &str) -> Option<(u16, String)> {
    http_get(port, path)
}

/// nginx under `--promote-to` with a rollback window, the ConfigMap written
/// by the kubelet's writer; the check reads the staged candidate.
fn nginx_promoted(
    s: &Scratch,
    kube: &common::kubelet::AtomicWriter,
    extra: &[&str],
) -> (Manager, u16) {
    let metrics = free_port();
    let dir = s.path("app");
    let mut args: Vec<String> = vec![
        format!("--config={}", kube.dir.display()),
        format!("--promote-to={}", dir.display()),
        "--validate=sh -c 'nginx -e stderr -t -q -c $FLUSH_MANAGER_CANDIDATE/nginx.conf'".into(),
        "--rollback-window=60s".into(),
        format!("--metrics=127.0.0.1:{metrics}"),
        "--debounce=100ms".into(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    args.extend(
        ["--", "nginx", "-e", "stderr", "-c"]
            .iter()
            .map(|a| a.to_string()),
    );
    args.push(dir.join("nginx.conf").display().to_string());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    (run(mode(), &args), metrics)
}

#[test]
#[ignore = "needs nginx: apt-get install nginx-light"]
fn nginx_that_cannot_bind_its_new_port_is_rolled_back_and_serves_again() {
    if !require_tool("nginx", "nginx-light") {
        return;
    }
    let s = Scratch::new("nginx-rollback");
    let kube = common::kubelet::AtomicWriter::new(&s.path("src"));
    let port = free_port();
    kube.write(&[("nginx.conf", nginx_conf(&s, port, "v1").as_bytes())]);
    let (m, metrics) = nginx_promoted(&s, &kube, &[]);
    assert!(
        wait_body(port, "/", "v1"),
        "nginx never served v1\n{}",
        m.log()
    );
    assert!(
        wait_for(LONG, || probe_page(metrics, "/readyz")
            .is_some_and(|(c, _)| c == 200)),
        "{}",
        m.log()
    );
    assert_eq!(probe_page(metrics, "/healthz").map(|(c, _)| c), Some(200));
    assert!(m.wait_log("Watching directory"));

    // v2 passes `nginx -t` (it binds nothing) but its port is taken: the
    // new nginx exits at once, within the window.
    let taken = TcpListener::bind("127.0.0.1:0").expect("hold a port");
    let busy = taken.local_addr().expect("addr").port();
    kube.write(&[("nginx.conf", nginx_conf(&s, busy, "v2").as_bytes())]);
    assert!(m.wait_log("rolled back from generation"), "{}", m.log());
    assert!(
        wait_body(port, "/", "v1"),
        "not serving the previous config again\n{}",
        m.log()
    );
    let promoted = std::fs::read_to_string(s.path("app/nginx.conf")).unwrap_or_default();
    assert!(promoted.contains(&format!(":{port};")), "DIR is back on v1");
    assert!(
        wait_for(LONG, || probe_page(metrics, "/readyz")
            .is_some_and(|(c, _)| c == 200)),
        "/readyz\n{}",
        m.log()
    );
    let text = probe_page(metrics, "/metrics")
        .map(|(_, b)| b)
        .unwrap_or_default();
    assert!(text.contains("flush_manager_rollbacks_total 1"), "{text}");
    // A touch of the rolled-back bytes does nothing.
    assert_eq!(m.count("rolled back from generation"), 1);

    // The next good push goes through.
    let port3 = free_port();
    kube.write(&[("nginx.conf", nginx_conf(&s, port3, "v3").as_bytes())]);
    assert!(wait_body(port3, "/", "v3"), "v3 never served\n{}", m.log());
    drop(taken);
}

#[test]
#[ignore = "needs nginx: apt-get install nginx-light"]
fn nginx_reloaded_onto_a_port_it_cannot_bind_keeps_its_workers_and_the_probe_rolls_back() {
    if !require_tool("nginx", "nginx-light") || !require_tool("python3", "python3") {
        return;
    }
    let s = Scratch::new("nginx-hup-rollback");
    let kube = common::kubelet::AtomicWriter::new(&s.path("src"));
    let port = free_port();
    kube.write(&[("nginx.conf", nginx_conf(&s, port, "v1").as_bytes())]);
    // Ready while nginx answers on the port the config it was given says.
    let probe = s.path("ready.py");
    std::fs::write(
        &probe,
        "import re, sys, urllib.request\n\
         conf = open(sys.argv[1]).read()\n\
         port = re.search(r'listen 127.0.0.1:(\\d+);', conf).group(1)\n\
         urllib.request.urlopen('http://127.0.0.1:%s/' % port, timeout=0.2)\n",
    )
    .expect("write probe");
    let check = format!(
        "--ready-check=python3 {} {}",
        probe.display(),
        s.path("app/nginx.conf").display()
    );
    let (m, metrics) = nginx_promoted(
        &s,
        &kube,
        // Each probe may take its interval: python3 alone needs about 0.25 s
        // to start here, so 300ms timed every probe out and nginx was
        // never ready (a start period then rightly counts no failure).
        // The reload onto v2 begins a start period too: 2 s, not the
        // default minute, before its failures count.
        &[
            "--reload-signal=HUP",
            &check,
            "--ready-interval=1s",
            "--ready-start-period=2s",
        ],
    );
    assert!(
        wait_body(port, "/", "v1"),
        "nginx never served v1\n{}",
        m.log()
    );
    assert!(m.wait_log("Watching directory"));
    // Ready once on v1: from then on the probe's failures count (before
    // that, a start period would rightly count none).
    assert!(
        wait_for(LONG, || probe_page(metrics, "/readyz")
            .is_some_and(|(c, _)| c == 200)),
        "nginx never ready on v1\n{}",
        m.log()
    );
    let master = m.child_pid();
    let taken = TcpListener::bind("127.0.0.1:0").expect("hold a port");
    let busy = taken.local_addr().expect("addr").port();
    kube.write(&[("nginx.conf", nginx_conf(&s, busy, "v2").as_bytes())]);
    assert!(m.wait_log("sending SIGHUP"), "{}", m.log());
    // nginx keeps its old workers (its own behaviour): nothing answers on
    // the new port; the probe fails (`/readyz` says so at once), and three
    // times in a row once the reload's start period ran out.
    assert!(
        wait_for(LONG, || probe_page(metrics, "/readyz")
            .is_some_and(|(c, _)| c == 503)),
        "/readyz never said not ready\n{}",
        m.log()
    );
    assert!(m.wait_log("rolled back from generation"), "{}", m.log());
    assert!(wait_body(port, "/", "v1"));
    assert_eq!(m.child_pid(), master, "reloaded, not restarted");
    assert!(
        wait_for(LONG, || probe_page(metrics, "/readyz")
            .is_some_and(|(c, _)| c == 200)),
        "{}",
        m.log()
    );
    drop(taken);
}

// ---------------------------------------------------------------------------
// nginx: a different action per file (--on-change)

/// A self-signed certificate and key for `cn` (PEM), by openssl.
fn certificate(s: &Scratch, cn: &str) -> (Vec<u8>, Vec<u8>) {
    let (crt, key) = (s.path(&format!("{cn}.crt")), s.path(&format!("{cn}.key")));
    let made = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", &format!("/CN={cn}")])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run openssl");
    assert!(made.success(), "openssl req failed");
    let read = |p: &Path| std::fs::read(p).expect("read certificate");
    (read(&crt), read(&key))
}

/// The subject of the certificate a TLS server on `port` presents.
fn served_subject(port: u16) -> Option<String> {
    let script = format!(
        "openssl s_client -connect 127.0.0.1:{port} </dev/null 2>/dev/null | openssl x509 -noout -subject"
    );
    let out = std::process::Command::new("sh")
        .args(["-c", &script])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (!text.is_empty()).then_some(text)
}

/// nginx with a plain server (its body) and a TLS server (the certificate
/// in the same ConfigMap directory, `dir`).
fn nginx_tls_conf(s: &Scratch, dir: &Path, port: u16, tls: u16, body: &str) -> String {
    let plain = nginx_conf(s, port, body);
    let d = dir.display();
    let server = format!(
        "server {{ listen 127.0.0.1:{tls} ssl; ssl_certificate {d}/tls.crt; ssl_certificate_key {d}/tls.key; location / {{ return 200 \"tls\\n\"; }} }}\n}}\n"
    );
    // Inside the http block, after the plain server.
    let (head, _) = plain.rsplit_once('}').expect("http block");
    format!("{head}{server}")
}

#[test]
#[ignore = "needs nginx and openssl: apt-get install nginx-light openssl"]
fn nginx_restarts_for_its_config_hups_for_a_certificate_and_ignores_a_docs_key() {
    if !require_tool("nginx", "nginx-light") || !require_tool("openssl", "openssl") {
        return;
    }
    let s = Scratch::new("nginx-on-change");
    let kube = common::kubelet::AtomicWriter::new(&s.path("src"));
    let (port, tls) = (free_port(), free_port());
    let conf = |body: &str| nginx_tls_conf(&s, &kube.dir, port, tls, body);
    let (crt1, key1) = certificate(&s, "one");
    let (crt2, key2) = certificate(&s, "two");
    let (crt3, key3) = certificate(&s, "three");
    let write = |body: &str, crt: &[u8], key: &[u8], docs: &str| {
        let conf = conf(body);
        kube.write(&[
            ("nginx.conf", conf.as_bytes()),
            ("tls.crt", crt),
            ("tls.key", key),
            ("README.md", docs.as_bytes()),
        ]);
    };
    write("v1", &crt1, &key1, "docs 1");
    let c = kube.dir.join("nginx.conf").display().to_string();
    let m = run(
        mode(),
        &[
            &format!("--config={}", kube.dir.display()),
            &format!("--validate=nginx -e stderr -t -q -c {c}"),
            "--on-change=tls.*=signal:HUP",
            "--on-change=README.md=none",
            "--debounce=200ms",
            "--",
            "nginx",
            "-e",
            "stderr",
            "-c",
            &c,
        ],
    );
    assert!(
        wait_body(port, "/", "v1"),
        "nginx never served v1\n{}",
        m.log()
    );
    assert!(
        wait_for(LONG, || served_subject(tls)
            .is_some_and(|s| s.contains("one"))),
        "nginx never presented the first certificate\n{}",
        m.log()
    );
    assert!(m.wait_log("Watching directory"));
    let master = m.child_pid();

    // A renewed certificate: HUP, the same master, the new certificate.
    write("v1", &crt2, &key2, "docs 1");
    assert!(
        wait_for(LONG, || served_subject(tls)
            .is_some_and(|s| s.contains("two"))),
        "nginx never presented the renewed certificate\n{}",
        m.log()
    );
    assert!(m.wait_log("sending SIGHUP to child process"), "{}", m.log());
    assert_eq!(m.child_pid(), master, "a certificate restarted nginx");

    // The README key: nothing at all.
    write("v1", &crt2, &key2, "docs 2");
    assert!(
        m.wait_log("Config change ignored (--on-change none)"),
        "{}",
        m.log()
    );
    assert_eq!(m.count("sending SIGHUP"), 1, "{}", m.log());
    assert_eq!(
        m.count("Validating config with"),
        2,
        "no check for docs\n{}",
        m.log()
    );
    assert_eq!(m.child_pid(), master);
    assert!(alive(master));

    // The main config with a certificate in one update: one restart, onto
    // both, and no HUP.
    write("v2", &crt3, &key3, "docs 2");
    assert!(
        wait_body(port, "/", "v2"),
        "nginx never served v2\n{}",
        m.log()
    );
    assert!(
        m.wait_log("restarting child process... (for "),
        "{}",
        m.log()
    );
    assert!(
        wait_for(LONG, || served_subject(tls)
            .is_some_and(|s| s.contains("three"))),
        "{}",
        m.log()
    );
    assert_ne!(m.child_pid(), master, "nginx.conf did not restart nginx");
    assert!(!alive(master));
    assert_eq!(m.count("sending SIGHUP"), 1, "{}", m.log());
}
