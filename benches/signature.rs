//! Signature checks on hostile sizes, release build, wall time of one call each:
//! a 20 MB InRelease (one signature, then the most signatures a file may carry, all by
//! the trusted key), and a 64 MiB `.sig` made of signature packets (armored and binary)
//! over a small image. The cap on signatures and one digest per hash algorithm and
//! signature type keep the work to one pass over the data.

use std::time::Instant;

use mirrorsync::apt::signature::{
    Keyring, MAX_SIGNATURES, verify_clearsigned, verify_detached_file,
};
use mirrorsync_testkit::SigningKey;

fn release_text(bytes: usize) -> String {
    let mut text = String::from(
        "Origin: Bench\nLabel: Bench\nSuite: stable\nCodename: bench\n\
         Date: Mon, 30 Nov 2026 10:00:00 UTC\nArchitectures: arm64\nComponents: main\nSHA256:\n",
    );
    let mut i = 0u64;
    while text.len() < bytes {
        text.push_str(&format!(
            " {:064x} {:>9} main/binary-arm64/Packages-{i}\n",
            i.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            i * 7
        ));
        i += 1;
    }
    text
}

fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    println!("{what:<72} {:>9.3} s", start.elapsed().as_secs_f64());
    out
}

fn main() {
    let key = SigningKey::generate("Bench <bench@example.org>").expect("key");
    let keyring =
        Keyring::from_bytes(&key.public_key_binary().expect("export"), "bench").expect("keyring");
    let text = release_text(20_000_000);
    let signed = key.clearsign(&text).expect("sign");
    println!("InRelease: {:.1} MB", signed.len() as f64 / 1e6);
    timed("verify a 20 MB InRelease, one signature", || {
        verify_clearsigned(&keyring, signed.as_bytes()).expect("verify")
    });

    // The same signature block repeated up to the cap: one digest serves them all.
    let split = signed.find("-----BEGIN PGP SIGNATURE-----").expect("armor");
    let block = &signed[split..];
    let many = format!("{}{}", signed, block.repeat(MAX_SIGNATURES - 1));
    timed(
        &format!("verify a 20 MB InRelease, {MAX_SIGNATURES} signatures by the trusted key"),
        || verify_clearsigned(&keyring, many.as_bytes()).expect("verify"),
    );
    // ...and ones with a bad signature first (a digest that fails, then the good one).
    let over = format!("{}{}", signed, block.repeat(MAX_SIGNATURES));
    let refused = timed(
        &format!(
            "refuse a 20 MB InRelease with {} signatures",
            MAX_SIGNATURES + 1
        ),
        || verify_clearsigned(&keyring, over.as_bytes()),
    );
    println!("  -> {}", refused.expect_err("over the cap"));

    let dir = tempfile::tempdir().expect("tempdir");
    let image = dir.path().join("image.img.xz");
    std::fs::write(&image, vec![7u8; 4 << 20]).expect("write");
    let sig = key
        .sign_detached_armored(&std::fs::read(&image).expect("read"))
        .expect("sign");
    let armored = sig.repeat((64 << 20) / sig.len() + 1);
    let result = timed("check a 64 MiB armored .sig of repeated signatures", || {
        verify_detached_file(&keyring, &image, armored.as_bytes())
    });
    println!("  -> {}", result.expect_err("over the cap"));
    let binary = pgp_binary(&sig);
    let repeated = binary.repeat((64 << 20) / binary.len() + 1);
    let result = timed(
        "check a 64 MiB binary .sig of repeated signature packets",
        || verify_detached_file(&keyring, &image, &repeated),
    );
    println!("  -> {}", result.expect_err("over the cap"));
    timed("verify the 4 MiB image with its one real signature", || {
        verify_detached_file(&keyring, &image, sig.as_bytes()).expect("verify")
    });
}

/// The binary packet inside an armored signature.
fn pgp_binary(armored: &str) -> Vec<u8> {
    use pgp::composed::{Deserializable, DetachedSignature};
    use pgp::ser::Serialize;
    let (sig, _) = DetachedSignature::from_string(armored).expect("parse");
    sig.to_bytes().expect("serialize")
}
