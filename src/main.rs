//! flush-manager: argv → cli → logging → supervisor → exit code.

mod child;
mod cli;
mod hook;
mod http;
mod install;
mod logging;
mod metrics;
mod off_loop;
mod parse;
mod promote;
mod reaper;
mod route;
mod signals;
mod state;
mod supervisor;
mod timers;
// Stand-ins for libunwind in the static build (see the module).
#[cfg(all(target_env = "musl", panic = "abort"))]
mod unwind;
mod watch;

use log::info;
use std::path::Path;

fn main() {
    let argv: Vec<String> = match std::env::args_os().map(|a| a.into_string()).collect() {
        Ok(argv) => argv,
        Err(bad) => {
            say(
                std::io::stderr(),
                &format!("[flush-manager] ERROR: argument {bad:?} is not valid UTF-8"),
            );
            std::process::exit(2);
        }
    };
    let cwd = std::env::current_dir().ok();
    // One pass over the environment: every flag asks for its variables,
    // and getenv for each (about fifty) walked the whole environment.
    let vars: Vec<(std::ffi::OsString, std::ffi::OsString)> = std::env::vars_os().collect();
    // A value that is not UTF-8 is refused by name, as argv is (a path or a
    // command must not be mangled); tini's and dumb-init's variables, which
    // only have to be set or are single words, are read lossily (refused
    // where parsed).
    let not_utf8 = std::cell::Cell::new(None);
    let env = |name: &str| {
        let (_, value) = vars.iter().find(|(k, _)| k == name)?;
        match value.to_str() {
            Some(text) => Some(text.to_string()),
            None if name.starts_with("TINI_") || name.starts_with("DUMB_INIT_") => {
                Some(value.to_string_lossy().into_owned())
            }
            None => {
                let first = not_utf8.take().unwrap_or_else(|| name.to_string());
                not_utf8.set(Some(first));
                None
            }
        }
    };
    let parsed = cli::parse(&argv, &env, cwd.as_deref().unwrap_or(Path::new("/")));
    if let Some(name) = not_utf8.take() {
        let line = format!("[flush-manager] ERROR: environment variable {name} is not valid UTF-8");
        say(std::io::stderr(), &line);
        std::process::exit(2);
    }
    let cfg = match parsed {
        cli::Parsed::Run(cfg) => cfg,
        cli::Parsed::CopyTo(dir) => std::process::exit(install::run(&dir)),
        cli::Parsed::Exit { message, code: 0 } => {
            say(std::io::stdout(), &message);
            std::process::exit(0);
        }
        cli::Parsed::Exit { message, code } => {
            say(std::io::stderr(), &message);
            std::process::exit(code);
        }
    };
    logging::init(cfg.log_level, cfg.log_json);
    reaper::warn_on_reap(cfg.warn_on_reap);
    if let Some(sig) = cfg.parent_death_signal {
        reaper::parent_death_signal(sig);
    }

    info!("=== Flush Manager v{} starting ===", cli::VERSION);
    info!("PID: {}", std::process::id());
    let configs: Vec<String> = cfg
        .configs
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    info!(
        "Configuration: command={}, config_file={}",
        cfg.command[0],
        configs.join(",")
    );
    if cfg.config_is_default && std::fs::metadata(cli::DEFAULT_CONFIG).is_err() {
        info!(
            "No --config given: the default, {}, does not exist; it is waited for (--config '' watches nothing)",
            cli::DEFAULT_CONFIG
        );
    }

    // Keep no directory busy (an unmountable volume, a deleted dir); the
    // child still starts where we were started.
    if cwd.is_some()
        && let Err(e) = nix::unistd::chdir("/")
    {
        log::warn!("Cannot change directory to /: {e}");
    }
    std::process::exit(supervisor::run(*cfg, cwd));
}

/// Prints a line; a closed pipe (`--help | head -1`) is not an error worth
/// a panic (println! would abort on EPIPE).
pub fn say(mut out: impl std::io::Write, message: &str) {
    let _ = writeln!(out, "{message}");
}
