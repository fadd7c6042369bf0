//! `--promote-to DIR`: the child reads its config from DIR, never from the
//! watched sources. New source bytes are staged into DIR with the kubelet's
//! own atomic technique, so no reader ever sees half a config:
//!
//! 1. a new generation directory `..<timestamp>.<n>` holds a copy of every
//!    source file, at its path relative to its source;
//! 2. `..data_tmp -> <generation>` is renamed over `..data` (the switch);
//! 3. each top-level entry is a symlink `name -> ..data/name`, made once.
//!
//! With `--validate`, the check runs against DIR while the candidate is in
//! place; a pass drops the previous generation (`commit`), a failure
//! switches `..data` back at once and removes the candidate (`rollback`).

use crate::watch::fingerprint;
use log::{info, warn};
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

const DATA: &str = "..data";
const DATA_TMP: &str = "..data_tmp";

pub struct Promoter {
    dir: PathBuf,
    sources: Vec<PathBuf>,
    /// The generation `..data` pointed to before the staged candidate.
    previous: Option<String>,
    /// The staged generation awaiting a verdict.
    candidate: Option<String>,
    /// What DIR holds (after a commit): source path → state, so an
    /// unchanged source is not staged again.
    promoted: fingerprint::Snapshot,
}

/// Where each source file lands: (source file, path relative to DIR).
type Layout = Vec<(PathBuf, PathBuf)>;

impl Promoter {
    /// Checks that DIR is usable and that no two sources land on the same
    /// path; does not touch DIR's content.
    pub fn new(dir: PathBuf, sources: Vec<PathBuf>) -> Result<Promoter, String> {
        if sources.is_empty() {
            return Err("--promote-to needs a --config source".into());
        }
        if let Some(s) = sources
            .iter()
            .find(|s| s.starts_with(&dir) || dir.starts_with(s))
        {
            return Err(format!(
                "--promote-to {} and the source {} contain one another",
                dir.display(),
                s.display()
            ));
        }
        fs::create_dir_all(&dir)
            .map_err(|e| format!("--promote-to {}: cannot create it: {e}", dir.display()))?;
        let p = Promoter {
            dir,
            sources,
            previous: None,
            candidate: None,
            promoted: Default::default(),
        };
        p.layout()?;
        Ok(p)
    }

    /// Does DIR hold an earlier promotion (one the child can start on)?
    pub fn has_generation(&self) -> bool {
        fs::read_link(self.dir.join(DATA)).is_ok_and(|g| self.dir.join(g).is_dir())
    }

    /// The path in DIR that a source file is promoted to.
    pub fn target_of(&self, source: &Path) -> PathBuf {
        self.layout()
            .ok()
            .and_then(|l| l.into_iter().find(|(s, _)| s == source))
            .map_or_else(|| source.to_path_buf(), |(_, rel)| self.dir.join(rel))
    }

    fn layout(&self) -> Result<Layout, String> {
        let mut by_target: BTreeMap<PathBuf, PathBuf> = BTreeMap::new();
        for source in &self.sources {
            let files = fingerprint::expand(source);
            for file in files {
                let rel = if source.is_dir() {
                    file.strip_prefix(source).map(Path::to_path_buf).ok()
                } else {
                    source.file_name().map(PathBuf::from)
                };
                let Some(rel) = rel else { continue };
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

    /// Stages the sources as they are now (`now`, their fingerprint) as a
    /// new generation and switches `..data` to it. Returns false when DIR
    /// already holds exactly these bytes (nothing staged).
    pub fn stage(&mut self, now: &fingerprint::Snapshot) -> io::Result<bool> {
        if *now == self.promoted && self.has_generation() {
            return Ok(false);
        }
        self.rollback();
        let layout = self.layout().map_err(io::Error::other)?;
        let generation = generation_name();
        let root = self.dir.join(&generation);
        fs::create_dir(&root)?;
        let copied = (|| -> io::Result<()> {
            for (source, rel) in &layout {
                let dest = root.join(rel);
                if let Some(parent) = dest.parent() {
                    fs::create_dir_all(parent)?;
                }
                match fs::copy(source, &dest) {
                    Ok(_) => {}
                    // Gone since the layout was read: promoted without it.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                }
                info!(
                    "Promoting {} -> {} ({})",
                    source.display(),
                    self.dir.join(rel).display(),
                    fingerprint::file_state(&dest)
                );
            }
            Ok(())
        })();
        if let Err(e) = copied {
            let _ = fs::remove_dir_all(&root);
            return Err(e);
        }
        self.previous = fs::read_link(self.dir.join(DATA))
            .ok()
            .map(|g| g.to_string_lossy().into_owned());
        self.switch(&generation)?;
        self.candidate = Some(generation.clone());
        self.promoted = now.clone();
        info!(
            "Promoted {} file(s) to {} (generation {generation})",
            layout.len(),
            self.dir.display()
        );
        Ok(true)
    }

    /// The source bytes DIR holds now (as last staged).
    pub fn promoted(&self) -> &fingerprint::Snapshot {
        &self.promoted
    }

    /// The staged generation is good: the previous one goes.
    pub fn commit(&mut self) {
        if let Some(old) = self.previous.take() {
            let _ = fs::remove_dir_all(self.dir.join(old));
        }
        self.candidate = None;
    }

    /// The staged generation is rejected (or moot): `..data` goes back to
    /// the previous generation at once and the candidate is removed; with no
    /// previous generation DIR is left empty.
    pub fn rollback(&mut self) {
        let Some(candidate) = self.candidate.take() else {
            return;
        };
        let restored = match self.previous.take() {
            Some(prev) => self.switch(&prev).map(|()| prev),
            None => {
                let _ = fs::remove_file(self.dir.join(DATA));
                self.sync_links(None).map(|()| String::new())
            }
        };
        match restored {
            Ok(prev) if prev.is_empty() => {
                info!("Rolled back {}: it holds no config", self.dir.display())
            }
            Ok(prev) => info!(
                "Rolled back {} to the last good generation {prev}",
                self.dir.display()
            ),
            Err(e) => warn!("Cannot roll back {}: {e}", self.dir.display()),
        }
        let _ = fs::remove_dir_all(self.dir.join(candidate));
        // The bytes DIR holds are no longer known: the next stage copies.
        self.promoted = Default::default();
    }

    /// `..data -> generation`, atomically, then the top-level links.
    fn switch(&self, generation: &str) -> io::Result<()> {
        let tmp = self.dir.join(DATA_TMP);
        let _ = fs::remove_file(&tmp);
        symlink(generation, &tmp)?;
        fs::rename(&tmp, self.dir.join(DATA))?;
        self.sync_links(Some(generation))
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

/// `..2026_11_26_19_30_00.<nanos><n>`: unique, and sorted like the kubelet's.
fn generation_name() -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "..{}.{}{}",
        now.as_secs(),
        now.subsec_nanos(),
        SEQ.fetch_add(1, Ordering::Relaxed)
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

    fn snap(p: &Path) -> fingerprint::Snapshot {
        fingerprint::Cache::default().snapshot(&[p.to_path_buf()], true)
    }

    #[test]
    fn stage_commit_and_rollback_keep_one_good_generation() {
        let d = scratch("cycle");
        let (src, dir) = (d.join("src"), d.join("dst"));
        fs::create_dir_all(src.join("conf.d")).unwrap();
        fs::write(src.join("main.conf"), "v1").unwrap();
        fs::write(src.join("conf.d/a.conf"), "a1").unwrap();
        let mut p = Promoter::new(dir.clone(), vec![src.clone()]).unwrap();
        assert!(!p.has_generation());
        assert!(p.stage(&snap(&src)).unwrap());
        p.commit();
        assert_eq!(fs::read_to_string(dir.join("main.conf")).unwrap(), "v1");
        assert_eq!(fs::read_to_string(dir.join("conf.d/a.conf")).unwrap(), "a1");
        assert!(!p.stage(&snap(&src)).unwrap(), "same bytes: nothing staged");

        fs::write(src.join("main.conf"), "v2").unwrap();
        assert!(p.stage(&snap(&src)).unwrap());
        assert_eq!(fs::read_to_string(dir.join("main.conf")).unwrap(), "v2");
        p.rollback();
        assert_eq!(fs::read_to_string(dir.join("main.conf")).unwrap(), "v1");
        let generations = fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .count();
        assert_eq!(generations, 1, "the candidate is removed");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_first_rejected_promotion_leaves_the_directory_empty() {
        let d = scratch("empty");
        let (src, dir) = (d.join("app.conf"), d.join("dst"));
        fs::write(&src, "bad").unwrap();
        let mut p = Promoter::new(dir.clone(), vec![src.clone()]).unwrap();
        p.stage(&snap(&src)).unwrap();
        assert!(dir.join("app.conf").exists());
        p.rollback();
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn colliding_sources_are_refused() {
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
        assert!(err.contains("contain one another"), "{err}");
        fs::remove_dir_all(&d).unwrap();
    }
}
