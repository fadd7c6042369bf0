//! `--metrics ADDR`: what the supervisor did, in the Prometheus text format,
//! so a failed reload can alert, and the probes Kubernetes asks: `/healthz`
//! and `/readyz`. Served by `http::serve` from the supervisor's own
//! single-threaded executor (a loop stuck on something cannot answer
//! `/healthz`); nothing exists when the flag is not given.

use crate::state::Stats;
use std::fmt::Write;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug)]
pub struct Metrics {
    pub child_up: bool,
    pub stats: Stats,
    /// Unix time (ms) of the last time the child took new bytes (see
    /// `Stats::took`) and of the last change.
    pub last_reload: Option<u128>,
    pub last_change: Option<u128>,
    /// A short hash of the config the child runs with (never content).
    pub fingerprint: String,
    /// What `/readyz` says: ready, or why not.
    pub ready: Result<(), String>,
}

/// Now, as Unix milliseconds (integers: no float formatting code in the
/// binary for one decimal point).
fn unix_now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            child_up: false,
            stats: Stats::default(),
            last_reload: None,
            last_change: None,
            fingerprint: String::new(),
            ready: Err("starting".into()),
        }
    }
}

impl Metrics {
    /// Takes the machine's counters; a counter that moved stamps its time.
    /// Runs on every turn of the supervisor loop (each signal, each event):
    /// nothing is recomputed unless a counter or the child moved. The
    /// config the child runs with only changes along with a counter (a
    /// start, a change, a reload), so its hash is taken only then.
    pub fn update(
        &mut self,
        stats: &Stats,
        child_up: bool,
        fingerprint: impl FnOnce() -> String,
        ready: Result<(), String>,
    ) {
        self.ready = ready;
        if *stats == self.stats && child_up == self.child_up {
            return;
        }
        if stats.took > self.stats.took {
            self.last_reload = Some(unix_now_ms());
        }
        if stats.changes > self.stats.changes {
            self.last_change = Some(unix_now_ms());
        }
        self.stats = stats.clone();
        self.child_up = child_up;
        self.fingerprint = fingerprint();
    }

    /// The page at `path`, if any.
    pub fn page(&self, path: &str) -> Option<crate::http::Page> {
        let text = "text/plain; charset=utf-8";
        match path {
            "/metrics" => Some((
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                self.render(),
            )),
            // Answered at all: the loop's executor is turning.
            "/healthz" => Some(("200 OK", text, "ok\n".into())),
            "/readyz" => Some(match &self.ready {
                Ok(()) => ("200 OK", text, "ready\n".into()),
                Err(why) => (
                    "503 Service Unavailable",
                    text,
                    format!("not ready: {why}\n"),
                ),
            }),
            _ => None,
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, String)]| {
            let _ = writeln!(out, "# HELP flush_manager_{name} {help}");
            let _ = writeln!(out, "# TYPE flush_manager_{name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "flush_manager_{name}{labels} {value}");
            }
        };
        let plain = |v: String| vec![(String::new(), v)];
        let s = &self.stats;
        metric(
            "child_up",
            "gauge",
            "Whether the managed child is running (1) or not (0).",
            &plain(u8::from(self.child_up).to_string()),
        );
        let reasons = ["first", "config", "policy", "signal"];
        metric(
            "child_starts_total",
            "counter",
            "Child starts, by reason: first, config (a change), policy (--restart), signal (--restart-signal).",
            &reasons
                .iter()
                .zip(s.starts)
                .map(|(r, n)| (format!("{{reason=\"{r}\"}}"), n.to_string()))
                .collect::<Vec<_>>(),
        );
        let by_result = |ok: u64, failed: u64| {
            vec![
                ("{result=\"success\"}".to_string(), ok.to_string()),
                ("{result=\"failure\"}".to_string(), failed.to_string()),
            ]
        };
        metric(
            "reloads_total",
            "counter",
            "Config reloads (signal, command or URL), by result.",
            &by_result(s.reloads_ok, s.reloads_failed),
        );
        metric(
            "validations_total",
            "counter",
            "Runs of the --validate check, by result.",
            &by_result(s.validations_ok, s.validations_failed),
        );
        metric(
            "promotions_total",
            "counter",
            "Promotions into --promote-to (staged and committed), by result; a failure changed nothing the child sees.",
            &by_result(s.promotions_ok, s.promotions_failed),
        );
        metric(
            "rollbacks_total",
            "counter",
            "Automatic rollbacks to the previous good generation (--rollback-window).",
            &plain(s.rollbacks.to_string()),
        );
        metric(
            "ready",
            "gauge",
            "Whether /readyz answers 200 (1) or 503 (0).",
            &plain(u8::from(self.ready.is_ok()).to_string()),
        );
        metric(
            "config_changes_total",
            "counter",
            "Settled changes of the watched config's bytes.",
            &plain(s.changes.to_string()),
        );
        let stamp = |t: Option<u128>| {
            plain(t.map_or("0".into(), |t| format!("{}.{:03}", t / 1000, t % 1000)))
        };
        // 1 at start: the first child runs on bytes that passed the gate
        // (else the manager exits 78), so a fresh pod has nothing to alert
        // on; a source rejected at start (a last good generation kept) is 0.
        metric(
            "last_reload_successful",
            "gauge",
            "Whether the last config change reached the child (1) or failed, was rejected or rolled back (0).",
            &plain(u8::from(!s.last_failed).to_string()),
        );
        metric(
            "last_reload_success_timestamp_seconds",
            "gauge",
            "Unix time the child last took a config that passed (a start, reload or promotion; 0: none yet).",
            &stamp(self.last_reload),
        );
        metric(
            "last_config_change_timestamp_seconds",
            "gauge",
            "Unix time of the last settled config change (0: none yet).",
            &stamp(self.last_change),
        );
        metric(
            "config_info",
            "gauge",
            "The config the child runs with, as a short hash of its fingerprint (never its content).",
            &[(format!("{{hash=\"{}\"}}", self.fingerprint), "1".into())],
        );
        metric(
            "build_info",
            "gauge",
            "The flush-manager build.",
            &[(
                format!("{{version=\"{}\"}}", crate::cli::VERSION),
                "1".into(),
            )],
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by a hostile review: the alert rules' series were checked
    /// only against names written into the promtool test by hand, so a
    /// renamed metric would have left every shipped alert silent with the
    /// tests green. Each series `docker/k8s/alerts.yaml` names is rendered.
    #[test]
    fn every_series_the_shipped_alerts_use_is_exported() {
        let rules = include_str!("../docker/k8s/alerts.yaml");
        let text = Metrics::default().render();
        let mut used = 0;
        for (at, _) in rules.match_indices("flush_manager_") {
            let name: String = rules[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            used += 1;
            assert!(
                text.lines()
                    .any(|l| l.starts_with(&format!("{name} "))
                        || l.starts_with(&format!("{name}{{"))),
                "alerts.yaml uses {name}, which /metrics does not export:\n{text}"
            );
        }
        assert!(used >= 3, "the alerts name {used} series");
    }

    #[test]
    fn every_metric_has_help_and_type_and_moves() {
        let mut m = Metrics::default();
        let mut stats = Stats::default();
        stats.starts[0] = 1;
        m.update(&stats, true, || "0123abcd".into(), Ok(()));
        assert!(m.last_reload.is_none());
        assert!(
            m.render()
                .contains("flush_manager_last_reload_successful 1\n")
        );
        stats.reloads_ok = 1;
        stats.took = 1;
        stats.changes = 1;
        m.update(&stats, true, || "89abcdef".into(), Ok(()));
        assert!(m.last_reload.is_some() && m.last_change.is_some());
        let text = m.render();
        assert!(text.contains("flush_manager_child_starts_total{reason=\"first\"} 1"));
        assert!(text.contains("flush_manager_reloads_total{result=\"success\"} 1"));
        assert!(text.contains("flush_manager_config_info{hash=\"89abcdef\"} 1"));
        assert!(text.contains("flush_manager_last_reload_successful 1\n"));
        let stamped = m.last_reload;
        stats.validations_failed = 1;
        stats.last_failed = true;
        m.update(&stats, true, || "89abcdef".into(), Ok(()));
        assert!(
            m.render()
                .contains("flush_manager_last_reload_successful 0\n")
        );
        assert_eq!(m.last_reload, stamped, "a failure is no success time");
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(text.contains(&format!("# TYPE {name} ")), "{name}");
            assert!(text.contains(&format!("# HELP {name} ")), "{name}");
        }
    }
}
