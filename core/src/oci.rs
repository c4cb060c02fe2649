//! The OCI JSON objects classcache reads and writes: descriptors, image manifests, indexes.
//! It only (de)serializes them; it must not judge whether one is a classcache archive.

use crate::digest::Digest;
use crate::platform::Platform;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The `Range` header of a GET for bytes `range` of a `size`-byte blob, or `None` for the
/// whole blob (the fetcher's peers answer the same syntax as registries).
pub fn range_request(range: std::ops::Range<u64>, size: u64) -> Option<String> {
    match (range.start, range.end) {
        (0, end) if end >= size => None,
        (start, end) if end >= size => Some(format!("bytes={start}-")),
        (start, end) => Some(format!(
            "bytes={start}-{}",
            end.saturating_sub(1).max(start)
        )),
    }
}

/// Annotation naming a tag in an OCI image layout's `index.json`.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Annotation with the RFC 3339 creation time of an artifact.
pub const ANNOTATION_CREATED: &str = "org.opencontainers.image.created";

/// An OCI content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Descriptor {
    pub fn new(media_type: &str, digest: Digest, size: u64) -> Self {
        Self {
            media_type: media_type.to_string(),
            digest,
            size,
            artifact_type: None,
            platform: None,
            annotations: BTreeMap::new(),
        }
    }

    pub fn annotation(&self, name: &str) -> Option<&str> {
        self.annotations.get(name).map(String::as_str)
    }
}

/// An OCI image manifest (also read for Docker v2 manifests, which share these fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An OCI image index (also read for Docker manifest lists).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl ImageIndex {
    /// An empty OCI index (`application/vnd.oci.image.index.v1+json`).
    pub fn empty() -> Self {
        Self {
            schema_version: 2,
            media_type: Some(crate::media_types::OCI_INDEX.to_string()),
            artifact_type: None,
            manifests: Vec::new(),
            subject: None,
            annotations: BTreeMap::new(),
        }
    }

    /// Adds `entry` unless a descriptor with its digest is listed already; true if added.
    pub fn add_unique(&mut self, entry: Descriptor) -> bool {
        if self.manifests.iter().any(|d| d.digest == entry.digest) {
            return false;
        }
        self.manifests.push(entry);
        true
    }
}

/// Just the `mediaType` of a manifest or index, to tell which one a body is.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaTypeProbe {
    #[serde(default)]
    pub media_type: Option<String>,
    #[serde(default)]
    pub manifests: Option<serde_json::Value>,
    #[serde(default)]
    pub config: Option<serde_json::Value>,
}

impl MediaTypeProbe {
    /// The body's media type: its `mediaType`, or inferred from its shape when absent
    /// (the field is optional in OCI manifests and indexes).
    pub fn media_type_of(body: &[u8]) -> Option<String> {
        let probe: MediaTypeProbe = serde_json::from_slice(body).ok()?;
        match (probe.media_type, probe.manifests, probe.config) {
            (Some(t), _, _) => Some(t),
            (None, Some(_), _) => Some(crate::media_types::OCI_INDEX.to_string()),
            (None, None, Some(_)) => Some(crate::media_types::OCI_MANIFEST.to_string()),
            _ => None,
        }
    }
}

/// The image config fields classcache reads (platform of a single-platform image).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageConfigPlatform {
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_adds_each_digest_once_and_infers_media_types() {
        let mut index = ImageIndex::empty();
        let d = Descriptor::new(crate::media_types::OCI_MANIFEST, Digest::of(b"m"), 3);
        assert!(index.add_unique(d.clone()));
        assert!(!index.add_unique(d));
        assert_eq!(index.manifests.len(), 1);
        let json = serde_json::to_vec(&index).unwrap();
        assert_eq!(
            MediaTypeProbe::media_type_of(&json).as_deref(),
            Some(crate::media_types::OCI_INDEX)
        );
        assert_eq!(
            MediaTypeProbe::media_type_of(br#"{"schemaVersion":2,"config":{},"layers":[]}"#)
                .as_deref(),
            Some(crate::media_types::OCI_MANIFEST)
        );
    }
}
