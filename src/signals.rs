//! Which signals the manager catches, how it reads them, and the signal
//! state its children start with.
//!
//! - As PID 1 the kernel drops every signal that has neither a handler nor
//!   a blocked bit, so every signal that should reach the child is blocked
//!   here and read from a signalfd (see `Intake` for why no handlers).
//! - The child must start with the signal mask and ignored set the manager
//!   itself was started with, not with our all-blocked mask. Rust's runtime
//!   changes SIGPIPE before `main`, so the original state is captured by a
//!   constructor the loader runs before it (`.init_array`; not in the unit
//!   test binary, see `CAPTURE_START_STATE`).
//!
//! Linux is the platform this is built and tested for. Elsewhere (macOS, the
//! BSDs: workstation use, never PID 1) there is no signalfd and no real-time
//! signals: signal-hook-async-std's stream takes them, at the cost of the
//! sender, the fault signals and repeated counts (see `Intake`).

use nix::libc;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

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
    #[cfg(any(target_os = "linux", target_os = "android"))]
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
    #[cfg(any(target_os = "linux", target_os = "android"))]
    ("POLL", libc::SIGPOLL),
    #[cfg(any(target_os = "linux", target_os = "android"))]
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
];

/// The first real-time signal as glibc, `kill -l`, docker and systemd
/// number it (systemd halts on SIGRTMIN+3, 37). The kernel's real-time
/// signals start at 32; glibc keeps 32 and 33 for itself. musl keeps 34
/// as well and calls 35 SIGRTMIN, so a static (musl) build asking its C
/// library would neither catch 34 nor agree with anyone on `RTMIN+N`.
#[cfg(target_os = "linux")]
const RTMIN: i32 = 34;

/// The real-time signal range, inclusive.
#[cfg(target_os = "linux")]
fn rt_range() -> (i32, i32) {
    (RTMIN, libc::SIGRTMAX())
}

/// No real-time signals here: an empty range.
#[cfg(not(target_os = "linux"))]
fn rt_range() -> (i32, i32) {
    (i32::MAX, i32::MIN)
}

/// Parses `TERM`, `SIGTERM`, `sigterm`, `15`, `RTMIN+3`, `SIGRTMAX-1`.
/// Real-time signals count up from RTMIN (`RTMIN+N`) or down from RTMAX
/// (`RTMAX-N`) and must land inside the real-time range: `RTMAX+1` is no
/// signal at all, not a misspelt `RTMAX-1`.
pub fn parse(text: &str) -> Result<i32, String> {
    let bad =
        || format!("invalid signal {text:?} (expected a name like TERM or SIGHUP, or a number)");
    let (lo, hi) = rt_range();
    let valid = |n: i32| (1..=31).contains(&n) || (lo..=hi).contains(&n);
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return match text.parse::<i32>() {
            Ok(n) if valid(n) => Ok(n),
            _ => Err(bad()),
        };
    }
    let upper = text.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(&(_, n)) = NAMES.iter().find(|(name, _)| *name == bare) {
        return Ok(n);
    }
    let (base, rest, up) = if let Some(rest) = bare.strip_prefix("RTMIN") {
        (lo, rest, true)
    } else if let Some(rest) = bare.strip_prefix("RTMAX") {
        (hi, rest, false)
    } else {
        return Err(bad());
    };
    if lo > hi {
        return Err(format!(
            "invalid signal {text:?}: this platform has no real-time signals"
        ));
    }
    let span = hi - lo;
    let range = format!("the real-time signals are RTMIN..RTMIN+{span}, or RTMAX-{span}..RTMAX");
    // Only `RTMIN+N` and `RTMAX-N`, with N in digits: any other sign or
    // spelling would count the wrong way.
    if rest.is_empty() {
        return Ok(base);
    }
    let mut chars = rest.chars();
    let sign = chars.next().unwrap_or('?');
    let digits = chars.as_str();
    let wanted = if up { '+' } else { '-' };
    if !up && sign == '+' {
        return Err(format!(
            "invalid signal {text:?}: no signal comes after RTMAX ({range})"
        ));
    }
    if up && sign == '-' {
        return Err(format!(
            "invalid signal {text:?}: no real-time signal comes before RTMIN ({range})"
        ));
    }
    if sign != wanted || digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("invalid signal {text:?} ({range})"));
    }
    match digits.parse::<i32>() {
        Ok(off) if off <= span => Ok(if up { base + off } else { base - off }),
        _ => Err(format!(
            "invalid signal {text:?}: outside the real-time range ({range})"
        )),
    }
}

/// `SIGTERM`, `SIGRTMIN+3`, or the number for anything unnamed.
pub fn name(sig: i32) -> String {
    Named(sig).to_string()
}

/// A signal's name (`name`) written where it is displayed, so that a
/// line nobody writes costs no allocation.
pub struct Named(pub i32);

impl std::fmt::Display for Named {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sig = self.0;
        if let Some((name, _)) = NAMES.iter().find(|(_, n)| *n == sig) {
            return write!(f, "SIG{name}");
        }
        let (lo, hi) = rt_range();
        match sig {
            s if s == lo => f.write_str("SIGRTMIN"),
            s if s == hi => f.write_str("SIGRTMAX"),
            s if s > lo && s < hi => write!(f, "SIGRTMIN+{}", s - lo),
            s => write!(f, "signal {s}"),
        }
    }
}

// ---------------------------------------------------------------------------
// The signal state the manager was started with.

static START_MASK: AtomicU64 = AtomicU64::new(0);
static START_IGNORED: AtomicU64 = AtomicU64::new(0);

fn bit(sig: i32) -> u64 {
    1u64 << (sig - 1)
}

/// The calling thread's signal mask into `mask` (0 on success). On Linux
/// from the kernel itself: musl's `pthread_sigmask` hides 32 to 34 from
/// what it reports (see `RTMIN`).
///
/// # Safety
/// A plain query into a caller-owned set.
#[cfg_attr(test, allow(dead_code))]
unsafe fn current_mask(mask: &mut libc::sigset_t) -> libc::c_long {
    // SAFETY: rt_sigprocmask with no new set only writes the old one, 8
    // bytes (the kernel's 64 signals) of a set at least that big.
    #[cfg(target_os = "linux")]
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_BLOCK,
            std::ptr::null::<libc::sigset_t>(),
            mask as *mut libc::sigset_t,
            8usize,
        )
    }
    #[cfg(not(target_os = "linux"))]
    unsafe {
        libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), mask).into()
    }
}

/// Runs as a constructor (`.init_array`, `__mod_init_func` on Apple),
/// before Rust's runtime sets SIGPIPE to ignored: records the signal state
/// we were started with, then blocks everything (`block_all`).
#[cfg_attr(test, allow(dead_code))]
extern "C" fn capture_start_state() {
    // SAFETY: plain libc queries on stack-allocated, zeroed structs.
    unsafe {
        let mut mask: libc::sigset_t = std::mem::zeroed();
        if current_mask(&mut mask) == 0 {
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
    // From here on, every signal waits for the signalfd: the earliest point
    // the program controls (before Rust's runtime and `main`).
    block_all();
    #[cfg(all(target_os = "linux", target_env = "musl"))]
    take_pending_rtmin();
}

/// musl: 34s already pending (sent while our parent had it blocked, before
/// its exec) would take their default action the moment the runtime's
/// first handler makes musl unblock 34 (see `settle_mask`), killing the
/// manager before `main`. They are taken here, while 34 is still blocked,
/// and counted, and `Intake::new` hands them on as caught signals.
#[cfg(all(target_os = "linux", target_env = "musl"))]
#[cfg_attr(test, allow(dead_code))]
fn take_pending_rtmin() {
    let set = set_of(&[RTMIN]);
    let now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: rt_sigtimedwait with a valid set, no siginfo wanted and a
    // zero timeout: it takes one pending 34, or fails at once (EAGAIN).
    // Raw, as musl's wrappers refuse 34. Bounded, as the queue is.
    for _ in 0..EARLY_RTMIN_MAX {
        let got = unsafe {
            libc::syscall(
                libc::SYS_rt_sigtimedwait,
                &set as *const libc::sigset_t,
                std::ptr::null_mut::<libc::siginfo_t>(),
                &now as *const libc::timespec,
                8usize,
            )
        };
        if got != libc::c_long::from(RTMIN) {
            break;
        }
        EARLY_RTMIN.fetch_add(1, Ordering::Relaxed);
    }
}

/// 34s taken before `main` on musl (`take_pending_rtmin`), at most
/// `EARLY_RTMIN_MAX` (the kernel's queue for a process is about as long).
#[cfg(all(target_os = "linux", target_env = "musl"))]
static EARLY_RTMIN: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
#[cfg(all(target_os = "linux", target_env = "musl"))]
#[cfg_attr(test, allow(dead_code))]
const EARLY_RTMIN_MAX: u32 = 4096;

// Not in the test binary: it would block SIGTERM and SIGINT in `cargo test`,
// whose unit tests never read a signalfd, and so make it unstoppable.
#[cfg(not(test))]
#[used]
#[cfg_attr(
    target_vendor = "apple",
    unsafe(link_section = "__DATA,__mod_init_func")
)]
#[cfg_attr(not(target_vendor = "apple"), unsafe(link_section = ".init_array"))]
static CAPTURE_START_STATE: extern "C" fn() = capture_start_state;

/// Blocks every signal in the calling thread and in every thread it starts
/// later: on Linux for the manager's whole life, signals being read from the
/// signalfd (`Intake`), never delivered; elsewhere SIGCHLD stays unblocked
/// and `Intake` unblocks what its handlers take. Called from the constructor
/// above, before `main` and before any thread exists (threads inherit the
/// mask).
#[cfg_attr(test, allow(dead_code))]
fn block_all() {
    // SAFETY: a zeroed sigset_t, filled by libc, set as this thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        // musl leaves 34 out of a full set (see `RTMIN`).
        #[cfg(target_os = "linux")]
        add(&mut set, RTMIN);
        // Without a signalfd, signal-hook's handlers (ours for SIGCHLD too,
        // beside async-process's) must be able to run.
        #[cfg(not(target_os = "linux"))]
        libc::sigdelset(&mut set, libc::SIGCHLD);
        libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// The signals the manager was started with blocked or ignored (bit n - 1
/// for signal n): its children start with them so too.
pub fn inherited_safe() -> u64 {
    START_MASK.load(Ordering::Relaxed) | START_IGNORED.load(Ordering::Relaxed)
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
        // No allocation here, between fork and exec.
        let mut mask = set_of(&[]);
        for sig in (1..=64).filter(|&sig| mask_bits & bit(sig) != 0) {
            add(&mut mask, sig);
        }
        if libc::sigprocmask(libc::SIG_SETMASK, &mask, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Catching: one signalfd, no handlers.
//
// Every signal stays blocked in every thread from the constructor above,
// before `main` (threads inherit the mask), and is read, with its sender,
// from a signalfd.
// There is no handler anywhere, so:
// - nothing runs in signal context: a signal costs one read, and nothing is
//   ever written to a channel that may be closed (a handler writing to a
//   dropped pipe raises SIGPIPE on itself, forever);
// - real-time signals keep their count: the kernel queues each one and each
//   read takes one (a pending flag per signal number would fold 1000 into 1);
// - a signal sent before the loop is ready waits, pending, instead of being
//   dropped (PID 1 drops unhandled signals, but never blocked ones);
// - SIGPIPE from our own write to a closed stderr, or SIGTTOU from our own
//   write to a terminal with `tostop`, cannot stop or spin us: a write that
//   would raise a blocked SIGPIPE fails with EPIPE, and a blocked SIGTTOU
//   lets the terminal write through;
// - a real fault of ours (SIGSEGV, SIGBUS, abort) stays fatal: the kernel
//   unblocks a fault it forces and applies the default action, PID 1 or not,
//   while the same signal *sent* by another process is only queued, read
//   and forwarded, every time.

#[cfg(target_os = "linux")]
const SI_KERNEL: i32 = libc::SI_KERNEL;
/// signal-hook's stream reports no sender: no code ever matches.
#[cfg(not(target_os = "linux"))]
const SI_KERNEL: i32 = i32::MIN;

/// A caught signal and who sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caught {
    pub sig: i32,
    /// The sender (0 when the kernel or another PID namespace sent it).
    pub pid: i32,
    /// `si_code`: <= 0 when a process sent it, SI_KERNEL for the terminal.
    pub code: i32,
}

impl Caught {
    /// Raised by our own doing, so never for the child: anything we sent
    /// ourselves (SIGPIPE and SIGXFSZ of our own writes carry our pid), and
    /// the terminal's SIGTTIN/SIGTTOU or the CPU limit's SIGXCPU, which the
    /// kernel sends about our own I/O or CPU time.
    pub fn is_own(&self, me: i32) -> bool {
        (self.pid == me && self.code <= 0)
            || (self.code == SI_KERNEL
                && matches!(self.sig, libc::SIGTTIN | libc::SIGTTOU | libc::SIGXCPU))
    }
}

/// Every signal number the manager reads: 1–31 but KILL and STOP, and the
/// real-time range. SIGCHLD is among them (it drives the reaper) but is
/// never forwarded.
fn caught_signals() -> Vec<i32> {
    let (lo, hi) = rt_range();
    (1..=31)
        .filter(|s| *s != libc::SIGKILL && *s != libc::SIGSTOP)
        .chain(lo..=hi)
        .collect()
}

/// A signal set of every caught signal.
#[cfg(target_os = "linux")]
fn caught_set() -> libc::sigset_t {
    set_of(&caught_signals())
}

/// A signal set of `sigs`.
fn set_of(sigs: &[i32]) -> libc::sigset_t {
    // SAFETY: a zeroed sigset_t, emptied by libc.
    let mut set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        set
    };
    for &sig in sigs {
        add(&mut set, sig);
    }
    set
}

/// Adds `sig` to `set`. On Linux the bit is set directly: musl's
/// `sigaddset` refuses 34 (see `RTMIN`), which the kernel takes like any
/// other real-time signal.
fn add(set: &mut libc::sigset_t, sig: i32) {
    #[cfg(target_os = "linux")]
    if (1..=64).contains(&sig) {
        // Both C libraries lay a sigset_t out as an array of unsigned
        // longs, signal n at bit n - 1, as the kernel reads it.
        let n = (sig - 1) as usize;
        let width = libc::c_ulong::BITS as usize;
        // SAFETY: sigset_t holds at least 64 bits (1024 with glibc and
        // musl); the word written is inside it.
        unsafe {
            let words = (set as *mut libc::sigset_t).cast::<libc::c_ulong>();
            *words.add(n / width) |= 1 << (n % width);
        }
        return;
    }
    // SAFETY: a valid set; an invalid number is refused by libc.
    unsafe { libc::sigaddset(set, sig) };
}

/// An inherited SIG_IGN on SIGCHLD would make the kernel reap our children
/// itself and lose the child's exit status.
fn default_sigchld() {
    // SAFETY: resetting a disposition to its default.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_DFL) };
}

/// The signalfd every caught signal is read from. It is not registered with
/// async-io's reactor: the main thread's wait (`block_on`) watches it
/// itself, so a signal wakes the thread that forwards it directly, not
/// through async-io's reactor thread.
#[cfg(target_os = "linux")]
pub struct Intake {
    fd: nix::sys::signalfd::SignalFd,
    /// Read and not taken yet: one read takes up to `BATCH` signals.
    read: std::collections::VecDeque<Caught>,
    /// The last read took every signal queued: the next read waits until
    /// `block_on`'s poll finds the signalfd readable (`SIGNALS_READY`),
    /// which saves a read that would find nothing after each signal.
    drained: bool,
}

/// Signals taken by one read of the signalfd.
#[cfg(target_os = "linux")]
const BATCH: usize = 8;

/// Set by `block_on` when its poll finds the signalfd readable; taken by
/// `Intake::next`. Both run on the loop's thread.
#[cfg(target_os = "linux")]
static SIGNALS_READY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The first line of `main`. musl unblocks 34 (see `RTMIN`) in the thread
/// that installs the first signal handler (the runtime's stack-overflow
/// guard, just before `main`) and again in the one that starts the first
/// thread, and each new thread starts with its creator's mask. So a first
/// thread is started and ended here, before any other, and 34 is blocked
/// again after it: from then on every thread blocks it, and the signalfd
/// reads it like any other. (34s already pending at exec are taken before
/// the runtime starts: `take_pending_rtmin`. One sent in the instants
/// between the runtime's start and here still takes its default action, as
/// it would for any program before its first line.) Nothing here needs 34
/// for musl's own use (its cross-thread setuid and setrlimit fallback; the
/// manager calls neither).
/// Elsewhere: nothing to do.
pub fn settle_mask() {
    #[cfg(all(target_os = "linux", target_env = "musl"))]
    block_rtmin_in_every_thread();
}

#[cfg(all(target_os = "linux", target_env = "musl"))]
fn block_rtmin_in_every_thread() {
    let first = std::thread::Builder::new()
        .stack_size(16 * 1024)
        .spawn(|| {})
        .map(|t| t.join());
    if first.is_err() {
        log::debug!("Could not start a first thread; signal 34 may not be caught");
    }
    let set = set_of(&[RTMIN]);
    // SAFETY: blocking one more signal in this thread.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
}

#[cfg(target_os = "linux")]
impl Intake {
    /// Opens the signalfd (signals are already blocked, see `block_all`).
    /// Must run before the child is spawned: a failure here leaves nobody
    /// behind.
    pub fn new() -> io::Result<Intake> {
        use nix::sys::signalfd::{SfdFlags, SignalFd};
        // SAFETY: the set holds valid signal numbers only (`caught_set`).
        let mask = unsafe { nix::sys::signal::SigSet::from_sigset_t_unchecked(caught_set()) };
        default_sigchld();
        let fd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)?;
        #[allow(unused_mut)]
        let mut read = std::collections::VecDeque::with_capacity(BATCH);
        // The 34s taken before `main` come first, as they came first.
        #[cfg(target_env = "musl")]
        read.extend((0..EARLY_RTMIN.swap(0, Ordering::Relaxed)).map(|_| Caught {
            sig: RTMIN,
            pid: 0,
            code: 0,
        }));
        Ok(Intake {
            fd,
            read,
            drained: false,
        })
    }

    /// The signalfd's number, for `block_on` to watch.
    pub fn fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::{AsFd, AsRawFd};
        self.fd.as_fd().as_raw_fd()
    }

    /// The next caught signal (one read: each queued signal comes once).
    /// Pending until one is queued; only `block_on`, which polls the
    /// signalfd, wakes it: it is to be awaited under that `block_on` alone,
    /// and the loop must await it whenever it waits (`World::wait`): the
    /// poll is level-triggered, so a signal left unread would wake the
    /// thread again and again.
    pub async fn next(&mut self) -> io::Result<Caught> {
        use std::task::Poll;
        std::future::poll_fn(|_| {
            if let Some(caught) = self.read.pop_front() {
                return Poll::Ready(Ok(caught));
            }
            if self.drained && !SIGNALS_READY.swap(false, Ordering::Relaxed) {
                return Poll::Pending;
            }
            match self.read_batch() {
                Ok(()) => self
                    .read
                    .pop_front()
                    .map_or(Poll::Pending, |c| Poll::Ready(Ok(c))),
                Err(e) => Poll::Ready(Err(e)),
            }
        })
        .await
    }

    /// One read of up to `BATCH` queued signals into `read`. Fewer than
    /// `BATCH` means the queue was empty at that moment: `drained`.
    fn read_batch(&mut self) -> io::Result<()> {
        use std::os::fd::{AsFd, AsRawFd};
        const SIZE: usize = std::mem::size_of::<libc::signalfd_siginfo>();
        // SAFETY: signalfd_siginfo is plain integers; all-zero is valid.
        let mut buf: [libc::signalfd_siginfo; BATCH] = unsafe { std::mem::zeroed() };
        // SAFETY: a read into a live buffer of exactly that many bytes; the
        // kernel writes whole signalfd_siginfo records only.
        let n = unsafe {
            libc::read(
                self.fd.as_fd().as_raw_fd(),
                buf.as_mut_ptr().cast(),
                SIZE * BATCH,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::WouldBlock {
                self.drained = true;
                return Ok(());
            }
            return Err(e);
        }
        let got = n as usize / SIZE;
        self.drained = got < BATCH;
        self.read.extend(buf[..got].iter().map(|info| Caught {
            sig: info.ssi_signo as i32,
            pid: info.ssi_pid as i32,
            code: info.ssi_code,
        }));
        Ok(())
    }
}

/// Runs `future` on this thread to completion. Between polls the thread
/// sleeps in poll(2) on the signalfd and on an eventfd its wakers write:
/// a signal wakes it at once, with no other thread in the way (through
/// async-io's reactor thread, a forwarded signal took about twice tini's
/// time: bench/RESULTS.md). Wakers from other threads (async-io's timers
/// and sockets, the watcher, work done off the loop) write the eventfd.
#[cfg(target_os = "linux")]
/// `signals` is the `Intake`'s fd (`Intake::fd`); the future owns the
/// `Intake` and keeps it open until it completes.
pub fn block_on<T>(
    signals: std::os::fd::RawFd,
    future: impl std::future::Future<Output = T>,
) -> io::Result<T> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    use std::task::{Context, Poll, Wake, Waker};

    struct Wakeup {
        fd: OwnedFd,
        /// Written and not yet read: later wakes need no write.
        pending: AtomicBool,
    }
    impl Wake for Wakeup {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            // SeqCst on both sides: the loop's clear of `pending` must be
            // seen before it looks at what a waker changed (a channel, or
            // the clock a timer is due by), or both sides could miss each
            // other and the loop sleep through the wake.
            if !self.pending.swap(true, Ordering::SeqCst) {
                let one = 1u64.to_ne_bytes();
                // SAFETY: an 8-byte write from a live buffer to our eventfd;
                // it cannot fail short of the counter's overflow, which a
                // read between two writes rules out.
                unsafe { libc::write(self.fd.as_raw_fd(), one.as_ptr().cast(), 8) };
            }
        }
    }

    // SAFETY: eventfd returns a new descriptor we own, or -1.
    let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a valid descriptor nobody else owns.
    let wakeup = Arc::new(Wakeup {
        fd: unsafe { OwnedFd::from_raw_fd(raw) },
        pending: AtomicBool::new(false),
    });
    let waker = Waker::from(Arc::clone(&wakeup));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(t) = future.as_mut().poll(&mut cx) {
            return Ok(t);
        }
        let mut fds = [
            libc::pollfd {
                fd: signals,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: raw,
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: two initialised pollfds; EINTR cannot happen (every
        // signal is blocked) and any other error means poll again.
        unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if fds[0].revents != 0 {
            SIGNALS_READY.store(true, Ordering::Relaxed);
        }
        if fds[1].revents != 0 {
            let mut count = [0u8; 8];
            // SAFETY: an 8-byte read into a live buffer from our eventfd.
            unsafe { libc::read(raw, count.as_mut_ptr().cast(), 8) };
            // Wakes from here on write again (the next poll must see them).
            wakeup.pending.swap(false, Ordering::SeqCst);
        }
    }
}

/// Without signalfd (macOS, the BSDs): signal-hook-async-std's stream. Its
/// handlers write each signal to a socket the loop reads; the signals it
/// takes are unblocked for them. What is lost is the sender (so nothing is
/// ever recognised as our own), the fault signals signal-hook refuses, and
/// the count of repeated signals (there are no real-time signals to count).
/// The stream is never dropped: a handler writing to its closed socket
/// would raise SIGPIPE, whose handler would write again, forever.
#[cfg(not(target_os = "linux"))]
pub struct Intake {
    signals: std::mem::ManuallyDrop<signal_hook_async_std::Signals>,
}

#[cfg(not(target_os = "linux"))]
impl Intake {
    pub fn new() -> io::Result<Intake> {
        default_sigchld();
        // signal-hook refuses to handle these (a handler for a real fault
        // would loop): they keep their default action.
        let refused = [
            libc::SIGKILL,
            libc::SIGSTOP,
            libc::SIGILL,
            libc::SIGFPE,
            libc::SIGSEGV,
        ];
        let sigs: Vec<i32> = caught_signals()
            .into_iter()
            .filter(|s| !refused.contains(s))
            .collect();
        let signals = signal_hook_async_std::Signals::new(&sigs)?;
        // Handlers exist now: let the signals reach them (blocked since the
        // constructor, they were pending, not lost).
        let set = set_of(&sigs);
        // SAFETY: unblocks a valid, initialised set in this thread.
        unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
        Ok(Intake {
            signals: std::mem::ManuallyDrop::new(signals),
        })
    }

    pub async fn next(&mut self) -> io::Result<Caught> {
        use futures::StreamExt;
        match self.signals.next().await {
            Some(sig) => Ok(Caught {
                sig,
                pid: 0,
                code: 0,
            }),
            None => Err(io::Error::other("the signal stream ended")),
        }
    }
}

/// What `sig` would do to a process, as far as a reload is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Takes {
    /// It has a handler (`SigCgt`), or every thread blocks the signal to
    /// read it with sigwait or a signalfd (tini, dumb-init, many daemons):
    /// a blocked signal stays pending and never kills.
    Handled,
    /// It ignores the signal (`SigIgn`): sent, it would do nothing.
    Ignored,
    /// The default action: for HUP, USR1 and the like, death.
    Unhandled,
    /// It is already dying: every thread is in exit(2), or has the SIGKILL
    /// the kernel marks a fatal signal with until the thread runs. One more
    /// signal changes nothing.
    Dying,
}

/// The reload's verdict on `sigs`, given what each would do to the
/// `leader` and to every other process in `members` (`takes`): the first
/// signal the leader does not handle (true: it ignores it, so it would not
/// reload), or that another member would die of (one that ignores it is
/// unharmed; one already dying cannot be harmed). None: send them. The
/// edge asks /proc; the test worlds ask their model, by the same rule.
pub fn reload_verdict(
    sigs: &[i32],
    leader: i32,
    members: &[i32],
    takes: impl Fn(i32, i32) -> Option<Takes>,
) -> Option<(i32, bool)> {
    sigs.iter().find_map(|&sig| {
        members.iter().find_map(|&member| match takes(member, sig) {
            Some(Takes::Unhandled) => Some((sig, false)),
            Some(Takes::Ignored) if member == leader => Some((sig, true)),
            _ => None,
        })
    })
}

/// At most this many threads are looked at (a JVM has hundreds); past
/// them, the signal counts as not blocked.
const THREADS_MAX: usize = 512;

/// What `sig` would do to `pid` (its masks in /proc). None when that cannot
/// be read (no /proc mounted).
pub fn takes(pid: i32, sig: i32) -> Option<Takes> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    // A handler takes it, dying or not: nothing more to read.
    if has(&status, "SigCgt:", sig)? {
        return Some(Takes::Handled);
    }
    // Its threads still to be reckoned with: not those on their way out.
    // None left: the process is dying (a zombie, or killed a moment ago
    // and still being torn down). A leader thread that ended alone
    // (`pthread_exit` in `main`) while the others run is not.
    let (mut listed, mut tids) = (0, Vec::new());
    match std::fs::read_dir(format!("/proc/{pid}/task")) {
        Ok(dir) => {
            for e in dir.flatten().take(THREADS_MAX + 1) {
                listed += 1;
                let tid = e.file_name().to_string_lossy().into_owned();
                if !task_dying(pid, &tid) {
                    tids.push(tid);
                }
            }
        }
        Err(_) => tids.push(pid.to_string()),
    }
    if tids.is_empty() && listed <= THREADS_MAX {
        return Some(Takes::Dying);
    }
    // Blocked wins over ignored: the kernel keeps a blocked signal pending
    // even when it is ignored, for the sigwait that will take it. Any
    // thread that does not block it would take its default action; past
    // `THREADS_MAX` (counted before the dying ones are left out) some were
    // not looked at, and might not.
    let blocked = listed <= THREADS_MAX && tids.iter().all(|tid| blocks(pid, tid, sig));
    Some(if blocked {
        Takes::Handled
    } else if has(&status, "SigIgn:", sig)? || namespace_init(&status) {
        Takes::Ignored
    } else {
        Takes::Unhandled
    })
}

/// Is the process of this /proc status the init of a PID namespace below
/// ours (`NSpid` ends in 1)? The kernel never applies a default action to
/// such a process for a signal from outside its namespace (but SIGKILL and
/// SIGSTOP): to it, one with no handler is as good as ignored.
fn namespace_init(status: &str) -> bool {
    status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .is_some_and(|ids| {
            let ids: Vec<&str> = ids.split_whitespace().collect();
            ids.len() > 1 && ids.last() == Some(&"1")
        })
}

/// Is thread `tid` of `pid` on its way out: in exit(2), or with SIGKILL
/// pending (the kernel marks every thread so the moment a fatal signal is
/// sent, until each runs and starts its exit)?
fn task_dying(pid: i32, tid: &str) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status"));
    status.is_ok_and(|s| has(&s, "SigPnd:", libc::SIGKILL) == Some(true))
        || crate::child::task_exiting(pid, tid)
}

/// Is `sig`'s bit set in the mask on line `name` of a /proc status?
fn has(status: &str, name: &str, sig: i32) -> Option<bool> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .map(|mask| mask & bit(sig) != 0)
}

/// Does thread `tid` of `pid` block `sig`?
fn blocks(pid: i32, tid: &str, sig: i32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status"));
    status.is_ok_and(|s| has(&s, "SigBlk:", sig) == Some(true))
        || waits_for(pid, tid).is_some_and(|set| set & bit(sig) != 0)
}

/// The set a thread sleeping in sigwait (`rt_sigtimedwait`) waits for. The
/// kernel takes that set out of the thread's mask for the wait and keeps
/// the mask aside, where /proc does not show it: a sigwait loop (tini, a
/// Python `signal.sigwait`) shows its signals neither blocked nor caught.
/// The set is read at the call's first argument (as its parent, or root,
/// the manager may read the child's memory; where not, None).
#[cfg(target_os = "linux")]
fn waits_for(pid: i32, tid: &str) -> Option<u64> {
    use std::os::unix::fs::FileExt;
    let call = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/syscall")).ok()?;
    let mut words = call.split_whitespace();
    if words.next()?.parse::<nix::libc::c_long>().ok()? != nix::libc::SYS_rt_sigtimedwait {
        return None;
    }
    let at = u64::from_str_radix(words.next()?.strip_prefix("0x")?, 16).ok()?;
    let mem = std::fs::File::open(format!("/proc/{pid}/mem")).ok()?;
    let mut set = [0u8; 8];
    mem.read_exact_at(&mut set, at).ok()?;
    Some(u64::from_ne_bytes(set))
}

#[cfg(not(target_os = "linux"))]
fn waits_for(_pid: i32, _tid: &str) -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `NSpid` ends in 1: the init of a PID namespace below ours.
    #[test]
    fn a_namespace_init_is_told_by_its_last_pid() {
        assert!(namespace_init("Name:\tsleep\nNSpid:\t4242\t1\n"));
        assert!(!namespace_init("Name:\tsleep\nNSpid:\t4242\n"));
        assert!(!namespace_init("Name:\tsleep\nNSpid:\t4242\t7\n"));
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn parses_names_numbers_and_realtime() {
        assert_eq!(parse("TERM"), Ok(libc::SIGTERM));
        assert_eq!(parse("sigterm"), Ok(libc::SIGTERM));
        assert_eq!(parse("SIGHUP"), Ok(libc::SIGHUP));
        assert_eq!(parse("9"), Ok(9));
        // As glibc, `kill -l`, docker and systemd count, whichever C
        // library this was built with (musl says 35).
        assert_eq!(parse("RTMIN"), Ok(34));
        assert_eq!(parse("SIGRTMIN+3"), Ok(37));
        assert_eq!(name(34), "SIGRTMIN");
        assert!(caught_signals().contains(&34));
        let set = set_of(&[34, 64]);
        // SAFETY: reading a set built above.
        assert!(unsafe { libc::sigismember(&set, 34) == 1 && libc::sigismember(&set, 64) == 1 });
        assert_eq!(parse("RTMAX-1"), Ok(libc::SIGRTMAX() - 1));
        assert!(parse("NOPE").is_err());
        assert!(parse("0").is_err());
        assert!(parse("65").is_err());
        assert!(parse("RTMIN+99").is_err());
        let span = libc::SIGRTMAX() - RTMIN;
        assert_eq!(parse(&format!("RTMIN+{span}")), Ok(libc::SIGRTMAX()));
        assert_eq!(parse(&format!("RTMAX-{span}")), Ok(RTMIN));
        assert_eq!(parse("SIGRTMAX"), Ok(libc::SIGRTMAX()));
    }

    /// `RTMAX+1` was read as `RTMAX-1`: every count outside the real-time
    /// range, or the wrong way from its end, is refused, saying why.
    #[test]
    #[cfg(target_os = "linux")]
    fn realtime_counts_outside_the_range_are_refused() {
        let span = libc::SIGRTMAX() - RTMIN;
        for (text, why) in [
            ("RTMAX+1", "no signal comes after RTMAX"),
            ("SIGRTMAX+0", "no signal comes after RTMAX"),
            ("RTMIN-1", "before RTMIN"),
            (
                &format!("RTMIN+{}", span + 1),
                "outside the real-time range",
            ),
            (
                &format!("RTMAX-{}", span + 1),
                "outside the real-time range",
            ),
            ("RTMIN+99999999999", "outside the real-time range"),
            ("RTMIN++1", "real-time signals are RTMIN..RTMIN+"),
            ("RTMAX--1", "real-time signals are RTMIN..RTMIN+"),
            ("RTMIN+", "real-time signals are RTMIN..RTMIN+"),
            ("RTMIN3", "real-time signals are RTMIN..RTMIN+"),
            ("RTMIN+ 1", "real-time signals are RTMIN..RTMIN+"),
            ("+15", "invalid signal"),
        ] {
            let e = parse(text).expect_err(text);
            assert!(e.contains(why), "{text}: {e}");
        }
    }

    #[test]
    #[cfg(not(target_os = "linux"))]
    fn no_realtime_signals_here() {
        assert_eq!(parse("hup"), Ok(libc::SIGHUP));
        assert!(parse("RTMIN").is_err());
        assert!(parse("33").is_err());
        assert_eq!(caught_signals().len(), 28);
    }

    #[test]
    fn the_test_binary_can_be_stopped() {
        // The constructor that blocks every signal is the manager's, not the
        // test binary's: `cargo test` must die of SIGTERM and SIGINT.
        if std::env::var("FLUSH_MANAGER_TEST_QEMU").as_deref() == Ok("1") {
            // /proc shows the emulator's own mask, not the guest's.
            eprintln!("SKIPPED under qemu-user: /proc/self/status shows qemu's signal mask");
            return;
        }
        // This thread's mask (inherited from the main thread, where the
        // constructor would have run): the main thread's own is briefly all
        // blocked whenever it starts a test thread (glibc's pthread_create).
        let status = std::fs::read_to_string("/proc/thread-self/status").unwrap_or_default();
        let Some(blocked) = status.lines().find_map(|l| l.strip_prefix("SigBlk:")) else {
            return; // no /proc (not Linux): nothing to look at
        };
        let blocked = u64::from_str_radix(blocked.trim(), 16).unwrap_or(u64::MAX);
        assert_eq!(
            blocked & (bit(libc::SIGTERM) | bit(libc::SIGINT)),
            0,
            "SigBlk {blocked:x}"
        );
    }

    #[test]
    fn names_round_trip() {
        for sig in caught_signals() {
            assert_eq!(parse(&name(sig)), Ok(sig), "{}", name(sig));
        }
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn catches_everything_but_kill_and_stop() {
        let all = caught_signals();
        assert!(!all.contains(&libc::SIGKILL) && !all.contains(&libc::SIGSTOP));
        assert!(all.contains(&libc::SIGCHLD) && all.contains(&libc::SIGRTMAX()));
        assert_eq!(all.len(), 29 + (libc::SIGRTMAX() - RTMIN + 1) as usize);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn own_signals_are_recognised() {
        let me = 42;
        let caught = |sig, pid, code| Caught { sig, pid, code };
        // Our own write to a broken pipe: SI_USER from ourselves.
        assert!(caught(libc::SIGPIPE, me, libc::SI_USER).is_own(me));
        // Terminal job control about our own output.
        assert!(caught(libc::SIGTTOU, 0, libc::SI_KERNEL).is_own(me));
        // Sent by someone else, or by the terminal for everyone: forwarded.
        assert!(!caught(libc::SIGPIPE, 7, libc::SI_USER).is_own(me));
        assert!(!caught(libc::SIGWINCH, 0, libc::SI_KERNEL).is_own(me));
        assert!(!caught(libc::SIGHUP, 0, libc::SI_KERNEL).is_own(me));
        assert!(!caught(libc::SIGTTOU, 7, libc::SI_USER).is_own(me));
    }
}
