//! `mirrorsync check-config`.

use std::io::IsTerminal;
use std::path::Path;

use super::exit;
use crate::config::Config;

/// 0 if the config is valid, 2 with its errors on stderr. Says what it read only
/// on a terminal (or with `verbose`), so scripts can use it silently.
pub fn check_config(config_path: Option<&Path>, verbose: bool) -> u8 {
    match Config::load(config_path) {
        Ok(c) => {
            if verbose || std::io::stdout().is_terminal() {
                print!("{}", describe(&c));
            }
            exit::OK
        }
        Err(e) => {
            super::logging::error(&e);
            exit::USAGE
        }
    }
}

/// The config as read: a line for it, and one per mirror with where its upstream's
/// login comes from (never the login itself).
fn describe(c: &Config) -> String {
    let mut out = format!(
        "{}: {} mirror(s), root {}\n",
        c.source.display(),
        c.mirrors.len(),
        c.global.root.display()
    );
    for m in &c.mirrors {
        let login = match &m.auth {
            Some(auth) => match auth.for_url(&m.upstream) {
                Some(machine) => format!("login from {}", machine.describe(&auth.file)),
                None => format!("no machine in {} matches it", auth.file.display()),
            },
            None => "no auth_conf".to_string(),
        };
        out.push_str(&format!(
            "  {} ({}): {}: {login}\n",
            m.name,
            m.kind_name(),
            crate::upstream::redact(&m.upstream)
        ));
    }
    out
}
