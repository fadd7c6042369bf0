//! Property tests of the machine and its config gate: random settings and
//! random event sequences (config changes, touches, child exits, signals,
//! validation and reload results, checks that cannot start, timer expiries,
//! in any order), played
//! against the shared model of the world (`model.rs`), which answers the
//! machine's requests as the edge would. The machine is driven as the loop
//! drives it, through its one protocol (`handle`: inputs in, requests out,
//! every answer by its token), so its table of operations in flight and
//! its dropping of stale answers are under test too. After every step and
//! once everything pending has been let through, the invariants below (and
//! the model's own) must hold.
//!
//! `app.conf` always takes the global action; `notes.txt` may have an
//! `--on-change` rule of its own (none, restart, another signal, a hook of
//! its own or a global one).

use super::lifecycle::is_shutdown;
use super::model::{APP, Model, NOTES, Procs, app, notes, snap};
use super::protocol::{Op as Ask, Rec};
use super::*;
use crate::route::{Act, Routes, Rule};
use crate::signals::Takes;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ops::{Deref, DerefMut};
use std::time::Instant;

const HUP: i32 = libc::SIGHUP;
/// The restart signal, where one is set (never sent by `Op::Signal`).
const RESTART: i32 = libc::SIGUSR2;

/// What a burst asks for, as the model works it out on its own.
#[derive(Debug, Default, PartialEq)]
struct Expected {
    restart: bool,
    signals: BTreeSet<i32>,
    hooks: BTreeMap<usize, Vec<PathBuf>>,
}

/// One step of the world.
#[derive(Debug, Clone)]
enum Op {
    /// The file settles on new bytes (or the same: a touch); `at_once`:
    /// the look that follows answers before anything else happens (else it
    /// runs on, and the machine acts on older bytes meanwhile).
    Change {
        version: u64,
        at_once: bool,
    },
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
    /// Ctrl-C on the terminal: with one (`interactive`), SIGINT to the
    /// child's process group, which holds the terminal.
    CtrlC,
    /// With `--signal-to group`: the child's group holds one more process,
    /// and this is what the reload signal would do to it (None: no worker).
    Worker(Option<Takes>),
    /// The oldest running validation ends (its verdict is the model's).
    FinishValidation,
    /// The oldest staging running (off the loop) copies the source as it
    /// is now and answers.
    FinishStaging,
    /// The oldest look running (off the loop) reads the source as it is
    /// now and answers.
    FinishLook,
    /// The running reload hooks end; the set bits say which failed.
    FinishReload(u8),
    /// The reaper reports the exited child, then its empty group.
    ReportExit,
    ReportGroupGone,
    FireStopDeadline,
    FireStopDelay,
    FireBackoff,
    FireRetry,
    /// `--promote-to`'s directory fails every write (a full disk), or no more.
    DiskFails(bool),
    /// A commit's record moves but the view cannot switch, or no more.
    ViewFails(bool),
    /// A candidate shown in place cannot be taken off the view (DIR
    /// read-only, or both spare names taken), or no more.
    UnshowFails(bool),
    /// No check can start (EMFILE, EAGAIN, ENOMEM: the world answers
    /// `CannotCheck` at once), or no more.
    ChecksFail(bool),
    /// The manager is SIGKILLed (with everything in its PID namespace) and
    /// started again on the same disk.
    Crash,
    /// A readiness probe is due (`--ready-interval`).
    ProbeDue,
    /// The oldest readiness probe asked for ends, cancelled or not (the
    /// world may answer a cancelled one: the machine drops it); it judges
    /// the child that runs as it ends. `young`: within its start period.
    Probe {
        young: bool,
    },
    /// The rollback window ends.
    FireProbation,
    /// The child's start-up period ends.
    FireStartedUp,
    /// `notes.txt` settles on new bytes.
    Notes(u64),
    /// A burst of changes begins (its first event); it settles later.
    Burst,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u64..5, any::<bool>()).prop_map(|(version, at_once)| Op::Change { version, at_once }),
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
        1 => Just(Op::CtrlC),
        1 => prop::sample::select(vec![
            None,
            Some(Takes::Handled),
            Some(Takes::Ignored),
            Some(Takes::Unhandled),
            Some(Takes::Dying),
        ])
        .prop_map(Op::Worker),
        3 => Just(Op::FinishValidation),
        3 => Just(Op::FinishStaging),
        3 => Just(Op::FinishLook),
        2 => (0u8..8).prop_map(Op::FinishReload),
        3 => Just(Op::ReportExit),
        3 => Just(Op::ReportGroupGone),
        2 => Just(Op::FireStopDeadline),
        1 => Just(Op::FireStopDelay),
        2 => Just(Op::FireBackoff),
        2 => Just(Op::FireRetry),
        1 => any::<bool>().prop_map(Op::DiskFails),
        1 => any::<bool>().prop_map(Op::ViewFails),
        1 => any::<bool>().prop_map(Op::UnshowFails),
        1 => any::<bool>().prop_map(Op::ChecksFail),
        1 => Just(Op::Crash),
        2 => Just(Op::ProbeDue),
        3 => any::<bool>().prop_map(|young| Op::Probe { young }),
        1 => Just(Op::FireProbation),
        1 => Just(Op::FireStartedUp),
        2 => (0u64..3).prop_map(Op::Notes),
        1 => Just(Op::Burst),
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
        (prop::sample::select(vec![0u64, 5]), any::<bool>()),
        1u64..120,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        prop::sample::select(vec![
            None,
            Some("none"),
            Some("restart"),
            Some("usr1"),
            Some("own hook"),
            Some("first hook"),
        ]),
        any::<bool>(),
    )
        .prop_map(
            |(
                validate,
                by,
                restart,
                max_restarts,
                (delay, start_period),
                timeout,
                group,
                promote,
                rollback,
                rule,
                restart_signal,
            )| {
                let external = matches!(by, ReloadBy::External);
                let global_hooks = if external { 3 } else { 0 };
                let act = match rule {
                    Some("none") => Some(Act::Nothing),
                    Some("restart") => Some(Act::Restart),
                    Some("usr1") => Some(Act::Signal(libc::SIGUSR1)),
                    Some("own hook") => Some(Act::Hook(global_hooks)),
                    Some(_) => Some(Act::Hook(0)),
                    None => None,
                };
                let rules = act
                    .map(|act| Rule {
                        pattern: "notes.txt".into(),
                        act,
                    })
                    .into_iter()
                    .collect();
                Settings {
                    stop_signal: libc::SIGTERM,
                    stop_timeout: Duration::from_secs(timeout),
                    validate_timeout: Duration::from_secs(30),
                    reload_timeout: Duration::from_secs(30),
                    stop_delay: Duration::from_secs(delay),
                    reload_signal: matches!(by, ReloadBy::Signal).then_some(HUP),
                    restart,
                    max_restarts,
                    validate,
                    signal_to: if group { Target::Group } else { Target::Child },
                    map_signal: vec![],
                    interactive: false,
                    promote,
                    validate_in_place: false,
                    reload_hooks: global_hooks,
                    routes: Routes::new(vec![PathBuf::from("/c")], rules),
                    rollback_window: (promote && rollback).then_some(Duration::from_secs(30)),
                    ready_interval: rollback.then_some(Duration::from_secs(1)),
                    ready_failures: 2,
                    ready_start_period: Duration::from_secs(if start_period { 10 } else { 0 }),
                    restart_signal: restart_signal.then_some(RESTART),
                    remap_exit: vec![],
                    inherited_safe: 0,
                }
            },
        )
}

/// The modes `settings` leaves at their defaults, applied by `run`.
#[derive(Debug, Clone)]
struct Modes {
    stop_signal: i32,
    map_signal: Vec<(i32, Option<i32>)>,
    remap_exit: Vec<(i32, i32)>,
    /// Started on a terminal (Ctrl-C reaches the child's group).
    interactive: bool,
    /// The child inherits SIGHUP ignored.
    hup_ignored: bool,
    ready_failures: u32,
}

fn modes() -> impl Strategy<Value = Modes> {
    use libc::{SIGHUP, SIGQUIT, SIGTERM, SIGUSR1, SIGWINCH};
    (
        // The default; nginx's graceful stop; Apache's (which a test child
        // dies of too, unless it is stubborn).
        prop::sample::select(vec![SIGTERM, SIGQUIT, SIGWINCH]),
        prop::sample::select(vec![
            vec![],
            vec![(SIGTERM, Some(SIGQUIT))],
            vec![(SIGHUP, None)],
            vec![(SIGUSR1, Some(SIGHUP))],
        ]),
        prop::sample::select(vec![vec![], vec![(143, 0)], vec![(1, 0)]]),
        any::<bool>(),
        any::<bool>(),
        1u32..4,
    )
        .prop_map(
            |(stop_signal, map_signal, remap_exit, interactive, hup_ignored, ready_failures)| {
                Modes {
                    stop_signal,
                    map_signal,
                    remap_exit,
                    interactive,
                    hup_ignored,
                    ready_failures,
                }
            },
        )
}

/// A retry's wait: the gate's, a rollback's, a withdrawal's, the hooks'.
fn is_retry(rec: &Rec) -> bool {
    matches!(rec, Rec::Retry(_) | Rec::HooksRetry(_))
}

/// The test's side of the world (the operations running, the timers)
/// around the shared model (the source, the directory, the checks'
/// verdicts, the child).
#[derive(Debug)]
struct Edge {
    model: Model,
    /// Checks running: token, the version judged, the candidate judged.
    validations: VecDeque<(u64, u64, Option<String>)>,
    /// Stagings running, by token: the edge copies off the loop, so other
    /// events come before the answer.
    stagings: VecDeque<u64>,
    /// Every operation the machine started and has not cancelled or been
    /// answered, by token, as its own table recorded it when it asked: the
    /// two must agree whenever the world is quiet.
    ops: BTreeMap<Token, Rec>,
    /// Readiness probes asked for (their tokens), each with the number of
    /// children started by then (it was asked about the last of them).
    probes: VecDeque<(Token, u64)>,
    /// Looks running (their tokens): answered with the source as it is
    /// when they end.
    looks: VecDeque<Token>,
    /// The reload's hooks running: their token and the reload's number.
    reload: Option<(Token, u64)>,
    last_reload: u64,
    /// SIGKILL was sent to the group: it is gone long before the kill
    /// grace runs out (only a process stuck in the kernel outlives it).
    killed: bool,
    exited: Option<i32>,
    /// SIGTERM or SIGINT arrived: what is left of the time the manager may
    /// still arm before it exits.
    shutdown_budget: Option<Duration>,
    /// The reload hooks asked for last (a retry must ask for the failed).
    reload_left: BTreeMap<usize, Vec<PathBuf>>,
    /// What a reload cancelled in this turn still owed: a newer burst's
    /// reload takes it over.
    superseded: BTreeMap<usize, Vec<PathBuf>>,
    /// The generation shown when the window started, and when it ran out.
    window_for: Option<String>,
    window_ran: Option<String>,
    /// The version the child had before this turn's reload signals (its
    /// hooks, held until the signals are sent, are for the same change).
    /// And whether the machine had seen the files then (see `exact`).
    signalled_from: Option<(u64, bool)>,
    /// In this instant (this step of the world), the child was told
    /// something that may make it read its config.
    told_now: bool,
    /// A burst of changes began and has not settled yet.
    bursting: bool,
    /// Ctrl-C on the terminal ended the child: the manager exits.
    ctrl_c: bool,
    /// Without --promote-to, a signal from outside (since the machine last
    /// had it read) made the child read the live files, which held these
    /// bytes: the machine may never have seen them, or have rejected them,
    /// and cannot take them back.
    strayed: Option<u64>,
    /// The source was written since the machine last looked at it (its
    /// look runs): it acts on what it saw.
    unseen: bool,
    /// The child read its config while the source held bytes the machine
    /// had not seen (it reads the disk, not the machine's belief): until it
    /// reads again with nothing unseen, the machine may tell it of a change
    /// it already has.
    ahead: bool,
    /// Work waits for that burst to settle (the restart signal came
    /// during it or was being looked into when it began, or a config was in
    /// flight then: a check of live files that moved is no verdict): the
    /// settle that ends it acts, even if it changes nothing.
    held_by_burst: bool,
}

impl Deref for Edge {
    type Target = Model;
    fn deref(&self) -> &Model {
        &self.model
    }
}

impl DerefMut for Edge {
    fn deref_mut(&mut self) -> &mut Model {
        &mut self.model
    }
}

impl Edge {
    fn new(model: Model) -> Edge {
        Edge {
            model,
            validations: VecDeque::new(),
            stagings: VecDeque::new(),
            ops: BTreeMap::new(),
            probes: VecDeque::new(),
            looks: VecDeque::new(),
            reload: None,
            last_reload: 0,
            killed: false,
            exited: None,
            shutdown_budget: None,
            reload_left: BTreeMap::new(),
            superseded: BTreeMap::new(),
            window_for: None,
            window_ran: None,
            signalled_from: None,
            told_now: false,
            bursting: false,
            ctrl_c: false,
            strayed: None,
            unseen: false,
            ahead: false,
            held_by_burst: false,
        }
    }

    /// What going from version `from` to `to` asks for.
    fn expected(&self, from: u64, to: u64) -> Expected {
        let mut e = Expected::default();
        let files = [
            (APP, app(from) != app(to)),
            (NOTES, notes(from) != notes(to)),
        ];
        for (path, _) in files.iter().filter(|(_, changed)| *changed) {
            for act in self.acts(path) {
                match act {
                    Act::Restart => e.restart = true,
                    Act::Signal(sig) => {
                        e.signals.insert(sig);
                    }
                    Act::Hook(h) => e.hooks.entry(h).or_default().push(PathBuf::from(path)),
                    Act::Nothing => {}
                }
            }
        }
        e
    }

    /// The model's view invariant, with the checks running now.
    fn check_view(&self) {
        let v = &self.validations;
        (self.model).check_view(|g| v.iter().any(|(_, _, c)| c.as_deref() == Some(g)));
    }

    /// The machine takes `input` (a signal, an answer by its token) and
    /// what it asks for is performed (with the answers that come at once),
    /// checking the invariants at each.
    fn feed(&mut self, m: &mut Machine, input: Input) -> Result<(), TestCaseError> {
        let requests = self.take(m, input)?;
        self.perform_all(m, requests)
    }

    /// The first event of a burst of writes, unless one began already:
    /// nothing is asked for then.
    fn burst_begins(&mut self, m: &mut Machine) -> Result<(), TestCaseError> {
        if !std::mem::replace(&mut self.bursting, true) {
            let asked = m.handle(Input::Changed);
            prop_assert!(
                asked.is_empty(),
                "the first event of a burst asked {asked:?}"
            );
        }
        Ok(())
    }

    /// A burst of writes (the first event, unless a burst began already)
    /// settled: the machine asks for a look (one already out of that kind
    /// takes it over). `at_once`: answered now, with what the
    /// source holds, and what the machine asks for then; else the look
    /// runs on (`Op::FinishLook`).
    fn settled(&mut self, m: &mut Machine, at_once: bool) -> Result<Vec<Request>, TestCaseError> {
        // Its first event came as the files were written: the machine knows
        // they move before the burst settles.
        self.burst_begins(m)?;
        self.bursting = false;
        self.held_by_burst = false;
        let asked = m.handle(Input::Settled);
        let asked = self.register(m, asked)?;
        match asked.as_slice() {
            [
                Request::Start {
                    token,
                    op: Ask::Look(LookFor::Settle),
                },
            ] if at_once => {
                self.unseen = false;
                let outcome = Outcome::Looked(snap(self.source));
                self.take(
                    m,
                    Input::Done {
                        token: *token,
                        outcome,
                    },
                )
            }
            [
                Request::Start {
                    op: Ask::Look(LookFor::Settle),
                    ..
                },
            ]
            | [] => Ok(asked),
            _ => Err(TestCaseError::fail(format!(
                "a settled burst asked {asked:?}"
            ))),
        }
    }

    /// Performs `requests` in order, as the loop does: an answer that comes
    /// at once is taken by the machine at once, and what it asks for is
    /// performed after the rest.
    fn perform_all(
        &mut self,
        m: &mut Machine,
        requests: Vec<Request>,
    ) -> Result<(), TestCaseError> {
        // A burst's signals and its hooks come in the same turn.
        self.signalled_from = None;
        self.told_now = false;
        self.superseded.clear();
        let mut queue = VecDeque::from(requests);
        while let Some(request) = queue.pop_front() {
            prop_assert!(self.exited.is_none(), "{request:?} after Exit");
            if let Some(answer) = self.request(m, request, queue.front())? {
                queue.extend(self.take(m, answer)?);
            }
            self.check_view();
        }
        self.model.turn_ends();
        // Every operation started and not yet cancelled or answered, as the
        // world counts them, is what the machine's table holds.
        prop_assert_eq!(
            &m.inflight,
            &self.ops,
            "the machine's table of operations in flight is not the world's"
        );
        m.table_holds().map_err(TestCaseError::fail)?;
        Ok(())
    }

    /// One request, performed as the real edge would. `next`: the request
    /// after it (a wait cancelled to be armed again is no cancelled
    /// reload). The answer, if it comes at once.
    fn request(
        &mut self,
        m: &Machine,
        request: Request,
        next: Option<&Request>,
    ) -> Result<Option<Input>, TestCaseError> {
        match request {
            Request::Start { token, op } => {
                let Some(rec) = self.ops.get(&token).cloned() else {
                    return Err(TestCaseError::fail(format!("{op:?} started, not recorded")));
                };
                let outcome = self.start(m, token, rec, op)?;
                return Ok(outcome.map(|outcome| Input::Done { token, outcome }));
            }
            Request::Cancel { token } => self.cancel(m, token, next)?,
            Request::Signal(sig, to) => {
                let sent = self.model.signal(to, sig);
                self.told_now |= sent.reads;
                // A user's SIGHUP made it read bytes the machine never sent
                // it: it may be told of a change it already has.
                if let Some(read) = sent.read_other {
                    self.ahead = true;
                    self.strayed = Some(read).filter(|_| !self.settings.promote);
                }
            }
            Request::KillGroup => {
                self.killed = true;
                self.model.signal(Target::Group, libc::SIGKILL);
            }
            Request::Prove { generation } => {
                let ran = self.window_ran.as_ref() == Some(&generation)
                    || self.window_for.as_ref() != Some(&generation);
                self.model.prove(&generation, ran);
            }
            Request::RemoveGeneration { generation } => self.model.remove_generation(&generation),
            Request::Unreject { generation } => self.model.unreject(&generation),
            Request::Exit(code) => {
                self.exited = Some(code);
                self.validations.clear();
            }
            Request::ContinueStopped(_) | Request::Acted => {}
        }
        Ok(None)
    }

    /// Operation `token` starts: `rec` is what the machine's table says it
    /// is for (the test's bookkeeping is per purpose). The answer, if the
    /// real edge gives it at once.
    fn start(
        &mut self,
        m: &Machine,
        token: Token,
        rec: Rec,
        op: Ask,
    ) -> Result<Option<Outcome>, TestCaseError> {
        let outcome = match (rec, op) {
            // Looks run off the loop: other events come first.
            (Rec::Look(_), _) => {
                self.looks.push_back(token);
                None
            }
            (Rec::Spawn, _) => {
                prop_assert!(
                    self.shutdown_budget.is_none(),
                    "a child started after SIGTERM"
                );
                self.model.spawn(Instant::now());
                self.ahead = self.reads_unseen();
                self.strayed = None;
                self.killed = false;
                Some(Outcome::Started)
            }
            // The child's life: answered by its end.
            (Rec::Child, _) => {
                let p = &mut self.model.procs;
                let c = p.child.as_mut().or(p.died.as_mut().map(|d| &mut d.1));
                let c = c.ok_or_else(|| TestCaseError::fail("a child's life asked without one"))?;
                prop_assert_eq!(c.token, 0, "a second Op::Run for one child");
                c.token = token;
                None
            }
            (Rec::Drain, _) => None,
            (Rec::Probe(_), _) => {
                self.probes.push_back((token, self.procs.spawns));
                None
            }
            // Copied off the loop: other events come first.
            (Rec::Stage(_), _) => {
                self.stagings.push_back(token);
                None
            }
            (
                Rec::Check(_),
                Ask::Check {
                    candidate,
                    in_place,
                    ..
                },
            ) => {
                if in_place && self.procs.child.is_some() {
                    prop_assert!(
                        !self.told_now && self.reload.is_none(),
                        "a candidate shown in place to a child being told to read its config"
                    );
                }
                match self.model.validate(candidate.as_deref(), in_place) {
                    Ok(version) => {
                        self.validations.push_back((token, version, candidate));
                        None
                    }
                    Err(reason) => Some(Outcome::Checked(Verdict::CannotRun(reason))),
                }
            }
            (Rec::Commit(_), Ask::Commit { generation, proven }) => {
                let result = self
                    .model
                    .commit(&generation, proven.as_deref(), &m.promoted());
                Some(Outcome::Committed(result))
            }
            (Rec::RollBack, Ask::RollBack { to, from }) => {
                Some(Outcome::RolledBack(self.model.roll_back(&to, &from)))
            }
            (Rec::Drop(_), Ask::Drop { generation }) => {
                let result = self.model.drop_candidate(&generation, &m.promoted());
                Some(Outcome::Dropped(result.map(|_| ())))
            }
            (Rec::ReloadSignals { .. }, Ask::AskHandling { signals, to }) => {
                self.reload_signals(signals, to)?
            }
            (Rec::Hooks(reload), Ask::Hooks { calls, .. }) => {
                self.run_hooks(token, reload, calls)?;
                None
            }
            (Rec::Retry(_), Ask::Wait(after)) => {
                prop_assert!(after <= BACKOFF_MAX, "retry after {after:?}");
                None
            }
            (Rec::HooksRetry(reload), Ask::Wait(after)) => {
                prop_assert!(after <= BACKOFF_MAX, "retry after {after:?}");
                if self.reload.as_ref().is_some_and(|r| r.1 == reload) {
                    self.reload = None;
                }
                None
            }
            (Rec::Stop, Ask::Wait(d)) => {
                prop_assert!(d <= Duration::from_secs(3600), "deadline {d:?}");
                self.spend(d)?;
                None
            }
            (Rec::StopDelay, Ask::Wait(d)) => {
                prop_assert!(d <= Duration::from_secs(3600), "stop delay {d:?}");
                self.spend(d)?;
                None
            }
            (Rec::Backoff, Ask::Wait(d)) => {
                prop_assert!(d <= BACKOFF_MAX, "backoff {d:?}");
                prop_assert!(self.shutdown_budget.is_none(), "a backoff after SIGTERM");
                None
            }
            (Rec::Probation, Ask::Wait(_)) => {
                self.window_for = self.good.clone();
                self.window_ran = None;
                None
            }
            (Rec::StartUp(_), Ask::Wait(_)) => {
                prop_assert!(
                    self.settings.validate_in_place
                        || (self.settings.ready_interval.is_some()
                            && self.settings.rollback_window.is_some()),
                    "a start-up period for nothing"
                );
                None
            }
            (rec, op) => {
                return Err(TestCaseError::fail(format!("{op:?} recorded as {rec:?}")));
            }
        };
        Ok(outcome)
    }

    /// Operation `token` is cancelled (see `request` for `next`).
    fn cancel(
        &mut self,
        m: &Machine,
        token: Token,
        next: Option<&Request>,
    ) -> Result<(), TestCaseError> {
        let Some(rec) = self.ops.remove(&token) else {
            return Err(TestCaseError::fail(format!(
                "cancelled {token}, not in flight"
            )));
        };
        let rearmed = matches!(next, Some(Request::Start { token, .. })
            if m.inflight.get(token).is_some_and(|r| matches!(r, Rec::HooksRetry(_))));
        match rec {
            Rec::Check(_) => {
                let running = self.validations.len();
                self.validations.retain(|v| v.0 != token);
                prop_assert!(self.validations.len() < running, "cancelling no check");
            }
            // A wait cancelled to be armed again at once.
            Rec::HooksRetry(_) if rearmed => {}
            Rec::Hooks(_) | Rec::HooksRetry(_) => {
                self.reload = None;
                self.superseded = std::mem::take(&mut self.reload_left);
            }
            // The world may answer a probe still: dropped then.
            Rec::Retry(_)
            | Rec::Stop
            | Rec::Probation
            | Rec::StopDelay
            | Rec::Backoff
            | Rec::StartUp(_)
            | Rec::Drain
            | Rec::Probe(_) => {}
            rec => return Err(TestCaseError::fail(format!("{rec:?} cancelled"))),
        }
        Ok(())
    }
    fn register(
        &mut self,
        m: &Machine,
        mut requests: Vec<Request>,
    ) -> Result<Vec<Request>, TestCaseError> {
        let mut moot = vec![];
        for r in &requests {
            if let Request::Start { token, op } = r {
                match m.inflight.get(token) {
                    Some(rec) => {
                        self.ops.insert(*token, rec.clone());
                    }
                    // A wait armed and cancelled again in one step (a
                    // superseded retry): the world arms and disarms a timer.
                    // Anything else started and cancelled at once would
                    // run for nothing (a child untracked, a candidate shown).
                    None if matches!(op, Ask::Wait(_))
                        && requests.contains(&Request::Cancel { token: *token }) =>
                    {
                        moot.push(*token);
                    }
                    None => {
                        return Err(TestCaseError::fail(format!("{op:?} started, not recorded")));
                    }
                }
            }
        }
        requests.retain(|r| match r {
            Request::Start { token, .. } | Request::Cancel { token } => !moot.contains(token),
            _ => true,
        });
        Ok(requests)
    }

    /// Does the machine know the files the child reads? With
    /// `--promote-to` the child reads DIR, which only the machine changes;
    /// else the live files, which it knows as its last look found them.
    /// Only then is what it tells the child exactly what they ask for.
    fn exact(&self) -> bool {
        self.settings.promote || (!self.unseen && !self.ahead)
    }

    /// A child reading its config now reads bytes the machine has not
    /// seen (without --promote-to, the source was written since its last
    /// look).
    fn reads_unseen(&self) -> bool {
        !self.settings.promote && self.unseen
    }

    /// Does a child run, on a version `on` says is what it should have?
    fn child_runs(&self, on: impl Fn(u64) -> bool) -> bool {
        self.procs.child.as_ref().is_some_and(|c| on(c.version))
    }

    /// A burst settles that asks for nothing new if the child already has
    /// what it holds (`same`): with nothing in flight, the machine does
    /// nothing and counts nothing (`what` caused it, if it does).
    fn nothing_new(
        &mut self,
        m: &mut Machine,
        same: bool,
        what: &str,
    ) -> Result<(), TestCaseError> {
        // (A child that read bytes the machine never sent it has them,
        // but the machine acts on what it believes the child has.)
        let believed = self.procs.child.as_ref().map(|c| snap(c.version));
        let quiet = same
            && believed.as_ref() == Some(m.child_bytes())
            && self.validations.is_empty()
            && self.stagings.is_empty()
            && self.looks.is_empty()
            && !self.held_by_burst
            && self.reload.is_none()
            && !self.armed(is_retry);
        let before = m.stats().clone();
        let requests = self.settled(m, true)?;
        if quiet && m.phase == Phase::Running {
            prop_assert!(requests.is_empty(), "{what} caused {requests:?}");
            prop_assert_eq!(&before, m.stats());
        }
        self.perform_all(m, requests)
    }

    /// The child's end was reported; its group was not found empty yet.
    fn group_left(&self) -> bool {
        let p = &self.procs;
        p.group && p.child.is_none() && p.died.is_none()
    }

    /// A wait the machine armed and `which` names is in flight.
    fn armed(&self, which: fn(&Rec) -> bool) -> bool {
        self.ops.values().any(which)
    }

    /// The oldest wait `which` names runs out, if one is armed.
    fn fire(&mut self, m: &mut Machine, which: fn(&Rec) -> bool) -> Result<(), TestCaseError> {
        let Some(token) = self.ops.iter().find(|(_, r)| which(r)).map(|(t, _)| *t) else {
            return Ok(());
        };
        let outcome = Outcome::Elapsed;
        self.feed(m, Input::Done { token, outcome })
    }

    /// The machine takes `input`; what it asks for, checked.
    fn take(&mut self, m: &mut Machine, input: Input) -> Result<Vec<Request>, TestCaseError> {
        let before = m.stats().clone();
        let mut cannot_check = false;
        let mut retried = None;
        if let Input::Done { token, outcome } = &input {
            self.ops.remove(token);
            if let (Some(Rec::Check(t)), Outcome::Checked(Verdict::CannotRun(_))) =
                (m.inflight.get(token), outcome)
            {
                cannot_check = true;
                retried = m
                    .pending
                    .as_ref()
                    .is_some_and(|p| p.token == *t && p.step == gate::Step::Checking)
                    .then_some(*t);
            }
        }
        let requests = m.handle(input);
        let requests = self.register(m, requests)?;
        if cannot_check {
            // No verdict on the bytes: neither counted as one nor a
            // reason to give up; the check (or, with --promote-to, the
            // staging it needs) is tried again.
            let after = m.stats();
            prop_assert_eq!(
                (before.validations_ok, before.validations_failed),
                (after.validations_ok, after.validations_failed),
                "a check that could not start counted as a verdict"
            );
            if let Some(t) = retried {
                let waits = |r: &Request| match r {
                    Request::Start { token, .. } => m.inflight.get(token) == Some(&Rec::Retry(t)),
                    _ => false,
                };
                prop_assert!(
                    requests.iter().any(waits)
                        && !requests.iter().any(|r| matches!(r, Request::Exit(_))),
                    "a check that could not start is not retried: {requests:?}"
                );
            }
        }
        Ok(requests)
    }

    /// Nothing that may make the running child read its config reaches it
    /// while its directory shows a candidate; and (below) none is shown to
    /// it in the same instant, if it `reads` its config on it.
    fn not_told_while_shown(&mut self, what: &str) {
        self.told_now = true;
        self.model.check_told(what);
    }

    /// The edge asks how the group takes the reload signals `sigs` (to
    /// `to`), and sends them if none harms it. No answer without a child:
    /// its exit, once reported, cancels them.
    fn reload_signals(
        &mut self,
        sigs: Vec<i32>,
        to: Target,
    ) -> Result<Option<Outcome>, TestCaseError> {
        self.not_told_while_shown("reload signals");
        let now = self.readable();
        let Some(from) = self.procs.child.as_ref().map(|c| c.version) else {
            return Ok(None);
        };
        let sent: BTreeSet<i32> = sigs.iter().copied().collect();
        prop_assert_eq!(sent.len(), sigs.len(), "a signal sent twice");
        let exact = self.exact();
        if exact {
            let e = self.expected(from, now);
            prop_assert!(!e.restart, "reload signals where a restart was asked for");
            prop_assert_eq!(&sent, &e.signals, "not the signals the files asked for");
        }
        if let Some(harmed) = self.procs.handling(&sigs, to) {
            return Ok(Some(Outcome::Handling(Some(harmed))));
        }
        self.model.reread();
        self.ahead = self.reads_unseen();
        self.strayed = None;
        self.signalled_from = Some((from, exact));
        Ok(Some(Outcome::Handling(None)))
    }

    /// Reload number `reload`'s hooks start as operation `token` (a retry
    /// keeps the number): exactly the hooks the files asked for, or those
    /// that failed.
    fn run_hooks(
        &mut self,
        token: Token,
        reload: u64,
        calls: Vec<HookCall>,
    ) -> Result<(), TestCaseError> {
        self.not_told_while_shown("reload hooks");
        let told: BTreeMap<usize, Vec<PathBuf>> =
            calls.iter().map(|c| (c.hook, c.changed.clone())).collect();
        prop_assert_eq!(told.len(), calls.len(), "a hook run twice");
        if reload == self.last_reload {
            prop_assert_eq!(
                &told,
                &self.reload_left,
                "a retry runs exactly the hooks that failed, with their files"
            );
        }
        let owed = std::mem::take(&mut self.superseded);
        self.reload_left = told.clone();
        if reload != self.last_reload {
            // A new reload: for bytes the child does not have yet
            // (the burst's signals, if any, were sent just before).
            // (A child that died unreported cannot be known of: its
            // exit cancels the reload when it is reported.)
            let now = self.readable();
            let from = self.procs.child.as_ref().map(|c| (c.version, self.exact()));
            if let Some((from, true)) = self.signalled_from.take().or(from) {
                let mut e = self.expected(from, now);
                prop_assert!(!e.restart, "reload hooks where a restart was asked for");
                // What the superseded reload still owed is not lost.
                for (hook, files) in owed {
                    let all = e.hooks.entry(hook).or_default();
                    all.extend(files);
                    all.sort();
                    all.dedup();
                }
                prop_assert_eq!(
                    &told,
                    &e.hooks,
                    "not the hooks the files asked for (and those still owed), each told of its files"
                );
            }
            self.model.reread();
            self.ahead = self.reads_unseen();
            self.strayed = None;
            self.last_reload = reload;
        }
        self.reload = Some((token, reload));
        Ok(())
    }

    fn step(&mut self, m: &mut Machine, op: Op) -> Result<(), TestCaseError> {
        if self.exited.is_some() {
            return Ok(());
        }
        match op {
            Op::Change { version, at_once } => {
                let v = version + 10 * notes(self.source);
                self.write(v);
                self.unseen = true;
                let requests = self.settled(m, at_once)?;
                self.perform_all(m, requests)?;
            }
            Op::Notes(n) => {
                let v = app(self.source) + 10 * n;
                let same = self.notes_quiet() && self.child_runs(|c| app(c) == app(v));
                self.write(v);
                self.unseen = true;
                self.nothing_new(m, same, "a file that chose none")?;
            }
            Op::Touch => {
                let same = self.child_runs(|c| c == self.source);
                self.nothing_new(m, same, "unchanged bytes")?;
            }
            Op::ChildExits(code) => self.procs.dies(Status::Exited(code)),
            Op::Signal(sig) => {
                if is_shutdown(sig) && self.shutdown_budget.is_none() {
                    let s = &self.settings;
                    self.shutdown_budget = Some(s.stop_delay + s.stop_timeout + KILL_GRACE);
                }
                self.feed(m, Input::Signal(sig))?;
            }
            // (Without --restart-signal there is none to send.)
            Op::RestartRequest if self.settings.restart_signal.is_some() => {
                self.held_by_burst |= self.bursting;
                self.feed(m, Input::Signal(RESTART))?;
            }
            Op::RestartRequest => {}
            Op::ChildReady => {
                if let Some(c) = &mut self.procs.child {
                    c.handles = true;
                }
            }
            Op::Stubborn(b) => self.procs.stubborn = b,
            Op::CtrlC if self.settings.interactive => {
                let ran = self.procs.child.is_some();
                self.model.signal(Target::Group, libc::SIGINT);
                self.ctrl_c |= ran && self.procs.child.is_none();
            }
            Op::CtrlC => {}
            Op::Worker(w) => self.procs.worker = w,
            Op::FinishValidation => {
                if let Some((token, version, candidate)) = self.validations.pop_front() {
                    let ok = self.model.verdict(candidate.as_deref(), version);
                    let outcome = Outcome::Checked(if ok { Verdict::Pass } else { Verdict::Fail });
                    self.feed(m, Input::Done { token, outcome })?;
                }
            }
            Op::FinishLook => {
                if let Some(token) = self.looks.pop_front() {
                    // Any look tells the machine the files as they are.
                    self.unseen = false;
                    let outcome = Outcome::Looked(snap(self.source));
                    self.feed(m, Input::Done { token, outcome })?;
                }
            }
            Op::FinishStaging => {
                if let Some(token) = self.stagings.pop_front() {
                    let outcome = Outcome::Staged(self.model.stage());
                    self.feed(m, Input::Done { token, outcome })?;
                }
            }
            Op::FinishReload(mask) => {
                if let Some((token, _)) = self.reload.take() {
                    self.reload_left.retain(|i, _| mask & (1 << i) != 0);
                    let failed: Vec<usize> = self.reload_left.keys().copied().collect();
                    let outcome = Outcome::HooksDone { failed };
                    self.feed(m, Input::Done { token, outcome })?;
                }
            }
            Op::ReportExit => {
                // Answers the child's life, by the token it was asked with.
                if let Some((status, c)) = self.procs.died.take() {
                    prop_assert_ne!(c.token, 0, "the child's end reported before its Op::Run");
                    let ran_for = Duration::from_secs(1);
                    let outcome = Outcome::Exited { status, ran_for };
                    self.feed(
                        m,
                        Input::Done {
                            token: c.token,
                            outcome,
                        },
                    )?;
                }
            }
            Op::ReportGroupGone => {
                // Gone, whether or not anyone waits for it.
                if self.group_left() {
                    self.procs.group = false;
                    let drain = self.ops.iter().find(|(_, r)| **r == Rec::Drain);
                    if let Some((&token, _)) = drain {
                        let outcome = Outcome::GroupGone;
                        self.feed(m, Input::Done { token, outcome })?;
                    }
                }
            }
            Op::FireStopDeadline => {
                if self.killed {
                    self.step(m, Op::ReportExit)?;
                    self.step(m, Op::ReportGroupGone)?;
                }
                self.fire(m, |r| *r == Rec::Stop)?;
            }
            Op::FireStopDelay => self.fire(m, |r| *r == Rec::StopDelay)?,
            Op::FireBackoff => self.fire(m, |r| *r == Rec::Backoff)?,
            Op::Burst => {
                // Without --promote-to a check of live files that move is
                // no verdict: the config in flight waits for the settle.
                let plain = !self.settings.promote;
                let in_flight = !self.validations.is_empty() || self.armed(is_retry);
                let restart = self.armed(|r| *r == Rec::Look(LookFor::Restart));
                self.held_by_burst |= (plain && in_flight) || restart;
                self.burst_begins(m)?;
            }
            Op::ProbeDue => {
                self.feed(m, Input::ProbeDue)?;
            }
            Op::Probe { young } => {
                let Some((token, spawn)) = self.probes.pop_front() else {
                    return Ok(());
                };
                let ran_for = Duration::from_secs(if young { 1 } else { 3600 });
                let ok = self.model.probed();
                // Current, as the world knows it: not cancelled, and for
                // the child that runs now.
                let current = self.ops.contains_key(&token) && spawn == self.procs.spawns;
                let outcome = Outcome::Probed { ok, ran_for };
                let answer = Input::Done { token, outcome };
                if !current {
                    // An answer for an earlier child, or for a probe the
                    // machine cancelled, judges nobody.
                    let before = (m.stats().clone(), m.readiness());
                    let requests = self.take(m, answer)?;
                    prop_assert!(requests.is_empty(), "a stale probe answer did {requests:?}");
                    prop_assert_eq!(before, (m.stats().clone(), m.readiness()));
                } else {
                    if ok {
                        self.model.started_up();
                    }
                    self.feed(m, answer)?;
                }
            }
            Op::FireStartedUp => {
                let started_up = |r: &Rec| matches!(r, Rec::StartUp(_));
                if self.armed(started_up) {
                    self.model.started_up();
                }
                self.fire(m, started_up)?;
            }
            Op::FireProbation => {
                if self.armed(|r| *r == Rec::Probation) {
                    self.window_ran = self.good.clone();
                }
                self.fire(m, |r| *r == Rec::Probation)?;
            }
            Op::FireRetry => self.fire(m, is_retry)?,
            Op::DiskFails(fails) => self.disk_fails = fails,
            Op::ViewFails(fails) => self.view_fails = fails,
            Op::UnshowFails(fails) => self.unshow_fails = fails,
            Op::ChecksFail(fails) => self.checks_fail = fails,
            Op::Crash => {
                // Everything in the namespace dies; the disk stays. The
                // restarted manager recovers the directory from its record.
                let blank = Model::new(self.settings.clone());
                let mut model = std::mem::replace(&mut self.model, blank);
                model.view_fails = false;
                // The restarted manager puts a candidate shown in place
                // back first: a disk that refuses it keeps it from
                // starting at all (exit 1), not modelled.
                model.unshow_fails = false;
                model.procs = Procs::default();
                let (good, rejected, proven) = model.recover();
                *self = Edge::new(model);
                let (fresh, first) = Machine::boot(self.settings.clone(), good, rejected, proven);
                *m = fresh;
                let first = self.register(m, first)?;
                self.perform_all(m, first)?;
            }
        }
        Ok(())
    }

    /// After SIGTERM, every delay and deadline armed (`d`) comes out of the
    /// shutdown budget: `--stop-delay` + `--stop-timeout` + the kill grace.
    fn spend(&mut self, d: Duration) -> Result<(), TestCaseError> {
        if let Some(budget) = &mut self.shutdown_budget {
            *budget = budget.checked_sub(d).ok_or_else(|| {
                TestCaseError::fail(format!(
                    "after SIGTERM the deadlines exceed stop-delay + stop-timeout + kill grace ({d:?} more)"
                ))
            })?;
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
            if let Some(c) = &mut self.procs.child {
                c.handles = true;
            }
            self.disk_fails = false;
            self.view_fails = false;
            self.unshow_fails = false;
            self.checks_fail = false;
            let op = if self.bursting {
                Op::Touch
            } else if !self.looks.is_empty() {
                Op::FinishLook
            } else if !self.stagings.is_empty() {
                Op::FinishStaging
            } else if !self.validations.is_empty() {
                Op::FinishValidation
            } else if self.reload.is_some() {
                Op::FinishReload(0)
            } else if self.armed(is_retry) {
                Op::FireRetry
            } else if self.procs.died.is_some() {
                Op::ReportExit
            } else if self.group_left() {
                Op::ReportGroupGone
            } else if self.armed(|r| *r == Rec::Backoff) {
                Op::FireBackoff
            } else if self.armed(|r| *r == Rec::Stop) {
                Op::FireStopDeadline
            } else if self.armed(|r| *r == Rec::StopDelay) {
                Op::FireStopDelay
            } else if self.armed(|r| matches!(r, Rec::StartUp(_))) {
                Op::FireStartedUp
            } else if !self.probes.is_empty() {
                // Last: a probe asked before a restart answers after it.
                Op::Probe { young: false }
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
        prop_assert!(
            !self.ctrl_c || self.exited.is_some(),
            "Ctrl-C on the terminal ended the child, and the manager runs on"
        );
        if self.exited.is_some() {
            return Ok(());
        }
        // Once the disk works, the view and the record agree again.
        if self.settings.promote {
            prop_assert_eq!(&self.shown, &self.good, "the view and the record disagree");
            prop_assert!(!self.behind(), "the view lags the record");
        }
        match &self.procs.child {
            // Rolled back from these bytes: the child runs the last good.
            Some(c)
                if self.rolled_back.is_some_and(|r| self.same(r, self.source))
                    || (self
                        .ever_rolled_back
                        .iter()
                        .any(|r| self.same(*r, self.source))
                        && self.good.as_ref().map(|g| self.gens[g]) == Some(c.version)) =>
            {
                let good = self.good.as_ref().map(|g| self.gens[g]);
                prop_assert_eq!(
                    Some(c.version),
                    good,
                    "not on the last good after a rollback"
                );
            }
            Some(c) if self.passes(self.source) => {
                prop_assert!(
                    self.same(c.version, self.source) || self.strayed == Some(c.version),
                    "a settled change was lost: the child has {}, the disk {}",
                    c.version,
                    self.source
                );
                prop_assert_eq!(&m.phase, &Phase::Running);
            }
            Some(c) => prop_assert!(
                self.passes(c.version) || self.strayed == Some(c.version),
                "the child runs on rejected bytes"
            ),
            None => {
                prop_assert!(
                    !self.passes(self.source),
                    "no child, and nothing holds it back"
                );
                prop_assert_eq!(&m.phase, &Phase::AwaitingFix);
            }
        }
        Ok(())
    }
}

fn run(
    mut settings: Settings,
    modes: Modes,
    in_place: bool,
    ops: Vec<Op>,
) -> Result<(), TestCaseError> {
    settings.validate_in_place = in_place && settings.promote && settings.validate;
    settings.stop_signal = modes.stop_signal;
    settings.map_signal = modes.map_signal;
    settings.remap_exit = modes.remap_exit;
    settings.interactive = modes.interactive;
    settings.inherited_safe = if modes.hup_ignored { 1 << (HUP - 1) } else { 0 };
    settings.ready_failures = modes.ready_failures;
    let mut model = Model::new(settings.clone());
    model.instant_source = true;
    let mut w = Edge::new(model);
    let (mut m, first) = Machine::boot(settings, None, None, None);
    let first = w.register(&m, first)?;
    w.perform_all(&mut m, first)?;
    for op in ops {
        w.step(&mut m, op)?;
    }
    w.settle(&mut m)?;
    w.check_settled(&m)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: super::testkit::cases(2000), ..ProptestConfig::default() })]

    #[test]
    fn the_machine_keeps_its_invariants(
        s in settings(),
        modes in modes(),
        in_place in any::<bool>(),
        ops in prop::collection::vec(op(), 0..60),
    ) {
        run(s, modes, in_place, ops)?;
    }
}
