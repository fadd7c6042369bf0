//! The one protocol between the machine and the world, for every operation
//! that takes time: the machine asks `Start { token, op }` and may ask
//! `Cancel { token }`; the world answers `Done { token, outcome }`, once,
//! and nothing else. The machine's table of operations in flight
//! (`Machine::inflight`) is the only record of them: an answer whose token
//! is not there (cancelled, or for something superseded) is dropped here,
//! in this one place, before any decision sees it.
//!
//! The decisions (lifecycle, gate, rollback, reload) are written as intents
//! (`Action`) and take what happened as `Event`s; this module numbers each
//! intent that takes time, records it, and turns each answer back into the
//! event its decision waits for.

use super::*;

/// The number of one operation the machine started.
pub type Token = u64;

/// An operation that takes time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Look at the config (stat and hash): `Looked`.
    Look(LookFor),
    /// Start the child in a process group of its own: `Started`, or
    /// `NotStarted` for a command that cannot start.
    Spawn,
    /// The started child's life: `Exited` when the reaper collected it.
    Run,
    /// Wait until the exited child's process group is empty: `GroupGone`.
    Drain,
    /// Copy the sources as they are now into a new hidden generation of the
    /// child's directory: `Staged`, with its exact bytes.
    Stage,
    /// Run the check on these changed files (with `--promote-to`, on this
    /// candidate generation; with `in_place`, shown at DIR for the check):
    /// `Checked`. Failed if it runs longer than `timeout`.
    Check {
        changed: Vec<PathBuf>,
        candidate: Option<String>,
        in_place: bool,
        timeout: Duration,
    },
    /// Make this generation the last good one (its durable record first),
    /// then what the child sees; with `proven`, that one is recorded first
    /// as the generation to go back to: `Committed`.
    Commit {
        generation: String,
        proven: Option<String>,
    },
    /// Back to the kept generation `to`; `from` is kept as the rejected
    /// one: `RolledBack`.
    RollBack { to: String, from: String },
    /// Remove this candidate; if the child's view shows it (a check in
    /// place), the view goes back to the last good generation first:
    /// `Dropped`.
    Drop { generation: String },
    /// What the running child does with each of these reload signals:
    /// `Handling`. (The machine sends them once it knows; signalling a
    /// child without a handler would kill it.)
    AskHandling { signals: Vec<i32>, to: Target },
    /// Run these reload hooks at once, each told of its files: `HooksDone`.
    /// Each failed if it runs longer than `timeout`.
    Hooks {
        calls: Vec<HookCall>,
        timeout: Duration,
    },
    /// A readiness probe of the running child, given `timeout` to answer:
    /// `Probed`.
    Probe { timeout: Duration },
    /// Wait this long: `Elapsed`.
    Wait(Duration),
}

/// What a look is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LookFor {
    /// Before a start: the gate's candidate.
    Start,
    /// The decisive look once a burst of changes settled (the watch's
    /// directories are set right first).
    Settle,
    /// The restart signal arrived.
    Restart,
}

/// What became of a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail,
    /// It could not run for a fault of ours (no descriptor, process or
    /// memory; the candidate could not be shown in place): no verdict.
    CannotRun(String),
}

/// The world's answer to `Start`.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Looked(Snapshot),
    /// The child runs.
    Started,
    /// The command could not start (126 or 127).
    NotStarted(i32),
    /// The child ended (the reaper collected it), this long after its start.
    Exited {
        status: Status,
        ran_for: Duration,
    },
    GroupGone,
    Staged(Result<Generation, String>),
    Checked(Verdict),
    Committed(Result<(), CommitFailed>),
    RolledBack(Result<(), CommitFailed>),
    /// Ok: the child's view no longer shows the candidate (its files are
    /// removed too, unless the disk refused that: a leftover, not shown).
    /// Err: the view still shows it, and why.
    Dropped(Result<(), String>),
    /// The child handles every signal asked about (None; a blocked one,
    /// read with sigwait or a signalfd, counts as handled), or the first
    /// it does not (true: it ignores it, false: it would die of it).
    Handling(Option<(i32, bool)>),
    /// The hooks (by index) that failed; none: all succeeded.
    HooksDone {
        failed: Vec<usize>,
    },
    /// `ran_for`: the child's age when the probe ended.
    Probed {
        ok: bool,
        ran_for: Duration,
    },
    Elapsed,
    /// It could not run for a fault of ours (no descriptor, process or
    /// memory): no verdict on anything.
    NotRun(String),
}

/// What the machine asks of the world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Start {
        token: Token,
        op: Op,
    },
    /// The operation's answer no longer matters: stop it if it can be.
    Cancel {
        token: Token,
    },
    /// Send this signal to the child, or to its process group.
    Signal(i32, Target),
    /// SIGCONT to the child (or the members of its group) if stopped.
    ContinueStopped(Target),
    /// SIGKILL the child's process group.
    KillGroup,
    /// `--promote-to`: record this generation as proven.
    Prove {
        generation: String,
    },
    /// `--promote-to`: remove a generation no longer needed.
    RemoveGeneration {
        generation: String,
    },
    /// `--promote-to`: the rollback's rejection of this generation is
    /// over: `..rejected` names it no more, and it goes.
    Unreject {
        generation: String,
    },
    /// A settled change was taken: `--min-interval` counts from now.
    Acted,
    Exit(i32),
}

/// What the machine hears: answers, and what happened on its own.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Done {
        token: Token,
        outcome: Outcome,
    },
    /// A caught signal from another process (never SIGCHLD: that one
    /// drives the reaper); the restart signal asks for a look.
    Signal(i32),
    /// A burst of changes to the watched config settled (the debounce ran
    /// out).
    Settled,
    /// A burst of changes to the watched config began: its first event.
    Changed,
    /// Time for a readiness probe (`--ready-interval`).
    ProbeDue,
}

/// What an operation in flight is for: the event its answer becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Rec {
    Look(LookFor),
    Spawn,
    Child,
    Drain,
    /// The gate's staging, check, commit and retry wait, with the
    /// decision's own number for the config in flight.
    Stage(u64),
    Check(u64),
    Commit(u64),
    Retry(u64),
    /// The reload's hooks, and the wait before they are retried, with the
    /// reload's own number.
    Hooks(u64),
    HooksRetry(u64),
    RollBack,
    /// The removal of this candidate.
    Drop(String),
    /// The reload signals to send to `to` once the child is known to
    /// handle them.
    ReloadSignals {
        signals: Vec<i32>,
        to: Target,
    },
    /// A readiness probe of start period number `period`.
    Probe(u64),
    /// The stop deadline (`--stop-timeout`, then the grace after SIGKILL).
    Stop,
    /// `--stop-delay`, before the stop signal.
    StopDelay,
    Backoff,
    Probation,
    /// The start-up period number `period`.
    StartUp(u64),
}

impl Machine {
    /// Takes what the world says; returns what the machine asks of it.
    pub fn handle(&mut self, input: Input) -> Vec<Request> {
        let (mut looked, mut sent) = (None, vec![]);
        let mut out = vec![];
        let event = match input {
            Input::Done { token, outcome } => {
                let Some(rec) = self.inflight.remove(&token) else {
                    debug!("Answer for operation {token}, no longer in flight: dropped");
                    return vec![];
                };
                if let Rec::Look(why) = rec {
                    looked = Some(why);
                    // The machine has seen what the burst left, unless one
                    // more look at it is owed (it settled again meanwhile).
                    if why == LookFor::Settle && !self.look_again.contains(&why) {
                        self.settle_look = false;
                    }
                }
                // The child handles every reload signal: they go now, all
                // or none, before anything that follows the reload.
                if let (Rec::ReloadSignals { signals, to }, Outcome::Handling(None)) =
                    (&rec, &outcome)
                {
                    sent = signals
                        .iter()
                        .map(|&sig| Request::Signal(sig, *to))
                        .collect();
                }
                // The child runs: its life is the operation in flight now.
                if matches!((&rec, &outcome), (Rec::Spawn, Outcome::Started)) {
                    out.push(self.start(Rec::Child, Op::Run));
                }
                match answer(rec, outcome) {
                    Some(event) => event,
                    None => return vec![],
                }
            }
            Input::Signal(sig) if Some(sig) == self.settings.restart_signal => {
                return self.look(LookFor::Restart);
            }
            Input::Signal(sig) => Event::Signal(sig),
            // The burst is over; until its look answers, the live files
            // hold bytes the machine has not seen.
            Input::Settled => {
                self.burst = false;
                self.settle_look = true;
                return self.look(LookFor::Settle);
            }
            Input::Changed => Event::Changed,
            Input::ProbeDue => return self.probe_due(),
        };
        let actions = self.step(event);
        out.extend(self.requests(actions));
        if !sent.is_empty() {
            sent.append(&mut out);
            out = sent;
        }
        // Asked again while that look ran: one more, which sees all since.
        if let Some(why) = looked.filter(|w| self.look_again.remove(w)) {
            out.push(self.start(Rec::Look(why), Op::Look(why)));
        }
        out
    }

    /// What the table of operations in flight always holds between two
    /// inputs (the loop's property test asks at every turn): the child's
    /// run exactly while a child is alive, the drain exactly while its
    /// group is awaited, at most one of each deadline, probe, look kind and
    /// hooks.
    #[cfg(test)]
    pub fn table_holds(&self) -> Result<(), String> {
        let count = |f: fn(&Rec) -> bool| self.inflight.values().filter(|r| f(r)).count();
        let child = count(|r| *r == Rec::Child);
        if child != usize::from(self.child_alive()) {
            return Err(format!(
                "{child} child runs in flight, child alive: {} ({:?})",
                self.child_alive(),
                self.inflight
            ));
        }
        let drain = count(|r| *r == Rec::Drain);
        if drain != usize::from(self.awaits_group()) {
            return Err(format!(
                "{drain} drains in flight, group awaited: {}",
                self.awaits_group()
            ));
        }
        type Kind = (&'static str, fn(&Rec) -> bool);
        let kinds: [Kind; 9] = [
            ("stop", |r| *r == Rec::Stop),
            ("stop delay", |r| *r == Rec::StopDelay),
            ("backoff", |r| *r == Rec::Backoff),
            ("probation", |r| *r == Rec::Probation),
            ("start-up", |r| matches!(r, Rec::StartUp(_))),
            ("probe", |r| matches!(r, Rec::Probe(_))),
            ("hooks", |r| matches!(r, Rec::Hooks(_) | Rec::HooksRetry(_))),
            ("check", |r| matches!(r, Rec::Check(_))),
            ("look", |r| matches!(r, Rec::Look(LookFor::Start))),
        ];
        for (what, f) in kinds {
            if count(f) > 1 {
                return Err(format!(
                    "two {what} operations in flight: {:?}",
                    self.inflight
                ));
            }
        }
        Ok(())
    }

    /// A look for `why`; while one is out, one more after it, however
    /// often asked meanwhile (a storm of restart signals is two looks).
    fn look(&mut self, why: LookFor) -> Vec<Request> {
        if self.inflight.values().any(|r| *r == Rec::Look(why)) {
            self.look_again.insert(why);
            return vec![];
        }
        vec![self.start(Rec::Look(why), Op::Look(why))]
    }

    /// A readiness probe of the running child, unless one is out already.
    fn probe_due(&mut self) -> Vec<Request> {
        let probing = self.inflight.values().any(|r| matches!(r, Rec::Probe(_)));
        if self.settings.ready_interval.is_none() || !self.child_alive() || probing {
            return vec![];
        }
        // A probe never outlives its interval: the next one is due then.
        let timeout = self
            .settings
            .ready_interval
            .map_or(READY_TIMEOUT, |every| every.min(READY_TIMEOUT));
        vec![self.start(Rec::Probe(self.period), Op::Probe { timeout })]
    }

    fn start(&mut self, rec: Rec, op: Op) -> Request {
        let token = self.next_token();
        self.inflight.insert(token, rec);
        Request::Start { token, op }
    }

    /// A number never given out before.
    pub(super) fn next_token(&mut self) -> Token {
        self.last_op += 1;
        self.last_op
    }

    /// Cancels the operations `which` matches.
    fn cancel(&mut self, which: impl Fn(&Rec) -> bool) -> Vec<Request> {
        let tokens: Vec<Token> = self
            .inflight
            .iter()
            .filter(|(_, r)| which(r))
            .map(|(t, _)| *t)
            .collect();
        tokens
            .into_iter()
            .map(|token| {
                self.inflight.remove(&token);
                Request::Cancel { token }
            })
            .collect()
    }

    /// Each intent as the request that carries it out: the ones that take
    /// time numbered and recorded. Then the drain of an exited child's
    /// group is asked for, or cancelled, as the phase now says.
    pub(super) fn requests(&mut self, actions: Vec<Action>) -> Vec<Request> {
        let mut out = vec![];
        for action in actions {
            self.request(action, &mut out);
        }
        let draining = self.inflight.values().any(|r| *r == Rec::Drain);
        if self.awaits_group() && !draining {
            out.push(self.start(Rec::Drain, Op::Drain));
        } else if !self.awaits_group() && draining {
            out.extend(self.cancel(|r| *r == Rec::Drain));
        }
        // A probe or a start-up period of an earlier child, or of this one
        // before its reload, judges nobody now: cancelled, its answer is
        // dropped with every other stale one (and the next probe need not
        // wait for it).
        let period = self.period;
        out.extend(self.cancel(|r| matches!(r, Rec::Probe(p) | Rec::StartUp(p) if *p != period)));
        out
    }

    /// Arms the deadline `rec` (None: clears it); one armed before is
    /// replaced.
    fn rearm(&mut self, rec: Rec, after: Option<Duration>, out: &mut Vec<Request>) {
        let kind = std::mem::discriminant(&rec);
        out.extend(self.cancel(|r| std::mem::discriminant(r) == kind));
        if let Some(d) = after {
            out.push(self.start(rec, Op::Wait(d)));
        }
    }

    fn request(&mut self, action: Action, out: &mut Vec<Request>) {
        match action {
            Action::Spawn => {
                // A backoff cut short (a change during it) waits no more.
                out.extend(self.cancel(|r| *r == Rec::Backoff));
                out.push(self.start(Rec::Spawn, Op::Spawn));
            }
            Action::Fingerprint => {
                out.push(self.start(Rec::Look(LookFor::Start), Op::Look(LookFor::Start)));
            }
            Action::Stage { token } => out.push(self.start(Rec::Stage(token), Op::Stage)),
            Action::Validate {
                token,
                changed,
                candidate,
                in_place,
            } => out.push(self.start(
                Rec::Check(token),
                Op::Check {
                    changed,
                    candidate,
                    in_place,
                    timeout: self.settings.validate_timeout,
                },
            )),
            Action::CancelValidation => {
                out.extend(self.cancel(|r| matches!(r, Rec::Check(_))));
            }
            Action::CancelWait { token } => out.extend(self.cancel(|r| *r == Rec::Retry(token))),
            Action::Commit {
                token,
                generation,
                proven,
            } => out.push(self.start(Rec::Commit(token), Op::Commit { generation, proven })),
            Action::RollBack { to, from } => {
                out.push(self.start(Rec::RollBack, Op::RollBack { to, from }));
            }
            Action::SendReloadSignals(signals, to) => {
                let op = Op::AskHandling {
                    signals: signals.clone(),
                    to,
                };
                out.push(self.start(Rec::ReloadSignals { signals, to }, op))
            }
            Action::RunHooks { token, calls } => {
                let timeout = self.settings.reload_timeout;
                out.push(self.start(Rec::Hooks(token), Op::Hooks { calls, timeout }));
            }
            // The hooks running, or the wait for their retry.
            Action::CancelHooks => {
                out.extend(self.cancel(|r| matches!(r, Rec::Hooks(_) | Rec::HooksRetry(_))));
            }
            Action::RetryAfter { token, after } => match &self.reload {
                Some(r) if r.token == token => {
                    self.rearm(Rec::HooksRetry(token), Some(after), out);
                }
                // Each waits on its own: the gate's, a rollback's and a
                // withdrawal's retries may all be armed at once.
                _ => {
                    let rec = Rec::Retry(token);
                    out.extend(self.cancel(|r| *r == rec));
                    out.push(self.start(rec, Op::Wait(after)));
                }
            },
            Action::StopDeadline(after) => self.rearm(Rec::Stop, after, out),
            Action::StopDelay(after) => self.rearm(Rec::StopDelay, Some(after), out),
            Action::Backoff(after) => self.rearm(Rec::Backoff, Some(after), out),
            Action::ProbationDeadline(after) => self.rearm(Rec::Probation, after, out),
            Action::StartUpDeadline { child, after } => {
                self.rearm(Rec::StartUp(child), Some(after), out);
            }
            Action::Signal(sig, to) => out.push(Request::Signal(sig, to)),
            Action::ContinueStopped(to) => out.push(Request::ContinueStopped(to)),
            Action::KillGroup => out.push(Request::KillGroup),
            Action::Prove { generation } => out.push(Request::Prove { generation }),
            Action::DropCandidate { generation } => {
                let op = Op::Drop {
                    generation: generation.clone(),
                };
                out.push(self.start(Rec::Drop(generation), op));
            }
            Action::RemoveGeneration { generation } => {
                out.push(Request::RemoveGeneration { generation })
            }
            Action::Unreject { generation } => out.push(Request::Unreject { generation }),
            Action::Acted => out.push(Request::Acted),
            Action::Exit(code) => {
                let code = self
                    .settings
                    .remap_exit
                    .iter()
                    .find(|(from, _)| *from == code)
                    .map_or(code, |(_, to)| *to);
                out.push(Request::Exit(code));
            }
        }
    }
}

/// The event an answer is for its decision; None for an answer that does
/// not fit the operation (a world's bug: said, and dropped).
fn answer(rec: Rec, outcome: Outcome) -> Option<Event> {
    Some(match (rec, outcome) {
        (Rec::Look(LookFor::Start), Outcome::Looked(now)) => Event::Candidate(now),
        (Rec::Look(LookFor::Settle), Outcome::Looked(now)) => Event::ConfigSettled(now),
        (Rec::Look(LookFor::Restart), Outcome::Looked(now)) => Event::RestartRequested(now),
        (Rec::Spawn, Outcome::Started) => Event::Spawned,
        (Rec::Spawn, Outcome::NotStarted(code)) => Event::SpawnFailed(code),
        (Rec::Child, Outcome::Exited { status, ran_for }) => Event::ChildExited { status, ran_for },
        (Rec::Drain, Outcome::GroupGone) => Event::GroupGone,
        (Rec::Stage(token), Outcome::Staged(result)) => Event::Staged { token, result },
        (Rec::Check(token), Outcome::Checked(Verdict::Pass)) => {
            Event::Validated { token, ok: true }
        }
        (Rec::Check(token), Outcome::Checked(Verdict::Fail)) => {
            Event::Validated { token, ok: false }
        }
        (Rec::Check(token), Outcome::Checked(Verdict::CannotRun(reason))) => {
            Event::CannotCheck { token, reason }
        }
        (Rec::Commit(token), Outcome::Committed(result)) => Event::Committed { token, result },
        (Rec::RollBack, Outcome::RolledBack(result)) => Event::RolledBack { result },
        (Rec::Drop(generation), Outcome::Dropped(result)) => Event::Dropped { generation, result },
        (Rec::ReloadSignals { .. }, Outcome::Handling(None)) => Event::ReloadSignalsSent,
        (Rec::ReloadSignals { .. }, Outcome::Handling(Some((sig, ignored)))) => {
            Event::ReloadSignalUnhandled(sig, ignored)
        }
        (Rec::Hooks(token), Outcome::HooksDone { failed }) => Event::HooksDone { token, failed },
        (Rec::Probe(_), Outcome::Probed { ok, ran_for }) => Event::Probed { ok, ran_for },
        (Rec::Retry(token) | Rec::HooksRetry(token), Outcome::Elapsed) => Event::RetryDue { token },
        (Rec::Stop, Outcome::Elapsed) => Event::StopDeadline,
        (Rec::StopDelay, Outcome::Elapsed) => Event::StopDelayOver,
        (Rec::Backoff, Outcome::Elapsed) => Event::BackoffOver,
        (Rec::Probation, Outcome::Elapsed) => Event::ProbationOver,
        (Rec::StartUp(_), Outcome::Elapsed) => Event::StartedUp,
        (Rec::Check(token), Outcome::NotRun(reason)) => Event::CannotCheck { token, reason },
        // A probe that could not run says nothing of the child: the next
        // one is due at the next interval.
        (Rec::Probe(_), Outcome::NotRun(why)) => {
            debug!("No readiness probe this time: {why}");
            return None;
        }
        (rec, outcome) => {
            // A world's bug: said, not formatted (a snapshot can be big).
            let _ = (rec, outcome);
            log::error!("An answer that does not fit its operation: dropped");
            return None;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::testkit::{settings, snap};

    const SECS10: Duration = Duration::from_secs(10);

    /// The token of the one operation `op` matches in `requests`.
    fn token_of(requests: &[Request], op: impl Fn(&Op) -> bool) -> Token {
        let found: Vec<Token> = requests
            .iter()
            .filter_map(|r| match r {
                Request::Start { token, op: o } if op(o) => Some(*token),
                _ => None,
            })
            .collect();
        assert_eq!(found.len(), 1, "{requests:?}");
        found[0]
    }

    fn done(token: Token, outcome: Outcome) -> Input {
        Input::Done { token, outcome }
    }

    /// A burst settled, and the look it asks for found `now`.
    fn settle(m: &mut Machine, now: Snapshot) -> Vec<Request> {
        let asked = m.handle(Input::Settled);
        let look = token_of(&asked, |o| *o == Op::Look(LookFor::Settle));
        m.handle(done(look, Outcome::Looked(now)))
    }

    /// A machine whose child runs; the token of its `Run`.
    fn running(s: Settings) -> (Machine, Token) {
        let (mut m, spawn) = spawning(s);
        let then = m.handle(done(spawn, Outcome::Started));
        (m, token_of(&then, |o| *o == Op::Run))
    }

    /// With `--validate` (no `--promote-to`): a machine whose first check of
    /// the live files runs; its token.
    fn checking_first() -> (Machine, Token) {
        let s = Settings {
            validate: true,
            ..settings()
        };
        let (mut m, first) = Machine::boot(s, None, None, None);
        let look = token_of(&first, |o| *o == Op::Look(LookFor::Start));
        let asked = m.handle(done(look, Outcome::Looked(snap(Some(1)))));
        (m, token_of(&asked, |o| matches!(o, Op::Check { .. })))
    }

    /// A machine whose child's start is asked for; the token of its `Spawn`.
    fn spawning(s: Settings) -> (Machine, Token) {
        let (mut m, first) = Machine::boot(s, None, None, None);
        let look = token_of(&first, |o| *o == Op::Look(LookFor::Start));
        let then = m.handle(done(look, Outcome::Looked(snap(Some(1)))));
        (m, token_of(&then, |o| *o == Op::Spawn))
    }

    #[test]
    fn an_answer_not_in_flight_is_dropped_and_each_is_taken_once() {
        let (mut m, first) = Machine::boot(settings(), None, None, None);
        let look = token_of(&first, |o| *o == Op::Look(LookFor::Start));
        assert_eq!(
            m.handle(done(look + 100, Outcome::Looked(snap(Some(1))))),
            []
        );
        let spawn = m.handle(done(look, Outcome::Looked(snap(Some(1)))));
        let spawn = token_of(&spawn, |o| *o == Op::Spawn);
        // The same answer again: its record is gone.
        assert_eq!(m.handle(done(look, Outcome::Looked(snap(Some(1))))), []);
        assert!(!m.child_alive(), "not before the world says it runs");
        let started = m.handle(done(spawn, Outcome::Started));
        token_of(&started, |o| *o == Op::Run);
        assert!(m.child_alive());
    }

    #[test]
    fn an_answer_that_does_not_fit_its_operation_is_dropped() {
        let (mut m, first) = Machine::boot(settings(), None, None, None);
        let look = token_of(&first, |o| *o == Op::Look(LookFor::Start));
        assert_eq!(m.handle(done(look, Outcome::Elapsed)), []);
        assert!(m.inflight.is_empty(), "{:?}", m.inflight);
    }

    #[test]
    fn a_command_that_cannot_start_ends_it_all() {
        let (mut m, spawn) = spawning(settings());
        assert_eq!(
            m.handle(done(spawn, Outcome::NotStarted(127))),
            [Request::Exit(127)]
        );
        // It never ran: no start is counted.
        assert_eq!(m.stats().starts.iter().sum::<u64>(), 0);
    }

    #[test]
    fn a_deadline_cancelled_is_never_heard_of_again() {
        let (mut m, run) = running(settings());
        let stop = m.handle(Input::Signal(libc::SIGTERM));
        let deadline = token_of(&stop, |o| *o == Op::Wait(SECS10));
        let exited = Outcome::Exited {
            status: Status::Signaled(libc::SIGTERM),
            ran_for: SECS10,
        };
        let draining = m.handle(done(run, exited));
        let drain = token_of(&draining, |o| *o == Op::Drain);
        assert_eq!(
            m.handle(done(drain, Outcome::GroupGone)),
            [Request::Cancel { token: deadline }, Request::Exit(143)]
        );
        assert_eq!(m.handle(done(deadline, Outcome::Elapsed)), []);
    }

    #[test]
    fn a_group_that_outlives_sigkill_is_given_up_and_its_drain_cancelled() {
        let s = Settings {
            restart: Policy::Always,
            ..settings()
        };
        let (mut m, run) = running(s);
        let exited = Outcome::Exited {
            status: Status::Exited(1),
            ran_for: SECS10,
        };
        let first = m.handle(done(run, exited));
        let drain = token_of(&first, |o| *o == Op::Drain);
        let deadline = token_of(&first, |o| *o == Op::Wait(SECS10));
        let killed = m.handle(done(deadline, Outcome::Elapsed));
        assert_eq!(killed[0], Request::KillGroup);
        let grace = token_of(&killed, |o| *o == Op::Wait(KILL_GRACE));
        let given_up = m.handle(done(grace, Outcome::Elapsed));
        assert!(
            given_up.contains(&Request::Cancel { token: drain }),
            "{given_up:?}"
        );
        // Its answer, had it come, says nothing any more.
        let backoff = token_of(&given_up, |o| matches!(o, Op::Wait(_)));
        assert_eq!(m.handle(done(drain, Outcome::GroupGone)), []);
        let next = m.handle(done(backoff, Outcome::Elapsed));
        token_of(&next, |o| *o == Op::Look(LookFor::Start));
    }

    #[test]
    fn probes_are_asked_one_at_a_time_while_a_child_runs() {
        let s = Settings {
            ready_interval: Some(Duration::from_secs(1)),
            ..settings()
        };
        let (mut m, first) = Machine::boot(s, None, None, None);
        assert_eq!(m.handle(Input::ProbeDue), [], "no child yet");
        let look = token_of(&first, |o| *o == Op::Look(LookFor::Start));
        let spawn = m.handle(done(look, Outcome::Looked(snap(Some(1)))));
        assert_eq!(m.handle(Input::ProbeDue), [], "not started yet");
        m.handle(done(
            token_of(&spawn, |o| *o == Op::Spawn),
            Outcome::Started,
        ));
        let asked = m.handle(Input::ProbeDue);
        // A probe never outlives its interval.
        let timeout = Duration::from_secs(1);
        let probe = token_of(&asked, |o| *o == Op::Probe { timeout });
        assert_eq!(m.handle(Input::ProbeDue), [], "one is out");
        // One that could not run frees the way for the next.
        let none = Outcome::NotRun("EMFILE".into());
        assert_eq!(m.handle(done(probe, none)), []);
        let again = m.handle(Input::ProbeDue);
        let probe = token_of(&again, |o| matches!(o, Op::Probe { .. }));
        let ok = Outcome::Probed {
            ok: true,
            ran_for: SECS10,
        };
        m.handle(done(probe, ok));
        assert_eq!(m.readiness(), Ok(()));
    }

    /// A readiness answer that passes.
    fn ready() -> Outcome {
        Outcome::Probed {
            ok: true,
            ran_for: SECS10,
        }
    }

    /// Found by a review (issue 24, item 5): a probe started just before a
    /// restart answered after it, and its failure counted for the new
    /// child. The new child's start cancels it; its answer is dropped.
    #[test]
    fn a_probe_of_an_earlier_child_is_cancelled_and_its_answer_judges_nobody() {
        let s = Settings {
            ready_interval: Some(Duration::from_secs(1)),
            restart_signal: Some(libc::SIGUSR2),
            ..settings()
        };
        let (mut m, run) = running(s);
        let asked = m.handle(Input::ProbeDue);
        let probe = token_of(&asked, |o| matches!(o, Op::Probe { .. }));
        let looking = m.handle(Input::Signal(libc::SIGUSR2));
        let look = token_of(&looking, |o| *o == Op::Look(LookFor::Restart));
        m.handle(done(look, Outcome::Looked(snap(Some(1)))));
        let exited = Outcome::Exited {
            status: Status::Signaled(libc::SIGTERM),
            ran_for: SECS10,
        };
        let draining = m.handle(done(run, exited));
        let drain = token_of(&draining, |o| *o == Op::Drain);
        let gone = m.handle(done(drain, Outcome::GroupGone));
        let look = token_of(&gone, |o| *o == Op::Look(LookFor::Start));
        let spawning = m.handle(done(look, Outcome::Looked(snap(Some(1)))));
        let spawn = token_of(&spawning, |o| *o == Op::Spawn);
        let started = m.handle(done(spawn, Outcome::Started));
        assert!(
            started.contains(&Request::Cancel { token: probe }),
            "{started:?}"
        );
        let failed = Outcome::Probed {
            ok: false,
            ran_for: SECS10,
        };
        assert_eq!(m.handle(done(probe, failed)), []);
        assert_eq!(
            m.readiness(),
            Err("the readiness probe has not passed yet".into()),
            "the new child was never probed"
        );
        // Its own probe need not wait for the old one, and counts.
        let asked = m.handle(Input::ProbeDue);
        let probe = token_of(&asked, |o| matches!(o, Op::Probe { .. }));
        m.handle(done(probe, ready()));
        assert_eq!(m.readiness(), Ok(()));
    }

    #[test]
    fn a_reload_superseded_in_its_retry_wait_has_the_wait_cancelled() {
        let s = Settings {
            reload_hooks: 1,
            ..settings()
        };
        let (mut m, _) = running(s);
        let first = settle(&mut m, snap(Some(2)));
        let hooks = token_of(&first, |o| matches!(o, Op::Hooks { .. }));
        let failed = m.handle(done(hooks, Outcome::HooksDone { failed: vec![0] }));
        let wait = token_of(&failed, |o| matches!(o, Op::Wait(_)));
        let newer = settle(&mut m, snap(Some(3)));
        assert!(
            newer.contains(&Request::Cancel { token: wait }),
            "{newer:?}"
        );
        token_of(&newer, |o| matches!(o, Op::Hooks { .. }));
        assert_eq!(m.handle(done(wait, Outcome::Elapsed)), []);
    }

    /// The world says what the child does with a reload signal; sending it
    /// (or restarting instead, as it would die of it) is the machine's
    /// decision.
    #[test]
    fn reload_signals_go_only_to_a_child_that_handles_them() {
        let s = Settings {
            reload_signal: Some(libc::SIGHUP),
            ..settings()
        };
        let hup = Request::Signal(libc::SIGHUP, Target::Child);
        let (mut m, _) = running(s.clone());
        let asked = settle(&mut m, snap(Some(2)));
        assert!(!asked.contains(&hup), "{asked:?}");
        let signals = vec![libc::SIGHUP];
        let ask = token_of(&asked, |o| {
            *o == Op::AskHandling {
                signals: signals.clone(),
                to: Target::Child,
            }
        });
        let sent = m.handle(done(ask, Outcome::Handling(None)));
        assert_eq!(sent.first(), Some(&hup), "{sent:?}");

        let (mut m, _) = running(s);
        let asked = settle(&mut m, snap(Some(2)));
        let ask = token_of(&asked, |o| {
            *o == Op::AskHandling {
                signals: signals.clone(),
                to: Target::Child,
            }
        });
        let restart = m.handle(done(ask, Outcome::Handling(Some((libc::SIGHUP, false)))));
        assert!(!restart.contains(&hup), "{restart:?}");
        assert!(
            restart.contains(&Request::Signal(libc::SIGTERM, Target::Child)),
            "restarted instead: {restart:?}"
        );
    }

    /// Found by the machine's property test: without --promote-to, a check
    /// that could not run was retried on the live files while the look at
    /// a burst that had just settled was still out. The files had moved
    /// (2) and moved back (1): the retry judged 2, and the child started
    /// on 1, which no check read. The burst lasts until its look answers.
    #[test]
    fn a_live_check_waits_for_the_look_at_what_a_burst_left() {
        let (mut m, check) = checking_first();
        let retry = m.handle(done(check, Outcome::NotRun("EAGAIN".into())));
        let wait = token_of(&retry, |o| matches!(o, Op::Wait(_)));
        // The files move; the burst settles; its look is out.
        assert_eq!(m.handle(Input::Changed), []);
        let asked = m.handle(Input::Settled);
        let settle = token_of(&asked, |o| *o == Op::Look(LookFor::Settle));
        assert_eq!(
            m.handle(done(wait, Outcome::Elapsed)),
            [],
            "checked unseen bytes"
        );
        // What the look found is what is checked.
        let asked = m.handle(done(settle, Outcome::Looked(snap(Some(2)))));
        token_of(&asked, |o| matches!(o, Op::Check { .. }));
    }

    /// Found by review: the files moved again while the look at a settled
    /// burst was out. Its answer must not start a check of the live files,
    /// which may be mid-write: the new burst's settle does.
    #[test]
    fn a_burst_that_begins_while_its_look_is_out_holds_the_check() {
        let (mut m, check) = checking_first();
        let asked = m.handle(done(check, Outcome::Checked(Verdict::Pass)));
        let look = token_of(&asked, |o| *o == Op::Look(LookFor::Start));
        let asked = m.handle(done(look, Outcome::Looked(snap(Some(1)))));
        let spawn = token_of(&asked, |o| *o == Op::Spawn);
        m.handle(done(spawn, Outcome::Started));
        // A burst settles; the files move again while its look is out.
        assert_eq!(m.handle(Input::Changed), []);
        let asked = m.handle(Input::Settled);
        let settle = token_of(&asked, |o| *o == Op::Look(LookFor::Settle));
        assert_eq!(m.handle(Input::Changed), []);
        let looked = m.handle(done(settle, Outcome::Looked(snap(Some(2)))));
        assert!(
            !looked.iter().any(|r| matches!(
                r,
                Request::Start {
                    op: Op::Check { .. },
                    ..
                }
            )),
            "checked files mid-write: {looked:?}"
        );
        let asked = m.handle(Input::Settled);
        let settle = token_of(&asked, |o| *o == Op::Look(LookFor::Settle));
        let asked = m.handle(done(settle, Outcome::Looked(snap(Some(3)))));
        token_of(&asked, |o| matches!(o, Op::Check { .. }));
    }

    /// Found by review: each restart signal queued a look of its own (and,
    /// with a check, a check started and killed per signal).
    #[test]
    fn a_storm_of_restart_signals_is_two_looks() {
        let s = Settings {
            restart_signal: Some(libc::SIGHUP),
            ..settings()
        };
        let (mut m, _) = running(s);
        let first = m.handle(Input::Signal(libc::SIGHUP));
        let look = token_of(&first, |o| *o == Op::Look(LookFor::Restart));
        for _ in 0..100 {
            assert_eq!(m.handle(Input::Signal(libc::SIGHUP)), []);
        }
        let then = m.handle(done(look, Outcome::Looked(snap(Some(1)))));
        let again = token_of(&then, |o| *o == Op::Look(LookFor::Restart));
        let last = m.handle(done(again, Outcome::Looked(snap(Some(1)))));
        assert!(
            !last.iter().any(|r| matches!(
                r,
                Request::Start {
                    op: Op::Look(_),
                    ..
                }
            )),
            "{last:?}"
        );
    }
}
