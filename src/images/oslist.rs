//! Raspberry Pi Imager OS lists: which images a list offers, and the list
//! rewritten to point at the mirror.
//!
//! The Imager starts from a JSON document such as
//! `https://downloads.raspberrypi.org/os_list_imagingutility_v4.json`:
//!
//! ```text
//! { "imager": { "latest_version", "url", "devices": [...] },
//!   "os_list": [
//!     { "name", "description", "icon", "url", "extract_size", "extract_sha256",
//!       "image_download_size", "image_download_sha256", "release_date", "init_format",
//!       "devices": [...] },
//!     { "name", "subitems": [ ...entries, nested again... ] },
//!     { "name", "subitems_url": "https://.../os_list_other.json" } ] }
//! ```
//!
//! `image_download_size` / `image_download_sha256` describe the file at `url`
//! (the compressed download), which is what the fetcher verifies. `extract_*`
//! describe the decompressed image and are never checked here. A category
//! with `subitems_url` loads another list of the same shape; the caller
//! fetches and parses those too.
//!
//! [`OsList::images`] and [`OsList::subitems_urls`] tell the image sync what
//! to download; [`OsList::rewrite`] produces the copy the mirror serves, with
//! the URLs it mirrors pointing at itself so an Imager pointed at the mirror
//! (`rpi-imager --repo`) downloads from it. Everything else in the document is
//! kept as it was, key order included (serde_json's `preserve_order`).

use serde_json::{Map, Value};
use url::Url;

/// An image an OS list offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    pub url: Url,
    /// `image_download_size`: the size of the file at `url`.
    pub size: Option<u64>,
    /// `image_download_sha256`: the digest of the file at `url`.
    pub sha256: Option<[u8; 32]>,
    /// Where in the document, for error messages, e.g. `os_list[3].subitems[0]`.
    pub at: String,
}

#[derive(Debug, thiserror::Error)]
pub enum OsListError {
    #[error("{origin}: not valid JSON (line {line}, column {column})")]
    Json {
        origin: String,
        line: usize,
        column: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error("{origin}: expected a JSON object with an \"os_list\" array, found {found}")]
    NotOsList { origin: String, found: String },
    /// `at` is the path of the value, e.g. `os_list[2].subitems[0].image_download_sha256`.
    #[error("{origin}: {at}: expected {expected}, found {found}")]
    BadValue {
        origin: String,
        at: String,
        expected: &'static str,
        found: String,
    },
    #[error("{origin}: {at}: {url:?} is not a valid absolute URL")]
    BadUrl {
        origin: String,
        at: String,
        url: String,
        #[source]
        source: url::ParseError,
    },
}

/// A parsed OS list. The whole document is kept, so that [`OsList::rewrite`]
/// can give it back with only URLs changed.
#[derive(Debug, Clone)]
pub struct OsList {
    /// A JSON object whose `os_list` is an array (checked by [`OsList::parse`]).
    doc: Value,
    origin: String,
}

impl OsList {
    /// Parses an OS list; `origin` names it in errors (e.g. its URL). The
    /// document must be a JSON object with an `os_list` array.
    pub fn parse(bytes: &[u8], origin: &str) -> Result<OsList, OsListError> {
        let doc: Value = serde_json::from_slice(bytes).map_err(|source| OsListError::Json {
            origin: origin.to_string(),
            line: source.line(),
            column: source.column(),
            source,
        })?;
        let found = match &doc {
            Value::Object(obj) => match obj.get("os_list") {
                Some(Value::Array(_)) => None,
                Some(other) => Some(format!("\"os_list\" holding {}", describe(other))),
                None => Some("an object without \"os_list\"".to_string()),
            },
            other => Some(describe(other)),
        };
        if let Some(found) = found {
            return Err(OsListError::NotOsList {
                origin: origin.to_string(),
                found,
            });
        }
        Ok(OsList {
            doc,
            origin: origin.to_string(),
        })
    }

    /// The name given to [`OsList::parse`].
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Every entry with a `url` string, at any depth of `os_list` and its
    /// `subitems`, in document order. A `null` value counts as absent. A size
    /// that is not a non-negative integer, a digest that is not 64 hex digits
    /// or a URL that does not parse is an error naming where it is. URLs of
    /// any scheme are returned; which ones to mirror is the caller's choice.
    pub fn images(&self) -> Result<Vec<ImageRef>, OsListError> {
        let mut out = Vec::new();
        self.walk(&mut |at, entry| {
            let Some(url) = self.url_at(at, entry, "url")? else {
                return Ok(());
            };
            let size = match present(entry, "image_download_size") {
                None => None,
                Some(value) => Some(value.as_u64().ok_or_else(|| {
                    self.bad_value(
                        format!("{at}.image_download_size"),
                        "a non-negative integer (bytes)",
                        value,
                    )
                })?),
            };
            let sha256 = match present(entry, "image_download_sha256") {
                None => None,
                Some(value) => Some(parse_sha256(value).ok_or_else(|| {
                    self.bad_value(
                        format!("{at}.image_download_sha256"),
                        "64 hex digits (a SHA-256)",
                        value,
                    )
                })?),
            };
            out.push(ImageRef {
                url,
                size,
                sha256,
                at: at.to_string(),
            });
            Ok(())
        })?;
        Ok(out)
    }

    /// Every `subitems_url` in `os_list` and its `subitems`, in document order:
    /// further lists the Imager loads when that category is opened.
    pub fn subitems_urls(&self) -> Result<Vec<Url>, OsListError> {
        let mut out = Vec::new();
        self.walk(&mut |at, entry| {
            out.extend(self.url_at(at, entry, "subitems_url")?);
            Ok(())
        })?;
        Ok(out)
    }

    /// The document with every string value that parses as a URL, and for
    /// which `map` returns `Some(new)`, replaced by `new`; anything else
    /// (other strings, keys, numbers, key order) unchanged. Applies to the
    /// whole document, `imager` included, not only `os_list`. Returned as
    /// pretty-printed JSON with a trailing newline.
    pub fn rewrite(&self, map: &dyn Fn(&Url) -> Option<String>) -> Vec<u8> {
        let mut doc = self.doc.clone();
        rewrite_strings(&mut doc, map);
        // `{:#}` is serde_json's pretty printer, as `to_string_pretty`, but
        // infallible: a `Value` always serialises.
        let mut out = format!("{doc:#}").into_bytes();
        out.push(b'\n');
        out
    }

    fn walk(&self, visit: &mut Visit<'_>) -> Result<(), OsListError> {
        let items = self
            .doc
            .get("os_list")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        self.walk_items(items, "os_list", visit)
    }

    /// Depth-first in document order. Recursion is bounded: serde_json
    /// refuses documents nested deeper than 128 levels.
    fn walk_items(
        &self,
        items: &[Value],
        at: &str,
        visit: &mut Visit<'_>,
    ) -> Result<(), OsListError> {
        for (i, item) in items.iter().enumerate() {
            let at = format!("{at}[{i}]");
            let Value::Object(entry) = item else {
                return Err(self.bad_value(at, "an object", item));
            };
            visit(&at, entry)?;
            match present(entry, "subitems") {
                None => {}
                Some(Value::Array(sub)) => {
                    self.walk_items(sub, &format!("{at}.subitems"), visit)?;
                }
                Some(other) => {
                    return Err(self.bad_value(format!("{at}.subitems"), "an array", other));
                }
            }
        }
        Ok(())
    }

    fn url_at(
        &self,
        at: &str,
        entry: &Map<String, Value>,
        key: &str,
    ) -> Result<Option<Url>, OsListError> {
        let Some(value) = present(entry, key) else {
            return Ok(None);
        };
        let Value::String(text) = value else {
            return Err(self.bad_value(format!("{at}.{key}"), "a URL string", value));
        };
        Url::parse(text)
            .map(Some)
            .map_err(|source| OsListError::BadUrl {
                origin: self.origin.clone(),
                at: format!("{at}.{key}"),
                url: text.clone(),
                source,
            })
    }

    fn bad_value(&self, at: String, expected: &'static str, found: &Value) -> OsListError {
        OsListError::BadValue {
            origin: self.origin.clone(),
            at,
            expected,
            found: describe(found),
        }
    }
}

/// Called with each entry of `os_list` and its `subitems`, and where it is.
type Visit<'a> = dyn FnMut(&str, &Map<String, Value>) -> Result<(), OsListError> + 'a;

/// The value of `key`, treating `null` as absent.
fn present<'a>(entry: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    entry.get(key).filter(|v| !v.is_null())
}

fn parse_sha256(value: &Value) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(value.as_str()?, &mut out).ok()?;
    Some(out)
}

fn rewrite_strings(value: &mut Value, map: &dyn Fn(&Url) -> Option<String>) {
    match value {
        Value::String(text) => {
            if let Ok(url) = Url::parse(text)
                && let Some(new) = map(&url)
            {
                *text = new;
            }
        }
        Value::Array(items) => {
            for item in items {
                rewrite_strings(item, map);
            }
        }
        Value::Object(entries) => {
            for item in entries.values_mut() {
                rewrite_strings(item, map);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// A JSON value for an error message: scalars as written (strings
/// shortened), containers by kind.
fn describe(value: &Value) -> String {
    const MAX: usize = 80;
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => match s.char_indices().nth(MAX) {
            Some((cut, _)) => format!("{:?}…", &s[..cut]),
            None => format!("{s:?}"),
        },
        Value::Array(_) => "an array".to_string(),
        Value::Object(_) => "an object".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    const SAMPLE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/oslist/os_list_imagingutility_v4.json"
    );
    const ORIGIN: &str = "https://downloads.raspberrypi.org/os_list_imagingutility_v4.json";
    const PI: &str = "https://downloads.raspberrypi.org/";

    fn sample_bytes() -> Vec<u8> {
        std::fs::read(SAMPLE).unwrap()
    }

    fn sample() -> OsList {
        OsList::parse(&sample_bytes(), ORIGIN).unwrap()
    }

    /// The sample's synthetic digests (see tests/data/oslist/README.md).
    fn synthetic_sha256(url: &str) -> [u8; 32] {
        Sha256::digest(format!("mirrorsync sample: {url}")).into()
    }

    #[test]
    fn images_of_the_sample() {
        let images = sample().images().unwrap();
        let listed: Vec<(&str, &str)> = images
            .iter()
            .map(|i| (i.at.as_str(), i.url.as_str()))
            .collect();
        assert_eq!(
            listed,
            [
                (
                    "os_list[0]",
                    "https://downloads.raspberrypi.org/raspios_arm64/images/raspios_arm64-2024-11-19/2024-11-19-raspios-bookworm-arm64.img.xz"
                ),
                (
                    "os_list[1]",
                    "https://downloads.raspberrypi.org/raspios_armhf/images/raspios_armhf-2024-11-19/2024-11-19-raspios-bookworm-armhf.img.xz"
                ),
                (
                    "os_list[2].subitems[0]",
                    "https://downloads.raspberrypi.org/raspios_lite_arm64/images/raspios_lite_arm64-2024-11-19/2024-11-19-raspios-bookworm-arm64-lite.img.xz"
                ),
                (
                    "os_list[2].subitems[1]",
                    "https://downloads.raspberrypi.org/raspios_lite_armhf/images/raspios_lite_armhf-2024-11-19/2024-11-19-raspios-bookworm-armhf-lite.img.xz"
                ),
                (
                    "os_list[2].subitems[2]",
                    "https://downloads.raspberrypi.org/raspios_full_arm64/images/raspios_full_arm64-2024-11-19/2024-11-19-raspios-bookworm-arm64-full.img.xz"
                ),
                (
                    "os_list[2].subitems[3].subitems[0]",
                    "https://downloads.raspberrypi.org/raspios_oldstable_armhf/images/raspios_oldstable_armhf-2024-10-28/2024-10-28-raspios-bullseye-armhf.img.xz"
                ),
                (
                    "os_list[2].subitems[3].subitems[1]",
                    "https://downloads.raspberrypi.org/raspios_oldstable_lite_armhf/images/raspios_oldstable_lite_armhf-2024-10-28/2024-10-28-raspios-bullseye-armhf-lite.img.xz"
                ),
                (
                    "os_list[3].subitems[0].subitems[0]",
                    "https://cdimage.ubuntu.com/releases/24.04.1/release/ubuntu-24.04.1-preinstalled-desktop-arm64+raspi.img.xz"
                ),
                (
                    "os_list[3].subitems[0].subitems[1]",
                    "https://cdimage.ubuntu.com/releases/24.04.1/release/ubuntu-24.04.1-preinstalled-server-arm64+raspi.img.xz"
                ),
                (
                    "os_list[3].subitems[1]",
                    "https://github.com/manjaro-arm/rpi4-images/releases/download/23.02/Manjaro-ARM-kde-plasma-rpi4-23.02.img.xz"
                ),
                (
                    "os_list[6].subitems[0]",
                    "https://downloads.raspberrypi.org/net_install/boot-eeprom-recovery-2024-09-23-sdcard.zip"
                ),
            ]
        );
        // The download's size and digest, not the extracted image's.
        assert_eq!(images[0].size, Some(1_227_814_024));
        for image in &images {
            if image.at == "os_list[3].subitems[1]" {
                assert_eq!(image.sha256, None, "Manjaro publishes no download digest");
                assert_eq!(image.size, Some(1_973_462_248));
            } else {
                assert_eq!(image.sha256, Some(synthetic_sha256(image.url.as_str())));
                assert!(image.size.is_some());
            }
        }
    }

    #[test]
    fn subitems_urls_of_the_sample() {
        let urls: Vec<String> = sample()
            .subitems_urls()
            .unwrap()
            .into_iter()
            .map(String::from)
            .collect();
        assert_eq!(
            urls,
            [
                "https://releases.libreelec.tv/os_list_imagingutility_le.json",
                "https://downloads.raspberrypi.org/os_list_imagingutility_v4_freemium.json",
            ]
        );
    }

    #[test]
    fn rewrite_without_changes_keeps_the_document_and_key_order() {
        let list = sample();
        assert_eq!(
            String::from_utf8(list.rewrite(&|_| None)).unwrap(),
            String::from_utf8(sample_bytes()).unwrap()
        );
    }

    #[test]
    fn rewrite_points_accepted_urls_at_the_mirror() {
        let list = sample();
        // Mirror what is under downloads.raspberrypi.org except the icons.
        let map = |url: &Url| -> Option<String> {
            let rest = url.as_str().strip_prefix(PI)?;
            (!rest.ends_with(".png")).then(|| format!("http://mirror.example.org/raspios/{rest}"))
        };
        let rewritten = list.rewrite(&map);
        assert!(rewritten.ends_with(b"}\n"));
        let again = OsList::parse(&rewritten, "rewritten").unwrap();

        // Byte for byte the original with exactly the accepted URLs replaced.
        let original = String::from_utf8(sample_bytes()).unwrap();
        let mut expected = original.clone();
        let mut replaced = 0;
        for image in list.images().unwrap() {
            if let Some(new) = map(&image.url) {
                let old = format!("\"{}\"", image.url);
                assert_eq!(original.matches(&old).count(), 1, "{old}");
                expected = expected.replace(&old, &format!("\"{new}\""));
                replaced += 1;
            }
        }
        let freemium = format!("{PI}os_list_imagingutility_v4_freemium.json");
        expected = expected.replace(
            &format!("\"{freemium}\""),
            "\"http://mirror.example.org/raspios/os_list_imagingutility_v4_freemium.json\"",
        );
        assert_eq!(replaced, 8);
        assert_eq!(String::from_utf8(rewritten).unwrap(), expected);

        // What the mirror's list offers: the same images, digests and sizes.
        let before = list.images().unwrap();
        let after = again.images().unwrap();
        assert_eq!(before.len(), after.len());
        for (b, a) in before.iter().zip(&after) {
            assert_eq!((&b.at, b.size, b.sha256), (&a.at, a.size, a.sha256));
            if b.url.as_str().starts_with(PI) {
                assert_eq!(a.url.host_str(), Some("mirror.example.org"));
                assert!(a.url.path().starts_with("/raspios/"), "{}", a.url);
            } else {
                assert_eq!(a.url, b.url, "other hosts are untouched");
            }
        }
        assert_eq!(
            again.subitems_urls().unwrap()[0].as_str(),
            "https://releases.libreelec.tv/os_list_imagingutility_le.json"
        );
        assert!(
            !String::from_utf8(again.rewrite(&|_| None))
                .unwrap()
                .contains("https://downloads.raspberrypi.org/raspios_arm64/images/")
        );
    }

    fn replace_once(haystack: &str, from: &str, to: &str) -> Vec<u8> {
        assert_eq!(haystack.matches(from).count(), 1, "{from}");
        haystack.replacen(from, to, 1).into_bytes()
    }

    #[test]
    fn bad_values_name_where_they_are() {
        let original = String::from_utf8(sample_bytes()).unwrap();
        let lite32 = "https://downloads.raspberrypi.org/raspios_lite_armhf/images/raspios_lite_armhf-2024-11-19/2024-11-19-raspios-bookworm-armhf-lite.img.xz";
        let sha = hex::encode(synthetic_sha256(lite32));
        let cases = [
            (
                replace_once(&original, &sha, &sha[..63]),
                format!(
                    "{ORIGIN}: os_list[2].subitems[1].image_download_sha256: expected 64 hex \
                     digits (a SHA-256), found \"{}\"",
                    &sha[..63]
                ),
            ),
            (
                replace_once(&original, &sha, &format!("{}zz", &sha[..62])),
                format!(
                    "{ORIGIN}: os_list[2].subitems[1].image_download_sha256: expected 64 hex \
                     digits (a SHA-256), found \"{}zz\"",
                    &sha[..62]
                ),
            ),
            (
                replace_once(&original, "1227814024", "-1"),
                format!(
                    "{ORIGIN}: os_list[0].image_download_size: expected a non-negative integer \
                     (bytes), found -1"
                ),
            ),
            (
                replace_once(&original, "448826380", "\"448826380\""),
                format!(
                    "{ORIGIN}: os_list[2].subitems[0].image_download_size: expected a \
                     non-negative integer (bytes), found \"448826380\""
                ),
            ),
            (
                replace_once(
                    &original,
                    "\"https://cdimage.ubuntu.com/releases/24.04.1/release/ubuntu-24.04.1-preinstalled-server",
                    "\"/releases/24.04.1/release/ubuntu-24.04.1-preinstalled-server",
                ),
                format!(
                    "{ORIGIN}: os_list[3].subitems[0].subitems[1].url: \
                     \"/releases/24.04.1/release/ubuntu-24.04.1-preinstalled-server-arm64+raspi.img.xz\" \
                     is not a valid absolute URL"
                ),
            ),
        ];
        for (bytes, message) in cases {
            let list = OsList::parse(&bytes, ORIGIN).unwrap();
            let err = list.images().unwrap_err();
            assert_eq!(err.to_string(), message);
        }

        let doc = br#"{"os_list": [{"name": "x", "subitems_url": 7}]}"#;
        let err = OsList::parse(doc, "list.json")
            .unwrap()
            .subitems_urls()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "list.json: os_list[0].subitems_url: expected a URL string, found 7"
        );
        let doc = br#"{"os_list": [{"name": "x", "subitems": {"url": "https://a/"}}]}"#;
        let err = OsList::parse(doc, "list.json")
            .unwrap()
            .images()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "list.json: os_list[0].subitems: expected an array, found an object"
        );
        let doc = br#"{"os_list": [{"subitems": ["https://a/"]}]}"#;
        let err = OsList::parse(doc, "list.json")
            .unwrap()
            .images()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "list.json: os_list[0].subitems[0]: expected an object, found \"https://a/\""
        );
    }

    #[test]
    fn nulls_are_absent_and_minimal_entries_work() {
        let doc = br#"{"os_list": [
            {"name": "a", "url": "https://a.example/a.img.xz", "image_download_sha256": null,
             "image_download_size": null, "subitems": null, "subitems_url": null},
            {"name": "b", "url": null},
            {"name": "c", "url": "https://a.example/c.img.xz", "image_download_size": 0}
        ]}"#;
        let list = OsList::parse(doc, "list.json").unwrap();
        assert_eq!(
            list.images().unwrap(),
            [
                ImageRef {
                    url: Url::parse("https://a.example/a.img.xz").unwrap(),
                    size: None,
                    sha256: None,
                    at: "os_list[0]".to_string(),
                },
                ImageRef {
                    url: Url::parse("https://a.example/c.img.xz").unwrap(),
                    size: Some(0),
                    sha256: None,
                    at: "os_list[2]".to_string(),
                },
            ]
        );
        assert_eq!(list.subitems_urls().unwrap(), []);
        assert_eq!(list.origin(), "list.json");
    }

    #[test]
    fn syntax_errors_give_line_and_column() {
        let doc = b"{\n  \"os_list\": [\n    {\"name\": \"x\"}\n    {\"name\": \"y\"}\n  ]\n}\n";
        let err = OsList::parse(doc, "list.json").unwrap_err();
        let OsListError::Json { line, column, .. } = &err else {
            panic!("{err:?}");
        };
        assert_eq!((*line, *column), (4, 5));
        assert_eq!(
            err.to_string(),
            "list.json: not valid JSON (line 4, column 5)"
        );
        let source = std::error::Error::source(&err).unwrap().to_string();
        assert!(source.contains("expected `,` or `]`"), "{source}");

        // A truncated download.
        let bytes = sample_bytes();
        let err = OsList::parse(&bytes[..bytes.len() / 2], ORIGIN).unwrap_err();
        assert!(matches!(err, OsListError::Json { .. }), "{err}");
    }

    #[test]
    fn not_an_os_list() {
        for (doc, found) in [
            (&b"[]"[..], "an array"),
            (b"\"os_list\"", "\"os_list\""),
            (b"{}", "an object without \"os_list\""),
            (br#"{"imager": {}}"#, "an object without \"os_list\""),
            (br#"{"os_list": {}}"#, "\"os_list\" holding an object"),
            (br#"{"os_list": null}"#, "\"os_list\" holding null"),
        ] {
            let err = OsList::parse(doc, "list.json").unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "list.json: expected a JSON object with an \"os_list\" array, found {found}"
                )
            );
        }
        // An empty list is a list.
        let list = OsList::parse(br#"{"os_list": []}"#, "list.json").unwrap();
        assert_eq!(list.images().unwrap(), []);
        assert_eq!(list.rewrite(&|_| None), b"{\n  \"os_list\": []\n}\n");
    }
}
