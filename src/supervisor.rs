//! The loop: one `futures::select!` (inside `World::wait`) turns the world
//! (child status, signals, notify events, check results, timers) into events
//! for the state machine, and the loop performs the actions it returns.
//!
//! The loop's own decisions (every deadline, the debounce and rate control,
//! probing an exited child's group, starting the watcher, the exit code) are
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
    Action, CommitFailed, Event, Generation, HookCall, Machine, Settings, Status, Target,
};
use crate::timers::{Due, Timers};
use crate::watch::fingerprint::Snapshot;
use log::{debug, info};
use nix::libc;
use std::collections::VecDeque;
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How often the group of an exited child is probed while leftovers remain.
const GROUP_PROBE: Duration = Duration::from_millis(20);

/// Runs the supervisor to completion; returns the manager's exit code.
pub fn run(cfg: Config, cwd: Option<PathBuf>) -> i32 {
    os::run(cfg, cwd)
}

/// What a look at the files is for (its answer says it back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Look {
    /// A polling tick: may the files have changed? (`Wake::Polled`)
    Poll,
    /// The decisive look after the debounce (`Event::ConfigSettled`).
    Settle,
    /// Before a start (`Event::Candidate`).
    Start,
    /// The restart signal arrived (`Event::RestartRequested`).
    Restart,
}

/// What became of a hook (check, reload command or URL) the world started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    /// Its verdict comes later (`Wake::Validated`, `Wake::Reloaded`).
    Running,
    /// It could not start: this is its verdict.
    Finished(bool),
    /// It could not start for a fault of ours (an I/O error before it): no
    /// verdict, to be retried.
    Failed(String),
}

/// What woke the loop.
#[derive(Debug)]
pub enum Wake {
    /// The managed child exited, this long after its start.
    Child { status: Status, ran_for: Duration },
    /// A signal from another process (never one of our own, never SIGCHLD:
    /// the world handles those itself).
    Signal(i32),
    /// The watcher saw something about a config.
    Notify,
    /// A look asked for by `World::look` ended: the config's bytes.
    Looked(Look, Snapshot),
    /// A polling look ended: may the files have changed?
    Polled(bool),
    /// The readiness probe started by `World::probe` for child number
    /// `child` ended; `ran_for`: the child's age then.
    Probed {
        child: u64,
        ok: bool,
        ran_for: Duration,
    },
    /// The staging asked for by `World::stage` ended.
    Staged {
        token: u64,
        result: Result<Generation, String>,
    },
    /// The running check (started with this token) ended.
    Validated { token: u64, ok: bool },
    /// The running reload command or URLs (this token) ended: the hooks
    /// that failed.
    Reloaded { token: u64, failed: Vec<usize> },
    /// The deadline given to `wait` passed.
    Timer,
}

/// Everything the loop does to and learns from the world. The world holds
/// the child's pid and its process group; the loop and the machine name
/// them only as a `Target` (a pid never leaves the world, so nothing here
/// can address a number the kernel has given to another process).
pub trait World {
    fn now(&self) -> Instant;
    /// Starts the watcher (inotify, polling or both); true when anything
    /// is watched.
    fn start_watch(&mut self) -> bool;
    /// The polling interval in force (None: no polling).
    fn poll_interval(&self) -> Option<Duration>;
    /// Starts a look at the files, off the loop (stat and hash work never
    /// delays a signal); its answer is `Wake::Looked`, or `Wake::Polled`.
    /// Looks run one at a time, in the order asked.
    fn look(&mut self, look: Look);
    /// Starts the child in a process group of its own (the group of any
    /// child before is no longer addressed), or says the exit code for a
    /// command that cannot start.
    fn spawn(&mut self) -> Result<(), i32>;
    /// What `sig` would do to the running child: handled (caught or
    /// blocked), ignored, or its default action. None when that cannot be
    /// known, or no child runs.
    fn takes(&self, sig: i32) -> Option<crate::signals::Takes>;
    /// Sends `sig` to the running child, or to the child's process group
    /// (the running child's, or the exited one's until it was found empty);
    /// false when there is none to send it to.
    fn signal(&mut self, to: Target, sig: i32) -> bool;
    /// Is the child (or a member of its group) stopped?
    fn stopped(&self, to: Target) -> bool;
    /// Reaps exited orphans, then: is anyone left in the exited child's
    /// group? Once it is found empty, it is no longer addressed.
    fn group_alive(&mut self) -> bool;
    /// `--promote-to`: copies the sources into a new hidden generation, off
    /// the loop; the answer is `Wake::Staged` with `token`.
    fn stage(&mut self, token: u64);
    /// `--promote-to`: makes `generation` the last good one, then shown;
    /// with `proven`, that one is recorded first as the generation to go
    /// back to (the new one is on probation), else the new one is proven.
    fn commit(&mut self, generation: &str, proven: Option<&str>) -> Result<(), CommitFailed>;
    /// `--promote-to`: the shown generation ran through its probation: it
    /// is recorded as the proven one.
    fn prove(&mut self, generation: &str);
    /// `--promote-to`: removes a candidate (showing the last good again).
    fn discard(&mut self, generation: &str);
    /// `--promote-to`: removes a generation no longer needed.
    fn forget(&mut self, generation: &str);
    /// `--promote-to`: back to the kept generation `to`; `from` is kept as
    /// the rejected one.
    fn roll_back(&mut self, to: &str, from: &str) -> Result<(), String>;
    /// Starts a readiness probe of child number `child` unless one runs;
    /// its answer is `Wake::Probed` with that number.
    fn probe(&mut self, child: u64);
    /// Starts the check of `changed` (of a staged candidate, if given:
    /// where it was staged, or with `in_place`, shown at DIR first); its
    /// verdict is `Wake::Validated` with `token`.
    fn validate(
        &mut self,
        token: u64,
        changed: Vec<PathBuf>,
        candidate: Option<&str>,
        in_place: bool,
    ) -> Started;
    fn cancel_validation(&mut self);
    /// Starts these reload hooks at once (commands run, URLs POSTed),
    /// each told of its files; the verdict is `Wake::Reloaded` with
    /// `token` and the hooks that failed.
    fn run_reload(&mut self, token: u64, calls: Vec<HookCall>) -> Started;
    fn cancel_reload(&mut self);
    /// What `--metrics` and `/readyz` show, read from the machine only
    /// where they are served (this runs at every turn of the loop).
    fn show(&mut self, machine: &Machine);
    /// Last words before exiting with `code`: what is left behind.
    fn report_exit(&mut self, code: i32);
    /// Waits for the next thing that happens, or until `deadline`.
    fn wait(&mut self, deadline: Option<Instant>) -> impl Future<Output = Wake>;
}

/// What the loop needs from the command line.
pub struct LoopConfig {
    pub restart_signal: Option<i32>,
    pub remap_exit: Vec<(i32, i32)>,
    pub debounce: Duration,
    pub debounce_max: Duration,
    pub splay: Duration,
    pub min_interval: Duration,
    /// Seeds the splay: replicas start together, so it must differ per process.
    pub seed: u64,
    /// How often the readiness probe runs while a child does (None: no probe).
    pub ready_interval: Option<Duration>,
}

impl LoopConfig {
    pub fn new(cfg: &Config, seed: u64) -> LoopConfig {
        LoopConfig {
            restart_signal: cfg.restart_signal,
            remap_exit: cfg.remap_exit.clone(),
            debounce: cfg.debounce,
            debounce_max: cfg.debounce_max,
            splay: cfg.splay,
            min_interval: cfg.min_interval,
            seed,
            ready_interval: cfg.ready_interval,
        }
    }
}

/// The loop's own state besides the machine. Whether a child runs, or an
/// exited one's group is awaited, is the machine's to say (its phase); the
/// child itself is the world's.
struct Loop<'w, W: World> {
    world: &'w mut W,
    cfg: LoopConfig,
    machine: Machine,
    /// Look at the exited child's group at the next turn, before waiting:
    /// it may be empty already (just after the exit, or a SIGKILL).
    probe_now: bool,
    /// Every deadline: stop, backoff, debounce, polling, group probe.
    timers: Timers,
}

/// Runs the machine against `world` until it decides to exit; returns the
/// exit code. With `--promote-to`: what the child's directory holds (the
/// last good generation, the bytes a rollback left rejected, the proven
/// generation kept while the last good one is on probation).
pub async fn drive<W: World>(
    world: &mut W,
    cfg: LoopConfig,
    settings: Settings,
    found: Recovered,
) -> i32 {
    let (machine, first) = Machine::new(settings, found.good, found.rejected, found.proven);
    let timers =
        Timers::new(cfg.debounce, cfg.debounce_max).rate(cfg.splay, cfg.min_interval, cfg.seed);
    let mut l = Loop {
        world,
        cfg,
        machine,
        probe_now: false,
        timers,
    };
    let mut actions: VecDeque<Action> = first.into();
    // The watcher (a thread, inotify: milliseconds to set up) starts after
    // the first answer from the world, the look the first start waits for:
    // by then the child is spawned (or its check is running), so the watch
    // is off the child's start-up path. A change between that look and the
    // watch being up is caught by one check at once.
    let (mut woke, mut watching) = (false, false);
    loop {
        if let Some(code) = l.perform_all(&mut actions) {
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
        // GROUP_PROBE until it is.
        if std::mem::take(&mut l.probe_now)
            && let Some(gone) = l.probe_group()
        {
            actions.extend(l.machine.handle(gone));
            continue;
        }
        let deadline = l.next_deadline();
        let wake = l.world.wait(deadline).await;
        woke = true;
        match wake {
            Wake::Child { status, ran_for } => {
                // Its group may be empty already: the group probe
                // (`probe_group`, next in the loop) looks at once.
                l.probe_now = true;
                actions.extend(l.machine.handle(Event::ChildExited { status, ran_for }));
            }
            // The restart signal: the machine decides once it has a look.
            Wake::Signal(sig) if Some(sig) == l.cfg.restart_signal => {
                l.world.look(Look::Restart);
            }
            Wake::Signal(sig) => actions.extend(l.machine.handle(Event::Signal(sig))),
            Wake::Looked(look, now) => {
                let event = match look {
                    Look::Settle => Event::ConfigSettled(now),
                    Look::Start => Event::Candidate(now),
                    Look::Restart => Event::RestartRequested(now),
                    Look::Poll => continue,
                };
                actions.extend(l.machine.handle(event));
            }
            Wake::Probed { child, ok, ran_for } => {
                actions.extend(l.machine.handle(Event::Probed { child, ok, ran_for }));
            }
            Wake::Polled(moved) => {
                if moved && !l.timers.settling() {
                    let now = l.world.now();
                    l.timers.changed(now);
                }
            }
            Wake::Staged { token, result } => {
                actions.extend(l.machine.handle(Event::Staged { token, result }));
            }
            // Take the whole burst as one: a ConfigMap swap is five events.
            Wake::Notify => {
                let now = l.world.now();
                l.timers.changed(now);
            }
            Wake::Validated { token, ok } => {
                actions.extend(l.machine.handle(Event::Validated { token, ok }));
            }
            Wake::Reloaded { token, failed } => {
                actions.extend(l.machine.handle(Event::Reloaded { token, failed }));
            }
            Wake::Timer => {
                for event in l.timers_due() {
                    actions.extend(l.machine.handle(event));
                }
            }
        }
    }
}

impl<W: World> Loop<'_, W> {
    /// Performs what the machine decided (some actions answer at once);
    /// Some(code) when it decided to exit.
    fn perform_all(&mut self, actions: &mut VecDeque<Action>) -> Option<i32> {
        while let Some(action) = actions.pop_front() {
            if let Action::Exit(code) = action {
                return Some(self.exit_code(code));
            }
            if let Some(event) = self.perform(action) {
                actions.extend(self.machine.handle(event));
            }
        }
        None
    }

    fn exit_code(&mut self, code: i32) -> i32 {
        let code = self
            .cfg
            .remap_exit
            .iter()
            .find(|(from, _)| *from == code)
            .map_or(code, |(_, to)| *to);
        self.world.report_exit(code);
        info!("Exiting with code {code}");
        code
    }

    fn next_deadline(&mut self) -> Option<Instant> {
        let now = self.world.now();
        // Polling may start late: when inotify fails after startup.
        self.timers.poll_every(now, self.world.poll_interval());
        let probing = self
            .cfg
            .ready_interval
            .filter(|_| self.machine.child_alive());
        self.timers.ready_every(now, probing);
        self.timers.next()
    }

    fn perform(&mut self, action: Action) -> Option<Event> {
        match action {
            Action::Spawn => {
                self.timers.cancel_backoff();
                // Leftovers that survived SIGKILL are no longer looked at.
                self.timers.probe_group_in(self.world.now(), None);
                match self.world.spawn() {
                    Ok(()) => Some(Event::Spawned),
                    Err(code) => Some(Event::SpawnFailed(code)),
                }
            }
            Action::Fingerprint => {
                self.world.look(Look::Start);
                None
            }
            Action::Signal(sig, to) => self.signal(sig, to),
            Action::Reload(sigs, to) => {
                if !self.machine.child_alive() {
                    return None;
                }
                // Signalling a child that has no handler (yet) kills it, and
                // one that ignores the signal does nothing: then none is
                // sent, and the machine restarts it instead. A blocked
                // signal is read by the child (sigwait, signalfd): handled.
                use crate::signals::Takes;
                if let Some((sig, takes)) =
                    sigs.iter().find_map(|&sig| match self.world.takes(sig) {
                        Some(t @ (Takes::Ignored | Takes::Unhandled)) => Some((sig, t)),
                        _ => None,
                    })
                {
                    return Some(Event::ReloadUnhandled(sig, takes == Takes::Ignored));
                }
                for sig in sigs {
                    self.signal(sig, to);
                }
                Some(Event::ReloadSent)
            }
            Action::ContinueStopped(to) => {
                if self.world.stopped(to) {
                    self.signal(libc::SIGCONT, to);
                }
                None
            }
            Action::KillGroup => self.signal(libc::SIGKILL, Target::Group),
            Action::StopDeadline(after) => {
                self.timers.stop_in(self.world.now(), after);
                None
            }
            Action::Backoff(delay) => {
                self.timers.backoff_in(self.world.now(), delay);
                None
            }
            Action::Stage { token } => {
                self.world.stage(token);
                None
            }
            Action::Commit {
                token,
                generation,
                proven,
            } => Some(Event::Committed {
                token,
                result: self.world.commit(&generation, proven.as_deref()),
            }),
            Action::Prove { generation } => {
                self.world.prove(&generation);
                None
            }
            Action::Discard { generation } => {
                self.world.discard(&generation);
                None
            }
            Action::Forget { generation } => {
                self.world.forget(&generation);
                None
            }
            Action::RollBack { to, from } => Some(Event::RolledBack {
                result: self.world.roll_back(&to, &from),
            }),
            Action::ProbationDeadline(d) => {
                self.timers.probation_in(self.world.now(), d);
                None
            }
            Action::StartUpDeadline { child, after } => {
                self.timers
                    .started_up_in(self.world.now(), Some(after), child);
                None
            }
            Action::Validate {
                token,
                changed,
                candidate,
                in_place,
            } => match self
                .world
                .validate(token, changed, candidate.as_deref(), in_place)
            {
                Started::Running => None,
                Started::Finished(ok) => Some(Event::Validated { token, ok }),
                Started::Failed(reason) => Some(Event::CannotCheck { token, reason }),
            },
            Action::CancelValidation => {
                self.world.cancel_validation();
                None
            }
            Action::RunReload { token, calls } => {
                let hooks: Vec<usize> = calls.iter().map(|c| c.hook).collect();
                match self.world.run_reload(token, calls) {
                    Started::Running => None,
                    Started::Failed(_) => Some(Event::Reloaded {
                        token,
                        failed: hooks,
                    }),
                    Started::Finished(ok) => Some(Event::Reloaded {
                        token,
                        failed: if ok { vec![] } else { hooks },
                    }),
                }
            }
            Action::RetryAfter { token, after } => {
                self.timers.retry_in(self.world.now(), after, token);
                None
            }
            Action::CancelReload => {
                self.world.cancel_reload();
                None
            }
            Action::Acted => {
                self.timers.acted(self.world.now());
                None
            }
            Action::Exit(_) => None,
        }
    }

    /// Signals the running child, or the current (or exited child's)
    /// process group, if any.
    fn signal(&mut self, sig: i32, to: Target) -> Option<Event> {
        if !self.world.signal(to, sig) {
            debug!("No child to send {} to", signals::name(sig));
        } else if to == Target::Group {
            // The leftovers may be gone at once (SIGKILL): look now.
            self.probe_now |= self.machine.awaits_group();
        }
        None
    }

    /// While the machine awaits the exited child's group: `GroupGone` once
    /// it is empty, else the next look armed.
    fn probe_group(&mut self) -> Option<Event> {
        let now = self.world.now();
        if self.machine.awaits_group() && self.world.group_alive() {
            self.timers.probe_group_in(now, Some(GROUP_PROBE));
            return None;
        }
        self.timers.probe_group_in(now, None);
        self.machine.awaits_group().then_some(Event::GroupGone)
    }

    fn timers_due(&mut self) -> Vec<Event> {
        let now = self.world.now();
        let mut events = vec![];
        for due in self.timers.due(now) {
            match due {
                Due::Stop => events.push(Event::StopDeadline),
                Due::Backoff => events.push(Event::BackoffOver),
                Due::Poll => self.world.look(Look::Poll),
                Due::Retry(token) => events.push(Event::RetryDue { token }),
                Due::Settle => self.world.look(Look::Settle),
                Due::Probation => events.push(Event::ProbationOver),
                Due::StartedUp(child) => events.push(Event::StartedUp { child }),
                Due::Ready => self.world.probe(self.machine.child()),
                Due::GroupProbe => events.extend(self.probe_group()),
            }
        }
        events
    }
}
