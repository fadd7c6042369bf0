//! The supervisor's decisions, as a pure state machine: `Machine::handle`
//! takes one input (an answer, a signal, a settled change) and returns the
//! requests to perform (see `protocol.rs`). No processes, files or clocks
//! here: the edge (supervisor.rs) turns the world into inputs and performs
//! the requests, so every decision can be unit-tested on its own.

use crate::signals;
use crate::watch::fingerprint::{self, FileState, Snapshot};
use log::{debug, error, info, warn};
use nix::libc;
use std::path::PathBuf;
use std::time::Duration;

mod gate;
mod lifecycle;
mod plan;
mod protocol;
mod reload;
mod rollback;
mod types;
mod withdrawal;

use gate::Pending;
use protocol::Rec;
pub use protocol::{Input, LookFor, Op, Outcome, Request, Token, Verdict};
use reload::Reload;
use rollback::{Probation, Readiness, Rolling};
pub use types::*;
use withdrawal::Withdrawal;

/// What waits for an operation under way that keeps the child from its
/// directory (a rollback, a candidate's withdrawal from the view).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Waits {
    /// Bytes that settled meanwhile, judged after it (`restart`: asked for
    /// by the restart signal, a pass restarts).
    newer: Option<Snapshot>,
    restart: bool,
    /// A start: its look (`Fingerprint`), or `Spawn` decided already. The
    /// first one asked for stands.
    start: Option<Action>,
}

impl Waits {
    /// Holds `now` (settled bytes), or the start (None) as `start`; what
    /// waits, for the log.
    fn hold(&mut self, now: Option<&Snapshot>, restart: bool, start: Action) -> &'static str {
        match now {
            Some(now) => {
                self.newer = Some(now.clone());
                self.restart |= restart;
                "the new config is checked"
            }
            None => {
                self.start.get_or_insert(start);
                "the child starts"
            }
        }
    }
}

/// What follows a stop once the child and its group are gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterStop {
    Exit,
    Restart,
    /// The child exited on its own: the restart policy decides.
    ByPolicy,
}

#[derive(Debug, Clone, PartialEq)]
enum Phase {
    /// Validating the config before a start (the first, or any later one
    /// whose bytes were never approved). No child runs.
    CheckingBeforeStart,
    /// The config on disk was rejected and no child runs: waiting for a fix.
    AwaitingFix,
    Starting,
    Running,
    /// SIGTERM arrived; waiting out `--stop-delay` before the stop signal.
    Delaying,
    Stopping {
        after: AfterStop,
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
    child_bytes: Snapshot,
    /// Ungated: the bytes the gate saw just before the start, the next
    /// child's bytes.
    next_child_bytes: Snapshot,
    restarts: u32,
    next_backoff: Duration,
    /// The config in flight through the gate (staging, check, commit).
    pending: Option<Pending>,
    /// A burst of changes to the watched config began and has not settled:
    /// the live files may be mid-write.
    burst: bool,
    /// A burst settled and the look at what it left has not answered yet:
    /// the live files hold bytes the machine has not seen.
    settle_look: bool,
    /// The bytes the last check rejected: not checked again (nor started)
    /// until the source went back to the child's bytes or other bytes were
    /// judged. (A rollback's rejection is kept apart, in
    /// `rolled_back_from`: one never replaces the other.)
    rejected: Option<Snapshot>,
    /// Bytes a validator passed (with `--promote-to`: the last good
    /// generation's): the only ones a child may start on.
    approved: Option<Snapshot>,
    /// A child has run: a rejected config then holds instead of exiting 78.
    started: bool,
    /// Signals that came before the first child ran, forwarded once it
    /// does (see `hold`).
    early: Vec<i32>,
    /// The last signal we sent the current child, to tell "exited on its
    /// own" from "died of the signal we sent".
    sent: Option<i32>,
    /// The external reload in flight or waiting to be retried.
    reload: Option<Reload>,
    /// Why the next child starts.
    reason: Reason,
    stats: Stats,
    /// `--promote-to`: the generation the durable record (`..good`) names,
    /// the last committed (proven, or on probation); the child's directory
    /// shows it too, unless `lag` says otherwise.
    last_good: Option<String>,
    /// `--promote-to`: the generation the child's view still shows while
    /// the durable record (`last_good`) names another: a commit moved the
    /// record but could not switch the view. Until they agree again,
    /// something in flight owes it: the commit retried, a newer commit, or,
    /// when nothing else is in flight, the record put back to this
    /// generation (`view_follows_record`), retried until the view is
    /// switched to it.
    lag: Option<String>,
    /// `--promote-to`: the generation a rollback goes back to (see
    /// `rollback.rs` for a generation's life).
    proven: Option<Generation>,
    /// `--promote-to`: the generation the disk records as rolled back from
    /// (`..rejected`), and its bytes: rejected (a restarted manager keeps
    /// them so) until new bytes are committed; then unrecorded and removed.
    rolled_back_from: Option<Generation>,
    /// `--rollback-window`: the shown generation is on probation.
    probation: Option<Probation>,
    /// The number of the running child's start period (counted up at each
    /// start, and at each reload that begins a new period): a readiness
    /// probe or a start-up deadline of another is cancelled.
    period: u64,
    /// `--validate-in-place`: the child that runs is starting up (it may
    /// read its config any moment, as its start told it to): no candidate
    /// is shown to it in place until it was ready once or its start period
    /// is over.
    starting_up: bool,
    /// A rollback the world has not answered yet.
    rolling: Option<Rolling>,
    /// A candidate shown in place whose removal from the child's view the
    /// world has not confirmed yet.
    withdrawing: Option<Withdrawal>,
    /// `--validate-in-place`: the child was told something that may make
    /// it read its config (a reload, a forwarded signal, held signals as a
    /// withdrawal ended): until this wait runs out, no check in place
    /// starts (`child_may_read`).
    hush: Option<u64>,
    /// The bytes being brought to the child are new ones that passed the
    /// gate (not a rollback's return to older ones, nor a restart on bytes
    /// a later change failed to replace): the child taking them is a
    /// success for `Stats::took`.
    fresh: bool,
    ready: Readiness,
    /// `--promote-to`: files gone from the source that the child's
    /// directory still holds, already said (once per removal).
    said_removed: std::collections::BTreeSet<PathBuf>,
    /// A rollback took and the child is (or may yet be) restarted: on its
    /// exit, by a restart, or by a reload signal it turns out to lack a
    /// handler for. The next start lands on the generation rolled back to,
    /// whatever the source holds by then.
    after_rollback: bool,
    /// Newer bytes the source held at that start: judged once the child
    /// runs (checked, promoted, on probation from the proven generation).
    judge_after_start: Option<Snapshot>,
    /// Looks asked for again while one of their kind was out.
    look_again: std::collections::BTreeSet<LookFor>,
    /// Every operation in flight, by token (see `protocol.rs`).
    inflight: std::collections::BTreeMap<Token, Rec>,
    /// The last number given out: to an operation, or to a decision's own
    /// work in flight (a config through the gate, a reload, a retry's
    /// wait). One count, so a number names one thing.
    last_op: Token,
}

impl Machine {
    /// A new machine and its first actions, given, with `--promote-to`, the
    /// last good generation the child's directory holds (if any), the bytes
    /// a rollback left rejected, and the proven generation recorded while
    /// the last good one was on probation (judged again, with a fresh
    /// window).
    fn new(
        settings: Settings,
        last_good: Option<Generation>,
        rolled_back_from: Option<Generation>,
        proven: Option<Generation>,
    ) -> (Machine, Vec<Action>) {
        let mut m = Machine {
            settings,
            phase: Phase::Starting,
            child_bytes: Snapshot::new(),
            next_child_bytes: Snapshot::new(),
            restarts: 0,
            next_backoff: BACKOFF_FIRST,
            pending: None,
            burst: false,
            settle_look: false,
            rejected: None,
            approved: None,
            started: false,
            early: vec![],
            sent: None,
            reload: None,
            reason: Reason::First,
            stats: Stats::default(),
            last_good: None,
            lag: None,
            proven: None,
            rolled_back_from: None,
            probation: None,
            period: 0,
            starting_up: false,
            rolling: None,
            withdrawing: None,
            hush: None,
            fresh: true,
            ready: Readiness::default(),
            said_removed: Default::default(),
            after_rollback: false,
            judge_after_start: None,
            look_again: Default::default(),
            inflight: Default::default(),
            last_op: 0,
        };
        let mut first = vec![];
        if let Some(good) = last_good.filter(|_| m.settings.promote) {
            m.approved = Some(good.snapshot.clone());
            m.last_good = Some(good.name.clone());
            m.rolled_back_from = rolled_back_from;
            match proven.filter(|p| p.name != good.name) {
                Some(p) if m.settings.rollback_window.is_some() => {
                    info!(
                        "Generation {} was on probation when the manager stopped: judged again, with a fresh --rollback-window ({} is kept to go back to)",
                        good.name, p.name
                    );
                    m.proven = Some(p);
                    m.probation = Some(Probation::default());
                }
                Some(p) => {
                    // No window any more: the last good one stands.
                    m.proven = Some(good.clone());
                    first.push(Action::Prove {
                        generation: good.name,
                    });
                    first.push(Action::RemoveGeneration { generation: p.name });
                }
                None => m.proven = Some(good),
            }
        }
        // A pod with a broken config should fail visibly at once: the
        // first start goes through the gate like every other.
        first.extend(m.spawn());
        (m, first)
    }

    /// A new machine and its first requests (see `new`).
    pub fn boot(
        settings: Settings,
        last_good: Option<Generation>,
        rolled_back_from: Option<Generation>,
        proven: Option<Generation>,
    ) -> (Machine, Vec<Request>) {
        let (mut m, first) = Machine::new(settings, last_good, rolled_back_from, proven);
        let first = m.requests(first);
        (m, first)
    }

    /// One event to its decision: the intents that follow.
    fn step(&mut self, event: Event) -> Vec<Action> {
        let mut actions = self.decide(event);
        // Whatever the event, the machine never rests with the view and the
        // record of the child's directory apart and nothing owing them.
        actions.extend(self.view_follows_record());
        actions
    }

    fn decide(&mut self, event: Event) -> Vec<Action> {
        match event {
            Event::Spawned => {
                self.started = true;
                self.period += 1;
                self.stats.starts[self.reason as usize] += 1;
                self.took_if_fresh();
                self.phase = Phase::Running;
                self.sent = None;
                self.ready = Readiness::default();
                // Gated, the child runs on what was approved (the gate's
                // look just before saw exactly those); else on what it saw.
                self.child_bytes = match self.approved.clone().filter(|_| self.gated()) {
                    Some(approved) => approved,
                    None => std::mem::take(&mut self.next_child_bytes),
                };
                let mut actions = self.child_took_new_bytes(false);
                actions.extend(self.release_held());
                if self.settings.validate_in_place {
                    self.starting_up = true;
                    actions.push(Action::StartUpDeadline {
                        child: self.period,
                        after: self.settings.ready_start_period,
                    });
                }
                // After a rollback, newer bytes wait for the child to run
                // on the proven ones, then take the gate as any change.
                if let Some(now) = self.judge_after_start.take() {
                    actions.extend(self.judge_again(Some(now), false));
                }
                actions
            }
            Event::RestartRequested(now) => self.on_restart_request(now),
            Event::Candidate(now) => self.on_candidate(now),
            Event::ReloadSignalUnhandled(sig, ignored) => match self.phase {
                Phase::Running => {
                    if ignored {
                        warn!(
                            "The child ignores {}: signalling it would not reload it; restarting it instead",
                            signals::name(sig)
                        );
                    } else if self.settings.signal_to == Target::Group {
                        warn!(
                            "The child or a process of its group does not handle {} (yet): restarting it instead of signalling the group, which would kill it",
                            signals::name(sig)
                        );
                    } else {
                        warn!(
                            "The child does not handle {} (yet): restarting it instead of signalling, which would kill it",
                            signals::name(sig)
                        );
                    }
                    self.reason = Reason::Config;
                    self.restart()
                }
                _ => vec![],
            },
            Event::ReloadSignalsSent => {
                if self.phase != Phase::Running {
                    return vec![];
                }
                // A rollback's reload took: no start is owed to it.
                self.after_rollback = false;
                // A burst that also runs hooks is one reload: it counts
                // once, when they answer.
                let mut actions = self.release_hooks();
                if actions.is_empty() {
                    self.stats.reloads_ok += 1;
                    self.took_if_fresh();
                }
                actions.extend(self.child_took_new_bytes(true));
                actions
            }
            // Once a child ran, a start that fails (the binary replaced
            // under it, no process left for a moment) is a child that
            // exited with that code: `--restart` decides, as a watchexec
            // job's restart would. The first one ends it all.
            Event::SpawnFailed(code) if self.started => {
                warn!("The command could not be started again (exit code {code})");
                self.by_policy(Status::Exited(code), Duration::ZERO)
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
            Event::StopDelayOver => self.on_delay_over(),
            Event::BackoffOver => match self.phase {
                Phase::Backoff { .. } => self.spawn(),
                _ => vec![],
            },
            Event::ConfigSettled(now) => self.on_config(now),
            Event::Changed => self.on_changed(),
            Event::HooksDone { token, failed } => self.on_hooks_done(token, failed),
            Event::RetryDue { token } => self.on_retry_due(token),
            Event::Validated { token, ok } => self.on_validated(token, ok),
            Event::CannotCheck { token, reason } => self.on_cannot_check(token, reason),
            Event::Staged { token, result } => self.on_staged(token, result),
            Event::Committed { token, result } => self.on_committed(token, result),
            Event::Probed { ok, ran_for } => self.on_probed(ok, ran_for),
            Event::ProbationOver => self.on_probation_over(),
            Event::StartedUp => self.period_over(),
            Event::RolledBack { result } => self.on_rolled_back(result),
            Event::Dropped { generation, result } => self.on_dropped(generation, result),
        }
    }
}

#[cfg(test)]
pub mod model;
#[cfg(test)]
mod props;

/// Fixtures shared by the machine's tests and the loop's.
#[cfg(test)]
pub mod testkit {
    use super::*;
    use crate::watch::fingerprint::FileState;

    /// Property-test cases: `PROPTEST_CASES` when set (a long run), else
    /// `default`.
    pub fn cases(default: u32) -> u32 {
        std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }

    /// The defaults of the command line, as the machine sees them.
    pub fn settings() -> Settings {
        Settings {
            stop_signal: libc::SIGTERM,
            stop_timeout: Duration::from_secs(10),
            validate_timeout: Duration::from_secs(30),
            reload_timeout: Duration::from_secs(30),
            stop_delay: Duration::ZERO,
            reload_signal: None,
            restart: Policy::Never,
            max_restarts: None,
            validate: false,
            signal_to: Target::Child,
            map_signal: vec![],
            interactive: false,
            promote: false,
            validate_in_place: false,
            reload_hooks: 0,
            routes: Default::default(),
            rollback_window: None,
            ready_interval: None,
            ready_failures: READY_FAILURES,
            ready_start_period: Duration::ZERO,
            restart_signal: None,
            remap_exit: vec![],
            inherited_safe: 0,
        }
    }

    /// Two config files in one version number: `/c/app.conf` has
    /// `version % 10`, `/c/notes.txt` has `version / 10` (so below 10, only
    /// app.conf ever changes).
    pub fn two_files(version: u64) -> Snapshot {
        let mut s = snap(Some(version % 10));
        let notes = FileState::Content {
            len: 3,
            hash: version / 10,
        };
        s.insert(PathBuf::from("/c/notes.txt"), notes);
        s
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
mod tests;
