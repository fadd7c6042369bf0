//! The loop that forwards signals never waits behind config work: looks at
//! the files (walks, stats, hashes) run off it. Bounds here are generous
//! (a loaded 2-core machine); bench/signal_load.py measures the figures.
// These tests drive Linux itself (signals, /proc).
#![cfg(target_os = "linux")]

mod common;

use common::*;
use nix::libc;
use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Sends SIGUSR1 to the manager one at a time until `enough` says the load
/// has run long enough (or a long limit passes), and returns how many were
/// sent and the longest wait until the child noted one (a line in `got`).
fn worst_forwarding(m: &Manager, s: &Scratch, enough: impl Fn() -> bool) -> (usize, Duration) {
    let mut worst = Duration::ZERO;
    let start = Instant::now();
    let mut i = 0;
    while !enough() && start.elapsed() < LONG {
        i += 1;
        let sent = Instant::now();
        m.signal(libc::SIGUSR1);
        assert!(
            wait_for(LONG, || s.lines("got").len() > i),
            "signal {i} never arrived\n{}",
            m.log()
        );
        worst = worst.max(sent.elapsed());
        std::thread::sleep(Duration::from_millis(20));
    }
    (i, worst)
}

#[test]
fn signals_are_forwarded_while_a_huge_file_is_hashed_again_and_again() {
    let s = Scratch::new("responsive");
    let dir = s.path("conf");
    fs::create_dir_all(&dir).unwrap();
    // Sparse: costs no disk, but every look reads (and hashes) all of it.
    // 2 GiB takes about a second natively; under qemu-user the same hash
    // runs for over ten seconds, so three of them outlast the 30 s limit:
    // 256 MiB there still keeps a hash running for a second or more.
    let big = dir.join("big.conf");
    let size = if under_qemu() { 256 << 20 } else { 2 << 30 };
    fs::File::create(&big).unwrap().set_len(size).unwrap();
    let child = TrapChild::new(&s.path("got"))
        .record_as("USR1", "usr1")
        .on("HUP", &format!("echo hup >> {}", s.path("hups").display()))
        .on_term("exit 0")
        .ready("ready")
        .script();
    let m = Manager::plain(&[
        "--config",
        dir.to_str().unwrap(),
        "--debounce=20ms",
        "--poll-interval=0",
        "--reload-signal=HUP",
        "--",
        "/bin/sh",
        "-c",
        &child,
    ]);
    assert!(s.wait_contains("got", "ready"), "{}", m.log());
    assert!(m.wait_log("Watching directory"), "{}", m.log());
    // Rewrite one byte of it, over and over: each change is a full re-hash.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, big) = (Arc::clone(&stop), big.clone());
        std::thread::spawn(move || {
            let mut n = 0u8;
            while !stop.load(Ordering::Relaxed) {
                n = n.wrapping_add(1);
                if let Ok(mut f) = fs::OpenOptions::new().write(true).open(&big) {
                    let _ = f.seek(SeekFrom::Start(0)).and_then(|_| f.write_all(&[n]));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    // Until the huge file was hashed again three times.
    let (sent, worst) = worst_forwarding(&m, &s, || m.count("File change detected") >= 3);
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(
        m.count("File change detected") >= 3,
        "the file was never looked at again: the test would prove nothing\n{}",
        m.log()
    );
    assert!(
        worst < Duration::from_millis(500),
        "a forwarded signal waited {worst:?} behind config work"
    );
    assert!(sent >= 20, "only {sent} signals sent");
}

#[test]
fn signals_are_forwarded_while_10000_files_are_routed_by_1000_rules() {
    let s = Scratch::new("responsive-rules");
    let dir = s.path("conf");
    // Under qemu-user every glob runs tens of times slower: fewer rules
    // keep the routing (off the loop) within the test's limits.
    let rules = if under_qemu() { 100 } else { 1000 };
    for i in 0..10_000 {
        let sub = dir.join(format!("d{}", i % 100));
        fs::create_dir_all(&sub).unwrap();
        fs::write(sub.join(format!("f{i}.conf")), format!("v1 {i}")).unwrap();
    }
    let child = TrapChild::new(&s.path("got"))
        .record_as("USR1", "usr1")
        .record_as("HUP", "hup")
        .on_term("exit 0")
        .ready("ready")
        .script();
    let conf = format!("--config={}", dir.display());
    // Rules a glob must work hard to turn down (no literal head, a
    // common tail), then the one every file takes.
    let mut args: Vec<String> = vec![conf, "--debounce=200ms".into(), "--poll-interval=0".into()];
    args.extend((0..rules).map(|i| format!("--on-change=**/nomatch-{i}-*[a-z]?.conf=restart")));
    args.push("--on-change=*.conf=signal:HUP".into());
    args.extend(["--", "/bin/sh", "-c", &child].map(String::from));
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let m = Manager::plain(&argv);
    assert!(s.wait_contains("got", "ready"), "{}", m.log());
    assert!(m.wait_log("Watching directory"), "{}", m.log());
    let writer = {
        let dir = dir.clone();
        std::thread::spawn(move || {
            for i in 0..10_000 {
                let sub = dir.join(format!("d{}", i % 100));
                let _ = fs::write(sub.join(format!("f{i}.conf")), format!("v2 {i}"));
            }
        })
    };
    let burst = Instant::now();
    let (sent, worst) = worst_forwarding(&m, &s, || m.count("sending SIGHUP") >= 1);
    let burst = burst.elapsed();
    writer.join().unwrap();
    assert!(
        m.count("sending SIGHUP") >= 1,
        "the burst was never routed: the test would prove nothing\n{}",
        m.log()
            .lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        !s.lines("got").is_empty() && m.count("restarting child process") == 0,
        "a file took a rule it does not match"
    );
    // A loop that routed the burst itself would hold every signal for the
    // routing's whole length, which is most of the burst. Under qemu-user
    // the emulated manager takes each of the 10,000 events off the channel
    // tens of times slower than natively (a burst of about 2 s, signals
    // answered in about 0.5 s): half the burst still tells the two apart
    // there, where 500 ms is the bound natively.
    let limit = Duration::from_millis(500).max(burst / 2);
    assert!(
        worst < limit,
        "a forwarded signal waited {worst:?} behind routing (limit {limit:?}, burst {burst:?})"
    );
    assert!(sent >= 5, "only {sent} signals sent");
}
