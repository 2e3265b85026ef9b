//! The bodies of the fuzz targets, shared by the libFuzzer targets in
//! `fuzz_targets/` and the stable-Rust driver `src/bin/smoke.rs`.
//!
//! Each takes arbitrary bytes as an upstream would send them and must return
//! without panicking, whatever they hold; errors are fine.

use std::path::Path;

use mirrorsync::apt::packages::{IndexKind, read_index};
use mirrorsync::apt::release::Release;
use mirrorsync::apt::signature::{self, cleartext};
use mirrorsync::images::listing::parse_listing;
use mirrorsync::images::oslist::OsList;
use mirrorsync::images::sums::parse_sums;

/// A Release (or the message apt splits off an InRelease), and what a mirror takes of
/// it.
pub fn release(data: &[u8]) {
    let _ = cleartext::check_detached(data);
    let Ok(text) = signature::unsigned_text(data) else {
        return;
    };
    if let Ok(r) = Release::parse(&text) {
        let comps = ["main".to_string(), "contrib".to_string()];
        let arches = ["amd64".to_string(), "arm64".to_string()];
        let _ = r.wanted_indices(&comps, &arches, true);
    }
}

/// An uncompressed Packages or Sources index, read as a stream.
pub fn packages(data: &[u8]) {
    let (kind, body) = match data.split_first() {
        Some((b, rest)) if b & 1 == 1 => (IndexKind::Sources, rest),
        Some((_, rest)) => (IndexKind::Packages, rest),
        None => (IndexKind::Packages, data),
    };
    let mut n = 0u64;
    let _ = read_index(body, kind, "fuzz", Path::new("fuzz"), |f| {
        n += f.size.min(1);
        let _ = f.path.as_str();
    });
}

/// A directory listing, HTML or nginx JSON; the first byte picks the declared type.
pub fn listing(data: &[u8]) {
    let (ct, body) = match data.split_first() {
        Some((b, rest)) => (
            match b % 4 {
                0 => None,
                1 => Some("text/html"),
                2 => Some("application/json"),
                _ => Some("text/html;charset=ISO-8859-1"),
            },
            rest,
        ),
        None => (None, data),
    };
    let base = url::Url::parse("http://127.0.0.1:18080/images/sub/").expect("base URL");
    if let Ok(entries) = parse_listing(body, ct, &base, 1000) {
        for e in entries {
            assert!(!e.name.is_empty() && !e.name.contains('/'), "{e:?}");
            assert!(e.name != "." && e.name != "..", "{e:?}");
        }
    }
}

/// A SHA256SUMS file or a `.sha256` sidecar.
pub fn sums(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = parse_sums(&text, "fuzz");
}

/// A Raspberry Pi Imager OS list: the images it offers, its sub-lists, its rewrite.
pub fn oslist(data: &[u8]) {
    let Ok(list) = OsList::parse(data, "fuzz") else {
        return;
    };
    let _ = list.images();
    let _ = list.subitems_urls();
    let rewritten = list.rewrite(&|u| Some(format!("http://mirror.invalid{}", u.path())));
    // What we serve must itself be a valid OS list.
    if let Err(e) = OsList::parse(&rewritten, "rewritten") {
        panic!("the rewritten list does not parse: {e}");
    }
}

/// A target's body.
pub type Target = fn(&[u8]);

/// Every target, by name.
pub const TARGETS: &[(&str, Target)] = &[
    ("release", release),
    ("packages", packages),
    ("listing", listing),
    ("sums", sums),
    ("oslist", oslist),
];
