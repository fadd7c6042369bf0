//! The loop: one `futures::select!` (inside `World::wait`) turns the world
//! (answers to the machine's operations, signals, notify events, timers)
//! into inputs for the state machine, and the loop performs the requests it
//! returns.
//!
//! The loop's own decisions (the debounce and rate control, polling ticks,
//! the readiness interval, checking an exited child's group while the
//! machine awaits it, starting the watcher) are
//! here, generic over `World`: `os::Os` is the real one (processes, signalfd,
//! inotify, files); the tests' `fake::Fake` is a scripted one on a virtual
//! clock, so the real loop runs in unit tests in milliseconds.

mod looks;
mod os;

#[cfg(test)]
mod fake;

use crate::cli::Config;
use crate::promote::Recovered;
use crate::signals;
use crate::state::{
    CommitFailed, HookCall, Input, LookFor, Machine, Op, Outcome, Promoted, Request, Settings,
    Target, Token,
};
use crate::timers::{Due, Timers};
use log::{debug, info};
use nix::libc;
use std::collections::VecDeque;
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How often the group of an exited child is checked while leftovers remain.
const GROUP_CHECK: Duration = Duration::from_millis(20);

/// Runs the supervisor to completion; returns the manager's exit code.
pub fn run(cfg: Config, cwd: Option<PathBuf>) -> i32 {
    os::run(cfg, cwd)
}

/// A look at the files: a polling tick of the loop's own (may the files
/// have changed? `Wake::Polled`), or the machine's `Op::Look` with its
/// token (`Wake::Done`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Look {
    Poll,
    Asked(Token, LookFor),
}

/// What woke the loop.
#[derive(Debug)]
pub enum Wake {
    /// The answer to the machine's operation `token`.
    Done { token: Token, outcome: Outcome },
    /// A signal from another process (never one of our own, never SIGCHLD:
    /// the world handles those itself).
    Signal(i32),
    /// The watcher saw something about a config.
    Notify,
    /// A polling look ended: may the files have changed?
    Polled(bool),
    /// The deadline given to `wait` passed.
    Timer,
}

/// Everything the loop does to and learns from the world. The world holds
/// the child's pid and its process group; the loop and the machine name
/// them only as a `Target` (a pid never leaves the world, so nothing here
/// can address a number the kernel has given to another process).
///
/// What the world promises the machine: each operation started is answered
/// once (`Wake::Done` with its token, or at once by the method that started
/// it) unless it was cancelled; an answer says what happened, never what to
/// do about it; looks run one at a time, in the order asked; a cancelled
/// operation's processes are killed with their group.
pub trait World {
    fn now(&self) -> Instant;
    /// Starts the watcher (inotify, polling or both); true when anything
    /// is watched.
    fn start_watch(&mut self) -> bool;
    /// The polling interval in force (None: no polling).
    fn poll_interval(&self) -> Option<Duration>;
    /// Starts a look at the files, off the loop (stat and hash work never
    /// delays a signal); its answer is `Wake::Polled`, or for the machine's
    /// look, `Wake::Done`. Looks run one at a time, in the order asked.
    fn look(&mut self, look: Look);
    // The machine's operations the world performs (the loop keeps `Wait`
    // and `Drain`; `Look` is `look`), routed by `Loop::start`. Those
    // with a token answer later with `Wake::Done`, or at once (Some).
    /// Spawns the child; Err: the exit code for a command that cannot start.
    fn spawn(&mut self) -> Result<(), i32>;
    /// The spawned child's end is answered `Exited` with `token`.
    fn run(&mut self, token: Token);
    /// `--promote-to`: copies the config into a new generation: `Staged`.
    fn stage(&mut self, token: Token);
    /// Runs the check on the live config or on `candidate`: `Checked`.
    fn validate(
        &mut self,
        token: Token,
        changed: Vec<PathBuf>,
        candidate: Option<&str>,
        in_place: bool,
        timeout: Duration,
    ) -> Option<Outcome>;
    /// `--promote-to`: `generation` becomes the last good one, then what
    /// the child sees (`now`: what the directory holds before): `Committed`.
    fn commit(
        &mut self,
        generation: &str,
        proven: Option<&str>,
        now: &Promoted,
    ) -> Result<(), CommitFailed>;
    fn roll_back(&mut self, to: &str, from: &str) -> Result<(), CommitFailed>;
    /// The first of `sigs` the running child (with `Target::Group`: any
    /// member of its group) does not handle (true: it ignores it); None:
    /// they all handle them all.
    fn handling(&self, sigs: &[i32], to: Target) -> Option<(i32, bool)>;
    /// Runs the reload hooks: `HooksDone`.
    fn run_hooks(
        &mut self,
        token: Token,
        calls: Vec<HookCall>,
        timeout: Duration,
    ) -> Option<Outcome>;
    /// One readiness probe, given `timeout`: `Probed`.
    fn probe(&mut self, token: Token, timeout: Duration) -> Option<Outcome>;
    /// The answer to `token` no longer matters: its processes go.
    fn cancel(&mut self, token: Token);
    /// Sends `sig` to the running child, or to the child's process group
    /// (the running child's, or the exited one's until it was found empty);
    /// false when there is none to send it to.
    fn signal(&mut self, to: Target, sig: i32) -> bool;
    /// Is the child (or a member of its group) stopped?
    fn stopped(&self, to: Target) -> bool;
    /// Reaps exited orphans, then: is anyone left in the exited child's
    /// group? Once it is found empty, it is no longer addressed.
    fn group_alive(&mut self) -> bool;
    /// `--promote-to`: the shown generation ran through its probation: it
    /// is recorded as the proven one.
    fn prove(&mut self, generation: &str);
    /// `--promote-to`: removes a candidate (the view shows `now.view`
    /// again if the candidate was shown in place): `Dropped`, Err while
    /// the view still shows it.
    fn drop_candidate(&mut self, generation: &str, now: &Promoted) -> Result<(), String>;
    /// `--promote-to`: removes a generation no longer needed.
    fn remove_generation(&mut self, generation: &str);
    /// `--promote-to`: `..rejected` names `generation` no more; it goes.
    fn unreject(&mut self, generation: &str);
    /// What `--metrics` and `/readyz` show, read from the machine only
    /// where they are served (this runs at every turn of the loop).
    fn show(&mut self, machine: &Machine);
    /// Last words before exiting with `code`: what is left behind.
    fn report_exit(&mut self, code: i32);
    /// Waits for the next thing that happens, or until `deadline`.
    fn wait(&mut self, deadline: Option<Instant>) -> impl Future<Output = Wake>;
}

/// How the loop paces actions on config changes: the debounce, and
/// `--splay` and `--min-interval` (the timers' business, not the machine's:
/// everything else the loop needs it asks the machine).
pub struct Pacing {
    pub debounce: Duration,
    pub debounce_max: Duration,
    pub splay: Duration,
    pub min_interval: Duration,
    /// Seeds the splay: replicas start together, so it must differ per process.
    pub seed: u64,
}

impl Pacing {
    pub fn new(cfg: &Config, seed: u64) -> Pacing {
        Pacing {
            debounce: cfg.debounce,
            debounce_max: cfg.debounce_max,
            splay: cfg.splay,
            min_interval: cfg.min_interval,
            seed,
        }
    }
}

/// The loop's own state besides the machine. Whether a child runs is the
/// machine's to say (its phase); the child itself is the world's.
struct Loop<'w, W: World> {
    world: &'w mut W,
    machine: Machine,
    /// The machine's `Op::Drain` in flight: the exited child's group is
    /// looked at every GROUP_CHECK until empty.
    drain: Option<Token>,
    /// Look at that group at the next turn, before waiting: it may be
    /// empty already (just after the exit, or a SIGKILL).
    check_group_now: bool,
    /// Every deadline: the machine's waits, the debounce, polling, the
    /// readiness interval, the group check.
    timers: Timers,
}

/// Runs the machine against `world` until it decides to exit; returns the
/// exit code. With `--promote-to`: what the child's directory holds (the
/// last good generation, the bytes a rollback left rejected, the proven
/// generation kept while the last good one is on probation).
pub async fn drive<W: World>(
    world: &mut W,
    pace: Pacing,
    settings: Settings,
    found: Recovered,
) -> i32 {
    let (machine, first) = Machine::boot(settings, found.good, found.rejected, found.proven);
    let timers = Timers::new(pace.debounce, pace.debounce_max).rate(
        pace.splay,
        pace.min_interval,
        pace.seed,
    );
    let mut l = Loop {
        world,
        machine,
        drain: None,
        check_group_now: false,
        timers,
    };
    let mut requests: VecDeque<Request> = first.into();
    // The watcher (a thread, inotify: milliseconds to set up) starts after
    // the first answer from the world, the look the first start waits for:
    // by then the child is spawned (or its check is running), so the watch
    // is off the child's start-up path. A change between that look and the
    // watch being up is caught by one check at once.
    let (mut woke, mut watching) = (false, false);
    loop {
        if let Some(code) = l.perform_all(&mut requests) {
            return code;
        }
        if woke && !watching {
            watching = true;
            if l.world.start_watch() {
                let now = l.world.now();
                l.timers.settle_now(now);
            }
        }
        l.world.show(&l.machine);
        // Just after the child's exit (and the signals to its leftovers):
        // is its group empty already? Later looks come due every
        // GROUP_CHECK until it is.
        if std::mem::take(&mut l.check_group_now)
            && let Some(gone) = l.check_group()
        {
            requests.extend(l.machine.handle(gone));
            continue;
        }
        let deadline = l.next_deadline();
        let wake = l.world.wait(deadline).await;
        woke = true;
        let input = match wake {
            Wake::Done { token, outcome } => Input::Done { token, outcome },
            // The restart signal: the machine decides once it has a look.
            Wake::Signal(sig) => Input::Signal(sig),
            Wake::Polled(moved) => {
                if !moved || l.timers.settling() {
                    continue;
                }
                let now = l.world.now();
                l.timers.changed(now);
                Input::Changed
            }
            // Take the whole burst as one: a ConfigMap swap is five events.
            // The machine hears of its first (a check reading the live files
            // now may read them mid-write) and, later, of its settle.
            Wake::Notify => {
                let first = !l.timers.settling();
                let now = l.world.now();
                l.timers.changed(now);
                if !first {
                    continue;
                }
                Input::Changed
            }
            Wake::Timer => {
                for input in l.timers_due() {
                    requests.extend(l.machine.handle(input));
                }
                continue;
            }
        };
        requests.extend(l.machine.handle(input));
    }
}

impl<W: World> Loop<'_, W> {
    /// Performs what the machine asked (some answers come at once);
    /// Some(code) when it decided to exit.
    fn perform_all(&mut self, requests: &mut VecDeque<Request>) -> Option<i32> {
        while let Some(request) = requests.pop_front() {
            if let Request::Exit(code) = request {
                return Some(self.exit_code(code));
            }
            if let Some(input) = self.perform(request) {
                requests.extend(self.machine.handle(input));
            }
        }
        None
    }

    fn exit_code(&mut self, code: i32) -> i32 {
        self.world.report_exit(code);
        info!("Exiting with code {code}");
        code
    }

    fn next_deadline(&mut self) -> Option<Instant> {
        let now = self.world.now();
        // Polling may start late: when inotify fails after startup.
        self.timers.poll_every(now, self.world.poll_interval());
        self.timers.ready_every(now, self.machine.probe_every());
        self.timers.next()
    }

    fn perform(&mut self, request: Request) -> Option<Input> {
        let now = self.world.now();
        match request {
            Request::Start { token, op } => {
                let outcome = self.start(now, token, op)?;
                Some(Input::Done { token, outcome })
            }
            Request::Cancel { token } => {
                if self.drain == Some(token) {
                    self.drain = None;
                    self.timers.check_group_in(now, None);
                } else if !self.timers.cancel(token) {
                    self.world.cancel(token);
                }
                None
            }
            Request::Signal(sig, to) => self.signal(sig, to),
            Request::ContinueStopped(to) => {
                if self.world.stopped(to) {
                    self.signal(libc::SIGCONT, to);
                }
                None
            }
            Request::KillGroup => self.signal(libc::SIGKILL, Target::Group),
            Request::Prove { generation } => {
                self.world.prove(&generation);
                None
            }
            Request::RemoveGeneration { generation } => {
                self.world.remove_generation(&generation);
                None
            }
            Request::Unreject { generation } => {
                self.world.unreject(&generation);
                None
            }
            Request::Acted => {
                self.timers.acted(now);
                None
            }
            Request::Exit(_) => None,
        }
    }

    /// Starts the machine's operation `token`: the deadlines and the
    /// group's drain are the loop's, the rest the world's. Some: its
    /// answer, at once (it could not start, or took no time).
    fn start(&mut self, now: Instant, token: Token, op: Op) -> Option<Outcome> {
        let w = &mut *self.world;
        match op {
            Op::Wait(after) => {
                self.timers.wait(now, after, token);
                None
            }
            Op::Drain => {
                self.drain = Some(token);
                self.check_group_now = true;
                None
            }
            Op::Look(why) => {
                w.look(Look::Asked(token, why));
                None
            }
            Op::Spawn => Some(match w.spawn() {
                Ok(()) => Outcome::Started,
                Err(code) => Outcome::NotStarted(code),
            }),
            Op::Run => {
                w.run(token);
                None
            }
            Op::Stage => {
                w.stage(token);
                None
            }
            Op::Check {
                changed,
                candidate,
                in_place,
                timeout,
            } => w.validate(token, changed, candidate.as_deref(), in_place, timeout),
            Op::Commit { generation, proven } => {
                let now = self.machine.promoted();
                Some(Outcome::Committed(w.commit(
                    &generation,
                    proven.as_deref(),
                    &now,
                )))
            }
            Op::RollBack { to, from } => Some(Outcome::RolledBack(w.roll_back(&to, &from))),
            Op::Drop { generation } => {
                let now = self.machine.promoted();
                Some(Outcome::Dropped(w.drop_candidate(&generation, &now)))
            }
            Op::AskHandling { signals, to } => Some(Outcome::Handling(w.handling(&signals, to))),
            Op::Hooks { calls, timeout } => w.run_hooks(token, calls, timeout),
            Op::Probe { timeout } => w.probe(token, timeout),
        }
    }

    /// Signals the running child, or the current (or exited child's)
    /// process group, if any.
    fn signal(&mut self, sig: i32, to: Target) -> Option<Input> {
        if !self.world.signal(to, sig) {
            debug!("No child to send {} to", signals::name(sig));
        } else if to == Target::Group {
            // The leftovers may be gone at once (SIGKILL): look now.
            self.check_group_now |= self.drain.is_some();
        }
        None
    }

    /// While the machine awaits the exited child's group: its answer once
    /// the group is empty, else the next look armed.
    fn check_group(&mut self) -> Option<Input> {
        let now = self.world.now();
        let token = self.drain?;
        if self.world.group_alive() {
            self.timers.check_group_in(now, Some(GROUP_CHECK));
            return None;
        }
        self.drain = None;
        self.timers.check_group_in(now, None);
        Some(Input::Done {
            token,
            outcome: Outcome::GroupGone,
        })
    }

    fn timers_due(&mut self) -> Vec<Input> {
        let now = self.world.now();
        let mut inputs = vec![];
        for due in self.timers.due(now) {
            match due {
                Due::Elapsed(token) => inputs.push(Input::Done {
                    token,
                    outcome: Outcome::Elapsed,
                }),
                Due::Poll => self.world.look(Look::Poll),
                Due::Settle => inputs.push(Input::Settled),
                Due::Ready => inputs.push(Input::ProbeDue),
                Due::GroupCheck => inputs.extend(self.check_group()),
            }
        }
        inputs
    }
}
