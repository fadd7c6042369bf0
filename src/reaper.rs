//! The one reaper: every exit status, of the processes we started and of
//! orphans alike, is collected here.
//!
//! Why not async-process's `Child::status()`: it reaps inside that future,
//! woken by a pidfd, or, where `pidfd_open` is missing (kernels before 5.3)
//! or refused (a seccomp profile), by a SIGCHLD handler that never runs
//! here (our signalfd takes SIGCHLD): a check whose future was not re-made
//! at each wake-up then never completed. And two reapers race for a status.
//! So async-process only starts processes (never reaping them on drop);
//! the processes we start are *ours* here (`adopt`), and one sweep, run on
//! every SIGCHLD, reaps every zombie: an orphan's status is dropped, ours is
//! kept for `exited` to hand over. SIGCHLD coalesces (500 exits give a few
//! hundred deliveries), so each sweep goes on until no zombie is left.
//!
//! A process group is addressed by its leader's pid. Linux keeps that number
//! while any process uses it as its pid or group, but once the group is
//! empty and the leader reaped, a new process may get it: a hook's group is
//! signalled only while its leader is ours and unreaped (`signal_group`),
//! and its leftovers are killed at the leader's exit, *before* it is reaped.
//! The exited child is reported as soon as it is reaped, before any signal
//! could be forwarded to its pid.

use log::{debug, warn};
use nix::libc;
use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::os::unix::process::ExitStatusExt;
use std::pin::Pin;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};

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

/// A process we started, from its start until its status is handed over.
#[derive(Default)]
struct Ours {
    /// Its raw wait status, once reaped.
    status: Option<i32>,
    /// Who waits for it (`exited`).
    waker: Option<Waker>,
    /// At its exit, before it is reaped, SIGKILL its group (a hook's
    /// background helpers go with it).
    kill_group: bool,
    /// Nobody will ask for its status (a cancelled hook): reaped quietly.
    abandoned: bool,
}

thread_local! {
    // The loop's thread starts, reaps and waits: no lock needed.
    static OURS: RefCell<HashMap<i32, Ours>> = RefCell::new(HashMap::new());
}

/// Takes `pid`, just started by us, into the reaper's care; with
/// `kill_group`, its process group is SIGKILLed when it exits.
pub fn adopt(pid: i32, kill_group: bool) {
    OURS.with_borrow_mut(|ours| {
        ours.insert(
            pid,
            Ours {
                kill_group,
                ..Ours::default()
            },
        )
    });
}

/// Nobody will ask for `pid`'s status any more: the sweep reaps it quietly.
pub fn abandon(pid: i32) {
    OURS.with_borrow_mut(|ours| {
        if ours.get(&pid).is_some_and(|o| o.status.is_some()) {
            ours.remove(&pid);
        } else if let Some(o) = ours.get_mut(&pid) {
            o.abandoned = true;
            o.waker = None;
        }
    });
}

/// Sends `sig` to process group `pgid` if its leader is ours and not yet
/// reaped (alive, or a zombie that still holds the group's number); false
/// otherwise, or when nobody is left in it.
pub fn signal_group(pgid: i32, sig: i32) -> bool {
    let unreaped = OURS.with_borrow(|ours| ours.get(&pgid).is_some_and(|o| o.status.is_none()));
    unreaped && crate::child::signal_group(pgid, sig)
}

/// The exit status of `pid` if a sweep has reaped it (it is then handed
/// over: `exited` would not see it again).
pub fn take(pid: i32) -> Option<ExitStatus> {
    OURS.with_borrow_mut(|ours| {
        let raw = ours.get(&pid)?.status?;
        ours.remove(&pid);
        Some(ExitStatus::from_raw(raw))
    })
}

/// Resolves to the exit status of `pid` (adopted before), once a sweep has
/// reaped it.
pub fn exited(pid: i32) -> Exited {
    Exited(pid)
}

/// The future `exited` returns.
pub struct Exited(i32);

impl Future for Exited {
    type Output = ExitStatus;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<ExitStatus> {
        let pid = self.0;
        OURS.with_borrow_mut(|ours| {
            let Some(o) = ours.get_mut(&pid) else {
                // Never adopted: nobody would ever wake us, so it reads as
                // an exit with code 1 at once instead of a wait forever.
                return Poll::Ready(ExitStatus::from_raw(1 << 8));
            };
            match o.status {
                Some(raw) => {
                    ours.remove(&pid);
                    Poll::Ready(ExitStatus::from_raw(raw))
                }
                None => {
                    o.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
    }
}

/// Reaps the next exited process: its pid and raw wait status. A hook's
/// group is killed first, while its exited leader still holds the group's
/// number (Linux: a peek with WNOWAIT).
#[cfg(target_os = "linux")]
fn reap_next() -> Option<(i32, i32)> {
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
                    Some(libc::ECHILD) => return None,
                    _ => {
                        warn!("waitid failed: {err}");
                        return None;
                    }
                }
            }
            info.si_pid()
        };
        if pid == 0 {
            return None;
        }
        let kill_group = OURS.with_borrow(|ours| ours.get(&pid).is_some_and(|o| o.kill_group));
        if kill_group {
            crate::child::signal_group(pid, libc::SIGKILL);
        }
        let mut raw = 0;
        // SAFETY: reaps exactly the zombie just peeked at.
        let r = unsafe { libc::waitpid(pid, &mut raw, libc::WNOHANG) };
        return (r == pid).then_some((pid, raw));
    }
}

/// Elsewhere waitid(WNOWAIT) also reports stopped children (Darwin), and
/// a sweep would stop at one: plain waitpid, and a hook's group is killed
/// just after its leader is reaped.
#[cfg(not(target_os = "linux"))]
fn reap_next() -> Option<(i32, i32)> {
    loop {
        let mut raw = 0;
        // SAFETY: waitpid on any child, without blocking.
        let pid = unsafe { libc::waitpid(-1, &mut raw, libc::WNOHANG) };
        if pid < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        if pid <= 0 {
            return None;
        }
        if OURS.with_borrow(|ours| ours.get(&pid).is_some_and(|o| o.kill_group)) {
            crate::child::signal_group(pid, libc::SIGKILL);
        }
        return Some((pid, raw));
    }
}

/// Reaps every exited process: an orphan's status is dropped, ours is kept
/// for `exited` (and its waiter woken). Returns how many orphans it reaped.
pub fn sweep() -> usize {
    let mut reaped = 0;
    while let Some((pid, raw)) = reap_next() {
        let was_ours = OURS.with_borrow_mut(|ours| match ours.get_mut(&pid) {
            Some(o) if o.abandoned => {
                ours.remove(&pid);
                true
            }
            Some(o) => {
                o.status = Some(raw);
                if let Some(w) = o.waker.take() {
                    w.wake();
                }
                true
            }
            None => false,
        });
        if !was_ours {
            reaped += 1;
            if WARN_ON_REAP.load(Ordering::Relaxed) {
                warn!(pid = pid; "Reaped zombie process with pid={pid}");
            }
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
