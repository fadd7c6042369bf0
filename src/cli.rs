//! Command line and environment → one validated `Config`.
//!
//! Every flag is one row of the table in `flags` (its typed value, its
//! spellings, variables, defaults and help). Parsing runs in four steps:
//! 1. `translate`: argv as the Go tool, tini and dumb-init spell it →
//!    canonical tokens (a row and its value), then the command;
//! 2. the tokens that are no setting (`--help`, `--version`, `--license`,
//!    `--copy-to`) are answered before anything is parsed;
//! 3. argh takes the rest as `--name VALUE` into one typed field per row
//!    (`flags::Argv`), and `flags::Values` fills each setting left off from
//!    its variables (`FLUSH_MANAGER_<FLAG>`, tini's and dumb-init's), else
//!    from the default of the tool the binary stands in for;
//! 4. `build`: the rules between settings, and the `Config` the machine,
//!    the loop and the edge read.

mod flags;
mod sees;
mod translate;
mod values;

use crate::parse;
use crate::route::{self, Act, Rule};
use crate::state::{Policy, Target};
use argh::FromArgs;
#[cfg(test)]
use flags::Kind;
use flags::{Action, FLAGS, SignalPair, Values, Var};
use std::path::{Path, PathBuf};
use std::time::Duration;
use translate::Token;
use values::Source;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const DEFAULT_COMMAND: &str = "/usr/local/bin/redis-exporter";
pub const DEFAULT_CONFIG: &str = "/usr/local/bin/conf/exporter.conf";

/// Which tool the binary stands in for, by the name it was run as
/// (argv[0]'s last component: a symlink or a copy).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Personality {
    /// flush-manager, or any name not below: the Go tool's defaults.
    FlushManager,
    /// `tini`, `tini-static`, `docker-init` (what Docker's `--init` runs).
    Tini,
    /// `dumb-init`.
    DumbInit,
}

impl Personality {
    pub fn of(argv0: &str) -> Personality {
        match Path::new(argv0).file_name().and_then(|n| n.to_str()) {
            Some("tini" | "tini-static" | "docker-init") => Personality::Tini,
            Some("dumb-init") => Personality::DumbInit,
            _ => Personality::FlushManager,
        }
    }

    /// The exit code of a usage error (no program, an unknown flag, a bad
    /// value): tini and dumb-init exit 1, and a script written for them
    /// may test for it; under our own name 2, the usual code of a
    /// command-line mistake.
    fn usage_code(self) -> i32 {
        match self {
            Personality::FlushManager => 2,
            Personality::Tini | Personality::DumbInit => 1,
        }
    }

    /// The level `-v` given `n` times asks for.
    fn verbose(self, n: usize) -> log::LevelFilter {
        use log::LevelFilter::{Debug, Info, Trace, Warn};
        let steps = [Warn, Info, Debug, Trace];
        let from = match self {
            Personality::Tini => 0,
            Personality::FlushManager => 1,
            // dumb-init has one verbose level: every signal it handles.
            Personality::DumbInit => 1,
        };
        steps[(from + n).min(steps.len() - 1)]
    }
}

/// Everything the manager needs, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// Program and arguments; never empty.
    pub command: Vec<String>,
    /// Absolute paths (relative ones are joined to the starting directory).
    pub configs: Vec<PathBuf>,
    /// No `--config` was given and the legacy default is watched.
    pub config_is_default: bool,
    pub stop_signal: i32,
    pub stop_timeout: Duration,
    pub stop_delay: Duration,
    pub signal_to: Target,
    pub restart_signal: Option<i32>,
    pub map_signal: Vec<(i32, Option<i32>)>,
    pub reload_signal: Option<i32>,
    pub reload_command: Option<Vec<String>>,
    /// `--reload-url`, repeatable: each POSTed and retried on its own.
    pub reload_url: Vec<crate::http::Url>,
    /// Every reload hook, each once: the global action's first
    /// (`--reload-command`, or each `--reload-url`), then those of the
    /// `--on-change` rules not already there.
    pub hooks: Vec<ReloadHook>,
    /// `--on-change`, in order.
    pub on_change: Vec<Rule>,
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
    /// `--ready-start-period`: a new child's failed probes count only once
    /// it was ready, or once it ran this long.
    pub ready_start_period: Duration,
    pub restart: Policy,
    pub max_restarts: Option<u32>,
    pub remap_exit: Vec<(i32, i32)>,
    pub log_level: log::LevelFilter,
    /// `--warn-on-reap` (tini's `-w`).
    pub warn_on_reap: bool,
    /// `--parent-death-signal` (tini's `-p`).
    pub parent_death_signal: Option<i32>,
}

impl Config {
    /// How many of `hooks` are the global action's (they come first; the
    /// `--on-change` rules' follow): the machine's hook numbers 0 to this
    /// are the reload for a change no rule routes.
    pub fn global_hooks(&self) -> usize {
        match self.reload_command {
            Some(_) => 1,
            None => self.reload_url.len(),
        }
    }
}

/// A reload hook: a command to run, or a URL to POST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadHook {
    Command(Vec<String>),
    Url(crate::http::Url),
}

/// What parsing decided: run, or print something and exit with a code.
#[derive(Debug)]
pub enum Parsed {
    Run(Box<Config>),
    /// `--copy-to DIR` (absolute): copy the binary there and exit.
    CopyTo(PathBuf),
    Exit {
        message: String,
        code: i32,
    },
}

fn usage_error(program: &str, personality: Personality, message: String) -> Parsed {
    Parsed::Exit {
        message: format!("[flush-manager] ERROR: {message}\nRun '{program} --help' for usage."),
        code: personality.usage_code(),
    }
}

/// Parses what this process was started with: its arguments and its
/// environment, read once (every flag asks for its variables, and a
/// getenv for each, about fifty, walked the whole environment). An
/// argument, or a value of one of our variables, that is not UTF-8 is
/// refused by name (exit 2): a path or a command must not be mangled.
/// tini's and dumb-init's variables only have to be set, or are single
/// words, and are read lossily (refused where parsed).
pub fn parse_process(cwd: &Path) -> Parsed {
    let not_utf8 = |what: String| Parsed::Exit {
        message: format!("[flush-manager] ERROR: {what} is not valid UTF-8"),
        code: 2,
    };
    let argv: Vec<String> = match std::env::args_os().map(|a| a.into_string()).collect() {
        Ok(argv) => argv,
        Err(bad) => return not_utf8(format!("argument {bad:?}")),
    };
    let vars: Vec<(std::ffi::OsString, std::ffi::OsString)> = std::env::vars_os().collect();
    let bad = std::cell::Cell::new(None);
    let env = |name: &str| {
        let (_, value) = vars.iter().find(|(k, _)| k == name)?;
        match value.to_str() {
            Some(text) => Some(text.to_string()),
            None if name.starts_with("TINI_") || name.starts_with("DUMB_INIT_") => {
                Some(value.to_string_lossy().into_owned())
            }
            None => {
                // The first one named is reported.
                let first = bad.take().unwrap_or_else(|| name.to_string());
                bad.set(Some(first));
                None
            }
        }
    };
    let parsed = parse(&argv, &env, cwd);
    match bad.take() {
        Some(name) => not_utf8(format!("environment variable {name}")),
        None => parsed,
    }
}

/// Parses argv (program name first) and the environment.
pub fn parse(argv: &[String], env: &dyn Fn(&str) -> Option<String>, cwd: &Path) -> Parsed {
    let argv0 = argv.first().map_or("flush-manager", String::as_str);
    let program = Path::new(argv0)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("flush-manager");
    let who = Personality::of(argv0);
    let fail = |message: String| usage_error(program, who, message);
    let (tokens, command) = match translate::translate(argv.get(1..).unwrap_or_default()) {
        Ok(t) => t,
        Err(e) => return fail(e),
    };
    if let Some(done) = action(&tokens, &command, who, program, cwd) {
        return done.unwrap_or_else(fail);
    }
    let names: Vec<String> = tokens
        .iter()
        .map(|t| format!("--{}", t.flag.name))
        .collect();
    let canonical: Vec<&str> = tokens
        .iter()
        .zip(&names)
        .flat_map(|(t, name)| [name.as_str(), t.value.as_str()])
        .collect();
    let given = match flags::Argv::from_args(&[program], &canonical) {
        Ok(given) => given,
        Err(early) => return fail(early.output.trim_end().to_string()),
    };
    match Values::resolve(given, env, who).and_then(|v| build(&v, command, who, cwd)) {
        Ok(cfg) => Parsed::Run(Box::new(cfg)),
        Err(e) => fail(e),
    }
}

/// The flags that are no setting: help, version, licence (any one given
/// wins over everything else on the line), and `--copy-to`. `Some(Err)`
/// is a usage error.
fn action(
    tokens: &[Token],
    command: &[String],
    who: Personality,
    program: &str,
    cwd: &Path,
) -> Option<Result<Parsed, String>> {
    let on = |a: Action| {
        tokens
            .iter()
            .any(|t| t.flag.action == Some(a) && t.value != "false")
    };
    let exit = |message: String| Some(Ok(Parsed::Exit { message, code: 0 }));
    if on(Action::Help) {
        return exit(help_as(who, program));
    }
    if on(Action::Version) {
        return exit(format!("flush-manager version {VERSION}"));
    }
    if on(Action::License) {
        return exit(include_str!("../LICENSE").trim_end().to_string());
    }
    let copy_to: Vec<&str> = tokens
        .iter()
        .filter(|t| t.flag.action == Some(Action::CopyTo))
        .map(|t| t.value.as_str())
        .collect();
    let dir = copy_to.first()?;
    Some(if dir.is_empty() || copy_to.iter().any(|d| d != dir) {
        Err("--copy-to takes one directory".into())
    } else if !command.is_empty() {
        Err("--copy-to copies the binary and exits: it takes no command".into())
    } else if let Some(other) = tokens
        .iter()
        .find(|t| t.flag.action != Some(Action::CopyTo))
    {
        // Dropping it silently would hide flags meant for the run (the
        // main container's, pasted into the init container's).
        Err(format!(
            "--copy-to copies the binary and exits: it takes no other flag (--{})",
            other.flag.name
        ))
    } else {
        Ok(Parsed::CopyTo(cwd.join(dir)))
    })
}

/// The settings → the `Config`, with the rules that tie settings together.
fn build(v: &Values, line: Vec<String>, who: Personality, cwd: &Path) -> Result<Config, String> {
    let configs = configs(v, cwd);
    let (map_signal, stop_signal) = signal_maps(v)?;
    let restart_signal = restart_signal(v, &map_signal)?;
    let reload = Reload::from(v, &configs)?;
    let promote_to = v
        .promote_to
        .get()
        .filter(|p| !p.is_empty())
        .map(|p| cwd.join(p));
    let validate = v.validate.get().cloned();
    let validate_in_place = v.validate_in_place.or_zero();
    check_promotion(v, promote_to.as_deref(), validate.as_deref(), &configs, cwd)?;
    // A zero limit would make the verdict a race between the hook and its
    // own timer.
    for (flag, limit) in [
        ("--validate-timeout", v.validate_timeout.or_zero()),
        ("--reload-timeout", v.reload_timeout.or_zero()),
    ] {
        if limit.is_zero() {
            return Err(format!(
                "{flag}: 0 would time out every run before it could answer; give a duration, e.g. 30s"
            ));
        }
    }
    let ready = Readiness::from(v)?;
    // Always a subreaper when not PID 1 (reaper::become_subreaper), which
    // is what tini's -s asks for: only its spelling was checked.
    let _always = &v.subreaper;
    Ok(Config {
        command: command(v, line, cwd)?,
        config_is_default: v.config.source == Source::Default,
        configs,
        stop_signal,
        stop_timeout: v.stop_timeout.or_zero(),
        stop_delay: v.stop_delay.or_zero(),
        signal_to: v.signal_to.get().copied().unwrap_or(Target::Child),
        restart_signal,
        map_signal,
        reload_signal: reload.signal,
        reload_command: reload.command,
        reload_url: reload.urls,
        hooks: reload.hooks,
        on_change: reload.on_change,
        reload_timeout: v.reload_timeout.or_zero(),
        splay: v.splay.or_zero(),
        min_interval: v.min_interval.or_zero(),
        metrics: v.metrics.get().cloned(),
        log_json: v.log_format.or_zero(),
        debounce: v.debounce.or_zero(),
        debounce_max: v.debounce_max.or_zero(),
        poll_interval: poll_interval(v)?,
        poll_only: v.poll_only.or_zero(),
        validate,
        validate_timeout: v.validate_timeout.or_zero(),
        restart: v.restart.get().copied().unwrap_or(Policy::Never),
        max_restarts: v.max_restarts.get().copied(),
        remap_exit: remap_exit(v)?,
        promote_to,
        validate_in_place,
        rollback_window: v.rollback_window.get().copied(),
        ready_check: ready.check,
        ready_url: ready.url,
        ready_interval: ready.interval,
        ready_start_period: ready.start_period,
        log_level: log_level(v, who)?,
        warn_on_reap: v.warn_on_reap.or_zero(),
        parent_death_signal: v.parent_death_signal.get().copied(),
    })
}

/// `--command` and the words after the options: with `--command` given,
/// those are its arguments; else they are the command, else the default.
fn command(v: &Values, line: Vec<String>, cwd: &Path) -> Result<Vec<String>, String> {
    let mut command = match (v.command.get(), line) {
        (Some(cmd), rest) if v.command.given() => {
            std::iter::once(cmd.clone()).chain(rest).collect()
        }
        (_, rest) if !rest.is_empty() => rest,
        (Some(cmd), _) => vec![cmd.clone()],
        (None, _) => return Err("no command given (usage: [OPTIONS] -- COMMAND [ARGS...])".into()),
    };
    if command[0].is_empty() {
        return Err("empty command".into());
    }
    // The manager moves to "/" so it keeps no directory busy; a relative
    // program path with a slash still means the starting directory.
    if command[0].contains('/') && !command[0].starts_with('/') {
        command[0] = cwd.join(&command[0]).to_string_lossy().into_owned();
    }
    Ok(command)
}

/// `./conf`, `a//b`: one spelling of each path, so that what the watch
/// reports and what an absolute --on-change pattern names compare; `''`
/// watches nothing.
fn configs(v: &Values, cwd: &Path) -> Vec<PathBuf> {
    v.config
        .values()
        .filter(|p| !p.is_empty())
        .map(|p| cwd.join(p).components().collect())
        .collect()
}

/// A signal the manager keeps for a restart cannot also be forwarded.
fn restart_signal(v: &Values, map_signal: &[SignalPair]) -> Result<Option<i32>, String> {
    let Some(&sig) = v.restart_signal.get() else {
        return Ok(None);
    };
    reserved_signal(sig).map_err(|e| format!("--restart-signal: {e}"))?;
    if let Some((_, to)) = map_signal.iter().find(|(from, _)| *from == sig) {
        let name = crate::signals::name(sig);
        let (to, does) = match to {
            Some(to) => (crate::signals::name(*to), "forwards it"),
            None => ("none".into(), "drops it"),
        };
        return Err(format!(
            "{name} is claimed twice: --restart-signal {name} keeps it to restart the child, --map-signal {name}:{to} {does}; give it to one of them"
        ));
    }
    Ok(Some(sig))
}

fn remap_exit(v: &Values) -> Result<Vec<(i32, i32)>, String> {
    let pairs = v.remap_exit.values().flatten().copied().collect();
    one_per_from(pairs, |from, a, b| {
        format!(
            "--remap-exit: exit code {from} is mapped twice ({from}:{a} and {from}:{b}); give it once"
        )
    })
}

/// What a config change does: the global action and the `--on-change` rules.
struct Reload {
    signal: Option<i32>,
    command: Option<Vec<String>>,
    urls: Vec<crate::http::Url>,
    hooks: Vec<ReloadHook>,
    on_change: Vec<Rule>,
}

impl Reload {
    fn from(v: &Values, configs: &[PathBuf]) -> Result<Reload, String> {
        let signal = v.reload_signal.get().copied();
        if let Some(sig) = signal {
            catchable(sig).map_err(|e| {
                format!("--reload-signal: {e}: the child could not reload on it (without --reload-signal a change restarts the child)")
            })?;
            if sig == nix::libc::SIGTERM || sig == nix::libc::SIGINT {
                return Err(format!(
                    "--reload-signal: {} stops the child, it does not reload it: every change would end the container (leave --reload-signal out and a change restarts the child)",
                    crate::signals::name(sig)
                ));
            }
        }
        let command = v.reload_command.get().cloned();
        let urls: Vec<_> = v.reload_url.values().flatten().cloned().collect();
        let given = [signal.is_some(), command.is_some(), !urls.is_empty()];
        if given.iter().filter(|on| **on).count() > 1 {
            return Err(
                "--reload-signal, --reload-command and --reload-url are exclusive: give one".into(),
            );
        }
        let mut hooks: Vec<ReloadHook> = match &command {
            Some(argv) => vec![ReloadHook::Command(argv.clone())],
            None => urls.iter().cloned().map(ReloadHook::Url).collect(),
        };
        let on_change = v
            .on_change
            .values()
            .map(|text| {
                on_change_rule(text, &mut hooks, configs)
                    .map_err(|e| format!("--on-change {:?}: {e}", crate::http::redact_in(text)))
            })
            .collect::<Result<_, _>>()?;
        Ok(Reload {
            signal,
            command,
            urls,
            hooks,
            on_change,
        })
    }
}

/// `--promote-to`'s companions need it, and a check must read the
/// candidate, not what the child already runs on nor the watched source.
fn check_promotion(
    v: &Values,
    promote_to: Option<&Path>,
    validate: Option<&[String]>,
    configs: &[PathBuf],
    cwd: &Path,
) -> Result<(), String> {
    let in_place = v.validate_in_place.or_zero();
    if in_place && (promote_to.is_none() || validate.is_none()) {
        return Err(
            "--validate-in-place: needs --promote-to and --validate (it says where the check reads the candidate)"
                .into(),
        );
    }
    if let (Some(dir), Some(check)) = (promote_to, validate) {
        let env = |name: &str| std::env::var(name).ok();
        sees::check_sees_candidate(check, dir, configs, in_place, cwd, &env)?;
    }
    match v.rollback_window.get() {
        Some(_) if promote_to.is_none() => Err(
            "--rollback-window: needs --promote-to (it keeps the previous good generation there to go back to)"
                .into(),
        ),
        Some(w) if w.is_zero() => {
            Err("--rollback-window: 0 would roll back nothing; leave it out instead".into())
        }
        _ => Ok(()),
    }
}

/// The readiness probe and its timing.
struct Readiness {
    check: Option<Vec<String>>,
    url: Option<crate::http::Url>,
    interval: Option<Duration>,
    start_period: Duration,
}

impl Readiness {
    fn from(v: &Values) -> Result<Readiness, String> {
        let check = v.ready_check.get().cloned();
        let url = v.ready_url.get().cloned();
        if check.is_some() && url.is_some() {
            return Err("--ready-check and --ready-url are two probes: give one".into());
        }
        let probe = check.is_some() || url.is_some();
        let interval = v.ready_interval.or_zero();
        if interval < READY_INTERVAL_MIN {
            return Err(format!(
                "--ready-interval: {interval:?} is too short: a probe every {READY_INTERVAL_MIN:?} at most (each one starts a process or a connection)"
            ));
        }
        if v.ready_interval.given() && !probe {
            return Err(
                "--ready-interval: there is no probe to run (give --ready-check or --ready-url)"
                    .into(),
            );
        }
        if v.ready_start_period.given() && !probe && !v.validate_in_place.or_zero() {
            return Err(
                "--ready-start-period: nothing uses it (give --ready-check, --ready-url or --validate-in-place)"
                    .into(),
            );
        }
        Ok(Readiness {
            check,
            url,
            interval: probe.then_some(interval),
            start_period: v.ready_start_period.or_zero(),
        })
    }
}

/// `-v` counts from the tool's quiet default; it and --log-level are two
/// answers to one question.
fn log_level(v: &Values, who: Personality) -> Result<log::LevelFilter, String> {
    match (v.verbose.values().count(), v.log_level.given()) {
        (0, _) => Ok(v.log_level.get().copied().unwrap_or(log::LevelFilter::Info)),
        (n, false) => Ok(who.verbose(n)),
        (_, true) => Err("-v and --log-level both set the log level: give one".into()),
    }
}

fn poll_interval(v: &Values) -> Result<Duration, String> {
    let every = v.poll_interval.or_zero();
    if every.is_zero() || every >= POLL_MIN {
        return Ok(every);
    }
    let given = v.poll_interval.texts().next().unwrap_or_default();
    Err(format!(
        "--poll-interval {given} is below the minimum of 100ms (0 turns polling off)"
    ))
}

/// `--map-signal` and dumb-init's `--rewrite`, one list of (FROM, TO), and
/// the stop signal: `--stop-signal`, or what a rewrite of SIGTERM asks for.
fn signal_maps(v: &Values) -> Result<(Vec<SignalPair>, i32), String> {
    let mut pairs = Vec::new();
    for (&(from, to), text) in v.map_signal.values().zip(v.map_signal.texts()) {
        reserved_signal(from).map_err(|e| format!("--map-signal {text:?}: {e}"))?;
        pairs.push((from, to));
    }
    let mut rewritten_stop = None;
    for (&(from, to), text) in v.rewrite.values().zip(v.rewrite.texts()) {
        let bad = |e: String| format!("--rewrite {text:?}: {e}");
        // dumb-init rewrites SIGTERM to change how a child is stopped
        // (`-r 15:3` for nginx): that is our stop signal.
        // `-r 15:0`, `-r 2:0`: dropped, as dumb-init drops them: the
        // manager neither forwards nor stops on it (a container runtime's
        // stop then ends in SIGKILL after its grace period).
        if (from == nix::libc::SIGTERM || from == nix::libc::SIGINT) && to.is_none() {
            pairs.push((from, None));
            continue;
        }
        if from == nix::libc::SIGTERM {
            rewritten_stop = to;
            continue;
        }
        // `-r 2:15` (a dumb-init entrypoint): SIGINT still stops the child,
        // with the signal it is rewritten to.
        if from == nix::libc::SIGINT {
            if let Some(to) = to {
                stop_signal_rule(to).map_err(bad)?;
            }
            pairs.push((from, to));
            continue;
        }
        reserved_signal(from).map_err(bad)?;
        pairs.push((from, to));
    }
    let to_name = |to: Option<i32>| to.map_or("none".into(), crate::signals::name);
    let pairs = one_per_from(pairs, |from, a, b| {
        let from = crate::signals::name(from);
        format!(
            "--map-signal: {from} is mapped twice ({from}:{} and {from}:{}); give it once",
            to_name(a),
            to_name(b)
        )
    })?;
    let stop = match (rewritten_stop, v.stop_signal.given()) {
        (Some(sig), false) => sig,
        (Some(_), true) => {
            return Err(
                "--rewrite 15:TO and --stop-signal both say how the child is stopped: give one"
                    .into(),
            );
        }
        (None, _) => v.stop_signal.get().copied().unwrap_or(nix::libc::SIGTERM),
    };
    stop_signal_rule(stop).map_err(|e| format!("--stop-signal: {e}"))?;
    Ok((pairs, stop))
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

/// One `--on-change PATTERN=ACTION`; a command or URL joins `hooks`
/// unless an equal one is there already (each distinct action runs once).
fn on_change_rule(
    text: &str,
    hooks: &mut Vec<ReloadHook>,
    configs: &[PathBuf],
) -> Result<Rule, String> {
    const ACTIONS: &str = "restart, signal:SIG, command:CMD, url:URL or none";
    let Some((pattern, action)) = route::split(text) else {
        return Err(match text.split_once('=') {
            Some((_, action)) => format!("unknown action {action:?} (expected {ACTIONS})"),
            None => format!("expected PATTERN=ACTION, ACTION one of {ACTIONS}"),
        });
    };
    if pattern.is_empty() {
        return Err("empty pattern (use ** for every file)".into());
    }
    if configs.is_empty() {
        return Err("nothing is watched (give --config)".into());
    }
    if pattern.split('/').any(|segment| segment.starts_with("..")) {
        return Err(
            "a pattern cannot name .. or the kubelet's ..data entries: they are never watched (match the names the app reads)"
                .into(),
        );
    }
    if route::split(pattern).is_some()
        || ["=restart,", "=none,", "=signal:", "=command:", "=url:"]
            .iter()
            .any(|glued| pattern.contains(glued))
    {
        return Err(
            "the pattern holds another rule: give one rule per --on-change (in FLUSH_MANAGER_ON_CHANGE, one a line)"
                .into(),
        );
    }
    // A --config that is a directory now holds files below it; one missing
    // may be either.
    if pattern.starts_with('/')
        && !configs
            .iter()
            .any(|c| route::can_match_under(pattern, c, !c.is_dir()))
    {
        return Err(
            "matches nothing under any --config: the rule could never apply (an absolute pattern names a path inside one)"
                .into(),
        );
    }
    let mut hook = |h: ReloadHook| match hooks.iter().position(|known| *known == h) {
        Some(i) => Act::Hook(i),
        None => {
            hooks.push(h);
            Act::Hook(hooks.len() - 1)
        }
    };
    let act = match action.split_once(':') {
        None if action == "restart" => Act::Restart,
        None if action == "none" => Act::Nothing,
        Some(("signal", sig)) => {
            let sig = crate::signals::parse(sig)?;
            catchable(sig).map_err(|e| format!("{e}: the child could not reload on it"))?;
            if [nix::libc::SIGTERM, nix::libc::SIGINT].contains(&sig) {
                return Err(format!(
                    "{} stops the child, which then exits or restarts by --restart: say `restart` to restart it",
                    crate::signals::name(sig)
                ));
            }
            Act::Signal(sig)
        }
        Some(("command", cmd)) => {
            let words = parse::words(cmd)?;
            if words.first().is_none_or(String::is_empty) {
                return Err("empty command".into());
            }
            hook(ReloadHook::Command(words))
        }
        Some(("url", url)) => hook(ReloadHook::Url(crate::http::Url::parse(url)?)),
        _ => return Err(format!("unknown action {action:?} (expected {ACTIONS})")),
    };
    Ok(Rule {
        pattern: pattern.to_string(),
        act,
    })
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

/// The shortest readiness probe interval: a probe is a process or a
/// connection, and a probe cannot be judged faster than it runs.
const READY_INTERVAL_MIN: Duration = Duration::from_millis(100);

/// The shortest `--poll-interval` taken. Each tick stats and hashes every
/// watched file; polling is the safety net where inotify is deaf (overlayfs,
/// NFS, a full queue), for which a tenth of a second is quick enough, while
/// a nanosecond (accepted once) kept a core busy and a half.
const POLL_MIN: Duration = Duration::from_millis(100);

/// `--help` under our own name (the tests compare against it).
#[cfg(test)]
fn help() -> String {
    help_as(Personality::FlushManager, "flush-manager")
}

/// `--help` as the tool the binary was run as: that tool's usage line and
/// flags first, then the table, grouped, each flag with this tool's
/// default and the other tools' variables that set it, and a footer that
/// says what holds for every flag.
fn help_as(who: Personality, program: &str) -> String {
    const LEFT: usize = 28;
    const WIDTH: usize = 96;
    let mut out = match who {
        Personality::FlushManager => format!(
            "flush-manager {VERSION}: a small init (PID 1) for containers. Runs COMMAND, reaps every
zombie, forwards every signal, stops gracefully, and restarts (or signals) COMMAND when a
watched config file changes, Kubernetes ConfigMap and Secret volumes included.

Usage:
  {program} [OPTIONS] [--] COMMAND [ARGS...]
  {program} -command COMMAND [OPTIONS] [ARGS...]       (the Go tool's form)
Run as tini, tini-static, docker-init or dumb-init (a link or a copy), it takes that tool's
defaults; its one-letter flags work under every name (-s, -g, -e CODE, -w, -p SIG, -c, -r).
Flags take one or two dashes, and a value as `--flag value` or `--flag=value`; one-letter
flags group as getopt's do (-vv, -sg, -e143). Options end at the first argument that is not
one, or at `--`: the rest is the command's, dashes included.
"
        ),
        Personality::Tini => format!(
            "{program}: flush-manager {VERSION} standing in for tini. Runs COMMAND as a small init
(PID 1): reaps every zombie, forwards every signal; as tini it watches no config unless
--config is given and logs only warnings and errors unless -v or TINI_VERBOSITY.

Usage:
  {program} [-s] [-g] [-e CODE] [-v] [-w] [-p SIG] [-l] [OPTIONS] [--] COMMAND [ARGS...]
tini's flags: -s subreaper, -g signal the child's process group, -e CODE (repeatable) exit 0
when the child exits with CODE, -v/-vv/-vvv more log lines, -w warn on reaping zombies,
-p SIG parent-death signal, -l licence, -h this help; TINI_SUBREAPER,
TINI_KILL_PROCESS_GROUP and TINI_VERBOSITY as tini reads them. The long flags below are
flush-manager's; options end at the first argument that is not one, or at `--`.
"
        ),
        Personality::DumbInit => format!(
            "{program}: flush-manager {VERSION} standing in for dumb-init. Runs COMMAND as a small
init (PID 1): reaps every zombie, forwards every signal to the child's whole process group
(as dumb-init does); it watches no config unless --config is given and logs only warnings
and errors unless -v or DUMB_INIT_DEBUG=1.

Usage:
  {program} [-c] [-r FROM:TO] [-v] [-V] [OPTIONS] [--] COMMAND [ARGS...]
dumb-init's flags: -c, --single-child signal the child only (or DUMB_INIT_SETSID=0),
-r, --rewrite FROM:TO (repeatable; TO 0 drops FROM), -v, --verbose debug log lines,
-V, --version, -h, --help. The long flags below are flush-manager's; options end at the
first argument that is not one, or at `--`.
"
        ),
    };
    for (group, title) in flags::GROUPS {
        out.push_str(&format!("\n{title}:\n"));
        for flag in FLAGS.iter().filter(|f| f.group == *group) {
            let mut left = match flag.short {
                Some(c) => format!("  -{c}, --{}", flag.name),
                None => format!("  --{}", flag.name),
            };
            if !flag.arg.is_empty() {
                left = format!("{left} {}", flag.arg);
            }
            let mut text = flag.help.to_string();
            if let Some(d) = flag.default_as(who) {
                text.push_str(&format!(
                    " (default: {})",
                    if d.is_empty() { "''" } else { d }
                ));
            }
            let others: Vec<&str> = flag
                .vars
                .iter()
                .map(Var::name)
                .filter(|n| !n.starts_with("FLUSH_MANAGER_"))
                .collect();
            if !others.is_empty() {
                text.push_str(&format!("; also {}", others.join(", ")));
            }
            let spelled: Vec<String> = flag.aliases.iter().map(alias_help).collect();
            if !spelled.is_empty() {
                text.push_str(&format!("; also spelled {}", spelled.join(", ")));
            }
            wrap(&mut out, &left, &text, LEFT, WIDTH);
        }
    }
    out.push_str(
        "
Which spelling wins: the long flags are the same under every name. -v is tini's (one
level more per v, from warn) as tini, tini-static or docker-init; dumb-init's (debug) as
dumb-init; one level more per v from info as flush-manager. -c is dumb-init's --single-child
under every name, never short for --config. Under every name tini's and dumb-init's
one-letter flags and variables mean what they mean there.

Every flag can also be set as FLUSH_MANAGER_<FLAG> (FLUSH_MANAGER_STOP_TIMEOUT=30s; lists
comma-separated; FLUSH_MANAGER_LOG for the log level too); the command line wins over any
variable, ours over tini's and dumb-init's. Booleans: 1, t, true or 0, f, false. Durations:
500ms, 10s, 1m30s, 0 (each unit once, largest first).

Exit codes: the child's; 128+N if it died of signal N; 126 not executable; 127 not found;
78 config rejected by --validate at startup; 1 cannot start (resources), or --copy-to
could not copy; a usage error: ",
    );
    out.push_str(match who.usage_code() {
        1 => "1, as tini's and dumb-init's.",
        _ => "2.",
    });
    out
}

/// `-g (group)`, `--single-child (child)`, `-e X (X:0)`, `-V`.
fn alias_help(alias: &flags::Alias) -> String {
    let dashes = if alias.spelling.len() == 1 { "-" } else { "--" };
    match (alias.takes_value(), alias.value) {
        (true, value) => format!(
            "{dashes}{} X ({})",
            alias.spelling,
            value.replace("{}", "X")
        ),
        (false, "true") => format!("{dashes}{}", alias.spelling),
        (false, value) => format!("{dashes}{} ({value})", alias.spelling),
    }
}

/// `left` padded to `indent`, then `text` word-wrapped to `width`.
fn wrap(out: &mut String, left: &str, text: &str, indent: usize, width: usize) {
    let mut line = format!("{left:indent$}");
    if left.len() + 1 > indent {
        line = format!("{left} ");
    }
    let mut fresh = true;
    for word in text.split(' ') {
        if !fresh && line.len() + 1 + word.len() > width {
            out.push_str(line.trim_end());
            out.push('\n');
            line = " ".repeat(indent);
            fresh = true;
        }
        if !fresh {
            line.push(' ');
        }
        line.push_str(word);
        fresh = false;
    }
    out.push_str(line.trim_end());
    out.push('\n');
}

#[cfg(test)]
mod tests;
