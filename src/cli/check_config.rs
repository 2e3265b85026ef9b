//! `mirrorsync check-config`.

use std::io::IsTerminal;
use std::path::Path;

use super::exit;
use crate::config::Config;

/// 0 if the config is valid, 2 with its errors on stderr. Says what it read only
/// on a terminal, so scripts can use it silently.
pub fn check_config(config_path: Option<&Path>) -> u8 {
    match Config::load(config_path) {
        Ok(c) => {
            if std::io::stdout().is_terminal() {
                println!(
                    "{}: {} mirror(s), root {}",
                    c.source.display(),
                    c.mirrors.len(),
                    c.global.root.display()
                );
            }
            exit::OK
        }
        Err(e) => {
            eprintln!("mirrorsync: {e}");
            exit::USAGE
        }
    }
}
