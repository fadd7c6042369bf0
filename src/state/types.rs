//! What the machine reads and says: its settings, the events it takes,
//! the actions it returns, and the shared vocabulary (`Status`, `Target`,
//! `Policy`, `Reason`, `Stats`).

use crate::route::Routes;
use crate::signals;
use crate::watch::fingerprint::Snapshot;
use std::path::PathBuf;
use std::time::Duration;

/// What to do when the child exits on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Exit with the child's code (the Go tool's rule).
    Never,
    OnFailure,
    Always,
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Exited(i32),
    Signaled(i32),
}

impl Status {
    /// The shell's convention, as tini and dumb-init: the code, or 128+N.
    pub fn code(self) -> i32 {
        match self {
            Status::Exited(c) => c,
            Status::Signaled(n) => 128 + n,
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Status::Exited(c) => write!(f, "exit code {c}"),
            Status::Signaled(n) => write!(f, "signal {}", signals::name(n)),
        }
    }
}

/// Who receives a signal: the child alone (what prefork servers document:
/// "signal the master"; their workers may die of HUP or USR2), or its whole
/// process group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Child,
    Group,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub stop_signal: i32,
    pub stop_timeout: Duration,
    /// How long a check (`--validate-timeout`) and a reload hook
    /// (`--reload-timeout`) may run before they count as failed.
    pub validate_timeout: Duration,
    pub reload_timeout: Duration,
    /// On SIGTERM, wait this long before the stop signal (load balancers drain).
    pub stop_delay: Duration,
    pub reload_signal: Option<i32>,
    pub restart: Policy,
    pub max_restarts: Option<u32>,
    /// A `--validate` command is configured.
    pub validate: bool,
    /// Where forwarded, stop and reload signals go.
    pub signal_to: Target,
    /// `--map-signal FROM:TO`; `None` drops FROM.
    pub map_signal: Vec<(i32, Option<i32>)>,
    /// The child holds the terminal's foreground: its death by SIGINT is a
    /// Ctrl-C, a request to stop whatever the restart policy says.
    pub interactive: bool,
    /// `--promote-to`: the child reads a directory that approved source
    /// bytes are promoted into, as the machine decides step by step.
    pub promote: bool,
    /// `--validate-in-place`: a candidate is checked at DIR itself, shown
    /// there for the check's duration.
    pub validate_in_place: bool,
    /// How many reload hooks the global action runs (a command, or each
    /// URL): hooks 0 to this; `--on-change` rules' own hooks come after.
    pub reload_hooks: usize,
    /// `--on-change`: the action each changed file asks for, where a rule
    /// matches it (else the global one).
    pub routes: Routes,
    /// `--rollback-window` (with `promote`): how long new bytes are on
    /// probation after they reach the child.
    pub rollback_window: Option<Duration>,
    /// `--ready-interval`: a readiness probe runs this often (with
    /// `--ready-check` or `--ready-url`); each may take as long, at most
    /// `READY_TIMEOUT`.
    pub ready_interval: Option<Duration>,
    /// Failures in a row that make the probe's verdict a rollback.
    pub ready_failures: u32,
    /// `--ready-start-period`: a new child's failed probes count only once
    /// it was ready, or once it ran this long without ever being ready; so
    /// do those of a child reloaded onto new bytes on probation, counted
    /// from the reload.
    pub ready_start_period: Duration,
    /// `--restart-signal`: this signal from outside restarts the child
    /// (through the gate) instead of being forwarded.
    pub restart_signal: Option<i32>,
    /// `--remap-exit FROM:TO`: the manager's exit code, rewritten.
    pub remap_exit: Vec<(i32, i32)>,
    /// The signals the child starts with blocked or ignored (bit n - 1 for
    /// signal n), as the manager itself was started: a child cannot die of
    /// those before it installs its own handlers.
    pub inherited_safe: u64,
}

impl Settings {
    /// `--reload-command` or `--reload-url`: the edge performs the reload
    /// (`RunHooks`) instead of a signal or a restart.
    pub fn reload_external(&self) -> bool {
        self.reload_hooks > 0
    }
}

/// Why a child was started (a metrics label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    First,
    Config,
    Policy,
    Signal,
}

/// What the machine decided so far, counted (for `--metrics`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Child starts by reason, in `Reason` order.
    pub starts: [u64; 4],
    pub reloads_ok: u64,
    pub reloads_failed: u64,
    pub validations_ok: u64,
    pub validations_failed: u64,
    /// Promotions into `--promote-to` that took, or failed (staging or
    /// committing: a full disk, a permission).
    pub promotions_ok: u64,
    pub promotions_failed: u64,
    /// Automatic rollbacks (`--rollback-window`).
    pub rollbacks: u64,
    /// Settled changes of the config's bytes.
    pub changes: u64,
    /// Times the child took bytes that passed the gate (started on them,
    /// or a reload of them succeeded): the first start included.
    pub took: u64,
    /// The last config change failed to reach the child: rejected by the
    /// check, a promotion or a reload that failed, or rolled back; cleared
    /// when the child takes new bytes (the alerting gauge is its negation).
    pub last_failed: bool,
}

/// Exit code when the config fails validation at startup (EX_CONFIG).
pub const EX_CONFIG: i32 = 78;

/// After SIGKILL, how long to wait for the group to vanish before giving up
/// on it (a process stuck in uninterruptible sleep must not hang us).
pub const KILL_GRACE: Duration = Duration::from_secs(2);

/// Readiness probe failures in a row that make a rollback (within
/// `--rollback-window`): one failure may be a blip; three at the probe's
/// interval are the new config's doing.
pub const READY_FAILURES: u32 = 3;
/// Signals held for the first child at most (see `Machine::hold`): more
/// than any sender means, small beside the kernel's own pending limit.
pub(super) const EARLY_MAX: usize = 4096;
/// The longest a readiness probe may take.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);
pub(super) const BACKOFF_FIRST: Duration = Duration::from_secs(1);
pub(super) const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A child that ran this long resets the backoff.
pub(super) const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(10);

/// What the decisions take: what happened on its own (signals, a settled
/// change, the restart signal), and the answers to their intents, each
/// turned back into the event its decision waits for by `protocol.rs`
/// (which drops the stale ones first).
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The child runs (the world started it).
    Spawned,
    /// The command could not be started (126 or 127).
    SpawnFailed(i32),
    /// The managed child exited (the world reaped it).
    ChildExited { status: Status, ran_for: Duration },
    /// No process is left in the exited child's process group.
    GroupGone,
    /// A caught signal from another process (never SIGCHLD: that one drives
    /// the reaper; never the restart signal: see `RestartRequested`).
    Signal(i32),
    /// The restart signal arrived; the config as it is now.
    RestartRequested(Snapshot),
    /// `Action::SendReloadSignals` found that the child has no handler for the signal
    /// (true: it ignores it).
    ReloadSignalUnhandled(i32, bool),
    /// `Action::SendReloadSignals` sent the signals to a child that handles it.
    ReloadSignalsSent,
    /// The config as it is now, asked for by `Action::Fingerprint` just
    /// before a start.
    Candidate(Snapshot),
    /// The stop deadline armed by `Action::StopDeadline` ran out.
    StopDeadline,
    /// The `--stop-delay` armed by `Action::StopDelay` ran out.
    StopDelayOver,
    /// The restart backoff ran out.
    BackoffOver,
    /// The reload started by `Action::RunHooks { token, .. }` ended:
    /// the hooks (by index) that failed (none: it succeeded).
    HooksDone { token: u64, failed: Vec<usize> },
    /// The delay armed by `Action::RetryAfter { token, .. }` ran out.
    RetryDue { token: u64 },
    /// The answer to `Action::Stage { token }`: the candidate, or why not.
    Staged {
        token: u64,
        result: Result<Generation, String>,
    },
    /// The answer to `Action::Commit { token, .. }`.
    Committed {
        token: u64,
        result: Result<(), CommitFailed>,
    },
    /// A readiness probe of the current start period ended (one of an
    /// earlier period, before a restart or a reload, was cancelled when it
    /// began); `ran_for`: the child's age then.
    Probed { ok: bool, ran_for: Duration },
    /// The deadline armed by `Action::ProbationDeadline` ran out.
    ProbationOver,
    /// The start-up period armed by `Action::StartUpDeadline` for the
    /// current period ran out.
    StartedUp,
    /// The answer to `Action::RollBack`.
    RolledBack { result: Result<(), CommitFailed> },
    /// The answer to `Action::DropCandidate`: Err while the child's view
    /// still shows the candidate.
    Dropped {
        generation: String,
        result: Result<(), String>,
    },
    /// The watched config, fingerprinted after the debounce.
    ConfigSettled(Snapshot),
    /// A burst of changes to the watched config began (it settles later).
    Changed,
    /// The validation started by `Action::Validate { token, .. }` ended.
    Validated { token: u64, ok: bool },
    /// That validation could not start for a fault of ours (the candidate
    /// could not be shown in place): no verdict on the bytes.
    CannotCheck { token: u64, reason: String },
}

/// Why a commit (or a rollback, a commit of the proven generation) did not
/// go through, and what the durable record of the last good generation
/// names after it: the machine takes the disk's word, since a restarted
/// manager trusts that record alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitFailed {
    pub reason: String,
    /// The record names the generation asked for (the candidate, or the one
    /// rolled back to): only the child's view is behind (its switch
    /// failed). That generation is the last good one; the same operation
    /// is retried for the view.
    pub recorded: bool,
    /// The generation asked for is not there (removed by hand): asking
    /// again cannot help.
    pub gone: bool,
}

/// `--promote-to`: what the child's directory holds, as the machine knows
/// it (the world keeps no copy): the generation its durable record
/// (`..good`) names, and the one its view (`..data`) shows outside a check
/// in place, another only while the view lags the record. A candidate
/// dropped after being shown in place gives way to `view`; neither is ever
/// removed as a candidate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Promoted {
    pub record: Option<String>,
    pub view: Option<String>,
}

/// A generation of the child's directory (`--promote-to`): its name and
/// the fingerprint of its files (keyed by the source paths they were
/// copied from). Staged, it is a hidden candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    pub name: String,
    pub snapshot: Snapshot,
}

/// A reload hook to run, and the changed files it is told of
/// (`FLUSH_MANAGER_CHANGED`): those that chose it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookCall {
    pub hook: usize,
    pub changed: Vec<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start the child (`Op::Spawn`): answered `Spawned` (its life is then
    /// `Op::Run`), or `SpawnFailed` for a command that cannot start.
    Spawn,
    /// Look at the config and answer `Candidate`: every start goes through
    /// the gate first (with `--validate` or `--promote-to`, it may check).
    Fingerprint,
    /// Copy the sources as they are now into a new hidden generation of the
    /// child's directory; answer `Staged` with its exact bytes.
    Stage {
        token: u64,
    },
    /// Make this generation the last good one (its durable record first),
    /// then what the child sees; answer `Committed`. With `proven`, the new
    /// one goes on probation: that proven generation is recorded (durably,
    /// before the last good one moves) as the one a rollback, or a restarted
    /// manager, goes back to; without, the new one is proven at once.
    Commit {
        token: u64,
        generation: String,
        proven: Option<String>,
    },
    /// The generation shown ran through its probation: record it as the
    /// proven one (durably; the one before it may then be forgotten).
    Prove {
        generation: String,
    },
    /// Remove this candidate; if the child's directory shows it (a check in
    /// place), show the last good generation again first; answer
    /// `Dropped`.
    DropCandidate {
        generation: String,
    },
    /// Remove a generation no longer needed: neither shown nor proven.
    RemoveGeneration {
        generation: String,
    },
    /// `--promote-to`: `..rejected` names this generation no more, and it
    /// goes.
    Unreject {
        generation: String,
    },
    /// Make `to` (kept for the rollback window) the last good generation
    /// again and what the child sees; keep `from` as the rejected one;
    /// answer `RolledBack`.
    RollBack {
        to: String,
        from: String,
    },
    /// Arm (from now) or clear the end of the rollback window.
    ProbationDeadline(Option<Duration>),
    /// Arm (from now) the end of start period number `child` (a child's
    /// start, or a reload onto new bytes on probation), replacing any armed
    /// before; answer `StartedUp`.
    StartUpDeadline {
        child: u64,
        after: Duration,
    },
    /// Send this signal to the child, or to its process group.
    Signal(i32, Target),
    /// Send these reload signals to the child (or its group) if the child
    /// catches every one (answer `ReloadSignalsSent`); if it lacks a handler for
    /// one, send none and answer `ReloadSignalUnhandled` with it.
    SendReloadSignals(Vec<i32>, Target),
    /// SIGCONT to the child (or the members of its group) if stopped: a
    /// stopped process cannot act on the stop signal, and one that runs must
    /// see only the signals it was sent.
    ContinueStopped(Target),
    /// SIGKILL the child's process group.
    KillGroup,
    /// Arm (from now) or clear the stop deadline.
    StopDeadline(Option<Duration>),
    /// SIGTERM with `--stop-delay`: arm (from now) the end of the delay
    /// before the stop signal; answer `StopDelayOver`. Never cleared: once
    /// the machine stops waiting for it, its answer changes nothing.
    StopDelay(Duration),
    /// Wait this long, then answer `BackoffOver`.
    Backoff(Duration),
    /// Run the validator on these changed files (with `--promote-to`, on
    /// this candidate generation); answer `Validated`.
    Validate {
        token: u64,
        changed: Vec<PathBuf>,
        candidate: Option<String>,
        /// Show the candidate at DIR for the check (the check reads it
        /// there); else the check reads it where it was staged.
        in_place: bool,
    },
    /// Kill the running validator; its result no longer matters.
    CancelValidation,
    /// The wait `RetryAfter { token }` no longer stands (what it was for
    /// went): it goes, rather than firing for nothing.
    CancelWait {
        token: u64,
    },
    /// Run these reload hooks (commands, URLs to POST) at once, each told
    /// of its changed files; answer `HooksDone`.
    RunHooks {
        token: u64,
        /// All the burst asked for, or those that failed.
        calls: Vec<HookCall>,
    },
    /// After this delay, answer `RetryDue { token }`.
    RetryAfter {
        token: u64,
        after: Duration,
    },
    /// Stop the running reload hooks, or the wait for their retry.
    CancelHooks,
    /// A settled change was taken: `--min-interval` counts from now.
    Acted,
    Exit(i32),
}
