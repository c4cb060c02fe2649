//! The archive key: a versioned sha256 over everything that decides whether an archive is valid.
//! It derives and parses keys only; it must not look anything up (no registry, no JVM, no clock).
//!
//! The canonical form is documented in `docs/archive-key.md`, with golden vectors that the tests
//! below check, so that any implementation (or a shell with `sha256sum`) gets the same key.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;

/// Version of the canonical serialization; bump it whenever the inputs or their encoding change.
pub const KEY_VERSION: u32 = 1;

/// Every key (and so every archive tag) starts with this, which never collides with the
/// referrers tag-schema fallback tags (`sha256-<hex>`).
pub const KEY_PREFIX: &str = "classcache-v1-";

/// The kind of archive the JVM writes; it decides the training and run-time flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArchiveKind {
    /// JDK 24+ AOT cache (JEP 483): `-XX:AOTCache`.
    AotCache,
    /// JDK 13+ dynamic CDS archive: `-XX:ArchiveClassesAtExit` / `-XX:SharedArchiveFile`.
    DynamicCds,
    /// JDK 11/12 static AppCDS from a class list: `-Xshare:dump -XX:SharedClassListFile`.
    StaticAppcds,
}

impl ArchiveKind {
    pub const ALL: [ArchiveKind; 3] = [Self::AotCache, Self::DynamicCds, Self::StaticAppcds];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AotCache => "aot-cache",
            Self::DynamicCds => "dynamic-cds",
            Self::StaticAppcds => "static-appcds",
        }
    }
}

impl fmt::Display for ArchiveKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ArchiveKind {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| KeyError::UnknownKind(s.to_string()))
    }
}

/// How a Java agent takes part in the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AgentMode {
    /// The agent also runs in production: trained with it attached, `-javaagent` at run time.
    Attached,
    /// Classes the agent transformed are archived; the agent jar goes on the boot class path.
    Baked,
}

impl AgentMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Attached => "attached",
            Self::Baked => "baked",
        }
    }
}

impl FromStr for AgentMode {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        match s {
            "attached" => Ok(Self::Attached),
            "baked" => Ok(Self::Baked),
            other => Err(KeyError::UnknownAgentMode(other.to_string())),
        }
    }
}

/// The agent jar an archive was trained with, identified by content.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AgentIdentity {
    /// Lower-case hex sha256 of the agent jar.
    pub sha256: String,
    pub mode: AgentMode,
}

/// Everything that decides whether an archive is valid for a JVM start.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KeyInputs {
    /// The app image's platform manifest digest (`sha256:<hex>`), not an index digest.
    pub image_digest: String,
    /// The exact HotSpot build string (`java.vm.version`, e.g. `17.0.15+6-Debian-1deb12u1`).
    pub jvm_build: String,
    /// OCI platform OS, e.g. `linux`.
    pub os: String,
    /// OCI platform architecture, e.g. `amd64`, `arm64`.
    pub arch: String,
    pub kind: ArchiveKind,
    pub agent: Option<AgentIdentity>,
    /// The JVM options that affect the archive, in the order given on the command line.
    pub jvm_options: Vec<String>,
}

/// The string API of a key that is a tag: `<prefix><64 lower hex>`, parsed (refusing anything
/// else with `KeyError::$refusal`) and shown as itself; archive and index keys share it.
macro_rules! tag_key {
    ($key:ident, $prefix:expr, $refusal:ident) => {
        impl $key {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $key {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $key {
            type Err = KeyError;
            fn from_str(s: &str) -> Result<Self, KeyError> {
                match s.strip_prefix($prefix) {
                    Some(hex) if is_lower_hex(hex, 64) => Ok($key(s.to_string())),
                    _ => Err(KeyError::$refusal(s.to_string())),
                }
            }
        }

        impl TryFrom<String> for $key {
            type Error = KeyError;
            fn try_from(s: String) -> Result<Self, KeyError> {
                s.parse()
            }
        }

        impl From<$key> for String {
            fn from(k: $key) -> String {
                k.0
            }
        }
    };
}

/// A derived archive key, `classcache-v1-<64 hex>`; also the artifact's tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ArchiveKey(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("key input `{field}` is empty; pass a value for it")]
    Empty { field: &'static str },
    #[error("key input `{field}` contains a line break or NUL ({value:?}); key inputs are single-line values")]
    Multiline { field: &'static str, value: String },
    #[error("image digest {0:?} is not of the form sha256:<64 lower-case hex>; pass the platform manifest digest")]
    BadImageDigest(String),
    #[error(
        "agent sha256 {0:?} is not 64 lower-case hex characters; pass the sha256 of the agent jar"
    )]
    BadAgentSha(String),
    #[error("unknown archive kind {0:?}; use one of aot-cache, dynamic-cds, static-appcds")]
    UnknownKind(String),
    #[error("unknown agent mode {0:?}; use attached or baked")]
    UnknownAgentMode(String),
    #[error("{0:?} is not a classcache key; a key looks like {KEY_PREFIX}<64 lower-case hex>")]
    NotAKey(String),
    #[error("{0:?} is not a classcache index key; an index key looks like {INDEX_KEY_PREFIX}<64 lower-case hex>")]
    NotAnIndexKey(String),
}

/// True for `n` lower-case hex digits.
pub fn is_lower_hex(s: &str, n: usize) -> bool {
    s.len() == n
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// True for an OCI sha256 digest, `sha256:<64 lower-case hex>`.
pub fn is_sha256_digest(s: &str) -> bool {
    s.strip_prefix("sha256:")
        .is_some_and(|h| is_lower_hex(h, 64))
}

fn single_line<'a>(field: &'static str, value: &'a str) -> Result<&'a str, KeyError> {
    if value.is_empty() {
        return Err(KeyError::Empty { field });
    }
    if value.contains(['\n', '\r', '\0']) {
        return Err(KeyError::Multiline {
            field,
            value: value.to_string(),
        });
    }
    Ok(value)
}

impl KeyInputs {
    /// The canonical serialization hashed into the key (see `docs/archive-key.md`):
    /// UTF-8 lines `name=value\n` in a fixed order, one `jvm-option=` line per option in order.
    pub fn canonical(&self) -> Result<String, KeyError> {
        if !is_sha256_digest(&self.image_digest) {
            return Err(KeyError::BadImageDigest(self.image_digest.clone()));
        }
        let mut out = format!("classcache-key/v{KEY_VERSION}\n");
        push_line(&mut out, "image-digest", &self.image_digest);
        push_line(
            &mut out,
            "jvm-build",
            single_line("jvm_build", &self.jvm_build)?,
        );
        push_line(&mut out, "os", single_line("os", &self.os)?);
        push_line(&mut out, "arch", single_line("arch", &self.arch)?);
        self.push_platform_independent(&mut out)?;
        Ok(out)
    }

    /// The lines every platform's archive of one build shares: kind, agent, JVM options.
    fn push_platform_independent(&self, out: &mut String) -> Result<(), KeyError> {
        push_line(out, "kind", self.kind.as_str());
        match &self.agent {
            Some(agent) => {
                if !is_lower_hex(&agent.sha256, 64) {
                    return Err(KeyError::BadAgentSha(agent.sha256.clone()));
                }
                push_line(out, "agent-sha256", &agent.sha256);
                push_line(out, "agent-mode", agent.mode.as_str());
            }
            None => push_line(out, "agent", "none"),
        }
        for option in &self.jvm_options {
            push_line(out, "jvm-option", single_line("jvm_options", option)?);
        }
        Ok(())
    }

    /// Derives the key: `classcache-v1-` + hex sha256 of [`KeyInputs::canonical`].
    pub fn key(&self) -> Result<ArchiveKey, KeyError> {
        let digest = Sha256::digest(self.canonical()?.as_bytes());
        Ok(ArchiveKey(format!("{KEY_PREFIX}{}", hex::encode(digest))))
    }

    /// The canonical serialization of the index key (see `docs/archive-key.md`): the image
    /// index digest instead of the platform's image digest, JVM build and platform, then the
    /// lines of [`KeyInputs::canonical`] that every platform's build shares.
    pub fn index_canonical(&self, image_index_digest: &str) -> Result<String, KeyError> {
        if !is_sha256_digest(image_index_digest) {
            return Err(KeyError::BadImageDigest(image_index_digest.to_string()));
        }
        let mut out = format!("classcache-index-key/v{KEY_VERSION}\n");
        push_line(&mut out, "image-index", image_index_digest);
        self.push_platform_independent(&mut out)?;
        Ok(out)
    }

    /// The key of the index of per-platform archives these inputs' archive belongs to when
    /// the image is the platform manifest of the multi-platform image `image_index_digest`:
    /// `classcache-index-v1-` + hex sha256 of [`KeyInputs::index_canonical`]. One CI job per
    /// platform derives the same index key, so their archives meet in one index.
    pub fn index_key(&self, image_index_digest: &str) -> Result<IndexKey, KeyError> {
        let digest = Sha256::digest(self.index_canonical(image_index_digest)?.as_bytes());
        Ok(IndexKey(format!(
            "{INDEX_KEY_PREFIX}{}",
            hex::encode(digest)
        )))
    }
}

fn push_line(out: &mut String, name: &str, value: &str) {
    out.push_str(name);
    out.push('=');
    out.push_str(value);
    out.push('\n');
}

/// Every index key (the tag of an index of per-platform archives) starts with this; it never
/// collides with archive keys ([`KEY_PREFIX`]) nor with the fallback tags (`sha256-<hex>`).
pub const INDEX_KEY_PREFIX: &str = "classcache-index-v1-";

/// The key of an index of per-platform archives, `classcache-index-v1-<64 hex>`: its tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IndexKey(String);

tag_key!(IndexKey, INDEX_KEY_PREFIX, NotAnIndexKey);

tag_key!(ArchiveKey, KEY_PREFIX, NotAKey);

#[cfg(test)]
mod tests {
    use super::*;

    const IMAGE: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn plain() -> KeyInputs {
        KeyInputs {
            image_digest: IMAGE.to_string(),
            jvm_build: "17.0.15+6-Debian-1deb12u1".to_string(),
            os: "linux".to_string(),
            arch: "amd64".to_string(),
            kind: ArchiveKind::DynamicCds,
            agent: None,
            jvm_options: vec![],
        }
    }

    fn with_agent() -> KeyInputs {
        KeyInputs {
            jvm_build: "25.0.1+8-LTS".to_string(),
            arch: "arm64".to_string(),
            kind: ArchiveKind::AotCache,
            agent: Some(AgentIdentity {
                sha256: "a".repeat(64),
                mode: AgentMode::Attached,
            }),
            jvm_options: vec!["-XX:+UseG1GC".to_string(), "-Xmx512m".to_string()],
            ..plain()
        }
    }

    // Golden vectors: also listed in docs/archive-key.md; changing them means bumping KEY_VERSION.
    #[test]
    fn golden_vectors() {
        assert_eq!(
            plain().canonical().unwrap(),
            "classcache-key/v1\nimage-digest=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\njvm-build=17.0.15+6-Debian-1deb12u1\nos=linux\narch=amd64\nkind=dynamic-cds\nagent=none\n"
        );
        assert_eq!(
            plain().key().unwrap().as_str(),
            "classcache-v1-7231abc360000fdbed801de61c72af453d81bf2947396d506423f9e6dc0a4240"
        );
        assert_eq!(
            with_agent().key().unwrap().as_str(),
            "classcache-v1-e2880591f07614fbbe50ce7ae25d54fa9c84269c4f610b40545f35bff520ee93"
        );
    }

    const IMAGE_INDEX: &str =
        "sha256:fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

    // Golden vectors of the index key: also in docs/archive-key.md.
    #[test]
    fn index_key_golden_vectors() {
        assert_eq!(
            plain().index_canonical(IMAGE_INDEX).unwrap(),
            format!("classcache-index-key/v1\nimage-index={IMAGE_INDEX}\nkind=dynamic-cds\nagent=none\n")
        );
        assert_eq!(
            plain().index_key(IMAGE_INDEX).unwrap().as_str(),
            "classcache-index-v1-7994f27329166b2cbb9a59a217bdadb5ab8b795a0ff510f2c366d9bdd23d8b95"
        );
        assert_eq!(
            with_agent().index_key(IMAGE_INDEX).unwrap().as_str(),
            "classcache-index-v1-19d31b17e80a003895f028d28674d3dc79143aab1d1a72b776a184001bbc7859"
        );
    }

    /// The platform's own inputs leave the index key alone (one CI job per platform derives the
    /// same one); every other input, and the image index, change it.
    #[test]
    fn only_platform_independent_inputs_change_the_index_key() {
        let base = with_agent().index_key(IMAGE_INDEX).unwrap();
        let same_build_other_platform = KeyInputs {
            image_digest: IMAGE.replace('0', "1"),
            jvm_build: "25.0.1+8-LTS-aarch64".into(),
            arch: "amd64".into(),
            ..with_agent()
        };
        assert_eq!(
            same_build_other_platform.index_key(IMAGE_INDEX).unwrap(),
            base
        );
        for other in [
            KeyInputs {
                kind: ArchiveKind::DynamicCds,
                ..with_agent()
            },
            KeyInputs {
                agent: None,
                ..with_agent()
            },
            KeyInputs {
                jvm_options: vec![],
                ..with_agent()
            },
        ] {
            assert_ne!(other.index_key(IMAGE_INDEX).unwrap(), base, "{other:?}");
        }
        assert_ne!(with_agent().index_key(IMAGE).unwrap(), base);
        assert!(base.as_str().parse::<ArchiveKey>().is_err());
        assert_eq!(base.as_str().parse::<IndexKey>().unwrap(), base);
        assert!(plain().key().unwrap().as_str().parse::<IndexKey>().is_err());
        assert_eq!(
            plain().index_key("latest").unwrap_err(),
            KeyError::BadImageDigest("latest".into())
        );
    }

    #[test]
    fn every_input_changes_the_key() {
        let base = with_agent().key().unwrap();
        let variants: Vec<KeyInputs> = vec![
            KeyInputs {
                image_digest: IMAGE.replace('0', "1"),
                ..with_agent()
            },
            KeyInputs {
                jvm_build: "25.0.2+8-LTS".into(),
                ..with_agent()
            },
            KeyInputs {
                os: "windows".into(),
                ..with_agent()
            },
            KeyInputs {
                arch: "amd64".into(),
                ..with_agent()
            },
            KeyInputs {
                kind: ArchiveKind::DynamicCds,
                ..with_agent()
            },
            KeyInputs {
                agent: None,
                ..with_agent()
            },
            KeyInputs {
                agent: Some(AgentIdentity {
                    sha256: "a".repeat(64),
                    mode: AgentMode::Baked,
                }),
                ..with_agent()
            },
            KeyInputs {
                agent: Some(AgentIdentity {
                    sha256: "b".repeat(64),
                    mode: AgentMode::Attached,
                }),
                ..with_agent()
            },
            KeyInputs {
                jvm_options: vec!["-Xmx512m".into(), "-XX:+UseG1GC".into()],
                ..with_agent()
            },
            KeyInputs {
                jvm_options: vec![],
                ..with_agent()
            },
        ];
        for v in variants {
            assert_ne!(v.key().unwrap(), base, "{v:?} must change the key");
        }
    }

    #[test]
    fn bad_inputs_are_named() {
        let e = KeyInputs {
            image_digest: "latest".into(),
            ..plain()
        }
        .key()
        .unwrap_err();
        assert_eq!(e, KeyError::BadImageDigest("latest".into()));
        assert!(e.to_string().contains("platform manifest digest"));
        let e = KeyInputs {
            jvm_build: "".into(),
            ..plain()
        }
        .key()
        .unwrap_err();
        assert_eq!(e, KeyError::Empty { field: "jvm_build" });
        let e = KeyInputs {
            jvm_options: vec!["-Da=1\n-Db=2".into()],
            ..plain()
        }
        .key()
        .unwrap_err();
        assert!(matches!(
            e,
            KeyError::Multiline {
                field: "jvm_options",
                ..
            }
        ));
        let e = KeyInputs {
            agent: Some(AgentIdentity {
                sha256: "XYZ".into(),
                mode: AgentMode::Baked,
            }),
            ..plain()
        }
        .key()
        .unwrap_err();
        assert_eq!(e, KeyError::BadAgentSha("XYZ".into()));
    }

    #[test]
    fn keys_parse_and_roundtrip_through_json() {
        let key = plain().key().unwrap();
        assert_eq!(key.as_str().parse::<ArchiveKey>().unwrap(), key);
        let json = serde_json::to_string(&key).unwrap();
        assert_eq!(serde_json::from_str::<ArchiveKey>(&json).unwrap(), key);
        assert!("sha256-abc".parse::<ArchiveKey>().is_err());
        assert!(serde_json::from_str::<ArchiveKey>("\"latest\"").is_err());
        assert!(key.as_str().len() <= 128, "a key must be a valid OCI tag");
        for kind in ArchiveKind::ALL {
            assert_eq!(kind.as_str().parse::<ArchiveKind>().unwrap(), kind);
        }
    }
}
