//! The supervisor's decisions, as a pure state machine: `Machine::handle`
//! takes one event and returns the actions to perform. No processes, files
//! or clocks here: the edge (supervisor.rs) turns the world into events and
//! performs the actions, so every decision can be unit-tested on its own.

use crate::signals;
use crate::watch::fingerprint::{self, Snapshot};
use log::{debug, error, info, warn};
use nix::libc;
use std::path::PathBuf;
use std::time::Duration;

mod gate;
mod reload;

use gate::Pending;
use reload::Reload;

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
    /// `--reload-command` or `--reload-url`: the edge performs the reload
    /// (`RunReload`) instead of a signal or a restart.
    pub reload_external: bool,
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
    /// Settled changes of the config's bytes.
    pub changes: u64,
}

/// Exit code when the config fails validation at startup (EX_CONFIG).
pub const EX_CONFIG: i32 = 78;

/// After SIGKILL, how long to wait for the group to vanish before giving up
/// on it (a process stuck in uninterruptible sleep must not hang us).
pub const KILL_GRACE: Duration = Duration::from_secs(2);
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A child that ran this long resets the backoff.
const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The edge started the child.
    Spawned,
    /// The command could not be started (126 or 127).
    SpawnFailed(i32),
    /// The managed child exited (the edge reaped it).
    ChildExited { status: Status, ran_for: Duration },
    /// No process is left in the exited child's process group.
    GroupGone,
    /// A caught signal from another process (never SIGCHLD: that one drives
    /// the reaper; never the restart signal: see `RestartRequested`).
    Signal(i32),
    /// The restart signal arrived; the config as it is now.
    RestartRequested(Snapshot),
    /// `Action::Reload` found that the child has no handler for the signal.
    ReloadUnhandled(i32),
    /// `Action::Reload` sent the signal to a child that handles it.
    ReloadSent,
    /// The config as it is now, asked for by `Action::Fingerprint` just
    /// before a start.
    Candidate(Snapshot),
    /// The stop deadline armed by `Action::StopDeadline` ran out.
    StopDeadline,
    /// The restart backoff ran out.
    BackoffOver,
    /// The reload started by `Action::RunReload { token, .. }` ended.
    Reloaded { token: u64, ok: bool },
    /// The delay armed by `Action::RetryAfter { token, .. }` ran out.
    RetryDue { token: u64 },
    /// The answer to `Action::Stage { token }`: the candidate, or why not.
    Staged {
        token: u64,
        result: Result<Candidate, String>,
    },
    /// The answer to `Action::Commit { token, .. }`.
    Committed {
        token: u64,
        result: Result<(), String>,
    },
    /// The watched config, fingerprinted after the debounce.
    ConfigSettled(Snapshot),
    /// The validation started by `Action::Validate { token, .. }` ended.
    Validated { token: u64, ok: bool },
}

/// A staged candidate: a hidden generation in the child's directory and
/// the fingerprint of its copies (keyed by their source paths).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub generation: String,
    pub snapshot: Snapshot,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start the child; answer `Spawned`/`SpawnFailed`.
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
    /// then what the child sees; answer `Committed`.
    Commit {
        token: u64,
        generation: String,
    },
    /// Remove this candidate; if the child's directory shows it (a check in
    /// place), show the last good generation again first.
    Discard {
        generation: String,
    },
    /// Send this signal to the child, or to its process group.
    Signal(i32, Target),
    /// Send the reload signal to the child (or its group) if the child
    /// catches it (answer `ReloadSent`); answer `ReloadUnhandled` if not.
    Reload(i32, Target),
    /// SIGCONT to the child (or the members of its group) if stopped: a
    /// stopped process cannot act on the stop signal, and one that runs must
    /// see only the signals it was sent.
    ContinueStopped(Target),
    /// SIGKILL the child's process group.
    KillGroup,
    /// Arm (from now) or clear the stop deadline.
    StopDeadline(Option<Duration>),
    /// Wait this long, then answer `BackoffOver`.
    Backoff(Duration),
    /// Run the validator on these changed files (with `--promote-to`, on
    /// this candidate generation); answer `Validated`.
    Validate {
        token: u64,
        changed: Vec<PathBuf>,
        candidate: Option<String>,
    },
    /// Kill the running validator; its result no longer matters.
    CancelValidation,
    /// Run `--reload-command` or POST `--reload-url` for these changed
    /// files; answer `Reloaded`.
    RunReload {
        token: u64,
        changed: Vec<PathBuf>,
    },
    /// After this delay, answer `RetryDue { token }`.
    RetryAfter {
        token: u64,
        after: Duration,
    },
    /// Stop the running reload (a retry still armed is ignored when due).
    CancelReload,
    /// A settled change was taken: `--min-interval` counts from now.
    Acted,
    Exit(i32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Then {
    Exit,
    Restart,
    /// The child exited on its own: the restart policy decides.
    Policy,
}

#[derive(Debug, Clone, PartialEq)]
enum Phase {
    /// Validating the config before a start (the first, or any later one
    /// whose bytes were never approved). No child runs.
    Checking,
    /// The config on disk was rejected and no child runs: waiting for a fix.
    Held,
    Starting,
    Running,
    /// SIGTERM arrived; waiting out `--stop-delay` before the stop signal.
    Delaying,
    Stopping {
        then: Then,
        exited: Option<(Status, Duration)>,
        killed: bool,
        group_gone: bool,
    },
    Backoff {
        status: Status,
    },
    Done,
}

#[derive(Debug)]
pub struct Machine {
    settings: Settings,
    phase: Phase,
    /// The config the running child started with (or was last signalled for).
    base: Snapshot,
    /// Ungated: the bytes the gate saw just before the start, the next
    /// child's base.
    next_base: Snapshot,
    restarts: u32,
    next_backoff: Duration,
    /// The config in flight through the gate (staging, check, commit).
    pending: Option<Pending>,
    last_token: u64,
    /// Bytes a validator rejected: not validated again until they change,
    /// and never started.
    rejected: Option<Snapshot>,
    /// Bytes a validator passed (with `--promote-to`: the last good
    /// generation's): the only ones a child may start on.
    approved: Option<Snapshot>,
    /// A child has run: a rejected config then holds instead of exiting 78.
    started: bool,
    /// The last signal we sent the current child, to tell "exited on its
    /// own" from "died of the signal we sent".
    sent: Option<i32>,
    /// The external reload in flight or waiting to be retried.
    reload: Option<Reload>,
    /// Why the next child starts.
    reason: Reason,
    stats: Stats,
}

fn is_shutdown(sig: i32) -> bool {
    sig == libc::SIGTERM || sig == libc::SIGINT
}

impl Machine {
    /// A new machine and its first actions, given the config as it is now
    /// and, with `--promote-to`, the bytes of the last good generation the
    /// child's directory holds (if any).
    pub fn new(settings: Settings, last_good: Option<Snapshot>) -> (Machine, Vec<Action>) {
        let mut m = Machine {
            settings,
            phase: Phase::Starting,
            base: Snapshot::new(),
            next_base: Snapshot::new(),
            restarts: 0,
            next_backoff: BACKOFF_FIRST,
            pending: None,
            last_token: 0,
            rejected: None,
            approved: None,
            started: false,
            sent: None,
            reload: None,
            reason: Reason::First,
            stats: Stats::default(),
        };
        if m.settings.promote {
            m.approved = last_good;
        }
        // A pod with a broken config should fail visibly at once: the
        // first start goes through the gate like every other.
        let first = m.spawn();
        (m, first)
    }

    pub fn handle(&mut self, event: Event) -> Vec<Action> {
        match event {
            Event::Spawned => {
                self.started = true;
                self.stats.starts[self.reason as usize] += 1;
                self.phase = Phase::Running;
                self.sent = None;
                // Gated, the child runs on what was approved (the gate's
                // look just before saw exactly those); else on what it saw.
                self.base = match self.approved.clone().filter(|_| self.gated()) {
                    Some(approved) => approved,
                    None => std::mem::take(&mut self.next_base),
                };
                vec![]
            }
            Event::RestartRequested(now) => self.on_restart_request(now),
            Event::Candidate(now) => self.on_candidate(now),
            Event::ReloadUnhandled(sig) => match self.phase {
                Phase::Running => {
                    warn!(
                        "The child does not handle {} (yet): restarting it instead of signalling, which would kill it",
                        signals::name(sig)
                    );
                    self.reason = Reason::Config;
                    self.restart()
                }
                _ => vec![],
            },
            Event::ReloadSent => {
                self.stats.reloads_ok += 1;
                vec![]
            }
            Event::SpawnFailed(code) => self.done(code),
            Event::Signal(sig) => self.on_signal(sig),
            Event::ChildExited { status, ran_for } => self.on_exit(status, ran_for),
            Event::GroupGone => match &mut self.phase {
                Phase::Stopping { group_gone, .. } => {
                    *group_gone = true;
                    self.finish_stop()
                }
                _ => vec![],
            },
            Event::StopDeadline => self.on_deadline(),
            Event::BackoffOver => match self.phase {
                Phase::Backoff { .. } => self.spawn(),
                _ => vec![],
            },
            Event::ConfigSettled(now) => self.on_config(now),
            Event::Reloaded { token, ok } => self.on_reloaded(token, ok),
            Event::RetryDue { token } => self.on_retry_due(token),
            Event::Validated { token, ok } => self.on_validated(token, ok),
            Event::Staged { token, result } => self.on_staged(token, result),
            Event::Committed { token, result } => self.on_committed(token, result),
        }
    }

    fn restart(&mut self) -> Vec<Action> {
        let stop = self.settings.stop_signal;
        self.stop(Then::Restart, stop)
    }

    /// Where a forwarded signal goes after `--map-signal` (None: dropped).
    fn mapped(&self, sig: i32) -> Option<i32> {
        match self
            .settings
            .map_signal
            .iter()
            .find(|(from, _)| *from == sig)
        {
            Some((_, to)) => *to,
            None => Some(sig),
        }
    }

    /// Forwards `sig` to the child (or its group), as `--map-signal` says.
    fn forward(&mut self, sig: i32) -> Vec<Action> {
        match self.mapped(sig) {
            Some(to) => {
                self.sent = Some(to);
                vec![Action::Signal(to, self.settings.signal_to)]
            }
            None => {
                debug!("Dropped {} (--map-signal)", signals::name(sig));
                vec![]
            }
        }
    }

    /// What the machine decided so far, counted.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The config the running child has (a fingerprint for metrics).
    pub fn base(&self) -> &Snapshot {
        &self.base
    }

    fn done(&mut self, code: i32) -> Vec<Action> {
        self.phase = Phase::Done;
        let mut actions = self.cancel_reload();
        actions.extend(self.cancel_pending());
        actions.push(Action::Exit(code));
        actions
    }

    /// Every (re)start: a look at the config first (`on_candidate`).
    fn spawn(&mut self) -> Vec<Action> {
        self.phase = Phase::Starting;
        vec![Action::Fingerprint]
    }

    /// Start stopping the running child: `sig`, then SIGCONT to whoever is
    /// stopped (it could not act on `sig` otherwise), then the clock. The leftovers of a
    /// child that already exited are always addressed as a group.
    fn stop(&mut self, then: Then, sig: i32) -> Vec<Action> {
        let to = if then == Then::Policy {
            Target::Group
        } else {
            info!("Stopping child process with {}", signals::name(sig));
            self.sent = Some(sig);
            self.settings.signal_to
        };
        self.phase = Phase::Stopping {
            then,
            exited: None,
            killed: false,
            group_gone: false,
        };
        // A change being validated, or a reload of the old child, is moot:
        // the next child reads the config afresh.
        let mut actions = self.cancel_pending();
        actions.extend(self.cancel_reload());
        actions.push(Action::Signal(sig, to));
        if sig != libc::SIGCONT {
            actions.push(Action::ContinueStopped(to));
        }
        actions.push(Action::StopDeadline(Some(self.settings.stop_timeout)));
        actions
    }

    fn on_signal(&mut self, sig: i32) -> Vec<Action> {
        // SIGTERM stops with the configured stop signal; SIGINT stays SIGINT.
        let stop_with = if sig == libc::SIGTERM {
            self.settings.stop_signal
        } else {
            sig
        };
        match &mut self.phase {
            Phase::Starting | Phase::Running
                if sig == libc::SIGTERM && !self.settings.stop_delay.is_zero() =>
            {
                info!(
                    "Received SIGTERM, stopping child process in {:?} (--stop-delay)",
                    self.settings.stop_delay
                );
                self.phase = Phase::Delaying;
                vec![Action::StopDeadline(Some(self.settings.stop_delay))]
            }
            Phase::Starting | Phase::Running | Phase::Delaying if is_shutdown(sig) => {
                info!("Received {}, stopping child process", signals::name(sig));
                self.stop(Then::Exit, stop_with)
            }
            Phase::Starting | Phase::Running | Phase::Delaying => self.forward(sig),
            Phase::Stopping { then, .. } => {
                // Still transparent while stopping; a shutdown request wins
                // over a pending restart, and the deadline keeps running.
                if is_shutdown(sig) && *then != Then::Exit {
                    info!(
                        "Received {} while stopping: will exit instead of restarting",
                        signals::name(sig)
                    );
                    *then = Then::Exit;
                }
                if is_shutdown(sig) {
                    self.sent = Some(stop_with);
                    vec![Action::Signal(stop_with, self.settings.signal_to)]
                } else {
                    self.forward(sig)
                }
            }
            Phase::Checking | Phase::Held if is_shutdown(sig) => {
                info!(
                    "Received {} with no child running (config check or rejected config), exiting",
                    signals::name(sig)
                );
                self.done(128 + sig)
            }
            Phase::Checking | Phase::Held => vec![],
            Phase::Backoff { status } if is_shutdown(sig) => {
                info!(
                    "Received {} during restart backoff, exiting",
                    signals::name(sig)
                );
                let code = status.code();
                self.done(code)
            }
            Phase::Backoff { .. } => {
                debug!(
                    "No child to forward {} to (restart backoff)",
                    signals::name(sig)
                );
                vec![]
            }
            Phase::Done => vec![],
        }
    }

    /// How the child's death reads in the log.
    fn describe_exit(&self, status: Status) -> String {
        match (status, self.sent) {
            (Status::Signaled(n), Some(s)) if n == s => {
                format!("died of the {} we sent", signals::name(n))
            }
            (_, Some(s)) => format!("exited with {status} (after we sent {})", signals::name(s)),
            (_, None) => format!("exited on its own with {status}"),
        }
    }

    fn on_exit(&mut self, status: Status, ran_for: Duration) -> Vec<Action> {
        let how = self.describe_exit(status);
        // Ctrl-C on the terminal the child held: the user wants it all to stop.
        let ctrl_c = self.settings.interactive && status == Status::Signaled(libc::SIGINT);
        match &mut self.phase {
            Phase::Stopping { exited, then, .. } => {
                info!(code = status.code(); "Child process {how}");
                *exited = Some((status, ran_for));
                if ctrl_c && *then != Then::Exit {
                    info!("Interrupted from the terminal (Ctrl-C): exiting, not restarting");
                    *then = Then::Exit;
                }
                vec![]
            }
            Phase::Starting | Phase::Running | Phase::Delaying => {
                info!(code = status.code(); "Child process {how}");
                let then = if ctrl_c {
                    info!(
                        "Interrupted from the terminal (Ctrl-C): exiting, whatever --restart says"
                    );
                    Then::Exit
                } else if self.phase == Phase::Delaying {
                    // SIGTERM already asked us to exit.
                    Then::Exit
                } else {
                    Then::Policy
                };
                // Leftovers in its group get the stop signal too (ESRCH, and
                // so nothing, in the common case of an empty group).
                let actions = self.stop(Then::Policy, self.settings.stop_signal);
                if let Phase::Stopping {
                    exited, then: t, ..
                } = &mut self.phase
                {
                    *exited = Some((status, ran_for));
                    *t = then;
                }
                actions
            }
            Phase::Checking | Phase::Held | Phase::Backoff { .. } | Phase::Done => vec![],
        }
    }

    fn on_deadline(&mut self) -> Vec<Action> {
        if self.phase == Phase::Delaying {
            let stop = self.settings.stop_signal;
            return self.stop(Then::Exit, stop);
        }
        let Phase::Stopping {
            then,
            exited,
            killed,
            ..
        } = &mut self.phase
        else {
            return vec![];
        };
        if !*killed {
            warn!(
                "Stop timeout ({:?}) expired, sending SIGKILL to the process group",
                self.settings.stop_timeout
            );
            *killed = true;
            return vec![Action::KillGroup, Action::StopDeadline(Some(KILL_GRACE))];
        }
        match (exited.is_some(), *then) {
            (true, _) => {
                warn!(
                    "Processes of the child's group survived SIGKILL for {KILL_GRACE:?}; leaving them"
                );
                self.finish(true)
            }
            (false, Then::Exit) => {
                warn!("Child survived SIGKILL for {KILL_GRACE:?}; exiting anyway");
                self.done(128 + libc::SIGKILL)
            }
            (false, _) => {
                warn!(
                    "Child survived SIGKILL for {KILL_GRACE:?}; still waiting before starting another"
                );
                vec![]
            }
        }
    }

    /// Called when the group may be gone: finishes once the child exited too.
    fn finish_stop(&mut self) -> Vec<Action> {
        match self.phase {
            Phase::Stopping {
                exited: Some(_),
                group_gone: true,
                ..
            } => self.finish(false),
            _ => vec![],
        }
    }

    fn finish(&mut self, timed_out: bool) -> Vec<Action> {
        let Phase::Stopping {
            then,
            exited: Some((status, ran_for)),
            ..
        } = self.phase
        else {
            return vec![];
        };
        let mut actions = if timed_out {
            vec![]
        } else {
            vec![Action::StopDeadline(None)]
        };
        actions.extend(match then {
            Then::Exit => self.done(status.code()),
            Then::Restart => self.spawn(),
            Then::Policy => self.by_policy(status, ran_for),
        });
        actions
    }

    fn by_policy(&mut self, status: Status, ran_for: Duration) -> Vec<Action> {
        let success = status == Status::Exited(0);
        match self.settings.restart {
            Policy::Never => return self.done(status.code()),
            Policy::OnFailure if success => return self.done(0),
            _ => {}
        }
        if let Some(max) = self.settings.max_restarts
            && self.restarts >= max
        {
            warn!("Child exited with {status}; giving up after {max} restarts");
            return self.done(status.code());
        }
        self.reason = Reason::Policy;
        if ran_for >= BACKOFF_RESET_AFTER {
            self.next_backoff = BACKOFF_FIRST;
        }
        let delay = self.next_backoff;
        self.next_backoff = (delay * 2).min(BACKOFF_MAX);
        self.restarts += 1;
        info!(
            "Restarting child process in {delay:?} (restart {})",
            self.restarts
        );
        self.phase = Phase::Backoff { status };
        vec![Action::Backoff(delay)]
    }

    /// Acts on a (validated) change: reload or restart the running child,
    /// or cut a restart backoff short.
    fn apply(&mut self, now: Snapshot) -> Vec<Action> {
        if matches!(self.phase, Phase::Backoff { .. }) {
            info!("Config file change detected during restart backoff, starting child process now");
            self.reason = Reason::Config;
            return self.spawn();
        }
        self.act(now)
    }

    fn act(&mut self, now: Snapshot) -> Vec<Action> {
        self.reason = Reason::Config;
        if self.settings.reload_external {
            info!("Config file change detected, reloading the child");
            let changed: Vec<PathBuf> = fingerprint::changes(&self.base, &now)
                .into_iter()
                .map(|c| c.path)
                .collect();
            self.base = now;
            return self.run_reload(changed);
        }
        match self.settings.reload_signal {
            Some(sig) => {
                info!(
                    "Config file change detected, sending {} to child process",
                    signals::name(sig)
                );
                self.base = now;
                self.sent = Some(sig);
                vec![Action::Reload(sig, self.settings.signal_to)]
            }
            None => {
                info!("Config file change detected, restarting child process...");
                let sig = self.settings.stop_signal;
                self.stop(Then::Restart, sig)
            }
        }
    }
}

#[cfg(test)]
mod props;

/// Fixtures shared by the machine's tests and the loop's.
#[cfg(test)]
pub mod testkit {
    use super::*;
    use crate::watch::fingerprint::FileState;

    /// The defaults of the command line, as the machine sees them.
    pub fn settings() -> Settings {
        Settings {
            stop_signal: libc::SIGTERM,
            stop_timeout: Duration::from_secs(10),
            stop_delay: Duration::ZERO,
            reload_signal: None,
            restart: Policy::Never,
            max_restarts: None,
            validate: false,
            signal_to: Target::Child,
            map_signal: vec![],
            interactive: false,
            promote: false,
            reload_external: false,
        }
    }

    /// One config file with content `hash` (None: missing).
    pub fn snap(hash: Option<u64>) -> Snapshot {
        let state = match hash {
            Some(h) => FileState::Content { len: 3, hash: h },
            None => FileState::Missing,
        };
        [(PathBuf::from("/c/app.conf"), state)]
            .into_iter()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    const TERM: i32 = libc::SIGTERM;
    const CHILD: Target = Target::Child;
    const GROUP: Target = Target::Group;
    const SECS10: Duration = Duration::from_secs(10);

    use super::testkit::{settings, snap};

    /// A new machine given the config as it is now: its first look, and
    /// the actions that follow it.
    fn start(s: Settings, now: Snapshot) -> (Machine, Vec<Action>) {
        let (mut m, first) = Machine::new(s, None);
        assert_eq!(first, [Action::Fingerprint]);
        let then = m.handle(Event::Candidate(now));
        (m, then)
    }

    /// The gate's look before a (re)start finds `now`: the child starts.
    fn look_and_start(m: &mut Machine, now: Snapshot) {
        assert_eq!(m.handle(Event::Candidate(now)), [Action::Spawn]);
        assert_eq!(m.handle(Event::Spawned), []);
    }

    /// A machine whose child runs with config `hash`.
    fn running(s: Settings, hash: Option<u64>) -> Machine {
        let (mut m, first) = start(s, snap(hash));
        assert_eq!(first, [Action::Spawn]);
        assert_eq!(m.handle(Event::Spawned), []);
        m
    }

    fn exited(code: i32) -> Event {
        Event::ChildExited {
            status: Status::Exited(code),
            ran_for: Duration::from_secs(1),
        }
    }

    #[test]
    fn child_exit_code_becomes_ours() {
        let mut m = running(settings(), Some(1));
        assert_eq!(
            m.handle(exited(3)),
            [
                // Leftovers of an exited child: always the whole group.
                Action::Signal(TERM, GROUP),
                Action::ContinueStopped(GROUP),
                Action::StopDeadline(Some(SECS10))
            ]
        );
        assert_eq!(
            m.handle(Event::GroupGone),
            [Action::StopDeadline(None), Action::Exit(3)]
        );
        assert_eq!(m.phase, Phase::Done);
    }

    #[test]
    fn signal_death_is_128_plus_n() {
        let mut m = running(settings(), Some(1));
        m.handle(Event::ChildExited {
            status: Status::Signaled(9),
            ran_for: SECS10,
        });
        assert_eq!(
            m.handle(Event::GroupGone),
            [Action::StopDeadline(None), Action::Exit(137)]
        );
    }

    #[test]
    fn leftovers_in_the_group_are_killed_after_the_timeout() {
        let mut m = running(settings(), Some(1));
        m.handle(exited(0));
        assert_eq!(
            m.handle(Event::StopDeadline),
            [Action::KillGroup, Action::StopDeadline(Some(KILL_GRACE))]
        );
        assert_eq!(
            m.handle(Event::GroupGone),
            [Action::StopDeadline(None), Action::Exit(0)]
        );
    }

    #[test]
    fn sigterm_forwards_the_stop_signal_then_kills() {
        let mut s = settings();
        s.stop_signal = libc::SIGQUIT;
        let mut m = running(s, Some(1));
        assert_eq!(
            m.handle(Event::Signal(TERM)),
            [
                Action::Signal(libc::SIGQUIT, CHILD),
                Action::ContinueStopped(CHILD),
                Action::StopDeadline(Some(SECS10))
            ]
        );
        // Transparent while waiting: other signals still reach the child.
        assert_eq!(
            m.handle(Event::Signal(libc::SIGUSR1)),
            [Action::Signal(libc::SIGUSR1, CHILD)]
        );
        assert_eq!(
            m.handle(Event::StopDeadline),
            [Action::KillGroup, Action::StopDeadline(Some(KILL_GRACE))]
        );
        m.handle(Event::ChildExited {
            status: Status::Signaled(9),
            ran_for: SECS10,
        });
        assert_eq!(
            m.handle(Event::GroupGone),
            [Action::StopDeadline(None), Action::Exit(137)]
        );
    }

    #[test]
    fn sigint_is_forwarded_as_sigint_and_a_child_may_survive_it() {
        let mut m = running(settings(), Some(1));
        assert_eq!(
            m.handle(Event::Signal(libc::SIGINT)),
            [
                Action::Signal(libc::SIGINT, CHILD),
                Action::ContinueStopped(CHILD),
                Action::StopDeadline(Some(SECS10))
            ]
        );
        // The child handles SIGINT and carries on; only the timer decides.
        assert_eq!(
            m.handle(Event::Signal(libc::SIGHUP)),
            [Action::Signal(libc::SIGHUP, CHILD)]
        );
        assert_eq!(m.handle(Event::StopDeadline)[0], Action::KillGroup);
    }

    fn external() -> Settings {
        Settings {
            reload_external: true,
            ..settings()
        }
    }

    /// The reload of /c/app.conf with this token.
    fn run_reload(token: u64) -> Action {
        Action::RunReload {
            token,
            changed: vec![PathBuf::from("/c/app.conf")],
        }
    }

    #[test]
    fn a_failed_external_reload_is_retried_with_doubling_delays_until_superseded() {
        let mut m = running(external(), Some(1));
        assert_eq!(
            m.handle(Event::ConfigSettled(snap(Some(2)))),
            [Action::Acted, run_reload(1)]
        );
        let fail = |token| Event::Reloaded { token, ok: false };
        let retry = |after| Action::RetryAfter {
            token: 1,
            after: Duration::from_secs(after),
        };
        assert_eq!(m.handle(fail(1)), [retry(1)]);
        assert_eq!(m.handle(Event::RetryDue { token: 1 }), [run_reload(1)]);
        assert_eq!(m.handle(fail(1)), [retry(2)]);
        // A newer change supersedes the waiting retry; the old one's timer
        // and result no longer count.
        assert_eq!(
            m.handle(Event::ConfigSettled(snap(Some(3)))),
            [Action::Acted, Action::CancelReload, run_reload(2)]
        );
        assert_eq!(m.handle(Event::RetryDue { token: 1 }), []);
        assert_eq!(m.handle(fail(1)), []);
        assert_eq!(m.handle(Event::Reloaded { token: 2, ok: true }), []);
        assert_eq!(m.stats().reloads_ok, 1);
        assert_eq!(m.stats().reloads_failed, 2);
    }

    /// Found by the property tests: a child can die before a change is
    /// acted on and before its exit is reported; the reload started for it
    /// is cancelled when the exit is.
    #[test]
    fn a_reload_for_a_child_that_died_unreported_is_cancelled_by_its_exit() {
        let mut m = running(external(), Some(1));
        assert_eq!(
            m.handle(Event::ConfigSettled(snap(Some(2)))),
            [Action::Acted, run_reload(1)]
        );
        let actions = m.handle(exited(0));
        assert_eq!(actions[0], Action::CancelReload);
        assert_eq!(m.handle(Event::Reloaded { token: 1, ok: true }), []);
    }

    /// Found by the property tests: bytes A rejected, then B (being
    /// checked), then A again. B's pass must not reload the child, which
    /// would read A.
    #[test]
    fn a_check_overtaken_by_rejected_bytes_is_cancelled() {
        let s = Settings {
            validate: true,
            reload_signal: Some(libc::SIGHUP),
            ..settings()
        };
        let (mut m, first) = start(s, snap(Some(0)));
        assert!(matches!(first[..], [Action::Validate { token: 1, .. }]));
        assert_eq!(
            m.handle(Event::Validated { token: 1, ok: true }),
            [Action::Fingerprint]
        );
        let approved = m.approved.clone().unwrap();
        look_and_start(&mut m, approved);
        m.handle(Event::ConfigSettled(snap(Some(3))));
        assert_eq!(
            m.handle(Event::Validated {
                token: 2,
                ok: false
            }),
            []
        );
        let check_b = m.handle(Event::ConfigSettled(snap(Some(1))));
        assert!(matches!(
            check_b[..],
            [Action::Acted, Action::Validate { token: 3, .. }]
        ));
        assert_eq!(
            m.handle(Event::ConfigSettled(snap(Some(3)))),
            [Action::CancelValidation]
        );
        assert_eq!(m.handle(Event::Validated { token: 3, ok: true }), []);
    }

    #[test]
    fn every_other_signal_is_forwarded_and_never_stops_us() {
        let mut m = running(settings(), Some(1));
        for sig in [
            libc::SIGHUP,
            libc::SIGUSR1,
            libc::SIGQUIT,
            libc::SIGWINCH,
            36, // SIGRTMIN+2 on Linux: the machine does not care which
            libc::SIGSEGV,
        ] {
            assert_eq!(m.handle(Event::Signal(sig)), [Action::Signal(sig, CHILD)]);
        }
        assert_eq!(m.phase, Phase::Running);
    }

    #[test]
    fn a_child_stuck_after_sigkill_does_not_hang_shutdown() {
        let mut m = running(settings(), Some(1));
        m.handle(Event::Signal(TERM));
        m.handle(Event::StopDeadline);
        assert_eq!(m.handle(Event::StopDeadline), [Action::Exit(137)]);
    }

    #[test]
    fn spawn_failure_exits_with_its_code() {
        let (mut m, _) = start(settings(), snap(Some(1)));
        assert_eq!(m.handle(Event::SpawnFailed(127)), [Action::Exit(127)]);
    }

    #[test]
    fn config_change_restarts_once() {
        let mut m = running(settings(), Some(1));
        assert_eq!(
            m.handle(Event::ConfigSettled(snap(Some(1)))),
            [],
            "same bytes: nothing"
        );
        assert_eq!(
            m.handle(Event::ConfigSettled(snap(Some(2)))),
            [
                Action::Acted,
                Action::Signal(TERM, CHILD),
                Action::ContinueStopped(CHILD),
                Action::StopDeadline(Some(SECS10))
            ]
        );
        // A further change while stopping is left to the next spawn's snapshot.
        assert_eq!(m.handle(Event::ConfigSettled(snap(Some(3)))), []);
        m.handle(Event::ChildExited {
            status: Status::Signaled(TERM),
            ran_for: SECS10,
        });
        assert_eq!(
            m.handle(Event::GroupGone),
            [Action::StopDeadline(None), Action::Fingerprint]
        );
        // The start's look finds 3: the child runs on it.
        look_and_start(&mut m, snap(Some(3)));
        assert_eq!(m.handle(Event::ConfigSettled(snap(Some(3)))), []);
    }

    #[test]
    fn a_change_that_lands_after_the_spawn_snapshot_restarts_again() {
        let mut m = running(settings(), Some(1));
        m.handle(Event::ConfigSettled(snap(Some(2))));
        m.handle(Event::ChildExited {
            status: Status::Signaled(TERM),
            ran_for: SECS10,
        });
        m.handle(Event::GroupGone);
        m.handle(Event::Spawned);
        assert_eq!(
            m.handle(Event::ConfigSettled(snap(Some(4))))[1],
            Action::Signal(TERM, CHILD)
        );
    }

    #[test]
    fn missing_is_a_state_not_a_change() {
        let mut m = running(settings(), Some(1));
        assert_eq!(
            m.handle(Event::ConfigSettled(snap(None))),
            [],
            "deleted: keep the child"
        );
        assert_eq!(
            m.handle(Event::ConfigSettled(snap(Some(1)))),
            [],
            "recreated, same bytes"
        );
        assert_ne!(
            m.handle(Event::ConfigSettled(snap(Some(2)))),
            [],
            "recreated, new bytes"
        );
        let mut m = running(settings(), None);
        assert_ne!(
            m.handle(Event::ConfigSettled(snap(Some(1)))),
            [],
            "missing at start, then created"
        );
    }

    #[test]
    fn sigterm_during_a_restart_exits_instead() {
        let mut m = running(settings(), Some(1));
        m.handle(Event::ConfigSettled(snap(Some(2))));
        assert_eq!(
            m.handle(Event::Signal(TERM)),
            [Action::Signal(TERM, CHILD)],
            "deadline keeps running"
        );
        m.handle(Event::ChildExited {
            status: Status::Signaled(TERM),
            ran_for: SECS10,
        });
        assert_eq!(
            m.handle(Event::GroupGone),
            [Action::StopDeadline(None), Action::Exit(143)]
        );
    }

    #[test]
    fn a_child_ignoring_the_stop_signal_is_killed_and_replaced() {
        let mut m = running(settings(), Some(1));
        m.handle(Event::ConfigSettled(snap(Some(2))));
        assert_eq!(m.handle(Event::StopDeadline)[0], Action::KillGroup);
        m.handle(Event::ChildExited {
            status: Status::Signaled(9),
            ran_for: SECS10,
        });
        assert_eq!(
            m.handle(Event::GroupGone),
            [Action::StopDeadline(None), Action::Fingerprint]
        );
    }

    #[test]
    fn reload_signal_signals_instead_of_restarting() {
        let mut s = settings();
        s.reload_signal = Some(libc::SIGHUP);
        let mut m = running(s, Some(1));
        assert_eq!(
            m.handle(Event::ConfigSettled(snap(Some(2)))),
            [Action::Acted, Action::Reload(libc::SIGHUP, CHILD)]
        );
        assert_eq!(
            m.handle(Event::ConfigSettled(snap(Some(2)))),
            [],
            "the child has those bytes now"
        );
    }

    fn exit_and_drain(m: &mut Machine, code: i32, ran_for: Duration) -> Vec<Action> {
        m.handle(Event::ChildExited {
            status: Status::Exited(code),
            ran_for,
        });
        m.handle(Event::GroupGone)
    }

    #[test]
    fn restart_policies() {
        let mut s = settings();
        s.restart = Policy::OnFailure;
        let mut m = running(s.clone(), Some(1));
        assert_eq!(
            exit_and_drain(&mut m, 0, SECS10),
            [Action::StopDeadline(None), Action::Exit(0)]
        );
        let mut m = running(s.clone(), Some(1));
        assert_eq!(
            exit_and_drain(&mut m, 1, SECS10),
            [
                Action::StopDeadline(None),
                Action::Backoff(Duration::from_secs(1))
            ]
        );
        assert_eq!(m.handle(Event::BackoffOver), [Action::Fingerprint]);
        s.restart = Policy::Always;
        let mut m = running(s, Some(1));
        assert_eq!(
            exit_and_drain(&mut m, 0, SECS10)[1],
            Action::Backoff(Duration::from_secs(1))
        );
    }

    #[test]
    fn backoff_doubles_caps_and_resets_after_a_long_run() {
        let mut s = settings();
        s.restart = Policy::Always;
        let mut m = running(s, Some(1));
        let short = Duration::from_millis(100);
        let mut delays = vec![];
        for _ in 0..7 {
            delays.push(exit_and_drain(&mut m, 1, short)[1].clone());
            m.handle(Event::BackoffOver);
            m.handle(Event::Spawned);
        }
        let secs = |n| Action::Backoff(Duration::from_secs(n));
        assert_eq!(
            delays,
            [
                secs(1),
                secs(2),
                secs(4),
                secs(8),
                secs(16),
                secs(30),
                secs(30)
            ]
        );
        assert_eq!(exit_and_drain(&mut m, 1, SECS10)[1], secs(1));
    }

    #[test]
    fn max_restarts_gives_up_with_the_childs_code() {
        let mut s = settings();
        s.restart = Policy::Always;
        s.max_restarts = Some(2);
        let mut m = running(s, Some(1));
        for _ in 0..2 {
            assert!(matches!(
                exit_and_drain(&mut m, 4, SECS10)[1],
                Action::Backoff(_)
            ));
            m.handle(Event::BackoffOver);
            m.handle(Event::Spawned);
        }
        assert_eq!(
            exit_and_drain(&mut m, 4, SECS10),
            [Action::StopDeadline(None), Action::Exit(4)]
        );
    }

    #[test]
    fn sigterm_during_backoff_exits_at_once() {
        let mut s = settings();
        s.restart = Policy::Always;
        let mut m = running(s, Some(1));
        exit_and_drain(&mut m, 5, SECS10);
        assert_eq!(m.handle(Event::Signal(libc::SIGUSR1)), []);
        assert_eq!(m.handle(Event::Signal(TERM)), [Action::Exit(5)]);
    }

    #[test]
    fn config_change_during_backoff_starts_now() {
        let mut s = settings();
        s.restart = Policy::OnFailure;
        let mut m = running(s, Some(1));
        exit_and_drain(&mut m, 1, SECS10);
        assert_eq!(m.handle(Event::ConfigSettled(snap(Some(1)))), []);
        assert_eq!(
            m.handle(Event::ConfigSettled(snap(Some(2)))),
            [Action::Acted, Action::Fingerprint]
        );
        assert_eq!(
            m.handle(Event::BackoffOver),
            [],
            "the backoff no longer applies"
        );
    }

    fn validating() -> Settings {
        Settings {
            validate: true,
            ..settings()
        }
    }

    fn conf() -> Vec<PathBuf> {
        vec![PathBuf::from("/c/app.conf")]
    }

    /// A validating machine whose child runs with config 1.
    fn running_validated(s: Settings) -> Machine {
        let (mut m, first) = start(s, snap(Some(1)));
        assert_eq!(
            first,
            [Action::Validate {
                token: 1,
                changed: conf(),
                candidate: None,
            }]
        );
        assert_eq!(
            m.handle(Event::Validated { token: 1, ok: true }),
            [Action::Fingerprint]
        );
        let approved = m.approved.clone().unwrap();
        look_and_start(&mut m, approved);
        m
    }

    #[test]
    fn startup_validation_failure_exits_78_and_starts_nothing() {
        let (mut m, _) = start(validating(), snap(Some(1)));
        assert_eq!(
            m.handle(Event::Validated {
                token: 1,
                ok: false
            }),
            [Action::Exit(EX_CONFIG)]
        );
    }

    #[test]
    fn sigterm_during_startup_validation_kills_the_validator_and_exits() {
        let (mut m, _) = start(validating(), snap(Some(1)));
        assert_eq!(
            m.handle(Event::Signal(TERM)),
            [Action::CancelValidation, Action::Exit(143)]
        );
    }

    #[test]
    fn a_good_change_is_validated_then_acted_on() {
        let mut m = running_validated(validating());
        assert_eq!(
            m.handle(Event::ConfigSettled(snap(Some(2)))),
            [
                Action::Acted,
                Action::Validate {
                    token: 2,
                    changed: conf(),
                    candidate: None,
                }
            ]
        );
        // The same bytes settling again while validating: nothing new.
        assert_eq!(m.handle(Event::ConfigSettled(snap(Some(2)))), []);
        assert_eq!(
            m.handle(Event::Validated { token: 2, ok: true }),
            [
                Action::Signal(TERM, CHILD),
                Action::ContinueStopped(CHILD),
                Action::StopDeadline(Some(SECS10))
            ]
        );
    }

    #[test]
    fn a_bad_change_keeps_the_child_until_the_bytes_change_again() {
        let mut m = running_validated(validating());
        m.handle(Event::ConfigSettled(snap(Some(2))));
        assert_eq!(
            m.handle(Event::Validated {
                token: 2,
                ok: false
            }),
            []
        );
        assert_eq!(m.phase, Phase::Running);
        assert_eq!(
            m.handle(Event::ConfigSettled(snap(Some(2)))),
            [],
            "rejected bytes are not checked again"
        );
        assert_eq!(
            m.handle(Event::ConfigSettled(snap(Some(3)))),
            [
                Action::Acted,
                Action::Validate {
                    token: 3,
                    changed: conf(),
                    candidate: None,
                }
            ],
            "fixed bytes are"
        );
        assert_eq!(
            m.handle(Event::Validated { token: 3, ok: true })[0],
            Action::Signal(TERM, CHILD)
        );
    }

    #[test]
    fn a_newer_change_cancels_a_stale_validation_whose_result_is_ignored() {
        let mut m = running_validated(validating());
        m.handle(Event::ConfigSettled(snap(Some(2))));
        assert_eq!(
            m.handle(Event::ConfigSettled(snap(Some(3)))),
            [
                Action::Acted,
                Action::CancelValidation,
                Action::Validate {
                    token: 3,
                    changed: conf(),
                    candidate: None,
                }
            ]
        );
        assert_eq!(
            m.handle(Event::Validated { token: 2, ok: true }),
            [],
            "stale"
        );
        assert_eq!(
            m.handle(Event::Validated {
                token: 3,
                ok: false
            }),
            []
        );
        assert_eq!(m.phase, Phase::Running);
    }

    #[test]
    fn sigterm_during_a_validation_kills_the_validator_and_stops() {
        let mut m = running_validated(validating());
        m.handle(Event::ConfigSettled(snap(Some(2))));
        assert_eq!(
            m.handle(Event::Signal(TERM)),
            [
                Action::CancelValidation,
                Action::Signal(TERM, CHILD),
                Action::ContinueStopped(CHILD),
                Action::StopDeadline(Some(SECS10))
            ]
        );
        assert_eq!(m.handle(Event::Validated { token: 2, ok: true }), []);
    }

    #[test]
    fn validation_guards_the_reload_signal_too() {
        let mut s = validating();
        s.reload_signal = Some(libc::SIGHUP);
        let mut m = running_validated(s);
        m.handle(Event::ConfigSettled(snap(Some(2))));
        assert_eq!(
            m.handle(Event::Validated {
                token: 2,
                ok: false
            }),
            []
        );
        m.handle(Event::ConfigSettled(snap(Some(3))));
        assert_eq!(
            m.handle(Event::Validated { token: 3, ok: true }),
            [Action::Reload(libc::SIGHUP, CHILD)]
        );
    }

    #[test]
    fn reverting_to_the_running_bytes_cancels_the_check() {
        let mut m = running_validated(validating());
        m.handle(Event::ConfigSettled(snap(Some(2))));
        assert_eq!(
            m.handle(Event::ConfigSettled(snap(Some(1)))),
            [Action::CancelValidation]
        );
    }

    #[test]
    fn a_change_during_the_startup_check_is_checked_instead() {
        let (mut m, _) = start(validating(), snap(Some(1)));
        assert_eq!(
            m.handle(Event::ConfigSettled(snap(Some(1)))),
            [],
            "same bytes: keep checking"
        );
        assert_eq!(
            m.handle(Event::ConfigSettled(snap(Some(2)))),
            [
                Action::CancelValidation,
                Action::Validate {
                    token: 2,
                    changed: conf(),
                    candidate: None,
                }
            ]
        );
        assert_eq!(
            m.handle(Event::Validated { token: 1, ok: true }),
            [],
            "stale"
        );
        assert_eq!(
            m.handle(Event::Validated { token: 2, ok: true }),
            [Action::Fingerprint]
        );
    }

    #[test]
    fn signal_to_group_addresses_the_group_but_sigkill_always_does() {
        let mut s = settings();
        s.signal_to = Target::Group;
        let mut m = running(s, Some(1));
        assert_eq!(
            m.handle(Event::Signal(libc::SIGHUP)),
            [Action::Signal(libc::SIGHUP, GROUP)]
        );
        assert_eq!(
            m.handle(Event::Signal(TERM)),
            [
                Action::Signal(TERM, GROUP),
                Action::ContinueStopped(GROUP),
                Action::StopDeadline(Some(SECS10))
            ]
        );
        assert_eq!(m.handle(Event::StopDeadline)[0], Action::KillGroup);
        // The default: the child alone, and still SIGKILL for the group.
        let mut m = running(settings(), Some(1));
        m.handle(Event::Signal(TERM));
        assert_eq!(m.handle(Event::StopDeadline)[0], Action::KillGroup);
    }

    #[test]
    fn map_signal_rewrites_or_drops_forwarded_signals_only() {
        let mut s = settings();
        s.map_signal = vec![(libc::SIGUSR1, Some(libc::SIGHUP)), (libc::SIGWINCH, None)];
        let mut m = running(s, Some(1));
        assert_eq!(
            m.handle(Event::Signal(libc::SIGUSR1)),
            [Action::Signal(libc::SIGHUP, CHILD)]
        );
        assert_eq!(m.handle(Event::Signal(libc::SIGWINCH)), []);
        assert_eq!(
            m.handle(Event::Signal(libc::SIGUSR2)),
            [Action::Signal(libc::SIGUSR2, CHILD)]
        );
        assert_eq!(
            m.handle(Event::Signal(TERM))[0],
            Action::Signal(TERM, CHILD),
            "the stop signal is not mapped"
        );
    }

    #[test]
    fn stop_delay_waits_then_stops_and_a_second_request_cuts_it_short() {
        let mut s = settings();
        s.stop_delay = Duration::from_secs(5);
        let mut m = running(s.clone(), Some(1));
        assert_eq!(
            m.handle(Event::Signal(TERM)),
            [Action::StopDeadline(Some(Duration::from_secs(5)))],
            "nothing reaches the child yet"
        );
        // Still transparent; config changes wait for the next life.
        assert_eq!(
            m.handle(Event::Signal(libc::SIGUSR1)),
            [Action::Signal(libc::SIGUSR1, CHILD)]
        );
        assert_eq!(m.handle(Event::ConfigSettled(snap(Some(2)))), []);
        assert_eq!(
            m.handle(Event::StopDeadline),
            [
                Action::Signal(TERM, CHILD),
                Action::ContinueStopped(CHILD),
                Action::StopDeadline(Some(SECS10))
            ]
        );
        for second in [TERM, libc::SIGINT] {
            let mut m = running(s.clone(), Some(1));
            m.handle(Event::Signal(TERM));
            assert_eq!(
                m.handle(Event::Signal(second)),
                [
                    Action::Signal(second, CHILD),
                    Action::ContinueStopped(CHILD),
                    Action::StopDeadline(Some(SECS10))
                ]
            );
        }
        // The child exits by itself during the delay: we exit with its code,
        // whatever the restart policy.
        s.restart = Policy::Always;
        let mut m = running(s, Some(1));
        m.handle(Event::Signal(TERM));
        m.handle(exited(0));
        assert_eq!(
            m.handle(Event::GroupGone),
            [Action::StopDeadline(None), Action::Exit(0)]
        );
    }

    #[test]
    fn a_reload_signal_the_child_does_not_handle_becomes_a_restart() {
        let mut s = settings();
        s.reload_signal = Some(libc::SIGHUP);
        let mut m = running(s, Some(1));
        assert_eq!(
            m.handle(Event::ConfigSettled(snap(Some(2)))),
            [Action::Acted, Action::Reload(libc::SIGHUP, CHILD)]
        );
        assert_eq!(
            m.handle(Event::ReloadUnhandled(libc::SIGHUP)),
            [
                Action::Signal(TERM, CHILD),
                Action::ContinueStopped(CHILD),
                Action::StopDeadline(Some(SECS10))
            ]
        );
        m.handle(Event::ChildExited {
            status: Status::Signaled(TERM),
            ran_for: SECS10,
        });
        assert_eq!(
            m.handle(Event::GroupGone),
            [Action::StopDeadline(None), Action::Fingerprint]
        );
    }

    #[test]
    fn the_restart_signal_restarts_through_the_validation_gate() {
        // Without --validate: at once, even with a reload signal set.
        let mut s = settings();
        s.reload_signal = Some(libc::SIGHUP);
        let mut m = running(s, Some(1));
        assert_eq!(
            m.handle(Event::RestartRequested(snap(Some(1))))[0],
            Action::Signal(TERM, CHILD)
        );
        // With it: the current bytes are checked first, and a pass restarts
        // (not reloads), even though the bytes did not change.
        let mut s = validating();
        s.reload_signal = Some(libc::SIGHUP);
        let mut m = running_validated(s.clone());
        let check = m.handle(Event::RestartRequested(snap(Some(1))));
        assert!(matches!(check[..], [Action::Validate { token: 2, .. }]));
        assert_eq!(
            m.handle(Event::Validated { token: 2, ok: true })[0],
            Action::Signal(TERM, CHILD)
        );
        // A failed check keeps the child, and the same bytes are refused again.
        let mut m = running_validated(s);
        m.handle(Event::RestartRequested(snap(Some(1))));
        assert_eq!(
            m.handle(Event::Validated {
                token: 2,
                ok: false
            }),
            []
        );
        assert_eq!(m.handle(Event::RestartRequested(snap(Some(1)))), []);
        // During a backoff: start now.
        let mut s = settings();
        s.restart = Policy::Always;
        let mut m = running(s, Some(1));
        exit_and_drain(&mut m, 1, SECS10);
        assert_eq!(
            m.handle(Event::RestartRequested(snap(Some(1)))),
            [Action::Fingerprint]
        );
    }

    #[test]
    fn ctrl_c_on_the_terminal_exits_130_whatever_the_policy() {
        let mut s = settings();
        s.restart = Policy::Always;
        s.interactive = true;
        let mut m = running(s.clone(), Some(1));
        m.handle(Event::ChildExited {
            status: Status::Signaled(libc::SIGINT),
            ran_for: Duration::from_secs(1),
        });
        assert_eq!(
            m.handle(Event::GroupGone),
            [Action::StopDeadline(None), Action::Exit(130)]
        );
        // Without the terminal, a death by SIGINT is a crash like another.
        s.interactive = false;
        let mut m = running(s, Some(1));
        m.handle(Event::ChildExited {
            status: Status::Signaled(libc::SIGINT),
            ran_for: Duration::from_secs(1),
        });
        assert!(matches!(
            m.handle(Event::GroupGone)[..],
            [Action::StopDeadline(None), Action::Backoff(_)]
        ));
    }

    #[test]
    fn the_gate_checks_bytes_that_changed_during_a_stop_before_any_start() {
        let mut m = running_validated(validating());
        assert!(matches!(
            m.handle(Event::ConfigSettled(snap(Some(2))))[..],
            [Action::Acted, Action::Validate { token: 2, .. }]
        ));
        assert_eq!(
            m.handle(Event::Validated { token: 2, ok: true })[0],
            Action::Signal(TERM, CHILD)
        );
        // Bytes 3 land while the old child stops.
        assert_eq!(m.handle(Event::ConfigSettled(snap(Some(3)))), []);
        m.handle(Event::ChildExited {
            status: Status::Signaled(TERM),
            ran_for: SECS10,
        });
        assert_eq!(
            m.handle(Event::GroupGone),
            [Action::StopDeadline(None), Action::Fingerprint]
        );
        assert!(matches!(
            m.handle(Event::Candidate(snap(Some(3))))[..],
            [Action::Validate { token: 3, .. }]
        ));
        // Rejected: no child, held until the bytes change.
        assert_eq!(
            m.handle(Event::Validated {
                token: 3,
                ok: false
            }),
            []
        );
        assert_eq!(m.phase, Phase::Held);
        assert_eq!(m.handle(Event::ConfigSettled(snap(Some(3)))), []);
        assert!(matches!(
            m.handle(Event::ConfigSettled(snap(Some(4))))[..],
            [Action::Acted, Action::Validate { token: 4, .. }]
        ));
        assert_eq!(
            m.handle(Event::Validated { token: 4, ok: true }),
            [Action::Fingerprint]
        );
    }

    #[test]
    fn a_crash_never_restarts_on_rejected_bytes() {
        let mut s = validating();
        s.restart = Policy::OnFailure;
        let mut m = running_validated(s);
        m.handle(Event::ConfigSettled(snap(Some(2))));
        assert_eq!(
            m.handle(Event::Validated {
                token: 2,
                ok: false
            }),
            []
        );
        assert!(matches!(
            exit_and_drain(&mut m, 1, SECS10)[..],
            [Action::StopDeadline(None), Action::Backoff(_)]
        ));
        assert_eq!(m.handle(Event::BackoffOver), [Action::Fingerprint]);
        assert_eq!(
            m.handle(Event::Candidate(snap(Some(2)))),
            [],
            "the rejected bytes are held, not started"
        );
        assert_eq!(m.phase, Phase::Held);
        assert_eq!(m.handle(Event::Signal(TERM)), [Action::Exit(143)]);
        // Back on the approved bytes, the crash restart goes ahead.
        let mut s = validating();
        s.restart = Policy::OnFailure;
        let mut m = running_validated(s);
        exit_and_drain(&mut m, 1, SECS10);
        m.handle(Event::BackoffOver);
        assert_eq!(m.handle(Event::Candidate(snap(Some(1)))), [Action::Spawn]);
    }

    #[test]
    fn a_child_started_after_the_bytes_moved_is_checked_on_the_next_look() {
        let mut m = running_validated(validating());
        // Started on approved bytes 1 although the disk already had 9.
        m.handle(Event::ConfigSettled(snap(Some(2))));
        m.handle(Event::Validated { token: 2, ok: true });
        m.handle(Event::ChildExited {
            status: Status::Signaled(TERM),
            ran_for: SECS10,
        });
        m.handle(Event::GroupGone);
        look_and_start(&mut m, snap(Some(2)));
        // The child may have read 9 (written right after the look): the
        // next look sees 9 as a change and checks it.
        assert!(matches!(
            m.handle(Event::ConfigSettled(snap(Some(9))))[..],
            [Action::Acted, Action::Validate { .. }]
        ));
    }
}
