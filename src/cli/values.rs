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

/// A setting's values, in order, and where they came from.
pub struct Setting<T> {
    pub values: Vec<T>,
    /// Each value as written, for messages.
    pub texts: Vec<String>,
    pub source: Source,
}

impl<T> Setting<T> {
    pub fn resolve(
        flag: &Flag,
        given: Vec<Given<T>>,
        env: &dyn Fn(&str) -> Option<String>,
        who: Personality,
        parse: fn(&str) -> Result<Given<T>, String>,
    ) -> Result<Setting<T>, String> {
        let (given, source) = match given.is_empty() {
            false => (given, Source::CommandLine),
            true => match fallback(flag, env, who)? {
                Some((texts, source)) => (texts.iter().map(|t| parse(t)).collect::<Result<_, _>>()?, source),
                None => (Vec::new(), Source::Unset),
            },
        };
        // One value: the same one twice is harmless (argv assembled from
        // several places), two different ones are refused.
        if matches!(flag.kind, Kind::Value | Kind::Switch)
            && let Some(first) = given.first()
            && let Some(other) = given.iter().find(|g| g.text != first.text)
        {
            return Err(format!(
                "--{}: given as {:?} and as {:?}; give one",
                flag.name, first.text, other.text
            ));
        }
        let mut values = Vec::with_capacity(given.len());
        let mut texts = Vec::with_capacity(given.len());
        for g in given {
            values.push(g.value.map_err(|e| format!("--{}: {e}", flag.name))?);
            texts.push(g.text);
        }
        Ok(Setting {
            values,
            texts,
            source,
        })
    }

    /// The value (the first one of a list).
    pub fn get(&self) -> Option<&T> {
        self.values.first()
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
        let bad = |e: String| format!("{}: {e}", var.name());
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
            Var::Bool(_, on, off) => {
                let set = if parse::boolean(&text).map_err(bad)? {
                    on
                } else {
                    off
                };
                set.map(|v| vec![v.to_string()])
            }
            Var::Verbosity(_) => {
                let n: usize = text
                    .trim()
                    .parse()
                    .map_err(|_| bad(format!("expected a number from 0 to 4, not {text:?}")))?;
                Some(vec![["error", "warn", "info", "debug", "trace"][n.min(4)].to_string()])
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
