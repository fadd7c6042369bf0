//! The random-kill loop through probation and rollback, shared by the
//! default test (tests/promote.rs) and its longer soak (tests/soak.rs).
//!
//! The manager, PID 1 of its own namespace (so a SIGKILL takes every process
//! with it), runs with `--promote-to`, a check that rejects bytes holding
//! "bad", `--rollback-window 1s` and a readiness probe. Each round starts a
//! manager on the same DIR, pushes one config (good, rejected, crashing: the
//! child exits 1 soon after reading it, or never ready: the probe fails for
//! it) and kills the manager at a random instant: staging, checking,
//! committing, on probation, rolling back, or idle.
//!
//! What the children record is the ground truth, not the manager's log:
//! each child appends `start <id> <generation> <content>` (its id is its
//! start time in ns), `held <id> <t>` once it has run a whole window, and
//! `end <id> <t>` when it is told to stop; the probe appends
//! `ready <t> <id> <content>` when it passes. A content is *proven* from the
//! moment a child on it has both held a window and been ready, or it is the
//! first content ever promoted.
//!
//! A child that is SIGKILLed with its manager writes nothing: it lived
//! until the kill, whose time the loop records. And a window is the
//! manager's, counted from the spawn, which comes a little before the
//! child's first `date`: a child that lived `WINDOW - SPAWN_SLACK` by its
//! own clock may have held the manager's whole window (without this, a
//! manager killed right after proving a generation, before its child's
//! 50 ms poll wrote `held`, looked like a rollback onto an unproven one).

use super::kubelet::AtomicWriter;
use super::*;
use nix::libc;
use std::collections::BTreeMap;
use std::time::Instant;

/// What a run measured.
#[derive(Debug, Default)]
pub struct Figures {
    pub kills: usize,
    /// Child starts checked (no rejected bytes; a rollback's landing proven).
    pub starts: usize,
    /// Rollbacks the manager logged.
    pub rollbacks: usize,
    /// Rollbacks whose landing start was seen (the others were killed first)
    /// and checked to be on a proven generation.
    pub landed: usize,
    /// Contents proven by the children's own records.
    pub proven: usize,
    pub failures: Vec<String>,
    pub runtime: Duration,
}

/// A round: its number, the rollbacks its manager logged (from, to), the
/// range of its lines in "starts", and when its manager was killed (ns).
type Round = (usize, Vec<(String, String)>, usize, usize, u128);

const WINDOW_NS: u128 = 1_000_000_000;
/// From the manager's spawn to the child's first `date` (an exec of sh and
/// a fork of date), generously on a loaded machine.
const SPAWN_SLACK_NS: u128 = 250_000_000;

fn now_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

pub fn kill_during_probation(tag: &str, kills: usize) -> Figures {
    let t0 = Instant::now();
    let s = Scratch::new(tag);
    let kube = AtomicWriter::new(&s.path("src"));
    kube.write(&[("app.conf", b"ok 0")]);
    let dir = s.path("app");
    let (dir_s, cur, starts, held, ready) = (
        dir.display().to_string(),
        s.path("cur").display().to_string(),
        s.path("starts").display().to_string(),
        s.path("held").display().to_string(),
        s.path("ready").display().to_string(),
    );
    let check = "sh -c '! grep -q bad $FLUSH_MANAGER_CANDIDATE/app.conf'".to_string();
    let probe = format!(
        "sh -c 'set -- $(cat {cur} 2>/dev/null); [ -n \"$1\" ] || exit 1; [ \"$2\" != never ] || exit 1; echo \"ready $(date +%s%N) $*\" >> {ready}'"
    );
    let child = format!(
        "id=$(date +%s%N); g=$(readlink {dir_s}/..data); c=$(cat {dir_s}/$g/app.conf 2>/dev/null); \
         echo \"start $id $g $c\" >> {starts}; echo \"$id $c\" > {cur}.$id; mv {cur}.$id {cur}; \
         trap 'echo \"end $id $(date +%s%N)\" >> {held}; rm -f {cur}; exit 0' TERM; \
         case $c in crash*) sleep 0.3; rm -f {cur}; echo \"end $id $(date +%s%N)\" >> {held}; exit 1;; esac; h=; \
         while :; do if [ -z \"$h\" ] && [ $(( $(date +%s%N) - id )) -ge {WINDOW_NS} ]; then \
         echo \"held $id $(date +%s%N)\" >> {held}; h=1; fi; sleep 0.05 & wait $!; done"
    );
    let src = s.path("src").display().to_string();
    let args = [
        "--config",
        &src,
        "--promote-to",
        &dir_s,
        "--debounce=0",
        "--validate",
        &check,
        "--rollback-window=1s",
        "--ready-check",
        &probe,
        "--ready-interval=200ms",
        "--ready-start-period=500ms",
        "--",
        "/bin/sh",
        "-c",
        &child,
    ];
    let mut rng = (std::process::id() as u64) << 16 | 0x51ed;
    let mut next = |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let mut f = Figures::default();
    // Per round: the manager's rollbacks and the round's starts.
    let mut rounds: Vec<Round> = vec![];
    for i in 0..kills {
        // Every process of the last round is gone: a probe must not read
        // a dead child's record.
        let _ = fs::remove_file(&cur);
        let before = s.lines("starts").len();
        let m = Manager::start(&args);
        let pid = m.pid();
        if i % 2 == 0 {
            wait_for(LONG, || s.lines("starts").len() > before);
        }
        std::thread::sleep(Duration::from_millis(next(400)));
        let kind = ["ok", "ok", "bad", "crash", "never"][next(5) as usize];
        kube.write(&[("app.conf", format!("{kind} {i}").as_bytes())]);
        // Long enough, often, for a window to pass and a rollback to land.
        std::thread::sleep(Duration::from_millis(next(3000)));
        // Every child of the round lived until at least now.
        let killed = now_ns();
        // SAFETY: kill(2) on the manager this loop started.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let log = m.log();
        drop(m);
        let _ = fs::write(s.path(&format!("log.{i}")), &log);
        f.kills += 1;
        let backs = log
            .lines()
            .filter_map(|l| {
                let rest = l.split("rolled back from generation ").nth(1)?;
                let mut w = rest.split_whitespace();
                let from = w.next()?.to_string();
                let _to = w.next()?;
                let to = w.next()?.to_string();
                Some((from, to))
            })
            .collect();
        rounds.push((i, backs, before, s.lines("starts").len(), killed));
    }
    // start lines: (id, generation, content)
    let all: Vec<(u128, String, String)> = s
        .lines("starts")
        .iter()
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (
                w.get(1).and_then(|x| x.parse().ok()).unwrap_or(0),
                w.get(2).unwrap_or(&"").to_string(),
                w.get(3..).map(|c| c.join(" ")).unwrap_or_default(),
            )
        })
        .collect();
    // How long each child is known to have lived: until its `end` line
    // (it was told to stop, or crashed), else until its `held` line or,
    // the last child of a round, until the round's kill.
    let mut lived: BTreeMap<String, u128> = BTreeMap::new();
    let mut ended: BTreeMap<String, u128> = BTreeMap::new();
    for l in s.lines("held") {
        let w: Vec<&str> = l.split_whitespace().collect();
        if let [what, id, now] = w[..] {
            let now: u128 = now.parse().unwrap_or(0);
            let e = lived.entry(id.to_string()).or_insert(now);
            *e = (*e).max(now);
            if what == "end" {
                ended.insert(id.to_string(), now);
            }
        }
    }
    for (_, _, from, to, killed) in &rounds {
        if to > from
            && let Some((id, _, _)) = all.get(to - 1)
            && !ended.contains_key(&id.to_string())
        {
            let e = lived.entry(id.to_string()).or_insert(*killed);
            *e = (*e).max(*killed);
        }
    }
    // A content's proof time: the later of its child's first `ready` and
    // the end of that child's window (the earliest such over its children),
    // for a child that lived through its window.
    let mut first_ready: BTreeMap<String, (u128, String)> = BTreeMap::new();
    for l in s.lines("ready") {
        let w: Vec<&str> = l.split_whitespace().collect();
        if let [_, now, id, kind, n] = w[..] {
            let now: u128 = now.parse().unwrap_or(u128::MAX);
            let e = first_ready
                .entry(id.to_string())
                .or_insert((now, format!("{kind} {n}")));
            e.0 = e.0.min(now);
        }
    }
    let mut proven: BTreeMap<String, u128> = BTreeMap::new();
    proven.insert("ok 0".into(), 0);
    for (id, (ready, content)) in &first_ready {
        let (Ok(start), Some(until)) = (id.parse::<u128>(), lived.get(id)) else {
            continue;
        };
        let window_end = start + WINDOW_NS - SPAWN_SLACK_NS;
        if *until >= window_end {
            let at = (*ready).max(window_end);
            let e = proven.entry(content.clone()).or_insert(at);
            *e = (*e).min(at);
        }
    }
    f.proven = proven.len();
    for (id, g, c) in &all {
        f.starts += 1;
        if c.contains("bad") || c.is_empty() || !g.starts_with("..gen") {
            f.failures
                .push(format!("a child started on {g} holding {c:?} (id {id})"));
        }
    }
    for (i, backs, from_idx, to_idx, _) in rounds {
        let round = &all[from_idx.min(all.len())..to_idx.min(all.len())];
        f.rollbacks += backs.len();
        for (from, to) in backs {
            let Some(j) = round.iter().rposition(|(_, g, _)| *g == from) else {
                f.failures.push(format!(
                    "round {i}: rolled back from {from}, which no child of the round ran"
                ));
                continue;
            };
            let Some((id, g, c)) = round.get(j + 1) else {
                continue; // killed before the landing start
            };
            f.landed += 1;
            if *g != to {
                f.failures.push(format!(
                    "round {i}: rolled back from {from} to {to}, but the child started on {g} ({c:?})"
                ));
            }
            match proven.get(c) {
                Some(at) if at < id => {}
                _ => f.failures.push(format!(
                    "round {i}: rolled back from {from} onto {g} holding {c:?}, not proven before the landing start (id {id}; proven at {:?})",
                    proven.get(c)
                )),
            }
        }
    }
    f.runtime = t0.elapsed();
    if !f.failures.is_empty() {
        // The children's records and every round's log, for the report.
        let keep = std::env::temp_dir().join(format!("fm-probation-failed-{}", std::process::id()));
        let _ = Command::new("cp").arg("-a").arg(&s.0).arg(&keep).status();
        f.failures
            .push(format!("records kept in {}", keep.display()));
    }
    f
}
