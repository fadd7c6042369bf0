//! Soak tests: longer and nastier than the rest, `#[ignore]`d by default.
//! `.ci/run` runs them on their own: `cargo test --release --test soak --
//! --ignored`. Their names start with `soak::`, so a run of every other
//! ignored test leaves them out with `--skip soak::`.
// These tests drive Linux itself (PID namespaces, /proc, signalfd).
#![cfg(target_os = "linux")]

mod common;

mod soak {
    use super::common::*;
    use nix::libc;
    use std::fs;
    use std::path::Path;
    use std::time::{Duration, Instant};

    fn open_fds(pid: i32) -> usize {
        fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// A child logging "start <pid> <conf>" and, on TERM, "stop <pid>" before
    /// exiting.
    fn lifecycle(conf: &Path, log: &Path) -> String {
        TrapChild::new(log)
            .on_start(&format!("start $$ $(cat {})", conf.display()))
            .record_as("TERM", "stop $$")
            .on_term("exit 0")
            .script()
    }

    /// A plain manager with `args`, logging warnings only (a soak's
    /// thousands of rounds would fill the log at debug).
    fn quiet(args: &[&str]) -> Manager {
        Manager::start_with(
            args,
            Opts {
                env: vec![("FLUSH_MANAGER_LOG", "warn")],
                ..Opts::plain()
            },
        )
    }

    #[test]
    #[ignore = "soak: about a minute; .ci/run runs it"]
    fn a_thousand_config_restarts_leak_nothing_and_never_overlap() {
        let s = Scratch::new("soak-restarts");
        let conf = s.path("app.conf");
        fs::write(&conf, "0").unwrap();
        let log = s.path("life");
        let script = lifecycle(&conf, &log);
        let m = quiet(&sh_args(
            &["--config", conf.to_str().unwrap(), "--debounce", "5ms"],
            &script,
        ));
        let starts = || s.read("life").matches("start").count();
        assert!(wait_for(LONG, || starts() == 1));
        let pid = m.pid();
        let mut after_10 = (0, 0);
        for i in 1..=1000 {
            write_in_place(&conf, i.to_string().as_bytes());
            assert!(
                wait_for(LONG, || starts() > i),
                "restart {i} never came\n{}",
                m.log()
            );
            if i == 10 {
                after_10 = (open_fds(pid), vm_rss_kib(pid));
            }
        }
        let (fds, rss) = (open_fds(pid), vm_rss_kib(pid));
        assert_eq!(starts(), 1001, "exactly 1000 restarts");
        assert_eq!(fds, after_10.0, "open fds after 10 and after 1000 restarts");
        assert!(
            rss <= after_10.1 + 256,
            "RSS grew: {} KiB after 10, {rss} KiB after 1000",
            after_10.1
        );
        // Never two alive at once: every start is preceded by the previous stop.
        let lines = s.lines("life");
        let mut alive: Option<String> = None;
        for line in &lines {
            let mut f = line.split_whitespace();
            match (f.next(), f.next()) {
                (Some("start"), Some(p)) => {
                    assert!(alive.is_none(), "{p} started while {alive:?} was alive");
                    alive = Some(p.to_string());
                }
                (Some("stop"), Some(p)) => {
                    assert_eq!(alive.as_deref(), Some(p));
                    alive = None;
                }
                _ => {}
            }
        }
        assert!(
            lines.last().unwrap().ends_with(" 1000"),
            "the last child read the last bytes"
        );
    }

    #[test]
    #[ignore = "soak: 10,000 signals; .ci/run runs it"]
    fn ten_thousand_forwarded_signals() {
        let s = Scratch::new("soak-signals");
        let out = s.path("count");
        // Counts USR1; on USR2 the count replaces the file's content at once.
        let script = TrapChild::new(&out)
            .first("n=0")
            .on("USR1", "n=$((n+1))")
            .on(
                "USR2",
                &format!("echo $n > {0}.tmp; mv {0}.tmp {0}", out.display()),
            )
            .ready("ready")
            .script();
        let mut m = quiet(&sh_args(&["--config="], &script));
        assert!(s.wait_contains("count", "ready"));
        let pid = m.pid();
        let rss0 = vm_rss_kib(pid);
        for i in 0..10_000 {
            m.signal(libc::SIGUSR1);
            if i % 100 == 0 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        assert!(m.alive(), "the manager survived 10,000 signals");
        // After the storm, the next signal still arrives.
        m.signal(libc::SIGUSR2);
        assert!(
            wait_for(LONG, || s.read("count").trim().parse::<u32>().is_ok()),
            "{}",
            m.log()
        );
        let seen: u32 = s.read("count").trim().parse().unwrap();
        // Standard signals coalesce in the kernel (and in the child's shell);
        // many must have arrived, never more than were sent.
        assert!(
            (100..=10_000).contains(&seen),
            "child saw {seen} of 10,000 SIGUSR1"
        );
        let rss1 = vm_rss_kib(pid);
        assert!(rss1 <= rss0 + 128, "RSS grew from {rss0} to {rss1} KiB");
    }

    #[test]
    #[ignore = "soak: 10 s of flapping; .ci/run runs it"]
    fn a_flapping_config_restarts_boundedly_and_ends_on_the_final_bytes() {
        let s = Scratch::new("soak-flap");
        let conf = s.path("app.conf");
        fs::write(&conf, "0").unwrap();
        let log = s.path("life");
        let script = lifecycle(&conf, &log);
        let m = Manager::plain(&[
            "--config",
            conf.to_str().unwrap(),
            "--debounce",
            "300ms",
            "--",
            "/bin/sh",
            "-c",
            &script,
        ]);
        let starts = || s.read("life").matches("start").count();
        assert!(wait_for(LONG, || starts() == 1));
        let t0 = Instant::now();
        let mut i = 0;
        while t0.elapsed() < Duration::from_secs(10) {
            i += 1;
            write_in_place(&conf, format!("{i}").as_bytes());
            std::thread::sleep(Duration::from_millis(100));
        }
        // Trailing debounce: a change every 100 ms never lets 300 ms pass, so
        // at most the final restart (and a few if the machine stalls).
        assert!(
            wait_for(LONG, || s
                .lines("life")
                .last()
                .is_some_and(|l| l.ends_with(&format!(" {i}")))),
            "{}",
            m.log()
        );
        std::thread::sleep(Duration::from_millis(1000));
        let restarts = starts() - 1;
        assert!(
            (1..=1 + 10_000 / 300).contains(&restarts),
            "{restarts} restarts for 10 s of flapping"
        );
        assert!(s.lines("life").last().unwrap().ends_with(&format!(" {i}")));
    }

    /// The probation random-kill loop of tests/promote.rs, 200 kills: the
    /// manager (PID 1 of its namespace) SIGKILLed while staging, checking,
    /// on probation, rolling back or idle, with good, rejected, crashing and
    /// never-ready pushes. No start on rejected bytes; every rollback lands on
    /// a generation proven by the children's own records.
    #[test]
    #[ignore = "soak: about six minutes; .ci/run runs it"]
    fn a_manager_killed_200_times_during_probation_lands_only_on_proven_bytes() {
        if pid1_or_skip("soak-probation-kill").is_none() {
            return;
        }
        let f = super::common::probation::kill_during_probation("soak-probation-kill", 200);
        eprintln!("{f:?}");
        assert!(f.failures.is_empty(), "{:#?}", f.failures);
        assert!(f.starts >= f.kills / 2, "{f:?}");
        assert!(f.landed > 0 && f.proven > 1, "no rollback landed: {f:?}");
    }
}
