//! General parsers for values given on the command line or in the
//! environment: durations, booleans, shell-like words, `FROM:TO` pairs of
//! exit codes or signals, log levels. What a value means for one option (a
//! signal that cannot stop anything, a pair given twice) is decided in
//! `cli`; here only the spelling is checked.

use std::time::Duration;

/// `500ms`, `10s`, `1m30s`, `1.5s`, `0` (Go's time.ParseDuration, no sign).
/// Stricter than Go in one way: each unit at most once, largest first
/// (`1h30m`, never `1h1h` or `30m1h`), since a repeated or reversed unit is
/// far more likely a typo than a sum someone meant.
pub fn duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {text:?} (expected e.g. 500ms, 10s, 1m30s)");
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = text;
    // Whole nanoseconds, in integers: exact, and no float parsing machinery
    // in the binary for this one use.
    let mut total: u128 = 0;
    if rest.is_empty() {
        return Err(bad());
    }
    let too_large = || format!("duration {text:?} is too large (at most 100 years)");
    // The previous unit, as (its rank, its spelling): ranks fall from h to ns.
    let mut previous: Option<(u8, &str)> = None;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (whole, fraction) = rest[..num_len]
            .split_once('.')
            .unwrap_or((&rest[..num_len], ""));
        if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
            return Err(bad());
        }
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        let (rank, scale): (u8, u128) = match unit {
            "h" => (6, 3_600_000_000_000),
            "m" => (5, 60_000_000_000),
            "s" => (4, 1_000_000_000),
            "ms" => (3, 1_000_000),
            "us" | "µs" => (2, 1_000),
            "ns" => (1, 1),
            _ => return Err(bad()),
        };
        match previous {
            Some((r, u)) if r == rank => {
                return Err(format!(
                    "invalid duration {text:?}: unit {u:?} given twice (write e.g. 2h, not 1h1h)"
                ));
            }
            Some((r, u)) if r < rank => {
                return Err(format!(
                    "invalid duration {text:?}: {unit:?} after {u:?} (largest unit first, e.g. 1h30m)"
                ));
            }
            _ => previous = Some((rank, unit)),
        }
        // Digits past the 15th of a fraction are below a nanosecond even
        // of an hour.
        let mut part: u128 = 0;
        let mut tenths: u128 = 1;
        for digit in fraction.bytes().take(15) {
            part = part * 10 + u128::from(digit - b'0');
            tenths *= 10;
        }
        let mut value: u128 = 0;
        for digit in whole.bytes() {
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(u128::from(digit - b'0')))
                .ok_or_else(too_large)?;
        }
        total = value
            .checked_mul(scale)
            .and_then(|v| v.checked_add(part * scale / tenths))
            .and_then(|v| v.checked_add(total))
            .ok_or_else(too_large)?;
        rest = &rest[unit_len..];
    }
    // Every deadline is `now + d`: keep it representable.
    if total > MAX_DURATION.as_nanos() {
        return Err(too_large());
    }
    Ok(Duration::from_nanos(total as u64))
}

const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 86_400);

/// The one boolean grammar, for `--flag=VALUE` and for variables alike:
/// Go's strconv.ParseBool spellings (what the Go tool's users write), plus
/// the empty string as false, since `VAR=` in a manifest means "not set".
pub fn boolean(text: &str) -> Result<bool, String> {
    match text {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "" | "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(format!(
            "invalid boolean value {text:?} (expected true or false, 1 or 0)"
        )),
    }
}

/// `143:0`: an exit code mapped to another, both 0-255.
pub fn exit_pair(text: &str) -> Result<(i32, i32), String> {
    let bad = || format!("invalid exit code pair {text:?} (expected FROM:TO, codes 0-255)");
    let (from, to) = text.split_once(':').ok_or_else(bad)?;
    let code = |s: &str| s.trim().parse::<u8>().map(i32::from).map_err(|_| bad());
    Ok((code(from)?, code(to)?))
}

/// `USR1:HUP`, `15:3`, `SIGWINCH:none`: a signal and what it becomes;
/// `None` when the right side is one of `drop` (the words that mean
/// "not forwarded": `none` for ours, `0` for dumb-init's `-r`).
pub fn signal_pair(text: &str, drop: &[&str]) -> Result<(i32, Option<i32>), String> {
    let (from, to) = text
        .split_once(':')
        .ok_or_else(|| "expected FROM:TO, e.g. USR1:HUP or WINCH:none".to_string())?;
    let from = crate::signals::parse(from.trim())?;
    let to = match to.trim() {
        t if drop.iter().any(|d| t.eq_ignore_ascii_case(d)) => None,
        t => Some(crate::signals::parse(t)?),
    };
    Ok((from, to))
}

/// A comma-separated list (a variable standing for a repeatable flag),
/// items trimmed, empty ones left out.
pub fn comma_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

pub fn level(text: &str) -> Result<log::LevelFilter, String> {
    text.parse().map_err(|_| {
        format!("invalid log level {text:?} (expected error, warn, info, debug, trace or off)")
    })
}

/// Words split like a POSIX shell would (quotes, backslashes), without a shell.
pub fn words(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(format!("unterminated ' in {text:?}")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err(format!("unterminated \" in {text:?}")),
                        },
                        Some(c) => word.push(c),
                        None => return Err(format!("unterminated \" in {text:?}")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => word.push(c),
                    None => return Err(format!("trailing backslash in {text:?}")),
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(duration("0.1s"), Ok(Duration::from_millis(100)), "exact");
        assert_eq!(duration(".5m"), Ok(Duration::from_secs(30)));
        assert_eq!(duration("2.m"), Ok(Duration::from_secs(120)));
        assert_eq!(duration("1.000000001s"), Ok(Duration::new(1, 1)));
        assert_eq!(
            duration("1.0000000000000000009h"),
            Ok(Duration::from_secs(3600))
        );
        for huge in [
            "3000000000000000h",
            "99999999999999999999999999999999999999999h",
        ] {
            assert!(duration(huge).unwrap_err().contains("too large"), "{huge}");
        }
        for bad in [".s", "1.2.3s", "s", "1", "1x"] {
            assert!(
                duration(bad).unwrap_err().contains("invalid duration"),
                "{bad}"
            );
        }
        assert_eq!(duration("0"), Ok(Duration::ZERO));
        assert_eq!(
            duration("1h2m3s4ms5us6ns"),
            Ok(Duration::new(3723, 4_005_006))
        );
        for bad in [
            "1h1h",
            "1s1h",
            "1ms1s",
            "1us1µs",
            "2m1m",
            "",
            "5",
            "-1s",
            "1x",
            "s",
            "3000000000000000h",
            "101y",
            "876001h",
        ] {
            assert!(duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn shell_words() {
        assert_eq!(words(r#"nginx -t"#).unwrap(), ["nginx", "-t"]);
        assert_eq!(
            words(r#"sh -c 'exit 1' "a b" c\ d"#).unwrap(),
            ["sh", "-c", "exit 1", "a b", "c d"]
        );
        assert!(words("'open").is_err());
    }

    #[test]
    fn one_boolean_grammar() {
        for yes in ["1", "t", "T", "true", "TRUE", "True"] {
            assert_eq!(boolean(yes), Ok(true), "{yes}");
        }
        for no in ["", "0", "f", "F", "false", "FALSE", "False"] {
            assert_eq!(boolean(no), Ok(false), "{no:?}");
        }
        for bad in ["yes", "maybe", "2", " true"] {
            assert!(boolean(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pairs() {
        use nix::libc::{SIGHUP, SIGQUIT, SIGTERM, SIGUSR1};
        assert_eq!(exit_pair("143:0"), Ok((143, 0)));
        assert!(exit_pair("143").is_err() && exit_pair("256:0").is_err());
        assert_eq!(
            signal_pair("USR1:HUP", &["none"]),
            Ok((SIGUSR1, Some(SIGHUP)))
        );
        assert_eq!(signal_pair("15:3", &["0"]), Ok((SIGTERM, Some(SIGQUIT))));
        assert_eq!(signal_pair("10:0", &["0"]), Ok((SIGUSR1, None)));
        assert_eq!(signal_pair("USR1:None", &["none"]), Ok((SIGUSR1, None)));
        assert!(signal_pair("USR1", &["none"]).is_err());
        assert_eq!(comma_list(" a, ,b "), ["a", "b"]);
    }
}
