//! Proves that mirrorsync's verdict on a repository signature is `sqv`'s: the verifier
//! apt runs on Debian 13 (package `sqv`, version 1.1, `/usr/bin/sqv`).
//!
//! Each test makes keys and signatures with real GnuPG (`/usr/bin/gpg`) in a fresh
//! GNUPGHOME, in the past or the future through `--faked-system-time`, then checks the
//! Release + Release.gpg pair twice: with [`verify_detached`] and with
//! `sqv --keyring keyring.gpg Release.gpg Release`. Every case states the verdict apt's
//! policy calls for, and asserts that BOTH verifiers give it (and why, where they
//! refuse), so that the two cannot pass by agreeing on a wrong answer.
//!
//! sqv reads only detached signatures; where a case also checks an InRelease made by
//! `gpg --clearsign`, [`verify_clearsigned`] goes through the same key and policy
//! checks as [`verify_detached`], and sqv's verdict is taken on the detached signature
//! by the same key at the same time.
//!
//! The cases: RSA-1024 (refused), RSA-3072 and ed25519 (accepted), an expired key
//! (refused after it expired, accepted for a signature made before), a revoked signing
//! subkey (refused; one retired as "superseded" keeps the signatures it made before),
//! a signing subkey bound with SHA-1 (refused), a signature dated in the future
//! (refused), SHA-1 data signatures (refused) and SHA-512 (accepted).
//!
//! Times are whole days away from now, so no test depends on how fast it runs. A
//! missing `gpg` or `sqv` fails the test: `apt-get install gnupg sqv`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use super::{Keyring, SignatureError, Verified, verify_clearsigned, verify_detached};

const GPG: &str = "/usr/bin/gpg";
const GPGCONF: &str = "/usr/bin/gpgconf";
const SQV: &str = "/usr/bin/sqv";
const DAY: u64 = 86_400;

/// A small Release, as the signed data.
const RELEASE: &str = "\
Origin: Crosscheck
Label: Crosscheck
Suite: stable
Codename: trixie
Architectures: amd64 arm64
Components: main
SHA256:
 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855        0 main/binary-amd64/Packages
";

/// What apt's policy calls for. A refusal names, for each verifier, phrases its
/// message must contain, so that a refusal for an unrelated reason (a malformed file,
/// an unknown key) does not pass for the one the case is about.
#[derive(Debug, Clone, Copy)]
enum Expect<'a> {
    /// Good, made by the (sub)key with this fingerprint, of the certificate with
    /// primary fingerprint `cert` (which sqv prints).
    Accepted { signer: &'a str, cert: &'a str },
    Refused {
        ours: &'static [&'static str],
        sqv: &'static [&'static str],
    },
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs()
}

fn require(tool: &str, package: &str) {
    assert!(
        Path::new(tool).exists(),
        "{tool} is missing: the cross-check against sqv needs it. Install it \
         (apt-get install gnupg sqv; {tool} is in package {package}) or run scripts/test.sh"
    );
}

fn output_text(out: &Output) -> String {
    format!(
        "exit {}\n--- stdout ---\n{}--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A GnuPG home of its own in a temporary directory, where the test makes its keys
/// and signatures. Its gpg-agent is stopped when it is dropped.
struct Gnupg {
    dir: tempfile::TempDir,
    home: PathBuf,
    outputs: std::cell::Cell<usize>,
}

impl Gnupg {
    fn new() -> Gnupg {
        require(GPG, "gpg");
        require(SQV, "sqv");
        let dir = tempfile::tempdir().expect("creating a temporary directory");
        let home = dir.path().join("gnupg");
        std::fs::create_dir(&home).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
        }
        std::fs::write(dir.path().join("Release"), RELEASE).unwrap();
        Gnupg {
            dir,
            home,
            outputs: std::cell::Cell::new(0),
        }
    }

    fn release(&self) -> PathBuf {
        self.dir.path().join("Release")
    }

    /// Runs gpg at `at` (Unix time, frozen) or at the real time, feeding `input` to
    /// `--command-fd 0` when given; panics with gpg's output when it fails.
    fn run(&self, at: Option<u64>, args: &[&str], input: Option<&str>) -> Output {
        let mut cmd = Command::new(GPG);
        cmd.env("LC_ALL", "C")
            .env("GNUPGHOME", &self.home)
            .arg("--homedir")
            .arg(&self.home)
            .args(["--batch", "--no-tty", "--status-fd", "2"])
            .args(["--pinentry-mode", "loopback", "--passphrase", ""]);
        if let Some(at) = at {
            cmd.arg("--faked-system-time").arg(format!("{at}!"));
        }
        if input.is_some() {
            cmd.args(["--command-fd", "0"]);
        }
        cmd.args(args)
            .current_dir(self.dir.path())
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("running {GPG}: {e}"));
        if let Some(input) = input {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "gpg {} failed (apt-get install gnupg, or run scripts/test.sh, if gpg or \
             gpg-agent is missing):\n{}",
            args.join(" "),
            output_text(&out)
        );
        out
    }

    /// The fingerprint in gpg's `KEY_CREATED` status line.
    fn created_fingerprint(out: &Output) -> String {
        // Status lines go to stderr (fd 2), so that stdout carries only data.
        let status = String::from_utf8_lossy(&out.stderr);
        status
            .lines()
            .find_map(|l| l.strip_prefix("[GNUPG:] KEY_CREATED "))
            .and_then(|rest| rest.split_whitespace().nth(1))
            .unwrap_or_else(|| panic!("gpg reported no KEY_CREATED:\n{}", output_text(out)))
            .to_string()
    }

    /// `gpg --quick-gen-key`, made at `at`; returns the primary key's fingerprint.
    fn generate(&self, at: u64, uid: &str, algo: &str, usage: &str, expire: &str) -> String {
        let out = self.run(
            Some(at),
            &["--quick-gen-key", uid, algo, usage, expire],
            None,
        );
        Self::created_fingerprint(&out)
    }

    /// `gpg --quick-add-key`, made at `at`; returns the subkey's fingerprint.
    fn add_subkey(
        &self,
        at: u64,
        primary: &str,
        algo: &str,
        usage: &str,
        extra: &[&str],
    ) -> String {
        let mut args = extra.to_vec();
        args.extend(["--quick-add-key", primary, algo, usage, "never"]);
        Self::created_fingerprint(&self.run(Some(at), &args, None))
    }

    /// Revokes subkey 1 of `primary` at `at`, through the menu as an operator would;
    /// `reason` is the menu's number (0: no reason, 2: superseded).
    fn revoke_first_subkey(&self, at: u64, primary: &str, reason: u8) {
        let input = format!("key 1\nrevkey\ny\n{reason}\n\ny\nsave\n");
        self.run(Some(at), &["--edit-key", primary], Some(&input));
    }

    fn next_output(&self, name: &str) -> PathBuf {
        let n = self.outputs.get() + 1;
        self.outputs.set(n);
        self.dir.path().join(format!("{n}-{name}"))
    }

    /// An armored detached signature over the Release by exactly `signer` (a primary
    /// key or subkey fingerprint), made at `at`.
    fn sign_detached(&self, at: u64, signer: &str, extra: &[&str]) -> Vec<u8> {
        self.sign(at, signer, extra, "--detach-sign", "Release.gpg")
    }

    /// A clear-signed InRelease of the Release by exactly `signer`, made at `at`.
    fn clearsign(&self, at: u64, signer: &str) -> Vec<u8> {
        self.sign(at, signer, &[], "--clearsign", "InRelease")
    }

    fn sign(&self, at: u64, signer: &str, extra: &[&str], how: &str, name: &str) -> Vec<u8> {
        let out = self.next_output(name);
        let release = self.release();
        let user = format!("{signer}!");
        let mut args = extra.to_vec();
        args.extend(["--local-user", &user, "--armor", "--output"]);
        args.push(out.to_str().unwrap());
        args.push(how);
        args.push(release.to_str().unwrap());
        self.run(Some(at), &args, None);
        std::fs::read(&out).unwrap()
    }

    /// The binary public keyring, as apt's keyrings are shipped.
    fn export(&self) -> Vec<u8> {
        self.run(None, &["--export"], None).stdout
    }

    /// `gpg --list-packets` of `bytes`.
    fn list_packets(&self, bytes: &[u8], name: &str) -> String {
        let path = self.next_output(name);
        std::fs::write(&path, bytes).unwrap();
        let out = self.run(None, &["--list-packets", path.to_str().unwrap()], None);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// (signature class, digest algorithm) of each signature packet in `bytes`, from
    /// `gpg --list-packets`, embedded back-signatures included: e.g. `(0x18, 2)` is a
    /// subkey binding made with SHA-1.
    fn signature_digests(&self, bytes: &[u8]) -> Vec<(u8, u8)> {
        let listing = self.list_packets(bytes, "packets");
        let mut out = Vec::new();
        let mut class = None;
        for line in listing.lines().map(str::trim) {
            if let Some(c) = line.split("sigclass 0x").nth(1) {
                class = u8::from_str_radix(c.get(..2).unwrap_or(c), 16).ok();
            }
            if let Some(rest) = line.strip_prefix("digest algo ") {
                let algo = rest.split(',').next().and_then(|a| a.parse().ok());
                if let (Some(c), Some(a)) = (class.take(), algo) {
                    out.push((c, a));
                }
            }
            // "subpkt 32 len N (signature: v4, class 0x19, algo 1, digest algo 2)"
            if let Some(embedded) = line.split("(signature: ").nth(1) {
                let field = |name: &str| {
                    embedded
                        .split(", ")
                        .find_map(|f| f.strip_prefix(name))
                        .map(|v| v.trim_end_matches(')').to_string())
                };
                let c = field("class 0x").and_then(|c| u8::from_str_radix(&c, 16).ok());
                let a = field("digest algo ").and_then(|a| a.parse().ok());
                if let (Some(c), Some(a)) = (c, a) {
                    out.push((c, a));
                }
            }
        }
        out
    }

    /// Runs sqv on `signature` over the Release with the exported keyring.
    fn sqv(&self, keyring: &[u8], signature: &[u8]) -> Output {
        let keyring_path = self.next_output("keyring.gpg");
        std::fs::write(&keyring_path, keyring).unwrap();
        let sig_path = self.next_output("Release.gpg");
        std::fs::write(&sig_path, signature).unwrap();
        Command::new(SQV)
            .env("LC_ALL", "C")
            .arg("--keyring")
            .arg(&keyring_path)
            .arg(&sig_path)
            .arg(self.release())
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|e| panic!("running {SQV}: {e} (apt-get install sqv)"))
    }

    /// Checks `signature` (armored, detached) over the Release against the exported
    /// keyring with mirrorsync and with sqv, and asserts that each gives `expect`.
    fn crosscheck(&self, case: &str, signature: &[u8], expect: Expect<'_>) {
        let keyring = self.export();
        let ours = Keyring::from_bytes(&keyring, "crosscheck keyring.gpg")
            .and_then(|k| verify_detached(&k, RELEASE.as_bytes(), signature));
        let sqv = self.sqv(&keyring, signature);
        let report = |verdict: &str| {
            format!(
                "{case}: {verdict}\nexpected: {expect:?}\n\
                 mirrorsync: {}\n\
                 sqv: {}\n\
                 --- gpg --list-packets Release.gpg ---\n{}\n\
                 --- gpg --list-packets keyring.gpg ---\n{}",
                describe(&ours),
                output_text(&sqv),
                self.list_packets(signature, "report.asc"),
                self.list_packets(&keyring, "report.gpg"),
            )
        };
        assert_ours(&ours, expect, &|verdict| report(verdict));
        let sqv_stdout = String::from_utf8_lossy(&sqv.stdout);
        let sqv_stderr = String::from_utf8_lossy(&sqv.stderr);
        match expect {
            Expect::Accepted { cert, .. } => {
                assert!(
                    sqv.status.success(),
                    "{}",
                    report("sqv refused a signature apt's policy accepts")
                );
                assert!(
                    sqv_stdout.lines().any(|l| l.trim() == cert),
                    "{}",
                    report("sqv did not name the certificate that signed")
                );
            }
            Expect::Refused { sqv: phrases, .. } => {
                assert!(
                    !sqv.status.success(),
                    "{}",
                    report("sqv accepted a signature apt's policy refuses")
                );
                assert!(
                    phrases.iter().all(|p| sqv_stderr.contains(p)),
                    "{}",
                    report(&format!("sqv refused, but not saying {phrases:?}"))
                );
            }
        }
    }

    /// Checks a clear-signed InRelease with mirrorsync alone (sqv cannot read it; its
    /// verdict is taken on a detached signature of the same case).
    fn check_clearsigned(&self, case: &str, inrelease: &[u8], expect: Expect<'_>) {
        let keyring = self.export();
        let ours = Keyring::from_bytes(&keyring, "crosscheck keyring.gpg")
            .and_then(|k| verify_clearsigned(&k, inrelease));
        let report = |verdict: &str| {
            format!(
                "{case} (InRelease): {verdict}\nexpected: {expect:?}\nmirrorsync: {}\n\
                 --- InRelease ---\n{}\n--- gpg --list-packets InRelease ---\n{}",
                describe(&ours),
                String::from_utf8_lossy(inrelease),
                self.list_packets(inrelease, "report-inrelease"),
            )
        };
        assert_ours(&ours, expect, &|verdict| report(verdict));
    }
}

impl Drop for Gnupg {
    fn drop(&mut self) {
        // Each home starts its own gpg-agent; stop it with its directory.
        let _ = Command::new(GPGCONF)
            .env("GNUPGHOME", &self.home)
            .arg("--homedir")
            .arg(&self.home)
            .args(["--kill", "gpg-agent"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn describe(ours: &Result<Verified, SignatureError>) -> String {
    match ours {
        Ok(v) => format!("accepted, signer {}", v.signer),
        Err(e) => format!("refused: {e}"),
    }
}

fn assert_ours(
    ours: &Result<Verified, SignatureError>,
    expect: Expect<'_>,
    report: &dyn Fn(&str) -> String,
) {
    match (ours, expect) {
        (Ok(verified), Expect::Accepted { signer, .. }) => {
            assert_eq!(
                verified.signer,
                signer,
                "{}",
                report("mirrorsync names another signer")
            );
            assert_eq!(
                verified.text,
                RELEASE,
                "{}",
                report("mirrorsync returned another text")
            );
        }
        (Err(_), Expect::Accepted { .. }) => {
            panic!(
                "{}",
                report("mirrorsync refused a signature apt's policy accepts")
            )
        }
        (Ok(_), Expect::Refused { .. }) => {
            panic!(
                "{}",
                report("mirrorsync accepted a signature apt's policy refuses")
            )
        }
        (Err(e), Expect::Refused { ours: phrases, .. }) => {
            let message = e.to_string();
            assert!(
                phrases.iter().all(|p| message.contains(p)),
                "{}",
                report(&format!("mirrorsync refused, but not saying {phrases:?}"))
            );
        }
    }
}

/// A hundred days ago: keys are made then, signatures in the days after.
fn long_ago() -> u64 {
    unix_now() - 100 * DAY
}

#[test]
fn a_repository_signed_by_an_rsa_1024_key_is_refused_by_us_and_by_sqv() {
    let gpg = Gnupg::new();
    let t0 = long_ago();
    let fpr = gpg.generate(
        t0,
        "Old Archive <old@example.org>",
        "rsa1024",
        "sign",
        "never",
    );
    let expect = Expect::Refused {
        ours: &["RSA-1024", "refused by apt's policy since 2014-02-01"],
        sqv: &["RSA1024 is not considered secure"],
    };
    let signature = gpg.sign_detached(t0 + DAY, &fpr, &[]);
    gpg.crosscheck("RSA-1024 key", &signature, expect);
    let inrelease = gpg.clearsign(t0 + DAY, &fpr);
    gpg.check_clearsigned("RSA-1024 key", &inrelease, expect);
}

#[test]
fn a_repository_signed_by_an_rsa_3072_key_is_accepted_by_us_and_by_sqv() {
    let gpg = Gnupg::new();
    let t0 = long_ago();
    let fpr = gpg.generate(
        t0,
        "Archive <archive@example.org>",
        "rsa3072",
        "sign",
        "never",
    );
    let expect = Expect::Accepted {
        signer: &fpr,
        cert: &fpr,
    };
    let signature = gpg.sign_detached(t0 + DAY, &fpr, &[]);
    gpg.crosscheck("RSA-3072 key", &signature, expect);
    let inrelease = gpg.clearsign(t0 + DAY, &fpr);
    gpg.check_clearsigned("RSA-3072 key", &inrelease, expect);
}

#[test]
fn a_repository_signed_by_an_ed25519_key_is_accepted_by_us_and_by_sqv() {
    let gpg = Gnupg::new();
    let t0 = long_ago();
    let fpr = gpg.generate(
        t0,
        "Archive <archive@example.org>",
        "ed25519",
        "sign",
        "never",
    );
    let signature = gpg.sign_detached(t0 + DAY, &fpr, &[]);
    gpg.crosscheck(
        "ed25519 key",
        &signature,
        Expect::Accepted {
            signer: &fpr,
            cert: &fpr,
        },
    );
}

/// An ed25519 key made 100 days ago, which expired 90 days ago, and two signatures by
/// it: one made 80 days ago, after it expired, and one 93 days ago, while it was
/// valid. gpg signs with no expired key, so the late signature is made first, while
/// the key has no expiry yet; `--quick-set-expire`, dated 95 days ago, then makes it
/// expire 90 days ago, and that self-signature governs every time after it.
fn an_expired_key() -> (Gnupg, String, Vec<u8>, Vec<u8>) {
    let gpg = Gnupg::new();
    let t0 = long_ago();
    let fpr = gpg.generate(
        t0,
        "Expired <expired@example.org>",
        "ed25519",
        "sign",
        "never",
    );
    let after_expiry = gpg.sign_detached(t0 + 20 * DAY, &fpr, &[]);
    gpg.run(
        Some(t0 + 5 * DAY),
        &["--quick-set-expire", &fpr, "5d"],
        None,
    );
    let while_valid = gpg.sign_detached(t0 + 7 * DAY, &fpr, &[]);
    let packets = gpg.list_packets(&gpg.export(), "expiry.gpg");
    assert!(
        packets.contains("key expires after 10d0h0m"),
        "the key should expire 10 days after its creation:\n{packets}"
    );
    (gpg, fpr, after_expiry, while_valid)
}

#[test]
fn a_release_signed_after_its_key_expired_is_refused_by_us_and_by_sqv() {
    let (gpg, _, after_expiry, _) = an_expired_key();
    gpg.crosscheck(
        "signature made after the key expired",
        &after_expiry,
        Expect::Refused {
            ours: &["expired"],
            sqv: &["Expired on"],
        },
    );
}

#[test]
fn a_release_signed_while_its_key_was_valid_stays_accepted_after_the_key_expired() {
    let (gpg, fpr, _, while_valid) = an_expired_key();
    gpg.crosscheck(
        "signature made before the key expired",
        &while_valid,
        Expect::Accepted {
            signer: &fpr,
            cert: &fpr,
        },
    );
}

/// A certify-only ed25519 primary key made 100 days ago, its ed25519 signing subkey
/// added 99 days ago, and a signature by the subkey 98 days ago; the subkey is
/// revoked 97 days ago for `reason` (gpg's menu number).
fn a_revoked_signing_subkey(reason: u8) -> (Gnupg, String, String, Vec<u8>) {
    let gpg = Gnupg::new();
    let t0 = long_ago();
    let primary = gpg.generate(
        t0,
        "Archive <archive@example.org>",
        "ed25519",
        "cert",
        "never",
    );
    let subkey = gpg.add_subkey(t0 + DAY, &primary, "ed25519", "sign", &[]);
    let signature = gpg.sign_detached(t0 + 2 * DAY, &subkey, &[]);
    gpg.revoke_first_subkey(t0 + 3 * DAY, &primary, reason);
    (gpg, primary, subkey, signature)
}

#[test]
fn a_release_signed_by_a_revoked_subkey_is_refused_by_us_and_by_sqv() {
    // No reason given: the key may have been compromised, so even the signatures it
    // made before the revocation are void.
    let (gpg, _, _, signature) = a_revoked_signing_subkey(0);
    let packets = gpg.list_packets(&gpg.export(), "revoked.gpg");
    assert!(
        packets.contains("sigclass 0x28") && packets.contains("revocation reason 0x00"),
        "gpg should have revoked the subkey with no reason:\n{packets}"
    );
    gpg.crosscheck(
        "revoked signing subkey",
        &signature,
        Expect::Refused {
            ours: &["revoked"],
            sqv: &["revoked"],
        },
    );
}

#[test]
fn a_release_signed_before_its_subkey_was_superseded_stays_accepted_by_us_and_by_sqv() {
    // "Key is superseded" is a retirement, not a compromise: what the subkey signed
    // before stays good.
    let (gpg, primary, subkey, signature) = a_revoked_signing_subkey(2);
    let packets = gpg.list_packets(&gpg.export(), "superseded.gpg");
    assert!(
        packets.contains("sigclass 0x28") && packets.contains("revocation reason 0x01"),
        "gpg should have revoked the subkey as superseded:\n{packets}"
    );
    gpg.crosscheck(
        "signing subkey superseded after it signed",
        &signature,
        Expect::Accepted {
            signer: &subkey,
            cert: &primary,
        },
    );
}

#[test]
fn a_signing_subkey_bound_with_sha1_is_refused_by_us_and_by_sqv() {
    // apt's policy refuses SHA-1 self-signatures since 2026-02-01; sqv 1.1's own
    // cut-off is 2023-02-01. The binding is made 99 days ago, after both. gpg makes
    // EdDSA signatures with no hash under 256 bits, hence RSA; it makes SHA-1 key
    // signatures only with --allow-weak-key-signatures.
    let gpg = Gnupg::new();
    let t0 = long_ago();
    let primary = gpg.generate(
        t0,
        "Archive <archive@example.org>",
        "rsa2048",
        "cert",
        "never",
    );
    let subkey = gpg.add_subkey(
        t0 + DAY,
        &primary,
        "rsa2048",
        "sign",
        &["--allow-weak-key-signatures", "--cert-digest-algo", "SHA1"],
    );
    let keyring = gpg.export();
    let digests = gpg.signature_digests(&keyring);
    assert!(
        digests.contains(&(0x18, 2)),
        "the subkey binding (class 0x18) should use SHA-1 (digest algo 2): {digests:?}\n{}",
        gpg.list_packets(&keyring, "binding.gpg")
    );
    assert!(
        digests
            .iter()
            .any(|&(class, algo)| class == 0x13 && algo != 2),
        "the user id self-signature should not use SHA-1, so that only the binding is \
         at stake: {digests:?}"
    );
    let signature = gpg.sign_detached(t0 + 2 * DAY, &subkey, &["--digest-algo", "SHA512"]);
    gpg.crosscheck(
        "signing subkey bound with SHA-1",
        &signature,
        Expect::Refused {
            ours: &["SHA-1 in self-signatures"],
            sqv: &["SubkeyBinding", "SHA1 is not considered secure"],
        },
    );
}

#[test]
fn a_release_dated_tomorrow_is_refused_by_us_and_by_sqv() {
    let gpg = Gnupg::new();
    let t0 = long_ago();
    let fpr = gpg.generate(
        t0,
        "Archive <archive@example.org>",
        "ed25519",
        "sign",
        "never",
    );
    let tomorrow = unix_now() + DAY;
    let signature = gpg.sign_detached(tomorrow, &fpr, &[]);
    gpg.crosscheck(
        "signature dated one day in the future",
        &signature,
        Expect::Refused {
            ours: &["dated in the future"],
            sqv: &["Not live until"],
        },
    );
}

/// An RSA-2048 key made 100 days ago and its signature over the Release made 99 days
/// ago with `digest` (gpg makes EdDSA signatures with no hash under 256 bits).
fn signed_with(digest: &str) -> (Gnupg, String, Vec<u8>) {
    let gpg = Gnupg::new();
    let t0 = long_ago();
    let fpr = gpg.generate(
        t0,
        "Archive <archive@example.org>",
        "rsa2048",
        "sign",
        "never",
    );
    let signature = gpg.sign_detached(t0 + DAY, &fpr, &["--digest-algo", digest]);
    (gpg, fpr, signature)
}

#[test]
fn a_release_signed_with_sha1_is_refused_by_us_and_by_sqv() {
    let (gpg, _, signature) = signed_with("SHA1");
    let digests = gpg.signature_digests(&signature);
    assert_eq!(digests, [(0x00, 2)], "a binary signature with SHA-1");
    gpg.crosscheck(
        "data signature with SHA-1",
        &signature,
        Expect::Refused {
            ours: &["SHA-1 in data signatures"],
            sqv: &[
                "requiring collision resistance",
                "SHA1 is not considered secure",
            ],
        },
    );
}

#[test]
fn a_release_signed_with_sha512_is_accepted_by_us_and_by_sqv() {
    let (gpg, fpr, signature) = signed_with("SHA512");
    let digests = gpg.signature_digests(&signature);
    assert_eq!(digests, [(0x00, 10)], "a binary signature with SHA-512");
    gpg.crosscheck(
        "data signature with SHA-512",
        &signature,
        Expect::Accepted {
            signer: &fpr,
            cert: &fpr,
        },
    );
}
