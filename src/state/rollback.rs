//! After the check: `--rollback-window` and the readiness probe. A config
//! can pass `nginx -t` and still break the app (a port another process
//! holds, a certificate the clients refuse).
//!
//! A generation's life (`--promote-to`), as the machine holds it:
//!
//! - *candidate*, *checking*: in flight through the gate (`Pending`);
//!   *rejected* there (`rejected`: those bytes are not checked again until
//!   the source went back to the child's bytes, or other bytes were judged);
//! - *on probation*: committed and shown (`last_good`, with `probation` set):
//!   for the window after its bytes reach the child, the child exiting on
//!   its own or the readiness probe failing `ready_failures` times in a row
//!   rolls back to the proven generation, and the new bytes are *rejected*
//!   (`rolled_back_from`) until newer bytes are committed;
//! - *proven* (`proven`): the last generation that ran through its window
//!   (and, with a probe, was ready once), or, before any did, the first one
//!   promoted; without a window every committed generation is proven at
//!   once. The only one a rollback lands on. It is recorded on disk while a
//!   newer one is on probation and is never forgotten meanwhile, however
//!   many pushes come: each newer push replaces the one on probation, not
//!   the proven one.

use super::*;

/// The shown generation is on probation (the proven one is its rollback
/// target).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Probation {
    /// The child has the new bytes (started on them, or reloaded): the
    /// window runs. Before that, nothing the child does is their fault.
    pub(super) running: bool,
    /// The window ran out before the child was ever ready: judged on until
    /// it is (then proven) or fails (then rolled back).
    pub(super) overdue: bool,
}

/// A rollback asked of the world, not yet answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Rolling {
    previous: Generation,
    bad: String,
    why: String,
    /// Asked for by the child's exit: the stop under way restarts.
    on_exit: bool,
    /// Newer bytes that were in flight (staging, checked, waiting for a
    /// retry) and were dropped for the rollback, or that settled while it
    /// was retried: judged again after it; and a start that waits for it
    /// (the stop after the child's exit finished while it was retried: the
    /// child must not start on the bad bytes).
    waits: Waits,
    /// The record moved back but the view could not follow: the same
    /// rollback is asked again when the wait with this token runs out.
    retry_token: Option<u64>,
    /// The next such wait.
    retry: Duration,
}

/// The readiness probe's recent results, for the running child.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Readiness {
    /// The last result since the child started (None: none yet).
    pub(super) last: Option<bool>,
    /// Failures in a row.
    pub(super) failures: u32,
    /// Of those, the ones within a reload's start period: `/readyz` tells
    /// them, a rollback does not count them.
    pub(super) excused: u32,
    /// The child passed a probe in its current start period (since its
    /// start, or since the reload that began it): that period is over.
    pub(super) ever: bool,
    /// The current start period is a reload's, not the child's start's.
    pub(super) reloaded: bool,
    /// A reload onto new bytes began a start period whose deadline has not
    /// run out yet (a start's period is judged by the child's age instead).
    pub(super) reloading: bool,
}

impl Machine {
    /// The proven generation a commit of `candidate` keeps on record
    /// because the candidate goes on probation (None: it is proven at once:
    /// no window, nothing proven yet, or the proven bytes themselves).
    pub(super) fn kept_while_on_probation(&self, candidate: &Snapshot) -> Option<String> {
        self.settings.rollback_window?;
        self.proven
            .as_ref()
            .filter(|g| g.snapshot != *candidate)
            .map(|g| g.name.clone())
    }

    /// A generation was committed and shown: on probation, with the proven
    /// one kept to go back to; or proven at once (no window, or the first).
    /// A generation that is neither shown nor proven any more is forgotten.
    pub(super) fn committed(&mut self, new: Generation) -> Vec<Action> {
        let old_last_good = self.last_good.replace(new.name.clone());
        let mut moot: Vec<String> = old_last_good.into_iter().collect();
        let mut actions = vec![];
        if self.kept_while_on_probation(&new.snapshot).is_some() {
            self.probation = Some(Probation::default());
            actions.push(Action::ProbationDeadline(None));
        } else {
            if self.settings.rollback_window.is_some() && self.proven.is_none() {
                info!(
                    "No proven generation to roll back to: generation {} is kept whatever the child does",
                    new.name
                );
            }
            if self.probation.take().is_some() {
                actions.push(Action::ProbationDeadline(None));
            }
            moot.extend(self.proven.replace(new).map(|g| g.name));
        }
        moot.sort();
        moot.dedup();
        for generation in moot {
            if !self.is_kept(&generation) {
                actions.push(Action::RemoveGeneration { generation });
            }
        }
        actions
    }

    /// What the child's directory holds, as the machine knows it: the
    /// world is told this with every commit and drop instead of keeping a
    /// copy of its own (read when the request is performed, so an answer
    /// taken at once before it counts).
    pub fn promoted(&self) -> Promoted {
        Promoted {
            record: self.last_good.clone(),
            view: self.lag.clone().or_else(|| self.last_good.clone()),
        }
    }

    /// Recorded as the last good one, proven, rejected by a rollback (as
    /// `..rejected` says until newer bytes are promoted), or what the
    /// child's view still shows while it lags the record: a generation
    /// that stays.
    pub(super) fn is_kept(&self, generation: &str) -> bool {
        let named = |g: &Option<Generation>| g.as_ref().is_some_and(|g| g.name == generation);
        self.last_good.as_deref() == Some(generation)
            || self.lag.as_deref() == Some(generation)
            || named(&self.proven)
            || named(&self.rolled_back_from)
    }

    /// The shown generation ran through its probation: it is the proven one
    /// now, and the one before it goes.
    pub(super) fn prove(&mut self) -> Vec<Action> {
        // The record names bytes that never reached the child (its view
        // lags): what ran is not what would be proven. Judged once the
        // view and the record agree.
        if self.lag.is_some() {
            return vec![];
        }
        self.probation = None;
        let Some(name) = self.last_good.clone() else {
            return vec![];
        };
        let snapshot = self.approved.clone().unwrap_or_default();
        let old = self.proven.replace(Generation {
            name: name.clone(),
            snapshot,
        });
        debug!("Generation {name} is the proven one now");
        let mut actions = vec![
            Action::ProbationDeadline(None),
            Action::Prove { generation: name },
        ];
        if let Some(old) = old.map(|g| g.name).filter(|g| !self.is_kept(g)) {
            actions.push(Action::RemoveGeneration { generation: old });
        }
        actions
    }

    /// The child now has the new bytes (`reloaded`: by a reload, not a
    /// start): the window starts.
    pub(super) fn child_took_new_bytes(&mut self, reloaded: bool) -> Vec<Action> {
        // The shown generation is recorded but the view lags (a commit
        // whose view could not follow): the child has the older bytes, and
        // a window must not judge them for the new ones.
        if self.lag.is_some() {
            return vec![];
        }
        match (self.probation.as_mut(), self.settings.rollback_window) {
            (Some(p), Some(window)) if !p.running => {
                p.running = true;
                // Only failures on the new bytes count.
                self.ready.failures = 0;
                self.ready.excused = 0;
                let mut actions = vec![Action::ProbationDeadline(Some(window))];
                if reloaded {
                    actions.extend(self.reload_start_period());
                }
                actions
            }
            _ => vec![],
        }
    }

    /// A reload brought new bytes on probation to a child that keeps
    /// running: like a start, it may leave the child unready for a while
    /// (a server re-reading a big config, a JVM re-initialising), so it
    /// begins a new start period. Its failures count once it is ready
    /// again, or once `--ready-start-period` ran out without that. The
    /// period gets its own number: a probe started before the reload (it
    /// may have seen the old bytes) or an older start-up deadline must
    /// neither end it nor count in it.
    fn reload_start_period(&mut self) -> Vec<Action> {
        if self.settings.ready_interval.is_none() {
            return vec![];
        }
        self.period += 1;
        // Ready on the old bytes says nothing of the new ones.
        self.ready.ever = false;
        self.ready.reloaded = true;
        let after = self.settings.ready_start_period;
        self.ready.reloading = !after.is_zero();
        // A start's period still running (`--validate-in-place`) ends with
        // this deadline now: the older one is stale under the new number.
        if !self.ready.reloading && !self.starting_up {
            return vec![];
        }
        debug!("The reload begins a new start period ({after:?})");
        vec![Action::StartUpDeadline {
            child: self.period,
            after,
        }]
    }

    /// The current start period ran out (`StartedUp`): a
    /// reloaded child not ready again by now is judged from here on; a
    /// check in place held back for a starting child may start.
    pub(super) fn period_over(&mut self) -> Vec<Action> {
        if std::mem::take(&mut self.ready.reloading) && !self.ready.ever {
            info!(
                "The reloaded child was not ready again within --ready-start-period ({:?}): its failed probes count from now",
                self.settings.ready_start_period
            );
            // Those before are excused: only failures from now count.
            self.ready.excused = self.ready.failures;
        }
        self.started_up()
    }

    /// Is the window running?
    fn on_probation(&self) -> bool {
        self.probation.as_ref().is_some_and(|p| p.running)
    }

    /// The window passed with the child up: the new generation is proven,
    /// unless a probe never saw the child ready (then it is judged on).
    pub(super) fn on_probation_over(&mut self) -> Vec<Action> {
        // With the view behind the record, the window ran on older bytes
        // than the record names: nothing to prove yet (see `prove`).
        if !self.on_probation() || self.lag.is_some() {
            return vec![];
        }
        if self.settings.ready_interval.is_some() && !self.ready.ever {
            if let Some(p) = self.probation.as_mut().filter(|p| !p.overdue) {
                p.overdue = true;
                info!(
                    "--rollback-window passed, but the child was never ready: generation {} stays on probation until it is",
                    self.last_good.as_deref().unwrap_or("?")
                );
            }
            return vec![];
        }
        info!(
            "Generation {} held for --rollback-window: it is the proven one now",
            self.last_good.as_deref().unwrap_or("?")
        );
        self.prove()
    }

    /// A readiness result for the current start period, `ran_for` after the
    /// child's start (a probe of an earlier one, before a restart or a
    /// reload, was cancelled as it began). One that comes outside
    /// `Phase::Running` judges nobody; failures of a child still starting
    /// count only once it was ready, or once `--ready-start-period` is over
    /// (from its start, or from the reload that began the period).
    pub(super) fn on_probed(&mut self, ok: bool, ran_for: Duration) -> Vec<Action> {
        if self.phase != Phase::Running {
            debug!("Dropping a readiness answer: the child is not running");
            return vec![];
        }
        let was = self.ready.last;
        if ok {
            self.ready.last = Some(true);
            if was == Some(false) {
                info!("Readiness probe passed again");
            }
            self.ready.failures = 0;
            self.ready.excused = 0;
            self.ready.ever = true;
            self.ready.reloading = false;
            let mut actions = self.started_up();
            if self.probation.as_ref().is_some_and(|p| p.overdue) && self.lag.is_none() {
                info!(
                    "The child is ready, after its --rollback-window: its generation is the proven one now"
                );
                actions.extend(self.prove());
            }
            return actions;
        }
        // The start's own period, judged by the child's age, unless a
        // reload began another since (which ends no sooner).
        if !self.ready.ever && !self.ready.reloaded && ran_for < self.settings.ready_start_period {
            debug!(
                "Readiness probe failed {ran_for:?} after the start (within --ready-start-period {:?}: not counted)",
                self.settings.ready_start_period
            );
            return vec![];
        }
        self.ready.last = Some(false);
        self.ready.failures += 1;
        if self.ready.reloading && !self.ready.ever {
            self.ready.excused += 1;
            warn!(
                "Readiness probe failed ({} in a row; within --ready-start-period after a reload: not counted)",
                self.ready.failures
            );
            return vec![];
        }
        let counted = self.ready.failures - self.ready.excused;
        warn!("Readiness probe failed ({} in a row)", self.ready.failures);
        if counted < self.settings.ready_failures || !self.on_probation() {
            return vec![];
        }
        let why = format!("the readiness probe failed {counted} times in a row");
        self.roll_back(why, false)
    }

    /// On probation, the child exiting on its own is the new bytes' fault:
    /// a rollback is asked for (the next child then starts on the proven
    /// generation, if the rollback takes); else nothing.
    pub(super) fn roll_back_on_exit(&mut self, status: Status) -> Vec<Action> {
        // A rollback already under way (retried): the next child is its,
        // whatever --restart says, as if this exit had asked for it.
        if let Some(r) = self.rolling.as_mut() {
            r.on_exit = true;
            return vec![];
        }
        if !self.on_probation() {
            return vec![];
        }
        self.roll_back(format!("the child exited with {status}"), true)
    }

    /// Asks the world to put the proven generation back. Whatever is in
    /// flight goes first: a candidate checked in place would otherwise lose
    /// its view under the check (and pass on bytes it never saw). The
    /// machine believes the rollback only once the world says it took.
    fn roll_back(&mut self, why: String, on_exit: bool) -> Vec<Action> {
        let Some(previous) = self.proven.clone().filter(|_| self.on_probation()) else {
            return vec![];
        };
        self.probation = None;
        // Nothing is on probation any more: no failure is excused for it.
        self.ready.reloading = false;
        // The bytes the child ran: what the view shows (a newer push the
        // record names may not have reached it yet).
        let bad = self
            .lag
            .clone()
            .or_else(|| self.last_good.clone())
            .unwrap_or_default();
        let newer = self.pending.as_ref().map(|p| p.snapshot.clone());
        let mut actions = self.cancel_pending();
        actions.push(Action::ProbationDeadline(None));
        actions.push(Action::RollBack {
            to: previous.name.clone(),
            from: bad.clone(),
        });
        self.rolling = Some(Rolling {
            previous,
            bad,
            why,
            on_exit,
            waits: Waits {
                newer,
                ..Waits::default()
            },
            retry_token: None,
            retry: BACKOFF_FIRST,
        });
        actions
    }

    /// A rollback is under way (asked, or retried): nothing new goes
    /// through the gate meanwhile (a commit would race the rollback's
    /// record), and no child starts (its directory may still show the bad
    /// bytes). Bytes that settle meanwhile are judged after it; a start
    /// waits for it. True when `now` (or the start) was held.
    pub(super) fn held_for_rollback(&mut self, now: Option<&Snapshot>, restart: bool) -> bool {
        let Some(r) = self.rolling.as_mut() else {
            return false;
        };
        let what = r.waits.hold(now, restart, Action::Fingerprint);
        info!("A rollback is under way: {what} once it is done");
        true
    }

    /// The wait before a rollback is asked again ran out (`token`).
    pub(super) fn on_rollback_retry_due(&mut self, token: u64) -> Option<Vec<Action>> {
        let r = self
            .rolling
            .as_mut()
            .filter(|r| r.retry_token == Some(token))?;
        r.retry_token = None;
        info!("Retrying the rollback to generation {}", r.previous.name);
        Some(vec![Action::RollBack {
            to: r.previous.name.clone(),
            from: r.bad.clone(),
        }])
    }

    /// The world's answer to `RollBack`.
    pub(super) fn on_rolled_back(&mut self, result: Result<(), CommitFailed>) -> Vec<Action> {
        let Some(mut r) = self.rolling.take() else {
            return vec![];
        };
        match result {
            // The disk refused a write (full, read-only, a name taken): the
            // same rollback again, with backoff, until it takes. Meanwhile
            // the bad bytes stay where the child reads them: nothing new is
            // promoted, no child starts. With `recorded`, the record names
            // the proven generation already (only the view is behind): the
            // disk's word for it (a restarted manager shows that one).
            Err(CommitFailed {
                reason,
                recorded,
                gone: false,
            }) => {
                let mut actions = match recorded {
                    true => self.record_moved_back(&r),
                    false => vec![],
                };
                self.lag = recorded.then(|| r.bad.clone()).or(self.lag.take());
                let (token, after) = (self.next_token(), r.retry);
                match recorded {
                    true => error!(
                        "Within --rollback-window {}: generation {} is recorded again, but the child's directory still shows {} ({reason}); retrying in {after:?}",
                        r.why, r.previous.name, r.bad
                    ),
                    false => error!(
                        "Within --rollback-window {}, but generation {} cannot be restored yet ({reason}): no child starts on {} meanwhile; retrying in {after:?}",
                        r.why, r.previous.name, r.bad
                    ),
                }
                r.retry = (after * 2).min(BACKOFF_MAX);
                r.retry_token = Some(token);
                self.rolling = Some(r);
                actions.push(Action::RetryAfter { token, after });
                return actions;
            }
            // The proven generation is gone (removed by hand): nothing to go
            // back to; the records stay as they were. It is forgotten, or
            // every later commit would record it as the one to go back to
            // (a record naming nothing) and remove the one that serves.
            Err(CommitFailed { reason, .. }) => {
                error!(
                    "Within --rollback-window {}, but generation {} cannot be restored ({reason}): keeping {}",
                    r.why, r.previous.name, r.bad
                );
                if self
                    .proven
                    .as_ref()
                    .is_some_and(|p| p.name == r.previous.name)
                {
                    self.proven = None;
                }
                let mut actions = vec![];
                // The child's exit goes to the restart policy, as without
                // the window; a start that waited goes on.
                match &mut self.phase {
                    Phase::Stopping { after, .. } if r.on_exit && *after == AfterStop::Restart => {
                        *after = AfterStop::ByPolicy;
                    }
                    Phase::Starting if r.waits.start.is_some() => actions.push(Action::Fingerprint),
                    _ => {}
                }
                actions.extend(self.judge_again(r.waits.newer, r.waits.restart));
                return actions;
            }
            Ok(()) => {}
        }
        error!(
            "Within --rollback-window {}: rolled back from generation {} to {} (the new config stays rejected until newer bytes are promoted)",
            r.why, r.bad, r.previous.name
        );
        // The record and the view both name it now.
        let mut forget = self.record_moved_back(&r);
        // A candidate the disk kept on the view is off it now, and the disk
        // takes writes again: its removal is asked at once, not at the end
        // of its backoff.
        forget.extend(self.withdraw_again_now());
        self.lag = None;
        let bad = Generation {
            name: r.bad.clone(),
            snapshot: self
                .approved
                .replace(r.previous.snapshot.clone())
                .unwrap_or_default(),
        };
        self.stats.rollbacks += 1;
        self.failed();
        // `..rejected` names the bad one now: the one it named before goes.
        // A check's rejection of newer bytes stands beside it.
        forget.extend(
            self.rolled_back_from
                .replace(bad)
                .map(|g| g.name)
                .filter(|g| *g != r.bad && !self.is_kept(g))
                .map(|generation| Action::RemoveGeneration { generation }),
        );
        if r.on_exit || self.phase != Phase::Running {
            // The next start (the stop under way, a backoff, or one that
            // waited for this) lands on what DIR shows now, the proven
            // generation, whatever the source holds by then
            // (`on_candidate`); newer bytes are judged once it runs.
            self.after_rollback = true;
            if r.waits.start.is_some() && self.phase == Phase::Starting {
                forget.push(Action::Fingerprint);
            }
            return forget;
        }
        forget.extend(self.back_onto_last_good());
        // Told by a restart: its start lands on the proven generation, as
        // after an exit (newer bytes are judged once it runs); by a reload:
        // what was in flight goes through the gate now.
        // A reload by signal may still turn into a restart (the child lacks
        // the handler): until the signals went, that start lands there too.
        let signalled = (forget.iter()).any(|a| matches!(a, Action::SendReloadSignals(..)));
        match self.phase {
            Phase::Stopping { .. } => self.after_rollback = true,
            _ => {
                self.after_rollback = signalled;
                forget.extend(self.judge_again(r.waits.newer, r.waits.restart));
            }
        }
        forget
    }

    /// The record names the proven generation again: the one it named
    /// before (a newer push whose view never followed, not the bad bytes
    /// the child ran) goes.
    fn record_moved_back(&mut self, r: &Rolling) -> Vec<Action> {
        self.last_good
            .replace(r.previous.name.clone())
            .filter(|g| *g != r.bad && !self.is_kept(g))
            .map(|generation| Action::RemoveGeneration { generation })
            .into_iter()
            .collect()
    }

    /// Bytes that were in flight when the rollback dropped them: nothing
    /// else would bring them back (no new event comes for bytes already
    /// settled), so they go through the gate again, unless rejected
    /// (`restart`: asked for by the restart signal, a pass restarts).
    pub(super) fn judge_again(&mut self, newer: Option<Snapshot>, restart: bool) -> Vec<Action> {
        match newer {
            Some(now) if restart && self.is_rejected(&now) => self.restart_on_last_good(),
            Some(now)
                if self.phase == Phase::Running
                    && self.pending.is_none()
                    && !self.is_rejected(&now)
                    && !self.is_approved(&now) =>
            {
                info!("Checking again the config that was in flight when the rollback began");
                self.begin(now, restart)
            }
            _ => vec![],
        }
    }

    /// The child is told of the last good bytes as it was of the bad ones:
    /// reloaded, or restarted, as the files that differ ask.
    fn back_onto_last_good(&mut self) -> Vec<Action> {
        let good = self.approved.clone().unwrap_or_default();
        let mut differ = fingerprint::changes(&self.child_bytes, &good);
        if differ.is_empty() {
            // Only files gone: tell the child of every one it has.
            differ = fingerprint::changes(&Snapshot::new(), &good);
        }
        let differ = differ.into_iter().map(|c| c.path).collect();
        self.deliver(good, differ, "Rolled back")
    }

    /// For `/readyz`: Ok while the child runs, is not being stopped,
    /// restarted or backed off, and (with a probe) its last result passed;
    /// else why not, in one line.
    pub fn readiness(&self) -> Result<(), String> {
        match self.phase {
            Phase::Running => {}
            Phase::Starting | Phase::CheckingBeforeStart => {
                return Err("the child is starting".into());
            }
            Phase::AwaitingFix => return Err("no child: the config was rejected".into()),
            Phase::Delaying | Phase::Stopping { .. } => {
                return Err("the child is being stopped".into());
            }
            Phase::Backoff { .. } => return Err("restart backoff".into()),
            Phase::Done => return Err("exiting".into()),
        }
        if self.settings.ready_interval.is_none() {
            return Ok(());
        }
        match self.ready.last {
            Some(true) => Ok(()),
            Some(false) => Err(format!(
                "the readiness probe failed ({} in a row)",
                self.ready.failures
            )),
            None => Err("the readiness probe has not passed yet".into()),
        }
    }
}
