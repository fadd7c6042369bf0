//! Can a `--validate` see the candidate? With `--promote-to DIR`, DIR holds
//! the config the child already runs on; the candidate is staged elsewhere
//! and the check is told where (`FLUSH_MANAGER_CANDIDATE`), unless
//! `--validate-in-place` shows it at DIR while the check runs. A check that
//! names DIR (`grep -q good /dst/app.conf`, the habit of older setups) reads
//! the live bytes instead, so every push passes it; one that names the
//! watched source reads whatever the source holds while it runs, so a fix
//! pushed during the check of a bad push lets the bad one through. Both
//! are refused at startup. Paths are found in the check's words and in a
//! `sh -c` script's, with `$VAR`, `${VAR}` and a leading `~` expanded from
//! the environment the check inherits.

use crate::promote::{normalise, resolved};
use std::path::{Path, PathBuf};

/// Characters around a path in a word or a shell script: whitespace,
/// quotes, `--flag=PATH`, shell operators, `PATH`-like lists.
fn separator(c: char) -> bool {
    c.is_whitespace() || "'\"=;|&()<>`,:".contains(c)
}

/// `piece` with `$NAME`, `${NAME}` and a leading `~` replaced from `env`
/// (`PWD` is the check's working directory); None when one is unknown.
fn expand(piece: &str, cwd: &Path, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let lookup = |name: &str| match name {
        "PWD" => Some(cwd.display().to_string()),
        _ => env(name),
    };
    let mut out = String::new();
    let mut rest = piece;
    if let Some(after) = rest.strip_prefix('~')
        && (after.is_empty() || after.starts_with('/'))
    {
        out.push_str(&lookup("HOME")?);
        rest = after;
    }
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at + 1..];
        let (name, after) = match tail.strip_prefix('{') {
            Some(braced) => {
                let close = braced.find('}')?;
                (&braced[..close], &braced[close + 1..])
            }
            None => {
                let len = tail
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(tail.len());
                (&tail[..len], &tail[len..])
            }
        };
        if name.is_empty() {
            return None;
        }
        out.push_str(&lookup(name)?);
        rest = after;
    }
    out.push_str(rest);
    Some(out)
}

/// The first path in `check`'s words (a `sh -c` script's words too) that is
/// one of `roots` or below it, with that root; None when the check names
/// none, or reads the candidate.
fn names_any<'a>(
    check: &[String],
    roots: &[&'a Path],
    cwd: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<(PathBuf, &'a Path)> {
    if check.iter().any(|w| w.contains("FLUSH_MANAGER_CANDIDATE")) {
        return None;
    }
    let roots: Vec<(PathBuf, PathBuf, &Path)> = roots
        .iter()
        .map(|r| (normalise(r), resolved(r), *r))
        .collect();
    check
        .iter()
        .flat_map(|word| word.split(separator))
        .filter_map(|piece| {
            // `-I/dst/include`: the path after a one-letter option.
            let piece = match piece.find('/') {
                Some(at) if piece.starts_with('-') => &piece[at..],
                _ => piece,
            };
            let piece = expand(piece, cwd, env)?;
            // A word with no slash is a program or an option, not a path
            // (anything else would make `nginx -t` name a file in the
            // working directory).
            let path_like = piece.contains('/') || piece == "." || piece == "..";
            path_like.then(|| normalise(&cwd.join(piece)))
        })
        .find_map(|path| {
            let real = resolved(&path);
            roots
                .iter()
                .find(|(plain, res, _)| path.starts_with(plain) || real.starts_with(res))
                .map(|(_, _, root)| (path, *root))
        })
}

/// The startup rule, with both fixes in its message: `check` must name
/// neither DIR (unless it is shown the candidate there, `in_place`) nor a
/// watched source.
pub(super) fn check_sees_candidate(
    check: &[String],
    dir: &Path,
    sources: &[PathBuf],
    in_place: bool,
    cwd: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), String> {
    let mut roots: Vec<&Path> = sources.iter().map(PathBuf::as_path).collect();
    if !in_place {
        roots.push(dir);
    }
    let Some((path, root)) = names_any(check, &roots, cwd, env) else {
        return Ok(());
    };
    let root = normalise(root);
    let below = path
        .strip_prefix(&root)
        .ok()
        .filter(|rel| !rel.as_os_str().is_empty())
        .map_or_else(|| "FILE".into(), |rel| rel.display().to_string());
    let fix = format!(
        "read the candidate where the check is told it is, e.g. --validate \"sh -c 'CHECK $FLUSH_MANAGER_CANDIDATE/{below}'\""
    );
    if root == normalise(dir) {
        return Err(format!(
            "--validate names {path} in --promote-to {dir}, which holds the config the child already \
             runs on, not the candidate: every push would pass. Either {fix}, or add \
             --validate-in-place (the candidate is shown at DIR while the check runs)",
            path = path.display(),
            dir = root.display(),
        ));
    }
    Err(format!(
        "--validate names {path} in the watched --config {src}, not the candidate: a push made \
         while the check runs would be judged by the newer bytes, and the checked ones promoted \
         unseen. Instead, {fix}",
        path = path.display(),
        src = root.display(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        crate::parse::words(text).unwrap()
    }

    fn env(name: &str) -> Option<String> {
        match name {
            "APPDIR" => Some("/srv/dst".into()),
            "HOME" => Some("/srv".into()),
            "OTHER" => Some("/srv/other".into()),
            _ => None,
        }
    }

    fn named(check: &str) -> Option<PathBuf> {
        names_any(
            &words(check),
            &[Path::new("/srv/dst")],
            Path::new("/srv"),
            &env,
        )
        .map(|(path, _)| path)
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
            "sh -c 'grep -q good $APPDIR/app.conf'",
            "sh -c 'grep -q good ${APPDIR}/app.conf'",
            "grep -q good ~/dst/app.conf",
            "sh -c 'grep -q good $PWD/dst/app.conf'",
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
            "sh -c 'grep -q good $OTHER/app.conf'",
            "grep -q good ~nobody/dst/app.conf",
        ] {
            assert_eq!(named(check), None, "{check}");
        }
    }

    /// The startup rule for `check`, with DIR /srv/dst and the watched
    /// source /srv/src.
    fn rule(check: &str, in_place: bool) -> Result<(), String> {
        check_sees_candidate(
            &words(check),
            Path::new("/srv/dst"),
            &[PathBuf::from("/srv/src")],
            in_place,
            Path::new("/"),
            &env,
        )
    }

    #[test]
    fn the_message_shows_both_fixes() {
        let e = rule("grep -q good /srv/dst/app.conf", false).unwrap_err();
        assert!(e.contains("/srv/dst/app.conf"), "{e}");
        assert!(e.contains("$FLUSH_MANAGER_CANDIDATE/app.conf"), "{e}");
        assert!(e.contains("--validate-in-place"), "{e}");
    }

    /// A check of the watched source reads what the source holds while it
    /// runs: a fix pushed during the check of a bad push let the bad one
    /// through. Refused, with --validate-in-place too (it shows DIR, not
    /// the source).
    #[test]
    fn a_check_naming_the_source_is_refused_in_place_or_not() {
        for in_place in [false, true] {
            let e = rule("sh -c 'sleep 1; grep -q good /srv/src/app.conf'", in_place).unwrap_err();
            assert!(e.contains("watched --config /srv/src"), "{e}");
            assert!(e.contains("$FLUSH_MANAGER_CANDIDATE/app.conf"), "{e}");
        }
        // In place, DIR is where the candidate is shown: naming it is right.
        assert_eq!(rule("grep -q good /srv/dst/app.conf", true), Ok(()));
    }
}
