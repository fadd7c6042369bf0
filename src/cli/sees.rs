//! Can a `--validate` see the candidate? With `--promote-to DIR`, DIR holds
//! the config the child already runs on; the candidate is staged elsewhere
//! and the check is told where (`FLUSH_MANAGER_CANDIDATE`), unless
//! `--validate-in-place` shows it at DIR while the check runs. A check that
//! names DIR (`grep -q good /dst/app.conf`, the habit of older setups) reads
//! the live bytes instead, so every push passes it: refused at startup.

use crate::promote::{normalise, resolved};
use std::path::{Path, PathBuf};

/// Characters around a path in a word or a shell script: whitespace,
/// quotes, `--flag=PATH`, shell operators, `PATH`-like lists.
fn separator(c: char) -> bool {
    c.is_whitespace() || "'\"=;|&()<>`,:".contains(c)
}

/// The first path in `check`'s words (a `sh -c` script's words too) that is
/// DIR or below it; None when the check names none, or reads the candidate.
fn names_dir(check: &[String], dir: &Path, cwd: &Path) -> Option<PathBuf> {
    if check.iter().any(|w| w.contains("FLUSH_MANAGER_CANDIDATE")) {
        return None;
    }
    let plain = normalise(dir);
    let real = resolved(dir);
    check
        .iter()
        .flat_map(|word| word.split(separator))
        .filter_map(|piece| {
            // `-I/dst/include`: the path after a one-letter option.
            let piece = match piece.find('/') {
                Some(at) if piece.starts_with('-') => &piece[at..],
                _ => piece,
            };
            // A word with no slash is a program or an option, not a path
            // (anything else would make `nginx -t` name a file in the
            // working directory); a variable is not known here.
            let path_like = piece.contains('/') || piece == "." || piece == "..";
            (path_like && !piece.contains('$')).then(|| normalise(&cwd.join(piece)))
        })
        .find(|path| path.starts_with(&plain) || resolved(path).starts_with(&real))
}

/// The startup rule, with both fixes in its message.
pub(super) fn check_sees_candidate(check: &[String], dir: &Path, cwd: &Path) -> Result<(), String> {
    let Some(path) = names_dir(check, dir, cwd) else {
        return Ok(());
    };
    let dir = normalise(dir);
    let below = path
        .strip_prefix(&dir)
        .ok()
        .filter(|rel| !rel.as_os_str().is_empty())
        .map_or_else(|| "FILE".into(), |rel| rel.display().to_string());
    Err(format!(
        "--validate names {path} in --promote-to {dir}, which holds the config the child already \
         runs on, not the candidate: every push would pass. Either read the candidate where the \
         check is told it is, e.g. --validate \"sh -c 'CHECK $FLUSH_MANAGER_CANDIDATE/{below}'\", \
         or add --validate-in-place (the candidate is shown at DIR while the check runs)",
        path = path.display(),
        dir = dir.display(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        crate::parse::words(text).unwrap()
    }

    fn named(check: &str) -> Option<PathBuf> {
        names_dir(&words(check), Path::new("/srv/dst"), Path::new("/srv"))
    }

    #[test]
    fn a_check_naming_dir_is_found_however_it_is_spelled() {
        let hit = Some(PathBuf::from("/srv/dst/app.conf"));
        for check in [
            "grep -q good /srv/dst/app.conf",
            "grep -q good dst/app.conf",
            "grep -q good ./dst/app.conf",
            "grep -q good /srv/x/../dst/app.conf",
            "grep -q good /srv/dst//app.conf",
            "sh -c 'grep -q good /srv/dst/app.conf'",
            "sh -c \"nginx -t -c /srv/dst/app.conf && echo ok\"",
            "sh -c 'test -s /srv/dst/app.conf;echo'",
            "app --config=/srv/dst/app.conf",
            "app -c/srv/dst/app.conf",
        ] {
            assert_eq!(named(check), hit, "{check}");
        }
        assert_eq!(named("ls /srv/dst"), Some(PathBuf::from("/srv/dst")));
        assert_eq!(named("ls /srv/dst/"), Some(PathBuf::from("/srv/dst")));
    }

    #[test]
    fn a_check_that_reads_the_candidate_or_elsewhere_passes() {
        for check in [
            "sh -c 'nginx -t -c $FLUSH_MANAGER_CANDIDATE/app.conf'",
            // It names DIR too, but is told where the candidate is.
            "sh -c 'cd $FLUSH_MANAGER_CANDIDATE && cmp app.conf /srv/dst/app.conf'",
            "nginx -t",
            "grep -q good /srv/dstx/app.conf",
            "grep -q good /srv/src/app.conf",
            "grep -q good app.conf",
            "ls /srv",
            "sh -c 'grep -q good $DIR/app.conf'",
        ] {
            assert_eq!(named(check), None, "{check}");
        }
    }

    #[test]
    fn the_message_shows_both_fixes() {
        let e = check_sees_candidate(
            &words("grep -q good /srv/dst/app.conf"),
            Path::new("/srv/dst"),
            Path::new("/"),
        )
        .unwrap_err();
        assert!(e.contains("/srv/dst/app.conf"), "{e}");
        assert!(e.contains("$FLUSH_MANAGER_CANDIDATE/app.conf"), "{e}");
        assert!(e.contains("--validate-in-place"), "{e}");
    }
}
