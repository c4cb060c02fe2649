//! Deciding what `enable` does to one object: which containers, which archive each gets, and
//! what to warn about. It builds the plan; the edit itself is classcache-core's.

use anyhow::{bail, Result};
use classcache_core::podtemplate::{
    command_warning, containers, object_label, pod_template, ContainerArchive, ContainerView,
    DeliveryMode, EditError, EnablePlan,
};
use classcache_core::reference::RegistryRef;
use serde_json::Value;

use crate::archive::{ResolvedArchive, Resolver};

/// The user's choices for `enable`, from the command line.
#[derive(Debug, Clone)]
pub struct EnableSettings {
    pub containers: Vec<String>,
    pub archive: Option<String>,
    pub mode: DeliveryMode,
    /// `--mode auto` chose `mode`: an archive without an image-volume form falls back to
    /// hostpath (with a note) instead of failing.
    pub auto_mode: bool,
    pub fetcher_image: String,
    pub fetcher_url: String,
    pub store_dir: String,
    pub timeout_secs: u64,
    pub fail_closed: bool,
    pub pin_image: bool,
    pub force: bool,
}

/// What to do with one object.
pub enum Planned {
    Enable {
        plan: EnablePlan,
        notes: Vec<String>,
    },
    /// Left alone, with the reason (only for objects not named explicitly).
    Skip(String),
}

/// Plans `enable` for `obj`. `named` is true when the user named this object (an error then
/// beats skipping it).
pub async fn plan_for(
    obj: &Value,
    settings: &EnableSettings,
    resolver: &mut Resolver,
    named: bool,
) -> Result<Planned> {
    let label = object_label(obj);
    let Some(template) = pod_template(obj) else {
        if named {
            return Err(EditError::NoPodTemplate { object: label }.into());
        }
        return Ok(Planned::Skip(format!("{label}: no pod template")));
    };
    let views = containers(template);
    for wanted in &settings.containers {
        if !views.iter().any(|v| &v.name == wanted) {
            return Err(EditError::NoSuchContainer {
                object: label,
                container: wanted.clone(),
                available: views
                    .iter()
                    .map(|v| format!("{:?}", v.name))
                    .collect::<Vec<_>>()
                    .join(", "),
            }
            .into());
        }
    }
    let explicit = match &settings.archive {
        Some(reference) => Some(resolver.explicit(reference).await?),
        None => None,
    };
    let by_flag = !settings.containers.is_empty();
    let mut chosen: Vec<(&ContainerView, ResolvedArchive)> = vec![];
    let mut notes = vec![];
    for view in views
        .iter()
        .filter(|v| !by_flag || settings.containers.contains(&v.name))
    {
        let archive = match &explicit {
            Some(archive) => {
                let repo = view.image.parse::<RegistryRef>().ok().map(|r| r.repository);
                let trained = archive.trained_repositories();
                if by_flag || repo.is_some_and(|r| trained.contains(&r)) {
                    Some(archive.clone())
                } else {
                    None
                }
            }
            None => {
                match resolver.for_image(&view.image).await {
                    Ok(found) => found,
                    Err(e) if by_flag => return Err(e),
                    Err(e) => {
                        notes.push(format!("{label}, container {:?}: skipped, its image could not be looked up: {e:#}", view.name));
                        None
                    }
                }
            }
        };
        if let (Some(archive), Some(_)) = (&archive, &explicit) {
            if let Some(note) = resolver.check_image(archive, &view.image).await? {
                notes.push(format!("{label}, container {:?}: {note}", view.name));
            }
        }
        match archive {
            Some(archive) => chosen.push((view, archive)),
            None if by_flag => bail!(
                "{label}, container {:?}: image {} has no archive in its registry; train and push one with classcache-build, \
                 or pass --archive REF",
                view.name,
                view.image
            ),
            None => {}
        }
    }
    if chosen.is_empty() {
        let why = match &explicit {
            Some(a) => format!(
                "no container runs the image the archive {} was trained in ({}); pass -c CONTAINER",
                a.reference,
                a.configs.iter().map(|c| c.image.reference.as_str()).collect::<Vec<_>>().join(", ")
            ),
            None => format!(
                "no container's image has an archive (images: {}); train and push one with classcache-build, or pass --archive REF",
                views.iter().map(|v| v.image.as_str()).collect::<Vec<_>>().join(", ")
            ),
        };
        if named {
            bail!("{label}: {why}");
        }
        return Ok(Planned::Skip(format!("{label}: {why}")));
    }

    let mut mode = settings.mode;
    if mode == DeliveryMode::ImageVolume {
        if let Some((_, archive)) = chosen.iter().find(|(_, a)| a.image_volume.is_none()) {
            if archive.reference.starts_with("oci:") {
                bail!(
                    "{label}: archive {} is in an OCI layout, which no kubelet can pull as an image volume; push it to the \
                     image's registry (classcache-build), or pass --mode hostpath",
                    archive.reference
                );
            }
            if !settings.auto_mode {
                return Err(EditError::NoImageVolume {
                    object: label,
                    archive: archive.reference.clone(),
                }
                .into());
            }
            notes.push(format!(
                "{label}: hostpath instead of image-volume: archive {} has no image-volume form (an index of \
                 per-platform archives, or pushed by an older classcache-build)",
                archive.reference
            ));
            mode = DeliveryMode::HostPath;
        }
    }
    if mode == DeliveryMode::ImageVolume {
        for (_, archive) in &chosen {
            resolver.check_image_volume(archive).await?;
        }
    } else {
        // Delivered by the node fetcher, which pulls only from the registries it allows.
        for (_, archive) in &chosen {
            resolver.check_fetcher_allows(archive)?;
        }
    }

    let mut plan_containers = vec![];
    for (view, archive) in chosen {
        let config = archive.runtime_config()?;
        let at = |m: String| format!("{label}, container {:?}: {m}", view.name);
        notes.extend(archive.notes.iter().map(|n| at(n.clone())));
        if let Some(w) = command_warning(view, &config.image) {
            notes.push(at(w));
        }
        let pin_image = match (view.image.contains('@'), settings.pin_image) {
            (true, _) => None,
            (false, true) => {
                let digest =
                    archive
                        .image_digest
                        .clone()
                        .or_else(|| match archive.configs.as_slice() {
                            [one] => Some(one.image.digest.clone()),
                            _ => None,
                        });
                match digest {
                    Some(d) => Some(format!("{}@{d}", view.image)),
                    None => bail!(at(format!(
                        "--pin-image: the archive {} covers several platforms, so the image index digest is unknown; \
                         pin the image yourself (image@sha256:…)",
                        archive.reference
                    ))),
                }
            }
            (false, false) => {
                notes.push(at(format!(
                    "image {} is a moving tag: once it points at a new build the archive no longer matches and the JVM \
                     skips it; pin it with --pin-image (or image@sha256:…)",
                    view.image
                )));
                None
            }
        };
        plan_containers.push(
            ContainerArchive::new(&view.name, &archive.reference, config, pin_image)?
                .with_image_volume(archive.image_volume.clone()),
        );
    }
    Ok(Planned::Enable {
        plan: EnablePlan {
            containers: plan_containers,
            mode,
            node_store_dir: settings.store_dir.clone(),
            fetcher_image: settings.fetcher_image.clone(),
            fetcher_url: settings.fetcher_url.clone(),
            timeout_secs: settings.timeout_secs,
            fail_closed: settings.fail_closed,
            force: settings.force,
        },
        notes,
    })
}
