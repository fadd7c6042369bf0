//! Reaping orphans without ever stealing the managed child's status.
//!
//! async-process stays the one source of the managed child's exit status
//! (`Child::status()`, woken by a pidfd). A plain `waitpid(-1)` sweep beside
//! races it for that status and sometimes wins. So the
//! sweep *peeks* first (`waitid(P_ALL, WNOWAIT)`): if the next zombie is a
//! pid we own, it stops and leaves that zombie to async-process; otherwise
//! it reaps exactly that pid and goes on. Orphans queued behind our own
//! zombie get no further SIGCHLD, so the supervisor sweeps again once
//! `status()` has resolved. A stress test of many orphans at once holds it
//! to that.

use log::{debug, warn};
use nix::libc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Makes orphans of our descendants ours when we are not PID 1 (tini's
/// `-s`): without it they go to the host's init and escape the sweep.
pub fn become_subreaper() {
    if std::process::id() == 1 {
        return;
    }
    #[cfg(target_os = "linux")]
    let result = nix::sys::prctl::set_child_subreaper(true).map_err(|e| e.to_string());
    #[cfg(not(target_os = "linux"))]
    let result: Result<(), String> = Err("no child subreaper on this system".into());
    if let Err(e) = result {
        warn!(
            "Cannot become a child subreaper ({e}): orphans of the child will not be reaped by flush-manager"
        );
    }
}

/// Reaps every exited orphan; stops at the first zombie that `owned` claims.
/// Returns how many were reaped.
pub fn sweep(owned: impl Fn(i32) -> bool) -> usize {
    let mut reaped = 0;
    loop {
        // Raw libc: nix's waitid turns a death by a real-time signal into
        // an error, which would hide the pid.
        // SAFETY: waitid fills a zeroed siginfo_t; WNOWAIT leaves the zombie.
        let pid = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
            if libc::waitid(libc::P_ALL, 0, &mut info, flags) != 0 {
                let err = std::io::Error::last_os_error();
                match err.raw_os_error() {
                    Some(libc::EINTR) => continue,
                    Some(libc::ECHILD) => break,
                    _ => {
                        warn!("waitid failed: {err}");
                        break;
                    }
                }
            }
            info.si_pid()
        };
        if pid == 0 || owned(pid) {
            break;
        }
        // SAFETY: reaps exactly the zombie just peeked at.
        let r = unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
        if r == pid {
            reaped += 1;
            if WARN_ON_REAP.load(Ordering::Relaxed) {
                warn!(pid = pid; "Reaped zombie process with pid={pid}");
            }
        } else {
            break;
        }
    }
    if reaped > 0 {
        debug!("Reaped {reaped} orphaned process(es)");
    }
    reaped
}

/// Processes still our children (adopted orphans that left the child's
/// process group, e.g. a daemon that called setsid), as (pid, name).
pub fn leftovers() -> Vec<(i32, String)> {
    let mut found = Vec::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return found;
    };
    for task in tasks.flatten() {
        let Ok(list) = std::fs::read_to_string(task.path().join("children")) else {
            continue;
        };
        for pid in list
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            found.push((pid, name.trim().to_string()));
        }
    }
    found
}

/// tini's `-w`: one WARN per orphan reaped (set once, before the loop).
static WARN_ON_REAP: AtomicBool = AtomicBool::new(false);

pub fn warn_on_reap(on: bool) {
    WARN_ON_REAP.store(on, Ordering::Relaxed);
}

/// tini's `-p`: the kernel sends `sig` to the manager when its parent
/// dies (the child does not inherit it: the kernel clears it on fork).
pub fn parent_death_signal(sig: i32) {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl with PR_SET_PDEATHSIG reads a signal number, nothing else.
    let result = match unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error().to_string()),
    };
    #[cfg(not(target_os = "linux"))]
    let result: Result<(), String> = Err("no parent-death signal on this system".into());
    if let Err(e) = result {
        warn!(
            "Cannot set the parent-death signal to {} ({e}): the manager will not notice its parent's death",
            crate::signals::name(sig)
        );
    }
}
