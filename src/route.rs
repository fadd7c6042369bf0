//! `--on-change PATTERN=ACTION`: which action a changed file asks for.
//! Pure: rules are parsed here and matched against paths; what a burst of
//! changes then does is the machine's decision (state/route.rs).
//!
//! A pattern is a glob. One that starts with `/` is matched against the
//! file's absolute path; one holding another `/` against its path below
//! the `--config` it was found under; one with no `/` against its name, at
//! any depth (`*.pem` is every certificate, as in `.gitignore`). `*` and
//! `?` stay within a path segment, `**` crosses them, `[a-z]` and `[!x]`
//! are classes, `\` quotes the next character.

use std::path::{Path, PathBuf};

/// What a file's change asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Act {
    /// Restart the child (subsumes everything else in the burst).
    Restart,
    /// Send this signal (`--signal-to` says to whom).
    Signal(i32),
    /// Run this reload hook (a command or a URL; an index into the hooks
    /// the command line declared, `--reload-command`/`--reload-url` first).
    Hook(usize),
    /// Nothing: the file is not config the child acts on.
    Nothing,
}

/// One `--on-change` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// As given, for the log.
    pub pattern: String,
    pub act: Act,
}

/// The rules, in the order given (the first match wins), and the watched
/// roots that relative patterns are matched under.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routes {
    roots: Vec<PathBuf>,
    rules: Vec<Rule>,
}

impl Routes {
    pub fn new(roots: Vec<PathBuf>, rules: Vec<Rule>) -> Routes {
        Routes { roots, rules }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The first rule matching `path`, if any.
    pub fn rule_for(&self, path: &Path) -> Option<&Rule> {
        let relative = self.relative(path);
        self.rules
            .iter()
            .find(|r| matches_path(&r.pattern, path, relative.as_deref()))
    }

    /// `path` below the watched root it was found under: the deepest root
    /// holding it; a root that is a file gives the file's name.
    fn relative(&self, path: &Path) -> Option<String> {
        let below = self
            .roots
            .iter()
            .filter_map(|root| path.strip_prefix(root).ok())
            .min_by_key(|rel| rel.components().count())?;
        let rel = if below.as_os_str().is_empty() {
            Path::new(path.file_name()?)
        } else {
            below
        };
        Some(rel.to_string_lossy().into_owned())
    }
}

/// Does `pattern` match this file (absolute `path`, `relative` below its
/// root)?
fn matches_path(pattern: &str, path: &Path, relative: Option<&str>) -> bool {
    if pattern.starts_with('/') {
        return glob(pattern.as_bytes(), path.to_string_lossy().as_bytes());
    }
    if pattern.contains('/') {
        return relative.is_some_and(|rel| glob(pattern.as_bytes(), rel.as_bytes()));
    }
    path.file_name()
        .is_some_and(|name| glob(pattern.as_bytes(), name.to_string_lossy().as_bytes()))
}

/// Glob matching, byte by byte (patterns are short; backtracking is fine).
fn glob(p: &[u8], s: &[u8]) -> bool {
    match p {
        [] => s.is_empty(),
        [b'*', b'*', b'/', rest @ ..] => {
            // `**/`: zero or more whole directories.
            glob(rest, s)
                || (0..s.len())
                    .filter(|&i| s[i] == b'/')
                    .any(|i| glob(rest, &s[i + 1..]))
        }
        [b'*', b'*', rest @ ..] => (0..=s.len()).any(|i| glob(rest, &s[i..])),
        [b'*', rest @ ..] => {
            let segment = s.iter().position(|&c| c == b'/').unwrap_or(s.len());
            (0..=segment).any(|i| glob(rest, &s[i..]))
        }
        [b'?', rest @ ..] => matches!(s, [c, tail @ ..] if *c != b'/' && glob(rest, tail)),
        [b'[', rest @ ..] => match (class(rest), s) {
            (Some((hit, after)), [c, tail @ ..]) => *c != b'/' && hit(*c) && glob(after, tail),
            (Some(_), []) => false,
            // No closing bracket: a literal '['.
            (None, [b'[', tail @ ..]) => glob(rest, tail),
            (None, _) => false,
        },
        [b'\\', c, rest @ ..] => matches!(s, [d, tail @ ..] if d == c && glob(rest, tail)),
        [c, rest @ ..] => matches!(s, [d, tail @ ..] if d == c && glob(rest, tail)),
    }
}

/// A `[...]` class (after its `[`): a test for one byte, and the pattern
/// after its `]`; `None` if it never closes.
fn class(p: &[u8]) -> Option<(impl Fn(u8) -> bool + '_, &[u8])> {
    let (negated, body) = match p {
        [b'!' | b'^', rest @ ..] => (true, rest),
        _ => (false, p),
    };
    // A `]` first is a member, not the end.
    let end = body.iter().skip(1).position(|&c| c == b']')? + 1;
    let members = &body[..end];
    let hit = move |c: u8| {
        let mut i = 0;
        let mut found = false;
        while i < members.len() {
            if i + 2 < members.len() && members[i + 1] == b'-' {
                found |= (members[i]..=members[i + 2]).contains(&c);
                i += 3;
            } else {
                found |= members[i] == c;
                i += 1;
            }
        }
        found != negated
    };
    Some((hit, &body[end + 1..]))
}

/// The literal directory a pattern starting with `/` lies under (up to
/// its first wildcard), to tell whether it can match anything watched.
pub fn literal_dir(pattern: &str) -> &Path {
    let head = pattern
        .find(['*', '?', '[', '\\'])
        .map_or(pattern, |i| &pattern[..i]);
    match head.rfind('/') {
        Some(0) | None => Path::new("/"),
        Some(i) => Path::new(&head[..i]),
    }
}

/// Splits `PATTERN=ACTION` at the first `=` that an action follows (a
/// pattern may hold `=`; a command or a URL surely does).
pub fn split(text: &str) -> Option<(&str, &str)> {
    const ACTIONS: [&str; 5] = ["restart", "none", "signal:", "command:", "url:"];
    text.match_indices('=')
        .map(|(i, _)| (&text[..i], &text[i + 1..]))
        .find(|(_, action)| {
            ACTIONS
                .iter()
                .any(|a| action.starts_with(a) && (a.ends_with(':') || action == a))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(p: &str, s: &str) -> bool {
        glob(p.as_bytes(), s.as_bytes())
    }

    #[test]
    fn globs_match_as_documented() {
        assert!(g("*.pem", "tls.pem"));
        assert!(!g("*.pem", "certs/tls.pem"), "* stays within a segment");
        assert!(g("certs/*", "certs/tls.pem"));
        assert!(!g("certs/*", "certs/a/tls.pem"));
        assert!(g("certs/**", "certs/a/tls.pem"));
        assert!(g("**/*.pem", "tls.pem"), "**/ is zero directories too");
        assert!(g("**/*.pem", "a/b/tls.pem"));
        assert!(g("a/**/b", "a/b"));
        assert!(g("a/**/b", "a/x/y/b"));
        assert!(!g("a/**/b", "a/xb"));
        assert!(g("tls.???", "tls.crt"));
        assert!(!g("?", "/"));
        assert!(g("[a-c]x", "bx"));
        assert!(!g("[!a-c]x", "bx"));
        assert!(g("[!a-c]x", "dx"));
        assert!(g("[]]", "]"));
        assert!(g("[x", "[x"), "an unclosed [ is literal");
        assert!(g("\\*", "*"));
        assert!(!g("\\*", "a"));
        assert!(g("*", ""));
        assert!(!g("a", "ab"));
    }

    #[test]
    fn a_pattern_matches_by_name_by_relative_path_or_by_absolute_path() {
        let rule = |p: &str| Rule {
            pattern: p.into(),
            act: Act::Nothing,
        };
        let routes = Routes::new(
            vec![PathBuf::from("/etc/nginx"), PathBuf::from("/etc/app.conf")],
            vec![
                rule("*.pem"),
                rule("conf.d/*.conf"),
                rule("/etc/nginx/docs/**"),
                rule("app.conf"),
            ],
        );
        let first = |p: &str| routes.rule_for(Path::new(p)).map(|r| r.pattern.clone());
        assert_eq!(first("/etc/nginx/certs/tls.pem").as_deref(), Some("*.pem"));
        assert_eq!(
            first("/etc/nginx/conf.d/a.conf").as_deref(),
            Some("conf.d/*.conf")
        );
        assert_eq!(
            first("/etc/nginx/x/conf.d/a.conf"),
            None,
            "anchored at the root"
        );
        assert_eq!(
            first("/etc/nginx/docs/a/readme.md").as_deref(),
            Some("/etc/nginx/docs/**")
        );
        assert_eq!(first("/etc/app.conf").as_deref(), Some("app.conf"));
        assert_eq!(first("/etc/nginx/nginx.conf"), None);
    }

    #[test]
    fn the_first_matching_rule_wins() {
        let routes = Routes::new(
            vec![PathBuf::from("/c")],
            vec![
                Rule {
                    pattern: "a.*".into(),
                    act: Act::Restart,
                },
                Rule {
                    pattern: "*.conf".into(),
                    act: Act::Nothing,
                },
            ],
        );
        let act = |p: &str| routes.rule_for(Path::new(p)).map(|r| r.act.clone());
        assert_eq!(act("/c/a.conf"), Some(Act::Restart));
        assert_eq!(act("/c/b.conf"), Some(Act::Nothing));
    }

    #[test]
    fn a_rule_splits_at_the_equals_sign_an_action_follows() {
        assert_eq!(split("*.pem=signal:HUP"), Some(("*.pem", "signal:HUP")));
        assert_eq!(
            split("a=b.conf=command:env X=1 reload"),
            Some(("a=b.conf", "command:env X=1 reload"))
        );
        assert_eq!(
            split("x=url:http://h/r?a=b"),
            Some(("x", "url:http://h/r?a=b"))
        );
        assert_eq!(split("x=restarts"), None);
        assert_eq!(split("x"), None);
    }

    #[test]
    fn the_literal_directory_of_an_absolute_pattern() {
        assert_eq!(literal_dir("/etc/nginx/*.conf"), Path::new("/etc/nginx"));
        assert_eq!(literal_dir("/etc/nginx/a.conf"), Path::new("/etc/nginx"));
        assert_eq!(literal_dir("/*"), Path::new("/"));
    }
}
