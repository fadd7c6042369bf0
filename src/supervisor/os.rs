//! The real world: processes (async-process), the signalfd, the watcher
//! (notify + polling), checks and reloads, `--promote-to`, `--metrics`.

use super::looks::Looks;
use super::{Look, Pacing, Wake, World};
use crate::child::{self, Child};
use crate::cli::{Config, ReloadHook};
use crate::hook::{self, Hook};
use crate::http;
use crate::metrics::Metrics;
use crate::off_loop;
use crate::promote::Promoter;
use crate::reaper;
use crate::route::Routes;
use crate::signals;
use crate::state::{
    CommitFailed, HookCall, Machine, Outcome, Promoted, Settings, Target, Token, Verdict,
};
use crate::watch::{NotifyEvent, Watch, fingerprint};
use futures::future::LocalBoxFuture;
use futures::{FutureExt, select};
use log::{debug, error, info, warn};
use nix::libc;
use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// File descriptors the manager needs free at startup: the signalfd, the
/// main thread's eventfd, async-io's epoll, eventfd and timerfd,
/// async-process's pidfd probe and the child's pidfd, and the pipe through
/// which the spawn reports an exec error.
const FDS_NEEDED: usize = 10;
/// What the watcher holds for the whole run: inotify, notify's epoll and
/// its waker, and one for a look reading a file.
const FDS_WATCH: usize = 4;
/// What a check, reload command or readiness command holds while it runs:
/// its output pipe and the copy for stderr, the spawn's own pipe and the
/// pidfd, and room for a metrics or reload connection beside it.
const FDS_HOOK: usize = 8;

/// How many free descriptors `cfg` needs at startup: without them a check
/// could never run (and would be retried forever) or a later spawn fail.
fn fds_needed(cfg: &Config) -> usize {
    let hooks = cfg.validate.is_some()
        || cfg.reload_command.is_some()
        || !cfg.reload_url.is_empty()
        || cfg.ready_check.is_some()
        || cfg.ready_url.is_some()
        || cfg.promote_to.is_some();
    FDS_NEEDED
        + if cfg.configs.is_empty() { 0 } else { FDS_WATCH }
        + if hooks { FDS_HOOK } else { 0 }
}

pub fn run(cfg: Config, cwd: Option<PathBuf>) -> i32 {
    // Everything that can fail for lack of resources happens here, before
    // the child exists: a failure leaves nobody behind. (async-io and
    // async-process abort the process if they cannot get their fds.)
    if let Err(e) = fds_available(fds_needed(&cfg)) {
        error!("Cannot start: {e}");
        return 1;
    }
    let intake = match signals::Intake::new() {
        Ok(i) => i,
        Err(e) => {
            error!("Cannot read signals (signalfd): {e}");
            return 1;
        }
    };
    let ex = Rc::new(smol::LocalExecutor::new());
    // Driving async-process's reaper here keeps it from starting a thread.
    ex.spawn(async_process::driver()).detach();
    // Not async-io's block_on: with it, the reactor thread spins through
    // short sleeps after every event while a block_on is active (idle
    // wake-ups, and signals waiting out those sleeps; the figures are in
    // bench/RESULTS.md).
    #[cfg(target_os = "linux")]
    {
        // The main thread sleeps on the signalfd itself (see `block_on`).
        let fd = intake.fd();
        // The loop's future (about 6 KiB) boxed: the executor's layers of
        // `run` each keep room for a copy of what they are given (25 KiB
        // in all), and every move of that on the stack is pages of main's
        // stack kept for the whole run.
        let supervising = Box::pin(supervise(cfg, cwd, intake, Rc::clone(&ex)));
        match signals::block_on(fd, ex.run(supervising)) {
            Ok(code) => code,
            Err(e) => {
                error!("Cannot start: eventfd: {e}");
                1
            }
        }
    }
    // Elsewhere signals come through async-io's reactor (signal-hook's
    // socket): the main thread parks until the reactor thread wakes it.
    #[cfg(not(target_os = "linux"))]
    smol::future::block_on(ex.run(Box::pin(supervise(cfg, cwd, intake, Rc::clone(&ex)))))
}

/// Can `n` more file descriptors be opened? Probes with pipes (no
/// filesystem needed: the root may be empty) and closes them again.
fn fds_available(n: usize) -> Result<(), String> {
    let mut held = Vec::new();
    while held.len() * 2 < n {
        match nix::unistd::pipe() {
            Ok(pair) => held.push(pair),
            Err(e) => {
                let mut lim = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                // SAFETY: getrlimit fills the struct it is given.
                let limit = match unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } {
                    0 => lim.rlim_cur.to_string(),
                    _ => "?".into(),
                };
                return Err(format!(
                    "only {} free file descriptors ({e}; ulimit -n is {limit}), {n} needed",
                    held.len() * 2
                ));
            }
        }
    }
    Ok(())
}

async fn supervise(
    cfg: Config,
    cwd: Option<PathBuf>,
    intake: signals::Intake,
    ex: Rc<smol::LocalExecutor<'static>>,
) -> i32 {
    reaper::become_subreaper();
    // Let the executor poll async-process's driver (spawned beside us)
    // before the first spawn, or async-process starts a thread of its own.
    smol::future::yield_now().await;
    let watch = Watch::new(cfg.configs.clone(), cfg.poll_interval);
    let promoter = match cfg
        .promote_to
        .clone()
        .map(|d| Promoter::new(d, cfg.configs.clone()))
    {
        None => None,
        Some(Ok(p)) => Some(p),
        Some(Err(e)) => {
            error!("{e}");
            return 2;
        }
    };
    // The child's directory as its durable record says (an interrupted
    // check or promotion is undone), and the bytes it holds.
    let found = match promoter.as_ref().map(Promoter::recover) {
        None => Default::default(),
        Some(Ok(found)) => found,
        Some(Err(e)) => {
            error!("--promote-to: cannot read or repair the directory: {e}");
            return 1;
        }
    };
    // Before the child: a port that cannot be had is a startup error.
    let metrics = match cfg.metrics {
        None => None,
        Some(addr) => {
            let shown = Rc::new(RefCell::new(Metrics::default()));
            let view = Rc::clone(&shown);
            let served = std::net::TcpListener::bind(addr)
                .and_then(|l| http::serve(&ex, l, Rc::new(move |path| view.borrow().page(path))));
            if let Err(e) = served {
                error!("--metrics {addr}: {e}");
                return 2;
            }
            info!("Serving metrics at http://{addr}/metrics (and /healthz, /readyz)");
            Some(shown)
        }
    };
    let take_tty = child::owns_terminal();
    // One set of rules, its answers shared by the looks and the machine.
    let routes = Routes::new(cfg.configs.clone(), cfg.on_change.clone());
    let settings = Settings {
        stop_signal: cfg.stop_signal,
        stop_timeout: cfg.stop_timeout,
        validate_timeout: cfg.validate_timeout,
        reload_timeout: cfg.reload_timeout,
        stop_delay: cfg.stop_delay,
        reload_signal: cfg.reload_signal,
        restart: cfg.restart,
        max_restarts: cfg.max_restarts,
        validate: cfg.validate.is_some(),
        signal_to: cfg.signal_to,
        map_signal: cfg.map_signal.clone(),
        interactive: take_tty,
        promote: promoter.is_some(),
        validate_in_place: cfg.validate_in_place,
        reload_hooks: cfg.global_hooks(),
        routes: routes.clone(),
        rollback_window: cfg.rollback_window,
        ready_interval: cfg.ready_interval,
        ready_failures: crate::state::READY_FAILURES,
        ready_start_period: cfg.ready_start_period,
        restart_signal: cfg.restart_signal,
        remap_exit: cfg.remap_exit.clone(),
        inherited_safe: signals::inherited_safe(),
    };
    // Replicas start together: their pids and clocks' nanoseconds differ.
    let seed = u64::from(std::process::id()).rotate_left(32)
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::from(d.subsec_nanos()));
    let pacing = Pacing::new(&cfg, seed);
    let mut looks = Looks::new(watch);
    looks.route_with(routes);
    let mut os = Os {
        programs: Programs {
            command: cfg.command,
            validate: cfg.validate.unwrap_or_default(),
            hooks: cfg.hooks,
            ready_check: cfg.ready_check,
            ready_url: cfg.ready_url,
        },
        poll_only: cfg.poll_only,
        cwd,
        looks,
        ops: Vec::new(),
        child: None,
        group: None,
        promoter,
        take_tty,
        killed: vec![],
        metrics,
        intake,
        me: std::process::id() as i32,
        reactor: false,
        timer: async_io::Timer::never(),
        timer_at: None,
        notified: None,
    };
    super::drive(&mut os, pacing, settings, found).await
}

/// What the world runs, as the command line names it. Only the programs
/// and addresses: every setting that decides something went to the
/// machine (`Settings`) or to the loop's pacing.
struct Programs {
    command: Vec<String>,
    /// `--validate` (empty: none).
    validate: Vec<String>,
    /// The reload hooks, numbered as the machine's `Settings` count them.
    hooks: Vec<ReloadHook>,
    ready_check: Option<Vec<String>>,
    ready_url: Option<crate::http::Url>,
}

/// Everything the real world holds.
struct Os {
    programs: Programs,
    /// `--poll-only`: no inotify, the watch polls.
    poll_only: bool,
    cwd: Option<PathBuf>,
    /// The watch, and the looks at the files it takes off the loop.
    looks: Looks,
    /// The machine's operations running here (stagings, checks, hooks,
    /// probes), each with its token: the one collection the loop waits on.
    ops: Vec<Running>,
    /// The running child, when it started, and the token of its `Op::Run`
    /// (asked for right after its start: until then its end is left with
    /// the reaper, unclaimed).
    child: Option<(Child, Instant, Option<Token>)>,
    /// The child's process group (its pid): the running child's, or the
    /// exited one's until it is found empty. Nothing else is signalled as
    /// a group but our own hooks'.
    group: Option<i32>,
    /// The child takes the terminal's foreground (we had it at start).
    take_tty: bool,
    /// `--promote-to`: stages source bytes into the child's directory.
    promoter: Option<Promoter>,
    /// Process groups of cancelled hooks, SIGKILLed and maybe not yet gone.
    killed: Vec<i32>,
    /// `--metrics`: what the server shows.
    metrics: Option<Rc<RefCell<Metrics>>>,
    intake: signals::Intake,
    me: i32,
    /// async-io's reactor is up (`reactor_up`).
    reactor: bool,
    /// The loop's deadline, armed at `timer_at`: kept from turn to turn, as
    /// each new timer wakes async-io's reactor thread to take it in (on a
    /// busy machine, one more thread to run beside the child that was just
    /// signalled).
    timer: async_io::Timer,
    timer_at: Option<Instant>,
    /// The wait for the watcher's next event, kept from one wait to the
    /// next until it yields (made anew at every wait, its listener was
    /// registered and dropped again at each signal).
    notified: Option<LocalBoxFuture<'static, NotifyEvent>>,
}

impl Os {
    /// async-io's reactor (its thread, epoll, eventfd and timerfd) comes
    /// into being at its first use, and aborts the process if it cannot:
    /// that first use must come before the child exists. It is made while
    /// the first start's look runs (the loop's first wait), or at the
    /// spawn at the latest. A timer registered and removed again is the
    /// cheapest use.
    fn reactor_up(&mut self) {
        if !std::mem::replace(&mut self.reactor, true) {
            let mut first = async_io::Timer::after(Duration::from_secs(3600));
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            let _ = first.poll_unpin(&mut cx);
        }
    }

    fn sweep(&self) {
        reaper::sweep();
    }

    /// The child was reaped: forgotten, but not its group (leftovers may
    /// remain in it, the stop signal and SIGKILL still go there).
    /// None without a child (its status comes only while there is one).
    fn child_exited(&mut self, status: std::process::ExitStatus) -> Option<Wake> {
        // Unclaimed yet (no `Op::Run`): its status stays with the reaper.
        if !matches!(self.child, Some((_, _, Some(_)))) {
            return None;
        }
        let (c, started, token) = self.child.take()?;
        let token = token?;
        debug!("Reaped child process {}", c.pid);
        let status = child::status_of(status);
        Some(Wake::Done {
            token,
            outcome: Outcome::Exited {
                status,
                ran_for: started.elapsed(),
            },
        })
    }

    /// Notes a group about to be SIGKILLed (a cancelled hook), keeping only
    /// those not yet gone.
    fn killing(&mut self, pgid: Option<i32>) {
        self.killed.retain(|&g| child::group_alive(g));
        self.killed.extend(pgid);
    }
}

/// An operation running for the machine: its answer to come, and the
/// process groups to kill if it is cancelled.
struct Running {
    token: Token,
    /// What it is, for the log when it is cancelled.
    what: &'static str,
    groups: Vec<i32>,
    answer: LocalBoxFuture<'static, Outcome>,
}

impl Os {
    /// `--promote-to`'s directory (asked for only with it).
    fn promoter(&self) -> Result<&Promoter, CommitFailed> {
        self.promoter.as_ref().ok_or(CommitFailed {
            reason: "no --promote-to".into(),
            recorded: false,
            gone: false,
        })
    }

    fn run(
        &mut self,
        token: Token,
        what: &'static str,
        groups: Vec<i32>,
        answer: LocalBoxFuture<'static, Outcome>,
    ) {
        self.ops.push(Running {
            token,
            what,
            groups,
            answer,
        });
    }

    /// Kills what `token` runs (its answer no longer matters).
    fn kill_op(&mut self, token: Token) {
        let Some(i) = self.ops.iter().position(|r| r.token == token) else {
            return;
        };
        let op = self.ops.swap_remove(i);
        for pgid in op.groups {
            info!("Cancelling the running {}", op.what);
            self.killing(Some(pgid));
            hook::cancel_group(pgid);
        }
    }
}

/// What the select! saw, before it becomes a `Wake`.
enum Seen {
    Child(std::process::ExitStatus),
    Signal(std::io::Result<signals::Caught>),
    Notify(NotifyEvent),
    Looked(Wake),
    /// The operation at this index answered.
    Answered(usize, Outcome),
    Timer,
}

impl World for Os {
    fn spawn(&mut self) -> Result<(), i32> {
        self.reactor_up();
        let c = child::spawn(&self.programs.command, self.cwd.as_deref(), self.take_tty)?;
        self.group = Some(c.pid);
        self.child = Some((c, Instant::now(), None));
        Ok(())
    }

    fn run(&mut self, token: Token) {
        if let Some((_, _, run)) = self.child.as_mut() {
            *run = Some(token);
        }
    }

    /// The first of `sigs` the child does not handle (true: it ignores
    /// it), from its masks in /proc; with `Target::Group`, also the first
    /// any other member of its group would die of (one that ignores it is
    /// unharmed, and the leader still reloads). A process already dying (of
    /// a signal forwarded a moment before, say) cannot be harmed: it is
    /// not asked. None when they all take
    /// them, or when /proc cannot tell (the signal is then sent, as before
    /// this check existed). A blocked signal is read by the process
    /// (sigwait, signalfd): handled.
    fn handling(&self, sigs: &[i32], to: Target) -> Option<(i32, bool)> {
        let pid = self.child.as_ref().map(|(c, _, _)| c.pid)?;
        let members = child::signal_targets(pid, to == Target::Group);
        signals::reload_verdict(sigs, pid, &members, signals::takes)
    }

    fn stage(&mut self, token: Token) {
        // Copying a big config takes what it takes: off the loop.
        let promoter = self.promoter.clone();
        let task = off_loop::run(move || match promoter {
            Some(p) => p.stage(),
            None => Err("no --promote-to".into()),
        });
        let answer = async move { Outcome::Staged(task.wait().await) };
        self.run(token, "staging", vec![], answer.boxed_local());
    }

    fn commit(
        &mut self,
        generation: &str,
        proven: Option<&str>,
        now: &Promoted,
    ) -> Result<(), CommitFailed> {
        self.promoter()?.commit(generation, proven, now)
    }

    fn roll_back(&mut self, to: &str, from: &str) -> Result<(), CommitFailed> {
        self.promoter()?.roll_back(to, from)
    }

    fn probe(&mut self, token: Token, timeout: Duration) -> Option<Outcome> {
        let no_answer = |why: String| Some(Outcome::NotRun(why));
        let hook = match (&self.programs.ready_check, &self.programs.ready_url) {
            (Some(argv), _) => match hook::probe(argv, self.cwd.as_deref(), timeout) {
                Ok(hook) => hook,
                // A probe that could not run says nothing of the child; the
                // next one is due at the next interval.
                Err(e) => {
                    warn!("Readiness: {e}");
                    return no_answer(e);
                }
            },
            (None, Some(url)) => {
                let url = url.clone();
                Hook::request(async move {
                    match http::get(&url, timeout).await {
                        Ok(code) if (200..300).contains(&code) => true,
                        Ok(code) => {
                            debug!("Readiness URL {url} answered {code}");
                            false
                        }
                        Err(e) => {
                            debug!("Readiness URL: {e}");
                            false
                        }
                    }
                })
            }
            (None, None) => return no_answer("no --ready-check or --ready-url".into()),
        };
        // The child it judges is the one running now.
        let started = self.child.as_ref().map(|(_, t, _)| *t);
        let answer = async move {
            let ok = hook.done.await;
            let ran_for = started.map_or(Duration::ZERO, |t| t.elapsed());
            Outcome::Probed { ok, ran_for }
        };
        self.run(
            token,
            "readiness check",
            hook.process.into_iter().collect(),
            answer.boxed_local(),
        );
        None
    }

    fn validate(
        &mut self,
        token: u64,
        changed: Vec<PathBuf>,
        candidate: Option<&str>,
        in_place: bool,
        timeout: Duration,
    ) -> Option<Outcome> {
        let verdict = |v| Some(Outcome::Checked(v));
        let argv = &self.programs.validate;
        // The machine asks for checks only with --validate: no verdict is
        // made up here.
        if argv.is_empty() {
            return verdict(Verdict::CannotRun("no --validate command".into()));
        }
        // With --promote-to the check reads the candidate: where it was
        // staged, or (--validate-in-place) at DIR, shown there for the check.
        let (changed, root) = match (self.promoter.as_ref(), candidate) {
            (Some(p), Some(generation)) => {
                let root = if in_place {
                    if let Err(e) = p.expose(generation) {
                        return verdict(Verdict::CannotRun(format!(
                            "cannot show the candidate in {}: {e}",
                            p.dir().display()
                        )));
                    }
                    p.dir().to_path_buf()
                } else {
                    p.candidate_path(generation)
                };
                let changed = p.targets(&changed, &root);
                (changed, Some(root))
            }
            _ => (changed, None),
        };
        let check = hook::command(
            hook::Kind::Validator,
            argv,
            self.cwd.as_deref(),
            &changed,
            root.as_deref(),
            timeout,
        );
        match check {
            Ok(check) => {
                let answer = async move {
                    let v = if check.done.await {
                        Verdict::Pass
                    } else {
                        Verdict::Fail
                    };
                    Outcome::Checked(v)
                };
                let groups = check.process.into_iter().collect();
                self.run(token, "config validation", groups, answer.boxed_local());
                None
            }
            // No verdict on the bytes: the machine retries the check.
            Err(reason) => verdict(Verdict::CannotRun(reason)),
        }
    }

    fn run_hooks(
        &mut self,
        token: Token,
        calls: Vec<HookCall>,
        timeout: Duration,
    ) -> Option<Outcome> {
        let mut processes = vec![];
        // Every hook at once, each with its own verdict.
        let mut runs: Vec<LocalBoxFuture<'static, (usize, bool)>> = vec![];
        for call in calls {
            let changed: Vec<PathBuf> = match &self.promoter {
                Some(p) => p.targets(&call.changed, p.dir()),
                None => call.changed,
            };
            let i = call.hook;
            match self.programs.hooks.get(i) {
                Some(ReloadHook::Command(argv)) => {
                    let hook = hook::command(
                        hook::Kind::Reload,
                        argv,
                        self.cwd.as_deref(),
                        &changed,
                        None,
                        timeout,
                    );
                    match hook {
                        Ok(hook) => {
                            processes.extend(hook.process);
                            let done = hook.done;
                            runs.push(async move { (i, done.await) }.boxed_local());
                        }
                        // Failed: retried on its own, as every failed hook.
                        Err(e) => {
                            error!("Reload: {e}");
                            runs.push(std::future::ready((i, false)).boxed_local());
                        }
                    }
                }
                Some(ReloadHook::Url(url)) => {
                    let url = url.clone();
                    runs.push(Box::pin(
                        async move { (i, post_reload(&url, timeout).await) },
                    ));
                }
                // The machine's hook numbers come from the same ordering as
                // this list (cli.rs): one out of range is a bug of ours,
                // said rather than retried in silence.
                None => {
                    error!("Reload: no reload command or URL number {i} (a bug: please report it)");
                    runs.push(std::future::ready((i, false)).boxed_local());
                }
            }
        }
        if runs.is_empty() {
            return Some(Outcome::HooksDone { failed: vec![] });
        }
        let done = async move {
            futures::future::join_all(runs)
                .await
                .into_iter()
                .filter_map(|(i, ok)| (!ok).then_some(i))
                .collect()
        };
        let answer = async move { Outcome::HooksDone { failed: done.await } };
        self.run(token, "reload command", processes, answer.boxed_local());
        None
    }
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn start_watch(&mut self) -> bool {
        self.looks.start(self.poll_only)
    }

    fn poll_interval(&self) -> Option<Duration> {
        self.looks.poll_interval()
    }

    fn look(&mut self, look: Look) {
        self.looks.ask(look);
    }

    fn cancel(&mut self, token: Token) {
        self.kill_op(token);
    }

    fn signal(&mut self, to: Target, sig: i32) -> bool {
        // Once the leader is reaped, the group's number stays ours only while
        // a member (a zombie too) holds it: found empty, the kernel may have
        // given it to a new group, which must not get our signal. (Nothing is
        // reaped between this look and the kill: both run on this thread.)
        if to == Target::Group
            && self.child.is_none()
            && !self.group.is_some_and(child::group_alive)
        {
            self.group = None;
        }
        let sent = match (to, &self.child, self.group) {
            (Target::Child, Some((c, _, _)), _) => child::signal(c.pid, sig),
            (Target::Group, _, Some(pgid)) => child::signal_group(pgid, sig),
            _ => false,
        };
        if sent {
            child::let_it_act();
        }
        sent
    }

    fn stopped(&self, to: Target) -> bool {
        match (to, &self.child, self.group) {
            (Target::Child, Some((c, _, _)), _) => child::any_stopped(c.pid, false),
            (Target::Group, _, Some(pgid)) => child::any_stopped(pgid, true),
            _ => false,
        }
    }

    fn group_alive(&mut self) -> bool {
        self.sweep();
        let alive = self.group.is_some_and(child::group_alive);
        if !alive {
            self.group = None;
        }
        alive
    }

    fn prove(&mut self, generation: &str) {
        if let Some(p) = self.promoter.as_ref() {
            p.prove(generation);
        }
    }

    fn drop_candidate(&mut self, generation: &str, now: &Promoted) -> Result<(), String> {
        match self.promoter.as_ref() {
            Some(p) => p.drop_candidate(generation, now),
            None => Ok(()),
        }
    }

    fn remove_generation(&mut self, generation: &str) {
        if let Some(p) = self.promoter.as_ref() {
            p.remove_generation(generation);
        }
    }

    fn unreject(&mut self, generation: &str) {
        if let Some(p) = self.promoter.as_ref() {
            p.unreject(generation);
        }
    }

    fn show(&mut self, machine: &Machine) {
        if let Some(m) = &self.metrics {
            m.borrow_mut().update(
                machine.stats(),
                machine.child_alive(),
                || fingerprint::short(machine.child_bytes()),
                machine.readiness(),
            );
        }
    }

    fn report_exit(&mut self, _code: i32) {
        // Our own hooks end with us: a readiness probe still running is
        // killed too, and every group we SIGKILLed gets a moment to go (a
        // check cancelled a moment ago is not a process "left running").
        let running: Vec<Token> = self.ops.iter().map(|r| r.token).collect();
        for token in running {
            self.kill_op(token);
        }
        let until = std::time::Instant::now() + Duration::from_secs(1);
        loop {
            // Reap what already exited (nothing we own matters any more).
            reaper::sweep();
            let dying = self.killed.iter().any(|&pgid| child::group_alive(pgid));
            if !dying || std::time::Instant::now() >= until {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        warn_leftovers(&reaper::leftovers());
    }

    async fn wait(&mut self, deadline: Option<Instant>) -> Wake {
        self.reactor_up();
        if let Some(wake) = self.looks.ready() {
            return wake;
        }
        loop {
            if deadline != self.timer_at {
                self.timer_at = deadline;
                match deadline {
                    Some(at) => self.timer.set_at(at),
                    None => self.timer = async_io::Timer::never(),
                }
            }
            let seen = {
                let timer = &mut self.timer;
                let status = async {
                    match self.child.as_ref() {
                        Some((c, _, Some(_))) => reaper::exited(c.pid).await,
                        _ => futures::future::pending().await,
                    }
                };
                // The first operation to answer, of all those running.
                let ops = &mut self.ops;
                let answered = futures::future::poll_fn(|cx| {
                    for (i, op) in ops.iter_mut().enumerate() {
                        if let std::task::Poll::Ready(outcome) = op.answer.poll_unpin(cx) {
                            return std::task::Poll::Ready((i, outcome));
                        }
                    }
                    std::task::Poll::Pending
                });
                if self.notified.is_none()
                    && let Some(rx) = self.looks.events()
                {
                    // Only events about a config get here (the watcher's
                    // thread drops the rest).
                    let next = async move {
                        match rx.recv().await {
                            Ok(event) => event,
                            // No watcher (nothing to watch, or polling only).
                            Err(_) => futures::future::pending().await,
                        }
                    };
                    self.notified = Some(next.boxed_local());
                }
                let waiting = &mut self.notified;
                let notified = async {
                    match waiting.as_mut() {
                        Some(next) => next.await,
                        None => futures::future::pending().await,
                    }
                };
                let looks = &mut self.looks;
                let looked = async { Seen::Looked(looks.answer().await) };
                let intake = &mut self.intake;
                select! {
                    st = status.fuse() => Seen::Child(st),
                    caught = intake.next().fuse() => Seen::Signal(caught),
                    event = notified.fuse() => Seen::Notify(event),
                    seen = looked.fuse() => seen,
                    (i, outcome) = answered.fuse() => Seen::Answered(i, outcome),
                    _ = FutureExt::fuse(timer) => Seen::Timer,
                }
            };
            match seen {
                Seen::Child(status) => {
                    if let Some(exited) = self.child_exited(status) {
                        return exited;
                    }
                }
                Seen::Signal(Err(e)) => error!("Cannot read signals: {e}"),
                // Raised by our own I/O (a write to a closed stderr, a
                // terminal with `tostop`): not for the child, and not
                // logged either (a log line to a broken pipe would raise
                // the next one).
                Seen::Signal(Ok(c)) if c.is_own(self.me) => {}
                Seen::Signal(Ok(c)) if c.sig == libc::SIGCHLD => {
                    self.sweep();
                    // The child reaped just now is reported before anything
                    // else is looked at: a signal or timer that won the
                    // next select! would otherwise address its pid, which
                    // the kernel may already have given to another process.
                    if let Some(exited) = self
                        .child
                        .as_ref()
                        .filter(|(_, _, run)| run.is_some())
                        .and_then(|(c, _, _)| reaper::take(c.pid))
                        .and_then(|status| self.child_exited(status))
                    {
                        return exited;
                    }
                }
                Seen::Signal(Ok(c)) => {
                    if log::log_enabled!(log::Level::Debug) {
                        let name = signals::name(c.sig);
                        debug!(signal = name.as_str(), sender = c.pid; "Received {name} from pid {}", c.pid);
                    }
                    return Wake::Signal(c.sig);
                }
                Seen::Notify(event) => {
                    self.notified = None;
                    // The whole burst counts as one (a ConfigMap swap is five
                    // events); each names what the next look must read.
                    self.looks.note(event);
                    return Wake::Notify;
                }
                Seen::Looked(wake) => return wake,
                Seen::Answered(i, outcome) => {
                    let token = self.ops.swap_remove(i).token;
                    return Wake::Done { token, outcome };
                }
                Seen::Timer => {
                    // Fired: it fires no more; the next deadline is armed anew.
                    self.timer_at = None;
                    return Wake::Timer;
                }
            }
        }
    }
}

/// POSTs one reload URL; true on 2xx. The log shows the URL without its
/// credentials.
async fn post_reload(url: &http::Url, timeout: Duration) -> bool {
    info!("Reloading: POST {url}");
    match http::post(url, timeout).await {
        Ok(code) if (200..300).contains(&code) => {
            info!("Reload URL {url} answered {code}");
            true
        }
        Ok(code) => {
            error!("Reload URL {url} answered {code}");
            false
        }
        Err(e) => {
            error!("Reload URL failed: {e}");
            false
        }
    }
}

/// Says when processes outlive the child's group at exit.
pub fn warn_leftovers(left: &[(i32, String)]) {
    if left.is_empty() {
        return;
    }
    let list: Vec<String> = left
        .iter()
        .map(|(pid, name)| format!("{pid} ({name})"))
        .collect();
    let fate = if std::process::id() == 1 {
        "they end with this PID namespace"
    } else {
        "they keep running"
    };
    warn!(
        "{} process(es) left outside the child's process group: {}; {fate}",
        left.len(),
        list.join(", ")
    );
}
