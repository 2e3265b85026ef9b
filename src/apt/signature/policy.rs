//! apt's OpenPGP policy: what Sequoia's `StandardPolicy` refuses, with the cut-offs of
//! apt's own policy file (`/usr/share/apt/default-sequoia.config`, which `sqv` applies
//! for apt on Debian 13 and Raspberry Pi OS trixie).
//!
//! Every cut-off is judged against the time of the check, as `sqv` judges it: a SHA-1
//! self-signature made in 2015 is refused today because SHA-1 is refused today. A
//! mirror whose upstream still depends on one of these weaknesses can name it in
//! `allow_weak_signatures`; nothing is allowed by default.

use std::collections::BTreeSet;
use std::fmt;

use pgp::crypto::ecc_curve::ECCCurve;
use pgp::crypto::hash::HashAlgorithm;
use pgp::packet::{Signature, SignatureVersion, SubpacketData};
use pgp::ser::Serialize;
use pgp::types::{EcdsaPublicParams, KeyDetails, PublicParams};

/// A weakness an operator may accept for one mirror, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Weakness {
    /// RSA keys under 2048 bits (refused since 2014-02-01).
    Rsa1024,
    /// DSA keys of any size (refused by apt since 2024-02-01).
    Dsa,
    /// SHA-1 in self-signatures and subkey bindings (refused by apt since 2026-02-01).
    Sha1SelfSignatures,
    /// SHA-224 anywhere (refused by apt since 2026-02-01).
    Sha224,
    /// Version 3 signatures (refused by apt since 2026-02-01).
    V3Signatures,
}

impl Weakness {
    pub const ALL: [Weakness; 5] = [
        Weakness::Rsa1024,
        Weakness::Dsa,
        Weakness::Sha1SelfSignatures,
        Weakness::Sha224,
        Weakness::V3Signatures,
    ];

    /// The name used in mirrors.toml.
    pub fn name(self) -> &'static str {
        match self {
            Weakness::Rsa1024 => "rsa1024",
            Weakness::Dsa => "dsa",
            Weakness::Sha1SelfSignatures => "sha1-self-signatures",
            Weakness::Sha224 => "sha224",
            Weakness::V3Signatures => "v3-signatures",
        }
    }
}

impl std::str::FromStr for Weakness {
    type Err = String;

    fn from_str(s: &str) -> Result<Weakness, String> {
        Weakness::ALL
            .into_iter()
            .find(|w| w.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Weakness::ALL.iter().map(|w| w.name()).collect();
                format!("unknown weakness {s:?} (known: {})", names.join(", "))
            })
    }
}

impl fmt::Display for Weakness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

// Unix times of the cut-offs (00:00:00 UTC).
const Y1997: u64 = 854_755_200;
const Y2004: u64 = 1_075_593_600;
const Y2013: u64 = 1_359_676_800;
const Y2014: u64 = 1_391_212_800;
const Y2023: u64 = 1_675_209_600;
const Y2024: u64 = 1_706_745_600;
const Y2026: u64 = 1_769_904_000;
const Y2028: u64 = 1_832_976_000;
const Y2030: u64 = 1_896_134_400;

/// What a hash must resist: data signatures need collision resistance (the signer
/// does not choose every byte), self-signatures only second-preimage resistance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashUse {
    Data,
    SelfSignature,
}

/// Why the policy refuses a key or a signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// `algorithm` as people write it ("RSA-1024", "DSA-2048", "secp256k1").
    KeyAlgorithm {
        algorithm: String,
        since: Option<&'static str>,
        weakness: Option<Weakness>,
    },
    Hash {
        hash: HashAlgorithm,
        usage: HashUse,
        since: &'static str,
        weakness: Option<Weakness>,
    },
    V3Signature,
    /// A critical subpacket (or notation) the policy does not understand.
    Critical(String),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let allow = |f: &mut fmt::Formatter<'_>, w: &Option<Weakness>| match w {
            Some(w) => write!(f, " (allow_weak_signatures = [\"{w}\"] accepts it)"),
            None => Ok(()),
        };
        match self {
            Refusal::KeyAlgorithm {
                algorithm,
                since,
                weakness,
            } => {
                write!(f, "{algorithm}, refused by apt's policy")?;
                if let Some(since) = since {
                    write!(f, " since {since}")?;
                }
                allow(f, weakness)
            }
            Refusal::Hash {
                hash,
                usage,
                since,
                weakness,
            } => {
                let what = match usage {
                    HashUse::Data => "data signatures",
                    HashUse::SelfSignature => "self-signatures",
                };
                write!(
                    f,
                    "{} in {what}, refused by apt's policy since {since}",
                    hash_name(*hash)
                )?;
                allow(f, weakness)
            }
            Refusal::V3Signature => {
                f.write_str("a version 3 signature, refused by apt's policy since 2026-02-01")?;
                allow(f, &Some(Weakness::V3Signatures))
            }
            Refusal::Critical(what) => write!(f, "a critical {what} apt's policy does not know"),
        }
    }
}

fn hash_name(hash: HashAlgorithm) -> String {
    match hash {
        HashAlgorithm::Md5 => "MD5".into(),
        HashAlgorithm::Sha1 => "SHA-1".into(),
        HashAlgorithm::Ripemd160 => "RIPEMD-160".into(),
        HashAlgorithm::Sha224 => "SHA-224".into(),
        other => format!("{other:?}"),
    }
}

/// apt's policy, with the weaknesses one mirror accepts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    allowed: BTreeSet<Weakness>,
}

impl Policy {
    /// apt's policy as shipped: nothing weak accepted.
    pub fn apt() -> Policy {
        Policy::default()
    }

    pub fn allowing(weaknesses: impl IntoIterator<Item = Weakness>) -> Policy {
        Policy {
            allowed: weaknesses.into_iter().collect(),
        }
    }

    pub fn allowed(&self) -> impl Iterator<Item = Weakness> + '_ {
        self.allowed.iter().copied()
    }

    /// A cut-off that holds unless the operator accepted `weakness`.
    fn cutoff(
        &self,
        cutoff: Option<(u64, &'static str)>,
        weakness: Option<Weakness>,
        now: u64,
    ) -> Option<(Option<&'static str>, Option<Weakness>)> {
        if weakness.is_some_and(|w| self.allowed.contains(&w)) {
            return None;
        }
        match cutoff {
            None => Some((None, weakness)),
            Some((at, name)) if now >= at => Some((Some(name), weakness)),
            Some(_) => None,
        }
    }

    /// Whether a key's algorithm and size are acceptable at `now`.
    pub fn key(&self, key: &impl KeyDetails, now: u64) -> Result<(), Refusal> {
        let params = key.public_params();
        let (algorithm, cutoff, weakness) = match params {
            PublicParams::RSA(_) => {
                let bits = first_mpi_bits(params);
                let name = format!("RSA-{bits}");
                match bits {
                    0..2048 => (name, Some((Y2014, "2014-02-01")), Some(Weakness::Rsa1024)),
                    2048..3072 => (name, Some((Y2030, "2030-02-01")), None),
                    _ => return Ok(()),
                }
            }
            PublicParams::DSA(_) => {
                let bits = first_mpi_bits(params);
                let cutoff = if bits < 2048 {
                    (Y2014, "2014-02-01")
                } else {
                    (Y2024, "2024-02-01")
                };
                (format!("DSA-{bits}"), Some(cutoff), Some(Weakness::Dsa))
            }
            PublicParams::ECDSA(ecdsa) => match ecdsa {
                EcdsaPublicParams::P256 { .. }
                | EcdsaPublicParams::P384 { .. }
                | EcdsaPublicParams::P521 { .. } => return Ok(()),
                EcdsaPublicParams::Secp256k1 { .. } => ("ECDSA secp256k1".into(), None, None),
                EcdsaPublicParams::Unsupported { curve, .. } => match curve {
                    ECCCurve::BrainpoolP256r1
                    | ECCCurve::BrainpoolP384r1
                    | ECCCurve::BrainpoolP512r1 => (
                        format!("ECDSA {curve:?}"),
                        Some((Y2028, "2028-02-01")),
                        None,
                    ),
                    other => (format!("ECDSA {other:?}"), None, None),
                },
            },
            PublicParams::EdDSALegacy(_) | PublicParams::Ed25519(_) | PublicParams::Ed448(_) => {
                return Ok(());
            }
            // Encryption-only algorithms never make a signature apt checks.
            PublicParams::ECDH(_)
            | PublicParams::X25519(_)
            | PublicParams::X448(_)
            | PublicParams::Elgamal(_) => return Ok(()),
            _ => (format!("{:?}", key.algorithm()), None, None),
        };
        match self.cutoff(cutoff, weakness, now) {
            Some((since, weakness)) => Err(Refusal::KeyAlgorithm {
                algorithm,
                since,
                weakness,
            }),
            None => Ok(()),
        }
    }

    /// Whether a signature's hash, version and critical subpackets are acceptable.
    pub fn signature(&self, sig: &Signature, usage: HashUse, now: u64) -> Result<(), Refusal> {
        if matches!(sig.version(), SignatureVersion::V2 | SignatureVersion::V3)
            && self
                .cutoff(
                    Some((Y2026, "2026-02-01")),
                    Some(Weakness::V3Signatures),
                    now,
                )
                .is_some()
        {
            return Err(Refusal::V3Signature);
        }
        if let Some(hash) = sig.hash_alg() {
            self.hash(hash, usage, now)?;
        }
        critical_subpackets(sig)
    }

    fn hash(&self, hash: HashAlgorithm, usage: HashUse, now: u64) -> Result<(), Refusal> {
        let data = usage == HashUse::Data;
        let (cutoff, weakness) = match hash {
            HashAlgorithm::Md5 if data => ((Y1997, "1997-02-01"), None),
            HashAlgorithm::Md5 => ((Y2004, "2004-02-01"), None),
            HashAlgorithm::Sha1 | HashAlgorithm::Ripemd160 if data => ((Y2013, "2013-02-01"), None),
            HashAlgorithm::Sha1 => ((Y2026, "2026-02-01"), Some(Weakness::Sha1SelfSignatures)),
            HashAlgorithm::Ripemd160 => ((Y2023, "2023-02-01"), None),
            HashAlgorithm::Sha224 => ((Y2026, "2026-02-01"), Some(Weakness::Sha224)),
            HashAlgorithm::Sha256
            | HashAlgorithm::Sha384
            | HashAlgorithm::Sha512
            | HashAlgorithm::Sha3_256
            | HashAlgorithm::Sha3_512 => return Ok(()),
            _ => ((0, "always"), None),
        };
        match self.cutoff(Some(cutoff), weakness, now) {
            Some((since, weakness)) => Err(Refusal::Hash {
                hash,
                usage,
                since: since.unwrap_or("always"),
                weakness,
            }),
            None => Ok(()),
        }
    }
}

/// Bits of the first MPI of the public parameters (RSA's modulus, DSA's prime): its
/// two-byte length prefix, as OpenPGP writes it.
fn first_mpi_bits(params: &PublicParams) -> u32 {
    params
        .to_bytes()
        .ok()
        .and_then(|b| {
            b.get(..2)
                .map(|l| u32::from(u16::from_be_bytes([l[0], l[1]])))
        })
        .unwrap_or(0)
}

/// Sequoia's `StandardPolicy` accepts a critical subpacket only of a type it acts on,
/// and no critical notation at all (it knows none by default).
fn critical_subpackets(sig: &Signature) -> Result<(), Refusal> {
    let Some(config) = sig.config() else {
        return Ok(());
    };
    for packet in config.hashed_subpackets().filter(|p| p.is_critical) {
        match &packet.data {
            SubpacketData::Notation(n) => {
                let name = String::from_utf8_lossy(n.name.as_ref()).into_owned();
                return Err(Refusal::Critical(format!("notation {name:?}")));
            }
            SubpacketData::Experimental(t, _) | SubpacketData::Other(t, _) => {
                return Err(Refusal::Critical(format!("subpacket of type {t}")));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_796_000_000; // 2026-11-30

    #[test]
    fn sha1_is_refused_for_data_and_for_self_signatures_unless_named() {
        let apt = Policy::apt();
        let err = apt
            .hash(HashAlgorithm::Sha1, HashUse::Data, NOW)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "SHA-1 in data signatures, refused by apt's policy since 2013-02-01"
        );
        let err = apt
            .hash(HashAlgorithm::Sha1, HashUse::SelfSignature, NOW)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "SHA-1 in self-signatures, refused by apt's policy since 2026-02-01 \
             (allow_weak_signatures = [\"sha1-self-signatures\"] accepts it)"
        );
        // Before apt's extended cut-off a SHA-1 binding still passed.
        apt.hash(HashAlgorithm::Sha1, HashUse::SelfSignature, Y2026 - 1)
            .unwrap();
        let relaxed = Policy::allowing([Weakness::Sha1SelfSignatures]);
        relaxed
            .hash(HashAlgorithm::Sha1, HashUse::SelfSignature, NOW)
            .unwrap();
        // Naming the self-signature weakness never admits SHA-1 data signatures.
        relaxed
            .hash(HashAlgorithm::Sha1, HashUse::Data, NOW)
            .unwrap_err();
    }

    #[test]
    fn sha224_md5_and_ripemd_follow_apts_cut_offs() {
        let apt = Policy::apt();
        for usage in [HashUse::Data, HashUse::SelfSignature] {
            apt.hash(HashAlgorithm::Sha224, usage, NOW).unwrap_err();
            apt.hash(HashAlgorithm::Md5, usage, NOW).unwrap_err();
            apt.hash(HashAlgorithm::Ripemd160, usage, NOW).unwrap_err();
            for strong in [
                HashAlgorithm::Sha256,
                HashAlgorithm::Sha384,
                HashAlgorithm::Sha512,
                HashAlgorithm::Sha3_256,
                HashAlgorithm::Sha3_512,
            ] {
                apt.hash(strong, usage, NOW).unwrap();
            }
            Policy::allowing([Weakness::Sha224])
                .hash(HashAlgorithm::Sha224, usage, NOW)
                .unwrap();
        }
        apt.hash(HashAlgorithm::Sha224, HashUse::Data, Y2026 - 1)
            .unwrap();
    }

    #[test]
    fn weaknesses_are_named_as_in_mirrors_toml() {
        for w in Weakness::ALL {
            assert_eq!(w.name().parse::<Weakness>(), Ok(w));
        }
        assert!("SHA1".parse::<Weakness>().is_err());
    }
}
