//! Checksum files of image trees: `SHA256SUMS` and `<image>.sha256` sidecars.
//!
//! Image trees publish their digests beside the images rather than in a signed
//! index: the Raspberry Pi download server puts `<image>.sha256` next to each
//! image, other trees keep one `SHA256SUMS` per directory. Both hold lines in
//! the format `sha256sum` writes, and some trees use the BSD format that
//! `sha256sum --tag` and BSD's `sha256` write:
//!
//! ```text
//! 9f2c…e1  2024-11-19-raspios-bookworm-arm64.img.xz     text mode
//! 9f2c…e1 *2024-11-19-raspios-bookworm-arm64.img.xz     binary mode
//! SHA256 (2024-11-19-raspios-bookworm-arm64.img.xz) = 9f2c…e1
//! 9f2c…e1                                               a bare sidecar
//! ```
//!
//! [`parse_sums`] turns such a file into [`SumLine`]s; the image module's
//! caller matches them against listings and hands the digests to the fetcher,
//! which checks them while the image streams in. Names are upstream strings:
//! they must go through [`crate::relpath::RelPath`] before touching the disk.
//!
//! Format reference: GNU coreutils, `info sha256sum` ("md5sum invocation"),
//! including the backslash escaping of names that contain `\`, LF or CR.

use std::collections::HashMap;

/// One entry of a checksum file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SumLine {
    /// The file name as listed, a leading `./` removed. Empty for a sidecar
    /// holding only the digest: it then applies to the file it sits beside.
    pub name: String,
    pub sha256: [u8; 32],
    /// 1-based line number in the checksum file.
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SumsError {
    /// `found` is the offending text (shortened), quoted where it helps.
    #[error("{origin} line {line}: expected {expected}, found {found}")]
    Malformed {
        origin: String,
        line: usize,
        expected: &'static str,
        found: String,
    },
    #[error(
        "{origin} line {line}: {name:?} is listed again with a different SHA256 \
         (first on line {first_line})"
    )]
    Conflict {
        origin: String,
        name: String,
        line: usize,
        first_line: usize,
    },
}

const EXPECTED_LINE: &str = "a checksum line (\"<64 hex digits>  <name>\", \
     \"<64 hex digits> *<name>\" or \"SHA256 (<name>) = <64 hex digits>\")";
const EXPECTED_HEX: &str = "64 hex digits (a SHA-256)";
const EXPECTED_ESCAPE: &str = "\"\\\\\", \"\\n\" or \"\\r\" after a backslash in an escaped name";

/// Parses a `SHA256SUMS` file or a `.sha256` sidecar; `origin` names the file
/// in errors (e.g. its URL or path).
///
/// Blank lines and `#` comments are skipped; digests are case-insensitive;
/// CRLF line ends and a UTF-8 byte-order mark are accepted. A name listed
/// twice with the same digest is returned once; with different digests it is
/// an error. An empty file gives an empty list: whether that is acceptable is
/// the caller's decision.
pub fn parse_sums(text: &str, origin: &str) -> Result<Vec<SumLine>, SumsError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out: Vec<SumLine> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (index, raw) in text.split('\n').enumerate() {
        let line = index + 1;
        let content = raw.strip_suffix('\r').unwrap_or(raw);
        let trimmed = content.trim_start_matches([' ', '\t']);
        if trimmed.trim_end().is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let (name, sha256) =
            parse_line(trimmed).map_err(|(expected, found)| SumsError::Malformed {
                origin: origin.to_string(),
                line,
                expected,
                found,
            })?;
        match seen.get(&name) {
            Some(&i) if out[i].sha256 == sha256 => {}
            Some(&i) => {
                return Err(SumsError::Conflict {
                    origin: origin.to_string(),
                    name,
                    line,
                    first_line: out[i].line,
                });
            }
            None => {
                seen.insert(name.clone(), out.len());
                out.push(SumLine { name, sha256, line });
            }
        }
    }
    Ok(out)
}

type LineError = (&'static str, String);

/// One non-blank, non-comment line without its line end or leading blanks.
fn parse_line(line: &str) -> Result<(String, [u8; 32]), LineError> {
    // coreutils prefixes a line with `\` when the name is escaped.
    let (escaped, line) = match line.strip_prefix('\\') {
        Some(rest) => (true, rest),
        None => (false, line),
    };
    let (name, hex) = match line.strip_prefix("SHA256 (") {
        Some(rest) => bsd_line(rest, line)?,
        None => gnu_line(line)?,
    };
    let sha256 = parse_hex(hex)?;
    let name = if escaped {
        unescape(name)?
    } else {
        name.to_string()
    };
    Ok((strip_dot_slash(name), sha256))
}

/// `SHA256 (<name>) = <hex>`; `rest` follows `SHA256 (`. The last `) = `
/// separates, as a name may itself contain one.
fn bsd_line<'a>(rest: &'a str, line: &str) -> Result<(&'a str, &'a str), LineError> {
    let rest = rest.trim_end();
    rest.rsplit_once(") = ")
        .ok_or_else(|| (EXPECTED_LINE, quote(line)))
}

/// `<hex>`, `<hex>  <name>`, `<hex> *<name>`, or the one-separator form
/// (`<hex> <name>`) BSD's `sha256 -r` writes.
fn gnu_line(line: &str) -> Result<(&str, &str), LineError> {
    let hex_end = line
        .find(|c: char| !c.is_ascii_hexdigit())
        .unwrap_or(line.len());
    let (hex, rest) = line.split_at(hex_end);
    if hex.is_empty() {
        // Not even the start of a digest, e.g. "SHA512 (x) = …" or HTML.
        return Err((EXPECTED_LINE, quote(line)));
    }
    if rest.trim_end().is_empty() {
        return Ok(("", hex));
    }
    let Some(after_sep) = rest.strip_prefix([' ', '\t']) else {
        // Digits run straight into something else: a digest of the wrong
        // alphabet or a mangled line. Report the whole token.
        let token = line.split([' ', '\t']).next().unwrap_or(line);
        return Err((EXPECTED_HEX, describe_token(token)));
    };
    let name = after_sep
        .strip_prefix([' ', '*'])
        .filter(|name| !name.is_empty())
        .unwrap_or(after_sep);
    Ok((name, hex))
}

fn parse_hex(hex: &str) -> Result<[u8; 32], LineError> {
    let mut out = [0u8; 32];
    match hex::decode_to_slice(hex, &mut out) {
        Ok(()) => Ok(out),
        Err(_) => Err((EXPECTED_HEX, describe_token(hex))),
    }
}

/// Undoes coreutils' escaping: `\\` -> `\`, `\n` -> LF, `\r` -> CR.
fn unescape(name: &str) -> Result<String, LineError> {
    let mut out = String::with_capacity(name.len());
    let mut chars = name.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            other => {
                let found = other.map_or("the end of the line".to_string(), |c| {
                    format!("\"\\{}\" in {}", c.escape_default(), quote(name))
                });
                return Err((EXPECTED_ESCAPE, found));
            }
        }
    }
    Ok(out)
}

fn strip_dot_slash(name: String) -> String {
    let mut rest = name.as_str();
    while let Some(r) = rest.strip_prefix("./") {
        rest = r;
    }
    if rest.len() == name.len() {
        name
    } else {
        rest.to_string()
    }
}

/// Quotes upstream text for an error message, shortened: a checksum file
/// fetched by mistake may be an HTML page with very long lines.
fn quote(text: &str) -> String {
    const MAX: usize = 100;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{:?}…", &text[..cut]),
        None => format!("{text:?}"),
    }
}

fn describe_token(token: &str) -> String {
    format!("{} ({} characters)", quote(token), token.chars().count())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};
    use std::path::Path;
    use std::process::Command;

    const A: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    const B: &str = "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752";

    fn digest(hex_str: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex_str, &mut out).unwrap();
        out
    }

    fn sum(name: &str, hex_str: &str, line: usize) -> SumLine {
        SumLine {
            name: name.to_string(),
            sha256: digest(hex_str),
            line,
        }
    }

    /// Runs the real `sha256sum` in `dir` over `names` with `args`.
    fn sha256sum(dir: &Path, args: &[&str], names: &[&str]) -> String {
        let out = Command::new("sha256sum")
            .args(args)
            .arg("--")
            .args(names)
            .current_dir(dir)
            .output()
            .expect("sha256sum (GNU coreutils) must be installed");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn real_sha256sum_output() {
        let dir = tempfile::tempdir().unwrap();
        let files: [(&str, &[u8]); 4] = [
            (
                "2024-11-19-raspios-bookworm-arm64.img.xz",
                b"not really xz\n",
            ),
            ("with space.img", b"\x00\x01\x02\xff"),
            ("back\\slash.img", b"escaped by sha256sum"),
            ("new\nline.img", b""),
        ];
        for (name, data) in files {
            std::fs::write(dir.path().join(name), data).unwrap();
        }
        let names: Vec<&str> = files.iter().map(|(n, _)| *n).collect();
        for args in [&[][..], &["--binary"], &["--tag"]] {
            let text = sha256sum(dir.path(), args, &names);
            let parsed = parse_sums(&text, "SHA256SUMS").unwrap();
            assert_eq!(parsed.len(), files.len(), "{args:?}\n{text}");
            for ((name, data), (i, entry)) in files.iter().zip(parsed.iter().enumerate()) {
                assert_eq!(entry.name, *name, "{args:?}\n{text}");
                assert_eq!(entry.sha256, <[u8; 32]>::from(Sha256::digest(data)));
                assert_eq!(entry.line, i + 1);
            }
        }
        // `./name`, as `sha256sum ./*` writes it.
        let text = sha256sum(dir.path(), &[], &["./with space.img"]);
        assert!(text.contains(" ./with space.img"), "{text}");
        let parsed = parse_sums(&text, "x.sha256").unwrap();
        assert_eq!(parsed[0].name, "with space.img");
    }

    #[test]
    fn binary_mode_and_sidecars() {
        let text = format!("{A} *2024-11-19-raspios-bookworm-armhf-lite.img.xz\n");
        assert_eq!(
            parse_sums(&text, "x.sha256").unwrap(),
            [sum("2024-11-19-raspios-bookworm-armhf-lite.img.xz", A, 1)]
        );
        // Only the digest, with or without a newline or trailing blanks.
        for text in [A.to_string(), format!("{A}\n"), format!("{A}  \r\n")] {
            assert_eq!(parse_sums(&text, "x.sha256").unwrap(), [sum("", A, 1)]);
        }
        // BSD `sha256 -r`: one space.
        let text = format!("{A} image.img\n");
        assert_eq!(parse_sums(&text, "x").unwrap(), [sum("image.img", A, 1)]);
        // A name starting with a space keeps it (text mode, then the name).
        let text = format!("{A}   lead.img\n");
        assert_eq!(parse_sums(&text, "x").unwrap(), [sum(" lead.img", A, 1)]);
    }

    #[test]
    fn bsd_style() {
        let text = format!(
            "SHA256 (./images/a.img.xz) = {A}\nSHA256 (odd) = name) = {}\n",
            B.to_uppercase()
        );
        assert_eq!(
            parse_sums(&text, "SHA256SUMS").unwrap(),
            [sum("images/a.img.xz", A, 1), sum("odd) = name", B, 2)]
        );
    }

    #[test]
    fn comments_blank_lines_crlf_and_case() {
        let text = format!(
            "\u{feff}# generated by hand\r\n\r\n  \r\n{}  a.img\r\n\t# indented comment\r\n{B} *b.img\r\n",
            A.to_uppercase()
        );
        assert_eq!(
            parse_sums(&text, "SHA256SUMS").unwrap(),
            [sum("a.img", A, 4), sum("b.img", B, 6)]
        );
        assert_eq!(parse_sums("", "empty").unwrap(), []);
        assert_eq!(parse_sums("\n# nothing\n", "empty").unwrap(), []);
    }

    #[test]
    fn malformed_lines_name_file_and_line() {
        let good = format!("{A}  a.img\n");
        let cases = [
            (
                format!("{good}<html><body>Not Found</body></html>\n"),
                "SHA256SUMS line 2: expected a checksum line (\"<64 hex digits>  <name>\", \
                 \"<64 hex digits> *<name>\" or \"SHA256 (<name>) = <64 hex digits>\"), \
                 found \"<html><body>Not Found</body></html>\"",
            ),
            (
                format!("{good}\n{}  short.img\n", &A[..40]),
                "SHA256SUMS line 3: expected 64 hex digits (a SHA-256), found \
                 \"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b\" (40 characters)",
            ),
            (
                format!("{A}{A}  sha512.img\n"),
                "SHA256SUMS line 1: expected 64 hex digits (a SHA-256), found \
                 \"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a089f86d081884c7d659a2feaa0c55ad015a3bf\"… \
                 (128 characters)",
            ),
            (
                format!("{good}{}xyz  a.img\n", &A[..61]),
                "SHA256SUMS line 2: expected 64 hex digits (a SHA-256), found \
                 \"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00xyz\" (64 characters)",
            ),
            (
                format!("SHA512 (a.img) = {A}\n"),
                "SHA256SUMS line 1: expected a checksum line (\"<64 hex digits>  <name>\", \
                 \"<64 hex digits> *<name>\" or \"SHA256 (<name>) = <64 hex digits>\"), \
                 found \"SHA512 (a.img) = 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"",
            ),
            (
                "SHA256 (a.img) = 1234\n".to_string(),
                "SHA256SUMS line 1: expected 64 hex digits (a SHA-256), found \"1234\" (4 characters)",
            ),
            (
                format!("SHA256 (a.img)={A}\n"),
                "SHA256SUMS line 1: expected a checksum line (\"<64 hex digits>  <name>\", \
                 \"<64 hex digits> *<name>\" or \"SHA256 (<name>) = <64 hex digits>\"), \
                 found \"SHA256 (a.img)=9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"",
            ),
            (
                format!("\\{A}  bad\\tescape\n"),
                "SHA256SUMS line 1: expected \"\\\\\", \"\\n\" or \"\\r\" after a backslash in an \
                 escaped name, found \"\\t\" in \"bad\\\\tescape\"",
            ),
        ];
        for (text, message) in cases {
            let err = parse_sums(&text, "SHA256SUMS").unwrap_err();
            assert!(matches!(err, SumsError::Malformed { .. }), "{err:?}");
            assert_eq!(err.to_string(), message);
        }
    }

    #[test]
    fn duplicates() {
        // The same digest twice (e.g. `./a.img` and `a.img`) is one entry.
        let text = format!("{A}  a.img\n{B}  b.img\n{A}  ./a.img\n");
        assert_eq!(
            parse_sums(&text, "SHA256SUMS").unwrap(),
            [sum("a.img", A, 1), sum("b.img", B, 2)]
        );
        // A different digest is a conflict that names both lines.
        let text = format!("{A}  a.img\n{B}  b.img\n# again\nSHA256 (./a.img) = {B}\n");
        let err = parse_sums(&text, "https://example.org/SHA256SUMS").unwrap_err();
        assert_eq!(
            err,
            SumsError::Conflict {
                origin: "https://example.org/SHA256SUMS".to_string(),
                name: "a.img".to_string(),
                line: 4,
                first_line: 1,
            }
        );
        assert_eq!(
            err.to_string(),
            "https://example.org/SHA256SUMS line 4: \"a.img\" is listed again with a \
             different SHA256 (first on line 1)"
        );
        // Two bare digests in one sidecar disagree about the same file.
        let err = parse_sums(&format!("{A}\n{B}\n"), "x.sha256").unwrap_err();
        assert!(matches!(err, SumsError::Conflict { line: 2, .. }), "{err}");
    }
}
