//! The edge: one `futures::select!` loop on a single-threaded executor turns
//! the world (child status, signals, notify events, timers) into events for
//! the state machine, and performs the actions it returns.

use crate::child::{self, Child};
use crate::cli::Config;
use crate::http;
use crate::metrics::Metrics;
use crate::promote::Promoter;
use crate::reaper;
use crate::signals;
use crate::state::{Action, Event, Machine, Settings, Status, Target};
use crate::timers::{Due, Timers};
use crate::validate;
use crate::watch::{Watch, fingerprint};
use futures::{FutureExt, select};
use log::{debug, error, info, warn};
use nix::libc;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How often the group of an exited child is probed while leftovers remain.
const GROUP_PROBE: Duration = Duration::from_millis(20);

/// File descriptors the manager needs free at startup: the signalfd, async-io's
/// epoll and eventfd, async-process's pidfd probe and the child's pidfd, and
/// the pipe through which the spawn reports an exec error. The watcher and
/// validator need more later, but fail soft (polling, a failed check).
const FDS_NEEDED: usize = 8;

/// Runs the supervisor to completion; returns the manager's exit code.
pub fn run(cfg: Config, cwd: Option<PathBuf>) -> i32 {
    // Everything that can fail for lack of resources happens here, before
    // the child exists: a failure leaves nobody behind. (async-io and
    // async-process abort the process if they cannot get their fds.)
    if let Err(e) = fds_available(FDS_NEEDED) {
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
    // A plain parking block_on, not async-io's: with async-io's, the reactor
    // thread spins through ~10 short sleeps after every event while a
    // block_on is active (measured: 17 wake-ups per idle 10 s, and signals
    // waiting out those sleeps: 0.5 ms p50). Parked here, the main thread
    // is woken by the reactor thread once per event.
    smol::future::block_on(ex.run(supervise(cfg, cwd, intake, Rc::clone(&ex))))
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

/// What woke the loop.
enum Wake {
    Child(std::io::Result<std::process::ExitStatus>),
    Signal(std::io::Result<signals::Caught>),
    Notify,
    Validated(bool),
    Reloaded(bool),
    Timer,
}

/// Everything the edge owns besides the state machine.
struct Edge {
    cfg: Config,
    cwd: Option<PathBuf>,
    watch: Watch,
    child: Option<Child>,
    /// The child takes the terminal's foreground (we had it at start).
    take_tty: bool,
    /// `--promote-to`: stages source bytes into the child's directory.
    promoter: Option<Promoter>,
    /// The running `--validate` check and the token the machine gave it.
    check: Option<(u64, validate::Check)>,
    /// The running `--reload-command` / `--reload-url` and its token.
    reload: Option<(u64, validate::Check)>,
    /// `--metrics`: what the server shows.
    metrics: Option<Rc<RefCell<Metrics>>>,
    /// The current (or last) child's process group, until it is empty.
    group: Option<i32>,
    /// The child exited; its group is probed until empty.
    draining: bool,
    /// Every deadline: stop, backoff, debounce, polling, group probe.
    timers: Timers,
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
    let mut watch = Watch::new(cfg.configs.clone(), cfg.poll_interval);
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
    // Before the child: a port that cannot be had is a startup error.
    let metrics = match cfg.metrics {
        None => None,
        Some(addr) => {
            let shown = Rc::new(RefCell::new(Metrics::default()));
            let view = Rc::clone(&shown);
            let served = std::net::TcpListener::bind(addr)
                .and_then(|l| http::serve(&ex, l, Rc::new(move || view.borrow().render())));
            if let Err(e) = served {
                error!("--metrics {addr}: {e}");
                return 2;
            }
            info!("Serving metrics at http://{addr}/metrics");
            Some(shown)
        }
    };
    let take_tty = child::owns_terminal();
    let settings = Settings {
        stop_signal: cfg.stop_signal,
        stop_timeout: cfg.stop_timeout,
        stop_delay: cfg.stop_delay,
        reload_signal: cfg.reload_signal,
        restart: cfg.restart,
        max_restarts: cfg.max_restarts,
        validate: cfg.validate.is_some(),
        signal_to: cfg.signal_to,
        map_signal: cfg.map_signal.clone(),
        interactive: take_tty,
        promote: promoter.is_some(),
        reload_external: cfg.reload_command.is_some() || cfg.reload_url.is_some(),
        last_good: promoter.as_ref().is_some_and(Promoter::has_generation),
    };
    let initial = if settings.validate {
        watch.snapshot()
    } else {
        Default::default()
    };
    let (mut machine, first) = Machine::new(settings, initial);
    let mut edge = Edge {
        timers: Timers::new(cfg.debounce, cfg.debounce_max).rate(
            cfg.splay,
            cfg.min_interval,
            // Replicas start together: their pids and clocks' nanoseconds differ.
            u64::from(std::process::id()).rotate_left(32)
                ^ std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| u64::from(d.subsec_nanos())),
        ),
        cfg,
        cwd,
        watch,
        child: None,
        promoter,
        take_tty,
        check: None,
        reload: None,
        metrics,
        group: None,
        draining: false,
    };
    let mut actions: VecDeque<Action> = first.into();
    let mut notify_events = None;
    let me = std::process::id() as i32;

    loop {
        if let Some(code) = perform_all(&mut actions, &mut edge, &mut machine) {
            return code;
        }
        // The watcher (a thread, inotify) starts once the child is on its
        // way, off the child's start-up path. A change between the spawn's
        // fingerprint and the watch being up is caught by one check at once.
        let notify_events = notify_events.get_or_insert_with(|| {
            let rx = edge.watch.start(edge.cfg.poll_only);
            if edge.watch.is_active() {
                edge.timers.settle_now(Instant::now());
            }
            rx
        });
        if let Some(m) = &edge.metrics {
            m.borrow_mut()
                .update(machine.stats(), edge.child.is_some(), || {
                    fingerprint::short(machine.base())
                });
        }
        if edge.draining && edge.group_gone() {
            actions.extend(machine.handle(Event::GroupGone));
            continue;
        }

        let wake = {
            let timer = match edge.next_deadline() {
                Some(at) => async_io::Timer::at(at),
                None => async_io::Timer::never(),
            };
            let status = async {
                match edge.child.as_mut() {
                    Some(c) => c.process.status().await,
                    None => futures::future::pending().await,
                }
            };
            let checked = async {
                match edge.check.as_mut() {
                    Some((_, check)) => check.passed.as_mut().await,
                    None => futures::future::pending().await,
                }
            };
            let reloaded = async {
                match edge.reload.as_mut() {
                    Some((_, task)) => task.passed.as_mut().await,
                    None => futures::future::pending().await,
                }
            };
            let notified = async {
                match notify_events.recv().await {
                    Ok(_) => (),
                    // No watcher (nothing to watch, or polling only).
                    Err(_) => futures::future::pending().await,
                }
            };
            select! {
                st = status.fuse() => Wake::Child(st),
                caught = intake.next().fuse() => Wake::Signal(caught),
                () = notified.fuse() => Wake::Notify,
                ok = checked.fuse() => Wake::Validated(ok),
                ok = reloaded.fuse() => Wake::Reloaded(ok),
                _ = FutureExt::fuse(timer) => Wake::Timer,
            }
        };

        match wake {
            Wake::Child(result) => actions.extend(machine.handle(edge.child_exited(result))),
            Wake::Signal(Err(e)) => error!("Cannot read signals: {e}"),
            // Raised by our own I/O (a write to a closed stderr, a terminal
            // with `tostop`): not for the child, and not logged either (a
            // log line to a broken pipe would raise the next one).
            Wake::Signal(Ok(c)) if c.is_own(me) => {}
            Wake::Signal(Ok(c)) if c.sig == libc::SIGCHLD => {
                reaper::sweep(|pid| edge.owns(pid));
            }
            Wake::Signal(Ok(c)) => {
                let name = signals::name(c.sig);
                debug!(signal = name.as_str(), sender = c.pid; "Received {name} from pid {}", c.pid);
                let event = if Some(c.sig) == edge.cfg.restart_signal {
                    Event::RestartRequested(edge.watch.snapshot())
                } else {
                    Event::Signal(c.sig)
                };
                actions.extend(machine.handle(event));
            }
            Wake::Notify => {
                // Only events about a config get here (the watcher's own
                // thread drops the rest). Take the whole burst at once: a
                // ConfigMap swap is five events.
                while notify_events.try_recv().is_ok() {}
                edge.timers.changed(Instant::now());
            }
            Wake::Validated(ok) => {
                if let Some((token, _)) = edge.check.take() {
                    // Orphans of the check may be queued behind its zombie.
                    reaper::sweep(|pid| edge.owns(pid));
                    // The candidate stays only if it passed.
                    if let Some(p) = edge.promoter.as_mut() {
                        if ok { p.commit() } else { p.rollback() }
                    }
                    actions.extend(machine.handle(Event::Validated { token, ok }));
                }
            }
            Wake::Reloaded(ok) => {
                if let Some((token, _)) = edge.reload.take() {
                    reaper::sweep(|pid| edge.owns(pid));
                    actions.extend(machine.handle(Event::Reloaded { token, ok }));
                }
            }
            Wake::Timer => {
                for event in edge.timers_due() {
                    let settled = matches!(event, Event::ConfigSettled(_));
                    let decided = machine.handle(event);
                    // --min-interval counts from a change that was acted on.
                    if settled && decided.iter().any(|a| *a != Action::CancelValidation) {
                        edge.timers.acted(Instant::now());
                    }
                    actions.extend(decided);
                }
            }
        }
    }
}

/// Performs what the machine decided (some actions answer at once);
/// Some(code) when it decided to exit.
fn perform_all(
    actions: &mut VecDeque<Action>,
    edge: &mut Edge,
    machine: &mut Machine,
) -> Option<i32> {
    while let Some(action) = actions.pop_front() {
        if let Action::Exit(code) = action {
            return Some(edge.exit_code(code));
        }
        if let Some(event) = edge.perform(action) {
            actions.extend(machine.handle(event));
        }
    }
    None
}

impl Edge {
    /// Pids whose status async-process collects: the sweep leaves them.
    fn owns(&self, pid: i32) -> bool {
        self.child.as_ref().is_some_and(|c| c.pid == pid)
            || self.check.as_ref().is_some_and(|(_, c)| c.pid == pid)
            || self.reload.as_ref().is_some_and(|(_, c)| c.pid == pid)
    }

    fn exit_code(&self, code: i32) -> i32 {
        let code = self
            .cfg
            .remap_exit
            .iter()
            .find(|(from, _)| *from == code)
            .map_or(code, |(_, to)| *to);
        // Reap what already exited (nothing we own matters any more), then
        // report what is still running.
        reaper::sweep(|_| false);
        let left = reaper::leftovers();
        if !left.is_empty() {
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
        info!("Exiting with code {code}");
        code
    }

    fn next_deadline(&mut self) -> Option<Instant> {
        let now = Instant::now();
        // Polling may start late: when inotify fails after startup.
        self.timers.poll_every(now, self.watch.poll_interval());
        self.timers
            .probe_every(self.draining.then_some(GROUP_PROBE));
        self.timers.next(now)
    }

    fn perform(&mut self, action: Action) -> Option<Event> {
        match action {
            Action::Spawn => {
                self.timers.cancel_backoff();
                if self.draining {
                    // Leftovers survived SIGKILL: stop watching that group.
                    self.draining = false;
                    self.group = None;
                }
                // The bytes this child starts with: fingerprinted before the
                // exec, so a change after this point is seen as a change.
                // With --validate the machine already has them (the gate's
                // `Fingerprint` just before): no second read of every file.
                // With --promote-to the child reads what was promoted (just
                // before, by `Promote`), whatever the source holds by now.
                let snapshot = match (&self.promoter, self.cfg.validate.is_some()) {
                    (_, true) => Default::default(),
                    (Some(p), false) => p.promoted().clone(),
                    (None, false) => self.watch.snapshot(),
                };
                match child::spawn(&self.cfg.command, self.cwd.as_deref(), self.take_tty) {
                    Ok(c) => {
                        self.group = Some(c.pid);
                        self.child = Some(c);
                        Some(Event::Spawned(snapshot))
                    }
                    Err(code) => Some(Event::SpawnFailed(code)),
                }
            }
            Action::Fingerprint => Some(Event::Candidate(self.watch.snapshot())),
            Action::Signal(sig, to) => self.signal(sig, to),
            Action::Reload(sig, to) => {
                let pid = self.child.as_ref()?.pid;
                // Signalling a child that has no handler (yet) kills it.
                if signals::catches(pid, sig) == Some(false) {
                    return Some(Event::ReloadUnhandled(sig));
                }
                self.signal(sig, to)
            }
            Action::KillGroup => self.signal(libc::SIGKILL, Target::Group),
            Action::StopDeadline(after) => {
                self.timers.stop_in(Instant::now(), after);
                None
            }
            Action::Backoff(delay) => {
                self.timers.backoff_in(Instant::now(), delay);
                None
            }
            Action::Promote => {
                if let Some(p) = self.promoter.as_mut() {
                    let now = self.watch.snapshot();
                    match p.stage(&now) {
                        Ok(_) => p.commit(),
                        Err(e) => error!(
                            "Cannot promote the config: {e}; the child keeps the last promoted one"
                        ),
                    }
                }
                None
            }
            Action::Validate { token, changed } => {
                let argv = self.cfg.validate.as_deref().unwrap_or_default();
                if argv.is_empty() {
                    return Some(Event::Validated { token, ok: false });
                }
                // With --promote-to the check judges the candidate where the
                // child will read it: staged into the directory.
                let changed = match self.promoter.as_mut() {
                    Some(p) => {
                        let now = self.watch.snapshot();
                        if let Err(e) = p.stage(&now) {
                            error!("Cannot stage the config for validation: {e}");
                            return Some(Event::Validated { token, ok: false });
                        }
                        changed.iter().map(|c| p.target_of(c)).collect()
                    }
                    None => changed,
                };
                let check = validate::start(
                    validate::Kind::Validator,
                    argv,
                    self.cwd.as_deref(),
                    &changed,
                    self.cfg.validate_timeout,
                );
                self.check = Some((token, check));
                None
            }
            Action::CancelValidation => {
                if let Some((_, check)) = self.check.take()
                    && check.pid > 0
                {
                    info!("Cancelling the running config validation");
                    child::signal_group(check.pid, libc::SIGKILL);
                }
                if let Some(p) = self.promoter.as_mut() {
                    p.rollback();
                }
                None
            }
            Action::RunReload { token, changed } => {
                let changed: Vec<PathBuf> = match &self.promoter {
                    Some(p) => changed.iter().map(|c| p.target_of(c)).collect(),
                    None => changed,
                };
                let timeout = self.cfg.reload_timeout;
                let task = match (&self.cfg.reload_command, &self.cfg.reload_url) {
                    (Some(argv), _) => validate::start(
                        validate::Kind::Reload,
                        argv,
                        self.cwd.as_deref(),
                        &changed,
                        timeout,
                    ),
                    (None, Some(url)) => {
                        let url = url.clone();
                        info!("Reloading: POST {url}");
                        validate::Check {
                            pid: 0,
                            passed: Box::pin(async move {
                                match http::post(&url, timeout).await {
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
                            }),
                        }
                    }
                    (None, None) => return Some(Event::Reloaded { token, ok: false }),
                };
                self.reload = Some((token, task));
                None
            }
            Action::RetryReload { token, after } => {
                self.timers.retry_in(Instant::now(), after, token);
                None
            }
            Action::CancelReload => {
                if let Some((_, task)) = self.reload.take()
                    && task.pid > 0
                {
                    info!("Cancelling the running reload command");
                    child::signal_group(task.pid, libc::SIGKILL);
                }
                self.timers.cancel_retry();
                None
            }
            Action::Exit(_) => None,
        }
    }

    /// Signals the running child, or the current (or exited child's)
    /// process group, if any.
    fn signal(&self, sig: i32, to: Target) -> Option<Event> {
        match (to, &self.child, self.group) {
            (Target::Child, Some(c), _) => {
                child::signal(c.pid, sig);
            }
            (Target::Group, _, Some(pgid)) => {
                child::signal_group(pgid, sig);
            }
            _ => debug!("No child to send {} to", signals::name(sig)),
        }
        None
    }

    fn child_exited(&mut self, result: std::io::Result<std::process::ExitStatus>) -> Event {
        let ran_for = self
            .child
            .as_ref()
            .map_or(Duration::ZERO, |c| c.started.elapsed());
        let pid = self.child.take().map_or(0, |c| c.pid);
        let status = match result {
            Ok(st) => child::status_of(st),
            Err(e) => {
                // Cannot happen while the sweep leaves our pids alone.
                error!("Lost the exit status of child {pid}: {e}");
                Status::Exited(1)
            }
        };
        debug!("Reaped child process {pid}");
        // Orphans queued behind our child's zombie got no SIGCHLD of their
        // own: the group probe (`group_gone`, next in the loop) sweeps them.
        self.draining = true;
        Event::ChildExited { status, ran_for }
    }

    /// After the sweep, is the exited child's group empty?
    fn group_gone(&mut self) -> bool {
        reaper::sweep(|p| self.owns(p));
        let gone = self.group.is_none_or(|pgid| !child::group_alive(pgid));
        if gone {
            self.draining = false;
            self.group = None;
        }
        gone
    }

    fn timers_due(&mut self) -> Vec<Event> {
        let now = Instant::now();
        let mut events = vec![];
        for due in self.timers.due(now) {
            match due {
                Due::Stop => events.push(Event::StopDeadline),
                Due::Backoff => events.push(Event::BackoffOver),
                Due::Poll => {
                    if self.watch.poll() && !self.timers.settling() {
                        self.timers.changed(now);
                    }
                }
                Due::Retry(token) => events.push(Event::ReloadRetryDue { token }),
                Due::Settle => {
                    // The watches may need to move (a directory appeared or
                    // was replaced) before the decisive look.
                    self.watch.reconcile();
                    events.push(Event::ConfigSettled(self.watch.snapshot()));
                }
            }
        }
        events
    }
}
