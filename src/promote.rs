//! `--promote-to DIR`, on disk: the child reads its config from DIR, never
//! from the watched sources. This module performs what the state machine
//! decides and decides nothing itself; its one judgement is what DIR's
//! durable record says at startup (`recover`).
//!
//! DIR's layout is the kubelet's, so no reader ever sees half a config:
//!
//! - `..gen<20-digit nanoseconds>.<4-digit sequence>/`: a generation, a
//!   complete copy of the sources, each file at its path relative to its
//!   source. Names sort by creation, though nothing depends on that.
//! - `..data -> <generation>`: what the child sees, switched by renaming a
//!   fresh `..data_tmp` over it (atomic);
//! - `name -> ..data/name`, one per top-level entry, made once;
//! - `..data_back -> <generation>`: while a candidate is shown in place for
//!   its check, what `..data` showed before: putting it back is one rename,
//!   which needs neither a free `..data_tmp` nor an inode;
//! - `..good -> <generation>`: the durable record of the last generation that
//!   passed its check (or, without `--validate`, was fully staged). It is
//!   written before `..data` is switched to that generation, and is the only
//!   thing a restarted manager trusts: a generation is never deleted while
//!   `..good` names it;
//! - `..proven -> <generation>`: while the last good generation is on
//!   probation (`--rollback-window`), the proven one a rollback goes back
//!   to; written before `..good` moves on, removed once the last good one is
//!   proven (absent: the last good one is the proven one). A restarted
//!   manager keeps it and judges the last good one again;
//! - `..rejected -> <generation>`: the generation rolled back from (after
//!   `--rollback-window`), kept so that a restarted manager knows those bytes
//!   stay rejected until the source changes; dropped at the next commit.
//!
//! A candidate is staged as a hidden generation that nothing points at; the
//! check reads it there (`FLUSH_MANAGER_CANDIDATE`), or, in the explicit
//! in-place mode, `..data` points at it for the check's duration only.

use crate::state::{CommitFailed, Generation, Promoted};
use crate::watch::fingerprint::{self, FileState, Snapshot};
use log::{debug, info, warn};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

const DATA: &str = "..data";
const DATA_TMP: &str = "..data_tmp";
/// While a candidate is shown in place: a link to what `..data` named
/// before, made before the candidate is shown, so that putting it back is
/// one rename.
const DATA_BACK: &str = "..data_back";
const GOOD: &str = "..good";
const GOOD_TMP: &str = "..good_tmp";
const REJECTED: &str = "..rejected";
const REJECTED_TMP: &str = "..rejected_tmp";
const PROVEN: &str = "..proven";
const PROVEN_TMP: &str = "..proven_tmp";
/// Every generation's name starts with this (never a user's `..` name).
const GEN_PREFIX: &str = "..gen";

#[derive(Clone)]
pub struct Promoter {
    dir: PathBuf,
    sources: Vec<PathBuf>,
    /// The last staging's files, as (path hash, state hash) sorted: enough
    /// to count what changed since, in 16 bytes a file.
    last_staged: Arc<Mutex<Vec<(u64, u64)>>>,
}

/// Where each source file lands: (source file, path relative to DIR).
type Layout = Vec<(PathBuf, PathBuf)>;

/// What a restarted manager finds in DIR.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// The last good generation.
    pub good: Option<Generation>,
    /// The generation last rolled back from (its bytes still rejected).
    pub rejected: Option<Generation>,
    /// The proven generation, when the last good one was on probation.
    pub proven: Option<Generation>,
}

impl Promoter {
    /// Checks that DIR is usable, that it and the sources do not overlap
    /// (judged on resolved paths: symlinks and `..` do not hide it), that no
    /// two sources land on the same path, and that every source file is a
    /// regular file; does not touch DIR's content.
    pub fn new(dir: PathBuf, sources: Vec<PathBuf>) -> Result<Promoter, String> {
        if sources.is_empty() {
            return Err("--promote-to needs a --config source".into());
        }
        create_dir(&dir)
            .map_err(|e| format!("--promote-to {}: cannot create it: {e}", dir.display()))?;
        let real_dir = resolved(&dir);
        for s in &sources {
            let real = resolved(s);
            if real.starts_with(&real_dir) || real_dir.starts_with(&real) {
                return Err(format!(
                    "--promote-to {} and the source {} overlap (resolved: {} and {}); \
                     promoting would copy DIR into itself",
                    dir.display(),
                    s.display(),
                    real_dir.display(),
                    real.display()
                ));
            }
        }
        // The child reads DIR's top-level names: one that is not ours (an
        // image's own default config) would be read instead of the promoted
        // one, and would never change.
        if let Ok(entries) = fs::read_dir(&dir) {
            for e in entries.flatten() {
                let name = e.file_name();
                let ours = name.as_encoded_bytes().starts_with(b"..")
                    || fs::read_link(e.path()).is_ok_and(|t| t.starts_with(DATA))
                    || is_empty_lost_found(&e.path());
                if !ours {
                    return Err(format!(
                        "--promote-to {}: {} is not flush-manager's; the child would read it instead of the promoted config (give an empty directory, an emptyDir)",
                        dir.display(),
                        e.path().display()
                    ));
                }
            }
        }
        let p = Promoter {
            dir,
            sources,
            last_staged: Arc::default(),
        };
        for (source, _) in p.layout()? {
            if let Some(kind) = special_kind(&source) {
                return Err(format!(
                    "--promote-to: the source {} is {kind}, not a regular file: it cannot be \
                     copied safely (reading it may block or never end)",
                    source.display()
                ));
            }
        }
        Ok(p)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Startup: makes DIR agree with its durable record. `..data` is pointed
    /// back at `..good`'s generation (a check in place, or a commit, may have
    /// been interrupted), and every other generation is removed. Returns
    /// the good generation's fingerprint (keyed by source paths), if any.
    pub fn recover(&self) -> io::Result<Recovered> {
        let _ = fs::remove_file(self.dir.join(DATA_TMP));
        let _ = fs::remove_file(self.dir.join(GOOD_TMP));
        let _ = fs::remove_file(self.dir.join(REJECTED_TMP));
        let _ = fs::remove_file(self.dir.join(PROVEN_TMP));
        let rejected = self.record(REJECTED);
        let good = self.record(GOOD);
        let proven = self
            .record(PROVEN)
            .filter(|p| good.is_some() && good.as_ref() != Some(p));
        if proven.is_none() {
            let _ = fs::remove_file(self.dir.join(PROVEN));
        }
        match &good {
            // Already shown: only the top-level links are checked (a
            // read-only DIR that needs no repair starts as it is).
            Some(g) if fs::read_link(self.dir.join(DATA)).ok().as_deref() == Some(Path::new(g)) => {
                self.sync_links(Some(g))?;
            }
            Some(g) => {
                self.put_back(Some(g))?;
                warn!(
                    "{}: the child's view was not the last good generation (an interrupted \
                     check or promotion); restored {g}",
                    self.dir.display()
                );
            }
            None => {
                if fs::symlink_metadata(self.dir.join(DATA)).is_ok() {
                    warn!(
                        "{}: holds a config with no record that it was approved; not using it",
                        self.dir.display()
                    );
                }
                let _ = fs::remove_file(self.dir.join(GOOD));
                self.hide()?;
            }
        }
        // A way back left by a check in place that never ended (used above,
        // if it named the last good generation).
        let _ = fs::remove_file(self.dir.join(DATA_BACK));
        for e in fs::read_dir(&self.dir)?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if is_generation(&name)
                && Some(&name) != good.as_ref()
                && Some(&name) != rejected.as_ref()
                && Some(&name) != proven.as_ref()
            {
                remove_tree(&e.path());
            }
        }
        Ok(Recovered {
            good: good.map(|g| Generation {
                snapshot: self.fingerprint(&g),
                name: g,
            }),
            rejected: rejected.map(|g| Generation {
                snapshot: self.fingerprint(&g),
                name: g,
            }),
            proven: proven.map(|g| Generation {
                snapshot: self.fingerprint(&g),
                name: g,
            }),
        })
    }

    /// The generation a record (`..good`, `..proven`, `..rejected`) names,
    /// if it is one and is there.
    fn record(&self, link: &str) -> Option<String> {
        fs::read_link(self.dir.join(link))
            .ok()
            .and_then(|g| g.to_str().map(String::from))
            .filter(|g| is_generation(g) && self.dir.join(g).is_dir())
    }

    /// The path a check reads a candidate at.
    pub fn candidate_path(&self, generation: &str) -> PathBuf {
        self.dir.join(generation)
    }

    /// Where each of `files` (found under the sources) is in `root`, the
    /// candidate or DIR. A path computation, no walk: it runs on the loop,
    /// at every check and reload. A file under two nested sources is placed
    /// by the innermost (the copy holds it under both).
    pub fn targets(&self, files: &[PathBuf], root: &Path) -> Vec<PathBuf> {
        files
            .iter()
            .map(|file| {
                self.sources
                    .iter()
                    .filter_map(|s| relative(s, file).map(|rel| (s.as_os_str().len(), rel)))
                    .max_by_key(|(depth, _)| *depth)
                    .map_or_else(|| file.clone(), |(_, rel)| root.join(rel))
            })
            .collect()
    }

    fn layout(&self) -> Result<Layout, String> {
        let mut by_target: BTreeMap<PathBuf, PathBuf> = BTreeMap::new();
        for source in &self.sources {
            for file in fingerprint::expand(source) {
                let Some(rel) = relative(source, &file) else {
                    continue;
                };
                if let Some(other) = by_target.insert(rel.clone(), file.clone()) {
                    return Err(format!(
                        "--promote-to: {} and {} would both become {}",
                        other.display(),
                        file.display(),
                        self.dir.join(&rel).display()
                    ));
                }
            }
        }
        Ok(by_target.into_iter().map(|(rel, src)| (src, rel)).collect())
    }

    /// The fingerprint of a generation's files, keyed by the source paths
    /// they were copied from (as the sources are laid out now).
    fn fingerprint(&self, generation: &str) -> Snapshot {
        let root = self.dir.join(generation);
        self.layout()
            .unwrap_or_default()
            .into_iter()
            .map(|(source, rel)| (source, fingerprint::file_state_in(&root.join(rel), &root)))
            .filter(|(_, state)| *state != FileState::Missing)
            .collect()
    }

    /// Copies the sources as they are now into a new hidden generation and
    /// makes it durable. Nothing the child sees changes. A source that is
    /// not a regular file is refused (never opened blocking).
    /// Files are copied as they are: mode bits (setuid, setgid and sticky
    /// too, where the filesystem keeps them), and owner and group when the
    /// manager runs as root; the directories below a source likewise. A
    /// symlink that stays inside its source stays a symlink (see
    /// `kept_links`); any other is copied as the file it leads to.
    /// The answer is the copy's own fingerprint: exactly the bytes a check
    /// of this generation judges and a commit promotes.
    pub fn stage(&self) -> Result<Generation, String> {
        let layout = self.layout()?;
        let links = self.kept_links(&layout);
        let generation = generation_name();
        let root = self.dir.join(&generation);
        let owner = Owner::ours();
        let copied = (|| -> io::Result<Snapshot> {
            fs::create_dir(&root)?;
            // Ours alone while it is filled, whatever the umask (0777
            // would let another user rename a file over a checked one);
            // its own mode comes last.
            fs::set_permissions(&root, fs::Permissions::from_mode(0o700))?;
            // Each directory made for the copies, with the one it copies.
            let mut dirs: BTreeMap<PathBuf, PathBuf> = BTreeMap::new();
            let mut written = Vec::with_capacity(layout.len());
            for (source, rel) in &layout {
                let dest = root.join(rel);
                if let Some(parent) = dest.parent() {
                    fs::create_dir_all(parent)?;
                }
                let (mut r, mut s) = (rel.parent(), source.parent());
                while let (Some(rd), Some(sd)) = (r, s) {
                    if rd.as_os_str().is_empty() {
                        break;
                    }
                    dirs.entry(rd.to_path_buf())
                        .or_insert_with(|| sd.to_path_buf());
                    (r, s) = (rd.parent(), sd.parent());
                }
                let result = match links.get(rel) {
                    Some(text) => copy_link(source, text, &dest, owner),
                    None => copy_regular(source, &dest, owner),
                };
                match result {
                    Ok(()) => written.push((source, rel)),
                    // Gone since the layout was read: promoted without it.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    // Became a FIFO, socket or device after startup (where
                    // it is refused): not config, as the watch said (its
                    // WARN), so not promoted; the rest still is.
                    Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
                        debug!("Not staging {}: {e}", source.display());
                        continue;
                    }
                    Err(e) => {
                        return Err(io::Error::new(
                            e.kind(),
                            format!("{}: {e}", source.display()),
                        ));
                    }
                }
            }
            // Deepest first: a directory's mode may take away the write
            // permission its own entries needed.
            for (rel, source_dir) in dirs.iter().rev() {
                copy_dir_attributes(source_dir, &root.join(rel), owner)
                    .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", rel.display())))?;
            }
            // The generation itself is the source directory the files came
            // from, as the directories below it are.
            match self.sources.iter().find(|s| s.is_dir()) {
                Some(top) => copy_dir_attributes(top, &root, owner)?,
                None => fs::set_permissions(&root, fs::Permissions::from_mode(0o755))?,
            }
            // Durable before any record may name it: the files were synced
            // one by one, then the directories that name them.
            sync_dir(&root)?;
            sync_dir(&self.dir)?;
            // The copies' own bytes, once all are there (a kept link reads
            // its target): what is judged is what was written.
            let mut snapshot = Snapshot::new();
            let mut bytes = 0u64;
            for (source, rel) in written {
                let state = fingerprint::file_state_in(&root.join(rel), &root);
                // A kept link whose target went in between: absent, as
                // the watch sees a dangling link.
                if state == FileState::Missing {
                    continue;
                }
                debug!(
                    "Staging {} -> {} ({state})",
                    source.display(),
                    self.dir.join(rel).display()
                );
                if let FileState::Content { len, .. } = state {
                    bytes += len;
                }
                snapshot.insert(source.clone(), state);
            }
            let changed = self.count_changed(&snapshot);
            // One line per promotion: a source of thousands of files would
            // otherwise log thousands of lines for one edit.
            info!(
                "Staged {} files ({bytes} bytes, {changed} new or changed) as {generation}",
                snapshot.len()
            );
            Ok(snapshot)
        })();
        match copied {
            Ok(snapshot) => Ok(Generation {
                name: generation,
                snapshot,
            }),
            Err(e) => {
                remove_tree(&root);
                Err(e.to_string())
            }
        }
    }

    /// How many files of `snapshot` are new or differ from the last
    /// staging's (all of them at the first); remembers this one.
    fn count_changed(&self, snapshot: &Snapshot) -> usize {
        let hash = |v: &dyn Fn(&mut std::hash::DefaultHasher)| {
            let mut h = std::hash::DefaultHasher::new();
            v(&mut h);
            std::hash::Hasher::finish(&h)
        };
        let mut now: Vec<(u64, u64)> = snapshot
            .iter()
            .map(|(path, state)| {
                (
                    hash(&|h| std::hash::Hash::hash(path, h)),
                    match state {
                        FileState::Content { len, hash } => hash ^ len.rotate_left(32),
                        _ => 0,
                    },
                )
            })
            .collect();
        now.sort_unstable();
        let mut last = self
            .last_staged
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let changed = now
            .iter()
            .filter(|(p, st)| {
                last.binary_search_by_key(p, |(lp, _)| *lp)
                    .map_or(true, |i| last[i].1 != *st)
            })
            .count();
        *last = now;
        changed
    }

    /// The symlinks below a source that are copied as symlinks (their
    /// text): relative ones that lead to another file of the same source
    /// and are not the kubelet's own layout (`key -> ..data/key`, reached
    /// through a `..` name). Their text then leads to that file's copy in
    /// the generation. A link out of its source (`/etc/shared/x.conf`, or
    /// absolute to a file of the source itself) is copied as the file it
    /// leads to, as is every source given by itself: as a link, the child
    /// would read those live bytes, not the checked copy.
    fn kept_links(&self, layout: &Layout) -> std::collections::HashMap<PathBuf, PathBuf> {
        let rel_of: std::collections::HashMap<&Path, &Path> = layout
            .iter()
            .map(|(src, rel)| (src.as_path(), rel.as_path()))
            .collect();
        let mut kept = std::collections::HashMap::new();
        for (source, rel) in layout {
            if self.sources.contains(source)
                || !fs::symlink_metadata(source).is_ok_and(|m| m.file_type().is_symlink())
            {
                continue;
            }
            let Ok(text) = fs::read_link(source) else {
                continue;
            };
            let kubelet = text.components().any(
                |c| matches!(c, Component::Normal(n) if n.as_encoded_bytes().starts_with(b"..")),
            );
            if text.is_absolute() || kubelet {
                continue;
            }
            let (Some(dir), Some(rel_dir)) = (source.parent(), rel.parent()) else {
                continue;
            };
            let target = normalise(&dir.join(&text));
            // The same file, at the same place relative to the link, in
            // the generation.
            if rel_of
                .get(target.as_path())
                .is_some_and(|t| *t == normalise(&rel_dir.join(&text)))
            {
                kept.insert(rel.clone(), text);
            }
        }
        kept
    }

    /// In-place mode: the child's view becomes the candidate for its check.
    /// `..good` is untouched, so a crash now restarts on the last good. The
    /// way back is made first (`..data_back`): once the candidate is shown,
    /// a full inode table or a squatted `..data_tmp` must not keep it there,
    /// nor leave `..data` dangling when it is removed.
    pub fn expose(&self, generation: &str) -> Result<(), String> {
        let back = self.dir.join(DATA_BACK);
        let _ = fs::remove_file(&back);
        if let Ok(shown) = fs::read_link(self.dir.join(DATA))
            && let Err(e) = symlink(shown, &back)
        {
            // Without it, putting the view back is a switch like any other.
            debug!("{}: no way back made ({e})", self.dir.display());
        }
        self.switch(generation).map_err(|e| e.to_string())
    }

    /// The view back on `view` after a check in place: by renaming the way
    /// back made before the candidate was shown, if it names `view`; else
    /// as any switch.
    fn put_back(&self, view: Option<&str>) -> io::Result<()> {
        let back = self.dir.join(DATA_BACK);
        match view {
            Some(v) if fs::read_link(&back).ok().as_deref() == Some(Path::new(v)) => {
                fs::rename(&back, self.dir.join(DATA))?;
                self.sync_links(view)
            }
            // Gone or not ours any more: made now, through its own name if
            // `..data_tmp` is taken.
            Some(v) => self.show(v).or_else(|e| {
                debug!(
                    "{}: {e}; putting the view back through {DATA_BACK}",
                    self.dir.display()
                );
                replace_link(&self.dir, DATA_BACK, DATA, v)?;
                self.sync_links(view)
            }),
            None => self.hide(),
        }
    }

    /// The candidate passed: with `proven` (the candidate goes on
    /// probation), `..proven` names that one first; then `..good` names the
    /// candidate (durably: the commit point), then the child's view switches
    /// to it. The previous good generation stays until `remove_generation`.
    /// `now` is what the directory held before, as the machine knows it.
    ///
    /// On failure the answer says what `..good` names now, read back from
    /// the disk: the machine takes that word, since a restarted manager
    /// trusts the record alone. `recorded`: the record names the candidate
    /// (the view could not follow, or a retried commit found it already
    /// recorded); the candidate is then the last good generation and is
    /// kept. The record is not put back here: while the view lags it, the
    /// machine retries this commit, or puts the record back to what the
    /// view shows, through the same operation. A candidate the record does
    /// not name is left for the machine to drop (`drop_candidate`).
    pub fn commit(
        &self,
        generation: &str,
        proven: Option<&str>,
        now: &Promoted,
    ) -> Result<(), CommitFailed> {
        // A candidate removed by hand since its check: nothing to record
        // (`..good` would name nothing, and a restarted manager, finding no
        // record, would remove every generation). The machine stages again.
        if !self.dir.join(generation).is_dir() {
            return Err(CommitFailed {
                reason: format!("generation {generation} is gone"),
                recorded: false,
                gone: true,
            });
        }
        let recorded = match proven {
            Some(p) => replace_link(&self.dir, PROVEN_TMP, PROVEN, p),
            None => Ok(()),
        }
        .and_then(|()| replace_link(&self.dir, GOOD_TMP, GOOD, generation))
        .and_then(|()| sync_dir(&self.dir));
        // Without `proven` the candidate is proven at once: once `..good`
        // names it, a `..proven` left from an earlier probation is stale.
        let proves = proven.is_none();
        if let Err(e) = recorded {
            // Not committed unless `..good` names it (a retry of a commit
            // whose record already moved finds it there: kept).
            return Err(self.failed(generation, proves, e, now));
        }
        if let Err(e) = self.show(generation) {
            return Err(self.failed(generation, proves, e, now));
        }
        if proves {
            self.drop_proven_record();
        }
        // A way back made for a check in place is moot now.
        let _ = fs::remove_file(self.dir.join(DATA_BACK));
        match now.view.as_deref() != Some(generation) {
            true => info!("Promoted generation {generation} to {}", self.dir.display()),
            false => info!(
                "{}: {GOOD} names generation {generation} again",
                self.dir.display()
            ),
        }
        Ok(())
    }

    /// A commit failed: the answer says whether `..good` names the
    /// candidate, as the disk holds it (not named, the machine drops it).
    /// Named by a commit that `proves` it at once, it is
    /// the proven one too: `..proven` goes, as after a commit that went
    /// through. Kept, it would name the generation an earlier probation
    /// went back to (the candidate holds its bytes: that is why it is proven
    /// at once), and a restarted manager would judge the candidate again
    /// against it: a child's exit in that window would roll the proven
    /// bytes back to themselves and reject them; nor could that generation
    /// ever be forgotten.
    fn failed(&self, generation: &str, proves: bool, e: io::Error, now: &Promoted) -> CommitFailed {
        let recorded = self.record(GOOD).as_deref() == Some(generation);
        if recorded && proves {
            self.drop_proven_record();
        }
        if recorded {
            warn!(
                "{}: {GOOD} names generation {generation} but the child's view could not \
                 follow ({e}); a restart shows it, the view is switched again on retry",
                self.dir.display()
            );
            // A candidate shown in place for its check goes back to what
            // the view showed before, as the machine believes (best effort:
            // the retried commit switches it anyway).
            let shows = fs::read_link(self.dir.join(DATA)).ok();
            if let Some(view) = now.view.as_deref()
                && shows.as_deref() != Some(Path::new(view))
                && let Err(e) = self.put_back(Some(view))
            {
                debug!("{}: {e}", self.dir.display());
            }
        }
        CommitFailed {
            reason: e.to_string(),
            recorded,
            gone: false,
        }
    }

    /// The last good generation ran through its probation: it is the
    /// proven one (`..proven` goes; absent, `..good` names the proven one).
    pub fn prove(&self, generation: &str) {
        if self.record(GOOD).as_deref() == Some(generation) {
            self.drop_proven_record();
        }
    }

    /// `..proven` removed, durably (if that fails, a restarted manager
    /// judges the last good generation once more: nothing is lost).
    fn drop_proven_record(&self) {
        match fs::remove_file(self.dir.join(PROVEN)) {
            Ok(()) => {
                if let Err(e) = sync_dir(&self.dir) {
                    debug!("{}: {e}", self.dir.display());
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => warn!("Cannot update {}/{PROVEN}: {e}", self.dir.display()),
        }
    }

    /// Removes a generation the machine no longer needs: it decides which.
    /// What the world promises beside: only a name of ours goes, and never
    /// what the child's view shows on disk (a switch that failed half way
    /// can leave `..data` where the machine does not believe it is), nor
    /// what `..good` names (the machine never asks for that: a bug, said).
    pub fn remove_generation(&self, generation: &str) {
        if self.kept_on_disk(generation, "remove") {
            return;
        }
        if is_generation(generation) {
            remove_later(self.dir.join(generation));
        }
    }

    /// Does the disk need `generation` whatever the machine asks to `what`
    /// it: the view shows it, or `..good` names it (said as a bug)?
    fn kept_on_disk(&self, generation: &str, what: &str) -> bool {
        let named = |link| fs::read_link(self.dir.join(link)).ok();
        let g = Some(PathBuf::from(generation));
        if named(GOOD) == g {
            log::error!(
                "{}: asked to {what} generation {generation}, which {GOOD} names: kept",
                self.dir.display()
            );
            return true;
        }
        if named(DATA) == g {
            debug!(
                "{}: not removing generation {generation}: the child's view shows it",
                self.dir.display()
            );
            return true;
        }
        false
    }

    /// Back to a generation kept for the rollback window: the durable record
    /// first, and `..rejected` naming `from`, so a restarted manager does
    /// not try those bytes again (if that write fails, nothing names
    /// `from`: the next startup removes it); then the child's view. On
    /// failure the answer says whether `..good` names `to`, read back from
    /// the disk (a view that could not follow: the machine asks again).
    pub fn roll_back(&self, to: &str, from: &str) -> Result<(), CommitFailed> {
        if !self.dir.join(to).is_dir() {
            return Err(CommitFailed {
                reason: format!("generation {to} is gone"),
                recorded: false,
                gone: true,
            });
        }
        (|| -> io::Result<()> {
            replace_link(&self.dir, GOOD_TMP, GOOD, to)?;
            if let Err(e) = replace_link(&self.dir, REJECTED_TMP, REJECTED, from) {
                warn!("Cannot update {}/{REJECTED}: {e}", self.dir.display());
            }
            sync_dir(&self.dir)?;
            self.show(to)
        })()
        .map_err(|e| CommitFailed {
            reason: e.to_string(),
            recorded: self.record(GOOD).as_deref() == Some(to),
            gone: false,
        })?;
        // Back on the proven one: nothing is on probation.
        self.drop_proven_record();
        Ok(())
    }

    /// New bytes went through: the rejection `..rejected` records (of
    /// `generation`) is over, and that generation goes.
    pub fn unreject(&self, generation: &str) {
        let named = fs::read_link(self.dir.join(REJECTED));
        if named.is_ok_and(|g| g == Path::new(generation))
            && let Err(e) = fs::remove_file(self.dir.join(REJECTED))
        {
            warn!("Cannot update {}/{REJECTED}: {e}", self.dir.display());
            return;
        }
        self.remove_generation(generation);
    }

    /// The candidate is rejected or moot: the child's view goes back to
    /// `now.view` (if the candidate was shown in place) and the candidate
    /// is removed. Err: the view still shows it (the disk refused even the
    /// way back); it is kept, or the view would dangle.
    pub fn drop_candidate(&self, generation: &str, now: &Promoted) -> Result<(), String> {
        // The machine never drops what the record names or the view is to
        // show (`now`); what `..good` names on disk is kept whatever asks.
        let shows = |g| fs::read_link(self.dir.join(DATA)).ok().as_deref() == Some(Path::new(g));
        let put_back = match shows(generation) {
            true => self.put_back(now.view.as_deref()),
            false => Ok(()),
        };
        // Still shown (the way back refused, or `now.view` is this very
        // generation): kept, or the view would dangle.
        if shows(generation) {
            let why = put_back
                .err()
                .map_or("the view is to show it".into(), |e| e.to_string());
            return Err(format!("cannot restore {}: {why}", self.dir.display()));
        }
        if self.kept_on_disk(generation, "drop") {
            return Ok(());
        }
        // At once: what DIR holds is what a user sees, even if the manager
        // exits right after.
        remove_tree(&self.dir.join(generation));
        Ok(())
    }

    /// The view on `generation`: switched, unless it shows it already (a
    /// candidate checked in place, a retried rollback whose record moved):
    /// then no new link is made, so no squatted `..data_tmp` or full inode
    /// table can hold it back.
    fn show(&self, generation: &str) -> io::Result<()> {
        let shown = fs::read_link(self.dir.join(DATA)).ok();
        match shown.as_deref() == Some(Path::new(generation)) {
            true => self.sync_links(Some(generation)),
            false => self.switch(generation),
        }
    }

    /// `..data -> generation`, atomically, then the top-level links.
    fn switch(&self, generation: &str) -> io::Result<()> {
        replace_link(&self.dir, DATA_TMP, DATA, generation)?;
        self.sync_links(Some(generation))
    }

    /// No view at all: DIR shows nothing.
    fn hide(&self) -> io::Result<()> {
        match fs::remove_file(self.dir.join(DATA)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        self.sync_links(None)
    }

    /// One `name -> ..data/name` link per top-level entry of `generation`;
    /// links of entries it no longer has are removed.
    fn sync_links(&self, generation: Option<&str>) -> io::Result<()> {
        let mut tops = Vec::new();
        if let Some(g) = generation {
            for e in fs::read_dir(self.dir.join(g))?.flatten() {
                tops.push(e.file_name());
            }
        }
        for name in &tops {
            let link = self.dir.join(name);
            if fs::symlink_metadata(&link).is_err() {
                symlink(Path::new(DATA).join(name), &link)?;
            }
        }
        for e in fs::read_dir(&self.dir)?.flatten() {
            let name = e.file_name();
            let ours = fs::read_link(e.path()).is_ok_and(|t| t.starts_with(DATA));
            if ours && !name.as_encoded_bytes().starts_with(b"..") && !tops.contains(&name) {
                fs::remove_file(e.path())?;
            }
        }
        Ok(())
    }
}

/// A file's path relative to the source it was found under.
fn relative(source: &Path, file: &Path) -> Option<PathBuf> {
    if file == source {
        source.file_name().map(PathBuf::from)
    } else {
        file.strip_prefix(source).map(Path::to_path_buf).ok()
    }
}

fn is_generation(name: &str) -> bool {
    name.starts_with(GEN_PREFIX)
}

/// Removes a generation nothing points at, off the loop (a big one takes a
/// while); one left behind by a crash is removed by the next `recover`.
fn remove_later(path: PathBuf) {
    crate::off_loop::detach(Box::new(move || {
        remove_tree(&path);
    }));
}

/// `name -> target` in `dir`, atomically (through `tmp`).
fn replace_link(dir: &Path, tmp: &str, name: &str, target: &str) -> io::Result<()> {
    let tmp = dir.join(tmp);
    let _ = fs::remove_file(&tmp);
    symlink(target, &tmp)?;
    fs::rename(&tmp, dir.join(name))
}

/// Whether copies get their source's owner: only a manager running as
/// root may give files away.
#[derive(Clone, Copy)]
enum Owner {
    Kept,
    Ours,
}

impl Owner {
    fn ours() -> Owner {
        // SAFETY: geteuid(2) cannot fail and touches no memory.
        if unsafe { nix::libc::geteuid() } == 0 {
            Owner::Kept
        } else {
            Owner::Ours
        }
    }

    /// Gives `file` the owner of `meta`'s file, when we may. An owner this
    /// user namespace cannot map (a rootless container's "root") is left
    /// as ours: the copy still has its mode.
    fn apply(self, file: &File, meta: &fs::Metadata) -> io::Result<()> {
        if let Owner::Ours = self {
            return Ok(());
        }
        match std::os::unix::fs::fchown(file, Some(meta.uid()), Some(meta.gid())) {
            Err(e) if matches!(e.raw_os_error(), Some(nix::libc::EPERM | nix::libc::EINVAL)) => {
                debug!(
                    "Cannot give a copy the owner {}:{}: {e}",
                    meta.uid(),
                    meta.gid()
                );
                Ok(())
            }
            other => other,
        }
    }
}

/// Copies a regular file with its mode (and owner, as root), synced;
/// anything else is refused without blocking (a FIFO's open would wait for
/// a writer; a device may never end).
fn copy_regular(source: &Path, dest: &Path, owner: Owner) -> io::Result<()> {
    let mut from = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(source)?;
    let meta = from.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    // Readable by us only until it has its own mode: a 0400 key is never
    // open to others, not even while it is written.
    let mut to = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dest)?;
    copy_data(&mut from, &mut to)?;
    // The owner first: a change of owner clears setuid and setgid.
    owner.apply(&to, &meta)?;
    to.set_permissions(fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    to.sync_all()
}

/// A symlink kept as one (its text, see `kept_links`), with its owner as
/// root. Its entry reaches the disk with its directory's sync.
fn copy_link(source: &Path, text: &Path, dest: &Path, owner: Owner) -> io::Result<()> {
    let meta = fs::symlink_metadata(source)?;
    symlink(text, dest)?;
    if let Owner::Kept = owner {
        match std::os::unix::fs::lchown(dest, Some(meta.uid()), Some(meta.gid())) {
            Err(e) if !matches!(e.raw_os_error(), Some(nix::libc::EPERM | nix::libc::EINVAL)) => {
                return Err(e);
            }
            _ => {}
        }
    }
    Ok(())
}

/// A directory of a generation gets its source directory's mode (and
/// owner, as root), then is synced (the entries written in it).
fn copy_dir_attributes(source: &Path, dest: &Path, owner: Owner) -> io::Result<()> {
    // Opened before its mode may take our own access away.
    let dir = File::open(dest)?;
    match fs::metadata(source) {
        Ok(meta) => {
            owner.apply(&dir, &meta)?;
            dir.set_permissions(fs::Permissions::from_mode(meta.mode() & 0o7777))?;
        }
        // Gone since its files were copied: the copies keep our mode.
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    dir.sync_all()
}

/// Creates DIR (and the parents it lacks) with a fixed mode, 0755, not one
/// the umask picks: 0777 would let any user replace what the child reads,
/// 0700 would hide it from a child of another user.
fn create_dir(dir: &Path) -> io::Result<()> {
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(d) = at {
        if d.as_os_str().is_empty() || fs::symlink_metadata(d).is_ok() {
            break;
        }
        missing.push(d);
        at = d.parent();
    }
    fs::create_dir_all(dir)?;
    for d in missing {
        fs::set_permissions(d, fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}

/// mkfs's `lost+found` at the root of a filesystem, empty: DIR on its own
/// volume has one. No promoted name can collide with it in a way that
/// matters (the child reads `..data`'s names), and it is left alone.
fn is_empty_lost_found(path: &Path) -> bool {
    path.file_name() == Some(std::ffi::OsStr::new("lost+found"))
        && fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
        && fs::read_dir(path).is_ok_and(|mut e| e.next().is_none())
}

/// Removes a generation. A directory copied without write permission (a
/// source directory of mode 0555) keeps a manager that is not root from
/// removing what it holds: such directories are made writable first.
fn remove_tree(path: &Path) {
    if fs::remove_dir_all(path).is_ok() || !path.exists() {
        return;
    }
    fn writable(dir: &Path) {
        let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
        if let Ok(entries) = fs::read_dir(dir) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    writable(&e.path());
                }
            }
        }
    }
    writable(path);
    let _ = fs::remove_dir_all(path);
}

/// Copies `from`'s bytes, keeping its holes: a sparse source (a huge file
/// of mostly nothing) must not fill DIR's disk with zeros. Data regions are
/// found with SEEK_DATA/SEEK_HOLE; a filesystem that has no idea of holes
/// reports the whole file as data, and where the question is refused (or
/// an offset does not fit a 32-bit `off_t`) the copy is a plain one.
#[cfg(any(
    target_os = "linux",
    target_os = "android",
    target_vendor = "apple",
    target_os = "freebsd",
    target_os = "dragonfly"
))]
fn copy_data(from: &mut File, to: &mut File) -> io::Result<()> {
    use io::{Read, Seek, SeekFrom};
    use nix::errno::Errno;
    use nix::unistd::{Whence, lseek};
    let mut pos: nix::libc::off_t = 0;
    loop {
        let data = match lseek(&*from, pos, Whence::SeekData) {
            Ok(data) => data,
            // No data past `pos`: the rest is a hole (or the end).
            Err(Errno::ENXIO) => break,
            Err(_) => return plain_copy(from, to),
        };
        let Ok(hole) = lseek(&*from, data, Whence::SeekHole) else {
            return plain_copy(from, to);
        };
        let (Ok(start), Ok(len)) = (u64::try_from(data), u64::try_from(hole - data)) else {
            return plain_copy(from, to);
        };
        from.seek(SeekFrom::Start(start))?;
        to.seek(SeekFrom::Start(start))?;
        io::copy(&mut Read::by_ref(from).take(len), to)?;
        pos = hole;
    }
    // The length, holes at the end included, as the source has it now.
    to.set_len(from.metadata()?.len())
}

/// The whole file, from its start, over whatever was copied so far (where
/// holes cannot be asked for, this is the copy).
fn plain_copy(from: &mut File, to: &mut File) -> io::Result<()> {
    use io::{Seek, SeekFrom};
    to.set_len(0)?;
    to.seek(SeekFrom::Start(0))?;
    from.seek(SeekFrom::Start(0))?;
    io::copy(from, to).map(drop)
}

#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_vendor = "apple",
    target_os = "freebsd",
    target_os = "dragonfly"
)))]
use plain_copy as copy_data;

/// What a source file is, when it is not a regular file.
fn special_kind(path: &Path) -> Option<&'static str> {
    let t = fs::metadata(path).ok()?.file_type();
    if t.is_fifo() {
        Some("a FIFO (a pipe, like `--config <(command)`)")
    } else if t.is_socket() {
        Some("a socket")
    } else if t.is_block_device() || t.is_char_device() {
        Some("a device")
    } else {
        None
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// `path` with symlinks and `..` resolved; a part that does not exist yet
/// is appended to its nearest existing ancestor, resolved.
pub(crate) fn resolved(path: &Path) -> PathBuf {
    if let Ok(real) = fs::canonicalize(path) {
        return real;
    }
    let mut rest = Vec::new();
    let mut at = path;
    while let Some(parent) = at.parent() {
        if let Some(name) = at.file_name() {
            rest.push(name.to_os_string());
        }
        at = parent;
        if let Ok(real) = fs::canonicalize(at) {
            let mut out = real;
            for part in rest.iter().rev() {
                out.push(part);
            }
            return normalise(&out);
        }
    }
    normalise(path)
}

/// Drops `.` and resolves `..` textually (for the part that does not exist).
pub(crate) fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// `..gen<nanoseconds since 1970, 20 digits>.<sequence, 4 digits>`: unique
/// in this process, and sorted by creation.
fn generation_name() -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "{GEN_PREFIX}{:020}.{:04}",
        now.as_nanos(),
        SEQ.fetch_add(1, Ordering::Relaxed) % 10_000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("fm-promote-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    /// The directory as the machine knows it: nothing yet.
    fn empty() -> Promoted {
        Promoted::default()
    }

    /// The record names `record`, the view shows `view`.
    fn holds(record: &Generation, view: &Generation) -> Promoted {
        Promoted {
            record: Some(record.name.clone()),
            view: Some(view.name.clone()),
        }
    }

    /// `g` recorded and shown.
    fn at(g: &Generation) -> Promoted {
        holds(g, g)
    }

    fn generations(dir: &Path) -> usize {
        fs::read_dir(dir)
            .unwrap()
            .flatten()
            .filter(|e| is_generation(&e.file_name().to_string_lossy()))
            .count()
    }

    /// A promoter in a scratch directory `tag` whose last good generation
    /// holds `good` (proven), and a candidate of `next` staged: the
    /// scratch dir, the source and DIR, the promoter, both generations.
    fn good_then_staged(
        tag: &str,
        good: &str,
        next: &str,
    ) -> (PathBuf, PathBuf, PathBuf, Promoter, Generation, Generation) {
        let d = scratch(tag);
        let (src, dir) = (d.join("src"), d.join("dst"));
        fs::create_dir_all(&src).unwrap();
        fs::write(src.join("app.conf"), good).unwrap();
        let p = Promoter::new(dir.clone(), vec![src.clone()]).unwrap();
        p.recover().unwrap();
        let g = p.stage().unwrap();
        p.commit(&g.name, None, &empty()).unwrap();
        fs::write(src.join("app.conf"), next).unwrap();
        let candidate = p.stage().unwrap();
        (d, src, dir, p, g, candidate)
    }

    /// What the disk needs stays whatever asks: a removal of the generation
    /// `..good` names or the view shows, or a drop of it, is refused, while
    /// a generation nothing needs goes (it is what proves the refusal
    /// waited long enough: removals run off the caller's thread).
    #[test]
    fn what_the_record_names_or_the_view_shows_is_never_removed() {
        let (d, _, dir, p, good, spare) = good_then_staged("tripwire", "v1", "v2");
        p.remove_generation(&good.name);
        assert!(p.drop_candidate(&good.name, &at(&good)).is_err());
        p.remove_generation(&spare.name);
        let gone = (0..500).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(10));
            !dir.join(&spare.name).exists()
        });
        assert!(gone, "a generation nothing needs stays");
        assert!(dir.join(&good.name).is_dir(), "the last good one went");
        assert_eq!(fs::read_to_string(dir.join("app.conf")).unwrap(), "v1");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn stage_is_invisible_until_commit_and_discard_leaves_the_good_one() {
        let d = scratch("cycle");
        let (src, dir) = (d.join("src"), d.join("dst"));
        fs::create_dir_all(src.join("conf.d")).unwrap();
        fs::write(src.join("main.conf"), "v1").unwrap();
        fs::write(src.join("conf.d/a.conf"), "a1").unwrap();
        let p = Promoter::new(dir.clone(), vec![src.clone()]).unwrap();
        assert_eq!(p.recover().unwrap(), Recovered::default());
        let s1 = p.stage().unwrap();
        assert!(!dir.join("main.conf").exists(), "staged is not shown");
        assert_eq!(
            fs::read_to_string(p.candidate_path(&s1.name).join("main.conf")).unwrap(),
            "v1"
        );
        p.commit(&s1.name, None, &empty()).unwrap();
        assert_eq!(fs::read_to_string(dir.join("main.conf")).unwrap(), "v1");
        p.remove_generation(&s1.name);
        assert!(
            dir.join(&s1.name).is_dir(),
            "the last good is never forgotten"
        );
        assert_eq!(fs::read_to_string(dir.join("conf.d/a.conf")).unwrap(), "a1");
        assert_eq!(
            fs::read_link(dir.join(GOOD)).unwrap(),
            PathBuf::from(&s1.name)
        );

        fs::write(src.join("main.conf"), "v2").unwrap();
        let s2 = p.stage().unwrap();
        assert_ne!(s1.snapshot, s2.snapshot);
        p.expose(&s2.name).unwrap();
        assert_eq!(fs::read_to_string(dir.join("main.conf")).unwrap(), "v2");
        p.drop_candidate(&s2.name, &at(&s1)).unwrap();
        assert_eq!(fs::read_to_string(dir.join("main.conf")).unwrap(), "v1");
        assert_eq!(generations(&dir), 1, "the candidate is removed");

        // A restarted manager trusts `..good`, whatever `..data` shows.
        let s3 = p.stage().unwrap();
        p.expose(&s3.name).unwrap();
        let again = Promoter::new(dir.clone(), vec![src.clone()]).unwrap();
        let good = again.recover().unwrap().good.unwrap();
        assert_eq!(good, s1);
        assert_eq!(fs::read_to_string(dir.join("main.conf")).unwrap(), "v1");
        assert_eq!(generations(&dir), 1, "the interrupted candidate is gone");
        fs::remove_dir_all(&d).unwrap();
    }

    /// What a check or hook is told: each changed file where the candidate
    /// (or DIR) holds it, computed without walking the sources; a file gone
    /// from the source is named where it would be, not at the source.
    #[test]
    fn targets_place_files_without_a_walk() {
        let d = scratch("targets");
        let (src, dir) = (d.join("src"), d.join("dst"));
        fs::create_dir_all(src.join("sub")).unwrap();
        fs::write(src.join("main.conf"), "m").unwrap();
        fs::write(d.join("one.conf"), "1").unwrap();
        let p = Promoter::new(dir.clone(), vec![src.clone(), d.join("one.conf")]).unwrap();
        let root = Path::new("/cand");
        let files = [
            src.join("main.conf"),
            src.join("sub/gone.conf"),
            d.join("one.conf"),
            d.join("elsewhere.conf"),
        ];
        assert_eq!(
            p.targets(&files, root),
            [
                root.join("main.conf"),
                root.join("sub/gone.conf"),
                root.join("one.conf"),
                d.join("elsewhere.conf"),
            ]
        );
        // Nested sources: the innermost places the file.
        let p = Promoter::new(dir, vec![src.clone(), src.join("sub")]).unwrap();
        assert_eq!(
            p.targets(&[src.join("sub/x.conf")], root),
            [root.join("x.conf")]
        );
        fs::remove_dir_all(&d).unwrap();
    }

    /// A promoter in a scratch directory `tag`: "G" committed (proven),
    /// then "A" committed on probation (`..proven` keeps G). Returns the
    /// scratch dir, the source and DIR, the promoter, G and A.
    fn a_on_probation_after_g(
        tag: &str,
    ) -> (PathBuf, PathBuf, PathBuf, Promoter, Generation, Generation) {
        let (d, src, dir, p, g, a) = good_then_staged(tag, "G", "A");
        p.commit(&a.name, Some(&g.name), &at(&g)).unwrap();
        (d, src, dir, p, g, a)
    }

    /// A manager killed while a generation is on probation used to come
    /// back having deleted the proven one: `..proven` keeps it until the
    /// newer one is proven (or rolled back from).
    #[test]
    fn the_proven_generation_survives_a_restart_during_probation() {
        let (d, src, dir, p, g, a) = a_on_probation_after_g("proven");
        p.remove_generation(&g.name);
        assert!(
            dir.join(&g.name).is_dir(),
            "the proven one is never forgotten"
        );

        let again = Promoter::new(dir.clone(), vec![src.clone()]).unwrap();
        let ino = || fs::symlink_metadata(dir.join(DATA)).unwrap().ino();
        let before = ino();
        let found = again.recover().unwrap();
        assert_eq!(found.good, Some(a.clone()));
        assert_eq!(found.proven, Some(g.clone()), "kept, to go back to");
        // The view showed the last good one already: not rewritten (a
        // read-only DIR that needs no repair must start as it is).
        assert_eq!(ino(), before, "..data was replaced");
        assert_eq!(generations(&dir), 2);

        // Proven after its window: the record goes, and so may G.
        again.prove(&a.name);
        again.remove_generation(&g.name);
        // (Removed off the caller's thread.)
        let gone = (0..500).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(10));
            !dir.join(&g.name).exists()
        });
        assert!(gone, "forgotten once proven");
        let found = Promoter::new(dir.clone(), vec![src.clone()])
            .unwrap()
            .recover()
            .unwrap();
        assert_eq!((found.good, found.proven), (Some(a), None));
        fs::remove_dir_all(&d).unwrap();
    }

    /// A rollback records what it went back from in `..rejected`, which a
    /// restarted manager reads back (and keeps); the machine ends that rejection
    /// (`unreject`) once new bytes are committed, and the generation goes.
    #[test]
    fn a_rollback_records_its_rejection_until_the_machine_ends_it() {
        let (d, src, dir, p, g, a) = a_on_probation_after_g("rejected");
        p.roll_back(&g.name, &a.name).unwrap();
        assert_eq!(fs::read_to_string(dir.join("app.conf")).unwrap(), "G");
        assert_eq!(p.record(REJECTED), Some(a.name.clone()));
        // (The machine keeps it while `..rejected` names it: `is_kept`.)
        let again = Promoter::new(dir.clone(), vec![src.clone()]).unwrap();
        let found = again.recover().unwrap();
        assert_eq!(
            (found.good, found.rejected),
            (Some(g.clone()), Some(a.clone()))
        );
        again.unreject(&a.name);
        assert_eq!(again.record(REJECTED), None);
        let gone = (0..500).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(10));
            !dir.join(&a.name).exists()
        });
        assert!(gone, "the rejected generation was kept");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_record_without_a_good_generation_shows_nothing() {
        let d = scratch("empty");
        let (src, dir) = (d.join("app.conf"), d.join("dst"));
        fs::write(&src, "bad").unwrap();
        let p = Promoter::new(dir.clone(), vec![src.clone()]).unwrap();
        let s = p.stage().unwrap();
        p.expose(&s.name).unwrap();
        assert!(dir.join("app.conf").exists());
        p.drop_candidate(&s.name, &empty()).unwrap();
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
        // An older layout (a view, no record): not trusted.
        let s = p.stage().unwrap();
        p.expose(&s.name).unwrap();
        let again = Promoter::new(dir.clone(), vec![src.clone()]).unwrap();
        assert_eq!(again.recover().unwrap(), Recovered::default());
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn colliding_overlapping_and_special_sources_are_refused() {
        let d = scratch("collide");
        fs::create_dir_all(d.join("a")).unwrap();
        fs::create_dir_all(d.join("b")).unwrap();
        fs::write(d.join("a/app.conf"), "1").unwrap();
        fs::write(d.join("b/app.conf"), "2").unwrap();
        let err = Promoter::new(d.join("dst"), vec![d.join("a"), d.join("b")])
            .err()
            .unwrap();
        assert!(err.contains("would both become"), "{err}");
        let err = Promoter::new(d.join("a/x"), vec![d.join("a")])
            .err()
            .unwrap();
        assert!(err.contains("overlap"), "{err}");
        // Hidden by `..` and by a symlink: still the same place.
        let err = Promoter::new(d.join("x/../a/out"), vec![d.join("a")])
            .err()
            .unwrap();
        assert!(err.contains("overlap"), "{err}");
        symlink(d.join("a"), d.join("link")).unwrap();
        let err = Promoter::new(d.join("link/out"), vec![d.join("a")])
            .err()
            .unwrap();
        assert!(err.contains("overlap"), "{err}");
        nix::unistd::mkfifo(&d.join("fifo.conf"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        let err = Promoter::new(d.join("dst2"), vec![d.join("fifo.conf")])
            .err()
            .unwrap();
        assert!(err.contains("FIFO"), "{err}");
        fs::remove_dir_all(&d).unwrap();
    }

    /// A promoter of one file: v1 staged and committed, then v2 staged.
    fn v1_committed_v2_staged(
        tag: &str,
    ) -> (PathBuf, PathBuf, PathBuf, Promoter, Generation, Generation) {
        let d = scratch(tag);
        let (src, dir) = (d.join("app.conf"), d.join("dst"));
        fs::write(&src, "v1").unwrap();
        let p = Promoter::new(dir.clone(), vec![src.clone()]).unwrap();
        let s1 = p.stage().unwrap();
        p.commit(&s1.name, None, &empty()).unwrap();
        fs::write(&src, "v2").unwrap();
        let s2 = p.stage().unwrap();
        (d, src, dir, p, s1, s2)
    }

    /// Found by a hostile review: a commit whose view switch failed (here
    /// a directory squatting `..data_tmp`) deleted the generation `..good`
    /// already named, losing the last good config. The record names the
    /// candidate (the answer says so); the generation the child's view
    /// shows is kept, and the same commit, retried, brings the view along.
    #[test]
    fn a_commit_that_cannot_switch_the_view_keeps_what_the_child_reads() {
        let (d, _src, dir, p, s1, s2) = v1_committed_v2_staged("commit-fail");
        fs::create_dir(dir.join(DATA_TMP)).unwrap();
        fs::write(dir.join(DATA_TMP).join("x"), "").unwrap();
        let e = p.commit(&s2.name, None, &at(&s1)).unwrap_err();
        assert!(e.recorded, "{e:?}");
        assert_eq!(
            fs::read_link(dir.join(GOOD)).unwrap(),
            PathBuf::from(&s2.name)
        );
        assert!(
            dir.join(&s1.name).is_dir(),
            "the generation the child reads is kept"
        );
        assert_eq!(fs::read_to_string(dir.join("app.conf")).unwrap(), "v1");
        fs::remove_dir_all(dir.join(DATA_TMP)).unwrap();
        p.commit(&s2.name, None, &holds(&s2, &s1)).unwrap();
        assert_eq!(fs::read_to_string(dir.join("app.conf")).unwrap(), "v2");
        fs::remove_dir_all(&d).unwrap();
    }

    /// A candidate shown in place is put back by renaming the way back made
    /// before it was shown: a squatted `..data_tmp` (or no inode for a new
    /// link) cannot keep it shown, nor leave `..data` dangling once it is
    /// removed (it used to).
    #[test]
    fn a_candidate_shown_in_place_goes_back_without_a_new_link() {
        let (d, _src, dir, p, s1, s2) = v1_committed_v2_staged("put-back");
        p.expose(&s2.name).unwrap();
        assert_eq!(fs::read_to_string(dir.join("app.conf")).unwrap(), "v2");
        fs::create_dir(dir.join(DATA_TMP)).unwrap();
        fs::write(dir.join(DATA_TMP).join("x"), "").unwrap();
        p.drop_candidate(&s2.name, &at(&s1)).unwrap();
        assert_eq!(
            fs::read_link(dir.join(DATA)).unwrap(),
            PathBuf::from(&s1.name)
        );
        assert_eq!(fs::read_to_string(dir.join("app.conf")).unwrap(), "v1");
        assert!(!dir.join(&s2.name).exists(), "the candidate goes");
        assert!(!dir.join(DATA_BACK).exists());
        fs::remove_dir_all(&d).unwrap();
    }

    /// Both ways back squatted by directories: the candidate stays shown
    /// and kept (removed, the view would dangle), and the answer says so;
    /// asked again once the names are free, it goes.
    #[test]
    fn a_candidate_that_cannot_be_taken_off_the_view_is_kept_and_said() {
        let (d, _src, dir, p, s1, s2) = v1_committed_v2_staged("stays-shown");
        p.expose(&s2.name).unwrap();
        fs::remove_file(dir.join(DATA_BACK)).unwrap();
        for name in [DATA_TMP, DATA_BACK] {
            fs::create_dir_all(dir.join(name).join("x")).unwrap();
        }
        let e = p.drop_candidate(&s2.name, &at(&s1)).unwrap_err();
        assert!(e.contains("cannot restore"), "{e}");
        assert_eq!(fs::read_to_string(dir.join("app.conf")).unwrap(), "v2");
        assert!(dir.join(&s2.name).is_dir(), "the shown candidate is kept");
        for name in [DATA_TMP, DATA_BACK] {
            fs::remove_dir_all(dir.join(name)).unwrap();
        }
        p.drop_candidate(&s2.name, &at(&s1)).unwrap();
        assert_eq!(fs::read_to_string(dir.join("app.conf")).unwrap(), "v1");
        assert!(!dir.join(&s2.name).exists(), "the candidate goes");
        fs::remove_dir_all(&d).unwrap();
    }

    /// A directory squatting `..data_back` does not block checks in place
    /// (the way back is then a switch like any other), and a manager killed
    /// while a candidate was shown in place, `..data_tmp` squatted, comes
    /// back on the last good one through the way back (it used to exit 1 at
    /// every restart).
    #[test]
    fn the_way_back_is_optional_and_used_at_startup() {
        let (d, src, dir, p, s1, s2) = v1_committed_v2_staged("way-back");
        fs::create_dir_all(dir.join(DATA_BACK).join("x")).unwrap();
        p.expose(&s2.name).unwrap();
        assert_eq!(fs::read_to_string(dir.join("app.conf")).unwrap(), "v2");
        p.drop_candidate(&s2.name, &at(&s1)).unwrap();
        assert_eq!(fs::read_to_string(dir.join("app.conf")).unwrap(), "v1");
        fs::remove_dir_all(dir.join(DATA_BACK)).unwrap();
        // The way back removed, or pointed elsewhere, while `..data_tmp` is
        // squatted: made again at the end, through its own name.
        let s4 = p.stage().unwrap();
        p.expose(&s4.name).unwrap();
        fs::remove_file(dir.join(DATA_BACK)).unwrap();
        fs::create_dir_all(dir.join(DATA_TMP).join("x")).unwrap();
        p.drop_candidate(&s4.name, &at(&s1)).unwrap();
        assert_eq!(fs::read_to_string(dir.join("app.conf")).unwrap(), "v1");
        assert!(!dir.join(&s4.name).exists());
        fs::remove_dir_all(dir.join(DATA_TMP)).unwrap();
        let s3 = p.stage().unwrap();
        p.expose(&s3.name).unwrap();
        fs::create_dir_all(dir.join(DATA_TMP).join("x")).unwrap();
        let again = Promoter::new(dir.clone(), vec![src]).unwrap();
        assert_eq!(again.recover().unwrap().good.unwrap().name, s1.name);
        assert_eq!(fs::read_to_string(dir.join("app.conf")).unwrap(), "v1");
        assert!(!dir.join(DATA_BACK).exists());
        fs::remove_dir_all(&d).unwrap();
    }

    /// A candidate checked in place is shown already: its commit makes no
    /// new view link, so a squatted `..data_tmp` (or no inode for a link)
    /// cannot hold it back (it used to fail and leave the view lagging).
    #[test]
    fn a_commit_of_a_candidate_shown_in_place_needs_no_new_link() {
        let (d, _src, dir, p, s1, s2) = v1_committed_v2_staged("commit-in-place");
        p.expose(&s2.name).unwrap();
        fs::create_dir(dir.join(DATA_TMP)).unwrap();
        fs::write(dir.join(DATA_TMP).join("x"), "").unwrap();
        p.commit(&s2.name, None, &at(&s1)).unwrap();
        assert_eq!(
            fs::read_link(dir.join(GOOD)).unwrap(),
            PathBuf::from(&s2.name)
        );
        assert_eq!(fs::read_to_string(dir.join("app.conf")).unwrap(), "v2");
        assert!(!dir.join(DATA_BACK).exists());
        fs::remove_dir_all(&d).unwrap();
    }

    /// Found by a hostile test (s16 t3): a candidate removed by hand
    /// during its check was still recorded as `..good`, naming nothing, and
    /// a restarted manager then found no record and removed every
    /// generation, the last good one too (exit 78).
    #[test]
    fn a_candidate_removed_by_hand_is_never_recorded() {
        let (d, src, dir, p, good, candidate) = good_then_staged("gone-candidate", "v1", "v2");
        fs::remove_dir_all(dir.join(&candidate.name)).unwrap();
        let e = p.commit(&candidate.name, None, &at(&good)).unwrap_err();
        assert!(e.gone && !e.recorded, "{}", e.reason);
        assert_eq!(p.record(GOOD), Some(good.name.clone()));
        assert_eq!(fs::read_to_string(dir.join("app.conf")).unwrap(), "v1");
        let again = Promoter::new(dir.clone(), vec![src.clone()]).unwrap();
        assert_eq!(again.recover().unwrap().good, Some(good));
        fs::remove_dir_all(&d).unwrap();
    }

    /// A retried commit (its first try recorded the candidate but could not
    /// switch the view) whose record write now fails: the answer says the
    /// record names the candidate, and the generation `..good` names is not
    /// removed (it used to be discarded as a candidate, view and all).
    #[test]
    fn a_failed_commit_answers_what_the_record_names_and_keeps_it() {
        let (d, src, dir, p, s1, s2) = v1_committed_v2_staged("commit-recorded");
        p.commit(&s2.name, None, &at(&s1)).unwrap();
        fs::create_dir(dir.join(GOOD_TMP)).unwrap();
        fs::write(dir.join(GOOD_TMP).join("x"), "").unwrap();
        let e = p.commit(&s2.name, None, &at(&s2)).unwrap_err();
        assert!(e.recorded, "{e:?}");
        assert_eq!(
            fs::read_link(dir.join(GOOD)).unwrap(),
            PathBuf::from(&s2.name)
        );
        assert!(
            dir.join(&s2.name).is_dir(),
            "the recorded generation is kept"
        );
        assert_eq!(fs::read_to_string(dir.join("app.conf")).unwrap(), "v2");
        // A candidate the record does not name is the machine's to drop.
        fs::write(&src, "v3").unwrap();
        let s3 = p.stage().unwrap();
        let e = p.commit(&s3.name, None, &at(&s2)).unwrap_err();
        assert!(!e.recorded, "{e:?}");
        p.drop_candidate(&s3.name, &at(&s2)).unwrap();
        assert!(!dir.join(&s3.name).exists());
        fs::remove_dir_all(&d).unwrap();
    }

    /// After a commit whose view could not follow, the record names s2
    /// while the view shows s1 (set up by hand). Putting the record back
    /// to s1 is a commit of s1: while it fails it never removes s1, the
    /// generation the child reads (it used to be discarded as a failed
    /// candidate, the view flipped to s2 first); a candidate shown in place
    /// meanwhile is discarded back to s1, not to s2; once it takes, the
    /// record and the view both name s1.
    #[test]
    fn the_record_put_back_to_the_view_never_removes_what_the_child_reads() {
        let (d, src, dir, p, s1, s2) = v1_committed_v2_staged("commit-realign");
        p.commit(&s2.name, None, &at(&s1)).unwrap();
        replace_link(&dir, DATA_TMP, DATA, &s1.name).unwrap();
        let lags = holds(&s2, &s1);
        let read = || fs::read_to_string(dir.join("app.conf")).unwrap();
        assert_eq!(read(), "v1");
        // The record's write fails: s1 stays, shown.
        fs::create_dir(dir.join(GOOD_TMP)).unwrap();
        fs::write(dir.join(GOOD_TMP).join("x"), "").unwrap();
        let e = p.commit(&s1.name, None, &lags).unwrap_err();
        assert!(!e.recorded, "{e:?}");
        assert!(dir.join(&s1.name).is_dir(), "the view's generation removed");
        assert_eq!(read(), "v1");
        // A candidate checked in place meanwhile goes back to s1.
        fs::write(&src, "v3").unwrap();
        let s3 = p.stage().unwrap();
        p.expose(&s3.name).unwrap();
        assert_eq!(read(), "v3");
        p.drop_candidate(&s3.name, &lags).unwrap();
        assert_eq!(read(), "v1", "the view went to the record's s2");
        assert!(!dir.join(&s3.name).exists());
        // The disk works again: the record names s1, as the view does.
        fs::remove_dir_all(dir.join(GOOD_TMP)).unwrap();
        p.commit(&s1.name, None, &lags).unwrap();
        assert_eq!(
            fs::read_link(dir.join(GOOD)).unwrap(),
            PathBuf::from(&s1.name)
        );
        assert_eq!(
            fs::read_link(dir.join(DATA)).unwrap(),
            PathBuf::from(&s1.name)
        );
        assert_eq!(read(), "v1");
        p.remove_generation(&s2.name);
        fs::remove_dir_all(&d).unwrap();
    }

    /// Newer bytes A on probation (`..proven` keeps G), then the source
    /// back on G's bytes: their commit proves them at once. When that
    /// commit stood recorded without its view (set up by hand as above: `..good` names it, `..data` still shows A) and its
    /// retry failed again (a squat on `..good_tmp`), `..proven` still named
    /// G: a restarted manager put the candidate, proven bytes, on probation
    /// against G (a child's exit then "rolled back" to the same bytes and
    /// rejected them), and G could never be forgotten meanwhile.
    #[test]
    fn a_commit_recorded_without_its_view_that_proves_at_once_drops_the_proven_record() {
        let (d, src, dir, p, g, a) = a_on_probation_after_g("proven-stale");
        assert_eq!(p.record(PROVEN), Some(g.name.clone()));
        fs::write(src.join("app.conf"), "G").unwrap();
        let c = p.stage().unwrap();
        assert_eq!(c.snapshot, g.snapshot, "the proven bytes again");
        // Recorded, not shown.
        replace_link(&dir, GOOD_TMP, GOOD, &c.name).unwrap();
        // Its retry, proven at once, fails too.
        fs::create_dir(dir.join(GOOD_TMP)).unwrap();
        fs::write(dir.join(GOOD_TMP).join("x"), "").unwrap();
        let e = p.commit(&c.name, None, &holds(&c, &a)).unwrap_err();
        assert!(e.recorded, "{e:?}");
        assert_eq!(fs::read_to_string(dir.join("app.conf")).unwrap(), "A");
        assert_eq!(p.record(PROVEN), None, "..proven still names G");
        // What the machine then forgets goes: G is no longer needed.
        p.remove_generation(&g.name);
        let gone = (0..500).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(10));
            !dir.join(&g.name).exists()
        });
        assert!(gone, "G was kept");
        // A restarted manager finds the candidate proven, nothing to judge.
        let again = Promoter::new(dir.clone(), vec![src.clone()]).unwrap();
        let found = again.recover().unwrap();
        assert_eq!((found.good, found.proven), (Some(c.clone()), None));
        assert_eq!(fs::read_to_string(dir.join("app.conf")).unwrap(), "G");
        fs::remove_dir_all(&d).unwrap();
    }

    /// Found by a hostile review: a file already in DIR (an image's own
    /// default config) was never replaced, and the child read it.
    #[test]
    fn a_directory_holding_files_of_its_own_is_refused() {
        let d = scratch("preexisting");
        let (src, dir) = (d.join("app.conf"), d.join("dst"));
        fs::write(&src, "v1").unwrap();
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("app.conf"), "image default").unwrap();
        let err = Promoter::new(dir.clone(), vec![src.clone()]).err().unwrap();
        assert!(err.contains("not flush-manager's"), "{err}");
        fs::remove_dir_all(&d).unwrap();
    }

    /// Only a relative link to another file of its own source stays a
    /// link: the kubelet's `key -> ..data/key`, a link out of the source
    /// (absolute or by `..`), and a source given as a link itself are
    /// copied as the file they lead to (as links, the child would read
    /// bytes nobody checked).
    #[test]
    fn links_inside_a_source_stay_links_and_the_rest_are_copied() {
        let d = scratch("links");
        let (src, dir) = (d.join("src"), d.join("dst"));
        fs::create_dir_all(src.join("..2026_x/sub")).unwrap();
        fs::create_dir_all(src.join("conf.d")).unwrap();
        fs::write(src.join("..2026_x/key"), "k").unwrap();
        symlink("..2026_x", src.join("..data")).unwrap();
        symlink("..data/key", src.join("key")).unwrap();
        fs::write(src.join("conf.d/a.conf"), "a").unwrap();
        symlink("a.conf", src.join("conf.d/same.conf")).unwrap();
        symlink("../conf.d/a.conf", src.join("conf.d/up.conf")).unwrap();
        symlink("same.conf", src.join("conf.d/chain.conf")).unwrap();
        fs::write(d.join("outside.conf"), "o").unwrap();
        symlink("../../outside.conf", src.join("conf.d/out.conf")).unwrap();
        symlink(d.join("outside.conf"), src.join("conf.d/abs.conf")).unwrap();
        symlink(src.join("conf.d/a.conf"), src.join("conf.d/abs-in.conf")).unwrap();
        symlink(d.join("outside.conf"), d.join("single.conf")).unwrap();
        let p = Promoter::new(dir.clone(), vec![src.clone(), d.join("single.conf")]).unwrap();
        p.recover().unwrap();
        let g = p.stage().unwrap();
        let root = p.candidate_path(&g.name);
        let link = |rel: &str| fs::read_link(root.join(rel)).ok();
        assert_eq!(link("conf.d/same.conf"), Some("a.conf".into()));
        assert_eq!(link("conf.d/up.conf"), Some("../conf.d/a.conf".into()));
        assert_eq!(link("conf.d/chain.conf"), Some("same.conf".into()));
        for copied in [
            "key",
            "conf.d/out.conf",
            "conf.d/abs.conf",
            "conf.d/abs-in.conf",
            "single.conf",
        ] {
            assert_eq!(link(copied), None, "{copied} is copied");
            assert!(root.join(copied).is_file(), "{copied}");
        }
        assert_eq!(
            fs::read_to_string(root.join("conf.d/chain.conf")).unwrap(),
            "a"
        );
        assert_eq!(fs::read_to_string(root.join("key")).unwrap(), "k");
        // The copy's fingerprint is the source's as the watch sees it
        // (links read through, directories' modes counted).
        assert_eq!(g.snapshot.len(), 9, "{:?}", g.snapshot);
        let watched =
            fingerprint::Cache::default().snapshot(&[src.clone(), d.join("single.conf")], true);
        assert_eq!(g.snapshot, watched);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn generation_names_sort_by_creation() {
        let names: Vec<String> = (0..50).map(|_| generation_name()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
    }

    #[test]
    fn a_sparse_source_is_copied_with_its_holes() {
        use std::io::{Seek, SeekFrom, Write};
        use std::os::unix::fs::MetadataExt;
        let dir = scratch("sparse");
        let (src, dest) = (dir.join("big.conf"), dir.join("copy.conf"));
        let mut f = File::create(&src).unwrap();
        f.set_len(256 << 20).unwrap();
        for at in [0u64, 100 << 20, (256 << 20) - 5] {
            f.seek(SeekFrom::Start(at)).unwrap();
            f.write_all(b"data!").unwrap();
        }
        drop(f);
        copy_regular(&src, &dest, Owner::Ours).unwrap();
        assert_eq!(fs::read(&src).unwrap(), fs::read(&dest).unwrap());
        // 512-byte blocks: a few pages of data, not 256 MiB of zeros
        // (a filesystem without holes would fail this; tmp has them).
        let blocks = fs::metadata(&dest).unwrap().blocks();
        assert!(blocks < 4096, "{blocks} blocks allocated");
        // Holes at the end are kept too.
        let tail = dir.join("tail.conf");
        File::create(&tail).unwrap().set_len(1 << 20).unwrap();
        let tail_copy = dir.join("tail-copy.conf");
        copy_regular(&tail, &tail_copy, Owner::Ours).unwrap();
        assert_eq!(fs::metadata(&tail_copy).unwrap().len(), 1 << 20);
        assert_eq!(fs::metadata(&tail_copy).unwrap().blocks(), 0);
        let _ = fs::remove_dir_all(&dir);
    }
}
