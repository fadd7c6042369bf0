//! Command line and environment → one validated `Config`.
//!
//! The Go tool's users write `-command X`, `-config=Y`, `-version`: Go's flag
//! rules (one or two dashes, `=value` or a separate value, parsing stops at
//! the first non-flag or `--`). argh accepts none of the single-dash long
//! forms nor `=`, so argv is first rewritten with Go's rules into argh's form;
//! argh then does the parsing and the `--help` text.
//! Every flag may also come from `FLUSH_MANAGER_<FLAG>`; the command line wins.

use crate::state::{Policy, Target};
use argh::FromArgs;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const DEFAULT_COMMAND: &str = "/usr/local/bin/redis-exporter";
pub const DEFAULT_CONFIG: &str = "/usr/local/bin/conf/exporter.conf";

// argh's parser. `--help` is ours (`help()`, grouped), so argh's own text
// only ever shows in usage errors.
#[derive(FromArgs, Debug, Default)]
/// A small init (PID 1) for containers.
struct Args {
    /// command to run; trailing arguments become its arguments (default: /usr/local/bin/redis-exporter)
    #[argh(option)]
    command: Option<String>,

    /// config file or directory to watch, repeatable; '' watches nothing (default: /usr/local/bin/conf/exporter.conf)
    #[argh(option)]
    config: Vec<String>,

    /// signal sent to the child's process group to stop it (default: TERM)
    #[argh(option)]
    stop_signal: Option<String>,

    /// how long to wait after the stop signal before SIGKILL (default: 10s)
    #[argh(option)]
    stop_timeout: Option<String>,

    /// on SIGTERM, wait this long before sending the stop signal (default: 0)
    #[argh(option)]
    stop_delay: Option<String>,

    /// who gets forwarded, stop and reload signals: child or group (default: child)
    #[argh(option)]
    signal_to: Option<String>,

    /// a signal that restarts the child instead of being forwarded
    #[argh(option)]
    restart_signal: Option<String>,

    /// rewrite a forwarded signal FROM:TO (TO may be none); repeatable
    #[argh(option)]
    map_signal: Vec<String>,

    /// send this signal on a config change instead of restarting (e.g. HUP)
    #[argh(option)]
    reload_signal: Option<String>,

    /// on a change, run this command (split like shell words, no shell) instead of restarting
    #[argh(option)]
    reload_command: Option<String>,

    /// on a change, POST this http:// URL instead of restarting
    #[argh(option)]
    reload_url: Option<String>,

    /// kill a --reload-command, or give up on a --reload-url request, after this long (default: 30s)
    #[argh(option)]
    reload_timeout: Option<String>,

    /// wait a random time below this before acting on a settled change (default: 0)
    #[argh(option)]
    splay: Option<String>,

    /// at most one config-triggered action per this interval (default: 0)
    #[argh(option)]
    min_interval: Option<String>,

    /// serve Prometheus metrics on this address (e.g. 127.0.0.1:9111 or :9111)
    #[argh(option)]
    metrics: Option<String>,

    /// log format: text or json (default: text)
    #[argh(option)]
    log_format: Option<String>,

    /// quiet period after the last change before acting (default: 500ms)
    #[argh(option)]
    debounce: Option<String>,

    /// act at the latest this long after the first change of a burst (default: 5s)
    #[argh(option)]
    debounce_max: Option<String>,

    /// polling fallback interval beside inotify; 0 turns it off (default: 5s)
    #[argh(option)]
    poll_interval: Option<String>,

    /// poll only, no inotify (overlayfs, NFS)
    #[argh(switch)]
    poll_only: bool,

    /// run this check (split like shell words, no shell) after a change and act only if it exits 0
    #[argh(option)]
    validate: Option<String>,

    /// the child reads its config from this directory; validated bytes are promoted into it
    #[argh(option)]
    promote_to: Option<String>,

    /// kill a --validate check that runs longer than this (default: 30s)
    #[argh(option)]
    validate_timeout: Option<String>,

    /// with --promote-to: check the candidate at DIR itself, shown to the child for the check's duration
    #[argh(switch)]
    validate_in_place: bool,

    /// when the child exits on its own: never (exit with its code), on-failure, always (default: never)
    #[argh(option)]
    restart: Option<String>,

    /// with --restart, give up after N restarts and exit with the child's code (default: unlimited)
    #[argh(option)]
    max_restarts: Option<String>,

    /// map the exit code FROM to TO, e.g. 143:0; repeatable
    #[argh(option)]
    remap_exit: Vec<String>,

    /// error, warn, info or debug (default: info; env FLUSH_MANAGER_LOG too)
    #[argh(option)]
    log_level: Option<String>,

    /// print the version and exit
    #[argh(switch)]
    version: bool,

    /// command and its arguments
    #[argh(positional, greedy)]
    command_line: Vec<String>,
}

/// Flags that take a value, in argh's spelling without dashes.
const VALUE_FLAGS: &[&str] = &[
    "command",
    "config",
    "stop-signal",
    "stop-timeout",
    "stop-delay",
    "signal-to",
    "restart-signal",
    "map-signal",
    "reload-signal",
    "reload-command",
    "reload-url",
    "reload-timeout",
    "splay",
    "min-interval",
    "metrics",
    "log-format",
    "debounce",
    "debounce-max",
    "poll-interval",
    "validate",
    "validate-timeout",
    "promote-to",
    "restart",
    "max-restarts",
    "remap-exit",
    "log-level",
];
const SWITCHES: &[&str] = &["poll-only", "validate-in-place", "version", "help"];

/// Everything the manager needs, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// Program and arguments; never empty.
    pub command: Vec<String>,
    /// Absolute paths (relative ones are joined to the starting directory).
    pub configs: Vec<PathBuf>,
    pub stop_signal: i32,
    pub stop_timeout: Duration,
    pub stop_delay: Duration,
    pub signal_to: Target,
    pub restart_signal: Option<i32>,
    pub map_signal: Vec<(i32, Option<i32>)>,
    pub reload_signal: Option<i32>,
    pub reload_command: Option<Vec<String>>,
    pub reload_url: Option<crate::http::Url>,
    pub reload_timeout: Duration,
    pub splay: Duration,
    pub min_interval: Duration,
    pub metrics: Option<crate::http::Listen>,
    pub log_json: bool,
    pub debounce: Duration,
    pub debounce_max: Duration,
    /// `Duration::ZERO` turns polling off (unless inotify fails).
    pub poll_interval: Duration,
    pub poll_only: bool,
    pub validate: Option<Vec<String>>,
    pub validate_timeout: Duration,
    /// `--promote-to`: absolute.
    pub promote_to: Option<PathBuf>,
    /// `--validate-in-place`: the check reads the candidate at DIR itself.
    pub validate_in_place: bool,
    /// `--rollback-window`: new bytes are on probation this long.
    pub rollback_window: Option<Duration>,
    /// `--ready-check` / `--ready-url`: the readiness probe.
    pub ready_check: Option<Vec<String>>,
    pub ready_url: Option<crate::http::Url>,
    /// `--ready-interval`, when a probe is set.
    pub ready_interval: Option<Duration>,
    pub restart: Policy,
    pub max_restarts: Option<u32>,
    pub remap_exit: Vec<(i32, i32)>,
    pub log_level: log::LevelFilter,
}

/// What parsing decided: run, or print something and exit with a code.
#[derive(Debug)]
pub enum Parsed {
    Run(Box<Config>),
    Exit { message: String, code: i32 },
}

fn usage_error(message: String) -> Parsed {
    Parsed::Exit {
        message: format!("[flush-manager] ERROR: {message}\nRun 'flush-manager --help' for usage."),
        code: 2,
    }
}

/// `--help`: every option with its default and variable, grouped (argh's
/// own help is one flat list; it still parses and reports usage errors).
fn help() -> String {
    format!(
        "flush-manager {VERSION}: a small init (PID 1) for containers. Runs COMMAND, reaps every
zombie, forwards every signal, stops gracefully, and restarts (or signals) COMMAND when a
watched config file changes, Kubernetes ConfigMap and Secret volumes included.

Usage:
  flush-manager [OPTIONS] [--] COMMAND [ARGS...]
  flush-manager -command COMMAND [OPTIONS] [ARGS...]       (the Go tool's form)
Flags take one or two dashes, and a value as `--flag value` or `--flag=value`. Options end
at the first argument that is not one, or at `--`: the rest is the command's, dashes included.

Command:
  --command PATH            command to run; trailing arguments are its arguments
                            (default: {DEFAULT_COMMAND})

Signals and stopping:
  --signal-to child|group   who gets forwarded, stop and reload signals: the child alone, as
                            prefork servers (gunicorn, php-fpm, nginx) expect, or its whole
                            process group (default: child; SIGKILL always hits the group)
  --stop-signal SIG         signal that stops the child: TERM, SIGTERM, 15, RTMIN+3
                            (default: TERM; SIGINT is forwarded as SIGINT); SIGCONT follows it
  --stop-timeout DURATION   wait after it before SIGKILL of the group (default: 10s)
  --stop-delay DURATION     on SIGTERM, wait this long before the stop signal, so load
                            balancers drain first; a second SIGTERM or a SIGINT cuts it
                            short (default: 0)
  --restart-signal SIG      a signal the manager keeps for itself: it restarts the child
                            (after --validate, if set)
  --map-signal FROM:TO      forward FROM as TO; TO 'none' drops it (not TERM or INT, which
                            stop: see --stop-signal); repeatable
  --remap-exit FROM:TO      map an exit code, e.g. 143:0; repeatable

Config watch:
  --config PATH             file or directory to watch, repeatable; '' watches nothing
                            (default: {DEFAULT_CONFIG})
  --reload-signal SIG       on a change, send SIG instead of restarting (e.g. HUP)
  --reload-command 'CMD'    on a change, run CMD instead (no shell; FLUSH_MANAGER_CHANGED set);
                            retried with backoff (1s doubling to 30s) until it exits 0
  --reload-url URL          on a change, POST this http:// URL instead; retried the same way
                            until it answers 2xx (one of the three reload options at most)
  --reload-timeout DURATION kill the command, or give up on the request (default: 30s)
  --splay DURATION          wait a random time below this before acting, so replicas spread
                            out (default: 0)
  --min-interval DURATION   at most one config-triggered action per interval; changes in
                            between are folded into the next (default: 0)
  --debounce DURATION       quiet time after the last change before acting (default: 500ms)
  --debounce-max DURATION   act at the latest this long after the first change of a burst,
                            however busy the directory (default: 5s)
  --poll-interval DURATION  polling beside inotify; 0 turns it off (default: 5s)
  --poll-only               poll only, no inotify (overlayfs, NFS)
  --validate 'CMD ARGS'     check a changed config first; act only if it exits 0
  --validate-timeout DURATION  kill a check that runs longer (default: 30s)
  --promote-to DIR          the child reads its config from DIR: settled source bytes are
                            staged there as a hidden candidate, checked by --validate (at
                            $FLUSH_MANAGER_CANDIDATE), and shown to the child only if good
  --validate-in-place       with --promote-to: check the candidate at DIR itself (includes by
                            absolute path); the child can see it while the check runs

When the child exits on its own:
  --restart POLICY          never (exit with its code), on-failure or always (default: never)
  --max-restarts N          with --restart, give up after N restarts (default: unlimited)

Other:
  --log-level LEVEL         error, warn, info, debug, trace, off (default: info)
  --log-format FORMAT       text ([flush-manager] LEVEL: message) or json (default: text)
  --metrics ADDR            serve Prometheus metrics at http://ADDR/metrics (e.g.
                            127.0.0.1:9111; :9111 for every address, IPv6 and IPv4)
  --version                 print the version
  --help                    print this

Every flag can also be set as FLUSH_MANAGER_<FLAG> (FLUSH_MANAGER_STOP_TIMEOUT=30s;
FLUSH_MANAGER_CONFIG, FLUSH_MANAGER_REMAP_EXIT and FLUSH_MANAGER_MAP_SIGNAL comma-separated; FLUSH_MANAGER_LOG
for the log level too); the command line wins. Durations: 500ms, 10s, 1m30s, 0
(each unit once, largest first).

Exit codes: the child's; 128+N if it died of signal N; 126 not executable; 127 not found;
78 config rejected by --validate at startup; 2 usage error; 1 cannot start (resources)."
    )
}

/// Parses argv (without the program name) and the environment.
pub fn parse(argv: &[String], env: &dyn Fn(&str) -> Option<String>, cwd: &Path) -> Parsed {
    let argh_args = match go_style(argv) {
        Ok(a) => a,
        Err(e) => return usage_error(e),
    };
    let options = argh_args.split(|a| a == "--").next().unwrap_or_default();
    if options.iter().any(|a| a == "--help") {
        return Parsed::Exit {
            message: help(),
            code: 0,
        };
    }
    let strs: Vec<&str> = argh_args.iter().map(String::as_str).collect();
    let args = match Args::from_args(&["flush-manager"], &strs) {
        Ok(a) => a,
        Err(early) => {
            return match early.status {
                Ok(()) => Parsed::Exit {
                    message: early.output,
                    code: 0,
                },
                Err(()) => usage_error(early.output.trim_end().to_string()),
            };
        }
    };
    if args.version {
        return Parsed::Exit {
            message: format!("flush-manager version {VERSION}"),
            code: 0,
        };
    }
    match build(args, env, cwd) {
        Ok(cfg) => Parsed::Run(Box::new(cfg)),
        Err(e) => usage_error(e),
    }
}

/// Go's flag rules → argh's: `-f`, `--f`, `-f=v`, `--f=v`, `-f v`; stop at
/// the first non-flag or `--`; everything after goes behind argh's `--`.
fn go_style(argv: &[String]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < argv.len() {
        let arg = &argv[i];
        if arg == "--" {
            i += 1;
            break;
        }
        let Some(body) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            break; // first non-flag: the command
        };
        if body.is_empty() || body.starts_with('-') {
            break; // "-" alone or "---x": not a flag in Go either
        }
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        let name = if name == "h" { "help" } else { name };
        if VALUE_FLAGS.contains(&name) {
            let value = match inline {
                Some(v) => v,
                None => {
                    i += 1;
                    argv.get(i)
                        .cloned()
                        .ok_or_else(|| format!("flag needs an argument: -{name}"))?
                }
            };
            out.push(format!("--{name}"));
            out.push(value);
        } else if SWITCHES.contains(&name) {
            let on = match inline.as_deref() {
                None | Some("true" | "1" | "t" | "T" | "TRUE" | "True") => true,
                Some("false" | "0" | "f" | "F" | "FALSE" | "False") => false,
                Some(v) => return Err(format!("invalid boolean value {v:?} for -{name}")),
            };
            if on {
                out.push(format!("--{name}"));
            }
        } else {
            return Err(format!("unknown flag: {arg}"));
        }
        i += 1;
    }
    if i < argv.len() {
        out.push("--".into());
        out.extend(argv[i..].iter().cloned());
    }
    Ok(out)
}

/// `500ms`, `10s`, `1m30s`, `1.5s`, `0` (Go's time.ParseDuration, no sign).
/// Stricter than Go in one way: each unit at most once, largest first
/// (`1h30m`, never `1h1h` or `30m1h`), since a repeated or reversed unit is
/// far more likely a typo than a sum someone meant.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {text:?} (expected e.g. 500ms, 10s, 1m30s)");
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = text;
    let mut total = 0f64;
    if rest.is_empty() {
        return Err(bad());
    }
    // The previous unit, as (its rank, its spelling): ranks fall from h to ns.
    let mut previous: Option<(u8, &str)> = None;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let value: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        let (rank, scale) = match unit {
            "h" => (6, 3600.0),
            "m" => (5, 60.0),
            "s" => (4, 1.0),
            "ms" => (3, 1e-3),
            "us" | "µs" => (2, 1e-6),
            "ns" => (1, 1e-9),
            _ => return Err(bad()),
        };
        match previous {
            Some((r, u)) if r == rank => {
                return Err(format!(
                    "invalid duration {text:?}: unit {u:?} given twice (write e.g. 2h, not 1h1h)"
                ));
            }
            Some((r, u)) if r < rank => {
                return Err(format!(
                    "invalid duration {text:?}: {unit:?} after {u:?} (largest unit first, e.g. 1h30m)"
                ));
            }
            _ => previous = Some((rank, unit)),
        }
        total += value * scale;
        rest = &rest[unit_len..];
    }
    let d = Duration::try_from_secs_f64(total).map_err(|_| bad())?;
    // Every deadline is `now + d`: keep it representable.
    if d > MAX_DURATION {
        return Err(format!(
            "duration {text:?} is too large (at most 100 years)"
        ));
    }
    Ok(d)
}

const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 86_400);

fn parse_remap(text: &str) -> Result<(i32, i32), String> {
    let bad = || format!("invalid --remap-exit {text:?} (expected FROM:TO, codes 0-255)");
    let (from, to) = text.split_once(':').ok_or_else(bad)?;
    let code = |s: &str| s.trim().parse::<u8>().map(i32::from).map_err(|_| bad());
    Ok((code(from)?, code(to)?))
}

/// Each FROM once: a second, different TO for the same FROM would leave
/// which one applies to the order of flags. The same pair twice is harmless
/// (args assembled from several places) and kept once.
fn one_per_from<T: PartialEq + Copy>(
    pairs: Vec<(i32, T)>,
    conflict: impl Fn(i32, T, T) -> String,
) -> Result<Vec<(i32, T)>, String> {
    let mut out: Vec<(i32, T)> = Vec::with_capacity(pairs.len());
    for (from, to) in pairs {
        match out.iter().find(|(f, _)| *f == from) {
            Some((_, earlier)) if *earlier == to => {}
            Some((_, earlier)) => return Err(conflict(from, *earlier, to)),
            None => out.push((from, to)),
        }
    }
    Ok(out)
}

/// Why KILL and STOP can do nothing but what the kernel makes them do.
fn catchable(sig: i32) -> Result<(), String> {
    use nix::libc::{SIGKILL, SIGSTOP};
    match sig {
        SIGKILL | SIGSTOP => Err(format!(
            "{} cannot be caught or handled by any process",
            crate::signals::name(sig)
        )),
        _ => Ok(()),
    }
}

/// Signals that cannot be taken over: TERM and INT stop, CHLD reaps, KILL
/// and STOP cannot be caught.
fn reserved_signal(sig: i32) -> Result<(), String> {
    use nix::libc::{SIGCHLD, SIGINT, SIGTERM};
    catchable(sig)?;
    match sig {
        SIGTERM | SIGINT => Err(format!(
            "{} stops the child (see --stop-signal)",
            crate::signals::name(sig)
        )),
        SIGCHLD => Err("SIGCHLD is how the manager learns that processes exited".into()),
        _ => Ok(()),
    }
}

/// The stop signal must make the child exit, and give it the chance to do
/// so cleanly.
fn stop_signal_rule(sig: i32) -> Result<(), String> {
    use nix::libc::{SIGCHLD, SIGKILL, SIGSTOP};
    match sig {
        SIGKILL => Err(
            "SIGKILL cannot be caught, so the child would get no chance to stop cleanly: the stop signal must be one it can catch (to kill at once, use --stop-timeout 0)"
                .into(),
        ),
        SIGSTOP => Err(
            "SIGSTOP only pauses the child and cannot be caught: it would never exit (use a signal it can catch, e.g. TERM)"
                .into(),
        ),
        SIGCHLD => Err(
            "SIGCHLD is ignored unless handled: the child would not stop (use e.g. TERM, QUIT or INT)"
                .into(),
        ),
        _ => Ok(()),
    }
}

/// `USR1:HUP`, `SIGWINCH:none`.
fn parse_map_signal(text: &str) -> Result<(i32, Option<i32>), String> {
    let bad = |e: String| format!("--map-signal {text:?}: {e}");
    let (from, to) = text
        .split_once(':')
        .ok_or_else(|| bad("expected FROM:TO, e.g. USR1:HUP or WINCH:none".into()))?;
    let from = crate::signals::parse(from.trim()).map_err(bad)?;
    reserved_signal(from).map_err(bad)?;
    let to = match to.trim() {
        t if t.eq_ignore_ascii_case("none") => None,
        t => Some(crate::signals::parse(t).map_err(bad)?),
    };
    Ok((from, to))
}

fn parse_level(text: &str) -> Result<log::LevelFilter, String> {
    text.parse().map_err(|_| {
        format!("invalid log level {text:?} (expected error, warn, info, debug, trace or off)")
    })
}

/// Words split like a POSIX shell would (quotes, backslashes), without a shell.
pub fn split_words(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(format!("unterminated ' in {text:?}")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err(format!("unterminated \" in {text:?}")),
                        },
                        Some(c) => word.push(c),
                        None => return Err(format!("unterminated \" in {text:?}")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => word.push(c),
                    None => return Err(format!("trailing backslash in {text:?}")),
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

fn build(args: Args, env: &dyn Fn(&str) -> Option<String>, cwd: &Path) -> Result<Config, String> {
    // A flag on the command line wins over FLUSH_MANAGER_<FLAG>.
    let pick =
        |flag: Option<String>, var: &str| flag.or_else(|| env(&format!("FLUSH_MANAGER_{var}")));
    let list = |flag: Vec<String>, var: &str| -> Option<Vec<String>> {
        if !flag.is_empty() {
            return Some(flag);
        }
        env(&format!("FLUSH_MANAGER_{var}"))
            .map(|v| v.split(',').map(|s| s.trim().to_string()).collect())
    };
    let duration =
        |flag: Option<String>, var: &str, default: Duration| -> Result<Duration, String> {
            pick(flag, var).map_or(Ok(default), |v| {
                parse_duration(&v).map_err(|e| format!("--{}: {e}", flag_name(var)))
            })
        };
    let signal = |flag: Option<String>, var: &str| -> Result<Option<i32>, String> {
        pick(flag, var)
            .map(|v| crate::signals::parse(&v).map_err(|e| format!("--{}: {e}", flag_name(var))))
            .transpose()
    };

    let mut command = match (args.command, args.command_line) {
        (Some(cmd), rest) => std::iter::once(cmd).chain(rest).collect(),
        (None, rest) if !rest.is_empty() => rest,
        (None, _) => vec![env("FLUSH_MANAGER_COMMAND").unwrap_or_else(|| DEFAULT_COMMAND.into())],
    };
    if command[0].is_empty() {
        return Err("empty command".into());
    }
    // The manager moves to "/" so it keeps no directory busy; a relative
    // program path with a slash still means the starting directory.
    if command[0].contains('/') && !command[0].starts_with('/') {
        command[0] = cwd.join(&command[0]).to_string_lossy().into_owned();
    }

    let configs = list(args.config, "CONFIG")
        .unwrap_or_else(|| vec![DEFAULT_CONFIG.into()])
        .into_iter()
        .filter(|p| !p.is_empty())
        .map(|p| cwd.join(p))
        .collect();

    let poll_only = args.poll_only
        || match env("FLUSH_MANAGER_POLL_ONLY").as_deref() {
            None | Some("" | "0" | "false") => false,
            Some("1" | "true") => true,
            Some(v) => return Err(format!("FLUSH_MANAGER_POLL_ONLY: invalid boolean {v:?}")),
        };
    let validate_in_place = args.validate_in_place
        || match env("FLUSH_MANAGER_VALIDATE_IN_PLACE").as_deref() {
            None | Some("" | "0" | "false") => false,
            Some("1" | "true") => true,
            Some(v) => {
                return Err(format!(
                    "FLUSH_MANAGER_VALIDATE_IN_PLACE: invalid boolean {v:?}"
                ));
            }
        };

    let restart = match pick(args.restart, "RESTART").as_deref() {
        None | Some("never" | "no") => Policy::Never,
        Some("on-failure") => Policy::OnFailure,
        Some("always") => Policy::Always,
        Some(v) => {
            return Err(format!(
                "--restart: invalid policy {v:?} (expected never, on-failure or always)"
            ));
        }
    };
    let max_restarts = pick(args.max_restarts, "MAX_RESTARTS")
        .map(|v| {
            v.parse::<u32>()
                .map_err(|_| format!("--max-restarts: invalid count {v:?}"))
        })
        .transpose()?;

    let signal_to = match pick(args.signal_to, "SIGNAL_TO").as_deref() {
        None | Some("child") => Target::Child,
        Some("group") => Target::Group,
        Some(v) => {
            return Err(format!(
                "--signal-to: invalid target {v:?} (expected child or group)"
            ));
        }
    };
    let restart_signal = signal(args.restart_signal, "RESTART_SIGNAL")?;
    if let Some(sig) = restart_signal {
        reserved_signal(sig).map_err(|e| format!("--restart-signal: {e}"))?;
    }
    let to_name = |to: Option<i32>| to.map_or("none".into(), crate::signals::name);
    let map_signal = list(args.map_signal, "MAP_SIGNAL")
        .unwrap_or_default()
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| parse_map_signal(s))
        .collect::<Result<Vec<_>, _>>()?;
    let map_signal = one_per_from(map_signal, |from, a, b| {
        let from = crate::signals::name(from);
        format!(
            "--map-signal: {from} is mapped twice ({from}:{} and {from}:{}); give it once",
            to_name(a),
            to_name(b)
        )
    })?;
    // A signal the manager keeps for a restart cannot also be forwarded.
    if let Some(sig) = restart_signal
        && let Some((_, to)) = map_signal.iter().find(|(from, _)| *from == sig)
    {
        let name = crate::signals::name(sig);
        let does = if to.is_some() {
            "forwards it"
        } else {
            "drops it"
        };
        return Err(format!(
            "{name} is claimed twice: --restart-signal {name} keeps it to restart the child, --map-signal {name}:{} {does}; give it to one of them",
            to_name(*to)
        ));
    }

    let remap_exit = list(args.remap_exit, "REMAP_EXIT")
        .unwrap_or_default()
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| parse_remap(s))
        .collect::<Result<Vec<_>, _>>()?;
    let remap_exit = one_per_from(remap_exit, |from, a, b| {
        format!(
            "--remap-exit: exit code {from} is mapped twice ({from}:{a} and {from}:{b}); give it once"
        )
    })?;

    // An empty check is a mistake (an unset variable in a manifest), not a
    // request for no check: leaving the flag out says that.
    let validate = match pick(args.validate, "VALIDATE") {
        None => None,
        Some(text) => {
            let words = split_words(&text).map_err(|e| format!("--validate: {e}"))?;
            if words.first().is_none_or(String::is_empty) {
                return Err(format!(
                    "--validate: empty command {text:?} (leave --validate out to act without a check)"
                ));
            }
            Some(words)
        }
    };

    let reload_command = match pick(args.reload_command, "RELOAD_COMMAND") {
        None => None,
        Some(text) => {
            let words = split_words(&text).map_err(|e| format!("--reload-command: {e}"))?;
            if words.first().is_none_or(String::is_empty) {
                return Err(format!(
                    "--reload-command: empty command {text:?} (leave it out to restart the child on a change)"
                ));
            }
            Some(words)
        }
    };
    let reload_url = pick(args.reload_url, "RELOAD_URL")
        .map(|u| crate::http::Url::parse(&u).map_err(|e| format!("--reload-url: {e}")))
        .transpose()?;
    let reload_signal = signal(args.reload_signal, "RELOAD_SIGNAL")?;
    if let Some(sig) = reload_signal {
        catchable(sig).map_err(|e| {
            format!("--reload-signal: {e}: the child could not reload on it (without --reload-signal a change restarts the child)")
        })?;
    }
    let stop_signal = signal(args.stop_signal, "STOP_SIGNAL")?.unwrap_or(nix::libc::SIGTERM);
    stop_signal_rule(stop_signal).map_err(|e| format!("--stop-signal: {e}"))?;
    let reloads = [
        reload_signal.is_some(),
        reload_command.is_some(),
        reload_url.is_some(),
    ];
    if reloads.iter().filter(|on| **on).count() > 1 {
        return Err(
            "--reload-signal, --reload-command and --reload-url are exclusive: give one".into(),
        );
    }
    let metrics = pick(args.metrics, "METRICS")
        .map(|a| crate::http::Listen::parse(&a).map_err(|e| format!("--metrics: {e}")))
        .transpose()?;
    let log_json = match pick(args.log_format, "LOG_FORMAT").as_deref() {
        None | Some("text") => false,
        Some("json") => true,
        Some(v) => {
            return Err(format!(
                "--log-format: invalid format {v:?} (expected text or json)"
            ));
        }
    };

    let log_level = match args
        .log_level
        .or_else(|| env("FLUSH_MANAGER_LOG_LEVEL"))
        .or_else(|| env("FLUSH_MANAGER_LOG"))
    {
        Some(v) => parse_level(&v).map_err(|e| format!("--log-level: {e}"))?,
        None => log::LevelFilter::Info,
    };

    let promote_to = pick(args.promote_to, "PROMOTE_TO")
        .filter(|p| !p.is_empty())
        .map(|p| cwd.join(p));
    if validate_in_place && (promote_to.is_none() || validate.is_none()) {
        return Err(
            "--validate-in-place: needs --promote-to and --validate (it says where the check reads the candidate)"
                .into(),
        );
    }

    Ok(Config {
        command,
        configs,
        stop_signal,
        stop_timeout: duration(args.stop_timeout, "STOP_TIMEOUT", Duration::from_secs(10))?,
        stop_delay: duration(args.stop_delay, "STOP_DELAY", Duration::ZERO)?,
        signal_to,
        restart_signal,
        map_signal,
        reload_signal,
        reload_command,
        reload_url,
        reload_timeout: duration(
            args.reload_timeout,
            "RELOAD_TIMEOUT",
            Duration::from_secs(30),
        )?,
        splay: duration(args.splay, "SPLAY", Duration::ZERO)?,
        min_interval: duration(args.min_interval, "MIN_INTERVAL", Duration::ZERO)?,
        metrics,
        log_json,
        debounce: duration(args.debounce, "DEBOUNCE", Duration::from_millis(500))?,
        debounce_max: duration(args.debounce_max, "DEBOUNCE_MAX", Duration::from_secs(5))?,
        poll_interval: duration(args.poll_interval, "POLL_INTERVAL", Duration::from_secs(5))?,
        poll_only,
        validate,
        validate_timeout: duration(
            args.validate_timeout,
            "VALIDATE_TIMEOUT",
            Duration::from_secs(30),
        )?,
        restart,
        max_restarts,
        remap_exit,
        promote_to,
        validate_in_place,
        rollback_window: None,
        ready_check: None,
        ready_url: None,
        ready_interval: None,
        log_level,
    })
}

fn flag_name(var: &str) -> String {
    var.to_ascii_lowercase().replace('_', "-")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Config, (String, i32)> {
        run_env(args, &[])
    }

    fn run_env(args: &[&str], vars: &[(&str, &str)]) -> Result<Config, (String, i32)> {
        let argv: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let env = move |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        match parse(&argv, &env, Path::new("/start")) {
            Parsed::Run(c) => Ok(*c),
            Parsed::Exit { message, code } => Err((message, code)),
        }
    }

    #[test]
    fn go_spellings_of_the_seed() {
        for form in [
            vec!["-command", "/bin/app", "a1", "-x"],
            vec!["--command", "/bin/app", "a1", "-x"],
            vec!["-command=/bin/app", "a1", "-x"],
            vec!["--command=/bin/app", "a1", "-x"],
        ] {
            let c = run(&form).unwrap();
            assert_eq!(c.command, ["/bin/app", "a1", "-x"], "{form:?}");
        }
        let c = run(&["-command", "/bin/app", "-config", "/etc/a.conf"]).unwrap();
        assert_eq!(c.configs, [PathBuf::from("/etc/a.conf")]);
        assert_eq!(c.command, ["/bin/app"]);
    }

    #[test]
    fn tini_form_and_arguments_untouched() {
        let c = run(&[
            "--stop-timeout",
            "2s",
            "--",
            "/bin/sh",
            "-c",
            "exit 3",
            "--",
            "--config",
        ])
        .unwrap();
        assert_eq!(c.command, ["/bin/sh", "-c", "exit 3", "--", "--config"]);
        assert_eq!(c.stop_timeout, Duration::from_secs(2));
        // Parsing stops at the first non-flag, Go's rule.
        let c = run(&["/bin/echo", "--version"]).unwrap();
        assert_eq!(c.command, ["/bin/echo", "--version"]);
    }

    #[test]
    fn defaults_are_the_seeds() {
        let c = run(&[]).unwrap();
        assert_eq!(c.command, [DEFAULT_COMMAND]);
        assert_eq!(c.configs, [PathBuf::from(DEFAULT_CONFIG)]);
        assert_eq!(c.stop_signal, nix::libc::SIGTERM);
        assert_eq!(c.stop_timeout, Duration::from_secs(10));
        assert_eq!(c.debounce, Duration::from_millis(500));
        assert_eq!(c.poll_interval, Duration::from_secs(5));
        assert_eq!(c.restart, Policy::Never);
        assert_eq!(c.log_level, log::LevelFilter::Info);
    }

    #[test]
    fn version_and_help_exit_zero() {
        for v in [["-version"], ["--version"]] {
            let (msg, code) = run(&v).unwrap_err();
            assert_eq!(
                (msg.as_str(), code),
                (format!("flush-manager version {VERSION}").as_str(), 0)
            );
        }
        let (msg, code) = run(&["-help"]).unwrap_err();
        assert_eq!(code, 0);
        assert!(
            msg.contains("--stop-timeout") && msg.contains("--reload-signal"),
            "{msg}"
        );
    }

    #[test]
    fn help_lists_every_flag() {
        let text = help();
        for flag in VALUE_FLAGS.iter().chain(SWITCHES) {
            assert!(
                text.contains(&format!("--{flag} ")),
                "--{flag} missing from --help"
            );
        }
        let (msg, code) = run(&["--config", "x", "-h"]).unwrap_err();
        assert_eq!((msg, code), (text, 0));
        let c = run(&["--", "app", "--help"]).unwrap();
        assert_eq!(
            c.command,
            ["app", "--help"],
            "after --, --help is the command's"
        );
    }

    #[test]
    fn bad_input_is_a_usage_error() {
        for bad in [
            vec!["--nope"],
            vec!["--stop-timeout", "soon"],
            vec!["--stop-timeout"],
            vec!["--stop-signal", "SIGNOPE"],
            vec!["--command", ""],
            vec!["--restart", "sometimes"],
            vec!["--remap-exit", "143"],
            vec!["--log-level", "loud"],
            vec!["--poll-only=maybe"],
            vec!["--signal-to", "everyone"],
            vec!["--restart-signal", "TERM"],
            vec!["--restart-signal", "CHLD"],
            vec!["--map-signal", "USR1"],
            vec!["--map-signal", "TERM:HUP"],
            vec!["--map-signal", "USR1:NOPE"],
            vec!["--reload-signal", "HUP", "--reload-command", "true"],
            vec!["--reload-url", "http://x/", "--reload-command", "true"],
            vec!["--reload-url", "https://x/"],
            vec!["--reload-url", "x"],
            vec!["--metrics", "nope"],
            vec!["--log-format", "xml"],
        ] {
            let (msg, code) = run(&bad).unwrap_err();
            assert_eq!(code, 2, "{bad:?}");
            assert!(msg.starts_with("[flush-manager] ERROR: "), "{msg}");
        }
        let (msg, _) = run(&["--nope"]).unwrap_err();
        assert!(msg.contains("--nope"), "{msg}");
    }

    /// Issue #18: every flag (or pair of flags) that cannot mean anything
    /// sensible is refused with exit 2 and a message saying why; before,
    /// each was taken silently (or, for RTMAX+1, read as RTMAX-1).
    #[test]
    fn nonsensical_flags_are_refused_saying_why() {
        // Real-time signals exist on Linux only.
        #[cfg(target_os = "linux")]
        let realtime = [
            (
                vec!["--stop-signal", "RTMAX+1"],
                "no signal comes after RTMAX",
            ),
            (
                vec!["--stop-signal", "RTMIN+99"],
                "outside the real-time range",
            ),
            (vec!["--stop-signal", "RTMIN-1"], "before RTMIN"),
            (
                vec!["--restart-signal", "RTMAX+2"],
                "no signal comes after RTMAX",
            ),
            (
                vec!["--map-signal", "RTMAX+1:HUP"],
                "no signal comes after RTMAX",
            ),
        ];
        #[cfg(not(target_os = "linux"))]
        let realtime: [(Vec<&str>, &str); 0] = [];
        for (bad, why) in realtime.into_iter().chain([
            (vec!["--reload-signal", "KILL"], "SIGKILL cannot be caught"),
            (
                vec!["--reload-signal", "SIGSTOP"],
                "SIGSTOP cannot be caught",
            ),
            (vec!["--reload-signal", "9"], "could not reload on it"),
            (vec!["--stop-signal", "KILL"], "--stop-timeout 0"),
            (vec!["--stop-signal", "SIGKILL"], "must be one it can catch"),
            (vec!["--stop-signal", "STOP"], "only pauses the child"),
            (vec!["--stop-signal", "CHLD"], "the child would not stop"),
            (
                vec!["--remap-exit", "143:0", "--remap-exit", "143:1"],
                "exit code 143 is mapped twice (143:0 and 143:1)",
            ),
            (
                vec!["--map-signal", "USR1:HUP", "--map-signal", "USR1:none"],
                "SIGUSR1 is mapped twice",
            ),
            (
                vec!["--restart-signal", "HUP", "--map-signal", "HUP:USR1"],
                "SIGHUP is claimed twice",
            ),
            (
                vec!["--restart-signal", "USR2", "--map-signal", "SIGUSR2:none"],
                "SIGUSR2 is claimed twice",
            ),
            (vec!["--validate", ""], "--validate: empty command"),
            (vec!["--validate", "  \t "], "--validate: empty command"),
            (vec!["--validate", "''"], "--validate: empty command \"''\""),
            (
                vec!["--reload-command", "\"\" -x"],
                "--reload-command: empty command",
            ),
            (
                vec!["--reload-command", " "],
                "--reload-command: empty command",
            ),
            (vec!["--stop-timeout", "1h1h"], "unit \"h\" given twice"),
            (vec!["--debounce", "500ms500ms"], "given twice"),
            (vec!["--stop-timeout", "1s1h"], "largest unit first"),
            (vec!["--splay", "30s1m"], "largest unit first"),
            (
                vec!["--reload-url", "http://::1:9090/x"],
                "must be in brackets",
            ),
            (vec!["--reload-url", "http://[::1/x"], "unclosed '['"),
        ]) {
            let (msg, code) = run(&bad).expect_err(&format!("{bad:?} was accepted"));
            assert_eq!(code, 2, "{bad:?}: {msg}");
            assert!(msg.starts_with("[flush-manager] ERROR: "), "{msg}");
            assert!(msg.contains(why), "{bad:?}: {msg:?} does not say {why:?}");
        }
        // The environment is held to the same rules.
        for (var, value, why) in [
            ("FLUSH_MANAGER_VALIDATE", "", "--validate: empty command"),
            ("FLUSH_MANAGER_REMAP_EXIT", "1:0, 1:2", "mapped twice"),
            ("FLUSH_MANAGER_STOP_SIGNAL", "KILL", "--stop-timeout 0"),
        ] {
            let (msg, code) = run_env(&["--", "x"], &[(var, value)]).unwrap_err();
            assert_eq!(code, 2, "{var}={value}");
            assert!(msg.contains(why), "{var}={value}: {msg}");
        }
        // What stays accepted: the same pair twice is kept once; bracketed
        // IPv6 reload URLs; RTMAX-N and RTMIN+N inside the range.
        let c = run(&[
            "--remap-exit=143:0",
            "--remap-exit=143:0",
            "--map-signal=USR1:HUP",
            "--map-signal=USR1:HUP",
            "--reload-url=http://[::1]/-/reload",
            "--",
            "x",
        ])
        .unwrap();
        assert_eq!(c.remap_exit, [(143, 0)]);
        assert_eq!(
            c.map_signal,
            [(nix::libc::SIGUSR1, Some(nix::libc::SIGHUP))]
        );
        assert_eq!(c.reload_url.unwrap().port, 80);
        #[cfg(target_os = "linux")]
        assert_eq!(
            run(&["--stop-signal=RTMAX-1", "--", "x"])
                .unwrap()
                .stop_signal,
            nix::libc::SIGRTMAX() - 1
        );
        let c = run(&["--reload-url=http://[::1]:9090/x", "--", "x"]).unwrap();
        assert_eq!(c.reload_url.unwrap().to_string(), "http://[::1]:9090/x");
    }

    #[test]
    fn environment_fills_in_and_flags_win() {
        let vars = [
            ("FLUSH_MANAGER_STOP_TIMEOUT", "30s"),
            ("FLUSH_MANAGER_CONFIG", "/a.conf, b.conf"),
            ("FLUSH_MANAGER_RELOAD_SIGNAL", "HUP"),
            ("FLUSH_MANAGER_LOG", "warn"),
            ("FLUSH_MANAGER_COMMAND", "/bin/app"),
        ];
        let c = run_env(&[], &vars).unwrap();
        assert_eq!(c.stop_timeout, Duration::from_secs(30));
        assert_eq!(
            c.configs,
            [PathBuf::from("/a.conf"), PathBuf::from("/start/b.conf")]
        );
        assert_eq!(c.reload_signal, Some(nix::libc::SIGHUP));
        assert_eq!(c.log_level, log::LevelFilter::Warn);
        assert_eq!(c.command, ["/bin/app"]);
        let c = run_env(
            &["--stop-timeout=1s", "--log-level", "debug", "--", "x"],
            &vars,
        )
        .unwrap();
        assert_eq!(c.stop_timeout, Duration::from_secs(1));
        assert_eq!(c.log_level, log::LevelFilter::Debug);
        assert_eq!(c.command, ["x"]);
        let (_, code) = run_env(&[], &[("FLUSH_MANAGER_DEBOUNCE", "fast")]).unwrap_err();
        assert_eq!(code, 2);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(
            parse_duration("1h2m3s4ms5us6ns"),
            Ok(Duration::new(3723, 4_005_006))
        );
        for bad in [
            "1h1h",
            "1s1h",
            "1ms1s",
            "1us1µs",
            "2m1m",
            "",
            "5",
            "-1s",
            "1x",
            "s",
            "3000000000000000h",
            "101y",
            "876001h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn relative_paths_join_the_starting_directory() {
        let c = run(&["--config", "conf/a.conf", "--", "./app.sh"]).unwrap();
        assert_eq!(c.configs, [PathBuf::from("/start/conf/a.conf")]);
        assert_eq!(c.command, ["/start/./app.sh"]);
        let c = run(&["--config", "", "--", "app"]).unwrap();
        assert!(c.configs.is_empty());
        assert_eq!(c.command, ["app"]);
    }

    #[test]
    fn shell_words() {
        assert_eq!(split_words(r#"nginx -t"#).unwrap(), ["nginx", "-t"]);
        assert_eq!(
            split_words(r#"sh -c 'exit 1' "a b" c\ d"#).unwrap(),
            ["sh", "-c", "exit 1", "a b", "c d"]
        );
        assert!(split_words("'open").is_err());
    }

    #[test]
    fn signal_options() {
        use nix::libc::{SIGHUP, SIGUSR1, SIGUSR2, SIGWINCH};
        let c = run(&[
            "--signal-to=group",
            "--restart-signal",
            "USR2",
            "--map-signal",
            "USR1:HUP",
            "--map-signal=WINCH:none",
            "--stop-delay",
            "5s",
            "--",
            "x",
        ])
        .unwrap();
        assert_eq!(c.signal_to, Target::Group);
        assert_eq!(c.restart_signal, Some(SIGUSR2));
        assert_eq!(c.map_signal, [(SIGUSR1, Some(SIGHUP)), (SIGWINCH, None)]);
        assert_eq!(c.stop_delay, Duration::from_secs(5));
        let c = run(&["--", "x"]).unwrap();
        assert_eq!(c.signal_to, Target::Child, "the master alone by default");
        assert_eq!(c.stop_delay, Duration::ZERO);
        let c = run_env(
            &["--", "x"],
            &[
                ("FLUSH_MANAGER_SIGNAL_TO", "group"),
                ("FLUSH_MANAGER_MAP_SIGNAL", "USR1:HUP, WINCH:none"),
                ("FLUSH_MANAGER_RESTART_SIGNAL", "SIGUSR2"),
            ],
        )
        .unwrap();
        assert_eq!(c.signal_to, Target::Group);
        assert_eq!(c.map_signal, [(SIGUSR1, Some(SIGHUP)), (SIGWINCH, None)]);
        assert_eq!(c.restart_signal, Some(SIGUSR2));
    }

    #[test]
    fn remaps() {
        let c = run(&["--remap-exit", "143:0", "--remap-exit=1:2", "--", "x"]).unwrap();
        assert_eq!(c.remap_exit, [(143, 0), (1, 2)]);
    }
}
