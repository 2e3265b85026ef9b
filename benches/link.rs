//! Hard-linking an unchanged tree of 100,000 files into staging: what every publish
//! of a large mirror pays before it fetches anything.

use std::time::Instant;

use mirrorsync::snapshot::link_file;

fn main() -> anyhow::Result<()> {
    let files: usize = std::env::var("BENCH_LINK_FILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir()?;
    let published = dir.path().join("published");
    let staging = dir.path().join("staging");
    let paths: Vec<String> = (0..files)
        .map(|i| format!("pool/main/{}/pkg{}/pkg{i}_1.0_amd64.deb", i % 26, i % 4000))
        .collect();
    for p in &paths {
        let f = published.join(p);
        std::fs::create_dir_all(f.parent().expect("parent"))?;
        std::fs::write(&f, b"x")?;
    }
    let _ = std::process::Command::new("sync").status();
    let t = Instant::now();
    for p in &paths {
        link_file(&published.join(p), &staging.join(p))?;
    }
    let cold = t.elapsed().as_secs_f64();
    // A rerun after a failed run: everything already linked.
    let t = Instant::now();
    for p in &paths {
        link_file(&published.join(p), &staging.join(p))?;
    }
    let again = t.elapsed().as_secs_f64();
    println!(
        "hard-link {files} files into a fresh staging tree: {cold:.2} s; again (already linked): {again:.2} s"
    );
    Ok(())
}
