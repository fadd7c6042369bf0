//! What an approved burst of changes does (`--on-change`): each changed
//! file takes the action of the first rule matching it, or the global one
//! (`--reload-command`/`--reload-url`, `--reload-signal`, else a restart).
//! A restart subsumes the rest; otherwise every distinct signal is sent and
//! every distinct hook runs once, told of the files that chose it. Files
//! that chose `none` never act: a burst of only those is not a change.

use super::*;
use crate::route::Act;
use std::path::Path;

/// One burst's actions.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Plan {
    /// Files that asked for a restart (then nothing else runs).
    pub(super) restart: Vec<PathBuf>,
    /// Reload signals, each with the files that chose it.
    pub(super) signals: Vec<(i32, Vec<PathBuf>)>,
    pub(super) hooks: Vec<HookCall>,
    /// Files that chose `none`.
    pub(super) quiet: Vec<PathBuf>,
}

impl Plan {
    /// Nothing to do: every file chose `none`.
    pub(super) fn is_quiet(&self) -> bool {
        self.restart.is_empty() && self.signals.is_empty() && self.hooks.is_empty()
    }
}

impl Machine {
    /// The global action, in the rules' terms.
    fn global_acts(&self) -> Vec<Act> {
        if self.settings.reload_external() {
            return (0..self.settings.reload_hooks).map(Act::Hook).collect();
        }
        match self.settings.reload_signal {
            Some(sig) => vec![Act::Signal(sig)],
            None => vec![Act::Restart],
        }
    }

    /// What the changed files ask for, together.
    pub(super) fn plan(&self, changed: &[PathBuf]) -> Plan {
        let mut plan = Plan::default();
        let global = self.global_acts();
        for path in changed {
            let rule = self.settings.routes.rule_for(path);
            let acts = rule.map_or(global.as_slice(), |r| std::slice::from_ref(&r.act));
            if !self.settings.routes.is_empty() {
                let chose = rule.map_or("the global action".into(), |r| {
                    format!("--on-change {}={}", r.pattern, describe(&r.act))
                });
                debug!("{}: {chose}", path.display());
            }
            for act in acts {
                let file = path.clone();
                match *act {
                    Act::Restart => plan.restart.push(file),
                    Act::Nothing => plan.quiet.push(file),
                    Act::Signal(sig) => match plan.signals.iter_mut().find(|(s, _)| *s == sig) {
                        Some((_, files)) => files.push(file),
                        None => plan.signals.push((sig, vec![file])),
                    },
                    Act::Hook(hook) => match plan.hooks.iter_mut().find(|c| c.hook == hook) {
                        Some(call) => call.changed.push(file),
                        None => plan.hooks.push(HookCall {
                            hook,
                            changed: vec![file],
                        }),
                    },
                }
            }
        }
        plan.hooks.sort_by_key(|c| c.hook);
        plan
    }

    /// Did this file choose `none`?
    pub(super) fn is_quiet(&self, path: &Path) -> bool {
        let routes = &self.settings.routes;
        !routes.is_empty() && routes.rule_for(path).is_some_and(|r| r.act == Act::Nothing)
    }

    /// Do `a` and `b` differ only in files that chose `none`?
    pub(super) fn same_but_quiet(&self, a: &Snapshot, b: &Snapshot) -> bool {
        a == b
            || (!self.settings.routes.is_empty()
                && a.keys()
                    .chain(b.keys())
                    .filter(|path| a.get(*path) != b.get(*path))
                    .all(|path| self.is_quiet(path)))
    }

    /// Are these the bytes the last check rejected, or those the last
    /// rollback left, but for files that chose `none`? Those change nothing
    /// the child acts on, so they do not earn the rest a second chance.
    pub(super) fn is_rejected(&self, now: &Snapshot) -> bool {
        let rolled_back = self.rolled_back_from.as_ref().map(|g| &g.snapshot);
        self.rejected
            .iter()
            .chain(rolled_back)
            .any(|r| self.same_but_quiet(r, now))
    }

    /// A burst that is not a change (`--on-change ...=none` for every
    /// file): said, and remembered as seen, so it is not said again. No
    /// check, no promotion, no `--min-interval` turn: with `--promote-to`
    /// such files reach the child's directory with the next real change.
    pub(super) fn quiet_burst(&mut self, now: Snapshot, files: Vec<String>) {
        info!(
            "Config change ignored (--on-change none): {}",
            files.join(", ")
        );
        self.child_bytes = now;
    }
}

/// An action as `--on-change` spells it.
fn describe(act: &Act) -> String {
    match act {
        Act::Restart => "restart".into(),
        Act::Nothing => "none".into(),
        Act::Signal(sig) => format!("signal:{}", signals::name(*sig)),
        Act::Hook(i) => format!("hook {i}"),
    }
}
