//! argv as people write it → canonical tokens: each flag resolved to its
//! table row with the value it was given, then the command.
//!
//! One grammar under every name, because the entrypoints it must accept
//! mix them: the Go tool's (`-command X`, `--config=Y`: one or two dashes,
//! `=value` or a separate value; options end at the first non-flag or
//! `--`), getopt's clusters for tini's and dumb-init's one-letter flags
//! (`-vv`, `-sg`, `-e143`, `-r15:3`), and their aliases (`-g`, `-c`, `-e`).
//! The letters never collide with a long name, so nothing is ambiguous
//! until a Go line puts the command's own flags where ours go (see `go`).

use super::flags::{Flag, Kind, Spelling, lookup};
use crate::parse;

/// One flag as given, resolved to its row.
pub struct Token {
    pub flag: &'static Flag,
    /// What it sets the flag to: the value given, an alias's value, `true`
    /// or `false` for a switch, `true` for each `-v`.
    pub value: String,
}

/// The flags, then the command (everything after the options).
pub fn translate(argv: &[String]) -> Result<(Vec<Token>, Vec<String>), String> {
    let mut out = Vec::new();
    // Once a long flag was written with one dash (`-command`, `-config`),
    // the line is the Go tool's: there a word like `-redis.addr` is the
    // command's first flag, put where ours are (no `--`), not a getopt
    // cluster of tini's or dumb-init's letters (`-r edis.addr`).
    let mut go = false;
    let mut i = 0;
    while i < argv.len() {
        let arg = &argv[i];
        if arg == "--" {
            i += 1;
            break;
        }
        let (dashes, body) = match arg.strip_prefix("--") {
            Some(body) => (2, body),
            None => match arg.strip_prefix('-') {
                Some(body) => (1, body),
                None => break, // first non-flag: the command
            },
        };
        if body.is_empty() || body.starts_with('-') {
            break; // "-" alone or "---x": not a flag in Go either
        }
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (body, None),
        };
        let mut next = || {
            i += 1;
            argv.get(i)
                .cloned()
                .ok_or_else(|| format!("flag needs an argument: -{name}"))
        };
        match lookup(name) {
            Some(spelling) => {
                go |= dashes == 1 && name.chars().nth(1).is_some();
                let value = match (needs_value(&spelling), inline) {
                    (true, Some(v)) => Some(v.to_string()),
                    (true, None) => Some(next()?),
                    (false, v) => v.map(String::from),
                };
                out.push(token(spelling, value, name)?);
            }
            None if dashes == 1 && inline.is_none() && !go => {
                for (at, letter) in body.char_indices() {
                    let one = &body[at..at + letter.len_utf8()];
                    let Some(spelling) = lookup(one).filter(|_| letter.is_ascii()) else {
                        return Err(unknown(arg));
                    };
                    if needs_value(&spelling) {
                        let rest = &body[at + one.len()..];
                        let value = if rest.is_empty() {
                            next()?
                        } else {
                            rest.into()
                        };
                        out.push(token(spelling, Some(value), one)?);
                        break;
                    }
                    out.push(token(spelling, None, one)?);
                }
            }
            None => return Err(unknown(arg)),
        }
        i += 1;
    }
    Ok((out, argv.get(i..).unwrap_or_default().to_vec()))
}

/// An unknown flag, named as written; it is often the command's own, given
/// before a `--` that was forgotten.
fn unknown(arg: &str) -> String {
    format!(
        "unknown flag: {arg} (a flag of the command goes after --: [OPTIONS] -- COMMAND [ARGS...])"
    )
}

fn needs_value(spelling: &Spelling) -> bool {
    match spelling {
        Spelling::Flag(f) => matches!(f.kind, Kind::Value | Kind::List),
        Spelling::Alias(_, a) => a.takes_value(),
    }
}

/// A spelling and what was written with it → its flag and that flag's value.
fn token(spelling: Spelling, value: Option<String>, name: &str) -> Result<Token, String> {
    let no_value = |v: &Option<String>| match v {
        Some(v) => Err(format!("flag -{name} takes no value (given {v:?})")),
        None => Ok(()),
    };
    let (flag, value) = match spelling {
        Spelling::Alias(flag, alias) if alias.takes_value() => (
            flag,
            alias.value.replace("{}", value.as_deref().unwrap_or("")),
        ),
        Spelling::Alias(flag, alias) => {
            no_value(&value)?;
            (flag, alias.value.to_string())
        }
        Spelling::Flag(flag) => match flag.kind {
            Kind::Value | Kind::List => (flag, value.unwrap_or_default()),
            Kind::Switch => {
                let on = value.as_deref().map_or(Ok(true), parse::boolean);
                let on = on.map_err(|e| format!("-{name}: {e}"))?;
                (flag, on.to_string())
            }
            Kind::Count => {
                no_value(&value)?;
                (flag, "true".into())
            }
        },
    };
    Ok(Token { flag, value })
}
