//! An operator (or a user of the mirror) looks at the status page in a browser: after
//! a cold run, a no-op, a delta and a failure, real headless Chromium loads the page
//! the runs left, and what it shows is checked in its DOM and its pixels.

use std::path::{Path, PathBuf};
use std::process::Command;

use mirrorsync_testkit::FixtureSpec;

use crate::support::*;

/// Debian's Chromium, headless, with the flags this sandbox needs (no background
/// networking: its network is closed). A missing one fails the test.
struct Chromium {
    binary: PathBuf,
    profile: tempfile::TempDir,
}

impl Chromium {
    fn new() -> Chromium {
        let binary = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .unwrap_or_else(|| {
                panic!(
                    "chromium is not installed: this test needs the real browser. Run scripts/test.sh (it installs it) or `apt-get install chromium`"
                )
            });
        Chromium {
            binary,
            profile: tempfile::tempdir().unwrap(),
        }
    }

    /// Under coreutils' `timeout`: a browser that hangs fails the test, not CI.
    fn command(&self) -> Command {
        let mut c = Command::new("timeout");
        c.arg("120").arg(&self.binary);
        c.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", self.profile.path().display()));
        c
    }

    /// The DOM after load, serialised.
    fn dom(&self, page: &Path) -> String {
        let out = self
            .command()
            .arg("--dump-dom")
            .arg(format!("file://{}", page.display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// A screenshot of the page at `width`x`height`.
    fn screenshot(&self, page: &Path, png: &Path, width: u32, height: u32) {
        let out = self
            .command()
            .arg(format!("--window-size={width},{height}"))
            .arg(format!("--screenshot={}", png.display()))
            .arg(format!("file://{}", page.display()))
            .output()
            .unwrap();
        assert!(
            out.status.success() && png.is_file(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// How many distinct colours a PNG has: a blank page has one.
fn colours(png_file: &Path) -> usize {
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(png_file).unwrap(),
    ));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let px = info.color_type.samples();
    let mut seen = std::collections::HashSet::new();
    for p in buf[..info.buffer_size()].chunks(px) {
        seen.insert(p.to_vec());
        if seen.len() > 64 {
            break;
        }
    }
    seen.len()
}

#[test]
fn the_status_page_shows_each_mirrors_state_history_and_last_error_in_a_browser() {
    let mut env = Env::new(FixtureSpec::default().with_packages(6));
    // Cold, no-op, delta.
    assert_ok(&env.sync());
    assert_ok(&env.sync());
    env.repo.add_package("aaa-new");
    env.publish();
    assert_ok(&env.sync());
    // Then the upstream loses a package its index lists: the run fails.
    env.repo.add_package("zz-lost");
    env.publish();
    let lost = env.repo.packages["zz-lost"].filename();
    std::fs::remove_file(env.repo.dir.join(&lost)).unwrap();
    assert_exit(&env.sync(), 1);

    let page = env.root.join("status/index.html");
    let html = std::fs::read_to_string(&page).expect("the run wrote the status page");
    // Valid HTML: the parser browsers use has nothing to say about it.
    let doc = scraper::Html::parse_document(&html);
    assert!(doc.errors.is_empty(), "parse errors: {:?}", doc.errors);
    assert!(html.len() < 300 * 1024, "{} bytes", html.len());

    let chromium = Chromium::new();
    let dom = scraper::Html::parse_document(&chromium.dom(&page));
    let sel = |s: &str| scraper::Selector::parse(s).unwrap();
    let sections: Vec<_> = dom.select(&sel("section.mirror")).collect();
    assert_eq!(sections.len(), 1);
    let debian = sections[0];
    assert_eq!(debian.value().attr("data-name"), Some("debian"));
    assert_eq!(debian.value().attr("data-state"), Some("failing"));
    let badge: String = debian
        .select(&sel(".state"))
        .flat_map(|e| e.text())
        .collect();
    assert_eq!(badge, "failing");
    // The last error in full: the mirror, the missing file and the way out.
    let error: String = debian
        .select(&sel("pre.error"))
        .flat_map(|e| e.text())
        .collect();
    assert!(
        error.contains(&lost) && error.contains("tolerate = ["),
        "{error}"
    );
    // One graph per figure, a point per recorded run, the failure marked.
    let graphs: Vec<_> = debian.select(&sel("svg.graph")).collect();
    assert_eq!(graphs.len(), 4);
    for g in &graphs {
        let id = g.value().attr("id").unwrap_or_default();
        assert_eq!(g.value().attr("data-points"), Some("4"), "{id}");
        assert_eq!(g.select(&sel("circle")).count(), 4, "{id}");
        assert_eq!(g.select(&sel("circle.failed")).count(), 1, "{id}");
        assert_eq!(g.select(&sel("line.fail-tick")).count(), 1, "{id}");
        assert!(
            g.select(&sel("title")).next().is_some(),
            "{id} has a text title"
        );
    }
    // Its figures as a table, for readers that cannot see the graphs.
    let rows = debian.select(&sel("table tbody tr")).count();
    assert_eq!(rows, 4);

    // A real rendering, not a blank page, on a desktop and on a phone.
    let shots = tempfile::tempdir().unwrap();
    for (name, w, h) in [("desktop.png", 1100, 1200), ("phone.png", 390, 1400)] {
        let png = shots.path().join(name);
        chromium.screenshot(&page, &png, w, h);
        assert!(colours(&png) > 8, "{name} looks blank");
    }

    // The same page on demand, and the history in status --json.
    let copy = shots.path().join("copy.html");
    assert_ok(&env.run(&["status", "--html", copy.to_str().unwrap()]));
    assert!(
        std::fs::read_to_string(&copy)
            .unwrap()
            .contains("data-state=\"failing\"")
    );
    let out = env.run(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let results: Vec<&str> = status[0]["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["result"].as_str().unwrap())
        .collect();
    assert_eq!(results, ["published", "unchanged", "published", "failed"]);
}

#[test]
fn the_status_page_can_be_moved_or_turned_off() {
    let env = Env::new(FixtureSpec::default().with_packages(2));
    env.edit_config(
        "keep_snapshots = 2",
        "keep_snapshots = 2\nstatus_page = \"health/mirrors.html\"",
    );
    assert_ok(&env.sync());
    assert!(env.root.join("health/mirrors.html").is_file());
    assert!(!env.root.join("status").exists());
    env.edit_config(
        "status_page = \"health/mirrors.html\"",
        "status_page = false",
    );
    std::fs::remove_dir_all(env.root.join("health")).unwrap();
    assert_ok(&env.sync());
    assert!(!env.root.join("health").exists() && !env.root.join("status").exists());
    // Nowhere outside the root.
    env.edit_config("status_page = false", "status_page = \"../escape.html\"");
    let err = assert_exit(&env.run(&["check-config"]), 2);
    assert!(err.contains("status_page"), "{err}");
}
