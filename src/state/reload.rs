//! The external reload (`--reload-command`, or one or more `--reload-url`):
//! one in flight or waiting to be retried, identified by its token; a newer
//! change supersedes it. Each hook is retried on its own: a retry runs only
//! the hooks that failed, and the change counts as reloaded once every hook
//! has succeeded.

use super::*;

/// The external reload in flight or waiting to be retried.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Reload {
    pub(super) token: u64,
    /// The files it is for.
    pub(super) changed: Vec<PathBuf>,
    /// The hooks (by index) that have not succeeded yet.
    pub(super) left: Vec<usize>,
    /// The delay before the next retry.
    pub(super) next: Duration,
}

impl Machine {
    /// Starts the reload of `changed` (superseding one still running or
    /// waiting).
    pub(super) fn run_reload(&mut self, changed: Vec<PathBuf>) -> Vec<Action> {
        let mut actions = self.cancel_reload();
        self.last_token += 1;
        let token = self.last_token;
        let hooks: Vec<usize> = (0..self.settings.reload_hooks).collect();
        self.reload = Some(Reload {
            token,
            changed: changed.clone(),
            left: hooks.clone(),
            next: BACKOFF_FIRST,
        });
        actions.push(Action::RunReload {
            token,
            changed,
            hooks,
        });
        actions
    }

    /// The hooks of a `RunReload` ended; `failed` lists those that did not
    /// succeed.
    pub(super) fn on_reloaded(&mut self, token: u64, failed: Vec<usize>) -> Vec<Action> {
        let Some(r) = self.reload.as_mut() else {
            return vec![];
        };
        if r.token != token {
            debug!("Ignoring the result of a superseded reload");
            return vec![];
        }
        r.left = failed;
        if r.left.is_empty() {
            info!("Reload succeeded");
            self.stats.reloads_ok += 1;
            self.reload = None;
            return self.child_took_new_bytes();
        }
        self.stats.reloads_failed += 1;
        let after = r.next;
        r.next = (after * 2).min(BACKOFF_MAX);
        match self.settings.reload_hooks {
            0 | 1 => error!("Reload failed; retrying in {after:?}"),
            all => error!(
                "Reload failed ({} of {all} URLs); retrying in {after:?} (those alone)",
                r.left.len()
            ),
        }
        vec![Action::RetryAfter { token, after }]
    }

    pub(super) fn on_reload_retry_due(&mut self, token: u64) -> Vec<Action> {
        match &self.reload {
            Some(r) if r.token == token && self.phase == Phase::Running => {
                info!("Retrying the reload");
                vec![Action::RunReload {
                    token,
                    changed: r.changed.clone(),
                    hooks: r.left.clone(),
                }]
            }
            _ => vec![],
        }
    }

    pub(super) fn cancel_reload(&mut self) -> Vec<Action> {
        match self.reload.take() {
            Some(_) => vec![Action::CancelReload],
            None => vec![],
        }
    }
}
