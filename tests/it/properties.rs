//! Round trips through the real formats, over generated inputs: what one side of a
//! format writes, the mirror reads back exactly. Directory listings as the fixture
//! server renders them (nginx, nginx JSON, Apache), checksum files as GNU
//! `sha256sum` writes them, the snapshot manifest, and the path check every upstream
//! path goes through. Case counts are modest so the suite stays fast.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path};
use std::process::Command;

use mirrorsync::images::listing::{EntryKind, parse_listing};
use mirrorsync::images::sums::parse_sums;
use mirrorsync::manifest::{Entry, Manifest};
use mirrorsync::relpath::{PathError, RelPath};
use mirrorsync_testkit::autoindex::{ListingStyle, render};
use proptest::prelude::*;
use proptest::test_runner::{FileFailurePersistence, TestRunner};
use sha2::{Digest, Sha256};
use url::Url;

/// Failing seeds are kept here, committed, and re-run before any new case: a case
/// that once failed (a file named "-", say) is tried on every run, whatever the
/// random seed. An absolute path, so the test's working directory does not matter
/// (proptest's default would be `tests/proptest-regressions/properties.txt`, beside
/// the directory holding this test binary's `main.rs`).
const REGRESSIONS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/it/proptest-regressions/properties.txt"
);

/// 64 new cases each, after the persisted ones; `PROPTEST_CASES` overrides the count
/// (`PROPTEST_CASES=0` runs only the persisted seeds).
fn config() -> ProptestConfig {
    let default = ProptestConfig::default();
    ProptestConfig {
        cases: if std::env::var_os("PROPTEST_CASES").is_some() {
            default.cases
        } else {
            64
        },
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(REGRESSIONS))),
        ..default
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
        .prop_filter("a name a directory can hold", |n| {
            n != "." && n != ".." && n.len() <= 255
        })
}

/// Any name Linux allows (no '/' or NUL): control characters, backslashes and line
/// ends included, which `sha256sum` escapes, and "-". Names of whitespace only (" ",
/// "\t", U+3000) are left out: `parse_sums` reads `<hex>  <whitespace>` as a bare
/// sidecar digest (name "").
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
    /// BSD (`--tag`) formats, parses back to those names and digests. A file named
    /// "-" is one sha256sum can only read as its standard input (even after "--"), so
    /// it is given there: the line sha256sum prints for it names "-", as a sums file
    /// listing such a file does.
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
            let mut sha256sum = Command::new("sha256sum");
            sha256sum
                .args(args)
                .arg("--")
                .args(files.keys())
                .current_dir(dir.path());
            if files.contains_key("-") {
                sha256sum.stdin(std::fs::File::open(dir.path().join("-")).unwrap());
            }
            let out = sha256sum
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
}

/// Paths RelPath accepts: printable components joined by '/'.
fn rel_path() -> impl Strategy<Value = RelPath> {
    prop::collection::vec(printable_name(), 1..5)
        .prop_filter_map("not a RelPath", |parts| RelPath::new(&parts.join("/")).ok())
}

/// Every path RelPath accepts stays in the tree, and every path it refuses has a way
/// out. Three cases in four are built to be accepted (printable names, with near
/// misses such as "...", ".mirrorsync-old" or "%252e" among them), the rest are
/// built with one way out each, every kind of way out tried in every run. Accepted
/// paths are checked lexically and on disk (created in a temporary root, then
/// canonicalized); refused ones must hold a way out that [`ways_out`], written from
/// the rules rather than from RelPath, finds, and the error must name one of those.
/// At least half the cases must be accepted.
#[test]
fn a_rel_path_never_leads_out_of_the_tree() {
    let accepted = Cell::new(0u32);
    let refused = Cell::new(0u32);
    let refused_ways = RefCell::new(BTreeSet::new());
    let cases = config().cases * 8;
    let mut runner = TestRunner::new(ProptestConfig { cases, ..config() });
    let strategy = prop_oneof![
        3 => plausible_path().prop_map(|s| (s, None)),
        1 => hostile_path().prop_map(|(s, way)| (s, Some(way))),
    ];
    let result = runner.run(&strategy, |(s, built_with)| {
        let found = ways_out(&s);
        match RelPath::new(&s) {
            Ok(p) => {
                accepted.set(accepted.get() + 1);
                prop_assert_eq!(built_with, None, "{:?} was accepted", s);
                prop_assert!(
                    found.is_empty(),
                    "{:?} was accepted, but has {:?}",
                    s,
                    found
                );
                stays_under_a_root(&p)?;
            }
            Err(e) => {
                refused.set(refused.get() + 1);
                prop_assert!(
                    !found.is_empty(),
                    "{:?} was refused ({}) without a way out",
                    s,
                    e
                );
                if let Some(way) = built_with {
                    refused_ways.borrow_mut().insert(way);
                    prop_assert!(
                        found.contains(&way),
                        "{:?}: {:?} not found in {:?}",
                        s,
                        way,
                        found
                    );
                }
                prop_assert!(
                    named_by(&e).iter().any(|w| found.contains(w)),
                    "{:?} was refused with {:?}, but has {:?}",
                    s,
                    e,
                    found
                );
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}\n{runner}");
    }
    let (accepted, refused) = (accepted.get(), refused.get());
    let share = f64::from(accepted) / f64::from(accepted + refused);
    let percent = share * 100.0;
    eprintln!("RelPath accepted {accepted} cases ({percent:.0}%), refused {refused}");
    // Not for a handful of cases (`PROPTEST_CASES=0` runs the persisted seeds only).
    if cases >= 512 {
        let refused_ways = refused_ways.into_inner();
        assert!(
            WayOut::ALL.iter().all(|w| refused_ways.contains(w)),
            "ways out never tried: {:?}",
            WayOut::ALL
                .iter()
                .filter(|w| !refused_ways.contains(w))
                .collect::<Vec<_>>()
        );
        assert!(
            share >= 0.5,
            "only {accepted} of {} cases were accepted",
            accepted + refused
        );
    }
}

/// Joined under a root, `p` only goes down, and lands where its name says: lexically,
/// once a server percent-decodes it, and on disk (canonicalized, in a fresh root).
fn stays_under_a_root(p: &RelPath) -> Result<(), TestCaseError> {
    let s = p.as_str();
    let parts = s.split('/').count();
    // `Path::components` drops "." components silently: the count catches them.
    let down_only = |rel: &Path| {
        rel.components().all(|c| matches!(c, Component::Normal(_)))
            && rel.components().count() == parts
    };
    let root = Path::new("/srv/mirror");
    let joined = p.under(root);
    prop_assert!(joined.starts_with(root), "{:?}", s);
    prop_assert!(down_only(joined.strip_prefix(root).unwrap()), "{:?}", s);
    let decoded = percent_encoding::percent_decode_str(s).decode_utf8_lossy();
    prop_assert!(
        !decoded
            .split(['/', '\\'])
            .any(|c| c == ".." || c == "." || c.is_empty()),
        "{:?} decodes to {:?}",
        s,
        decoded
    );
    prop_assert!(!decoded.contains('\0'), "{:?} decodes to {:?}", s, decoded);

    // Only now that it cannot go up: create it, and ask the file system where it is.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let file = p.under(&root);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, b"x").unwrap();
    let real = file.canonicalize().unwrap();
    prop_assert!(real.starts_with(&root), "{:?} is at {:?}", s, real);
    prop_assert_eq!(&real, &root.join(s), "{:?}", s);
    prop_assert!(down_only(real.strip_prefix(&root).unwrap()), "{:?}", s);
    Ok(())
}

/// A way out of a mirror tree, or into what is not upstream's to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum WayOut {
    Empty,
    /// Over 3072 bytes (PATH_MAX less room for the root).
    TooLong,
    Absolute,
    /// A "." or ".." component.
    DotComponent,
    /// "//" or a trailing '/'.
    EmptyComponent,
    /// A control character (NUL, line ends, ESC, C1) or a backslash.
    BadCharacter,
    /// '.', '/', '\' or NUL percent-encoded, which a server may decode before it
    /// resolves the path.
    PercentEncoded,
    /// ".mirrorsync" first: mirrorsync's own records.
    Reserved,
    /// A component over 255 bytes, more than a file system takes.
    LongComponent,
}

impl WayOut {
    const ALL: [WayOut; 9] = [
        WayOut::Empty,
        WayOut::TooLong,
        WayOut::Absolute,
        WayOut::DotComponent,
        WayOut::EmptyComponent,
        WayOut::BadCharacter,
        WayOut::PercentEncoded,
        WayOut::Reserved,
        WayOut::LongComponent,
    ];
}

/// Every way out `s` holds, from the rules, not from RelPath's code.
fn ways_out(s: &str) -> Vec<WayOut> {
    let mut found = Vec::new();
    let mut add = |w| {
        if !found.contains(&w) {
            found.push(w);
        }
    };
    if s.is_empty() {
        add(WayOut::Empty);
    }
    if s.len() > 3072 {
        add(WayOut::TooLong);
    }
    if s.starts_with('/') {
        add(WayOut::Absolute);
    }
    if s.chars().any(|c| c.is_control() || c == '\\') {
        add(WayOut::BadCharacter);
    }
    let lower = s.to_ascii_lowercase();
    if ["%2e", "%2f", "%5c", "%00"]
        .iter()
        .any(|e| lower.contains(e))
    {
        add(WayOut::PercentEncoded);
    }
    for part in s.split('/') {
        match part {
            "" if !s.is_empty() => add(WayOut::EmptyComponent),
            "." | ".." => add(WayOut::DotComponent),
            p if p.len() > 255 => add(WayOut::LongComponent),
            _ => {}
        }
    }
    if s.split('/').next() == Some(".mirrorsync") {
        add(WayOut::Reserved);
    }
    found
}

/// The ways out an error may be refusing.
fn named_by(e: &PathError) -> &'static [WayOut] {
    match e {
        PathError::Empty => &[WayOut::Empty],
        PathError::Absolute => &[WayOut::Absolute],
        PathError::Traversal => &[WayOut::DotComponent, WayOut::PercentEncoded],
        PathError::EmptyComponent => &[WayOut::EmptyComponent],
        PathError::BadCharacter => &[WayOut::BadCharacter],
        PathError::TooLong { .. } => &[WayOut::TooLong],
        PathError::ComponentTooLong { .. } => &[WayOut::LongComponent],
        PathError::Reserved => &[WayOut::Reserved],
    }
}

/// Names that look like a way out and are not one.
fn near_miss() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "...",
            ". .",
            ".. ",
            " ..",
            "..a",
            "a..",
            ".a",
            "-",
            "~",
            "%",
            "%2",
            "%41",
            "%252e%252e",
            "%25",
            "\u{ff0e}\u{ff0e}",
            "\u{2024}\u{2024}",
            ".mirrorsync-old",
            ".mirrorsyncx",
            ".Mirrorsync",
            "mirrorsync",
            "by-hash",
            "pool",
        ])
        .prop_map(str::to_string),
        // As long as a name may be: 255 bytes, in one- to four-byte characters.
        prop::sample::select(vec!['x', 'é', '水', '🦀']).prop_map(|c| {
            let mut n: String = std::iter::repeat_n(c, 255 / c.len_utf8()).collect();
            n.extend(std::iter::repeat_n('x', 255 - n.len()));
            n
        }),
    ]
}

/// Paths meant to be accepted: printable names and near misses, 1 to 6 deep, with
/// ".mirrorsync" allowed below the top.
fn plausible_path() -> impl Strategy<Value = String> {
    let component = prop_oneof![6 => printable_name(), 2 => near_miss()];
    (
        prop::collection::vec(component, 1..7),
        any::<bool>(),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(mut parts, reserved_below, at)| {
            if reserved_below && parts.len() > 1 {
                let i = 1 + at.index(parts.len() - 1);
                parts[i] = ".mirrorsync".to_string();
            }
            parts.join("/")
        })
}

/// A plausible path with one way out built in, and which one.
fn hostile_path() -> impl Strategy<Value = (String, WayOut)> {
    let parts = || prop::collection::vec(printable_name(), 1..5);
    let at = any::<prop::sample::Index>;
    prop_oneof![
        Just((String::new(), WayOut::Empty)),
        (parts(), at(), prop::sample::select(vec!["..", "."])).prop_map(|(mut p, i, dots)| {
            p.insert(i.index(p.len() + 1), dots.to_string());
            (p.join("/"), WayOut::DotComponent)
        }),
        (parts(), at(), any::<bool>()).prop_map(|(mut p, i, trailing)| {
            if trailing {
                p.push(String::new());
            } else {
                p.insert(1 + i.index(p.len()), String::new());
            }
            (p.join("/"), WayOut::EmptyComponent)
        }),
        (parts(), prop::sample::select(vec!["/", "//", "/../"]))
            .prop_map(|(p, lead)| (format!("{lead}{}", p.join("/")), WayOut::Absolute)),
        (
            parts(),
            at(),
            at(),
            prop::sample::select(vec![
                '\0', '\u{1}', '\t', '\n', '\r', '\u{1b}', '\u{7f}', '\u{85}', '\u{9f}', '\\',
            ])
        )
            .prop_map(|(mut p, i, j, c)| {
                let i = i.index(p.len());
                let mut chars: Vec<char> = p[i].chars().collect();
                chars.insert(j.index(chars.len() + 1), c);
                p[i] = chars.into_iter().collect();
                (p.join("/"), WayOut::BadCharacter)
            }),
        (
            parts(),
            at(),
            prop::sample::select(vec![
                "%2e%2e",
                "%2E%2E",
                "%2e%2E",
                ".%2e",
                "%2e.",
                "%2e",
                "..%2f..",
                "a%2Fb",
                "%5c..",
                "..%5C..",
                "x%00",
                "%2e%2e%2f%2e%2e",
            ])
        )
            .prop_map(|(mut p, i, enc)| {
                p.insert(i.index(p.len() + 1), enc.to_string());
                (p.join("/"), WayOut::PercentEncoded)
            }),
        parts().prop_map(|mut p| {
            p.insert(0, ".mirrorsync".to_string());
            (p.join("/"), WayOut::Reserved)
        }),
        (
            parts(),
            at(),
            256usize..600,
            prop::sample::select(vec!['x', 'é', '水', '🦀'])
        )
            .prop_map(|(mut p, i, len, c)| {
                let i = i.index(p.len());
                p[i] = std::iter::repeat_n(c, len.div_ceil(c.len_utf8())).collect();
                (p.join("/"), WayOut::LongComponent)
            }),
        (13usize..20, 240usize..=255)
            .prop_map(|(n, len)| { (vec!["y".repeat(len); n].join("/"), WayOut::TooLong) }),
    ]
}
