//! Referrers: the referrers API, and the `sha256-<hex>` tag-schema fallback index the pusher
//! keeps up to date on registries without it. It must not push anything but that index.

use super::client::Access;
use super::*;

/// How often the fallback index update is re-read and retried when another pusher raced it.
const FALLBACK_INDEX_ATTEMPTS: usize = 4;

/// The `sha256-<hex>` tag of the referrers tag-schema fallback index for a subject digest.
pub fn fallback_tag(subject_digest: &Digest) -> String {
    format!("sha256-{}", subject_digest.hex())
}

/// The archive entries of a referrers listing.
pub fn archive_entries(index: ImageIndex) -> Vec<Descriptor> {
    index
        .manifests
        .into_iter()
        .filter(|d| d.artifact_type.as_deref() == Some(media_types::ARCHIVE_ARTIFACT_TYPE))
        .collect()
}

impl RegistryClient {
    /// Whether `repository` has the referrers API: `Some(index)` with the listing when it has.
    pub async fn referrers_api(
        &self,
        repository: &RegistryRef,
        subject_digest: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Option<ImageIndex>, RegistryError> {
        let mut url = self.url(repository, &format!("referrers/{subject_digest}"));
        if let Some(t) = artifact_type {
            url = format!("{url}?artifactType={}", t.replace('+', "%2B"));
        }
        let mut headers = HeaderMap::new();
        headers.insert(
            reqwest::header::ACCEPT,
            HeaderValue::from_static(media_types::OCI_INDEX),
        );
        let resp = self
            .send(repository, Access::Pull, Method::GET, &url, headers, None)
            .await?;
        match resp.status() {
            // The spec's signal for "no referrers API": use the tag schema.
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => {
                let body = self
                    .read_limited(repository, "referrers index", resp, MAX_MANIFEST_BYTES)
                    .await?;
                let index: ImageIndex =
                    artifact::parse_json(&body, &repository.to_string(), "referrers index")?;
                Ok(Some(index))
            }
            _ => Err(self
                .fail(repository, Access::Pull, "referrers", "GET", &url, resp)
                .await),
        }
    }

    /// Reads the `sha256-<hex>` fallback index (empty when the tag does not exist).
    pub async fn fallback_index(
        &self,
        repository: &RegistryRef,
        subject_digest: &Digest,
    ) -> Result<ImageIndex, RegistryError> {
        let tagged = repository.with_tag(&fallback_tag(subject_digest));
        let raw = match self.get_manifest(&tagged).await {
            Ok(raw) => raw,
            Err(RegistryError::NotFound { .. }) => return Ok(ImageIndex::empty()),
            Err(e) => return Err(e),
        };
        if raw.media_type != media_types::OCI_INDEX {
            return Err(RegistryError::Protocol {
                reference: tagged.to_string(),
                problem: format!("the referrers fallback tag holds a {} rather than an OCI index; delete or retag it, then push again", raw.media_type),
            });
        }
        Ok(artifact::parse_json(
            &raw.bytes,
            &tagged.to_string(),
            "referrers fallback index",
        )?)
    }

    /// Makes `entry` findable from `subject_digest`: nothing when the registry has the referrers
    /// API, else read-modify-write of the fallback index, re-read to catch a racing pusher.
    pub async fn add_to_referrers(
        &self,
        repository: &RegistryRef,
        subject_digest: &Digest,
        entry: &Descriptor,
    ) -> Result<ReferrersUpdate, RegistryError> {
        let repo = repository.repository_only();
        if self
            .referrers_api(&repo, subject_digest, None)
            .await?
            .is_some()
        {
            return Ok(ReferrersUpdate::NativeApi);
        }
        let tagged = repo.with_tag(&fallback_tag(subject_digest));
        let mut updated = false;
        for _ in 0..FALLBACK_INDEX_ATTEMPTS {
            let mut index = self.fallback_index(&repo, subject_digest).await?;
            if !index.add_unique(entry.clone()) {
                return Ok(if updated {
                    ReferrersUpdate::FallbackIndexUpdated
                } else {
                    ReferrersUpdate::FallbackIndexUnchanged
                });
            }
            let body = serde_json::to_vec(&index).expect("an index always serializes");
            self.put_manifest(&tagged, media_types::OCI_INDEX, Bytes::from(body))
                .await?;
            updated = true;
        }
        Err(RegistryError::Protocol {
            reference: tagged.to_string(),
            problem: "other pushes kept replacing the referrers fallback index; push again".into(),
        })
    }

    /// After a manifest with `subject` was put (answered with `headers`): nothing more when the
    /// registry indexed it itself (`OCI-Subject`), else `entry` goes into the fallback index.
    pub(super) async fn referrer_put(
        &self,
        repository: &RegistryRef,
        headers: &HeaderMap,
        subject_digest: &Digest,
        entry: &Descriptor,
    ) -> Result<ReferrersUpdate, RegistryError> {
        if headers.contains_key("oci-subject") {
            Ok(ReferrersUpdate::NativeApi)
        } else {
            self.add_to_referrers(repository, subject_digest, entry)
                .await
        }
    }

    /// The archives attached to image `image_digest` in `repository`: the referrers API when the
    /// registry has it, else the fallback index; only entries with the archive `artifactType`.
    pub async fn find_archives(
        &self,
        repository: &RegistryRef,
        image_digest: &Digest,
    ) -> Result<Vec<Descriptor>, RegistryError> {
        let repo = repository.repository_only();
        let index = match self
            .referrers_api(
                &repo,
                image_digest,
                Some(media_types::ARCHIVE_ARTIFACT_TYPE),
            )
            .await?
        {
            Some(index) => index,
            None => self.fallback_index(&repo, image_digest).await?,
        };
        Ok(archive_entries(index))
    }
}
