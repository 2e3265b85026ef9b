//! Signing for the demo and test repositories: an ed25519 key whose InRelease and
//! Release.gpg files GnuPG's `gpgv`, `sqv` and so real apt accept.

use pgp::composed::{
    ArmorOptions, CleartextSignedMessage, DetachedSignature, KeyType, SecretKeyParamsBuilder,
    SignedPublicKey, SignedSecretKey,
};
use pgp::crypto::hash::HashAlgorithm;
use pgp::packet::{SignatureConfig, SignatureType, Subpacket, SubpacketData};
use pgp::ser::Serialize;
use pgp::types::{KeyDetails, Password, Timestamp};

/// Why a key or a signature could not be made. The message is the one mirrorsync's
/// `SignatureError::Signing` gave when signing lived there.
#[derive(Debug, thiserror::Error)]
#[error("signing failed: {detail}")]
pub struct SigningError {
    detail: String,
}

/// An ed25519 signing key, generated fresh, for the demo and test repositories.
pub struct SigningKey {
    /// Public so that mirrorsync's verifier tests can make the signatures the methods
    /// here do not (critical notations, key revocations).
    pub secret: SignedSecretKey,
    public: SignedPublicKey,
    /// The digest signatures are made with: SHA-256, or an older one to test a
    /// policy that refuses it.
    hash: HashAlgorithm,
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
    pub fn generate(user_id: &str) -> Result<SigningKey, SigningError> {
        Self::generate_with(user_id, KeyType::Ed25519Legacy)
    }

    /// An RSA-2048 key: what old archives sign with, and a key that can make the
    /// SHA-224 signatures EdDSA refuses to.
    pub fn generate_rsa(user_id: &str) -> Result<SigningKey, SigningError> {
        Self::generate_with(user_id, KeyType::Rsa(2048))
    }

    fn generate_with(user_id: &str, key_type: KeyType) -> Result<SigningKey, SigningError> {
        let signing = |detail: String| SigningError { detail };
        let created = Timestamp::now().as_secs().saturating_sub(KEY_BACKDATE_SECS);
        let mut params = SecretKeyParamsBuilder::default();
        params
            .key_type(key_type)
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
        Ok(SigningKey {
            secret,
            public,
            hash: HashAlgorithm::Sha256,
        })
    }

    /// Signs with SHA-224 from now on: a digest apt's policy refuses for data
    /// signatures since 2026-02-01, unless the mirror accepts `sha224`. Needs an
    /// RSA key ([`SigningKey::generate_rsa`]): EdDSA refuses so short a digest.
    pub fn with_sha224_signatures(mut self) -> SigningKey {
        self.hash = HashAlgorithm::Sha224;
        self
    }

    /// Upper-case hex fingerprint of the key.
    pub fn fingerprint(&self) -> String {
        format!("{:X}", self.public.fingerprint())
    }

    pub fn public_key_armored(&self) -> Result<String, SigningError> {
        self.public
            .to_armored_string(ArmorOptions::default())
            .map_err(signing_error)
    }

    /// A keyring file apt accepts as a `.gpg` (binary, in `signed-by` or
    /// /etc/apt/trusted.gpg.d).
    pub fn public_key_binary(&self) -> Result<Vec<u8>, SigningError> {
        self.public.to_bytes().map_err(signing_error)
    }

    /// Produces an InRelease: `-----BEGIN PGP SIGNED MESSAGE-----`,
    /// `Hash: SHA256`, the dash-escaped text, and the signature. Trailing
    /// spaces and tabs are removed from every line first: the cleartext
    /// framework does not sign them (verifiers strip them before hashing),
    /// and rPGP would otherwise hash them and emit a signature nobody can
    /// verify.
    pub fn clearsign(&self, text: &str) -> Result<String, SigningError> {
        let text = trim_line_ends(text);
        let config = self.signature_config(SignatureType::Text)?;
        let msg = CleartextSignedMessage::new(&text, config, &*self.secret, &Password::empty())
            .map_err(signing_error)?;
        msg.to_armored_string(ArmorOptions::default())
            .map_err(signing_error)
    }

    /// Produces a Release.gpg: a binary-mode (exact bytes) signature, armored.
    pub fn sign_detached_armored(&self, data: &[u8]) -> Result<String, SigningError> {
        let config = self.signature_config(SignatureType::Binary)?;
        let sig = config
            .sign(&*self.secret, &Password::empty(), data)
            .map_err(signing_error)?;
        DetachedSignature::new(sig)
            .to_armored_string(ArmorOptions::default())
            .map_err(signing_error)
    }

    /// SHA-256 (unless told otherwise) with creation time and issuer fingerprint hashed, and the key
    /// id unhashed: the subpackets gpg itself writes, which gpgv needs to pick
    /// the key.
    fn signature_config(&self, typ: SignatureType) -> Result<SignatureConfig, SigningError> {
        let key = &self.secret.primary_key;
        let mut config = SignatureConfig::v4(typ, key.algorithm(), self.hash);
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

fn signing_error(e: pgp::errors::Error) -> SigningError {
    SigningError {
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
