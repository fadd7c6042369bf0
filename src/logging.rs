//! Log lines on stderr (the child's stdout stays the child's).
//! - text (the default): `[flush-manager] LEVEL: message`, the Go tool's
//!   format, which users grep for;
//! - json: one object per line with an RFC 3339 timestamp, the level, the
//!   message and the structured fields a line carries (pid, path, signal,
//!   exit code), for log pipelines. Lines from the notify library come
//!   through the same formatter.

use std::fmt::Write as _;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

pub fn init(level: log::LevelFilter, json: bool) {
    let mut builder = env_logger::Builder::new();
    builder
        .filter_level(level)
        // notify reports a watch the kernel already dropped (a replaced
        // directory) at INFO: noise at our default level, kept for debug.
        // Never its trace: one line per inotify event, which, with the log
        // written next to a watched directory, is itself an event (the log
        // would feed itself without end).
        .filter_module(
            "notify",
            if level >= log::LevelFilter::Debug {
                log::LevelFilter::Debug
            } else {
                level.min(log::LevelFilter::Warn)
            },
        )
        .target(env_logger::Target::Stderr);
    if json {
        builder.format(|buf, record| writeln!(buf, "{}", json_line(record, SystemTime::now())));
    } else {
        builder.format(|buf, record| {
            writeln!(buf, "[flush-manager] {}: {}", record.level(), record.args())
        });
    }
    let inner = builder.build();
    let max = inner.filter();
    if log::set_boxed_logger(Box::new(Tamed(inner))).is_ok() {
        log::set_max_level(max);
    }
}

/// env_logger, with notify's routine lines put in their place first.
struct Tamed(env_logger::Logger);

impl log::Log for Tamed {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        self.0.enabled(metadata)
    }

    fn log(&self, record: &log::Record) {
        match tame(record) {
            None => self.0.log(record),
            Some((level, message)) => {
                let metadata = log::Metadata::builder()
                    .level(level)
                    .target(record.target())
                    .build();
                if self.0.enabled(&metadata) {
                    self.0.log(
                        &log::Record::builder()
                            .metadata(metadata)
                            .module_path(record.module_path())
                            .file(record.file())
                            .line(record.line())
                            .args(format_args!("{message}"))
                            .build(),
                    );
                }
            }
        }
    }

    fn flush(&self) {
        self.0.flush()
    }
}

/// notify logs two lines about watches the kernel already dropped (a
/// watched directory deleted or renamed: notify removes its watch once for
/// the parent's event and again for the directory's own, and the second
/// finds nothing). Routine, so debug, not WARN; and with the error's
/// Display text, not the Debug dump notify formats into them.
fn tame(record: &log::Record) -> Option<(log::Level, String)> {
    if !record.target().starts_with("notify") {
        return None;
    }
    let text = record.args().to_string();
    if let Some(dump) = text.strip_prefix("Unable to remove the path from the watches: ") {
        if !dump.contains("kind: WatchNotFound") {
            return None;
        }
        // notify's Display: "No watch was found. about [paths]".
        let paths = dump
            .split_once("paths: ")
            .map(|(_, p)| p.trim_end_matches(" }"))
            .filter(|p| *p != "[]")
            .map_or(String::new(), |p| format!(" for {p}"));
        return Some((
            log::Level::Debug,
            format!("Watch already removed by the kernel{paths} (notify: no watch was found)"),
        ));
    }
    if let Some(dump) = text.strip_prefix("unable to remove watch descriptor from inotify: ") {
        return Some((
            log::Level::Debug,
            format!(
                "Watch descriptor already removed by the kernel (inotify: {})",
                io_error_display(dump)
            ),
        ));
    }
    None
}

/// `Os { code: 22, kind: InvalidInput, message: "Invalid argument" }` (an
/// io::Error's Debug) → `Invalid argument (os error 22)` (its Display);
/// anything else as it is.
fn io_error_display(dump: &str) -> String {
    let field = |name: &str| {
        dump.split_once(name)
            .map(|(_, rest)| rest.split([',', '}']).next().unwrap_or("").trim())
    };
    match (field("code: "), field("message: ")) {
        (Some(code), Some(message)) if dump.starts_with("Os {") => {
            format!("{} (os error {code})", message.trim_matches('"'))
        }
        _ => dump.to_string(),
    }
}

/// `{"ts":"…","level":"INFO","message":"…",<fields>}`.
fn json_line(record: &log::Record, now: SystemTime) -> String {
    let mut out = format!(
        "{{\"ts\":\"{}\",\"level\":\"{}\",\"message\":",
        rfc3339(now),
        record.level()
    );
    quote(&mut out, &record.args().to_string());
    if !record.target().starts_with("flush_manager") {
        out.push_str(",\"source\":");
        quote(&mut out, record.target());
    }
    let mut fields = Fields(&mut out);
    let _ = record.key_values().visit(&mut fields);
    out.push('}');
    out
}

struct Fields<'a>(&'a mut String);

impl<'kvs> log::kv::VisitSource<'kvs> for Fields<'_> {
    fn visit_pair(
        &mut self,
        key: log::kv::Key<'kvs>,
        value: log::kv::Value<'kvs>,
    ) -> Result<(), log::kv::Error> {
        self.0.push(',');
        quote(self.0, key.as_str());
        self.0.push(':');
        // Integers and strings only (what our lines carry): no float
        // formatting code for a field type never used.
        match (value.to_i64(), value.to_borrowed_str()) {
            (Some(n), _) => {
                let _ = write!(self.0, "{n}");
            }
            (None, Some(text)) => quote(self.0, text),
            (None, None) => self.0.push_str("null"),
        }
        Ok(())
    }
}

/// A JSON string literal.
fn quote(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `2026-11-26T19:50:00.123Z` (UTC; civil date from days since the epoch).
fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let at = |s| rfc3339(UNIX_EPOCH + Duration::from_millis(s));
        assert_eq!(at(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(at(1_795_722_000_123), "2026-11-26T19:40:00.123Z");
    }

    fn tamed(target: &str, level: log::Level, text: &str) -> Option<(log::Level, String)> {
        tame(
            &log::Record::builder()
                .args(format_args!("{text}"))
                .level(level)
                .target(target)
                .build(),
        )
    }

    /// Issue #18: a watched directory deleted made notify log
    /// `WARN: Unable to remove the path from the watches: Error { kind:
    /// WatchNotFound, … }`, routine and in Debug form.
    #[test]
    fn notify_routine_watch_removals_are_debug_with_display_text() {
        let (level, text) = tamed(
            "notify::inotify",
            log::Level::Warn,
            r#"Unable to remove the path from the watches: Error { kind: WatchNotFound, paths: ["/etc/app/conf"] }"#,
        )
        .unwrap();
        assert_eq!(level, log::Level::Debug);
        assert_eq!(
            text,
            r#"Watch already removed by the kernel for ["/etc/app/conf"] (notify: no watch was found)"#
        );
        let (level, text) = tamed(
            "notify::inotify",
            log::Level::Info,
            r#"unable to remove watch descriptor from inotify: Os { code: 22, kind: InvalidInput, message: "Invalid argument" }"#,
        )
        .unwrap();
        assert_eq!(level, log::Level::Debug);
        assert!(
            text.ends_with("(inotify: Invalid argument (os error 22))"),
            "{text}"
        );
        // Anything else passes as it is: other notify errors, our own lines.
        for (target, text) in [
            (
                "notify::inotify",
                "Unable to remove the path from the watches: Error { kind: Io(..), paths: [] }",
            ),
            ("notify::inotify", "something else"),
            (
                "flush_manager::watch",
                "Unable to remove the path from the watches: Error { kind: WatchNotFound, paths: [] }",
            ),
        ] {
            assert_eq!(tamed(target, log::Level::Warn, text), None, "{text}");
        }
    }

    #[test]
    fn json_lines_escape_and_carry_fields() {
        let kvs: &[(&str, log::kv::Value)] = &[("pid", 42.into()), ("path", "/a \"b\"".into())];
        let record = log::Record::builder()
            .args(format_args!("line \"one\"\nand two"))
            .level(log::Level::Info)
            .target("flush_manager::child")
            .key_values(&kvs)
            .build();
        let line = json_line(&record, UNIX_EPOCH);
        assert_eq!(
            line,
            r#"{"ts":"1970-01-01T00:00:00.000Z","level":"INFO","message":"line \"one\"\nand two","pid":42,"path":"/a \"b\""}"#
        );
    }
}
