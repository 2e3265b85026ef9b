//! Packages and Sources indices, read as a stream: the pool files they reference.
//!
//! An index may be tens of MB; it is decompressed on the fly and parsed one stanza at a
//! time into a reused buffer, keeping only what the planner needs (path, size, SHA256).
//! Format: <https://wiki.debian.org/DebianRepository/Format#A.22Packages.22_Indices>.

use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};

use crate::relpath::{PathError, RelPath};

use super::release::parse_sha256;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("reading {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{index}, line {line}, package {package:?}: {detail}")]
    Stanza {
        index: String,
        line: usize,
        package: String,
        detail: String,
    },
    #[error("{index}, line {line}, package {package:?}: unsafe path {path:?}: {source}")]
    UnsafePath {
        index: String,
        line: usize,
        package: String,
        path: String,
        #[source]
        source: PathError,
    },
    #[error("{index}, line {line}: a line longer than {max} bytes")]
    LineTooLong {
        index: String,
        line: usize,
        max: usize,
    },
}

/// A file in the pool, as an index describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolFile {
    pub path: RelPath,
    pub size: u64,
    pub sha256: [u8; 32],
}

/// A pool file as an index lists it: with its SHA256, or (in an unsigned repository
/// whose index has only MD5sum, read with `size_only_ok`) by size alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listed {
    Checked(PoolFile),
    /// `md5`: the stanza's MD5sum, if any: too weak to trust a download by, but it
    /// tells whether the copy already held is the one listed.
    SizeOnly {
        path: RelPath,
        size: u64,
        md5: Option<[u8; 16]>,
    },
}

/// Which kind of index: the fields that name files differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexKind {
    Packages,
    Sources,
}

/// Compression, from the file name; apt picks the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Xz,
    Bzip2,
    Lzma,
    Zstd,
}

impl Compression {
    /// The compression of `name`, or None if we cannot decompress it.
    pub fn of(name: &str) -> Option<Compression> {
        if name.ends_with(".xz") {
            Some(Compression::Xz)
        } else if name.ends_with(".gz") {
            Some(Compression::Gzip)
        } else if name.ends_with(".bz2") {
            Some(Compression::Bzip2)
        } else if name.ends_with(".lzma") {
            Some(Compression::Lzma)
        } else if name.ends_with(".zst") {
            Some(Compression::Zstd)
        } else if name.ends_with(".lz4") {
            None
        } else {
            Some(Compression::None)
        }
    }

    /// The order in which to prefer variants: cheapest to read first.
    pub fn preference(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Zstd => 1,
            Compression::Gzip => 2,
            Compression::Xz => 3,
            Compression::Lzma => 4,
            Compression::Bzip2 => 5,
        }
    }
}

/// No real stanza line comes near this; a longer one is a hostile or broken index.
const MAX_LINE: usize = 1 << 20;

/// Opens `file` with the decompressor its name calls for.
pub fn open_index(file: &Path) -> Result<Box<dyn BufRead + Send>, IndexError> {
    let name = file.to_string_lossy();
    let f = std::fs::File::open(file).map_err(|source| IndexError::Io {
        path: file.to_path_buf(),
        source,
    })?;
    let raw = BufReader::with_capacity(64 * 1024, f);
    let buffered = |r: Box<dyn std::io::Read + Send>| -> Box<dyn BufRead + Send> {
        Box::new(BufReader::with_capacity(64 * 1024, r))
    };
    let reader: Box<dyn BufRead + Send> = match Compression::of(&name) {
        Some(Compression::Xz) => buffered(Box::new(
            liblzma::bufread::XzDecoder::new_multi_decoder(raw),
        )),
        Some(Compression::Gzip) => buffered(Box::new(flate2::bufread::MultiGzDecoder::new(raw))),
        Some(Compression::Bzip2) => buffered(Box::new(bzip2::bufread::MultiBzDecoder::new(raw))),
        Some(Compression::Lzma) => {
            // The legacy .lzma format; the limit bounds a hostile header's dictionary.
            let stream = liblzma::stream::Stream::new_lzma_decoder(256 << 20).map_err(|e| {
                IndexError::Io {
                    path: file.to_path_buf(),
                    source: std::io::Error::other(e),
                }
            })?;
            buffered(Box::new(liblzma::bufread::XzDecoder::new_stream(
                raw, stream,
            )))
        }
        Some(Compression::Zstd) => {
            let decoder =
                ruzstd::decoding::StreamingDecoder::new(raw).map_err(|e| IndexError::Io {
                    path: file.to_path_buf(),
                    source: std::io::Error::other(e.to_string()),
                })?;
            buffered(Box::new(decoder))
        }
        Some(Compression::None) | None => Box::new(raw),
    };
    Ok(reader)
}

/// Reads every stanza of an index and calls `on_file` for each pool file it names.
/// `index` names the index in messages (e.g. "bookworm main/binary-arm64/Packages.xz").
/// `path` is only for I/O messages.
pub fn read_index(
    reader: impl BufRead,
    kind: IndexKind,
    index: &str,
    path: &Path,
    mut on_file: impl FnMut(PoolFile),
) -> Result<u64, IndexError> {
    let mut on_listed = |l: Listed| {
        if let Listed::Checked(f) = l {
            on_file(f);
        }
    };
    read_listing(reader, kind, index, path, false, &mut on_listed)
}

/// [`read_index`], but with `size_only_ok` a Packages stanza without SHA256 is a
/// [`Listed::SizeOnly`] instead of an error.
pub fn read_listing(
    reader: impl BufRead,
    kind: IndexKind,
    index: &str,
    path: &Path,
    size_only_ok: bool,
    mut on_file: impl FnMut(Listed),
) -> Result<u64, IndexError> {
    let mut parser = StanzaParser::new(kind, index);
    parser.size_only_ok = size_only_ok;
    let mut reader = LimitedLines::new(reader);
    let mut line = Vec::with_capacity(256);
    loop {
        line.clear();
        let n = reader.read_line(&mut line).map_err(|e| match e {
            LineError::Io(source) => IndexError::Io {
                path: path.to_path_buf(),
                source,
            },
            LineError::TooLong => IndexError::LineTooLong {
                index: index.to_string(),
                line: parser.line + 1,
                max: MAX_LINE,
            },
        })?;
        if n == 0 {
            parser.end_stanza(&mut on_file)?;
            return Ok(parser.stanzas);
        }
        parser.line += 1;
        let text = trim_eol(&line);
        if text.iter().all(|b| b.is_ascii_whitespace()) {
            parser.end_stanza(&mut on_file)?;
        } else {
            parser.feed(text)?;
        }
    }
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The fields of the current stanza that matter, in buffers reused across stanzas.
struct StanzaParser<'a> {
    kind: IndexKind,
    index: &'a str,
    line: usize,
    start_line: usize,
    stanzas: u64,
    in_stanza: bool,
    package: String,
    filename: String,
    size: Option<u64>,
    sha256: Option<[u8; 32]>,
    directory: String,
    /// Sources: (name, size, sha256) triples of Checksums-Sha256.
    checksums: Vec<(String, u64, [u8; 32])>,
    /// Which multi-line field continuation lines belong to.
    in_checksums: bool,
    /// A stanza without SHA256 is listed by size instead of refused.
    size_only_ok: bool,
    md5: Option<[u8; 16]>,
}

impl<'a> StanzaParser<'a> {
    fn new(kind: IndexKind, index: &'a str) -> Self {
        StanzaParser {
            kind,
            index,
            line: 0,
            start_line: 0,
            stanzas: 0,
            in_stanza: false,
            package: String::new(),
            filename: String::new(),
            size: None,
            sha256: None,
            directory: String::new(),
            checksums: Vec::new(),
            in_checksums: false,
            size_only_ok: false,
            md5: None,
        }
    }

    fn err(&self, detail: impl Into<String>) -> IndexError {
        IndexError::Stanza {
            index: self.index.to_string(),
            line: self.start_line,
            package: self.package.clone(),
            detail: detail.into(),
        }
    }

    fn feed(&mut self, text: &[u8]) -> Result<(), IndexError> {
        if !self.in_stanza {
            self.in_stanza = true;
            self.start_line = self.line;
        }
        if text[0] == b' ' || text[0] == b'\t' {
            if self.in_checksums {
                self.checksum_line(text)?;
            }
            return Ok(());
        }
        self.in_checksums = false;
        let Some(colon) = text.iter().position(|&b| b == b':') else {
            return Err(IndexError::Stanza {
                index: self.index.to_string(),
                line: self.line,
                package: self.package.clone(),
                detail: "expected \"Field: value\"".into(),
            });
        };
        let key = &text[..colon];
        let value = std::str::from_utf8(&text[colon + 1..])
            .map_err(|_| self.err("field value is not UTF-8"))?
            .trim();
        match key {
            b"Package" => {
                self.package.clear();
                self.package.push_str(value);
            }
            b"Filename" if self.kind == IndexKind::Packages => {
                self.filename.clear();
                self.filename.push_str(value);
            }
            b"Size" if self.kind == IndexKind::Packages => {
                self.size = Some(
                    value
                        .parse()
                        .map_err(|_| self.err(format!("Size {value:?} is not a number")))?,
                );
            }
            b"MD5sum" if self.kind == IndexKind::Packages && self.size_only_ok => {
                self.md5 = parse_md5(value);
            }
            b"SHA256" if self.kind == IndexKind::Packages => {
                self.sha256 = Some(
                    parse_sha256(value)
                        .ok_or_else(|| self.err(format!("SHA256 {value:?} is not a digest")))?,
                );
            }
            b"Directory" if self.kind == IndexKind::Sources => {
                self.directory.clear();
                self.directory.push_str(value);
            }
            b"Checksums-Sha256" if self.kind == IndexKind::Sources => {
                self.in_checksums = true;
                if !value.is_empty() {
                    self.checksum_line(value.as_bytes())?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn checksum_line(&mut self, text: &[u8]) -> Result<(), IndexError> {
        let text =
            std::str::from_utf8(text).map_err(|_| self.err("Checksums-Sha256 is not UTF-8"))?;
        let mut parts = text.split_whitespace();
        let (Some(hash), Some(size), Some(name), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(self.err("Checksums-Sha256 line is not \"<sha256> <size> <name>\""));
        };
        let sha = parse_sha256(hash)
            .ok_or_else(|| self.err(format!("Checksums-Sha256 {hash:?} is not a digest")))?;
        let size = size
            .parse()
            .map_err(|_| self.err(format!("Checksums-Sha256 size {size:?} is not a number")))?;
        self.checksums.push((name.to_string(), size, sha));
        Ok(())
    }

    fn end_stanza(&mut self, on_file: &mut impl FnMut(Listed)) -> Result<(), IndexError> {
        if !self.in_stanza {
            return Ok(());
        }
        self.stanzas += 1;
        match self.kind {
            IndexKind::Packages => {
                if self.filename.is_empty() {
                    return Err(self.err("no Filename field"));
                }
                let size = self.size.ok_or_else(|| self.err("no Size field"))?;
                let path = self.safe_path(super::layout::pool_path(&self.filename))?;
                match self.sha256 {
                    Some(sha256) => on_file(Listed::Checked(PoolFile { path, size, sha256 })),
                    // Only an unsigned repository's: there is nothing stronger to
                    // check by, and the file is counted as unverified.
                    None if self.size_only_ok => on_file(Listed::SizeOnly {
                        path,
                        size,
                        md5: self.md5,
                    }),
                    // MD5 and SHA1 can be collided: refused rather than trusted.
                    None => return Err(self.err("no SHA256 field")),
                }
            }
            IndexKind::Sources => {
                if self.directory.is_empty() {
                    return Err(self.err("no Directory field"));
                }
                if self.checksums.is_empty() {
                    return Err(self.err("no Checksums-Sha256 field"));
                }
                for (name, size, sha256) in &self.checksums {
                    if name.contains('/') {
                        return Err(self.unsafe_path(name, PathError::Traversal));
                    }
                    let path = match super::layout::pool_path(&self.directory) {
                        "" => self.safe_path(name)?,
                        dir => self.safe_path(&format!("{dir}/{name}"))?,
                    };
                    on_file(Listed::Checked(PoolFile {
                        path,
                        size: *size,
                        sha256: *sha256,
                    }));
                }
            }
        }
        self.in_stanza = false;
        self.in_checksums = false;
        self.package.clear();
        self.filename.clear();
        self.directory.clear();
        self.checksums.clear();
        self.size = None;
        self.sha256 = None;
        self.md5 = None;
        Ok(())
    }

    fn safe_path(&self, p: &str) -> Result<RelPath, IndexError> {
        RelPath::new(p).map_err(|e| self.unsafe_path(p, e))
    }

    fn unsafe_path(&self, p: &str, source: PathError) -> IndexError {
        IndexError::UnsafePath {
            index: self.index.to_string(),
            line: self.start_line,
            package: self.package.clone(),
            path: p.to_string(),
            source,
        }
    }
}

enum LineError {
    Io(io::Error),
    TooLong,
}

/// `read_until` that gives up on absurd lines instead of growing without bound.
struct LimitedLines<R> {
    inner: R,
}

impl<R: BufRead> LimitedLines<R> {
    fn new(inner: R) -> Self {
        LimitedLines { inner }
    }

    fn read_line(&mut self, buf: &mut Vec<u8>) -> Result<usize, LineError> {
        let mut total = 0;
        loop {
            let available = match self.inner.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(LineError::Io(e)),
            };
            if available.is_empty() {
                return Ok(total);
            }
            let (take, done) = match available.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (available.len(), false),
            };
            if buf.len() + take > MAX_LINE {
                return Err(LineError::TooLong);
            }
            buf.extend_from_slice(&available[..take]);
            self.inner.consume(take);
            total += take;
            if done {
                return Ok(total);
            }
        }
    }
}

/// Reads a whole index file from disk (decompressing it) and collects its pool files.
pub fn pool_files_of(
    file: &Path,
    kind: IndexKind,
    index: &str,
    mut on_file: impl FnMut(PoolFile),
) -> Result<u64, IndexError> {
    let reader = open_index(file)?;
    read_index(reader, kind, index, file, &mut on_file)
}

/// [`pool_files_of`] with [`read_listing`]'s `size_only_ok`.
pub fn listing_of(
    file: &Path,
    kind: IndexKind,
    index: &str,
    size_only_ok: bool,
    on_file: impl FnMut(Listed),
) -> Result<u64, IndexError> {
    let reader = open_index(file)?;
    read_listing(reader, kind, index, file, size_only_ok, on_file)
}

/// An MD5 digest in hex, as Packages' MD5sum field gives it.
fn parse_md5(hex_str: &str) -> Option<[u8; 16]> {
    let mut out = [0u8; 16];
    hex::decode_to_slice(hex_str.trim(), &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(kind: IndexKind, text: &str) -> Result<Vec<PoolFile>, IndexError> {
        let mut out = Vec::new();
        read_index(text.as_bytes(), kind, "test", Path::new("test"), |f| {
            out.push(f)
        })?;
        Ok(out)
    }

    const HELLO: &str = "Package: hello\nVersion: 2.10-3\nArchitecture: arm64\nDescription: example\n multi-line\nFilename: pool/main/h/hello/hello_2.10-3_arm64.deb\nSize: 54016\nSHA256: 35b1508eeee9c1dfba798c4c04304ef0f266990f936a51f165571edf53325cbc\n\nPackage: x\nFilename: pool/main/x/x.deb\nSize: 1\nSHA256: 0000000000000000000000000000000000000000000000000000000000000000\n";

    #[test]
    fn packages_yield_their_pool_files() {
        let files = parse(IndexKind::Packages, HELLO).unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(
            files[0].path.as_str(),
            "pool/main/h/hello/hello_2.10-3_arm64.deb"
        );
        assert_eq!(files[0].size, 54016);
        assert_eq!(files[1].path.as_str(), "pool/main/x/x.deb");
    }

    #[test]
    fn a_stanza_without_sha256_is_refused_with_its_package() {
        let text = "Package: old\nFilename: pool/o.deb\nSize: 3\nMD5sum: 00\n";
        let err = parse(IndexKind::Packages, text).unwrap_err().to_string();
        assert_eq!(err, "test, line 1, package \"old\": no SHA256 field");
    }

    fn hex_literal(h: &[u8]) -> [u8; 16] {
        let mut out = [0u8; 16];
        hex::decode_to_slice(h, &mut out).unwrap();
        out
    }

    #[test]
    fn an_unsigned_repositorys_stanza_without_sha256_is_listed_by_size_when_allowed() {
        let text =
            "Package: old\nFilename: ./o.deb\nSize: 3\nMD5sum: 900150983cd24fb0d6963f7d28e17f72\n";
        let mut listed = Vec::new();
        read_listing(
            text.as_bytes(),
            IndexKind::Packages,
            "t",
            Path::new("t"),
            true,
            |l| listed.push(l),
        )
        .unwrap();
        assert_eq!(
            listed,
            [Listed::SizeOnly {
                path: RelPath::new("o.deb").unwrap(),
                size: 3,
                md5: Some(hex_literal(b"900150983cd24fb0d6963f7d28e17f72")),
            }]
        );
    }

    #[test]
    fn a_traversing_filename_names_the_package() {
        let text = HELLO.replace("pool/main/x/x.deb", "../../../etc/cron.d/evil");
        let err = parse(IndexKind::Packages, &text).unwrap_err().to_string();
        assert!(
            err.starts_with(
                "test, line 10, package \"x\": unsafe path \"../../../etc/cron.d/evil\""
            ),
            "{err}"
        );
    }

    #[test]
    fn sources_yield_directory_plus_checksum_names() {
        let text = "Package: hello\nDirectory: pool/main/h/hello\nChecksums-Sha256:\n 35b1508eeee9c1dfba798c4c04304ef0f266990f936a51f165571edf53325cbc 1183 hello_2.10-3.dsc\n 0000000000000000000000000000000000000000000000000000000000000000 725946 hello_2.10.orig.tar.gz\nFiles:\n 00 1 ignored\n";
        let files = parse(IndexKind::Sources, text).unwrap();
        let names: Vec<_> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            names,
            [
                "pool/main/h/hello/hello_2.10-3.dsc",
                "pool/main/h/hello/hello_2.10.orig.tar.gz"
            ]
        );
        assert_eq!(files[1].size, 725946);
    }

    /// dpkg-scanpackages and apt-ftparchive in a flat repository write `./x.deb` and
    /// `Directory: .`; apt fetches them below the repository's URL.
    #[test]
    fn a_flat_repositorys_dot_slash_paths_are_below_the_upstream_url() {
        let text = HELLO.replace("pool/main/h/hello/", "./");
        let files = parse(IndexKind::Packages, &text).unwrap();
        assert_eq!(files[0].path.as_str(), "hello_2.10-3_arm64.deb");
        let text = "Package: hello\nDirectory: .\nChecksums-Sha256:\n 35b1508eeee9c1dfba798c4c04304ef0f266990f936a51f165571edf53325cbc 1183 hello_2.10-3.dsc\n";
        let files = parse(IndexKind::Sources, text).unwrap();
        assert_eq!(files[0].path.as_str(), "hello_2.10-3.dsc");
        let text = HELLO.replace("pool/main/h/hello/", "./../");
        let err = parse(IndexKind::Packages, &text).unwrap_err().to_string();
        assert!(
            err.contains("unsafe path \"../hello_2.10-3_arm64.deb\""),
            "{err}"
        );
    }

    #[test]
    fn an_absurd_line_is_refused() {
        let text = format!("Package: {}\n", "x".repeat(MAX_LINE + 1));
        assert!(matches!(
            parse(IndexKind::Packages, &text),
            Err(IndexError::LineTooLong { .. })
        ));
    }

    /// Every compression apt reads, made by the real tools (zstd, bzip2, lzma from
    /// xz-utils, gzip, xz), reads back to the same pool: a repository that offers
    /// only one of them is mirrored.
    #[test]
    fn an_index_in_any_compression_apt_reads_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("Packages");
        std::fs::write(&plain, HELLO).unwrap();
        let want = parse(IndexKind::Packages, HELLO).unwrap();
        for (tool, ext) in [
            ("zstd", "zst"),
            ("bzip2", "bz2"),
            ("lzma", "lzma"),
            ("gzip", "gz"),
            ("xz", "xz"),
        ] {
            let out = dir.path().join(format!("Packages.{ext}"));
            let status = std::process::Command::new(tool)
                .args(["-c", "-q"])
                .arg(&plain)
                .stdout(std::fs::File::create(&out).unwrap())
                .status()
                .unwrap_or_else(|e| panic!("{tool} (scripts/test.sh installs it): {e}"));
            assert!(status.success(), "{tool}");
            assert!(Compression::of(&out.to_string_lossy()).is_some(), "{ext}");
            let mut got = Vec::new();
            pool_files_of(&out, IndexKind::Packages, ext, |f| got.push(f)).unwrap();
            assert_eq!(got, want, "{ext}");
        }
        // lz4 apt reads too; a repository offering only it is said to be unreadable.
        assert_eq!(Compression::of("Packages.lz4"), None);
    }

    #[test]
    fn crlf_and_trailing_blank_lines_are_tolerated() {
        let text = HELLO.replace('\n', "\r\n") + "\r\n\r\n";
        assert_eq!(parse(IndexKind::Packages, &text).unwrap().len(), 2);
    }
}
