//! One setting's value: from the command line, else from its variables,
//! else the default of the tool the binary stands in for; typed by its
//! row's parser wherever it came from.

use super::Personality;
use super::flags::{Flag, Kind, Var};
use crate::parse;

/// A value as written and as its row's parser read it.
pub struct Given<T> {
    pub value: Result<T, String>,
    pub text: String,
}

/// Where a setting's values came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    CommandLine,
    Variable,
    Default,
    /// Not given, no variable, no default.
    Unset,
}

/// A setting's values, in order, as written and typed, and where they
/// came from. Only a setting whose every value parsed leaves `resolve`.
pub struct Setting<T> {
    given: Vec<Given<T>>,
    pub source: Source,
}

impl<T> Setting<T> {
    /// The first error goes to `error` (with 40 rows, a `?` after each
    /// would drop what was built before it, 40 different ways). Kept out
    /// of line and short: one copy per value type, not one per row.
    #[inline(never)]
    pub fn resolve(
        flag: &Flag,
        mut given: Vec<Given<T>>,
        env: &dyn Fn(&str) -> Option<String>,
        who: Personality,
        parse: fn(&str) -> Result<T, String>,
        error: &mut Option<String>,
    ) -> Setting<T> {
        let mut source = Source::CommandLine;
        if given.is_empty() {
            source = Source::Unset;
            match fallback(flag, env, who) {
                Ok(Some((texts, from))) => {
                    source = from;
                    let typed = |text: String| Given {
                        value: parse(&text),
                        text,
                    };
                    given = texts.into_iter().map(typed).collect();
                }
                Ok(None) => {}
                Err(e) => note(error, e),
            }
        }
        let mut each = given
            .iter()
            .map(|g| (g.text.as_str(), g.value.as_ref().err()));
        if let Err(e) = check(flag, &mut each) {
            note(error, e);
        }
        Setting { given, source }
    }

    /// The values, in order.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.given.iter().filter_map(|g| g.value.as_ref().ok())
    }

    /// The values as written, for messages.
    pub fn texts(&self) -> impl Iterator<Item = &str> {
        self.given.iter().map(|g| g.text.as_str())
    }

    /// The value (the first one of a list).
    pub fn get(&self) -> Option<&T> {
        self.values().next()
    }

    pub fn given(&self) -> bool {
        self.source == Source::CommandLine
    }
}

impl<T: Copy + Default> Setting<T> {
    /// The value, or the type's zero (durations without a default, `false`).
    pub fn or_zero(&self) -> T {
        self.get().copied().unwrap_or_default()
    }
}

/// Keeps the first error: the one of the earliest row in the table.
fn note(error: &mut Option<String>, e: String) {
    error.get_or_insert(e);
}

/// A flag of one value: the same one twice is harmless (argv assembled
/// from several places), two different ones are refused; then the first
/// value that did not parse.
fn check(
    flag: &Flag,
    each: &mut dyn Iterator<Item = (&str, Option<&String>)>,
) -> Result<(), String> {
    let one = matches!(flag.kind, Kind::Value | Kind::Switch);
    let mut first = None;
    let mut bad = None;
    for (text, error) in each {
        match first {
            None => first = Some(text),
            Some(f) if one && f != text => {
                return Err(format!(
                    "--{}: given as {f:?} and as {text:?}; give one",
                    flag.name
                ));
            }
            Some(_) => {}
        }
        bad = bad.or(error);
    }
    match bad {
        Some(e) => Err(format!("--{}: {e}", flag.name)),
        None => Ok(()),
    }
}

/// The raw values of a flag left off the command line: the first of its
/// variables that is set, else this tool's default.
fn fallback(
    flag: &Flag,
    env: &dyn Fn(&str) -> Option<String>,
    who: Personality,
) -> Result<Option<(Vec<String>, Source)>, String> {
    for var in flag.vars {
        let Some(text) = env(var.name()) else {
            continue;
        };
        let value = match var {
            Var::Value(_) if flag.kind == Kind::List => Some(parse::comma_list(&text)),
            Var::Lines(_) => {
                // Blank lines and `#` comments are for the manifest's reader.
                let lines = text
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'));
                Some(lines.map(String::from).collect())
            }
            Var::Value(_) => Some(vec![text]),
            Var::Present(_, value) => Some(vec![value.to_string()]),
            // dumb-init compares with "1" and "0" and ignores anything else.
            Var::Bool(_, on, off) => {
                let set = match text.as_str() {
                    "1" => *on,
                    "0" => *off,
                    _ => None,
                };
                set.map(|v| vec![v.to_string()])
            }
            // tini reads it with atoi: a number's leading digits, else 0.
            Var::Verbosity(_) => {
                let n = atoi(&text).clamp(0, 4) as usize;
                Some(vec![
                    ["error", "warn", "info", "debug", "trace"][n].to_string(),
                ])
            }
        };
        if let Some(v) = value {
            return Ok(Some((v, Source::Variable)));
        }
    }
    Ok(flag
        .default_as(who)
        .map(|d| (vec![d.to_string()], Source::Default)))
}

/// C's `atoi`: leading blanks, a sign, then digits; whatever follows, or no
/// digits at all, is ignored (0).
fn atoi(text: &str) -> i64 {
    let t = text.trim_start();
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let n = digits
        .bytes()
        .take_while(u8::is_ascii_digit)
        .take(18)
        .fold(0i64, |n, d| n * 10 + i64::from(d - b'0'));
    if neg { -n } else { n }
}

#[cfg(test)]
mod atoi_tests {
    #[test]
    fn reads_numbers_as_c_does() {
        for (text, n) in [
            ("2", 2),
            (" 3x", 3),
            ("", 0),
            ("abc", 0),
            ("-1", -1),
            ("+4", 4),
        ] {
            assert_eq!(super::atoi(text), n, "{text:?}");
        }
    }
}
