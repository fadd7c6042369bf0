//! Which signals the manager catches, and how they reach the supervisor.
//!
//! Three facts shape this module (design notes §2):
//! - As PID 1 the kernel drops every signal that has no handler, so every
//!   signal that should reach the child must have one here.
//! - signal-hook's safe API refuses ILL, FPE and SEGV. Those, and the other
//!   fault signals, get a raw siginfo handler: a signal *sent* by another
//!   process (`si_code <= 0`) is forwarded; a real fault of our own keeps its
//!   fatal default.
//! - The child must start with the signal mask and ignored set the manager
//!   itself was started with. Rust's runtime changes SIGPIPE before `main`,
//!   so the original state is captured by an ELF constructor, before it.

use futures::AsyncReadExt;
use futures::stream::{FusedStream, StreamExt};
use nix::libc;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};

/// Signal names accepted on the command line (with or without `SIG`).
const NAMES: &[(&str, i32)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("IOT", libc::SIGIOT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("STKFLT", libc::SIGSTKFLT),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("POLL", libc::SIGPOLL),
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
];

/// Signals whose default action is a core-dumping fault. signal-hook's
/// stream cannot carry all of them, and a real fault of ours must stay fatal.
const FAULTS: [i32; 7] = [
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGABRT,
    libc::SIGTRAP,
    libc::SIGSYS,
];

fn rt_range() -> (i32, i32) {
    (libc::SIGRTMIN(), libc::SIGRTMAX())
}

/// Parses `TERM`, `SIGTERM`, `sigterm`, `15`, `RTMIN+3`, `SIGRTMAX-1`.
pub fn parse(text: &str) -> Result<i32, String> {
    let bad =
        || format!("invalid signal {text:?} (expected a name like TERM or SIGHUP, or a number)");
    let (lo, hi) = rt_range();
    let valid = |n: i32| (1..=31).contains(&n) || (lo..=hi).contains(&n);
    if let Ok(n) = text.parse::<i32>() {
        return if valid(n) { Ok(n) } else { Err(bad()) };
    }
    let upper = text.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(&(_, n)) = NAMES.iter().find(|(name, _)| *name == bare) {
        return Ok(n);
    }
    let rt = |rest: &str, base: i32, sign: i32| -> Result<i32, String> {
        let off = if rest.is_empty() {
            0
        } else {
            rest.parse::<i32>().map_err(|_| bad())?
        };
        let n = base + sign * off;
        if off >= 0 && (lo..=hi).contains(&n) {
            Ok(n)
        } else {
            Err(bad())
        }
    };
    if let Some(rest) = bare.strip_prefix("RTMIN") {
        return rt(rest.strip_prefix('+').unwrap_or(rest), lo, 1);
    }
    if let Some(rest) = bare.strip_prefix("RTMAX") {
        return rt(rest.strip_prefix('-').unwrap_or(rest), hi, -1);
    }
    Err(bad())
}

/// `SIGTERM`, `SIGRTMIN+3`, or the number for anything unnamed.
pub fn name(sig: i32) -> String {
    if let Some((name, _)) = NAMES.iter().find(|(_, n)| *n == sig) {
        return format!("SIG{name}");
    }
    let (lo, hi) = rt_range();
    match sig {
        s if s == lo => "SIGRTMIN".into(),
        s if s == hi => "SIGRTMAX".into(),
        s if s > lo && s < hi => format!("SIGRTMIN+{}", s - lo),
        s => format!("signal {s}"),
    }
}

// ---------------------------------------------------------------------------
// The signal state the manager was started with.

static START_MASK: AtomicU64 = AtomicU64::new(0);
static START_IGNORED: AtomicU64 = AtomicU64::new(0);

fn bit(sig: i32) -> u64 {
    1u64 << (sig - 1)
}

/// Runs from `.init_array`, before Rust's runtime sets SIGPIPE to ignored.
extern "C" fn capture_start_state() {
    // SAFETY: plain libc queries on stack-allocated, zeroed structs.
    unsafe {
        let mut mask: libc::sigset_t = std::mem::zeroed();
        if libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut mask) == 0 {
            let mut bits = 0;
            for sig in 1..=64 {
                if libc::sigismember(&mask, sig) == 1 {
                    bits |= bit(sig);
                }
            }
            START_MASK.store(bits, Ordering::Relaxed);
        }
        let mut ignored = 0;
        for sig in 1..=64 {
            let mut act: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut act) == 0
                && act.sa_sigaction == libc::SIG_IGN
            {
                ignored |= bit(sig);
            }
        }
        START_IGNORED.store(ignored, Ordering::Relaxed);
    }
}

#[used]
#[unsafe(link_section = ".init_array")]
static CAPTURE_START_STATE: extern "C" fn() = capture_start_state;

/// Blocks every signal in the calling thread (and in threads it starts
/// later), so that signals arriving before the handlers exist stay pending
/// instead of being dropped (PID 1) or killing us. See `catch_all`.
pub fn block_all() {
    set_mask(libc::sigfillset);
}

/// Unblocks every signal: the manager must receive each one to forward it,
/// whatever mask it inherited (the child gets that mask back, see
/// `restore_for_child`).
fn unblock_all() {
    set_mask(libc::sigemptyset);
}

fn set_mask(fill: unsafe extern "C" fn(*mut libc::sigset_t) -> libc::c_int) {
    // SAFETY: a zeroed sigset_t, filled or emptied by libc, set as this
    // thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        fill(&mut set);
        libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// Called in the forked child before exec (async-signal-safe calls only):
/// the mask and the ignored signals the manager started with. Handlers are
/// reset to default by exec itself.
pub fn restore_for_child() -> io::Result<()> {
    let mask_bits = START_MASK.load(Ordering::Relaxed);
    let ignored = START_IGNORED.load(Ordering::Relaxed);
    // SAFETY: sigaction/sigprocmask are async-signal-safe; structs are local.
    unsafe {
        for sig in 1..=64 {
            if ignored & bit(sig) != 0 && sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_IGN);
            }
        }
        let mut mask: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut mask);
        for sig in 1..=64 {
            if mask_bits & bit(sig) != 0 {
                libc::sigaddset(&mut mask, sig);
            }
        }
        if libc::sigprocmask(libc::SIG_SETMASK, &mask, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Catching.

/// Write end of the pipe the fault-signal handler reports through.
static FAULT_PIPE: AtomicI32 = AtomicI32::new(-1);

fn on_fault(sig: i32, info: &libc::siginfo_t) {
    // SAFETY: reading siginfo fields the kernel filled in; getpid, write and
    // sigaction are async-signal-safe.
    unsafe {
        let sent = info.si_code <= 0 && info.si_pid() != libc::getpid();
        let fd = FAULT_PIPE.load(Ordering::Relaxed);
        if sent && fd >= 0 {
            let byte = sig as u8;
            libc::write(fd, (&byte as *const u8).cast(), 1);
        } else {
            // A real fault (or abort()) of our own: restore the default so
            // the faulting instruction, re-run on return, kills us. The
            // kernel forces fault signals even on PID 1.
            let mut dfl: libc::sigaction = std::mem::zeroed();
            dfl.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(sig, &dfl, std::ptr::null_mut());
        }
    }
}

/// Every signal number the manager catches: 1–31 except KILL and STOP, and
/// the real-time range. SIGCHLD is among them (it drives the reaper) but is
/// never forwarded.
fn stream_signals() -> Vec<i32> {
    let (lo, hi) = rt_range();
    (1..=31)
        .filter(|s| *s != libc::SIGKILL && *s != libc::SIGSTOP && !FAULTS.contains(s))
        .chain(lo..=hi)
        .collect()
}

/// Installs every handler, then unblocks every signal (those that arrived
/// since `block_all` are delivered now), and returns one stream of caught
/// signal numbers. Threads started while signals were blocked (async-io's,
/// notify's) keep them blocked, so every signal lands on the main thread.
pub fn catch_all() -> io::Result<impl FusedStream<Item = i32> + Unpin> {
    let caught = signal_hook_async_std::Signals::new(stream_signals())?;

    let (read, write) = UnixStream::pair()?;
    write.set_nonblocking(true)?;
    FAULT_PIPE.store(write.as_raw_fd(), Ordering::Relaxed);
    // The write end lives as long as the process: the handler may fire at any time.
    std::mem::forget(write);
    for sig in FAULTS {
        // SAFETY: `on_fault` only calls async-signal-safe functions.
        unsafe { signal_hook_registry::register_unchecked(sig, move |info| on_fault(sig, info)) }?;
    }
    let faults = futures::stream::unfold(async_io::Async::new(read)?, |mut pipe| async move {
        let mut byte = [0u8; 1];
        // A closed or broken pipe ends the stream; it cannot happen while we run.
        let n = pipe.read(&mut byte).await.ok()?;
        (n == 1).then_some((i32::from(byte[0]), pipe))
    });
    unblock_all();
    Ok(futures::stream::select(caught, faults.boxed_local()).fuse())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_numbers_and_realtime() {
        assert_eq!(parse("TERM"), Ok(libc::SIGTERM));
        assert_eq!(parse("sigterm"), Ok(libc::SIGTERM));
        assert_eq!(parse("SIGHUP"), Ok(libc::SIGHUP));
        assert_eq!(parse("9"), Ok(9));
        assert_eq!(parse("RTMIN"), Ok(libc::SIGRTMIN()));
        assert_eq!(parse("SIGRTMIN+3"), Ok(libc::SIGRTMIN() + 3));
        assert_eq!(parse("RTMAX-1"), Ok(libc::SIGRTMAX() - 1));
        assert!(parse("NOPE").is_err());
        assert!(parse("0").is_err());
        assert!(parse("65").is_err());
        assert!(parse("RTMIN+99").is_err());
    }

    #[test]
    fn names_round_trip() {
        for sig in stream_signals().into_iter().chain(FAULTS) {
            assert_eq!(parse(&name(sig)), Ok(sig), "{}", name(sig));
        }
    }

    #[test]
    fn catches_everything_but_kill_and_stop() {
        let mut all = stream_signals();
        all.extend(FAULTS);
        assert!(!all.contains(&libc::SIGKILL) && !all.contains(&libc::SIGSTOP));
        assert!(all.contains(&libc::SIGCHLD) && all.contains(&libc::SIGRTMAX()));
        assert_eq!(
            all.len(),
            29 + (libc::SIGRTMAX() - libc::SIGRTMIN() + 1) as usize
        );
    }
}
