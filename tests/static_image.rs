//! The fully static binary in an image with nothing else in it: an empty
//! root holding only the binary and a static busybox, entered as PID 1 of a
//! fresh PID namespace with chroot.
// These tests drive Linux itself (PID namespaces, /proc, signalfd).
#![cfg(target_os = "linux")]

mod common;

use common::*;
use nix::libc;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

/// target/static/flush-manager, built by docker/build-static.sh (which
/// .ci/run runs); built here if missing.
fn static_binary() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bin = root.join("target/static/flush-manager");
    if !bin.exists() {
        let ok = Command::new("sh")
            .arg(root.join("docker/build-static.sh"))
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            cannot_run("docker/build-static.sh failed to build the static binary");
            return None;
        }
    }
    Some(bin)
}

/// An empty root: /bin/busybox, /bin/sh, /usr/local/bin/manager, /proc.
fn image(s: &Scratch, bin: &Path) -> Option<PathBuf> {
    let busybox = Path::new("/bin/busybox");
    if !busybox.exists() {
        cannot_run("no static busybox (apt-get install busybox-static)");
        return None;
    }
    let root = s.path("root");
    for dir in ["bin", "usr/local/bin", "proc", "tmp"] {
        fs::create_dir_all(root.join(dir)).unwrap();
    }
    fs::copy(busybox, root.join("bin/busybox")).unwrap();
    symlink("busybox", root.join("bin/sh")).unwrap();
    fs::copy(bin, root.join("usr/local/bin/manager")).unwrap();
    Some(root)
}

fn in_image(root: &Path) -> Vec<String> {
    let proc_dir = root.join("proc");
    let mut argv: Vec<String> = ["unshare", "--pid", "--fork"].map(String::from).to_vec();
    if unshare_prefix().is_some_and(|p| p.contains(&"--user")) {
        argv.splice(1..1, ["--user", "--map-root-user"].map(String::from));
    }
    argv.push(format!("--mount-proc={}", proc_dir.display()));
    argv.extend([
        "chroot".into(),
        root.display().to_string(),
        "/usr/local/bin/manager".into(),
    ]);
    argv
}

/// Does this ELF64 file ask for a program interpreter (PT_INTERP)?
fn has_interpreter(elf: &[u8]) -> bool {
    assert_eq!(&elf[..4], b"\x7fELF", "not an ELF file");
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap()) as usize;
    let (size, count) = (u16_at(0x36), u16_at(0x38));
    (0..count).any(|i| {
        let at = phoff + i * size;
        u32::from_le_bytes(elf[at..at + 4].try_into().unwrap()) == 3
    })
}

#[test]
#[ignore = "needs busybox-static: apt-get install busybox-static"]
fn static_binary_runs_as_pid1_in_an_empty_root() {
    if pid1_or_skip("static_binary_runs_as_pid1_in_an_empty_root").is_none() {
        return;
    }
    let Some(bin) = static_binary() else { return };
    let bytes = fs::read(&bin).unwrap();
    assert!(
        !has_interpreter(&bytes),
        "{} needs a dynamic loader",
        bin.display()
    );
    // The check itself sees a dynamic binary for what it is.
    assert!(has_interpreter(&fs::read("/bin/sh").unwrap()) || !Path::new("/lib64").exists());
    let s = Scratch::new("image");
    let Some(root) = image(&s, &bin) else { return };

    // Runs a busybox child, reaps its orphans, exits with its code.
    let script = "i=0; while [ $i -lt 200 ]; do ( sh -c 'exit 0' & ); i=$((i+1)); done; exit 7";
    let mut m = Manager::start_with(
        &["--config=", "--", "/bin/sh", "-c", script],
        Opts {
            launcher: Some(in_image(&root)),
            ..Opts::default()
        },
    );
    assert_eq!(m.exit_code(), 7);
    assert!(m.log().contains("PID: 1"), "{}", m.log());
    assert!(m.log().contains("Reaped"), "{}", m.log());

    // Forwards SIGTERM; the child's own exit code comes back.
    let script = "trap 'echo term > /tmp/m; exit 3' TERM; echo ready > /tmp/m; while :; do sleep 1 & wait $!; done";
    let m2 = Manager::start_with(
        &["--config=", "--", "/bin/sh", "-c", script],
        Opts {
            launcher: Some(in_image(&root)),
            ..Opts::default()
        },
    );
    let mut m2 = m2;
    assert!(wait_for(LONG, || fs::read_to_string(root.join("tmp/m"))
        .is_ok_and(|t| t.contains("ready"))));
    m2.signal(libc::SIGTERM);
    assert_eq!(m2.exit_code(), 3);
    assert_eq!(
        fs::read_to_string(root.join("tmp/m")).unwrap().trim(),
        "term"
    );
}
