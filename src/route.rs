//! `--on-change PATTERN=ACTION`: which action a changed file asks for.
//! Pure: rules are parsed here and matched against paths; what a burst of
//! changes then does is the machine's decision (state/plan.rs).
//!
//! A pattern is a glob. One that starts with `/` is matched against the
//! file's absolute path; one holding another `/` against its path below
//! the `--config` it was found under; one with no `/` against its name, at
//! any depth (`*.pem` is every certificate, as in `.gitignore`). `*` and
//! `?` stay within a path segment, `**` crosses them, `[a-z]` and `[!x]`
//! are classes, `\` quotes the next character; one ending in `/` is
//! everything below that directory. Matching is by characters, not bytes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

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
/// roots that relative patterns are matched under. Which rule a path takes
/// is remembered, shared by every clone: the machine asks for every
/// changed file at every burst, on the loop that forwards signals, so the
/// looks (off the loop) work the answers out first (`warm`), and 10,000
/// files under 1,000 rules cost the loop lookups, not seconds of globs.
#[derive(Clone, Default)]
pub struct Routes {
    roots: Vec<PathBuf>,
    rules: Vec<Rule>,
    compiled: Vec<Compiled>,
    /// Path -> index of its first matching rule (None: no rule).
    known: Arc<Mutex<HashMap<PathBuf, Option<usize>>>>,
}

/// At most this many paths are remembered (then forgotten all at once):
/// a bound, whatever a directory holds over time.
const KNOWN_MAX: usize = 200_000;

/// A pattern ready to match: its characters, what it is matched against,
/// and the literal text every match starts and ends with (a cheap test
/// that turns most files away before the glob runs).
#[derive(Clone)]
struct Compiled {
    glob: Vec<char>,
    against: Against,
    head: String,
    tail: String,
}

#[derive(Clone, Copy, PartialEq)]
enum Against {
    Name,
    Relative,
    Absolute,
}

impl Compiled {
    fn new(pattern: &str) -> Compiled {
        const META: [char; 5] = ['*', '?', '[', ']', '\\'];
        let head: String = pattern.chars().take_while(|c| !META.contains(c)).collect();
        let mut tail: Vec<char> = pattern
            .chars()
            .rev()
            .take_while(|c| !META.contains(c))
            .collect();
        tail.reverse();
        let whole = head.chars().count() == pattern.chars().count();
        Compiled {
            glob: pattern.chars().collect(),
            against: if pattern.starts_with('/') {
                Against::Absolute
            } else if pattern.contains('/') {
                Against::Relative
            } else {
                Against::Name
            },
            // A trailing `/` matches below it: no fixed end then. Only the
            // last segment's literal end is sure: a `/` before it may be
            // part of a `**/` that matched no directory (`**/f.conf`
            // matches `f.conf`).
            tail: match pattern.ends_with('/') {
                true => String::new(),
                false if whole => pattern.to_string(),
                false => {
                    let tail: String = tail.into_iter().collect();
                    tail.rsplit('/').next().unwrap_or_default().to_string()
                }
            },
            head: head.trim_end_matches('/').to_string(),
        }
    }

    fn matches(&self, s: &str) -> bool {
        s.starts_with(&self.head)
            && s.ends_with(&self.tail)
            && glob(&self.glob, &s.chars().collect::<Vec<_>>(), false)
    }
}

impl PartialEq for Routes {
    fn eq(&self, other: &Routes) -> bool {
        self.roots == other.roots && self.rules == other.rules
    }
}

impl Eq for Routes {}

impl std::fmt::Debug for Routes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Routes")
            .field("roots", &self.roots)
            .field("rules", &self.rules)
            .finish()
    }
}

impl Routes {
    pub fn new(roots: Vec<PathBuf>, rules: Vec<Rule>) -> Routes {
        let compiled = rules.iter().map(|r| Compiled::new(&r.pattern)).collect();
        Routes {
            roots,
            rules,
            compiled,
            known: Arc::default(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The first rule matching `path`, if any.
    pub fn rule_for(&self, path: &Path) -> Option<&Rule> {
        if self.rules.is_empty() {
            return None;
        }
        if let Some(known) = self.known().get(path) {
            return known.map(|i| &self.rules[i]);
        }
        let text = path.to_string_lossy();
        let relative = self.relative(&text);
        let found = self.compiled.iter().position(|c| match c.against {
            Against::Absolute => c.matches(&text),
            Against::Relative => relative.iter().any(|rel| c.matches(rel)),
            Against::Name => c.matches(name(&text)),
        });
        let mut known = self.known();
        if known.len() >= KNOWN_MAX {
            known.clear();
        }
        known.insert(path.to_path_buf(), found);
        found.map(|i| &self.rules[i])
    }

    /// Works out (and remembers) the rule of each path: called off the
    /// loop, on every look's files, before the machine asks.
    pub fn warm<'a>(&self, paths: impl Iterator<Item = &'a PathBuf>) {
        if self.rules.is_empty() {
            return;
        }
        for path in paths {
            self.rule_for(path);
        }
    }

    fn known(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Option<usize>>> {
        self.known.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `path` below each watched root holding it (nested `--config`s: a
    /// pattern relative to either matches); a root that is the file itself
    /// gives the file's name.
    fn relative(&self, path: &str) -> Vec<String> {
        self.roots
            .iter()
            .filter_map(|root| {
                let root = root.to_string_lossy();
                match path.strip_prefix(root.trim_end_matches('/'))? {
                    "" => Some(name(path).to_string()),
                    below => Some(below.strip_prefix('/')?.to_string()),
                }
            })
            .collect()
    }
}

/// The last segment of a path.
fn name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Can `pattern` (absolute) match anything below `root`, or, if it may be
/// a file, `root` itself?
pub fn can_match_under(pattern: &str, root: &Path, may_be_file: bool) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let root = root.to_string_lossy();
    let below: Vec<char> = format!("{}/", root.trim_end_matches('/')).chars().collect();
    (may_be_file && glob(&p, &root.chars().collect::<Vec<_>>(), false)) || glob(&p, &below, true)
}

/// One step of a pattern.
enum Token<'a> {
    /// This character.
    Lit(char),
    /// `?`: any one character but `/`.
    One,
    /// `[...]`: one character of a class (never `/`).
    Class(bool, &'a [char]),
    /// `*`: any characters within the segment.
    Star,
    /// `**` not followed by `/`: any characters, `/` included.
    Stars,
    /// `**/` with more after it: zero or more whole directories.
    Dirs,
    /// A trailing `/`: everything below that directory.
    EndSlash,
    /// A trailing `**/`: anything below.
    EndDirs,
}

/// Splits a pattern into its steps, read from the front.
fn tokens(mut p: &[char]) -> Vec<Token<'_>> {
    let mut out = Vec::new();
    while !p.is_empty() {
        let (token, used) = match p {
            ['/'] => (Token::EndSlash, 1),
            ['*', '*', '/'] => (Token::EndDirs, 3),
            ['*', '*', '/', ..] => (Token::Dirs, 3),
            ['*', '*', ..] => (Token::Stars, 2),
            ['*', ..] => (Token::Star, 1),
            ['?', ..] => (Token::One, 1),
            ['[', rest @ ..] => match class(rest) {
                Some((negated, members, after)) => {
                    (Token::Class(negated, members), p.len() - after.len())
                }
                // No closing bracket: a literal '['.
                None => (Token::Lit('['), 1),
            },
            ['\\', c, ..] => (Token::Lit(*c), 2),
            [c, ..] => (Token::Lit(*c), 1),
            [] => break,
        };
        out.push(token);
        p = &p[used..];
    }
    out
}

/// Glob matching over characters. `partial`: may `s` be extended into a
/// match (a prefix of one)? Most patterns turn most names down within a
/// few characters, and a direct walk of the pattern answers those with no
/// allocation; a walk that branches too much (an operator's
/// `*a*a*a*a*a*a*a*a*b` would take seconds) hands over to the table below,
/// whose time is the pattern's length times the name's, whatever the
/// pattern.
fn glob(p: &[char], s: &[char], partial: bool) -> bool {
    let mut budget = 64 * (p.len() + s.len() + 1);
    walk(p, s, partial, &mut budget).unwrap_or_else(|| table(p, s, partial))
}

/// The direct walk, one step of `budget` per call; `None` once it is spent.
fn walk(p: &[char], s: &[char], partial: bool, budget: &mut usize) -> Option<bool> {
    *budget = budget.checked_sub(1)?;
    if partial && s.is_empty() {
        return Some(true);
    }
    Some(match p {
        [] => s.is_empty(),
        // A trailing `/`: everything below that directory.
        ['/'] => s.first() == Some(&'/') && s.len() > 1,
        // A trailing `**/` is one too: anything below.
        ['*', '*', '/'] => !s.is_empty(),
        ['*', '*', '/', rest @ ..] => {
            // `**/`: zero or more whole directories.
            if walk(rest, s, partial, budget)? {
                return Some(true);
            }
            for i in (0..s.len()).filter(|&i| s[i] == '/') {
                if walk(rest, &s[i + 1..], partial, budget)? {
                    return Some(true);
                }
            }
            false
        }
        ['*', '*', rest @ ..] => {
            for i in 0..=s.len() {
                if walk(rest, &s[i..], partial, budget)? {
                    return Some(true);
                }
            }
            false
        }
        ['*', rest @ ..] => {
            let segment = s.iter().position(|&c| c == '/').unwrap_or(s.len());
            for i in 0..=segment {
                if walk(rest, &s[i..], partial, budget)? {
                    return Some(true);
                }
            }
            false
        }
        ['?', rest @ ..] => match s {
            [c, tail @ ..] if *c != '/' => walk(rest, tail, partial, budget)?,
            _ => false,
        },
        ['[', rest @ ..] => match (class(rest), s) {
            (Some((negated, members, after)), [c, tail @ ..])
                if *c != '/' && in_class(members, *c) != negated =>
            {
                walk(after, tail, partial, budget)?
            }
            (Some(_), _) => false,
            // No closing bracket: a literal '['.
            (None, ['[', tail @ ..]) => walk(rest, tail, partial, budget)?,
            (None, _) => false,
        },
        ['\\', c, rest @ ..] | [c, rest @ ..] => match s {
            [d, tail @ ..] if d == c => walk(rest, tail, partial, budget)?,
            _ => false,
        },
    })
}

/// The table: dynamic programming from the pattern's end: `next[i]` says whether the
/// steps after the current one match `s[i..]`, `row[i]` whether the
/// current one and those after it do. A star either ends here (`next[i]`)
/// or takes one more character (`row[i + 1]`).
fn table(p: &[char], s: &[char], partial: bool) -> bool {
    let n = s.len();
    let mut next: Vec<bool> = (0..=n).map(|i| i == n).collect();
    let mut row = vec![false; n + 1];
    for token in tokens(p).iter().rev() {
        // For `**/`: some `/` at or after i has a match of the rest after it.
        let mut below = false;
        for i in (0..=n).rev() {
            let c = s.get(i).copied();
            let one = |ok: bool| ok && next[i + 1];
            row[i] = (partial && i == n)
                || match *token {
                    Token::Lit(l) => one(c == Some(l)),
                    Token::One => one(c.is_some_and(|c| c != '/')),
                    Token::Class(negated, members) => {
                        one(c.is_some_and(|c| c != '/' && in_class(members, c) != negated))
                    }
                    Token::Star => next[i] || (c.is_some_and(|c| c != '/') && row[i + 1]),
                    Token::Stars => next[i] || (c.is_some() && row[i + 1]),
                    Token::Dirs => {
                        below |= c == Some('/') && next[i + 1];
                        next[i] || below
                    }
                    Token::EndSlash => c == Some('/') && n - i > 1,
                    Token::EndDirs => c.is_some(),
                };
        }
        std::mem::swap(&mut next, &mut row);
    }
    next[0]
}

/// A `[...]` class (after its `[`): negated or not, its members, and the
/// pattern after its `]`; `None` if it never closes.
fn class(p: &[char]) -> Option<(bool, &[char], &[char])> {
    let (negated, body) = match p {
        ['!' | '^', rest @ ..] => (true, rest),
        _ => (false, p),
    };
    // A `]` first is a member, not the end.
    let end = body.iter().skip(1).position(|&c| c == ']')? + 1;
    Some((negated, &body[..end], &body[end + 1..]))
}

/// Is `c` one of a class's members (single characters and `a-z` ranges)?
fn in_class(members: &[char], c: char) -> bool {
    let mut i = 0;
    let mut found = false;
    while i < members.len() {
        if i + 2 < members.len() && members[i + 1] == '-' {
            found |= (members[i]..=members[i + 2]).contains(&c);
            i += 3;
        } else {
            found |= members[i] == c;
            i += 1;
        }
    }
    found
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
        let chars = |t: &str| t.chars().collect::<Vec<_>>();
        glob(&chars(p), &chars(s), false)
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
        assert!(g("caf?.conf", "café.conf"), "one character, not one byte");
        assert!(g("[éè]t.conf", "ét.conf"));
        assert!(
            g("certs/", "certs/a/tls.pem"),
            "a trailing / is everything below"
        );
        assert!(!g("certs/", "certs"));
    }

    /// The recursive matcher this one replaced (exponential on many `*`,
    /// but plainly right): the reference the new one must agree with.
    fn backtracking(p: &[char], s: &[char], partial: bool) -> bool {
        if partial && s.is_empty() {
            return true;
        }
        let next = |p: &[char], s: &[char]| backtracking(p, s, partial);
        match p {
            [] => s.is_empty(),
            ['/'] => s.first() == Some(&'/') && s.len() > 1,
            ['*', '*', '/'] => !s.is_empty(),
            ['*', '*', '/', rest @ ..] => {
                next(rest, s)
                    || (0..s.len())
                        .filter(|&i| s[i] == '/')
                        .any(|i| next(rest, &s[i + 1..]))
            }
            ['*', '*', rest @ ..] => (0..=s.len()).any(|i| next(rest, &s[i..])),
            ['*', rest @ ..] => {
                let segment = s.iter().position(|&c| c == '/').unwrap_or(s.len());
                (0..=segment).any(|i| next(rest, &s[i..]))
            }
            ['?', rest @ ..] => matches!(s, [c, tail @ ..] if *c != '/' && next(rest, tail)),
            ['[', rest @ ..] => match (class(rest), s) {
                (Some((negated, members, after)), [c, tail @ ..]) => {
                    *c != '/' && in_class(members, *c) != negated && next(after, tail)
                }
                (Some(_), []) => false,
                (None, ['[', tail @ ..]) => next(rest, tail),
                (None, _) => false,
            },
            ['\\', c, rest @ ..] => matches!(s, [d, tail @ ..] if d == c && next(rest, tail)),
            [c, rest @ ..] => matches!(s, [d, tail @ ..] if d == c && next(rest, tail)),
        }
    }

    /// Every sequence of `items` up to `len` long, concatenated.
    fn words(items: &[&str], len: usize) -> Vec<String> {
        let mut all = vec![String::new()];
        let mut last = vec![String::new()];
        for _ in 0..len {
            last = last
                .iter()
                .flat_map(|w| items.iter().map(move |i| format!("{w}{i}")))
                .collect();
            all.extend(last.iter().cloned());
        }
        all
    }

    #[test]
    fn the_linear_matcher_agrees_with_the_backtracking_one_everywhere_small() {
        let pieces = ["a", "/", "*", "**", "?", "[a-b]", "[!a]", "\\*", "[", "]"];
        let strings = words(&["a", "b", "/", "*", "["], 4);
        let mut checked = 0;
        for p in words(&pieces, 3) {
            let p: Vec<char> = p.chars().collect();
            for s in &strings {
                let s: Vec<char> = s.chars().collect();
                for partial in [false, true] {
                    let old = backtracking(&p, &s, partial);
                    let new = table(&p, &s, partial);
                    assert_eq!(glob(&p, &s, partial), old);
                    let mut ample = usize::MAX;
                    assert_eq!(walk(&p, &s, partial, &mut ample), Some(old));
                    let shown = |t: &[char]| t.iter().collect::<String>();
                    assert_eq!(
                        new,
                        old,
                        "{:?} on {:?} (partial {partial})",
                        shown(&p),
                        shown(&s)
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 500_000, "{checked} cases");
    }

    #[test]
    fn many_stars_on_a_long_name_take_no_time() {
        // A pattern that fails only at its last character after 16 `*`:
        // a backtracking matcher tries every way to spread 200 characters
        // over 16 stars (this ran for longer than anyone waited). Run off
        // the test's thread so that a slow matcher fails here instead of
        // hanging the suite.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let name = "a".repeat(200);
            let stars = |k: usize| format!("{}b", "*a".repeat(k));
            let deep = |k: usize| format!("{}b", "**/a".repeat(k));
            let start = std::time::Instant::now();
            let found = [
                g(&stars(8), &name),
                g(&stars(16), &name),
                g(&deep(16), &"a/".repeat(100)),
                g(&format!("{}a", "*a".repeat(16)), &name),
            ];
            let _ = tx.send((found, start.elapsed()));
        });
        let (found, took) = rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("16 stars on a 200-character name still running after 5 s");
        assert_eq!(found, [false, false, false, true]);
        // Microseconds here; generous for a loaded machine and a debug build.
        assert!(took < std::time::Duration::from_secs(1), "took {took:?}");
    }

    #[test]
    fn the_prefilter_never_turns_away_what_the_glob_matches() {
        let patterns = [
            "**/f.conf",
            "**/*.pem",
            "a/**/b",
            "a/**",
            "sub/**/",
            "certs/",
            "x[ab]",
            "[]]x",
            "[!.]conf",
            "a\\*b",
            "*\\]",
            "f.conf",
            "a/f.conf",
            "caf?.conf",
            "**",
            "*",
            "?",
            "d/*/f.*",
            "**/d/**/f",
            "/r/**/f.conf",
            "/r/",
        ];
        let strings = [
            "f.conf",
            "a/f.conf",
            "a/b/f.conf",
            "tls.pem",
            "a/tls.pem",
            "a/b",
            "a/x/b",
            "sub/f",
            "sub/d/f",
            "certs/a",
            "xa",
            "a/xb",
            "]x",
            "xconf",
            ".conf",
            "a*b",
            "a]",
            "café.conf",
            "d/e/f.txt",
            "d/f",
            "d/e/x/f",
            "/r/f.conf",
            "/r/a/f.conf",
            "/r/x",
            "",
            "a",
            "sub",
        ];
        for p in patterns {
            let c = Compiled::new(p);
            let chars: Vec<char> = p.chars().collect();
            for s in strings {
                let full = glob(&chars, &s.chars().collect::<Vec<_>>(), false);
                assert_eq!(c.matches(s), full, "pattern {p:?} on {s:?}");
            }
        }
        assert!(
            g("sub/**/", "sub/d/f"),
            "a trailing **/ is everything below"
        );
        assert!(g("sub/**/", "sub/f"));
        assert!(!g("sub/**/", "sub"));
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
    fn an_absolute_pattern_can_match_under_a_directory_or_not() {
        let under = |p: &str, d: &str| can_match_under(p, Path::new(d), false);
        assert!(under("/etc/nginx/conf.d/*.conf", "/etc/nginx/conf.d"));
        assert!(under("/etc/**/tls.pem", "/etc/nginx"));
        assert!(under("/etc/*/conf.d/*", "/etc/nginx"));
        assert!(can_match_under(
            "/etc/app.conf",
            Path::new("/etc/app.conf"),
            true
        ));
        assert!(!under("/etc/app.conf", "/etc/app.conf"), "a directory");
        assert!(!under("/etc/nginx/nginx.conf", "/etc/nginx/conf.d"));
        assert!(!under("/x/*", "/x/c"), "* cannot reach below c");
        assert!(!under("/elsewhere/*.conf", "/etc"));
    }

    #[test]
    fn a_file_under_nested_roots_matches_patterns_relative_to_either() {
        let routes = Routes::new(
            vec![PathBuf::from("/c"), PathBuf::from("/c/sub")],
            vec![Rule {
                pattern: "sub/*.md".into(),
                act: Act::Nothing,
            }],
        );
        assert!(routes.rule_for(Path::new("/c/sub/notes.md")).is_some());
        assert!(routes.rule_for(Path::new("/c/subway/notes.md")).is_none());
    }
}
