//! `--copy-to DIR` (issue 27): the binary installs itself into a shared
//! volume for a stock image. Atomic, 0755 whatever the umask, by a
//! non-root user, and never over something that is not a flush-manager
//! binary. (Its run from an empty root, and the copy as PID 1, are in
//! tests/static_image.rs.)
#![cfg(target_os = "linux")]

mod common;

use common::*;
use nix::libc;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;
use std::process::{Command, Output};

fn is_root() -> bool {
    // SAFETY: geteuid(2) cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// `flush-manager ARGS` under umask 077, as uid 65534 when the test runs as
/// root (else as the non-root user running it).
fn as_nobody(args: &[&str]) -> Output {
    let mut script = String::from("umask 077; exec");
    if is_root() {
        script.push_str(" setpriv --reuid=65534 --regid=65534 --clear-groups");
    }
    script.push_str(" \"$@\"");
    Command::new("sh")
        .args(["-c", &script, "sh", BIN])
        .args(args)
        .output()
        .unwrap()
}

fn copy_to(dir: &Path) -> Output {
    Command::new(BIN)
        .arg("--copy-to")
        .arg(dir)
        .output()
        .unwrap()
}

fn said(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The names in `dir`.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn it_replaces_a_flush_manager_binary_and_refuses_anything_else() {
    let s = Scratch::new("copy-refuse");
    let dest = s.path("flush-manager");

    // Nothing there yet: copied, byte for byte, 0755, and it runs.
    let out = copy_to(&s.0);
    assert!(out.status.success(), "{}", said(&out));
    assert!(fs::read(&dest).unwrap() == fs::read(BIN).unwrap());
    let before = fs::metadata(&dest).unwrap();
    assert_eq!(before.permissions().mode() & 0o7777, 0o755);
    let version = Command::new(&dest).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&version.stdout).contains("flush-manager version"));

    // A flush-manager binary there (an init container run again): replaced
    // by a rename (a new inode; a process running the old one is unharmed).
    let out = copy_to(&s.0);
    assert!(out.status.success(), "{}", said(&out));
    assert_ne!(fs::metadata(&dest).unwrap().ino(), before.ino());
    assert_eq!(names(&s.0), ["flush-manager"], "a temporary file was left");

    // Anything else at that name stays as it is: exit 1, saying why.
    let text = b"#!/bin/sh\n# flush-manager:copy-to:marker:1\nexec nginx\n".to_vec();
    let elf = fs::read("/bin/true").unwrap();
    for (what, bytes) in [("a script", &text), ("another program", &elf)] {
        fs::remove_file(&dest).unwrap();
        fs::write(&dest, bytes).unwrap();
        let out = copy_to(&s.0);
        assert_eq!(out.status.code(), Some(1), "{what}: {}", said(&out));
        assert!(
            said(&out).contains("is not a flush-manager binary; refusing"),
            "{what}: {}",
            said(&out)
        );
        assert!(fs::read(&dest).unwrap() == *bytes, "{what} was changed");
        assert_eq!(names(&s.0), ["flush-manager"], "{what}: a file was left");
    }
    fs::remove_file(&dest).unwrap();
    // A link, even to a flush-manager binary, and a directory.
    symlink(BIN, &dest).unwrap();
    let out = copy_to(&s.0);
    assert_eq!(out.status.code(), Some(1), "{}", said(&out));
    assert!(
        said(&out).contains("is not a regular file"),
        "{}",
        said(&out)
    );
    assert!(
        fs::symlink_metadata(&dest)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    fs::remove_file(&dest).unwrap();
    fs::create_dir(&dest).unwrap();
    let out = copy_to(&s.0);
    assert_eq!(out.status.code(), Some(1), "{}", said(&out));
    assert!(dest.is_dir());

    // No such directory, or a file: exit 1. A command or no directory: a
    // usage error.
    let out = copy_to(&s.path("missing"));
    assert_eq!(out.status.code(), Some(1), "{}", said(&out));
    assert!(said(&out).contains("missing"), "{}", said(&out));
    fs::write(s.path("file"), "x").unwrap();
    let out = copy_to(&s.path("file"));
    assert_eq!(out.status.code(), Some(1), "{}", said(&out));
    assert!(said(&out).contains("is not a directory"), "{}", said(&out));
    for args in [
        &["--copy-to", ""][..],
        &["--copy-to", "/tmp", "--", "nginx"],
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", said(&out));
    }
}

/// The restricted Pod Security Standard's init container: not root, a
/// umask that gives nothing away. The copy is still 0755, owned by the user;
/// a directory it may not write is an error that changes nothing.
#[test]
fn a_non_root_user_copies_it_with_mode_0755_whatever_the_umask() {
    if is_root() && !require_tool("setpriv", "util-linux") {
        return;
    }
    let s = Scratch::new("copy-nonroot");
    let vol = s.path("vol");
    fs::create_dir(&vol).unwrap();
    fs::set_permissions(&s.0, fs::Permissions::from_mode(0o755)).unwrap();
    if is_root() {
        std::os::unix::fs::chown(&vol, Some(65534), Some(65534)).unwrap();
    }
    let out = as_nobody(&["--copy-to", vol.to_str().unwrap()]);
    assert!(out.status.success(), "{}", said(&out));
    let meta = fs::metadata(vol.join("flush-manager")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o755);
    // SAFETY: getuid(2) cannot fail.
    let me = if is_root() {
        65534
    } else {
        unsafe { libc::getuid() }
    };
    assert_eq!(meta.uid(), me);
    assert!(fs::read(vol.join("flush-manager")).unwrap() == fs::read(BIN).unwrap());

    // A directory the user cannot write to.
    let locked = s.path("locked");
    fs::create_dir(&locked).unwrap();
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o555)).unwrap();
    let out = as_nobody(&["--copy-to", locked.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", said(&out));
    assert!(said(&out).contains("Permission denied"), "{}", said(&out));
    assert!(names(&locked).is_empty());
}
