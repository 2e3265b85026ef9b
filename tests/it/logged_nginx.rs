//! A private nginx for the image-tree tests (own config, pid, logs and port) serving
//! an upstream tree on 127.0.0.1 the way a download server does (`autoindex on`, as
//! HTML or JSON), and its access log read back as the requests the mirror made.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// A private nginx (own config, pid, logs and port) serving a tree on 127.0.0.1,
/// logging each request as `PORT METHOD URI STATUS`. Stopped when dropped.
pub struct Nginx {
    child: Child,
    pub port: u16,
    /// A second server block that redirects every request to `localhost:<port>`.
    pub redirect_port: Option<u16>,
    dir: tempfile::TempDir,
}

/// One line of the access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub port: u16,
    pub method: String,
    pub path: String,
    pub status: u16,
}

impl Hit {
    pub fn is_listing(&self) -> bool {
        self.method == "GET" && self.path.ends_with('/')
    }

    /// A GET of an Imager OS list (`os_list*.json`) anywhere in the tree.
    pub fn is_os_list(&self) -> bool {
        let name = self.path.rsplit('/').next().unwrap_or_default();
        self.method == "GET" && name.starts_with("os_list") && name.ends_with(".json")
    }

    pub fn get_of(&self, rel: &str) -> bool {
        self.method == "GET" && self.path == format!("/{rel}")
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Nginx {
    /// Serves `root` with `autoindex on` (as JSON with `json`); with `redirect`, a
    /// second server answers every request with a 301 to this one's other name.
    pub fn serve(root: &Path, json: bool, redirect: bool) -> Nginx {
        let binary = nginx_binary();
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let redirect_port = redirect.then(free_port);
        let second = match redirect_port {
            // The old name of the tree: everything moved to another host.
            Some(old) => format!(
                "server {{\n        listen 127.0.0.1:{old};\n        return 301 http://localhost:{port}$request_uri;\n    }}"
            ),
            None => String::new(),
        };
        let d = dir.path().display();
        let log = format!(
            "log_format hits '$server_port $request_method $request_uri $status';\n    access_log {d}/access.log hits;"
        );
        let format = if json { "autoindex_format json;" } else { "" };
        write_conf(dir.path(), port, root, &log, format, &second);
        let ports: Vec<u16> = std::iter::once(port).chain(redirect_port).collect();
        let child = start_nginx(&binary, dir.path(), &ports);
        Nginx {
            child,
            port,
            redirect_port,
            dir,
        }
    }

    /// Serves `root` behind HTTP basic authentication: `users` is nginx's user file
    /// (`name:{PLAIN}password` lines).
    pub fn serve_protected(root: &Path, users: &str) -> Nginx {
        let binary = nginx_binary();
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let d = dir.path().display();
        std::fs::write(dir.path().join("users"), users).unwrap();
        let log = format!(
            "log_format hits '$server_port $request_method $request_uri $status';\n    access_log {d}/access.log hits;"
        );
        let auth = format!("auth_basic \"vendor\";\n        auth_basic_user_file {d}/users;");
        write_conf(dir.path(), port, root, &log, &auth, "");
        let child = start_nginx(&binary, dir.path(), &[port]);
        Nginx {
            child,
            port,
            redirect_port: None,
            dir,
        }
    }

    /// `http://127.0.0.1:<port>/`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// `http://localhost:<port>/`: the same server under another name.
    pub fn other_name(&self) -> String {
        format!("http://localhost:{}/", self.port)
    }

    /// `http://127.0.0.1:<old port>/`, which redirects to [`Nginx::other_name`].
    pub fn old_url(&self) -> String {
        format!(
            "http://127.0.0.1:{}/",
            self.redirect_port.expect("a redirecting server")
        )
    }

    /// Every request logged so far, in order.
    pub fn hits(&self) -> Vec<Hit> {
        std::fs::read_to_string(self.dir.path().join("access.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let mut parts = l.split(' ');
                let port = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
                let method = parts.next().unwrap_or_default().to_string();
                let path = parts.next().unwrap_or_default().to_string();
                let status = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
                Hit {
                    port,
                    method,
                    path,
                    status,
                }
            })
            .collect()
    }

    /// The requests after the first `from`, once nginx has logged `expected` of them
    /// (it writes a line when a response is done, which can trail the client's exit).
    pub fn hits_since(&self, from: usize, expected: usize) -> Vec<Hit> {
        self.hits_until(from, &|hits| hits.len() >= expected)
    }

    /// The requests after the first `from`, once `done` holds for them (or after 5
    /// seconds, for the caller's assertion to show what was logged).
    pub fn hits_until(&self, from: usize, done: &dyn Fn(&[Hit]) -> bool) -> Vec<Hit> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let hits = self.hits();
            let since = hits[from.min(hits.len())..].to_vec();
            if done(&since) || Instant::now() > deadline {
                return since;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM, not SIGKILL: the master must take its workers down with it.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// The nginx binary. A missing one fails the test, saying how to install it: these
/// tests need the real server, in CI or not, and never skip.
pub fn nginx_binary() -> PathBuf {
    let binary = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .or_else(|| {
            std::env::var_os("PATH").and_then(|p| {
                std::env::split_paths(&p)
                    .map(|d| d.join("nginx"))
                    .find(|p| p.is_file())
            })
        });
    binary.unwrap_or_else(|| {
        panic!(
            "nginx is not installed{}: these tests need the real one. Run scripts/test.sh (it installs it) or `apt-get install nginx`",
            if std::env::var_os("CI").is_some() {
                " on this CI machine"
            } else {
                ""
            }
        )
    })
}

/// Writes `dir/nginx.conf`: one server on 127.0.0.1:`port` serving `root` with
/// autoindex (plus `autoindex`'s extra lines), `log` for the access log, and
/// `more_servers` after it; logs, pid and temp files under `dir`.
pub fn write_conf(
    dir: &Path,
    port: u16,
    root: &Path,
    log: &str,
    autoindex: &str,
    more_servers: &str,
) {
    let d = dir.display();
    // Workers run as root when we are root: the test trees live in 0700 temp dirs.
    let user = if is_root() { "user root root;" } else { "" };
    let conf = format!(
        r#"{user}
worker_processes 1;
error_log {d}/error.log;
pid {d}/nginx.pid;
events {{ worker_connections 256; }}
http {{
    {log}
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        autoindex on;
        {autoindex}
    }}
    {more_servers}
}}
"#,
        root = root.display()
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Starts `binary` on the `nginx.conf` in `dir` (its prefix: logs, pid, temp files)
/// and waits until every one of `ports` answers on 127.0.0.1.
pub fn start_nginx(binary: &Path, dir: &Path, ports: &[u16]) -> Child {
    let child = Command::new(binary)
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .arg("-g")
        .arg("daemon off;")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starting nginx");
    let deadline = Instant::now() + Duration::from_secs(10);
    for &p in ports {
        while std::net::TcpStream::connect(("127.0.0.1", p)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx did not start: {}",
                std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    child
}
