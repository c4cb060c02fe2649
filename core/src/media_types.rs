//! The media types of classcache artifacts and of the OCI objects around them.
//! Every program names these constants; no other file spells a media type out.

/// `artifactType` of an archive manifest: what the referrers API filters on.
pub const ARCHIVE_ARTIFACT_TYPE: &str = "application/vnd.classcache.archive.v1";
/// Media type of the archive's JSON config ([`crate::artifact::ArchiveConfig`]).
pub const ARCHIVE_CONFIG: &str = "application/vnd.classcache.archive.config.v1+json";
/// Media type of the one layer: a tar with the archive file, gzip-compressed.
pub const ARCHIVE_LAYER: &str = "application/vnd.classcache.archive.layer.v1.tar+gzip";

/// Media type of a cosign signature layer: the simple-signing payload, its signature in the
/// layer's `dev.cosignproject.cosign/signature` annotation.
pub const COSIGN_SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// `artifactType` of a cosign signature stored as a referrer (what `cosign verify
/// --experimental-oci11` lists the referrers by).
pub const COSIGN_SIGNATURE_ARTIFACT_TYPE: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Media type of a gzip-compressed tar layer of an OCI image (the image-volume form's layer).
pub const OCI_LAYER_TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// The `Accept` header for manifest GETs: every manifest kind classcache reads.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

/// True for a single-platform image manifest (OCI or Docker v2).
pub fn is_image_manifest(media_type: &str) -> bool {
    media_type == OCI_MANIFEST || media_type == DOCKER_MANIFEST
}

/// True for a multi-platform index (OCI index or Docker manifest list).
pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
}
