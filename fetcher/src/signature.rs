//! `--require-signature`: publish an archive only when its pinned digest has a cosign signature by a `--signature-key` key whose payload names exactly that digest.
//! It reads signature objects only (capped, digest-checked); it must not fetch or publish archives.

use crate::locks::LockExt;
use crate::metrics::ErrorKind;
use classcache_core::artifact::signature::{
    signature_layers, verify_signature, KeyError, PublicKey,
};
use classcache_core::digest::Digest;
use classcache_core::fetcher::args::{REQUIRE_SIGNATURE_FLAG, SIGNATURE_KEY_FLAG};
use classcache_core::reference::RegistryRef;
use classcache_oci::content::MAX_MANIFEST_BYTES;
use classcache_oci::registry::{RegistryClient, RegistryError};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

/// Most signature layers tried for one digest: a registry full of junk signatures cannot make
/// the fetcher read without end.
const MAX_SIGNATURES_TRIED: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    #[error("cannot read --{SIGNATURE_KEY_FLAG} {path}: {source}; pass the path of a PEM public key (the .pub of `cosign generate-key-pair`, or `openssl ec -pubout`)")]
    KeyFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("--{REQUIRE_SIGNATURE_FLAG} needs at least one --{SIGNATURE_KEY_FLAG} FILE (a PEM public key)")]
    NoKeys,
    #[error("{reference}: refused, this fetcher requires signed archives (--{REQUIRE_SIGNATURE_FLAG}) and {problem}. Fix: sign exactly this digest with a key the fetcher trusts (`classcache-build --sign-key KEY`, or `cosign sign --key KEY {reference}`), or give the signer's public key to `kubectl classcache install --signature-key`")]
    Unsigned { reference: String, problem: String },
    #[error("{reference}: refused, this fetcher requires signed archives (--{REQUIRE_SIGNATURE_FLAG}) and their signatures cannot be read from the registry: {source}; check the registry and the fetcher's credentials")]
    Unreadable {
        reference: String,
        #[source]
        source: Box<RegistryError>,
    },
}

impl SignatureError {
    pub fn metric_kind(&self) -> ErrorKind {
        match self {
            SignatureError::Unreadable { .. } => ErrorKind::Registry,
            _ => ErrorKind::Unsigned,
        }
    }
}

/// The keys archives must be signed with, and where their signatures are read.
pub struct SignaturePolicy {
    keys: Vec<PublicKey>,
    registry: RegistryClient,
    /// Digests whose signature verified in this process (the key's name): a published archive
    /// is asked for at every pod start, its signature is read once per fetcher start.
    verified: Mutex<HashMap<Digest, String>>,
}

impl SignaturePolicy {
    /// Reads the PEM public keys at `paths` (refused when there is none, or one is unusable).
    pub fn from_key_files(
        paths: &[PathBuf],
        registry: RegistryClient,
    ) -> Result<Self, SignatureError> {
        if paths.is_empty() {
            return Err(SignatureError::NoKeys);
        }
        let keys = paths
            .iter()
            .map(|path| {
                let pem =
                    std::fs::read_to_string(path).map_err(|source| SignatureError::KeyFile {
                        path: path.clone(),
                        source,
                    })?;
                Ok(PublicKey::from_pem(&pem, &path.display().to_string())?)
            })
            .collect::<Result<_, SignatureError>>()?;
        Ok(Self {
            keys,
            registry,
            verified: Mutex::default(),
        })
    }

    /// Ok (with the key's name) when `pinned` in `repo` has a signature by one of the keys
    /// whose payload names exactly `pinned`; else why not, signature by signature.
    pub async fn check(
        &self,
        repo: &RegistryRef,
        pinned: &Digest,
    ) -> Result<String, SignatureError> {
        if let Some(key) = self.verified.locked().get(pinned) {
            return Ok(key.clone());
        }
        let reference = repo.with_digest(pinned).to_string();
        let unreadable = |source| SignatureError::Unreadable {
            reference: reference.clone(),
            source: Box::new(source),
        };
        let manifests = self
            .registry
            .signature_manifests(repo, pinned)
            .await
            .map_err(unreadable)?;
        let mut problems = Vec::new();
        let layers = manifests
            .iter()
            .flat_map(|m| signature_layers(&m.bytes).unwrap_or_default())
            .take(MAX_SIGNATURES_TRIED);
        for (n, layer) in layers.enumerate() {
            let signature = layer
                .annotation(classcache_core::artifact::signature::ANNOTATION_SIGNATURE)
                .unwrap_or_default();
            if layer.size > MAX_MANIFEST_BYTES as u64 {
                problems.push(format!("signature {}: its payload has {} bytes (at most {MAX_MANIFEST_BYTES} are read)", n + 1, layer.size));
                continue;
            }
            // Capped and checked against the layer's digest by the client.
            let payload = match self.registry.get_blob_bytes(repo, &layer).await {
                Ok(payload) => payload,
                Err(e) => {
                    problems.push(format!(
                        "signature {}: its payload cannot be read ({e})",
                        n + 1
                    ));
                    continue;
                }
            };
            match verify_signature(&payload, signature, &self.keys, pinned) {
                Ok(key) => {
                    tracing::info!(%reference, key, "signature verified");
                    self.verified
                        .locked()
                        .insert(pinned.clone(), key.to_string());
                    return Ok(key.to_string());
                }
                Err(why) => problems.push(format!("signature {}: {why}", n + 1)),
            }
        }
        let keys: Vec<&str> = self.keys.iter().map(|k| k.name.as_str()).collect();
        let problem = if problems.is_empty() {
            format!("it has no signature (none at its sha256-<hex>.sig tag nor among its referrers); keys trusted: {}", keys.join(", "))
        } else {
            format!(
                "none of its signatures is valid ({}); keys trusted: {}",
                problems.join("; "),
                keys.join(", ")
            )
        };
        Err(SignatureError::Unsigned { reference, problem })
    }
}
