//! What a watched directory may hold without freezing or misleading the
//! manager: links out of it (to `/`), link cycles, FIFOs, sockets, devices,
//! links onto `/proc`. The child still starts, SIGTERM is still answered,
//! the offending path is named once, and real config in the same directory
//! is still watched.
// These tests drive Linux itself (PID namespaces, /proc, mknod, inotify).
#![cfg(target_os = "linux")]

mod common;

use common::*;
use nix::libc;
use std::fs;
use std::os::unix::fs::{OpenOptionsExt, symlink};
use std::path::Path;
use std::time::Duration;

/// Time for several polling ticks (every 200 ms below) to have looked at
/// the directory again: a WARN that repeats per look would show by then.
const SEVERAL_LOOKS: Duration = Duration::from_millis(1500);

/// A manager as PID 1 watching `configs` (polling every 200 ms beside
/// inotify, so the directory is looked at over and over), running the
/// recorder child on `conf`; returns once the first child runs.
fn watching(s: &Scratch, configs: &[&Path], conf: &Path) -> Manager {
    let script = recorder(conf, &s.path("starts"), "exit 0");
    let mut args: Vec<&str> = vec![];
    for c in configs {
        args.extend(["--config", c.to_str().unwrap()]);
    }
    args.extend([
        "--debounce",
        "100ms",
        "--poll-interval",
        "200ms",
        "--",
        "/bin/sh",
        "-c",
        &script,
    ]);
    let m = Manager::start(&args);
    assert!(
        wait_for(LONG, || recorded_starts(s).len() == 1),
        "the child never started\n{}",
        m.log()
    );
    assert!(m.wait_log("Watching directory"), "{}", m.log());
    m
}

/// Stops the manager with SIGTERM and expects it gone, with the child's
/// code, well within a generous bound.
fn stops_on_sigterm(mut m: Manager) {
    m.signal(libc::SIGTERM);
    assert_eq!(
        m.wait_code(Duration::from_secs(20)),
        Some(0),
        "SIGTERM unanswered\n{}",
        m.log()
    );
}

/// Waits for a WARN that names `path` with `why`, then checks, after
/// several more looks, that it was said once.
fn warned_once(m: &Manager, path: &Path, why: &str) {
    let line = format!("{}: {why}", path.display());
    assert!(m.wait_log(&line), "no WARN `{line}`\n{}", m.log());
    std::thread::sleep(SEVERAL_LOOKS);
    assert_eq!(m.count(&line), 1, "said more than once\n{}", m.log());
}

/// Edits `conf` and waits for the restart that must follow.
fn still_restarts_on(s: &Scratch, m: &Manager, conf: &Path, bytes: &str, n: usize) {
    write_in_place(conf, bytes.as_bytes());
    assert!(
        wait_for(LONG, || recorded_starts(s).len() >= n),
        "no restart after {} changed\n{}",
        conf.display(),
        m.log()
    );
    let last = recorded_starts(s).pop().unwrap_or_default();
    assert!(last.ends_with(bytes), "{last}\n{}", m.log());
}

#[test]
fn a_symlink_to_the_root_in_a_watched_directory_is_not_walked() {
    if pid1_or_skip("a_symlink_to_the_root").is_none() {
        return;
    }
    // Before: the manager walked and hashed the whole filesystem
    // (/proc/<pid>/pagemap included) and never started the child.
    let s = Scratch::new("root-link");
    let dir = s.path("conf");
    fs::create_dir(&dir).unwrap();
    let conf = dir.join("app.conf");
    fs::write(&conf, "v1").unwrap();
    symlink("/", dir.join("root")).unwrap();
    // A file link out of the directory (`conf.d/x.conf ->
    // /etc/shared/x.conf`) is followed: a file is one read.
    let shared = s.path("shared.conf");
    fs::write(&shared, "s1").unwrap();
    symlink(&shared, dir.join("shared.conf")).unwrap();
    let m = watching(&s, &[&dir], &conf);
    warned_once(&m, &dir.join("root"), "leads outside the config directory");
    still_restarts_on(&s, &m, &conf, "v2", 2);
    // Its directory has no inotify watch: polling sees it.
    write_in_place(&shared, b"s2");
    assert!(
        wait_for(LONG, || recorded_starts(&s).len() >= 3),
        "a change of the linked file outside went unseen\n{}",
        m.log()
    );
    stops_on_sigterm(m);
}

#[test]
fn symlink_cycles_are_named_once_and_not_walked() {
    if pid1_or_skip("symlink_cycles").is_none() {
        return;
    }
    let s = Scratch::new("cycles");
    let dir = s.path("conf");
    fs::create_dir_all(dir.join("sub")).unwrap();
    let conf = dir.join("app.conf");
    fs::write(&conf, "v1").unwrap();
    let nested = dir.join("sub/site.conf");
    fs::write(&nested, "n1").unwrap();
    symlink(".", dir.join("self")).unwrap();
    symlink("..", dir.join("sub/back")).unwrap();
    symlink("b", dir.join("a")).unwrap();
    symlink("a", dir.join("b")).unwrap();
    let m = watching(&s, &[&dir], &conf);
    for link in ["self", "sub/back"] {
        warned_once(&m, &dir.join(link), "leads back to a directory it is in");
    }
    for link in ["a", "b"] {
        warned_once(&m, &dir.join(link), "is a symlink loop");
    }
    still_restarts_on(&s, &m, &conf, "v2", 2);
    // Below a real subdirectory, files are watched as before.
    write_in_place(&nested, b"n2");
    assert!(
        wait_for(LONG, || recorded_starts(&s).len() >= 3),
        "{}",
        m.log()
    );
    stops_on_sigterm(m);
}

/// IN_OPEN on each of `paths`, read from the returned inotify descriptor
/// by `opens`: a FIFO or device opened by anyone shows there.
fn watch_opens(paths: &[&Path]) -> i32 {
    // SAFETY: plain system calls on a descriptor this test owns.
    unsafe {
        let fd = libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC);
        assert!(fd >= 0, "inotify_init1");
        for p in paths {
            let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
            assert!(libc::inotify_add_watch(fd, c.as_ptr(), libc::IN_OPEN) >= 0);
        }
        fd
    }
}

/// How many IN_OPEN events are queued on `fd`.
fn opens(fd: i32) -> usize {
    let mut buf = [0u8; 4096];
    let mut n = 0;
    loop {
        // SAFETY: reads into a buffer of the given size.
        let got = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if got <= 0 {
            return n;
        }
        // Each event: a struct inotify_event and its name (none here: the
        // watches are on the files themselves).
        let mut at = 0;
        while at < got as usize {
            let len = u32::from_ne_bytes(buf[at + 12..at + 16].try_into().unwrap());
            n += 1;
            at += 16 + len as usize;
        }
    }
}

#[test]
fn fifos_sockets_and_devices_are_never_opened() {
    if pid1_or_skip("fifos_sockets_and_devices").is_none() {
        return;
    }
    // SAFETY: geteuid(2) cannot fail.
    if unsafe { libc::geteuid() } != 0 && cannot_run("mknod of a device node needs root") {
        return;
    }
    use nix::sys::stat::{Mode, SFlag, makedev, mknod};
    let s = Scratch::new("special");
    let dir = s.path("conf");
    fs::create_dir(&dir).unwrap();
    let conf = dir.join("app.conf");
    fs::write(&conf, "v1").unwrap();
    // In the watched directory, and given as config files themselves.
    let direct = s.path("direct");
    fs::create_dir(&direct).unwrap();
    let mut nodes = vec![];
    for d in [&dir, &direct] {
        let (fifo, dev) = (d.join("fifo.conf"), d.join("null-dev.conf"));
        nix::unistd::mkfifo(&fifo, Mode::S_IRWXU).unwrap();
        mknod(&dev, SFlag::S_IFCHR, Mode::S_IRWXU, makedev(1, 3)).unwrap();
        symlink("/dev/null", d.join("null-link.conf")).unwrap();
        nodes.extend([fifo, dev]);
    }
    // The sockets stay bound while the manager looks.
    let _sockets = [
        std::os::unix::net::UnixListener::bind(dir.join("socket.conf")).unwrap(),
        std::os::unix::net::UnixListener::bind(direct.join("socket.conf")).unwrap(),
    ];
    let node_refs: Vec<&Path> = nodes.iter().map(|p| p.as_path()).collect();
    let fd = watch_opens(&node_refs);
    let direct_configs = [
        "fifo.conf",
        "null-dev.conf",
        "null-link.conf",
        "socket.conf",
    ]
    .map(|n| direct.join(n));
    let mut configs: Vec<&Path> = vec![&dir];
    configs.extend(direct_configs.iter().map(|p| p.as_path()));
    let m = watching(&s, &configs, &conf);
    for c in &direct_configs {
        let line = format!("Config file {} is not a regular file", c.display());
        assert!(m.wait_log(&line), "no `{line}`\n{}", m.log());
    }
    // In the directory: skipped, but said (once each, not at every look).
    for name in [
        "fifo.conf",
        "null-dev.conf",
        "null-link.conf",
        "socket.conf",
    ] {
        let line = format!("{}: is a FIFO, socket or device", dir.join(name).display());
        assert!(m.wait_log(&line), "no `{line}`\n{}", m.log());
    }
    std::thread::sleep(SEVERAL_LOOKS);
    assert!(!m.log().contains("Cannot read config file"), "{}", m.log());
    still_restarts_on(&s, &m, &conf, "v2", 2);
    assert_eq!(
        m.count(&format!("{}: is a FIFO", dir.join("fifo.conf").display())),
        1,
        "{}",
        m.log()
    );
    let opened = opens(fd);
    // The check itself works: an open of one of them does show.
    drop(
        fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&nodes[0])
            .unwrap(),
    );
    let calibration = opens(fd);
    // SAFETY: closing the descriptor watch_opens returned.
    unsafe { libc::close(fd) };
    assert_eq!(opened, 0, "a FIFO or device was opened\n{}", m.log());
    assert_eq!(calibration, 1, "inotify did not see the test's own open");
    stops_on_sigterm(m);
}

#[test]
fn a_symlink_to_a_proc_file_is_never_read() {
    if pid1_or_skip("a_symlink_to_a_proc_file").is_none() {
        return;
    }
    // Before: /proc/<pid>/pagemap is a "regular file" hundreds of GB long,
    // read to its end at every look; the child never started.
    let s = Scratch::new("proc-link");
    let dir = s.path("conf");
    fs::create_dir(&dir).unwrap();
    let conf = dir.join("app.conf");
    fs::write(&conf, "v1").unwrap();
    symlink("/proc/self/pagemap", dir.join("pagemap.conf")).unwrap();
    let direct = s.path("pagemap.conf");
    symlink("/proc/self/pagemap", &direct).unwrap();
    let m = watching(&s, &[&dir, &direct], &conf);
    warned_once(
        &m,
        &dir.join("pagemap.conf"),
        "leads to a kernel pseudo-file",
    );
    let line = format!("Config file {} is not a regular file", direct.display());
    assert!(m.wait_log(&line), "{}", m.log());
    assert_eq!(m.count(&line), 1, "{}", m.log());
    still_restarts_on(&s, &m, &conf, "v2", 2);
    stops_on_sigterm(m);
}
