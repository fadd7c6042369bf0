//! A candidate shown in place for its check (`--validate-in-place`), taken
//! off the child's view again: rejected, superseded, or withdrawn before
//! the child is told something. Until the world answers that the view no
//! longer shows it, the child must not be made to read its directory: no
//! child starts, no signal is forwarded, nothing new goes through the gate.
//! The disk may refuse (DIR remounted read-only, the spare names of its
//! links taken): the removal is asked again, with backoff, until it takes,
//! and what waited goes on then.

use super::*;

/// A shown candidate whose removal is asked for and not yet answered, or
/// refused and waiting to be asked again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Withdrawal {
    generation: String,
    /// Refused: asked again when the wait with this token runs out.
    retry_token: Option<u64>,
    retry: Duration,
    /// Refused at least once (said when it finally takes).
    refused: bool,
    /// Bytes that settled meanwhile, and a start: its look, or the start
    /// on the last good generation decided already.
    waits: Waits,
    /// Signals for the child (already mapped), in order.
    signals: Vec<i32>,
    /// The retry of the reload's hooks came due meanwhile.
    hooks_waits: Option<u64>,
}

impl Machine {
    /// Removes the candidate `generation`; `shown`: the child's view shows
    /// it (its check in place ran, or its commit was refused), and the
    /// child is kept from its directory until the world says it is off.
    pub(super) fn discard(&mut self, generation: String, shown: bool) -> Action {
        if shown && self.withdrawing.is_none() {
            self.withdrawing = Some(Withdrawal {
                generation: generation.clone(),
                retry_token: None,
                retry: BACKOFF_FIRST,
                refused: false,
                waits: Waits::default(),
                signals: vec![],
                hooks_waits: None,
            });
        }
        Action::DropCandidate { generation }
    }

    /// A candidate is being taken off the child's view: `now` (settled
    /// bytes), or the start's look (None), waits for that. True when held.
    pub(super) fn held_for_withdrawal(&mut self, now: Option<&Snapshot>, restart: bool) -> bool {
        self.hold_for_withdrawal(now, restart, Action::Fingerprint)
    }

    /// The child starts on the last good generation, once no candidate is
    /// being taken off its view (the decision stands: only the view had
    /// to be right first).
    pub(super) fn start_child(&mut self) -> Vec<Action> {
        match self.hold_for_withdrawal(None, false, Action::Spawn) {
            true => vec![],
            false => vec![Action::Spawn],
        }
    }

    fn hold_for_withdrawal(
        &mut self,
        now: Option<&Snapshot>,
        restart: bool,
        start: Action,
    ) -> bool {
        let Some(w) = self.withdrawing.as_mut() else {
            return false;
        };
        let what = w.waits.hold(now, restart, start);
        // Said once the disk refused: until then the answer is a moment away.
        let level = match w.refused {
            true => log::Level::Info,
            false => log::Level::Debug,
        };
        log::log!(
            level,
            "Candidate {} is still shown in the child's directory: {what} once it is off",
            w.generation
        );
        true
    }

    /// A signal for the child (mapped) waits while a candidate is being
    /// taken off its view: it could be the one that makes it read its
    /// config (not one that stops it: those go at once). True when held
    /// (or dropped, as a pending one would be).
    pub(super) fn signal_held(&mut self, sig: i32) -> bool {
        let stops = self.stops(sig);
        let Some(w) = self.withdrawing.as_mut().filter(|_| !stops) else {
            return false;
        };
        // Real-time signals can come by the thousand: said once the queue
        // is full (`queue`), not each.
        if lifecycle::queue(&mut w.signals, sig) && w.refused && sig < 32 {
            info!(
                "Holding {} until candidate {} is off the child's directory",
                signals::name(sig),
                w.generation
            );
        }
        true
    }

    /// The retry of the reload's hooks (`token`) came due while a
    /// candidate is being taken off the view: it runs once it is off.
    pub(super) fn hooks_held(&mut self, token: u64) -> bool {
        let Some(w) = self.withdrawing.as_mut() else {
            return false;
        };
        w.hooks_waits = Some(token);
        true
    }

    /// The wait before the removal is asked again ran out (`token`).
    pub(super) fn on_withdrawal_retry_due(&mut self, token: u64) -> Option<Vec<Action>> {
        let w = self
            .withdrawing
            .as_mut()
            .filter(|w| w.retry_token == Some(token))?;
        w.retry_token = None;
        info!(
            "Retrying to take candidate {} off the child's directory",
            w.generation
        );
        Some(vec![Action::DropCandidate {
            generation: w.generation.clone(),
        }])
    }

    /// Exiting: a candidate the disk keeps on the view stays there (the
    /// next manager puts the view back before anything else).
    pub(super) fn say_still_shown(&self) {
        if let Some(w) = self.withdrawing.as_ref().filter(|w| w.refused) {
            warn!(
                "Exiting while candidate {} is still shown in the child's directory: a manager started again puts the last good one back first",
                w.generation
            );
        }
    }

    /// A removal refused and waiting for its retry is asked again now.
    pub(super) fn withdraw_again_now(&mut self) -> Vec<Action> {
        let Some(token) = self.withdrawing.as_ref().and_then(|w| w.retry_token) else {
            return vec![];
        };
        let mut actions = vec![Action::CancelWait { token }];
        actions.extend(self.on_withdrawal_retry_due(token).unwrap_or_default());
        actions
    }

    /// The world's answer to `DropCandidate`.
    pub(super) fn on_dropped(
        &mut self,
        generation: String,
        result: Result<(), String>,
    ) -> Vec<Action> {
        // Exiting: a manager started again puts the view back first.
        let ours = self.phase != Phase::Done
            && self
                .withdrawing
                .as_ref()
                .is_some_and(|w| w.generation == generation);
        match (result, ours) {
            (Err(reason), true) => {
                let token = self.next_token();
                let Some(w) = self.withdrawing.as_mut() else {
                    return vec![];
                };
                let after = w.retry;
                error!(
                    "Cannot take candidate {generation} off the child's directory ({reason}): no child starts on it and no signal reaches the child meanwhile; retrying in {after:?}"
                );
                w.retry = (after * 2).min(BACKOFF_MAX);
                w.retry_token = Some(token);
                w.refused = true;
                vec![Action::RetryAfter { token, after }]
            }
            // Never shown (or exiting): nothing waits for it.
            (Err(reason), false) => {
                warn!("Candidate {generation} could not be removed: {reason}");
                vec![]
            }
            (Ok(()), true) => self.withdrawn(),
            (Ok(()), false) => vec![],
        }
    }

    /// The candidate is off the view: what waited goes on (the signals,
    /// the start, newer bytes, the gate's and the hooks' retries).
    fn withdrawn(&mut self) -> Vec<Action> {
        let Some(w) = self.withdrawing.take() else {
            return vec![];
        };
        if w.refused {
            info!(
                "Candidate {} is off the child's directory now",
                w.generation
            );
        }
        let mut actions = vec![];
        // For the child that ran when they came (no other started since),
        // unless it is being stopped (its stop signal went first): a child
        // started now must not die of one before it has its handlers.
        // Each one it is told (the signals, the hooks' retry below) keeps a
        // candidate off its view for a moment (`hush_for_a_moment`): newer
        // bytes released here are staged, and checked in place after it.
        let child = matches!(self.phase, Phase::Running | Phase::Delaying);
        for sig in w.signals {
            match child {
                true => actions.extend(self.forward_mapped(sig)),
                false => debug!("No child to forward {} to", signals::name(sig)),
            }
        }
        let newer = w.waits.newer;
        match w.waits.start.filter(|_| self.phase == Phase::Starting) {
            // On the last good generation, as decided; newer bytes are
            // judged once it runs.
            Some(Action::Spawn) => {
                if newer.is_some() {
                    self.judge_after_start = newer;
                }
                actions.push(Action::Spawn);
            }
            // The start's look sees the newest bytes itself.
            Some(look) => actions.push(look),
            None => {
                let gate = matches!(
                    self.phase,
                    Phase::Running | Phase::Backoff { .. } | Phase::CheckingBeforeStart
                );
                if let Some(now) = newer.filter(|_| gate) {
                    actions.extend(self.begin(now, w.waits.restart));
                }
            }
        }
        // The config in flight whose retry came due meanwhile (unless the
        // newer bytes above took its place).
        let due = self.pending.as_mut().filter(|p| p.step == gate::Step::Due);
        if let Some(p) = due {
            p.step = gate::Step::Waiting;
            let token = p.token;
            actions.extend(self.on_retry_due(token));
        }
        if let Some(token) = w.hooks_waits {
            actions.extend(self.on_hooks_retry_due(token));
        }
        actions
    }
}
