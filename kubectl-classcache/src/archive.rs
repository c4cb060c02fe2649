//! Which archive a container gets: an explicit `--archive` (registry or OCI layout), or the
//! archive attached to the container's image in its registry. It reads registries and layouts;
//! it must not edit workloads.

use anyhow::{anyhow, bail, Context, Result};
use classcache_core::allowed_registry::AllowedRegistries;
use classcache_core::artifact::{image_volume_of, newest_referrer, ArchiveConfig, Platform};
use classcache_core::digest::Digest;
use classcache_core::media_types;
use classcache_core::oci::Descriptor;
use classcache_core::reference::{ArchiveLocation, RegistryRef};
use classcache_oci::content::{archive_manifests, ArchiveManifest, ContentRef};
use classcache_oci::layout::OciLayout;
use classcache_oci::registry::{RegistryClient, RegistryOptions};
use std::collections::HashMap;

use crate::cli::RegistryArgs;

/// An archive pinned by digest, with the config of each platform it covers.
#[derive(Debug, Clone)]
pub struct ResolvedArchive {
    /// Platform-independent and pinned: `<registry>/<repo>@sha256:…` (an archive manifest or an
    /// index of per-platform archives), or `oci:DIR@sha256:…` for a layout.
    pub reference: String,
    pub configs: Vec<ArchiveConfig>,
    /// The image digest the archive was found from (an index or a manifest), to pin the image.
    pub image_digest: Option<Digest>,
    /// What the user should know about this choice.
    pub notes: Vec<String>,
    /// The archive's image-volume form, pinned like `reference` (`<registry>/<repo>@sha256:…`):
    /// only for a single-platform archive in a registry whose manifest names one.
    pub image_volume: Option<String>,
}

impl ResolvedArchive {
    /// An archive read from `repo` (a registry repository; `None` for a layout): `pinned` is
    /// the digest the reference pins, `manifests` what it covers.
    fn new(
        reference: String,
        repo: Option<&RegistryRef>,
        pinned: &Digest,
        manifests: Vec<ArchiveManifest>,
        image_digest: Option<Digest>,
        notes: Vec<String>,
    ) -> Self {
        let image_volume = match (repo, manifests.as_slice()) {
            // An index pins several archives; its forms are not one image.
            (Some(repo), [one]) if one.manifest_digest == *pinned => {
                image_volume_of(&one.manifest).map(|d| repo.with_digest(&d).to_string())
            }
            _ => None,
        };
        ResolvedArchive {
            reference,
            configs: manifests.into_iter().map(|m| m.config).collect(),
            image_digest,
            notes,
            image_volume,
        }
    }

    /// The run-time options, which every platform's archive must agree on (the pod template is
    /// shared) and which carry nothing but archive options (they reach production
    /// `JAVA_TOOL_OPTIONS`): refused here, before any workload is touched.
    pub fn runtime_config(&self) -> Result<&ArchiveConfig> {
        let first = self
            .configs
            .first()
            .ok_or_else(|| anyhow!("{}: holds no archive", self.reference))?;
        for config in &self.configs {
            config.check_runtime_options().with_context(|| {
                format!(
                    "archive {} ({}): refused, nothing was changed",
                    self.reference, config.platform
                )
            })?;
        }
        // The JVM's path is `paths::pod_archive_path(pinned, file name)` on every node: one
        // template serves every platform only when every platform's file has the same name.
        if let Some(other) = self
            .configs
            .iter()
            .find(|c| c.archive.name != first.archive.name)
        {
            bail!(
                "{}: the archives for {} and {} are files of different names ({} vs {}), so the path in \
                 JAVA_TOOL_OPTIONS cannot be the same on every node: train both platforms with the same --kind",
                self.reference,
                first.platform,
                other.platform,
                first.archive.name,
                other.archive.name
            );
        }
        if let Some(other) = self
            .configs
            .iter()
            .find(|c| c.runtime_options != first.runtime_options)
        {
            bail!(
                "{}: the archives for {} and {} need different run-time options ({:?} vs {:?}); one pod template \
                 cannot serve both: train both platforms with the same options",
                self.reference,
                first.platform,
                other.platform,
                first.runtime_options,
                other.runtime_options
            );
        }
        Ok(first)
    }

    /// The repositories (without registry) of the images the archive was trained in.
    pub fn trained_repositories(&self) -> Vec<String> {
        let mut repos: Vec<String> = self
            .configs
            .iter()
            .filter_map(|c| {
                c.image
                    .reference
                    .parse::<RegistryRef>()
                    .ok()
                    .map(|r| r.repository)
            })
            .collect();
        repos.dedup();
        repos
    }
}

/// Resolves archives, remembering each answer for the rest of the run.
pub struct Resolver {
    args: RegistryArgs,
    /// The installed fetcher's `--allowed-registry` list (live clusters with a fetcher), with
    /// where it was read.
    fetcher_allows: Option<(AllowedRegistries, String)>,
    client: Option<RegistryClient>,
    explicit: HashMap<String, ResolvedArchive>,
    by_image: HashMap<String, Option<ResolvedArchive>>,
}

impl Resolver {
    pub fn new(args: &RegistryArgs) -> Self {
        Resolver {
            args: args.clone(),
            client: None,
            fetcher_allows: None,
            explicit: HashMap::new(),
            by_image: HashMap::new(),
        }
    }

    fn client(&mut self) -> Result<RegistryClient> {
        if let Some(c) = &self.client {
            return Ok(c.clone());
        }
        let client = RegistryClient::new(RegistryOptions {
            insecure_registries: self.args.insecure_registries.clone(),
            docker_config: self.args.docker_config.clone(),
            ..Default::default()
        })
        .context("cannot set up the registry client")?;
        self.client = Some(client.clone());
        Ok(client)
    }

    /// Remembers the registries the installed fetcher (`source` names its DaemonSet) pulls from.
    pub fn set_fetcher_allows(&mut self, allowed: AllowedRegistries, source: String) {
        self.fetcher_allows = Some((allowed, source));
    }

    /// Refuses an archive whose registry the installed fetcher would refuse: its pods would
    /// start without the archive, so `enable` fails before patching, with the fix.
    pub fn check_fetcher_allows(&self, archive: &ResolvedArchive) -> Result<()> {
        // A layout archive never reaches a fetcher by registry.
        let (Some((allowed, source)), Ok(ArchiveLocation::Registry(reference))) = (
            &self.fetcher_allows,
            archive.reference.parse::<ArchiveLocation>(),
        ) else {
            return Ok(());
        };
        allowed.check(&reference).with_context(|| {
            format!(
                "archive {}: the installed fetcher ({source}) would refuse it; nothing was changed",
                archive.reference
            )
        })
    }

    /// Checks that the archive's image-volume form is in its registry: a pod whose image volume
    /// cannot be pulled stays in ContainerCreating, so `enable` refuses before patching.
    pub async fn check_image_volume(&mut self, archive: &ResolvedArchive) -> Result<()> {
        let Some(form) = &archive.image_volume else {
            return Ok(());
        };
        let reference: RegistryRef = form
            .parse()
            .with_context(|| format!("image volume {form}"))?;
        let found = self
            .client()?
            .head_manifest(&reference)
            .await
            .with_context(|| {
                format!(
                    "archive {}: its image-volume form {form}",
                    archive.reference
                )
            })?;
        if found.is_none() {
            bail!(
                "archive {}: its image-volume form {form} is not in the registry, and a pod whose image volume cannot be \
                 pulled stays in ContainerCreating; push the archive again with classcache-build, or pass --mode hostpath",
                archive.reference
            );
        }
        Ok(())
    }

    /// The archive `--archive` names, pinned.
    pub async fn explicit(&mut self, reference: &str) -> Result<ResolvedArchive> {
        if let Some(found) = self.explicit.get(reference) {
            return Ok(found.clone());
        }
        let location: ArchiveLocation = reference.parse().context("--archive")?;
        let resolved = match location {
            ArchiveLocation::Layout { dir, tag, digest } => {
                let layout =
                    OciLayout::open(&dir).with_context(|| format!("--archive {reference}"))?;
                let named = layout
                    .content_ref(tag.as_deref(), digest.as_ref())
                    .with_context(|| format!("--archive {reference}"))?;
                let (digest, manifests) = archive_manifests(&layout, &named)
                    .await
                    .with_context(|| format!("--archive {reference}"))?;
                ResolvedArchive::new(
                    format!("oci:{}@{digest}", dir.display()),
                    None,
                    &digest,
                    manifests,
                    None,
                    vec![],
                )
            }
            ArchiveLocation::Registry(r) => {
                let (source, named) = self
                    .client()?
                    .source_for(&r)
                    .with_context(|| format!("--archive {reference}"))?;
                let (digest, manifests) = archive_manifests(&source, &named)
                    .await
                    .with_context(|| format!("--archive {reference}"))?;
                let repo = r.repository_only();
                ResolvedArchive::new(
                    repo.with_digest(&digest).to_string(),
                    Some(&repo),
                    &digest,
                    manifests,
                    None,
                    vec![],
                )
            }
        };
        self.explicit
            .insert(reference.to_string(), resolved.clone());
        Ok(resolved)
    }

    /// Checks an explicit archive against the image a container runs, when that image lives in
    /// the archive's own repository (so the registry is one the archive was just read from):
    /// an error when no platform matches, a note when the archive was trained on another build.
    pub async fn check_image(
        &mut self,
        archive: &ResolvedArchive,
        image: &str,
    ) -> Result<Option<String>> {
        let (Ok(image_ref), Some(archive_repo)) = (
            image.parse::<RegistryRef>(),
            archive
                .reference
                .rsplit_once('@')
                .and_then(|(r, _)| r.parse::<RegistryRef>().ok()),
        ) else {
            return Ok(None);
        };
        if image_ref.repository_only() != archive_repo.repository_only() {
            return Ok(None);
        }
        let client = self.client()?;
        let resolved = client
            .resolve_image(&image_ref)
            .await
            .with_context(|| format!("image {image}"))?;
        let covered = archive.configs.iter().any(|c| {
            resolved.manifests.iter().any(|m| {
                m.platform.as_ref().is_some_and(|p| {
                    p.os == c.platform.os && p.architecture == c.platform.architecture
                })
            })
        });
        if !covered {
            let have: Vec<String> = resolved
                .manifests
                .iter()
                .filter_map(|m| m.platform.as_ref())
                .map(Platform::to_string)
                .collect();
            let want: Vec<String> = archive
                .configs
                .iter()
                .map(|c| c.platform.to_string())
                .collect();
            bail!(
                "archive {} is for {} but image {image} runs on {}; build the archive on the image's platform (classcache-build \
                 on that architecture), or pass the archive of that platform",
                archive.reference,
                want.join(", "),
                have.join(", ")
            );
        }
        let trained = archive.configs.iter().any(|c| {
            resolved
                .manifests
                .iter()
                .any(|m| m.digest == c.image.digest)
        });
        Ok((!trained).then(|| {
            format!(
                "archive {} was trained on another build of the image ({}), not on {image} ({}); the JVM will skip it \
                 if the class path changed: train on this build, or pin the image to the trained digest",
                archive.reference,
                archive.configs.iter().map(|c| c.image.digest.to_string()).collect::<Vec<_>>().join(", "),
                resolved.digest
            )
        }))
    }

    /// The archive attached to `image` in its registry (referrers API or fallback index), or
    /// `None` when the image has none.
    pub async fn for_image(&mut self, image: &str) -> Result<Option<ResolvedArchive>> {
        if let Some(found) = self.by_image.get(image) {
            return Ok(found.clone());
        }
        let found = self.look_up_image(image).await?;
        self.by_image.insert(image.to_string(), found.clone());
        Ok(found)
    }

    async fn look_up_image(&mut self, image: &str) -> Result<Option<ResolvedArchive>> {
        let r: RegistryRef = image.parse().with_context(|| format!("image {image:?}"))?;
        let client = self.client()?;
        let resolved = client
            .resolve_image(&r)
            .await
            .with_context(|| format!("image {image}"))?;
        let repo = r.repository_only();
        let mut notes = vec![];
        // A multi-platform image: an index of its per-platform archives hangs off the image index.
        if resolved.manifests.len() > 1 || media_types::is_index(&resolved.media_type) {
            let found = client
                .find_archive_index(&repo, &resolved.digest)
                .await
                .with_context(|| format!("image {image}"))?;
            if let Some(entry) = found {
                let pinned = repo.with_digest(&entry.digest);
                let (digest, manifests) = archive_manifests(
                    &client.source(&repo),
                    &ContentRef::Digest(entry.digest.clone()),
                )
                .await
                .with_context(|| format!("image {image}: its archive index {pinned}"))?;
                let missing: Vec<String> = resolved
                    .manifests
                    .iter()
                    .filter_map(|m| m.platform.as_ref())
                    .filter(|p| {
                        !manifests
                            .iter()
                            .any(|a| a.config.platform.without_variant() == p.without_variant())
                    })
                    .map(Platform::to_string)
                    .collect();
                if !missing.is_empty() {
                    notes.push(format!(
                        "the archive index {pinned} has no archive for {}; pods on those platforms start without one: \
                         run classcache-build on them too (each run adds its platform to the index), then enable again",
                        missing.join(", ")
                    ));
                }
                return Ok(Some(ResolvedArchive::new(
                    pinned.to_string(),
                    Some(&repo),
                    &digest,
                    manifests,
                    Some(resolved.digest),
                    notes,
                )));
            }
        }
        let mut per_platform: Vec<(Platform, Descriptor)> = vec![];
        for m in &resolved.manifests {
            let entries = client
                .find_archives(&repo, &m.digest)
                .await
                .with_context(|| format!("image {image}"))?;
            if let (Some(entry), Some(p)) = (newest_referrer(entries.iter()), &m.platform) {
                per_platform.push((p.clone(), entry.clone()));
            }
        }
        let Some((platform, entry)) = per_platform.first().cloned() else {
            return Ok(None);
        };
        let missing: Vec<String> = resolved
            .manifests
            .iter()
            .filter_map(|m| m.platform.as_ref())
            .filter(|p| !per_platform.iter().any(|(q, _)| q == *p))
            .map(Platform::to_string)
            .collect();
        if per_platform.len() > 1 || !missing.is_empty() {
            notes.push(format!(
                "the archive covers {} only{}; pods on other platforms start without it: build an archive per platform \
                 and an index of them (classcache-build), then enable again",
                platform,
                if missing.is_empty() { String::new() } else { format!(" (no archive for {})", missing.join(", ")) }
            ));
        }
        let pinned = repo.with_digest(&entry.digest);
        let fetched = client
            .fetch_archive(&pinned, Some(&platform))
            .await
            .with_context(|| format!("image {image}"))?;
        Ok(Some(ResolvedArchive::new(
            pinned.to_string(),
            Some(&repo),
            &entry.digest,
            vec![fetched],
            Some(resolved.digest),
            notes,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(reference: &str) -> ResolvedArchive {
        ResolvedArchive {
            reference: reference.into(),
            configs: vec![],
            image_digest: None,
            notes: vec![],
            image_volume: None,
        }
    }

    /// The installed fetcher's list decides; layouts and clusters without a fetcher pass.
    #[test]
    fn archives_the_installed_fetcher_would_refuse_are_refused_with_the_fix() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        let mut resolver = Resolver::new(&RegistryArgs::default());
        let elsewhere = resolved(&format!("localhost:5055/shop/app@{digest}"));
        assert!(
            resolver.check_fetcher_allows(&elsewhere).is_ok(),
            "no fetcher read"
        );
        let allowed = AllowedRegistries::from_args(&["--allowed-registry=127.0.0.1:5055"]).unwrap();
        resolver.set_fetcher_allows(allowed, "daemonset classcache/classcache-fetcher".into());
        let e = format!(
            "{:#}",
            resolver.check_fetcher_allows(&elsewhere).unwrap_err()
        );
        assert!(
            e.contains("kubectl classcache install --allowed-registry localhost:5055")
                && e.contains("daemonset classcache/classcache-fetcher")
                && e.contains("nothing was changed"),
            "{e}"
        );
        let ok = resolved(&format!("127.0.0.1:5055/shop/app@{digest}"));
        assert!(resolver.check_fetcher_allows(&ok).is_ok());
        let layout = resolved(&format!("oci:/tmp/layout@{digest}"));
        assert!(resolver.check_fetcher_allows(&layout).is_ok());
    }
}
