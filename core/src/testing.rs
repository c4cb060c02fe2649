//! A sample archive config for the tests of every crate (feature `testing`).
//! It builds test data only (configs, deterministic bytes); no program may depend on it.

use crate::artifact::{
    ArchiveConfig, ArchiveFile, ImageIdentity, JvmIdentity, Platform, CONFIG_SCHEMA_VERSION,
};
use crate::key::{ArchiveKind, KeyInputs};

/// A config as the CI build writes it for Debian's JDK 17 on linux/amd64; `jvm_options`
/// take part in the key, so tests vary them to get distinct archives of one image.
pub fn sample_config(
    image_reference: &str,
    image_digest: &str,
    kind: ArchiveKind,
    jvm_options: &[String],
) -> ArchiveConfig {
    let inputs = KeyInputs {
        image_digest: image_digest.to_string(),
        jvm_build: "17.0.15+6-Debian-1deb12u1".into(),
        os: "linux".into(),
        arch: "amd64".into(),
        kind,
        agent: None,
        jvm_options: jvm_options.to_vec(),
    };
    let mut training_options = jvm_options.to_vec();
    training_options.push("-XX:ArchiveClassesAtExit={archive}".into());
    ArchiveConfig {
        schema_version: CONFIG_SCHEMA_VERSION,
        key: inputs.key().expect("sample key inputs are valid"),
        kind,
        jvm: JvmIdentity {
            feature_version: 17,
            version: "17.0.15".into(),
            vendor: "Debian".into(),
            build: inputs.jvm_build,
        },
        platform: Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        },
        image: ImageIdentity {
            reference: image_reference.to_string(),
            digest: image_digest
                .parse()
                .expect("sample configs name the image by sha256 digest"),
            entrypoint: vec![],
            cmd: vec![],
        },
        agent: None,
        training_options,
        runtime_options: vec!["-XX:SharedArchiveFile={archive}".into()],
        archive: ArchiveFile {
            name: "app.jsa".into(),
            size: 0,
            sha256: String::new(),
        },
        verification: None,
        created: "2026-01-01T00:00:00Z".into(),
    }
}

/// A xorshift64 generator: deterministic test data from a seed, the same in every crate.
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// `len` deterministic bytes that gzip cannot shrink (so a layer is as big as its archive).
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = XorShift::new(seed);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A fixed ECDSA P-256 private key (PKCS#8 PEM), so signature tests need neither RNG nor openssl.
pub const SIGNING_KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQggyTXfWFCdLCby0CM
a777xSMJDdghE751NbaRdxgS9n+hRANCAATIPu4v54K7kR/VIWBqxzObjr8pgSWW
IieJ1xivbdIuFgucD9Q3gYPfWNNKGWJ7jskWZFaXsd5jU44n+JDjCWfJ
-----END PRIVATE KEY-----
";

/// A second fixed P-256 private key, in SEC 1 PEM: the "other signer" of signature tests.
pub const OTHER_SIGNING_KEY_PEM: &str = "-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIBTnugTCjkv8Ao01ROxpR3RLLSG/R+Ovqr+AdHmyv16NoAoGCCqGSM49
AwEHoUQDQgAERj9R0RO1GJx07qq0aVN05XYlgJBLPnl1AQuKaBkcv5JfgeXyh9Hq
fu3qzAh9Knhmr8T5bWZYpfquuLNGW84/aA==
-----END EC PRIVATE KEY-----
";
