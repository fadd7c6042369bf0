//! The flag table: every option declared once, with its spellings, the
//! variables that may set it, its kind, its default, its `--help` group and
//! text. The rewrite of argv, the environment lookup, the typed parsing in
//! `build`, `--help` and the README check all read it.

use super::{DEFAULT_COMMAND, DEFAULT_CONFIG};

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
    pub group: Group,
    pub help: &'static str,
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
        group,
        help,
    }
}

impl Flag {
    const fn default(mut self, value: &'static str) -> Flag {
        self.default = Some(value);
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
}

use Group::*;
use Kind::*;

pub static FLAGS: &[Flag] = &[
    flag(
        "command",
        Value,
        "PATH",
        Command,
        "command to run; trailing arguments are its arguments. As tini, docker-init or dumb-init there is no default: a command must be given",
    )
    .default(DEFAULT_COMMAND)
    .vars(&[Var::Value("FLUSH_MANAGER_COMMAND")]),
    flag(
        "signal-to",
        Value,
        "child|group",
        Signals,
        "who gets forwarded, stop and reload signals: the child alone, as prefork servers (gunicorn, php-fpm, nginx) expect, or its whole process group; SIGKILL always hits the group. As dumb-init the default is group",
    )
    .default("child")
    .aliases(&[
        Alias { spelling: "g", value: "group" },
        Alias { spelling: "c", value: "child" },
        Alias { spelling: "single-child", value: "child" },
    ])
    .vars(&[
        Var::Value("FLUSH_MANAGER_SIGNAL_TO"),
        Var::Present("TINI_KILL_PROCESS_GROUP", "group"),
        Var::Bool("DUMB_INIT_SETSID", Some("group"), Some("child")),
    ]),
    flag(
        "stop-signal",
        Value,
        "SIG",
        Signals,
        "signal that stops the child: TERM, SIGTERM, 15, RTMIN+3 (SIGINT is forwarded as SIGINT); SIGCONT follows it",
    )
    .default("TERM")
    .vars(&[Var::Value("FLUSH_MANAGER_STOP_SIGNAL")]),
    flag(
        "stop-timeout",
        Value,
        "DURATION",
        Signals,
        "wait after the stop signal before SIGKILL of the group",
    )
    .default("10s")
    .vars(&[Var::Value("FLUSH_MANAGER_STOP_TIMEOUT")]),
    flag(
        "stop-delay",
        Value,
        "DURATION",
        Signals,
        "on SIGTERM, wait this long before the stop signal, so load balancers drain first; a second SIGTERM or a SIGINT cuts it short",
    )
    .default("0")
    .vars(&[Var::Value("FLUSH_MANAGER_STOP_DELAY")]),
    flag(
        "restart-signal",
        Value,
        "SIG",
        Signals,
        "a signal the manager keeps for itself: it restarts the child (after --validate, if set)",
    )
    .vars(&[Var::Value("FLUSH_MANAGER_RESTART_SIGNAL")]),
    flag(
        "map-signal",
        List,
        "FROM:TO",
        Signals,
        "forward FROM as TO; TO 'none' drops it (not TERM or INT, which stop: see --stop-signal); repeatable",
    )
    .vars(&[Var::Value("FLUSH_MANAGER_MAP_SIGNAL")]),
    flag(
        "rewrite",
        List,
        "FROM:TO",
        Signals,
        "dumb-init's -r: --map-signal with TO 0 for a drop, and 15:TO (SIGTERM) meaning --stop-signal TO; repeatable",
    )
    .short('r')
    .vars(&[Var::Value("FLUSH_MANAGER_REWRITE")]),
    flag(
        "parent-death-signal",
        Value,
        "SIG",
        Signals,
        "tini's -p: the manager gets SIG when its parent dies (PR_SET_PDEATHSIG); a catchable one stops the child as that signal would",
    )
    .short('p')
    .vars(&[Var::Value("FLUSH_MANAGER_PARENT_DEATH_SIGNAL")]),
    flag(
        "subreaper",
        Switch,
        "",
        Signals,
        "tini's -s: adopt orphans when not PID 1; always done, so accepted for tini's sake",
    )
    .short('s')
    .vars(&[
        Var::Value("FLUSH_MANAGER_SUBREAPER"),
        Var::Present("TINI_SUBREAPER", "true"),
    ]),
    flag(
        "config",
        List,
        "PATH",
        Watch,
        "file or directory to watch, repeatable; '' watches nothing. As tini, docker-init or dumb-init nothing is watched unless given",
    )
    .default(DEFAULT_CONFIG)
    .vars(&[Var::Value("FLUSH_MANAGER_CONFIG")]),
    flag(
        "reload-signal",
        Value,
        "SIG",
        Watch,
        "on a change, send SIG instead of restarting (e.g. HUP)",
    )
    .vars(&[Var::Value("FLUSH_MANAGER_RELOAD_SIGNAL")]),
    flag(
        "reload-command",
        Value,
        "'CMD'",
        Watch,
        "on a change, run CMD instead (no shell; FLUSH_MANAGER_CHANGED set); retried with backoff until it exits 0",
    )
    .vars(&[Var::Value("FLUSH_MANAGER_RELOAD_COMMAND")]),
    flag(
        "reload-url",
        List,
        "URL",
        Watch,
        "on a change, POST this http:// URL instead (repeatable: each one, each retried on its own until it answers 2xx; user:password@ is HTTP Basic auth)",
    )
    .vars(&[Var::Value("FLUSH_MANAGER_RELOAD_URL")]),
    flag(
        "on-change",
        List,
        "PATTERN=ACTION",
        Watch,
        "for changed files matching PATTERN (a glob: a bare name matches at any depth, a/b below the --config, /a/b absolute), do ACTION instead: restart, signal:SIG, command:'CMD', url:URL or none; the first matching rule wins; repeatable (its variable: one rule a line)",
    )
    .vars(&[Var::Lines("FLUSH_MANAGER_ON_CHANGE")]),
    flag(
        "reload-timeout",
        Value,
        "DURATION",
        Watch,
        "kill the reload command, or give up on the request",
    )
    .default("30s")
    .vars(&[Var::Value("FLUSH_MANAGER_RELOAD_TIMEOUT")]),
    flag(
        "splay",
        Value,
        "DURATION",
        Watch,
        "wait a random time below this before acting, so replicas spread out",
    )
    .default("0")
    .vars(&[Var::Value("FLUSH_MANAGER_SPLAY")]),
    flag(
        "min-interval",
        Value,
        "DURATION",
        Watch,
        "at most one config-triggered action per interval; changes in between are folded into the next",
    )
    .default("0")
    .vars(&[Var::Value("FLUSH_MANAGER_MIN_INTERVAL")]),
    flag(
        "debounce",
        Value,
        "DURATION",
        Watch,
        "quiet time after the last change before acting",
    )
    .default("500ms")
    .vars(&[Var::Value("FLUSH_MANAGER_DEBOUNCE")]),
    flag(
        "debounce-max",
        Value,
        "DURATION",
        Watch,
        "act at the latest this long after the first change of a burst, however busy the directory",
    )
    .default("5s")
    .vars(&[Var::Value("FLUSH_MANAGER_DEBOUNCE_MAX")]),
    flag(
        "poll-interval",
        Value,
        "DURATION",
        Watch,
        "polling beside inotify, at least 100ms; 0 turns it off",
    )
    .default("5s")
    .vars(&[Var::Value("FLUSH_MANAGER_POLL_INTERVAL")]),
    flag(
        "poll-only",
        Switch,
        "",
        Watch,
        "poll only, no inotify (overlayfs, NFS)",
    )
    .vars(&[Var::Value("FLUSH_MANAGER_POLL_ONLY")]),
    flag(
        "validate",
        Value,
        "'CMD ARGS'",
        Watch,
        "check a changed config first (no shell); act only if it exits 0",
    )
    .vars(&[Var::Value("FLUSH_MANAGER_VALIDATE")]),
    flag(
        "validate-timeout",
        Value,
        "DURATION",
        Watch,
        "kill a check that runs longer (a failure)",
    )
    .default("30s")
    .vars(&[Var::Value("FLUSH_MANAGER_VALIDATE_TIMEOUT")]),
    flag(
        "promote-to",
        Value,
        "DIR",
        Watch,
        "the child reads its config from DIR: settled source bytes are staged there as a hidden candidate, checked by --validate (at $FLUSH_MANAGER_CANDIDATE), and shown to the child only if good",
    )
    .vars(&[Var::Value("FLUSH_MANAGER_PROMOTE_TO")]),
    flag(
        "validate-in-place",
        Switch,
        "",
        Watch,
        "with --promote-to: check the candidate at DIR itself (includes by absolute path); the child can see it while the check runs",
    )
    .vars(&[Var::Value("FLUSH_MANAGER_VALIDATE_IN_PLACE")]),
    flag(
        "rollback-window",
        Value,
        "DURATION",
        Watch,
        "with --promote-to: if the child exits on its own or the readiness probe fails 3 times in a row within this long after new bytes reach it, go back to the proven generation (the last that ran through its window)",
    )
    .vars(&[Var::Value("FLUSH_MANAGER_ROLLBACK_WINDOW")]),
    flag(
        "ready-check",
        Value,
        "'CMD ARGS'",
        Other,
        "readiness probe: the child is ready while this exits 0 (no shell); /readyz says so",
    )
    .vars(&[Var::Value("FLUSH_MANAGER_READY_CHECK")]),
    flag(
        "ready-url",
        Value,
        "URL",
        Other,
        "readiness probe: the child is ready while a GET of this URL answers 2xx",
    )
    .vars(&[Var::Value("FLUSH_MANAGER_READY_URL")]),
    flag(
        "ready-interval",
        Value,
        "DURATION",
        Other,
        "how often the readiness probe runs",
    )
    .default("2s")
    .vars(&[Var::Value("FLUSH_MANAGER_READY_INTERVAL")]),
    flag(
        "ready-start-period",
        Value,
        "DURATION",
        Other,
        "a new child's failed probes count only once it was ready, or once it ran this long without being ready (a slow start, a JVM, is not a failure); with --validate-in-place, no candidate is shown to a child before then",
    )
    .default("60s")
    .vars(&[Var::Value("FLUSH_MANAGER_READY_START_PERIOD")]),
    flag(
        "restart",
        Value,
        "POLICY",
        Exit,
        "never (exit with its code), on-failure or always",
    )
    .default("never")
    .vars(&[Var::Value("FLUSH_MANAGER_RESTART")]),
    flag(
        "max-restarts",
        Value,
        "N",
        Exit,
        "with --restart, give up after N restarts with the child's code (default: unlimited)",
    )
    .vars(&[Var::Value("FLUSH_MANAGER_MAX_RESTARTS")]),
    flag(
        "remap-exit",
        List,
        "FROM:TO",
        Exit,
        "map an exit code, e.g. 143:0; repeatable",
    )
    .aliases(&[Alias { spelling: "e", value: "{}:0" }])
    .vars(&[Var::Value("FLUSH_MANAGER_REMAP_EXIT")]),
    flag(
        "log-level",
        Value,
        "LEVEL",
        Other,
        "error, warn, info, debug, trace, off. As tini, docker-init or dumb-init the default is warn",
    )
    .default("info")
    .vars(&[
        Var::Value("FLUSH_MANAGER_LOG_LEVEL"),
        Var::Value("FLUSH_MANAGER_LOG"),
        Var::Verbosity("TINI_VERBOSITY"),
        Var::Bool("DUMB_INIT_DEBUG", Some("debug"), None),
    ]),
    flag(
        "verbose",
        Count,
        "",
        Other,
        "more log lines, instead of --log-level: as dumb-init debug; otherwise each v one level more (tini's -v, -vv, -vvv from warn, ours from info)",
    )
    .short('v'),
    flag(
        "warn-on-reap",
        Switch,
        "",
        Other,
        "tini's -w: a WARN for each orphan (zombie) reaped",
    )
    .short('w')
    .vars(&[Var::Value("FLUSH_MANAGER_WARN_ON_REAP")]),
    flag(
        "log-format",
        Value,
        "FORMAT",
        Other,
        "text ([flush-manager] LEVEL: message) or json",
    )
    .default("text")
    .vars(&[Var::Value("FLUSH_MANAGER_LOG_FORMAT")]),
    flag(
        "metrics",
        Value,
        "ADDR",
        Other,
        "serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9111; :9111 for every address, IPv6 and IPv4)",
    )
    .vars(&[Var::Value("FLUSH_MANAGER_METRICS")]),
    flag(
        "copy-to",
        Value,
        "DIR",
        Other,
        "copy this binary to DIR/flush-manager (0755, atomic) and exit, for an init container to share it through a volume; replaces only a flush-manager binary",
    ),
    flag("version", Switch, "", Other, "print the version")
        .aliases(&[Alias { spelling: "V", value: "true" }]),
    flag("license", Switch, "", Other, "print the licence (tini's -l)").short('l'),
    flag("help", Switch, "", Other, "print this").short('h'),
];

/// The table row named `name`.
pub fn named(name: &str) -> Option<&'static Flag> {
    FLAGS.iter().find(|f| f.name == name)
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
    for f in FLAGS {
        if f.name == name || (letter.is_some() && f.short == letter) {
            return Some(Spelling::Flag(f));
        }
        if let Some(a) = f.aliases.iter().find(|a| a.spelling == name) {
            return Some(Spelling::Alias(f, a));
        }
    }
    None
}
