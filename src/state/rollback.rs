//! After the check: `--rollback-window` and the readiness probe. A config
//! can pass `nginx -t` and still break the app (a port another process
//! holds, a certificate the clients refuse). For the window after new bytes
//! reach the child, the previous good generation is kept; if the child exits
//! on its own or the readiness probe fails `ready_failures` times in a row
//! meanwhile, the directory goes back to it, the child follows, and the new
//! bytes stay rejected until the source changes again.

use super::*;

/// The generation to go back to while the shown one is on probation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Probation {
    pub(super) previous: Generation,
    /// The child has the new bytes (started on them, or reloaded): the
    /// window runs. Before that, nothing the child does is their fault.
    pub(super) running: bool,
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
    /// retry) and were dropped for the rollback: judged again after it.
    newer: Option<Snapshot>,
}

/// The readiness probe's recent results.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Readiness {
    /// The last result since the child started (None: none yet).
    pub(super) last: Option<bool>,
    /// Failures in a row.
    pub(super) failures: u32,
}

impl Machine {
    /// A generation was committed and shown: the previous one is kept for
    /// the rollback window, or forgotten at once.
    pub(super) fn committed(&mut self, new: String) -> Vec<Action> {
        let previous = self.shown.replace(new.clone());
        let mut actions = vec![];
        // Superseded while on probation: the generation before it is moot.
        if let Some(older) = self.probation.take() {
            actions.push(Action::Forget {
                generation: older.previous.name,
            });
        }
        let previous = previous.filter(|p| *p != new);
        match (previous, self.settings.rollback_window) {
            (Some(name), Some(_)) => {
                let snapshot = self.approved.clone().unwrap_or_default();
                self.probation = Some(Probation {
                    previous: Generation { name, snapshot },
                    running: false,
                });
                actions.push(Action::ProbationDeadline(None));
            }
            (None, Some(_)) => {
                info!(
                    "No previous good generation to roll back to: generation {new} is kept whatever the child does"
                );
                actions.push(Action::ProbationDeadline(None));
            }
            (Some(name), None) => actions.push(Action::Forget { generation: name }),
            (None, None) => {}
        }
        actions
    }

    /// The child now has the new bytes: the window starts.
    pub(super) fn child_took_new_bytes(&mut self) -> Vec<Action> {
        match (self.probation.as_mut(), self.settings.rollback_window) {
            (Some(p), Some(window)) if !p.running => {
                p.running = true;
                // Only failures on the new bytes count.
                self.ready.failures = 0;
                vec![Action::ProbationDeadline(Some(window))]
            }
            _ => vec![],
        }
    }

    /// Is the window running?
    fn on_probation(&self) -> bool {
        self.probation.as_ref().is_some_and(|p| p.running)
    }

    /// The window passed with the child up: the new generation stays.
    pub(super) fn on_probation_over(&mut self) -> Vec<Action> {
        if !self.on_probation() {
            return vec![];
        }
        match self.probation.take().map(|p| p.previous) {
            Some(previous) => {
                info!(
                    "Generation {} held for --rollback-window; dropping {}",
                    self.shown.as_deref().unwrap_or("?"),
                    previous.name
                );
                vec![Action::Forget {
                    generation: previous.name,
                }]
            }
            None => vec![],
        }
    }

    /// A readiness result.
    pub(super) fn on_probed(&mut self, ok: bool) -> Vec<Action> {
        if self.phase != Phase::Running {
            return vec![];
        }
        let was = self.ready.last;
        self.ready.last = Some(ok);
        if ok {
            if was == Some(false) {
                info!("Readiness probe passed again");
            }
            self.ready.failures = 0;
            return vec![];
        }
        self.ready.failures += 1;
        warn!("Readiness probe failed ({} in a row)", self.ready.failures);
        if self.ready.failures < self.settings.ready_failures || !self.on_probation() {
            return vec![];
        }
        let why = format!(
            "the readiness probe failed {} times in a row",
            self.ready.failures
        );
        self.roll_back(why, false)
    }

    /// On probation, the child exiting on its own is the new bytes' fault:
    /// true when a rollback was asked for (the next child then starts on
    /// the previous generation, if the rollback takes).
    pub(super) fn roll_back_on_exit(&mut self, status: Status) -> Vec<Action> {
        if !self.on_probation() {
            return vec![];
        }
        self.roll_back(format!("the child exited with {status}"), true)
    }

    /// Asks the world to put the previous good generation back. Whatever is
    /// in flight goes first: a candidate checked in place would otherwise
    /// lose its view under the check (and pass on bytes it never saw). The
    /// machine believes the rollback only once the world says it took.
    fn roll_back(&mut self, why: String, on_exit: bool) -> Vec<Action> {
        let Some(previous) = self.probation.take().map(|p| p.previous) else {
            return vec![];
        };
        let bad = self.shown.clone().unwrap_or_default();
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
            newer,
        });
        actions
    }

    /// The world's answer to `RollBack`.
    pub(super) fn on_rolled_back(&mut self, result: Result<(), String>) -> Vec<Action> {
        let Some(r) = self.rolling.take() else {
            return vec![];
        };
        if let Err(e) = result {
            error!(
                "Within --rollback-window {}, but generation {} cannot be restored ({e}): keeping {}",
                r.why, r.previous.name, r.bad
            );
            // The child's exit goes to the restart policy, as without the
            // window.
            if let Phase::Stopping { after, .. } = &mut self.phase
                && r.on_exit
                && *after == AfterStop::Restart
            {
                *after = AfterStop::ByPolicy;
            }
            return self.judge_again(r.newer);
        }
        error!(
            "Within --rollback-window {}: rolled back from generation {} to {} (the new config stays rejected until the source changes)",
            r.why, r.bad, r.previous.name
        );
        self.shown = Some(r.previous.name);
        self.rejected = self.approved.replace(r.previous.snapshot);
        self.stats.rollbacks += 1;
        self.failed();
        if r.on_exit {
            // The stop under way restarts the child, onto what DIR shows
            // (its start's gate looks at the source afresh).
            return vec![];
        }
        let mut actions = self.back_onto_last_good();
        actions.extend(self.judge_again(r.newer));
        actions
    }

    /// Bytes that were in flight when the rollback dropped them: nothing
    /// else would bring them back (no new event comes for bytes already
    /// settled), so they go through the gate again, unless rejected.
    fn judge_again(&mut self, newer: Option<Snapshot>) -> Vec<Action> {
        match newer {
            Some(now)
                if self.phase == Phase::Running
                    && self.pending.is_none()
                    && !self.is_rejected(&now)
                    && !self.is_approved(&now) =>
            {
                info!("Checking again the config that was in flight when the rollback began");
                self.begin(now, false)
            }
            _ => vec![],
        }
    }

    /// The child is told of the last good bytes as it was of the bad ones:
    /// reloaded, or restarted, as the files that differ ask.
    fn back_onto_last_good(&mut self) -> Vec<Action> {
        let good = self.approved.clone().unwrap_or_default();
        let mut differ = fingerprint::changes(&self.base, &good);
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
            Phase::Starting | Phase::Checking => return Err("the child is starting".into()),
            Phase::Held => return Err("no child: the config was rejected".into()),
            Phase::Delaying | Phase::Stopping { .. } => {
                return Err("the child is being stopped".into());
            }
            Phase::Backoff { .. } => return Err("restart backoff".into()),
            Phase::Done => return Err("exiting".into()),
        }
        if !self.settings.ready_probe {
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
