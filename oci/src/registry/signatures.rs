//! Archive signatures in a registry: push a cosign-format signature of a manifest (`.sig` tag and referrer), and find the signature manifests of a digest.
//! It moves signature objects only; it must not judge a signature: core verifies them.

use super::*;
use classcache_core::artifact::signature::{
    signature_layer, signature_layers, signature_manifest, signature_tag, SignatureManifest,
    SigningKey, SimpleSigning,
};

/// Most signature referrers read for one digest (the newest entries of the listing).
const MAX_SIGNATURE_REFERRERS: usize = 16;

/// Where a pushed signature went.
#[derive(Debug, Clone)]
pub struct PushedSignature {
    /// The signed manifest's digest.
    pub signed: Digest,
    /// `registry/repo:sha256-<hex>.sig`, cosign's default place.
    pub tag_reference: String,
    /// The referrer manifest (`subject` = the signed manifest).
    pub referrer: Descriptor,
    pub referrers: ReferrersUpdate,
}

impl RegistryClient {
    /// Signs the manifest `signed` (in `repository`) with `key` and pushes the signature twice:
    /// appended to the `sha256-<hex>.sig` tag (what `cosign verify` reads), and as an OCI 1.1
    /// referrer of `signed` (what `cosign verify --experimental-oci11` reads), with the
    /// tag-schema fallback index kept up to date on registries without the referrers API.
    pub async fn push_signature(
        &self,
        repository: &RegistryRef,
        signed: &Descriptor,
        key: &SigningKey,
    ) -> Result<PushedSignature, RegistryError> {
        let repo = repository.repository_only();
        let identity = format!("{}/{}", repo.registry, repo.repository);
        let payload = SimpleSigning::new(&identity, &signed.digest).to_bytes();
        let layer = signature_layer(&payload, &key.sign(&payload));
        self.push_blob_bytes(&repo, &layer, Bytes::from(payload))
            .await?;

        // The tag form: keep the signatures already there (other keys, cosign's own).
        let tagged = repo.with_tag(&signature_tag(&signed.digest));
        let mut layers = match self.get_manifest(&tagged).await {
            Ok(raw) => signature_layers(&raw.bytes).unwrap_or_default(),
            Err(RegistryError::NotFound { .. }) => Vec::new(),
            Err(e) => return Err(e),
        };
        layers.retain(|l| l.digest != layer.digest);
        layers.push(layer.clone());
        let tag_form = signature_manifest(&layers, None);
        self.push_signature_manifest(&repo, &tagged, &tag_form)
            .await?;

        let referrer = signature_manifest(std::slice::from_ref(&layer), Some(signed));
        let headers = self
            .push_signature_manifest(
                &repo,
                &repo.with_digest(&referrer.descriptor.digest),
                &referrer,
            )
            .await?;
        let referrers = self
            .referrer_put(&repo, &headers, &signed.digest, &referrer.descriptor)
            .await?;
        Ok(PushedSignature {
            signed: signed.digest.clone(),
            tag_reference: tagged.to_string(),
            referrer: referrer.descriptor,
            referrers,
        })
    }

    /// Pushes a signature manifest's config blob, then the manifest at `at` (a tag or digest).
    async fn push_signature_manifest(
        &self,
        repo: &RegistryRef,
        at: &RegistryRef,
        manifest: &SignatureManifest,
    ) -> Result<HeaderMap, RegistryError> {
        self.push_blob_bytes(
            repo,
            &manifest.config,
            Bytes::from(manifest.config_json.clone()),
        )
        .await?;
        Ok(self
            .put_manifest_with_headers(
                at,
                media_types::OCI_MANIFEST,
                Bytes::from(manifest.manifest_json.clone()),
            )
            .await?
            .1)
    }

    /// The signature manifests of `signed` in `repository`: the one at the `.sig` tag and the
    /// cosign-signature referrers (the referrers API, else the fallback index), each read by
    /// digest, at most [`MAX_MANIFEST_BYTES`]. None found is an empty list, not an error.
    pub async fn signature_manifests(
        &self,
        repository: &RegistryRef,
        signed: &Digest,
    ) -> Result<Vec<RawManifest>, RegistryError> {
        let repo = repository.repository_only();
        let mut found = Vec::new();
        match self
            .get_manifest(&repo.with_tag(&signature_tag(signed)))
            .await
        {
            Ok(raw) => found.push(raw),
            Err(RegistryError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        let artifact_type = media_types::COSIGN_SIGNATURE_ARTIFACT_TYPE;
        let listing = match self
            .referrers_api(&repo, signed, Some(artifact_type))
            .await?
        {
            Some(index) => index,
            None => self.fallback_index(&repo, signed).await?,
        };
        let entries: Vec<Descriptor> = listing
            .manifests
            .into_iter()
            .filter(|d| d.artifact_type.as_deref() == Some(artifact_type))
            .collect();
        let newest = entries.len().saturating_sub(MAX_SIGNATURE_REFERRERS);
        for entry in &entries[newest..] {
            found.push(self.get_manifest(&repo.with_digest(&entry.digest)).await?);
        }
        Ok(found)
    }
}
