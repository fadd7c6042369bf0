//! `--promote-to DIR`: the child reads DIR; settled source bytes are staged
//! there atomically, validated there, and rolled back at once if rejected.
//! A ConfigMap source written by the faithful kubelet writer.
// These tests drive Linux itself (PID namespaces, /proc, signalfd).
#![cfg(target_os = "linux")]

mod common;

use common::kubelet::AtomicWriter;
use common::*;
use nix::libc;
use std::fs;
use std::path::{Path, PathBuf};

struct Setup {
    s: Scratch,
    kube: AtomicWriter,
    /// The child's directory.
    dir: PathBuf,
}

impl Setup {
    fn new(tag: &str, first: &[u8]) -> Setup {
        let s = Scratch::new(tag);
        let kube = AtomicWriter::new(&s.path("src"));
        kube.write(&[("app.conf", first)]);
        let dir = s.path("app");
        Setup { s, kube, dir }
    }

    /// The check: records what it saw in DIR, passes when it holds "ok".
    fn check(&self) -> String {
        let conf = self.dir.join("app.conf");
        format!(
            "sh -c 'cat {conf} >> {seen}; echo >> {seen}; grep -q ok {conf}'",
            conf = conf.display(),
            seen = self.s.path("seen").display()
        )
    }

    fn start(&self, extra: &[&str]) -> Manager {
        let script = recorder(&self.dir.join("app.conf"), &self.s.path("starts"), "exit 0");
        let src = self.s.path("src");
        let mut args = vec![
            "--config",
            src.to_str().unwrap(),
            "--promote-to",
            self.dir.to_str().unwrap(),
            "--debounce=50ms",
        ];
        args.extend_from_slice(extra);
        args.extend(["--", "/bin/sh", "-c", &script]);
        Manager::plain(&args)
    }

    fn starts(&self) -> Vec<String> {
        recorded_starts(&self.s)
    }

    fn promoted(&self) -> String {
        fs::read_to_string(self.dir.join("app.conf")).unwrap_or_default()
    }
}

#[test]
fn a_valid_push_is_promoted_and_a_bad_one_rolled_back_before_any_child_sees_it() {
    let t = Setup::new("promote", b"ok v1");
    let check = t.check();
    let m = t.start(&["--validate", &check]);
    assert!(wait_for(LONG, || t.starts().len() == 1), "{}", m.log());
    assert!(t.starts()[0].ends_with("ok v1"), "the child reads DIR");
    assert!(m.wait_log("Watching directory"));

    t.kube.write(&[("app.conf", b"ok v2")]);
    assert!(wait_for(LONG, || t.starts().len() == 2), "{}", m.log());
    assert!(t.starts()[1].ends_with("ok v2"));

    t.kube.write(&[("app.conf", b"bad v3")]);
    assert!(m.wait_log("Config validation failed"), "{}", m.log());
    assert!(
        t.s.read("seen").contains("bad v3"),
        "the check ran against DIR: {}",
        t.s.read("seen")
    );
    assert!(m.wait_log("Rolled back"), "{}", m.log());
    assert_eq!(t.promoted(), "ok v2", "DIR is back on the last good bytes");
    assert_eq!(t.starts().len(), 2, "the running child was left alone");
    // Never the content in the log (a Secret), only sizes and hashes.
    assert!(
        !m.log().contains("bad v3") && !m.log().contains("ok v2"),
        "{}",
        m.log()
    );
}

#[test]
fn a_crash_after_a_rejected_push_restarts_on_the_last_good_bytes() {
    let t = Setup::new("promote-crash", b"ok v1");
    let check = t.check();
    let m = t.start(&["--validate", &check, "--restart", "on-failure"]);
    assert!(wait_for(LONG, || t.starts().len() == 1), "{}", m.log());
    assert!(m.wait_log("Watching directory"));
    t.kube.write(&[("app.conf", b"bad v2")]);
    assert!(m.wait_log("Rolled back"), "{}", m.log());
    let pid: i32 = t.starts()[0].split(' ').nth(1).unwrap().parse().unwrap();
    // SAFETY: kill(2) on the test's own grandchild (a plain manager).
    unsafe { libc::kill(pid, libc::SIGKILL) };
    assert!(wait_for(LONG, || t.starts().len() == 2), "{}", m.log());
    assert!(t.starts()[1].ends_with("ok v1"), "{:?}", t.starts());
}

#[test]
fn a_restarted_manager_starts_on_the_last_good_promotion_or_exits_78_on_none() {
    let t = Setup::new("promote-restart", b"ok v1");
    let check = t.check();
    let mut m = t.start(&["--validate", &check]);
    assert!(wait_for(LONG, || t.starts().len() == 1), "{}", m.log());
    m.signal(libc::SIGTERM);
    assert_eq!(m.exit_code(), 0);
    // The source goes bad while the container is down; DIR (an emptyDir)
    // survives the container restart.
    t.kube.write(&[("app.conf", b"bad v2")]);
    let m = t.start(&["--validate", &check]);
    assert!(wait_for(LONG, || t.starts().len() == 2), "{}", m.log());
    assert!(t.starts()[1].ends_with("ok v1"), "{:?}", t.starts());
    assert!(m.log().contains("last good"), "{}", m.log());
    drop(m);

    // Nothing promoted ever, bad source: 78, DIR left empty.
    let t = Setup::new("promote-none", b"bad v1");
    let check = t.check();
    let mut m = t.start(&["--validate", &check]);
    assert_eq!(m.exit_code(), 78, "{}", m.log());
    assert!(t.starts().is_empty());
    let left: Vec<_> = fs::read_dir(&t.dir).unwrap().flatten().collect();
    assert!(left.is_empty(), "{left:?}");
}

/// Reads DIR as a child would, over and over: every file it reads is whole,
/// and, through one resolution of `..data`, all from one generation.
fn read_generation(dir: &Path) -> Option<(String, String)> {
    let data = fs::read_link(dir.join("..data")).ok()?;
    let root = dir.join(data);
    let a = fs::read_to_string(root.join("a.conf")).ok()?;
    let b = fs::read_to_string(root.join("sub/b.conf")).ok()?;
    Some((a, b))
}

#[test]
fn a_reader_never_sees_a_mix_of_generations() {
    let s = Scratch::new("promote-mix");
    let kube = AtomicWriter::new(&s.path("src"));
    kube.write(&[("a.conf", b"gen 0"), ("sub/b.conf", b"gen 0")]);
    let dir = s.path("app");
    let src = s.path("src");
    let m = Manager::plain(&[
        "--config",
        src.to_str().unwrap(),
        "--promote-to",
        dir.to_str().unwrap(),
        "--debounce=0",
        "--reload-signal=HUP",
        "--",
        "/bin/sh",
        "-c",
        "trap '' HUP; while :; do sleep 0.05 & wait $!; done",
    ]);
    assert!(
        wait_for(LONG, || read_generation(&dir).is_some()),
        "{}",
        m.log()
    );
    assert!(m.wait_log("Watching directory"));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (stop, dir) = (stop.clone(), dir.clone());
        std::thread::spawn(move || {
            let mut bad = vec![];
            let mut reads = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Some((a, b)) = read_generation(&dir) {
                    reads += 1;
                    if a != b || !a.starts_with("gen ") {
                        bad.push((a, b));
                    }
                }
                // Through the user-visible links: whole files only.
                if let Ok(a) = fs::read_to_string(dir.join("a.conf"))
                    && !a.starts_with("gen ")
                {
                    bad.push((a, "(via link)".into()));
                }
            }
            (reads, bad)
        })
    };
    for n in 1..=20 {
        let g = format!("gen {n}");
        kube.write(&[("a.conf", g.as_bytes()), ("sub/b.conf", g.as_bytes())]);
        assert!(
            wait_for(LONG, || read_generation(&dir).is_some_and(|(a, _)| a == g)),
            "push {n} never promoted\n{}",
            m.log()
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (reads, bad) = reader.join().unwrap();
    assert!(reads > 0);
    assert!(bad.is_empty(), "mixed or partial reads: {bad:?}");
}
