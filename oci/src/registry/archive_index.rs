//! The index of per-platform archives of a multi-platform image, kept up to date in a registry
//! by one CI job per platform. It writes only its own platform's slot, the index and its referrer entry; it must not write another platform's slot.
//!
//! Why this is safe without conditional writes (CNCF distribution 2.8 has no `If-Match` on
//! manifest PUTs, so two jobs' read-modify-write of one index can lose an entry):
//!
//! - Nothing is read-modified-written. Each job first *registers* its archive in its own
//!   platform's slot tag (`<index key>-<os>-<arch>`), which no other platform's job writes.
//!   The index is then a pure function of the slots ([`artifact::archive_index_of`]: same
//!   slots, same bytes, same digest).
//! - A job loops: read every slot, build the index, read the index tag and the image index's
//!   referrers; when both already hold that index it stops, else it writes what is missing and
//!   reads everything again. It stops only after a round that found everything in place
//!   and wrote nothing.
//! - Take the last write any job makes (slot, index tag or referrers entry). The job that
//!   made it reads everything afterwards, and no write follows, so that read sees the final
//!   state; it stopped, so the final index tag holds the index of the final slots and the
//!   image index lists it. A job that registered after that read would have written
//!   afterwards (its own index differs from the one in place), which contradicts "last".
//!   A stale write by a slow job (an index built from older slots) is always followed by that
//!   same job's next full read, which sees the newer slots and writes again.
//! - What it needs from the registry is read-after-write on one tag, which a single
//!   distribution instance (or any strongly consistent store) gives; reads must not come from
//!   a cache. A job that runs out of rounds fails, so CI shows it and a re-run repairs it.
//!
//! Superseded indexes stay listed as referrers (removing them would be a read-modify-write of
//! their own); readers take the newest ([`artifact::newest_referrer`]), and the complete index
//! is never older than a partial one.

use super::*;
use classcache_core::artifact::{archive_index_of, archive_index_slot_tag, parse_archive_manifest};
use classcache_core::key::IndexKey;
use classcache_core::platform::Platform;

/// Rounds of read, (write,) read again before a job gives up; two jobs converge in two or three.
const INDEX_UPDATE_ROUNDS: usize = 8;

/// What one round of the update found.
enum Round {
    /// The index of the current slots is tagged and listed: done.
    InPlace(Box<UpdatedIndex>),
    /// Something was missing and has been written: read again.
    Wrote,
}

/// A server error (5xx), or a manifest named by what is being written that the registry does
/// not see at this instant: the same request may succeed right after.
fn is_transient(e: &RegistryError) -> bool {
    match e {
        RegistryError::Http { status, body, .. } => {
            *status >= 500 || (*status == 400 && body.contains("MANIFEST_BLOB_UNKNOWN"))
        }
        _ => false,
    }
}

/// The index of per-platform archives after an update.
#[derive(Debug, Clone)]
pub struct UpdatedIndex {
    /// `registry/repo:<index key>@sha256:…`.
    pub reference: String,
    pub digest: Digest,
    /// The index's descriptor (what a signature names).
    pub descriptor: Descriptor,
    pub key: IndexKey,
    /// The platforms it covers, in the image index's order.
    pub platforms: Vec<Platform>,
    /// The image's platforms that have no archive in it yet.
    pub missing: Vec<Platform>,
    /// Rounds in which this job wrote the index or its referrer entry (0: another job's
    /// index was already complete).
    pub writes: usize,
}

impl RegistryClient {
    /// Adds or replaces the archive `pushed` (already in `repository`; its subject a platform
    /// manifest of the image index `image_index`) in the index of per-platform archives `key`,
    /// keeping every other platform's entry; see the module comment for why two jobs racing
    /// on one index both end in it.
    pub async fn update_archive_index(
        &self,
        repository: &RegistryRef,
        key: &IndexKey,
        image_index: &Descriptor,
        pushed: &PushedArchive,
    ) -> Result<UpdatedIndex, RegistryError> {
        let repo = repository.repository_only();
        let platforms = self.image_platforms(&repo, image_index).await?;
        let subject = &pushed.config.image.digest;
        let (own, _) = platforms
            .iter()
            .find(|(_, d)| d == subject)
            .ok_or_else(|| RegistryError::Protocol {
                reference: repo.with_digest(&image_index.digest).to_string(),
                problem: format!(
                    "the archive's image {subject} is not one of this image index's platform manifests; build the archive from the multi-platform image itself"
                ),
            })?;
        // Register: this platform's slot names the archive (the same manifest bytes).
        let manifest = self
            .get_manifest(&repo.with_digest(&pushed.manifest_digest))
            .await?;
        self.put_manifest(
            &repo.with_tag(&archive_index_slot_tag(key, own)),
            media_types::OCI_MANIFEST,
            manifest.bytes,
        )
        .await?;

        let tagged = repo.with_tag(key.as_str());
        let mut writes = 0;
        let mut last_error = None;
        for round in 0..INDEX_UPDATE_ROUNDS {
            match self
                .index_round(&repo, key, image_index, &platforms, &tagged)
                .await
            {
                Ok(Round::InPlace(updated)) => return Ok(UpdatedIndex { writes, ..*updated }),
                Ok(Round::Wrote) => writes += 1,
                // distribution's filesystem driver rewrites link files in place (a tag's, and
                // a manifest's revision link when two jobs put the same index): a read that
                // meets such a write gets a 500 ("invalid checksum digest format"), a PUT
                // naming that manifest a 400 MANIFEST_BLOB_UNKNOWN. Every round starts with a
                // full read and its writes are idempotent, so the round is simply run again.
                Err(e) if is_transient(&e) => {
                    last_error = Some(e);
                    tokio::time::sleep(std::time::Duration::from_millis(50 * (round as u64 + 1)))
                        .await;
                }
                Err(e) => return Err(e),
            }
        }
        Err(RegistryError::Protocol {
            reference: tagged.to_string(),
            problem: format!(
                "the index of per-platform archives kept changing under other pushes for {INDEX_UPDATE_ROUNDS} rounds{}; this archive is pushed and in its platform's slot, run the build again to rebuild the index",
                last_error.map(|e| format!(" (last: {e})")).unwrap_or_default()
            ),
        })
    }

    /// One round: read every slot, the index tag and the image index's referrers; stop when
    /// they already agree, else write what is missing (the next round reads it all again).
    async fn index_round(
        &self,
        repo: &RegistryRef,
        key: &IndexKey,
        image_index: &Descriptor,
        platforms: &[(Platform, Digest)],
        tagged: &RegistryRef,
    ) -> Result<Round, RegistryError> {
        let entries = self.read_slots(repo, key, platforms).await?;
        let index = archive_index_of(key, image_index.clone(), entries)?;
        let body = Bytes::from(serde_json::to_vec(&index).expect("an index always serializes"));
        let entry = artifact::referrer_entry(
            media_types::OCI_INDEX,
            &body,
            index.artifact_type.as_deref(),
            &index.annotations,
        );
        let in_place = self
            .head_manifest(tagged)
            .await?
            .is_some_and(|d| d.digest == entry.digest);
        let listed = self
            .find_archives(repo, &image_index.digest)
            .await?
            .iter()
            .any(|d| d.digest == entry.digest);
        if in_place && listed {
            let covered = artifact::index_platforms(&index);
            let missing = platforms
                .iter()
                .map(|(p, _)| p)
                .filter(|p| !covered.contains(p))
                .cloned()
                .collect();
            return Ok(Round::InPlace(Box::new(UpdatedIndex {
                reference: format!("{tagged}@{}", entry.digest),
                digest: entry.digest.clone(),
                descriptor: Descriptor::new(
                    media_types::OCI_INDEX,
                    entry.digest.clone(),
                    entry.size,
                ),
                key: key.clone(),
                platforms: covered,
                missing,
                writes: 0,
            })));
        }
        if !in_place {
            let (_, headers) = self
                .put_manifest_with_headers(tagged, media_types::OCI_INDEX, body)
                .await?;
            self.referrer_put(repo, &headers, &image_index.digest, &entry)
                .await?;
        } else {
            self.add_to_referrers(repo, &image_index.digest, &entry)
                .await?;
        }
        Ok(Round::Wrote)
    }

    /// The index of per-platform archives to use for the multi-platform image `image_index`:
    /// the newest index its referrers list ([`artifact::newest_referrer`]) picks the index
    /// key; that key's tag, which the update loop leaves holding the index of the latest
    /// slots, gives the digest (a listed index may be a superseded one of the same second).
    /// `None` when the image has no index of archives.
    pub async fn find_archive_index(
        &self,
        repository: &RegistryRef,
        image_index_digest: &Digest,
    ) -> Result<Option<Descriptor>, RegistryError> {
        let repo = repository.repository_only();
        let listed = self.find_archives(&repo, image_index_digest).await?;
        let Some(newest) = artifact::newest_referrer(
            listed
                .iter()
                .filter(|d| media_types::is_index(&d.media_type)),
        ) else {
            return Ok(None);
        };
        let tag = newest
            .annotation(artifact::ANNOTATION_INDEX_KEY)
            .and_then(|k| k.parse::<IndexKey>().ok());
        if let Some(tag) = tag {
            if let Some(current) = self.head_manifest(&repo.with_tag(tag.as_str())).await? {
                if media_types::is_index(&current.media_type) {
                    return Ok(Some(current));
                }
            }
        }
        Ok(Some(newest.clone()))
    }

    /// The platforms of the image index and their platform manifest digests, in its order
    /// (attestation entries, `unknown/unknown`, left out).
    async fn image_platforms(
        &self,
        repo: &RegistryRef,
        image_index: &Descriptor,
    ) -> Result<Vec<(Platform, Digest)>, RegistryError> {
        let reference = repo.with_digest(&image_index.digest);
        let raw = self.get_manifest(&reference).await?;
        let index: ImageIndex =
            artifact::parse_json(&raw.bytes, &reference.to_string(), "image index")?;
        Ok(index
            .manifests
            .into_iter()
            .filter_map(|d| Some((d.platform?, d.digest)))
            .filter(|(p, _)| p.os != "unknown" && p.architecture != "unknown")
            .collect())
    }

    /// The index entries the slots of `key` name now, in the image index's platform order;
    /// a slot whose archive is not of that platform's manifest is refused.
    async fn read_slots(
        &self,
        repo: &RegistryRef,
        key: &IndexKey,
        platforms: &[(Platform, Digest)],
    ) -> Result<Vec<Descriptor>, RegistryError> {
        let mut entries = Vec::with_capacity(platforms.len());
        for (platform, image) in platforms {
            let slot = repo.with_tag(&archive_index_slot_tag(key, platform));
            let raw = match self.get_manifest(&slot).await {
                Ok(raw) => raw,
                Err(RegistryError::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            };
            let manifest = parse_archive_manifest(&raw.bytes, &slot.to_string())?;
            if manifest.subject.as_ref().map(|s| &s.digest) != Some(image) {
                return Err(RegistryError::Protocol {
                    reference: slot.to_string(),
                    problem: format!(
                        "this slot of the archive index names an archive that is not of the image's {platform} manifest {image}; delete the tag and run the build for {platform} again"
                    ),
                });
            }
            let mut entry = artifact::referrer_entry(
                media_types::OCI_MANIFEST,
                &raw.bytes,
                manifest.artifact_type.as_deref(),
                &manifest.annotations,
            );
            entry.platform = Some(platform.clone());
            entries.push(entry);
        }
        Ok(entries)
    }
}
