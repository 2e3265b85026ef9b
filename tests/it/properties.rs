//! Round trips through the real formats, over generated inputs: what one side of a
//! format writes, the mirror reads back exactly. Directory listings as the fixture
//! server renders them (nginx, nginx JSON, Apache), checksum files as GNU
//! `sha256sum` writes them, the snapshot manifest, and the path check every upstream
//! path goes through. Case counts are modest so the suite stays fast.

use std::collections::BTreeMap;
use std::path::{Component, Path};
use std::process::Command;

use mirrorsync::fixture::autoindex::{ListingStyle, render};
use mirrorsync::images::listing::{EntryKind, parse_listing};
use mirrorsync::images::sums::parse_sums;
use mirrorsync::manifest::{Entry, Manifest};
use mirrorsync::relpath::RelPath;
use proptest::prelude::*;
use sha2::{Digest, Sha256};
use url::Url;

/// 64 cases each; failures are reported (with the minimal input), not written to a
/// regressions file in the source tree.
fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A character of a file name, weighted towards the ones servers, HTML and shells
/// treat specially, with any other printable Unicode character too.
fn printable_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => prop::sample::select(vec![
            ' ', '%', '&', '<', '>', '\'', '"', '+', '~', '#', '?', ';', '=', '.', '-', '_',
            '*', '(', ')', '[', ']', '@', '!', '$', ',', ':', '`', '{', '}', '|', '^',
        ]),
        3 => prop::char::range('a', 'z'),
        1 => prop::char::range('0', '9'),
        2 => any::<char>().prop_filter("printable, not a separator", |c| {
            !c.is_control() && *c != '/' && *c != '\\'
        }),
    ]
}

/// A name one directory entry can have: printable, no '/', NUL or '\'; not "." or
/// ".."; at most 255 bytes.
fn printable_name() -> impl Strategy<Value = String> {
    prop::collection::vec(printable_char(), 1..40)
        .prop_map(|cs| cs.into_iter().collect::<String>())
        // "-" is a name a directory can hold, but to sha256sum it means stdin, even
        // after "--", so its output cannot name such a file.
        .prop_filter("a name a directory can hold", |n| {
            n != "." && n != ".." && n != "-" && n.len() <= 255
        })
}

/// Any name Linux allows (no '/' or NUL): control characters, backslashes and line
/// ends included, which `sha256sum` escapes. Names of whitespace only (" ", "\t",
/// U+3000) are left out: `parse_sums` reads `<hex>  <whitespace>` as a bare sidecar
/// digest (name "").
fn any_file_name() -> impl Strategy<Value = String> {
    let c = prop_oneof![
        4 => printable_char(),
        1 => prop::sample::select(vec!['\\', '\n', '\r', '\t', '\u{1}', '\u{7f}']),
    ];
    prop::collection::vec(c, 1..40)
        .prop_map(|cs| cs.into_iter().collect::<String>())
        .prop_filter("a name a directory can hold", |n| {
            n != "." && n != ".." && n.len() <= 255
        })
        .prop_filter("not blanks only", |n| !n.chars().all(char::is_whitespace))
}

proptest! {
    #![proptest_config(config())]

    /// A directory rendered as each server renders it parses back to exactly its
    /// entries: every name, each with its kind, and the exact size where the format
    /// gives one.
    #[test]
    fn a_listing_gives_back_the_names_and_kinds_it_was_rendered_from(
        entries in prop::collection::btree_map(printable_name(), any::<bool>(), 1..12)
    ) {
        let dir = tempfile::tempdir().unwrap();
        for (name, is_dir) in &entries {
            let path = dir.path().join(name);
            if *is_dir {
                std::fs::create_dir(&path).unwrap();
            } else {
                std::fs::write(&path, name.as_bytes()).unwrap();
            }
        }
        let base = Url::parse("http://127.0.0.1:8080/images/a%20b+c/").unwrap();
        for style in [ListingStyle::Nginx, ListingStyle::NginxJson, ListingStyle::ApacheTable] {
            let (body, content_type) = render(style, dir.path(), base.path()).unwrap();
            let parsed = parse_listing(body.as_bytes(), Some(content_type), &base, 10_000)
                .map_err(|e| TestCaseError::fail(format!("{style:?}: {e}\n{body}")))?;
            let got: BTreeMap<String, bool> = parsed
                .iter()
                .map(|e| (e.name.clone(), e.kind == EntryKind::Dir))
                .collect();
            prop_assert_eq!(&got, &entries, "{:?}:\n{}", style, body);
            prop_assert_eq!(parsed.len(), entries.len(), "{:?}:\n{}", style, body);
            if style != ListingStyle::ApacheTable {
                for e in parsed.iter().filter(|e| e.kind == EntryKind::File) {
                    prop_assert_eq!(e.size, Some(e.name.len() as u64), "{:?}: {}", style, e.name);
                }
            }
        }
    }

    /// What GNU `sha256sum` prints for a set of files, in its default, binary and
    /// BSD (`--tag`) formats, parses back to those names and digests.
    #[test]
    fn sha256sum_output_gives_back_the_names_and_digests(
        files in prop::collection::btree_map(any_file_name(), any::<Vec<u8>>(), 1..8)
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut expected = BTreeMap::new();
        for (name, bytes) in &files {
            std::fs::write(dir.path().join(name), bytes).unwrap();
            expected.insert(name.clone(), <[u8; 32]>::from(Sha256::digest(bytes)));
        }
        for args in [&[][..], &["--binary"][..], &["--tag"][..]] {
            let out = Command::new("sha256sum")
                .args(args)
                .arg("--")
                .args(files.keys())
                .current_dir(dir.path())
                .output()
                .expect("sha256sum (GNU coreutils) must be installed");
            prop_assert!(out.status.success(), "{:?}", out);
            let text = String::from_utf8(out.stdout).unwrap();
            let parsed = parse_sums(&text, "SHA256SUMS")
                .map_err(|e| TestCaseError::fail(format!("{args:?}: {e}\n{text:?}")))?;
            let got: BTreeMap<String, [u8; 32]> =
                parsed.into_iter().map(|l| (l.name, l.sha256)).collect();
            prop_assert_eq!(&got, &expected, "{:?}:\n{:?}", args, text);
        }
    }

    /// A manifest written and loaded again is the same manifest.
    #[test]
    fn a_manifest_survives_write_and_load(
        files in prop::collection::btree_map(
            rel_path(),
            (any::<u64>(), any::<[u8; 32]>(), any::<Option<i64>>()),
            0..40,
        )
    ) {
        let mut m = Manifest::default();
        for (path, (size, sha256, gone_since)) in files {
            m.files.insert(path, Entry { size, sha256, gone_since });
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("snapshot.manifest");
        m.write(&file).unwrap();
        let back = Manifest::load(&file).unwrap();
        prop_assert_eq!(back.files, m.files);
    }

    /// No string RelPath accepts leads out of the tree: none starts with '/', none has
    /// a ".." (or ".") component, not even once a server percent-decodes it, and
    /// joined under a root it only goes down.
    #[test]
    fn a_rel_path_never_leads_out_of_the_tree(s in path_like()) {
        let Ok(p) = RelPath::new(&s) else {
            return Ok(());
        };
        prop_assert!(!s.starts_with('/'), "{:?}", s);
        prop_assert!(!s.split('/').any(|c| c == ".." || c == "."), "{:?}", s);
        let decoded = percent_encoding::percent_decode_str(&s).decode_utf8_lossy();
        prop_assert!(
            !decoded.split(['/', '\\']).any(|c| c == ".." || c == "."),
            "{:?} decodes to {:?}",
            s,
            decoded
        );
        let root = Path::new("/srv/mirror");
        let joined = p.under(root);
        prop_assert!(joined.starts_with(root));
        prop_assert!(
            joined.strip_prefix(root).unwrap().components().all(|c| matches!(c, Component::Normal(_))),
            "{:?}",
            s
        );
    }
}

/// Paths RelPath accepts: printable components joined by '/'.
fn rel_path() -> impl Strategy<Value = RelPath> {
    prop::collection::vec(printable_name(), 1..5)
        .prop_filter_map("not a RelPath", |parts| RelPath::new(&parts.join("/")).ok())
}

/// Strings shaped like paths, tilted towards the ways out of a tree.
fn path_like() -> impl Strategy<Value = String> {
    let component = prop_oneof![
        2 => Just("..".to_string()),
        1 => Just(".".to_string()),
        1 => Just(String::new()),
        1 => prop::sample::select(vec![
            "%2e%2e", "%2E%2e", ".%2e", "%2e.", "%2f", "..%2f..", "...", ". .", ".. ",
            "..\\..", "%252e%252e", "\u{ff0e}\u{ff0e}", "pool", "main", "a b",
        ])
        .prop_map(str::to_string),
        3 => "[a-z.%]{1,5}",
        2 => any::<String>(),
    ];
    let joined = (any::<bool>(), prop::collection::vec(component, 0..6))
        .prop_map(|(lead, parts)| format!("{}{}", if lead { "/" } else { "" }, parts.join("/")));
    prop_oneof![1 => any::<String>(), 4 => joined]
}
