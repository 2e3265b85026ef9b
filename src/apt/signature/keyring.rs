//! Trusted certificates and what each of their keys may sign, judged as `sqv` judges
//! them: a key is usable for a data signature if, at the signature's creation time, it
//! was alive (created, not expired), bound by a self-signature apt's policy accepts,
//! flagged for signing, and not revoked.
//!
//! Self-signatures are checked once per certificate, on first use, and only for
//! certificates a signature names (RSA-4096 for Debian: about a second for the whole
//! Debian keyring in a debug build).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use pgp::composed::{Deserializable, SignedPublicKey, SignedPublicSubKey};
use pgp::packet::{
    PublicKey, PublicSubkey, RevocationCode, Signature, SignatureType, SubpacketData,
};
use pgp::types::{KeyDetails, Tag};

use super::SignatureError;
use super::armor::armor_blocks;
use super::policy::{HashUse, Policy, Refusal};

/// A set of trusted OpenPGP certificates, e.g. `debian-archive-keyring.gpg`, and the
/// policy their signatures are judged by.
pub struct Keyring {
    certs: Vec<SignedPublicKey>,
    components: Vec<OnceLock<Vec<Component>>>,
    pub(super) policy: Policy,
    /// The time the policy's cut-offs are judged at; fixed per keyring so that every
    /// self-signature of one run is judged alike.
    pub(super) now: u64,
}

/// A primary key or subkey, with the self-signatures that bind it.
pub(super) struct Component {
    pub key: ComponentKey,
    pub fingerprint: String,
    pub created: u64,
    /// The policy's verdict on the key's algorithm and size.
    pub algorithm: Result<(), Refusal>,
    /// Bindings whose signature verifies and passes the policy, oldest first.
    pub bindings: Vec<Binding>,
    /// Why verifying bindings were refused by the policy (for the error message when
    /// no binding is left).
    pub refused_bindings: Vec<Refusal>,
    pub revocations: Vec<Revocation>,
    pub is_primary: bool,
}

pub(super) enum ComponentKey {
    Primary(PublicKey),
    Subkey(PublicSubkey),
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Binding {
    pub created: u64,
    /// Absolute expiry of the key under this binding.
    pub expires: Option<u64>,
    pub may_sign: bool,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Revocation {
    pub created: u64,
    /// "Superseded" or "retired" keys made good signatures before; other reasons
    /// (or none) void every signature, as in Sequoia.
    pub soft: bool,
}

impl Keyring {
    /// Reads a keyring file: binary (one or many concatenated transferable public
    /// keys, like /usr/share/keyrings/debian-archive-keyring.gpg) or ASCII-armored
    /// (one or many blocks).
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
        // Like gpgv, a certificate rPGP cannot read is skipped rather than failing
        // the whole keyring: it only makes fewer keys trusted.
        for error in &errors {
            tracing::warn!(keyring = origin, %error, "skipping unreadable OpenPGP certificate");
        }
        let certs = merge_duplicates(parsed);
        Ok(Keyring {
            components: certs.iter().map(|_| OnceLock::new()).collect(),
            certs,
            policy: Policy::apt(),
            now: super::unix_now(),
        })
    }

    /// Judges signatures by `policy` instead of apt's default.
    pub fn with_policy(mut self, policy: Policy) -> Keyring {
        self.policy = policy;
        self.components = self.certs.iter().map(|_| OnceLock::new()).collect();
        self
    }

    /// Judges the policy's cut-offs at `now`.
    #[cfg(test)]
    pub(super) fn at(mut self, now: u64) -> Keyring {
        self.now = now;
        self.components = self.certs.iter().map(|_| OnceLock::new()).collect();
        self
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

    /// The components (primary first) of every certificate with a key `sig` names.
    pub(super) fn candidates<'k>(
        &'k self,
        sig: &'k Signature,
    ) -> impl Iterator<Item = (&'k Component, &'k Component)> + 'k {
        self.certs
            .iter()
            .zip(&self.components)
            .filter(move |(cert, _)| {
                issued_by(sig, &cert.primary_key)
                    || cert.public_subkeys.iter().any(|s| issued_by(sig, &s.key))
            })
            .flat_map(move |(cert, lock)| {
                let components = lock.get_or_init(|| components_of(cert, &self.policy, self.now));
                let primary = &components[0];
                components
                    .iter()
                    .filter(move |c| match &c.key {
                        ComponentKey::Primary(k) => issued_by(sig, k),
                        ComponentKey::Subkey(k) => issued_by(sig, k),
                    })
                    .map(move |c| (primary, c))
            })
    }
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("fingerprints", &self.fingerprints())
            .field("policy", &self.policy)
            .finish()
    }
}

/// One certificate per primary key: a keyring holding the same key twice (an old
/// export and a newer one with its revocation) must count the revocation in any copy.
fn merge_duplicates(parsed: Vec<SignedPublicKey>) -> Vec<SignedPublicKey> {
    let mut out: Vec<SignedPublicKey> = Vec::with_capacity(parsed.len());
    for cert in parsed {
        let Some(into) = out
            .iter_mut()
            .find(|c| c.fingerprint() == cert.fingerprint())
        else {
            out.push(cert);
            continue;
        };
        let details = cert.details;
        into.details
            .revocation_signatures
            .extend(details.revocation_signatures);
        into.details
            .direct_signatures
            .extend(details.direct_signatures);
        into.details.users.extend(details.users);
        into.details.user_attributes.extend(details.user_attributes);
        for sub in cert.public_subkeys {
            match into
                .public_subkeys
                .iter_mut()
                .find(|s| s.key.fingerprint() == sub.key.fingerprint())
            {
                Some(known) => known.signatures.extend(sub.signatures),
                None => into.public_subkeys.push(sub),
            }
        }
    }
    out
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

/// rPGP's `from_armor_many` reads a single armor block, so concatenated exports
/// (`cat a.asc b.asc`) are split here first.
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
            // A private key or a message here is an operator mistake worth stopping
            // for, not something to skip quietly.
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

/// The primary (first) and every subkey of `cert`, with their verified bindings.
fn components_of(cert: &SignedPublicKey, policy: &Policy, now: u64) -> Vec<Component> {
    let primary = &cert.primary_key;
    let details = &cert.details;
    let mut refused = Vec::new();
    let mut accept = |sig: &Signature| match policy.signature(sig, HashUse::SelfSignature, now) {
        Ok(()) => true,
        Err(r) => {
            refused.push(r);
            false
        }
    };
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
    let primary_created = u64::from(primary.created_at().as_secs());
    let mut bindings: Vec<Binding> = direct
        .chain(certifications)
        .filter(|sig| accept(sig))
        .map(|sig| binding(primary_created, sig))
        .collect();
    bindings.sort_by_key(|b| b.created);
    let revocations = details
        .revocation_signatures
        .iter()
        .filter(|sig| {
            sig.typ() == Some(SignatureType::KeyRevocation) && sig.verify_key(primary).is_ok()
        })
        .map(revocation)
        .collect();
    let mut out = vec![Component {
        key: ComponentKey::Primary(primary.clone()),
        fingerprint: format!("{:X}", primary.fingerprint()),
        created: primary_created,
        algorithm: policy.key(primary, now),
        bindings,
        refused_bindings: refused,
        revocations,
        is_primary: true,
    }];
    out.extend(
        cert.public_subkeys
            .iter()
            .map(|sub| subkey_component(primary, sub, policy, now)),
    );
    out
}

fn subkey_component(
    primary: &PublicKey,
    sub: &SignedPublicSubKey,
    policy: &Policy,
    now: u64,
) -> Component {
    let key = &sub.key;
    let created = u64::from(key.created_at().as_secs());
    let revocations = sub
        .signatures
        .iter()
        .filter(|sig| {
            sig.typ() == Some(SignatureType::SubkeyRevocation)
                && sig.verify_subkey_binding(primary, key).is_ok()
        })
        .map(revocation)
        .collect();
    let mut refused = Vec::new();
    let mut bindings = Vec::new();
    for sig in sub.signatures.iter().filter(|sig| {
        sig.typ() == Some(SignatureType::SubkeyBinding)
            && sig.verify_subkey_binding(primary, key).is_ok()
    }) {
        if let Err(r) = policy.signature(sig, HashUse::SelfSignature, now) {
            refused.push(r);
            continue;
        }
        let mut b = binding(created, sig);
        if b.may_sign {
            // Without the subkey's back-signature anyone could bind our signing
            // subkey to their own primary; gpg and Sequoia refuse such subkeys.
            let backsig = sig.embedded_signature().filter(|back| {
                back.verify_primary_key_binding(key, primary).is_ok()
                    && match policy.signature(back, HashUse::SelfSignature, now) {
                        Ok(()) => true,
                        Err(r) => {
                            refused.push(r);
                            false
                        }
                    }
            });
            b.may_sign = backsig.is_some();
        }
        bindings.push(b);
    }
    bindings.sort_by_key(|b| b.created);
    Component {
        key: ComponentKey::Subkey(key.clone()),
        fingerprint: format!("{:X}", key.fingerprint()),
        created,
        algorithm: policy.key(key, now),
        bindings,
        refused_bindings: refused,
        revocations,
        is_primary: false,
    }
}

fn binding(key_created: u64, sig: &Signature) -> Binding {
    Binding {
        created: created(sig),
        expires: expiry(key_created, sig),
        may_sign: may_sign(sig),
    }
}

fn revocation(sig: &Signature) -> Revocation {
    Revocation {
        created: created(sig),
        soft: matches!(
            sig.revocation_reason_code(),
            Some(RevocationCode::KeySuperseded | RevocationCode::KeyRetired)
        ),
    }
}

pub(super) fn created(sig: &Signature) -> u64 {
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

/// An absent key-flags subpacket predates flags and leaves usage to the algorithm
/// (old keys); a present one must grant signing.
fn may_sign(self_sig: &Signature) -> bool {
    let has_flags = self_sig.config().is_some_and(|c| {
        c.hashed_subpackets()
            .any(|p| matches!(p.data, SubpacketData::KeyFlags(_)))
    });
    !has_flags || self_sig.key_flags().sign()
}

pub(super) fn issued_by(sig: &Signature, key: &impl KeyDetails) -> bool {
    let ids = sig.issuer_key_id();
    let fps = sig.issuer_fingerprint();
    (ids.is_empty() && fps.is_empty())
        || ids.iter().any(|id| **id == key.legacy_key_id())
        || fps.iter().any(|fp| **fp == key.fingerprint())
}

impl Component {
    /// The binding in force at `t`: the newest made at or before it.
    pub fn binding_at(&self, t: u64) -> Option<&Binding> {
        self.bindings.iter().rev().find(|b| b.created <= t)
    }

    /// Whether a revocation voids a signature made at `t`.
    pub fn revoked_at(&self, t: u64) -> bool {
        self.revocations.iter().any(|r| !r.soft || r.created <= t)
    }
}
