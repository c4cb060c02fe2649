//! Archive signatures in cosign's format: the simple-signing payload, the signature manifest (`.sig` tag or referrer), ECDSA P-256 PEM keys, signing and verifying.
//! It defines and checks the format; it must not do I/O: keys arrive as PEM text, objects as bytes.

use crate::digest::Digest;
use crate::media_types;
use crate::oci::{Descriptor, ImageManifest};
use base64::Engine as _;
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::pkcs8::{DecodePrivateKey as _, DecodePublicKey as _, EncodePublicKey as _};
use serde::{Deserialize, Serialize};

/// Layer annotation holding the base64 signature of the layer's payload (cosign's key).
pub const ANNOTATION_SIGNATURE: &str = "dev.cosignproject.cosign/signature";
/// `critical.type` of a cosign container image signature payload.
pub const PAYLOAD_TYPE: &str = "cosign container image signature";

/// How to make a key pair classcache reads, for help texts and errors.
pub const KEY_HOWTO: &str = "make one with `openssl ecparam -name prime256v1 -genkey -noout | openssl pkcs8 -topk8 -nocrypt -out classcache.key` and its public key with `openssl ec -in classcache.key -pubout -out classcache.pub`";

/// The tag cosign stores the signatures of `signed` under: `sha256-<hex>.sig`.
pub fn signature_tag(signed: &Digest) -> String {
    format!("sha256-{}.sig", signed.hex())
}

/// A key file that cannot be used; names the file and how to make a usable one.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{source_name}: {problem}; classcache signs with unencrypted ECDSA P-256 keys in PEM: {KEY_HOWTO}")]
    Unusable {
        source_name: String,
        problem: String,
    },
}

fn unusable(source_name: &str, problem: impl Into<String>) -> KeyError {
    KeyError::Unusable {
        source_name: source_name.to_string(),
        problem: problem.into(),
    }
}

/// The PEM label of the first block in `pem`, to name what a refused key file holds.
fn pem_label(pem: &str) -> Option<&str> {
    let start = pem.find("-----BEGIN ")? + "-----BEGIN ".len();
    let len = pem[start..].find("-----")?;
    Some(&pem[start..start + len])
}

/// A private signing key (ECDSA P-256).
#[derive(Clone)]
pub struct SigningKey(p256::ecdsa::SigningKey);

impl std::fmt::Debug for SigningKey {
    /// Never the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(ECDSA P-256)")
    }
}

impl SigningKey {
    /// Reads a PEM private key: PKCS#8 (`PRIVATE KEY`) or SEC 1 (`EC PRIVATE KEY`), P-256.
    /// `source_name` (the file) names it in errors.
    pub fn from_pem(pem: &str, source_name: &str) -> Result<Self, KeyError> {
        let secret = match pem_label(pem) {
            Some("PRIVATE KEY") => p256::SecretKey::from_pkcs8_pem(pem)
                .map_err(|e| unusable(source_name, format!("not a P-256 PKCS#8 key ({e})")))?,
            Some("EC PRIVATE KEY") => p256::SecretKey::from_sec1_pem(pem)
                .map_err(|e| unusable(source_name, format!("not a P-256 SEC 1 key ({e})")))?,
            Some(label @ "ENCRYPTED SIGSTORE PRIVATE KEY")
            | Some(label @ "ENCRYPTED COSIGN PRIVATE KEY") => {
                return Err(unusable(
                    source_name,
                    format!(
                    "holds a password-encrypted cosign key ({label}); sign with cosign itself, or"
                ),
                ))
            }
            Some(label) => {
                return Err(unusable(
                    source_name,
                    format!("holds a {label:?} PEM block, not a private key"),
                ))
            }
            None => return Err(unusable(source_name, "is not a PEM file")),
        };
        Ok(Self(p256::ecdsa::SigningKey::from(secret)))
    }

    /// The public key, as PEM (`PUBLIC KEY`, SubjectPublicKeyInfo), what verifiers are given.
    pub fn public_key_pem(&self) -> String {
        self.0
            .verifying_key()
            .to_public_key_pem(p256::pkcs8::LineEnding::LF)
            .expect("a P-256 public key always encodes")
    }

    /// The base64 of the ASN.1 DER ECDSA-SHA256 signature of `payload`, as cosign writes it.
    pub fn sign(&self, payload: &[u8]) -> String {
        let signature: p256::ecdsa::Signature = self.0.sign(payload);
        base64::engine::general_purpose::STANDARD.encode(signature.to_der().as_bytes())
    }
}

/// A public key signatures are checked against (ECDSA P-256), with the name it was given by.
#[derive(Clone)]
pub struct PublicKey {
    key: p256::ecdsa::VerifyingKey,
    pub name: String,
}

impl PublicKey {
    /// Reads a PEM public key (`PUBLIC KEY`, as `cosign generate-key-pair` and
    /// `openssl ec -pubout` write it); `name` (the file) names it in errors and logs.
    pub fn from_pem(pem: &str, name: &str) -> Result<Self, KeyError> {
        match pem_label(pem) {
            Some("PUBLIC KEY") => {}
            Some(label) => {
                return Err(unusable(
                    name,
                    format!("holds a {label:?} PEM block, not a PUBLIC KEY"),
                ))
            }
            None => return Err(unusable(name, "is not a PEM file")),
        }
        let key = p256::PublicKey::from_public_key_pem(pem)
            .map_err(|e| unusable(name, format!("not an ECDSA P-256 public key ({e})")))?;
        Ok(Self {
            key: key.into(),
            name: name.to_string(),
        })
    }

    /// Whether `signature_b64` (base64 of a DER, or raw r||s, ECDSA-SHA256 signature) is this
    /// key's signature of `payload`.
    pub fn verifies(&self, payload: &[u8], signature_b64: &str) -> bool {
        let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(signature_b64.trim()) else {
            return false;
        };
        let Ok(signature) = p256::ecdsa::Signature::from_der(&raw)
            .or_else(|_| p256::ecdsa::Signature::from_slice(&raw))
        else {
            return false;
        };
        // Go's ECDSA signs with either s or n-s; both are valid, the verifier wants the low one.
        let signature = signature.normalize_s().unwrap_or(signature);
        self.key.verify(payload, &signature).is_ok()
    }
}

/// The simple-signing payload cosign signs: which image (repository) and which digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimpleSigning {
    pub critical: Critical,
    /// cosign writes `null` here; claims in it are not checked.
    pub optional: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Critical {
    pub identity: Identity,
    pub image: SignedImage,
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The repository, `registry/repo` (no tag, no digest).
    #[serde(rename = "docker-reference")]
    pub docker_reference: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedImage {
    #[serde(rename = "docker-manifest-digest")]
    pub docker_manifest_digest: String,
}

impl SimpleSigning {
    /// The payload for `signed` in repository `docker_reference` (`registry/repo`).
    pub fn new(docker_reference: &str, signed: &Digest) -> Self {
        Self {
            critical: Critical {
                identity: Identity {
                    docker_reference: docker_reference.to_string(),
                },
                image: SignedImage {
                    docker_manifest_digest: signed.to_string(),
                },
                kind: PAYLOAD_TYPE.to_string(),
            },
            optional: None,
        }
    }

    /// The bytes that are signed (cosign's field order, compact JSON).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a payload always serializes")
    }
}

/// The layer descriptor of one signature: the payload blob, the signature in its annotation.
pub fn signature_layer(payload: &[u8], signature_b64: &str) -> Descriptor {
    let mut layer = Descriptor::new(
        media_types::COSIGN_SIMPLE_SIGNING,
        Digest::of(payload),
        payload.len() as u64,
    );
    layer
        .annotations
        .insert(ANNOTATION_SIGNATURE.into(), signature_b64.into());
    layer
}

/// A signature manifest and its config blob, ready to push.
#[derive(Debug, Clone)]
pub struct SignatureManifest {
    pub config_json: Vec<u8>,
    pub config: Descriptor,
    pub manifest_json: Vec<u8>,
    /// The manifest's descriptor; for a referrer, with its `artifactType` (the listing entry).
    pub descriptor: Descriptor,
}

/// The manifest holding `layers` (from [`signature_layer`]) as cosign writes it: an image
/// manifest whose config is an image config over the payloads. With `subject` it is the OCI 1.1
/// referrer form (`artifactType` and config media type the cosign signature artifact type, as
/// `cosign sign --registry-referrers-mode=oci-1-1` writes); without, the `.sig` tag form.
pub fn signature_manifest(
    layers: &[Descriptor],
    subject: Option<&Descriptor>,
) -> SignatureManifest {
    let diff_ids: Vec<String> = layers.iter().map(|l| l.digest.to_string()).collect();
    let config_json = serde_json::to_vec(&serde_json::json!({
        "architecture": "",
        "os": "",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .expect("a config always serializes");
    let artifact_type = subject.map(|_| media_types::COSIGN_SIGNATURE_ARTIFACT_TYPE.to_string());
    let config = Descriptor::new(
        artifact_type.as_deref().unwrap_or(media_types::OCI_CONFIG),
        Digest::of(&config_json),
        config_json.len() as u64,
    );
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(media_types::OCI_MANIFEST.into()),
        artifact_type: artifact_type.clone(),
        config: config.clone(),
        layers: layers.to_vec(),
        subject: subject.map(|s| {
            let mut s = s.clone();
            s.artifact_type = None;
            s.annotations.clear();
            s.platform = None;
            s
        }),
        annotations: Default::default(),
    };
    let manifest_json = serde_json::to_vec(&manifest).expect("a manifest always serializes");
    let mut descriptor = Descriptor::new(
        media_types::OCI_MANIFEST,
        Digest::of(&manifest_json),
        manifest_json.len() as u64,
    );
    descriptor.artifact_type = artifact_type;
    SignatureManifest {
        config_json,
        config,
        manifest_json,
        descriptor,
    }
}

/// The signature layers of a signature manifest (its simple-signing layers that carry a
/// signature annotation); other layers are skipped. `None` when `body` is not an image manifest.
pub fn signature_layers(body: &[u8]) -> Option<Vec<Descriptor>> {
    let manifest: ImageManifest = serde_json::from_slice(body).ok()?;
    Some(
        manifest
            .layers
            .into_iter()
            .filter(|l| {
                l.media_type == media_types::COSIGN_SIMPLE_SIGNING
                    && l.annotations.contains_key(ANNOTATION_SIGNATURE)
            })
            .collect(),
    )
}

/// Why one signature does not vouch for a digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unverified {
    #[error("its signature verifies against none of the keys")]
    NoKey,
    #[error("its payload is not a cosign simple-signing payload ({0})")]
    BadPayload(String),
    #[error("it signs {named}, not this digest")]
    OtherDigest { named: String },
}

/// Checks one signature: `signature_b64` over `payload` verifies against one of `keys`, and
/// the payload is a cosign image signature naming exactly `signed`. Returns the key's name.
pub fn verify_signature<'k>(
    payload: &[u8],
    signature_b64: &str,
    keys: &'k [PublicKey],
    signed: &Digest,
) -> Result<&'k str, Unverified> {
    let key = keys
        .iter()
        .find(|k| k.verifies(payload, signature_b64))
        .ok_or(Unverified::NoKey)?;
    let parsed: SimpleSigning =
        serde_json::from_slice(payload).map_err(|e| Unverified::BadPayload(e.to_string()))?;
    if parsed.critical.kind != PAYLOAD_TYPE {
        return Err(Unverified::BadPayload(format!(
            "type {:?}",
            parsed.critical.kind
        )));
    }
    if parsed.critical.image.docker_manifest_digest != signed.as_str() {
        return Err(Unverified::OtherDigest {
            named: parsed.critical.image.docker_manifest_digest,
        });
    }
    Ok(&key.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testing::{OTHER_SIGNING_KEY_PEM, SIGNING_KEY_PEM as KEY};

    fn digest(b: &[u8]) -> Digest {
        Digest::of(b)
    }

    #[test]
    fn a_signature_verifies_only_with_its_key_and_only_for_its_digest() {
        let key = SigningKey::from_pem(KEY, "k.pem").unwrap();
        let public = PublicKey::from_pem(&key.public_key_pem(), "k.pub").unwrap();
        let signed = digest(b"archive");
        let payload = SimpleSigning::new("127.0.0.1:5000/app", &signed).to_bytes();
        assert_eq!(
            String::from_utf8(payload.clone()).unwrap(),
            format!("{{\"critical\":{{\"identity\":{{\"docker-reference\":\"127.0.0.1:5000/app\"}},\"image\":{{\"docker-manifest-digest\":\"{signed}\"}},\"type\":\"cosign container image signature\"}},\"optional\":null}}")
        );
        let sig = key.sign(&payload);
        let keys = [public.clone()];
        assert_eq!(
            verify_signature(&payload, &sig, &keys, &signed),
            Ok("k.pub")
        );
        // Another digest: the payload names the signed one, not it.
        assert!(matches!(
            verify_signature(&payload, &sig, &keys, &digest(b"other")),
            Err(Unverified::OtherDigest { .. })
        ));
        // One changed payload byte, or a changed signature: no key verifies.
        let mut tampered = payload.clone();
        tampered[10] ^= 1;
        assert_eq!(
            verify_signature(&tampered, &sig, &keys, &signed),
            Err(Unverified::NoKey)
        );
        let other = SigningKey::from_pem(OTHER_SIGNING_KEY_PEM, "o.pem").unwrap();
        assert_eq!(
            verify_signature(&payload, &other.sign(&payload), &keys, &signed),
            Err(Unverified::NoKey)
        );
        assert_eq!(
            verify_signature(&payload, "not base64!", &keys, &signed),
            Err(Unverified::NoKey)
        );
        // A signed payload of another kind is refused although the signature is good.
        let junk = b"{\"hello\":1}";
        assert!(matches!(
            verify_signature(junk, &key.sign(junk), &keys, &signed),
            Err(Unverified::BadPayload(_))
        ));
    }

    #[test]
    fn unusable_key_files_are_named_with_the_fix() {
        for (pem, says) in [
            ("hello", "is not a PEM file"),
            (
                "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nAA==\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n",
                "password-encrypted cosign key",
            ),
            (
                "-----BEGIN RSA PRIVATE KEY-----\nAA==\n-----END RSA PRIVATE KEY-----\n",
                "\"RSA PRIVATE KEY\"",
            ),
        ] {
            let e = SigningKey::from_pem(pem, "ci.key").err().unwrap().to_string();
            assert!(e.starts_with("ci.key: ") && e.contains(says) && e.contains("openssl ecparam"), "{e}");
        }
        let e = PublicKey::from_pem(KEY, "k.pub").err().unwrap().to_string();
        assert!(e.contains("not a PUBLIC KEY"), "{e}");
    }

    #[test]
    fn signature_manifests_carry_the_layers_in_both_forms() {
        let key = SigningKey::from_pem(KEY, "k").unwrap();
        let signed = digest(b"m");
        let payload = SimpleSigning::new("r/a", &signed).to_bytes();
        let layer = signature_layer(&payload, &key.sign(&payload));
        let tagged = signature_manifest(std::slice::from_ref(&layer), None);
        assert_eq!(tagged.config.media_type, media_types::OCI_CONFIG);
        assert_eq!(
            signature_layers(&tagged.manifest_json).unwrap(),
            vec![layer.clone()]
        );
        let subject = Descriptor::new(media_types::OCI_MANIFEST, signed, 10);
        let referrer = signature_manifest(std::slice::from_ref(&layer), Some(&subject));
        let m: ImageManifest = serde_json::from_slice(&referrer.manifest_json).unwrap();
        assert_eq!(m.subject, Some(subject));
        assert_eq!(
            m.artifact_type.as_deref(),
            Some(media_types::COSIGN_SIGNATURE_ARTIFACT_TYPE)
        );
        assert_eq!(referrer.descriptor.artifact_type, m.artifact_type);
        assert_eq!(
            referrer.descriptor.digest,
            Digest::of(&referrer.manifest_json)
        );
        assert_eq!(signature_layers(b"<html>"), None);
        assert_eq!(
            signature_tag(&digest(b"m")),
            format!("sha256-{}.sig", digest(b"m").hex())
        );
    }
}
