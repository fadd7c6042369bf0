//! The little HTTP the manager speaks, on the supervisor's own executor (no
//! thread, no socket unless asked for): `--reload-url` POSTs a URL,
//! `--ready-url` GETs one, and `--metrics` serves `/metrics`, `/healthz` and
//! `/readyz`.
//!
//! Written here rather than taken from a crate: the request and the
//! response line are a few dozen lines; the blocking clients (ureq, attohttpc)
//! would need a thread beside the single-threaded loop, and the async ones
//! (hyper and friends) bring a runtime of their own and several hundred KB,
//! more than the whole manager. Plain http only: reload endpoints (Prometheus,
//! Alertmanager, Loki `/-/reload`) listen on the pod's own loopback.

use futures::{AsyncReadExt, AsyncWriteExt, FutureExt};
use log::{debug, warn};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::rc::Rc;
use std::time::Duration;

/// An `http://host[:port]/path` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub host: String,
    pub port: u16,
    pub path: String,
    /// `user:password@` in the URL, as an HTTP Basic credential (base64);
    /// never shown: `Display` leaves it out, so logs never hold it.
    pub basic: Option<String>,
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
            .map_err(|_| {
                format!(
                    "{}: a host name is refused: the manager resolves no names (a lookup would \
                     stall the loop that forwards signals); the endpoints it calls listen in the \
                     pod: use localhost or an IP address",
                    self.host
                )
            })
    }

    pub fn parse(text: &str) -> Result<Url, String> {
        // The scheme is case-insensitive (RFC 3986); errors never show a
        // password, whatever the scheme.
        let scheme = text.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        let rest = match scheme.as_deref() {
            Some("http") => &text["http://".len()..],
            Some("https") => {
                return Err(format!(
                    "{:?}: https is not supported (reload endpoints listen on the pod's loopback; use http://)",
                    redact(text)
                ));
            }
            _ => {
                return Err(format!(
                    "{:?}: expected http://host[:port]/path",
                    redact(text)
                ));
            }
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        // `user:password@host`: HTTP Basic authentication (Prometheus
        // behind basic auth). The userinfo may be percent-encoded.
        let (basic, authority) = match authority.rsplit_once('@') {
            Some((userinfo, host)) => {
                let decoded =
                    percent_decode(userinfo).map_err(|e| format!("{}: {e}", redact(text)))?;
                (Some(base64(&decoded)), host)
            }
            None => (None, authority),
        };
        let text = &redact(text);
        let (host, port) = split_authority(authority).map_err(|e| format!("{text:?}: {e}"))?;
        if host.is_empty() || path.contains(|c: char| c.is_whitespace() || c.is_control()) {
            return Err(format!("{text:?}: expected http://host[:port]/path"));
        }
        let url = Url {
            host: host.to_string(),
            port,
            path: path.to_string(),
            basic,
        };
        url.addrs().map_err(|e| format!("{text:?}: {e}"))?;
        Ok(url)
    }
}

/// The URL as it may be shown: without its userinfo (a password), for
/// any scheme (`https://u:p@…` is refused, but must not be echoed either).
fn redact(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else {
        return text.to_string();
    };
    let end = rest.find('/').unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => text.to_string(),
    }
}

/// `text` with the userinfo of an `http://` URL in it masked: for errors
/// that quote a whole argument (an `--on-change ...=url:...` rule).
pub fn redact_in(text: &str) -> String {
    // From the start of the scheme before the first `://`.
    let Some(sep) = text.find("://") else {
        return text.to_string();
    };
    let start = text[..sep]
        .rfind(|c: char| !c.is_ascii_alphanumeric() && !"+-.".contains(c))
        .map_or(0, |i| i + 1);
    format!("{}{}", &text[..start], redact(&text[start..]))
}

/// `%XX` escapes decoded (RFC 3986 userinfo).
fn percent_decode(text: &str) -> Result<Vec<u8>, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("a '%' in the userinfo must be followed by two hex digits")?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// Standard base64 with padding (RFC 4648), for a Basic credential: a few
/// lines here rather than a crate.
fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ABC[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
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
    request("POST", url, timeout).await
}

/// GETs `url` (a readiness probe); the response's status code, or why none
/// came, within `timeout`.
pub async fn get(url: &Url, timeout: Duration) -> Result<u16, String> {
    request("GET", url, timeout).await
}

async fn request(method: &str, url: &Url, timeout: Duration) -> Result<u16, String> {
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
                    let auth = url
                        .basic
                        .as_ref()
                        .map_or(String::new(), |b| format!("Authorization: Basic {b}\r\n"));
                    let head = format!(
                        "{method} {} HTTP/1.1\r\nHost: {host}:{}\r\n{auth}User-Agent: flush-manager/{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        url.path,
                        url.port,
                        env!("CARGO_PKG_VERSION")
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

/// Where `--metrics` listens. `:PORT` means every address of both
/// families; any other address is bound exactly as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listen {
    pub addr: SocketAddr,
    /// `:PORT`: `[::]` (which `serve` makes answer IPv4 too), or `0.0.0.0`
    /// on a kernel without IPv6.
    pub every: bool,
}

impl Listen {
    /// `127.0.0.1:9111`, `[::1]:9111`, `:9111` (every address).
    pub fn parse(text: &str) -> Result<Listen, String> {
        let bad = || {
            format!("invalid address {text:?} (expected e.g. 127.0.0.1:9111, [::1]:9111 or :9111)")
        };
        match text.strip_prefix(':') {
            Some(port) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
                let port = port.parse::<u16>().map_err(|_| bad())?;
                Ok(Listen {
                    addr: SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port)),
                    every: true,
                })
            }
            Some(_) => Err(bad()),
            None => text
                .parse()
                .map(|addr| Listen { addr, every: false })
                .map_err(|_| bad()),
        }
    }
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.addr.fmt(f)
    }
}

/// What `TcpListener::bind` tries: the address; for every address on a
/// kernel that cannot make IPv6 sockets at all, IPv4's instead. (Only then:
/// falling back on any bind error would hide a port taken on IPv6.)
impl std::net::ToSocketAddrs for Listen {
    type Iter = std::option::IntoIter<SocketAddr>;

    fn to_socket_addrs(&self) -> std::io::Result<Self::Iter> {
        if self.every && !ipv6_sockets() {
            return Ok(Some(SocketAddr::from(([0, 0, 0, 0], self.addr.port()))).into_iter());
        }
        Ok(Some(self.addr).into_iter())
    }
}

/// Can this kernel make IPv6 sockets? (Not when booted with ipv6.disable=1.)
fn ipv6_sockets() -> bool {
    match TcpListener::bind((std::net::Ipv6Addr::UNSPECIFIED, 0)) {
        Ok(_) => true,
        Err(e) => e.raw_os_error() != Some(nix::libc::EAFNOSUPPORT),
    }
}

/// Limits that keep a slow or hostile client from costing the loop.
const MAX_CONNECTIONS: usize = 8;
const MAX_REQUEST: usize = 8 * 1024;
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection being served, oldest first in `Connections`.
struct Connection {
    /// Dropping it cancels the task, which closes the socket.
    task: smol::Task<()>,
    /// Still waiting for the request (an idle client).
    reading: Rc<Cell<bool>>,
}

type Connections = Rc<RefCell<VecDeque<Connection>>>;

/// What a path answers: status line, content type, body.
pub type Page = (&'static str, &'static str, String);

/// The pages served: a path's answer, or None (404).
pub type Pages = Rc<dyn Fn(&str) -> Option<Page>>;

/// Serves `GET` (and `HEAD`) of the paths `pages` answers, as tasks on `ex`.
/// A listener on `[::]` answers IPv4 too: on one dual-stack socket where the
/// kernel made it so, beside a second socket on `0.0.0.0` where it made it
/// IPv6-only (`net.ipv6.bindv6only=1`).
///
/// Each connection is a task with a deadline and a size limit. At most
/// `MAX_CONNECTIONS` are open: a new one is always accepted, and the oldest
/// idle one closed to make room, so clients that connect and send nothing
/// cannot lock out a scrape, however many they open.
pub fn serve(
    ex: &Rc<smol::LocalExecutor<'static>>,
    listener: TcpListener,
    pages: Pages,
) -> std::io::Result<()> {
    let mut listeners = vec![listener];
    if let Some(v4) = ipv4_beside(&listeners[0])? {
        listeners.push(v4);
    }
    let open: Connections = Rc::default();
    for listener in listeners {
        debug!(
            "Metrics: listening on {}{}",
            listener.local_addr()?,
            if is_dual_stack(&listener) {
                " (IPv6 and IPv4)"
            } else {
                ""
            }
        );
        let listener = async_io::Async::new(listener)?;
        let (spawner, open, pages) = (Rc::clone(ex), Rc::clone(&open), Rc::clone(&pages));
        ex.spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => admit(&spawner, &open, stream, Rc::clone(&pages)),
                    Err(e) => {
                        warn!("Metrics: accept failed: {e}");
                        async_io::Timer::after(Duration::from_millis(100)).await;
                    }
                }
                // Let the tasks just cancelled run to their end and close
                // their sockets before the next accept: a burst of
                // connections never holds more than a few descriptors.
                smol::future::yield_now().await;
            }
        })
        .detach();
    }
    Ok(())
}

/// Makes room for `stream` (closing the oldest idle connection, or else the
/// oldest) and serves it.
fn admit(
    ex: &smol::LocalExecutor<'static>,
    open: &Connections,
    stream: async_io::Async<TcpStream>,
    pages: Pages,
) {
    let mut open = open.borrow_mut();
    open.retain(|c| !c.task.is_finished());
    if open.len() >= MAX_CONNECTIONS {
        let oldest = open.iter().position(|c| c.reading.get()).unwrap_or(0);
        drop(open.remove(oldest));
        debug!("Metrics: {MAX_CONNECTIONS} connections open; closed the oldest idle one");
    }
    let reading = Rc::new(Cell::new(true));
    let flag = Rc::clone(&reading);
    let task = ex.spawn(async move {
        futures::select! {
            _ = answer(stream, &*pages, &flag).fuse() => {},
            _ = FutureExt::fuse(async_io::Timer::after(CLIENT_TIMEOUT)) => {
                debug!("Metrics: client too slow; closed");
            }
        }
    });
    open.push_back(Connection { task, reading });
}

/// For a listener on `[::]` that the kernel made IPv6-only, a second one on
/// `0.0.0.0` and the same port, so that `:PORT` means both families whatever
/// `net.ipv6.bindv6only` says.
fn ipv4_beside(listener: &TcpListener) -> std::io::Result<Option<TcpListener>> {
    let addr = listener.local_addr()?;
    if addr.ip() != std::net::IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED) || is_dual_stack(listener)
    {
        return Ok(None);
    }
    TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], addr.port())))
        .map(Some)
        .map_err(|e| std::io::Error::new(e.kind(), format!("0.0.0.0:{} (IPv4): {e}", addr.port())))
}

/// An IPv6 socket that also takes IPv4 (IPV6_V6ONLY off).
fn is_dual_stack(listener: &TcpListener) -> bool {
    use nix::libc;
    use std::os::fd::AsRawFd;
    if !listener.local_addr().is_ok_and(|a| a.is_ipv6()) {
        return false;
    }
    let mut only: libc::c_int = 1;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `only`, an int the
    // size it says, on a socket this listener owns.
    let r = unsafe {
        libc::getsockopt(
            listener.as_raw_fd(),
            libc::IPPROTO_IPV6,
            libc::IPV6_V6ONLY,
            (&mut only as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    r == 0 && only == 0
}

async fn answer(
    mut stream: async_io::Async<TcpStream>,
    pages: &dyn Fn(&str) -> Option<Page>,
    reading: &Cell<bool>,
) {
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
                false,
            )
            .await;
            return;
        }
    }
    reading.set(false);
    let text = String::from_utf8_lossy(&request);
    let mut first = text.lines().next().unwrap_or_default().split_whitespace();
    let (method, path) = (first.next().unwrap_or(""), first.next().unwrap_or(""));
    // HEAD: the same headers as GET, Content-Length included, no body.
    let head_only = method == "HEAD";
    let _ = match (method, path.split('?').next().unwrap_or("")) {
        ("GET" | "HEAD", path) => {
            let (status, kind, body) =
                pages(path).unwrap_or(("404 Not Found", "text/plain", "not found\n".to_string()));
            respond(&mut stream, status, kind, &body, head_only).await
        }
        _ => {
            respond(
                &mut stream,
                "405 Method Not Allowed\r\nAllow: GET, HEAD",
                "text/plain",
                "GET or HEAD only\n",
                false,
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
    head_only: bool,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    if !head_only {
        stream.write_all(body.as_bytes()).await?;
    }
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

    #[test]
    fn userinfo_is_basic_authentication_and_never_shown() {
        let u = Url::parse("http://user:pa%40ss@127.0.0.1:9090/-/reload").unwrap();
        // base64("user:pa@ss")
        assert_eq!(u.basic.as_deref(), Some("dXNlcjpwYUBzcw=="));
        assert_eq!(u.to_string(), "http://127.0.0.1:9090/-/reload");
        assert_eq!(base64(b"a"), "YQ==");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"abc"), "YWJj");
        let err = Url::parse("http://user:secret@prometheus:9090/x").unwrap_err();
        assert!(err.contains("host name is refused"), "{err}");
        assert!(!err.contains("secret"), "the password in an error: {err}");
        let err = Url::parse("http://user:s%zzcret@127.0.0.1/").unwrap_err();
        assert!(!err.contains("zz"), "{err}");
        // Refused schemes do not echo it either.
        for text in [
            "https://u:secret@127.0.0.1/",
            "ftp://u:secret@x/",
            "HTTPS://u:secret@x",
        ] {
            let err = Url::parse(text).unwrap_err();
            assert!(!err.contains("secret"), "the password in an error: {err}");
        }
        assert_eq!(
            redact_in("x=url:HTTPS://u:secret@h/p"),
            "x=url:HTTPS://***@h/p"
        );
        // The scheme is case-insensitive.
        assert_eq!(Url::parse("HTTP://127.0.0.1:9/x").unwrap().port, 9);
    }

    #[test]
    fn listen_addresses() {
        let every = Listen::parse(":9111").unwrap();
        assert!(every.every);
        assert_eq!(every.addr, "[::]:9111".parse().unwrap());
        for exact in ["[::1]:9111", "0.0.0.0:9111", "127.0.0.1:9111", "[::]:9111"] {
            let l = Listen::parse(exact).unwrap();
            assert!(!l.every, "{exact}");
            assert_eq!(l.addr, exact.parse().unwrap());
            assert_eq!(l.to_string(), exact);
        }
        for bad in [
            ":",
            ":x",
            ":+80",
            ":65536",
            "9111",
            "localhost:9111",
            "::1:9111",
            "",
        ] {
            assert!(Listen::parse(bad).is_err(), "{bad}");
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
