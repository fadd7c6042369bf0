//! What a config file "is", for deciding whether it changed: its length and
//! a hash of its bytes, read through symlinks, with its permission bits
//! (and owner, as root) and those of the directories it is in below the
//! config path. Inodes, mtimes and symlink targets are not content: a
//! ConfigMap update of another key swaps `..data` and changes the inode of
//! every key, but not their bytes.

use log::{debug, warn};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::hash::Hasher;
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileState {
    Missing,
    Content {
        len: u64,
        hash: u64,
    },
    /// Exists but cannot be read (the error, for the log).
    Unreadable(String),
    /// A FIFO, socket or device, never opened; or a kernel pseudo-file
    /// (`/proc`, `/sys`), never read.
    NotRegular,
}

impl std::fmt::Display for FileState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FileState::Missing => write!(f, "missing"),
            // A short hash: enough to tell versions apart in a log, and
            // nothing of the content (it may be a Secret).
            FileState::Content { len, hash } => write!(f, "{len} bytes, hash {:08x}", hash >> 32),
            FileState::Unreadable(e) => write!(f, "unreadable ({e})"),
            FileState::NotRegular => write!(f, "not a regular file"),
        }
    }
}

/// Every watched file and its state, by absolute path.
pub type Snapshot = BTreeMap<PathBuf, FileState>;

/// A short hash of a whole snapshot, for a log line or a metric label:
/// tells versions apart, shows nothing of the content.
pub fn short(snapshot: &Snapshot) -> String {
    let mut hasher = std::hash::DefaultHasher::new();
    for (path, state) in snapshot {
        std::hash::Hash::hash(path, &mut hasher);
        std::hash::Hash::hash(&state.to_string(), &mut hasher);
    }
    format!("{:08x}", hasher.finish() >> 32)
}

/// A file whose readable bytes differ from those of the base snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub path: PathBuf,
    pub before: FileState,
    pub after: FileState,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({} -> {})",
            self.path.display(),
            self.before,
            self.after
        )
    }
}

/// The rule: a change is a file with content that differs from the base.
/// A file that went missing or unreadable is not a change (the child keeps
/// running on what it read); when it comes back, its bytes are compared.
pub fn changes(base: &Snapshot, now: &Snapshot) -> Vec<Change> {
    paired(base, now)
        .filter(|(_, before, after)| {
            matches!(after, FileState::Content { .. }) && *before != Some(*after)
        })
        .map(|(path, before, after)| Change {
            path: path.clone(),
            before: before.cloned().unwrap_or(FileState::Missing),
            after: after.clone(),
        })
        .collect()
}

/// Each file of `now` with its state in `base`, in one pass over both
/// (sorted alike): no lookup per file, and equal paths are told by their
/// bytes, without parsing components (10,000 lookups did cost more than
/// hashing the files).
pub fn paired<'a>(
    base: &'a Snapshot,
    now: &'a Snapshot,
) -> impl Iterator<Item = (&'a PathBuf, Option<&'a FileState>, &'a FileState)> {
    let mut old = base.iter().peekable();
    now.iter().map(move |(path, after)| {
        let mut before = None;
        while let Some(&(p, state)) = old.peek() {
            let order = if p.as_os_str() == path.as_os_str() {
                std::cmp::Ordering::Equal
            } else {
                p.cmp(path)
            };
            match order {
                std::cmp::Ordering::Less => {
                    old.next();
                }
                std::cmp::Ordering::Equal => {
                    before = Some(state);
                    old.next();
                    break;
                }
                std::cmp::Ordering::Greater => break,
            }
        }
        (path, before, after)
    })
}

/// Length and hash of the file's bytes, streamed in 16 KiB pieces.
///
/// Only a regular file on a real filesystem is ever read. Its type is
/// checked with `stat` before it is opened, because opening a device can
/// itself act (a tape rewinds, a watchdog arms); a FIFO that appears in the
/// moment between the two is harmless, as the open does not wait for a
/// writer. A kernel pseudo-file (`/proc`, `/sys`: see `is_pseudo_fs`)
/// looks regular to `stat` and is refused once open, from the filesystem
/// the descriptor is on.
pub fn file_state(path: &Path) -> FileState {
    file_state_in(path, path)
}

/// `file_state` of a file found below the config path `config`: the
/// directories between the two count too (see `dirs_key`), so a change of
/// a directory's mode or owner alone is a change of the files it holds.
pub fn file_state_in(path: &Path, config: &Path) -> FileState {
    match fs::metadata(path) {
        Ok(meta) => read_state(path, &meta, dirs_key(path, config, &mut HashMap::new())),
        Err(e) if is_missing(&e) => FileState::Missing,
        Err(e) => FileState::Unreadable(e.to_string()),
    }
}

/// `file_state` for a path already stat-ed (`meta`, through symlinks).
fn read_state(path: &Path, meta: &fs::Metadata, dirs: u64) -> FileState {
    if !meta.is_file() {
        return FileState::NotRegular;
    }
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if is_missing(&e) => return FileState::Missing,
        Err(e) => return FileState::Unreadable(e.to_string()),
    };
    match hash_file(file, dirs) {
        Ok(state) => state,
        Err(e) => FileState::Unreadable(e.to_string()),
    }
}

fn is_missing(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(nix::libc::ENOTDIR)
}

/// How far past the size `stat` gave at open a file is read. Some
/// filesystems (FUSE, network ones) report 0 for a file with content, so
/// the size alone cannot be the limit; a file still being appended to is
/// hashed as far as this, and its next write is another event.
const READ_PAST_SIZE: u64 = 1 << 20;

fn hash_file(file: File, dirs: u64) -> io::Result<FileState> {
    let meta = file.metadata()?;
    // Checked again on the open file: the path may lead elsewhere by now.
    if !meta.is_file() || is_pseudo_fs(&nix::sys::statfs::fstatfs(&file)?) {
        return Ok(FileState::NotRegular);
    }
    hash_stream(
        file,
        meta.len().saturating_add(READ_PAST_SIZE),
        attributes(&meta) ^ dirs.rotate_left(1),
    )
}

/// The permission bits, and the owner where copies keep it, of a file or
/// directory, as one number: part of what a file is. A Secret whose mode
/// went from 0644 to 0400, or whose group changed, with the same bytes, is
/// a change to act on (and to copy). Not the setuid/setgid/sticky bits: a
/// manager without privilege may be refused them on its copy, which would
/// then never match its source; and the owner only when every copy gets
/// its source's (see `owners_kept`), for the same reason.
fn attributes(meta: &fs::Metadata) -> u64 {
    let mode = u64::from(meta.mode() & 0o777);
    if owners_kept() {
        let owner = (u64::from(meta.uid()) << 32) | u64::from(meta.gid());
        // An odd factor maps owners one to one; the mode stays readable.
        (owner.wrapping_mul(0x9e37_79b9_7f4a_7c15) << 9) ^ (owner >> 55) ^ mode
    } else {
        mode
    }
}

/// Whether a copy always gets its source's owner: a manager running as
/// root with every id mapped (not a rootless container's "root", whose
/// copies of a file owned by an unmapped id stay its own).
fn owners_kept() -> bool {
    static KEPT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *KEPT.get_or_init(|| {
        // SAFETY: geteuid(2) cannot fail and touches no memory.
        let root = unsafe { nix::libc::geteuid() } == 0;
        let full = |f: &str| {
            fs::read_to_string(f)
                .is_ok_and(|m| m.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"])
        };
        root && full("/proc/self/uid_map") && full("/proc/self/gid_map")
    })
}

/// The attributes (`attributes`) of the directories between `config` and
/// `file`, outermost last, as one number; 0 for a file directly in
/// `config` or given itself. Each directory is stat-ed once per `memo`.
fn dirs_key(file: &Path, config: &Path, memo: &mut HashMap<PathBuf, u64>) -> u64 {
    let mut key = 0u64;
    let mut at = file.parent();
    while let Some(dir) = at {
        if dir == config || !dir.starts_with(config) {
            break;
        }
        let attrs = *memo.entry(dir.to_path_buf()).or_insert_with(|| {
            // A directory gone in between: its files are missing too.
            fs::metadata(dir).map_or(u64::MAX, |m| attributes(&m))
        });
        key = key.rotate_left(7) ^ attrs.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        at = dir.parent();
    }
    key
}

/// Hashes at most `limit` bytes of `source`: one look never reads without
/// end, whatever the file turns out to be.
fn hash_stream(source: impl Read, limit: u64, attributes: u64) -> io::Result<FileState> {
    let mut source = source.take(limit);
    // SipHash with fixed keys: the same bytes give the same hash in every
    // run of this binary; this detects edits, it does not resist forgery.
    let mut hasher = std::hash::DefaultHasher::new();
    hasher.write_u64(attributes);
    // On the stack: a heap buffer this size stays resident afterwards with
    // musl's allocator (idle RSS grows by it).
    let mut buf = [0u8; 16 * 1024];
    let mut len = 0u64;
    loop {
        match source.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                hasher.write(&buf[..n]);
                len += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(FileState::Content {
        len,
        hash: hasher.finish(),
    })
}

/// Filesystems whose files the kernel makes up when they are read: there a
/// "regular file" can be endless (`/proc/<pid>/pagemap` describes a whole
/// address space, hundreds of GB) or have effects when read (a driver's
/// attribute in `/sys`). None of them holds a config.
#[cfg(target_os = "linux")]
fn is_pseudo_fs(fs: &nix::sys::statfs::Statfs) -> bool {
    use nix::sys::statfs::{
        BPF_FS_MAGIC, CGROUP_SUPER_MAGIC, CGROUP2_SUPER_MAGIC, DEBUGFS_MAGIC, PROC_SUPER_MAGIC,
        SECURITYFS_MAGIC, SYSFS_MAGIC, TRACEFS_MAGIC,
    };
    [
        PROC_SUPER_MAGIC,
        SYSFS_MAGIC,
        DEBUGFS_MAGIC,
        TRACEFS_MAGIC,
        SECURITYFS_MAGIC,
        CGROUP_SUPER_MAGIC,
        CGROUP2_SUPER_MAGIC,
        BPF_FS_MAGIC,
    ]
    .contains(&fs.filesystem_type())
}

/// The same by name where the kernel names its filesystems (macOS, BSD).
#[cfg(not(target_os = "linux"))]
fn is_pseudo_fs(fs: &nix::sys::statfs::Statfs) -> bool {
    ["procfs", "linprocfs", "linsysfs", "fdescfs", "devfs"].contains(&fs.filesystem_type_name())
}

/// Editor droppings in a watched directory are not config (vim's `4913`
/// probe and `.name.swp`, backups `name~`, emacs's `.#name` locks), nor are
/// the kubelet's internals (`..data`, `..2026_…`: reached through the
/// user-visible symlinks instead). Other dot files are: `.htpasswd` and
/// `.env` are ConfigMap keys like any other.
pub fn is_config_name(name: &str) -> bool {
    let swap = name.starts_with('.')
        && [".swp", ".swo", ".swx", ".swn"]
            .iter()
            .any(|s| name.ends_with(s));
    !name.starts_with("..")
        && !name.starts_with(".#")
        && !swap
        && !name.ends_with('~')
        && name != "4913"
}

/// How deep a config directory is walked.
const MAX_DEPTH: usize = 32;

/// The files a config path stands for: itself, or, for a directory, every
/// regular file below it (see `tree`).
pub fn expand(path: &Path) -> Vec<PathBuf> {
    tree(path).0
}

/// `expand`'s files, and the directories they were found in (the config
/// directory itself first), as paths below `path`.
///
/// What a walk follows, so that nothing a directory holds can send it
/// elsewhere:
/// - a symlink to a directory, only when it resolves inside the config
///   directory: that is where the kubelet puts nested items
///   (`sites -> ..data/sites`, `..data -> ..2026_…`); a link out of it
///   (`root -> /`) or back to a directory the walk is in (a cycle) is not
///   followed;
/// - a symlink to a file, wherever it leads (`conf.d/x.conf ->
///   /etc/shared/x.conf` is a plausible layout, and a file is one read),
///   except onto a kernel pseudo-filesystem (`/proc`, `/sys`);
/// - FIFOs, sockets and devices are never listed, so never opened.
///
/// What is not followed is named in one WARN per path, however many looks.
pub fn tree(path: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    match fs::metadata(path) {
        Ok(meta) if meta.is_dir() => {
            // The config directory as the kernel resolves it (itself a
            // symlink, perhaps): links are judged against this.
            let root = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
            let mut walk = Walk {
                root,
                files: vec![],
                dirs: vec![],
                seen: HashSet::new(),
                open: vec![],
                pseudo: HashMap::new(),
            };
            walk.dir(path, &meta, 0);
            walk.files.sort_unstable();
            (walk.files, walk.dirs)
        }
        _ => (vec![path.to_path_buf()], vec![]),
    }
}

struct Walk {
    root: PathBuf,
    files: Vec<PathBuf>,
    dirs: Vec<PathBuf>,
    /// Directories already walked (a second link to one adds nothing).
    seen: HashSet<(u64, u64)>,
    /// The directories the walk is inside now: a link to one is a cycle.
    open: Vec<(u64, u64)>,
    /// Whether each device seen is a pseudo-filesystem: one `statfs` per
    /// device and walk, not one per file (every ConfigMap key is a link).
    pseudo: HashMap<u64, bool>,
}

impl Walk {
    fn dir(&mut self, dir: &Path, meta: &fs::Metadata, depth: usize) {
        let id = (meta.dev(), meta.ino());
        if depth > MAX_DEPTH {
            warn_once(dir, "is too deep below the config directory; not walked");
            return;
        }
        if !self.seen.insert(id) {
            return;
        }
        // A plain subdirectory can be a mount point too.
        if self.is_pseudo(dir, meta.dev()) {
            warn_once(
                dir,
                "is on a kernel pseudo-filesystem (/proc, /sys); not walked",
            );
            return;
        }
        self.dirs.push(dir.to_path_buf());
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        self.open.push(id);
        for entry in entries.flatten() {
            if !entry.file_name().to_str().is_some_and(is_config_name) {
                continue;
            }
            let path = entry.path();
            // The directory entry's own type needs no system call; only a
            // symlink (every key of a ConfigMap) is followed with a stat.
            match entry.file_type() {
                // Our own log, written into the config directory: never
                // config (each line would be a change).
                Ok(t) if t.is_file() && super::is_own_log(&path) => {}
                Ok(t) if t.is_file() => self.files.push(path),
                Ok(t) if t.is_dir() => {
                    if let Ok(m) = fs::metadata(&path) {
                        self.dir(&path, &m, depth + 1);
                    }
                }
                Ok(t) if t.is_symlink() => self.link(path, depth),
                // A FIFO, socket or device: not config, never opened (a
                // FIFO would block the reader). Said once, not skipped
                // silently: it may be a mistake (`mkfifo` for a secret).
                Ok(_) => warn_once(&path, SPECIAL),
                Err(_) => {}
            }
        }
        self.open.pop();
    }

    fn link(&mut self, path: PathBuf, depth: usize) {
        let meta = match fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => {
                warn_once(&path, "is a symlink loop; not followed");
                return;
            }
            // Dangling: nothing to read until its target appears, which a
            // later look sees.
            Err(_) => return,
        };
        if meta.is_file() {
            if self.is_pseudo(&path, meta.dev()) {
                warn_once(
                    &path,
                    "leads to a kernel pseudo-file (/proc, /sys); never read",
                );
            } else {
                self.files.push(path);
            }
        } else if meta.is_dir() {
            match fs::canonicalize(&path) {
                Ok(real) if !real.starts_with(&self.root) => warn_once(
                    &path,
                    format_args!(
                        "leads outside the config directory {} (to {}); not followed",
                        self.root.display(),
                        real.display()
                    ),
                ),
                Ok(_) if self.open.contains(&(meta.dev(), meta.ino())) => warn_once(
                    &path,
                    "leads back to a directory it is in (a cycle); not followed",
                ),
                Ok(_) => self.dir(&path, &meta, depth + 1),
                // Gone in between: the next look sees what replaced it.
                Err(_) => {}
            }
        } else {
            // A link to a FIFO, socket or device: never opened.
            warn_once(&path, SPECIAL);
        }
    }

    fn is_pseudo(&mut self, path: &Path, dev: u64) -> bool {
        *self
            .pseudo
            .entry(dev)
            .or_insert_with(|| nix::sys::statfs::statfs(path).is_ok_and(|fs| is_pseudo_fs(&fs)))
    }
}

/// Why a FIFO, socket or device in a config directory is not read.
const SPECIAL: &str = "is a FIFO, socket or device, not a regular file; its content is not watched";

/// At most this many paths are remembered as warned about; past it, new
/// ones go to the debug log (a directory of a million bad links must not
/// grow the manager without end).
const WARNED_MAX: usize = 1024;

/// One WARN per path for the life of the process: a directory is walked at
/// every look (each event, each polling tick), and a link that stays wrong
/// would otherwise repeat the same line for ever.
fn warn_once(path: &Path, why: impl std::fmt::Display) {
    static WARNED: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());
    let mut warned = WARNED.lock().unwrap_or_else(PoisonError::into_inner);
    if warned.contains(path) {
        return;
    }
    if warned.len() >= WARNED_MAX {
        debug!("{}: {why}", path.display());
        return;
    }
    warned.insert(path.to_path_buf());
    warn!("{}: {why}", path.display());
}

/// What stat says of a file; equal keys on an old enough file mean equal bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StatKey {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    /// The directories' attributes (`dirs_key`): a directory's chmod
    /// leaves its files' stat as it was.
    dirs: u64,
}

/// Fingerprints with a stat cache. A decision (spawn, after the debounce)
/// always hashes (`fresh`) and so keeps the cache warm; a polling tick hashes
/// a file again only when stat says it may have changed. A file modified
/// within `RACY` of its hashing is always hashed again (git's "racily
/// clean" rule: a write in the same timestamp tick leaves stat unchanged).
#[derive(Default)]
pub struct Cache {
    entries: HashMap<PathBuf, (StatKey, SystemTime, FileState)>,
}

const RACY: Duration = Duration::from_secs(2);

impl Cache {
    pub fn snapshot(&mut self, configs: &[PathBuf], fresh: bool) -> Snapshot {
        let mut dirs = HashMap::new();
        let files: Vec<(PathBuf, FileState)> = configs
            .iter()
            .flat_map(|c| expand(c).into_iter().map(move |file| (c, file)))
            .map(|(config, file)| {
                let key = dirs_key(&file, config, &mut dirs);
                let state = self.state(&file, fresh, key);
                (file, state)
            })
            .collect();
        // Forget files no longer there (borrowed paths: no copy per tick).
        let seen: HashSet<&PathBuf> = files.iter().map(|(p, _)| p).collect();
        self.entries.retain(|p, _| seen.contains(p));
        // Built in bulk from the walk's order: no search per insertion.
        files.into_iter().collect()
    }

    fn state(&mut self, path: &Path, fresh: bool, dirs: u64) -> FileState {
        let Ok(meta) = fs::metadata(path) else {
            self.entries.remove(path);
            return file_state(path);
        };
        let key = StatKey {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
            dirs,
        };
        if !fresh
            && let Some((cached, hashed_at, state)) = self.entries.get(path)
            && *cached == key
            // checked: an mtime set to the far future must not overflow.
            && meta
                .modified()
                .is_ok_and(|m| m.checked_add(RACY).is_some_and(|t| t < *hashed_at))
        {
            return state.clone();
        }
        let now = SystemTime::now();
        let state = read_state(path, &meta, dirs);
        self.entries
            .insert(path.to_path_buf(), (key, now, state.clone()));
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by a hostile review: `.htpasswd` and `.env`, valid ConfigMap
    /// keys, never reached the child.
    #[test]
    fn dot_files_are_config_and_editor_droppings_are_not() {
        for name in [".htpasswd", ".env", "app.conf", "sites"] {
            assert!(is_config_name(name), "{name}");
        }
        for name in [
            "..data",
            "..2026_11_28",
            ".app.conf.swp",
            ".x.swx",
            ".#app.conf",
            "app.conf~",
            "4913",
        ] {
            assert!(!is_config_name(name), "{name}");
        }
    }

    fn content(hash: u64) -> FileState {
        FileState::Content { len: 1, hash }
    }

    #[test]
    fn only_new_readable_bytes_are_a_change() {
        let p = PathBuf::from("/a");
        let base: Snapshot = [(p.clone(), content(1))].into();
        assert!(changes(&base, &[(p.clone(), content(1))].into()).is_empty());
        assert!(changes(&base, &[(p.clone(), FileState::Missing)].into()).is_empty());
        assert!(changes(&base, &[(p.clone(), FileState::NotRegular)].into()).is_empty());
        assert!(
            changes(
                &base,
                &[(p.clone(), FileState::Unreadable("x".into()))].into()
            )
            .is_empty()
        );
        let c = changes(&base, &[(p.clone(), content(2))].into());
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].before, content(1));
        // A new file in a watched directory is a change.
        assert_eq!(
            changes(&base, &[(p, content(1)), ("/b".into(), content(1))].into()).len(),
            1
        );
    }

    #[test]
    fn pairs_files_of_two_snapshots_with_different_sets() {
        let snap = |entries: &[(&str, u64)]| -> Snapshot {
            entries
                .iter()
                .map(|(p, h)| (PathBuf::from(p), content(*h)))
                .collect()
        };
        let base = snap(&[("/c/a", 1), ("/c/b", 2), ("/c/d", 4), ("/c/z/y", 9)]);
        let now = snap(&[("/c/b", 2), ("/c/c", 3), ("/c/d", 5), ("/d", 6)]);
        let pairs: Vec<(String, Option<FileState>)> = paired(&base, &now)
            .map(|(p, before, _)| (p.display().to_string(), before.cloned()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("/c/b".into(), Some(content(2))),
                ("/c/c".into(), None),
                ("/c/d".into(), Some(content(4))),
                ("/d".into(), None),
            ]
        );
        let changed: Vec<PathBuf> = changes(&base, &now).into_iter().map(|c| c.path).collect();
        assert_eq!(changed, [PathBuf::from("/c/c"), "/c/d".into(), "/d".into()]);
    }

    #[test]
    fn hashes_bytes_not_inodes() {
        let dir = std::env::temp_dir().join(format!("fm-fp-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let (a, b) = (dir.join("a"), dir.join("b"));
        fs::write(&a, b"same bytes").unwrap();
        fs::write(&b, b"same bytes").unwrap();
        assert_eq!(file_state(&a), file_state(&b));
        fs::write(&b, b"other bytes").unwrap();
        assert_ne!(file_state(&a), file_state(&b));
        assert_eq!(file_state(&dir.join("none")), FileState::Missing);
        assert_eq!(file_state(&a.join("under-a-file")), FileState::Missing);
        let mut cache = Cache::default();
        let first = cache.snapshot(std::slice::from_ref(&dir), false);
        assert_eq!(first.len(), 2);
        fs::write(&a, b"changed!!!").unwrap();
        assert_ne!(
            cache.snapshot(std::slice::from_ref(&dir), false),
            first,
            "a fresh write is never taken from the cache"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_config_directory_is_walked_through_symlinked_subdirectories() {
        use std::os::unix::fs::symlink;
        let dir = std::env::temp_dir().join(format!("fm-tree-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        // A ConfigMap with a nested item: ..ts/sites/default.conf, ..data ->
        // ..ts, sites -> ..data/sites, app.conf -> ..data/app.conf.
        let ts = dir.join("..2026_01_01_00_00_00.1");
        fs::create_dir_all(ts.join("sites")).unwrap();
        fs::write(ts.join("sites/default.conf"), "x").unwrap();
        fs::write(ts.join("app.conf"), "y").unwrap();
        symlink("..2026_01_01_00_00_00.1", dir.join("..data")).unwrap();
        symlink("..data/sites", dir.join("sites")).unwrap();
        symlink("..data/app.conf", dir.join("app.conf")).unwrap();
        symlink(".", dir.join("loop")).unwrap();
        let (files, dirs) = tree(&dir);
        assert_eq!(
            files,
            [dir.join("app.conf"), dir.join("sites/default.conf")]
        );
        assert_eq!(dirs, [dir.clone(), dir.join("sites")]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_walk_stays_inside_the_config_directory() {
        use std::os::unix::fs::symlink;
        let base = std::env::temp_dir().join(format!("fm-stay-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        let dir = base.join("conf");
        fs::create_dir_all(dir.join("d")).unwrap();
        fs::write(dir.join("app.conf"), "a").unwrap();
        fs::write(dir.join("d/x.conf"), "x").unwrap();
        fs::write(base.join("shared.conf"), "s").unwrap();
        fs::create_dir_all(base.join("elsewhere")).unwrap();
        fs::write(base.join("elsewhere/other.conf"), "o").unwrap();
        // Out of the directory: the whole filesystem, the parent, a sibling.
        symlink("/", dir.join("root")).unwrap();
        symlink("..", dir.join("up")).unwrap();
        symlink("../elsewhere", dir.join("elsewhere")).unwrap();
        // Cycles: to itself, to an ancestor from below, a loop of links.
        symlink(".", dir.join("self")).unwrap();
        symlink("..", dir.join("d/back")).unwrap();
        symlink("b", dir.join("a")).unwrap();
        symlink("a", dir.join("b")).unwrap();
        // A file link out is followed; onto /proc, never.
        symlink("../shared.conf", dir.join("shared.conf")).unwrap();
        symlink("/proc/self/pagemap", dir.join("pagemap")).unwrap();
        symlink(
            "/sys/kernel/mm/transparent_hugepage/enabled",
            dir.join("sysfs"),
        )
        .unwrap();
        symlink("/dev/null", dir.join("null")).unwrap();
        nix::unistd::mkfifo(&dir.join("fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        let _socket = std::os::unix::net::UnixListener::bind(dir.join("socket")).unwrap();
        let (files, dirs) = tree(&dir);
        assert_eq!(
            files,
            [
                dir.join("app.conf"),
                dir.join("d/x.conf"),
                dir.join("shared.conf")
            ]
        );
        assert_eq!(dirs, [dir.clone(), dir.join("d")]);
        fs::remove_dir_all(&base).unwrap();
    }

    // /proc's layout is Linux's.
    #[cfg(target_os = "linux")]
    #[test]
    fn only_regular_files_on_real_filesystems_are_read() {
        assert_eq!(file_state(Path::new("/dev/null")), FileState::NotRegular);
        assert_eq!(
            file_state(Path::new("/proc/self/pagemap")),
            FileState::NotRegular
        );
        assert_eq!(
            file_state(Path::new("/proc/self/status")),
            FileState::NotRegular
        );
        let dir = std::env::temp_dir().join(format!("fm-sock-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let _socket = std::os::unix::net::UnixListener::bind(dir.join("socket")).unwrap();
        // Opening a socket fails (ENXIO): it is not "unreadable" config.
        assert_eq!(file_state(&dir.join("socket")), FileState::NotRegular);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_look_reads_a_bounded_number_of_bytes() {
        let endless = io::repeat(b'x');
        assert_eq!(
            hash_stream(endless, 1 << 20, 0)
                .map(|s| match s {
                    FileState::Content { len, .. } => len,
                    _ => 0,
                })
                .ok(),
            Some(1 << 20)
        );
    }

    #[test]
    fn shows_no_content() {
        let s = FileState::Content {
            len: 12,
            hash: 0xdead_beef_0000_0000,
        }
        .to_string();
        assert_eq!(s, "12 bytes, hash deadbeef");
    }

    /// A directory's mode is part of the files below it, for a fresh look
    /// and for a cached one alike (its chmod leaves the files' stat as it
    /// was); the config directory's own mode is not (its copy's mode is
    /// another directory's).
    #[test]
    fn a_directory_mode_change_changes_the_files_below_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("fm-dirmode-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("sub")).unwrap();
        fs::write(dir.join("sub/a"), "a").unwrap();
        fs::write(dir.join("top"), "t").unwrap();
        let chmod = |p: &Path, m| fs::set_permissions(p, fs::Permissions::from_mode(m)).unwrap();
        chmod(&dir.join("sub"), 0o755);
        let mut cache = Cache::default();
        let configs = [dir.clone()];
        let before = cache.snapshot(&configs, true);
        assert_eq!(before.len(), 2);
        chmod(&dir.join("sub"), 0o700);
        let (a, top) = (dir.join("sub/a"), dir.join("top"));
        let cached = cache.snapshot(&configs, false);
        assert_ne!(before[&a], cached[&a], "the cache sees it");
        assert_eq!(cached, cache.snapshot(&configs, true));
        assert_eq!(cached[&a], file_state_in(&a, &dir));
        assert_eq!(before[&top], cached[&top]);
        chmod(&dir, 0o750);
        assert_eq!(cached, cache.snapshot(&configs, true));
        chmod(&dir, 0o755);
        fs::remove_dir_all(&dir).unwrap();
    }
}
