//! The index of per-platform archives of a multi-platform image: its entries, its tags (the
//! index key, and one slot tag per platform), its deterministic body, and picking an entry.
//! It builds and reads indexes; it must not fetch or push anything.

use super::ArtifactError;
use crate::key::IndexKey;
use crate::media_types;
use crate::oci::{Descriptor, ImageIndex, ANNOTATION_CREATED};
use crate::platform::Platform;
use std::collections::BTreeMap;

use super::ArchiveConfig;

/// Index annotation with its index key (also its tag), shown in referrer listings.
pub const ANNOTATION_INDEX_KEY: &str = "dev.classcache.index-key";
/// Index annotation with the platforms it covers, `os/arch[/variant]` joined by `,`, in
/// entry order, so a listing shows them without fetching the index.
pub const ANNOTATION_PLATFORMS: &str = "dev.classcache.platforms";

/// Longest OCI tag.
const MAX_TAG_LEN: usize = 128;

/// The tag of `platform`'s slot of the index `key`: `<index key>-<os>-<arch>[-<variant>]`,
/// naming that platform's archive manifest. Only the CI job of that platform writes it; the
/// index is rebuilt from the slots (see `docs/artifact-format.md`). Characters a tag cannot
/// hold become `_`; a platform too long for a tag is named by its sha256 instead.
pub fn archive_index_slot_tag(key: &IndexKey, platform: &Platform) -> String {
    let mut parts = vec![platform.os.as_str(), platform.architecture.as_str()];
    parts.extend(platform.variant.as_deref());
    let suffix: String = parts
        .join("-")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let tag = format!("{key}-{suffix}");
    if tag.len() <= MAX_TAG_LEN {
        tag
    } else {
        let digest = crate::digest::Digest::of(platform.to_string().as_bytes());
        format!("{key}-p{}", &digest.hex()[..32])
    }
}

/// The descriptor of an archive manifest as an entry of an index of per-platform archives.
pub fn archive_index_entry(manifest_descriptor: &Descriptor, config: &ArchiveConfig) -> Descriptor {
    let mut entry = manifest_descriptor.clone();
    entry.platform = Some(config.platform.clone());
    entry.artifact_type = Some(media_types::ARCHIVE_ARTIFACT_TYPE.to_string());
    entry
}

/// Builds the index of per-platform archives of a multi-platform image: `artifactType` the
/// archive type, `subject` the image index, one entry per platform (see
/// [`archive_index_entry`]). Pods pin its digest, the same on every node; each node takes the
/// entry for its own platform.
pub fn build_archive_index(
    entries: Vec<Descriptor>,
    subject: Descriptor,
    created: &str,
) -> Result<ImageIndex, ArtifactError> {
    let bad = |problem: String| ArtifactError::BadIndexEntries {
        subject: subject.digest.to_string(),
        problem,
    };
    if entries.is_empty() {
        return Err(bad("no entries".into()));
    }
    let mut seen = Vec::new();
    for e in &entries {
        let Some(p) = &e.platform else {
            return Err(bad(format!("entry {} has no platform", e.digest)));
        };
        if e.artifact_type.as_deref() != Some(media_types::ARCHIVE_ARTIFACT_TYPE)
            || e.media_type != media_types::OCI_MANIFEST
        {
            return Err(bad(format!(
                "entry {} is not an archive manifest",
                e.digest
            )));
        }
        if seen.contains(p) {
            return Err(bad(format!("two entries for {p}")));
        }
        seen.push(p.clone());
    }
    Ok(ImageIndex {
        schema_version: 2,
        media_type: Some(media_types::OCI_INDEX.to_string()),
        artifact_type: Some(media_types::ARCHIVE_ARTIFACT_TYPE.to_string()),
        manifests: entries,
        subject: Some(subject),
        annotations: BTreeMap::from([(ANNOTATION_CREATED.to_string(), created.to_string())]),
    })
}

/// The index `key` of the archives in `entries` (each an [`archive_index_entry`], in the
/// image index's platform order) for the image index `subject`. Its bytes depend only on its
/// inputs: `created` is the newest entry's, never the clock, so every CI job that sees the
/// same slots builds the very same index (same digest), and a job that finds it in place
/// writes nothing.
pub fn archive_index_of(
    key: &IndexKey,
    subject: Descriptor,
    entries: Vec<Descriptor>,
) -> Result<ImageIndex, ArtifactError> {
    let created = entries
        .iter()
        .filter_map(|e| e.annotation(ANNOTATION_CREATED))
        .max()
        .ok_or_else(|| ArtifactError::BadIndexEntries {
            subject: subject.digest.to_string(),
            problem: "no entry has a creation time (org.opencontainers.image.created)".into(),
        })?
        .to_string();
    let mut index = build_archive_index(entries, subject, &created)?;
    let platforms = index_platforms(&index)
        .iter()
        .map(Platform::to_string)
        .collect::<Vec<_>>()
        .join(",");
    index
        .annotations
        .insert(ANNOTATION_INDEX_KEY.to_string(), key.to_string());
    index
        .annotations
        .insert(ANNOTATION_PLATFORMS.to_string(), platforms);
    Ok(index)
}

/// The platforms of an index of per-platform archives, in index order.
pub fn index_platforms(index: &ImageIndex) -> Vec<Platform> {
    index
        .manifests
        .iter()
        .filter_map(|d| d.platform.clone())
        .collect()
}

/// The entry of an index of per-platform archives for `want` (a `want` without variant
/// accepts any variant); the error names the platforms the index has.
pub fn pick_platform_archive<'a>(
    reference: &str,
    index: &'a ImageIndex,
    want: &Platform,
) -> Result<&'a Descriptor, ArtifactError> {
    index
        .manifests
        .iter()
        .find(|d| d.platform.as_ref().is_some_and(|p| p.satisfies(want)))
        .ok_or_else(|| ArtifactError::NoArchiveForPlatform {
            reference: reference.to_string(),
            platform: want.to_string(),
            available: index_platforms(index)
                .iter()
                .map(Platform::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// The newest of several referrer entries (archives, or indexes of them): the latest
/// `created` (RFC 3339 UTC sorts as text), then the one covering more platforms
/// ([`ANNOTATION_PLATFORMS`]), then the later listed. An index rebuilt while two platforms'
/// jobs raced can leave an older, partial index listed beside the complete one with the same
/// `created`; the complete one wins.
pub fn newest_referrer<'a>(
    entries: impl Iterator<Item = &'a Descriptor>,
) -> Option<&'a Descriptor> {
    let platforms = |d: &Descriptor| {
        d.annotation(ANNOTATION_PLATFORMS)
            .map_or(0, |p| p.split(',').filter(|s| !s.is_empty()).count())
    };
    entries.max_by(|a, b| {
        a.annotation(ANNOTATION_CREATED)
            .cmp(&b.annotation(ANNOTATION_CREATED))
            .then(platforms(a).cmp(&platforms(b)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;

    fn key() -> IndexKey {
        format!("classcache-index-v1-{}", "ab".repeat(32))
            .parse()
            .unwrap()
    }

    fn entry(platform: &str, created: &str) -> Descriptor {
        let mut d = Descriptor::new(
            media_types::OCI_MANIFEST,
            Digest::of(format!("{platform}{created}").as_bytes()),
            1000,
        );
        d.platform = Some(platform.parse().unwrap());
        d.artifact_type = Some(media_types::ARCHIVE_ARTIFACT_TYPE.into());
        d.annotations
            .insert(ANNOTATION_CREATED.into(), created.into());
        d
    }

    fn subject() -> Descriptor {
        Descriptor::new(media_types::OCI_INDEX, Digest::of(b"image index"), 700)
    }

    #[test]
    fn slot_tags_name_the_platform_and_are_valid_tags() {
        let amd = archive_index_slot_tag(&key(), &"linux/amd64".parse().unwrap());
        assert_eq!(amd, format!("{}-linux-amd64", key()));
        let arm = archive_index_slot_tag(&key(), &"linux/arm64/v8".parse().unwrap());
        assert_eq!(arm, format!("{}-linux-arm64-v8", key()));
        let odd = archive_index_slot_tag(&key(), &"os+x/arch y".parse().unwrap());
        assert_eq!(odd, format!("{}-os_x-arch_y", key()));
        let long: Platform = format!("linux/{}", "x".repeat(60)).parse().unwrap();
        let long_tag = archive_index_slot_tag(&key(), &long);
        assert!(long_tag.len() <= MAX_TAG_LEN, "{long_tag}");
        assert_ne!(
            long_tag,
            archive_index_slot_tag(&key(), &"linux/x".parse().unwrap())
        );
        for tag in [amd, arm, odd, long_tag] {
            assert!(
                tag.len() <= MAX_TAG_LEN
                    && tag
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)),
                "{tag} is not an OCI tag"
            );
        }
    }

    #[test]
    fn the_index_of_slots_depends_only_on_its_entries() {
        let entries = vec![
            entry("linux/amd64", "2026-01-02T00:00:00Z"),
            entry("linux/arm64", "2026-01-03T00:00:00Z"),
        ];
        let a = archive_index_of(&key(), subject(), entries.clone()).unwrap();
        let b = archive_index_of(&key(), subject(), entries.clone()).unwrap();
        assert_eq!(
            serde_json::to_vec(&a).unwrap(),
            serde_json::to_vec(&b).unwrap()
        );
        assert_eq!(a.annotations[ANNOTATION_CREATED], "2026-01-03T00:00:00Z");
        assert_eq!(a.annotations[ANNOTATION_INDEX_KEY], key().as_str());
        assert_eq!(
            a.annotations[ANNOTATION_PLATFORMS],
            "linux/amd64,linux/arm64"
        );
        assert_eq!(a.subject, Some(subject()));
        let mut bare = entry("linux/amd64", "x");
        bare.annotations.clear();
        let e = archive_index_of(&key(), subject(), vec![bare]).unwrap_err();
        assert!(
            e.to_string().contains("no entry has a creation time"),
            "{e}"
        );
        let e = archive_index_of(&key(), subject(), vec![]).unwrap_err();
        assert!(
            e.to_string().contains("no entry has a creation time"),
            "{e}"
        );
    }

    #[test]
    fn the_newest_referrer_is_the_latest_then_the_most_complete() {
        let index = |created: &str, platforms: &str| {
            let mut d = entry("linux/amd64", &format!("{created}{platforms}"));
            d.annotations
                .insert(ANNOTATION_CREATED.into(), created.into());
            d.annotations
                .insert(ANNOTATION_PLATFORMS.into(), platforms.into());
            d
        };
        let partial = index("2026-01-03T00:00:00Z", "linux/amd64");
        let complete = index("2026-01-03T00:00:00Z", "linux/amd64,linux/arm64");
        let older = index("2026-01-02T00:00:00Z", "linux/amd64,linux/arm64");
        let all = [complete.clone(), partial.clone(), older.clone()];
        assert_eq!(newest_referrer(all.iter()), Some(&complete));
        let all = [older, partial.clone()];
        assert_eq!(newest_referrer(all.iter()), Some(&partial));
        assert_eq!(newest_referrer([].iter()), None);
    }
}
