//! The external reload (`--reload-command`, one or more `--reload-url`,
//! and the commands and URLs of `--on-change` rules): one burst's hooks in
//! flight or waiting to be retried, identified by its token; a newer change
//! supersedes it. Each hook is retried on its own: a retry runs only the
//! hooks that failed, and the change counts as reloaded once every hook has
//! succeeded.

use super::*;

/// The external reload in flight or waiting to be retried.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Reload {
    pub(super) token: u64,
    /// The hooks that have not succeeded yet, each with its files.
    pub(super) left: Vec<HookCall>,
    /// How many hooks it started with.
    pub(super) of: usize,
    /// The delay before the next retry.
    pub(super) next: Duration,
    /// Waits for the burst's reload signals to be sent: if the child lacks
    /// a handler it is restarted instead, and these never run.
    pub(super) after_signals: bool,
    /// Its hooks run now (not waiting for the signals or a retry).
    pub(super) running: bool,
}

impl Machine {
    /// Starts the reload hooks of a burst; `after_signals`: not before `ReloadSignalsSent`.
    /// A reload still running or waiting is superseded, but what it had not
    /// yet done is not lost: its hooks join this run, with their files
    /// (another file's hook, failed and waiting for its retry, would
    /// otherwise never run again).
    pub(super) fn run_hooks(
        &mut self,
        mut calls: Vec<HookCall>,
        after_signals: bool,
    ) -> Vec<Action> {
        if let Some(old) = &self.reload {
            for call in &old.left {
                match calls.iter_mut().find(|c| c.hook == call.hook) {
                    Some(c) => c.changed.extend(call.changed.iter().cloned()),
                    None => calls.push(call.clone()),
                }
            }
            calls.sort_by_key(|c| c.hook);
            for c in &mut calls {
                c.changed.sort();
                c.changed.dedup();
            }
        }
        let mut actions = self.cancel_hooks();
        let token = self.next_token();
        self.reload = Some(Reload {
            token,
            left: calls.clone(),
            of: calls.len(),
            next: BACKOFF_FIRST,
            after_signals,
            running: !after_signals,
        });
        if !after_signals {
            actions.push(Action::RunHooks { token, calls });
        }
        actions
    }

    /// The child has new bytes that passed the gate (a start on them, a
    /// reload of them that succeeded): the last change took.
    pub(super) fn took_if_fresh(&mut self) {
        if self.fresh {
            self.stats.took += 1;
            self.stats.last_failed = false;
        }
    }

    /// The last change cannot reach the child (rejected, not promoted,
    /// rolled back): until newer bytes pass the gate, no start or reload is
    /// a success of it (a crash restart on the older bytes included).
    pub(super) fn failed(&mut self) {
        self.stats.last_failed = true;
        self.fresh = false;
    }

    /// The source holds the bytes the child runs with (put back after a
    /// rejection or a rollback, the usual fix): nothing is failing, unless
    /// a reload of them is still under way: only its success says the
    /// child took them, and it does (a change that failed meanwhile no
    /// longer stands between). No success time: nothing new reached the
    /// child. The source changed again: bytes the check rejected are
    /// checked again if pushed again (a rollback's rejection stands until
    /// newer bytes are promoted, as `..rejected` records).
    pub(super) fn source_is_the_childs(&mut self) {
        self.rejected = None;
        match self.reload.is_none() {
            true => self.stats.last_failed = false,
            false => self.fresh = true,
        }
    }

    /// The burst's reload signals were sent: its hooks may run now.
    pub(super) fn release_hooks(&mut self) -> Vec<Action> {
        match self.reload.as_mut().filter(|r| r.after_signals) {
            Some(r) => {
                r.after_signals = false;
                r.running = true;
                vec![Action::RunHooks {
                    token: r.token,
                    calls: r.left.clone(),
                }]
            }
            None => vec![],
        }
    }

    /// The hooks of a `RunHooks` ended; `failed` lists those that did not
    /// succeed.
    pub(super) fn on_hooks_done(&mut self, token: u64, failed: Vec<usize>) -> Vec<Action> {
        let Some(r) = self.reload.as_mut() else {
            return vec![];
        };
        if r.token != token || r.after_signals {
            debug!("Ignoring the result of a superseded reload");
            return vec![];
        }
        r.left.retain(|c| failed.contains(&c.hook));
        r.running = false;
        // A hook may return while the child still reads its config (`nginx
        // -s reload` does): no candidate is shown to it for a moment.
        let mut actions = self.hush_for_a_moment();
        let Some(r) = self.reload.as_mut() else {
            return actions;
        };
        if r.left.is_empty() {
            info!("Reload succeeded");
            self.stats.reloads_ok += 1;
            self.took_if_fresh();
            self.reload = None;
            actions.extend(self.child_took_new_bytes(true));
            return actions;
        }
        self.stats.reloads_failed += 1;
        // The same bytes are retried: their success still counts.
        self.stats.last_failed = true;
        let after = r.next;
        r.next = (after * 2).min(BACKOFF_MAX);
        match r.of {
            0 | 1 => error!("Reload failed; retrying in {after:?}"),
            all => error!(
                "Reload failed ({} of {all} hooks); retrying in {after:?} (those alone)",
                r.left.len()
            ),
        }
        actions.push(Action::RetryAfter { token, after });
        actions
    }

    pub(super) fn on_hooks_retry_due(&mut self, token: u64) -> Vec<Action> {
        match &self.reload {
            Some(r) if r.token == token && !r.after_signals && self.phase == Phase::Running => {
                let calls = r.left.clone();
                // Not while a candidate is shown in place: the hooks make
                // the child read its config.
                if self.hooks_held(token) {
                    return vec![];
                }
                let mut actions = self.withdraw_candidate(&"Retrying the reload");
                actions.extend(self.hush_for_a_moment());
                if self.hooks_held(token) {
                    return actions;
                }
                info!("Retrying the reload");
                if let Some(r) = self.reload.as_mut() {
                    r.running = true;
                }
                actions.push(Action::RunHooks { token, calls });
                actions
            }
            _ => vec![],
        }
    }

    pub(super) fn cancel_hooks(&mut self) -> Vec<Action> {
        match self.reload.take() {
            Some(_) => vec![Action::CancelHooks],
            None => vec![],
        }
    }
}
