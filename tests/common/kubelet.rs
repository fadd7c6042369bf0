//! A faithful copy of the kubelet's atomic writer (ConfigMap, Secret,
//! downward API and projected volumes), step by step as the kubelet does it:
//! a new timestamped directory, the `..data_tmp` symlink renamed over `..data`,
//! then the old directory removed.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub struct AtomicWriter {
    pub dir: PathBuf,
}

/// What one `write` did.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// Payload identical and nothing removed: nothing written (a resync).
    Unchanged,
    Swapped,
}

impl AtomicWriter {
    pub fn new(dir: &Path) -> AtomicWriter {
        fs::create_dir_all(dir).expect("volume dir");
        AtomicWriter {
            dir: dir.to_path_buf(),
        }
    }

    /// The current payload, read through `..data` (step 1).
    fn current(&self) -> Option<(PathBuf, BTreeMap<String, Vec<u8>>)> {
        let target = fs::read_link(self.dir.join("..data")).ok()?;
        let ts_dir = self.dir.join(target);
        let mut files = BTreeMap::new();
        read_tree(&ts_dir, "", &mut files)?;
        Some((ts_dir, files))
    }

    /// The user-visible top-level names of a payload: `sites` for the item
    /// path `sites/default.conf`.
    fn top_level(keys: impl Iterator<Item = String>) -> std::collections::BTreeSet<String> {
        keys.map(|k| k.split('/').next().unwrap_or_default().to_string())
            .collect()
    }

    pub fn write(&self, payload: &[(&str, &[u8])]) -> Outcome {
        let want: BTreeMap<String, Vec<u8>> = payload
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_vec()))
            .collect();
        let old = self.current();
        // Step 2: identical payload, no key removed: write nothing.
        if let Some((_, files)) = &old
            && *files == want
        {
            return Outcome::Unchanged;
        }
        // Step 3: a new timestamped directory with every key's file.
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let secs = now.as_secs();
        let (days, rem) = (secs / 86400, secs % 86400);
        let name = format!(
            "..2026_{:02}_{:02}_{:02}_{:02}_{:02}.{}{}",
            (days % 12) + 1,
            (days % 28) + 1,
            rem / 3600,
            (rem / 60) % 60,
            rem % 60,
            now.subsec_nanos() % 1_000_000_000,
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let new_dir = self.dir.join(&name);
        fs::create_dir(&new_dir).expect("ts dir");
        for (key, bytes) in &want {
            // An item with a nested path (`items: [{key, path: sites/a.conf}]`).
            if let Some(parent) = new_dir.join(key).parent() {
                fs::create_dir_all(parent).expect("item dir");
            }
            fs::write(new_dir.join(key), bytes).expect("key file");
        }
        // Step 4: ..data_tmp -> new dir.
        let tmp = self.dir.join("..data_tmp");
        let _ = fs::remove_file(&tmp);
        symlink(&name, &tmp).expect("..data_tmp");
        // Step 5: the atomic switch.
        fs::rename(&tmp, self.dir.join("..data")).expect("rename ..data");
        // Step 6: user-visible symlinks, created only if missing; removed for
        // deleted keys. A nested item gets one link for its top directory.
        let tops = Self::top_level(want.keys().cloned());
        for top in &tops {
            let link = self.dir.join(top);
            if fs::symlink_metadata(&link).is_err() {
                symlink(format!("..data/{top}"), &link).expect("key symlink");
            }
        }
        if let Some((_, files)) = &old {
            for top in Self::top_level(files.keys().cloned()) {
                if !tops.contains(&top) {
                    let _ = fs::remove_file(self.dir.join(top));
                }
            }
        }
        // Step 7: the old directory goes.
        if let Some((old_dir, _)) = old {
            fs::remove_dir_all(old_dir).expect("remove old ts dir");
        }
        Outcome::Swapped
    }
}

/// Every file below `dir`, by its path relative to the payload root.
fn read_tree(dir: &Path, prefix: &str, files: &mut BTreeMap<String, Vec<u8>>) -> Option<()> {
    for e in fs::read_dir(dir).ok()?.flatten() {
        let name = format!("{prefix}{}", e.file_name().to_string_lossy());
        if e.file_type().ok()?.is_dir() {
            read_tree(&e.path(), &format!("{name}/"), files)?;
        } else {
            files.insert(name, fs::read(e.path()).ok()?);
        }
    }
    Some(())
}
