//! Property tests of the machine and its config gate: random settings and
//! random event sequences (config changes, touches, child exits, signals,
//! validation and reload results, timer expiries, in any order), played
//! against a small model of the world that answers the machine's actions as
//! the edge would. After every step and once everything pending has been
//! let through, the invariants below must hold.
//!
//! The model's config is one file with a version number; version `BAD` is
//! the one the validator rejects.

use super::*;
use proptest::prelude::*;
use std::collections::VecDeque;

const BAD: u64 = 3;
const HUP: i32 = libc::SIGHUP;

fn snap(version: u64) -> Snapshot {
    super::testkit::snap(Some(version))
}

/// One step of the world.
#[derive(Debug, Clone)]
enum Op {
    /// The file settles on new bytes (or the same: a touch).
    Change(u64),
    Touch,
    /// The child exits on its own.
    ChildExits(i32),
    /// A signal from outside.
    Signal(i32),
    /// The restart signal.
    RestartRequest,
    /// The child installs its signal handlers.
    ChildReady,
    /// The next children ignore SIGTERM (only SIGKILL ends them).
    Stubborn(bool),
    /// The oldest running validation ends (its verdict is the model's).
    FinishValidation,
    /// The running reload command or URL ends.
    FinishReload(bool),
    /// The reaper reports the exited child, then its empty group.
    ReportExit,
    ReportGroupGone,
    FireStopDeadline,
    FireBackoff,
    FireRetry,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u64..5).prop_map(Op::Change),
        1 => Just(Op::Touch),
        1 => (0i32..3).prop_map(Op::ChildExits),
        2 => prop::sample::select(vec![
            libc::SIGHUP,
            libc::SIGUSR1,
            libc::SIGWINCH,
            libc::SIGQUIT,
            libc::SIGTERM,
            libc::SIGINT,
        ])
        .prop_map(Op::Signal),
        1 => Just(Op::RestartRequest),
        2 => Just(Op::ChildReady),
        1 => any::<bool>().prop_map(Op::Stubborn),
        3 => Just(Op::FinishValidation),
        2 => any::<bool>().prop_map(Op::FinishReload),
        3 => Just(Op::ReportExit),
        3 => Just(Op::ReportGroupGone),
        2 => Just(Op::FireStopDeadline),
        2 => Just(Op::FireBackoff),
        1 => Just(Op::FireRetry),
    ]
}

#[derive(Debug, Clone, Copy)]
enum ReloadBy {
    Restart,
    Signal,
    External,
}

fn settings() -> impl Strategy<Value = Settings> {
    (
        any::<bool>(),
        prop::sample::select(vec![
            ReloadBy::Restart,
            ReloadBy::Signal,
            ReloadBy::External,
        ]),
        prop::sample::select(vec![Policy::Never, Policy::OnFailure, Policy::Always]),
        prop::option::of(0u32..4),
        prop::sample::select(vec![0u64, 5]),
        1u64..120,
        any::<bool>(),
    )
        .prop_map(
            |(validate, by, restart, max_restarts, delay, timeout, group)| Settings {
                stop_signal: libc::SIGTERM,
                stop_timeout: Duration::from_secs(timeout),
                stop_delay: Duration::from_secs(delay),
                reload_signal: matches!(by, ReloadBy::Signal).then_some(HUP),
                restart,
                max_restarts,
                validate,
                signal_to: if group { Target::Group } else { Target::Child },
                map_signal: vec![],
                interactive: false,
                promote: false,
                last_good: false,
                reload_external: matches!(by, ReloadBy::External),
            },
        )
}

#[derive(Debug)]
struct Child {
    /// The config version it runs with (started on, or last reloaded for).
    version: u64,
    ready: bool,
    stubborn: bool,
}

/// The world as the edge would show it to the machine.
#[derive(Debug)]
struct World {
    settings: Settings,
    disk: u64,
    child: Option<Child>,
    /// Died; the reaper has not reported it yet.
    exit_pending: Option<Status>,
    /// Reported; its group is not yet reported gone.
    group_pending: bool,
    stubborn: bool,
    validations: VecDeque<(u64, u64)>,
    /// The external reload running: its token and the version it is for.
    reload: Option<(u64, u64)>,
    retries: Vec<u64>,
    last_reload_token: u64,
    stop_armed: bool,
    /// SIGKILL was sent to the group: it is gone long before the kill
    /// grace runs out (only a process stuck in the kernel outlives it).
    killed: bool,
    backoff_armed: bool,
    exited: Option<i32>,
    /// SIGTERM or SIGINT arrived: what is left of the time the manager may
    /// still arm before it exits.
    shutdown_budget: Option<Duration>,
    /// The first child has started (a rejected config then holds).
    started: bool,
}

impl World {
    fn new(settings: Settings) -> World {
        World {
            settings,
            disk: 0,
            child: None,
            exit_pending: None,
            group_pending: false,
            stubborn: false,
            validations: VecDeque::new(),
            reload: None,
            retries: vec![],
            last_reload_token: 0,
            stop_armed: false,
            killed: false,
            backoff_armed: false,
            exited: None,
            shutdown_budget: None,
            started: false,
        }
    }

    fn good(&self, version: u64) -> bool {
        !self.settings.validate || version != BAD
    }

    /// Feeds `event`, performs the actions it yields (and the events they
    /// answer at once), checking the invariants at each.
    fn feed(&mut self, m: &mut Machine, event: Event) -> Result<(), TestCaseError> {
        let mut queue = VecDeque::from([event]);
        while let Some(event) = queue.pop_front() {
            let actions = m.handle(event.clone());
            for action in actions {
                prop_assert!(
                    self.exited.is_none(),
                    "{action:?} after Exit (event {event:?})"
                );
                if let Some(answer) = self.perform(action)? {
                    queue.push_back(answer);
                }
            }
        }
        Ok(())
    }

    fn kill_child(&mut self, status: Status) {
        if self.child.take().is_some() {
            self.exit_pending = Some(status);
        }
    }

    fn perform(&mut self, action: Action) -> Result<Option<Event>, TestCaseError> {
        match action {
            Action::Spawn => {
                prop_assert!(
                    self.child.is_none() && self.exit_pending.is_none() && !self.group_pending,
                    "a second child"
                );
                prop_assert!(
                    self.shutdown_budget.is_none(),
                    "a child started after SIGTERM"
                );
                prop_assert!(
                    self.good(self.disk),
                    "a child started on bytes the validator rejects"
                );
                self.child = Some(Child {
                    version: self.disk,
                    ready: false,
                    stubborn: self.stubborn,
                });
                self.started = true;
                self.killed = false;
                Ok(Some(Event::Spawned(snap(self.disk))))
            }
            Action::Fingerprint => Ok(Some(Event::Candidate(snap(self.disk)))),
            Action::Promote => Ok(None),
            Action::Signal(sig, _) => {
                if let Some(c) = &self.child {
                    let dies = match sig {
                        libc::SIGKILL => true,
                        libc::SIGTERM | libc::SIGINT | libc::SIGQUIT => !c.stubborn,
                        // No handler yet: the default action ends it.
                        libc::SIGHUP | libc::SIGUSR1 => !c.ready,
                        _ => false,
                    };
                    if dies {
                        self.kill_child(Status::Signaled(sig));
                    }
                }
                Ok(None)
            }
            Action::Reload(sig, _) => match &mut self.child {
                Some(c) if !c.ready => Ok(Some(Event::ReloadUnhandled(sig))),
                Some(c) => {
                    prop_assert_ne!(c.version, self.disk, "a reload signal for unchanged bytes");
                    c.version = self.disk;
                    Ok(None)
                }
                None => Ok(None),
            },
            Action::KillGroup => {
                self.killed = true;
                self.kill_child(Status::Signaled(libc::SIGKILL));
                Ok(None)
            }
            Action::StopDeadline(Some(d)) => {
                prop_assert!(d <= Duration::from_secs(3600), "deadline {d:?}");
                if let Some(budget) = &mut self.shutdown_budget {
                    *budget = budget.checked_sub(d).ok_or_else(|| {
                        TestCaseError::fail(format!(
                            "after SIGTERM the deadlines exceed stop-delay + stop-timeout + kill grace ({d:?} more)"
                        ))
                    })?;
                }
                self.stop_armed = true;
                Ok(None)
            }
            Action::StopDeadline(None) => {
                self.stop_armed = false;
                Ok(None)
            }
            Action::Backoff(d) => {
                prop_assert!(d <= BACKOFF_MAX, "backoff {d:?}");
                prop_assert!(self.shutdown_budget.is_none(), "a backoff after SIGTERM");
                self.backoff_armed = true;
                Ok(None)
            }
            Action::Validate { token, .. } => {
                self.validations.push_back((token, self.disk));
                Ok(None)
            }
            Action::CancelValidation => {
                prop_assert!(!self.validations.is_empty(), "cancelling no validation");
                self.validations.clear();
                Ok(None)
            }
            Action::RunReload { token, .. } => {
                if token != self.last_reload_token {
                    // A new reload: for bytes the child does not have yet.
                    // (A child that died unreported cannot be known of: its
                    // exit cancels the reload when it is reported.)
                    if let Some(c) = self.child.as_mut() {
                        prop_assert_ne!(c.version, self.disk, "a reload for unchanged bytes");
                        c.version = self.disk;
                    }
                    self.last_reload_token = token;
                }
                self.reload = Some((token, self.disk));
                Ok(None)
            }
            Action::RetryReload { token, after } => {
                prop_assert!(after <= BACKOFF_MAX, "retry after {after:?}");
                self.reload = None;
                self.retries.push(token);
                Ok(None)
            }
            Action::CancelReload => {
                self.reload = None;
                self.retries.clear();
                Ok(None)
            }
            Action::Exit(code) => {
                self.exited = Some(code);
                self.validations.clear();
                Ok(None)
            }
        }
    }

    fn step(&mut self, m: &mut Machine, op: Op) -> Result<(), TestCaseError> {
        if self.exited.is_some() {
            return Ok(());
        }
        match op {
            Op::Change(v) => {
                self.disk = v;
                self.feed(m, Event::ConfigSettled(snap(v)))?;
            }
            Op::Touch => {
                let quiet = self.validations.is_empty()
                    && self.reload.is_none()
                    && self.retries.is_empty()
                    && self.child.as_ref().is_some_and(|c| c.version == self.disk);
                let before = m.stats().clone();
                let actions = m.handle(Event::ConfigSettled(snap(self.disk)));
                if quiet && m.phase == Phase::Running {
                    prop_assert!(actions.is_empty(), "unchanged bytes caused {actions:?}");
                    prop_assert_eq!(&before, m.stats());
                }
                for a in actions {
                    if let Some(answer) = self.perform(a)? {
                        self.feed(m, answer)?;
                    }
                }
            }
            Op::ChildExits(code) => self.kill_child(Status::Exited(code)),
            Op::Signal(sig) => {
                if is_shutdown(sig) && self.shutdown_budget.is_none() {
                    let s = &self.settings;
                    self.shutdown_budget = Some(s.stop_delay + s.stop_timeout + KILL_GRACE);
                }
                self.feed(m, Event::Signal(sig))?;
            }
            Op::RestartRequest => self.feed(m, Event::RestartRequested(snap(self.disk)))?,
            Op::ChildReady => {
                if let Some(c) = &mut self.child {
                    c.ready = true;
                }
            }
            Op::Stubborn(b) => self.stubborn = b,
            Op::FinishValidation => {
                if let Some((token, version)) = self.validations.pop_front() {
                    let ok = version != BAD;
                    self.feed(m, Event::Validated { token, ok })?;
                }
            }
            Op::FinishReload(ok) => {
                if let Some((token, _)) = self.reload.take() {
                    self.feed(m, Event::Reloaded { token, ok })?;
                }
            }
            Op::ReportExit => {
                if let Some(status) = self.exit_pending.take() {
                    self.group_pending = true;
                    let ran_for = Duration::from_secs(1);
                    self.feed(m, Event::ChildExited { status, ran_for })?;
                }
            }
            Op::ReportGroupGone => {
                if self.group_pending && self.exit_pending.is_none() {
                    self.group_pending = false;
                    self.feed(m, Event::GroupGone)?;
                }
            }
            Op::FireStopDeadline => {
                if self.killed {
                    self.step(m, Op::ReportExit)?;
                    self.step(m, Op::ReportGroupGone)?;
                }
                if std::mem::take(&mut self.stop_armed) {
                    self.feed(m, Event::StopDeadline)?;
                }
            }
            Op::FireBackoff => {
                if std::mem::take(&mut self.backoff_armed) {
                    self.feed(m, Event::BackoffOver)?;
                }
            }
            Op::FireRetry => {
                if let Some(token) = self.retries.pop() {
                    self.feed(m, Event::ReloadRetryDue { token })?;
                }
            }
        }
        Ok(())
    }

    /// Lets everything pending happen, with no new change or signal: the
    /// child becomes ready, results come in (reloads succeed), the reaper
    /// reports, timers fire. Returns once nothing is pending.
    fn settle(&mut self, m: &mut Machine) -> Result<(), TestCaseError> {
        for _ in 0..200 {
            if self.exited.is_some() {
                return Ok(());
            }
            if let Some(c) = &mut self.child {
                c.ready = true;
            }
            let op = if !self.validations.is_empty() {
                Op::FinishValidation
            } else if self.reload.is_some() {
                Op::FinishReload(true)
            } else if !self.retries.is_empty() {
                Op::FireRetry
            } else if self.exit_pending.is_some() {
                Op::ReportExit
            } else if self.group_pending {
                Op::ReportGroupGone
            } else if self.backoff_armed {
                Op::FireBackoff
            } else if self.stop_armed {
                Op::FireStopDeadline
            } else {
                return Ok(());
            };
            self.step(m, op)?;
        }
        Err(TestCaseError::fail("never settled in 200 steps"))
    }

    /// Once nothing is pending: the manager has exited, or a child runs on
    /// the newest bytes (none lost), or the newest bytes were rejected and
    /// the manager waits for a fix.
    fn check_settled(&self, m: &Machine) -> Result<(), TestCaseError> {
        if self.shutdown_budget.is_some() {
            prop_assert!(self.exited.is_some(), "SIGTERM, and still running");
        }
        if self.exited.is_some() {
            return Ok(());
        }
        match &self.child {
            Some(c) if self.good(self.disk) => {
                prop_assert_eq!(c.version, self.disk, "a settled change was lost");
                prop_assert_eq!(&m.phase, &Phase::Running);
            }
            Some(c) => prop_assert!(self.good(c.version), "the child runs on rejected bytes"),
            None => {
                prop_assert!(!self.good(self.disk), "no child, and nothing holds it back");
                prop_assert_eq!(&m.phase, &Phase::Held);
            }
        }
        Ok(())
    }
}

fn run(settings: Settings, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut w = World::new(settings.clone());
    let (mut m, first) = Machine::new(settings, snap(0));
    for a in first {
        if let Some(answer) = w.perform(a)? {
            w.feed(&mut m, answer)?;
        }
    }
    for op in ops {
        w.step(&mut m, op)?;
    }
    w.settle(&mut m)?;
    w.check_settled(&m)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn the_machine_keeps_its_invariants(s in settings(), ops in prop::collection::vec(op(), 0..60)) {
        run(s, ops)?;
    }
}
