//! The real loop (`drive`, timers included) against a scripted world on a
//! virtual clock: what happens when, in milliseconds of test time. Here live
//! the checks that something did *not* happen (a touch restarts nothing, a
//! burst is one restart), which with real processes could only be a sleep.
//!
//! The world: the shared model (`state/model.rs`: the source's two files
//! in one version number, the `--promote-to` directory, the checks'
//! verdicts, the child and what signals do to it), plus what only a loop
//! needs: processes of the group that outlive the child for a while,
//! reload results in a queue, a clock. `wait` jumps the clock to the next
//! scripted happening or the loop's deadline.

use super::*;
use crate::state::model::{Model, app, snap};
use crate::state::testkit::settings;
use crate::state::{CommitFailed, HookCall, Policy, Status, Verdict};
use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};

/// What the scripted world does at a given time.
#[derive(Debug, Clone)]
enum Happen {
    /// The file gets new bytes (the watcher reports it, if it works).
    Write(u64),
    /// notes.txt gets new bytes (app.conf keeps its own).
    Notes(u64),
    /// An event for the file, bytes unchanged (`touch`, a resync).
    Touch,
    Signal(i32),
    /// The child exits by itself.
    ChildExits(i32),
    /// The child's directory (`--promote-to`) fails every write, or no more.
    DiskFails(bool),
    /// A commit's record moves but the child's view cannot follow, or no
    /// more.
    ViewFails(bool),
    /// No check can start (EMFILE, EAGAIN, ENOMEM), or no more.
    ChecksFail(bool),
    /// A candidate shown in place cannot be taken off the view, or no more.
    UnshowFails(bool),
}

/// What the loop did to the world, and when (ms since the start).
#[derive(Debug, Clone, PartialEq)]
enum Did {
    /// A child started, on this config version.
    Spawn(u64),
    Signal(i32),
    Group(i32),
    Validate(u64),
    /// The check of this version could not start (no verdict).
    CannotCheck(u64),
    CancelValidation,
    Reload(u64),
    CancelHooks,
    /// `--promote-to`: a candidate of this version staged, committed,
    /// discarded; a staging or commit that failed.
    Stage(u64),
    Commit(u64),
    DropCandidate(u64),
    DiskFull,
    /// A commit recorded this version as the last good one; the view
    /// stayed behind.
    ViewBehind(u64),
    /// The record put back to the version the view shows.
    RecordBack(u64),
    /// `--rollback-window`: back to a generation of this version; a
    /// rollback the disk refused (the machine keeps the failed one).
    RollBack(u64),
    CannotRollBack,
    Exit(i32),
}

struct Fake {
    model: Model,
    start: Instant,
    now: Instant,
    script: VecDeque<(Duration, Happen)>,
    /// Processes of the child's group that outlive it, until then.
    leftovers_until: Option<Instant>,
    /// The child last read other bytes on a signal, not at its start or
    /// from reload hooks or an --on-change signal.
    strayed: bool,
    /// Exits of the child leave its group alive this long.
    leftovers_for: Option<Duration>,
    /// The watcher reports events (else only polling sees changes).
    notify: bool,
    poll: Option<Duration>,
    polled: u64,
    /// The file changes to this version right after the next spawn.
    write_after_spawn: Option<u64>,
    check_takes: Duration,
    /// The running check: when it ends, the version and candidate it
    /// judges, its token.
    check: Option<(Instant, u64, Option<String>, u64)>,
    reload_results: VecDeque<bool>,
    reload: Option<(Instant, Vec<usize>, u64)>,
    /// When the child was last told something that makes it read its
    /// config (a reload signal, its hooks' end).
    told: Option<Instant>,
    /// Answers owed at once (looks and stagings take no virtual time).
    ready: VecDeque<Wake>,
    /// A readiness probe passes only once the child has run this long.
    ready_after: Duration,
    /// The probe running: when it answers, its token.
    probe: Option<(Instant, Token)>,
    /// When each generation was committed (its window runs from then).
    committed_at: BTreeMap<String, Instant>,
    /// What `/readyz` said last.
    readiness: Result<(), String>,
    /// Each change of what `/readyz` said, and when (ms).
    readiness_log: Vec<(u64, Result<(), String>)>,
    did: Vec<(u64, Did)>,
}

impl Deref for Fake {
    type Target = Model;
    fn deref(&self) -> &Model {
        &self.model
    }
}

impl DerefMut for Fake {
    fn deref_mut(&mut self) -> &mut Model {
        &mut self.model
    }
}

impl Fake {
    /// USR2 is only ever an --on-change reload signal here (no script
    /// sends it): logged as a reload (the model has the child read).
    fn leader_takes(&mut self, sig: i32) {
        if sig == libc::SIGUSR2 {
            let version = self.readable();
            self.record(Did::Reload(version));
        }
    }
    fn new() -> Fake {
        let start = Instant::now();
        let mut model = Model::new(settings());
        model.validator = |_| true;
        model.ready_for = |_| true;
        // Children have a handler for the reload signal.
        model.procs.catches = true;
        Fake {
            model,
            start,
            now: start,
            script: VecDeque::new(),
            leftovers_until: None,
            strayed: false,
            leftovers_for: None,
            notify: true,
            poll: None,
            polled: 0,
            write_after_spawn: None,
            check_takes: Duration::from_millis(200),
            check: None,
            reload_results: VecDeque::new(),
            reload: None,
            told: None,
            ready: VecDeque::new(),
            ready_after: Duration::ZERO,
            probe: None,
            committed_at: BTreeMap::new(),
            readiness: Err("not shown yet".into()),
            readiness_log: vec![],
            did: vec![],
        }
    }

    /// `happen` at `ms` after the start (the script is kept in time order).
    fn at(mut self, ms: u64, happen: Happen) -> Fake {
        let t = Duration::from_millis(ms);
        let i = self.script.partition_point(|(u, _)| *u <= t);
        self.script.insert(i, (t, happen));
        self
    }

    fn ms(&self) -> u64 {
        self.now.duration_since(self.start).as_millis() as u64
    }

    fn record(&mut self, what: Did) {
        self.did.push((self.ms(), what));
    }

    /// The child exits by itself, if it runs; its leftovers outlive it.
    fn exit(&mut self, code: i32) {
        if self.procs.child.is_some() {
            self.procs.dies(Status::Exited(code));
            self.leftovers_until = self.leftovers_for.map(|d| self.now + d);
        }
    }

    /// What the loop did, without times.
    fn what(&self) -> Vec<Did> {
        self.did.iter().map(|(_, d)| d.clone()).collect()
    }

    /// When the loop did `what` (ms), every time.
    fn when(&self, what: &Did) -> Vec<u64> {
        self.did
            .iter()
            .filter(|(_, d)| d == what)
            .map(|(t, _)| *t)
            .collect()
    }

    fn spawns(&self) -> Vec<Did> {
        self.what()
            .into_iter()
            .filter(|d| matches!(d, Did::Spawn(_)))
            .collect()
    }

    fn cancel_validation(&mut self) {
        self.record(Did::CancelValidation);
        self.check = None;
    }

    fn cancel_hooks(&mut self) {
        self.record(Did::CancelHooks);
        self.reload = None;
    }
}

impl World for Fake {
    fn run(&mut self, token: Token) {
        let c = self.procs.child.as_mut().expect("Op::Run without a child");
        assert_eq!(c.token, 0, "a second Op::Run for one child");
        c.token = token;
    }

    fn spawn(&mut self) -> Result<(), i32> {
        let version = self.model.spawn(self.now);
        self.record(Did::Spawn(version));
        self.strayed = false;
        if let Some(v) = self.write_after_spawn.take() {
            self.model.write(v);
        }
        Ok(())
    }

    /// Test children handle every reload signal, or none; their worker
    /// (leader 0, worker 1) as set. The edge's rule, on the fake's model.
    fn handling(&self, sigs: &[i32], to: Target) -> Option<(i32, bool)> {
        self.procs.handling(sigs, to)
    }

    fn stage(&mut self, token: u64) {
        let result = self.model.stage();
        self.record(match &result {
            Ok(_) => Did::Stage(self.source),
            Err(_) => Did::DiskFull,
        });
        let outcome = Outcome::Staged(result);
        self.ready.push_back(Wake::Done { token, outcome });
    }

    fn commit(
        &mut self,
        generation: &str,
        proven: Option<&str>,
        now: &Promoted,
    ) -> Result<(), CommitFailed> {
        let version = self.gens[generation];
        // New bytes, or the record put back to what the view shows.
        let new = now.view.as_deref() != Some(generation);
        let result = self.model.commit(generation, proven, now);
        self.record(match &result {
            Err(_) if self.disk_fails => Did::DiskFull,
            _ if !new => Did::RecordBack(version),
            Err(_) => Did::ViewBehind(version),
            Ok(()) => Did::Commit(version),
        });
        if result.is_ok() {
            self.committed_at.insert(generation.to_string(), self.now);
        }
        result
    }

    fn roll_back(&mut self, to: &str, from: &str) -> Result<(), CommitFailed> {
        let result = self.model.roll_back(to, from);
        self.record(match result {
            Ok(()) => Did::RollBack(self.gens[to]),
            Err(_) => Did::CannotRollBack,
        });
        result
    }

    fn probe(&mut self, token: Token, _timeout: Duration) -> Option<Outcome> {
        assert!(self.probe.is_none(), "a second probe at once");
        self.probe = Some((self.now + Duration::from_millis(50), token));
        None
    }

    fn validate(
        &mut self,
        token: u64,
        _changed: Vec<PathBuf>,
        candidate: Option<&str>,
        in_place: bool,
        _timeout: Duration,
    ) -> Option<Outcome> {
        // The child may be reading its config: while hooks run, and for a
        // second after it was told something.
        if in_place && self.procs.child.is_some() {
            let told = self
                .told
                .is_some_and(|t| self.now < t + Duration::from_secs(1));
            assert!(
                self.reload.is_none() && !told,
                "a candidate shown in place to a child being told to read its config"
            );
        }
        // Its start period over, the child is up.
        let period = self.settings.ready_start_period;
        if (self.procs.child.as_ref()).is_some_and(|c| self.now - c.started >= period) {
            self.model.started_up();
        }
        let version = match self.model.validate(candidate, in_place) {
            Ok(version) => version,
            Err(reason) => {
                let version = candidate.map_or(self.source, |g| self.gens[g]);
                self.record(Did::CannotCheck(version));
                return Some(Outcome::Checked(Verdict::CannotRun(reason)));
            }
        };
        self.record(Did::Validate(version));
        let candidate = candidate.map(String::from);
        self.check = Some((self.now + self.check_takes, version, candidate, token));
        None
    }

    fn run_hooks(
        &mut self,
        token: Token,
        calls: Vec<HookCall>,
        _timeout: Duration,
    ) -> Option<Outcome> {
        self.model.check_told("reload hooks");
        let version = self.readable();
        self.record(Did::Reload(version));
        self.model.reread();
        self.strayed = false;
        let ok = self.reload_results.pop_front().unwrap_or(true);
        let failed = if ok {
            vec![]
        } else {
            calls.iter().map(|c| c.hook).collect()
        };
        self.reload = Some((self.now + Duration::from_millis(100), failed, token));
        None
    }
    fn now(&self) -> Instant {
        self.now
    }

    fn start_watch(&mut self) -> bool {
        self.polled = self.source;
        true
    }

    fn poll_interval(&self) -> Option<Duration> {
        self.poll
    }

    fn look(&mut self, look: Look) {
        let wake = match look {
            Look::Poll => {
                let changed = self.polled != self.source;
                self.polled = self.source;
                Wake::Polled(changed)
            }
            Look::Asked(token, _) => Wake::Done {
                token,
                outcome: Outcome::Looked(snap(self.source)),
            },
        };
        self.ready.push_back(wake);
    }

    fn cancel(&mut self, token: Token) {
        if self.check.as_ref().is_some_and(|c| c.3 == token) {
            self.cancel_validation();
        }
        if self.reload.as_ref().is_some_and(|r| r.2 == token) {
            self.cancel_hooks();
        }
        // A probe cancelled is killed: it never answers.
        self.probe.take_if(|p| p.1 == token);
    }

    fn signal(&mut self, to: Target, sig: i32) -> bool {
        // The leader is in its group.
        let leader = to == Target::Child || self.procs.child.is_some();
        let ran = self.procs.child.is_some();
        let sent = self.model.signal(to, sig);
        if !sent.reached {
            return false;
        }
        // The child read other bytes on a signal that is no --on-change
        // reload (a user's, or the reload signal: `loop_props` knows which).
        if sent.read_other.is_some() {
            self.strayed = sig != libc::SIGUSR2;
        }
        if sent.reads {
            self.told = Some(self.now);
        }
        if ran && self.procs.child.is_none() {
            self.leftovers_until = self.leftovers_for.map(|d| self.now + d);
        }
        match to {
            Target::Child => self.record(Did::Signal(sig)),
            Target::Group => self.record(Did::Group(sig)),
        }
        if to == Target::Group && sig == libc::SIGKILL {
            self.leftovers_until = None;
        }
        if leader {
            self.leader_takes(sig);
        }
        true
    }

    fn stopped(&self, _to: Target) -> bool {
        false
    }

    fn group_alive(&mut self) -> bool {
        let p = &mut self.model.procs;
        p.group =
            p.group && (p.child.is_some() || self.leftovers_until.is_some_and(|t| self.now < t));
        p.group
    }

    fn prove(&mut self, generation: &str) {
        // Ran through its window: committed at least that long ago.
        let since = self.now - self.committed_at[generation];
        let ran = self.settings.rollback_window.is_some_and(|w| since >= w);
        self.model.prove(generation, ran);
    }

    fn remove_generation(&mut self, generation: &str) {
        self.model.remove_generation(generation);
    }

    fn unreject(&mut self, generation: &str) {
        self.model.unreject(generation);
    }

    fn drop_candidate(&mut self, generation: &str, now: &Promoted) -> Result<(), String> {
        if let Some(v) = self.model.drop_candidate(generation, now)? {
            self.record(Did::DropCandidate(v));
        }
        Ok(())
    }

    fn show(&mut self, machine: &Machine) {
        if let Err(e) = machine.table_holds() {
            panic!("the machine's table of operations in flight: {e}");
        }
        let checking = self.check.as_ref().and_then(|(_, _, c, _)| c.as_deref());
        self.model.check_view(|g| checking == Some(g));
        self.model.turn_ends();
        let now = machine.readiness();
        if now != self.readiness {
            self.readiness_log.push((self.ms(), now.clone()));
        }
        self.readiness = now;
    }

    fn report_exit(&mut self, code: i32) {
        self.record(Did::Exit(code));
    }

    fn wait(&mut self, deadline: Option<Instant>) -> impl Future<Output = Wake> {
        let wake = loop {
            if let Some(wake) = self.ready.pop_front() {
                break wake;
            }
            if let Some((status, c)) = self.procs.died.take() {
                assert_ne!(c.token, 0, "the child's end reported before its Op::Run");
                let ran_for = self.now - c.started;
                let outcome = Outcome::Exited { status, ran_for };
                break Wake::Done {
                    token: c.token,
                    outcome,
                };
            }
            let script = self.script.front().map(|(t, _)| self.start + *t);
            let check = self.check.as_ref().map(|(t, _, _, _)| *t);
            let reload = self.reload.as_ref().map(|(t, _, _)| *t);
            let probe = self.probe.as_ref().map(|(t, _)| *t);
            let next = [script, check, reload, probe, deadline]
                .into_iter()
                .flatten()
                .min();
            let Some(next) = next else {
                panic!(
                    "the loop waits forever with nothing to wake it: {:?}",
                    self.did
                );
            };
            self.now = self.now.max(next);
            if check == Some(next) {
                let (_, version, candidate, token) = self.check.take().expect("due");
                let ok = self.model.verdict(candidate.as_deref(), version);
                let v = if ok { Verdict::Pass } else { Verdict::Fail };
                let outcome = Outcome::Checked(v);
                break Wake::Done { token, outcome };
            }
            if reload == Some(next) {
                let (_, failed, token) = self.reload.take().expect("due");
                self.told = Some(self.now);
                let outcome = Outcome::HooksDone { failed };
                break Wake::Done { token, outcome };
            }
            if probe == Some(next) {
                let (_, token) = self.probe.take().expect("due");
                let started = self.procs.child.as_ref().map(|c| c.started);
                let ok = self.model.probed()
                    && started.is_some_and(|t| self.now - t >= self.ready_after);
                if ok {
                    self.model.started_up();
                }
                let ran_for = self
                    .procs
                    .child
                    .as_ref()
                    .map_or(Duration::ZERO, |c| self.now - c.started);
                let outcome = Outcome::Probed { ok, ran_for };
                break Wake::Done { token, outcome };
            }
            if script == Some(next) {
                let (_, happen) = self.script.pop_front().expect("due");
                match happen {
                    Happen::Write(v) => {
                        self.model.write(v);
                        if self.notify {
                            break Wake::Notify;
                        }
                    }
                    Happen::Notes(n) => {
                        self.model.write(app(self.source) + 10 * n);
                        if self.notify {
                            break Wake::Notify;
                        }
                    }
                    Happen::Touch if self.notify => break Wake::Notify,
                    Happen::Touch => {}
                    Happen::Signal(sig) => break Wake::Signal(sig),
                    Happen::ChildExits(code) => self.exit(code),
                    Happen::DiskFails(fails) => self.disk_fails = fails,
                    Happen::ViewFails(fails) => self.view_fails = fails,
                    Happen::ChecksFail(fails) => self.checks_fail = fails,
                    Happen::UnshowFails(fails) => self.unshow_fails = fails,
                }
                continue;
            }
            break Wake::Timer;
        };
        std::future::ready(wake)
    }
}

fn pacing() -> Pacing {
    Pacing {
        debounce: Duration::from_millis(100),
        debounce_max: Duration::from_secs(10),
        splay: Duration::ZERO,
        min_interval: Duration::ZERO,
        seed: 7,
    }
}

/// Runs the real loop against `world` to its end; the world and the code.
fn run(mut world: Fake, cfg: Pacing, settings: Settings) -> (Fake, i32) {
    world.settings = settings.clone();
    let (good, rejected, proven) = world.recover();
    let found = Recovered {
        good,
        rejected,
        proven,
    };
    let code = smol::future::block_on(drive(&mut world, cfg, settings, found));
    (world, code)
}

const TERM: i32 = libc::SIGTERM;

#[test]
fn a_touch_and_a_rewrite_of_the_same_bytes_restart_nothing() {
    let world = Fake::new()
        .at(1_000, Happen::Touch)
        .at(2_000, Happen::Write(0))
        .at(60_000, Happen::Signal(TERM));
    let (w, code) = run(world, pacing(), settings());
    assert_eq!(w.spawns(), [Did::Spawn(0)]);
    assert_eq!(code, 143);
}

#[test]
fn a_burst_of_writes_is_one_restart_with_the_last_bytes() {
    let mut world = Fake::new().at(60_000, Happen::Signal(TERM));
    for i in 1..=20 {
        world = world.at(1_000 + i * 10, Happen::Write(i));
    }
    let (w, _) = run(world, pacing(), settings());
    assert_eq!(w.spawns(), [Did::Spawn(0), Did::Spawn(20)]);
    // Acted a debounce after the last write.
    assert_eq!(w.when(&Did::Spawn(20)), [1_300]);
}

#[test]
fn a_change_before_the_watcher_is_up_is_caught_at_once() {
    let mut world = Fake::new().at(60_000, Happen::Signal(TERM));
    world.write_after_spawn = Some(1);
    let (w, _) = run(world, pacing(), settings());
    assert_eq!(w.spawns(), [Did::Spawn(0), Did::Spawn(1)]);
    assert_eq!(w.when(&Did::Spawn(1)), [0]);
}

#[test]
fn a_directory_that_never_goes_quiet_is_acted_on_after_debounce_max() {
    let mut world = Fake::new().at(20_000, Happen::Signal(TERM));
    // A write every 50 ms for 10 s: never 100 ms of quiet.
    for i in 1..=200 {
        world = world.at(i * 50, Happen::Write(i));
    }
    let cfg = Pacing {
        debounce_max: Duration::from_secs(1),
        ..pacing()
    };
    let (w, _) = run(world, cfg, settings());
    let restarts: Vec<u64> = w
        .did
        .iter()
        .filter(|(_, d)| matches!(d, Did::Spawn(v) if *v > 0))
        .map(|(t, _)| *t)
        .collect();
    assert!(restarts.len() >= 5, "{restarts:?}");
    // The first burst began at 50 ms: acted on at its bound, not later.
    assert_eq!(restarts[0], 1_050);
    // And the last bytes are what the last child has.
    assert_eq!(w.spawns().last(), Some(&Did::Spawn(200)));
}

#[test]
fn min_interval_folds_changes_into_one_action_per_interval_and_loses_none() {
    let world = Fake::new()
        .at(1_000, Happen::Write(1))
        .at(2_000, Happen::Write(2))
        .at(3_000, Happen::Write(3))
        .at(60_000, Happen::Signal(TERM));
    let cfg = Pacing {
        min_interval: Duration::from_secs(10),
        ..pacing()
    };
    let (w, _) = run(world, cfg, settings());
    assert_eq!(w.spawns(), [Did::Spawn(0), Did::Spawn(1), Did::Spawn(3)]);
    assert_eq!(w.when(&Did::Spawn(1)), [1_100]);
    assert_eq!(w.when(&Did::Spawn(3)), [11_100]);
}

#[test]
fn splay_waits_a_part_of_its_window_and_acts_once() {
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..20 {
        let world = Fake::new()
            .at(1_000, Happen::Write(1))
            .at(60_000, Happen::Signal(TERM));
        let cfg = Pacing {
            splay: Duration::from_secs(10),
            seed,
            ..pacing()
        };
        let (w, _) = run(world, cfg, settings());
        assert_eq!(w.spawns(), [Did::Spawn(0), Did::Spawn(1)]);
        let at = w.when(&Did::Spawn(1))[0];
        assert!((1_100..11_100).contains(&at), "{at}");
        seen.insert(at / 1_000);
    }
    // Spread, not all at once.
    assert!(seen.len() >= 4, "{seen:?}");
}

#[test]
fn sigterm_during_the_splay_exits_without_acting() {
    let world = Fake::new()
        .at(1_000, Happen::Write(1))
        .at(2_000, Happen::Signal(TERM));
    let cfg = Pacing {
        splay: Duration::from_secs(30),
        seed: 3,
        ..pacing()
    };
    let (w, code) = run(world, cfg, settings());
    assert_eq!(w.spawns(), [Did::Spawn(0)]);
    assert_eq!(code, 143);
    assert_eq!(w.when(&Did::Exit(143)), [2_000]);
}

#[test]
fn without_notify_events_polling_finds_the_change() {
    let mut world = Fake::new()
        .at(1_500, Happen::Write(1))
        .at(60_000, Happen::Signal(TERM));
    world.notify = false;
    world.poll = Some(Duration::from_secs(1));
    let (w, _) = run(world, pacing(), settings());
    assert_eq!(w.spawns(), [Did::Spawn(0), Did::Spawn(1)]);
    // The tick at 2 s sees it; the debounce follows.
    assert_eq!(w.when(&Did::Spawn(1)), [2_100]);
}

#[test]
fn a_child_ignoring_sigterm_is_killed_with_its_group_at_the_stop_timeout() {
    let mut world = Fake::new().at(1_000, Happen::Signal(TERM));
    world.procs.stubborn = true;
    let s = Settings {
        stop_timeout: Duration::from_secs(3),
        ..settings()
    };
    let (w, code) = run(world, pacing(), s);
    assert_eq!(w.when(&Did::Signal(TERM)), [1_000]);
    assert_eq!(w.when(&Did::Group(libc::SIGKILL)), [4_000]);
    assert_eq!(code, 137);
}

#[test]
fn leftovers_of_an_exited_child_get_the_stop_signal_then_sigkill() {
    let mut world = Fake::new().at(1_000, Happen::ChildExits(3));
    world.leftovers_for = Some(Duration::from_secs(60));
    let s = Settings {
        stop_timeout: Duration::from_secs(2),
        ..settings()
    };
    let (w, code) = run(world, pacing(), s);
    assert_eq!(w.when(&Did::Group(TERM)), [1_000]);
    assert_eq!(w.when(&Did::Group(libc::SIGKILL)), [3_000]);
    // The child's own code, not the leftovers'.
    assert_eq!(code, 3);
    assert_eq!(w.when(&Did::Exit(3)), [3_000]);
}

#[test]
fn leftovers_that_leave_by_themselves_are_waited_for_by_probing() {
    let mut world = Fake::new().at(1_000, Happen::ChildExits(0));
    world.leftovers_for = Some(Duration::from_millis(500));
    let (w, code) = run(world, pacing(), settings());
    assert_eq!(code, 0);
    assert!(w.when(&Did::Group(libc::SIGKILL)).is_empty());
    // Probed every 20 ms: gone at 1.5 s, seen by the next probe.
    let exit = w.when(&Did::Exit(0))[0];
    assert!((1_500..=1_520).contains(&exit), "{exit}");
}

#[test]
fn a_reload_signal_to_a_child_without_its_handler_restarts_it_instead() {
    let mut world = Fake::new()
        .at(1_000, Happen::Write(1))
        .at(60_000, Happen::Signal(TERM));
    world.procs.catches = false;
    let s = Settings {
        reload_signal: Some(libc::SIGHUP),
        ..settings()
    };
    let (w, _) = run(world, pacing(), s);
    assert!(w.when(&Did::Signal(libc::SIGHUP)).is_empty());
    assert_eq!(w.spawns(), [Did::Spawn(0), Did::Spawn(1)]);
}

/// `--signal-to group`: a worker that would die of the reload signal makes
/// it a restart; one that ignores it, handles it or is already dying does
/// not; with the child alone addressed, the worker is not asked.
#[test]
fn with_signal_to_group_only_a_worker_that_would_die_of_the_reload_restarts() {
    use crate::signals::Takes;
    for (to, worker, restarts) in [
        (Target::Group, Takes::Unhandled, true),
        (Target::Group, Takes::Ignored, false),
        (Target::Group, Takes::Handled, false),
        (Target::Group, Takes::Dying, false),
        (Target::Child, Takes::Unhandled, false),
    ] {
        let mut world = Fake::new()
            .at(1_000, Happen::Write(1))
            .at(60_000, Happen::Signal(TERM));
        world.procs.worker = Some(worker);
        let s = Settings {
            reload_signal: Some(libc::SIGHUP),
            signal_to: to,
            ..settings()
        };
        let (w, _) = run(world, pacing(), s);
        let spawns = if restarts { 2 } else { 1 };
        assert_eq!(w.spawns().len(), spawns, "{to:?} {worker:?}");
        let signalled =
            w.when(&Did::Signal(libc::SIGHUP)).len() + w.when(&Did::Group(libc::SIGHUP)).len();
        assert_eq!(signalled, usize::from(!restarts), "{to:?} {worker:?}");
    }
}

#[test]
fn a_reload_signal_reaches_a_child_that_handles_it_and_nothing_restarts() {
    let world = Fake::new()
        .at(1_000, Happen::Write(1))
        .at(2_000, Happen::Touch)
        .at(60_000, Happen::Signal(TERM));
    let s = Settings {
        reload_signal: Some(libc::SIGHUP),
        ..settings()
    };
    let (w, _) = run(world, pacing(), s);
    assert_eq!(w.when(&Did::Signal(libc::SIGHUP)), [1_100]);
    assert_eq!(w.spawns(), [Did::Spawn(0)]);
}

#[test]
fn restart_always_backs_off_doubling_and_gives_up_at_max_restarts() {
    let mut world = Fake::new();
    for i in 0..4 {
        // Each child fails 10 ms after it starts (backoffs 1, 2, 4 s).
        world = world.at([10, 1_020, 3_030, 7_040][i], Happen::ChildExits(1));
    }
    let s = Settings {
        restart: Policy::Always,
        max_restarts: Some(3),
        ..settings()
    };
    let (w, code) = run(world, pacing(), s);
    let starts: Vec<u64> = w
        .did
        .iter()
        .filter(|(_, d)| matches!(d, Did::Spawn(_)))
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(starts, [0, 1_010, 3_020, 7_030]);
    assert_eq!(code, 1);
}

#[test]
fn a_failed_reload_command_is_retried_doubling_until_it_succeeds() {
    let mut world = Fake::new()
        .at(1_000, Happen::Write(1))
        .at(60_000, Happen::Signal(TERM));
    world.reload_results = [false, false, true].into();
    let s = Settings {
        reload_hooks: 1,
        ..settings()
    };
    let (w, _) = run(world, pacing(), s);
    // Each try takes 100 ms; then 1 s, then 2 s of backoff.
    assert_eq!(w.when(&Did::Reload(1)), [1_100, 2_200, 4_300]);
    assert_eq!(w.spawns(), [Did::Spawn(0)]);
}

#[test]
fn a_newer_change_supersedes_a_waiting_reload_retry() {
    let mut world = Fake::new()
        .at(1_000, Happen::Write(1))
        .at(1_500, Happen::Write(2))
        .at(60_000, Happen::Signal(TERM));
    world.reload_results = [false, true].into();
    let s = Settings {
        reload_hooks: 1,
        ..settings()
    };
    let (w, _) = run(world, pacing(), s);
    assert_eq!(w.when(&Did::Reload(1)), [1_100]);
    // Nothing runs to be cancelled: the machine cancels the retry's wait.
    assert_eq!(w.when(&Did::CancelHooks), []);
    assert_eq!(w.when(&Did::Reload(2)), [1_600]);
    // The retry of the superseded reload never runs.
    assert_eq!(
        w.what()
            .iter()
            .filter(|d| matches!(d, Did::Reload(_)))
            .count(),
        2
    );
}

#[test]
fn a_rejected_change_keeps_the_child_and_a_fix_restarts_it() {
    let mut world = Fake::new()
        .at(1_000, Happen::Write(3))
        .at(2_000, Happen::Touch)
        .at(3_000, Happen::Write(4))
        .at(60_000, Happen::Signal(TERM));
    world.validator = |v| v != 3;
    let s = Settings {
        validate: true,
        ..settings()
    };
    let (w, _) = run(world, pacing(), s);
    // Checked once at start and once per distinct change; the touch of the
    // rejected bytes checks nothing again.
    assert_eq!(
        w.what()
            .into_iter()
            .filter(|d| matches!(d, Did::Validate(_)))
            .collect::<Vec<_>>(),
        [Did::Validate(0), Did::Validate(3), Did::Validate(4)]
    );
    assert_eq!(w.spawns(), [Did::Spawn(0), Did::Spawn(4)]);
}

#[test]
fn exit_codes_are_remapped() {
    let world = Fake::new().at(1_000, Happen::Signal(TERM));
    let s = Settings {
        remap_exit: vec![(143, 0)],
        ..settings()
    };
    let (_, code) = run(world, pacing(), s);
    assert_eq!(code, 0);
}

fn promoting() -> Settings {
    Settings {
        promote: true,
        ..settings()
    }
}

impl Fake {
    /// `--promote-to` (checked in place or not), optionally with a last
    /// good generation of `good` already in the directory.
    fn promoting(mut self, good: Option<u64>) -> Fake {
        if let Some(v) = good {
            self.with_good(v);
        }
        self
    }

    fn of(&self, pick: fn(&Did) -> bool) -> Vec<Did> {
        self.what().into_iter().filter(pick).collect()
    }
}

#[test]
fn promoted_bytes_are_the_staged_copy_checked_then_committed() {
    let mut world = Fake::new()
        .at(1_000, Happen::Write(1))
        // During the check of 1 (settled at 1.1 s, checked until 1.3 s): bad
        // bytes, which settle after it.
        .at(1_250, Happen::Write(3))
        .at(60_000, Happen::Signal(TERM))
        .promoting(None);
    world.validator = |v| v != 3;
    let s = Settings {
        validate: true,
        reload_signal: Some(libc::SIGHUP),
        ..promoting()
    };
    let (w, code) = run(world, pacing(), s);
    assert_eq!(code, 143);
    assert_eq!(
        w.of(|d| matches!(d, Did::Stage(_) | Did::Commit(_) | Did::DropCandidate(_))),
        [
            Did::Stage(0),
            Did::Commit(0),
            Did::Stage(1),
            Did::Commit(1),
            Did::Stage(3),
            Did::DropCandidate(3)
        ]
    );
    assert_eq!(w.when(&Did::Commit(1)), [1_300]);
    // Told of 1 once it was committed; 3 never reached the directory.
    assert_eq!(w.when(&Did::Signal(libc::SIGHUP)), [1_300]);
    assert_eq!(w.gens.values().copied().collect::<Vec<_>>(), [1]);
}

#[test]
fn a_full_disk_changes_nothing_and_staging_is_retried_doubling() {
    let world = Fake::new()
        .at(500, Happen::DiskFails(true))
        .at(1_000, Happen::Write(1))
        .at(3_000, Happen::DiskFails(false))
        .at(60_000, Happen::Signal(TERM))
        .promoting(None);
    let (w, _) = run(world, pacing(), promoting());
    // Tried at the settle, then after 1 s and 2 s (the disk is back).
    assert_eq!(w.when(&Did::DiskFull), [1_100, 2_100]);
    assert_eq!(w.when(&Did::Commit(1)), [4_100]);
    // The child is restarted onto 1 only once 1 was committed.
    assert_eq!(w.spawns(), [Did::Spawn(0), Did::Spawn(1)]);
    assert_eq!(w.when(&Did::Spawn(1)), [4_100]);
}

/// A commit whose view switch fails: the record names 1 (a restarted manager would show it), so the
/// machine takes 1 as the last good one: it never discards it, never forgets
/// it, and retries the same commit (not a new staging) until the view
/// follows; the child is told only then. Before, the machine took it as a
/// failed commit, staged 1 again and left the recorded copy behind.
#[test]
fn a_commit_whose_view_cannot_follow_is_taken_at_the_disks_word() {
    let world = Fake::new()
        .at(500, Happen::ViewFails(true))
        .at(1_000, Happen::Write(1))
        .at(3_000, Happen::ViewFails(false))
        .at(60_000, Happen::Signal(TERM))
        .promoting(None);
    let (w, _) = run(world, pacing(), promoting());
    assert_eq!(w.when(&Did::ViewBehind(1)), [1_100, 2_100]);
    assert_eq!(w.when(&Did::Commit(1)), [4_100]);
    // One staging: the recorded generation is committed again, not copied.
    assert_eq!(w.of(|d| matches!(d, Did::Stage(1))), [Did::Stage(1)]);
    assert!(w.of(|d| matches!(d, Did::DropCandidate(_))).is_empty());
    assert_eq!(w.spawns(), [Did::Spawn(0), Did::Spawn(1)]);
    assert_eq!(w.when(&Did::Spawn(1)), [4_100]);
    // Machine and disk agree: the record and the view name 1; 0 is gone.
    assert_eq!(w.good, w.shown);
    assert_eq!(w.good.as_ref().map(|g| w.gens[g]), Some(1));
    assert_eq!(w.gens.len(), 1, "{:?}", w.gens);
}

/// The same fault, then the source goes back to 0 while the view
/// still shows 0: the commit owed for 1 is moot, so the record goes back
/// to 0 (retried while the disk fails), 1's copy goes, and the child, which
/// has 0, is neither restarted nor told. Before, the retry was dropped and
/// the record named 1 for good while the view showed 0.
#[test]
fn after_a_view_fault_a_source_back_on_the_views_bytes_puts_the_record_back() {
    let world = Fake::new()
        .at(500, Happen::ViewFails(true))
        .at(1_000, Happen::Write(1))
        .at(1_500, Happen::Write(0))
        .at(2_500, Happen::ViewFails(false))
        .at(60_000, Happen::Signal(TERM))
        .promoting(None);
    let (w, _) = run(world, pacing(), promoting());
    assert_eq!(w.when(&Did::ViewBehind(1)), [1_100]);
    let back = w.when(&Did::RecordBack(0));
    assert!(!back.is_empty(), "{:?}", w.did);
    assert!(w.when(&Did::Commit(1)).is_empty(), "{:?}", w.did);
    assert_eq!(w.spawns(), [Did::Spawn(0)]);
    assert!(w.of(|d| matches!(d, Did::DropCandidate(_))).is_empty());
    assert_eq!(w.good, w.shown);
    assert_eq!(w.view, w.good);
    assert_eq!(w.good.as_ref().map(|g| w.gens[g]), Some(0));
    assert_eq!(w.gens.len(), 1, "{:?}", w.gens);
}

#[test]
fn at_startup_a_rejected_source_starts_the_child_on_the_last_good_generation() {
    let mut world = Fake::new()
        .at(60_000, Happen::Signal(TERM))
        .promoting(Some(7));
    world.source = 3;
    world.validator = |v| v != 3;
    let s = Settings {
        validate: true,
        ..promoting()
    };
    let (w, _) = run(world, pacing(), s);
    assert_eq!(w.spawns(), [Did::Spawn(7)]);
    assert_eq!(
        w.of(|d| matches!(d, Did::DropCandidate(_))),
        [Did::DropCandidate(3)]
    );
}

#[test]
fn checked_in_place_the_candidate_is_shown_then_hidden_again() {
    let mut world = Fake::new()
        .at(1_000, Happen::Write(3))
        .at(60_000, Happen::Signal(TERM))
        .promoting(None);
    world.validator = |v| v != 3;
    let s = Settings {
        validate: true,
        validate_in_place: true,
        ..promoting()
    };
    let (w, _) = run(world, pacing(), s);
    assert_eq!(w.shown, w.good);
    assert_eq!(w.gens[w.good.as_ref().unwrap()], 0);
    assert_eq!(w.spawns(), [Did::Spawn(0)]);
}

/// The real loop, timers included, against the scripted world with every
/// mode a user can turn on (promotion, in-place checks, a reload signal or
/// command, to the child or its group (with a worker that handles, ignores
/// or would die of it), an --on-change rule for notes.txt, --min-interval,
/// --splay, a failing disk): whatever the script, no child starts on rejected bytes or
/// a candidate (the world asserts it), a change of only files that chose
/// `none` does nothing, and once writes stop, the child runs the last good
/// bytes. With `--rollback-window` (children that crash, a version whose
/// child is never ready, a readiness probe): a rollback lands only on the
/// proven generation, one is proven only after its window, the proven one
/// is never forgotten, rolled-back bytes are never shown again while the
/// source holds them (the world asserts each).
mod loop_props {
    use super::*;
    use crate::route::{Act, Routes, Rule};
    use proptest::prelude::*;

    use crate::state::model::{BAD, NOT_READY};

    fn happen() -> impl Strategy<Value = Happen> {
        prop_oneof![
            6 => (0u64..6).prop_map(Happen::Write),
            3 => (0u64..3).prop_map(Happen::Notes),
            1 => Just(Happen::Touch),
            1 => any::<bool>().prop_map(Happen::DiskFails),
            1 => any::<bool>().prop_map(Happen::ViewFails),
            1 => any::<bool>().prop_map(Happen::ChecksFail),
            1 => any::<bool>().prop_map(Happen::UnshowFails),
            1 => prop::sample::select(vec![libc::SIGHUP, libc::SIGUSR1]).prop_map(Happen::Signal),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: crate::state::testkit::cases(300), ..ProptestConfig::default() })]

        #[test]
        fn the_loop_keeps_its_promises(
            script in prop::collection::vec((1_000u64..20_000, happen()), 0..25),
            validate in any::<bool>(),
            promote in any::<bool>(),
            in_place in any::<bool>(),
            by in 0u8..3,
            min_interval in prop::sample::select(vec![0u64, 700, 3_000]),
            splay in prop::sample::select(vec![0u64, 500, 2_000]),
            seed in any::<u64>(),
            rule in prop::sample::select(vec![None, Some(Act::Nothing), Some(Act::Restart),
                Some(Act::Signal(libc::SIGUSR2)), Some(Act::Hook(0)), Some(Act::Hook(1))]),
            window in any::<bool>(),
            crashes in prop::collection::vec(1_000u64..20_000, 0..4),
            start_period in prop::sample::select(vec![0u64, 1_500]),
            group in any::<bool>(),
            worker in prop::sample::select(vec![None, Some(crate::signals::Takes::Handled),
                Some(crate::signals::Takes::Ignored), Some(crate::signals::Takes::Unhandled),
                Some(crate::signals::Takes::Dying)]),
            stubborn in any::<bool>(),
            stop_delay in prop::sample::select(vec![0u64, 2_000]),
        ) {
            let window = window && promote;
            // SIGTERM comes at 200 s.
            let term = 200_000;
            let mut world = Fake::new();
            for (at, h) in script {
                world = world.at(at, h);
            }
            let crashed = window && !crashes.is_empty();
            if window {
                for at in crashes {
                    world = world.at(at, Happen::ChildExits(1));
                }
                world.ready_for = |v| app(v) != NOT_READY;
            }
            // Quiet for long enough that every retry and timer has run.
            world = world
                .at(20_000, Happen::DiskFails(false))
                .at(20_000, Happen::ViewFails(false))
                .at(20_000, Happen::ChecksFail(false))
                .at(20_000, Happen::UnshowFails(false))
                .at(term, Happen::Signal(TERM));
            world.validator = |v| app(v) != BAD;
            world.procs.worker = worker;
            // Children that ignore SIGTERM: killed at the stop timeout.
            world.procs.stubborn = stubborn;
            if promote {
                world = world.promoting(None);
            }
            let s = Settings {
                validate,
                promote,
                validate_in_place: in_place && promote && validate,
                reload_signal: (by == 1).then_some(libc::SIGHUP),
                reload_hooks: usize::from(by == 2),
                routes: Routes::new(
                    vec![PathBuf::from("/c")],
                    rule.clone()
                        .map(|act| Rule { pattern: "notes.txt".into(), act })
                        .into_iter()
                        .collect(),
                ),
                rollback_window: window.then_some(Duration::from_secs(3)),
                ready_interval: window.then_some(Duration::from_millis(500)),
                ready_start_period: Duration::from_millis(start_period),
                restart: if window { Policy::Always } else { Policy::Never },
                signal_to: if group { Target::Group } else { Target::Child },
                stop_delay: Duration::from_millis(stop_delay),
                ..settings()
            };
            // Out by --stop-delay, --stop-timeout and the grace after
            // SIGKILL, with no child started meanwhile.
            let budget = (s.stop_delay + s.stop_timeout + crate::state::KILL_GRACE).as_millis() as u64;
            let quiet = rule == Some(Act::Nothing);
            let cfg = Pacing {
                min_interval: Duration::from_millis(min_interval),
                splay: Duration::from_millis(splay),
                seed,
                ..pacing()
            };
            let last = world.script.iter().fold(0, |v, (_, h)| match h {
                Happen::Write(x) => *x,
                Happen::Notes(n) => app(v) + 10 * n,
                _ => v,
            });
            // Writes of notes.txt alone, which chose none: nothing happens.
            let only_quiet = quiet
                && !crashed
                && world.script.iter().all(|(_, h)| !matches!(h, Happen::Write(_)));
            let (w, code) = run(world, cfg, s);
            // A stubborn child still running is killed at the stop timeout.
            let killed = w.did.iter().any(|(t, d)| *t >= term && *d == Did::Group(libc::SIGKILL));
            prop_assert!(!killed || stubborn, "{:?}", w.did);
            prop_assert_eq!(code, if killed { 137 } else { 143 }, "{:?}", w.did);
            let out = w.when(&Did::Exit(code));
            prop_assert!(out.len() == 1 && out[0] <= term + budget, "SIGTERM, and out at {:?}: {:?}", out, w.did);
            prop_assert!(
                !w.did.iter().any(|(t, d)| *t >= term && matches!(d, Did::Spawn(_))),
                "a child started after SIGTERM: {:?}", w.did
            );
            // Once the disk works again, the view and the record agree.
            prop_assert_eq!(&w.shown, &w.good, "{:?}", w.did);
            prop_assert_eq!(&w.view, &w.good, "{:?}", w.did);
            // (No child on bad bytes with --promote-to: the model asserts
            // it at each start. Without it, the child reads the source
            // itself: bytes written after the check are checked after the
            // start, as the README says.)
            let spawns = w.spawns();
            if only_quiet {
                prop_assert_eq!(&spawns, &[Did::Spawn(0)], "{:?}", w.did);
                // (Signals are the script's, forwarded: not told apart here.)
                prop_assert!(
                    // After the first start (and its own staging and check).
                    !w.what().iter().skip_while(|d| !matches!(d, Did::Spawn(_))).any(|d| matches!(d,
                        Did::Reload(_) | Did::Validate(_) | Did::Stage(_) | Did::Commit(_))),
                    "a file that chose none acted: {:?}", w.did
                );
            }
            // A SIGHUP or SIGUSR1 from outside made the last child read
            // other bytes after it last read them for the machine (its
            // start, hooks, an --on-change signal).
            let strayed = w.strayed;
            let runs = |v: u64| -> bool {
                // The bytes the last child ran on, as the model knows them.
                // Without --promote-to a reload (or a signal from outside)
                // makes the child read the source at that instant, which
                // may be bytes the source then left again before the next
                // look (A-B-A), or bytes the check rejected: not checkable.
                let reloads = by != 0 || strayed || matches!(rule, Some(Act::Signal(_) | Act::Hook(_)));
                w.procs.last.is_some_and(|ran| w.same(ran, v)) || (reloads && !promote)
            };
            if window {
                // Crashes and a never-ready version roll back: the child
                // runs the last bytes, or the proven generation (or, when
                // the disk refused a rollback, the generation it kept).
                let good = w.good.as_ref().map(|g| w.gens[g]);
                let kept = w.good_is_proven() || !w.when(&Did::CannotRollBack).is_empty();
                let on_proven = kept && good.is_some_and(&runs);
                prop_assert!(
                    (runs(last) && !(validate && app(last) == BAD)) || on_proven,
                    "neither the last bytes {} nor the proven generation: {:?}", last, w.did
                );
            } else if !(validate && app(last) == BAD) {
                prop_assert!(runs(last), "the last bytes {} never reached the child: {:?}", last, w.did);
                if promote {
                    let good = w.good.as_ref().map(|g| w.gens[g]);
                    prop_assert!(good.is_some_and(|g| w.same(g, last)), "{:?}", w.did);
                }
            }
            if promote {
                prop_assert_eq!(&w.shown, &w.good);
            }
        }
    }
}

#[test]
fn a_child_that_dies_on_new_bytes_within_the_window_is_rolled_back() {
    let world = Fake::new()
        .at(1_000, Happen::Write(5))
        // The child on 5 exits by itself a second later: 5 breaks it.
        .at(2_500, Happen::ChildExits(1))
        .at(5_000, Happen::Write(6))
        .at(60_000, Happen::Signal(TERM))
        .promoting(None);
    let s = Settings {
        rollback_window: Some(Duration::from_secs(10)),
        restart: Policy::Never,
        ..promoting()
    };
    let (w, code) = run(world, pacing(), s);
    assert_eq!(
        code, 143,
        "rolled back and restarted, not exited: {:?}",
        w.did
    );
    assert_eq!(
        w.spawns(),
        [Did::Spawn(0), Did::Spawn(5), Did::Spawn(0), Did::Spawn(6)]
    );
    assert_eq!(w.when(&Did::RollBack(0)), [2_500]);
    // 6 is not judged by 5's fate; 5's generation is gone.
    assert_eq!(w.gens.values().copied().collect::<Vec<_>>(), [6]);
}

#[test]
fn a_failing_readiness_probe_within_the_window_rolls_back_and_reloads() {
    let mut world = Fake::new()
        .at(1_000, Happen::Write(5))
        .at(60_000, Happen::Signal(TERM))
        .promoting(None);
    world.ready_for = |v| v != 5;
    let s = Settings {
        rollback_window: Some(Duration::from_secs(30)),
        reload_signal: Some(libc::SIGHUP),
        ready_interval: Some(Duration::from_secs(1)),
        ..promoting()
    };
    let cfg = pacing();
    let (w, _) = run(world, cfg, s);
    // Reloaded onto 5 at 1.1 s; the probes every second (each 50 ms long)
    // fail at 2.05, 3.05, 4.05 s: back to 0, and reloaded, not restarted.
    assert_eq!(w.spawns(), [Did::Spawn(0)]);
    assert_eq!(w.when(&Did::Signal(libc::SIGHUP)), [1_100, 4_050]);
    assert_eq!(w.when(&Did::RollBack(0)), [4_050]);
    // The last word of /readyz: the child was being stopped at the end.
    assert_eq!(w.readiness, Err("the child is being stopped".to_string()));
}

#[test]
fn without_a_previous_generation_nothing_is_rolled_back() {
    let world = Fake::new().at(1_000, Happen::ChildExits(1)).promoting(None);
    let s = Settings {
        rollback_window: Some(Duration::from_secs(10)),
        ..promoting()
    };
    let (w, code) = run(world, pacing(), s);
    assert_eq!(code, 1, "the restart policy decides, as without the window");
    assert!(w.when(&Did::RollBack(0)).is_empty());
}

/// Issue 24, item 5, through the loop: a probe of the child on 5 (never
/// ready) is in flight when 6 restarts it (probes every second from its
/// start at 0.6 s, 50 ms each: started at 2.6 s, answered at 2.65 s; the
/// child on 6 starts at 2.62 s). Its failure
/// used to count for the child on 6, and `/readyz` said that child failed.
#[test]
fn a_probe_answer_for_the_child_before_a_restart_judges_nobody() {
    let mut world = Fake::new()
        .at(500, Happen::Write(5))
        .at(2_520, Happen::Write(6))
        .at(10_000, Happen::Signal(TERM))
        .promoting(None);
    world.ready_for = |v| v != 5;
    let s = Settings {
        rollback_window: Some(Duration::from_secs(30)),
        ready_interval: Some(Duration::from_secs(1)),
        ..promoting()
    };
    let cfg = pacing();
    let (w, _) = run(world, cfg, s);
    assert_eq!(w.spawns(), [Did::Spawn(0), Did::Spawn(5), Did::Spawn(6)]);
    let six = w.when(&Did::Spawn(6))[0];
    assert!(
        (2_600..2_650).contains(&six),
        "the restart is not inside the probe: {six}"
    );
    // The child on 5 failed its own probe (so stale answers exist)...
    assert!(
        w.readiness_log
            .iter()
            .any(|(t, r)| *t < six && matches!(r, Err(e) if e.contains("failed"))),
        "{:?}",
        w.readiness_log
    );
    // ... and the child on 6 is never said to have failed: not ready yet,
    // then ready.
    let after: Vec<_> = w.readiness_log.iter().filter(|(t, _)| *t >= six).collect();
    assert!(
        !after
            .iter()
            .any(|(_, r)| matches!(r, Err(e) if e.contains("failed"))),
        "{after:?}"
    );
    assert!(after.iter().any(|(_, r)| r.is_ok()), "{after:?}");
}

/// Found by the loop's property test (its shrunk case): checks cannot start
/// from 1 s to 10.4 s; 5, written meanwhile, waits for its check's retry;
/// 3 is written just before that retry, and 5 again just after, within
/// one settle. The retry
/// ran on the live files without a look, judged 3, and the machine took
/// that verdict for 5: 5 stayed rejected and never reached the child.
#[test]
fn a_retried_check_is_for_the_bytes_it_reads() {
    let mut world = Fake::new()
        .at(1_000, Happen::ChecksFail(true))
        .at(10_364, Happen::ChecksFail(false))
        .at(200_000, Happen::Signal(TERM));
    // Rewrites of the same bytes too: each draws its splay.
    let writes = [
        (1_000, 0),
        (1_000, 0),
        (4_342, 0),
        (5_586, 0),
        (6_716, 0),
        (8_540, 5),
        (11_235, 3),
        (12_235, 0),
        (12_235, 5),
    ];
    for (at, v) in writes {
        world = world.at(at, Happen::Write(v));
    }
    world.validator = |v| v % 10 != 3;
    let s = Settings {
        validate: true,
        ..settings()
    };
    let cfg = Pacing {
        splay: Duration::from_millis(2000),
        seed: 13035057563520861790,
        ..pacing()
    };
    let (w, code) = run(world, cfg, s);
    assert_eq!(code, 143);
    assert_eq!(w.spawns().last(), Some(&Did::Spawn(5)), "{:?}", w.did);
}
