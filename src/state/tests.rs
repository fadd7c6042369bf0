//! The machine's decisions, one scenario each: event in, actions out.

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
    let (mut m, first) = Machine::new(s, None, None, None);
    assert_eq!(first, [Action::Fingerprint]);
    let then = m.step(Event::Candidate(now));
    (m, then)
}

/// The gate's look before a (re)start finds `now`: the child starts.
fn look_and_start(m: &mut Machine, now: Snapshot) {
    assert_eq!(m.step(Event::Candidate(now)), [Action::Spawn]);
    assert_eq!(m.step(Event::Spawned), []);
}

/// A machine whose child runs with config `hash`.
fn running(s: Settings, hash: Option<u64>) -> Machine {
    let (mut m, first) = start(s, snap(hash));
    assert_eq!(first, [Action::Spawn]);
    assert_eq!(m.step(Event::Spawned), []);
    m
}

/// What stopping the child with `sig` (default timeout) starts with.
fn stop_with(sig: i32) -> [Action; 3] {
    [
        Action::Signal(sig, CHILD),
        Action::ContinueStopped(CHILD),
        Action::StopDeadline(Some(SECS10)),
    ]
}

/// A settled change taken (`--min-interval` counts), then `then`.
fn acted_then(then: [Action; 3]) -> Vec<Action> {
    std::iter::once(Action::Acted).chain(then).collect()
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
        m.step(exited(3)),
        [
            // Leftovers of an exited child: always the whole group.
            Action::Signal(TERM, GROUP),
            Action::ContinueStopped(GROUP),
            Action::StopDeadline(Some(SECS10))
        ]
    );
    assert_eq!(
        m.step(Event::GroupGone),
        [Action::StopDeadline(None), Action::Exit(3)]
    );
    assert_eq!(m.phase, Phase::Done);
}

#[test]
fn signal_death_is_128_plus_n() {
    let mut m = running(settings(), Some(1));
    assert_eq!(
        drained(&mut m, Status::Signaled(9)),
        [Action::StopDeadline(None), Action::Exit(137)]
    );
}

#[test]
fn leftovers_in_the_group_are_killed_after_the_timeout() {
    let mut m = running(settings(), Some(1));
    m.step(exited(0));
    assert_eq!(
        m.step(Event::StopDeadline),
        [Action::KillGroup, Action::StopDeadline(Some(KILL_GRACE))]
    );
    assert_eq!(
        m.step(Event::GroupGone),
        [Action::StopDeadline(None), Action::Exit(0)]
    );
}

#[test]
fn sigterm_forwards_the_stop_signal_then_kills() {
    let mut s = settings();
    s.stop_signal = libc::SIGQUIT;
    let mut m = running(s, Some(1));
    assert_eq!(m.step(Event::Signal(TERM)), stop_with(libc::SIGQUIT));
    // Transparent while waiting: other signals still reach the child.
    assert_eq!(
        m.step(Event::Signal(libc::SIGUSR1)),
        [Action::Signal(libc::SIGUSR1, CHILD)]
    );
    assert_eq!(
        m.step(Event::StopDeadline),
        [Action::KillGroup, Action::StopDeadline(Some(KILL_GRACE))]
    );
    assert_eq!(
        drained(&mut m, Status::Signaled(9)),
        [Action::StopDeadline(None), Action::Exit(137)]
    );
}

#[test]
fn sigint_is_forwarded_as_sigint_and_a_child_may_survive_it() {
    let mut m = running(settings(), Some(1));
    assert_eq!(m.step(Event::Signal(libc::SIGINT)), stop_with(libc::SIGINT));
    // The child handles SIGINT and carries on; only the timer decides.
    assert_eq!(
        m.step(Event::Signal(libc::SIGHUP)),
        [Action::Signal(libc::SIGHUP, CHILD)]
    );
    assert_eq!(m.step(Event::StopDeadline)[0], Action::KillGroup);
}

fn external() -> Settings {
    Settings {
        reload_hooks: 1,
        ..settings()
    }
}

/// The reload of /c/app.conf with this token, by these hooks.
fn run_hooks(token: u64, hooks: &[usize]) -> Action {
    Action::RunHooks {
        token,
        calls: hooks
            .iter()
            .map(|&hook| HookCall {
                hook,
                changed: vec![PathBuf::from("/c/app.conf")],
            })
            .collect(),
    }
}

/// The reload of /c/app.conf with this token (one hook).
fn run_one_hook(token: u64) -> Action {
    run_hooks(token, &[0])
}

#[test]
fn a_failed_external_reload_is_retried_with_doubling_delays_until_superseded() {
    let mut m = running(external(), Some(1));
    assert_eq!(
        m.step(Event::ConfigSettled(snap(Some(2)))),
        [Action::Acted, run_one_hook(1)]
    );
    let fail = |token| Event::HooksDone {
        token,
        failed: vec![0],
    };
    let retry = |after| Action::RetryAfter {
        token: 1,
        after: Duration::from_secs(after),
    };
    assert_eq!(m.step(fail(1)), [retry(1)]);
    assert!(
        m.stats().last_failed,
        "a failed reload is the alerting gauge's 0"
    );
    assert_eq!(m.step(Event::RetryDue { token: 1 }), [run_one_hook(1)]);
    assert_eq!(m.step(fail(1)), [retry(2)]);
    // A newer change supersedes the waiting retry; the old one's timer
    // and result no longer count.
    assert_eq!(
        m.step(Event::ConfigSettled(snap(Some(3)))),
        [Action::Acted, Action::CancelHooks, run_one_hook(2)]
    );
    assert_eq!(m.step(Event::RetryDue { token: 1 }), []);
    assert_eq!(m.step(fail(1)), []);
    assert_eq!(
        m.step(Event::HooksDone {
            token: 2,
            failed: vec![]
        }),
        []
    );
    assert_eq!(m.stats().reloads_ok, 1);
    assert_eq!(m.stats().reloads_failed, 2);
    assert!(!m.stats().last_failed, "the retried reload took");
    assert_eq!(m.stats().took, 2);
}

#[test]
fn each_reload_url_is_retried_on_its_own_until_all_succeeded() {
    let s = Settings {
        reload_hooks: 3,
        ..external()
    };
    let mut m = running(s, Some(1));
    assert_eq!(
        m.step(Event::ConfigSettled(snap(Some(2)))),
        [Action::Acted, run_hooks(1, &[0, 1, 2])]
    );
    let retry = Action::RetryAfter {
        token: 1,
        after: Duration::from_secs(1),
    };
    // The second URL failed: only it is tried again.
    assert_eq!(
        m.step(Event::HooksDone {
            token: 1,
            failed: vec![1]
        }),
        [retry]
    );
    assert_eq!(m.stats().reloads_ok, 0, "not reloaded until all answered");
    assert_eq!(m.step(Event::RetryDue { token: 1 }), [run_hooks(1, &[1])]);
    assert_eq!(
        m.step(Event::HooksDone {
            token: 1,
            failed: vec![]
        }),
        []
    );
    assert_eq!(m.stats().reloads_ok, 1);
}

/// Found by the property tests: a child can die before a change is
/// acted on and before its exit is reported; the reload started for it
/// is cancelled when the exit is.
#[test]
fn a_reload_for_a_child_that_died_unreported_is_cancelled_by_its_exit() {
    let mut m = running(external(), Some(1));
    assert_eq!(
        m.step(Event::ConfigSettled(snap(Some(2)))),
        [Action::Acted, run_one_hook(1)]
    );
    let actions = m.step(exited(0));
    assert_eq!(actions[0], Action::CancelHooks);
    assert_eq!(
        m.step(Event::HooksDone {
            token: 1,
            failed: vec![]
        }),
        []
    );
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
        m.step(Event::Validated { token: 1, ok: true }),
        [Action::Fingerprint]
    );
    let approved = m.approved.clone().unwrap();
    look_and_start(&mut m, approved);
    m.step(Event::ConfigSettled(snap(Some(3))));
    assert_eq!(
        m.step(Event::Validated {
            token: 2,
            ok: false
        }),
        []
    );
    let check_b = m.step(Event::ConfigSettled(snap(Some(1))));
    assert!(matches!(
        check_b[..],
        [Action::Acted, Action::Validate { token: 3, .. }]
    ));
    assert_eq!(
        m.step(Event::ConfigSettled(snap(Some(3)))),
        [Action::CancelValidation]
    );
    assert_eq!(m.step(Event::Validated { token: 3, ok: true }), []);
}

/// Found by a hostile test: a signal that came during the start's look or
/// the check before the first start was dropped ("No child to send"); the
/// kernel had kept it for us until the loop read it, and tini's child gets
/// what came before its fork. It waits for the child, in order; a standard
/// one once (as a pending one folds), real-time ones each. One the newborn
/// would die of (no handler yet; found by the next hostile test) is
/// dropped, unless the child inherits it blocked or ignored.
#[test]
fn signals_before_the_first_child_wait_for_it() {
    let rt = 40;
    let bit = |sig: i32| 1u64 << (sig - 1);
    let early = [libc::SIGUSR1, rt, libc::SIGUSR1, rt, libc::SIGHUP];
    // During the start's look; the child inherits them all blocked.
    let safe = Settings {
        inherited_safe: bit(libc::SIGUSR1) | bit(rt) | bit(libc::SIGHUP),
        ..settings()
    };
    let (mut m, first) = Machine::new(safe, None, None, None);
    assert_eq!(first, [Action::Fingerprint]);
    for sig in early {
        assert_eq!(m.step(Event::Signal(sig)), []);
    }
    assert_eq!(m.step(Event::Candidate(snap(Some(1)))), [Action::Spawn]);
    let forwarded = [libc::SIGUSR1, rt, rt, libc::SIGHUP].map(|sig| Action::Signal(sig, CHILD));
    assert_eq!(m.step(Event::Spawned), forwarded);
    // During the check before it; only the real-time one is inherited
    // blocked: USR1 and HUP would kill the newborn.
    let s = Settings {
        inherited_safe: bit(rt),
        ..validating()
    };
    let (mut m, first) = start(s, snap(Some(1)));
    assert!(matches!(first[..], [Action::Validate { .. }]), "{first:?}");
    for sig in early {
        assert_eq!(m.step(Event::Signal(sig)), []);
    }
    let pass = Event::Validated { token: 1, ok: true };
    assert_eq!(m.step(pass), [Action::Fingerprint]);
    let approved = m.approved.clone().unwrap();
    assert_eq!(m.step(Event::Candidate(approved)), [Action::Spawn]);
    let rts = [rt, rt].map(|sig| Action::Signal(sig, CHILD));
    assert_eq!(m.step(Event::Spawned), rts);
    // A shutdown signal is no signal for later: it ends the wait.
    let (mut m, _) = Machine::new(settings(), None, None, None);
    m.step(Event::Signal(libc::SIGUSR1));
    assert_eq!(
        m.step(Event::Signal(libc::SIGTERM)),
        [Action::Exit(128 + libc::SIGTERM)]
    );
    // Signals that kill nobody go regardless; a continue cancels the stops
    // held before it and a stop the continue, as pending ones do.
    let (mut m, _) = Machine::new(settings(), None, None, None);
    for sig in [libc::SIGTSTP, libc::SIGCONT, libc::SIGWINCH, libc::SIGTSTP] {
        m.step(Event::Signal(sig));
    }
    m.step(Event::Candidate(snap(Some(1))));
    let sent = [libc::SIGWINCH, libc::SIGTSTP].map(|sig| Action::Signal(sig, CHILD));
    assert_eq!(m.step(Event::Spawned), sent);
    // Bounded: a flood of real-time signals past EARLY_MAX is dropped, not
    // kept; a standard one still is.
    let (mut m, _) = Machine::new(s_all_safe(), None, None, None);
    for _ in 0..EARLY_MAX + 10 {
        m.step(Event::Signal(rt));
    }
    m.step(Event::Signal(libc::SIGWINCH));
    m.step(Event::Candidate(snap(Some(1))));
    let sent = m.step(Event::Spawned);
    assert_eq!(sent.len(), EARLY_MAX + 1);
    assert_eq!(sent.last(), Some(&Action::Signal(libc::SIGWINCH, CHILD)));
}

fn s_all_safe() -> Settings {
    Settings {
        inherited_safe: u64::MAX,
        ..settings()
    }
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
        assert_eq!(m.step(Event::Signal(sig)), [Action::Signal(sig, CHILD)]);
    }
    assert_eq!(m.phase, Phase::Running);
}

#[test]
fn a_child_stuck_after_sigkill_does_not_hang_shutdown() {
    let mut m = running(settings(), Some(1));
    m.step(Event::Signal(TERM));
    m.step(Event::StopDeadline);
    assert_eq!(m.step(Event::StopDeadline), [Action::Exit(137)]);
}

#[test]
fn spawn_failure_exits_with_its_code() {
    let (mut m, _) = start(settings(), snap(Some(1)));
    assert_eq!(m.step(Event::SpawnFailed(127)), [Action::Exit(127)]);
}

#[test]
fn config_change_restarts_once() {
    let mut m = running(settings(), Some(1));
    assert_eq!(
        m.step(Event::ConfigSettled(snap(Some(1)))),
        [],
        "same bytes: nothing"
    );
    assert_eq!(
        m.step(Event::ConfigSettled(snap(Some(2)))),
        acted_then(stop_with(TERM))
    );
    // A further change while stopping is left to the next spawn's snapshot.
    assert_eq!(m.step(Event::ConfigSettled(snap(Some(3)))), []);
    assert_eq!(
        drained(&mut m, Status::Signaled(TERM)),
        [Action::StopDeadline(None), Action::Fingerprint]
    );
    // The start's look finds 3: the child runs on it.
    look_and_start(&mut m, snap(Some(3)));
    assert_eq!(m.step(Event::ConfigSettled(snap(Some(3)))), []);
}

#[test]
fn a_change_that_lands_after_the_spawn_snapshot_restarts_again() {
    let mut m = running(settings(), Some(1));
    m.step(Event::ConfigSettled(snap(Some(2))));
    m.step(Event::ChildExited {
        status: Status::Signaled(TERM),
        ran_for: SECS10,
    });
    m.step(Event::GroupGone);
    m.step(Event::Spawned);
    assert_eq!(
        m.step(Event::ConfigSettled(snap(Some(4))))[1],
        Action::Signal(TERM, CHILD)
    );
}

#[test]
fn missing_is_a_state_not_a_change() {
    let mut m = running(settings(), Some(1));
    assert_eq!(
        m.step(Event::ConfigSettled(snap(None))),
        [],
        "deleted: keep the child"
    );
    assert_eq!(
        m.step(Event::ConfigSettled(snap(Some(1)))),
        [],
        "recreated, same bytes"
    );
    assert_ne!(
        m.step(Event::ConfigSettled(snap(Some(2)))),
        [],
        "recreated, new bytes"
    );
    let mut m = running(settings(), None);
    assert_ne!(
        m.step(Event::ConfigSettled(snap(Some(1)))),
        [],
        "missing at start, then created"
    );
}

#[test]
fn sigterm_during_a_restart_exits_instead() {
    let mut m = running(settings(), Some(1));
    m.step(Event::ConfigSettled(snap(Some(2))));
    assert_eq!(
        m.step(Event::Signal(TERM)),
        [Action::Signal(TERM, CHILD)],
        "deadline keeps running"
    );
    assert_eq!(
        drained(&mut m, Status::Signaled(TERM)),
        [Action::StopDeadline(None), Action::Exit(143)]
    );
}

#[test]
fn a_child_ignoring_the_stop_signal_is_killed_and_replaced() {
    let mut m = running(settings(), Some(1));
    m.step(Event::ConfigSettled(snap(Some(2))));
    assert_eq!(m.step(Event::StopDeadline)[0], Action::KillGroup);
    assert_eq!(
        drained(&mut m, Status::Signaled(9)),
        [Action::StopDeadline(None), Action::Fingerprint]
    );
}

#[test]
fn reload_signal_signals_instead_of_restarting() {
    let mut s = settings();
    s.reload_signal = Some(libc::SIGHUP);
    let mut m = running(s, Some(1));
    assert_eq!(
        m.step(Event::ConfigSettled(snap(Some(2)))),
        [
            Action::Acted,
            Action::SendReloadSignals(vec![libc::SIGHUP], CHILD)
        ]
    );
    assert_eq!(
        m.step(Event::ConfigSettled(snap(Some(2)))),
        [],
        "the child has those bytes now"
    );
}

/// The child ends with `status` (after 10 s) and its group is empty: what
/// the machine does next.
fn drained(m: &mut Machine, status: Status) -> Vec<Action> {
    m.step(Event::ChildExited {
        status,
        ran_for: SECS10,
    });
    m.step(Event::GroupGone)
}

fn exit_and_drain(m: &mut Machine, code: i32, ran_for: Duration) -> Vec<Action> {
    m.step(Event::ChildExited {
        status: Status::Exited(code),
        ran_for,
    });
    m.step(Event::GroupGone)
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
    assert_eq!(m.step(Event::BackoffOver), [Action::Fingerprint]);
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
        m.step(Event::BackoffOver);
        m.step(Event::Spawned);
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

/// A start that fails after a child ran (its binary mid-replace, no
/// process for a moment) used to end the manager with 126 whatever
/// `--restart` said. It is a child that exited with that code; the first
/// start's failure still ends it all.
#[test]
fn a_start_that_fails_after_a_child_ran_follows_restart() {
    let mut s = settings();
    s.restart = Policy::Always;
    let mut m = running(s, Some(1));
    exit_and_drain(&mut m, 1, SECS10);
    assert_eq!(m.step(Event::BackoffOver), [Action::Fingerprint]);
    assert_eq!(m.step(Event::Candidate(snap(Some(1)))), [Action::Spawn]);
    assert_eq!(
        m.step(Event::SpawnFailed(126)),
        [Action::Backoff(Duration::from_secs(2))]
    );
    let (mut m, first) = start(settings(), snap(Some(1)));
    assert_eq!(first, [Action::Spawn]);
    assert_eq!(m.step(Event::SpawnFailed(127)), [Action::Exit(127)]);
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
        m.step(Event::BackoffOver);
        m.step(Event::Spawned);
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
    assert_eq!(m.step(Event::Signal(libc::SIGUSR1)), []);
    assert_eq!(m.step(Event::Signal(TERM)), [Action::Exit(5)]);
}

#[test]
fn config_change_during_backoff_starts_now() {
    let mut s = settings();
    s.restart = Policy::OnFailure;
    let mut m = running(s, Some(1));
    exit_and_drain(&mut m, 1, SECS10);
    assert_eq!(m.step(Event::ConfigSettled(snap(Some(1)))), []);
    assert_eq!(
        m.step(Event::ConfigSettled(snap(Some(2)))),
        [Action::Acted, Action::Fingerprint]
    );
    assert_eq!(
        m.step(Event::BackoffOver),
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

impl Machine {
    /// A burst of changes settled (`Input::Settled`), and its look saw
    /// `now`.
    fn burst_settled(&mut self, now: Snapshot) -> Vec<Action> {
        self.burst = false;
        self.step(Event::ConfigSettled(now))
    }
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
            in_place: false,
        }]
    );
    assert_eq!(
        m.step(Event::Validated { token: 1, ok: true }),
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
        m.step(Event::Validated {
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
        m.step(Event::Signal(TERM)),
        [Action::CancelValidation, Action::Exit(143)]
    );
}

#[test]
fn a_good_change_is_validated_then_acted_on() {
    let mut m = running_validated(validating());
    assert_eq!(
        m.step(Event::ConfigSettled(snap(Some(2)))),
        [
            Action::Acted,
            Action::Validate {
                token: 2,
                changed: conf(),
                candidate: None,
                in_place: false,
            }
        ]
    );
    // The same bytes settling again while validating: nothing new.
    assert_eq!(m.step(Event::ConfigSettled(snap(Some(2)))), []);
    assert_eq!(
        m.step(Event::Validated { token: 2, ok: true }),
        stop_with(TERM)
    );
}

#[test]
fn a_bad_change_keeps_the_child_until_the_bytes_change_again() {
    let mut m = running_validated(validating());
    m.step(Event::ConfigSettled(snap(Some(2))));
    assert_eq!(
        m.step(Event::Validated {
            token: 2,
            ok: false
        }),
        []
    );
    assert_eq!(m.phase, Phase::Running);
    assert_eq!(
        m.step(Event::ConfigSettled(snap(Some(2)))),
        [],
        "rejected bytes are not checked again"
    );
    assert_eq!(
        m.step(Event::ConfigSettled(snap(Some(3)))),
        [
            Action::Acted,
            Action::Validate {
                token: 3,
                changed: conf(),
                candidate: None,
                in_place: false,
            }
        ],
        "fixed bytes are"
    );
    assert_eq!(
        m.step(Event::Validated { token: 3, ok: true })[0],
        Action::Signal(TERM, CHILD)
    );
}

#[test]
fn a_newer_change_cancels_a_stale_validation_whose_result_is_ignored() {
    let mut m = running_validated(validating());
    m.step(Event::ConfigSettled(snap(Some(2))));
    assert_eq!(
        m.step(Event::ConfigSettled(snap(Some(3)))),
        [
            Action::Acted,
            Action::CancelValidation,
            Action::Validate {
                token: 3,
                changed: conf(),
                candidate: None,
                in_place: false,
            }
        ]
    );
    assert_eq!(m.step(Event::Validated { token: 2, ok: true }), [], "stale");
    assert_eq!(
        m.step(Event::Validated {
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
    m.step(Event::ConfigSettled(snap(Some(2))));
    assert_eq!(
        m.step(Event::Signal(TERM)),
        [
            Action::CancelValidation,
            Action::Signal(TERM, CHILD),
            Action::ContinueStopped(CHILD),
            Action::StopDeadline(Some(SECS10))
        ]
    );
    assert_eq!(m.step(Event::Validated { token: 2, ok: true }), []);
}

#[test]
fn validation_guards_the_reload_signal_too() {
    let mut s = validating();
    s.reload_signal = Some(libc::SIGHUP);
    let mut m = running_validated(s);
    m.step(Event::ConfigSettled(snap(Some(2))));
    assert_eq!(
        m.step(Event::Validated {
            token: 2,
            ok: false
        }),
        []
    );
    m.step(Event::ConfigSettled(snap(Some(3))));
    assert_eq!(
        m.step(Event::Validated { token: 3, ok: true }),
        [Action::SendReloadSignals(vec![libc::SIGHUP], CHILD)]
    );
}

#[test]
fn reverting_to_the_running_bytes_cancels_the_check() {
    let mut m = running_validated(validating());
    m.step(Event::ConfigSettled(snap(Some(2))));
    assert_eq!(
        m.step(Event::ConfigSettled(snap(Some(1)))),
        [Action::CancelValidation]
    );
}

#[test]
fn a_change_during_the_startup_check_is_checked_instead() {
    let (mut m, _) = start(validating(), snap(Some(1)));
    assert_eq!(
        m.step(Event::ConfigSettled(snap(Some(1)))),
        [],
        "same bytes: keep checking"
    );
    assert_eq!(
        m.step(Event::ConfigSettled(snap(Some(2)))),
        [
            Action::CancelValidation,
            Action::Validate {
                token: 2,
                changed: conf(),
                candidate: None,
                in_place: false,
            }
        ]
    );
    assert_eq!(m.step(Event::Validated { token: 1, ok: true }), [], "stale");
    assert_eq!(
        m.step(Event::Validated { token: 2, ok: true }),
        [Action::Fingerprint]
    );
}

#[test]
fn signal_to_group_addresses_the_group_but_sigkill_always_does() {
    let mut s = settings();
    s.signal_to = Target::Group;
    let mut m = running(s, Some(1));
    assert_eq!(
        m.step(Event::Signal(libc::SIGHUP)),
        [Action::Signal(libc::SIGHUP, GROUP)]
    );
    assert_eq!(
        m.step(Event::Signal(TERM)),
        [
            Action::Signal(TERM, GROUP),
            Action::ContinueStopped(GROUP),
            Action::StopDeadline(Some(SECS10))
        ]
    );
    assert_eq!(m.step(Event::StopDeadline)[0], Action::KillGroup);
    // The default: the child alone, and still SIGKILL for the group.
    let mut m = running(settings(), Some(1));
    m.step(Event::Signal(TERM));
    assert_eq!(m.step(Event::StopDeadline)[0], Action::KillGroup);
}

#[test]
fn map_signal_rewrites_or_drops_forwarded_signals_only() {
    let mut s = settings();
    s.map_signal = vec![(libc::SIGUSR1, Some(libc::SIGHUP)), (libc::SIGWINCH, None)];
    let mut m = running(s, Some(1));
    assert_eq!(
        m.step(Event::Signal(libc::SIGUSR1)),
        [Action::Signal(libc::SIGHUP, CHILD)]
    );
    assert_eq!(m.step(Event::Signal(libc::SIGWINCH)), []);
    assert_eq!(
        m.step(Event::Signal(libc::SIGUSR2)),
        [Action::Signal(libc::SIGUSR2, CHILD)]
    );
    assert_eq!(
        m.step(Event::Signal(TERM))[0],
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
        m.step(Event::Signal(TERM)),
        [Action::StopDelay(Duration::from_secs(5))],
        "nothing reaches the child yet"
    );
    // Still transparent; config changes wait for the next life.
    assert_eq!(
        m.step(Event::Signal(libc::SIGUSR1)),
        [Action::Signal(libc::SIGUSR1, CHILD)]
    );
    assert_eq!(m.step(Event::ConfigSettled(snap(Some(2)))), []);
    assert_eq!(m.step(Event::StopDelayOver), stop_with(TERM));
    for second in [TERM, libc::SIGINT] {
        let mut m = running(s.clone(), Some(1));
        m.step(Event::Signal(TERM));
        assert_eq!(m.step(Event::Signal(second)), stop_with(second));
        // The delay, never cleared, ends later: the stop goes on as it was.
        assert_eq!(m.step(Event::StopDelayOver), []);
    }
    // The child exits by itself during the delay: we exit with its code,
    // whatever the restart policy.
    s.restart = Policy::Always;
    let mut m = running(s, Some(1));
    m.step(Event::Signal(TERM));
    m.step(exited(0));
    assert_eq!(
        m.step(Event::GroupGone),
        [Action::StopDeadline(None), Action::Exit(0)]
    );
}

#[test]
fn a_reload_signal_the_child_does_not_handle_becomes_a_restart() {
    let mut s = settings();
    s.reload_signal = Some(libc::SIGHUP);
    let mut m = running(s, Some(1));
    assert_eq!(
        m.step(Event::ConfigSettled(snap(Some(2)))),
        [
            Action::Acted,
            Action::SendReloadSignals(vec![libc::SIGHUP], CHILD)
        ]
    );
    assert_eq!(
        m.step(Event::ReloadSignalUnhandled(libc::SIGHUP, false)),
        stop_with(TERM)
    );
    assert_eq!(
        drained(&mut m, Status::Signaled(TERM)),
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
        m.step(Event::RestartRequested(snap(Some(1))))[0],
        Action::Signal(TERM, CHILD)
    );
    // With it: the current bytes are checked first, and a pass restarts
    // (not reloads), even though the bytes did not change.
    let mut s = validating();
    s.reload_signal = Some(libc::SIGHUP);
    let mut m = running_validated(s.clone());
    let check = m.step(Event::RestartRequested(snap(Some(1))));
    assert!(matches!(check[..], [Action::Validate { token: 2, .. }]));
    assert_eq!(
        m.step(Event::Validated { token: 2, ok: true })[0],
        Action::Signal(TERM, CHILD)
    );
    // A failed check keeps the child, and the same bytes are refused again.
    let mut m = running_validated(s);
    m.step(Event::RestartRequested(snap(Some(1))));
    assert_eq!(
        m.step(Event::Validated {
            token: 2,
            ok: false
        }),
        []
    );
    assert_eq!(m.step(Event::RestartRequested(snap(Some(1)))), []);
    // During a backoff: start now.
    let mut s = settings();
    s.restart = Policy::Always;
    let mut m = running(s, Some(1));
    exit_and_drain(&mut m, 1, SECS10);
    assert_eq!(
        m.step(Event::RestartRequested(snap(Some(1)))),
        [Action::Fingerprint]
    );
}

#[test]
fn ctrl_c_on_the_terminal_exits_130_whatever_the_policy() {
    let mut s = settings();
    s.restart = Policy::Always;
    s.interactive = true;
    let mut m = running(s.clone(), Some(1));
    m.step(Event::ChildExited {
        status: Status::Signaled(libc::SIGINT),
        ran_for: Duration::from_secs(1),
    });
    assert_eq!(
        m.step(Event::GroupGone),
        [Action::StopDeadline(None), Action::Exit(130)]
    );
    // Without the terminal, a death by SIGINT is a crash like another.
    s.interactive = false;
    let mut m = running(s, Some(1));
    m.step(Event::ChildExited {
        status: Status::Signaled(libc::SIGINT),
        ran_for: Duration::from_secs(1),
    });
    assert!(matches!(
        m.step(Event::GroupGone)[..],
        [Action::StopDeadline(None), Action::Backoff(_)]
    ));
}

#[test]
fn the_gate_checks_bytes_that_changed_during_a_stop_before_any_start() {
    let mut m = running_validated(validating());
    assert!(matches!(
        m.step(Event::ConfigSettled(snap(Some(2))))[..],
        [Action::Acted, Action::Validate { token: 2, .. }]
    ));
    assert_eq!(
        m.step(Event::Validated { token: 2, ok: true })[0],
        Action::Signal(TERM, CHILD)
    );
    // Bytes 3 land while the old child stops.
    assert_eq!(m.step(Event::ConfigSettled(snap(Some(3)))), []);
    assert_eq!(
        drained(&mut m, Status::Signaled(TERM)),
        [Action::StopDeadline(None), Action::Fingerprint]
    );
    assert!(matches!(
        m.step(Event::Candidate(snap(Some(3))))[..],
        [Action::Validate { token: 3, .. }]
    ));
    // Rejected: no child until the bytes change (awaiting a fix).
    assert_eq!(
        m.step(Event::Validated {
            token: 3,
            ok: false
        }),
        []
    );
    assert_eq!(m.phase, Phase::AwaitingFix);
    assert_eq!(m.step(Event::ConfigSettled(snap(Some(3)))), []);
    assert!(matches!(
        m.step(Event::ConfigSettled(snap(Some(4))))[..],
        [Action::Acted, Action::Validate { token: 4, .. }]
    ));
    assert_eq!(
        m.step(Event::Validated { token: 4, ok: true }),
        [Action::Fingerprint]
    );
}

#[test]
fn a_crash_never_restarts_on_rejected_bytes() {
    let mut s = validating();
    s.restart = Policy::OnFailure;
    let mut m = running_validated(s);
    m.step(Event::ConfigSettled(snap(Some(2))));
    assert_eq!(
        m.step(Event::Validated {
            token: 2,
            ok: false
        }),
        []
    );
    assert!(matches!(
        exit_and_drain(&mut m, 1, SECS10)[..],
        [Action::StopDeadline(None), Action::Backoff(_)]
    ));
    assert_eq!(m.step(Event::BackoffOver), [Action::Fingerprint]);
    assert_eq!(
        m.step(Event::Candidate(snap(Some(2)))),
        [],
        "the rejected bytes are held, not started"
    );
    assert_eq!(m.phase, Phase::AwaitingFix);
    assert_eq!(m.step(Event::Signal(TERM)), [Action::Exit(143)]);
    // Back on the approved bytes, the crash restart goes ahead.
    let mut s = validating();
    s.restart = Policy::OnFailure;
    let mut m = running_validated(s);
    exit_and_drain(&mut m, 1, SECS10);
    m.step(Event::BackoffOver);
    assert_eq!(m.step(Event::Candidate(snap(Some(1)))), [Action::Spawn]);
}

#[test]
fn a_child_started_after_the_bytes_moved_is_checked_on_the_next_look() {
    let mut m = running_validated(validating());
    // Started on approved bytes 1 although the disk already had 9.
    m.step(Event::ConfigSettled(snap(Some(2))));
    m.step(Event::Validated { token: 2, ok: true });
    m.step(Event::ChildExited {
        status: Status::Signaled(TERM),
        ran_for: SECS10,
    });
    m.step(Event::GroupGone);
    look_and_start(&mut m, snap(Some(2)));
    // The child may have read 9 (written right after the look): the
    // next look sees 9 as a change and checks it.
    assert!(matches!(
        m.step(Event::ConfigSettled(snap(Some(9))))[..],
        [Action::Acted, Action::Validate { .. }]
    ));
}

/// A promoting machine (reload by HUP, a rollback window, a readiness
/// probe; with `validate`, a check) whose child runs on generation "g1"
/// (bytes 1).
fn running_on_g1(validate: bool) -> Machine {
    let s = Settings {
        promote: true,
        validate,
        reload_signal: Some(libc::SIGHUP),
        rollback_window: Some(Duration::from_secs(60)),
        ready_interval: Some(Duration::from_secs(1)),
        ..settings()
    };
    let g1 = Generation {
        name: "g1".into(),
        snapshot: snap(Some(1)),
    };
    let (mut m, first) = Machine::new(s, Some(g1), None, None);
    assert_eq!(first, [Action::Fingerprint]);
    look_and_start(&mut m, snap(Some(1)));
    m
}

/// A commit the disk refused before its record moved: the machine drops
/// the candidate (the promoter used to, a decision in the edge), first,
/// before anything else it asks, and stages the bytes again on retry.
#[test]
fn a_commit_refused_before_its_record_drops_the_candidate_and_stages_again() {
    let mut m = running_on_g1(false);
    assert_eq!(
        m.step(Event::ConfigSettled(snap(Some(2)))),
        [Action::Acted, Action::Stage { token: 1 }]
    );
    let commit = m.step(Event::Staged {
        token: 1,
        result: Ok(Generation {
            name: "g2".into(),
            snapshot: snap(Some(2)),
        }),
    });
    assert!(matches!(commit[..], [Action::Commit { token: 1, .. }]));
    let failed = m.step(Event::Committed {
        token: 1,
        result: Err(CommitFailed {
            reason: "No space left on device".into(),
            recorded: false,
            gone: false,
        }),
    });
    assert_eq!(
        failed,
        [
            Action::DropCandidate {
                generation: "g2".into()
            },
            Action::RetryAfter {
                token: 1,
                after: BACKOFF_FIRST
            }
        ]
    );
    assert_eq!(
        m.step(Event::RetryDue { token: 1 }),
        [Action::Stage { token: 1 }]
    );
}

/// A promoting machine (check, reload by HUP, rollback window, readiness)
/// whose child runs on generation "g1" (bytes 1) and then got "g2" (bytes
/// 2) by HUP: on probation, previous "g1".
fn on_probation() -> Machine {
    let mut m = running_on_g1(true);
    let staged = m.step(Event::ConfigSettled(snap(Some(2))));
    assert_eq!(staged, [Action::Acted, Action::Stage { token: 1 }]);
    let g2 = Generation {
        name: "g2".into(),
        snapshot: snap(Some(2)),
    };
    let check = m.step(Event::Staged {
        token: 1,
        result: Ok(g2),
    });
    assert!(matches!(check[..], [Action::Validate { token: 1, .. }]));
    let commit = m.step(Event::Validated { token: 1, ok: true });
    assert!(matches!(commit[..], [Action::Commit { token: 1, .. }]));
    let reload = m.step(Event::Committed {
        token: 1,
        result: Ok(()),
    });
    assert!(
        reload.contains(&Action::SendReloadSignals(vec![libc::SIGHUP], CHILD)),
        "{reload:?}"
    );
    // Delivered: the window runs.
    assert_eq!(
        m.step(Event::ReloadSignalsSent),
        [Action::ProbationDeadline(Some(Duration::from_secs(60)))]
    );
    m
}

fn fail_probes(m: &mut Machine, n: usize) -> Vec<Action> {
    let mut last = vec![];
    for _ in 0..n {
        last = m.step(Event::Probed {
            ok: false,
            ran_for: Duration::from_secs(3600),
        });
    }
    last
}

/// Three failed probes of the current period in a row, at the child's ages `ages`:
/// the first two roll nothing back, the third does. Returns its rollback.
fn third_failure_rolls_back(m: &mut Machine, ages: [Duration; 3]) -> Action {
    for age in &ages[..2] {
        let acts = m.step(probed(false, *age));
        assert!(
            !acts.iter().any(|a| matches!(a, Action::RollBack { .. })),
            "rolled back before the third failure: {acts:?}"
        );
    }
    let third = m.step(probed(false, ages[2]));
    third
        .into_iter()
        .find(|a| matches!(a, Action::RollBack { .. }))
        .expect("the third failure in a row rolls back")
}

fn g2_to_g1() -> Action {
    Action::RollBack {
        to: "g1".into(),
        from: "g2".into(),
    }
}

/// `on_probation`, and bytes 3 pushed since: staged as "g3", its check
/// running (token 2).
fn checking_g3_on_probation() -> Machine {
    let mut m = on_probation();
    m.step(Event::ConfigSettled(snap(Some(3))));
    let g3 = Generation {
        name: "g3".into(),
        snapshot: snap(Some(3)),
    };
    m.step(Event::Staged {
        token: 2,
        result: Ok(g3),
    });
    m
}

/// Found by a hostile review: a candidate checked in place lost its view
/// under the check when a rollback switched DIR back, and its pass promoted
/// bytes nobody had checked. Whatever is in flight goes first now.
#[test]
fn a_rollback_cancels_the_candidate_in_flight_first() {
    let mut m = checking_g3_on_probation();
    let actions = fail_probes(&mut m, 3);
    let rollback = actions
        .iter()
        .position(|a| matches!(a, Action::RollBack { .. }))
        .expect("a rollback");
    let discard = actions
        .iter()
        .position(|a| {
            *a == Action::DropCandidate {
                generation: "g3".into(),
            }
        })
        .expect("the candidate discarded");
    let cancel = actions
        .iter()
        .position(|a| *a == Action::CancelValidation)
        .expect("its check cancelled");
    assert!(discard < rollback && cancel < rollback, "{actions:?}");
    // Its verdict no longer counts.
    assert_eq!(m.step(Event::Validated { token: 2, ok: true }), []);
}

/// Found by the kill soak: bytes pushed while the generation on probation
/// was checked, its child crashing meanwhile: the rollback said "to g1" but
/// the restart checked the newer bytes and started on them, unproven. The
/// child lands on g1 now; the newer bytes take the gate once it runs.
#[test]
fn a_crash_rollback_lands_on_the_proven_generation_before_newer_bytes() {
    let mut m = checking_g3_on_probation();
    let crashed = m.step(exited(1));
    assert!(crashed.contains(&g2_to_g1()), "{crashed:?}");
    assert_eq!(m.step(Event::RolledBack { result: Ok(()) }), []);
    assert_eq!(
        m.step(Event::GroupGone),
        [Action::StopDeadline(None), Action::Fingerprint]
    );
    // The source holds bytes 3, new and never checked: not started on.
    assert_eq!(m.step(Event::Candidate(snap(Some(3)))), [Action::Spawn]);
    let started = m.step(Event::Spawned);
    assert!(
        matches!(started[..], [.., Action::Stage { .. }]),
        "bytes 3 are staged once the child runs on g1: {started:?}"
    );
    assert_eq!(m.child_bytes(), &snap(Some(1)));
}

/// The record moved back to g1 but the child's view could not follow (a
/// squatted `..data_tmp`, a tmpfs out of inodes): the machine used to say
/// "keeping g2" while the disk's record named g1, and never asked again, so
/// the view showed the rolled-back bytes for good. It takes the record's
/// word, holds newer bytes, and asks the same rollback again until it takes.
#[test]
fn a_rollback_whose_view_cannot_follow_is_retried_until_it_does() {
    let mut m = on_probation();
    let actions = fail_probes(&mut m, 3);
    let ask = Action::RollBack {
        to: "g1".into(),
        from: "g2".into(),
    };
    assert!(actions.contains(&ask), "{actions:?}");
    let not_shown = || Event::RolledBack {
        result: Err(CommitFailed {
            reason: "File exists".into(),
            recorded: true,
            gone: false,
        }),
    };
    let after = m.step(not_shown());
    let [Action::RetryAfter { token, .. }] = after[..] else {
        panic!("the rollback is retried: {after:?}");
    };
    // The disk's word: the record names g1, the view still shows g2.
    assert_eq!(
        m.promoted(),
        Promoted {
            record: Some("g1".into()),
            view: Some("g2".into()),
        }
    );
    // Newer bytes wait: a commit now would race the rollback's record.
    assert_eq!(m.step(Event::ConfigSettled(snap(Some(5)))), [Action::Acted]);
    assert_eq!(
        m.step(Event::RetryDue { token }),
        std::slice::from_ref(&ask)
    );
    let again = m.step(not_shown());
    let [Action::RetryAfter { token, .. }] = again[..] else {
        panic!("retried again: {again:?}");
    };
    assert_eq!(m.step(Event::RetryDue { token }), [ask]);
    let taken = m.step(Event::RolledBack { result: Ok(()) });
    assert_eq!(m.stats().rollbacks, 1);
    // The child is reloaded onto g1, then the newer bytes are staged.
    assert!(
        matches!(
            &taken[..],
            [Action::SendReloadSignals(..), Action::Stage { .. }]
        ),
        "{taken:?}"
    );
    assert_eq!(
        m.promoted(),
        Promoted {
            record: Some("g1".into()),
            view: Some("g1".into()),
        }
    );
}

/// A rollback the disk refused before its record moved (a tmpfs with no
/// inode left fails `..good` first) was given up: the child crash-looped on
/// the bad bytes (hostile, session 13). Any failure but a proven
/// generation gone is asked again; the records stay as the disk has them.
#[test]
fn a_rollback_refused_by_a_full_disk_is_retried() {
    let mut m = on_probation();
    assert!(fail_probes(&mut m, 3).contains(&g2_to_g1()));
    let full = m.step(Event::RolledBack {
        result: Err(CommitFailed {
            reason: "No space left on device".into(),
            recorded: false,
            gone: false,
        }),
    });
    let [Action::RetryAfter { token, .. }] = full[..] else {
        panic!("the rollback is retried: {full:?}");
    };
    assert_eq!(
        m.promoted(),
        Promoted {
            record: Some("g2".into()),
            view: Some("g2".into()),
        }
    );
    assert_eq!(m.step(Event::RetryDue { token }), [g2_to_g1()]);
    m.step(Event::RolledBack { result: Ok(()) });
    assert_eq!(m.stats().rollbacks, 1);
}

/// With `--restart never`, the child exiting while a rollback asked for by
/// the probe is being retried used to end the manager with the bad bytes
/// still shown. The exit is the rollback's: the next child is its.
#[test]
fn a_child_exit_while_a_rollback_is_retried_waits_for_it_whatever_restart_says() {
    let mut m = on_probation();
    assert_eq!(m.settings.restart, Policy::Never);
    assert!(fail_probes(&mut m, 3).contains(&g2_to_g1()));
    m.step(Event::RolledBack {
        result: Err(CommitFailed {
            reason: "File exists".into(),
            recorded: true,
            gone: false,
        }),
    });
    m.step(Event::ChildExited {
        status: Status::Exited(1),
        ran_for: Duration::from_secs(5),
    });
    assert!(
        matches!(
            m.phase,
            Phase::Stopping {
                after: AfterStop::Restart,
                ..
            }
        ),
        "{:?}",
        m.phase
    );
}

/// SIGTERM (with `--stop-delay`: the child runs on meanwhile), then the
/// child exits while a rollback is retried: the manager exits, as asked.
/// The rollback's exit used to win, and a child started after SIGTERM
/// (found by the property test at 100,000 cases).
#[test]
fn a_child_exit_after_sigterm_while_a_rollback_is_retried_still_exits() {
    let mut m = on_probation();
    m.settings.stop_delay = Duration::from_secs(5);
    assert!(fail_probes(&mut m, 3).contains(&g2_to_g1()));
    m.step(Event::RolledBack {
        result: Err(CommitFailed {
            reason: "File exists".into(),
            recorded: true,
            gone: false,
        }),
    });
    m.step(Event::Signal(libc::SIGTERM));
    assert_eq!(m.phase, Phase::Delaying);
    m.step(Event::ChildExited {
        status: Status::Exited(0),
        ran_for: Duration::from_secs(5),
    });
    assert!(
        matches!(
            m.phase,
            Phase::Stopping {
                after: AfterStop::Exit,
                ..
            }
        ),
        "{:?}",
        m.phase
    );
}

/// A running window (g2, the child's bytes) and a newer push g3 whose
/// commit's view could not follow: the window used to be replaced by g3's,
/// not running, so g2 crashing in its window rolled nothing back and
/// crash-looped (hostile, session 13). g2's window goes on; the rollback is
/// from the bytes the child ran (the view's, g2), and g3, which never
/// reached it, goes and is judged again.
#[test]
fn a_newer_push_that_cannot_be_shown_keeps_the_running_window() {
    let mut m = on_probation();
    assert_eq!(
        m.step(Event::ConfigSettled(snap(Some(3)))),
        [Action::Acted, Action::Stage { token: 2 }]
    );
    m.step(Event::Staged {
        token: 2,
        result: Ok(Generation {
            name: "g3".into(),
            snapshot: snap(Some(3)),
        }),
    });
    assert!(matches!(
        m.step(Event::Validated { token: 2, ok: true })[..],
        [Action::Commit { token: 2, .. }]
    ));
    let lagging = m.step(Event::Committed {
        token: 2,
        result: Err(CommitFailed {
            reason: "File exists".into(),
            recorded: true,
            gone: false,
        }),
    });
    assert!(
        !lagging
            .iter()
            .any(|a| matches!(a, Action::ProbationDeadline(_))),
        "g2's window timer stays: {lagging:?}"
    );
    assert_eq!(
        m.promoted(),
        Promoted {
            record: Some("g3".into()),
            view: Some("g2".into()),
        }
    );
    let exit = m.step(Event::ChildExited {
        status: Status::Exited(1),
        ran_for: Duration::from_secs(5),
    });
    assert!(exit.contains(&g2_to_g1()), "{exit:?}");
    let back = m.step(Event::RolledBack { result: Ok(()) });
    assert!(
        back.contains(&Action::RemoveGeneration {
            generation: "g3".into()
        }),
        "{back:?}"
    );
    assert_eq!(
        m.promoted(),
        Promoted {
            record: Some("g1".into()),
            view: Some("g1".into()),
        }
    );
    // The next child lands on g1; g3's bytes are judged once it runs.
    m.step(Event::GroupGone);
    assert_eq!(m.step(Event::Candidate(snap(Some(3)))), [Action::Spawn]);
    let started = m.step(Event::Spawned);
    assert!(
        matches!(started[..], [.., Action::Stage { .. }]),
        "{started:?}"
    );
    assert_eq!(m.child_bytes(), &snap(Some(1)));
}

/// The restart signal during a retried rollback asks for new bytes that
/// are held until it is done: once they pass, the child is restarted, not
/// reloaded (the request used to come back as a plain change).
#[test]
fn a_restart_requested_during_a_retried_rollback_restarts_once_it_is_done() {
    let mut m = on_probation();
    assert!(fail_probes(&mut m, 3).contains(&g2_to_g1()));
    let retry = m.step(Event::RolledBack {
        result: Err(CommitFailed {
            reason: "File exists".into(),
            recorded: true,
            gone: false,
        }),
    });
    assert!(matches!(retry[..], [Action::RetryAfter { .. }]));
    assert_eq!(m.step(Event::RestartRequested(snap(Some(5)))), []);
    let taken = m.step(Event::RolledBack { result: Ok(()) });
    let Some(&Action::Stage { token }) = taken.last() else {
        panic!("the held bytes are staged: {taken:?}");
    };
    m.step(Event::Staged {
        token,
        result: Ok(Generation {
            name: "g5".into(),
            snapshot: snap(Some(5)),
        }),
    });
    m.step(Event::Validated { token, ok: true });
    let restart = m.step(Event::Committed {
        token,
        result: Ok(()),
    });
    assert!(
        restart
            .iter()
            .any(|a| matches!(a, Action::Signal(libc::SIGTERM, _))),
        "restarted, not reloaded: {restart:?}"
    );
}

/// The child exited within the window and its stop finished while the
/// rollback was still retried: the next child waits for it rather than
/// start on the bad bytes the view still shows (the crash loop a hostile
/// test found).
#[test]
fn a_start_waits_for_a_rollback_being_retried() {
    let mut m = on_probation();
    let exit = m.step(Event::ChildExited {
        status: Status::Exited(1),
        ran_for: Duration::from_secs(5),
    });
    assert!(
        exit.iter().any(|a| matches!(a, Action::RollBack { .. })),
        "{exit:?}"
    );
    let after = m.step(Event::RolledBack {
        result: Err(CommitFailed {
            reason: "File exists".into(),
            recorded: true,
            gone: false,
        }),
    });
    let [Action::RetryAfter { token, .. }] = after[..] else {
        panic!("the rollback is retried: {after:?}");
    };
    assert_eq!(
        m.step(Event::GroupGone),
        [Action::StopDeadline(None), Action::Fingerprint]
    );
    // The start's look finds the source on g2's bytes: no start yet.
    assert_eq!(m.step(Event::Candidate(snap(Some(2)))), []);
    assert_eq!(m.step(Event::RetryDue { token }).len(), 1);
    // Taken: the start goes on, on g1.
    assert_eq!(
        m.step(Event::RolledBack { result: Ok(()) }),
        [Action::Fingerprint]
    );
    assert_eq!(m.step(Event::Candidate(snap(Some(2)))), [Action::Spawn]);
    m.step(Event::Spawned);
    assert_eq!(m.child_bytes(), &snap(Some(1)));
}

/// Found by a hostile review: a rollback the disk refused (the previous
/// generation removed by hand) was believed, and the child restarted on
/// bytes marked rejected.
#[test]
fn a_rollback_the_world_refuses_changes_nothing() {
    let mut m = on_probation();
    let actions = fail_probes(&mut m, 3);
    assert!(actions.iter().any(|a| matches!(a, Action::RollBack { .. })));
    let after = m.step(Event::RolledBack {
        result: Err(CommitFailed {
            reason: "generation g1 is gone".into(),
            recorded: false,
            gone: true,
        }),
    });
    assert_eq!(after, []);
    assert_eq!(m.stats().rollbacks, 0);
    assert_eq!(
        m.readiness(),
        Err("the readiness probe failed (3 in a row)".into())
    );
    // The child keeps g2; a settle of bytes 2 is no change.
    assert_eq!(m.step(Event::ConfigSettled(snap(Some(2)))), []);
    // Nothing is left to go back to (hostile s16 t2): newer bytes are
    // proven at once, not recorded with the gone generation as the one to
    // go back to (that record would name nothing, and g2 would be removed).
    let stage = m.step(Event::ConfigSettled(snap(Some(3))));
    let Some(&Action::Stage { token }) = stage.last() else {
        panic!("{stage:?}")
    };
    m.step(Event::Staged {
        token,
        result: Ok(Generation {
            name: "g3".into(),
            snapshot: snap(Some(3)),
        }),
    });
    let commit = m.step(Event::Validated { token, ok: true });
    assert!(
        matches!(&commit[..], [Action::Commit { proven: None, .. }]),
        "{commit:?}"
    );
    // Taken, it reloads the child onto g1 and counts.
    let mut m = on_probation();
    fail_probes(&mut m, 3);
    let after = m.step(Event::RolledBack { result: Ok(()) });
    assert_eq!(
        after,
        [Action::SendReloadSignals(vec![libc::SIGHUP], CHILD)]
    );
    assert_eq!(m.stats().rollbacks, 1);
}

/// Found by a hostile review: failures from before the new bytes arrived
/// counted toward their rollback.
#[test]
fn only_probe_failures_on_the_new_bytes_count() {
    let mut m = running_on_g1(false);
    fail_probes(&mut m, 2);
    m.step(Event::ConfigSettled(snap(Some(2))));
    m.step(Event::Staged {
        token: 1,
        result: Ok(Generation {
            name: "g2".into(),
            snapshot: snap(Some(2)),
        }),
    });
    m.step(Event::Committed {
        token: 1,
        result: Ok(()),
    });
    m.step(Event::ReloadSignalsSent);
    let one = fail_probes(&mut m, 1);
    assert!(
        !one.iter().any(|a| matches!(a, Action::RollBack { .. })),
        "{one:?}"
    );
}

/// Found by a hostile review: with --stop-delay, SIGTERM left a check (and
/// a candidate shown in place) running while the child drained.
#[test]
fn sigterm_with_a_stop_delay_cancels_the_config_in_flight() {
    let s = Settings {
        stop_delay: Duration::from_secs(5),
        ..validating()
    };
    let mut m = running_validated(s);
    m.step(Event::ConfigSettled(snap(Some(2))));
    assert_eq!(
        m.step(Event::Signal(TERM)),
        [
            Action::CancelValidation,
            Action::StopDelay(Duration::from_secs(5))
        ]
    );
}

/// Files under /c with their contents' hashes.
fn files(list: &[(&str, u64)]) -> Snapshot {
    list.iter()
        .map(|(name, hash)| {
            let state = crate::watch::fingerprint::FileState::Content {
                len: 3,
                hash: *hash,
            };
            (PathBuf::from(format!("/c/{name}")), state)
        })
        .collect()
}

/// `--on-change` rules (pattern, action) under /c.
fn rules(list: &[(&str, crate::route::Act)]) -> crate::route::Routes {
    let rules = list
        .iter()
        .map(|(pattern, act)| crate::route::Rule {
            pattern: pattern.to_string(),
            act: act.clone(),
        })
        .collect();
    crate::route::Routes::new(vec![PathBuf::from("/c")], rules)
}

/// A global hook (0), `*.pem` → SIGHUP and `lua/*` → hook 1.
fn pem_signal_lua_hook() -> Settings {
    use crate::route::Act;
    Settings {
        reload_hooks: 1,
        routes: rules(&[
            ("*.pem", Act::Signal(libc::SIGHUP)),
            ("lua/*", Act::Hook(1)),
        ]),
        ..settings()
    }
}

/// `app.conf`, `tls.pem` and `lua/a.lua` at these versions.
fn pem_lua(app: u64, pem: u64, lua: u64) -> Snapshot {
    files(&[("app.conf", app), ("tls.pem", pem), ("lua/a.lua", lua)])
}

fn running_on(s: Settings, now: Snapshot) -> Machine {
    let (mut m, first) = start(s, now);
    assert_eq!(first, [Action::Spawn]);
    assert_eq!(m.step(Event::Spawned), []);
    m
}

#[test]
fn each_file_takes_its_rules_action_and_a_restart_subsumes_the_rest() {
    use crate::route::Act;
    let s = Settings {
        reload_signal: Some(libc::SIGHUP),
        routes: rules(&[
            ("main.conf", Act::Restart),
            ("*.pem", Act::Signal(libc::SIGUSR1)),
            ("docs/*", Act::Nothing),
        ]),
        ..settings()
    };
    let v = |main, pem, other, docs| {
        files(&[
            ("main.conf", main),
            ("tls.pem", pem),
            ("other.conf", other),
            ("docs/x.md", docs),
        ])
    };
    let mut m = running_on(s, v(1, 1, 1, 1));
    // A certificate (its rule) and another file (the global HUP): both
    // signals, at once, each once.
    assert_eq!(
        m.step(Event::ConfigSettled(v(1, 2, 2, 1))),
        [
            Action::Acted,
            Action::SendReloadSignals(vec![libc::SIGHUP, libc::SIGUSR1], CHILD)
        ]
    );
    assert_eq!(m.step(Event::ReloadSignalsSent), []);
    // Docs alone: not a change at all.
    let before = m.stats().clone();
    assert_eq!(m.step(Event::ConfigSettled(v(1, 2, 2, 2))), []);
    assert_eq!(m.stats(), &before);
    // The main config with a certificate: one restart, no signal.
    assert_eq!(
        m.step(Event::ConfigSettled(v(2, 3, 2, 3))),
        acted_then(stop_with(TERM))
    );
}

#[test]
fn hooks_wait_for_the_bursts_signals_and_each_is_told_of_its_files() {
    let mut m = running_on(pem_signal_lua_hook(), pem_lua(1, 1, 1));
    let v = pem_lua;
    // Signals first; the hooks only once they were sent.
    assert_eq!(
        m.step(Event::ConfigSettled(v(2, 2, 2))),
        [
            Action::Acted,
            Action::SendReloadSignals(vec![libc::SIGHUP], CHILD)
        ]
    );
    let calls = vec![
        HookCall {
            hook: 0,
            changed: vec![PathBuf::from("/c/app.conf")],
        },
        HookCall {
            hook: 1,
            changed: vec![PathBuf::from("/c/lua/a.lua")],
        },
    ];
    assert_eq!(
        m.step(Event::ReloadSignalsSent),
        [Action::RunHooks { token: 1, calls }]
    );
    // One of two fails: retried alone, with its own files.
    assert_eq!(
        m.step(Event::HooksDone {
            token: 1,
            failed: vec![1]
        }),
        [Action::RetryAfter {
            token: 1,
            after: Duration::from_secs(1)
        }]
    );
    assert_eq!(
        m.step(Event::RetryDue { token: 1 }),
        [Action::RunHooks {
            token: 1,
            calls: vec![HookCall {
                hook: 1,
                changed: vec![PathBuf::from("/c/lua/a.lua")],
            }]
        }]
    );

    // A child without a handler for the signal is restarted instead: the
    // hooks never run.
    let mut m = running_on(pem_signal_lua_hook(), v(1, 1, 1));
    m.step(Event::ConfigSettled(v(2, 2, 2)));
    let restart = m.step(Event::ReloadSignalUnhandled(libc::SIGHUP, false));
    assert!(
        restart.contains(&Action::Signal(TERM, CHILD)),
        "{restart:?}"
    );
    assert!(
        !restart.iter().any(|a| matches!(a, Action::RunHooks { .. })),
        "{restart:?}"
    );
    assert_eq!(m.step(Event::ReloadSignalsSent), []);
}

#[test]
fn files_that_chose_none_are_not_checked_and_do_not_revive_rejected_bytes() {
    use crate::route::Act;
    let s = Settings {
        validate: true,
        routes: rules(&[("notes.txt", Act::Nothing)]),
        ..settings()
    };
    let v = |app, notes| files(&[("app.conf", app), ("notes.txt", notes)]);
    let (mut m, first) = start(s, v(1, 1));
    assert!(matches!(first[..], [Action::Validate { token: 1, .. }]));
    assert_eq!(
        m.step(Event::Validated { token: 1, ok: true }),
        [Action::Fingerprint]
    );
    look_and_start(&mut m, v(1, 1));
    // Notes alone: no check, no action.
    assert_eq!(m.step(Event::ConfigSettled(v(1, 2))), []);
    // With the app's config: the whole burst is checked.
    assert_eq!(
        m.step(Event::ConfigSettled(v(2, 3))),
        [
            Action::Acted,
            Action::Validate {
                token: 2,
                changed: vec![PathBuf::from("/c/app.conf"), PathBuf::from("/c/notes.txt")],
                candidate: None,
                in_place: false,
            }
        ]
    );
    assert_eq!(
        m.step(Event::Validated {
            token: 2,
            ok: false
        }),
        []
    );
    // Rejected: a notes change does not earn those bytes a second check.
    assert_eq!(m.step(Event::ConfigSettled(v(2, 4))), []);
    assert_eq!(m.stats().validations_failed, 1);
}

#[test]
fn a_sigcont_after_the_stop_signal_does_not_take_the_blame() {
    // `timeout` sends TERM, then CONT: the child dies of the TERM.
    let mut m = running(settings(), Some(1));
    m.step(Event::Signal(libc::SIGTERM));
    m.step(Event::Signal(libc::SIGCONT));
    assert_eq!(
        m.describe_exit(Status::Signaled(libc::SIGTERM)),
        "died of the SIGTERM we sent"
    );
    // A SIGCONT alone is still named.
    let mut m = running(settings(), Some(1));
    m.step(Event::Signal(libc::SIGCONT));
    assert_eq!(
        m.describe_exit(Status::Exited(0)),
        "exited with exit code 0 (after we sent SIGCONT)"
    );
}

#[test]
fn a_newer_burst_takes_over_the_hooks_an_older_one_still_owed() {
    use crate::route::Act;
    let s = Settings {
        reload_hooks: 0,
        routes: rules(&[("a.conf", Act::Hook(0)), ("b.conf", Act::Hook(1))]),
        ..settings()
    };
    let v = |a, b| files(&[("a.conf", a), ("b.conf", b)]);
    let call = |hook, name: &str| HookCall {
        hook,
        changed: vec![PathBuf::from(format!("/c/{name}"))],
    };
    let mut m = running_on(s, v(1, 1));
    assert_eq!(
        m.step(Event::ConfigSettled(v(2, 1))),
        [
            Action::Acted,
            Action::RunHooks {
                token: 1,
                calls: vec![call(0, "a.conf")]
            }
        ]
    );
    // a.conf's hook fails and waits for its retry; then b.conf changes.
    m.step(Event::HooksDone {
        token: 1,
        failed: vec![0],
    });
    assert_eq!(
        m.step(Event::ConfigSettled(v(2, 2))),
        [
            Action::Acted,
            Action::CancelHooks,
            Action::RunHooks {
                token: 2,
                calls: vec![call(0, "a.conf"), call(1, "b.conf")]
            }
        ]
    );
}

#[test]
fn a_none_file_changing_during_a_check_does_not_restart_the_check() {
    use crate::route::Act;
    let s = Settings {
        validate: true,
        routes: rules(&[("docs.md", Act::Nothing)]),
        ..settings()
    };
    let v = |app, docs| files(&[("app.conf", app), ("docs.md", docs)]);
    let (mut m, _) = start(s, v(1, 1));
    m.step(Event::Validated { token: 1, ok: true });
    look_and_start(&mut m, v(1, 1));
    let first = m.step(Event::ConfigSettled(v(2, 1)));
    assert!(matches!(
        first[..],
        [Action::Acted, Action::Validate { token: 2, .. }]
    ));
    // The docs key, again and again: the check of app.conf goes on.
    for docs in 2..6 {
        assert_eq!(m.step(Event::ConfigSettled(v(2, docs))), []);
    }
    assert_eq!(
        m.step(Event::Validated { token: 2, ok: true }),
        stop_with(TERM)
    );
}

#[test]
fn a_key_removed_then_put_back_is_no_change_and_is_said_once_per_removal() {
    use crate::route::Act;
    let s = Settings {
        promote: true,
        reload_signal: Some(libc::SIGHUP),
        routes: rules(&[("b.conf", Act::Restart)]),
        ..settings()
    };
    let both = |a| files(&[("a.conf", a), ("b.conf", 1)]);
    let g1 = Generation {
        name: "g1".into(),
        snapshot: both(1),
    };
    let (mut m, _) = Machine::new(s, Some(g1), None, None);
    look_and_start(&mut m, both(1));
    let only_a = files(&[("a.conf", 1)]);
    assert_eq!(m.step(Event::ConfigSettled(only_a.clone())), []);
    assert_eq!(m.said_removed.len(), 1);
    assert_eq!(m.step(Event::ConfigSettled(only_a)), []);
    // Back with the same bytes: nothing to do, and nothing left owed.
    assert_eq!(m.step(Event::ConfigSettled(both(1))), []);
    assert!(m.said_removed.is_empty());
    // a.conf alone: staged, committed, one HUP; b.conf does not restart.
    let staged = m.step(Event::ConfigSettled(both(2)));
    assert_eq!(staged, [Action::Acted, Action::Stage { token: 1 }]);
    let g2 = Generation {
        name: "g2".into(),
        snapshot: both(2),
    };
    assert_eq!(
        m.step(Event::Staged {
            token: 1,
            result: Ok(g2)
        }),
        [Action::Commit {
            token: 1,
            generation: "g2".into(),
            proven: None,
        }]
    );
    let told = m.step(Event::Committed {
        token: 1,
        result: Ok(()),
    });
    assert!(
        told.contains(&Action::SendReloadSignals(vec![libc::SIGHUP], CHILD)),
        "{told:?}"
    );
}

#[test]
fn sigterm_before_the_child_started_exits_at_once() {
    // The start's look is still out: nothing to stop, nothing to wait for.
    let (mut m, first) = Machine::new(settings(), None, None, None);
    assert_eq!(first, [Action::Fingerprint]);
    assert_eq!(m.step(Event::Signal(TERM)), [Action::Exit(143)]);
    // With --stop-delay too: there is nothing to drain.
    let s = Settings {
        stop_delay: SECS10,
        ..settings()
    };
    let (mut m, _) = Machine::new(s, None, None, None);
    assert_eq!(m.step(Event::Signal(libc::SIGINT)), [Action::Exit(130)]);
    // The late answer to the look starts nothing.
    assert_eq!(m.step(Event::Candidate(snap(Some(1)))), []);
}

/// A readiness answer for the current child, `ran_for` after its start.
fn probed(ok: bool, ran_for: Duration) -> Event {
    Event::Probed { ok, ran_for }
}

const LONG_AGO: Duration = Duration::from_secs(3600);

/// `running_on_g1` with `--ready-start-period 10s` and no reload signal:
/// g2 pushed restarts the child onto it, a fresh child on probation.
fn restarted_onto_g2() -> Machine {
    let mut m = running_on_g1(true);
    m.settings.ready_start_period = SECS10;
    m.settings.reload_signal = None;
    let (_, told) = push(&mut m, 2, "g2");
    assert_eq!(told[1..], stop_with(TERM)[..], "{told:?}");
    assert_eq!(m.step(exited(0)), []);
    assert_eq!(
        m.step(Event::GroupGone),
        [Action::StopDeadline(None), Action::Fingerprint]
    );
    assert_eq!(m.step(Event::Candidate(snap(Some(2)))), [Action::Spawn]);
    assert_eq!(
        m.step(Event::Spawned),
        [Action::ProbationDeadline(Some(Duration::from_secs(60)))]
    );
    m
}

/// Issue 24, item 4: a child that is slow to start (a JVM) is not judged
/// before it was ready once or its start period ran out.
#[test]
fn failures_count_only_once_the_child_was_ready_or_its_start_period_is_over() {
    // The child reloaded onto g2 with no start period (0s) started long
    // ago: failures count at once.
    let mut m = on_probation();
    m.step(probed(false, LONG_AGO));
    assert_eq!(
        m.readiness(),
        Err("the readiness probe failed (1 in a row)".into())
    );

    // A fresh child on new bytes: six failures within its start period
    // count nothing; it becomes ready at 2.5 s and stays.
    let mut m = restarted_onto_g2();
    for ms in [500, 1000, 1500, 2000] {
        assert_eq!(m.step(probed(false, Duration::from_millis(ms))), []);
    }
    assert_eq!(
        m.readiness(),
        Err("the readiness probe has not passed yet".into())
    );
    assert_eq!(m.step(probed(true, Duration::from_millis(2500))), []);
    assert_eq!(m.readiness(), Ok(()));
    // Once it was ready, failures count at once (3 in a row roll back).
    let secs = Duration::from_secs;
    third_failure_rolls_back(&mut m, [secs(3), secs(4), secs(5)]);

    // Never ready: once the start period is over, failures count.
    let mut m = restarted_onto_g2();
    assert_eq!(m.step(probed(false, Duration::from_secs(9))), []);
    third_failure_rolls_back(&mut m, [secs(11), secs(12), secs(13)]);
}

/// `running_on_g1` with `--ready-start-period 10s`, its child ready on g1
/// long after its start, then g2 pushed and delivered by HUP: the reload
/// begins a new start period, numbered apart. Returns the number before.
fn reloaded_with_a_start_period(reload: impl FnOnce(&mut Machine)) -> (Machine, u64) {
    let mut m = running_on_g1(true);
    m.settings.ready_start_period = SECS10;
    let before = m.period;
    assert_eq!(m.step(probed(true, LONG_AGO)), []);
    assert_eq!(m.readiness(), Ok(()));
    reload(&mut m);
    assert_eq!(
        m.period,
        before + 1,
        "the reload's period has its own number"
    );
    (m, before)
}

/// g2 pushed and delivered by HUP: the window and the new period start.
fn by_hup(m: &mut Machine) {
    let (_, told) = push(m, 2, "g2");
    assert!(
        told.contains(&Action::SendReloadSignals(vec![libc::SIGHUP], CHILD)),
        "{told:?}"
    );
    assert_eq!(
        m.step(Event::ReloadSignalsSent),
        [
            Action::ProbationDeadline(Some(Duration::from_secs(60))),
            Action::StartUpDeadline {
                child: m.period,
                after: SECS10
            }
        ]
    );
}

/// Hostile review 04: a child unready for 7 s while it reloaded (a cache
/// rebuilt on SIGHUP), probed every 2 s, got a valid config rolled back:
/// a reload had no start period. Its failures are excused now until it is
/// ready again, and `/readyz` still tells them.
#[test]
fn a_reload_onto_new_bytes_begins_a_new_start_period() {
    let (mut m, _) = reloaded_with_a_start_period(by_hup);
    for _ in 0..6 {
        assert_eq!(m.step(probed(false, LONG_AGO)), []);
    }
    assert_eq!(
        m.readiness(),
        Err("the readiness probe failed (6 in a row)".into()),
        "/readyz tells what the probe says, excused or not"
    );
    // Ready again on g2: from now on failures count.
    assert_eq!(m.step(probed(true, LONG_AGO)), []);
    assert_eq!(m.readiness(), Ok(()));
    // Its deadline, when it comes, changes nothing.
    assert_eq!(m.step(Event::StartedUp), []);
    assert_eq!(third_failure_rolls_back(&mut m, [LONG_AGO; 3]), g2_to_g1());
}

/// The same child never ready again on g2: its window passing proves
/// nothing (ready on g1 said nothing of g2), and once its start period ran
/// out, three failures from then on roll back (not the excused ones).
#[test]
fn a_reloaded_child_never_ready_again_is_judged_once_its_start_period_ran_out() {
    let (mut m, _) = reloaded_with_a_start_period(by_hup);
    for _ in 0..5 {
        assert_eq!(m.step(probed(false, LONG_AGO)), []);
    }
    assert_eq!(m.step(Event::ProbationOver), [], "never ready on g2");
    assert_eq!(m.step(Event::StartedUp), []);
    // The excused failures do not count: three from now on are needed.
    assert_eq!(third_failure_rolls_back(&mut m, [LONG_AGO; 3]), g2_to_g1());
}

/// A child reloaded while its start's own period still ran (it is young)
/// is judged by the reload's period alone: `/readyz` tells its failures at
/// once (it said ready on the old bytes), they are excused until the
/// reload's period ran out, and count from then on, young or not.
#[test]
fn a_young_child_reloaded_is_judged_by_the_reloads_period() {
    let (mut m, _) = reloaded_with_a_start_period(by_hup);
    let young = Duration::from_secs(2);
    assert_eq!(m.step(probed(false, young)), []);
    assert_eq!(
        m.readiness(),
        Err("the readiness probe failed (1 in a row)".into()),
        "/readyz still said ready, as on the old bytes"
    );
    assert_eq!(fail_probes(&mut m, 3), []);
    assert_eq!(m.step(Event::StartedUp), []);
    third_failure_rolls_back(&mut m, [young; 3]);
}

/// Answers from before the reload are stale: the probe and the start-up
/// deadline of the earlier period are cancelled as the reload's period
/// begins (their answers are then dropped with every stale one); the new
/// period's deadline stays.
#[test]
fn a_reload_cancels_the_probe_and_start_up_period_from_before_it() {
    let (mut m, before) = reloaded_with_a_start_period(by_hup);
    let (probe, old, new) = (m.next_token(), m.next_token(), m.next_token());
    m.inflight.insert(probe, Rec::Probe(before));
    m.inflight.insert(old, Rec::StartUp(before));
    m.inflight.insert(new, Rec::StartUp(m.period));
    assert_eq!(
        m.requests(vec![]),
        [
            Request::Cancel { token: probe },
            Request::Cancel { token: old }
        ]
    );
    assert_eq!(m.inflight.keys().collect::<Vec<_>>(), [&new]);
}

/// A reload command that succeeded reached the child as a signal does:
/// its period starts when the hooks answer, not when they are started.
#[test]
fn a_reload_hook_that_succeeded_begins_a_start_period_too() {
    let (mut m, _) = reloaded_with_a_start_period(|m| {
        m.settings.reload_signal = None;
        m.settings.reload_hooks = 1;
        let (_, told) = push(m, 2, "g2");
        let Some(Action::RunHooks { token, .. }) = told.last().cloned() else {
            panic!("{told:?}")
        };
        let c = m.period;
        // A failed run reached nothing: no window, no period yet.
        let retry = m.step(Event::HooksDone {
            token,
            failed: vec![0],
        });
        assert!(
            matches!(retry[..], [Action::RetryAfter { .. }]),
            "{retry:?}"
        );
        assert_eq!(m.period, c);
        assert_eq!(
            m.step(Event::HooksDone {
                token,
                failed: vec![]
            }),
            [
                Action::ProbationDeadline(Some(Duration::from_secs(60))),
                Action::StartUpDeadline {
                    child: c + 1,
                    after: SECS10
                }
            ]
        );
    });
    for _ in 0..4 {
        assert_eq!(m.step(probed(false, LONG_AGO)), []);
    }
}

/// The window ran out before the child was ever ready: the generation is
/// not proven on that alone; it is once the child is ready.
#[test]
fn a_window_that_ends_before_the_child_was_ready_proves_nothing_yet() {
    let mut m = on_probation();
    assert_eq!(m.step(Event::ProbationOver), []);
    assert_eq!(
        m.step(probed(true, LONG_AGO)),
        [
            Action::ProbationDeadline(None),
            Action::Prove {
                generation: "g2".into()
            },
            Action::RemoveGeneration {
                generation: "g1".into()
            },
        ]
    );
    // Proven: a crash now is the restart policy's, not a rollback.
    let exit = m.step(exited(1));
    assert!(!exit.iter().any(|a| matches!(a, Action::RollBack { .. })));
}

/// Pushes new bytes through the gate of a machine made by
/// `running_on_g1(true)`: staged as `name`, checked, committed; the
/// commit's actions and the answer's.
fn push(m: &mut Machine, bytes: u64, name: &str) -> (Action, Vec<Action>) {
    let staged = m.step(Event::ConfigSettled(snap(Some(bytes))));
    let Some(Action::Stage { token }) = staged.last().cloned() else {
        panic!("not staged: {staged:?}");
    };
    let check = m.step(Event::Staged {
        token,
        result: Ok(Generation {
            name: name.into(),
            snapshot: snap(Some(bytes)),
        }),
    });
    assert!(matches!(check[..], [Action::Validate { .. }]), "{check:?}");
    let commit = m.step(Event::Validated { token, ok: true });
    let [commit] = &commit[..] else {
        panic!("{commit:?}")
    };
    let after = m.step(Event::Committed {
        token,
        result: Ok(()),
    });
    (commit.clone(), after)
}

/// Issue 24, item 3: G proven, A pushed (on probation), B pushed within
/// A's window: B's commit forgot G and made unproven A the rollback
/// target. The proven one stays, however many pushes come.
#[test]
fn a_second_push_in_the_window_keeps_the_proven_generation_to_go_back_to() {
    let mut m = on_probation();
    let (commit, after) = push(&mut m, 3, "g3");
    assert_eq!(
        commit,
        Action::Commit {
            token: 2,
            generation: "g3".into(),
            proven: Some("g1".into()),
        },
        "g1 stays on record as the proven one"
    );
    assert!(
        after.contains(&Action::RemoveGeneration {
            generation: "g2".into()
        }),
        "{after:?}"
    );
    assert!(
        !after.iter().any(|a| *a
            == Action::RemoveGeneration {
                generation: "g1".into()
            }),
        "{after:?}"
    );
    m.step(Event::ReloadSignalsSent);
    // g3 breaks the child: back to g1, the proven one, not to g2.
    let exit = m.step(exited(1));
    assert!(
        exit.contains(&Action::RollBack {
            to: "g1".into(),
            from: "g3".into()
        }),
        "{exit:?}"
    );
}

/// Without a window every committed generation is proven at once; with
/// one, the first committed (nothing proven yet) is kept whatever happens.
#[test]
fn without_a_window_or_a_proven_one_a_commit_proves_at_once() {
    let mut m = running_on_g1(true);
    m.settings.rollback_window = None;
    let (commit, after) = push(&mut m, 2, "g2");
    assert!(matches!(commit, Action::Commit { proven: None, .. }));
    assert!(after.contains(&Action::RemoveGeneration {
        generation: "g1".into()
    }));
    assert_eq!(m.proven.as_ref().map(|g| g.name.as_str()), Some("g2"));
}

/// A manager restarted while a generation was on probation keeps the
/// proven one and judges the newer one again, with a fresh window.
#[test]
fn restarted_during_probation_the_newer_generation_is_judged_again() {
    let s = Settings {
        promote: true,
        validate: true,
        rollback_window: Some(Duration::from_secs(60)),
        ..settings()
    };
    let g = |name: &str, bytes| Generation {
        name: name.into(),
        snapshot: snap(Some(bytes)),
    };
    let (mut m, first) = Machine::new(s.clone(), Some(g("g2", 2)), None, Some(g("g1", 1)));
    assert_eq!(first, [Action::Fingerprint]);
    assert_eq!(m.step(Event::Candidate(snap(Some(2)))), [Action::Spawn]);
    assert_eq!(
        m.step(Event::Spawned),
        [Action::ProbationDeadline(Some(Duration::from_secs(60)))],
        "a fresh window"
    );
    let exit = m.step(exited(1));
    assert!(
        exit.contains(&Action::RollBack {
            to: "g1".into(),
            from: "g2".into()
        }),
        "{exit:?}"
    );
    // Without the window any more, the last good one stands (and the
    // record says so).
    let s = Settings {
        rollback_window: None,
        ..s
    };
    let (_, first) = Machine::new(s, Some(g("g2", 2)), None, Some(g("g1", 1)));
    assert_eq!(
        first,
        [
            Action::Prove {
                generation: "g2".into()
            },
            Action::RemoveGeneration {
                generation: "g1".into()
            },
            Action::Fingerprint
        ]
    );
}

/// A machine with `s` whose child started on generation "g1" (bytes 1)
/// and is through its start period.
fn started_up_on_g1(s: Settings) -> Machine {
    let g1 = Generation {
        name: "g1".into(),
        snapshot: snap(Some(1)),
    };
    let (mut m, _) = Machine::new(s, Some(g1), None, None);
    assert_eq!(m.step(Event::Candidate(snap(Some(1)))), [Action::Spawn]);
    m.step(Event::Spawned);
    m.step(Event::StartedUp);
    m
}

/// `event`'s actions, less the moment of quiet after the child was told
/// something (`hush`: its wait, and the one it replaced).
fn step_unhushed(m: &mut Machine, event: Event) -> Vec<Action> {
    let actions = m.step(event);
    let hush = m.hush;
    actions
        .into_iter()
        .filter(|a| match a {
            Action::RetryAfter { token, .. } => Some(*token) != hush,
            Action::CancelWait { .. } => false,
            _ => true,
        })
        .collect()
}

/// The moment of quiet after the child was told something runs out.
fn hush_over(m: &mut Machine) -> Vec<Action> {
    let token = m.hush.expect("the child was just told something");
    m.step(Event::RetryDue { token })
}

/// Issue 24, item 6 (found by the loop's property with crashing children):
/// a restart after a backoff started the child while an in-place check
/// showed a candidate the source no longer held. The view goes back first.
#[test]
fn a_start_never_lands_on_a_candidate_shown_in_place() {
    let s = Settings {
        promote: true,
        validate: true,
        validate_in_place: true,
        restart: Policy::Always,
        ..settings()
    };
    let mut m = started_up_on_g1(s);
    m.step(exited(1));
    assert_eq!(
        m.step(Event::GroupGone),
        [
            Action::StopDeadline(None),
            Action::Backoff(Duration::from_secs(1))
        ]
    );
    // A push during the backoff: staged, checked in place (DIR shows it).
    assert_eq!(
        m.step(Event::ConfigSettled(snap(Some(2)))),
        [Action::Acted, Action::Stage { token: 1 }]
    );
    let check = m.step(Event::Staged {
        token: 1,
        result: Ok(Generation {
            name: "g2".into(),
            snapshot: snap(Some(2)),
        }),
    });
    assert!(matches!(
        check[..],
        [Action::Validate { in_place: true, .. }]
    ));
    // The backoff ends; the source is back on the last good bytes. The
    // candidate goes first; the start waits for the world to say it is
    // off the view.
    assert_eq!(m.step(Event::BackoffOver), [Action::Fingerprint]);
    assert_eq!(
        m.step(Event::Candidate(snap(Some(1)))),
        [
            Action::DropCandidate {
                generation: "g2".into()
            },
            Action::CancelValidation,
        ]
    );
    // Refused (DIR read-only): no child, the removal asked again later.
    let refused = || Event::Dropped {
        generation: "g2".into(),
        result: Err("cannot restore DIR: Read-only file system".into()),
    };
    let retry = m.step(refused());
    let [Action::RetryAfter { token, after }] = retry[..] else {
        panic!("{retry:?}");
    };
    assert_eq!(after, Duration::from_secs(1));
    // Meanwhile a start asked for again still waits.
    assert_eq!(m.step(Event::Candidate(snap(Some(1)))), []);
    assert_eq!(
        m.step(Event::RetryDue { token }),
        [Action::DropCandidate {
            generation: "g2".into()
        }]
    );
    let retry = m.step(refused());
    assert!(
        matches!(retry[..], [Action::RetryAfter { after, .. }] if after == Duration::from_secs(2)),
        "{retry:?}"
    );
    // Off the view: the child starts on the last good.
    let Action::RetryAfter { token, .. } = retry[0] else {
        unreachable!()
    };
    m.step(Event::RetryDue { token });
    let off = Event::Dropped {
        generation: "g2".into(),
        result: Ok(()),
    };
    assert_eq!(m.step(off), [Action::Spawn]);
}

/// Issue 24, item 6: a child that just started (it reads its config a
/// moment later) was shown a candidate in place for its check, and ran on
/// it when the check rejected it. Its check waits until the child started
/// up: ready once, or its start period over.
#[test]
fn a_check_in_place_waits_for_a_starting_child_to_start_up() {
    let s = Settings {
        promote: true,
        validate: true,
        validate_in_place: true,
        ready_start_period: SECS10,
        ..settings()
    };
    let g1 = Generation {
        name: "g1".into(),
        snapshot: snap(Some(1)),
    };
    let (mut m, _) = Machine::new(s.clone(), Some(g1.clone()), None, None);
    assert_eq!(m.step(Event::Candidate(snap(Some(1)))), [Action::Spawn]);
    assert_eq!(
        m.step(Event::Spawned),
        [Action::StartUpDeadline {
            child: 1,
            after: SECS10
        }]
    );
    // A push 0.2 s after the start: staged, its check held back.
    assert_eq!(
        m.step(Event::ConfigSettled(snap(Some(2)))),
        [Action::Acted, Action::Stage { token: 1 }]
    );
    let g2 = Generation {
        name: "g2".into(),
        snapshot: snap(Some(2)),
    };
    assert_eq!(
        m.step(Event::Staged {
            token: 1,
            result: Ok(g2)
        }),
        []
    );
    // Its period ends: the check starts. (An earlier child's was
    // cancelled when this one started: see the protocol.)
    assert!(matches!(
        m.step(Event::StartedUp)[..],
        [Action::Validate {
            token: 1,
            in_place: true,
            ..
        }]
    ));
    assert_eq!(
        m.step(Event::Validated {
            token: 1,
            ok: false
        })
        .len(),
        1
    );

    // With a probe: ready once is started up too.
    let s = Settings {
        ready_interval: Some(Duration::from_secs(1)),
        ..s
    };
    let (mut m, _) = Machine::new(s, Some(g1), None, None);
    m.step(Event::Candidate(snap(Some(1))));
    m.step(Event::Spawned);
    m.step(Event::ConfigSettled(snap(Some(2))));
    let g2 = Generation {
        name: "g2".into(),
        snapshot: snap(Some(2)),
    };
    assert_eq!(
        m.step(Event::Staged {
            token: 1,
            result: Ok(g2)
        }),
        []
    );
    assert!(matches!(
        m.step(probed(true, Duration::from_secs(1)))[..],
        [Action::Validate { in_place: true, .. }]
    ));
}

/// The retry of config 1 (whose check could not start) is due: staged
/// again as `g`, then checked.
fn restaged_to_its_check(m: &mut Machine, g: Generation) {
    assert_eq!(
        m.step(Event::RetryDue { token: 1 }),
        [Action::Stage { token: 1 }]
    );
    let check = m.step(Event::Staged {
        token: 1,
        result: Ok(g),
    });
    assert!(
        matches!(check[..], [Action::Validate { token: 1, .. }]),
        "{check:?}"
    );
}

/// Issue 24, item 8: a check that could not start because the candidate
/// could not be shown in place (our own I/O) is no verdict: the candidate
/// is discarded, the staging retried, and the bytes are not rejected.
#[test]
fn a_check_that_cannot_start_is_retried_not_a_verdict() {
    let mut m = running_on_g1(true);
    m.step(Event::ConfigSettled(snap(Some(2))));
    let g2 = Generation {
        name: "g2".into(),
        snapshot: snap(Some(2)),
    };
    m.step(Event::Staged {
        token: 1,
        result: Ok(g2.clone()),
    });
    let failed = m.step(Event::CannotCheck {
        token: 1,
        reason: "cannot show the candidate: ENOSPC".into(),
    });
    assert_eq!(
        failed[0],
        Action::DropCandidate {
            generation: "g2".into()
        }
    );
    let Some(&Action::RetryAfter { token: 1, .. }) = failed.get(1) else {
        panic!("{failed:?}");
    };
    assert_eq!(failed.len(), 2, "{failed:?}");
    restaged_to_its_check(&mut m, g2);
    // A stale answer changes nothing.
    assert_eq!(
        m.step(Event::CannotCheck {
            token: 9,
            reason: String::new()
        }),
        []
    );
}

/// Review: without `--promote-to`, a start whose check cannot run (no
/// descriptor or process for it) neither exits 78 nor starts the child on
/// the unchecked bytes (there is no checked copy to start it on): the
/// check runs again, and its verdict decides the start.
#[test]
fn a_start_whose_check_cannot_run_waits_for_the_check() {
    let (mut m, first) = start(validating(), snap(Some(1)));
    assert!(
        matches!(first[..], [Action::Validate { token: 1, .. }]),
        "{first:?}"
    );
    assert_eq!(
        m.step(Event::CannotCheck {
            token: 1,
            reason: "cannot run the validator: Resource temporarily unavailable".into(),
        }),
        [Action::RetryAfter {
            token: 1,
            after: BACKOFF_FIRST
        }]
    );
    assert_eq!(m.stats().promotions_failed, 0, "no promotion failed");
    assert_eq!(
        m.step(Event::RetryDue { token: 1 }),
        [Action::Validate {
            token: 1,
            changed: conf(),
            candidate: None,
            in_place: false,
        }]
    );
    assert_eq!(
        m.step(Event::Validated { token: 1, ok: true }),
        [Action::Fingerprint]
    );
}

/// Found by the property test once it could make checks fail to start:
/// with `--promote-to` and no good generation yet, a first start whose
/// check could not run (no process for it: EAGAIN) exited 78, as if the
/// config were bad, though nothing judged it. It waits for the check as
/// without `--promote-to`: the candidate goes, the staging is retried, and
/// the check's verdict decides the start.
#[test]
fn a_first_promoted_start_whose_check_cannot_run_waits_for_the_check() {
    let s = Settings {
        promote: true,
        ..validating()
    };
    let (mut m, first) = start(s, snap(Some(1)));
    assert_eq!(first, [Action::Stage { token: 1 }]);
    let g1 = Generation {
        name: "g1".into(),
        snapshot: snap(Some(1)),
    };
    let check = m.step(Event::Staged {
        token: 1,
        result: Ok(g1.clone()),
    });
    assert!(
        matches!(check[..], [Action::Validate { token: 1, .. }]),
        "{check:?}"
    );
    let failed = m.step(Event::CannotCheck {
        token: 1,
        reason: "cannot run the validator: Resource temporarily unavailable".into(),
    });
    assert_eq!(
        failed,
        [
            Action::DropCandidate {
                generation: "g1".into()
            },
            Action::RetryAfter {
                token: 1,
                after: BACKOFF_FIRST
            }
        ]
    );
    assert_eq!(m.stats().validations_failed, 0, "no verdict");
    restaged_to_its_check(&mut m, g1);
    assert_eq!(
        m.step(Event::Validated { token: 1, ok: true }),
        [Action::Commit {
            token: 1,
            generation: "g1".into(),
            proven: None
        }]
    );
    assert_eq!(
        m.step(Event::Committed {
            token: 1,
            result: Ok(())
        }),
        [Action::Spawn]
    );
}

/// Found by the property test: a start whose staged copy holds the
/// approved bytes again (the source went back to them, the usual fix
/// after a rejection) starts the child on them, and the last change is no
/// longer failing, as when the source goes back while the child runs. The
/// gauge used to stay failed until some later touch of the same bytes.
#[test]
fn a_start_on_the_source_put_back_ends_the_failure() {
    let s = Settings {
        promote: true,
        validate: true,
        restart: Policy::Always,
        ..settings()
    };
    let generation = |name: &str, bytes| Generation {
        name: name.into(),
        snapshot: snap(Some(bytes)),
    };
    let (mut m, first) = Machine::new(s, Some(generation("g1", 1)), None, None);
    assert_eq!(first, [Action::Fingerprint]);
    look_and_start(&mut m, snap(Some(1)));
    m.step(Event::ConfigSettled(snap(Some(2))));
    m.step(Event::Staged {
        token: 1,
        result: Ok(generation("g2", 2)),
    });
    m.step(Event::Validated {
        token: 1,
        ok: false,
    });
    assert!(m.stats().last_failed);
    // The child exits; its restart looks at bytes 3, then the source goes
    // back to 1 before they are staged.
    exit_and_drain(&mut m, 1, SECS10);
    assert_eq!(m.step(Event::BackoffOver), [Action::Fingerprint]);
    assert_eq!(
        m.step(Event::Candidate(snap(Some(3)))),
        [Action::Stage { token: 2 }]
    );
    assert_eq!(
        m.step(Event::Staged {
            token: 2,
            result: Ok(generation("g3", 1)),
        }),
        [
            Action::DropCandidate {
                generation: "g3".into()
            },
            Action::Spawn
        ]
    );
    assert!(!m.stats().last_failed, "still failing on the child's bytes");
}

/// Found by the loop's property test: without `--promote-to` a retried
/// check ran on the live files a second or more after they were looked
/// at. The source had moved to other bytes meanwhile (3, which the
/// validator rejects), and moved back before the next look: the verdict
/// on 3 was taken for 2, 2 stayed rejected and never reached the child.
/// A burst that begins while a plain check is due or runs makes its
/// verdict moot: it runs once the burst settles on the bytes in flight.
#[test]
fn a_plain_check_of_files_that_moved_meanwhile_runs_again_once_they_settle() {
    let mut m = running_validated(validating());
    m.step(Event::ConfigSettled(snap(Some(2))));
    m.step(Event::CannotCheck {
        token: 2,
        reason: "cannot run the validator: Resource temporarily unavailable".into(),
    });
    // The files move while the retry waits: it waits for the settle.
    assert_eq!(m.step(Event::Changed), []);
    assert_eq!(m.step(Event::RetryDue { token: 2 }), []);
    let check = |token| Action::Validate {
        token,
        changed: conf(),
        candidate: None,
        in_place: false,
    };
    assert_eq!(m.burst_settled(snap(Some(2))), [check(2)]);
    // They move again while it runs: its verdict does not count...
    assert_eq!(m.step(Event::Changed), []);
    assert_eq!(
        m.step(Event::Validated {
            token: 2,
            ok: false
        }),
        []
    );
    assert_eq!(m.stats().validations_failed, 0);
    // ...and once they settle on the same bytes, it runs again.
    assert_eq!(m.burst_settled(snap(Some(2))), [check(2)]);
    // A settle that comes while it runs again, after a move: restarted.
    m.step(Event::Changed);
    assert_eq!(
        m.burst_settled(snap(Some(2))),
        [Action::CancelValidation, check(2)]
    );
    // Unmoved, its verdict counts: the child restarts on 2.
    let passed = m.step(Event::Validated { token: 2, ok: true });
    assert!(
        passed.contains(&Action::Signal(15, Target::Child)),
        "{passed:?}"
    );
}

/// Without `--promote-to`, a check that could not run (no file descriptor
/// for its pipe: a fault of ours) is run again on the same bytes; it used to
/// be retried as a staging, which failed forever ("no --promote-to").
#[test]
fn a_plain_check_that_cannot_start_is_run_again() {
    let mut m = running_validated(validating());
    let check = m.step(Event::ConfigSettled(snap(Some(2))));
    assert!(
        matches!(
            check[..],
            [Action::Acted, Action::Validate { token: 2, .. }]
        ),
        "{check:?}"
    );
    let failed = m.step(Event::CannotCheck {
        token: 2,
        reason: "cannot run the validator: Too many open files".into(),
    });
    let [Action::RetryAfter { token: 2, .. }] = failed[..] else {
        panic!("{failed:?}");
    };
    assert_eq!(
        m.step(Event::RetryDue { token: 2 }),
        [Action::Validate {
            token: 2,
            changed: conf(),
            candidate: None,
            in_place: false,
        }]
    );
    // Its verdict now counts as ever: the child restarts on the new bytes.
    let passed = m.step(Event::Validated { token: 2, ok: true });
    assert_eq!(
        passed,
        [
            Action::Signal(15, Target::Child),
            Action::ContinueStopped(Target::Child),
            Action::StopDeadline(Some(Duration::from_secs(10)))
        ]
    );
}

/// Issue 27: `flush_manager_last_reload_successful` is the negation of
/// `Stats::last_failed`. It reads 1 after a start or reload onto checked
/// bytes, 0 after a rollback (the rollback's own reload of the older bytes
/// is no success) or a rejection, and 1 again once newer bytes take.
#[test]
fn the_last_change_took_or_failed_as_the_alerting_gauge_says() {
    let mut m = on_probation();
    assert_eq!((m.stats().took, m.stats().last_failed), (2, false));
    fail_probes(&mut m, 3);
    let back = m.step(Event::RolledBack { result: Ok(()) });
    assert_eq!(back, [Action::SendReloadSignals(vec![libc::SIGHUP], CHILD)]);
    m.step(Event::ReloadSignalsSent);
    assert_eq!(m.stats().reloads_ok, 2);
    assert_eq!((m.stats().took, m.stats().last_failed), (2, true));

    // Newer bytes pass and reach the child: a success again.
    let promote = |m: &mut Machine, bytes: u64, token: u64, ok: bool| {
        m.step(Event::ConfigSettled(snap(Some(bytes))));
        let g = Generation {
            name: format!("g{bytes}"),
            snapshot: snap(Some(bytes)),
        };
        m.step(Event::Staged {
            token,
            result: Ok(g),
        });
        m.step(Event::Validated { token, ok });
        if ok {
            m.step(Event::Committed {
                token,
                result: Ok(()),
            });
            m.step(Event::ReloadSignalsSent);
        }
    };
    promote(&mut m, 3, 2, true);
    assert_eq!((m.stats().took, m.stats().last_failed), (3, false));
    // Rejected: 0, and nothing the child does on the older bytes makes it 1.
    promote(&mut m, 4, 3, false);
    assert_eq!(m.stats().validations_failed, 1);
    assert_eq!((m.stats().took, m.stats().last_failed), (3, true));
    m.step(Event::Signal(libc::SIGHUP));
    assert!(m.stats().last_failed);
    promote(&mut m, 5, 4, true);
    assert_eq!((m.stats().took, m.stats().last_failed), (4, false));
}

/// Without a gate, a restart onto changed bytes is the success.
#[test]
fn a_restart_onto_new_bytes_is_a_success() {
    let mut m = running(settings(), Some(1));
    assert_eq!((m.stats().took, m.stats().last_failed), (1, false));
    m.step(Event::ConfigSettled(snap(Some(2))));
    drained(&mut m, Status::Signaled(TERM));
    look_and_start(&mut m, snap(Some(2)));
    assert_eq!(m.stats().starts[Reason::Config as usize], 1);
    assert_eq!((m.stats().took, m.stats().last_failed), (2, false));
}

/// Found by a hostile review: the usual fix for a rejected config is to
/// put the previous one back. The source then holds exactly the bytes the
/// child runs with, nothing is failing any more, and the alerting gauge
/// must say so (it stayed 0, firing the 10-minute alert, until some
/// unrelated later change).
#[test]
fn reverting_a_rejected_change_clears_the_alerting_gauge() {
    let mut m = running_validated(validating());
    assert!(!m.stats().last_failed);
    m.step(Event::ConfigSettled(snap(Some(2))));
    m.step(Event::Validated {
        token: 2,
        ok: false,
    });
    assert!(m.stats().last_failed, "rejected: 0");
    let took = m.stats().took;
    m.step(Event::ConfigSettled(snap(Some(1))));
    assert!(
        !m.stats().last_failed,
        "the source is back to the running bytes: 1"
    );
    assert_eq!(m.stats().took, took, "no new bytes reached the child");
}

/// The same after a rollback: the source still holds the bytes that broke
/// the child until someone puts the good ones back.
#[test]
fn reverting_the_source_after_a_rollback_clears_the_alerting_gauge() {
    let mut m = on_probation();
    fail_probes(&mut m, 3);
    m.step(Event::RolledBack { result: Ok(()) });
    m.step(Event::ReloadSignalsSent);
    assert!(m.stats().last_failed, "rolled back: 0");
    m.step(Event::ConfigSettled(snap(Some(2))));
    assert!(m.stats().last_failed, "the broken bytes are still there: 0");
    m.step(Event::ConfigSettled(snap(Some(1))));
    assert!(
        !m.stats().last_failed,
        "the source holds the bytes the child runs with again: 1"
    );
}

/// A reload that keeps failing is not cleared by a revert: its retries go
/// on, and only their success says the child took the bytes.
#[test]
fn a_revert_does_not_clear_a_reload_still_failing() {
    let mut m = running(external(), Some(1));
    m.step(Event::ConfigSettled(snap(Some(2))));
    m.step(Event::HooksDone {
        token: 1,
        failed: vec![0],
    });
    assert!(m.stats().last_failed);
    m.step(Event::ConfigSettled(snap(Some(1))));
    assert!(m.stats().last_failed, "the reload is still being retried");
}

/// Awaiting a fix (rejected bytes) after a crash, the child starts again once the
/// good bytes are put back: that start is on the source's bytes, so the
/// gauge reads 1 again.
#[test]
fn awaiting_a_fix_then_started_on_reverted_bytes_clears_the_alerting_gauge() {
    let mut s = validating();
    s.restart = Policy::OnFailure;
    let mut m = running_validated(s);
    m.step(Event::ConfigSettled(snap(Some(2))));
    m.step(Event::Validated {
        token: 2,
        ok: false,
    });
    exit_and_drain(&mut m, 1, SECS10);
    m.step(Event::BackoffOver);
    m.step(Event::Candidate(snap(Some(2))));
    assert_eq!(m.phase, Phase::AwaitingFix);
    assert!(m.stats().last_failed);
    assert_eq!(
        m.step(Event::ConfigSettled(snap(Some(1)))),
        [Action::Acted, Action::Spawn]
    );
    assert_eq!(m.step(Event::Spawned), []);
    assert!(!m.stats().last_failed, "running on the source's bytes: 1");
}

/// A burst that sends a signal and runs a hook is one reload, counted once,
/// when the hook answers (it counted twice: at the signal and at the hook).
#[test]
fn a_burst_of_a_signal_and_a_hook_counts_one_reload() {
    let mut m = running_on(pem_signal_lua_hook(), pem_lua(1, 1, 1));
    let v = pem_lua;
    let took = m.stats().took;
    m.step(Event::ConfigSettled(v(2, 2, 2)));
    m.step(Event::ReloadSignalsSent);
    assert_eq!(
        m.stats().reloads_ok,
        0,
        "not counted before the hooks answer"
    );
    m.step(Event::HooksDone {
        token: 1,
        failed: vec![],
    });
    assert_eq!(m.stats().reloads_ok, 1);
    assert_eq!(m.stats().took, took + 1, "one success time for the burst");
    // A burst of signals alone counts at the signal.
    m.step(Event::ConfigSettled(v(2, 3, 2)));
    m.step(Event::ReloadSignalsSent);
    assert_eq!(m.stats().reloads_ok, 2);
}

/// A commit whose view switch and record restore both failed: the disk's
/// record names g2. The machine takes that word: g2 is its last good one
/// (a later commit keeps the proven g1, a newer candidate's failure never
/// discards g2), the child is not told while its view lags, and the retry
/// commits g2 again instead of staging a new copy. Before, the machine kept
/// g1 as the last good one while the disk named g2.
#[test]
fn a_commit_recorded_but_not_shown_is_taken_at_the_disks_word() {
    let mut m = running_on_g1(true);
    m.step(Event::ConfigSettled(snap(Some(2))));
    let g2 = Generation {
        name: "g2".into(),
        snapshot: snap(Some(2)),
    };
    m.step(Event::Staged {
        token: 1,
        result: Ok(g2),
    });
    let commit = m.step(Event::Validated { token: 1, ok: true });
    assert!(matches!(commit[..], [Action::Commit { token: 1, .. }]));
    let after = m.step(Event::Committed {
        token: 1,
        result: Err(CommitFailed {
            reason: "Read-only file system".into(),
            recorded: true,
            gone: false,
        }),
    });
    // Not told, g1 not forgotten (the view still shows it), g2 not discarded.
    assert!(
        after.iter().all(|a| !matches!(
            a,
            Action::SendReloadSignals(..)
                | Action::DropCandidate { .. }
                | Action::RemoveGeneration { .. }
                | Action::Spawn
        )),
        "{after:?}"
    );
    let retry = after
        .iter()
        .find_map(|a| match a {
            Action::RetryAfter { token, .. } => Some(*token),
            _ => None,
        })
        .expect("a retry");
    assert_eq!(m.last_good.as_deref(), Some("g2"), "the disk names g2");
    // The same generation is committed again, keeping the proven g1.
    assert_eq!(
        m.step(Event::RetryDue { token: retry }),
        [Action::Commit {
            token: 1,
            generation: "g2".into(),
            proven: Some("g1".into()),
        }]
    );
    let done = m.step(Event::Committed {
        token: 1,
        result: Ok(()),
    });
    assert!(
        done.contains(&Action::SendReloadSignals(vec![libc::SIGHUP], CHILD)),
        "{done:?}"
    );
    assert!(
        !done
            .iter()
            .any(|a| matches!(a, Action::RemoveGeneration { generation } if generation == "g1")),
        "g1 is the proven one: {done:?}"
    );
}

/// A machine running on g1 whose commit of g2 could not switch the view: the
/// record names g2, the view still shows g1; the commit's retry is armed
/// (token 1).
fn view_lagging_g2() -> Machine {
    let mut m = running_on_g1(true);
    m.step(Event::ConfigSettled(snap(Some(2))));
    let g2 = Generation {
        name: "g2".into(),
        snapshot: snap(Some(2)),
    };
    m.step(Event::Staged {
        token: 1,
        result: Ok(g2),
    });
    m.step(Event::Validated { token: 1, ok: true });
    let after = m.step(Event::Committed {
        token: 1,
        result: Err(CommitFailed {
            reason: "Read-only file system".into(),
            recorded: true,
            gone: false,
        }),
    });
    assert!(
        after.contains(&Action::RetryAfter {
            token: 1,
            after: BACKOFF_FIRST
        }),
        "{after:?}"
    );
    m
}

/// The commit (if any) among `actions`: its token, generation, proven.
fn commit_of(actions: &[Action]) -> Option<(u64, String, Option<String>)> {
    actions.iter().find_map(|a| match a {
        Action::Commit {
            token,
            generation,
            proven,
        } => Some((*token, generation.clone(), proven.clone())),
        _ => None,
    })
}

/// After a commit whose view could not follow (the record names g2, the view shows g1),
/// the source goes back to g1's bytes: the commit owed for g2 is moot, so
/// the record goes back to g1 (what the view shows and the child runs),
/// through a tokened commit retried while the disk fails; then g2, which
/// never reached the child, goes. Nothing is told to the child. Before,
/// the retry was dropped and nothing reconciled them: the record kept
/// naming g2 (a restarted manager would show bytes the source no longer
/// holds), the machine kept g1's copy forever.
#[test]
fn after_a_double_fault_the_source_back_on_the_views_bytes_puts_the_record_back() {
    let mut m = view_lagging_g2();
    let back = m.step(Event::ConfigSettled(snap(Some(1))));
    let (token, generation, proven) = commit_of(&back).expect("a commit of what the view shows");
    assert_eq!((generation.as_str(), proven), ("g1", None), "{back:?}");
    let quiet = |actions: &[Action]| {
        actions.iter().all(|a| {
            !matches!(
                a,
                Action::SendReloadSignals(..)
                    | Action::Spawn
                    | Action::DropCandidate { .. }
                    | Action::Signal(..)
            ) && !matches!(a, Action::RemoveGeneration { generation } if generation == "g1")
        })
    };
    assert!(quiet(&back), "{back:?}");
    // The disk still fails: the same commit again, after a delay; g1 stays.
    let failed = m.step(Event::Committed {
        token,
        result: Err(CommitFailed {
            reason: "Read-only file system".into(),
            recorded: false,
            gone: false,
        }),
    });
    assert!(quiet(&failed), "{failed:?}");
    assert!(
        failed.contains(&Action::RetryAfter {
            token,
            after: BACKOFF_FIRST
        }),
        "{failed:?}"
    );
    assert!(!m.stats().last_failed, "the source holds the child's bytes");
    assert_eq!(
        m.step(Event::RetryDue { token }),
        [Action::Commit {
            token,
            generation: "g1".into(),
            proven: None,
        }]
    );
    let done = m.step(Event::Committed {
        token,
        result: Ok(()),
    });
    assert!(quiet(&done), "{done:?}");
    assert!(
        done.contains(&Action::RemoveGeneration {
            generation: "g2".into()
        }),
        "{done:?}"
    );
    assert_eq!(m.last_good.as_deref(), Some("g1"));
    assert_eq!(m.lag, None);
    // Settled: nothing more is owed.
    assert_eq!(m.step(Event::ConfigSettled(snap(Some(1)))), []);
}

/// Found by a hostile test: the record put back to what the view shows
/// (g1) was answered "recorded, the view could not be switched" and taken
/// as agreement. But nothing proved the view showed g1: a commit whose
/// switch failed half way had left `..data` on g2, and the view could not
/// be put back either; once the faults cleared, `..good` named g1 while
/// the child's directory showed g2 for good. The switch to g1 is retried
/// until it takes; the record is the disk's word meanwhile.
#[test]
fn a_record_put_back_whose_view_switch_fails_is_retried_until_it_takes() {
    let mut m = view_lagging_g2();
    let back = m.step(Event::ConfigSettled(snap(Some(1))));
    let (token, generation, _) = commit_of(&back).expect("a commit of what the view shows");
    assert_eq!(generation, "g1");
    let failed = m.step(Event::Committed {
        token,
        result: Err(CommitFailed {
            reason: "File exists".into(),
            recorded: true,
            gone: false,
        }),
    });
    assert!(
        failed.contains(&Action::RetryAfter {
            token,
            after: BACKOFF_FIRST
        }) && failed.contains(&Action::RemoveGeneration {
            generation: "g2".into()
        }),
        "not retried, or g2 kept: {failed:?}"
    );
    assert_eq!(m.last_good.as_deref(), Some("g1"), "the record's word");
    assert_eq!(
        m.promoted(),
        Promoted {
            record: Some("g1".into()),
            view: Some("g1".into())
        }
    );
    assert_eq!(
        m.step(Event::RetryDue { token }),
        [Action::Commit {
            token,
            generation: "g1".into(),
            proven: None,
        }]
    );
    m.step(Event::Committed {
        token,
        result: Ok(()),
    });
    assert_eq!(
        (m.last_good.as_deref(), m.lag.as_deref()),
        (Some("g1"), None)
    );
    assert_eq!(m.step(Event::ConfigSettled(snap(Some(1)))), []);
}

/// Newer bytes pushed while the view lags, and rejected: the child keeps
/// its config (g1's), so the record goes back to g1 too, once the check
/// dropped what was in flight. Before, the rejection left the record on
/// g2 and nothing in flight.
#[test]
fn after_a_double_fault_newer_rejected_bytes_put_the_record_back() {
    let mut m = view_lagging_g2();
    m.step(Event::ConfigSettled(snap(Some(3))));
    let g3 = Generation {
        name: "g3".into(),
        snapshot: snap(Some(3)),
    };
    m.step(Event::Staged {
        token: 2,
        result: Ok(g3),
    });
    let rejected = m.step(Event::Validated {
        token: 2,
        ok: false,
    });
    assert!(
        rejected.contains(&Action::DropCandidate {
            generation: "g3".into()
        }),
        "{rejected:?}"
    );
    let (token, generation, _) = commit_of(&rejected).expect("the record put back");
    assert_eq!(generation, "g1");
    let done = m.step(Event::Committed {
        token,
        result: Ok(()),
    });
    assert!(
        done.contains(&Action::RemoveGeneration {
            generation: "g2".into()
        }),
        "{done:?}"
    );
    assert_eq!(m.last_good.as_deref(), Some("g1"));
}

/// dumb-init's `-r 15:0`: SIGTERM is dropped, neither forwarded nor a
/// shutdown (it was refused at the door, though dumb-init accepts it).
#[test]
fn a_dropped_sigterm_neither_stops_nor_reaches_the_child() {
    let s = Settings {
        map_signal: vec![(libc::SIGTERM, None), (libc::SIGINT, None)],
        ..settings()
    };
    let mut m = running_on(s, files(&[("app.conf", 1)]));
    assert_eq!(m.step(Event::Signal(libc::SIGTERM)), []);
    assert_eq!(m.step(Event::Signal(libc::SIGINT)), []);
    assert_eq!(m.phase, Phase::Running);
}

/// Found by the loop's property: a signal from outside (SIGHUP, the
/// child's reload signal) during a check in place was forwarded while DIR
/// showed the candidate; the child reloaded onto bytes under check (maybe
/// rejected ones). The signal still goes at once, but the candidate is
/// withdrawn first (the view back), and the change is checked again a
/// moment later.
#[test]
fn a_forwarded_signal_never_lets_the_child_read_a_candidate_in_place() {
    let s = Settings {
        promote: true,
        validate: true,
        validate_in_place: true,
        map_signal: vec![(libc::SIGUSR2, Some(libc::SIGHUP)), (libc::SIGWINCH, None)],
        ..settings()
    };
    let mut m = started_up_on_g1(s);
    let g2 = || Generation {
        name: "g2".into(),
        snapshot: snap(Some(2)),
    };
    assert_eq!(
        m.step(Event::ConfigSettled(snap(Some(2)))),
        [Action::Acted, Action::Stage { token: 1 }]
    );
    // Staged, not shown yet: a signal goes as it is, and the candidate is
    // shown for its check only a moment later (the child may be reading
    // its config).
    assert_eq!(
        step_unhushed(&mut m, Event::Signal(libc::SIGHUP)),
        [Action::Signal(libc::SIGHUP, CHILD)]
    );
    let staged = Event::Staged {
        token: 1,
        result: Ok(g2()),
    };
    assert_eq!(m.step(staged), []);
    assert!(matches!(
        hush_over(&mut m)[..],
        [Action::Validate {
            token: 1,
            in_place: true,
            ..
        }]
    ));
    // A signal dropped by --map-signal reaches nobody: the check goes on.
    assert_eq!(m.step(Event::Signal(libc::SIGWINCH)), []);
    // Shown in place: the view goes back first, then the signal, once
    // the world says it is off.
    let off = || Event::Dropped {
        generation: "g2".into(),
        result: Ok(()),
    };
    let withdrawn = step_unhushed(&mut m, Event::Signal(libc::SIGHUP));
    let [
        Action::DropCandidate { .. },
        Action::CancelValidation,
        Action::RetryAfter {
            token: again,
            after,
        },
    ] = withdrawn[..]
    else {
        panic!("{withdrawn:?}");
    };
    assert_eq!(after, Duration::from_secs(1));
    // The signal goes; newer bytes checked in place in the next moment
    // would wait (the child may be reading its config).
    let told = step_unhushed(&mut m, off());
    assert_eq!(told, [Action::Signal(libc::SIGHUP, CHILD)]);
    assert_eq!(hush_over(&mut m), []);
    // The killed check's answer is for nothing now.
    assert_eq!(m.step(Event::Validated { token: 1, ok: true }), []);
    // The change is not lost: staged and checked in place again.
    assert_eq!(
        m.step(Event::RetryDue { token: again }),
        [Action::Stage { token: again }]
    );
    assert!(matches!(
        m.step(Event::Staged {
            token: again,
            result: Ok(g2())
        })[..],
        [Action::Validate {
            token,
            in_place: true,
            ..
        }] if token == again
    ));
    // Whatever signal it is mapped to (here USR2 becomes HUP).
    let withdrawn = step_unhushed(&mut m, Event::Signal(libc::SIGUSR2));
    let [
        Action::DropCandidate { .. },
        Action::CancelValidation,
        Action::RetryAfter { token: gate, after },
    ] = withdrawn[..]
    else {
        panic!("{withdrawn:?}");
    };
    assert_eq!(after, Duration::from_secs(1));
    // Refused: the signal waits (another one with it is kept once), and
    // the gate's retry due meanwhile too.
    let refused = Event::Dropped {
        generation: "g2".into(),
        result: Err("cannot restore DIR: Read-only file system".into()),
    };
    let retry = m.step(refused);
    let [Action::RetryAfter { token, .. }] = retry[..] else {
        panic!("{retry:?}");
    };
    assert_eq!(step_unhushed(&mut m, Event::Signal(libc::SIGHUP)), []);
    assert_eq!(m.step(Event::RetryDue { token: gate }), []);
    assert_eq!(
        m.step(Event::RetryDue { token }),
        [Action::DropCandidate {
            generation: "g2".into()
        }]
    );
    // The signal goes, and the gate's retry with it: staged at once,
    // checked in place a moment after the child was told.
    assert_eq!(
        step_unhushed(&mut m, off()),
        [
            Action::Signal(libc::SIGHUP, CHILD),
            Action::Stage { token: gate }
        ]
    );
    let staged = Event::Staged {
        token: gate,
        result: Ok(g2()),
    };
    assert_eq!(m.step(staged), []);
    assert!(matches!(
        hush_over(&mut m)[..],
        [Action::Validate { token, in_place: true, .. }] if token == gate
    ));
    assert!(matches!(
        m.step(Event::Validated { token: gate, ok: true })[..],
        [Action::Commit { token, .. }] if token == gate
    ));
    // Committing: DIR shows bytes that passed; a signal goes as it is.
    assert_eq!(
        step_unhushed(&mut m, Event::Signal(libc::SIGHUP)),
        [Action::Signal(libc::SIGHUP, CHILD)]
    );
}

/// The machine's own reload signal: a rollback tells the child to reload
/// the proven bytes, and newer bytes pushed while the rollback was under
/// way are not checked in place meanwhile (the child could read them while
/// it acts on the reload): they wait for the rollback, and are staged after
/// the child was told.
#[test]
fn a_rollbacks_reload_never_lets_the_child_read_a_candidate_in_place() {
    let mut m = on_probation();
    m.settings.validate_in_place = true;
    let rollback = fail_probes(&mut m, 3);
    assert!(rollback.contains(&g2_to_g1()), "{rollback:?}");
    assert_eq!(m.step(Event::ConfigSettled(snap(Some(3)))), [Action::Acted]);
    let reload = step_unhushed(&mut m, Event::RolledBack { result: Ok(()) });
    let [Action::SendReloadSignals(..), Action::Stage { token }] = reload[..] else {
        panic!("{reload:?}");
    };
    // Staged, but shown for its check only a moment after the reload
    // signal went (hostile, session 15: the child's HUP re-read, 50 ms
    // after the signal, saw the candidate, then rejected).
    let g3 = Generation {
        name: "g3".into(),
        snapshot: snap(Some(3)),
    };
    let staged = Event::Staged {
        token,
        result: Ok(g3),
    };
    assert_eq!(m.step(staged), []);
    assert_eq!(step_unhushed(&mut m, Event::ReloadSignalsSent), []);
    assert!(
        matches!(
            hush_over(&mut m)[..],
            [Action::Validate { in_place: true, .. }]
        ),
        "the check in place never ran"
    );
}

/// A candidate checked in place is rejected and the disk keeps it on the
/// view: a retry of reload hooks that failed earlier comes due meanwhile.
/// The hooks make the child read its config: they wait until the view is
/// back (review of session 14: they ran, and the child read the rejected
/// bytes).
#[test]
fn a_hooks_retry_waits_for_a_candidate_the_disk_keeps_on_the_view() {
    let s = Settings {
        promote: true,
        validate: true,
        validate_in_place: true,
        reload_hooks: 1,
        ..settings()
    };
    let mut m = started_up_on_g1(s);
    let generation = |n: u64| Generation {
        name: format!("g{n}"),
        snapshot: snap(Some(n)),
    };
    // v2 passes and is committed; its hook fails: retried later.
    m.step(Event::ConfigSettled(snap(Some(2))));
    m.step(Event::Staged {
        token: 1,
        result: Ok(generation(2)),
    });
    m.step(Event::Validated { token: 1, ok: true });
    let hooks = m.step(Event::Committed {
        token: 1,
        result: Ok(()),
    });
    let Some(&Action::RunHooks { token: reload, .. }) =
        hooks.iter().find(|a| matches!(a, Action::RunHooks { .. }))
    else {
        panic!("{hooks:?}");
    };
    let done = Event::HooksDone {
        token: reload,
        failed: vec![0],
    };
    let retry = step_unhushed(&mut m, done);
    assert!(
        matches!(retry[..], [Action::RetryAfter { token, .. }] if token == reload),
        "{retry:?}"
    );
    // v3 is rejected in place; the disk keeps it shown.
    let staged = m.step(Event::ConfigSettled(snap(Some(3))));
    let Some(&Action::Stage { token }) = staged.iter().find(|a| matches!(a, Action::Stage { .. }))
    else {
        panic!("{staged:?}");
    };
    // (Checked in place a moment after the hook answered.)
    m.step(Event::Staged {
        token,
        result: Ok(generation(3)),
    });
    hush_over(&mut m);
    assert_eq!(
        m.step(Event::Validated { token, ok: false }),
        [Action::DropCandidate {
            generation: "g3".into()
        }]
    );
    let refused = m.step(Event::Dropped {
        generation: "g3".into(),
        result: Err("cannot restore DIR: Read-only file system".into()),
    });
    let [Action::RetryAfter { token: again, .. }] = refused[..] else {
        panic!("{refused:?}");
    };
    // The hooks' retry waits; once the view is back, it runs.
    assert_eq!(m.step(Event::RetryDue { token: reload }), []);
    m.step(Event::RetryDue { token: again });
    let off = m.step(Event::Dropped {
        generation: "g3".into(),
        result: Ok(()),
    });
    assert!(
        off.iter()
            .any(|a| matches!(a, Action::RunHooks { token, .. } if *token == reload)),
        "{off:?}"
    );
}

/// Bytes `n` settle, are staged as "gn" (the gate's `token`) and judged
/// `ok` by their check; the check's answer.
fn pushed_and_judged(m: &mut Machine, token: u64, n: u64, ok: bool) -> Vec<Action> {
    pushed_and_staged(m, token, n);
    m.step(Event::Validated { token, ok })
}

/// Bytes `n` settle and are staged as "gn" (the gate's `token`); what
/// that asks for.
fn pushed_and_staged(m: &mut Machine, token: u64, n: u64) -> Vec<Action> {
    m.step(Event::ConfigSettled(snap(Some(n))));
    m.step(Event::Staged {
        token,
        result: Ok(Generation {
            name: format!("g{n}"),
            snapshot: snap(Some(n)),
        }),
    })
}

/// `--promote-to`, `--validate`, `--validate-in-place`.
fn in_place() -> Settings {
    Settings {
        promote: true,
        validate: true,
        validate_in_place: true,
        ..settings()
    }
}

/// Running on g1, checking in place: g3 is rejected and the disk keeps it
/// on the view. The machine, and the token of the removal's retry.
fn g3_rejected_and_kept_shown() -> (Machine, u64) {
    let mut m = started_up_on_g1(in_place());
    pushed_and_judged(&mut m, 1, 3, false);
    let refused = m.step(Event::Dropped {
        generation: "g3".into(),
        result: Err("cannot restore DIR: Read-only file system".into()),
    });
    let [Action::RetryAfter { token: again, .. }] = refused[..] else {
        panic!("{refused:?}");
    };
    (m, again)
}

/// The restart signal while the disk keeps a rejected candidate on the
/// view, the source back on the child's bytes: stopping the child would
/// leave nothing to start (no start while the candidate is shown). The
/// request waits, and restarts the child once the view is back (review of
/// session 14: the child was stopped and none started until the disk
/// healed).
#[test]
fn a_restart_request_waits_for_a_candidate_the_disk_keeps_on_the_view() {
    // The same bytes: the child restarts on them.
    held_restart_restarts_once_the_view_is_back(1);
}

/// `g3_rejected_and_kept_shown`, the restart signal with the source on
/// bytes `source`: held (the child keeps running) until the view is back,
/// then the child is restarted.
fn held_restart_restarts_once_the_view_is_back(source: u64) {
    let (mut m, again) = g3_rejected_and_kept_shown();
    assert_eq!(m.step(Event::RestartRequested(snap(Some(source)))), []);
    assert_eq!(m.phase, Phase::Running);
    m.step(Event::RetryDue { token: again });
    let off = m.step(Event::Dropped {
        generation: "g3".into(),
        result: Ok(()),
    });
    let Some(&Action::Stage { token }) = off.iter().find(|a| matches!(a, Action::Stage { .. }))
    else {
        panic!("{off:?}");
    };
    let restart = m.step(Event::Staged {
        token,
        result: Ok(Generation {
            name: "g4".into(),
            snapshot: snap(Some(source)),
        }),
    });
    assert!(
        restart.contains(&Action::Signal(libc::SIGTERM, CHILD)),
        "{restart:?}"
    );
}

/// A held SIGHUP goes once the view is back: bytes that settle in the next
/// moment are staged, and shown for their check in place only a moment
/// later, not while the child may be reading its config (hostile, session
/// 14: the child's HUP re-read saw the next unchecked candidate).
#[test]
fn bytes_settling_just_after_a_held_signal_went_wait_a_moment() {
    let (mut m, again) = g3_rejected_and_kept_shown();
    assert_eq!(step_unhushed(&mut m, Event::Signal(libc::SIGHUP)), []);
    m.step(Event::RetryDue { token: again });
    let off = Event::Dropped {
        generation: "g3".into(),
        result: Ok(()),
    };
    assert_eq!(
        step_unhushed(&mut m, off),
        [Action::Signal(libc::SIGHUP, CHILD)]
    );
    let push = m.step(Event::ConfigSettled(snap(Some(5))));
    let [Action::Acted, Action::Stage { token }] = push[..] else {
        panic!("{push:?}");
    };
    let staged = Event::Staged {
        token,
        result: Ok(Generation {
            name: "g5".into(),
            snapshot: snap(Some(5)),
        }),
    };
    assert_eq!(m.step(staged), []);
    assert!(matches!(
        hush_over(&mut m)[..],
        [Action::Validate { in_place: true, .. }]
    ));
}

/// The check of bytes `n` in flight (`token`) passes; committed, the child
/// is restarted onto them.
fn passed_and_restarted_onto(m: &mut Machine, token: u64, n: u64) {
    m.step(Event::Validated { token, ok: true });
    m.step(Event::Committed {
        token,
        result: Ok(()),
    });
    drained(m, Status::Signaled(libc::SIGTERM));
    m.step(Event::Candidate(snap(Some(n))));
    m.step(Event::Spawned);
    assert_eq!(m.child_bytes(), &snap(Some(n)));
}

/// `on_probation`, but the child is restarted onto new bytes (no reload
/// signal): g2 runs on probation, bytes 3 staged as g3 and checked (token
/// 2).
fn restarted_on_probation_checking_g3() -> Machine {
    let s = Settings {
        promote: true,
        validate: true,
        rollback_window: Some(Duration::from_secs(60)),
        ready_interval: Some(Duration::from_secs(1)),
        ..settings()
    };
    let g = |n: u64| Generation {
        name: format!("g{n}"),
        snapshot: snap(Some(n)),
    };
    let (mut m, _) = Machine::new(s, Some(g(1)), None, None);
    look_and_start(&mut m, snap(Some(1)));
    m.step(Event::ConfigSettled(snap(Some(2))));
    m.step(Event::Staged {
        token: 1,
        result: Ok(g(2)),
    });
    passed_and_restarted_onto(&mut m, 1, 2);
    m.step(Event::ConfigSettled(snap(Some(3))));
    let check = m.step(Event::Staged {
        token: 2,
        result: Ok(g(3)),
    });
    assert!(matches!(check[..], [Action::Validate { token: 2, .. }]));
    m
}

/// Hostile, session 15: the probe rolls g2 back (a restart) while bytes 3
/// are checked. The restart's look found bytes 3 "changed since approved"
/// and checked them again with no child running, then started the child
/// on them, never on g1. The child lands on g1 first, at once, as after a
/// crash; bytes 3 are judged once it runs.
#[test]
fn a_probe_rollback_that_restarts_lands_on_the_proven_generation_first() {
    let mut m = restarted_on_probation_checking_g3();
    assert!(fail_probes(&mut m, 3).contains(&g2_to_g1()));
    let restart = m.step(Event::RolledBack { result: Ok(()) });
    let started = restarted_onto_g1_whatever_the_source(&mut m, &restart);
    assert!(
        matches!(started[..], [.., Action::Stage { .. }]),
        "bytes 3 are staged once the child runs on g1: {started:?}"
    );
}

/// Found by a hostile pass: bytes 3 rejected by their check while g2 was on
/// probation, then g2 rolled back with a restart. The rollback's rejection
/// replaced the check's, so the restart checked bytes 3 again before any
/// child ran, and the child was down for the check's length. Both
/// rejections stand now: the child starts on g1 at once.
#[test]
fn a_rollback_keeps_a_check_s_rejection_of_newer_bytes() {
    let mut m = restarted_on_probation_checking_g3();
    m.step(Event::Validated {
        token: 2,
        ok: false,
    });
    assert!(fail_probes(&mut m, 3).contains(&g2_to_g1()));
    // The source still holds bytes 3: rejected, never checked again.
    let restart = m.step(Event::RolledBack { result: Ok(()) });
    restarted_onto_g1_whatever_the_source(&mut m, &restart);
    // Bytes 2 (rolled back) stay rejected too.
    assert_eq!(m.step(Event::ConfigSettled(snap(Some(2)))), []);
}

/// Review: bytes waiting for a retry (their check could not start) and
/// superseded by newer ones left their wait armed: a record of work that
/// no longer stood, until it fired and did nothing. It is cancelled now.
#[test]
fn a_retry_superseded_by_newer_bytes_is_cancelled() {
    let mut m = running_on_g1(true);
    pushed_and_staged(&mut m, 1, 2);
    let failed = m.step(Event::CannotCheck {
        token: 1,
        reason: "EMFILE".into(),
    });
    let requests = m.requests(failed);
    let Some(waits) = requests.iter().find_map(|r| match r {
        Request::Start {
            token,
            op: Op::Wait(_),
        } => Some(*token),
        _ => None,
    }) else {
        panic!("{requests:?}")
    };
    let newer = m.step(Event::ConfigSettled(snap(Some(3))));
    assert!(
        newer.contains(&Action::CancelWait { token: 1 }),
        "{newer:?}"
    );
    let requests = m.requests(newer);
    assert!(
        requests.contains(&Request::Cancel { token: waits }),
        "{requests:?}"
    );
}

/// Hostile, session 15: bytes the check rejected, the source put back on
/// the child's bytes (the usual fix), then the same bytes pushed again
/// (after fixing what made them fail): they were ignored without a word,
/// and the gauge said the last change took. The source changed again: they
/// are checked again.
#[test]
fn bytes_the_check_rejected_are_checked_again_after_the_source_went_back() {
    let mut m = running_on_g1(true);
    pushed_and_judged(&mut m, 1, 2, false);
    assert!(m.stats().last_failed);
    // Put back: nothing is failing.
    m.step(Event::ConfigSettled(snap(Some(1))));
    assert!(!m.stats().last_failed);
    let again = m.step(Event::ConfigSettled(snap(Some(2))));
    assert!(
        again.iter().any(|a| matches!(a, Action::Stage { .. })),
        "{again:?}"
    );
}

/// The same after a rollback: the bytes rolled back stay rejected until
/// newer ones are promoted (as `..rejected` on disk says, for a restarted
/// manager too), but pushing them again is no success: the gauge says the
/// newest bytes did not reach the child.
#[test]
fn bytes_rolled_back_pushed_again_are_refused_and_said() {
    let mut m = rolled_back_from_g3();
    m.step(Event::ConfigSettled(snap(Some(1))));
    assert!(!m.stats().last_failed, "put back: nothing is failing");
    assert_eq!(m.step(Event::ConfigSettled(snap(Some(3)))), []);
    assert!(
        m.stats().last_failed,
        "the newest bytes never reached the child"
    );
}

/// Hostile, session 15: with `--promote-to` the child reads DIR, which
/// holds the last good bytes: the restart signal was refused while the
/// source held rejected bytes, though a crash restarted the child on DIR.
/// It restarts the child on the last good generation now.
#[test]
fn the_restart_signal_restarts_on_the_last_good_generation_whatever_the_source() {
    let mut m = rolled_back_from_g3();
    let restart = m.step(Event::RestartRequested(snap(Some(3))));
    restarted_onto_g1_whatever_the_source(&mut m, &restart);
}

/// `stop` stops the child; its restart lands on g1 though the source holds
/// bytes 3. What the start asks for.
fn restarted_onto_g1_whatever_the_source(m: &mut Machine, stop: &[Action]) -> Vec<Action> {
    assert!(
        stop.contains(&Action::Signal(libc::SIGTERM, CHILD)),
        "{stop:?}"
    );
    assert_eq!(
        drained(m, Status::Signaled(libc::SIGTERM)),
        [Action::StopDeadline(None), Action::Fingerprint]
    );
    assert_eq!(m.step(Event::Candidate(snap(Some(3)))), [Action::Spawn]);
    let started = m.step(Event::Spawned);
    assert_eq!(m.child_bytes(), &snap(Some(1)));
    started
}

/// `restarted_on_probation_checking_g3`, g3 passed and ran, and was
/// rolled back (probe failures) to g1; the child runs on g1 again, the
/// source still holds bytes 3.
fn rolled_back_from_g3() -> Machine {
    let mut m = restarted_on_probation_checking_g3();
    passed_and_restarted_onto(&mut m, 2, 3);
    let rollback = fail_probes(&mut m, 3);
    assert!(
        rollback.contains(&Action::RollBack {
            to: "g1".into(),
            from: "g3".into()
        }),
        "{rollback:?}"
    );
    m.step(Event::RolledBack { result: Ok(()) });
    drained(&mut m, Status::Signaled(libc::SIGTERM));
    m.step(Event::Candidate(snap(Some(3))));
    m.step(Event::Spawned);
    assert_eq!(m.child_bytes(), &snap(Some(1)));
    m
}

/// Review, session 15: `on_probation` (reload by HUP) rolled back while
/// bytes 3 are pushed; the child turns out to lack its HUP handler, so the
/// reload becomes a restart. That start checked bytes 3 with no child
/// running and started on them, never on g1. It lands on g1 now.
#[test]
fn a_rollbacks_reload_that_becomes_a_restart_lands_on_the_proven_generation() {
    let mut m = checking_g3_on_probation();
    assert!(fail_probes(&mut m, 3).contains(&g2_to_g1()));
    let reload = m.step(Event::RolledBack { result: Ok(()) });
    assert!(
        reload
            .iter()
            .any(|a| matches!(a, Action::SendReloadSignals(..))),
        "{reload:?}"
    );
    let restart = m.step(Event::ReloadSignalUnhandled(libc::SIGHUP, false));
    restarted_onto_g1_whatever_the_source(&mut m, &restart);
}

/// Review, session 15: the restart signal held while the disk keeps a
/// rejected candidate on the view, the source still on those bytes: once
/// the view is back the bytes staged again are found rejected, and the
/// restart was dropped. It restarts the child on g1 now.
#[test]
fn a_held_restart_request_on_rejected_bytes_restarts_on_the_last_good_generation() {
    held_restart_restarts_once_the_view_is_back(3);
}

/// Review, session 15: a child told to read its config every moment (a
/// reload signal from a sidecar every 800 ms) kept a check in place off
/// for ever. It is put off HUSHES_MAX times at most; a signal that cannot
/// make the child read its config (WINCH, CONT) puts nothing off.
#[test]
fn a_storm_of_reload_signals_puts_a_check_in_place_off_for_a_while_only() {
    let mut m = started_up_on_g1(in_place());
    m.step(Event::ConfigSettled(snap(Some(2))));
    assert_eq!(
        m.step(Event::Signal(libc::SIGWINCH)),
        [Action::Signal(libc::SIGWINCH, CHILD)],
        "no wait for a signal that reads nothing"
    );
    step_unhushed(&mut m, Event::Signal(libc::SIGHUP));
    let staged = Event::Staged {
        token: 1,
        result: Ok(Generation {
            name: "g2".into(),
            snapshot: snap(Some(2)),
        }),
    };
    assert_eq!(m.step(staged), []);
    let mut waits = 0;
    loop {
        let told = m.step(Event::Signal(libc::SIGHUP));
        if !told.iter().any(|a| matches!(a, Action::RetryAfter { .. })) {
            break;
        }
        waits += 1;
        assert!(waits < 100, "put off for ever");
    }
    assert_eq!(waits, gate::HUSHES_MAX - 1);
    assert!(matches!(
        hush_over(&mut m)[..],
        [Action::Validate { in_place: true, .. }]
    ));
}
