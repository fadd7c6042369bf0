//! `[flush-manager] LEVEL: message` on stderr (the child's stdout stays the
//! child's). The format is the Go tool's, which users grep for.

use std::io::Write;

pub fn init(level: log::LevelFilter) {
    env_logger::Builder::new()
        .filter_level(level)
        // notify reports a watch the kernel already dropped (a replaced
        // directory) at INFO: noise at our default level, kept for debug.
        .filter_module(
            "notify",
            if level >= log::LevelFilter::Debug {
                level
            } else {
                level.min(log::LevelFilter::Warn)
            },
        )
        .target(env_logger::Target::Stderr)
        .format(|buf, record| {
            writeln!(buf, "[flush-manager] {}: {}", record.level(), record.args())
        })
        .init();
}
