//! The flag table: every option declared once, in one row of `flags!`
//! below, with its typed value and parser, its spellings, the variables
//! that may set it, its defaults, its `--help` group and text. From the
//! rows come the table (`FLAGS`: the translator, `--help` and the README
//! check read it), argh's struct (one typed field per row), and `Values`
//! (each row's value from the command line, else its variables, else the
//! default of the tool the binary stands in for). A row cannot be half
//! there: each part is generated from it.

use super::values::{Given, Setting};
use super::{DEFAULT_COMMAND, DEFAULT_CONFIG, Personality};
use crate::http::{Listen, Url};
use crate::parse;
use crate::state::{Policy, Target};
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `--flag VALUE`, once (the same value twice is tolerated).
    Value,
    /// `--flag VALUE`, repeatable; its variable is comma-separated.
    List,
    /// `--flag`, or `--flag=BOOL`; its variable is a boolean.
    Switch,
    /// `-v`, `-vv`: how many times it is given.
    Count,
}

/// Where a flag shows in `--help`, in this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    Command,
    Signals,
    Watch,
    Exit,
    Other,
}

pub const GROUPS: &[(Group, &str)] = &[
    (Group::Command, "Command"),
    (Group::Signals, "Signals and stopping"),
    (Group::Watch, "Config watch"),
    (Group::Exit, "When the child exits on its own"),
    (Group::Other, "Other"),
];

/// A flag that is no setting: it prints something or copies the binary,
/// and exits. Handled on the translated tokens, before anything is parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    CopyTo,
    Version,
    License,
    Help,
}

/// Another spelling of a flag, tini's or dumb-init's: `value` is what it
/// sets the flag to; a `{}` in it takes the alias's own value (`-e 143` is
/// `--remap-exit 143:0`).
pub struct Alias {
    pub spelling: &'static str,
    pub value: &'static str,
}

impl Alias {
    pub fn takes_value(&self) -> bool {
        self.value.contains("{}")
    }
}

/// A variable that sets a flag left off the command line; the first one
/// set, in table order, is used.
pub enum Var {
    /// Holds the flag's own value (a list: comma-separated).
    Value(&'static str),
    /// A boolean (`parse::boolean`): true sets the flag to the first
    /// value, false to the second; `None` reads as not set.
    Bool(&'static str, Option<&'static str>, Option<&'static str>),
    /// Set at all, whatever its value, sets the flag to the value: tini
    /// reads its variables this way.
    Present(&'static str, &'static str),
    /// tini's verbosity number: 0 errors only, 1 warnings, 2 info, 3
    /// debug, 4 or more trace.
    Verbosity(&'static str),
    /// A list flag's values, one a line: for values that hold commas
    /// (commands, URLs, globs).
    Lines(&'static str),
}

impl Var {
    pub fn name(&self) -> &'static str {
        match self {
            Var::Value(n)
            | Var::Bool(n, ..)
            | Var::Present(n, _)
            | Var::Verbosity(n)
            | Var::Lines(n) => n,
        }
    }
}

pub struct Flag {
    /// The long name, `--name`; Go's single dash works too.
    pub name: &'static str,
    /// A one-letter spelling with the same meaning (`-s`).
    pub short: Option<char>,
    pub aliases: &'static [Alias],
    pub vars: &'static [Var],
    pub kind: Kind,
    /// What the value looks like in `--help`.
    pub arg: &'static str,
    /// The default under the name flush-manager, parsed like a given value;
    /// `None` when leaving the flag out means "nothing".
    pub default: Option<&'static str>,
    /// The defaults as tini (tini-static, docker-init) and as dumb-init.
    pub tini_default: Option<&'static str>,
    pub dumb_init_default: Option<&'static str>,
    pub group: Group,
    pub help: &'static str,
    /// Set for the flags that are no setting.
    pub action: Option<Action>,
}

const fn flag(
    name: &'static str,
    kind: Kind,
    arg: &'static str,
    group: Group,
    help: &'static str,
) -> Flag {
    Flag {
        name,
        short: None,
        aliases: &[],
        vars: &[],
        kind,
        arg,
        default: None,
        tini_default: None,
        dumb_init_default: None,
        group,
        help,
        action: None,
    }
}

impl Flag {
    /// The default under every name (narrowed by the two below).
    const fn default(mut self, value: &'static str) -> Flag {
        self.default = Some(value);
        self.tini_default = Some(value);
        self.dumb_init_default = Some(value);
        self
    }
    /// The default as tini and as dumb-init, where it differs from ours.
    const fn tools_default(mut self, value: Option<&'static str>) -> Flag {
        self.tini_default = value;
        self.dumb_init_default = value;
        self
    }
    const fn dumb_init_default(mut self, value: Option<&'static str>) -> Flag {
        self.dumb_init_default = value;
        self
    }
    const fn short(mut self, letter: char) -> Flag {
        self.short = Some(letter);
        self
    }
    const fn aliases(mut self, aliases: &'static [Alias]) -> Flag {
        self.aliases = aliases;
        self
    }
    const fn vars(mut self, vars: &'static [Var]) -> Flag {
        self.vars = vars;
        self
    }
    const fn action(mut self, action: Action) -> Flag {
        self.action = Some(action);
        self
    }

    /// This tool's default for the flag.
    pub fn default_as(&self, who: Personality) -> Option<&'static str> {
        match who {
            Personality::FlushManager => self.default,
            Personality::Tini => self.tini_default,
            Personality::DumbInit => self.dumb_init_default,
        }
    }
}

/// The rows → the table, argh's struct, and `Values`.
///
/// A setting row: `field: Type = parser => "name" Kind "ARG" Group "help"`
/// and the builder calls (`.default(..)`, `.vars(..)`, ...). The parser is
/// a `fn(&str) -> Result<Type, String>`; it types the command line's value
/// (argh calls it, through the field's `from_str_fn`), the variables' and
/// the default's alike. An action row: `Variant => "name" Kind ...`.
macro_rules! flags {
    (
        settings { $(
            $field:ident : $ty:ty = $parse:expr =>
                $name:tt $kind:ident $arg:tt $group:ident $help:tt
                $( . $method:ident ( $($margs:tt)* ) )* ;
        )* }
        actions { $(
            $act:ident => $aname:tt $akind:ident $aarg:tt $agroup:ident $ahelp:tt
                $( . $amethod:ident ( $($aargs:tt)* ) )* ;
        )* }
    ) => {
        /// One static per row, named after its field or action.
        #[allow(non_upper_case_globals)]
        pub mod rows {
            use super::*;
            use Group::*;
            use Kind::*;
            $(
                pub static $field: Flag =
                    flag($name, $kind, $arg, $group, $help) $( .$method($($margs)*) )*;
            )*
            $(
                pub static $act: Flag = flag($aname, $akind, $aarg, $agroup, $ahelp)
                    .action(Action::$act) $( .$amethod($($aargs)*) )*;
            )*
        }

        /// Every flag, in `--help`'s order within each group.
        pub static FLAGS: &[&Flag] = &[$(&rows::$field,)* $(&rows::$act,)*];

        /// Each row's parser, by the row's field name.
        mod parsers {
            use super::*;
            $(
                pub fn $field(text: &str) -> Result<$ty, String> {
                    let parse: fn(&str) -> Result<$ty, String> = $parse;
                    parse(text)
                }
            )*
        }

        /// The parsers for argh: they never fail there, so that a bad
        /// value is reported in our words (`--flag: why`), and the text
        /// as written is kept for messages.
        mod given {
            use super::*;
            $(
                pub fn $field(text: &str) -> Result<Given<$ty>, String> {
                    Ok(Given { value: parsers::$field(text), text: text.to_string() })
                }
            )*
        }

        /// argh's part: the translated options, `--name VALUE` for each
        /// setting given.
        #[derive(argh::FromArgs)]
        /// flush-manager's settings, as canonical tokens.
        pub struct Argv {
            $(
                /// a setting (see --help)
                #[argh(option, long = $name, from_str_fn(given::$field))]
                pub $field: Vec<Given<$ty>>,
            )*
        }

        /// Each setting's typed values and where they came from.
        pub struct Values {
            $( pub $field: Setting<$ty>, )*
        }

        impl Values {
            /// The command line's values, else the variables', else the
            /// tool's default; every one parsed and checked, in table order.
            pub fn resolve(
                argv: Argv,
                env: &dyn Fn(&str) -> Option<String>,
                who: Personality,
            ) -> Result<Values, String> {
                let mut error = None;
                let values = Values {
                    $( $field: Setting::resolve(&rows::$field, argv.$field, env, who, parsers::$field, &mut error), )*
                };
                match error {
                    Some(e) => Err(e),
                    None => Ok(values),
                }
            }
        }

        #[cfg(test)]
        impl Values {
            /// Where `flag`'s values came from (`Unset` for an action).
            pub fn source(&self, flag: &Flag) -> super::values::Source {
                $( if std::ptr::eq(flag, &rows::$field) { return self.$field.source; } )*
                super::values::Source::Unset
            }
        }

        #[cfg(test)]
        impl Argv {
            /// How many values argh put in `flag`'s field.
            pub fn count(&self, flag: &Flag) -> usize {
                $( if std::ptr::eq(flag, &rows::$field) { return self.$field.len(); } )*
                0
            }
        }
    };
}

/// A signal forwarded as another; `None` drops it.
pub type SignalPair = (i32, Option<i32>);

fn text(t: &str) -> Result<String, String> {
    Ok(t.to_string())
}

fn duration(t: &str) -> Result<Duration, String> {
    parse::duration(t)
}

fn signal(t: &str) -> Result<i32, String> {
    crate::signals::parse(t)
}

fn boolean(t: &str) -> Result<bool, String> {
    parse::boolean(t)
}

/// A word among `choices`, each standing for a value.
fn choice<T: Copy>(text: &str, what: &str, choices: &[(&str, T)]) -> Result<T, String> {
    match choices.iter().find(|(word, _)| *word == text) {
        Some((_, value)) => Ok(*value),
        None => {
            let words: Vec<&str> = choices.iter().map(|(w, _)| *w).collect();
            Err(format!(
                "invalid {what} {text:?} (expected {})",
                words.join(", ")
            ))
        }
    }
}

fn target(t: &str) -> Result<Target, String> {
    choice(
        t,
        "target",
        &[("child", Target::Child), ("group", Target::Group)],
    )
}

fn policy(t: &str) -> Result<Policy, String> {
    let choices = [
        ("never", Policy::Never),
        ("no", Policy::Never),
        ("on-failure", Policy::OnFailure),
        ("always", Policy::Always),
    ];
    choice(t, "policy", &choices)
}

fn json(t: &str) -> Result<bool, String> {
    choice(t, "format", &[("text", false), ("json", true)])
}

fn count(t: &str) -> Result<u32, String> {
    t.parse::<u32>().map_err(|_| format!("invalid count {t:?}"))
}

/// `--map-signal FROM:TO`, TO `none` to drop; the pair is named in the error.
fn map_pair(t: &str) -> Result<SignalPair, String> {
    parse::signal_pair(t, &["none"]).map_err(|e| format!("{t:?}: {e}"))
}

/// dumb-init's `-r FROM:TO`, TO `0` (or `none`) to drop.
fn rewrite_pair(t: &str) -> Result<SignalPair, String> {
    parse::signal_pair(t, &["0", "none"]).map_err(|e| format!("{t:?}: {e}"))
}

/// An empty value in a list (a trailing comma) stands for nothing.
fn exit_pair_or_none(t: &str) -> Result<Option<(i32, i32)>, String> {
    (!t.is_empty()).then(|| parse::exit_pair(t)).transpose()
}

fn url_or_none(t: &str) -> Result<Option<Url>, String> {
    (!t.is_empty()).then(|| Url::parse(t)).transpose()
}

/// A shell-like command line that must name a program: an empty one is a
/// mistake (an unset variable in a manifest), not a request for nothing,
/// which leaving the flag out says.
fn words(text: &str, unset_means: &str) -> Result<Vec<String>, String> {
    let words = parse::words(text)?;
    if words.first().is_none_or(String::is_empty) {
        return Err(format!(
            "empty command {text:?} (leave it out {unset_means})"
        ));
    }
    Ok(words)
}

flags! {
    settings {
        command: String = text =>
            "command" Value "PATH" Command
            "command to run; trailing arguments are its arguments. As tini, docker-init or dumb-init there is no default: a command must be given"
            .default(DEFAULT_COMMAND)
            .tools_default(None)
            .vars(&[Var::Value("FLUSH_MANAGER_COMMAND")]);
        signal_to: Target = target =>
            "signal-to" Value "child|group" Signals
            "who gets forwarded, stop and reload signals: the child alone, as prefork servers (gunicorn, php-fpm, nginx) expect, or its whole process group; SIGKILL always hits the group. As dumb-init the default is group"
            .default("child")
            .dumb_init_default(Some("group"))
            .aliases(&[
                Alias { spelling: "g", value: "group" },
                Alias { spelling: "c", value: "child" },
                Alias { spelling: "single-child", value: "child" },
            ])
            .vars(&[
                Var::Value("FLUSH_MANAGER_SIGNAL_TO"),
                Var::Present("TINI_KILL_PROCESS_GROUP", "group"),
                Var::Bool("DUMB_INIT_SETSID", Some("group"), Some("child")),
            ]);
        stop_signal: i32 = signal =>
            "stop-signal" Value "SIG" Signals
            "signal that stops the child: TERM, SIGTERM, 15, RTMIN+3 (SIGINT is forwarded as SIGINT); SIGCONT follows it"
            .default("TERM")
            .vars(&[Var::Value("FLUSH_MANAGER_STOP_SIGNAL")]);
        stop_timeout: Duration = duration =>
            "stop-timeout" Value "DURATION" Signals
            "wait after the stop signal before SIGKILL of the group"
            .default("10s")
            .vars(&[Var::Value("FLUSH_MANAGER_STOP_TIMEOUT")]);
        stop_delay: Duration = duration =>
            "stop-delay" Value "DURATION" Signals
            "on SIGTERM, wait this long before the stop signal, so load balancers drain first; a second SIGTERM or a SIGINT cuts it short"
            .default("0")
            .vars(&[Var::Value("FLUSH_MANAGER_STOP_DELAY")]);
        restart_signal: i32 = signal =>
            "restart-signal" Value "SIG" Signals
            "a signal the manager keeps for itself: it restarts the child (after --validate, if set)"
            .vars(&[Var::Value("FLUSH_MANAGER_RESTART_SIGNAL")]);
        map_signal: SignalPair = map_pair =>
            "map-signal" List "FROM:TO" Signals
            "forward FROM as TO; TO 'none' drops it (not TERM or INT, which stop: see --stop-signal); repeatable"
            .vars(&[Var::Value("FLUSH_MANAGER_MAP_SIGNAL")]);
        rewrite: SignalPair = rewrite_pair =>
            "rewrite" List "FROM:TO" Signals
            "dumb-init's -r: --map-signal with TO 0 for a drop, and 15:TO (SIGTERM) meaning --stop-signal TO; repeatable"
            .short('r')
            .vars(&[Var::Value("FLUSH_MANAGER_REWRITE")]);
        parent_death_signal: i32 = signal =>
            "parent-death-signal" Value "SIG" Signals
            "tini's -p: the manager gets SIG when its parent dies (PR_SET_PDEATHSIG); a catchable one stops the child as that signal would"
            .short('p')
            .vars(&[Var::Value("FLUSH_MANAGER_PARENT_DEATH_SIGNAL")]);
        subreaper: bool = boolean =>
            "subreaper" Switch "" Signals
            "tini's -s: adopt orphans when not PID 1; always done, so accepted for tini's sake"
            .short('s')
            .vars(&[
                Var::Value("FLUSH_MANAGER_SUBREAPER"),
                Var::Present("TINI_SUBREAPER", "true"),
            ]);
        config: String = text =>
            "config" List "PATH" Watch
            "file or directory to watch, repeatable; '' watches nothing. As tini, docker-init or dumb-init nothing is watched unless given"
            .default(DEFAULT_CONFIG)
            .tools_default(None)
            .vars(&[Var::Value("FLUSH_MANAGER_CONFIG")]);
        reload_signal: i32 = signal =>
            "reload-signal" Value "SIG" Watch
            "on a change, send SIG instead of restarting (e.g. HUP)"
            .vars(&[Var::Value("FLUSH_MANAGER_RELOAD_SIGNAL")]);
        reload_command: Vec<String> = |t| words(t, "to restart the child on a change") =>
            "reload-command" Value "'CMD'" Watch
            "on a change, run CMD instead (no shell; FLUSH_MANAGER_CHANGED set); retried with backoff until it exits 0"
            .vars(&[Var::Value("FLUSH_MANAGER_RELOAD_COMMAND")]);
        reload_url: Option<Url> = url_or_none =>
            "reload-url" List "URL" Watch
            "on a change, POST this http:// URL instead (repeatable: each one, each retried on its own until it answers 2xx; user:password@ is HTTP Basic auth)"
            .vars(&[Var::Value("FLUSH_MANAGER_RELOAD_URL")]);
        on_change: String = text =>
            "on-change" List "PATTERN=ACTION" Watch
            "for changed files matching PATTERN (a glob: a bare name matches at any depth, a/b below the --config, /a/b absolute), do ACTION instead: restart, signal:SIG, command:'CMD', url:URL or none; the first matching rule wins; repeatable (its variable: one rule a line)"
            .vars(&[Var::Lines("FLUSH_MANAGER_ON_CHANGE")]);
        reload_timeout: Duration = duration =>
            "reload-timeout" Value "DURATION" Watch
            "kill the reload command, or give up on the request"
            .default("30s")
            .vars(&[Var::Value("FLUSH_MANAGER_RELOAD_TIMEOUT")]);
        splay: Duration = duration =>
            "splay" Value "DURATION" Watch
            "wait a random time below this before acting, so replicas spread out"
            .default("0")
            .vars(&[Var::Value("FLUSH_MANAGER_SPLAY")]);
        min_interval: Duration = duration =>
            "min-interval" Value "DURATION" Watch
            "at most one config-triggered action per interval; changes in between are folded into the next"
            .default("0")
            .vars(&[Var::Value("FLUSH_MANAGER_MIN_INTERVAL")]);
        debounce: Duration = duration =>
            "debounce" Value "DURATION" Watch
            "quiet time after the last change before acting"
            .default("500ms")
            .vars(&[Var::Value("FLUSH_MANAGER_DEBOUNCE")]);
        debounce_max: Duration = duration =>
            "debounce-max" Value "DURATION" Watch
            "act at the latest this long after the first change of a burst, however busy the directory"
            .default("5s")
            .vars(&[Var::Value("FLUSH_MANAGER_DEBOUNCE_MAX")]);
        poll_interval: Duration = duration =>
            "poll-interval" Value "DURATION" Watch
            "polling beside inotify, at least 100ms; 0 turns it off"
            .default("5s")
            .vars(&[Var::Value("FLUSH_MANAGER_POLL_INTERVAL")]);
        poll_only: bool = boolean =>
            "poll-only" Switch "" Watch
            "poll only, no inotify (overlayfs, NFS)"
            .vars(&[Var::Value("FLUSH_MANAGER_POLL_ONLY")]);
        validate: Vec<String> = |t| words(t, "to act without a check") =>
            "validate" Value "'CMD ARGS'" Watch
            "check a changed config first (no shell); act only if it exits 0"
            .vars(&[Var::Value("FLUSH_MANAGER_VALIDATE")]);
        validate_timeout: Duration = duration =>
            "validate-timeout" Value "DURATION" Watch
            "kill a check that runs longer (a failure)"
            .default("30s")
            .vars(&[Var::Value("FLUSH_MANAGER_VALIDATE_TIMEOUT")]);
        promote_to: String = text =>
            "promote-to" Value "DIR" Watch
            "the child reads its config from DIR: settled source bytes are staged there as a hidden candidate, checked by --validate (at $FLUSH_MANAGER_CANDIDATE), and shown to the child only if good"
            .vars(&[Var::Value("FLUSH_MANAGER_PROMOTE_TO")]);
        validate_in_place: bool = boolean =>
            "validate-in-place" Switch "" Watch
            "with --promote-to: check the candidate at DIR itself (includes by absolute path); the child can see it while the check runs"
            .vars(&[Var::Value("FLUSH_MANAGER_VALIDATE_IN_PLACE")]);
        rollback_window: Duration = duration =>
            "rollback-window" Value "DURATION" Watch
            "with --promote-to: if the child exits on its own or the readiness probe fails 3 times in a row within this long after new bytes reach it, go back to the proven generation (the last that ran through its window)"
            .vars(&[Var::Value("FLUSH_MANAGER_ROLLBACK_WINDOW")]);
        ready_check: Vec<String> = |t| words(t, "to run without a readiness probe") =>
            "ready-check" Value "'CMD ARGS'" Other
            "readiness probe: the child is ready while this exits 0 (no shell); /readyz says so"
            .vars(&[Var::Value("FLUSH_MANAGER_READY_CHECK")]);
        ready_url: Url = Url::parse =>
            "ready-url" Value "URL" Other
            "readiness probe: the child is ready while a GET of this URL answers 2xx"
            .vars(&[Var::Value("FLUSH_MANAGER_READY_URL")]);
        ready_interval: Duration = duration =>
            "ready-interval" Value "DURATION" Other
            "how often the readiness probe runs"
            .default("2s")
            .vars(&[Var::Value("FLUSH_MANAGER_READY_INTERVAL")]);
        ready_start_period: Duration = duration =>
            "ready-start-period" Value "DURATION" Other
            "a new child's failed probes count only once it was ready, or once it ran this long without being ready (a slow start, a JVM, is not a failure); with --validate-in-place, no candidate is shown to a child before then"
            .default("60s")
            .vars(&[Var::Value("FLUSH_MANAGER_READY_START_PERIOD")]);
        restart: Policy = policy =>
            "restart" Value "POLICY" Exit
            "never (exit with its code), on-failure or always"
            .default("never")
            .vars(&[Var::Value("FLUSH_MANAGER_RESTART")]);
        max_restarts: u32 = count =>
            "max-restarts" Value "N" Exit
            "with --restart, give up after N restarts with the child's code (default: unlimited)"
            .vars(&[Var::Value("FLUSH_MANAGER_MAX_RESTARTS")]);
        remap_exit: Option<(i32, i32)> = exit_pair_or_none =>
            "remap-exit" List "FROM:TO" Exit
            "map an exit code, e.g. 143:0; repeatable"
            .aliases(&[Alias { spelling: "e", value: "{}:0" }])
            .vars(&[Var::Value("FLUSH_MANAGER_REMAP_EXIT")]);
        log_level: log::LevelFilter = parse::level =>
            "log-level" Value "LEVEL" Other
            "error, warn, info, debug, trace, off. As tini, docker-init or dumb-init the default is warn"
            .default("info")
            .tools_default(Some("warn"))
            .vars(&[
                Var::Value("FLUSH_MANAGER_LOG_LEVEL"),
                Var::Value("FLUSH_MANAGER_LOG"),
                Var::Verbosity("TINI_VERBOSITY"),
                Var::Bool("DUMB_INIT_DEBUG", Some("debug"), None),
            ]);
        verbose: bool = boolean =>
            "verbose" Count "" Other
            "more log lines, instead of --log-level: as dumb-init debug; otherwise each v one level more (tini's -v, -vv, -vvv from warn, ours from info)"
            .short('v');
        warn_on_reap: bool = boolean =>
            "warn-on-reap" Switch "" Other
            "tini's -w: a WARN for each orphan (zombie) reaped"
            .short('w')
            .vars(&[Var::Value("FLUSH_MANAGER_WARN_ON_REAP")]);
        log_format: bool = json =>
            "log-format" Value "FORMAT" Other
            "text ([flush-manager] LEVEL: message) or json"
            .default("text")
            .vars(&[Var::Value("FLUSH_MANAGER_LOG_FORMAT")]);
        metrics: Listen = Listen::parse =>
            "metrics" Value "ADDR" Other
            "serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9111; :9111 for every address, IPv6 and IPv4)"
            .vars(&[Var::Value("FLUSH_MANAGER_METRICS")]);
    }
    actions {
        CopyTo => "copy-to" Value "DIR" Other
            "copy this binary to DIR/flush-manager (0755, atomic) and exit, for an init container to share it through a volume; replaces only a flush-manager binary";
        Version => "version" Switch "" Other
            "print the version"
            .aliases(&[Alias { spelling: "V", value: "true" }]);
        License => "license" Switch "" Other
            "print the licence (tini's -l)"
            .short('l');
        Help => "help" Switch "" Other
            "print this"
            .short('h');
    }
}

/// The table row named `name` (the README check).
#[cfg(test)]
pub fn named(name: &str) -> Option<&'static Flag> {
    FLAGS.iter().copied().find(|f| f.name == name)
}

/// What a spelling on the command line stands for.
pub enum Spelling {
    Flag(&'static Flag),
    Alias(&'static Flag, &'static Alias),
}

/// `name` as written after the dashes: a long name, a letter, an alias.
pub fn lookup(name: &str) -> Option<Spelling> {
    let mut letters = name.chars();
    let letter = match (letters.next(), letters.next()) {
        (Some(c), None) => Some(c),
        _ => None,
    };
    for &f in FLAGS {
        if f.name == name || (letter.is_some() && f.short == letter) {
            return Some(Spelling::Flag(f));
        }
        if let Some(a) = f.aliases.iter().find(|a| a.spelling == name) {
            return Some(Spelling::Alias(f, a));
        }
    }
    None
}
