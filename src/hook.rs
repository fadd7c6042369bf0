//! Hooks: the commands and requests the manager runs around a change. The
//! `--validate` check (`nginx -t`, `promtool check config …`) before acting,
//! `--reload-command` and `--reload-url` to act. The old child keeps serving
//! meanwhile. A hook is a future the supervisor's select! loop polls.
//! Dropping it alone only stops the wait (a command would run on): a hook
//! no longer wanted (a newer change, a shutdown) has its process group
//! SIGKILLed too (`cancel_group`).

use crate::child;
use crate::reaper;
use crate::signals;
use futures::{AsyncReadExt, FutureExt};
use log::{debug, error, info};
use nix::libc;
use std::future::Future;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

/// How much of the check's output is kept for the log (its tail).
const TAIL_BYTES: usize = 2048;
const TAIL_LINES: usize = 10;

/// What a started command is for (its log lines say so).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `--validate`: "Validator nginx failed with exit code 1".
    Validator,
    /// `--reload-command`: "Reload command nginx failed with exit code 1".
    Reload,
    /// `--ready-check`: every few seconds, so quiet (the machine says what
    /// its failures mean); its output goes to the debug log.
    Probe,
}

/// A running hook.
pub struct Hook {
    /// A command's pid, which is also its process group's number (it leads
    /// a group of its own); a request has none.
    pub process: Option<i32>,
    /// Resolves to true when the hook succeeded.
    pub done: Pin<Box<dyn Future<Output = bool>>>,
}

impl Hook {
    /// A hook with no process (an HTTP request).
    pub fn request(done: impl Future<Output = bool> + 'static) -> Hook {
        Hook {
            process: None,
            done: Box::pin(done),
        }
    }
}

/// Kills the process group of a hook being dropped, while its leader is
/// unreaped, and leaves the leader to the reaper.
pub fn cancel_group(pgid: i32) {
    reaper::signal_group(pgid, libc::SIGKILL);
    reaper::abandon(pgid);
}

/// Starts `argv` with FLUSH_MANAGER_CHANGED set; stdout and stderr are
/// captured together. A command that cannot start counts as failed.
pub fn command(
    kind: Kind,
    argv: &[String],
    cwd: Option<&Path>,
    changed: &[PathBuf],
    candidate: Option<&Path>,
    timeout: Duration,
) -> Result<Hook, String> {
    let what = match kind {
        Kind::Validator => "validator",
        Kind::Reload => "reload command",
        Kind::Probe => "readiness check",
    };
    // No descriptor, process or memory to be had is our fault, not the
    // command's: no verdict (the caller retries). A command that cannot be
    // run (not found, not executable) is a failed hook.
    let ours = |e: &std::io::Error| {
        let resource = [libc::EMFILE, libc::ENFILE, libc::EAGAIN, libc::ENOMEM];
        e.raw_os_error().is_some_and(|n| resource.contains(&n))
    };
    let failed = || Ok(Hook::request(std::future::ready(false)));
    let (list, truncated) = changed_list(changed);
    match kind {
        Kind::Validator => info!("Validating config with: {}", argv.join(" ")),
        Kind::Reload => info!("Running reload command: {}", argv.join(" ")),
        Kind::Probe => debug!("Probing readiness with: {}", argv.join(" ")),
    }
    let (reader, writer) = match std::io::pipe() {
        Ok(p) => p,
        Err(e) => return Err(format!("cannot run the {what}: pipe: {e}")),
    };
    let mut cmd = std::process::Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .env("FLUSH_MANAGER_CHANGED", list)
        .env("FLUSH_MANAGER_CHANGED_COUNT", changed.len().to_string())
        .env(
            "FLUSH_MANAGER_CHANGED_TRUNCATED",
            if truncated { "1" } else { "0" },
        )
        .process_group(0);
    // With --promote-to: where the check finds the candidate's files.
    if let Some(dir) = candidate {
        cmd.env("FLUSH_MANAGER_CANDIDATE", dir);
    }
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe { cmd.pre_exec(signals::restore_for_child) };
    // Stdio is set on async-process's Command: its `From` resets it to inherit.
    let mut cmd = async_process::Command::from(cmd);
    match writer.try_clone() {
        Ok(w) => cmd
            .stdin(std::process::Stdio::null())
            .stdout(w)
            .stderr(writer),
        Err(e) => return Err(format!("cannot run the {what}: {e}")),
    };
    // The reaper collects its status (see reaper.rs) and, at its exit,
    // kills what it left in its group.
    let pid = match cmd.reap_on_drop(false).spawn() {
        Ok(c) => c.id() as i32,
        Err(e) if ours(&e) => return Err(format!("cannot run the {what} {}: {e}", argv[0])),
        Err(e) => {
            error!("Cannot run {what} {}: {e}", argv[0]);
            return failed();
        }
    };
    reaper::adopt(pid, true);
    let name = argv[0].clone();
    let passed = async move {
        let mut tail = Vec::new();
        // The verdict is the exit status. Its output is read meanwhile, not
        // awaited to EOF: a background helper it left may hold the pipe.
        let mut out = async_io::Async::new(reader).ok();
        let mut deadline = FutureExt::fuse(async_io::Timer::after(timeout));
        let mut buf = [0u8; 4096];
        let outcome = loop {
            let read = async {
                match out.as_mut() {
                    Some(o) => o.read(&mut buf).await.unwrap_or(0),
                    None => futures::future::pending().await,
                }
            };
            futures::select! {
                status = reaper::exited(pid).fuse() => break Some(status),
                n = read.fuse() => match n {
                    0 => out = None,
                    n => {
                        tail.extend_from_slice(&buf[..n]);
                        let excess = tail.len().saturating_sub(TAIL_BYTES);
                        tail.drain(..excess);
                    }
                },
                _ = deadline => break None,
            }
        };
        // Whatever it left behind in its process group (a background
        // helper holding the pipe) went with it: the reaper killed the
        // group before reaping the leader.
        // What it wrote before exiting is already in the pipe.
        if let Some(o) = out.as_mut() {
            while let Ok(n @ 1..) = std::io::Read::read(&mut o.get_ref(), &mut buf) {
                tail.extend_from_slice(&buf[..n]);
            }
            let excess = tail.len().saturating_sub(TAIL_BYTES);
            tail.drain(..excess);
        }
        let verdict = match outcome {
            Some(status) if status.success() => return true,
            Some(status) => format!("failed with {}", child::status_of(status)),
            None => {
                reaper::signal_group(pid, libc::SIGKILL);
                reaper::exited(pid).await;
                format!("timed out after {timeout:?} and was killed")
            }
        };
        match kind {
            Kind::Validator => error!("Validator {name} {verdict}"),
            Kind::Reload => error!("Reload command {name} {verdict}"),
            Kind::Probe => debug!("Readiness check {name} {verdict}"),
        }
        let level = match kind {
            Kind::Probe => log::Level::Debug,
            _ => log::Level::Error,
        };
        let text = String::from_utf8_lossy(&tail);
        let lines: Vec<&str> = text.lines().collect();
        for line in &lines[lines.len().saturating_sub(TAIL_LINES)..] {
            log::log!(level, "  | {line}");
        }
        false
    };
    Ok(Hook {
        process: Some(pid),
        done: Box::pin(passed),
    })
}

/// Starts the readiness check `argv` (a command with a deadline).
pub fn probe(argv: &[String], cwd: Option<&Path>, timeout: Duration) -> Result<Hook, String> {
    command(Kind::Probe, argv, cwd, &[], None, timeout)
}

/// Room for FLUSH_MANAGER_CHANGED: Linux refuses to exec with one
/// environment string over 128 KiB (MAX_ARG_STRLEN), whatever the total.
const CHANGED_MAX: usize = 64 * 1024;

/// The changed paths, colon-separated, as many whole paths as fit in
/// `CHANGED_MAX`; true when some were left out.
fn changed_list(changed: &[PathBuf]) -> (String, bool) {
    let mut list = String::new();
    for path in changed {
        let p = path.display().to_string();
        if list.len() + p.len() + 1 > CHANGED_MAX {
            return (list, true);
        }
        if !list.is_empty() {
            list.push(':');
        }
        list.push_str(&p);
    }
    (list, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_changed_list_always_fits_an_exec() {
        let few: Vec<PathBuf> = vec!["/c/a".into(), "/c/b".into()];
        assert_eq!(changed_list(&few), ("/c/a:/c/b".to_string(), false));
        let many: Vec<PathBuf> = (0..10_000)
            .map(|i| PathBuf::from(format!("/etc/app/conf.d/file-{i:05}.conf")))
            .collect();
        let (list, truncated) = changed_list(&many);
        assert!(truncated && list.len() <= CHANGED_MAX);
        assert!(list.ends_with(".conf"), "whole paths only");
    }
}
