//! Logins for upstreams that want one, from a file in apt's auth.conf format
//! (apt_auth.conf(5)): `machine [scheme://]host[:port][/path] login NAME password
//! SECRET`, tokens separated by any white space, `#` comments. The first machine
//! that matches a request's URL gives its login, as apt does; a machine without a
//! scheme matches https only (apt will not send a password in clear unless told to).
//!
//! The passwords never leave this module but as the Authorization header: no
//! `Debug`, no message and no record shows one.

use std::path::{Path, PathBuf};

use url::Url;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("auth_conf {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "auth_conf {}: mode {mode:04o} lets other users read its passwords; `chmod 600 {}` it",
        .path.display(), .path.display()
    )]
    Readable { path: PathBuf, mode: u32 },
    #[error("auth_conf {}, line {line}: {detail}", .path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        detail: String,
    },
}

/// The machines of one auth.conf file, in file order.
#[derive(Debug, Clone)]
pub struct AuthConf {
    pub file: PathBuf,
    machines: Vec<Machine>,
}

/// One `machine` entry.
#[derive(Clone)]
pub struct Machine {
    /// As written after `machine`, for messages (it holds no secret).
    pub name: String,
    pub line: usize,
    scheme: Option<String>,
    host: String,
    port: Option<u16>,
    path: String,
    login: String,
    password: String,
}

/// The login is shown, the password never.
impl std::fmt::Debug for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Machine")
            .field("name", &self.name)
            .field("line", &self.line)
            .field("login", &self.login)
            .finish_non_exhaustive()
    }
}

impl Machine {
    fn parse(name: &str, line: usize) -> Result<Machine, String> {
        let (scheme, rest) = match name.split_once("://") {
            Some((s, rest)) => (Some(s.to_ascii_lowercase()), rest),
            None => (None, name),
        };
        let (hostport, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (host, port) = match hostport.strip_prefix('[') {
            Some(v6) => {
                let (h, after) = v6
                    .split_once(']')
                    .ok_or_else(|| format!("machine {name}: no ']' after an IPv6 address"))?;
                (h, after.strip_prefix(':'))
            }
            None => match hostport.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            },
        };
        let port = port
            .map(|p| {
                p.parse::<u16>()
                    .map_err(|_| format!("machine {name}: port {p:?} is not a number"))
            })
            .transpose()?;
        if host.is_empty() {
            return Err(format!("machine {name:?} names no host"));
        }
        Ok(Machine {
            name: name.to_string(),
            line,
            scheme,
            host: host.to_ascii_lowercase(),
            port,
            path: path.to_string(),
            login: String::new(),
            password: String::new(),
        })
    }

    /// apt's rule: scheme (https when none is written), host, port when written, and
    /// the URL's path starting with the machine's.
    fn matches(&self, url: &Url) -> bool {
        let scheme_ok = match &self.scheme {
            Some(s) => s == url.scheme(),
            None => url.scheme() == "https",
        };
        let host = url.host_str().unwrap_or_default().trim_matches(['[', ']']);
        scheme_ok
            && host.eq_ignore_ascii_case(&self.host)
            && self
                .port
                .is_none_or(|p| Some(p) == url.port_or_known_default())
            && url.path().starts_with(&self.path)
    }

    pub fn login(&self) -> &str {
        &self.login
    }

    /// Only for the Authorization header.
    pub(crate) fn password(&self) -> &str {
        &self.password
    }

    /// Where it is written, for messages: `machine X (file, line N)`.
    pub fn describe(&self, file: &Path) -> String {
        format!(
            "machine {} ({}, line {})",
            self.name,
            file.display(),
            self.line
        )
    }
}

impl AuthConf {
    /// Reads `path`, refusing a file that others can read (apt's advice for it is
    /// mode 0600; here it is a rule, as the passwords would be one `cat` away).
    pub fn load(path: &Path) -> Result<AuthConf, AuthError> {
        use std::os::unix::fs::PermissionsExt;
        let read = |source| AuthError::Read {
            path: path.to_path_buf(),
            source,
        };
        // One open file for the check and the read: what is read is what was checked.
        let mut file = std::fs::File::open(path).map_err(read)?;
        let mode = file.metadata().map_err(read)?.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(AuthError::Readable {
                path: path.to_path_buf(),
                mode,
            });
        }
        let mut text = String::new();
        std::io::Read::read_to_string(&mut file, &mut text).map_err(read)?;
        AuthConf::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<AuthConf, AuthError> {
        let syntax = |line: usize, detail: String| AuthError::Syntax {
            path: path.to_path_buf(),
            line,
            detail,
        };
        let mut tokens = tokens(text);
        let mut machines: Vec<Machine> = Vec::new();
        while let Some((line, token)) = tokens.next() {
            let mut value = |what: &str| {
                tokens
                    .next()
                    .map(|(_, v)| v)
                    .ok_or_else(|| syntax(line, format!("{what} without a value")))
            };
            match token {
                "machine" => {
                    let name = value("machine")?;
                    machines.push(Machine::parse(name, line).map_err(|d| syntax(line, d))?);
                }
                "login" | "password" => {
                    let v = value(token)?.to_string();
                    let Some(m) = machines.last_mut() else {
                        return Err(syntax(line, format!("{token} before any machine")));
                    };
                    if token == "login" {
                        m.login = v;
                    } else {
                        m.password = v;
                    }
                }
                // apt ignores tokens it does not know.
                _ => {}
            }
        }
        if let Some(m) = machines
            .iter()
            .find(|m| m.login.is_empty() || m.password.is_empty())
        {
            return Err(syntax(
                m.line,
                format!("machine {} needs both a login and a password", m.name),
            ));
        }
        Ok(AuthConf {
            file: path.to_path_buf(),
            machines,
        })
    }

    /// The first machine that matches `url`, as apt picks it.
    pub fn for_url(&self, url: &Url) -> Option<&Machine> {
        self.machines.iter().find(|m| m.matches(url))
    }
}

/// The white-space separated tokens of `text` with their line numbers; a token that
/// starts with `#` begins a comment to the end of the line (a `#` inside a password
/// is part of it).
fn tokens(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().flat_map(|(n, l)| {
        l.split_whitespace()
            .take_while(|t| !t.starts_with('#'))
            .map(move |t| (n + 1, t))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(text: &str) -> AuthConf {
        AuthConf::parse(text, Path::new("/etc/mirrorsync/auth.conf")).unwrap()
    }

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn the_first_matching_machine_gives_the_login_as_apt_picks_it() {
        let c = conf(
            "# vendor repositories\n\
             machine vendor.example/private login alice password s3cret\n\
             machine vendor.example\n  login bob\n  password o#ther  # the rest\n\
             machine http://plain.example:8080/repo login carol password p\n",
        );
        let who = |u: &str| c.for_url(&url(u)).map(|m| m.login().to_string());
        assert_eq!(
            who("https://vendor.example/private/dists/x/InRelease").as_deref(),
            Some("alice")
        );
        assert_eq!(
            who("https://vendor.example/public/x.deb").as_deref(),
            Some("bob")
        );
        assert_eq!(
            who("https://VENDOR.example:8443/public/").as_deref(),
            Some("bob")
        );
        // No scheme written: https only, never a password in clear.
        assert_eq!(who("http://vendor.example/private/x"), None);
        assert_eq!(
            who("http://plain.example:8080/repo/x").as_deref(),
            Some("carol")
        );
        assert_eq!(who("http://plain.example:8081/repo/x"), None);
        assert_eq!(who("https://plain.example:8080/repo/x"), None);
        assert_eq!(
            c.for_url(&url("https://vendor.example/private/"))
                .unwrap()
                .line,
            2
        );
        // A '#' inside a token is not a comment.
        assert_eq!(
            c.for_url(&url("https://vendor.example/x"))
                .unwrap()
                .password(),
            "o#ther"
        );
    }

    #[test]
    fn a_password_never_shows_in_debug_output() {
        let c = conf("machine h.example login alice password hunter2\n");
        let shown = format!("{c:?}");
        assert!(
            shown.contains("alice") && !shown.contains("hunter2"),
            "{shown}"
        );
    }

    #[test]
    fn mistakes_name_the_file_and_line() {
        let err = |t: &str| {
            AuthConf::parse(t, Path::new("/a.conf"))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err("login x password y\n"),
            "auth_conf /a.conf, line 1: login before any machine"
        );
        assert_eq!(
            err("\nmachine h.example login x\n"),
            "auth_conf /a.conf, line 2: machine h.example needs both a login and a password"
        );
        assert_eq!(
            err("machine h.example:http login x password y\n"),
            "auth_conf /a.conf, line 1: machine h.example:http: port \"http\" is not a number"
        );
        assert_eq!(
            err("machine h login x password"),
            "auth_conf /a.conf, line 1: password without a value"
        );
    }

    #[test]
    fn a_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.conf");
        std::fs::write(&path, "machine h.example login x password y\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = AuthConf::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("mode 0644 lets other users read its passwords"),
            "{err}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(AuthConf::load(&path).is_ok());
    }
}
