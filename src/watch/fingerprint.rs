//! What a config file "is", for deciding whether it changed: its length and
//! a hash of its bytes, read through symlinks. Inodes, mtimes and symlink
//! targets are not content: a ConfigMap update of another key swaps `..data`
//! and changes the inode of every key, but not their bytes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::hash::Hasher;
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
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
    /// A FIFO, socket or device: never opened for reading.
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

/// Length and hash of the file's bytes, streamed in 16 KiB pieces. Opened
/// non-blocking so a FIFO put in place of a config cannot stall the loop.
pub fn file_state(path: &Path) -> FileState {
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if is_missing(&e) => return FileState::Missing,
        Err(e) => return FileState::Unreadable(e.to_string()),
    };
    match hash_file(file) {
        Ok(state) => state,
        Err(e) => FileState::Unreadable(e.to_string()),
    }
}

fn is_missing(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(nix::libc::ENOTDIR)
}

fn hash_file(mut file: File) -> io::Result<FileState> {
    if !file.metadata()?.is_file() {
        return Ok(FileState::NotRegular);
    }
    // SipHash with fixed keys: the same bytes give the same hash in every
    // run of this binary; this detects edits, it does not resist forgery.
    let mut hasher = std::hash::DefaultHasher::new();
    // On the stack: a heap buffer this size stays resident afterwards
    // (measured: +64 KiB idle RSS with musl's allocator).
    let mut buf = [0u8; 16 * 1024];
    let mut len = 0u64;
    loop {
        match file.read(&mut buf) {
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

/// Editor droppings in a watched directory are not config, nor are the
/// kubelet's internals (`..data`, `..2026_…`: reached through the
/// user-visible symlinks instead).
pub fn is_config_name(name: &str) -> bool {
    !name.starts_with('.') && !name.ends_with('~') && name != "4913"
}

/// How deep a config directory is walked (symlink loops end earlier: each
/// directory is entered once).
const MAX_DEPTH: usize = 32;

/// The files a config path stands for: itself, or, for a directory, every
/// regular file below it, recursively, symlinks followed (a ConfigMap
/// item with a nested path is `sites -> ..data/sites`, a link to a directory).
pub fn expand(path: &Path) -> Vec<PathBuf> {
    tree(path).0
}

/// `expand`'s files, and the directories they were found in (the config
/// directory itself first), as paths below `path`.
pub fn tree(path: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    match fs::metadata(path) {
        Ok(meta) if meta.is_dir() => {
            let (mut files, mut dirs) = (vec![], vec![]);
            walk(path, 0, &mut files, &mut dirs, &mut HashSet::new());
            files.sort_unstable();
            (files, dirs)
        }
        _ => (vec![path.to_path_buf()], vec![]),
    }
}

fn walk(
    dir: &Path,
    depth: usize,
    files: &mut Vec<PathBuf>,
    dirs: &mut Vec<PathBuf>,
    seen: &mut HashSet<(u64, u64)>,
) {
    let Ok(meta) = fs::metadata(dir) else {
        return;
    };
    if depth > MAX_DEPTH || !seen.insert((meta.dev(), meta.ino())) {
        return;
    }
    dirs.push(dir.to_path_buf());
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if !entry.file_name().to_str().is_some_and(is_config_name) {
            continue;
        }
        let path = entry.path();
        // The directory entry's own type needs no system call; only a
        // symlink (every key of a ConfigMap) is followed with a stat.
        let (is_file, is_dir) = match entry.file_type() {
            Ok(t) if !t.is_symlink() => (t.is_file(), t.is_dir()),
            _ => match fs::metadata(&path) {
                Ok(m) => (m.is_file(), m.is_dir()),
                Err(_) => (false, false),
            },
        };
        if is_file {
            files.push(path);
        } else if is_dir {
            walk(&path, depth + 1, files, dirs, seen);
        }
    }
}

/// What stat says of a file; equal keys on an old enough file mean equal bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StatKey {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
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
        let files: Vec<(PathBuf, FileState)> = configs
            .iter()
            .flat_map(|c| expand(c))
            .map(|file| {
                let state = self.state(&file, fresh);
                (file, state)
            })
            .collect();
        // Forget files no longer there (borrowed paths: no copy per tick).
        let seen: HashSet<&PathBuf> = files.iter().map(|(p, _)| p).collect();
        self.entries.retain(|p, _| seen.contains(p));
        // Built in bulk from the walk's order: no search per insertion.
        files.into_iter().collect()
    }

    fn state(&mut self, path: &Path, fresh: bool) -> FileState {
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
        let state = file_state(path);
        self.entries
            .insert(path.to_path_buf(), (key, now, state.clone()));
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn shows_no_content() {
        let s = FileState::Content {
            len: 12,
            hash: 0xdead_beef_0000_0000,
        }
        .to_string();
        assert_eq!(s, "12 bytes, hash deadbeef");
    }
}
