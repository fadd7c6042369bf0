//! Helpers for running the real binary, as PID 1 of a fresh PID namespace
//! or as a plain process, with real children, files and signals.
//! Deadlines are generous (a loaded 2-core machine); nothing sleeps where
//! polling for a marker works.
#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub mod kubelet;
pub mod probation;
pub mod promotion;

pub const BIN: &str = env!("CARGO_BIN_EXE_flush-manager");
pub const LONG: Duration = Duration::from_secs(30);

/// Polls `cond` every 10 ms until it holds or `limit` passes.
pub fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A scratch directory, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "fm-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create scratch dir");
        Scratch(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    pub fn read(&self, name: &str) -> String {
        fs::read_to_string(self.path(name)).unwrap_or_default()
    }

    /// Waits until file `name` exists and contains `needle`.
    pub fn wait_contains(&self, name: &str, needle: &str) -> bool {
        wait_for(LONG, || self.read(name).contains(needle))
    }

    pub fn lines(&self, name: &str) -> Vec<String> {
        self.read(name).lines().map(String::from).collect()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// How this machine lets us make a PID namespace: as root, or as a user
/// through a user namespace, or not at all.
pub fn unshare_prefix() -> Option<&'static [&'static str]> {
    static MODE: OnceLock<Option<&'static [&'static str]>> = OnceLock::new();
    *MODE.get_or_init(|| {
        const ROOT: &[&str] = &["unshare", "--pid", "--fork", "--mount-proc"];
        const USER: &[&str] = &[
            "unshare",
            "--user",
            "--map-root-user",
            "--pid",
            "--fork",
            "--mount-proc",
        ];
        [ROOT, USER].into_iter().find(|p| {
            Command::new(p[0])
                .args(&p[1..])
                .arg("true")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
    })
}

/// Where no PID namespace can be made, the calling test fails, or skips
/// (returns None) if FLUSH_MANAGER_TEST_ALLOW_SKIP=1 allows it.
pub fn pid1_or_skip(test: &str) -> Option<()> {
    if unshare_prefix().is_none() {
        cannot_run(&format!(
            "{test}: cannot create a PID namespace here (unshare --pid refused, also with --user)"
        ));
        return None;
    }
    Some(())
}

/// Where the manager runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    /// PID 1 of a fresh PID namespace.
    Pid1,
    /// A plain process (a child subreaper).
    Plain,
}

pub struct Manager {
    proc: Child,
    /// Inherited by every process this manager starts (`Drop` finds them by
    /// it, even after the manager died).
    marker: String,
    pub mode: Mode,
    pub log_path: PathBuf,
    _logdir: Scratch,
    status: Option<ExitStatus>,
}

pub struct Opts<'a> {
    pub mode: Mode,
    pub cwd: Option<&'a Path>,
    pub env: Vec<(&'a str, &'a str)>,
    pub stdin: Option<Stdio>,
    /// Runs in the forked process before exec (to set the signal state the
    /// manager starts with).
    pub pre_exec: Option<fn() -> std::io::Result<()>>,
    /// The whole argv before the manager's own arguments, instead of the
    /// default (`unshare … BIN` or `BIN`); the manager is its first child
    /// in `Mode::Pid1`.
    pub launcher: Option<Vec<String>>,
    /// The manager's stderr is a pipe the test reads (`take_stderr`)
    /// instead of the log file.
    pub stderr_pipe: bool,
    /// `ulimit -n` for the manager.
    pub nofile: Option<u64>,
    /// The directory the log file is written to (else a scratch one).
    pub log_in: Option<&'a Path>,
}

impl Default for Opts<'_> {
    fn default() -> Self {
        Opts {
            mode: Mode::Pid1,
            cwd: None,
            env: vec![],
            stdin: None,
            pre_exec: None,
            launcher: None,
            stderr_pipe: false,
            nofile: None,
            log_in: None,
        }
    }
}

impl Opts<'_> {
    /// The default options but for the mode: a plain process.
    pub fn plain() -> Self {
        Opts {
            mode: Mode::Plain,
            ..Opts::default()
        }
    }
}

impl Manager {
    pub fn start(args: &[&str]) -> Manager {
        Manager::start_with(args, Opts::default())
    }

    pub fn plain(args: &[&str]) -> Manager {
        Manager::start_with(args, Opts::plain())
    }

    pub fn start_with(args: &[&str], opts: Opts) -> Manager {
        let logdir = Scratch::new("log");
        let log_path = opts.log_in.unwrap_or(&logdir.0).join("manager.log");
        let log = fs::File::create(&log_path).expect("log file");
        let mut cmd = match (opts.mode, &opts.launcher) {
            (_, Some(argv)) => {
                let mut c = Command::new(&argv[0]);
                c.args(&argv[1..]);
                c
            }
            (Mode::Pid1, None) => {
                let p = unshare_prefix().expect("caller checks pid1_or_skip");
                let mut c = Command::new(p[0]);
                c.args(&p[1..]).arg(BIN);
                c
            }
            (Mode::Plain, None) => Command::new(BIN),
        };
        cmd.args(args)
            .env("FLUSH_MANAGER_LOG", "debug")
            .stdout(log.try_clone().expect("dup log"))
            .stderr(if opts.stderr_pipe {
                Stdio::piped()
            } else {
                log.into()
            })
            .stdin(opts.stdin.unwrap_or(Stdio::null()));
        if let Some(n) = opts.nofile {
            // SAFETY: setrlimit is async-signal-safe.
            unsafe {
                cmd.pre_exec(move || {
                    let lim = nix::libc::rlimit {
                        rlim_cur: n,
                        rlim_max: n,
                    };
                    if nix::libc::setrlimit(nix::libc::RLIMIT_NOFILE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                })
            };
        }
        for (k, v) in opts.env {
            cmd.env(k, v);
        }
        if let Some(dir) = opts.cwd {
            cmd.current_dir(dir);
        }
        if let Some(f) = opts.pre_exec {
            // SAFETY: the test's hook only calls async-signal-safe functions.
            unsafe { cmd.pre_exec(f) };
        }
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let marker = format!(
            "{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        cmd.env(MARKER, &marker);
        let proc = cmd.spawn().expect("spawn manager");
        Manager {
            proc,
            marker,
            mode: opts.mode,
            log_path,
            _logdir: logdir,
            status: None,
        }
    }

    /// The manager's pid as seen from here (the host namespace).
    pub fn pid(&self) -> i32 {
        let outer = self.proc.id() as i32;
        if self.mode == Mode::Plain {
            return outer;
        }
        let mut pid = 0;
        wait_for(LONG, || {
            pid = fs::read_to_string(format!("/proc/{outer}/task/{outer}/children"))
                .ok()
                .and_then(|s| s.split_whitespace().next().and_then(|p| p.parse().ok()))
                .unwrap_or(0);
            pid != 0
        });
        assert!(pid != 0, "no manager process under unshare {outer}");
        pid
    }

    /// The managed child's pid as seen from here, once it runs.
    pub fn child_pid(&self) -> i32 {
        let manager = self.pid();
        let mut pid = 0;
        wait_for(LONG, || {
            pid = children_of(manager).first().copied().unwrap_or(0);
            pid != 0
        });
        assert!(pid != 0, "the manager has no child");
        pid
    }

    /// The read end of the manager's stderr (`Opts::stderr_pipe`).
    pub fn take_stderr(&mut self) -> std::process::ChildStderr {
        self.proc.stderr.take().expect("Opts::stderr_pipe")
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Fails, saying `what` and showing the log, unless the log holds
    /// `needle` now.
    pub fn assert_logged(&self, needle: &str, what: &str) {
        let log = self.log();
        assert!(
            log.contains(needle),
            "{what}: no {needle:?} in the log:\n{log}"
        );
    }

    pub fn wait_log(&self, needle: &str) -> bool {
        wait_for(LONG, || self.log().contains(needle))
    }

    /// Waits until the log holds `needle` `n` times.
    pub fn wait_log_count(&self, needle: &str, n: usize) -> bool {
        wait_for(LONG, || self.log().matches(needle).count() >= n)
    }

    pub fn count(&self, needle: &str) -> usize {
        self.log().matches(needle).count()
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on a pid we started.
        let r = unsafe { nix::libc::kill(self.pid(), sig) };
        assert_eq!(r, 0, "kill({}, {sig})", self.pid());
    }

    pub fn alive(&mut self) -> bool {
        self.status.is_none() && matches!(self.proc.try_wait(), Ok(None))
    }

    /// The manager's exit code (128+N if killed by N), within `limit`.
    pub fn wait_code(&mut self, limit: Duration) -> Option<i32> {
        let mut status = self.status;
        wait_for(limit, || {
            status = status.or_else(|| self.proc.try_wait().ok().flatten());
            status.is_some()
        });
        self.status = status;
        use std::os::unix::process::ExitStatusExt;
        status.map(|s| s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)))
    }

    /// Waits for the exit code and prints the log if the test is about to fail.
    pub fn exit_code(&mut self) -> i32 {
        match self.wait_code(LONG) {
            Some(c) => c,
            None => panic!("manager did not exit; log:\n{}", self.log()),
        }
    }
}

/// The pids `pid` has as children.
pub fn children_of(pid: i32) -> Vec<i32> {
    fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .map(|s| {
            s.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The environment variable that marks the processes of one `Manager`.
const MARKER: &str = "FLUSH_MANAGER_TEST_OWNER";

/// Live processes whose environment holds `MARKER=marker`, and their groups.
fn marked(marker: &str) -> Vec<(i32, i32)> {
    let needle = format!("{MARKER}={marker}");
    live_pids_where(|p| {
        fs::read(format!("/proc/{p}/environ"))
            .is_ok_and(|env| env.split(|b| *b == 0).any(|v| v == needle.as_bytes()))
    })
    .into_iter()
    .map(|p| {
        let pgid = nix::unistd::getpgid(Some(nix::unistd::Pid::from_raw(p)));
        (p, pgid.map_or(0, |g| g.as_raw()))
    })
    .collect()
}

/// Live (non-zombie) processes for which `keep` holds.
fn live_pids_where(keep: impl Fn(i32) -> bool) -> Vec<i32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return vec![];
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .filter(|p| keep(*p) && alive(*p))
        .collect()
}

impl Drop for Manager {
    fn drop(&mut self) {
        if self.status.is_none() && matches!(self.proc.try_wait(), Ok(None)) {
            // Killing PID 1 of the namespace kills everything in it; a plain
            // manager's child would outlive it, so its group goes first.
            let outer = self.proc.id() as i32;
            let manager = match self.mode {
                Mode::Pid1 => children_of(outer).first().copied().unwrap_or(outer),
                Mode::Plain => outer,
            };
            for child in children_of(manager) {
                // SAFETY: kill(2) on processes this test started.
                unsafe {
                    nix::libc::kill(-child, nix::libc::SIGKILL);
                    nix::libc::kill(child, nix::libc::SIGKILL);
                }
            }
            // SAFETY: kill(2) on the manager this test started.
            unsafe { nix::libc::kill(manager, nix::libc::SIGKILL) };
            let _ = self.proc.kill();
            let _ = self.proc.wait();
        }
        // Whatever it started and left behind, even if it died first (a
        // daemon it lost, workers of a server it was killed under): every
        // marked process and its group. Groups of processes that cleared
        // their environment (nginx and php-fpm workers) go with their master.
        // A process in the middle of execve(2) shows an empty environment
        // for a moment (2.7% of reads of a shell being fork-exec'd, measured
        // here), so one empty scan proves nothing: the scan must come back
        // empty several times in a row.
        let me = nix::unistd::getpgrp().as_raw();
        let mut empty_scans = 0;
        let cleaned = wait_for(Duration::from_secs(10), || {
            let left = marked(&self.marker);
            for &(pid, pgid) in &left {
                // SAFETY: kill(2) on processes this manager started; never
                // the test's own group.
                unsafe {
                    if pgid > 1 && pgid != me {
                        nix::libc::kill(-pgid, nix::libc::SIGKILL);
                    }
                    nix::libc::kill(pid, nix::libc::SIGKILL);
                }
            }
            empty_scans = if left.is_empty() { empty_scans + 1 } else { 0 };
            empty_scans >= 5
        });
        if std::thread::panicking() {
            eprintln!("---- manager log ----\n{}", self.log());
        } else if !cleaned {
            // A test never passes while what it started lives on.
            panic!(
                "processes this manager started survive SIGKILL: {:?}\n---- manager log ----\n{}",
                marked(&self.marker),
                self.log()
            );
        }
    }
}

/// Children (pids) of `pid` in state Z, read from /proc.
pub fn zombies_of(pid: i32) -> Vec<i32> {
    let mut out = vec![];
    let Ok(dir) = fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // Fields after the ")" of comm: state ppid ...
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        let mut f = rest.split_whitespace();
        let (state, ppid) = (f.next(), f.next().and_then(|s| s.parse::<i32>().ok()));
        if state == Some("Z") && ppid == Some(pid) {
            out.push(p);
        }
    }
    out
}

/// A `sh -c` child that reports the signals it gets: a trap per signal
/// appends a line to one file, so a test reads what reached the child, in
/// order. Commands given to `first` run before any trap is set; the `ready`
/// line is appended once all are set (a test that signals before it would
/// kill the child). It then waits in `sleep & wait`, which a trapped signal
/// interrupts at once (a plain `sleep` would hold the trap until it ends).
///
/// ```ignore
/// TrapChild::new(&out).record(&["HUP", "USR1"]).on_term("exit 0").ready("ready").script()
/// ```
pub struct TrapChild {
    file: String,
    first: Vec<String>,
    /// Per signal, in the order first named: what its trap runs.
    traps: Vec<(String, Vec<String>)>,
    ready: Option<String>,
    each_turn: Option<String>,
    tick: &'static str,
}

impl TrapChild {
    /// A child reporting to `file`.
    pub fn new(file: &Path) -> TrapChild {
        TrapChild {
            file: file.display().to_string(),
            first: vec![],
            traps: vec![],
            ready: None,
            each_turn: None,
            tick: "0.05",
        }
    }

    /// Runs the shell command `cmd` before any trap is set.
    pub fn first(mut self, cmd: &str) -> TrapChild {
        self.first.push(cmd.to_string());
        self
    }

    /// Appends `line` (shell-expanded: `$$`, `$(cat …)`) to the file at
    /// start, before any trap is set.
    pub fn on_start(self, line: &str) -> TrapChild {
        let cmd = format!("echo \"{line}\" >> {}", self.file);
        self.first(&cmd)
    }

    /// Each of `sigs` (names as `trap` takes them) appends its name.
    pub fn record(self, sigs: &[&str]) -> TrapChild {
        sigs.iter().fold(self, |c, sig| c.record_as(sig, sig))
    }

    /// `sig` appends `line`, expanded when the signal comes.
    pub fn record_as(self, sig: &str, line: &str) -> TrapChild {
        let cmd = format!("echo \"{line}\" >> {}", self.file);
        self.on(sig, &cmd)
    }

    /// `sig` runs `cmd`, after what it records; `""` alone ignores `sig`.
    pub fn on(mut self, sig: &str, cmd: &str) -> TrapChild {
        match self.traps.iter_mut().find(|(s, _)| s == sig) {
            Some((_, cmds)) => cmds.push(cmd.to_string()),
            None => self.traps.push((sig.to_string(), vec![cmd.to_string()])),
        }
        self
    }

    /// SIGTERM runs `cmd` (`exit 0`; `""` ignores it).
    pub fn on_term(self, cmd: &str) -> TrapChild {
        self.on("TERM", cmd)
    }

    /// Appends `line` once every trap is set.
    pub fn ready(mut self, line: &str) -> TrapChild {
        self.ready = Some(line.to_string());
        self
    }

    /// Runs `cmd` at each turn of the waiting loop, every `tick` seconds
    /// (a child that re-reads its config on its own).
    pub fn each_turn(mut self, cmd: &str, tick: &'static str) -> TrapChild {
        self.each_turn = Some(cmd.to_string());
        self.tick = tick;
        self
    }

    /// The script, for `/bin/sh -c`.
    pub fn script(&self) -> String {
        let mut parts = self.first.clone();
        for (sig, cmds) in &self.traps {
            let body: Vec<&str> = cmds
                .iter()
                .map(String::as_str)
                .filter(|c| !c.is_empty())
                .collect();
            parts.push(format!("trap '{}' {sig}", body.join("; ")));
        }
        if let Some(line) = &self.ready {
            parts.push(format!("echo \"{line}\" >> {}", self.file));
        }
        let turn = self
            .each_turn
            .as_ref()
            .map(|c| format!("{c}; "))
            .unwrap_or_default();
        parts.push(format!(
            "while :; do {turn}sleep {} & wait $!; done",
            self.tick
        ));
        // A command put in the background (`… &`) is already terminated.
        parts
            .iter()
            .map(|p| match p.ends_with('&') {
                true => format!("{p} "),
                false => format!("{p}; "),
            })
            .collect::<String>()
            .trim_end_matches("; ")
            .to_string()
    }
}

/// The manager's arguments: `flags`, then `script` as the command, run by
/// `/bin/sh -c`.
pub fn sh_args<'a>(flags: &[&'a str], script: &'a str) -> Vec<&'a str> {
    let mut args = flags.to_vec();
    args.extend(["--", "/bin/sh", "-c", script]);
    args
}

/// `args` as the `&str`s `Manager` takes.
pub fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// A child that appends "start <pid> <first 40 bytes of conf>" to `starts`
/// at each start and "hup <pid>" on SIGHUP, runs `on_term` on SIGTERM
/// (`exit 0`; `` to ignore it), and otherwise waits.
pub fn recorder(conf: &Path, starts: &Path, on_term: &str) -> String {
    TrapChild::new(starts)
        .on_start(&format!(
            "start $$ $(head -c 40 {} 2>/dev/null | tr '\\n' ' ')",
            conf.display()
        ))
        .on_term(on_term)
        .record_as("HUP", "hup $$")
        .script()
}

/// The "start ..." lines `recorder` children wrote to `s`'s file "starts".
pub fn recorded_starts(s: &Scratch) -> Vec<String> {
    s.lines("starts")
        .into_iter()
        .filter(|l| l.starts_with("start"))
        .collect()
}

/// A process's resident memory, from /proc (0 if it is gone).
pub fn vm_rss_kib(pid: i32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// Is `pid` a live (non-zombie) process?
pub fn alive(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rfind(')').map(|i| s[i + 2..].starts_with('Z')))
        == Some(false)
}

/// Writes `bytes` to `path` in place (same inode).
pub fn write_in_place(path: &Path, bytes: &[u8]) {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .create(true)
        .open(path)
        .expect("open");
    f.write_all(bytes).expect("write");
}

/// Replaces `path` by rename, as editors and `sed -i` do (new inode).
pub fn replace_by_rename(path: &Path, bytes: &[u8], tmp_name: &str) {
    let tmp = path.with_file_name(tmp_name);
    fs::write(&tmp, bytes).expect("write tmp");
    fs::rename(&tmp, path).expect("rename");
}

/// Under qemu-user (the arm64 suite in CI sets FLUSH_MANAGER_TEST_QEMU=1)
/// a few things cannot hold, for the emulator's reasons, not ours: the
/// calling test skips itself with `reason`, printed as "SKIPPED under
/// qemu-user" (CI counts those lines). Never on a native run.
pub fn qemu_limit(reason: &str) -> bool {
    if !under_qemu() {
        return false;
    }
    eprintln!("SKIPPED under qemu-user: {reason}");
    true
}

/// Is this the arm64 suite under qemu-user? There, the manager's own
/// computing (hashing, say) runs ten to fifty times slower: a test that
/// loads it sizes its load to what the emulator finishes in time.
pub fn under_qemu() -> bool {
    std::env::var("FLUSH_MANAGER_TEST_QEMU").as_deref() == Ok("1")
}

/// Why plain-mode orphan tests cannot run under qemu-user.
pub const QEMU_NO_SUBREAPER: &str = "PR_SET_CHILD_SUBREAPER returns EINVAL under qemu-user: a plain manager cannot adopt orphans there";

/// The path of one of the project's test helpers (`tests/helpers/NAME`).
pub fn helper(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/helpers")
        .join(name)
        .display()
        .to_string()
}

/// Is `cmd` installed? A test that calls this is `#[ignore = "needs …"]`,
/// so it runs only when asked (`--include-ignored`, as CI does). Then, if
/// `cmd` is missing, the calling test fails with what to install,
/// unless FLUSH_MANAGER_TEST_ALLOW_SKIP=1 (never set by CI) lets it skip:
/// then this returns false and the test returns early.
pub fn require_tool(cmd: &str, package: &str) -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(cmd).is_file()));
    found
        || !cannot_run(&format!(
            "`{cmd}` is not installed (apt-get install {package})"
        ))
}

/// A test cannot run here, for `why`: it fails, unless
/// The start of a command line that runs the rest in a private mount
/// namespace (root's `unshare --mount`, else a user namespace's); None where
/// none can be made (said through `cannot_run`).
pub fn mount_namespace() -> Option<Vec<String>> {
    // SAFETY: geteuid(2) cannot fail.
    let root = unsafe { nix::libc::geteuid() } == 0;
    let launcher: Vec<String> = if root {
        vec!["unshare".into(), "--mount".into()]
    } else {
        ["unshare", "--user", "--map-root-user", "--mount"]
            .map(String::from)
            .to_vec()
    };
    let probe = Command::new(&launcher[0])
        .args(&launcher[1..])
        .arg("true")
        .status();
    if !probe.is_ok_and(|st| st.success()) {
        cannot_run("cannot make a mount namespace here (unshare --mount refused)");
        return None;
    }
    Some(launcher)
}

/// FLUSH_MANAGER_TEST_ALLOW_SKIP=1 (never set by CI) lets it skip, in which
/// case this prints why and returns true.
pub fn cannot_run(why: &str) -> bool {
    if std::env::var("FLUSH_MANAGER_TEST_ALLOW_SKIP").as_deref() == Ok("1") {
        eprintln!("SKIPPED: {why}");
        return true;
    }
    panic!("cannot run: {why} (set FLUSH_MANAGER_TEST_ALLOW_SKIP=1 to skip)");
}

/// Live processes whose command line contains `needle`.
pub fn processes_named(needle: &str) -> Vec<i32> {
    live_pids_where(|p| {
        fs::read(format!("/proc/{p}/cmdline"))
            .is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle))
    })
}

/// The parent of `pid` (0 if it is gone).
pub fn parent_of(pid: i32) -> i32 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rfind(')')
        .and_then(|i| stat[i + 2..].split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// PID 1 and plain where a PID namespace can be made, else plain only.
pub fn both_modes(test: &str) -> Vec<Mode> {
    match pid1_or_skip(test) {
        Some(()) => vec![Mode::Pid1, Mode::Plain],
        None => vec![Mode::Plain],
    }
}

/// The manager with `args`, in `mode`, otherwise with the default options.
pub fn run(mode: Mode, args: &[&str]) -> Manager {
    Manager::start_with(
        args,
        Opts {
            mode,
            ..Opts::default()
        },
    )
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    // The kernel may hand out a port again once its listener is closed: a
    // test that takes two (a server's and the metrics') could get one
    // twice. Never one this process handed out before.
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
        let port = l.local_addr().expect("local addr").port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}
