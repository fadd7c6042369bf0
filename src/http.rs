//! The little HTTP the manager speaks, on the supervisor's own executor (no
//! thread, no socket unless asked for): `--reload-url` POSTs a URL, and
//! `--metrics` serves `GET /metrics`.
//!
//! Written here rather than taken from a crate: the request and the
//! response line are a few dozen lines; the blocking clients (ureq, attohttpc)
//! would need a thread beside the single-threaded loop, and the async ones
//! (hyper and friends) bring a runtime of their own and several hundred KB
//! to a 740 KB binary. Plain http only: reload endpoints (Prometheus,
//! Alertmanager, Loki `/-/reload`) listen on the pod's own loopback.

use futures::{AsyncReadExt, AsyncWriteExt, FutureExt};
use log::{debug, warn};
use std::cell::Cell;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::rc::Rc;
use std::time::Duration;

/// An `http://host[:port]/path` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl std::fmt::Display for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // An IPv6 literal goes in brackets (RFC 3986), or its colons would
        // read as a port.
        if self.host.contains(':') {
            write!(f, "http://[{}]:{}{}", self.host, self.port, self.path)
        } else {
            write!(f, "http://{}:{}{}", self.host, self.port, self.path)
        }
    }
}

impl Url {
    /// The addresses to try: an IP literal, or `localhost` (both loopback
    /// families). No DNS: a lookup would block the single-threaded loop,
    /// and its resolver code is a sixth of what this feature may add.
    fn addrs(&self) -> Result<Vec<SocketAddr>, String> {
        if self.host.eq_ignore_ascii_case("localhost") {
            return Ok(vec![
                SocketAddr::from(([127, 0, 0, 1], self.port)),
                SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, self.port)),
            ]);
        }
        self.host
            .parse::<std::net::IpAddr>()
            .map(|ip| vec![SocketAddr::new(ip, self.port)])
            .map_err(|_| format!("{}: host must be an IP address or localhost", self.host))
    }

    pub fn parse(text: &str) -> Result<Url, String> {
        let rest = text.strip_prefix("http://").ok_or_else(|| {
            if text.starts_with("https://") {
                format!("{text:?}: https is not supported (reload endpoints listen on the pod's loopback; use http://)")
            } else {
                format!("{text:?}: expected http://host[:port]/path")
            }
        })?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = split_authority(authority).map_err(|e| format!("{text:?}: {e}"))?;
        if host.is_empty() || path.contains(|c: char| c.is_whitespace() || c.is_control()) {
            return Err(format!("{text:?}: expected http://host[:port]/path"));
        }
        let url = Url {
            host: host.to_string(),
            port,
            path: path.to_string(),
        };
        url.addrs().map_err(|e| {
            format!("{text:?}: {e} (reload endpoints listen in the pod: use localhost)")
        })?;
        Ok(url)
    }
}

/// `host[:port]` as RFC 3986 reads it: an IPv6 literal only in brackets
/// (`[::1]`, `[::1]:9090`), since a bare `::1:9090` cannot say where the
/// address ends and the port begins. The port is digits and may be empty
/// (the default, 80).
fn split_authority(authority: &str) -> Result<(&str, u16), String> {
    let (host, port) = if let Some(inside) = authority.strip_prefix('[') {
        let (host, after) = inside
            .split_once(']')
            .ok_or("unclosed '[' (an IPv6 address is written [::1])")?;
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!(
                "[{host}] is not an IPv6 address (brackets hold only those)"
            ));
        }
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| format!("unexpected {p:?} after [{host}] (expected :port)"))?,
            ),
        };
        (host, port)
    } else {
        match authority.split_once(':') {
            // Two colons or more: an unbracketed IPv6 address, with or
            // without a port; which it is cannot be told.
            Some(_) if authority.matches(':').count() > 1 => {
                return Err(format!(
                    "{authority}: an IPv6 address must be in brackets, with the port after them (e.g. http://[::1]:9090/path)"
                ));
            }
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = match port {
        None | Some("") => 80,
        Some(p) if p.bytes().all(|b| b.is_ascii_digit()) => p
            .parse::<u16>()
            .map_err(|_| format!("invalid port {p:?}"))?,
        Some(p) => return Err(format!("invalid port {p:?}")),
    };
    Ok((host, port))
}

/// POSTs an empty body to `url`; the response's status code, or why none
/// came, within `timeout`.
pub async fn post(url: &Url, timeout: Duration) -> Result<u16, String> {
    let request = async {
        let addrs = url.addrs()?;
        let mut last = format!("no address for {}", url.host);
        for addr in addrs {
            match async_io::Async::<TcpStream>::connect(addr).await {
                Ok(mut stream) => {
                    let host = if url.host.contains(':') {
                        format!("[{}]", url.host)
                    } else {
                        url.host.clone()
                    };
                    let head = format!(
                        "POST {} HTTP/1.1\r\nHost: {host}:{}\r\nUser-Agent: flush-manager/{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        url.path,
                        url.port,
                        crate::cli::VERSION
                    );
                    stream
                        .write_all(head.as_bytes())
                        .await
                        .map_err(|e| format!("{url}: {e}"))?;
                    return status_line(&mut stream)
                        .await
                        .map_err(|e| format!("{url}: {e}"));
                }
                Err(e) => last = format!("{url}: {e}"),
            }
        }
        Err(last)
    };
    futures::select! {
        r = request.fuse() => r,
        _ = FutureExt::fuse(async_io::Timer::after(timeout)) => Err(format!("{url}: no answer within {timeout:?}")),
    }
}

/// Reads up to the end of the status line: `HTTP/1.1 200 OK` → 200.
async fn status_line(stream: &mut async_io::Async<TcpStream>) -> Result<u16, String> {
    let mut line = Vec::new();
    let mut buf = [0u8; 256];
    while !line.contains(&b'\n') {
        let n = stream.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 || line.len() > 4096 {
            break;
        }
        line.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&line);
    let first = text.lines().next().unwrap_or_default();
    first
        .split_whitespace()
        .nth(1)
        .filter(|_| first.starts_with("HTTP/1."))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| {
            format!(
                "not an HTTP response: {:?}",
                first.chars().take(80).collect::<String>()
            )
        })
}

/// Limits that keep a slow or hostile client from costing the loop.
const MAX_CONNECTIONS: usize = 8;
const MAX_REQUEST: usize = 8 * 1024;
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves `GET /metrics` with the text `render` gives, as tasks on `ex`.
/// Each connection is a task with a deadline and a size limit; beyond
/// `MAX_CONNECTIONS`, new ones are closed at once.
pub fn serve(
    ex: &Rc<smol::LocalExecutor<'static>>,
    listener: TcpListener,
    render: Rc<dyn Fn() -> String>,
) -> std::io::Result<()> {
    let listener = async_io::Async::new(listener)?;
    let open = Rc::new(Cell::new(0usize));
    let spawner = Rc::clone(ex);
    ex.spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((s, _)) => s,
                Err(e) => {
                    warn!("Metrics: accept failed: {e}");
                    async_io::Timer::after(Duration::from_millis(100)).await;
                    continue;
                }
            };
            if open.get() >= MAX_CONNECTIONS {
                debug!("Metrics: too many connections; closing one");
                continue;
            }
            open.set(open.get() + 1);
            let (open, render) = (Rc::clone(&open), Rc::clone(&render));
            spawner
                .spawn(async move {
                    let answer = answer(stream, &*render);
                    futures::select! {
                        _ = answer.fuse() => {},
                        _ = FutureExt::fuse(async_io::Timer::after(CLIENT_TIMEOUT)) => {
                            debug!("Metrics: client too slow; closed");
                        }
                    }
                    open.set(open.get() - 1);
                })
                .detach();
        }
    })
    .detach();
    Ok(())
}

async fn answer(mut stream: async_io::Async<TcpStream>, render: &dyn Fn() -> String) {
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && !request.windows(2).any(|w| w == b"\n\n")
    {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
        if request.len() > MAX_REQUEST {
            let _ = respond(
                &mut stream,
                "431 Request Header Fields Too Large",
                "text/plain",
                "too large\n",
            )
            .await;
            return;
        }
    }
    let text = String::from_utf8_lossy(&request);
    let mut first = text.lines().next().unwrap_or_default().split_whitespace();
    let (method, path) = (first.next().unwrap_or(""), first.next().unwrap_or(""));
    let _ = match (method, path.split('?').next().unwrap_or("")) {
        ("GET" | "HEAD", "/metrics") => {
            let body = render();
            respond(
                &mut stream,
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                &body,
            )
            .await
        }
        ("GET" | "HEAD", _) => {
            respond(&mut stream, "404 Not Found", "text/plain", "not found\n").await
        }
        _ => {
            respond(
                &mut stream,
                "405 Method Not Allowed",
                "text/plain",
                "GET only\n",
            )
            .await
        }
    };
}

async fn respond(
    stream: &mut async_io::Async<TcpStream>,
    status: &str,
    kind: &str,
    body: &str,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = Url::parse("http://127.0.0.1:9090/-/reload").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("127.0.0.1", 9090, "/-/reload")
        );
        let u = Url::parse("http://127.0.0.1").unwrap();
        assert_eq!((u.port, u.path.as_str()), (80, "/"));
        let u = Url::parse("http://[::1]:8080/x").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 8080));
        for bad in [
            "https://x/",
            "ftp://x",
            "http://",
            "http://x:port/",
            "http://x/a b",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }

    /// RFC 3986: an IPv6 literal is bracketed, the port after the bracket.
    /// `http://[::1]/-/reload` was refused (its colons read as a port) and
    /// `http://::1:9090/x` accepted.
    #[test]
    fn ipv6_literals_only_in_brackets() {
        for (text, host, port, path) in [
            ("http://[::1]/-/reload", "::1", 80, "/-/reload"),
            ("http://[::1]:9090/x", "::1", 9090, "/x"),
            ("http://[::1]", "::1", 80, "/"),
            ("http://[::1]:/x", "::1", 80, "/x"),
            ("http://127.0.0.1:/x", "127.0.0.1", 80, "/x"),
            ("http://localhost:9090", "localhost", 9090, "/"),
        ] {
            let u = Url::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(
                (u.host.as_str(), u.port, u.path.as_str()),
                (host, port, path),
                "{text}"
            );
        }
        assert_eq!(
            Url::parse("http://[::1]:9090/x").unwrap().to_string(),
            "http://[::1]:9090/x"
        );
        for (text, why) in [
            ("http://::1:9090/x", "must be in brackets"),
            ("http://::1/x", "must be in brackets"),
            ("http://[::1/x", "unclosed '['"),
            ("http://[127.0.0.1]:80/", "is not an IPv6 address"),
            ("http://[::1]9090/x", "expected :port"),
            ("http://[::1]:+80/x", "invalid port"),
            ("http://[::1]:65536/x", "invalid port"),
        ] {
            let e = Url::parse(text).expect_err(text);
            assert!(e.contains(why), "{text}: {e}");
        }
    }
}
