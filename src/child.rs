//! Starting the child, signalling it or its process group.

use crate::signals;
use crate::state::Status;
use log::{debug, error, info};
use nix::libc;
use std::io;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;

/// A started child. Its pid is also its process group id; its status comes
/// from the reaper (`reaper::exited`).
pub struct Child {
    pub pid: i32,
}

/// Starts `command` in its own process group, in `cwd`, with the manager's
/// stdio and environment and the signal state the manager started with;
/// with `take_tty`, its group becomes the terminal's foreground group.
/// On failure: the exit code a shell would give (127 not found, 126 not
/// executable), after logging the error.
pub fn spawn(command: &[String], cwd: Option<&Path>, take_tty: bool) -> Result<Child, i32> {
    info!(
        "Starting child process: {} {}",
        command[0],
        capped(&format!("{:?}", &command[1..]), MAX_SHOWN_ARGS)
    );
    let mut cmd = std::process::Command::new(&command[0]);
    cmd.args(&command[1..]).process_group(0);
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    // SAFETY: the closure runs between fork and exec and calls only
    // async-signal-safe functions (signal, tcsetpgrp, sigprocmask).
    unsafe {
        cmd.pre_exec(move || {
            if take_tty {
                take_terminal();
            }
            signals::restore_for_child()
        });
    }
    // The reaper collects its status, not async-process (see reaper.rs).
    match async_process::Command::from(cmd)
        .reap_on_drop(false)
        .spawn()
    {
        Ok(process) => {
            let pid = process.id() as i32;
            crate::reaper::adopt(pid, false);
            info!(pid = pid; "Child process started with PID: {pid}");
            Ok(Child { pid })
        }
        Err(e) => {
            error!("Failed to start child process {}: {e}", command[0]);
            Err(match e.raw_os_error() {
                Some(libc::ENOENT | libc::ENOTDIR) => 127,
                _ => 126,
            })
        }
    }
}

/// How much of the child's arguments the start line shows: a command line
/// can be up to 2 MiB (ARG_MAX), and logging all of it at every restart
/// would bury the log.
const MAX_SHOWN_ARGS: usize = 4096;

/// `text` whole if it fits in `max` bytes; else its first `max` bytes (back
/// to a character boundary) and `… (N more bytes)`.
fn capped(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} more bytes)", &text[..end], text.len() - end)
}

/// Is the manager in its terminal's foreground (`docker run -it`, a shell's
/// foreground job)? Only then may the child take the terminal: started with
/// `&`, the shell keeps it.
pub fn owns_terminal() -> bool {
    let stdin = io::stdin();
    nix::unistd::isatty(&stdin).unwrap_or(false)
        && nix::unistd::tcgetpgrp(&stdin).is_ok_and(|fg| fg == nix::unistd::getpgrp())
}

/// Makes the child's new group the terminal's foreground group, so that
/// `docker run -it` input and Ctrl-C reach it. A background group calling
/// tcsetpgrp gets SIGTTOU unless it is ignored, hence the dance.
fn take_terminal() {
    // SAFETY: async-signal-safe calls on the inherited stdin.
    unsafe {
        libc::signal(libc::SIGTTOU, libc::SIG_IGN);
        libc::tcsetpgrp(libc::STDIN_FILENO, libc::getpid());
        libc::signal(libc::SIGTTOU, libc::SIG_DFL);
    }
}

/// Sends `sig` to every process in group `pgid`; false when nobody is left.
pub fn signal_group(pgid: i32, sig: i32) -> bool {
    // SAFETY: kill(2) with a negative pid addresses a process group.
    let ok = unsafe { libc::kill(-pgid, sig) } == 0;
    // The name is made only for a line that is written: this is the path
    // of every forwarded signal.
    if ok && log::log_enabled!(log::Level::Debug) {
        let name = signals::name(sig);
        debug!(signal = name.as_str(), pgid = pgid; "Sent {name} to process group {pgid}");
    }
    ok
}

/// Gives the CPU to the child just signalled by the loop (not to hooks
/// killed on cancel, nor in the reaper's sweep). The kernel often wakes it on
/// our own CPU, where it would wait for the rest of our turn of the loop
/// (the next wait's setup); tini has next to nothing to do after its
/// kill(2). Measured side by side (bench/RESULTS.md): signal to child p50
/// about 1.6 times lower on a 2-core machine. But where CPU-bound work
/// shares our CPU, a yield hands it a whole time slice (2-20 ms measured,
/// 3000 signals forwarded in 4.5 s instead of 0.08 s): a yield that took
/// longer than YIELD_SLOW turns yielding off for YIELD_OFF.
pub fn let_it_act() {
    use std::cell::Cell;
    use std::time::{Duration, Instant};
    const YIELD_SLOW: Duration = Duration::from_micros(500);
    const YIELD_OFF: Duration = Duration::from_secs(10);
    thread_local! {
        static OFF_UNTIL: Cell<Option<Instant>> = const { Cell::new(None) };
    }
    let now = Instant::now();
    if OFF_UNTIL.get().is_some_and(|until| now < until) {
        return;
    }
    // SAFETY: sched_yield(2) takes no arguments and cannot fail on Linux.
    unsafe { libc::sched_yield() };
    if now.elapsed() > YIELD_SLOW {
        OFF_UNTIL.set(Some(now + YIELD_OFF));
    }
}

/// Sends `sig` to process `pid` alone.
pub fn signal(pid: i32, sig: i32) -> bool {
    // SAFETY: kill(2) on one pid we started and have not reaped yet.
    let ok = unsafe { libc::kill(pid, sig) } == 0;
    // The name is made only for a line that is written: this is the path
    // of every forwarded signal.
    if ok && log::log_enabled!(log::Level::Debug) {
        let name = signals::name(sig);
        debug!(signal = name.as_str(), pid = pid; "Sent {name} to process {pid}");
    }
    ok
}

/// Is anyone left in group `pgid`? (Unreaped zombies count, hence the
/// supervisor sweeps before asking.)
pub fn group_alive(pgid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    let found = unsafe { libc::kill(-pgid, 0) } == 0;
    found || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// What `/proc/<pid>/stat` says of a process.
struct Stat {
    state: char,
    pgrp: i32,
    /// In exit(2) already (PF_EXITING): the kernel is tearing it down, which
    /// for a big process takes a while, and no signal can reach it.
    exiting: bool,
}

/// The kernel's PF_EXITING task flag.
const PF_EXITING: u32 = 0x4;

fn stat(pid: i32) -> Option<Stat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

fn parse_stat(stat: &str) -> Option<Stat> {
    // The command name may hold spaces and parentheses: fields follow the
    // last ')'. Then: state ppid pgrp session tty_nr tpgid flags.
    let mut fields = stat.get(stat.rfind(')')? + 2..)?.split(' ');
    let state = fields.next()?.chars().next()?;
    let pgrp = fields.nth(1)?.parse().ok()?;
    let flags: u32 = fields.nth(3)?.parse().ok()?;
    Some(Stat {
        state,
        pgrp,
        exiting: flags & PF_EXITING != 0,
    })
}

/// The processes of group `pgid`, from one walk through /proc (None when
/// it cannot be read).
fn group(pgid: i32) -> Option<Vec<(i32, Stat)>> {
    let entries = std::fs::read_dir("/proc").ok()?;
    Some(
        entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter_map(|pid| Some((pid, stat(pid)?)))
            .filter(|(_, st)| st.pgrp == pgid)
            .collect(),
    )
}

/// The processes a signal to `pid` (with `whole_group`, to its group)
/// reaches, the leader first. Whether each is still alive to be harmed by
/// it is `signals::takes`'s to say. When /proc cannot tell, just `pid`.
pub fn signal_targets(pid: i32, whole_group: bool) -> Vec<i32> {
    let mut targets: Vec<i32> = match group(pid).filter(|_| whole_group) {
        Some(members) => members.into_iter().map(|(pid, _)| pid).collect(),
        None => vec![pid],
    };
    targets.sort_by_key(|&member| member != pid);
    targets
}

/// Is thread `tid` of `pid` in exit(2) already? (A process's leader
/// thread may be, its zombie shown for the process, while the others run
/// on: `pthread_exit` in `main`.)
pub fn task_exiting(pid: i32, tid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat"))
        .ok()
        .and_then(|stat| parse_stat(&stat))
        .is_some_and(|st| st.exiting)
}

/// Is the process `pid`, or with `group` any member of process group `pid`,
/// stopped (SIGSTOP, SIGTSTP, a tracer)? Only a stopped process needs the
/// SIGCONT that lets it act on a stop signal; a running one must not see a
/// signal nobody sent. Where `/proc` cannot tell, say yes: SIGCONT is then
/// sent as a precaution.
pub fn any_stopped(pid: i32, group: bool) -> bool {
    let stopped = |st: &Stat| matches!(st.state, 'T' | 't');
    if !group {
        return stat(pid).is_none_or(|st| stopped(&st));
    }
    // An empty group (the usual case when the child exited alone) needs no
    // walk through every process's stat.
    if !group_alive(pid) {
        return false;
    }
    self::group(pid).is_none_or(|members| members.iter().any(|(_, st)| stopped(st)))
}

pub fn status_of(status: std::process::ExitStatus) -> Status {
    match (status.code(), status.signal()) {
        (Some(code), _) => Status::Exited(code),
        (None, Some(sig)) => Status::Signaled(sig),
        // Neither: cannot happen for an exited process on Linux.
        (None, None) => Status::Exited(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A worker killed a moment before is still in /proc while exit(2)
    /// frees its memory: it must not count as a process a signal harms.
    #[test]
    fn stat_reads_the_state_group_and_exit_flag_past_any_command_name() {
        let line = "42 (a) (b c) R 1 7 7 0 -1 4194564 88 0 0 0 0 0 0 0 20 0 1 0 5 0 0";
        let st = parse_stat(line).expect("parsed");
        assert_eq!((st.state, st.pgrp, st.exiting), ('R', 7, true));
        let st = parse_stat(&line.replace("4194564", "4194560")).expect("parsed");
        assert!(!st.exiting);
        assert!(parse_stat("42 (x) Z 1").is_none());
    }

    /// Issue #18: the start line logged the whole argv, up to 2 MiB.
    #[test]
    fn the_start_line_caps_the_arguments() {
        assert_eq!(capped("[\"-c\"]", MAX_SHOWN_ARGS), "[\"-c\"]");
        let exact = "x".repeat(MAX_SHOWN_ARGS);
        assert_eq!(capped(&exact, MAX_SHOWN_ARGS), exact);
        let long = format!("{:?}", vec!["y".repeat(100_000)]);
        let shown = capped(&long, MAX_SHOWN_ARGS);
        assert!(shown.starts_with("[\"yyyy"), "{}", &shown[..20]);
        assert!(
            shown.ends_with(&format!("… ({} more bytes)", long.len() - MAX_SHOWN_ARGS)),
            "{}",
            &shown[shown.len() - 40..]
        );
        assert!(shown.len() < MAX_SHOWN_ARGS + 40);
        // Never cut inside a character: 'é' is two bytes.
        let accents = "é".repeat(10);
        assert_eq!(capped(&accents, 5), "éé… (16 more bytes)");
    }
}
