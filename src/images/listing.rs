//! A download server's directory listing (Apache mod_autoindex, nginx autoindex in HTML
//! or JSON) turned into the children of that one directory.
//!
//! Image trees such as the Raspberry Pi download server publish no index file: the
//! listings are the only table of contents, so [`crawl`](super::crawl) walks them. A
//! listing is untrusted input, and it is made for people, not for us:
//!
//! - The shown text is cut (`2024-11-19-raspios-b..&gt;` in Apache's stock width,
//!   47 characters plus `..>` in nginx) and escaped differently by each server, so a
//!   name is taken from the href alone, percent-decoded, and only when it resolves to
//!   a direct child of the listing's own URL. Sort links (`?C=N;O=D`), the parent
//!   link, links to other hosts and anything that decodes to `..` or holds a `/` are
//!   dropped here, before a name can reach a path on disk.
//! - The date and size shown beside a name are kept as an opaque `hint`: when it is
//!   unchanged since the last run, the file most likely is too, and the sync saves a
//!   HEAD request per file. Only nginx prints sizes in bytes; those are also returned
//!   as exact sizes, which the fetch can check.
//! - A hostile or broken server can list millions of links. Links are counted with a
//!   plain byte scan before any parsing and the listing is refused past the limit, so
//!   a Raspberry Pi never spends its memory on one listing.
//!
//! Parsing is CPU work (100,000 entries take a good part of a second on a PC, a few
//! seconds on a Pi): call it from `spawn_blocking`. Captured listings from real servers are in
//! `tests/data/listings/` (see the README there).

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashSet;

// html5ever's tokenizer, not a DOM (scraper) or tl: html5ever is Servo's parser, well
// kept, and decodes entities the way browsers do (Apache writes `tom&amp;jerry.txt`
// in hrefs; tl does no entity decoding at all and has had no release since
// 2024-01). A listing only needs its tokens in order, and a token stream keeps
// nothing but the entries: for 100,000 Apache table rows (27 MB) a DOM took ~120 MB
// (scraper) or ~220 MB (tl) besides the body; the tokenizer, fed in pieces, ~13 MB.
use html5ever::TokenizerResult;
use html5ever::tendril::StrTendril;
use html5ever::tokenizer::states::RawKind;
use html5ever::tokenizer::{
    BufferQueue, Tag, TagKind, Token, TokenSink, TokenSinkResult, Tokenizer, TokenizerOpts,
};
use percent_encoding::percent_decode_str;
use url::{Position, Url};

/// Links allowed beyond `max_entries` in the cheap pre-count: sort links, the parent
/// link, a header or footer.
const LINK_SLACK: usize = 100;

/// A hint longer than this is cut; it is a fingerprint, not data, and a hostile page
/// could put megabytes of text after one link.
const MAX_HINT_BYTES: usize = 512;

/// The HTML is fed to the tokenizer in pieces of this size, so it never holds a second
/// copy of a large listing.
const FEED_CHUNK: usize = 64 << 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
}

/// One child of a listed directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListingEntry {
    /// One path component, percent-decoded from the href (never from the shown text),
    /// no trailing '/'.
    pub name: String,
    pub kind: EntryKind,
    /// The size and date text shown beside the entry, whitespace-collapsed: an opaque
    /// fingerprint used to notice a change between runs without a HEAD request.
    pub hint: String,
    /// Exact size in bytes when the format states it exactly (nginx exact sizes, nginx
    /// JSON); None for rounded sizes ("4.0K", "4M") or directories.
    pub size: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ListingError {
    /// Counted before parsing (then `found` is where counting stopped) or after
    /// dropping the links that are not entries.
    #[error(
        "the listing has at least {found} links, more than the {limit} entries allowed; not parsing it"
    )]
    TooManyLinks { found: usize, limit: usize },
    #[error("the listing is not valid nginx JSON")]
    Json {
        #[source]
        source: serde_json::Error,
    },
    /// The caller names the URL (redacted) in its context.
    #[error("the listing's URL does not end with '/', so its links cannot be resolved")]
    BaseNotDirectory,
}

/// `base` is the listing's own URL (ends with '/'). Only direct children of `base` are
/// returned.
///
/// Entries come in the listing's order; a name listed twice is kept once, as first
/// shown. More than `max_entries` entries (or, before parsing, more than
/// `max_entries` + 100 links) is [`ListingError::TooManyLinks`].
pub fn parse_listing(
    body: &[u8],
    content_type: Option<&str>,
    base: &Url,
    max_entries: usize,
) -> Result<Vec<ListingEntry>, ListingError> {
    if !base.path().ends_with('/') {
        return Err(ListingError::BaseNotDirectory);
    }
    let link_limit = max_entries.saturating_add(LINK_SLACK);
    let entries = if is_json(body, content_type) {
        let found = count_json_objects(body, link_limit);
        if found > link_limit {
            return Err(ListingError::TooManyLinks {
                found,
                limit: max_entries,
            });
        }
        parse_json(body)?
    } else {
        let found = count_hrefs(body, link_limit);
        if found > link_limit {
            return Err(ListingError::TooManyLinks {
                found,
                limit: max_entries,
            });
        }
        parse_html(body, base)
    };
    if entries.len() > max_entries {
        return Err(ListingError::TooManyLinks {
            found: entries.len(),
            limit: max_entries,
        });
    }
    Ok(entries)
}

fn is_json(body: &[u8], content_type: Option<&str>) -> bool {
    let declared = content_type.is_some_and(|ct| {
        ct.split(';')
            .next()
            .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
    });
    declared || body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[')
}

/// Counts `href` attributes (`href`, optional spaces, `=`, any case), stopping once
/// past `stop`: bounded work however large the body.
fn count_hrefs(body: &[u8], stop: usize) -> usize {
    let mut found = 0;
    let mut i = 0;
    while found <= stop {
        let Some(at) = body[i..].iter().position(|&b| b | 0x20 == b'h') else {
            break;
        };
        let start = i + at;
        i = start + 1;
        let Some(word) = body.get(start..start + 4) else {
            break;
        };
        if !word.eq_ignore_ascii_case(b"href") {
            continue;
        }
        let rest = &body[start + 4..];
        let spaces = rest.iter().take_while(|b| b.is_ascii_whitespace()).count();
        if rest.get(spaces) == Some(&b'=') {
            found += 1;
        }
    }
    found
}

/// Counts `"name"` keys, one per nginx JSON object (a `"` inside a value is escaped,
/// so a name cannot fake one), stopping once past `stop`.
fn count_json_objects(body: &[u8], stop: usize) -> usize {
    const KEY: &[u8] = b"\"name\"";
    let mut found = 0;
    let mut i = 0;
    while found <= stop {
        let Some(at) = body[i..].iter().position(|&b| b == b'"') else {
            break;
        };
        let start = i + at;
        if body[start..].starts_with(KEY) {
            found += 1;
            i = start + KEY.len();
        } else {
            i = start + 1;
        }
    }
    found
}

/// nginx `autoindex_format json`: `[{ "name":"x", "type":"file", "mtime":"...", "size":1 }]`.
/// <https://nginx.org/en/docs/http/ngx_http_autoindex_module.html#autoindex_format>
#[derive(serde::Deserialize)]
struct JsonEntry<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
    #[serde(default)]
    mtime: Option<String>,
    #[serde(default)]
    size: Option<u64>,
}

fn parse_json(body: &[u8]) -> Result<Vec<ListingEntry>, ListingError> {
    let raw: Vec<JsonEntry<'_>> =
        serde_json::from_slice(body).map_err(|source| ListingError::Json { source })?;
    let mut seen = HashSet::new();
    let mut entries = Vec::new();
    for item in raw {
        let kind = match &*item.kind {
            "file" => EntryKind::File,
            "directory" => EntryKind::Dir,
            // "other": sockets, devices, broken symlinks; nothing to mirror.
            _ => continue,
        };
        if !is_safe_name(&item.name) || !seen.insert(item.name.to_string()) {
            continue;
        }
        let size = match kind {
            EntryKind::File => item.size,
            EntryKind::Dir => None,
        };
        let (mut hint, mut space) = (String::new(), false);
        for part in [item.mtime, size.map(|s| s.to_string())]
            .into_iter()
            .flatten()
        {
            push_collapsed(&mut hint, &mut space, &part);
            space = !hint.is_empty();
        }
        entries.push(ListingEntry {
            name: item.name.into_owned(),
            kind,
            hint,
            size,
        });
    }
    Ok(entries)
}

fn parse_html(body: &[u8], base: &Url) -> Vec<ListingEntry> {
    // Names come from percent-encoded hrefs, so a file name in another encoding only
    // spoils the shown text; such a name is dropped below rather than the listing.
    let text = String::from_utf8_lossy(body);
    let sink = Sink {
        state: RefCell::new(Collect {
            base,
            replaced: matches!(text, Cow::Owned(_)),
            entries: Vec::new(),
            seen: HashSet::new(),
            in_anchor: None,
            hint_to: None,
            hint_space: false,
        }),
    };
    let tokenizer = Tokenizer::new(sink, TokenizerOpts::default());
    let queue = BufferQueue::default();
    let mut rest: &str = &text;
    while !rest.is_empty() {
        let mut cut = rest.len().min(FEED_CHUNK);
        while !rest.is_char_boundary(cut) {
            cut += 1;
        }
        let (chunk, tail) = rest.split_at(cut);
        queue.push_back(StrTendril::from_slice(chunk));
        feed_all(&tokenizer, &queue);
        rest = tail;
    }
    tokenizer.end();
    let mut entries = tokenizer.sink.state.into_inner().entries;
    for entry in &mut entries {
        if entry.kind == EntryKind::File {
            entry.size = nginx_exact_size(&entry.hint);
        }
    }
    entries
}

/// The size in an nginx line, `19-Nov-2024 16:46 4194304`, when it is in bytes.
///
/// Only nginx puts exactly a `DD-Mon-YYYY HH:MM` date and a size beside a link.
/// With `autoindex_exact_size off` it prints `20K`/`3M` but still gives sizes up to
/// 9999 in bytes, which are exact too (`ngx_http_autoindex_html` in the nginx
/// source). Apache 2.4 writes `2024-11-19 16:46`, so its lines never match; Apache
/// 2.2's `19-Nov-2024` ones would, and there an all-digit size is exact as well
/// (`apr_strfsize` prints bytes below 973).
fn nginx_exact_size(hint: &str) -> Option<u64> {
    let mut words = hint.split(' ');
    let (date, time, size) = (words.next()?, words.next()?, words.next()?);
    if words.next().is_some() {
        return None;
    }
    let shape = |s: &str, pattern: &[u8]| {
        s.len() == pattern.len()
            && s.bytes().zip(pattern).all(|(b, &p)| match p {
                b'9' => b.is_ascii_digit(),
                b'a' => b.is_ascii_alphabetic(),
                _ => b == p,
            })
    };
    if !shape(date, b"99-aaa-9999") || !shape(time, b"99:99") {
        return None;
    }
    if size.is_empty() || !size.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    size.parse().ok()
}

fn feed_all(tokenizer: &Tokenizer<Sink<'_>>, queue: &BufferQueue) {
    // The sink never asks to pause for a script or an encoding change, so this
    // returns Done; anything else just resumes.
    while !matches!(tokenizer.feed(queue), TokenizerResult::Done) {}
}

struct Sink<'a> {
    state: RefCell<Collect<'a>>,
}

struct Collect<'a> {
    base: &'a Url,
    /// The body was not UTF-8; U+FFFD in a name stands for bytes we do not know.
    replaced: bool,
    entries: Vec<ListingEntry>,
    seen: HashSet<String>,
    /// Inside `<a>`: the entry it added, if it was one.
    in_anchor: Option<Option<usize>>,
    /// The entry the text after its `</a>` belongs to.
    hint_to: Option<usize>,
    hint_space: bool,
}

impl TokenSink for Sink<'_> {
    type Handle = ();

    fn process_token(&self, token: Token, _line: u64) -> TokenSinkResult<()> {
        let mut state = self.state.borrow_mut();
        match token {
            Token::TagToken(tag) => return state.tag(&tag),
            Token::CharacterTokens(text) => state.text(&text),
            _ => {}
        }
        TokenSinkResult::Continue
    }
}

impl Collect<'_> {
    fn tag(&mut self, tag: &Tag) -> TokenSinkResult<()> {
        let name: &str = &tag.name;
        match (tag.kind, name) {
            (TagKind::StartTag, "a") => {
                self.hint_to = None;
                let added = tag
                    .attrs
                    .iter()
                    .find(|attr| &*attr.name.local == "href")
                    .and_then(|href| self.add(&href.value));
                self.in_anchor = Some(added);
            }
            (TagKind::EndTag, "a") => {
                if let Some(added) = self.in_anchor.take() {
                    self.hint_to = added;
                    self.hint_space = false;
                }
            }
            // Where an entry's row or line ends: the next row, the rule and the
            // server signature under the listing are not part of its hint.
            (TagKind::StartTag, "tr" | "li" | "hr" | "address" | "table" | "ul" | "ol" | "pre")
            | (TagKind::EndTag, "tr" | "li" | "table" | "ul" | "ol" | "pre" | "body") => {
                self.hint_to = None;
            }
            _ => {}
        }
        // What the tree builder would tell the tokenizer: a link inside a title or a
        // script is text, not a link.
        match (tag.kind, name) {
            (TagKind::StartTag, "title" | "textarea") => TokenSinkResult::RawData(RawKind::Rcdata),
            (TagKind::StartTag, "style" | "xmp" | "iframe" | "noembed" | "noframes") => {
                TokenSinkResult::RawData(RawKind::Rawtext)
            }
            (TagKind::StartTag, "script") => TokenSinkResult::RawData(RawKind::ScriptData),
            (TagKind::StartTag, "plaintext") => TokenSinkResult::Plaintext,
            _ => TokenSinkResult::Continue,
        }
    }

    fn text(&mut self, text: &str) {
        if self.in_anchor.is_some() {
            return;
        }
        if let Some(i) = self.hint_to {
            push_collapsed(&mut self.entries[i].hint, &mut self.hint_space, text);
        }
    }

    /// Adds the entry `href` names if it is a direct child of the base; its index.
    fn add(&mut self, href: &str) -> Option<usize> {
        let (name, kind) = child_of(self.base, href)?;
        if self.replaced && name.contains(char::REPLACEMENT_CHARACTER) {
            return None;
        }
        if !self.seen.insert(name.clone()) {
            return None;
        }
        self.entries.push(ListingEntry {
            name,
            kind,
            hint: String::new(),
            size: None,
        });
        Some(self.entries.len() - 1)
    }
}

/// The name and kind of the direct child of `base` that `href` points to, if it does.
fn child_of(base: &Url, href: &str) -> Option<(String, EntryKind)> {
    let url = base.join(href).ok()?;
    if url.query().is_some() || url.fragment().is_some() {
        return None;
    }
    // Scheme, user info, host and port, as the URL parser normalised them.
    if url[..Position::AfterPort] != base[..Position::AfterPort] {
        return None;
    }
    let rest = url.path().strip_prefix(base.path())?;
    let (segment, kind) = match rest.strip_suffix('/') {
        Some(dir) => (dir, EntryKind::Dir),
        None => (rest, EntryKind::File),
    };
    if segment.contains('/') {
        return None;
    }
    let name = percent_decode_str(segment).decode_utf8().ok()?;
    if !is_safe_name(&name) {
        return None;
    }
    Some((name.into_owned(), kind))
}

/// One path component we are willing to create: `%2e%2e`, `a%2fb` and control
/// characters decode to something that is not.
fn is_safe_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == '\\' || c == '\0' || c.is_control())
}

/// Appends `text` to `hint` with runs of whitespace (`&nbsp;` included) as one space
/// and none at the start; `space` carries a pending space across calls.
fn push_collapsed(hint: &mut String, space: &mut bool, text: &str) {
    for c in text.chars() {
        if c.is_whitespace() {
            *space = !hint.is_empty();
            continue;
        }
        let extra = c.len_utf8() + usize::from(*space);
        if hint.len() + extra > MAX_HINT_BYTES {
            return;
        }
        if *space {
            hint.push(' ');
            *space = false;
        }
        hint.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    const TRICKY: &str = "http://127.0.0.1:18080/tricky/";
    const DATED: &str =
        "http://127.0.0.1:18080/raspios_lite_armhf/images/raspios_lite_armhf-2024-11-19/";
    const LONG: &str = "2024-11-19-raspios-bookworm-arm64-full-with-a-really-long-name-for-truncation-tests.img.xz";
    const IMG: &str = "2024-11-19-raspios-bookworm-armhf-lite.img.xz";

    macro_rules! capture {
        ($file:literal, $content_type:expr) => {
            (
                $file,
                include_str!(concat!("../../tests/data/listings/", $file)),
                $content_type,
            )
        };
    }

    const HTML: Option<&str> = Some("text/html");
    const JSON: Option<&str> = Some("application/json");

    /// Every capture in tests/data/listings, with the Content-Type it was served with.
    const CAPTURES: &[(&str, &str, Option<&str>)] = &[
        capture!("apache-fancy-table.html", Some("text/html;charset=UTF-8")),
        capture!(
            "apache-fancy-table-dated.html",
            Some("text/html;charset=UTF-8")
        ),
        capture!("apache-fancy-pre.html", Some("text/html;charset=UTF-8")),
        capture!(
            "apache-fancy-pre-dated.html",
            Some("text/html;charset=UTF-8")
        ),
        capture!("apache-plain.html", Some("text/html;charset=UTF-8")),
        capture!("apache-plain-dated.html", Some("text/html;charset=UTF-8")),
        capture!(
            "apache-stock-pre.html",
            Some("text/html;charset=ISO-8859-1")
        ),
        capture!(
            "apache-stock-pre-dated.html",
            Some("text/html;charset=ISO-8859-1")
        ),
        capture!("nginx.html", HTML),
        capture!("nginx-dated.html", HTML),
        capture!("nginx-human.html", HTML),
        capture!("nginx-human-dated.html", HTML),
        capture!("nginx.json", JSON),
        capture!("nginx-dated.json", JSON),
    ];

    fn url(s: &str) -> Url {
        Url::parse(s).expect("test URL")
    }

    fn parse(body: &str, content_type: Option<&str>, base: &str) -> Vec<ListingEntry> {
        parse_listing(body.as_bytes(), content_type, &url(base), 1000).expect("parses")
    }

    fn capture(file: &str) -> Vec<ListingEntry> {
        let (_, body, content_type) = CAPTURES
            .iter()
            .find(|(name, _, _)| *name == file)
            .expect("known capture");
        let base = if file.contains("-dated") {
            DATED
        } else {
            TRICKY
        };
        parse(body, *content_type, base)
    }

    fn entry<'a>(entries: &'a [ListingEntry], name: &str) -> &'a ListingEntry {
        entries
            .iter()
            .find(|e| e.name == name)
            .unwrap_or_else(|| panic!("{name} not listed"))
    }

    fn expected(file: &str) -> Vec<(String, EntryKind)> {
        let mut names: Vec<(String, EntryKind)> = if file.contains("-dated") {
            ["", ".sha256", ".sig", ".torrent"]
                .iter()
                .map(|ext| (format!("{IMG}{ext}"), EntryKind::File))
                .chain([(
                    "2024-11-19-raspios-bookworm-armhf-lite.info".to_string(),
                    EntryKind::File,
                )])
                .collect()
        } else {
            [
                "ñandú.txt",
                "100%.txt",
                LONG,
                "c++~backup.txt",
                "four-megabytes.bin",
                "lt<gt>.txt",
                "quote'apos.txt",
                "tom&jerry.txt",
                "with space.txt",
            ]
            .iter()
            .map(|n| (n.to_string(), EntryKind::File))
            .chain([("sub-dir".to_string(), EntryKind::Dir)])
            .collect()
        };
        names.sort_by(|a, b| a.0.cmp(&b.0));
        names
    }

    #[test]
    fn every_capture_yields_exactly_its_entries() {
        for (file, _, _) in CAPTURES {
            let entries = capture(file);
            let mut got: Vec<(String, EntryKind)> =
                entries.iter().map(|e| (e.name.clone(), e.kind)).collect();
            got.sort_by(|a, b| a.0.cmp(&b.0));
            assert_eq!(got, expected(file), "{file}");
        }
    }

    #[test]
    fn hints_are_shown_beside_files_except_in_apache_plain() {
        for (file, _, _) in CAPTURES {
            for e in capture(file) {
                if file.starts_with("apache-plain") {
                    assert_eq!(e.hint, "", "{file}: {}", e.name);
                } else {
                    assert!(!e.hint.is_empty(), "{file}: {} has no hint", e.name);
                }
                // The server signature under Debian's listings is not part of the
                // last entry's hint.
                assert!(!e.hint.contains("Apache"), "{file}: {:?}", e.hint);
            }
        }
    }

    #[test]
    fn hints_are_the_collapsed_date_and_size() {
        for (file, four_mb, dir) in [
            (
                "apache-fancy-table.html",
                "2024-11-19 16:46 4.0M",
                "2024-11-19 16:46 -",
            ),
            (
                "apache-fancy-pre.html",
                "2024-11-19 16:46 4.0M",
                "2024-11-19 16:46 -",
            ),
            (
                "apache-stock-pre.html",
                "2024-11-19 16:46 4.0M",
                "2024-11-19 16:46 -",
            ),
            ("apache-plain.html", "", ""),
            (
                "nginx.html",
                "19-Nov-2024 16:46 4194304",
                "19-Nov-2024 16:46 -",
            ),
            (
                "nginx-human.html",
                "19-Nov-2024 16:46 4M",
                "19-Nov-2024 16:46 -",
            ),
            (
                "nginx.json",
                "Tue, 19 Nov 2024 16:46:00 GMT 4194304",
                "Tue, 19 Nov 2024 16:46:00 GMT",
            ),
        ] {
            let entries = capture(file);
            assert_eq!(
                entry(&entries, "four-megabytes.bin").hint,
                four_mb,
                "{file}"
            );
            assert_eq!(entry(&entries, "sub-dir").hint, dir, "{file}");
        }
        let table = capture("apache-fancy-table-dated.html");
        assert_eq!(
            entry(&table, &format!("{IMG}.torrent")).hint,
            "2024-11-19 16:46 20K"
        );
    }

    #[test]
    fn exact_sizes_come_from_nginx_only() {
        for file in ["nginx.html", "nginx.json"] {
            let entries = capture(file);
            for e in &entries {
                let want = match (e.kind, e.name.as_str()) {
                    (EntryKind::Dir, _) => None,
                    (_, "four-megabytes.bin") => Some(4_194_304),
                    _ => Some(2),
                };
                assert_eq!(e.size, want, "{file}: {}", e.name);
            }
        }
        for file in ["nginx-dated.html", "nginx-dated.json"] {
            let entries = capture(file);
            for (ext, size) in [
                ("", 3_000_000),
                (".sha256", 112),
                (".sig", 833),
                (".torrent", 20480),
            ] {
                assert_eq!(
                    entry(&entries, &format!("{IMG}{ext}")).size,
                    Some(size),
                    "{file}"
                );
            }
        }
        // Human sizes: "3M" and "20K" are rounded; nginx prints up to 9999 in bytes.
        let human = capture("nginx-human-dated.html");
        assert_eq!(entry(&human, IMG).size, None);
        assert_eq!(entry(&human, &format!("{IMG}.torrent")).size, None);
        assert_eq!(entry(&human, &format!("{IMG}.sha256")).size, Some(112));
        assert_eq!(
            entry(&capture("nginx-human.html"), "four-megabytes.bin").size,
            None
        );
        for (file, _, _) in CAPTURES.iter().filter(|(f, _, _)| f.starts_with("apache")) {
            assert!(capture(file).iter().all(|e| e.size.is_none()), "{file}");
        }
    }

    #[test]
    fn names_come_from_the_href_not_the_truncated_text() {
        for file in ["apache-stock-pre.html", "nginx.html", "nginx-human.html"] {
            let entries = capture(file);
            assert_eq!(entry(&entries, LONG).kind, EntryKind::File, "{file}");
            assert!(entries.iter().all(|e| !e.name.contains("..>")), "{file}");
        }
        let stock = capture("apache-stock-pre-dated.html");
        assert_eq!(stock.len(), 5);
        // Listing order is kept: nginx lists directories first.
        assert_eq!(capture("nginx.html")[0].name, "sub-dir");
    }

    #[test]
    fn json_is_recognised_by_body_or_content_type() {
        let body = include_str!("../../tests/data/listings/nginx.json");
        let by_type = parse(body, JSON, TRICKY);
        assert_eq!(parse(body, None, TRICKY), by_type);
        let padded = format!("\n  {body}");
        assert_eq!(parse(&padded, HTML, TRICKY), by_type);
        let with_charset = parse(body, Some("Application/JSON; charset=utf-8"), TRICKY);
        assert_eq!(with_charset, by_type);
    }

    #[test]
    fn json_skips_other_types_bad_names_and_repeats() {
        let body = r#"[
            { "name":"sock", "type":"other", "mtime":"x" },
            { "name":"..", "type":"directory", "mtime":"x" },
            { "name":"a/b", "type":"file", "mtime":"x", "size":1 },
            { "name":"", "type":"file", "mtime":"x", "size":1 },
            { "name":"nl\n", "type":"file", "mtime":"x", "size":1 },
            { "name":"q\"uote", "type":"file", "mtime":"Tue, 19 Nov 2024 16:46:00 GMT", "size":7 },
            { "name":"q\"uote", "type":"file", "mtime":"later", "size":8 },
            { "name":"d", "type":"directory", "mtime":"m", "size":4096, "extra":true }
        ]"#;
        let entries = parse(body, JSON, TRICKY);
        assert_eq!(
            entries,
            vec![
                ListingEntry {
                    name: "q\"uote".into(),
                    kind: EntryKind::File,
                    hint: "Tue, 19 Nov 2024 16:46:00 GMT 7".into(),
                    size: Some(7),
                },
                ListingEntry {
                    name: "d".into(),
                    kind: EntryKind::Dir,
                    hint: "m".into(),
                    size: None,
                },
            ]
        );
    }

    #[test]
    fn malformed_json_is_an_error() {
        for (body, content_type) in [
            ("[{\"name\":\"x\"", None),
            ("[{\"name\":1,\"type\":\"file\"}]", None),
            ("{\"name\":\"x\",\"type\":\"file\"}", JSON),
            ("<html><a href=\"x\">x</a></html>", JSON),
        ] {
            let err =
                parse_listing(body.as_bytes(), content_type, &url(TRICKY), 10).expect_err(body);
            assert!(matches!(err, ListingError::Json { .. }), "{body}: {err:?}");
        }
    }

    const HOSTILE: &str = r##"<html><head><title>Index of <a href="in-title">x</a></title>
<script>document.write('<a href="in-script">x</a>')</script></head><body>
<h1>Index of /pub/images/</h1><hr><pre>
<a href="http://other.example/pub/images/x.img">other host</a>
<a href="//other.example/pub/images/x.img">scheme-relative</a>
<a href="https://mirror.example/pub/images/tls.img">other scheme</a>
<a href="http://mirror.example:8080/pub/images/port.img">other port</a>
<a href="http://user@mirror.example/pub/images/userinfo.img">user info</a>
<a href="../">parent</a> <a href="../../">grandparent</a> <a href="/">root</a>
<a href="?C=M;O=A">sort</a> <a href="#frag">frag</a>
<a href="ok.img#frag">fragment on a file</a> <a href="ok.img?x=1">query on a file</a>
<a href="./">self</a> <a href="">empty</a> <a href=".">dot</a>
<a href="http://mirror.example/pub/images/">self, absolute</a>
<a href="%2e%2e/">encoded parent</a> <a href="%2E%2E">encoded parent file</a>
<a href="%2e/">encoded self</a> <a href="a%2fb">encoded slash</a>
<a href="a%5cb">encoded backslash</a> <a href="a\b">backslash</a>
<a href="nul%00.img">nul</a> <a href="nl%0a.img">newline</a> <a href="bad%ff.img">not UTF-8</a>
<a href="sub/deeper.img">grandchild</a> <a href="sub//">double slash</a>
<a href="javascript:alert(1)">js</a> <a href="mailto:x@example.org">mail</a>
<a href="data:text/plain,x">data</a> <a>no href</a>
<a href="ok.img">ok.img</a>                19-Nov-2024 16:46       5
<a href="ok.img">ok.img shown again</a>    20-Nov-2024 16:46       6
<A HREF="UPPER.IMG">upper</A>             19-Nov-2024 16:46       7
<a href="/pub/images/absolute-path.img">absolute path</a>
<a href="http://MIRROR.example:80/pub/images/absolute-url.img">absolute URL</a>
<a href=" padded.img ">padded</a>
<a href="dir/">dir/</a>                   19-Nov-2024 16:46       -
</pre><hr></body></html>"##;

    #[test]
    fn only_direct_children_of_the_base_are_entries() {
        let entries = parse(HOSTILE, HTML, "http://mirror.example/pub/images/");
        let got: Vec<(&str, EntryKind, &str, Option<u64>)> = entries
            .iter()
            .map(|e| (e.name.as_str(), e.kind, e.hint.as_str(), e.size))
            .collect();
        assert_eq!(
            got,
            vec![
                ("ok.img", EntryKind::File, "19-Nov-2024 16:46 5", Some(5)),
                ("UPPER.IMG", EntryKind::File, "19-Nov-2024 16:46 7", Some(7)),
                ("absolute-path.img", EntryKind::File, "", None),
                ("absolute-url.img", EntryKind::File, "", None),
                ("padded.img", EntryKind::File, "", None),
                ("dir", EntryKind::Dir, "19-Nov-2024 16:46 -", None),
            ]
        );
    }

    #[test]
    fn a_base_with_escapes_keeps_its_children() {
        let body = r#"<a href="../">../</a> <a href="x%20y.img">x y.img</a>"#;
        let entries = parse(body, HTML, "http://h.example/with%20space/%C3%B1/");
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].name, "x y.img");
    }

    #[test]
    fn a_base_that_is_not_a_directory_is_refused() {
        let err = parse_listing(b"", HTML, &url("http://h.example/pub/images"), 10)
            .expect_err("no trailing slash");
        assert!(matches!(err, ListingError::BaseNotDirectory));
    }

    #[test]
    fn a_body_that_is_not_utf8_loses_only_the_unknown_names() {
        let body = b"<pre><a href=\"caf%e9.txt\">caf\xe9.txt</a> 19-Nov-2024 16:46 3\n\
            <a href=\"raw\xff.txt\">raw\xff.txt</a> 19-Nov-2024 16:46 3\n\
            <a href=\"fine.txt\">fine.txt</a> 19-Nov-2024 16:46 4\n</pre>";
        let entries = parse_listing(body, HTML, &url(TRICKY), 10).expect("parses");
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].name, "fine.txt");
        assert_eq!(entries[0].size, Some(4));
    }

    #[test]
    fn long_hints_are_cut() {
        let body = format!("<a href=\"x\">x</a> {}", "1 ".repeat(10_000));
        let entries = parse(&body, HTML, TRICKY);
        assert!(entries[0].hint.len() <= MAX_HINT_BYTES);
        assert!(entries[0].hint.starts_with("1 1 1"));
    }

    #[test]
    fn a_million_links_are_refused_before_parsing() {
        let body = "<a href=\"f\">f</a> 19-Nov-2024 16:46 1\n".repeat(1_000_000);
        let started = Instant::now();
        let err =
            parse_listing(body.as_bytes(), HTML, &url(TRICKY), 100_000).expect_err("too many");
        eprintln!("1,000,000 links refused in {:?}", started.elapsed());
        assert!(
            matches!(err, ListingError::TooManyLinks { found, limit: 100_000 } if found > 100_100),
            "{err:?}"
        );

        let json = format!(
            "[{}]",
            "{ \"name\":\"f\", \"type\":\"file\", \"mtime\":\"m\", \"size\":1 },".repeat(1_000_000)
        );
        let err =
            parse_listing(json.as_bytes(), JSON, &url(TRICKY), 100_000).expect_err("too many");
        assert!(matches!(
            err,
            ListingError::TooManyLinks { limit: 100_000, .. }
        ));
    }

    #[test]
    fn more_entries_than_allowed_are_refused_after_filtering() {
        let body: String = (0..6)
            .map(|i| format!("<a href=\"f{i}\">f</a>\n"))
            .collect();
        let err = parse_listing(body.as_bytes(), HTML, &url(TRICKY), 5).expect_err("six");
        assert!(matches!(
            err,
            ListingError::TooManyLinks { found: 6, limit: 5 }
        ));
        // Links that are not entries (sort links, the parent) do not count.
        let body = format!("<a href=\"../\">..</a><a href=\"?C=N;O=D\">N</a>{body}");
        let entries = parse_listing(body.as_bytes(), HTML, &url(TRICKY), 6).expect("six");
        assert_eq!(entries.len(), 6);
    }

    #[test]
    fn href_counting_is_case_insensitive_and_needs_an_equals_sign() {
        assert_eq!(count_hrefs(b"<a HREF = 'x'> href <a href=\"y\">", 10), 2);
        assert_eq!(count_hrefs(b"h", 10), 0);
        assert_eq!(count_hrefs(&b"href=".repeat(100), 10), 11);
    }

    /// Not a test of speed (timings vary by machine); prints them for a Pi or a review:
    /// `cargo test --release --lib images::listing -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn timings() {
        let nginx: String = (0..100_000)
            .map(|i| {
                format!("<a href=\"{IMG}-{i:06}\">{IMG}-{i:06}</a>  19-Nov-2024 16:46   3000000\n")
            })
            .collect();
        let nginx = format!(
            "<html><body><hr><pre><a href=\"../\">../</a>\n{nginx}</pre><hr></body></html>"
        );
        let table: String = (0..100_000)
            .map(|i| {
                format!(
                    "<tr><td valign=\"top\"><img src=\"/icons/unknown.gif\" alt=\"[   ]\"></td><td><a href=\"{IMG}-{i:06}\">{IMG}-{i:06}</a></td><td align=\"right\">2024-11-19 16:46  </td><td align=\"right\">2.9M</td><td>&nbsp;</td></tr>\n"
                )
            })
            .collect();
        let table = format!("<html><body><table>{table}</table></body></html>");
        for (what, body) in [("nginx", &nginx), ("Apache table", &table)] {
            let started = Instant::now();
            let entries =
                parse_listing(body.as_bytes(), HTML, &url(TRICKY), 100_000).expect("parses");
            eprintln!(
                "{what}: {} entries ({} MB) parsed in {:?}",
                entries.len(),
                body.len() >> 20,
                started.elapsed()
            );
        }
        let million = "<a href=\"f\">f</a> 19-Nov-2024 16:46 1\n".repeat(1_000_000);
        let started = Instant::now();
        let refused = parse_listing(million.as_bytes(), HTML, &url(TRICKY), 100_000);
        eprintln!(
            "1,000,000 links refused in {:?}: {}",
            started.elapsed(),
            refused.is_err()
        );
    }
}
