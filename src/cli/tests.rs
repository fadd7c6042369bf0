use super::*;

fn run(args: &[&str]) -> Result<Config, (String, i32)> {
    run_env(args, &[])
}

fn run_env(args: &[&str], vars: &[(&str, &str)]) -> Result<Config, (String, i32)> {
    let argv: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let env = move |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    run_as("flush-manager", &argv, &env)
}

/// Parses `args` as the binary run under the name `program`.
fn run_as(
    program: &str,
    args: &[String],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, (String, i32)> {
    let argv: Vec<String> = std::iter::once(program.to_string())
        .chain(args.iter().cloned())
        .collect();
    match parse(&argv, env, Path::new("/start")) {
        Parsed::Run(c) => Ok(*c),
        Parsed::Exit { message, code } => Err((message, code)),
    }
}

#[test]
fn go_spellings_of_the_seed() {
    for form in [
        vec!["-command", "/bin/app", "a1", "-x"],
        vec!["--command", "/bin/app", "a1", "-x"],
        vec!["-command=/bin/app", "a1", "-x"],
        vec!["--command=/bin/app", "a1", "-x"],
    ] {
        let c = run(&form).unwrap();
        assert_eq!(c.command, ["/bin/app", "a1", "-x"], "{form:?}");
    }
    let c = run(&["-command", "/bin/app", "-config", "/etc/a.conf"]).unwrap();
    assert_eq!(c.configs, [PathBuf::from("/etc/a.conf")]);
    assert_eq!(c.command, ["/bin/app"]);
}

#[test]
fn tini_form_and_arguments_untouched() {
    let c = run(&[
        "--stop-timeout",
        "2s",
        "--",
        "/bin/sh",
        "-c",
        "exit 3",
        "--",
        "--config",
    ])
    .unwrap();
    assert_eq!(c.command, ["/bin/sh", "-c", "exit 3", "--", "--config"]);
    assert_eq!(c.stop_timeout, Duration::from_secs(2));
    // Parsing stops at the first non-flag, Go's rule.
    let c = run(&["/bin/echo", "--version"]).unwrap();
    assert_eq!(c.command, ["/bin/echo", "--version"]);
}

#[test]
fn defaults_are_the_seeds() {
    let c = run(&[]).unwrap();
    assert_eq!(c.command, [DEFAULT_COMMAND]);
    assert_eq!(c.configs, [PathBuf::from(DEFAULT_CONFIG)]);
    assert_eq!(c.stop_signal, nix::libc::SIGTERM);
    assert_eq!(c.stop_timeout, Duration::from_secs(10));
    assert_eq!(c.debounce, Duration::from_millis(500));
    assert_eq!(c.poll_interval, Duration::from_secs(5));
    assert_eq!(c.restart, Policy::Never);
    assert_eq!(c.log_level, log::LevelFilter::Info);
}

#[test]
fn version_and_help_exit_zero() {
    for v in [["-version"], ["--version"]] {
        let (msg, code) = run(&v).unwrap_err();
        assert_eq!(
            (msg.as_str(), code),
            (format!("flush-manager version {VERSION}").as_str(), 0)
        );
    }
    let (msg, code) = run(&["-help"]).unwrap_err();
    assert_eq!(code, 0);
    assert!(
        msg.contains("--stop-timeout") && msg.contains("--reload-signal"),
        "{msg}"
    );
}

#[test]
fn help_lists_every_flag() {
    let text = help();
    for flag in FLAGS.iter().map(|f| f.name) {
        assert!(
            text.contains(&format!("--{flag} ")) || text.contains(&format!("--{flag}\n")),
            "--{flag} missing from --help"
        );
    }
    let (msg, code) = run(&["--config", "x", "-h"]).unwrap_err();
    assert_eq!((msg, code), (text, 0));
    let c = run(&["--", "app", "--help"]).unwrap();
    assert_eq!(
        c.command,
        ["app", "--help"],
        "after --, --help is the command's"
    );
}

#[test]
fn bad_input_is_a_usage_error() {
    for bad in [
        vec!["--nope"],
        vec!["--stop-timeout", "soon"],
        vec!["--stop-timeout"],
        vec!["--stop-signal", "SIGNOPE"],
        vec!["--command", ""],
        vec!["--restart", "sometimes"],
        vec!["--remap-exit", "143"],
        vec!["--log-level", "loud"],
        vec!["--poll-only=maybe"],
        vec!["--signal-to", "everyone"],
        vec!["--restart-signal", "TERM"],
        vec!["--restart-signal", "CHLD"],
        vec!["--map-signal", "USR1"],
        vec!["--map-signal", "TERM:HUP"],
        vec!["--map-signal", "USR1:NOPE"],
        vec!["--reload-signal", "HUP", "--reload-command", "true"],
        vec!["--reload-url", "http://x/", "--reload-command", "true"],
        vec!["--reload-url", "https://x/"],
        vec!["--reload-url", "x"],
        vec!["--metrics", "nope"],
        vec!["--log-format", "xml"],
    ] {
        let (msg, code) = run(&bad).unwrap_err();
        assert_eq!(code, 2, "{bad:?}");
        assert!(msg.starts_with("[flush-manager] ERROR: "), "{msg}");
    }
    let (msg, _) = run(&["--nope"]).unwrap_err();
    assert!(msg.contains("--nope"), "{msg}");
}

/// Issue #18: every flag (or pair of flags) that cannot mean anything
/// sensible is refused with exit 2 and a message saying why; before,
/// each was taken silently (or, for RTMAX+1, read as RTMAX-1).
#[test]
fn nonsensical_flags_are_refused_saying_why() {
    // Real-time signals exist on Linux only.
    #[cfg(target_os = "linux")]
    let realtime = [
        (
            vec!["--stop-signal", "RTMAX+1"],
            "no signal comes after RTMAX",
        ),
        (
            vec!["--stop-signal", "RTMIN+99"],
            "outside the real-time range",
        ),
        (vec!["--stop-signal", "RTMIN-1"], "before RTMIN"),
        (
            vec!["--restart-signal", "RTMAX+2"],
            "no signal comes after RTMAX",
        ),
        (
            vec!["--map-signal", "RTMAX+1:HUP"],
            "no signal comes after RTMAX",
        ),
    ];
    #[cfg(not(target_os = "linux"))]
    let realtime: [(Vec<&str>, &str); 0] = [];
    for (bad, why) in realtime.into_iter().chain([
        (vec!["--reload-signal", "KILL"], "SIGKILL cannot be caught"),
        (
            vec!["--reload-signal", "SIGSTOP"],
            "SIGSTOP cannot be caught",
        ),
        (vec!["--reload-signal", "9"], "could not reload on it"),
        (vec!["--stop-signal", "KILL"], "--stop-timeout 0"),
        (vec!["--stop-signal", "SIGKILL"], "must be one it can catch"),
        (vec!["--stop-signal", "STOP"], "only pauses the child"),
        (vec!["--stop-signal", "CHLD"], "the child would not stop"),
        (
            vec!["--remap-exit", "143:0", "--remap-exit", "143:1"],
            "exit code 143 is mapped twice (143:0 and 143:1)",
        ),
        (
            vec!["--map-signal", "USR1:HUP", "--map-signal", "USR1:none"],
            "SIGUSR1 is mapped twice",
        ),
        (
            vec!["--restart-signal", "HUP", "--map-signal", "HUP:USR1"],
            "SIGHUP is claimed twice",
        ),
        (
            vec!["--restart-signal", "USR2", "--map-signal", "SIGUSR2:none"],
            "SIGUSR2 is claimed twice",
        ),
        (vec!["--validate", ""], "--validate: empty command"),
        (vec!["--validate", "  \t "], "--validate: empty command"),
        (vec!["--validate", "''"], "--validate: empty command \"''\""),
        (
            vec!["--reload-command", "\"\" -x"],
            "--reload-command: empty command",
        ),
        (
            vec!["--reload-command", " "],
            "--reload-command: empty command",
        ),
        (vec!["--stop-timeout", "1h1h"], "unit \"h\" given twice"),
        (vec!["--debounce", "500ms500ms"], "given twice"),
        (vec!["--stop-timeout", "1s1h"], "largest unit first"),
        (vec!["--splay", "30s1m"], "largest unit first"),
        (
            vec!["--reload-url", "http://::1:9090/x"],
            "must be in brackets",
        ),
        (vec!["--reload-url", "http://[::1/x"], "unclosed '['"),
    ]) {
        let (msg, code) = run(&bad).expect_err(&format!("{bad:?} was accepted"));
        assert_eq!(code, 2, "{bad:?}: {msg}");
        assert!(msg.starts_with("[flush-manager] ERROR: "), "{msg}");
        assert!(msg.contains(why), "{bad:?}: {msg:?} does not say {why:?}");
    }
    // The environment is held to the same rules.
    for (var, value, why) in [
        ("FLUSH_MANAGER_VALIDATE", "", "--validate: empty command"),
        ("FLUSH_MANAGER_REMAP_EXIT", "1:0, 1:2", "mapped twice"),
        ("FLUSH_MANAGER_STOP_SIGNAL", "KILL", "--stop-timeout 0"),
    ] {
        let (msg, code) = run_env(&["--", "x"], &[(var, value)]).unwrap_err();
        assert_eq!(code, 2, "{var}={value}");
        assert!(msg.contains(why), "{var}={value}: {msg}");
    }
    // What stays accepted: the same pair twice is kept once; bracketed
    // IPv6 reload URLs; RTMAX-N and RTMIN+N inside the range.
    let c = run(&[
        "--remap-exit=143:0",
        "--remap-exit=143:0",
        "--map-signal=USR1:HUP",
        "--map-signal=USR1:HUP",
        "--reload-url=http://[::1]/-/reload",
        "--",
        "x",
    ])
    .unwrap();
    assert_eq!(c.remap_exit, [(143, 0)]);
    assert_eq!(
        c.map_signal,
        [(nix::libc::SIGUSR1, Some(nix::libc::SIGHUP))]
    );
    assert_eq!(c.reload_url.unwrap().port, 80);
    #[cfg(target_os = "linux")]
    assert_eq!(
        run(&["--stop-signal=RTMAX-1", "--", "x"])
            .unwrap()
            .stop_signal,
        nix::libc::SIGRTMAX() - 1
    );
    let c = run(&["--reload-url=http://[::1]:9090/x", "--", "x"]).unwrap();
    assert_eq!(c.reload_url.unwrap().to_string(), "http://[::1]:9090/x");
}

#[test]
fn environment_fills_in_and_flags_win() {
    let vars = [
        ("FLUSH_MANAGER_STOP_TIMEOUT", "30s"),
        ("FLUSH_MANAGER_CONFIG", "/a.conf, b.conf"),
        ("FLUSH_MANAGER_RELOAD_SIGNAL", "HUP"),
        ("FLUSH_MANAGER_LOG", "warn"),
        ("FLUSH_MANAGER_COMMAND", "/bin/app"),
    ];
    let c = run_env(&[], &vars).unwrap();
    assert_eq!(c.stop_timeout, Duration::from_secs(30));
    assert_eq!(
        c.configs,
        [PathBuf::from("/a.conf"), PathBuf::from("/start/b.conf")]
    );
    assert_eq!(c.reload_signal, Some(nix::libc::SIGHUP));
    assert_eq!(c.log_level, log::LevelFilter::Warn);
    assert_eq!(c.command, ["/bin/app"]);
    let c = run_env(
        &["--stop-timeout=1s", "--log-level", "debug", "--", "x"],
        &vars,
    )
    .unwrap();
    assert_eq!(c.stop_timeout, Duration::from_secs(1));
    assert_eq!(c.log_level, log::LevelFilter::Debug);
    assert_eq!(c.command, ["x"]);
    let (_, code) = run_env(&[], &[("FLUSH_MANAGER_DEBOUNCE", "fast")]).unwrap_err();
    assert_eq!(code, 2);
}

#[test]
fn relative_paths_join_the_starting_directory() {
    let c = run(&["--config", "conf/a.conf", "--", "./app.sh"]).unwrap();
    assert_eq!(c.configs, [PathBuf::from("/start/conf/a.conf")]);
    assert_eq!(c.command, ["/start/./app.sh"]);
    let c = run(&["--config", "", "--", "app"]).unwrap();
    assert!(c.configs.is_empty());
    assert_eq!(c.command, ["app"]);
}

#[test]
fn signal_options() {
    use nix::libc::{SIGHUP, SIGUSR1, SIGUSR2, SIGWINCH};
    let c = run(&[
        "--signal-to=group",
        "--restart-signal",
        "USR2",
        "--map-signal",
        "USR1:HUP",
        "--map-signal=WINCH:none",
        "--stop-delay",
        "5s",
        "--",
        "x",
    ])
    .unwrap();
    assert_eq!(c.signal_to, Target::Group);
    assert_eq!(c.restart_signal, Some(SIGUSR2));
    assert_eq!(c.map_signal, [(SIGUSR1, Some(SIGHUP)), (SIGWINCH, None)]);
    assert_eq!(c.stop_delay, Duration::from_secs(5));
    let c = run(&["--", "x"]).unwrap();
    assert_eq!(c.signal_to, Target::Child, "the master alone by default");
    assert_eq!(c.stop_delay, Duration::ZERO);
    let c = run_env(
        &["--", "x"],
        &[
            ("FLUSH_MANAGER_SIGNAL_TO", "group"),
            ("FLUSH_MANAGER_MAP_SIGNAL", "USR1:HUP, WINCH:none"),
            ("FLUSH_MANAGER_RESTART_SIGNAL", "SIGUSR2"),
        ],
    )
    .unwrap();
    assert_eq!(c.signal_to, Target::Group);
    assert_eq!(c.map_signal, [(SIGUSR1, Some(SIGHUP)), (SIGWINCH, None)]);
    assert_eq!(c.restart_signal, Some(SIGUSR2));
}

#[test]
fn remaps() {
    let c = run(&["--remap-exit", "143:0", "--remap-exit=1:2", "--", "x"]).unwrap();
    assert_eq!(c.remap_exit, [(143, 0), (1, 2)]);
}
