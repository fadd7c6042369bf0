//! The shipped examples stay true (issue 27): every workload under
//! docker/k8s/ is a Deployment that passes the restricted Pod Security
//! Standard, the README's first example is docker/k8s/nginx.yaml itself,
//! the alert rules pass promtool, and every size figure in the READMEs is
//! one bench/RESULTS.md holds. Read line by line (no YAML crate): the
//! examples are written in one plain style, which these checks hold them to.
// The shared helpers (tests/common) are Linux's, as every test file's.
#![cfg(target_os = "linux")]

mod common;

use common::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn examples() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(root().join("docker/k8s"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "{files:?}");
    files
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// The items of the list under `key:` (`containers:`), each as its lines.
fn items<'a>(doc: &'a str, key: &str) -> Vec<Vec<&'a str>> {
    let lines: Vec<&str> = doc.lines().collect();
    let mut out = vec![];
    for (i, line) in lines.iter().enumerate() {
        if line.trim() != format!("{key}:") {
            continue;
        }
        let base = indent(line);
        let mut current: Option<Vec<&str>> = None;
        for l in &lines[i + 1..] {
            if l.trim().is_empty() || l.trim_start().starts_with('#') {
                continue;
            }
            if indent(l) <= base && !l.trim_start().starts_with("- ") || indent(l) < base {
                break;
            }
            if l.trim_start().starts_with("- ") && indent(l) <= base + 2 {
                out.extend(current.take());
                current = Some(vec![l]);
            } else if let Some(c) = current.as_mut() {
                c.push(l);
            }
        }
        out.extend(current);
    }
    out
}

fn has(lines: &[&str], setting: &str) -> bool {
    let is = |l: &str| l == setting || l.starts_with(&format!("{setting} "));
    lines.iter().any(|l| {
        let l = l.trim_start();
        is(l) || l.strip_prefix("- ").is_some_and(is)
    })
}

/// The restricted Pod Security Standard, in every pod template: non-root
/// (a uid other than 0), RuntimeDefault seccomp, and in every container no
/// privilege escalation, no capability, a read-only root.
#[test]
fn every_example_workload_is_a_locked_down_deployment() {
    let mut deployments = 0;
    for file in examples() {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let text = fs::read_to_string(&file).unwrap();
        for doc in text.split("\n---\n") {
            let lines: Vec<&str> = doc.lines().collect();
            let kind = lines
                .iter()
                .find_map(|l| l.strip_prefix("kind: "))
                .unwrap_or_else(|| panic!("{name}: a document without a kind"));
            for banned in [
                "privileged: true",
                "hostPath:",
                "hostNetwork: true",
                "hostPID: true",
                "runAsUser: 0",
                "allowPrivilegeEscalation: true",
                "runAsNonRoot: false",
            ] {
                assert!(!has(&lines, banned), "{name}: {banned}");
            }
            if !doc.contains("containers:") {
                assert!(
                    ["ConfigMap", "Secret", "PrometheusRule", "PodMonitor"].contains(&kind),
                    "{name}: a {kind} is not a workload the checks know"
                );
                continue;
            }
            assert_eq!(kind, "Deployment", "{name}: workloads are Deployments");
            deployments += 1;
            assert!(has(&lines, "runAsNonRoot: true"), "{name}: runAsNonRoot");
            let uid = lines
                .iter()
                .find_map(|l| l.trim().strip_prefix("runAsUser: "))
                .unwrap_or_else(|| panic!("{name}: no runAsUser"));
            assert!(uid.parse::<u32>().is_ok_and(|u| u > 0), "{name}: uid {uid}");
            assert!(
                has(&lines, "seccompProfile: {type: RuntimeDefault}"),
                "{name}: seccompProfile RuntimeDefault"
            );
            let init = items(doc, "initContainers");
            let containers = items(doc, "containers");
            assert!(!containers.is_empty(), "{name}: no container found");
            for c in init.iter().chain(&containers) {
                let what = format!("{name}: {}", c[0].trim());
                assert!(has(c, "allowPrivilegeEscalation: false"), "{what}");
                assert!(has(c, "readOnlyRootFilesystem: true"), "{what}");
                assert!(has(c, "capabilities: {drop: [ALL]}"), "{what}");
            }
            // The stock-image pattern: our image's binary, copied by an
            // init container into the `fm` emptyDir, is what each runs.
            assert!(
                init.iter().any(|c| has(c, "args: [--copy-to, /fm]")),
                "{name}: no init container copies flush-manager into /fm"
            );
            for c in &containers {
                assert!(
                    c.iter().any(|l| l.contains("/fm/flush-manager")),
                    "{name}: {} does not run /fm/flush-manager",
                    c[0].trim()
                );
                assert!(
                    has(c, "- {name: fm, mountPath: /fm, readOnly: true}"),
                    "{name}: {}",
                    c[0].trim()
                );
            }
            assert!(has(&lines, "- {name: fm, emptyDir: {}}"), "{name}");
        }
    }
    assert!(deployments >= 5, "{deployments} deployments");
}

/// The checks above read what they mean to: a container without the
/// settings, or a bare Pod, fails them.
#[test]
fn the_line_reader_finds_each_container() {
    let doc = "kind: Deployment\nspec:\n  template:\n    spec:\n      initContainers:\n        - name: a\n          args: [--copy-to, /fm]\n      containers:\n        - name: b\n          image: x\n          securityContext:\n            readOnlyRootFilesystem: true\n        - name: c\n          image: y\n      volumes:\n        - {name: fm, emptyDir: {}}\n";
    let init = items(doc, "initContainers");
    let containers = items(doc, "containers");
    assert_eq!(init.len(), 1);
    assert_eq!(containers.len(), 2, "{containers:?}");
    assert!(has(&containers[0], "readOnlyRootFilesystem: true"));
    assert!(!has(&containers[1], "readOnlyRootFilesystem: true"));
    assert!(!has(&containers[0], "- {name: fm, emptyDir: {}}"));
}

/// The README's first code block is the stock-nginx Deployment, as shipped.
#[test]
fn the_readme_opens_with_the_stock_nginx_deployment() {
    let readme = fs::read_to_string(root().join("README.md")).unwrap();
    let shipped = fs::read_to_string(root().join("docker/k8s/nginx.yaml")).unwrap();
    let first = readme.split("```").nth(1).expect("a code block");
    let first = first
        .strip_prefix("yaml\n")
        .expect("the first block is YAML");
    let body = &shipped[shipped.find("apiVersion").unwrap()..];
    assert_eq!(first, body, "README's first block vs docker/k8s/nginx.yaml");
}

/// `spec:` of the PrometheusRule, dedented: a plain rules file.
fn rules_file(s: &Scratch) -> PathBuf {
    let text = fs::read_to_string(root().join("docker/k8s/alerts.yaml")).unwrap();
    let rule = text
        .split("\n---\n")
        .find(|doc| doc.contains("\nkind: PrometheusRule\n"))
        .expect("alerts.yaml has a PrometheusRule");
    let spec = rule
        .split_once("\nspec:\n")
        .expect("alerts.yaml has a spec")
        .1;
    let rules: String = spec
        .lines()
        .map(|l| format!("{}\n", l.strip_prefix("  ").unwrap_or(l)))
        .collect();
    let path = s.path("rules.yaml");
    fs::write(&path, rules).unwrap();
    path
}

/// `promtool check rules` accepts the groups, and `promtool test rules`
/// shows each alert firing on the series the manager exports.
#[test]
#[ignore = "needs promtool: apt-get install prometheus"]
fn the_alert_rules_pass_promtool_and_fire() {
    if !require_tool("promtool", "prometheus") {
        return;
    }
    let s = Scratch::new("alerts");
    let rules = rules_file(&s);
    let out = Command::new("promtool")
        .arg("check")
        .arg("rules")
        .arg(&rules)
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "promtool check rules: {said}");
    assert!(said.contains("3 rules found"), "{said}");

    let tests = r#"rule_files: [rules.yaml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'flush_manager_last_reload_successful{namespace="shop",pod="web-1"}'
        values: '1 1 0x15'
      - series: 'flush_manager_validations_total{namespace="shop",pod="web-1",result="failure"}'
        values: '0 0 1x15'
      - series: 'flush_manager_rollbacks_total{namespace="shop",pod="web-1"}'
        values: '0x5 1x10'
    alert_rule_test:
      - {eval_time: 1m, alertname: FlushManagerReloadFailing, exp_alerts: []}
      - {eval_time: 1m, alertname: FlushManagerConfigRejected, exp_alerts: []}
      - {eval_time: 1m, alertname: FlushManagerRolledBack, exp_alerts: []}
      - eval_time: 4m
        alertname: FlushManagerConfigRejected
        exp_alerts:
          - exp_labels: {severity: warning, namespace: shop, pod: web-1, result: failure}
            exp_annotations:
              summary: A pushed config failed its --validate check
              description: "shop/web-1 rejected a new config; the child keeps running on the last good one. See the manager's log for the check's output."
      - eval_time: 8m
        alertname: FlushManagerRolledBack
        exp_alerts:
          - exp_labels: {severity: warning, namespace: shop, pod: web-1}
            exp_annotations:
              summary: A config passed its check but broke the child, and was rolled back
              description: shop/web-1 went back to the previous good config within --rollback-window.
      - {eval_time: 11m, alertname: FlushManagerReloadFailing, exp_alerts: []}
      - eval_time: 13m
        alertname: FlushManagerReloadFailing
        exp_alerts:
          - exp_labels: {severity: critical, namespace: shop, pod: web-1}
            exp_annotations:
              summary: The last config change has not reached the child for 10 minutes
              description: "shop/web-1: the last config change was rejected, could not be promoted or reloaded, or was rolled back, and no newer one has taken since."
"#;
    let test_file = s.path("tests.yaml");
    fs::write(&test_file, tests).unwrap();
    let out = Command::new("promtool")
        .arg("test")
        .arg("rules")
        .arg(&test_file)
        .current_dir(&s.0)
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "promtool test rules: {said}");
}

/// Issue 27: sizes disagreed between the READMEs and the build. A size or
/// a ratio to tini in README.md or docker/README.md must be one that
/// bench/RESULTS.md (which bench/run.sh writes) holds; log samples aside.
#[test]
fn every_size_figure_in_the_readmes_is_in_bench_results() {
    let results = fs::read_to_string(root().join("bench/RESULTS.md")).unwrap();
    let mut stray = vec![];
    for doc in ["README.md", "docker/README.md"] {
        let text = fs::read_to_string(root().join(doc)).unwrap();
        for line in text.lines().filter(|l| !l.contains("[flush-manager] ")) {
            for figure in size_figures(line) {
                if !results.contains(&figure) {
                    stray.push(format!("{doc}: {figure}"));
                }
            }
        }
    }
    assert!(
        stray.is_empty(),
        "size figures not in bench/RESULTS.md (point there instead): {stray:?}"
    );
    // The reader finds what it should.
    assert_eq!(
        size_figures("829 KB static, 1.04 × tini-static, 968,064 B; 8 KiB"),
        ["829 KB", "968,064 B", "1.04 ×"]
    );
}

/// Figures like `829 KB`, `1.19 MB`, `968,064 B`, `836928 bytes`, `1.04 ×`.
fn size_figures(line: &str) -> Vec<String> {
    let mut out = vec![];
    let mut ratios = vec![];
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let starts = bytes[i].is_ascii_digit() && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric());
        if !starts {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < bytes.len() && (bytes[j].is_ascii_digit() || bytes[j] == b',' || bytes[j] == b'.')
        {
            j += 1;
        }
        let number = line[i..j].trim_end_matches([',', '.']);
        let rest = &line[i + number.len()..];
        let unit = ["KB", "MB", "kB", "GB", "bytes", "B", "×"]
            .into_iter()
            .find(|u| {
                let r = rest.strip_prefix(' ').unwrap_or(rest);
                r.starts_with(u) && !r[u.len()..].starts_with(|c: char| c.is_ascii_alphanumeric())
            });
        if let Some(u) = unit {
            let figure = format!("{number} {u}");
            if u == "×" {
                ratios.push(figure);
            } else {
                out.push(figure);
            }
        }
        i = j.max(i + 1);
    }
    out.extend(ratios);
    out
}
