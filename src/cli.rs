//! Command line and environment → one validated `Config`.
//!
//! Every flag is declared once, in `flags::FLAGS`. Parsing runs in three
//! steps, all driven by that table:
//! 1. `rewrite`: the Go tool's rules (`-command X`, `--config=Y`: one or two
//!    dashes, `=value` or a separate value, options end at the first
//!    non-flag or `--`), getopt's clusters for the one-letter flags of tini
//!    and dumb-init (`-vv`, `-e143`), and every alias resolved to its flag;
//! 2. argh, as the tokenizer only: it receives `--set NAME=VALUE` pairs and
//!    the command behind `--`, checks each NAME against the table
//!    (`from_str_fn`) and hands back the settings and the command. Typing
//!    values is left to step 3 because argh's derive would need every flag
//!    declared again as a struct field, the copy this table replaces;
//! 3. `build`: each value from the command line, else from its variables
//!    (`FLUSH_MANAGER_<FLAG>`, tini's and dumb-init's), else the default of
//!    the tool the binary stands in for, parsed and checked.

mod flags;
mod sees;

use crate::parse;
use crate::route::{self, Act, Rule};
use crate::state::{Policy, Target};
use argh::FromArgs;
use flags::{FLAGS, Flag, Kind, Spelling, Var};
use std::path::{Path, PathBuf};
use std::time::Duration;

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

    /// This tool's default for `flag` where it differs from the table's:
    /// tini and dumb-init watch nothing, run no default command and say
    /// nothing below a warning; dumb-init signals the whole group.
    fn default(self, flag: &Flag) -> Option<&'static str> {
        match (self, flag.name) {
            (Personality::FlushManager, _) => flag.default,
            (_, "config" | "command") => None,
            (_, "log-level") => Some("warn"),
            (Personality::DumbInit, "signal-to") => Some("group"),
            _ => flag.default,
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

/// Parses argv (program name first) and the environment.
pub fn parse(argv: &[String], env: &dyn Fn(&str) -> Option<String>, cwd: &Path) -> Parsed {
    let argv0 = argv.first().map_or("flush-manager", String::as_str);
    let program = Path::new(argv0)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("flush-manager");
    let personality = Personality::of(argv0);
    let args = argv.get(1..).unwrap_or_default();
    let tokens = match rewrite(args) {
        Ok(t) => t,
        Err(e) => return usage_error(program, personality, e),
    };
    let strs: Vec<&str> = tokens.iter().map(String::as_str).collect();
    let Tokens { set, command } = match Tokens::from_args(&[program], &strs) {
        Ok(t) => t,
        Err(early) => {
            return usage_error(program, personality, early.output.trim_end().to_string());
        }
    };
    let given = |name: &str| {
        set.iter()
            .any(|s| s.flag.name == name && s.value != "false")
    };
    if given("help") {
        return Parsed::Exit {
            message: help(),
            code: 0,
        };
    }
    if given("version") {
        return Parsed::Exit {
            message: format!("flush-manager version {VERSION}"),
            code: 0,
        };
    }
    if given("license") {
        return Parsed::Exit {
            message: include_str!("../LICENSE").trim_end().to_string(),
            code: 0,
        };
    }
    let copy_to: Vec<&str> = set
        .iter()
        .filter(|s| s.flag.name == "copy-to")
        .map(|s| s.value.as_str())
        .collect();
    if let Some(dir) = copy_to.first() {
        return if dir.is_empty() || copy_to.iter().any(|d| d != dir) {
            usage_error(program, personality, "--copy-to takes one directory".into())
        } else if !command.is_empty() {
            usage_error(
                program,
                personality,
                "--copy-to copies the binary and exits: it takes no command".into(),
            )
        } else if let Some(other) = set.iter().find(|s| s.flag.name != "copy-to") {
            // Dropping it silently would hide flags meant for the run (the
            // main container's, pasted into the init container's).
            usage_error(
                program,
                personality,
                format!(
                    "--copy-to copies the binary and exits: it takes no other flag (--{})",
                    other.flag.name
                ),
            )
        } else {
            Parsed::CopyTo(cwd.join(dir))
        };
    }
    let values = Values {
        set,
        env,
        personality,
    };
    match build(&values, command, cwd) {
        Ok(cfg) => Parsed::Run(Box::new(cfg)),
        Err(e) => usage_error(program, personality, e),
    }
}

/// argh's part (see the module comment): settings and the command.
#[derive(FromArgs)]
/// flush-manager's settings, after the rewrite.
struct Tokens {
    /// one flag's value, NAME=VALUE
    #[argh(option, from_str_fn(setting))]
    set: Vec<Setting>,

    /// the command and its arguments
    #[argh(positional, greedy)]
    command: Vec<String>,
}

struct Setting {
    flag: &'static Flag,
    value: String,
}

fn setting(text: &str) -> Result<Setting, String> {
    let (name, value) = text.split_once('=').unwrap_or((text, ""));
    let flag = flags::named(name).ok_or_else(|| format!("unknown flag: --{name}"))?;
    Ok(Setting {
        flag,
        value: value.to_string(),
    })
}

/// Step 1: argv with Go's and getopt's rules → `--set NAME=VALUE` pairs,
/// then `--` and the command if there is one.
fn rewrite(argv: &[String]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut emit = |flag: &Flag, value: &str| {
        out.push("--set".to_string());
        out.push(format!("{}={value}", flag.name));
    };
    // Once a long flag was written with one dash (`-command`, `-config`),
    // the line is the Go tool's: there a word like `-redis.addr` is the
    // command's first flag, put where ours are (no `--`), not a getopt
    // cluster of tini's or dumb-init's letters (`-r edis.addr`).
    let mut go = false;
    let mut i = 0;
    while i < argv.len() {
        let arg = &argv[i];
        if arg == "--" {
            i += 1;
            break;
        }
        let (dashes, body) = match arg.strip_prefix("--") {
            Some(body) => (2, body),
            None => match arg.strip_prefix('-') {
                Some(body) => (1, body),
                None => break, // first non-flag: the command
            },
        };
        if body.is_empty() || body.starts_with('-') {
            break; // "-" alone or "---x": not a flag in Go either
        }
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (body, None),
        };
        let mut next = || {
            i += 1;
            argv.get(i)
                .cloned()
                .ok_or_else(|| format!("flag needs an argument: -{name}"))
        };
        match flags::lookup(name) {
            Some(spelling) => {
                go |= dashes == 1 && name.chars().nth(1).is_some();
                let value = match (needs_value(&spelling), inline) {
                    (true, Some(v)) => Some(v.to_string()),
                    (true, None) => Some(next()?),
                    (false, v) => v.map(String::from),
                };
                let (flag, value) = resolve(spelling, value, name)?;
                emit(flag, &value);
            }
            // getopt's cluster of one-letter flags, tini's and dumb-init's
            // habit: `-vv`, `-sg`, `-e143`, `-r15:3`.
            None if dashes == 1 && inline.is_none() && !go => {
                for (at, letter) in body.char_indices() {
                    let one = &body[at..at + letter.len_utf8()];
                    let Some(spelling) = flags::lookup(one).filter(|_| letter.is_ascii()) else {
                        return Err(unknown(arg));
                    };
                    if needs_value(&spelling) {
                        let rest = &body[at + one.len()..];
                        let value = if rest.is_empty() {
                            next()?
                        } else {
                            rest.into()
                        };
                        let (flag, value) = resolve(spelling, Some(value), one)?;
                        emit(flag, &value);
                        break;
                    }
                    let (flag, value) = resolve(spelling, None, one)?;
                    emit(flag, &value);
                }
            }
            None => return Err(unknown(arg)),
        }
        i += 1;
    }
    if i < argv.len() {
        out.push("--".into());
        out.extend(argv[i..].iter().cloned());
    }
    Ok(out)
}

/// An unknown flag, named as written; it is often the command's own, given
/// before a `--` that was forgotten.
fn unknown(arg: &str) -> String {
    format!(
        "unknown flag: {arg} (a flag of the command goes after --: [OPTIONS] -- COMMAND [ARGS...])"
    )
}

fn needs_value(spelling: &Spelling) -> bool {
    match spelling {
        Spelling::Flag(f) => matches!(f.kind, Kind::Value | Kind::List),
        Spelling::Alias(_, a) => a.takes_value(),
    }
}

/// A spelling and what was written with it → its flag and that flag's value.
fn resolve(
    spelling: Spelling,
    value: Option<String>,
    name: &str,
) -> Result<(&'static Flag, String), String> {
    let no_value = |v: &Option<String>| match v {
        Some(v) => Err(format!("flag -{name} takes no value (given {v:?})")),
        None => Ok(()),
    };
    Ok(match spelling {
        Spelling::Alias(flag, alias) if alias.takes_value() => (
            flag,
            alias.value.replace("{}", value.as_deref().unwrap_or("")),
        ),
        Spelling::Alias(flag, alias) => {
            no_value(&value)?;
            (flag, alias.value.to_string())
        }
        Spelling::Flag(flag) => match flag.kind {
            Kind::Value | Kind::List => (flag, value.unwrap_or_default()),
            Kind::Switch => {
                let on = value.as_deref().map_or(Ok(true), parse::boolean);
                let on = on.map_err(|e| format!("-{name}: {e}"))?;
                (flag, on.to_string())
            }
            Kind::Count => {
                no_value(&value)?;
                (flag, "1".into())
            }
        },
    })
}

/// Step 3's source of raw values: the command line, else the variables,
/// else the personality's default.
struct Values<'a> {
    set: Vec<Setting>,
    env: &'a dyn Fn(&str) -> Option<String>,
    personality: Personality,
}

impl Values<'_> {
    fn flag(name: &str) -> &'static Flag {
        match flags::named(name) {
            Some(f) => f,
            // A misspelt name in build(): every test that parses fails.
            None => panic!("no flag --{name} in the table"),
        }
    }

    /// What the command line gave `name`, in order.
    fn given(&self, name: &str) -> Vec<&str> {
        self.set
            .iter()
            .filter(|s| s.flag.name == name)
            .map(|s| s.value.as_str())
            .collect()
    }

    /// The first of `name`'s variables that is set, as the flag's values.
    fn in_env(&self, flag: &Flag) -> Result<Option<Vec<String>>, String> {
        for var in flag.vars {
            let Some(text) = (self.env)(var.name()) else {
                continue;
            };
            let bad = |e: String| format!("{}: {e}", var.name());
            let value = match var {
                Var::Value(_) if flag.kind == Kind::List => {
                    return Ok(Some(parse::comma_list(&text)));
                }
                Var::Lines(_) => {
                    // Blank lines and `#` comments are for the manifest's reader.
                    let lines = text
                        .lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty() && !l.starts_with('#'));
                    return Ok(Some(lines.map(String::from).collect()));
                }
                Var::Value(_) => Some(text),
                Var::Present(_, value) => Some(value.to_string()),
                Var::Bool(_, on, off) => {
                    let set = if parse::boolean(&text).map_err(bad)? {
                        on
                    } else {
                        off
                    };
                    set.map(|v| v.to_string())
                }
                Var::Verbosity(_) => {
                    let n: usize = text
                        .trim()
                        .parse()
                        .map_err(|_| bad(format!("expected a number from 0 to 4, not {text:?}")))?;
                    Some(["error", "warn", "info", "debug", "trace"][n.min(4)].to_string())
                }
            };
            if let Some(v) = value {
                return Ok(Some(vec![v]));
            }
        }
        Ok(None)
    }

    /// `name`'s values: given, else from the environment, else its default.
    fn list(&self, name: &str) -> Result<Option<Vec<String>>, String> {
        let flag = Self::flag(name);
        let given = self.given(name);
        if !given.is_empty() {
            return Ok(Some(given.into_iter().map(String::from).collect()));
        }
        if let Some(v) = self.in_env(flag)? {
            return Ok(Some(v));
        }
        Ok(self.personality.default(flag).map(|d| vec![d.to_string()]))
    }

    /// `name`'s one value; the same value given twice is harmless (argv
    /// assembled from several places), two different ones are refused.
    fn one(&self, name: &str) -> Result<Option<String>, String> {
        let Some(values) = self.list(name)? else {
            return Ok(None);
        };
        match values.iter().find(|v| **v != values[0]) {
            Some(other) => Err(format!(
                "--{name}: given as {:?} and as {other:?}; give one",
                values[0]
            )),
            None => Ok(values.into_iter().next()),
        }
    }

    /// `name`'s value parsed by `f`; errors name the flag.
    fn typed<T>(
        &self,
        name: &str,
        f: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<T>, String> {
        self.one(name)?
            .map(|v| f(&v).map_err(|e| format!("--{name}: {e}")))
            .transpose()
    }

    fn duration(&self, name: &str) -> Result<Duration, String> {
        Ok(self.typed(name, parse::duration)?.unwrap_or_default())
    }

    fn signal(&self, name: &str) -> Result<Option<i32>, String> {
        self.typed(name, crate::signals::parse)
    }

    fn switch(&self, name: &str) -> Result<bool, String> {
        Ok(self.typed(name, parse::boolean)?.unwrap_or(false))
    }

    /// A shell-like command line that must name a program when given.
    fn words(&self, name: &str, unset_means: &str) -> Result<Option<Vec<String>>, String> {
        let Some(text) = self.one(name)? else {
            return Ok(None);
        };
        let words = parse::words(&text).map_err(|e| format!("--{name}: {e}"))?;
        // An empty one is a mistake (an unset variable in a manifest), not
        // a request for nothing: leaving the flag out says that.
        if words.first().is_none_or(String::is_empty) {
            return Err(format!(
                "--{name}: empty command {text:?} (leave it out {unset_means})"
            ));
        }
        Ok(Some(words))
    }

    /// A choice among words, each standing for a value.
    fn choice<T: Copy>(&self, name: &str, what: &str, choices: &[(&str, T)]) -> Result<T, String> {
        let text = self.one(name)?.unwrap_or_default();
        match choices.iter().find(|(word, _)| *word == text) {
            Some((_, value)) => Ok(*value),
            None => {
                let words: Vec<&str> = choices.iter().map(|(w, _)| *w).collect();
                Err(format!(
                    "--{name}: invalid {what} {text:?} (expected {})",
                    words.join(", ")
                ))
            }
        }
    }
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

/// What a forwarded signal becomes; `None` drops it.
type SignalMap = Vec<(i32, Option<i32>)>;

/// `--map-signal` and dumb-init's `--rewrite`, one list of (FROM, TO), and
/// the stop signal a rewrite of SIGTERM asks for.
fn signal_maps(v: &Values) -> Result<(SignalMap, Option<i32>), String> {
    let mut pairs = Vec::new();
    for text in v.list("map-signal")?.unwrap_or_default() {
        let bad = |e: String| format!("--map-signal {text:?}: {e}");
        let (from, to) = parse::signal_pair(&text, &["none"]).map_err(bad)?;
        reserved_signal(from).map_err(bad)?;
        pairs.push((from, to));
    }
    let mut stop = None;
    for text in v.list("rewrite")?.unwrap_or_default() {
        let bad = |e: String| format!("--rewrite {text:?}: {e}");
        let (from, to) = parse::signal_pair(&text, &["0", "none"]).map_err(bad)?;
        // dumb-init rewrites SIGTERM to change how a child is stopped
        // (`-r 15:3` for nginx): that is our stop signal.
        if from == nix::libc::SIGTERM {
            let to = to.ok_or_else(|| {
                bad("SIGTERM cannot be dropped: it is how the container is stopped (rewrite it to the signal that stops the child, e.g. 15:3)".into())
            })?;
            stop = Some(to);
            continue;
        }
        // `-r 2:15` (a dumb-init entrypoint): SIGINT still stops the child,
        // with the signal it is rewritten to.
        if from == nix::libc::SIGINT {
            let to = to.ok_or_else(|| {
                bad("SIGINT cannot be dropped: it stops the child (rewrite it to the signal that stops the child, e.g. 2:15)".into())
            })?;
            stop_signal_rule(to).map_err(bad)?;
            pairs.push((from, Some(to)));
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
    Ok((pairs, stop))
}

/// The shortest readiness probe interval: a probe is a process or a
/// connection, and a probe cannot be judged faster than it runs.
const READY_INTERVAL_MIN: Duration = Duration::from_millis(100);

/// The shortest `--poll-interval` taken. Each tick stats and hashes every
/// watched file; polling is the safety net where inotify is deaf (overlayfs,
/// NFS, a full queue), for which a tenth of a second is quick enough, while
/// a nanosecond (accepted once) kept a core busy and a half.
const POLL_MIN: Duration = Duration::from_millis(100);

fn poll_interval(v: &Values) -> Result<Duration, String> {
    let every = v.duration("poll-interval")?;
    if every.is_zero() || every >= POLL_MIN {
        return Ok(every);
    }
    let given = v.one("poll-interval")?.unwrap_or_default();
    Err(format!(
        "--poll-interval {given} is below the minimum of 100ms (0 turns polling off)"
    ))
}

fn build(v: &Values, command_line: Vec<String>, cwd: &Path) -> Result<Config, String> {
    let mut command = match (v.one("command")?, command_line) {
        (Some(cmd), rest) if !v.given("command").is_empty() => {
            std::iter::once(cmd).chain(rest).collect()
        }
        (_, rest) if !rest.is_empty() => rest,
        (Some(cmd), _) => vec![cmd],
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

    let config_list = v.list("config")?.unwrap_or_default();
    let config_is_default = config_list == [DEFAULT_CONFIG]
        && v.given("config").is_empty()
        && v.in_env(Values::flag("config"))?.is_none();
    // `./conf`, `a//b`: one spelling of each path, so that what the watch
    // reports and what an absolute --on-change pattern names compare.
    let configs: Vec<PathBuf> = config_list
        .into_iter()
        .filter(|p| !p.is_empty())
        .map(|p| cwd.join(p).components().collect())
        .collect();

    let restart = v.choice(
        "restart",
        "policy",
        &[
            ("never", Policy::Never),
            ("no", Policy::Never),
            ("on-failure", Policy::OnFailure),
            ("always", Policy::Always),
        ],
    )?;
    let max_restarts = v.typed("max-restarts", |t| {
        t.parse::<u32>().map_err(|_| format!("invalid count {t:?}"))
    })?;
    let signal_to = v.choice(
        "signal-to",
        "target",
        &[("child", Target::Child), ("group", Target::Group)],
    )?;

    let restart_signal = v.signal("restart-signal")?;
    if let Some(sig) = restart_signal {
        reserved_signal(sig).map_err(|e| format!("--restart-signal: {e}"))?;
    }
    let (map_signal, rewritten_stop) = signal_maps(v)?;
    // A signal the manager keeps for a restart cannot also be forwarded.
    if let Some(sig) = restart_signal
        && let Some((_, to)) = map_signal.iter().find(|(from, _)| *from == sig)
    {
        let name = crate::signals::name(sig);
        let (to, does) = match to {
            Some(to) => (crate::signals::name(*to), "forwards it"),
            None => ("none".into(), "drops it"),
        };
        return Err(format!(
            "{name} is claimed twice: --restart-signal {name} keeps it to restart the child, --map-signal {name}:{to} {does}; give it to one of them"
        ));
    }

    let remap_exit = v
        .list("remap-exit")?
        .unwrap_or_default()
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| parse::exit_pair(s).map_err(|e| format!("--remap-exit: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let remap_exit = one_per_from(remap_exit, |from, a, b| {
        format!(
            "--remap-exit: exit code {from} is mapped twice ({from}:{a} and {from}:{b}); give it once"
        )
    })?;

    let validate = v.words("validate", "to act without a check")?;
    let reload_command = v.words("reload-command", "to restart the child on a change")?;
    let reload_url = v
        .list("reload-url")?
        .unwrap_or_default()
        .iter()
        .filter(|u| !u.is_empty())
        .map(|u| crate::http::Url::parse(u).map_err(|e| format!("--reload-url: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let reload_signal = v.signal("reload-signal")?;
    if let Some(sig) = reload_signal {
        catchable(sig).map_err(|e| {
            format!("--reload-signal: {e}: the child could not reload on it (without --reload-signal a change restarts the child)")
        })?;
    }
    let stop_signal = match (rewritten_stop, v.given("stop-signal").is_empty()) {
        (Some(sig), true) => sig,
        (Some(_), false) => {
            return Err(
                "--rewrite 15:TO and --stop-signal both say how the child is stopped: give one"
                    .into(),
            );
        }
        (None, _) => v.signal("stop-signal")?.unwrap_or(nix::libc::SIGTERM),
    };
    stop_signal_rule(stop_signal).map_err(|e| format!("--stop-signal: {e}"))?;
    let reloads = [
        reload_signal.is_some(),
        reload_command.is_some(),
        !reload_url.is_empty(),
    ];
    if reloads.iter().filter(|on| **on).count() > 1 {
        return Err(
            "--reload-signal, --reload-command and --reload-url are exclusive: give one".into(),
        );
    }
    let mut hooks: Vec<ReloadHook> = match &reload_command {
        Some(argv) => vec![ReloadHook::Command(argv.clone())],
        None => reload_url.iter().cloned().map(ReloadHook::Url).collect(),
    };
    let on_change = v
        .list("on-change")?
        .unwrap_or_default()
        .iter()
        .map(|text| {
            on_change_rule(text, &mut hooks, &configs)
                .map_err(|e| format!("--on-change {:?}: {e}", crate::http::redact_in(text)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let metrics = v.typed("metrics", crate::http::Listen::parse)?;
    let log_json = v.choice("log-format", "format", &[("text", false), ("json", true)])?;

    // `-v` counts from the tool's quiet default; it and --log-level are
    // two answers to one question.
    let verbose = v.given("verbose").len();
    let log_level = match (verbose, v.given("log-level").is_empty()) {
        (0, _) => v
            .typed("log-level", parse::level)?
            .unwrap_or(log::LevelFilter::Info),
        (_, true) => v.personality.verbose(verbose),
        (_, false) => return Err("-v and --log-level both set the log level: give one".into()),
    };

    let promote_to = v
        .one("promote-to")?
        .filter(|p| !p.is_empty())
        .map(|p| cwd.join(p));
    let validate_in_place = v.switch("validate-in-place")?;
    if validate_in_place && (promote_to.is_none() || validate.is_none()) {
        return Err(
            "--validate-in-place: needs --promote-to and --validate (it says where the check reads the candidate)"
                .into(),
        );
    }
    if let (Some(dir), Some(check), false) = (&promote_to, &validate, validate_in_place) {
        sees::check_sees_candidate(check, dir, cwd)?;
    }
    let rollback_window = v.typed("rollback-window", parse::duration)?;
    if rollback_window.is_some() && promote_to.is_none() {
        return Err(
            "--rollback-window: needs --promote-to (it keeps the previous good generation there to go back to)"
                .into(),
        );
    }
    if rollback_window.is_some_and(|w| w.is_zero()) {
        return Err("--rollback-window: 0 would roll back nothing; leave it out instead".into());
    }
    let ready_check = v.words("ready-check", "to run without a readiness probe")?;
    let ready_url = v.typed("ready-url", crate::http::Url::parse)?;
    if ready_check.is_some() && ready_url.is_some() {
        return Err("--ready-check and --ready-url are two probes: give one".into());
    }
    let ready_interval = v.duration("ready-interval")?;
    if ready_interval < READY_INTERVAL_MIN {
        return Err(format!(
            "--ready-interval: {ready_interval:?} is too short: a probe every {READY_INTERVAL_MIN:?} at most (each one starts a process or a connection)"
        ));
    }
    if !v.given("ready-interval").is_empty() && ready_check.is_none() && ready_url.is_none() {
        return Err(
            "--ready-interval: there is no probe to run (give --ready-check or --ready-url)".into(),
        );
    }
    let ready_start_period = v.duration("ready-start-period")?;
    if !v.given("ready-start-period").is_empty()
        && ready_check.is_none()
        && ready_url.is_none()
        && !validate_in_place
    {
        return Err(
            "--ready-start-period: nothing uses it (give --ready-check, --ready-url or --validate-in-place)"
                .into(),
        );
    }
    let ready_interval = (ready_check.is_some() || ready_url.is_some()).then_some(ready_interval);
    // Always a subreaper when not PID 1 (reaper::become_subreaper), which
    // is what tini's -s asks for: only its spelling is checked.
    v.switch("subreaper")?;

    Ok(Config {
        command,
        configs,
        config_is_default,
        stop_signal,
        stop_timeout: v.duration("stop-timeout")?,
        stop_delay: v.duration("stop-delay")?,
        signal_to,
        restart_signal,
        map_signal,
        reload_signal,
        reload_command,
        reload_url,
        hooks,
        on_change,
        reload_timeout: v.duration("reload-timeout")?,
        splay: v.duration("splay")?,
        min_interval: v.duration("min-interval")?,
        metrics,
        log_json,
        debounce: v.duration("debounce")?,
        debounce_max: v.duration("debounce-max")?,
        poll_interval: poll_interval(v)?,
        poll_only: v.switch("poll-only")?,
        validate,
        validate_timeout: v.duration("validate-timeout")?,
        restart,
        max_restarts,
        remap_exit,
        promote_to,
        validate_in_place,
        rollback_window,
        ready_check,
        ready_url,
        ready_interval,
        ready_start_period,
        log_level,
        warn_on_reap: v.switch("warn-on-reap")?,
        parent_death_signal: v.signal("parent-death-signal")?,
    })
}

/// `--help`: the table, grouped, each flag with its default and the other
/// tools' variables that set it, between a header and a footer that say
/// what holds for every flag.
fn help() -> String {
    const LEFT: usize = 28;
    const WIDTH: usize = 96;
    let mut out = format!(
        "flush-manager {VERSION}: a small init (PID 1) for containers. Runs COMMAND, reaps every
zombie, forwards every signal, stops gracefully, and restarts (or signals) COMMAND when a
watched config file changes, Kubernetes ConfigMap and Secret volumes included.

Usage:
  flush-manager [OPTIONS] [--] COMMAND [ARGS...]
  flush-manager -command COMMAND [OPTIONS] [ARGS...]       (the Go tool's form)
  tini [-s] [-g] [-e CODE] [-v] [-w] [-p SIG] -- COMMAND   (run as tini, tini-static, docker-init)
  dumb-init [-c] [-r FROM:TO] [-v] COMMAND                 (run as dumb-init)
Flags take one or two dashes, and a value as `--flag value` or `--flag=value`; one-letter
flags group as getopt's do (-vv, -sg, -e143). Options end at the first argument that is not
one, or at `--`: the rest is the command's, dashes included.
"
    );
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
            if let Some(d) = flag.default {
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
78 config rejected by --validate at startup; 2 usage error (1 as tini, dumb-init);
1 cannot start (resources), or --copy-to could not copy.",
    );
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
