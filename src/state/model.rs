//! The one model of the world the supervisor acts on, for tests: the
//! machine's property test (`state/props.rs`, which feeds events by hand)
//! and the loop's scripted world (`supervisor/fake.rs`, which runs the real
//! loop on a virtual clock) both answer through it, so a rule of the world
//! is written once and a wrong one cannot hide behind a second, different
//! copy.
//!
//! What it holds: the source's bytes (two files in one version number:
//! `app.conf` is `version % 10`, `notes.txt` is `version / 10`), the
//! `--promote-to` directory as `promote.rs` keeps it on disk (generations,
//! `..good`, `..proven`, `..rejected`, `..data` outside a check and now, the
//! disk's faults), the checks' verdicts (and checks that cannot start),
//! which bytes a child may start on and is ready with, and the test
//! processes (`Procs`: one child, its group, what each signal does to
//! them, which signals may make the child read its config). Every action
//! that changes the directory or reaches the child checks the invariants
//! the machine owes it (panicking, which both test harnesses report as a
//! failure).

use super::{CommitFailed, Generation, Promoted, Settings, Status, Target, Token};
use crate::route::Act;
use crate::signals::Takes;
use crate::watch::fingerprint::Snapshot;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Instant;

/// The validator rejects this `app.conf` version.
pub const BAD: u64 = 3;
/// A child on this `app.conf` version never passes a readiness probe.
pub const NOT_READY: u64 = 4;
pub const APP: &str = "/c/app.conf";
pub const NOTES: &str = "/c/notes.txt";

pub fn app(version: u64) -> u64 {
    version % 10
}

pub fn notes(version: u64) -> u64 {
    version / 10
}

pub fn snap(version: u64) -> Snapshot {
    super::testkit::two_files(version)
}

/// The test processes, as both worlds run them: one child at a time (the
/// leader of its process group), what a signal does to it, and its group,
/// addressed until found empty after the child's end.
#[derive(Debug, Default)]
pub struct Procs {
    pub child: Option<Proc>,
    /// The child died (how, and which); the reaper has not said so yet.
    pub died: Option<(Status, Proc)>,
    /// The child's group is addressed: from its start until it is found
    /// empty after its end.
    pub group: bool,
    /// The next children ignore SIGTERM (only SIGKILL ends them).
    pub stubborn: bool,
    /// The next children handle the reload signals from their start (else
    /// only once they install their handlers: `Proc::handles`).
    pub catches: bool,
    /// With `--signal-to group`: one more process in the child's group, and
    /// what a reload signal does to it.
    pub worker: Option<Takes>,
    /// Children started so far (a probe is for the one it was asked about).
    pub spawns: u64,
    /// The bytes the last child to end ran on.
    pub last: Option<u64>,
}

#[derive(Debug)]
pub struct Proc {
    /// Its `Op::Run` (0 until asked for, right after its start).
    pub token: Token,
    /// The config version it runs (started on, or last read).
    pub version: u64,
    pub stubborn: bool,
    /// Its handlers for the reload signals are installed.
    pub handles: bool,
    /// Signals it inherited ignored (a mask: bit `n - 1` for signal `n`).
    pub ignores: u64,
    /// `--validate-in-place`: it is starting up (its start period runs,
    /// and no probe passed yet): it may read its config any moment.
    pub starting: bool,
    pub started: Instant,
}

impl Procs {
    /// The child dies of `status`, if one runs: its end is for the reaper
    /// to report.
    pub fn dies(&mut self, status: Status) {
        if let Some(c) = self.child.take() {
            self.last = Some(c.version);
            self.died = Some((status, c));
        }
    }

    /// Is anyone there to take a signal sent `to`? A child dead but not
    /// yet reaped takes it and does nothing with it, as a zombie does.
    pub fn there(&self, to: Target) -> bool {
        match to {
            Target::Child => self.child.is_some() || self.died.is_some(),
            Target::Group => self.group,
        }
    }

    /// The edge's rule for the reload signals `sigs` the group may die
    /// of, on the test processes: the leader (0) handles them once its
    /// handlers are installed; the worker (1, only addressed with
    /// `--signal-to group`) as `worker` says.
    pub fn handling(&self, sigs: &[i32], to: Target) -> Option<(i32, bool)> {
        let handles = self.child.as_ref().is_some_and(|c| c.handles);
        let members: &[i32] = match (to, self.worker) {
            (Target::Group, Some(_)) => &[0, 1],
            _ => &[0],
        };
        let takes = |member, _| match member {
            0 if handles => Some(Takes::Handled),
            0 => Some(Takes::Unhandled),
            _ => self.worker,
        };
        crate::signals::reload_verdict(sigs, 0, members, takes)
    }
}

impl Proc {
    /// Does it die of `sig` (`stop`: its `--stop-signal`)? SIGKILL always;
    /// SIGTERM, SIGINT, SIGQUIT and its stop signal unless it is stubborn;
    /// HUP and USR1/USR2 while it has no handler (their default action),
    /// unless it inherited them ignored; nothing else.
    fn dies_of(&self, sig: i32, stop: i32) -> bool {
        use nix::libc::*;
        let ignored = (1..=64).contains(&sig) && self.ignores & (1u64 << (sig - 1)) != 0;
        match sig {
            SIGKILL => true,
            SIGTERM | SIGINT | SIGQUIT => !self.stubborn,
            _ if sig == stop => !self.stubborn,
            SIGHUP | SIGUSR1 | SIGUSR2 => !self.handles && !ignored,
            _ => false,
        }
    }
}

/// What a signal did (`Model::signal`).
#[derive(Debug)]
pub struct Sent {
    /// Someone was there to take it.
    pub reached: bool,
    /// It may make the child read its config.
    pub reads: bool,
    /// The child read other bytes than it had, these, on it.
    pub read_other: Option<u64>,
}

#[derive(Debug)]
pub struct Model {
    pub settings: Settings,
    /// The child and its group.
    pub procs: Procs,
    /// The source's version (what the watched files hold now).
    pub source: u64,
    /// The check's verdict on a version, and the readiness probe's on the
    /// child that runs one.
    pub validator: fn(u64) -> bool,
    pub ready_for: fn(u64) -> bool,
    /// The source never changes between a check and the start it allows
    /// (events come one at a time): every start is on checked bytes, with
    /// `--promote-to` or without.
    pub instant_source: bool,
    /// `--promote-to`'s directory: generation name -> version.
    pub gens: BTreeMap<String, u64>,
    /// `..good`: the durable record of the last good generation.
    pub good: Option<String>,
    /// `..proven`: written while `good` is on probation (None: `good` is
    /// the proven one). Dropped as soon as `..good` names a generation that
    /// is proven at once, even when its view could not follow (a double
    /// fault): left, it would name a generation nothing goes back to, and a
    /// restarted manager would judge proven bytes on probation again.
    pub proven_record: Option<String>,
    /// `..rejected`: the generation last rolled back from, kept until the
    /// next commit of new bytes.
    pub rejected: Option<String>,
    /// What `..data` shows outside a check in place: `good`, unless a
    /// commit's view could not follow its record.
    pub view: Option<String>,
    /// What `..data` shows now (a candidate, during a check in place).
    pub shown: Option<String>,
    /// Every write to the directory fails (a full disk).
    pub disk_fails: bool,
    /// The view cannot switch: a commit's record moves without it.
    pub view_fails: bool,
    /// A candidate shown in place cannot be taken off the view (DIR
    /// remounted read-only during its check, or both spare names of the
    /// view's link taken by directories).
    pub unshow_fails: bool,
    /// A candidate shown in place whose removal `unshow_fails` refused:
    /// shown until a removal asked again takes.
    pub stray: Option<String>,
    /// A candidate shown in place whose check could not start, or whose
    /// commit the disk refused: shown until the machine, having taken that
    /// answer, drops it (by the end of that turn, unless the disk keeps it
    /// there: `stray`).
    pub unchecked: Option<String>,
    /// No check can start: no descriptor, process or memory for it
    /// (EMFILE, EAGAIN, ENOMEM), a fault of ours that says nothing of the
    /// bytes.
    pub checks_fail: bool,
    /// Versions a check passed (whatever the candidate): with `--validate`
    /// a child starts only on bytes one of them holds.
    pub checked_ok: Vec<u64>,
    next_gen: u64,
    /// Candidates whose check passed.
    pub passed: BTreeSet<String>,
    /// The generation a rollback may land on, as the model works it out:
    /// the first committed, or one proven after its window (or with nothing
    /// to try out).
    pub proven: Option<String>,
    /// The bytes last rolled back from, until the source changes or new
    /// bytes are committed: never shown to the child meanwhile.
    pub rolled_back: Option<u64>,
    /// Every version ever rolled back from.
    pub ever_rolled_back: BTreeSet<u64>,
}

impl Model {
    pub fn new(settings: Settings) -> Model {
        Model {
            settings,
            procs: Procs::default(),
            source: 0,
            validator: |v| app(v) != BAD,
            ready_for: |v| app(v) != NOT_READY,
            instant_source: false,
            gens: BTreeMap::new(),
            good: None,
            proven_record: None,
            rejected: None,
            view: None,
            shown: None,
            disk_fails: false,
            view_fails: false,
            unshow_fails: false,
            stray: None,
            unchecked: None,
            checks_fail: false,
            checked_ok: vec![],
            next_gen: 0,
            passed: BTreeSet::new(),
            proven: None,
            rolled_back: None,
            ever_rolled_back: BTreeSet::new(),
        }
    }

    /// A directory that already holds a last good generation of `version`.
    pub fn with_good(&mut self, version: u64) {
        let g = "..gen-old".to_string();
        self.gens.insert(g.clone(), version);
        // Checked by the run that promoted it.
        self.checked_ok.push(version);
        self.good = Some(g.clone());
        self.proven = Some(g.clone());
        self.view = Some(g.clone());
        self.shown = Some(g);
    }

    /// Passes the check (the validator's verdict, when checks are on).
    pub fn passes(&self, version: u64) -> bool {
        !self.settings.validate || (self.validator)(version)
    }

    /// What a change of `path` asks for.
    pub fn acts(&self, path: &str) -> Vec<Act> {
        let s = &self.settings;
        if let Some(rule) = s.routes.rule_for(Path::new(path)) {
            return vec![rule.act.clone()];
        }
        if s.reload_external() {
            return (0..s.reload_hooks).map(Act::Hook).collect();
        }
        vec![s.reload_signal.map_or(Act::Restart, Act::Signal)]
    }

    /// Does `notes.txt` ask for nothing?
    pub fn notes_quiet(&self) -> bool {
        self.acts(NOTES) == [Act::Nothing]
    }

    /// The same bytes, as far as the child cares.
    pub fn same(&self, a: u64, b: u64) -> bool {
        app(a) == app(b) && (notes(a) == notes(b) || self.notes_quiet())
    }

    /// The source settles on `version`: a rollback's rejection ends once
    /// the bytes differ.
    pub fn write(&mut self, version: u64) {
        if !self.same(version, self.source) {
            self.rolled_back = None;
        }
        self.source = version;
    }

    /// The version a child reads now: what the directory shows, or the
    /// source itself.
    pub fn readable(&self) -> u64 {
        match &self.shown {
            Some(g) if self.settings.promote => self.gens[g],
            _ => self.source,
        }
    }

    /// Nothing is on probation on disk: `..proven` is gone or names the
    /// last good generation itself (a failed commit may leave it so).
    pub fn good_is_proven(&self) -> bool {
        self.proven_record.is_none() || self.proven_record == self.good
    }

    /// The view lags the record (a commit whose view could not follow).
    pub fn behind(&self) -> bool {
        self.good != self.view
    }

    /// The bytes `version` reach the child (a start, a reload, a check in
    /// place): never those rolled back from.
    pub fn not_rolled_back(&self, version: u64) {
        assert_ne!(
            self.rolled_back,
            Some(version),
            "a rolled-back generation reached the child again"
        );
    }

    /// A child starts (never a second one, nor while the last one's group
    /// is addressed): the version it reads, checked.
    pub fn spawn(&mut self, now: Instant) -> u64 {
        let p = &self.procs;
        assert!(
            p.child.is_none() && p.died.is_none() && !p.group,
            "a second child"
        );
        let version = self.readable();
        if self.settings.promote {
            assert!(
                self.shown.is_some() && (self.shown == self.good || self.behind()),
                "a child started on an empty directory or a candidate"
            );
        }
        if self.settings.promote || self.instant_source {
            assert!(
                self.passes(version),
                "a child started on bytes the validator rejects"
            );
            assert!(
                !self.settings.validate || self.checked_ok.iter().any(|c| self.same(*c, version)),
                "a child started on bytes no check passed"
            );
        }
        self.not_rolled_back(version);
        let p = &mut self.procs;
        p.spawns += 1;
        p.group = true;
        p.child = Some(Proc {
            token: 0,
            version,
            stubborn: p.stubborn,
            handles: p.catches,
            ignores: self.settings.inherited_safe,
            starting: self.settings.validate_in_place,
            started: now,
        });
        version
    }

    /// The child's start period ran out, or a probe of it passed: it is
    /// up, and reads its config only when told to.
    pub fn started_up(&mut self) {
        if let Some(c) = self.procs.child.as_mut() {
            c.starting = false;
        }
    }

    /// The child (if one runs) reads its config again, told to by a
    /// reload signal it handles or by reload hooks: what its directory
    /// shows, or the source. Never bytes rolled back from, unless it has
    /// them already (a rollback the view refused leaves them shown: a
    /// SIGHUP forwarded meanwhile reads nothing new).
    pub fn reread(&mut self) {
        let version = self.readable();
        let Some(had) = self.procs.child.as_ref().map(|c| c.version) else {
            return;
        };
        if had != version {
            self.not_rolled_back(version);
        }
        if let Some(c) = self.procs.child.as_mut() {
            c.version = version;
        }
    }

    /// What `sig` is to a test child. `None`: one that ends, stops or
    /// continues it. Else whether it may make the child read its config (a
    /// server reads on the signal it chose, never on one whose default
    /// action harms nobody). Only the first kind reaches a child whose
    /// directory shows a candidate.
    pub fn reads(&self, sig: i32) -> Option<bool> {
        use nix::libc::*;
        let ends_or_stops = [
            SIGTERM, SIGINT, SIGQUIT, SIGKILL, SIGSTOP, SIGCONT, SIGTSTP, SIGTTIN, SIGTTOU,
        ];
        if sig == self.settings.stop_signal || ends_or_stops.contains(&sig) {
            return None;
        }
        Some(![SIGCHLD, SIGURG, SIGWINCH].contains(&sig))
    }

    /// `sig` sent `to` the child or its group: what it did.
    pub fn signal(&mut self, to: Target, sig: i32) -> Sent {
        use nix::libc::{SIGHUP, SIGUSR1, SIGUSR2};
        let reads = self.reads(sig);
        if reads.is_some() {
            self.check_told(&crate::signals::name(sig));
        }
        let p = &mut self.procs;
        let mut sent = Sent {
            reached: p.there(to),
            reads: reads == Some(true),
            read_other: None,
        };
        let Some(c) = p.child.as_ref().filter(|_| sent.reached) else {
            sent.reads &= sent.reached;
            return sent;
        };
        let had = c.version;
        if c.dies_of(sig, self.settings.stop_signal) {
            p.dies(Status::Signaled(sig));
        } else if c.handles && [SIGHUP, SIGUSR1, SIGUSR2].contains(&sig) {
            // A test child reads its config on each of those it handles,
            // whoever sent it (a reload, or a user).
            self.reread();
            let now = self.procs.child.as_ref().map(|c| c.version);
            sent.read_other = now.filter(|v| *v != had);
        }
        sent
    }

    /// The child is told something that may make it read its config
    /// (`what`: a signal, reload hooks): never while its directory shows a
    /// candidate, if a child runs to read it.
    pub fn check_told(&self, what: &str) {
        assert!(
            self.procs.child.is_none() || !self.settings.promote || self.shown == self.view,
            "{what} sent while the child's directory shows candidate {:?}",
            self.shown
        );
    }

    /// The readiness probe's verdict on a child that runs `version`.
    pub fn ready(&self, version: u64) -> bool {
        (self.ready_for)(version)
    }

    /// A readiness probe's verdict as it ends: it reaches whatever child
    /// runs then (an HTTP probe sent before a restart may be answered by
    /// the new child), which passes it if it is ready on its bytes (not
    /// the file's). Which child it was asked about is the machine's to
    /// know, by the probe's token.
    pub fn probed(&self) -> bool {
        (self.procs.child.as_ref()).is_some_and(|c| self.ready(c.version))
    }

    /// What the child's directory shows is the last good generation, or a
    /// candidate only while it is checked in place (`in_check`).
    pub fn check_view(&self, in_check: impl FnOnce(&str) -> bool) {
        if !self.settings.promote || self.shown == self.good || self.behind() {
            return;
        }
        let checked = self.shown.as_deref().is_some_and(in_check)
            || self.shown == self.stray
            || self.shown == self.unchecked;
        assert!(
            self.settings.validate_in_place && checked,
            "the child's directory shows {:?}, not the last good {:?}",
            self.shown,
            self.good
        );
    }

    /// The check of `version` (a staged candidate, if named) starts; in
    /// place, the candidate is shown first. While `checks_fail`, its
    /// process cannot start (after the candidate was shown): no verdict,
    /// the reason instead.
    pub fn validate(&mut self, candidate: Option<&str>, in_place: bool) -> Result<u64, String> {
        assert!(
            !in_place || (self.settings.validate_in_place && candidate.is_some()),
            "shown in place without --validate-in-place"
        );
        let version = match candidate {
            Some(g) => {
                assert!(self.settings.promote, "a candidate without promotion");
                self.gens[g]
            }
            None => {
                assert!(!self.settings.promote, "an unstaged check with promotion");
                self.source
            }
        };
        if in_place {
            assert!(
                self.procs.child.as_ref().is_none_or(|c| !c.starting),
                "a candidate shown in place to a child starting up"
            );
            self.not_rolled_back(version);
            self.shown = candidate.map(String::from);
        }
        if self.checks_fail {
            self.unchecked = candidate.filter(|_| in_place).map(String::from);
            return Err("cannot run the validator: Resource temporarily unavailable".into());
        }
        Ok(version)
    }

    /// The verdict of the check of `version` (of `candidate`, if staged),
    /// remembered for the commit. A check of the live files reads them
    /// when it likes: here, at its end (a staged candidate never changes).
    pub fn verdict(&mut self, candidate: Option<&str>, version: u64) -> bool {
        let version = if candidate.is_some() {
            version
        } else {
            self.source
        };
        let ok = (self.validator)(version);
        if let Some(g) = candidate.filter(|_| ok) {
            self.passed.insert(g.to_string());
        }
        if ok && !self.checked_ok.contains(&version) {
            self.checked_ok.push(version);
        }
        ok
    }

    /// `--promote-to`: the source copied into a new hidden generation.
    pub fn stage(&mut self) -> Result<Generation, String> {
        if self.disk_fails {
            return Err("No space left on device".into());
        }
        self.next_gen += 1;
        let name = format!("..g{}", self.next_gen);
        self.gens.insert(name.clone(), self.source);
        Ok(Generation {
            name,
            snapshot: snap(self.source),
        })
    }

    /// `..proven` (with `proven`), then `..good` name `generation`, then
    /// the view switches to it; on failure the answer says what `..good`
    /// names, as the promoter reads it back.
    pub fn commit(
        &mut self,
        generation: &str,
        proven: Option<&str>,
        now: &Promoted,
    ) -> Result<(), CommitFailed> {
        self.knows(now);
        assert!(self.gens.contains_key(generation), "commit of {generation}");
        let version = self.gens[generation];
        self.not_rolled_back(version);
        match proven {
            Some(p) => {
                assert!(
                    self.settings.rollback_window.is_some(),
                    "probation without a window"
                );
                assert_eq!(
                    Some(p),
                    self.proven.as_deref(),
                    "a commit keeps another than the proven one"
                );
            }
            None => assert!(
                self.settings.rollback_window.is_none()
                    || self.proven.as_ref().is_none_or(|p| self.gens[p] == version),
                "proven at once with a proven one to go back to"
            ),
        }
        assert!(
            !self.settings.validate || self.passed.contains(generation),
            "a candidate promoted without passing its check"
        );
        if self.disk_fails {
            // Nothing written: the record names what it named. Named (a
            // retry), proven at once: `..proven` goes (removing a link
            // needs no space).
            let recorded = self.good.as_deref() == Some(generation);
            if recorded && proven.is_none() {
                self.proven_record = None;
            }
            let g = Some(generation);
            if !recorded && self.shown.as_deref() == g && self.view.as_deref() != g {
                self.unchecked = Some(generation.to_string());
            }
            return Err(CommitFailed {
                reason: "No space left on device".into(),
                recorded,
                gone: false,
            });
        }
        self.proven_record = proven.map(String::from);
        self.good = Some(generation.to_string());
        if proven.is_none() {
            self.proven = Some(generation.to_string());
        }
        // A candidate shown in place needs no switch: the fault cannot hold
        // it back.
        if self.view_fails && self.shown.as_deref() != Some(generation) {
            // Recorded, not shown: the machine must take the record.
            return Err(CommitFailed {
                reason: "Read-only file system".into(),
                recorded: true,
                gone: false,
            });
        }
        // New bytes shown (not the record put back to the view's): a
        // rollback's rejection is over (`..rejected` goes when the machine
        // says: `unreject`).
        if self.view.as_deref() != Some(generation) {
            self.rolled_back = None;
        }
        self.view = Some(generation.to_string());
        self.shown = self.view.clone();
        Ok(())
    }

    /// The last good generation ran through its window (`window_ran`, as
    /// the caller's clock says): it is the proven one.
    pub fn prove(&mut self, generation: &str, window_ran: bool) {
        assert_eq!(self.good.as_deref(), Some(generation), "proved another");
        assert!(window_ran, "proven before its window ran out");
        // A child takes `app.conf`'s bytes only at its start when changes
        // restart it: then its readiness is its own. (A reloaded child keeps
        // the readiness it had before the reload: not judged here.)
        let restarts = self.settings.reload_signal.is_none() && !self.settings.reload_external();
        assert!(
            !(self.settings.ready_interval.is_some() && restarts)
                || self.ready(self.gens[generation]),
            "proven a generation whose child is never ready"
        );
        self.proven = Some(generation.to_string());
        self.proven_record = None;
    }

    /// A candidate removed (the view restored if it showed it): never the
    /// last good, the proven or the viewed generation. Its version; Err
    /// while `unshow_fails` keeps it shown (it is kept).
    pub fn drop_candidate(
        &mut self,
        generation: &str,
        now: &Promoted,
    ) -> Result<Option<u64>, String> {
        self.knows(now);
        assert!(
            self.good.as_deref() != Some(generation)
                && self.proven.as_deref() != Some(generation)
                && self.proven_record.as_deref() != Some(generation)
                && self.view.as_deref() != Some(generation),
            "the last good, the proven or the viewed generation discarded"
        );
        if self.shown.as_deref() == Some(generation) {
            if self.unshow_fails {
                self.stray = Some(generation.to_string());
                return Err("cannot restore DIR: Read-only file system".into());
            }
            self.shown = self.view.clone();
        }
        if self.stray.as_deref() == Some(generation) {
            self.stray = None;
        }
        if self.unchecked.as_deref() == Some(generation) {
            self.unchecked = None;
        }
        Ok(self.gens.remove(generation))
    }

    /// At the end of a turn: a candidate shown for a check that never
    /// started, or whose commit the disk refused, is off the view again
    /// (unless the disk keeps it there).
    pub fn turn_ends(&self) {
        assert!(
            self.unchecked.is_none() || self.unchecked == self.stray,
            "a candidate shown in place for a check that could not start is still shown"
        );
    }

    /// What the machine tells the world the directory holds is what it
    /// holds: the world keeps no copy, and acts on this one.
    fn knows(&self, now: &Promoted) {
        assert_eq!(
            now.record, self.good,
            "the machine's record is not the disk's"
        );
        assert_eq!(now.view, self.view, "the machine's view is not the disk's");
    }

    /// A generation no longer needed goes: never the last good, the shown
    /// or the proven one, nor one `..proven` names (that record never lags
    /// the machine: every way it stops being proven drops the record
    /// first), nor the one `..rejected` names (`unreject` removes the
    /// record first). The machine decides; the promoter only removes.
    pub fn remove_generation(&mut self, generation: &str) {
        let g = Some(generation);
        assert!(
            self.good.as_deref() != g && self.shown.as_deref() != g && self.view.as_deref() != g,
            "forgot the generation the child sees"
        );
        assert!(self.proven.as_deref() != g, "forgot the proven generation");
        assert!(
            self.proven_record.as_deref() != g,
            "forgot the generation ..proven names"
        );
        assert!(
            self.rejected.as_deref() != g,
            "forgot the generation ..rejected names"
        );
        self.gens.remove(generation);
    }

    /// Back to the proven generation `to`: the record, then the view; `from`
    /// is kept as the rejected one (the one before it goes). On failure the
    /// answer says whether `..good` names `to`, as the promoter reads it
    /// back: a rollback whose view could not follow is recorded (a
    /// restarted manager shows `to`), and its bytes are rejected already.
    pub fn roll_back(&mut self, to: &str, from: &str) -> Result<(), CommitFailed> {
        assert!(
            self.settings.rollback_window.is_some(),
            "a rollback without the window"
        );
        assert!(
            self.gens.contains_key(to),
            "rolled back to a generation gone: {to}"
        );
        // From what the child's view shows (the record may name a newer
        // push that never reached it, or, on a retry, `to` already).
        assert_eq!(self.view.as_deref(), Some(from), "rolled back from another");
        let retried = self.good.as_deref() == Some(to);
        assert_eq!(
            self.proven.as_deref(),
            Some(to),
            "a rollback to a generation not proven"
        );
        assert_eq!(
            self.proven_record.as_deref(),
            Some(to),
            "a rollback to a generation not recorded as proven"
        );
        // Those bytes are rejected from the moment the rollback is asked
        // for: a machine that gave up on it, and started a child on them,
        // would be caught. Never the proven bytes themselves: a generation
        // holding them is proven at once, and `..proven` never outlives that
        // (a restarted manager would judge it again).
        let (to_bytes, from_bytes) = (self.gens[to], self.gens[from]);
        assert_ne!(to_bytes, from_bytes, "rolled back onto the same bytes");
        self.rolled_back = Some(from_bytes);
        self.ever_rolled_back.insert(from_bytes);
        if self.disk_fails {
            return Err(CommitFailed {
                reason: "No space left on device".into(),
                recorded: retried,
                gone: false,
            });
        }
        self.good = Some(to.to_string());
        // Recorded before the view moves: a restarted manager keeps them
        // rejected. The one named before stays until the machine forgets it.
        self.rejected = Some(from.to_string());
        // A candidate still shown in place holds the view as it holds its
        // own removal.
        let stuck = self.unshow_fails && self.shown != self.view;
        if self.view_fails || stuck {
            // Recorded, not shown: the child's view still shows `from`.
            return Err(CommitFailed {
                reason: "Read-only file system".into(),
                recorded: true,
                gone: false,
            });
        }
        self.view = self.good.clone();
        self.shown = self.good.clone();
        self.proven_record = None;
        Ok(())
    }

    /// New bytes were committed: `..rejected` (which must name
    /// `generation`) goes, and so does that generation.
    pub fn unreject(&mut self, generation: &str) {
        assert_eq!(
            self.rejected.as_deref(),
            Some(generation),
            "unrejected a generation ..rejected does not name"
        );
        assert!(
            self.rolled_back.is_none(),
            "a rollback's rejection ended before new bytes were shown"
        );
        self.rejected = None;
        self.remove_generation(generation);
    }

    /// The manager is killed and started again on the same disk: the
    /// directory as `Promoter::recover` leaves it (the view back on
    /// `..good`, every generation not recorded removed), and what it tells
    /// the new machine: the last good generation, the rejected bytes, the
    /// proven one while the last good one is on probation.
    pub fn recover(&mut self) -> (Option<Generation>, Option<Generation>, Option<Generation>) {
        let generation = |m: &Model, g: &String| Generation {
            name: g.clone(),
            snapshot: snap(m.gens[g]),
        };
        self.proven_record = self
            .proven_record
            .take()
            .filter(|p| self.good.is_some() && self.good.as_ref() != Some(p));
        // A rejection the disk does not record (a rollback that could not
        // write yet) is forgotten with the manager.
        if self.rejected.is_none() {
            self.rolled_back = None;
        }
        let kept = [&self.good, &self.rejected, &self.proven_record];
        self.gens
            .retain(|g, _| kept.iter().any(|k| k.as_ref() == Some(g)));
        self.view = self.good.clone();
        self.shown = self.good.clone();
        self.stray = None;
        self.unchecked = None;
        self.proven = self.proven_record.clone().or(self.good.clone());
        let good = self.good.as_ref().map(|g| generation(self, g));
        let rejected = self
            .rejected
            .as_ref()
            .filter(|g| self.gens.contains_key(*g))
            .map(|g| generation(self, g));
        let proven = self.proven_record.as_ref().map(|g| generation(self, g));
        (good, rejected, proven)
    }
}
