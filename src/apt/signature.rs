//! OpenPGP verification of apt repository metadata, and signing for fixtures.
//!
//! An apt repository is trusted through exactly one signed file per suite:
//! `InRelease` (clear-signed) or `Release` + `Release.gpg` (detached). This
//! module answers one question for the rest of the crate: "which bytes did a
//! key from this keyring vouch for?". `release.rs` parses only the text that
//! [`verify_clearsigned`] / [`verify_detached`] hand back in [`Verified::text`],
//! never the raw download, so nothing outside the signed part can reach the
//! parser. [`verify_detached_file`] checks a detached signature over a file
//! on disk (an OS image) without reading it into memory. `fixture.rs` (demo
//! and test repositories) signs with [`SigningKey`], whose output is also
//! accepted by GnuPG's `gpgv`, and so by real `apt`.
//!
//! rPGP (the `pgp` crate) supplies parsing and the cryptography, but its
//! `Signature::verify` only checks the maths. The policy that `gpgv` + apt
//! apply on top is implemented here: binding and back-signatures of subkeys,
//! key flags, revocation, key and signature expiry, key-newer-than-signature,
//! and rejection of weak digests (MD5, SHA-1, RIPEMD-160).

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use pgp::composed::{
    ArmorOptions, CleartextSignedMessage, Deserializable, DetachedSignature, KeyType,
    SecretKeyParamsBuilder, SignedPublicKey, SignedPublicSubKey, SignedSecretKey,
};
use pgp::crypto::hash::HashAlgorithm;
use pgp::packet::{
    PublicKey, PublicSubkey, Signature, SignatureConfig, SignatureType, Subpacket, SubpacketData,
};
use pgp::ser::Serialize;
use pgp::types::{KeyDetails, Password, Tag, Timestamp};

#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    #[error("reading keyring {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("keyring {path} holds no usable OpenPGP public key")]
    EmptyKeyring { path: PathBuf },
    #[error("keyring {origin} is not an OpenPGP keyring: {detail}")]
    BadKeyring { origin: String, detail: String },
    #[error("not an OpenPGP clear-signed message: {detail}")]
    Malformed { detail: String },
    /// `signers` names the issuers the signatures claim (fingerprints where the
    /// signature carries one, else 64-bit key ids), upper-case hex, comma
    /// separated, or `none`: it is what an operator needs to find the missing key.
    #[error("no valid signature by a key in the keyring (signed by: {signers})")]
    NoValidSignature { signers: String },
    #[error("signing failed: {detail}")]
    Signing { detail: String },
    /// Reading the file a detached signature covers ([`verify_detached_file`]).
    #[error("reading signed file {path}")]
    ReadSigned {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A set of trusted OpenPGP certificates, e.g. `debian-archive-keyring.gpg`.
pub struct Keyring {
    certs: Vec<SignedPublicKey>,
    /// Per certificate, the component keys that may sign data. Establishing
    /// that means checking self-signatures (RSA-4096 for Debian, about a
    /// second for the whole Debian keyring in a debug build), so it happens
    /// on first use and only for certificates a signature names.
    signers: Vec<OnceLock<Vec<Signer>>>,
}

/// A primary key or subkey allowed to make data signatures.
struct Signer {
    key: SignerKey,
    fingerprint: String,
    created: u64,
    /// Unix time at which the key stops being valid; for a subkey also bounded
    /// by its primary's expiry.
    expires: Option<u64>,
}

enum SignerKey {
    Primary(PublicKey),
    Subkey(PublicSubkey),
}

impl Keyring {
    /// Reads a keyring file: binary (one or many concatenated transferable
    /// public keys, like /usr/share/keyrings/debian-archive-keyring.gpg) or
    /// ASCII-armored (one or many blocks).
    pub fn from_file(path: &Path) -> Result<Keyring, SignatureError> {
        let bytes = std::fs::read(path).map_err(|source| SignatureError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Keyring::from_bytes(&bytes, &path.display().to_string())
    }

    /// Parses keyring bytes; `origin` names the source in error messages.
    pub fn from_bytes(bytes: &[u8], origin: &str) -> Result<Keyring, SignatureError> {
        let bad = |detail: String| SignatureError::BadKeyring {
            origin: origin.to_string(),
            detail,
        };
        let (parsed, errors) = match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            None => (Vec::new(), Vec::new()),
            // Every binary OpenPGP packet header has the top bit set; armor is ASCII.
            Some(first) if first & 0x80 != 0 => parse_binary_keys(bytes),
            Some(_) => parse_armored_keys(bytes).map_err(bad)?,
        };
        if parsed.is_empty() {
            if let Some(first) = errors.first() {
                return Err(bad(first.clone()));
            }
            return Err(SignatureError::EmptyKeyring {
                path: PathBuf::from(origin),
            });
        }
        // Like gpgv, a certificate rPGP cannot read is skipped rather than
        // failing the whole keyring: it only makes fewer keys trusted.
        for error in &errors {
            tracing::warn!(keyring = origin, %error, "skipping unreadable OpenPGP certificate");
        }

        Ok(Keyring {
            signers: parsed.iter().map(|_| OnceLock::new()).collect(),
            certs: parsed,
        })
    }

    pub fn len(&self) -> usize {
        self.certs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }

    /// Upper-case hex fingerprints of the primary keys
    pub fn fingerprints(&self) -> Vec<String> {
        self.certs
            .iter()
            .map(|cert| format!("{:X}", cert.fingerprint()))
            .collect()
    }
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("fingerprints", &self.fingerprints())
            .finish()
    }
}

fn parse_binary_keys(bytes: &[u8]) -> (Vec<SignedPublicKey>, Vec<String>) {
    let mut keys = Vec::new();
    let mut errors = Vec::new();
    match SignedPublicKey::from_bytes_many(bytes) {
        Ok(iter) => {
            for item in iter {
                match item {
                    Ok(key) => keys.push(key),
                    Err(e) => errors.push(e.to_string()),
                }
            }
        }
        Err(e) => errors.push(e.to_string()),
    }
    (keys, errors)
}

/// rPGP's `from_armor_many` reads a single armor block, so concatenated
/// exports (`cat a.asc b.asc`) are split here first.
fn parse_armored_keys(bytes: &[u8]) -> Result<(Vec<SignedPublicKey>, Vec<String>), String> {
    let text =
        std::str::from_utf8(bytes).map_err(|_| "neither binary nor ASCII armor".to_string())?;
    let blocks = armor_blocks(text);
    if blocks.is_empty() {
        return Err("no ASCII-armor block found".to_string());
    }
    let mut keys = Vec::new();
    let mut errors = Vec::new();
    for (kind, block) in blocks {
        if kind != "PUBLIC KEY BLOCK" {
            // A private key or a message here is an operator mistake worth
            // stopping for, not something to skip quietly.
            return Err(format!("found a PGP {kind}, expected PGP PUBLIC KEY BLOCK"));
        }
        match SignedPublicKey::from_armor_many(block.as_bytes()) {
            Ok((iter, _headers)) => {
                for item in iter {
                    match item {
                        Ok(key) => keys.push(key),
                        Err(e) => errors.push(e.to_string()),
                    }
                }
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    Ok((keys, errors))
}

/// Finds `-----BEGIN PGP <kind>-----` … `-----END PGP <kind>-----` blocks at
/// line starts; returns (kind, block text including both lines).
fn armor_blocks(text: &str) -> Vec<(&str, &str)> {
    let mut blocks = Vec::new();
    let mut offset = 0;
    let mut open: Option<(usize, &str)> = None;
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let trimmed = line.trim_end();
        match open {
            None => {
                if let Some(kind) = trimmed
                    .strip_prefix("-----BEGIN PGP ")
                    .and_then(|rest| rest.strip_suffix("-----"))
                {
                    open = Some((start, kind));
                }
            }
            Some((block_start, kind)) => {
                let is_end = trimmed
                    .strip_prefix("-----END PGP ")
                    .and_then(|rest| rest.strip_suffix("-----"))
                    == Some(kind);
                if is_end {
                    blocks.push((kind, &text[block_start..offset]));
                    open = None;
                }
            }
        }
    }
    blocks
}

/// Establishes which components of `cert` may sign data, following what
/// GnuPG requires before it reports a good signature.
fn signers_of(cert: &SignedPublicKey) -> Vec<Signer> {
    let primary = &cert.primary_key;
    let details = &cert.details;
    let primary_fp = format!("{:X}", primary.fingerprint());

    let revoked = details.revocation_signatures.iter().any(|sig| {
        sig.typ() == Some(SignatureType::KeyRevocation) && sig.verify_key(primary).is_ok()
    });
    if revoked {
        tracing::debug!(key = %primary_fp, "ignoring revoked key");
        return Vec::new();
    }

    // The newest valid self-signature carries the current key flags and
    // expiry; a key without one is unusable, as in gpg.
    let direct = details
        .direct_signatures
        .iter()
        .filter(|sig| sig.typ() == Some(SignatureType::Key) && sig.verify_key(primary).is_ok());
    let certifications = details.users.iter().flat_map(|user| {
        user.signatures.iter().filter(move |sig| {
            sig.is_certification()
                && sig.typ() != Some(SignatureType::CertRevocation)
                && issued_by(sig, primary)
                && sig
                    .verify_certification(primary, Tag::UserId, &user.id)
                    .is_ok()
        })
    });
    let Some(self_sig) = direct.chain(certifications).max_by_key(|sig| created(sig)) else {
        tracing::debug!(key = %primary_fp, "ignoring key without a valid self-signature");
        return Vec::new();
    };

    let primary_created = u64::from(primary.created_at().as_secs());
    let primary_expires = expiry(primary_created, self_sig);
    let mut out = Vec::new();
    if may_sign(self_sig) {
        out.push(Signer {
            key: SignerKey::Primary(primary.clone()),
            fingerprint: primary_fp,
            created: primary_created,
            expires: primary_expires,
        });
    }
    out.extend(
        cert.public_subkeys
            .iter()
            .filter_map(|sub| subkey_signer(primary, primary_expires, sub)),
    );
    out
}

fn subkey_signer(
    primary: &PublicKey,
    primary_expires: Option<u64>,
    sub: &SignedPublicSubKey,
) -> Option<Signer> {
    let key = &sub.key;
    let revoked = sub.signatures.iter().any(|sig| {
        sig.typ() == Some(SignatureType::SubkeyRevocation)
            && sig.verify_subkey_binding(primary, key).is_ok()
    });
    if revoked {
        return None;
    }
    let binding = sub
        .signatures
        .iter()
        .filter(|sig| {
            sig.typ() == Some(SignatureType::SubkeyBinding)
                && sig.verify_subkey_binding(primary, key).is_ok()
        })
        .max_by_key(|sig| created(sig))?;
    if !may_sign(binding) {
        return None;
    }
    // Without the subkey's back-signature anyone could bind our signing
    // subkey to their own primary; gpg rejects such subkeys ("not
    // cross-certified"), and so do we.
    let backsig = binding.embedded_signature()?;
    backsig.verify_primary_key_binding(key, primary).ok()?;

    let created_at = u64::from(key.created_at().as_secs());
    let expires = match (expiry(created_at, binding), primary_expires) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    Some(Signer {
        key: SignerKey::Subkey(key.clone()),
        fingerprint: format!("{:X}", key.fingerprint()),
        created: created_at,
        expires,
    })
}

fn created(sig: &Signature) -> u64 {
    sig.created().map_or(0, |t| u64::from(t.as_secs()))
}

/// Key expiration is relative to the key's creation; zero means "never".
fn expiry(key_created: u64, self_sig: &Signature) -> Option<u64> {
    self_sig
        .key_expiration_time()
        .map(|d| u64::from(d.as_secs()))
        .filter(|&secs| secs > 0)
        .map(|secs| key_created + secs)
}

/// An absent key-flags subpacket predates flags and leaves usage to the
/// algorithm (old keys); a present one must grant signing.
fn may_sign(self_sig: &Signature) -> bool {
    let has_flags = self_sig.config().is_some_and(|c| {
        c.hashed_subpackets()
            .any(|p| matches!(p.data, SubpacketData::KeyFlags(_)))
    });
    !has_flags || self_sig.key_flags().sign()
}

fn issued_by(sig: &Signature, key: &impl KeyDetails) -> bool {
    let ids = sig.issuer_key_id();
    let fps = sig.issuer_fingerprint();
    (ids.is_empty() && fps.is_empty())
        || ids.iter().any(|id| **id == key.legacy_key_id())
        || fps.iter().any(|fp| **fp == key.fingerprint())
}

struct HexId<'a>(&'a [u8]);

impl std::fmt::UpperHex for HexId<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

/// What a valid signature vouches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The signed content. For a detached signature, the data as given. For
    /// a clear-signed file, the dash-unescaped text with trailing spaces and
    /// tabs removed from each line and LF line ends: the cleartext framework
    /// hashes lines that way, so anything else would be unsigned. Its last
    /// line always ends in a newline, as in the text apt extracts: GnuPG
    /// (which Debian signs with) does not sign the line break before the
    /// signature armor, rPGP does, and without this Debian's InRelease text
    /// would differ from its Release file by that one byte. For InRelease
    /// this is therefore byte for byte the Release text.
    pub text: String,
    /// Upper-case hex fingerprint of the key (or subkey) that verified.
    pub signer: String,
}

/// Verifies an InRelease (clear-signed) file. Succeeds if ANY of its
/// signatures verifies against ANY primary key or signing subkey in the
/// keyring (Debian signs InRelease with several keys; only some may be in a
/// given keyring; Debian uses subkeys). Only the signed text is returned;
/// anything outside the signed part is ignored.
pub fn verify_clearsigned(keyring: &Keyring, message: &[u8]) -> Result<Verified, SignatureError> {
    verify_clearsigned_at(keyring, message, unix_now())
}

fn verify_clearsigned_at(
    keyring: &Keyring,
    message: &[u8],
    now: u64,
) -> Result<Verified, SignatureError> {
    let malformed = |detail: String| SignatureError::Malformed { detail };
    let text =
        std::str::from_utf8(message).map_err(|e| malformed(format!("not UTF-8 text ({e})")))?;
    let signed_block = extract_signed_block(text).map_err(malformed)?;
    let (canonical, armor) = split_cleartext(signed_block).map_err(malformed)?;
    let signatures =
        parse_detached(armor.as_bytes()).map_err(|e| malformed(format!("signature block: {e}")))?;
    let signer = check_signatures(
        keyring,
        &signatures,
        &SignedData::Bytes(canonical.as_bytes()),
        now,
    )?;
    let mut text = canonical.replace("\r\n", "\n");
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(Verified { text, signer })
}

/// Splits a clear-signed block (RFC 9580, section 7) into the canonical text its
/// signatures cover (dash-escapes removed, trailing spaces and tabs cut from each
/// line, lines joined by CRLF, no final line break) and the signature armor.
///
/// Done here in one pass: pgp 0.21's `CleartextSignedMessage` searches the whole
/// text read so far after every line, which makes a hostile InRelease of a million
/// lines take hours before any signature is looked at.
fn split_cleartext(block: &str) -> Result<(String, &str), String> {
    let mut offset = 0;
    let mut lines = block.split_inclusive('\n').map(|line| {
        let start = offset;
        offset += line.len();
        (start, line.trim_end_matches(['\r', '\n']))
    });
    match lines.next() {
        Some((_, l)) if l.trim_end() == "-----BEGIN PGP SIGNED MESSAGE-----" => {}
        _ => return Err("no \"-----BEGIN PGP SIGNED MESSAGE-----\" line".to_string()),
    }
    // Armor headers: only "Hash:" is defined for a cleartext message.
    loop {
        match lines.next() {
            None => return Err("the message ends in its armor headers".to_string()),
            Some((_, l)) if l.trim().is_empty() => break,
            Some((_, l)) if l.starts_with("Hash:") => {}
            Some((_, l)) => return Err(format!("unexpected armor header {l:?}")),
        }
    }
    let mut canonical = String::with_capacity(block.len());
    let mut first = true;
    for (start, line) in lines {
        if line.starts_with("-----") {
            return Ok((canonical, &block[start..]));
        }
        if !first {
            canonical.push_str("\r\n");
        }
        first = false;
        let unescaped = line.strip_prefix("- ").unwrap_or(line);
        canonical.push_str(unescaped.trim_end_matches([' ', '\t']));
    }
    Err("no signature after the signed text".to_string())
}

/// Cuts the one clear-signed block out of `text`. Text before it and after
/// its signature armor is dropped (gpgv ignores it too, and it never reaches
/// the caller). A second signed block is refused: which block a consumer
/// reads would then be ambiguous, the classic way to smuggle unsigned content
/// (apt refuses such files as well).
fn extract_signed_block(text: &str) -> Result<&str, String> {
    const BEGIN: &str = "-----BEGIN PGP SIGNED MESSAGE-----";
    const END: &str = "-----END PGP SIGNATURE-----";
    let mut start = None;
    let mut end = None;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let line_start = offset;
        offset += line.len();
        let trimmed = line.trim_end();
        if trimmed == BEGIN {
            if start.is_some() {
                return Err("more than one signed block".to_string());
            }
            start = Some(line_start);
        } else if trimmed == END && start.is_some() && end.is_none() {
            end = Some(offset);
        }
    }
    match (start, end) {
        (Some(s), Some(e)) => Ok(&text[s..e]),
        (None, _) => Err(format!("no \"{BEGIN}\" line")),
        (Some(_), None) => Err(format!("no \"{END}\" line")),
    }
}

/// Verifies Release + Release.gpg (detached, armored or binary; may contain
/// several signatures).
pub fn verify_detached(
    keyring: &Keyring,
    data: &[u8],
    signature: &[u8],
) -> Result<Verified, SignatureError> {
    verify_detached_at(keyring, data, signature, unix_now())
}

fn verify_detached_at(
    keyring: &Keyring,
    data: &[u8],
    signature: &[u8],
    now: u64,
) -> Result<Verified, SignatureError> {
    let signatures = parse_detached(signature).map_err(|detail| SignatureError::Malformed {
        detail: format!("detached signature: {detail}"),
    })?;
    let signer = check_signatures(keyring, &signatures, &SignedData::Bytes(data), now)?;
    let text = String::from_utf8(data.to_vec()).map_err(|e| SignatureError::Malformed {
        detail: format!("signed data is not UTF-8 text ({})", e.utf8_error()),
    })?;
    Ok(Verified { text, signer })
}

/// Verifies a detached signature (armored or binary; may contain several
/// signatures) over the file at `path`, reading it as a stream rather than
/// into memory: images are several GB and a Raspberry Pi has little RAM. The
/// policy is that of [`verify_detached`]. Returns the upper-case hex
/// fingerprint of the key (or subkey) that verified, as [`Verified::signer`].
///
/// The file is opened once and read from the start for each candidate key
/// (one pass when one key in the keyring matches the signature's issuer). The
/// verdict is about what was read: the caller must keep the file from
/// changing afterwards (e.g. verify it where only this process writes).
///
/// rPGP 0.21 counts the hashed bytes in a `usize`, so on a 32-bit target
/// (armhf) a file of 4 GiB or more cannot verify and is reported as
/// [`SignatureError::NoValidSignature`].
pub fn verify_detached_file(
    keyring: &Keyring,
    path: &Path,
    signature: &[u8],
) -> Result<String, SignatureError> {
    verify_detached_file_at(keyring, path, signature, unix_now())
}

fn verify_detached_file_at(
    keyring: &Keyring,
    path: &Path,
    signature: &[u8],
    now: u64,
) -> Result<String, SignatureError> {
    let signatures = parse_detached(signature).map_err(|detail| SignatureError::Malformed {
        detail: format!("detached signature: {detail}"),
    })?;
    // Opened before any check, so that a missing file is reported as such
    // even when no key in the keyring could have made the signature.
    let file = File::open(path).map_err(|source| SignatureError::ReadSigned {
        path: path.to_path_buf(),
        source,
    })?;
    check_signatures(
        keyring,
        &signatures,
        &SignedData::File { path, file: &file },
        now,
    )
}

/// The bytes a signature covers, readable once per candidate key.
enum SignedData<'a> {
    Bytes(&'a [u8]),
    /// Read from the start for each check; one open file, so every pass sees
    /// the same inode even if the path is replaced meanwhile.
    File {
        path: &'a Path,
        file: &'a File,
    },
}

impl SignedData<'_> {
    /// Whether `sig` is a valid signature by `key` over the data. A read
    /// error is returned as an error, not as a signature that does not verify.
    fn verified_by(&self, sig: &Signature, key: &SignerKey) -> Result<bool, SignatureError> {
        match self {
            SignedData::Bytes(bytes) => Ok(verify_with(sig, key, *bytes)),
            SignedData::File { path, file } => {
                let read_error = |source| SignatureError::ReadSigned {
                    path: path.to_path_buf(),
                    source,
                };
                let mut file: &File = file;
                file.seek(SeekFrom::Start(0)).map_err(read_error)?;
                let mut reader = KeepReadError {
                    inner: BufReader::with_capacity(READ_BUFFER, file),
                    error: None,
                };
                let verified = verify_with(sig, key, &mut reader);
                match reader.error {
                    Some(source) => Err(read_error(source)),
                    None => Ok(verified),
                }
            }
        }
    }
}

/// Read size for a signed file: rPGP hashes in 8 KiB pieces, and fewer,
/// larger reads help a slow SD card or USB disk.
const READ_BUFFER: usize = 256 * 1024;

fn verify_with(sig: &Signature, key: &SignerKey, data: impl Read) -> bool {
    match key {
        SignerKey::Primary(k) => sig.verify(k, data).is_ok(),
        SignerKey::Subkey(k) => sig.verify(k, data).is_ok(),
    }
}

/// rPGP turns a read error into a failed verification; this keeps the
/// original so that a disk error is not reported as a bad signature.
struct KeepReadError<R> {
    inner: R,
    error: Option<std::io::Error>,
}

impl<R: Read> Read for KeepReadError<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                let copy = std::io::Error::new(e.kind(), e.to_string());
                self.error.get_or_insert(e);
                Err(copy)
            }
        }
    }
}

fn parse_detached(bytes: &[u8]) -> Result<Vec<Signature>, String> {
    let mut out = Vec::new();
    let mut collect = |iter: Box<dyn Iterator<Item = pgp::errors::Result<DetachedSignature>>>| {
        for item in iter {
            out.push(item.map_err(|e| e.to_string())?.signature);
        }
        Ok::<(), String>(())
    };
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        None => return Err("empty".to_string()),
        Some(first) if first & 0x80 != 0 => {
            collect(DetachedSignature::from_bytes_many(bytes).map_err(|e| e.to_string())?)?;
        }
        Some(_) => {
            let text = std::str::from_utf8(bytes)
                .map_err(|_| "neither binary nor ASCII armor".to_string())?;
            let blocks = armor_blocks(text);
            if blocks.is_empty() {
                return Err("no ASCII-armor block found".to_string());
            }
            for (kind, block) in blocks {
                if kind != "SIGNATURE" {
                    return Err(format!("found a PGP {kind}, expected PGP SIGNATURE"));
                }
                let (iter, _headers) = DetachedSignature::from_armor_many(block.as_bytes())
                    .map_err(|e| e.to_string())?;
                collect(iter)?;
            }
        }
    }
    if out.is_empty() {
        return Err("no signature packet".to_string());
    }
    Ok(out)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Returns the fingerprint of the first key that makes one of `signatures`
/// valid over `data`.
fn check_signatures(
    keyring: &Keyring,
    signatures: &[Signature],
    data: &SignedData<'_>,
    now: u64,
) -> Result<String, SignatureError> {
    for sig in signatures {
        if let Some(signer) = valid_signer(keyring, sig, data, now)? {
            return Ok(signer.fingerprint.clone());
        }
    }
    Err(SignatureError::NoValidSignature {
        signers: describe_issuers(signatures),
    })
}

/// The signing key from `keyring` that makes `sig` valid over `data`, if
/// any. The checks that need no data come first: only a key that passes them
/// costs a read of `data`.
fn valid_signer<'k>(
    keyring: &'k Keyring,
    sig: &Signature,
    data: &SignedData<'_>,
    now: u64,
) -> Result<Option<&'k Signer>, SignatureError> {
    if !matches!(sig.typ(), Some(SignatureType::Binary | SignatureType::Text)) {
        return Ok(None);
    }
    let Some(hash) = sig.hash_alg() else {
        return Ok(None);
    };
    if !strong_hash(hash) {
        tracing::debug!(%hash, "ignoring signature with a weak or unknown digest");
        return Ok(None);
    }
    // A v4 signature must carry its creation time; without it neither key
    // validity nor expiry can be judged.
    let Some(sig_created) = sig.created().map(|t| u64::from(t.as_secs())) else {
        return Ok(None);
    };
    if let Some(d) = sig.signature_expiration_time() {
        let secs = u64::from(d.as_secs());
        if secs > 0 && sig_created + secs <= now {
            return Ok(None);
        }
    }
    let candidates = keyring
        .certs
        .iter()
        .zip(&keyring.signers)
        .filter(|(cert, _)| {
            issued_by(sig, &cert.primary_key)
                || cert
                    .public_subkeys
                    .iter()
                    .any(|sub| issued_by(sig, &sub.key))
        })
        .flat_map(|(cert, signers)| signers.get_or_init(|| signers_of(cert)))
        .filter(|signer| {
            let matches = match &signer.key {
                SignerKey::Primary(k) => issued_by(sig, k),
                SignerKey::Subkey(k) => issued_by(sig, k),
            };
            // gpg refuses signatures older than their key (clock trouble or a
            // forged timestamp) and apt refuses keys expired now (EXPKEYSIG),
            // even for signatures made while the key was valid.
            matches
                && sig_created >= signer.created
                && signer
                    .expires
                    .is_none_or(|exp| exp > now && exp > sig_created)
        });
    for signer in candidates {
        if data.verified_by(sig, &signer.key)? {
            return Ok(Some(signer));
        }
    }
    Ok(None)
}

/// SHA-1 has practical chosen-prefix collisions; MD5 and RIPEMD-160 are
/// older still. apt distrusts all three for repository signatures.
fn strong_hash(hash: HashAlgorithm) -> bool {
    matches!(
        hash,
        HashAlgorithm::Sha224
            | HashAlgorithm::Sha256
            | HashAlgorithm::Sha384
            | HashAlgorithm::Sha512
            | HashAlgorithm::Sha3_256
            | HashAlgorithm::Sha3_512
    )
}

fn describe_issuers(signatures: &[Signature]) -> String {
    let mut seen = HashSet::new();
    let mut out = String::new();
    for sig in signatures {
        let name = if let Some(fp) = sig.issuer_fingerprint().first() {
            format!("{fp:X}")
        } else if let Some(id) = sig.issuer_key_id().first() {
            format!("{:X}", HexId(id.as_ref()))
        } else {
            continue;
        };
        if seen.insert(name.clone()) {
            if !out.is_empty() {
                out.push_str(", ");
            }
            out.push_str(&name);
        }
    }
    if out.is_empty() {
        out.push_str("none");
    }
    out
}

/// An ed25519 signing key, generated fresh, for the demo and test repositories.
pub struct SigningKey {
    secret: SignedSecretKey,
    public: SignedPublicKey,
}

/// Shows only the fingerprint: secret material must not end up in logs.
impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

/// Key creation is backdated so that a verifier whose clock lags ours (a VM
/// or container serving the demo repository) does not see a key "created in
/// the future", which gpgv rejects.
const KEY_BACKDATE_SECS: u32 = 24 * 60 * 60;

impl SigningKey {
    /// Generates a v4 EdDSA (legacy ed25519) key with signing and
    /// certification on the primary key. v4/EdDSA rather than RFC 9580's v6
    /// Ed25519 because GnuPG 2.2 (bookworm's gpgv) and 2.4 only understand
    /// the former.
    pub fn generate(user_id: &str) -> Result<SigningKey, SignatureError> {
        let signing = |detail: String| SignatureError::Signing { detail };
        let created = Timestamp::now().as_secs().saturating_sub(KEY_BACKDATE_SECS);
        let mut params = SecretKeyParamsBuilder::default();
        params
            .key_type(KeyType::Ed25519Legacy)
            .can_certify(true)
            .can_sign(true)
            .created_at(Timestamp::from_secs(created))
            .preferred_hash_algorithms(vec![HashAlgorithm::Sha256, HashAlgorithm::Sha512].into())
            .primary_user_id(user_id.to_string());
        let params = params
            .build()
            .map_err(|e| signing(format!("key parameters: {e}")))?;
        let secret = params
            .generate(rand::rngs::OsRng)
            .map_err(|e| signing(format!("key generation: {e}")))?;
        let public = secret.to_public_key();
        Ok(SigningKey { secret, public })
    }

    /// Upper-case hex fingerprint of the key.
    pub fn fingerprint(&self) -> String {
        format!("{:X}", self.public.fingerprint())
    }

    pub fn public_key_armored(&self) -> Result<String, SignatureError> {
        self.public
            .to_armored_string(ArmorOptions::default())
            .map_err(signing_error)
    }

    /// A keyring file apt accepts as a `.gpg` (binary, in `signed-by` or
    /// /etc/apt/trusted.gpg.d).
    pub fn public_key_binary(&self) -> Result<Vec<u8>, SignatureError> {
        self.public.to_bytes().map_err(signing_error)
    }

    /// Produces an InRelease: `-----BEGIN PGP SIGNED MESSAGE-----`,
    /// `Hash: SHA256`, the dash-escaped text, and the signature. Trailing
    /// spaces and tabs are removed from every line first: the cleartext
    /// framework does not sign them (verifiers strip them before hashing),
    /// and rPGP would otherwise hash them and emit a signature nobody can
    /// verify.
    pub fn clearsign(&self, text: &str) -> Result<String, SignatureError> {
        let text = trim_line_ends(text);
        let config = self.signature_config(SignatureType::Text)?;
        let msg = CleartextSignedMessage::new(&text, config, &*self.secret, &Password::empty())
            .map_err(signing_error)?;
        msg.to_armored_string(ArmorOptions::default())
            .map_err(signing_error)
    }

    /// Produces a Release.gpg: a binary-mode (exact bytes) signature, armored.
    pub fn sign_detached_armored(&self, data: &[u8]) -> Result<String, SignatureError> {
        let config = self.signature_config(SignatureType::Binary)?;
        let sig = config
            .sign(&*self.secret, &Password::empty(), data)
            .map_err(signing_error)?;
        DetachedSignature::new(sig)
            .to_armored_string(ArmorOptions::default())
            .map_err(signing_error)
    }

    /// SHA-256 with creation time and issuer fingerprint hashed, and the key
    /// id unhashed: the subpackets gpg itself writes, which gpgv needs to pick
    /// the key.
    fn signature_config(&self, typ: SignatureType) -> Result<SignatureConfig, SignatureError> {
        let key = &self.secret.primary_key;
        let mut config = SignatureConfig::v4(typ, key.algorithm(), HashAlgorithm::Sha256);
        config.hashed_subpackets = vec![
            Subpacket::regular(SubpacketData::SignatureCreationTime(Timestamp::now()))
                .map_err(signing_error)?,
            Subpacket::regular(SubpacketData::IssuerFingerprint(key.fingerprint()))
                .map_err(signing_error)?,
        ];
        config.unhashed_subpackets = vec![
            Subpacket::regular(SubpacketData::IssuerKeyId(key.legacy_key_id()))
                .map_err(signing_error)?,
        ];
        Ok(config)
    }
}

fn signing_error(e: pgp::errors::Error) -> SignatureError {
    SignatureError::Signing {
        detail: e.to_string(),
    }
}

fn trim_line_ends(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let (content, end) = match line.strip_suffix("\r\n") {
            Some(c) => (c, "\r\n"),
            None => match line.strip_suffix('\n') {
                Some(c) => (c, "\n"),
                None => (line, ""),
            },
        };
        out.push_str(content.trim_end_matches([' ', '\t']));
        out.push_str(end);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;
    use std::time::Instant;

    const INRELEASE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/debian/bookworm-updates_InRelease"
    );
    const KEYRING_GPG: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/debian/debian-archive-keyring.gpg"
    );
    const KEYRING_ASC: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/debian/debian-archive-keyring.asc"
    );
    /// Key ids of the subkeys that signed the stored InRelease
    /// (12/bookworm and 13/trixie automatic signing keys).
    const BOOKWORM_SUBKEY: &str = "4CB50190207B4758A3F73A796ED0E7B82643E131";
    const TRIXIE_SUBKEY: &str = "B8E5F13176D2A7A75220028078DBA3BC47EF2265";

    fn inrelease() -> Vec<u8> {
        std::fs::read(INRELEASE).unwrap()
    }

    fn debian_keyring() -> Keyring {
        Keyring::from_file(Path::new(KEYRING_GPG)).unwrap()
    }

    fn assert_release_text(text: &str) {
        assert!(text.starts_with("Origin: Debian\n"), "{}", &text[..80]);
        // Since trixie's release the bookworm-updates suite is published as
        // "oldstable-updates"; the codename is what stays fixed.
        assert!(text.contains("\nCodename: bookworm-updates\n"));
        assert!(text.contains("\nSuite: oldstable-updates\n"));
        assert!(!text.lines().any(|l| l.starts_with("-----BEGIN PGP")));
        assert!(!text.contains('\r'));
    }

    #[test]
    fn real_inrelease_verifies_against_binary_keyring() {
        let keyring = debian_keyring();
        assert_eq!(keyring.len(), 9);
        assert!(
            keyring
                .fingerprints()
                .contains(&"B8B80B5B623EAB6AD8775C45B7C5D7D6350947F8".to_string())
        );
        let verified = verify_clearsigned(&keyring, &inrelease()).unwrap();
        assert_release_text(&verified.text);
        assert!(
            [BOOKWORM_SUBKEY, TRIXIE_SUBKEY].contains(&verified.signer.as_str()),
            "{}",
            verified.signer
        );
    }

    #[test]
    fn real_inrelease_verifies_against_armored_keyring() {
        let keyring = Keyring::from_file(Path::new(KEYRING_ASC)).unwrap();
        assert_eq!(keyring.fingerprints(), debian_keyring().fingerprints());
        let verified = verify_clearsigned(&keyring, &inrelease()).unwrap();
        assert_release_text(&verified.text);
    }

    #[test]
    fn signed_text_is_the_release_file() {
        let raw = String::from_utf8(inrelease()).unwrap();
        let verified = verify_clearsigned(&debian_keyring(), raw.as_bytes()).unwrap();
        // Debian's Release is the InRelease body up to and including the
        // newline before the signature armor.
        let body_start = raw.find("\n\n").unwrap() + 2;
        let body_end = raw.find("\n-----BEGIN PGP SIGNATURE-----").unwrap() + 1;
        assert_eq!(verified.text, raw[body_start..body_end]);
        assert!(verified.text.ends_with("\n") && !verified.text.ends_with("\n\n"));
    }

    #[test]
    fn flipped_hex_digit_fails() {
        let raw = String::from_utf8(inrelease()).unwrap();
        let sha_section = raw.find("\nSHA256:\n").unwrap() + "\nSHA256:\n".len();
        let pos = sha_section + 1; // first hex digit of the first SHA256 entry
        let mut bytes = raw.into_bytes();
        bytes[pos] = if bytes[pos] == b'0' { b'1' } else { b'0' };
        let err = verify_clearsigned(&debian_keyring(), &bytes).unwrap_err();
        assert!(
            matches!(err, SignatureError::NoValidSignature { .. }),
            "{err}"
        );
    }

    #[test]
    fn unrelated_key_fails_and_names_debian_signers() {
        let key = SigningKey::generate("Unrelated <nobody@example.org>").unwrap();
        let keyring = Keyring::from_bytes(&key.public_key_binary().unwrap(), "unrelated").unwrap();
        let err = verify_clearsigned(&keyring, &inrelease()).unwrap_err();
        let SignatureError::NoValidSignature { signers } = &err else {
            panic!("unexpected error {err}");
        };
        assert_eq!(signers, &format!("{BOOKWORM_SUBKEY}, {TRIXIE_SUBKEY}"));
        let message = err.to_string();
        assert!(message.contains("6ED0E7B82643E131"), "{message}");
        assert!(message.contains("78DBA3BC47EF2265"), "{message}");
    }

    #[test]
    fn expiry_is_enforced_per_key() {
        let keyring = debian_keyring();
        // 2026-11-24 02:13:20 UTC, seconds after Debian signed the stored file.
        let just_after_signing = 1_795_486_400;
        let verified = verify_clearsigned_at(&keyring, &inrelease(), just_after_signing).unwrap();
        assert_eq!(verified.signer, BOOKWORM_SUBKEY);
        // 2032: the bookworm key (expires 2031-01-19) is gone, trixie's still valid.
        let verified = verify_clearsigned_at(&keyring, &inrelease(), 1_960_000_000).unwrap();
        assert_eq!(verified.signer, TRIXIE_SUBKEY);
        // 2036: both expired.
        let err = verify_clearsigned_at(&keyring, &inrelease(), 2_085_000_000).unwrap_err();
        assert!(matches!(err, SignatureError::NoValidSignature { .. }));
    }

    #[test]
    fn garbage_around_the_signed_block_is_ignored() {
        let raw = String::from_utf8(inrelease()).unwrap();
        let wrapped = format!("Origin: Evil\nSuite: evil\n\n{raw}\nSuite: also-evil\n");
        let verified = verify_clearsigned(&debian_keyring(), wrapped.as_bytes()).unwrap();
        assert_release_text(&verified.text);
        assert!(!verified.text.contains("evil"));
    }

    #[test]
    fn two_signed_blocks_are_malformed() {
        let raw = String::from_utf8(inrelease()).unwrap();
        let doubled = format!("{raw}{raw}");
        let err = verify_clearsigned(&debian_keyring(), doubled.as_bytes()).unwrap_err();
        assert!(matches!(err, SignatureError::Malformed { .. }), "{err}");
    }

    #[test]
    fn not_clearsigned_is_malformed() {
        let keyring = debian_keyring();
        for input in [
            &b"Origin: Debian\nSuite: bookworm-updates\n"[..],
            b"",
            b"\xff\xfe\x00binary",
            b"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nno signature follows\n",
        ] {
            let err = verify_clearsigned(&keyring, input).unwrap_err();
            assert!(matches!(err, SignatureError::Malformed { .. }), "{err}");
        }
    }

    #[test]
    fn bad_keyrings_are_reported() {
        let err = Keyring::from_bytes(b"", "empty").unwrap_err();
        assert!(matches!(err, SignatureError::EmptyKeyring { .. }), "{err}");
        let err = Keyring::from_bytes(b"hello world\n", "text").unwrap_err();
        assert!(matches!(err, SignatureError::BadKeyring { .. }), "{err}");
        let err = Keyring::from_bytes(&inrelease(), "inrelease").unwrap_err();
        assert!(matches!(err, SignatureError::BadKeyring { .. }), "{err}");
        let err = Keyring::from_file(Path::new("/nonexistent/keyring.gpg")).unwrap_err();
        assert!(matches!(err, SignatureError::Io { .. }), "{err}");
        let secret = SigningKey::generate("x <x@example.org>").unwrap();
        let armored_secret = secret
            .secret
            .to_armored_string(ArmorOptions::default())
            .unwrap();
        let err = Keyring::from_bytes(armored_secret.as_bytes(), "secret").unwrap_err();
        assert!(matches!(err, SignatureError::BadKeyring { .. }), "{err}");
    }

    #[test]
    fn multi_block_armored_keyring() {
        let a = SigningKey::generate("A <a@example.org>").unwrap();
        let b = SigningKey::generate("B <b@example.org>").unwrap();
        let debian = std::fs::read_to_string(KEYRING_ASC).unwrap();
        let combined = format!(
            "{}\n{}{}",
            a.public_key_armored().unwrap(),
            debian,
            b.public_key_armored().unwrap()
        );
        let keyring = Keyring::from_bytes(combined.as_bytes(), "combined").unwrap();
        assert_eq!(keyring.len(), 11);
        assert_eq!(keyring.fingerprints()[0], a.fingerprint());
        assert_eq!(keyring.fingerprints()[10], b.fingerprint());
        let signed = b.clearsign("Origin: B\n").unwrap();
        assert_eq!(
            verify_clearsigned(&keyring, signed.as_bytes())
                .unwrap()
                .signer,
            b.fingerprint()
        );
        verify_clearsigned(&keyring, &inrelease()).unwrap();
    }

    /// A certify-only primary with one signing and one non-signing subkey,
    /// shaped like Debian's archive keys.
    fn key_with_subkeys() -> SignedSecretKey {
        use pgp::composed::{EncryptionCaps, SubkeyParamsBuilder};
        let mut signing = SubkeyParamsBuilder::default();
        signing.key_type(KeyType::Ed25519Legacy).can_sign(true);
        let mut auth_only = SubkeyParamsBuilder::default();
        auth_only
            .key_type(KeyType::Ed25519Legacy)
            .can_authenticate(true)
            .can_encrypt(EncryptionCaps::None);
        let mut params = SecretKeyParamsBuilder::default();
        params
            .key_type(KeyType::Ed25519Legacy)
            .can_certify(true)
            .can_sign(false)
            .primary_user_id("Sub <sub@example.org>".to_string())
            .subkeys(vec![signing.build().unwrap(), auth_only.build().unwrap()]);
        params.build().unwrap().generate(rand::rngs::OsRng).unwrap()
    }

    fn detached_by(key: &impl pgp::types::SigningKey, data: &[u8]) -> Vec<u8> {
        let mut config = SignatureConfig::v4(
            SignatureType::Binary,
            key.algorithm(),
            HashAlgorithm::Sha256,
        );
        config.hashed_subpackets = vec![
            Subpacket::regular(SubpacketData::SignatureCreationTime(Timestamp::now())).unwrap(),
            Subpacket::regular(SubpacketData::IssuerFingerprint(key.fingerprint())).unwrap(),
        ];
        let sig = config.sign(key, &Password::empty(), data).unwrap();
        DetachedSignature::new(sig).to_bytes().unwrap()
    }

    #[test]
    fn only_signing_capable_components_verify() {
        let secret = key_with_subkeys();
        let keyring =
            Keyring::from_bytes(&secret.to_public_key().to_bytes().unwrap(), "sub").unwrap();
        let data = RELEASE.as_bytes();

        let by_signing_subkey = detached_by(&*secret.secret_subkeys[0], data);
        let verified = verify_detached(&keyring, data, &by_signing_subkey).unwrap();
        assert_eq!(
            verified.signer,
            format!("{:X}", secret.secret_subkeys[0].fingerprint())
        );

        // Mathematically valid, but the key flags forbid data signatures.
        let by_auth_subkey = detached_by(&*secret.secret_subkeys[1], data);
        let err = verify_detached(&keyring, data, &by_auth_subkey).unwrap_err();
        assert!(matches!(err, SignatureError::NoValidSignature { .. }));
        let by_primary = detached_by(&secret.primary_key, data);
        let err = verify_detached(&keyring, data, &by_primary).unwrap_err();
        assert!(matches!(err, SignatureError::NoValidSignature { .. }));
    }

    /// A multi-MB file that, like an image, is not UTF-8 text.
    fn image_file(dir: &Path) -> (PathBuf, Vec<u8>) {
        let mut data = vec![0u8; 5 * 1024 * 1024 + 321];
        let mut x: u32 = 0x9E37_79B9;
        for b in &mut data {
            // xorshift32: cheap, deterministic, incompressible enough.
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *b = x.to_le_bytes()[0];
        }
        assert!(std::str::from_utf8(&data).is_err());
        let path = dir.join("2024-11-19-raspios-bookworm-arm64.img.xz");
        std::fs::write(&path, &data).unwrap();
        (path, data)
    }

    #[test]
    fn detached_file_roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        let (path, data) = image_file(dir.path());
        let key = SigningKey::generate("Images <images@example.org>").unwrap();
        let keyring = Keyring::from_bytes(&key.public_key_binary().unwrap(), "k").unwrap();
        let armored = key.sign_detached_armored(&data).unwrap();
        let (sig, _) = DetachedSignature::from_string(&armored).unwrap();
        let binary = sig.to_bytes().unwrap();
        for signature in [armored.as_bytes(), &binary] {
            let signer = verify_detached_file(&keyring, &path, signature).unwrap();
            assert_eq!(signer, key.fingerprint());
        }
        // The in-memory variant hands back text, so it refuses this data
        // after checking the signature; the file variant does not care.
        let err = verify_detached(&keyring, &data, armored.as_bytes()).unwrap_err();
        assert!(matches!(err, SignatureError::Malformed { .. }), "{err}");

        // One flipped bit, a byte more, a byte less: all tampering.
        let mut flipped = data.clone();
        flipped[data.len() / 2] ^= 0x01;
        let mut longer = data.clone();
        longer.push(0);
        for changed in [&flipped[..], &longer, &data[..data.len() - 1]] {
            std::fs::write(&path, changed).unwrap();
            let err = verify_detached_file(&keyring, &path, armored.as_bytes()).unwrap_err();
            let SignatureError::NoValidSignature { signers } = &err else {
                panic!("unexpected error {err}");
            };
            assert_eq!(signers, &key.fingerprint());
        }
        std::fs::write(&path, &data).unwrap();
        verify_detached_file(&keyring, &path, &binary).unwrap();

        // A key that is not in the keyring.
        let stranger = SigningKey::generate("Stranger <s@example.org>").unwrap();
        let by_stranger = stranger.sign_detached_armored(&data).unwrap();
        let err = verify_detached_file(&keyring, &path, by_stranger.as_bytes()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "no valid signature by a key in the keyring (signed by: {})",
                stranger.fingerprint()
            )
        );
        let stranger_keyring =
            Keyring::from_bytes(&stranger.public_key_binary().unwrap(), "s").unwrap();
        let err = verify_detached_file(&stranger_keyring, &path, &binary).unwrap_err();
        assert!(
            matches!(err, SignatureError::NoValidSignature { .. }),
            "{err}"
        );
    }

    #[test]
    fn detached_file_errors() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::generate("Images <images@example.org>").unwrap();
        let keyring = Keyring::from_bytes(&key.public_key_binary().unwrap(), "k").unwrap();
        let sig = key.sign_detached_armored(b"data").unwrap();

        let missing = dir.path().join("missing.img.xz");
        let err = verify_detached_file(&keyring, &missing, sig.as_bytes()).unwrap_err();
        assert!(matches!(err, SignatureError::ReadSigned { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            format!("reading signed file {}", missing.display())
        );
        // A directory opens but cannot be read: a read error, not a bad signature.
        let err = verify_detached_file(&keyring, dir.path(), sig.as_bytes()).unwrap_err();
        let SignatureError::ReadSigned { path, source } = &err else {
            panic!("unexpected error {err}");
        };
        assert_eq!(path, dir.path());
        assert_eq!(source.kind(), std::io::ErrorKind::IsADirectory);

        let file = dir.path().join("data");
        std::fs::write(&file, b"data").unwrap();
        assert_eq!(
            verify_detached_file(&keyring, &file, sig.as_bytes()).unwrap(),
            key.fingerprint()
        );
        let err = verify_detached_file(&keyring, &file, b"not a signature").unwrap_err();
        assert!(matches!(err, SignatureError::Malformed { .. }), "{err}");
        let err = verify_detached_file(&keyring, &file, b"").unwrap_err();
        assert!(matches!(err, SignatureError::Malformed { .. }), "{err}");
    }

    /// A binary-mode detached signature by `key` with the given digest and
    /// extra hashed subpackets.
    fn detached_with(
        key: &impl pgp::types::SigningKey,
        data: &[u8],
        hash: HashAlgorithm,
        extra: Vec<Subpacket>,
    ) -> Vec<u8> {
        let mut config = SignatureConfig::v4(SignatureType::Binary, key.algorithm(), hash);
        config.hashed_subpackets = vec![
            Subpacket::regular(SubpacketData::SignatureCreationTime(Timestamp::now())).unwrap(),
            Subpacket::regular(SubpacketData::IssuerFingerprint(key.fingerprint())).unwrap(),
        ];
        config.hashed_subpackets.extend(extra);
        let sig = config.sign(key, &Password::empty(), data).unwrap();
        DetachedSignature::new(sig).to_bytes().unwrap()
    }

    /// The file variant and the in-memory one agree on every policy case.
    /// (Weak digests are refused by the same code before any data is read,
    /// but rPGP will not make an Ed25519 signature over SHA-1 to show it.)
    #[test]
    fn detached_file_applies_the_same_policy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Release");
        std::fs::write(&path, RELEASE).unwrap();
        let data = RELEASE.as_bytes();
        let secret = key_with_subkeys();
        let keyring =
            Keyring::from_bytes(&secret.to_public_key().to_bytes().unwrap(), "sub").unwrap();
        let signing = &*secret.secret_subkeys[0];
        let signing_fp = format!("{:X}", signing.fingerprint());
        let hour = || {
            vec![
                Subpacket::regular(SubpacketData::SignatureExpirationTime(
                    pgp::types::Duration::from_secs(3600),
                ))
                .unwrap(),
            ]
        };
        let now = unix_now();
        let cases = [
            (
                "signing subkey",
                detached_with(signing, data, HashAlgorithm::Sha256, vec![]),
                now,
                Some(&signing_fp),
            ),
            (
                "SHA-512",
                detached_with(signing, data, HashAlgorithm::Sha512, vec![]),
                now,
                Some(&signing_fp),
            ),
            (
                "authentication-only subkey",
                detached_with(
                    &*secret.secret_subkeys[1],
                    data,
                    HashAlgorithm::Sha256,
                    vec![],
                ),
                now,
                None,
            ),
            (
                "certify-only primary",
                detached_with(&secret.primary_key, data, HashAlgorithm::Sha256, vec![]),
                now,
                None,
            ),
            (
                "signature valid for an hour, checked now",
                detached_with(signing, data, HashAlgorithm::Sha256, hour()),
                now,
                Some(&signing_fp),
            ),
            (
                "signature valid for an hour, checked two hours later",
                detached_with(signing, data, HashAlgorithm::Sha256, hour()),
                now + 7200,
                None,
            ),
        ];
        for (what, signature, at, expected) in cases {
            let in_memory = verify_detached_at(&keyring, data, &signature, at).map(|v| v.signer);
            let from_file = verify_detached_file_at(&keyring, &path, &signature, at);
            match expected {
                Some(fp) => {
                    assert_eq!(in_memory.as_ref().unwrap(), fp, "{what}");
                    assert_eq!(from_file.as_ref().unwrap(), fp, "{what}");
                }
                None => {
                    for result in [in_memory, from_file] {
                        let err = result.unwrap_err();
                        assert!(
                            matches!(err, SignatureError::NoValidSignature { .. }),
                            "{what}: {err}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn signing_key_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<SigningKey>();
        assert_send_sync::<Keyring>();
    }

    const RELEASE: &str = "Origin: Demo\nLabel: Demo\nSuite: stable\nCodename: demo\n\
        Date: Wed, 25 Nov 2026 10:00:00 UTC\nArchitectures: amd64\nComponents: main\n\
        SHA256:\n 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef 1234 main/binary-amd64/Packages\n";

    #[test]
    fn clearsign_roundtrip() {
        let key = SigningKey::generate("Demo <demo@example.org>").unwrap();
        let keyring = Keyring::from_bytes(&key.public_key_binary().unwrap(), "demo").unwrap();
        let signed = key.clearsign(RELEASE).unwrap();
        assert!(
            signed
                .starts_with("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nOrigin: Demo\n")
        );
        let verified = verify_clearsigned(&keyring, signed.as_bytes()).unwrap();
        assert_eq!(verified.text, RELEASE);
        assert_eq!(verified.signer, key.fingerprint());

        let tampered = signed.replace("Suite: stable", "Suite: stabla");
        let err = verify_clearsigned(&keyring, tampered.as_bytes()).unwrap_err();
        assert!(matches!(err, SignatureError::NoValidSignature { .. }));
    }

    #[test]
    fn dash_escaping_roundtrips_exactly() {
        let key = SigningKey::generate("Demo <demo@example.org>").unwrap();
        let keyring =
            Keyring::from_bytes(&key.public_key_armored().unwrap().into_bytes(), "demo").unwrap();
        for text in [
            "-leading dash\n- dash space\n--double\n-----BEGIN PGP SIGNATURE-----\nplain\n-\n",
            "-----END PGP SIGNATURE-----\n",
            "-\n- x\n",
            "",
            "\n\n",
        ] {
            let signed = key.clearsign(text).unwrap();
            let verified = verify_clearsigned(&keyring, signed.as_bytes()).unwrap();
            assert_eq!(verified.text, text, "signed form:\n{signed}");
        }
        // A last line without a newline comes back with one (see `Verified::text`).
        let signed = key.clearsign("no final newline\n-x").unwrap();
        let verified = verify_clearsigned(&keyring, signed.as_bytes()).unwrap();
        assert_eq!(verified.text, "no final newline\n-x\n");
    }

    #[test]
    fn trailing_whitespace_is_not_signed() {
        let key = SigningKey::generate("Demo <demo@example.org>").unwrap();
        let keyring = Keyring::from_bytes(&key.public_key_binary().unwrap(), "demo").unwrap();
        let signed = key.clearsign("Label: x \t\nSuite: y  \n").unwrap();
        let verified = verify_clearsigned(&keyring, signed.as_bytes()).unwrap();
        assert_eq!(verified.text, "Label: x\nSuite: y\n");
    }

    #[test]
    fn detached_roundtrip() {
        let key = SigningKey::generate("Demo <demo@example.org>").unwrap();
        let keyring = Keyring::from_bytes(&key.public_key_binary().unwrap(), "demo").unwrap();
        let sig = key.sign_detached_armored(RELEASE.as_bytes()).unwrap();
        assert!(sig.starts_with("-----BEGIN PGP SIGNATURE-----\n"));
        let verified = verify_detached(&keyring, RELEASE.as_bytes(), sig.as_bytes()).unwrap();
        assert_eq!(verified.text, RELEASE);
        assert_eq!(verified.signer, key.fingerprint());

        let tampered = RELEASE.replace("0123", "0124");
        let err = verify_detached(&keyring, tampered.as_bytes(), sig.as_bytes()).unwrap_err();
        assert!(matches!(err, SignatureError::NoValidSignature { .. }));
        // Binary mode: line-ending changes are tampering too.
        let crlf = RELEASE.replace('\n', "\r\n");
        assert!(verify_detached(&keyring, crlf.as_bytes(), sig.as_bytes()).is_err());

        let err = verify_detached(&keyring, RELEASE.as_bytes(), b"not a signature").unwrap_err();
        assert!(matches!(err, SignatureError::Malformed { .. }), "{err}");
    }

    #[test]
    fn detached_with_several_signatures_binary_and_armored() {
        let stranger = SigningKey::generate("Stranger <s@example.org>").unwrap();
        let trusted = SigningKey::generate("Trusted <t@example.org>").unwrap();
        let keyring = Keyring::from_bytes(&trusted.public_key_binary().unwrap(), "t").unwrap();
        let data = RELEASE.as_bytes();
        let sig_a = stranger.sign_detached_armored(data).unwrap();
        let sig_b = trusted.sign_detached_armored(data).unwrap();

        // Two armor blocks, as `cat a.asc b.asc` would produce.
        let both = format!("{sig_a}{sig_b}");
        let verified = verify_detached(&keyring, data, both.as_bytes()).unwrap();
        assert_eq!(verified.signer, trusted.fingerprint());

        // One binary stream of two packets, as `gpg -u a -u b --detach-sign`.
        let mut binary = Vec::new();
        for armored in [&sig_a, &sig_b] {
            let (sig, _) = DetachedSignature::from_string(armored).unwrap();
            binary.extend(sig.to_bytes().unwrap());
        }
        let verified = verify_detached(&keyring, data, &binary).unwrap();
        assert_eq!(verified.signer, trusted.fingerprint());

        let only_stranger = Keyring::from_bytes(&stranger.public_key_binary().unwrap(), "s");
        let err =
            verify_detached(&only_stranger.unwrap(), b"other data", both.as_bytes()).unwrap_err();
        let SignatureError::NoValidSignature { signers } = err else {
            panic!("unexpected error");
        };
        assert_eq!(
            signers,
            format!("{}, {}", stranger.fingerprint(), trusted.fingerprint())
        );
    }

    #[test]
    fn timing_generate_and_clearsign() {
        let start = Instant::now();
        let key = SigningKey::generate("Timing <t@example.org>").unwrap();
        let generated = start.elapsed();
        let signed = key.clearsign(RELEASE).unwrap();
        let total = start.elapsed();
        let keyring_start = Instant::now();
        let keyring = debian_keyring();
        let keyring_load = keyring_start.elapsed();
        let verify_start = Instant::now();
        verify_clearsigned(&keyring, &inrelease()).unwrap();
        let verify = verify_start.elapsed();
        eprintln!(
            "timing: generate {generated:?}, generate+clearsign {total:?} ({} bytes); \
             debian keyring load {keyring_load:?}, InRelease verify {verify:?}",
            signed.len()
        );
    }

    /// Runs gpgv, or explains how to get it. Returns None when skipping.
    fn gpgv(dir: &Path, args: &[&str]) -> Option<(bool, String)> {
        if !Path::new("/usr/bin/gpgv").exists() {
            if std::env::var("MIRRORSYNC_SKIP_GPGV").as_deref() == Ok("1") {
                eprintln!("gpgv cross-check skipped (MIRRORSYNC_SKIP_GPGV=1)");
                return None;
            }
            panic!(
                "/usr/bin/gpgv is missing: install it (apt-get install gpgv) to cross-check \
                 signatures against GnuPG, or set MIRRORSYNC_SKIP_GPGV=1 to skip this test"
            );
        }
        let home = dir.join("gnupghome");
        std::fs::create_dir_all(&home).unwrap();
        let out = Command::new("/usr/bin/gpgv")
            .arg("--homedir")
            .arg(&home)
            .args(["--status-fd", "1"])
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        let log = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Some((out.status.success(), log))
    }

    #[test]
    fn gpgv_accepts_our_signatures() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::generate("Mirrorsync Test <test@example.org>").unwrap();
        let keyring = dir.path().join("k.gpg");
        std::fs::write(&keyring, key.public_key_binary().unwrap()).unwrap();
        let keyring = keyring.to_str().unwrap();
        let text = format!("{RELEASE}-dash line\n");
        std::fs::write(dir.path().join("InRelease"), key.clearsign(&text).unwrap()).unwrap();
        std::fs::write(dir.path().join("Release"), &text).unwrap();
        std::fs::write(
            dir.path().join("Release.gpg"),
            key.sign_detached_armored(text.as_bytes()).unwrap(),
        )
        .unwrap();

        let Some((ok, log)) = gpgv(dir.path(), &["--keyring", keyring, "InRelease"]) else {
            return;
        };
        assert!(ok, "gpgv rejected InRelease:\n{log}");
        assert!(log.contains("Good signature"), "{log}");
        assert!(
            log.contains(&format!("VALIDSIG {}", key.fingerprint())),
            "{log}"
        );

        let (ok, log) = gpgv(
            dir.path(),
            &["--keyring", keyring, "Release.gpg", "Release"],
        )
        .unwrap();
        assert!(ok, "gpgv rejected Release.gpg:\n{log}");
        assert!(log.contains("Good signature"), "{log}");

        // And gpgv agrees that a modified Release is not signed.
        std::fs::write(dir.path().join("Release"), text.replace("Demo", "Dem0")).unwrap();
        let (ok, log) = gpgv(
            dir.path(),
            &["--keyring", keyring, "Release.gpg", "Release"],
        )
        .unwrap();
        assert!(!ok, "gpgv accepted a tampered Release:\n{log}");

        // The armored export imports as a keyring too (gpgv reads binary only).
        let asc = key.public_key_armored().unwrap();
        assert!(asc.starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----\n"));
    }

    #[test]
    fn gpgv_agrees_on_detached_file_signatures() {
        let dir = tempfile::tempdir().unwrap();
        let (path, data) = image_file(dir.path());
        let key = SigningKey::generate("Images <images@example.org>").unwrap();
        let keyring_path = dir.path().join("k.gpg");
        std::fs::write(&keyring_path, key.public_key_binary().unwrap()).unwrap();
        let keyring = Keyring::from_file(&keyring_path).unwrap();
        let armored = key.sign_detached_armored(&data).unwrap();
        let (sig, _) = DetachedSignature::from_string(&armored).unwrap();
        std::fs::write(dir.path().join("image.sig"), sig.to_bytes().unwrap()).unwrap();
        std::fs::write(dir.path().join("image.asc"), &armored).unwrap();
        let image = path.file_name().unwrap().to_str().unwrap();
        let keyring_arg = keyring_path.to_str().unwrap();

        for sig_name in ["image.sig", "image.asc"] {
            let signature = std::fs::read(dir.path().join(sig_name)).unwrap();
            assert_eq!(
                verify_detached_file(&keyring, &path, &signature).unwrap(),
                key.fingerprint()
            );
            let Some((ok, log)) = gpgv(dir.path(), &["--keyring", keyring_arg, sig_name, image])
            else {
                return;
            };
            assert!(ok, "gpgv rejected {sig_name}:\n{log}");
            assert!(
                log.contains(&format!("VALIDSIG {}", key.fingerprint())),
                "{log}"
            );
        }

        // Both refuse the file once a byte changes.
        let mut flipped = data;
        flipped[12345] ^= 0x80;
        std::fs::write(&path, &flipped).unwrap();
        let signature = std::fs::read(dir.path().join("image.sig")).unwrap();
        assert!(verify_detached_file(&keyring, &path, &signature).is_err());
        let (ok, log) = gpgv(dir.path(), &["--keyring", keyring_arg, "image.sig", image]).unwrap();
        assert!(!ok, "gpgv accepted a tampered image:\n{log}");
        assert!(log.contains("BADSIG"), "{log}");
    }
}
