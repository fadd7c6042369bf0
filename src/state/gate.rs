//! The config gate: the one config in flight on its way to the child.
//! Every start and every settled change goes through here when `--validate`
//! or `--promote-to` is on: staged (a hidden copy in the child's directory,
//! whose fingerprint is exactly what is judged), checked, committed (the
//! durable record names it, then the child's view switches), and only then
//! acted on. Each step is an action carrying the token and the generation it
//! is for; the world answers with the same token, so a late answer for a
//! superseded config is recognised and its candidate discarded.

use super::*;

/// Why no child starts on the source's bytes, for the log.
const REJECTED_SOURCE: &str =
    "The config source holds rejected bytes (by --validate, or rolled back)";

/// How many times in a row a check in place is put off for a child told
/// something again before it starts anyway (each puts it off a second).
pub(super) const HUSHES_MAX: u32 = 30;

/// Where the config in flight is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// `Stage` sent; its answer not yet in.
    Staging,
    /// The check runs.
    Checking,
    /// `Commit` sent; its answer not yet in.
    Committing,
    /// Waits for `RetryAfter` (staging, committing or the check could not
    /// start; or a candidate withdrawn from the view, staged again after).
    Waiting,
    /// That retry came due while a candidate is being taken off the
    /// child's view: it runs once it is off (no wait is armed).
    Due,
    /// Staged, its check in place waits while the child may be reading its
    /// config (`child_may_read`).
    Deferred,
    /// Without `--promote-to` (the check reads the live files): the check
    /// waits for a burst of changes under way to settle (`check_live`).
    Settling,
}

/// The config in flight.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Pending {
    pub(super) token: u64,
    /// Its bytes: the source's as they settled, then, once staged, the
    /// copy's (what the check judges and the commit promotes).
    pub(super) snapshot: Snapshot,
    /// With `--promote-to`: the staged candidate's generation.
    pub(super) generation: Option<String>,
    pub(super) step: Step,
    /// Asked for by the restart signal: a pass restarts, even with a reload
    /// signal set or unchanged bytes.
    pub(super) restart: bool,
    /// The next delay before staging is tried again.
    pub(super) retry: Duration,
    /// Not new bytes: the record goes back to the generation the child's
    /// view shows (`Machine::lag`); the child has these bytes already.
    pub(super) realign: bool,
    /// Without `--promote-to`: the live files began to move (a burst of
    /// changes) after the bytes in flight were looked at. A check that ran
    /// meanwhile may have read other bytes: its verdict is not theirs.
    pub(super) moved: bool,
    /// Times its check in place was put off again because the child was
    /// told something meanwhile (bounded: see `hush_for_a_moment`).
    pub(super) hushes: u32,
}

impl Machine {
    /// Does every start go through the gate?
    pub(super) fn gated(&self) -> bool {
        self.settings.validate || self.settings.promote
    }

    /// May a child start on these bytes? With `--promote-to`, the question
    /// is whether the child's directory already holds them (a file gone from
    /// the source is not a change there either).
    /// Files that chose `none` (`--on-change`) never ask for a check.
    pub(super) fn is_approved(&self, now: &Snapshot) -> bool {
        match &self.approved {
            Some(a) if self.settings.promote => fingerprint::changes(a, now)
                .iter()
                .all(|c| self.is_quiet(&c.path)),
            Some(a) => self.same_but_quiet(a, now),
            None => false,
        }
    }

    /// The gate, before a start: approved bytes start; rejected ones do
    /// not; others are taken through staging and the check first.
    pub(super) fn on_candidate(&mut self, now: Snapshot) -> Vec<Action> {
        if self.phase != Phase::Starting || self.held(None, false) {
            return vec![];
        }
        let after_rollback = std::mem::take(&mut self.after_rollback);
        if !self.gated() {
            self.next_child_bytes = now;
            return vec![Action::Spawn];
        }
        if self.is_approved(&now) {
            self.source_is_the_childs();
            return self.spawn_on_last_good();
        }
        // Back from a rollback: the child lands on the proven generation
        // first, as the rollback said; bytes pushed meanwhile are checked
        // once it runs, never started on straight away.
        if after_rollback && self.approved.is_some() && !self.is_rejected(&now) {
            info!(
                "Restarting the child on the generation rolled back to; the newer config is checked once it runs"
            );
            self.judge_after_start = Some(now);
            return self.spawn_on_last_good();
        }
        if self.is_rejected(&now) {
            return self.no_start(REJECTED_SOURCE);
        }
        let before = self.approved.clone().unwrap_or_default();
        for c in fingerprint::changes(&before, &now) {
            info!("File change detected: {c}");
        }
        info!(
            "Config changed since it was last approved: {} it before starting the child",
            self.verb()
        );
        self.phase = Phase::CheckingBeforeStart;
        self.begin(now, false)
    }

    /// Starts the child on the approved bytes. Never on a candidate shown in
    /// place for its check: that check is for bytes the source no longer
    /// holds (it holds these), so it goes, and the view with it, first.
    fn spawn_on_last_good(&mut self) -> Vec<Action> {
        let mut actions = match self.shown_in_place() {
            true => self.cancel_pending(),
            false => vec![],
        };
        actions.extend(self.start_child());
        actions
    }

    /// Is `now` (or the start, None) held until a rollback or a
    /// withdrawal is done?
    fn held(&mut self, now: Option<&Snapshot>, restart: bool) -> bool {
        self.held_for_rollback(now, restart) || self.held_for_withdrawal(now, restart)
    }

    /// What the gate does, for the log.
    fn verb(&self) -> &'static str {
        match (self.settings.promote, self.settings.validate) {
            (true, true) => "staging and validating",
            (true, false) => "staging",
            _ => "validating",
        }
    }

    /// Puts `now` in flight (superseding whatever was).
    pub(super) fn begin(&mut self, now: Snapshot, restart: bool) -> Vec<Action> {
        if self.held(Some(&now), restart) {
            return vec![];
        }
        let mut actions = self.cancel_pending();
        // The candidate superseded was shown in place: `now` goes once it
        // is off the view.
        if self.held_for_withdrawal(Some(&now), restart) {
            return actions;
        }
        let token = self.next_token();
        self.pending = Some(Pending {
            token,
            snapshot: now,
            generation: None,
            step: Step::Staging,
            restart,
            retry: BACKOFF_FIRST,
            realign: false,
            moved: false,
            hushes: 0,
        });
        match self.settings.promote {
            true => actions.push(Action::Stage { token }),
            false => actions.extend(self.check_live()),
        }
        actions
    }

    /// Without `--promote-to` the check reads the live files: not while a
    /// burst of changes is under way or the look at what it left is out (it
    /// waits for that look), and a check that ran while they moved does not
    /// count (`moved`).
    fn check_live(&mut self) -> Vec<Action> {
        let burst = self.burst || self.settle_look;
        let Some(p) = self.pending.as_mut() else {
            return vec![];
        };
        if burst {
            p.step = Step::Settling;
            return vec![];
        }
        p.step = Step::Checking;
        p.moved = false;
        let (token, snapshot, restart) = (p.token, p.snapshot.clone(), p.restart);
        vec![Action::Validate {
            token,
            changed: self.changed_paths(&snapshot, restart),
            candidate: None,
            in_place: false,
        }]
    }

    /// A burst of changes began: the live files may be mid-write until it
    /// settles. A plain check due or running now may judge other bytes than
    /// those in flight.
    pub(super) fn on_changed(&mut self) -> Vec<Action> {
        self.burst = true;
        let plain = !self.settings.promote;
        if let Some(p) = self.pending.as_mut().filter(|_| plain) {
            p.moved = true;
        }
        vec![]
    }

    /// The files a check is told about: those that differ from the approved
    /// bytes (every file, at a start or a restart request).
    fn changed_paths(&self, now: &Snapshot, all: bool) -> Vec<PathBuf> {
        let empty = Snapshot::new();
        let before = match &self.approved {
            Some(a) if !all => a,
            _ => &empty,
        };
        fingerprint::changes(before, now)
            .into_iter()
            .map(|c| c.path)
            .collect()
    }

    /// Drops the config in flight: its check is killed, its candidate
    /// discarded (the child's view restored), its retry's wait cancelled.
    pub(super) fn cancel_pending(&mut self) -> Vec<Action> {
        let Some(p) = self.pending.take() else {
            return vec![];
        };
        // The child's view first (a check in place shows it the candidate),
        // then the check that is no longer wanted.
        let mut actions = vec![];
        let shown = self.is_shown(&p);
        // Unless the disk's record names it (a commit whose view lagged) or
        // the view shows it: then it is no candidate.
        if let Some(generation) = p.generation.filter(|g| !self.is_kept(g)) {
            actions.push(self.discard(generation, shown));
        }
        match p.step {
            Step::Checking => actions.push(Action::CancelValidation),
            Step::Waiting => actions.push(Action::CancelWait { token: p.token }),
            _ => {}
        }
        actions
    }

    /// Does the child's view show the candidate of `p`? In place, from its
    /// check until its commit's answer (a commit must find it there).
    pub(super) fn is_shown(&self, p: &Pending) -> bool {
        self.settings.validate_in_place
            && p.generation.is_some()
            && !p.realign
            && matches!(p.step, Step::Checking | Step::Committing)
    }

    /// A candidate is shown at DIR for its check in place: the child reads
    /// it there if it reads its config now. (Once it passed, its commit
    /// shows it anyway.)
    pub(super) fn shown_in_place(&self) -> bool {
        (self.pending.as_ref()).is_some_and(|p| p.step == Step::Checking && self.is_shown(p))
    }

    /// The child is about to be told something (`what`: a forwarded signal,
    /// a reload) that may make it read its config: a candidate shown in
    /// place for its check must not be what it reads. The check goes, the
    /// view with it (the child is told once the world says the view is
    /// back: see `withdrawal.rs`), and the same change is staged and
    /// checked again after a moment: shown again at once, it could still
    /// be what the child reads while it acts on what it was told. Nothing
    /// is judged: no failure is counted. (Checking only: a candidate being
    /// committed passed, and its commit's answer must still find it.)
    pub(super) fn withdraw_candidate(&mut self, what: &dyn std::fmt::Display) -> Vec<Action> {
        if !self.shown_in_place() {
            return vec![];
        }
        let Some(mut p) = self.pending.take() else {
            return vec![];
        };
        let mut actions = vec![];
        if let Some(generation) = p.generation.take().filter(|g| !self.is_kept(g)) {
            actions.push(self.discard(generation, true));
        }
        actions.push(Action::CancelValidation);
        // A new token: nothing of the cancelled check can answer for it.
        let (token, after) = (self.next_token(), BACKOFF_FIRST);
        info!(
            "{what}: the candidate checked in place is withdrawn first (the child could read it); checking it again in {after:?}"
        );
        p.token = token;
        p.step = Step::Waiting;
        p.retry = BACKOFF_FIRST;
        self.pending = Some(p);
        actions.push(Action::RetryAfter { token, after });
        actions
    }

    /// The answer to `Stage`: a candidate with its exact bytes, or why not.
    pub(super) fn on_staged(
        &mut self,
        token: u64,
        result: Result<Generation, String>,
    ) -> Vec<Action> {
        let ours = self
            .pending
            .as_ref()
            .is_some_and(|p| p.token == token && p.step == Step::Staging);
        let candidate = match result {
            Ok(c) if !ours => {
                debug!("Discarding a candidate nobody waits for");
                return vec![Action::DropCandidate { generation: c.name }];
            }
            _ if !ours => return vec![],
            Err(reason) => {
                return self.promotion_failed(format!("Cannot stage the config: {reason}"));
            }
            Ok(c) => c,
        };
        let generation = candidate.name;
        let snapshot = candidate.snapshot;
        if self.is_approved(&snapshot) || self.is_rejected(&snapshot) {
            // The copy holds bytes already judged (the source went back).
            let p = self.pending.take();
            let mut actions = vec![Action::DropCandidate { generation }];
            if self.is_approved(&snapshot) {
                debug!("The staged config is the one the child has");
                // Put back (the usual fix after a rejection or a
                // rollback): nothing is failing, as when it goes back
                // while the child runs.
                self.source_is_the_childs();
                actions.extend(self.proceed_unchanged(p.is_some_and(|p| p.restart)));
            } else if self.phase == Phase::CheckingBeforeStart {
                actions.extend(self.no_start(REJECTED_SOURCE));
            } else if p.is_some_and(|p| p.restart) {
                actions.extend(self.restart_on_last_good());
            }
            return actions;
        }
        let Some(p) = self.pending.as_mut() else {
            return vec![];
        };
        p.snapshot = snapshot;
        p.generation = Some(generation);
        if self.settings.validate {
            return self.check_staged();
        }
        let generation = p.generation.clone().unwrap_or_default();
        p.step = Step::Committing;
        let staged = p.snapshot.clone();
        let proven = self.kept_while_on_probation(&staged);
        vec![Action::Commit {
            token,
            generation,
            proven,
        }]
    }

    /// May the running child be reading its config now? While it starts
    /// up (as its start told it to), while reload hooks run, and for a
    /// moment after it was told something (`hush`). Says why.
    fn child_may_read(&self) -> Option<&'static str> {
        let running = self.phase == Phase::Running;
        if self.starting_up && running {
            Some(
                "The child is starting up: the candidate is checked in place once it has (ready, or --ready-start-period over)",
            )
        } else if self
            .reload
            .as_ref()
            .is_some_and(|r| r.running || r.after_signals)
        {
            Some("The child is being reloaded: the candidate is checked in place a moment after")
        } else if self.hush.is_some() {
            Some(
                "The child was just told to read its config: the candidate is checked in place a moment later",
            )
        } else {
            None
        }
    }

    /// The child is told something that may make it read its config (a
    /// reload signal, hooks, a forwarded signal): with checks in place, no
    /// candidate is shown to it for a moment (its check waits).
    pub(super) fn hush_for_a_moment(&mut self) -> Vec<Action> {
        if !self.settings.validate_in_place {
            return vec![];
        }
        // A check put off by a child told something every moment (a
        // signal storm) is not put off for ever: after HUSHES_MAX it starts
        // once the wait armed runs out, and says so.
        let armed = self.hush.is_some();
        if let Some(p) = self
            .pending
            .as_mut()
            .filter(|p| p.step == Step::Deferred && armed)
        {
            p.hushes += 1;
            if p.hushes == HUSHES_MAX {
                warn!(
                    "The child is told to read its config again and again: the candidate is checked in place once the current second is over (a signal that comes during its check still withdraws it)"
                );
            }
            if p.hushes >= HUSHES_MAX {
                return vec![];
            }
        }
        let mut actions: Vec<Action> = (self.hush.take())
            .map(|token| Action::CancelWait { token })
            .into_iter()
            .collect();
        let token = self.next_token();
        self.hush = Some(token);
        actions.push(Action::RetryAfter {
            token,
            after: BACKOFF_FIRST,
        });
        actions
    }

    /// The staged candidate's check starts; in place, not while the child
    /// may be reading its config (it would read the candidate): it waits.
    fn check_staged(&mut self) -> Vec<Action> {
        let in_place = self.settings.validate_in_place;
        let wait = in_place.then(|| self.child_may_read()).flatten();
        let Some(p) = self.pending.as_mut() else {
            return vec![];
        };
        if let Some(why) = wait {
            if p.step != Step::Deferred {
                info!("{why}");
            }
            p.step = Step::Deferred;
            return vec![];
        }
        p.step = Step::Checking;
        let (snapshot, restart, token) = (p.snapshot.clone(), p.restart, p.token);
        let candidate = p.generation.clone();
        let changed = self.changed_paths(&snapshot, restart);
        vec![Action::Validate {
            token,
            changed,
            candidate,
            in_place,
        }]
    }

    /// The running child started up: a check in place it held back starts.
    pub(super) fn started_up(&mut self) -> Vec<Action> {
        if !std::mem::take(&mut self.starting_up) {
            return vec![];
        }
        self.check_deferred()
    }

    /// A check in place held back while the child may read its config
    /// starts, unless it still may.
    pub(super) fn check_deferred(&mut self) -> Vec<Action> {
        match self.pending.as_ref() {
            Some(p) if p.step == Step::Deferred => self.check_staged(),
            _ => vec![],
        }
    }

    /// The staged bytes are those the child already has.
    fn proceed_unchanged(&mut self, restart: bool) -> Vec<Action> {
        match self.phase {
            Phase::CheckingBeforeStart => {
                self.phase = Phase::Starting;
                self.start_child()
            }
            Phase::Running if restart => {
                self.reason = Reason::Signal;
                self.restart()
            }
            _ => vec![],
        }
    }

    pub(super) fn on_validated(&mut self, token: u64, ok: bool) -> Vec<Action> {
        let Some(mut p) = self
            .pending
            .take_if(|p| p.token == token && p.step == Step::Checking)
        else {
            debug!("Ignoring the result of a stale validation");
            return vec![];
        };
        if p.moved {
            // The files moved while it read them: checked again once the
            // burst settles on these bytes (`check_settled`), or on others.
            info!("The config changed while it was checked: checking it again once it settles");
            p.step = Step::Settling;
            self.pending = Some(p);
            return vec![];
        }
        if !ok {
            self.stats.validations_failed += 1;
            self.failed();
            let shown = self.is_shown(&p);
            self.rejected = Some(p.snapshot);
            let mut actions: Vec<Action> = p
                .generation
                .map(|generation| self.discard(generation, shown))
                .into_iter()
                .collect();
            actions.extend(match self.phase {
                Phase::CheckingBeforeStart if self.started => {
                    self.no_start("Config validation failed")
                }
                Phase::CheckingBeforeStart => self.no_start("Config validation failed at startup"),
                Phase::Backoff { .. } => {
                    error!("Config validation failed; the child will not be restarted on it");
                    vec![]
                }
                _ => {
                    error!("Config validation failed; keeping the current child running untouched");
                    vec![]
                }
            });
            return actions;
        }
        info!("Config validation passed");
        self.stats.validations_ok += 1;
        self.rejected = None;
        match p.generation.clone() {
            Some(generation) => {
                p.step = Step::Committing;
                let proven = self.kept_while_on_probation(&p.snapshot);
                self.pending = Some(p);
                vec![Action::Commit {
                    token,
                    generation,
                    proven,
                }]
            }
            None => self.approve(p),
        }
    }

    /// The check could not start for a fault of ours: showing the candidate
    /// in place failed (ENOSPC, EROFS on our own symlink write), or its
    /// process could not start (EMFILE, EAGAIN, ENOMEM). That says nothing
    /// of the bytes: the candidate goes (the child's view back first) and
    /// the staging is retried, as a staging or commit failure is; before
    /// any good generation, with no child started meanwhile.
    pub(super) fn on_cannot_check(&mut self, token: u64, reason: String) -> Vec<Action> {
        let shown = self.shown_in_place();
        let Some(p) = self
            .pending
            .as_mut()
            .filter(|p| p.token == token && p.step == Step::Checking)
        else {
            return vec![];
        };
        // With --promote-to the candidate goes (the child's view back
        // first: in place, it was shown before the check could not start);
        // the retry stages the bytes again.
        let candidate = p.generation.take();
        let mut actions: Vec<Action> = candidate
            .map(|generation| self.discard(generation, shown))
            .into_iter()
            .collect();
        let Some(p) = self.pending.as_mut() else {
            return actions;
        };
        let no_good_yet = self.phase == Phase::CheckingBeforeStart && self.approved.is_none();
        if !self.settings.promote || no_good_yet {
            // Only the check could not run (no descriptor, process or
            // memory): no verdict on the bytes, nothing else changes. No
            // child starts meanwhile (there is no checked copy to start it
            // on: without --promote-to it would read the unchecked bytes),
            // the manager does not exit 78 (nothing judged the config), and
            // nothing is rejected; the check runs again.
            let (token, after) = (p.token, p.retry);
            p.retry = (after * 2).min(BACKOFF_MAX);
            p.step = Step::Waiting;
            error!("Cannot check the config: {reason}; checking again in {after:?}");
            actions.push(Action::RetryAfter { token, after });
            return actions;
        }
        actions.extend(self.promotion_failed(format!("Cannot check the config: {reason}")));
        actions
    }

    /// The answer to `Commit`: the child's directory now shows the
    /// candidate (and its durable record names it), or nothing changed.
    pub(super) fn on_committed(
        &mut self,
        token: u64,
        result: Result<(), CommitFailed>,
    ) -> Vec<Action> {
        let ours = self
            .pending
            .as_ref()
            .is_some_and(|p| p.token == token && p.step == Step::Committing);
        if !ours {
            return vec![];
        }
        let realign = self.pending.as_ref().is_some_and(|p| p.realign);
        match result {
            // The record names what the view shows again.
            Ok(()) if realign => self.realigned(),
            // The record names it, but the view could not be switched to it:
            // nothing proves the view shows it (a switch that failed half way,
            // or a view put back that could not be, leaves `..data` on another
            // generation). The disk's word for the record; the switch is
            // retried until it takes.
            Err(CommitFailed {
                reason,
                recorded: true,
                ..
            }) if realign => {
                // The generation the record named before goes (unless the
                // disk's view still shows it, a switch that failed half way:
                // the world never removes what the view shows).
                let before = std::mem::replace(&mut self.last_good, self.lag.clone());
                let mut actions: Vec<Action> = before
                    .filter(|g| !self.is_kept(g))
                    .map(|generation| Action::RemoveGeneration { generation })
                    .into_iter()
                    .collect();
                actions.extend(self.promotion_failed(format!(
                    "Cannot switch the child's directory back to what it showed: {reason}"
                )));
                actions
            }
            Ok(()) => {
                self.stats.promotions_ok += 1;
                let Some(p) = self.pending.take() else {
                    return vec![];
                };
                // The view follows the record now: what it showed goes.
                let lag = self.lag.take();
                let mut actions = self.committed(Generation {
                    name: p.generation.clone().unwrap_or_default(),
                    snapshot: p.snapshot.clone(),
                });
                if let Some(generation) = lag.filter(|g| !self.is_kept(g)) {
                    actions.push(Action::RemoveGeneration { generation });
                }
                // New bytes went through: a rollback's rejection is over.
                if let Some(Generation { name, .. }) = self.rolled_back_from.take() {
                    actions.push(Action::Unreject { generation: name });
                }
                actions.extend(self.approve(p));
                actions
            }
            Err(CommitFailed {
                reason,
                recorded: true,
                ..
            }) => self.recorded_not_shown(reason),
            Err(CommitFailed { reason, .. }) if realign => self.promotion_failed(format!(
                "Cannot put the record of the last good config back to what the child's directory shows: {reason}"
            )),
            Err(CommitFailed { reason, .. }) => {
                // The record does not name the candidate: it goes (the view
                // put back first, if it was shown in place), and the retry
                // stages the bytes again.
                let shown = self.pending.as_ref().is_some_and(|p| self.is_shown(p));
                let candidate = self.pending.as_mut().and_then(|p| p.generation.take());
                let mut actions: Vec<Action> = candidate
                    .filter(|g| !self.is_kept(g))
                    .map(|generation| self.discard(generation, shown))
                    .into_iter()
                    .collect();
                actions.extend(self.promotion_failed(format!("Cannot promote the config: {reason}")));
                actions
            }
        }
    }

    /// While the view lags the record and nothing in flight will commit
    /// (the commit owed was dropped: the source went back to the child's
    /// bytes, newer bytes were rejected, the child is being restarted), the
    /// record goes back to the generation the view shows, through the same
    /// tokened commit and its retries. Those are the bytes the child has:
    /// a restarted manager then shows them too, and the generation the
    /// record named, which never reached the child, can go.
    pub(super) fn view_follows_record(&mut self) -> Vec<Action> {
        let Some(view) = self.lag.clone() else {
            return vec![];
        };
        if self.pending.is_some() || self.rolling.is_some() || self.phase == Phase::Done {
            return vec![];
        }
        info!("Generation {view} is what the child's directory shows: its record names it again");
        let token = self.next_token();
        let snapshot = self.approved.clone().unwrap_or_default();
        let proven = self.kept_while_on_probation(&snapshot);
        self.pending = Some(Pending {
            token,
            snapshot,
            generation: Some(view.clone()),
            step: Step::Committing,
            restart: false,
            retry: BACKOFF_FIRST,
            realign: true,
            moved: false,
            hushes: 0,
        });
        vec![Action::Commit {
            token,
            generation: view,
            proven,
        }]
    }

    /// The record names what the view shows again: nothing new for the
    /// child, which has these bytes. On probation, its window starts now.
    fn realigned(&mut self) -> Vec<Action> {
        let Some(p) = self.pending.take() else {
            return vec![];
        };
        self.lag = None;
        let name = p.generation.unwrap_or_default();
        info!("The record and the child's directory agree again on generation {name}");
        let mut actions = self.committed(Generation {
            name,
            snapshot: p.snapshot,
        });
        if self.phase == Phase::Running {
            actions.extend(self.child_took_new_bytes(false));
        }
        actions
    }

    /// The commit's record moved but the child's view did not follow (the
    /// world undoes nothing): the disk names the candidate as the
    /// last good generation (a restarted manager shows it), so the machine
    /// does too, or it would later roll back from, keep or forget
    /// generations the disk does not have in that role. The child is not
    /// told yet (its view still shows the older bytes, so `approved` stays
    /// and no window runs); the same commit is retried, with backoff, until
    /// the view follows, as any commit I/O failure is.
    fn recorded_not_shown(&mut self, reason: String) -> Vec<Action> {
        let Some(p) = self.pending.as_ref() else {
            return vec![];
        };
        let new = Generation {
            name: p.generation.clone().unwrap_or_default(),
            snapshot: p.snapshot.clone(),
        };
        // What the view shows stays until the view and the record agree (it
        // may lag since an earlier commit already).
        if self.lag.is_none() {
            self.lag = self.last_good.clone().filter(|g| *g != new.name);
        }
        // The child still runs the view's bytes: a window running for them
        // goes on (an exit now is theirs, rolled back to the proven
        // generation); the new bytes get theirs once they are shown.
        let window = self.probation.clone().filter(|p| p.running);
        let mut actions = self.committed(new);
        if let Some(window) = window.filter(|_| self.probation.is_some()) {
            self.probation = Some(window);
            actions.retain(|a| !matches!(a, Action::ProbationDeadline(_)));
        }
        actions.extend(self.promotion_failed(format!("Cannot show the promoted config: {reason}")));
        actions
    }

    /// These bytes may now reach the child: start it, or act on the change.
    fn approve(&mut self, p: Pending) -> Vec<Action> {
        self.approved = Some(p.snapshot.clone());
        self.fresh = true;
        // New bytes went through: the check's earlier rejection was of
        // bytes no longer there (a rollback's ends with their commit).
        self.rejected = None;
        if p.restart {
            self.reason = Reason::Signal;
        }
        match self.phase {
            // The promoted directory holds exactly these bytes.
            Phase::CheckingBeforeStart if self.settings.promote => {
                self.phase = Phase::Starting;
                self.start_child()
            }
            // The child reads the source itself, which may have moved during
            // the check: one more look, and the gate decides again.
            Phase::CheckingBeforeStart => self.spawn(),
            Phase::Running if p.restart => self.restart(),
            Phase::Running | Phase::Backoff { .. } => self.apply(p.snapshot),
            _ => vec![],
        }
    }

    /// Staging or committing failed (a full disk, a permission, an I/O
    /// error): nothing changed for the child. Retried with backoff until it
    /// works or newer bytes supersede it.
    fn promotion_failed(&mut self, what: String) -> Vec<Action> {
        // Putting the record back brings the child nothing new: its failure
        // is no failed change.
        if !self.pending.as_ref().is_some_and(|p| p.realign) {
            self.stats.promotions_failed += 1;
            self.failed();
        }
        let kept: Option<String> = self
            .pending
            .as_ref()
            .and_then(|p| p.generation.clone())
            .filter(|g| self.is_kept(g));
        let Some(p) = self.pending.as_mut() else {
            return vec![];
        };
        let (token, after) = (p.token, p.retry);
        p.retry = (after * 2).min(BACKOFF_MAX);
        p.step = Step::Waiting;
        // A generation the disk's record names (or the view shows) stays,
        // to be committed again on retry.
        p.generation = kept;
        let retry = Action::RetryAfter { token, after };
        match self.phase {
            Phase::CheckingBeforeStart if self.approved.is_some() => {
                error!(
                    "{what}; starting the child on the last good config promoted earlier; retrying in {after:?}"
                );
                self.phase = Phase::Starting;
                let mut actions = vec![retry];
                actions.extend(self.start_child());
                actions
            }
            Phase::CheckingBeforeStart => {
                error!("{what}; there is no good config to start the child on");
                self.pending = None;
                self.done(EX_CONFIG)
            }
            _ => {
                error!("{what}; the child keeps its current config; retrying in {after:?}");
                vec![retry]
            }
        }
    }

    /// A retry delay ran out: the check, the staging or the commit again, or
    /// the external reload again.
    pub(super) fn on_retry_due(&mut self, token: u64) -> Vec<Action> {
        if self.hush == Some(token) {
            self.hush = None;
            return self.check_deferred();
        }
        if let Some(actions) = self.on_rollback_retry_due(token) {
            return actions;
        }
        if let Some(actions) = self.on_withdrawal_retry_due(token) {
            return actions;
        }
        let due = |p: &&mut Pending| p.token == token && p.step == Step::Waiting;
        if let Some(p) = self.pending.as_mut().filter(due)
            && self.withdrawing.is_some()
        {
            p.step = Step::Due;
            return vec![];
        }
        if let Some(p) = self.pending.as_mut().filter(due) {
            if !self.settings.promote {
                // Only the check could not run: it runs again (after the
                // settle, if the files are moving).
                info!("Retrying the config check");
                return self.check_live();
            }
            info!("Retrying the promotion");
            if let Some(generation) = p.generation.clone() {
                // Recorded already, not shown (or shown, not recorded): the
                // same commit again.
                p.step = Step::Committing;
                let snapshot = p.snapshot.clone();
                let proven = self.kept_while_on_probation(&snapshot);
                return vec![Action::Commit {
                    token,
                    generation,
                    proven,
                }];
            }
            p.step = Step::Staging;
            return vec![Action::Stage { token }];
        }
        self.on_hooks_retry_due(token)
    }

    /// No child may start on the bytes on disk (rejected, or unusable):
    /// `what` says why. With `--promote-to` and a good generation, the child
    /// starts on that; before any child ran, the manager exits 78; otherwise
    /// it waits for a fix.
    pub(super) fn no_start(&mut self, what: &str) -> Vec<Action> {
        if self.settings.promote && self.approved.is_some() {
            error!("{what}; starting the child on the last good config promoted earlier");
            self.phase = Phase::Starting;
            return self.spawn_on_last_good();
        }
        if !self.started {
            error!("{what}; not starting the child");
            return self.done(EX_CONFIG);
        }
        error!("{what}");
        self.await_fix()
    }

    /// No child on rejected bytes: wait for a change that passes.
    fn await_fix(&mut self) -> Vec<Action> {
        let files: Vec<String> = self
            .rejected
            .iter()
            .flat_map(|r| fingerprint::changes(&self.approved.clone().unwrap_or_default(), r))
            .map(|c| c.path.display().to_string())
            .collect();
        error!(
            "Not starting the child on a config that --validate rejected ({}); waiting for a fixed config",
            if files.is_empty() {
                "unchanged files".to_string()
            } else {
                files.join(", ")
            }
        );
        self.phase = Phase::AwaitingFix;
        vec![]
    }

    /// A settled look at the watched files.
    pub(super) fn on_config(&mut self, now: Snapshot) -> Vec<Action> {
        if self.phase == Phase::AwaitingFix {
            if self.is_rejected(&now) {
                return vec![];
            }
            info!("Config changed while held: validating it");
            self.phase = Phase::Starting;
            let mut actions = vec![Action::Acted];
            actions.extend(self.on_candidate(now));
            return actions;
        }
        if self.phase == Phase::CheckingBeforeStart {
            // Changed while the start's config is in flight: take the newest
            // (unless only files that chose `none` moved).
            return match &self.pending {
                Some(p) if !self.same_but_quiet(&p.snapshot, &now) => self.begin(now, false),
                _ => self.check_settled(),
            };
        }
        // A start on the last good generation waits for a candidate to go
        // off the view: these bytes are judged once it runs.
        if self.phase == Phase::Starting && self.held_for_withdrawal(Some(&now), false) {
            return vec![];
        }
        if !matches!(self.phase, Phase::Running | Phase::Backoff { .. }) {
            // Stopping or starting: the next start looks at the config
            // afresh, so nothing is lost by ignoring this one.
            return vec![];
        }
        self.note_removed(&now);
        let changes = fingerprint::changes(&self.child_bytes, &now);
        if changes.is_empty() {
            debug!("Config fingerprint unchanged; nothing to do");
            // Back to the bytes the child runs with: what is in flight is
            // moot, and a rejection or rollback before it is over.
            self.source_is_the_childs();
            return self.cancel_pending();
        }
        // What is in flight already holds these bytes, or differs only in
        // files that chose `none`: its check goes on.
        if self
            .pending
            .as_ref()
            .is_some_and(|p| self.same_but_quiet(&p.snapshot, &now))
        {
            return self.check_settled();
        }
        if self.is_rejected(&now) {
            match &self.rolled_back_from {
                Some(g) if self.same_but_quiet(&g.snapshot, &now) => info!(
                    "The config source holds the bytes rolled back from (generation {}): not tried again until newer bytes are promoted",
                    g.name
                ),
                _ => debug!("Config still has the bytes the validator rejected"),
            }
            // The newest bytes do not reach the child (unless it has them
            // but for files that chose `none`).
            if !self.same_but_quiet(&self.child_bytes, &now) {
                self.failed();
            }
            // A check still running is for bytes no longer there: its pass
            // must not reach the child.
            return self.cancel_pending();
        }
        if !self.settings.routes.is_empty() {
            let paths: Vec<PathBuf> = changes.iter().map(|c| c.path.clone()).collect();
            if self.plan(&paths).is_quiet() {
                self.quiet_burst(now, changes.iter().map(|c| c.to_string()).collect());
                // The source holds the child's bytes but for files that
                // chose `none`: as with identical bytes, a rejection before
                // is over (a later touch must not be what says so).
                self.source_is_the_childs();
                // What is in flight is for bytes the child need not get.
                return self.cancel_pending();
            }
        }
        for change in &changes {
            let path = change.path.display().to_string();
            info!(path = path.as_str(); "File change detected: {change}");
        }
        self.stats.changes += 1;
        let mut actions = vec![Action::Acted];
        if self.gated() {
            actions.extend(self.begin(now, false));
        } else {
            actions.extend(self.apply(now));
        }
        actions
    }

    /// The burst settled on the bytes in flight: a plain check that waited
    /// for that runs now, and one that ran while they moved runs again.
    fn check_settled(&mut self) -> Vec<Action> {
        let mut actions = vec![];
        match self.pending.as_ref().map(|p| (p.step, p.moved)) {
            Some((Step::Settling, _)) => {}
            Some((Step::Checking, true)) => {
                info!("The config changed while it was checked: checking it again");
                actions.push(Action::CancelValidation);
            }
            _ => return actions,
        }
        actions.extend(self.check_live());
        actions
    }

    /// A file gone from the source is not a change (a deletion restarts
    /// nothing), but with `--promote-to` the child's directory keeps the
    /// copy promoted last until a change is promoted: said once per
    /// removal, so a deleted ConfigMap key is not a silent difference. What
    /// the directory holds is the approved bytes (not what the child was
    /// last told of: files that chose `none` may never have been promoted).
    fn note_removed(&mut self, now: &Snapshot) {
        let Some(promoted) = self.approved.as_ref().filter(|_| self.settings.promote) else {
            return;
        };
        let present = |path: &PathBuf| matches!(now.get(path), Some(FileState::Content { .. }));
        // Back again: a later removal is said again.
        self.said_removed.retain(|path| !present(path));
        let gone: Vec<PathBuf> = promoted
            .iter()
            .filter(|(path, state)| {
                matches!(state, FileState::Content { .. })
                    && matches!(now.get(*path), None | Some(FileState::Missing))
                    && !self.said_removed.contains(*path)
            })
            .map(|(path, _)| path.clone())
            .collect();
        if gone.is_empty() {
            return;
        }
        let list: Vec<String> = gone.iter().map(|p| p.display().to_string()).collect();
        warn!(
            "Removed from the config source: {}; the child's directory keeps the copy promoted last until the next change is promoted",
            list.join(", ")
        );
        self.said_removed.extend(gone);
    }

    /// The restart signal, while the source holds rejected bytes: with
    /// `--promote-to` the child restarts on the last good generation DIR
    /// keeps, as after a crash.
    pub(super) fn restart_on_last_good(&mut self) -> Vec<Action> {
        if !(self.settings.promote && self.approved.is_some() && self.phase == Phase::Running) {
            return vec![];
        }
        info!(
            "Restart requested by signal while the config source holds rejected bytes (by --validate, or rolled back): restarting the child on the last good generation"
        );
        self.reason = Reason::Signal;
        self.restart()
    }

    /// `--restart-signal`: restart now, through the same gate as a change.
    pub(super) fn on_restart_request(&mut self, now: Snapshot) -> Vec<Action> {
        match self.phase {
            Phase::Running if self.gated() => {
                // With --promote-to the child reads DIR, which holds the
                // last good generation: the restart lands there, as a
                // crash's would.
                let rejected = self.is_rejected(&now);
                if rejected && self.settings.promote && self.approved.is_some() {
                    // Held while a rollback or a withdrawal keeps the child
                    // from its directory (it would be stopped with no start
                    // to follow): the request waits with the source's bytes,
                    // and restarts the child once they are found rejected
                    // again (`on_staged`, `judge_again`).
                    if self.held(Some(&now), true) {
                        return vec![];
                    }
                    return self.restart_on_last_good();
                }
                if rejected {
                    error!(
                        "Restart requested, but the config still has the bytes the validator rejected; keeping the child"
                    );
                    return vec![];
                }
                // Held: the child would be stopped with no start to follow.
                if self.held_for_withdrawal(Some(&now), true) {
                    return vec![];
                }
                if self.settings.promote && self.is_approved(&now) {
                    info!("Restart requested by signal");
                    self.reason = Reason::Signal;
                    return self.restart();
                }
                info!(
                    "Restart requested by signal: {} the config first",
                    self.verb()
                );
                self.begin(now, true)
            }
            Phase::Running => {
                info!("Restart requested by signal");
                self.reason = Reason::Signal;
                self.restart()
            }
            Phase::Backoff { .. } => {
                info!(
                    "Restart requested by signal during restart backoff, starting child process now"
                );
                self.reason = Reason::Signal;
                self.spawn()
            }
            Phase::AwaitingFix => self.on_config(now),
            _ => {
                debug!("Restart requested while not running; ignored");
                vec![]
            }
        }
    }
}
