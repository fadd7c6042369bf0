//! `[flush-manager] LEVEL: message` on stderr (the child's stdout stays the
//! child's). The format is the Go tool's, which users grep for.

use std::io::Write;

pub fn init(level: log::LevelFilter) {
    env_logger::Builder::new()
        .filter_level(level)
        .target(env_logger::Target::Stderr)
        .format(|buf, record| {
            writeln!(buf, "[flush-manager] {}: {}", record.level(), record.args())
        })
        .init();
}
