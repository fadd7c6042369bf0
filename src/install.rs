//! `--copy-to DIR`: the binary copies itself to `DIR/flush-manager` and
//! exits. An init container running our `scratch` image (no shell, no `cp`)
//! hands the manager to a stock image through a shared `emptyDir` this way.
//!
//! The copy is read from the running executable itself and written under a
//! temporary name in DIR, made executable (0755, whatever the umask), synced,
//! then renamed over the final name and the directory synced: a reader of
//! DIR (the next container, an init container that was restarted half-way)
//! sees either no file, the previous one, or the whole new one.
//! Nothing at the final name is replaced unless it is a flush-manager
//! binary already (an executable holding `MARKER`): a mistyped DIR must not
//! destroy someone else's program.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The name the copy takes in DIR.
pub const NAME: &str = "flush-manager";

/// Bytes every flush-manager binary holds: `is_ours` reads them through
/// `black_box`, so the compiler keeps them whole in the binary (a constant
/// compared in place could be folded into instructions).
static MARKER: &[u8] = b"\0flush-manager:copy-to:marker:1\0";

/// Larger than any build of ours: a file above it is someone else's, and is
/// not read whole to find out.
const MAX_OURS: u64 = 64 << 20;

/// Runs `--copy-to DIR`: says what it did on stderr and returns the exit
/// code (0 copied; 1 could not, or refused to, with the reason).
pub fn run(dir: &Path) -> i32 {
    let (line, code) = match copy_to(dir) {
        Ok((dest, bytes)) => (
            format!(
                "[flush-manager] INFO: Copied itself ({bytes} bytes) to {}",
                dest.display()
            ),
            0,
        ),
        Err(e) => (format!("[flush-manager] ERROR: --copy-to: {e}"), 1),
    };
    crate::say(io::stderr(), &line);
    code
}

/// The running executable, opened (not looked up by name: the path it was
/// started by may mean nothing in a changed root). Where no /proc is
/// mounted (a bare chroot, unlike any container runtime), the path it was
/// started by, when it names one, and only if that file is a flush-manager
/// binary: the copy must never be of some other file.
fn open_self() -> io::Result<File> {
    #[cfg(target_os = "linux")]
    return match File::open("/proc/self/exe") {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            use std::os::unix::ffi::OsStrExt;
            match std::env::args_os().next() {
                Some(argv0)
                    if argv0.as_bytes().contains(&b'/')
                        && is_ours(Path::new(&argv0)).unwrap_or(false) =>
                {
                    File::open(argv0)
                }
                _ => Err(io::Error::new(
                    e.kind(),
                    "/proc/self/exe: no such file (is /proc mounted?)",
                )),
            }
        }
        other => other,
    };
    #[cfg(not(target_os = "linux"))]
    File::open(std::env::current_exe()?)
}

fn copy_to(dir: &Path) -> Result<(PathBuf, u64), String> {
    let shown = dir.display();
    let meta = fs::metadata(dir).map_err(|e| format!("{shown}: {e}"))?;
    if !meta.is_dir() {
        return Err(format!("{shown} is not a directory"));
    }
    let dest = dir.join(NAME);
    let dest_shown = dest.display();
    match fs::symlink_metadata(&dest) {
        Ok(m) if !m.file_type().is_file() => {
            return Err(format!(
                "{dest_shown} exists and is not a regular file; refusing to replace it"
            ));
        }
        Ok(_) => {
            if !is_ours(&dest).map_err(|e| format!("{dest_shown}: {e}"))? {
                return Err(format!(
                    "{dest_shown} exists and is not a flush-manager binary; refusing to replace it"
                ));
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("{dest_shown}: {e}")),
    }
    let mut src = open_self().map_err(|e| format!("cannot open its own executable: {e}"))?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let tmp = dir.join(format!(".{NAME}.{}.{nanos}.tmp", std::process::id()));
    let mut out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o700)
        .open(&tmp)
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    let written = io::copy(&mut src, &mut out)
        .and_then(|n| {
            out.set_permissions(fs::Permissions::from_mode(0o755))?;
            out.sync_all()?;
            drop(out);
            fs::rename(&tmp, &dest)?;
            Ok(n)
        })
        .map_err(|e| {
            let _ = fs::remove_file(&tmp);
            format!("writing {dest_shown}: {e}")
        })?;
    // The rename is durable once the directory is: some filesystems refuse
    // to sync a directory (EINVAL), which then is all they can do.
    if let Err(e) = File::open(dir).and_then(|d| d.sync_all())
        && e.raw_os_error() != Some(nix::libc::EINVAL)
    {
        return Err(format!("syncing {shown}: {e}"));
    }
    Ok((dest, written))
}

/// Is the file at `path` a flush-manager binary: an executable (ELF, or
/// Mach-O where the build is one) holding `MARKER`?
fn is_ours(path: &Path) -> io::Result<bool> {
    let mut file = File::open(path)?;
    if file.metadata()?.len() > MAX_OURS {
        return Ok(false);
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let executable = bytes.starts_with(b"\x7fELF") || bytes.starts_with(b"\xcf\xfa\xed\xfe");
    let marker = std::hint::black_box(MARKER);
    Ok(executable && bytes.windows(marker.len()).any(|w| w == marker))
}
