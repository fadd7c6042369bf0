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
    signals::settle_mask();
    let cwd = std::env::current_dir().ok();
    let parsed = cli::parse_process(cwd.as_deref().unwrap_or(Path::new("/")));
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
