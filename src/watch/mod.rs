//! Watching the config: inotify (through notify) on parent directories, and
//! our own polling beside it. This module only says "something may have
//! changed" (`is_relevant`, `poll`) and fingerprints on request; the
//! supervisor debounces and the state machine decides.
//!
//! Traps measured with inotify and notify on real ConfigMap updates shape it:
//! - a watch on the file itself goes deaf after the first ConfigMap swap or
//!   editor save (its inode is deleted): watch the parent directory;
//! - a recursive watch mislabels paths: non-recursive only;
//! - reading a watched file produces Access events: ignored;
//! - notify's PollWatcher has whole-second mtimes and never sees a path
//!   that was missing at start: polling is ours (stat + fingerprint).
//!
//! A look at the files costs what the events say changed: an event that
//! names a known config file for its content marks that file alone; any
//! other (a create, a rename such as a ConfigMap's `..data` swap, an
//! overflow, a polling hit) makes the next look read everything.

pub mod fingerprint;

use fingerprint::{FileState, Snapshot};
use log::{debug, info, trace, warn};
use notify::event::ModifyKind;
use notify::{EventKind, RecursiveMode, Watcher as _};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

pub type NotifyEvent = notify::Result<notify::Event>;

/// The polling interval used when inotify is unavailable and polling was off.
const FALLBACK_POLL: Duration = Duration::from_secs(5);

/// Which names in a watched directory matter.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Interest {
    names: BTreeSet<OsString>,
    /// Every name matters (a config directory, or an ancestor waiting for
    /// the config's directory to appear).
    any: bool,
}

impl Interest {
    fn matches(&self, name: &std::ffi::OsStr) -> bool {
        // `..data`, `..data_tmp`, `..2026_…`: the kubelet's atomic writer.
        // In a config directory every name counts but editor droppings.
        self.names.contains(name)
            || name.as_encoded_bytes().starts_with(b"..")
            || (self.any && name.to_str().is_some_and(fingerprint::is_config_name))
    }
}

/// Watched directories and what matters in each.
type Watched = BTreeMap<PathBuf, Interest>;

pub struct Watch {
    configs: Vec<PathBuf>,
    inotify: Option<notify::RecommendedWatcher>,
    watched: Watched,
    /// What each watched path resolved to when it was watched: a directory
    /// replaced under the same path, or a symlink switched, is watched anew.
    inodes: HashMap<PathBuf, (u64, u64)>,
    /// The same, read by notify's thread to drop unrelated events before
    /// they wake the supervisor.
    shared: Arc<Mutex<Watched>>,
    poll_interval: Option<Duration>,
    cache: fingerprint::Cache,
    /// The last look (a missing file is reported once, when it goes), and
    /// the files events said changed since.
    last: Snapshot,
    dirty: BTreeSet<PathBuf>,
    /// Something happened that events cannot pin to known files: the next
    /// look reads everything (and moves the watches first).
    rescan: bool,
}

impl Watch {
    /// An inert watch of `configs`: fingerprints work, nothing is watched
    /// until `start`.
    pub fn new(configs: Vec<PathBuf>, poll_interval: Duration) -> Watch {
        Watch {
            configs,
            inotify: None,
            watched: Watched::new(),
            inodes: HashMap::new(),
            shared: Arc::default(),
            poll_interval: (!poll_interval.is_zero()).then_some(poll_interval),
            cache: fingerprint::Cache::default(),
            last: Snapshot::new(),
            dirty: BTreeSet::new(),
            rescan: true,
        }
    }

    /// Starts inotify (unless `poll_only`) and polling; notify events arrive
    /// on the returned channel.
    pub fn start(&mut self, poll_only: bool) -> async_channel::Receiver<NotifyEvent> {
        let (tx, rx) = async_channel::unbounded();
        if self.configs.is_empty() {
            return rx;
        }
        for path in &self.configs {
            describe(path);
        }
        if poll_only {
            self.poll_interval = Some(self.poll_interval.unwrap_or(FALLBACK_POLL));
        } else {
            // On notify's thread: filter, then an unbounded try_send (that
            // thread must never block on us).
            let shared = Arc::clone(&self.shared);
            match notify::recommended_watcher(move |ev: NotifyEvent| {
                let watched = shared.lock().unwrap_or_else(PoisonError::into_inner);
                if is_relevant(&watched, &ev) {
                    drop(watched);
                    let _ = tx.try_send(ev);
                }
            }) {
                Ok(w) => self.inotify = Some(w),
                Err(e) => self.fall_back_to_polling(&format!("inotify unavailable ({e})")),
            }
        }
        if let Some(every) = self.poll_interval {
            info!("Starting polling every {every:?} for config changes");
        }
        // The poll baseline is the last decision's snapshot (the spawn's).
        self.reconcile();
        // Changes from before the watches existed have no events.
        self.rescan = true;
        rx
    }

    /// Takes note of an event (one the watcher's thread passed): which
    /// files the next look must read.
    pub fn note(&mut self, event: &NotifyEvent) {
        let content_of_known_files = match event {
            Ok(ev) => {
                !ev.need_rescan()
                    && matches!(
                        ev.kind,
                        EventKind::Modify(
                            ModifyKind::Data(_) | ModifyKind::Metadata(_) | ModifyKind::Any
                        )
                    )
                    && ev.paths.iter().all(|p| self.last.contains_key(p))
            }
            Err(_) => false,
        };
        match event {
            Ok(ev) if content_of_known_files => self.dirty.extend(ev.paths.iter().cloned()),
            _ => self.rescan = true,
        }
        // A removed directory took its watch with it. One made again at the
        // path may get the same inode number back, so `reconcile` could
        // not tell it from the old one: it is forgotten here and watched
        // anew once it exists.
        if let Ok(ev) = event
            && matches!(ev.kind, EventKind::Remove(_))
        {
            for path in &ev.paths {
                if self.watched.remove(path).is_some() {
                    self.inodes.remove(path);
                }
            }
        }
    }

    /// Before the decisive look: moves the watches if the files may have
    /// moved (not for content changes of known files).
    pub fn refresh(&mut self) {
        if self.rescan {
            self.reconcile();
        }
    }

    pub fn is_active(&self) -> bool {
        !self.configs.is_empty()
    }

    pub fn poll_interval(&self) -> Option<Duration> {
        if self.is_active() {
            self.poll_interval
        } else {
            None
        }
    }

    /// Once, at most: with inotify gone, `reconcile` does nothing any more.
    fn fall_back_to_polling(&mut self, why: &str) {
        self.inotify = None;
        self.watched.clear();
        let every = *self.poll_interval.get_or_insert(FALLBACK_POLL);
        warn!("{why}: falling back to polling every {every:?}");
    }

    /// Moves the inotify watches to where they should be now: each config's
    /// parent directory, or its nearest existing ancestor while it is missing.
    pub fn reconcile(&mut self) {
        let Some(inotify) = self.inotify.as_mut() else {
            return;
        };
        let wanted = plan(&self.configs);
        // Published before the watches exist, so no event of theirs is
        // judged against an old map.
        if wanted != self.watched {
            *self.shared.lock().unwrap_or_else(PoisonError::into_inner) = wanted.clone();
        }
        let gone: Vec<PathBuf> = self
            .watched
            .keys()
            .filter(|d| !wanted.contains_key(*d))
            .cloned()
            .collect();
        for dir in gone {
            let _ = inotify.unwatch(&dir);
            self.watched.remove(&dir);
            self.inodes.remove(&dir);
            debug!("Stopped watching directory: {}", dir.display());
        }
        let mut failure = None;
        for (dir, interest) in wanted {
            let inode = fs::metadata(&dir).ok().map(|m| (m.dev(), m.ino()));
            if let Some(current) = self.watched.get_mut(&dir) {
                *current = interest.clone();
                if inode.is_none() || self.inodes.get(&dir) == inode.as_ref() {
                    continue;
                }
                // Same path, another directory now: the old watch is deaf.
                debug!("Directory {} was replaced; watching it anew", dir.display());
                let _ = inotify.unwatch(&dir);
                self.watched.remove(&dir);
                self.inodes.remove(&dir);
            }
            match inotify.watch(&dir, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    info!("Watching directory: {}", dir.display());
                    self.watched.insert(dir.clone(), interest);
                    if let Some(id) = inode {
                        self.inodes.insert(dir, id);
                    }
                }
                // Out of watches or instances: polling carries on alone.
                Err(notify::Error {
                    kind: notify::ErrorKind::MaxFilesWatch,
                    ..
                }) => {
                    failure = Some(format!(
                        "Cannot watch {}: inotify watch limit reached",
                        dir.display()
                    ));
                    break;
                }
                Err(notify::Error {
                    kind: notify::ErrorKind::Io(e),
                    ..
                }) if matches!(
                    e.raw_os_error(),
                    Some(nix::libc::ENOSPC | nix::libc::EMFILE)
                ) =>
                {
                    failure = Some(format!("Cannot watch {}: {e}", dir.display()));
                    break;
                }
                // Vanished in between: the next reconcile tries again.
                Err(e) => debug!("Cannot watch {} yet: {e}", dir.display()),
            }
        }
        if let Some(why) = failure {
            self.fall_back_to_polling(&why);
        }
    }

    /// A polling tick: did the cheap (stat-cached) fingerprint move?
    pub fn poll(&mut self) -> bool {
        self.reconcile();
        let moved = self.cache.snapshot(&self.configs, false) != self.last;
        if moved {
            debug!("Polling found a config change");
            // Polling saw what no event said: the next look reads everything.
            self.rescan = true;
        }
        moved
    }

    /// The config's bytes now, for a decision: every file read again after
    /// anything the events could not pin to known files (and always without
    /// inotify); otherwise the last look with the files events named read
    /// again.
    pub fn snapshot(&mut self) -> Snapshot {
        if self.rescan || self.inotify.is_none() {
            self.rescan = false;
            self.dirty.clear();
            let before =
                std::mem::replace(&mut self.last, self.cache.snapshot(&self.configs, true));
            for (path, was, state) in fingerprint::paired(&before, &self.last) {
                report(path, was, state);
            }
        } else {
            // Only what the events named is read again.
            for path in std::mem::take(&mut self.dirty) {
                // Below the config it was found under, as a full look sees
                // it (where two configs hold it, the last one's, as there).
                let config = self.configs.iter().rev().find(|c| path.starts_with(c));
                let state = fingerprint::file_state_in(&path, config.unwrap_or(&path));
                let was = self.last.insert(path.clone(), state.clone());
                report(&path, was.as_ref(), &state);
            }
        }
        self.last.clone()
    }
}

/// Says what became of a config file since the last look, once: a missing
/// or unreadable file is reported when it goes so, not at every look.
fn report(path: &Path, before: Option<&FileState>, state: &FileState) {
    if before == Some(state) {
        return;
    }
    match state {
        FileState::Missing if before.is_some() => {
            warn!(
                "Config file {} is missing; the child keeps running",
                path.display()
            )
        }
        // The legacy default's absence is said once at startup, with how to
        // watch nothing instead.
        FileState::Missing if path == Path::new(crate::cli::DEFAULT_CONFIG) => {
            debug!("Config file {} does not exist (yet)", path.display())
        }
        FileState::Missing => info!("Config file {} does not exist (yet)", path.display()),
        FileState::Unreadable(e) => warn!("Cannot read config file {}: {e}", path.display()),
        FileState::NotRegular => warn!(
            "Config file {} is not a regular file (a FIFO, socket, device, or a /proc or /sys pseudo-file); ignoring its content",
            path.display()
        ),
        FileState::Content { .. } => debug!("Config file {}: {state}", path.display()),
    }
}

/// Does this notify event concern a config? Unrelated files in a watched
/// directory cost one lookup and a DEBUG line.
fn is_relevant(watched: &Watched, event: &NotifyEvent) -> bool {
    let event = match event {
        Ok(ev) => ev,
        Err(e) => {
            warn!("File watcher error: {e}; re-checking config");
            return true;
        }
    };
    if event.need_rescan() {
        info!("File watcher queue overflowed; re-checking config");
        return true;
    }
    if matches!(event.kind, EventKind::Access(_)) {
        return false;
    }
    if event.paths.iter().all(|p| is_own_log(p)) {
        return false;
    }
    let relevant = event.paths.iter().any(|p| {
        watched.contains_key(p)
            || match (p.parent(), p.file_name()) {
                (Some(dir), Some(name)) => watched.get(dir).is_some_and(|i| i.matches(name)),
                _ => false,
            }
    });
    // Unrelated events only at trace: a log file written into a watched
    // directory at debug level would otherwise feed itself (the Go tool spun
    // at 100% CPU that way); our own log's events are not even that (above).
    if relevant {
        debug!("Fsnotify event: {:?} {:?}", event.kind, event.paths);
    } else {
        trace!(
            "Fsnotify event: {:?} {:?} (unrelated, ignored)",
            event.kind, event.paths
        );
    }
    relevant
}

/// The startup lines about a config path (the Go tool's wording), and the
/// subPath warning.
fn describe(path: &Path) {
    if let Ok(target) = fs::read_link(path) {
        let shown = path.parent().map_or(target.clone(), |p| p.join(&target));
        info!(
            "Config file {} is a symlink pointing to {}",
            path.display(),
            shown.display()
        );
    }
    info!("Starting file watcher for {}", path.display());
    // A mounted directory (a ConfigMap volume) is updated in place; only a
    // file that is itself a mount point (a bind-mounted subPath) never is.
    if !path.is_dir() && is_mount_point(path) {
        warn!(
            "Config file {} is itself a mount point (a Kubernetes subPath mount?): the kubelet never updates those, so changes will not arrive",
            path.display()
        );
    }
}

fn is_mount_point(path: &Path) -> bool {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let canonical = fs::canonicalize(path).ok();
    info.lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(unescape_mount)
        .any(|mp| {
            let mp = Path::new(&mp);
            mp == path || canonical.as_deref() == Some(mp)
        })
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mount(field: &str) -> String {
    let mut out = String::new();
    let mut rest = field;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        match u8::from_str_radix(rest.get(i + 1..i + 4).unwrap_or(""), 8) {
            Ok(b) => {
                out.push(b as char);
                rest = &rest[i + 4..];
            }
            Err(_) => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Where the watches should be, each non-recursive:
/// - a config file's directory, for its name; a config directory and every
///   directory below it (through symlinks: nested ConfigMap items), for
///   every name; the nearest existing ancestor while a directory is missing;
/// - the parent of each of those, for its name: a directory replaced
///   (`mv conf conf.old; mkdir conf`) shows there;
/// - for every symlink on a config's path (`current -> releases/r2`,
///   `sites -> ..data/sites`), its directory, for its name: a switch shows
///   there, while a watch through the old target would go deaf;
/// - for a symlinked config file pointing outside its directory, the
///   target's directory too.
fn plan(configs: &[PathBuf]) -> BTreeMap<PathBuf, Interest> {
    let mut plan: BTreeMap<PathBuf, Interest> = BTreeMap::new();
    let mut want = |dir: &Path, name: Option<&std::ffi::OsStr>| {
        // While a directory is missing, watch the nearest ancestor that exists.
        let mut at = dir;
        while !at.is_dir() {
            match at.parent() {
                Some(up) => at = up,
                None => return,
            }
        }
        let entry = plan.entry(at.to_path_buf()).or_default();
        match name {
            Some(n) if at == dir => {
                entry.names.insert(n.to_os_string());
            }
            _ => entry.any = true,
        }
    };
    for path in configs {
        for link in symlinks_on(path) {
            if let Some((up, name)) = parent_of(&link) {
                want(up, Some(name));
            }
        }
        if path.is_dir() {
            for dir in fingerprint::tree(path).1 {
                want(&dir, None);
            }
            if let Some((up, name)) = parent_of(path) {
                want(up, Some(name));
            }
            continue;
        }
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            continue;
        };
        want(dir, Some(name));
        if let Some((up, dname)) = parent_of(dir) {
            want(up, Some(dname));
        }
        // A symlink to another directory (not a ConfigMap's `..data/key`,
        // whose changes show in `dir` itself): watch the target's directory.
        if let Ok(target) = fs::read_link(path) {
            let target = dir.join(target);
            if let (Some(tdir), Some(tname)) = (target.parent(), target.file_name()) {
                let inside = match (fs::canonicalize(tdir), fs::canonicalize(dir)) {
                    (Ok(t), Ok(d)) => t.starts_with(d),
                    _ => false,
                };
                if !inside {
                    want(tdir, Some(tname));
                }
            }
        }
    }
    plan
}

/// `dir`'s own entry in its parent.
fn parent_of(dir: &Path) -> Option<(&Path, &std::ffi::OsStr)> {
    dir.parent().zip(dir.file_name())
}

/// Every prefix of `path` (itself excluded) that is a symlink.
fn symlinks_on(path: &Path) -> Vec<PathBuf> {
    path.ancestors()
        .skip(1)
        .filter(|p| fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink()))
        .map(Path::to_path_buf)
        .collect()
}

/// Is `path` the file our stderr (the log) is written to? Never config,
/// never an event worth a line: at debug or trace level each line would be
/// the next event (and, inside a config directory, the next change). Known
/// by its name (from /proc, where there is one) and then by its inode, so a
/// symlinked path to it counts too.
pub(crate) fn is_own_log(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    static OWN: std::sync::OnceLock<Option<(std::ffi::OsString, u64, u64)>> =
        std::sync::OnceLock::new();
    let own = OWN.get_or_init(|| {
        let target = std::fs::read_link("/proc/self/fd/2").ok()?;
        let meta = std::fs::metadata("/proc/self/fd/2").ok()?;
        let name = target.file_name()?.to_os_string();
        meta.is_file().then(|| (name, meta.dev(), meta.ino()))
    });
    match own {
        Some((name, dev, ino)) => {
            path.file_name() == Some(name.as_os_str())
                && std::fs::metadata(path).is_ok_and(|m| m.dev() == *dev && m.ino() == *ino)
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_unescapes() {
        assert_eq!(unescape_mount(r"/a\040b/c"), "/a b/c");
        assert_eq!(unescape_mount(r"/plain"), "/plain");
    }

    #[test]
    fn plans_parent_dirs_and_ancestors() {
        let root = std::env::temp_dir().join(format!("fm-plan-{}", std::process::id()));
        let conf = root.join("conf");
        fs::create_dir_all(&conf).unwrap();
        let plan1 = plan(&[
            conf.join("app.conf"),
            root.join("missing/deeper/x.conf"),
            conf.clone(),
        ]);
        assert!(
            plan1[&conf]
                .names
                .contains(std::ffi::OsStr::new("app.conf"))
        );
        assert!(plan1[&conf].any, "a config directory wants every name");
        assert!(
            plan1[&root].any,
            "an ancestor waits for the missing directory"
        );
        let i = &plan(&[conf.join("app.conf")])[&conf];
        assert!(
            i.matches("app.conf".as_ref())
                && i.matches("..data".as_ref())
                && !i.matches("log.txt".as_ref())
        );
        fs::remove_dir_all(&root).unwrap();
    }
}
