//! cosign, the independent signer and verifier of the signature tests (built by tests/harness/tools/cosign.sh), run offline against the plain-HTTP harness registry.
//! It runs cosign only; it must not sign or verify by itself.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The password the tests' cosign key pairs are encrypted with (`generate-key-pair`, `sign`).
pub const PASSWORD: &str = "classcache-test";

/// The cosign binary; a missing one fails the test with the fix (never a skip).
pub fn binary() -> PathBuf {
    let h = crate::harness();
    let path = h.env.get("CLASSCACHE_COSIGN").map(PathBuf::from).unwrap_or_else(|| {
        panic!("the harness env has no CLASSCACHE_COSIGN: run tests/harness/up.sh (it builds cosign with tests/harness/tools/cosign.sh)")
    });
    assert!(
        path.is_file(),
        "cosign is missing at {}: run tests/harness/up.sh (it builds cosign with tests/harness/tools/cosign.sh)",
        path.display()
    );
    path
}

/// Runs `cosign ARGS` in `dir` (also its HOME, so no user config or cache is read), with the
/// key password set; prints what it said.
pub fn run(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new(binary())
        .current_dir(dir)
        .args(args)
        .env("COSIGN_PASSWORD", PASSWORD)
        .env("HOME", dir)
        .output()
        .expect("run cosign");
    eprintln!(
        "cosign {args:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The flags an HTTP registry on 127.0.0.1 needs.
const PLAIN_HTTP: [&str; 2] = ["--allow-http-registry", "--allow-insecure-registry"];

/// `cosign verify --key KEY REF`, without a transparency log; with `referrers` it reads the
/// signature from the OCI 1.1 referrers (`--experimental-oci11`) instead of the `.sig` tag.
pub fn verify(dir: &Path, key: &Path, reference: &str, referrers: bool) -> Output {
    let key = key.to_str().expect("a UTF-8 key path");
    let mut args = vec![
        "verify",
        "--key",
        key,
        "--insecure-ignore-tlog=true",
        "--output",
        "json",
    ];
    args.extend(PLAIN_HTTP);
    if referrers {
        args.push("--experimental-oci11");
    }
    args.push(reference);
    run(dir, &args)
}

/// `cosign sign --key KEY REF` without a transparency log (the `.sig` tag form).
pub fn sign(dir: &Path, key: &Path, reference: &str) -> Output {
    let key = key.to_str().expect("a UTF-8 key path");
    let mut args = vec!["sign", "--key", key, "--tlog-upload=false", "-y"];
    args.extend(PLAIN_HTTP);
    args.push(reference);
    run(dir, &args)
}
