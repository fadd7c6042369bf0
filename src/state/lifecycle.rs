//! The child's life: starting, forwarding, stopping (signal, deadline,
//! SIGKILL of the group), the restart policy with its backoff, and acting on
//! an approved change (a restart, a reload signal, an external reload).

use super::*;

/// A signal whose default action kills nobody: it is ignored, continues,
/// or stops (what the sender asked for).
pub(super) fn harmless(sig: i32) -> bool {
    matches!(
        sig,
        libc::SIGCHLD
            | libc::SIGCONT
            | libc::SIGURG
            | libc::SIGWINCH
            | libc::SIGTSTP
            | libc::SIGTTIN
            | libc::SIGTTOU
    )
}

/// Paths for a log line.
fn display(paths: &[PathBuf]) -> Vec<String> {
    paths.iter().map(|p| p.display().to_string()).collect()
}

/// Queues `sig` for a child that cannot take it yet, as the kernel keeps
/// pending ones: a standard signal once; a continue cancels the stops
/// queued before it, and a stop the continue; real-time signals each, up
/// to about `EARLY_MAX` (the kernel's own queue is bounded too). False when
/// it was not queued.
pub(super) fn queue(held: &mut Vec<i32>, sig: i32) -> bool {
    let standard = sig < 32;
    if standard && held.contains(&sig) {
        return false;
    }
    let stop = |s: i32| matches!(s, libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU);
    if sig == libc::SIGCONT {
        held.retain(|&s| !stop(s));
    } else if stop(sig) {
        held.retain(|&s| s != libc::SIGCONT);
    }
    // At most 29 standard signals are ever held: only real-time ones count
    // against the bound.
    if !standard && held.len() >= EARLY_MAX {
        debug!("Dropped {}: too many signals wait", signals::name(sig));
        return false;
    }
    held.push(sig);
    if !standard && held.len() == EARLY_MAX {
        warn!("{EARLY_MAX} signals wait for the child: any more are dropped");
    }
    true
}

pub(super) fn is_shutdown(sig: i32) -> bool {
    sig == libc::SIGTERM || sig == libc::SIGINT
}

impl Machine {
    pub(super) fn restart(&mut self) -> Vec<Action> {
        let stop = self.settings.stop_signal;
        self.stop(AfterStop::Restart, stop)
    }

    /// Where a forwarded signal goes after `--map-signal` (None: dropped).
    pub(super) fn mapped(&self, sig: i32) -> Option<i32> {
        match self
            .settings
            .map_signal
            .iter()
            .find(|(from, _)| *from == sig)
        {
            Some((_, to)) => *to,
            None => Some(sig),
        }
    }

    /// Forwards `sig` to the child (or its group), as `--map-signal` says.
    /// A candidate shown in place for its check is withdrawn first (any
    /// signal may be the one that makes the child read its config: SIGHUP,
    /// or whatever it was mapped to), and the signal goes once the world
    /// says it is off the view.
    pub(super) fn forward(&mut self, sig: i32) -> Vec<Action> {
        match self.mapped(sig) {
            Some(to) => self.forward_mapped(to),
            None => {
                debug!("Dropped {} (--map-signal)", signals::name(sig));
                vec![]
            }
        }
    }

    /// Sends `to` (already mapped) on to the child (or its group).
    pub(super) fn forward_mapped(&mut self, to: i32) -> Vec<Action> {
        let mut actions = self.withdraw_candidate(&format_args!(
            "Forwarding {} to the child",
            signals::Named(to)
        ));
        // One that may make it read its config: no candidate is shown to it
        // for a moment.
        if !self.stops(to) && !harmless(to) {
            actions.extend(self.hush_for_a_moment());
        }
        // Once the candidate is off the child's view (the world answers
        // its removal first).
        if self.signal_held(to) {
            return actions;
        }
        // A SIGCONT after a signal (as `timeout` sends its TERM) kills
        // nothing: the log names the signal before it.
        if to != libc::SIGCONT || self.sent.is_none() {
            self.sent = Some(to);
        }
        actions.push(Action::Signal(to, self.settings.signal_to));
        actions
    }

    /// The child just started: the signals held for it go now, mapped, in
    /// order; but not one it would die of. Just started, it has no handler
    /// yet: a signal meant for it must not end it before it could install
    /// one. It is safe from those whose default action kills nobody and
    /// from those it inherited blocked or ignored (a child started with
    /// signals blocked reads them itself, later). Decided from what the
    /// child inherits, not from /proc: a shell that forks at once blocks
    /// every signal for an instant, and would look safe.
    pub(super) fn release_held(&mut self) -> Vec<Action> {
        let held: Vec<i32> = std::mem::take(&mut self.early)
            .into_iter()
            .filter_map(|sig| self.mapped(sig))
            .collect();
        let mut actions = vec![];
        let mut dropped: Vec<i32> = vec![];
        for sig in held {
            let inherited =
                (1..=64).contains(&sig) && self.settings.inherited_safe & (1u64 << (sig - 1)) != 0;
            if harmless(sig) || inherited {
                actions.extend(self.forward_mapped(sig));
            } else if !dropped.contains(&sig) {
                dropped.push(sig);
                warn!(
                    "Dropped {}, which came before the child started: it has no handler for it yet and would die of it",
                    signals::name(sig)
                );
            }
        }
        actions
    }

    /// Keeps `sig` for the first child.
    fn hold(&mut self, sig: i32) -> Vec<Action> {
        if queue(&mut self.early, sig) {
            debug!("Holding {} until the child starts", signals::name(sig));
        }
        vec![]
    }

    /// Does `sig` stop, end or pause the child rather than ask it to read
    /// anything (the stop signal, SIGQUIT, job control)? Those are never
    /// held for a candidate's withdrawal: a user stopping the child must
    /// not wait for a disk to heal.
    pub(super) fn stops(&self, sig: i32) -> bool {
        let stopping = [
            libc::SIGQUIT,
            libc::SIGCONT,
            libc::SIGTSTP,
            libc::SIGTTIN,
            libc::SIGTTOU,
            libc::SIGKILL,
            libc::SIGSTOP,
        ];
        is_shutdown(sig) || sig == self.settings.stop_signal || stopping.contains(&sig)
    }

    /// What the machine decided so far, counted.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// A child runs: started, and its exit not reported yet. (The world
    /// holds its pid; this is all the loop needs to know of it.)
    pub fn child_alive(&self) -> bool {
        matches!(
            self.phase,
            Phase::Running | Phase::Delaying | Phase::Stopping { exited: None, .. }
        )
    }

    /// How often the readiness probe runs now: while a child runs, with a
    /// probe configured.
    pub fn probe_every(&self) -> Option<Duration> {
        self.settings.ready_interval.filter(|_| self.child_alive())
    }

    /// The child exited and its process group is not known to be empty:
    /// the world is to look at the group until it is (`Event::GroupGone`).
    pub fn awaits_group(&self) -> bool {
        matches!(
            self.phase,
            Phase::Stopping {
                exited: Some(_),
                group_gone: false,
                ..
            }
        )
    }

    /// The config the running child has (a fingerprint for metrics).
    pub fn child_bytes(&self) -> &Snapshot {
        &self.child_bytes
    }

    pub(super) fn done(&mut self, code: i32) -> Vec<Action> {
        self.phase = Phase::Done;
        let mut actions = self.cancel_hooks();
        actions.extend(self.cancel_pending());
        self.say_still_shown();
        actions.push(Action::Exit(code));
        actions
    }

    /// Every (re)start: a look at the config first (`on_candidate`).
    pub(super) fn spawn(&mut self) -> Vec<Action> {
        self.phase = Phase::Starting;
        vec![Action::Fingerprint]
    }

    /// Starts stopping the running child: `sig` to `--signal-to`, SIGCONT
    /// to whoever is stopped (it could not act on `sig` otherwise), then the
    /// clock.
    pub(super) fn stop(&mut self, after: AfterStop, sig: i32) -> Vec<Action> {
        info!("Stopping child process with {}", signals::name(sig));
        self.sent = Some(sig);
        self.stopping(after, None, sig, self.settings.signal_to)
    }

    /// The stop phase and its first actions. With `exited`, the child is
    /// already gone and `sig` is for what it left in its group.
    pub(super) fn stopping(
        &mut self,
        after: AfterStop,
        exited: Option<(Status, Duration)>,
        sig: i32,
        to: Target,
    ) -> Vec<Action> {
        self.phase = Phase::Stopping {
            after,
            exited,
            killed: false,
            group_gone: false,
        };
        // A change in flight, or a reload of the old child, is moot: the
        // next child's start looks at the config afresh.
        let mut actions = self.cancel_pending();
        actions.extend(self.cancel_hooks());
        actions.push(Action::Signal(sig, to));
        if sig != libc::SIGCONT {
            actions.push(Action::ContinueStopped(to));
        }
        actions.push(Action::StopDeadline(Some(self.settings.stop_timeout)));
        actions
    }

    pub(super) fn on_signal(&mut self, sig: i32) -> Vec<Action> {
        // dumb-init's `-r 15:0` / `-r 2:0`: dropped, so no shutdown either.
        if is_shutdown(sig) && self.mapped(sig).is_none() {
            info!(
                "Received {}, dropped (--rewrite): not stopping",
                signals::name(sig)
            );
            return vec![];
        }
        // SIGTERM stops with the configured stop signal; SIGINT stays SIGINT
        // unless rewritten (dumb-init's `-r 2:15`: the child gets SIGTERM).
        let stop_with = if sig == libc::SIGTERM {
            self.settings.stop_signal
        } else {
            self.mapped(sig).unwrap_or(sig)
        };
        match &mut self.phase {
            // The start's look is still out: no child yet, nothing to stop
            // or drain (waiting out a stop deadline for nobody would leave
            // a SIGTERM unanswered for --stop-timeout).
            Phase::Starting if is_shutdown(sig) => {
                info!(
                    "Received {} before the child started, exiting",
                    signals::name(sig)
                );
                self.done(128 + sig)
            }
            Phase::Running if sig == libc::SIGTERM && !self.settings.stop_delay.is_zero() => {
                info!(
                    "Received SIGTERM, stopping child process in {:?} (--stop-delay)",
                    self.settings.stop_delay
                );
                self.phase = Phase::Delaying;
                // A change in flight is moot now (a candidate checked in
                // place must not stay shown while the child drains).
                let mut actions = self.cancel_pending();
                actions.push(Action::StopDelay(self.settings.stop_delay));
                actions
            }
            Phase::Running | Phase::Delaying if is_shutdown(sig) => {
                info!("Received {}, stopping child process", signals::name(sig));
                self.stop(AfterStop::Exit, stop_with)
            }
            // Before the first child runs (its start's look, or the check
            // before it), a signal waits for it: nothing is lost before the
            // child exists, as with tini, whose child gets what came before
            // its fork.
            Phase::Starting | Phase::CheckingBeforeStart | Phase::AwaitingFix
                if !self.started && !is_shutdown(sig) =>
            {
                self.hold(sig)
            }
            Phase::Starting | Phase::Running | Phase::Delaying => self.forward(sig),
            Phase::Stopping { after, .. } => {
                // Still transparent while stopping; a shutdown request wins
                // over a pending restart, and the deadline keeps running.
                if is_shutdown(sig) && *after != AfterStop::Exit {
                    info!(
                        "Received {} while stopping: will exit instead of restarting",
                        signals::name(sig)
                    );
                    *after = AfterStop::Exit;
                }
                if is_shutdown(sig) {
                    self.sent = Some(stop_with);
                    vec![Action::Signal(stop_with, self.settings.signal_to)]
                } else {
                    self.forward(sig)
                }
            }
            Phase::CheckingBeforeStart | Phase::AwaitingFix if is_shutdown(sig) => {
                info!(
                    "Received {} with no child running (config check or rejected config), exiting",
                    signals::name(sig)
                );
                self.done(128 + sig)
            }
            Phase::CheckingBeforeStart | Phase::AwaitingFix => vec![],
            Phase::Backoff { status } if is_shutdown(sig) => {
                info!(
                    "Received {} during restart backoff, exiting",
                    signals::name(sig)
                );
                let code = status.code();
                self.done(code)
            }
            Phase::Backoff { .. } => {
                debug!(
                    "No child to forward {} to (restart backoff)",
                    signals::name(sig)
                );
                vec![]
            }
            Phase::Done => vec![],
        }
    }

    /// How the child's death reads in the log.
    pub(super) fn describe_exit(&self, status: Status) -> String {
        match (status, self.sent) {
            (Status::Signaled(n), Some(s)) if n == s => {
                format!("died of the {} we sent", signals::name(n))
            }
            (_, Some(s)) => format!("exited with {status} (after we sent {})", signals::name(s)),
            (_, None) => format!("exited on its own with {status}"),
        }
    }

    pub(super) fn on_exit(&mut self, status: Status, ran_for: Duration) -> Vec<Action> {
        let how = self.describe_exit(status);
        // Ctrl-C on the terminal the child held: the user wants it all to stop.
        let ctrl_c = self.settings.interactive && status == Status::Signaled(libc::SIGINT);
        match &mut self.phase {
            Phase::Stopping { exited, after, .. } => {
                info!(code = status.code(); "Child process {how}");
                *exited = Some((status, ran_for));
                if ctrl_c && *after != AfterStop::Exit {
                    info!("Interrupted from the terminal (Ctrl-C): exiting, not restarting");
                    *after = AfterStop::Exit;
                }
                vec![]
            }
            Phase::Running | Phase::Delaying => {
                info!(code = status.code(); "Child process {how}");
                let after = if ctrl_c {
                    info!(
                        "Interrupted from the terminal (Ctrl-C): exiting, whatever --restart says"
                    );
                    AfterStop::Exit
                } else if self.phase == Phase::Delaying {
                    // SIGTERM already asked us to exit.
                    AfterStop::Exit
                } else {
                    AfterStop::ByPolicy
                };
                // Within --rollback-window: back to the previous generation,
                // and a new child on it, whatever --restart says.
                let mut actions = match after {
                    AfterStop::ByPolicy => self.roll_back_on_exit(status),
                    _ => vec![],
                };
                // (Never when SIGTERM asked us to exit: a rollback under way
                // goes on while the child's group drains; the record it
                // wrote is what a restarted manager starts on.)
                let rolls = !actions.is_empty() || self.rolling.is_some();
                let after = match after {
                    AfterStop::ByPolicy if rolls => AfterStop::Restart,
                    after => after,
                };
                // Leftovers in its group get the stop signal too (ESRCH, and
                // so nothing, in the common case of an empty group).
                let sig = self.settings.stop_signal;
                actions.extend(self.stopping(after, Some((status, ran_for)), sig, Target::Group));
                actions
            }
            // No child runs in these phases (Starting: the start's look is
            // out, or the start is being performed), so none can exit.
            Phase::Starting
            | Phase::CheckingBeforeStart
            | Phase::AwaitingFix
            | Phase::Backoff { .. }
            | Phase::Done => vec![],
        }
    }

    /// `--stop-delay` is over: the stop signal now (unless the stop began
    /// already: a second request, or the child's own exit).
    pub(super) fn on_delay_over(&mut self) -> Vec<Action> {
        if self.phase != Phase::Delaying {
            return vec![];
        }
        let stop = self.settings.stop_signal;
        self.stop(AfterStop::Exit, stop)
    }

    pub(super) fn on_deadline(&mut self) -> Vec<Action> {
        let Phase::Stopping {
            after,
            exited,
            killed,
            ..
        } = &mut self.phase
        else {
            return vec![];
        };
        if !*killed {
            warn!(
                "Stop timeout ({:?}) expired, sending SIGKILL to the process group",
                self.settings.stop_timeout
            );
            *killed = true;
            return vec![Action::KillGroup, Action::StopDeadline(Some(KILL_GRACE))];
        }
        match (exited.is_some(), *after) {
            (true, _) => {
                warn!(
                    "Processes of the child's group survived SIGKILL for {KILL_GRACE:?}; leaving them"
                );
                self.finish(true)
            }
            (false, AfterStop::Exit) => {
                warn!("Child survived SIGKILL for {KILL_GRACE:?}; exiting anyway");
                self.done(128 + libc::SIGKILL)
            }
            (false, _) => {
                warn!(
                    "Child survived SIGKILL for {KILL_GRACE:?}; still waiting before starting another"
                );
                vec![]
            }
        }
    }

    /// Called when the group may be gone: finishes once the child exited too.
    pub(super) fn finish_stop(&mut self) -> Vec<Action> {
        match self.phase {
            Phase::Stopping {
                exited: Some(_),
                group_gone: true,
                ..
            } => self.finish(false),
            _ => vec![],
        }
    }

    pub(super) fn finish(&mut self, timed_out: bool) -> Vec<Action> {
        let Phase::Stopping {
            after,
            exited: Some((status, ran_for)),
            ..
        } = self.phase
        else {
            return vec![];
        };
        let mut actions = if timed_out {
            vec![]
        } else {
            vec![Action::StopDeadline(None)]
        };
        actions.extend(match after {
            AfterStop::Exit => self.done(status.code()),
            AfterStop::Restart => self.spawn(),
            AfterStop::ByPolicy => self.by_policy(status, ran_for),
        });
        actions
    }

    pub(super) fn by_policy(&mut self, status: Status, ran_for: Duration) -> Vec<Action> {
        let success = status == Status::Exited(0);
        match self.settings.restart {
            Policy::Never => return self.done(status.code()),
            Policy::OnFailure if success => return self.done(0),
            _ => {}
        }
        if let Some(max) = self.settings.max_restarts
            && self.restarts >= max
        {
            warn!("Child exited with {status}; giving up after {max} restarts");
            return self.done(status.code());
        }
        self.reason = Reason::Policy;
        if ran_for >= BACKOFF_RESET_AFTER {
            self.next_backoff = BACKOFF_FIRST;
        }
        let delay = self.next_backoff;
        self.next_backoff = (delay * 2).min(BACKOFF_MAX);
        self.restarts += 1;
        info!(
            "Restarting child process in {delay:?} (restart {})",
            self.restarts
        );
        self.phase = Phase::Backoff { status };
        vec![Action::Backoff(delay)]
    }

    /// Acts on a (validated) change: reload or restart the running child,
    /// or cut a restart backoff short.
    pub(super) fn apply(&mut self, now: Snapshot) -> Vec<Action> {
        self.fresh = true;
        if matches!(self.phase, Phase::Backoff { .. }) {
            info!("Config file change detected during restart backoff, starting child process now");
            self.reason = Reason::Config;
            return self.spawn();
        }
        self.act(now)
    }

    pub(super) fn act(&mut self, now: Snapshot) -> Vec<Action> {
        let changed = fingerprint::changes(&self.child_bytes, &now)
            .into_iter()
            .map(|c| c.path)
            .collect();
        self.deliver(now, changed, "Config file change detected")
    }

    /// Brings the child onto `now` the configured way, file by file
    /// (`--on-change`): a restart, reload signals, reload hooks (each told
    /// of its files in `changed`), or nothing; `why` opens the log line.
    pub(super) fn deliver(
        &mut self,
        now: Snapshot,
        changed: Vec<PathBuf>,
        why: &str,
    ) -> Vec<Action> {
        self.reason = Reason::Config;
        let plan = self.plan(&changed);
        if plan.is_quiet() {
            self.quiet_burst(now, display(&plan.quiet));
            // Promoted with nothing to try out: no window for it.
            if self.probation.as_ref().is_some_and(|p| !p.running) {
                return self.prove();
            }
            return vec![];
        }
        if !plan.restart.is_empty() {
            if self.settings.routes.is_empty() {
                info!("{why}, restarting child process...");
            } else {
                info!(
                    "{why}, restarting child process... (for {})",
                    display(&plan.restart).join(", ")
                );
            }
            let sig = self.settings.stop_signal;
            return self.stop(AfterStop::Restart, sig);
        }
        self.child_bytes = now;
        let sigs: Vec<i32> = plan.signals.iter().map(|(sig, _)| *sig).collect();
        // The child is told to read its config (a rollback's reload can come
        // while newer bytes are checked in place): not the candidate.
        let mut actions = self.withdraw_candidate(&"Reloading the child");
        actions.extend(self.hush_for_a_moment());
        if !plan.hooks.is_empty() {
            info!("{why}, reloading the child");
            actions.extend(self.run_hooks(plan.hooks, !sigs.is_empty()));
        }
        if let Some(&last) = sigs.last() {
            let names: Vec<String> = sigs.iter().map(|s| signals::name(*s)).collect();
            info!("{why}, sending {} to child process", names.join(" and "));
            self.sent = Some(last);
            actions.push(Action::SendReloadSignals(sigs, self.settings.signal_to));
        }
        actions
    }
}
