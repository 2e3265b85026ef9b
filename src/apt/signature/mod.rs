//! OpenPGP verification of apt repository metadata, judged as apt judges it.
//!
//! An apt repository is trusted through exactly one signed file per suite: `InRelease`
//! (clear-signed) or `Release` + `Release.gpg` (detached). This module answers one
//! question for the rest of the crate: "which bytes did a key from this keyring vouch
//! for, under apt's policy?". `release.rs` parses only the text handed back in
//! [`Verified::text`], never the raw download, so nothing outside the signed part can
//! reach a parser.
//!
//! - `cleartext` splits InRelease and checks Release.gpg rule for rule as apt does, so
//!   a file apt refuses is refused here too, with its line.
//! - `policy` is apt's crypto policy (Sequoia's `StandardPolicy` with apt's cut-offs,
//!   as `sqv` applies it); `keyring` judges each key's self-signatures by it and says
//!   which key could sign at a signature's time.
//! - This file checks the signatures themselves: a bounded number per file, each
//!   digest computed once per hash algorithm and signature type, so a hostile file
//!   cannot make a Raspberry Pi hash the same gigabytes over and over.
//! - Signatures for the demo and test repositories are made by the testkit crate's
//!   `SigningKey` (crates/testkit).
//!
//! rPGP (the `pgp` crate, MIT/Apache-2.0, pure Rust) supplies parsing and the
//! cryptography; the policy on top is ours, cross-checked against `sqv` and `gpgv`.

mod armor;
pub mod cleartext;
#[cfg(test)]
mod crosscheck;
mod keyring;
pub mod policy;

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use pgp::composed::{Deserializable, DetachedSignature};
use pgp::crypto::hash::HashAlgorithm;
use pgp::line_writer::LineBreak;
use pgp::normalize_lines::NormalizedReader;
use pgp::packet::{Signature, SignatureType, SignatureVersionSpecific};
use pgp::types::{KeyDetails, KeyVersion, VerifyingKey};
use sha2::digest::DynDigest;

pub use cleartext::SplitError;
pub use keyring::Keyring;
use keyring::{Component, ComponentKey};
use policy::HashUse;
pub use policy::{Policy, Weakness};

/// The most signatures one file may carry. apt needs one good signature; Debian signs
/// with two or three keys. More is only ever an attempt to make the verifier work.
pub const MAX_SIGNATURES: usize = 16;

/// The most bytes of signatures one file may carry, checked before any is parsed: a
/// parser builds an object per subpacket, and one hostile v6 signature of 16 MB makes
/// hundreds of MB of them. Debian's two RSA-4096 signatures take under 3 KB armored.
pub const MAX_SIGNATURE_BYTES: usize = 64 * 1024;

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
    /// A file apt would refuse before verifying it.
    #[error(transparent)]
    Split(#[from] SplitError),
    #[error("not an OpenPGP signature: {detail}")]
    Malformed { detail: String },
    #[error("more than {MAX_SIGNATURES} signatures in one file; refusing to check them")]
    TooManySignatures,
    #[error(
        "{size} bytes of signatures, more than the {MAX_SIGNATURE_BYTES} any real signer needs; refusing to parse them"
    )]
    SignatureTooLarge { size: usize },
    /// `signers` names the issuers the signatures claim (fingerprints where the
    /// signature carries one, else 64-bit key ids), upper-case hex, comma separated,
    /// or `none`: it is what an operator needs to find the missing key.
    #[error("no valid signature by a key in the keyring (signed by: {signers})")]
    NoValidSignature { signers: String },
    /// Signatures by keys in the keyring, each refused for the reason given.
    #[error("no valid signature: {}", reasons.join("; "))]
    Rejected { reasons: Vec<String> },
    /// Reading the file a detached signature covers ([`verify_detached_file`]).
    #[error("reading signed file {path}")]
    ReadSigned {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What a valid signature vouches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The signed content. For Release + Release.gpg, the Release as given. For an
    /// InRelease, the message apt splits off (dash-escapes removed, trailing spaces
    /// and tabs cut from each line, LF line ends) with a newline after its last line,
    /// as in the text apt extracts: for Debian's InRelease byte for byte its Release.
    pub text: String,
    /// Upper-case hex fingerprint of the key (or subkey) that verified.
    pub signer: String,
}

/// The text of an InRelease or Release that no keyring checks (`check_signature =
/// false`): an InRelease is split exactly as for verification, so the same bytes are
/// read either way; anything else is taken as a plain Release.
pub fn unsigned_text(bytes: &[u8]) -> Result<String, SignatureError> {
    match cleartext::split(bytes) {
        Ok(split) => Ok(split.text()),
        Err(SplitError::NotClearSigned) => {
            String::from_utf8(bytes.to_vec()).map_err(|e| SignatureError::Malformed {
                detail: format!("the Release is not UTF-8 text ({})", e.utf8_error()),
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// Verifies an InRelease (clear-signed) file. Succeeds if ANY of its signatures is a
/// valid one by a primary key or signing subkey in the keyring (Debian signs InRelease
/// with several keys; only some may be in a given keyring; Debian uses subkeys).
pub fn verify_clearsigned(keyring: &Keyring, message: &[u8]) -> Result<Verified, SignatureError> {
    verify_clearsigned_at(keyring, message, now(keyring))
}

fn verify_clearsigned_at(
    keyring: &Keyring,
    message: &[u8],
    now: u64,
) -> Result<Verified, SignatureError> {
    let split = cleartext::split(message)?;
    let signatures = parse_signatures(split.signature.as_bytes())?;
    let signer = check_signatures(
        keyring,
        &signatures,
        &SignedData::Bytes(split.message.as_bytes()),
        now,
    )?;
    Ok(Verified {
        text: split.text(),
        signer,
    })
}

/// Verifies Release + Release.gpg. The signature file must be what apt reads: one or
/// more ASCII-armored signature blocks and nothing else.
pub fn verify_detached(
    keyring: &Keyring,
    data: &[u8],
    signature: &[u8],
) -> Result<Verified, SignatureError> {
    verify_detached_at(keyring, data, signature, now(keyring))
}

fn verify_detached_at(
    keyring: &Keyring,
    data: &[u8],
    signature: &[u8],
    now: u64,
) -> Result<Verified, SignatureError> {
    cleartext::check_detached(signature)?;
    let signatures = parse_signatures(signature)?;
    let signer = check_signatures(keyring, &signatures, &SignedData::Bytes(data), now)?;
    let text = String::from_utf8(data.to_vec()).map_err(|e| SignatureError::Malformed {
        detail: format!("signed data is not UTF-8 text ({})", e.utf8_error()),
    })?;
    Ok(Verified { text, signer })
}

/// Verifies a detached signature (armored or binary, as gpgv reads it) over the file
/// at `path`, reading it as a stream rather than into memory: images are several GB
/// and a Raspberry Pi has little RAM. The policy is that of [`verify_detached`].
/// Returns the upper-case hex fingerprint of the key (or subkey) that verified.
///
/// The file is opened once and read once per signature type (binary or text) among
/// the signatures that could verify. The verdict is about what was read: the caller
/// must keep the file from changing afterwards (e.g. verify it where only this
/// process writes).
pub fn verify_detached_file(
    keyring: &Keyring,
    path: &Path,
    signature: &[u8],
) -> Result<String, SignatureError> {
    verify_detached_file_at(keyring, path, signature, now(keyring))
}

fn verify_detached_file_at(
    keyring: &Keyring,
    path: &Path,
    signature: &[u8],
    now: u64,
) -> Result<String, SignatureError> {
    let signatures = parse_signatures(signature)?;
    // Opened before any check, so that a missing file is reported as such even when
    // no key in the keyring could have made the signature.
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

pub(super) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The time a signature is judged at: the clock, or the keyring's own reference time
/// when a test set one in the future.
fn now(keyring: &Keyring) -> u64 {
    unix_now().max(keyring.now)
}

/// Signature packets of a detached signature (armored blocks or binary), at most
/// [`MAX_SIGNATURES`] of them.
fn parse_signatures(bytes: &[u8]) -> Result<Vec<Signature>, SignatureError> {
    if bytes.len() > MAX_SIGNATURE_BYTES {
        return Err(SignatureError::SignatureTooLarge { size: bytes.len() });
    }
    let malformed = |detail: String| SignatureError::Malformed { detail };
    let mut out = Vec::new();
    let mut collect = |iter: Box<dyn Iterator<Item = pgp::errors::Result<DetachedSignature>>>| {
        for item in iter {
            if out.len() == MAX_SIGNATURES {
                return Err(SignatureError::TooManySignatures);
            }
            out.push(item.map_err(|e| malformed(e.to_string()))?.signature);
        }
        Ok(())
    };
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        None => return Err(malformed("empty".to_string())),
        Some(first) if first & 0x80 != 0 => {
            collect(
                DetachedSignature::from_bytes_many(bytes).map_err(|e| malformed(e.to_string()))?,
            )?;
        }
        Some(_) => {
            let text = std::str::from_utf8(bytes)
                .map_err(|_| malformed("neither binary nor ASCII armor".to_string()))?;
            let blocks = armor::armor_blocks(text);
            if blocks.is_empty() {
                return Err(malformed("no ASCII-armor block found".to_string()));
            }
            if blocks.len() > MAX_SIGNATURES {
                return Err(SignatureError::TooManySignatures);
            }
            for (kind, block) in blocks {
                if kind != "SIGNATURE" {
                    return Err(malformed(format!(
                        "found a PGP {kind}, expected PGP SIGNATURE"
                    )));
                }
                let (iter, _headers) = DetachedSignature::from_armor_many(block.as_bytes())
                    .map_err(|e| malformed(e.to_string()))?;
                collect(iter)?;
            }
        }
    }
    if out.is_empty() {
        return Err(malformed("no signature packet".to_string()));
    }
    Ok(out)
}

/// Returns the fingerprint of the first key that makes one of `signatures` valid over
/// `data`. Everything that needs no data is judged first; the data is then hashed
/// once for each hash algorithm and signature type the remaining signatures use.
fn check_signatures(
    keyring: &Keyring,
    signatures: &[Signature],
    data: &SignedData<'_>,
    now: u64,
) -> Result<String, SignatureError> {
    let mut reasons = Vec::new();
    let mut pending = Vec::new();
    for sig in signatures {
        for (primary, component) in keyring.candidates(sig) {
            match usable(keyring, sig, primary, component, now) {
                Ok(()) => pending.push((sig, component)),
                Err(reason) => reasons.push(reason),
            }
        }
    }
    if !pending.is_empty() {
        let digests = Digests::of(&pending, data)?;
        for (sig, component) in &pending {
            if digests.verifies(sig, component) {
                return Ok(component.fingerprint.clone());
            }
            reasons.push(format!(
                "the signature by {} does not match the signed data",
                component.fingerprint
            ));
        }
    }
    if reasons.is_empty() {
        return Err(SignatureError::NoValidSignature {
            signers: describe_issuers(signatures),
        });
    }
    reasons.dedup();
    // A hostile file could name every key for every signature: say the first few.
    const SHOWN: usize = 4;
    if reasons.len() > SHOWN {
        let more = reasons.len() - SHOWN;
        reasons.truncate(SHOWN);
        reasons.push(format!("and {more} more"));
    }
    Err(SignatureError::Rejected { reasons })
}

fn date(t: u64) -> String {
    i64::try_from(t)
        .ok()
        .and_then(|t| jiff::Timestamp::from_second(t).ok())
        .map_or_else(
            || t.to_string(),
            |t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
        )
}

/// Whether `sig` by `component` (of the certificate whose primary is `primary`) can
/// be a valid data signature, judged without the data.
fn usable(
    keyring: &Keyring,
    sig: &Signature,
    primary: &Component,
    component: &Component,
    now: u64,
) -> Result<(), String> {
    let fp = &component.fingerprint;
    if !matches!(sig.typ(), Some(SignatureType::Binary | SignatureType::Text)) {
        return Err(format!(
            "the signature by {fp} is not a signature over data"
        ));
    }
    // Judged before any hashing: a signature that names no issuer matches every key,
    // and one this key could never have made must not cost a pass over the data.
    if !could_have_made(component, sig) {
        return Err(format!(
            "the signature naming {fp} is of another version or algorithm than that key"
        ));
    }
    keyring
        .policy
        .signature(sig, HashUse::Data, keyring.now)
        .map_err(|r| format!("the signature by {fp} uses {r}"))?;
    let Some(t) = sig.created().map(|t| u64::from(t.as_secs())) else {
        return Err(format!("the signature by {fp} carries no creation time"));
    };
    if t > now {
        return Err(format!(
            "the signature by {fp} is dated in the future ({})",
            date(t)
        ));
    }
    if let Some(secs) = sig
        .signature_expiration_time()
        .map(|d| u64::from(d.as_secs()))
        && secs > 0
        && t + secs <= now
    {
        return Err(format!(
            "the signature by {fp} expired on {}",
            date(t + secs)
        ));
    }
    alive_at(primary, primary, t)?;
    if !component.is_primary {
        alive_at(primary, component, t)?;
    }
    let binding = component
        .binding_at(t)
        .ok_or_else(|| no_binding(component, t))?;
    if !binding.may_sign {
        return Err(format!(
            "{fp} may not make data signatures (its key flags, or no back-signature)"
        ));
    }
    Ok(())
}

/// A v6 signature comes only from a v6 key and a v3/v4 one only from an older key,
/// and a signature names the public-key algorithm of the key that made it.
fn could_have_made(c: &Component, sig: &Signature) -> bool {
    let (version, algorithm) = match &c.key {
        ComponentKey::Primary(k) => (k.version(), k.algorithm()),
        ComponentKey::Subkey(k) => (k.version(), k.algorithm()),
    };
    let v6_signature = matches!(sig.version(), pgp::packet::SignatureVersion::V6);
    (version == KeyVersion::V6) == v6_signature
        && sig.config().is_some_and(|c| c.pub_alg == algorithm)
}

/// Whether `c` was a valid key at `t`: an acceptable algorithm, bound, created, not
/// expired and not revoked.
fn alive_at(primary: &Component, c: &Component, t: u64) -> Result<(), String> {
    let fp = &c.fingerprint;
    c.algorithm.clone().map_err(|r| format!("{fp} is {r}"))?;
    let binding = c.binding_at(t).ok_or_else(|| no_binding(c, t))?;
    if c.revoked_at(t) {
        return Err(if c.is_primary || std::ptr::eq(primary, c) {
            format!("signed by {fp}, which is revoked")
        } else {
            format!(
                "signed by {fp}, a revoked subkey of {}",
                primary.fingerprint
            )
        });
    }
    if t < c.created {
        return Err(format!(
            "signed by {fp} before the key was created ({})",
            date(c.created)
        ));
    }
    if let Some(expired) = binding.expires.filter(|&e| e <= t) {
        return Err(format!(
            "signed by {fp}, which expired on {}",
            date(expired)
        ));
    }
    Ok(())
}

fn no_binding(c: &Component, t: u64) -> String {
    let fp = &c.fingerprint;
    if let Some(first) = c.bindings.first() {
        return format!(
            "signed by {fp} on {}, before its key was bound ({})",
            date(t),
            date(first.created)
        );
    }
    match c.refused_bindings.first() {
        Some(r) => format!("{fp} has no self-signature apt's policy accepts: it uses {r}"),
        None => format!("{fp} has no valid self-signature"),
    }
}

/// The bytes a signature covers, readable once per signature type.
enum SignedData<'a> {
    Bytes(&'a [u8]),
    /// Read from the start for each pass; one open file, so every pass sees the same
    /// inode even if the path is replaced meanwhile.
    File {
        path: &'a Path,
        file: &'a File,
    },
}

/// Read size for a signed file: fewer, larger reads help a slow SD card or USB disk.
const READ_BUFFER: usize = 256 * 1024;

/// What one digest is computed over: text signatures hash CRLF-normalised data, and a
/// v6 signature's salt comes first.
#[derive(PartialEq, Eq)]
struct DigestKind {
    hash: HashAlgorithm,
    text: bool,
    salt: Option<Vec<u8>>,
}

fn digest_kind(sig: &Signature) -> Option<DigestKind> {
    let config = sig.config()?;
    let salt = match &config.version_specific {
        SignatureVersionSpecific::V6 { salt } => Some(salt.to_vec()),
        _ => None,
    };
    Some(DigestKind {
        hash: config.hash_alg,
        text: config.typ == SignatureType::Text,
        salt,
    })
}

type Hasher = Box<dyn DynDigest>;

/// Collects the bytes rPGP hashes after the data (the signature's own fields and
/// trailer), so they can be added to a copy of the data's digest state.
#[derive(Clone, Default)]
struct Recorder(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl DynDigest for Recorder {
    fn update(&mut self, data: &[u8]) {
        if let Ok(mut bytes) = self.0.lock() {
            bytes.extend_from_slice(data);
        }
    }
    fn finalize_into(self, _: &mut [u8]) -> Result<(), sha2::digest::InvalidBufferSize> {
        Err(sha2::digest::InvalidBufferSize)
    }
    fn finalize_into_reset(&mut self, _: &mut [u8]) -> Result<(), sha2::digest::InvalidBufferSize> {
        Err(sha2::digest::InvalidBufferSize)
    }
    fn reset(&mut self) {}
    fn output_size(&self) -> usize {
        0
    }
    fn box_clone(&self) -> Box<dyn DynDigest> {
        Box::new(self.clone())
    }
}

/// The bytes rPGP hashes for `config` after the signed data.
fn signature_fields(config: &pgp::packet::SignatureConfig) -> Option<Vec<u8>> {
    let recorder = Recorder::default();
    let mut boxed: Box<dyn DynDigest + Send> = Box::new(recorder.clone());
    let len = config.hash_signature_data(&mut boxed).ok()?;
    let trailer = config.trailer(len).ok()?;
    let mut bytes = recorder.0.lock().ok()?.clone();
    bytes.extend_from_slice(&trailer);
    Some(bytes)
}

/// The data's digest state for each kind of digest the pending signatures need.
struct Digests {
    states: Vec<(DigestKind, Hasher)>,
}

impl Digests {
    fn of(
        pending: &[(&Signature, &Component)],
        data: &SignedData<'_>,
    ) -> Result<Digests, SignatureError> {
        let mut states: Vec<(DigestKind, Hasher)> = Vec::new();
        for (sig, _) in pending {
            let Some(kind) = digest_kind(sig) else {
                continue;
            };
            if states.iter().any(|(k, _)| *k == kind) {
                continue;
            }
            let Ok(hasher) = kind.hash.new_hasher() else {
                continue;
            };
            let mut hasher: Hasher = hasher;
            if let Some(salt) = &kind.salt {
                hasher.update(salt);
            }
            states.push((kind, hasher));
        }
        for text in [false, true] {
            let mut wanted: Vec<&mut Hasher> = states
                .iter_mut()
                .filter(|(k, _)| k.text == text)
                .map(|(_, h)| h)
                .collect();
            if !wanted.is_empty() {
                feed(data, text, &mut wanted)?;
            }
        }
        Ok(Digests { states })
    }

    /// Whether `sig` is a valid signature by `component` over the hashed data.
    fn verifies(&self, sig: &Signature, component: &Component) -> bool {
        let (Some(kind), Some(config), Some(expected), Some(bytes)) = (
            digest_kind(sig),
            sig.config(),
            sig.signed_hash_value(),
            sig.signature(),
        ) else {
            return false;
        };
        let Some((_, state)) = self.states.iter().find(|(k, _)| *k == kind) else {
            return false;
        };
        let Some(fields) = signature_fields(config) else {
            return false;
        };
        let mut hasher = state.box_clone();
        hasher.update(&fields);
        let digest = hasher.finalize();
        if digest.get(..2) != Some(&expected[..]) {
            return false;
        }
        let v6_signature = kind.salt.is_some();
        match &component.key {
            ComponentKey::Primary(k) => {
                (k.version() == KeyVersion::V6) == v6_signature
                    && k.verify(config.hash_alg, &digest, bytes).is_ok()
            }
            ComponentKey::Subkey(k) => {
                (k.version() == KeyVersion::V6) == v6_signature
                    && k.verify(config.hash_alg, &digest, bytes).is_ok()
            }
        }
    }
}

/// Streams the data once into every hasher of one signature type.
fn feed(
    data: &SignedData<'_>,
    text: bool,
    hashers: &mut [&mut Hasher],
) -> Result<(), SignatureError> {
    let mut update = |chunk: &[u8]| {
        for h in hashers.iter_mut() {
            h.update(chunk);
        }
    };
    match data {
        SignedData::Bytes(bytes) if !text => {
            update(bytes);
            Ok(())
        }
        SignedData::Bytes(bytes) => {
            pump(NormalizedReader::new(*bytes, LineBreak::Crlf), &mut update).map_err(|e| {
                SignatureError::Malformed {
                    detail: e.to_string(),
                }
            })
        }
        SignedData::File { path, file } => {
            let read_error = |source| SignatureError::ReadSigned {
                path: path.to_path_buf(),
                source,
            };
            let mut file: &File = file;
            file.seek(SeekFrom::Start(0)).map_err(read_error)?;
            let reader = BufReader::with_capacity(READ_BUFFER, file);
            if text {
                pump(NormalizedReader::new(reader, LineBreak::Crlf), &mut update)
            } else {
                pump(reader, &mut update)
            }
            .map_err(read_error)
        }
    }
}

fn pump(mut reader: impl Read, update: &mut impl FnMut(&[u8])) -> std::io::Result<()> {
    let mut buf = vec![0u8; READ_BUFFER];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use mirrorsync_testkit::SigningKey;
    use pgp::composed::{ArmorOptions, KeyType, SecretKeyParamsBuilder, SignedSecretKey};
    use pgp::packet::{SignatureConfig, Subpacket, SubpacketData};
    use pgp::ser::Serialize;
    use pgp::types::{Password, Timestamp};
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

    /// No signature in `err` was good: unknown signers, or known ones refused.
    fn refused(err: &SignatureError) -> bool {
        matches!(
            err,
            SignatureError::NoValidSignature { .. } | SignatureError::Rejected { .. }
        )
    }

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
            err.to_string().contains("does not match the signed data"),
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
    fn keys_are_judged_at_the_signatures_time_as_sqv_judges_them() {
        // 2026-11-24 02:13:20 UTC, seconds after Debian signed the stored file.
        let just_after_signing = 1_795_486_400;
        let keyring = debian_keyring().at(just_after_signing);
        let verified = verify_clearsigned_at(&keyring, &inrelease(), just_after_signing).unwrap();
        assert_eq!(verified.signer, BOOKWORM_SUBKEY);
        // 2036: both keys have expired since, but they were valid when they signed;
        // sqv (and so apt on trixie) accepts the signature, and so do we.
        let verified = verify_clearsigned_at(&keyring, &inrelease(), 2_085_000_000).unwrap();
        assert_eq!(verified.signer, BOOKWORM_SUBKEY);
        // Before the signature was made it is "dated in the future".
        let err = verify_clearsigned_at(&keyring, &inrelease(), 1_700_000_000).unwrap_err();
        assert!(err.to_string().contains("dated in the future"), "{err}");
    }

    #[test]
    fn text_around_the_signed_block_is_refused_as_apt_refuses_it() {
        let raw = String::from_utf8(inrelease()).unwrap();
        let keyring = debian_keyring();
        let wrapped = format!("Origin: Evil\nSuite: evil\n\n{raw}");
        let err = verify_clearsigned(&keyring, wrapped.as_bytes()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 1: text before the \"-----BEGIN PGP SIGNED MESSAGE-----\" line"
        );
        let trailing = format!("{raw}\nSuite: also-evil\n");
        let err = verify_clearsigned(&keyring, trailing.as_bytes()).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("unsigned text after the signature"),
            "{err}"
        );
        let doubled = format!("{raw}{raw}");
        let err = verify_clearsigned(&keyring, doubled.as_bytes()).unwrap_err();
        assert!(matches!(err, SignatureError::Split(_)), "{err}");
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
            assert!(matches!(err, SignatureError::Split(_)), "{err}");
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
        DetachedSignature::new(sig)
            .to_armored_bytes(ArmorOptions::default())
            .unwrap()
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
        assert!(refused(&err));
        let by_primary = detached_by(&secret.primary_key, data);
        let err = verify_detached(&keyring, data, &by_primary).unwrap_err();
        assert!(refused(&err));
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
            assert_eq!(
                err.to_string(),
                format!(
                    "no valid signature: the signature by {} does not match the signed data",
                    key.fingerprint()
                )
            );
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
        assert!(refused(&err), "{err}");
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
        DetachedSignature::new(sig)
            .to_armored_bytes(ArmorOptions::default())
            .unwrap()
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
                        assert!(refused(&err), "{what}: {err}");
                    }
                }
            }
        }
    }

    /// Sequoia's standard policy (and so apt's sqv) refuses a signature carrying a
    /// critical notation or a critical subpacket it does not know; a non-critical
    /// one is ignored.
    #[test]
    fn critical_notations_and_unknown_critical_subpackets_are_refused() {
        use pgp::packet::Notation;
        let key = SigningKey::generate("Crit <crit@example.org>").unwrap();
        let keyring = Keyring::from_bytes(&key.public_key_binary().unwrap(), "c").unwrap();
        let data = RELEASE.as_bytes();
        let notation = |critical: bool| {
            let n = SubpacketData::Notation(Notation {
                readable: true,
                name: "policy@example.org".into(),
                value: "strict".into(),
            });
            if critical {
                Subpacket::critical(n).unwrap()
            } else {
                Subpacket::regular(n).unwrap()
            }
        };
        let sign = |extra| detached_with(&*key.secret, data, HashAlgorithm::Sha256, extra);
        verify_detached(&keyring, data, &sign(vec![notation(false)])).unwrap();
        let err = verify_detached(&keyring, data, &sign(vec![notation(true)])).unwrap_err();
        assert!(
            err.to_string()
                .contains("critical notation \"policy@example.org\""),
            "{err}"
        );
        // A private-use type (rPGP will not even make one of an unknown type).
        let private = Subpacket::critical(SubpacketData::Experimental(101, vec![1, 2].into()));
        let err = verify_detached(&keyring, data, &sign(vec![private.unwrap()])).unwrap_err();
        assert!(
            err.to_string().contains("critical subpacket of type 101"),
            "{err}"
        );
    }

    #[test]
    fn a_duplicate_certificate_with_a_revocation_in_one_copy_is_revoked() {
        use pgp::packet::{RevocationCode, SignatureConfig};
        let key = SigningKey::generate("Dup <dup@example.org>").unwrap();
        let data = RELEASE.as_bytes();
        let sig = key.sign_detached_armored(data).unwrap();
        let plain = key.public_key_binary().unwrap();
        // A copy of the certificate that also carries a key revocation.
        let secret = &key.secret;
        let mut config = SignatureConfig::v4(
            SignatureType::KeyRevocation,
            secret.primary_key.algorithm(),
            HashAlgorithm::Sha256,
        );
        config.hashed_subpackets = vec![
            Subpacket::regular(SubpacketData::SignatureCreationTime(Timestamp::now())).unwrap(),
            Subpacket::regular(SubpacketData::IssuerFingerprint(
                secret.primary_key.fingerprint(),
            ))
            .unwrap(),
            Subpacket::regular(SubpacketData::RevocationReason(
                RevocationCode::KeyCompromised,
                "leaked".into(),
            ))
            .unwrap(),
        ];
        let revocation = config
            .sign_key(
                &secret.primary_key,
                &Password::empty(),
                secret.primary_key.public_key(),
            )
            .unwrap();
        let mut revoked = secret.to_public_key();
        revoked.details.revocation_signatures.push(revocation);
        let revoked = revoked.to_bytes().unwrap();

        let keyring = Keyring::from_bytes(&plain, "plain").unwrap();
        verify_detached(&keyring, data, sig.as_bytes()).unwrap();
        for both in [[&plain[..], &revoked[..]], [&revoked[..], &plain[..]]] {
            let keyring = Keyring::from_bytes(&both.concat(), "both").unwrap();
            assert_eq!(keyring.len(), 1, "one certificate, merged");
            let err = verify_detached(&keyring, data, sig.as_bytes()).unwrap_err();
            assert!(err.to_string().contains("which is revoked"), "{err}");
        }
    }

    /// Parsing is bounded before it starts: a signature part larger than any real
    /// signer needs is refused without being parsed, in every kind of file.
    #[test]
    fn oversized_signature_parts_are_refused_unparsed() {
        let key = SigningKey::generate("Big <big@example.org>").unwrap();
        let keyring = Keyring::from_bytes(&key.public_key_binary().unwrap(), "b").unwrap();
        let sig = key.sign_detached_armored(RELEASE.as_bytes()).unwrap();
        let many = sig.repeat(MAX_SIGNATURE_BYTES / sig.len() + 1);
        let err = verify_detached(&keyring, RELEASE.as_bytes(), many.as_bytes()).unwrap_err();
        assert!(
            matches!(err, SignatureError::SignatureTooLarge { size } if size == many.len()),
            "{err}"
        );
        let signed = key.clearsign(RELEASE).unwrap();
        let block = &signed[signed.find("-----BEGIN PGP SIGNATURE-----").unwrap()..];
        let padded = format!(
            "{signed}{}",
            block.repeat(MAX_SIGNATURE_BYTES / block.len() + 1)
        );
        let err = verify_clearsigned(&keyring, padded.as_bytes()).unwrap_err();
        assert!(
            matches!(err, SignatureError::SignatureTooLarge { .. }),
            "{err}"
        );
        // Well inside the bound: the most signatures a file may carry still verify.
        let at_cap = format!("{signed}{}", block.repeat(MAX_SIGNATURES - 1));
        verify_clearsigned(&keyring, at_cap.as_bytes()).unwrap();
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
        assert!(refused(&err));
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
        assert!(refused(&err));
        // Binary mode: line-ending changes are tampering too.
        let crlf = RELEASE.replace('\n', "\r\n");
        assert!(verify_detached(&keyring, crlf.as_bytes(), sig.as_bytes()).is_err());

        let err = verify_detached(&keyring, RELEASE.as_bytes(), b"not a signature").unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 1: no \"-----BEGIN PGP SIGNATURE-----\" block"
        );
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

        // One binary stream of two packets, as `gpg -u a -u b --detach-sign`: gpgv
        // reads it for an image, apt refuses it as a Release.gpg.
        let mut binary = Vec::new();
        for armored in [&sig_a, &sig_b] {
            let (sig, _) = DetachedSignature::from_string(armored).unwrap();
            binary.extend(sig.to_bytes().unwrap());
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("Release");
        std::fs::write(&file, data).unwrap();
        let signer = verify_detached_file(&keyring, &file, &binary).unwrap();
        assert_eq!(signer, trusted.fingerprint());
        let err = verify_detached(&keyring, data, &binary).unwrap_err();
        assert!(matches!(err, SignatureError::Split(_)), "{err}");

        let third = SigningKey::generate("Third <3@example.org>").unwrap();
        let only_third = Keyring::from_bytes(&third.public_key_binary().unwrap(), "3");
        let err = verify_detached(&only_third.unwrap(), data, both.as_bytes()).unwrap_err();
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
