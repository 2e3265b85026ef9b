//! Splits signed apt metadata exactly as apt does before anything reaches its verifier
//! (apt-pkg/contrib/gpgv.cc: `SplitClearSignedFile` for InRelease, the detached-file check
//! in `ExecGPGV` for Release.gpg).
//!
//! apt parses the message it split off, not the file; a file it refuses never reaches a
//! client. So a mirror must split the same way: any byte apt would read as a Release
//! field must be a byte the signature covers, and any shape apt refuses (text before the
//! BEGIN line, between the message and the signature or after it, a line starting with
//! a dash that is not dash-escaped, a second signed block) is refused here with the line
//! that makes it so. Lines are compared the way apt's line reader leaves them: line-end
//! characters (`\r`, `\n`) cut, then trailing spaces and tabs (RFC 4880 section 7.1).

pub const BEGIN_MESSAGE: &str = "-----BEGIN PGP SIGNED MESSAGE-----";
pub const BEGIN_SIGNATURE: &str = "-----BEGIN PGP SIGNATURE-----";
pub const END_SIGNATURE: &str = "-----END PGP SIGNATURE-----";

/// Why a signed file was refused; `line` counts from 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    /// No BEGIN line anywhere: an unsigned file (apt then reads it as plain text).
    #[error("not a clear-signed message: no \"{BEGIN_MESSAGE}\" line")]
    NotClearSigned,
    #[error("line {line}: {problem}")]
    Refused { line: usize, problem: Problem },
}

/// The shapes apt refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("text before the \"{BEGIN_MESSAGE}\" line")]
    TextBeforeMessage,
    #[error("a line starting with a dash in the armor headers")]
    DashInArmorHeaders,
    #[error("a line starting with a dash that is not dash-escaped (\"- \")")]
    UnescapedDash,
    #[error("a line starting with a dash inside the signature")]
    DashInSignature,
    #[error("unsigned text after the signature")]
    UnsignedText,
    #[error("the file ends before its signature")]
    Truncated,
    #[error("the signature is not closed by \"{END_SIGNATURE}\"")]
    Unclosed,
    #[error("the signed text is not UTF-8")]
    NotUtf8,
    #[error("text outside the signature blocks")]
    OutsideSignature,
    #[error("a binary signature; apt reads only ASCII-armored Release.gpg files")]
    BinarySignature,
    #[error("no \"{BEGIN_SIGNATURE}\" block")]
    NoSignature,
}

/// A clear-signed file split as apt splits it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClearSigned {
    /// The message as apt writes it for its verifier: dash-escapes removed, lines
    /// joined by LF, no line break after the last line. Text signatures cover it with
    /// CRLF line breaks, binary ones as it is.
    pub message: String,
    /// The signature blocks, BEGIN to END, each line ending in LF.
    pub signature: String,
}

impl ClearSigned {
    /// The message as a Release file: its last line ends in a newline, as Debian's
    /// detached `Release` is written. (GnuPG does not sign the line break before the
    /// signature; rPGP signs one, which shows up here as a last, empty line.)
    pub fn text(&self) -> String {
        let mut text = self.message.clone();
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text
    }
}

/// Lines as apt's `LineBuffer::readFrom` yields them, numbered from 1.
fn lines(bytes: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    bytes
        .split_inclusive(|&b| b == b'\n')
        .enumerate()
        .map(|(i, line)| {
            let line = trim_end(line, b"\n\r");
            (i + 1, trim_end(line, b" \t"))
        })
}

fn trim_end<'a>(mut line: &'a [u8], cut: &[u8]) -> &'a [u8] {
    while let [rest @ .., last] = line {
        if !cut.contains(last) {
            break;
        }
        line = rest;
    }
    line
}

fn refused(line: usize, problem: Problem) -> SplitError {
    SplitError::Refused { line, problem }
}

/// Splits an InRelease into its message and signature blocks, refusing every shape
/// apt's `SplitClearSignedFile` refuses.
pub fn split(bytes: &[u8]) -> Result<ClearSigned, SplitError> {
    let mut lines = lines(bytes);
    let mut last = 1;
    match lines.next() {
        Some((_, first)) if first == BEGIN_MESSAGE.as_bytes() => {}
        Some(_) => {
            // Text first, a signed block later: apt refuses it rather than reading
            // it as an unsigned file.
            return match lines.find(|(_, l)| *l == BEGIN_MESSAGE.as_bytes()) {
                Some(_) => Err(refused(1, Problem::TextBeforeMessage)),
                None => Err(SplitError::NotClearSigned),
            };
        }
        None => return Err(SplitError::NotClearSigned),
    }
    // Armor headers ("Hash: SHA256"), up to the first empty line.
    loop {
        let Some((n, line)) = lines.next() else {
            return Err(refused(last + 1, Problem::Truncated));
        };
        last = n;
        if line.is_empty() {
            break;
        }
        if line.starts_with(b"-") {
            return Err(refused(n, Problem::DashInArmorHeaders));
        }
    }
    let mut message = String::with_capacity(bytes.len());
    let mut first = true;
    let mut signature = Vec::new();
    loop {
        let Some((n, line)) = lines.next() else {
            return Err(refused(last + 1, Problem::Truncated));
        };
        last = n;
        let content = if line.starts_with(b"-") {
            if line == BEGIN_SIGNATURE.as_bytes() {
                signature.extend_from_slice(line);
                signature.push(b'\n');
                break;
            }
            // Implementations may dash-escape any line; one that starts with a dash
            // and is not escaped is how a second parser is made to read a header.
            line.strip_prefix(b"- ")
                .ok_or_else(|| refused(n, Problem::UnescapedDash))?
        } else {
            line
        };
        let content = std::str::from_utf8(content).map_err(|_| refused(n, Problem::NotUtf8))?;
        if !first {
            message.push('\n');
        }
        first = false;
        message.push_str(content);
    }
    let mut open = true;
    for (n, line) in lines {
        last = n;
        if open {
            if line == END_SIGNATURE.as_bytes() {
                open = false;
            } else if line.starts_with(b"-") {
                // Radix-64 never starts with a dash: an armor line the parser does
                // not know.
                return Err(refused(n, Problem::DashInSignature));
            }
        } else if line == BEGIN_SIGNATURE.as_bytes() {
            open = true;
        } else {
            return Err(refused(n, Problem::UnsignedText));
        }
        signature.extend_from_slice(line);
        signature.push(b'\n');
    }
    if open {
        return Err(refused(last + 1, Problem::Unclosed));
    }
    let signature = String::from_utf8(signature).map_err(|_| refused(last, Problem::NotUtf8))?;
    Ok(ClearSigned { message, signature })
}

/// Checks a Release.gpg as apt does before verifying it: ASCII-armored signature blocks
/// and nothing else (not even an empty line between or after them).
pub fn check_detached(bytes: &[u8]) -> Result<(), SplitError> {
    let mut open = false;
    let mut bad_content: Option<usize> = None;
    let mut signatures = 0;
    let mut last = 0;
    for (n, line) in lines(bytes) {
        last = n;
        if open {
            if line == END_SIGNATURE.as_bytes() {
                open = false;
            } else if line.starts_with(b"-") {
                return Err(refused(n, Problem::DashInSignature));
            }
        } else if line == BEGIN_SIGNATURE.as_bytes() {
            open = true;
            signatures += 1;
            if bad_content.is_some() {
                break;
            }
        } else {
            bad_content.get_or_insert(n);
            if signatures != 0 {
                break;
            }
        }
    }
    if signatures == 0 {
        // apt names an old-format binary packet (gpg's `--detach-sign` without
        // `--armor`) for what it is.
        let binary = bytes
            .first()
            .is_some_and(|b| b & 0x80 != 0 && b & 0x40 == 0);
        let problem = if binary {
            Problem::BinarySignature
        } else {
            Problem::NoSignature
        };
        return Err(refused(1, problem));
    }
    if let Some(line) = bad_content {
        return Err(refused(line, Problem::OutsideSignature));
    }
    if open {
        return Err(refused(last + 1, Problem::Unclosed));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The cases of apt's test/libapt/openmaybeclearsignedfile_test.cc, and the shapes
    //! seen in attacks on the split between apt's parser and the verifier.
    use super::*;

    const SIG: &str = "-----BEGIN PGP SIGNATURE-----\n\niQFEBAEBCgAuFiEENKjp0Y2zIPNn6OqgWpDRQdusja4FAlhT7+kQHGpvZUBleGFt\n=TB1F\n-----END PGP SIGNATURE-----\n";

    fn signed(body: &str) -> String {
        format!("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n{body}{SIG}")
    }

    fn problem(input: &str) -> (usize, Problem) {
        match split(input.as_bytes()) {
            Err(SplitError::Refused { line, problem }) => (line, problem),
            other => panic!("expected a refusal, got {other:?} for\n{input}"),
        }
    }

    #[test]
    fn a_plain_clear_signed_file_splits_into_message_and_signature() {
        let got = split(signed("Test\n").as_bytes()).unwrap();
        assert_eq!(got.message, "Test");
        assert_eq!(got.text(), "Test\n");
        assert_eq!(got.signature, SIG);
    }

    #[test]
    fn whitespace_and_crlf_line_ends_are_cut_as_apt_cuts_them() {
        let input = signed("Test \t\r\nSecond\r\n").replace("Hash: SHA512\n", "Hash: SHA512 \r\n");
        let got = split(input.as_bytes()).unwrap();
        assert_eq!(got.message, "Test\nSecond");
    }

    #[test]
    fn dash_escaped_lines_are_unescaped_and_bare_dashes_refused() {
        let got = split(signed("- -----BEGIN PGP SIGNATURE-----\n- Origin: x\n").as_bytes());
        assert_eq!(
            got.unwrap().message,
            "-----BEGIN PGP SIGNATURE-----\nOrigin: x"
        );
        assert_eq!(
            problem(&signed("Test\n-Date: x\n")),
            (5, Problem::UnescapedDash)
        );
        // "- " alone loses its space to the whitespace cut, as in apt.
        assert_eq!(problem(&signed("- \n")), (4, Problem::UnescapedDash));
        assert_eq!(
            problem(&signed("Test\n-----BEGIN PGP SIGNED MESSAGE-----\n")),
            (5, Problem::UnescapedDash)
        );
    }

    #[test]
    fn unsigned_lines_between_message_and_signature_are_refused() {
        // The shape that fooled a looser splitter: a dash line ends the "message", and
        // fake fields sit between it and a genuine signature.
        let input = signed("Origin: Debian\n-----\nDate: Sat, 01 Jan 2050 00:00:00 UTC\n");
        assert_eq!(problem(&input), (5, Problem::UnescapedDash));
    }

    #[test]
    fn anything_after_the_signature_is_refused_even_an_empty_line() {
        assert_eq!(
            problem(&format!("{}\n", signed("Test\n"))),
            (10, Problem::UnsignedText)
        );
        assert_eq!(
            problem(&format!("{}Date: 2050\n", signed("Test\n"))),
            (10, Problem::UnsignedText)
        );
        let second = signed("Evil\n");
        assert_eq!(
            problem(&format!("{}{second}", signed("Test\n"))),
            (10, Problem::UnsignedText)
        );
    }

    #[test]
    fn several_signature_blocks_are_accepted() {
        let input = format!("{}{SIG}", signed("Test\n"));
        assert_eq!(
            split(input.as_bytes()).unwrap().signature,
            format!("{SIG}{SIG}")
        );
    }

    #[test]
    fn text_before_the_begin_line_is_refused_and_no_begin_is_unsigned() {
        assert_eq!(
            problem(&format!("\n{}", signed("Test\n"))),
            (1, Problem::TextBeforeMessage)
        );
        assert_eq!(split(b"Origin: Debian\n"), Err(SplitError::NotClearSigned));
        // A whole unsigned Release (check_signature = false) is read as it is.
        let release = b"Origin: Debian\nSuite: stable\nCodename: bookworm\n\nSHA256:\n";
        assert_eq!(split(release), Err(SplitError::NotClearSigned));
        assert_eq!(split(b""), Err(SplitError::NotClearSigned));
    }

    #[test]
    fn broken_frames_are_refused_with_their_line() {
        let begin = "-----BEGIN PGP SIGNED MESSAGE-----\n";
        assert_eq!(problem(begin), (2, Problem::Truncated));
        assert_eq!(
            problem(&format!("{begin}Hash: SHA256\n")),
            (3, Problem::Truncated)
        );
        assert_eq!(
            problem(&format!("{begin}-Hash: SHA256\n\nTest\n{SIG}")),
            (2, Problem::DashInArmorHeaders)
        );
        assert_eq!(
            problem(&format!("{begin}\nTest\n")),
            (4, Problem::Truncated)
        );
        let unclosed = signed("Test\n").replace("-----END PGP SIGNATURE-----\n", "");
        assert_eq!(problem(&unclosed), (9, Problem::Unclosed));
        let header = signed("Test\n").replace("\n=TB1F", "\n-Comment: x\n=TB1F");
        assert_eq!(problem(&header), (8, Problem::DashInSignature));
        let head = "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nCaf";
        let latin1 = [head.as_bytes(), b"\xe9\n", SIG.as_bytes()].concat();
        assert_eq!(split(&latin1), Err(refused(4, Problem::NotUtf8)));
    }

    #[test]
    fn unknown_armor_headers_are_accepted_as_apt_accepts_them() {
        let input = signed("Test\n").replace("Hash: SHA512\n", "Hash: SHA512\nComment: x\n");
        assert_eq!(split(input.as_bytes()).unwrap().message, "Test");
    }

    #[test]
    fn a_detached_signature_is_armor_blocks_and_nothing_else() {
        check_detached(SIG.as_bytes()).unwrap();
        check_detached(format!("{SIG}{SIG}").as_bytes()).unwrap();
        let refused = |input: &[u8]| match check_detached(input) {
            Err(SplitError::Refused { line, problem }) => (line, problem),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            refused(format!("{SIG}\n").as_bytes()),
            (6, Problem::OutsideSignature)
        );
        assert_eq!(
            refused(format!("x\n{SIG}").as_bytes()),
            (1, Problem::OutsideSignature)
        );
        assert_eq!(refused(b"\x89\x02\x33"), (1, Problem::BinarySignature));
        // Only gpg's old-format packet is named binary, as apt names it; a new-format
        // packet or text is simply no signature.
        assert_eq!(refused(b"\xc2\x01\x02"), (1, Problem::NoSignature));
        assert_eq!(refused(b"1234\n"), (1, Problem::NoSignature));
        assert_eq!(refused(b""), (1, Problem::NoSignature));
        let unclosed = SIG.replace("-----END PGP SIGNATURE-----\n", "");
        assert_eq!(refused(unclosed.as_bytes()), (5, Problem::Unclosed));
    }
}
