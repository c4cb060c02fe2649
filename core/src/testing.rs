//! A sample archive config for the tests of every crate (feature `testing`).
//! It builds test data only; no program may depend on it.

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
            digest: image_digest.to_string(),
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
