//! `enable` and `disable` on a pod template, with the undo record kept in the template itself.
//! It edits JSON values only; it must not decide which archive a container gets.

use super::cluster::*;
use super::locate::{containers, object_label, pod_template_mut};
use super::options::{conflicting_options, merge_java_tool_options};
use super::{ContainerArchive, EditError, EnablePlan, Warning};
use crate::artifact::{check_archive_name, ArchiveConfig, ARCHIVE_PATH_PLACEHOLDER};
use crate::jvm::{is_java_agent, java_agent_jar};
use crate::key::{is_sha256_digest, AgentMode};
use crate::paths::{node_archive_dir, pod_archive_dir, pod_archive_path, POD_ARCHIVE_DIR};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

const VALUE_FROM_WARNING: &str = "JAVA_TOOL_OPTIONS comes from valueFrom; added a second entry that expands \
     it and appends the archive's options (--force); check that the referenced value has no conflicting options";

/// Version of the undo record's schema.
const RECORD_VERSION: u32 = 1;

/// How a field looked before `enable` touched it, so `disable` can put back exactly that.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Prior {
    Absent,
    Null,
    Present,
}

/// The undo record (annotation [`ANNOTATION_ORIGINAL`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UndoRecord {
    version: u32,
    metadata: Prior,
    annotations: Prior,
    init_containers: Prior,
    volumes: Prior,
    /// Volumes added besides [`VOLUME`]: a volume per further distinct archive (image volume,
    /// or hostPath of the archive's own published directory).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    more_volumes: Vec<String>,
    containers: Vec<ContainerRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ContainerRecord {
    name: String,
    env: Prior,
    /// The container's own `JAVA_TOOL_OPTIONS` entry, exactly, and its index in `env`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    java_tool_options: Option<EnvEntryRecord>,
    volume_mounts: Prior,
    /// The image before `--pin-image` replaced it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    image: Option<String>,
    /// The image `--pin-image` set: `disable` puts back [`Self::image`] only while the container
    /// still runs this one (a later deploy's image is not rolled back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pinned_image: Option<String>,
    /// The options `enable` appended to `JAVA_TOOL_OPTIONS`, exactly as written: `disable`
    /// removes these and keeps every later change. Records without it restore the snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    added_options: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvEntryRecord {
    index: usize,
    entry: Value,
}

impl ContainerArchive {
    /// The plan for one container: the archive pinned as `reference` (`<repo>@sha256:<hex>`), with
    /// the config's run-time options pointing at the path the pod sees.
    pub fn new(
        container: &str,
        reference: &str,
        config: &ArchiveConfig,
        pin_image: Option<String>,
    ) -> Result<Self, EditError> {
        // Archives written before agents were left to the workload carry `-javaagent` in
        // their run-time options: it is dropped here, and names the trained agent.
        let old_agent = config
            .runtime_options
            .iter()
            .find_map(|o| java_agent_jar(o))
            .map(str::to_string);
        let trained_agent = match &config.agent {
            Some(a) if a.identity.mode == AgentMode::Attached => Some(a.path.clone()),
            Some(_) => None,
            None => old_agent,
        };
        let plan = ContainerArchive {
            container: container.to_string(),
            archive: reference.to_string(),
            runtime_options: config
                .runtime_options
                .iter()
                .filter(|o| !is_java_agent(o))
                .cloned()
                .collect(),
            pin_image,
            archive_file: config.archive.name.clone(),
            image_volume: None,
            trained_agent,
        };
        plan.pinned_digest(container)?;
        // The file name becomes part of the JVM's path inside the archive's own directory.
        check_archive_name(&plan.archive_file).map_err(|_| EditError::BadArchiveFile {
            object: container.to_string(),
            archive: plan.archive.clone(),
            name: plan.archive_file.clone(),
        })?;
        Ok(plan)
    }

    fn pinned_digest(&self, object: &str) -> Result<&str, EditError> {
        match self.archive.rsplit_once('@') {
            Some((repo, digest)) if !repo.is_empty() && is_sha256_digest(digest) => Ok(digest),
            _ => Err(EditError::UnpinnedArchive {
                object: object.to_string(),
                reference: self.archive.clone(),
            }),
        }
    }

    /// The same plan, mounting `image_volume` (the archive's pinned image-volume form) in
    /// [`DeliveryMode::ImageVolume`].
    pub fn with_image_volume(mut self, image_volume: Option<String>) -> Self {
        self.image_volume = image_volume;
        self
    }

    /// The JVM options with the archive's path in the pod filled in.
    fn options_for_pod(&self, object: &str) -> Result<Vec<String>, EditError> {
        let path = pod_archive_path(self.pinned_digest(object)?, &self.archive_file);
        Ok(self
            .runtime_options
            .iter()
            .map(|o| o.replace(ARCHIVE_PATH_PLACEHOLDER, &path))
            .collect())
    }
}

/// Enables classcache on an object with a pod template; see [`enable_template`].
pub fn enable_object(obj: &mut Value, plan: &EnablePlan) -> Result<Vec<Warning>, EditError> {
    let object = object_label(obj);
    let template = pod_template_mut(obj).ok_or_else(|| EditError::NoPodTemplate {
        object: object.clone(),
    })?;
    enable_template(template, plan, &object)
}

/// Disables classcache on an object; `Ok(false)` when it was not enabled. See
/// [`disable_template_with`].
pub fn disable_object(obj: &mut Value) -> Result<bool, EditError> {
    disable_object_with(obj, DisableOptions::default())
}

/// [`disable_object`] with options.
pub fn disable_object_with(obj: &mut Value, options: DisableOptions) -> Result<bool, EditError> {
    let object = object_label(obj);
    let template = pod_template_mut(obj).ok_or_else(|| EditError::NoPodTemplate {
        object: object.clone(),
    })?;
    disable_template_with(template, &object, options)
}

/// How `disable` treats what changed since `enable`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DisableOptions {
    /// A container whose image changed since `enable --pin-image` keeps its current image
    /// (without this, `disable` refuses rather than roll the image back).
    pub keep_image: bool,
}

/// Enables classcache on a pod template (`{metadata, spec}`). An already enabled template is
/// first restored, so enabling twice equals enabling once and a new archive replaces the old.
/// On error the template is left exactly as it was.
pub fn enable_template(
    template: &mut Value,
    plan: &EnablePlan,
    object: &str,
) -> Result<Vec<Warning>, EditError> {
    let mut work = template.clone();
    // Enabling again keeps an image deployed since: the plan pins again if asked to.
    disable_template_with(&mut work, object, DisableOptions { keep_image: true })?;
    let warnings = enable_fresh(&mut work, plan, object)?;
    *template = work;
    Ok(warnings)
}

/// The archives a template is enabled with, `(container, pinned reference)` in order; `None`
/// when it is not enabled.
pub fn enabled_archives(template: &Value) -> Result<Option<Vec<(String, String)>>, EditError> {
    let Some(raw) = annotation(template, ANNOTATION_ARCHIVE) else {
        return Ok(None);
    };
    archives_in_annotation(raw, "pod template").map(Some)
}

/// The `(container, pinned reference)` pairs of a [`ANNOTATION_ARCHIVE`] value, as a pod
/// template or a pod (which inherits it) carries it; `object` names the carrier in errors.
pub fn archives_in_annotation(raw: &str, object: &str) -> Result<Vec<(String, String)>, EditError> {
    let bad = |reason: String| EditError::BadRecord {
        object: object.to_string(),
        annotation: ANNOTATION_ARCHIVE,
        reason,
    };
    let map: Map<String, Value> = serde_json::from_str(raw).map_err(|e| bad(e.to_string()))?;
    map.into_iter()
        .map(|(c, r)| match r {
            Value::String(r) => Ok((c, r)),
            other => Err(bad(format!(
                "container {c:?} maps to {other}, not a string"
            ))),
        })
        .collect()
}

/// How an enabled template delivers its archives, read from the volume `enable` added; `None`
/// when it has none of the known kinds.
pub fn delivery_mode(template: &Value) -> Option<DeliveryMode> {
    let volume = template
        .pointer("/spec/volumes")?
        .as_array()?
        .iter()
        .find(|v| v.get("name").and_then(Value::as_str) == Some(VOLUME))?;
    [
        ("hostPath", DeliveryMode::HostPath),
        ("emptyDir", DeliveryMode::Copy),
        ("image", DeliveryMode::ImageVolume),
    ]
    .into_iter()
    .find(|(field, _)| volume.get(*field).is_some())
    .map(|(_, mode)| mode)
}

fn annotation<'a>(template: &'a Value, key: &str) -> Option<&'a str> {
    template
        .get("metadata")?
        .get("annotations")?
        .get(key)?
        .as_str()
}

/// Disables classcache on a pod template from its undo record; `Ok(false)` when not enabled.
/// See [`disable_template_with`].
pub fn disable_template(template: &mut Value, object: &str) -> Result<bool, EditError> {
    disable_template_with(template, object, DisableOptions::default())
}

/// Disables classcache on a pod template, removing only what `enable` added: its volumes,
/// mounts, init container and annotations by name, its own options out of `JAVA_TOOL_OPTIONS`
/// (changes made since are kept), and a pinned image only while the container still runs it.
/// `Ok(false)` when not enabled. On error the template is left exactly as it was.
pub fn disable_template_with(
    template: &mut Value,
    object: &str,
    options: DisableOptions,
) -> Result<bool, EditError> {
    let Some(raw) = annotation(template, ANNOTATION_ORIGINAL) else {
        if annotation(template, ANNOTATION_ARCHIVE).is_some() {
            return Err(EditError::BadRecord {
                object: object.to_string(),
                annotation: ANNOTATION_ORIGINAL,
                reason: format!("it is missing while {ANNOTATION_ARCHIVE} is set"),
            });
        }
        return Ok(false);
    };
    let record: UndoRecord = serde_json::from_str(raw).map_err(|e| EditError::BadRecord {
        object: object.to_string(),
        annotation: ANNOTATION_ORIGINAL,
        reason: e.to_string(),
    })?;
    if record.version != RECORD_VERSION {
        return Err(EditError::BadRecord {
            object: object.to_string(),
            annotation: ANNOTATION_ORIGINAL,
            reason: format!(
                "record version {} is not {RECORD_VERSION}: use a matching kubectl-classcache",
                record.version
            ),
        });
    }
    let mut work = template.clone();
    restore(&mut work, &record, object, options)?;
    *template = work;
    Ok(true)
}

fn as_object<'a>(
    v: &'a mut Value,
    object: &str,
    field: &str,
) -> Result<&'a mut Map<String, Value>, EditError> {
    let found = kind_of(v);
    v.as_object_mut().ok_or_else(|| EditError::NotAList {
        object: object.to_string(),
        field: field.to_string(),
        found: format!("{found} (expected a map)"),
    })
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

/// Makes `parent[key]` a list (creating it when absent or null) and says how it was before.
fn open_list<'a>(
    parent: &'a mut Map<String, Value>,
    key: &str,
    object: &str,
    field: &str,
) -> Result<(Prior, &'a mut Vec<Value>), EditError> {
    let prior = match parent.get(key) {
        None => Prior::Absent,
        Some(Value::Null) => Prior::Null,
        Some(Value::Array(_)) => Prior::Present,
        Some(other) => {
            return Err(EditError::NotAList {
                object: object.to_string(),
                field: field.to_string(),
                found: kind_of(other).to_string(),
            })
        }
    };
    if prior != Prior::Present {
        // Inserting over an existing key keeps its position, so a null comes back in place.
        parent.insert(key.to_string(), Value::Array(vec![]));
    }
    Ok((
        prior,
        parent
            .get_mut(key)
            .and_then(Value::as_array_mut)
            .expect("just made a list"),
    ))
}

/// The map twin of [`open_list`].
fn open_map<'a>(
    parent: &'a mut Map<String, Value>,
    key: &str,
    object: &str,
    field: &str,
) -> Result<(Prior, &'a mut Map<String, Value>), EditError> {
    let prior = match parent.get(key) {
        None => Prior::Absent,
        Some(Value::Null) => Prior::Null,
        Some(Value::Object(_)) => Prior::Present,
        Some(other) => {
            return Err(EditError::NotAList {
                object: object.to_string(),
                field: field.to_string(),
                found: format!("{} (expected a map)", kind_of(other)),
            })
        }
    };
    if prior != Prior::Present {
        parent.insert(key.to_string(), Value::Object(Map::new()));
    }
    Ok((
        prior,
        parent
            .get_mut(key)
            .and_then(Value::as_object_mut)
            .expect("just made a map"),
    ))
}

/// Puts back an emptied field the way it was before `enable` created it.
fn close_field(parent: &mut Map<String, Value>, key: &str, prior: Prior) {
    let empty = match parent.get(key) {
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Object(m)) => m.is_empty(),
        _ => false,
    };
    if !empty {
        return;
    }
    match prior {
        Prior::Absent => {
            parent.shift_remove(key);
        }
        Prior::Null => {
            parent.insert(key.to_string(), Value::Null);
        }
        Prior::Present => {}
    }
}

fn named<'a>(list: &'a [Value], name: &str) -> Option<&'a Value> {
    list.iter()
        .find(|v| v.get("name").and_then(Value::as_str) == Some(name))
}

fn remove_named(list: &mut Vec<Value>, name: &str) {
    list.retain(|v| v.get("name").and_then(Value::as_str) != Some(name));
}

fn name_taken(
    list: &[Value],
    name: &str,
    what: &'static str,
    object: &str,
) -> Result<(), EditError> {
    match named(list, name) {
        Some(_) => Err(EditError::NameTaken {
            object: object.to_string(),
            what,
            name: name.to_string(),
        }),
        None => Ok(()),
    }
}

fn enable_fresh(
    template: &mut Value,
    plan: &EnablePlan,
    object: &str,
) -> Result<Vec<Warning>, EditError> {
    let available = containers(template);
    let mut selected: Vec<&ContainerArchive> = vec![];
    for c in &plan.containers {
        if !available.iter().any(|a| a.name == c.container) {
            return Err(EditError::NoSuchContainer {
                object: object.to_string(),
                container: c.container.clone(),
                available: available
                    .iter()
                    .map(|a| format!("{:?}", a.name))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        if !selected.iter().any(|s| s.container == c.container) {
            selected.push(c);
        }
    }
    if selected.is_empty() {
        return Err(EditError::NothingSelected {
            object: object.to_string(),
        });
    }
    let mut archives: Vec<String> = vec![];
    for c in &selected {
        c.pinned_digest(object)?;
        if plan.mode == DeliveryMode::ImageVolume && c.image_volume.is_none() {
            return Err(EditError::NoImageVolume {
                object: object.to_string(),
                archive: c.archive.clone(),
            });
        }
        if !archives.contains(&c.archive) {
            archives.push(c.archive.clone());
        }
    }
    // One pod volume per distinct archive: `VOLUME`, then `VOLUME-2`…, so that a pod sees only
    // the archives it pins; copy mode's emptyDir is the pod's own and holds them all.
    let volume_of = |archive: &str| -> String {
        match (plan.mode, archives.iter().position(|a| a == archive)) {
            (DeliveryMode::Copy, _) => VOLUME.to_string(),
            (_, Some(i)) if i > 0 => format!("{VOLUME}-{}", i + 1),
            _ => VOLUME.to_string(),
        }
    };
    fn pinned_of(archive: &str) -> &str {
        archive
            .rsplit_once('@')
            .map(|(_, d)| d)
            .expect("checked above")
    }

    let mut warnings = vec![];
    let root = as_object(template, object, "pod template")?;
    let spec = as_object(
        root.get_mut("spec")
            .ok_or_else(|| EditError::NoPodTemplate {
                object: object.to_string(),
            })?,
        object,
        "spec",
    )?;

    let mut records = vec![];
    {
        let (_, container_list) = open_list(spec, "containers", object, "spec.containers")?;
        for c in &selected {
            let container = container_list
                .iter_mut()
                .find(|v| v.get("name").and_then(Value::as_str) == Some(c.container.as_str()))
                .expect("checked above");
            let field = |f: &str| format!("container {:?} {f}", c.container);
            let container = as_object(container, object, &field(""))?;
            let ours = c.options_for_pod(object)?;
            check_agents(container, c, plan.force, object, &mut warnings)?;
            let mut warn = |message: String| {
                warnings.push(Warning {
                    object: object.to_string(),
                    container: c.container.clone(),
                    message,
                })
            };

            let (volume_mounts, mounts) =
                open_list(container, "volumeMounts", object, &field("volumeMounts"))?;
            let volume = volume_of(&c.archive);
            name_taken(mounts, &volume, "volume mount", object)?;
            if let Some(taken) = mounts
                .iter()
                .filter_map(|m| m.get("mountPath").and_then(Value::as_str))
                .find(|p| {
                    p.trim_end_matches('/') == POD_ARCHIVE_DIR
                        || p.starts_with(&format!("{POD_ARCHIVE_DIR}/"))
                })
            {
                return Err(EditError::NameTaken {
                    object: object.to_string(),
                    what: "mount path",
                    name: taken.to_string(),
                });
            }
            let mount_path = match plan.mode {
                DeliveryMode::ImageVolume | DeliveryMode::HostPath => {
                    pod_archive_dir(c.pinned_digest(object)?)
                }
                DeliveryMode::Copy => POD_ARCHIVE_DIR.to_string(),
            };
            mounts.push(json!({"name": volume, "mountPath": mount_path, "readOnly": true}));

            let command_line: Vec<String> = ["command", "args"]
                .iter()
                .filter_map(|k| container.get(*k).and_then(Value::as_array))
                .flatten()
                .filter_map(|t| t.as_str().map(str::to_string))
                .collect();
            let (env_prior, env) = open_list(container, "env", object, &field("env"))?;
            let jto: Vec<usize> = env
                .iter()
                .enumerate()
                .filter(|(_, e)| e.get("name").and_then(Value::as_str) == Some(JAVA_TOOL_OPTIONS))
                .map(|(i, _)| i)
                .collect();
            if jto.len() > 1 {
                return Err(EditError::DuplicateJavaToolOptions {
                    object: object.to_string(),
                    container: c.container.clone(),
                    count: jto.len(),
                });
            }
            let added_options = Some(merge_java_tool_options(None, &ours));
            let java_tool_options = jto.first().map(|&index| EnvEntryRecord {
                index,
                entry: env[index].clone(),
            });
            match &java_tool_options {
                Some(EnvEntryRecord { index, entry }) if entry.get("valueFrom").is_some() => {
                    if !plan.force {
                        return Err(EditError::ValueFrom { object: object.to_string(), container: c.container.clone() });
                    }
                    let value = merge_java_tool_options(Some(&format!("$({JAVA_TOOL_OPTIONS})")), &ours);
                    env.insert(index + 1, json!({"name": JAVA_TOOL_OPTIONS, "value": value}));
                    warn(VALUE_FROM_WARNING.to_string());
                }
                Some(EnvEntryRecord { index, entry }) => {
                    let user = entry.get("value").and_then(Value::as_str);
                    let user_tokens: Vec<&str> = user.unwrap_or_default().split_whitespace().collect();
                    for t in conflicting_options(user_tokens) {
                        warn(format!("its JAVA_TOOL_OPTIONS sets {t}, which works against the archive; remove it"));
                    }
                    let merged = merge_java_tool_options(user, &ours);
                    env[*index]
                        .as_object_mut()
                        .ok_or_else(|| EditError::NotAList {
                            object: object.to_string(),
                            field: field("env[JAVA_TOOL_OPTIONS]"),
                            found: "not a map".into(),
                        })?
                        .insert("value".to_string(), Value::String(merged));
                }
                None => env.push(json!({"name": JAVA_TOOL_OPTIONS, "value": merge_java_tool_options(None, &ours)})),
            }
            for t in conflicting_options(command_line.iter().map(String::as_str)) {
                warn(format!(
                    "its command line sets {t}, which comes after JAVA_TOOL_OPTIONS and works against the archive; remove it"
                ));
            }

            let image = match &c.pin_image {
                Some(pinned) => {
                    let before = container
                        .get("image")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string();
                    container.insert("image".to_string(), Value::String(pinned.clone()));
                    Some(before)
                }
                None => None,
            };
            records.push(ContainerRecord {
                name: c.container.clone(),
                env: env_prior,
                java_tool_options,
                volume_mounts,
                image,
                pinned_image: c.pin_image.clone(),
                added_options,
            });
        }
    }

    let (init_containers, inits) =
        open_list(spec, "initContainers", object, "spec.initContainers")?;
    name_taken(inits, INIT_CONTAINER, "init container", object)?;
    if plan.mode.uses_fetcher() {
        let mounts: Vec<Value> = match plan.mode {
            // Read-only: only the fetcher writes the node store.
            DeliveryMode::HostPath => archives
                .iter()
                .map(|a| json!({"name": volume_of(a), "mountPath": pod_archive_dir(pinned_of(a)), "readOnly": true}))
                .collect(),
            _ => vec![json!({"name": VOLUME, "mountPath": POD_ARCHIVE_DIR, "readOnly": false})],
        };
        inits.push(init_container(
            mounts,
            &InitContainerSpec {
                image: plan.fetcher_image.clone(),
                init: InitArgs {
                    archives: archives.clone(),
                    mode: plan.mode,
                    dir: POD_ARCHIVE_DIR.to_string(),
                    fetcher_url: plan.fetcher_url.clone(),
                    timeout: std::time::Duration::from_secs(plan.timeout_secs),
                    fail_closed: plan.fail_closed,
                },
            },
        ));
    }
    // Only `enable` made it a list if it is still empty: put it back as it was.
    close_field(spec, "initContainers", init_containers);

    let (volumes, vols) = open_list(spec, "volumes", object, "spec.volumes")?;
    let mut more_volumes = vec![];
    if plan.mode == DeliveryMode::Copy {
        vols.push(json!({"name": VOLUME, "emptyDir": {}}));
    }
    for archive in archives.iter().filter(|_| plan.mode != DeliveryMode::Copy) {
        let name = volume_of(archive);
        let volume = match plan.mode {
            // Only this archive's own directory: never the whole store, nor other tenants'
            // archives. The kubelet may create it before the fetcher publishes into it.
            DeliveryMode::HostPath => json!({"name": name, "hostPath": {
                "path": node_archive_dir(&plan.node_store_dir, pinned_of(archive)),
                "type": "DirectoryOrCreate",
            }}),
            _ => {
                let form = selected
                    .iter()
                    .find(|c| &c.archive == archive)
                    .and_then(|c| c.image_volume.clone())
                    .expect("checked above");
                json!({"name": name, "image": {"reference": form, "pullPolicy": "IfNotPresent"}})
            }
        };
        vols.push(volume);
        if name != VOLUME {
            more_volumes.push(name);
        }
    }
    for name in std::iter::once(VOLUME.to_string()).chain(more_volumes.iter().cloned()) {
        let count = vols
            .iter()
            .filter(|v| v.get("name").and_then(Value::as_str) == Some(name.as_str()))
            .count();
        if count > 1 {
            return Err(EditError::NameTaken {
                object: object.to_string(),
                what: "volume",
                name,
            });
        }
    }

    let (metadata, meta) = open_map(root, "metadata", object, "pod template metadata")?;
    let (annotations, notes) = open_map(meta, "annotations", object, "pod template annotations")?;
    let record = UndoRecord {
        version: RECORD_VERSION,
        metadata,
        annotations,
        init_containers,
        volumes,
        more_volumes,
        containers: records,
    };
    let pinned: Map<String, Value> = selected
        .iter()
        .map(|c| (c.container.clone(), Value::String(c.archive.clone())))
        .collect();
    notes.insert(
        ANNOTATION_ARCHIVE.to_string(),
        Value::String(Value::Object(pinned).to_string()),
    );
    notes.insert(
        ANNOTATION_ORIGINAL.to_string(),
        Value::String(serde_json::to_string(&record).expect("the record serializes")),
    );
    Ok(warnings)
}

/// The agent jars a container's JVM loads, in order: `-javaagent` in its `JAVA_TOOL_OPTIONS`
/// and `JDK_JAVA_OPTIONS` (plain values), command and args.
fn workload_agents(container: &Map<String, Value>) -> Vec<String> {
    let env = container.get("env").and_then(Value::as_array);
    let env_value = |name: &str| {
        env.into_iter()
            .flatten()
            .filter(|e| e.get("name").and_then(Value::as_str) == Some(name))
            .filter_map(|e| e.get("value").and_then(Value::as_str))
            .flat_map(str::split_whitespace)
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let list = |key: &str| -> Vec<String> {
        container
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect()
    };
    [
        env_value(JAVA_TOOL_OPTIONS),
        env_value("JDK_JAVA_OPTIONS"),
        list("command"),
        list("args"),
    ]
    .concat()
    .iter()
    .filter_map(|t| java_agent_jar(t.trim_matches('"')).map(str::to_string))
    .collect()
}

/// The container must run exactly the agent the archive was trained with attached (`enable`
/// never adds one); an error names both, or a warning with `force`. A container that runs an
/// agent the archive was trained without, or one agent twice, gets a warning.
fn check_agents(
    container: &Map<String, Value>,
    plan: &ContainerArchive,
    force: bool,
    object: &str,
    warnings: &mut Vec<Warning>,
) -> Result<(), EditError> {
    let runs = workload_agents(container);
    let mut warn = |message: String| {
        warnings.push(Warning {
            object: object.to_string(),
            container: plan.container.clone(),
            message,
        })
    };
    for (i, jar) in runs.iter().enumerate() {
        if runs[..i].contains(jar) {
            warn(format!(
                "it loads the agent {jar} twice; keep one -javaagent for it"
            ));
        }
    }
    let mut distinct = runs.clone();
    distinct.dedup();
    match (&plan.trained_agent, distinct.as_slice()) {
        (Some(trained), [one]) if one == trained => Ok(()),
        (Some(trained), found) => {
            let runs = match found {
                [] => "runs no Java agent".to_string(),
                _ => format!("runs the agent {}", found.join(" and ")),
            };
            if !force {
                return Err(EditError::AgentMismatch {
                    object: object.to_string(),
                    container: plan.container.clone(),
                    trained: trained.clone(),
                    runs,
                });
            }
            warn(format!(
                "it {runs} but the archive was trained with {trained} (--force): the JVM uses what matches; train with its own agent"
            ));
            Ok(())
        }
        (None, []) => Ok(()),
        (None, found) => {
            warn(format!(
                "it runs the agent {}, and the archive was trained without one: the classes the agent adds load from \
                 the class path; train with it (classcache-build --agent-in-image {}) to archive them too",
                found.join(" and "),
                found[0]
            ));
            Ok(())
        }
    }
}

/// The init container, restricted-profile compliant, with small requests, mounting `mounts`.
fn init_container(mounts: Vec<Value>, spec: &InitContainerSpec) -> Value {
    json!({
        "name": INIT_CONTAINER,
        "image": spec.image,
        "imagePullPolicy": "IfNotPresent",
        "command": spec.command(),
        "args": spec.args(),
        "env": [{
            "name": NODE_IP_ENV,
            "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}},
        }],
        "resources": {
            "requests": {"cpu": "10m", "memory": "16Mi"},
            "limits": {"memory": "64Mi"},
        },
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": true,
            "runAsNonRoot": true,
            "runAsUser": INIT_RUN_AS,
            "runAsGroup": INIT_RUN_AS,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": mounts,
    })
}

/// Takes `added` (what `enable` appended, space-separated from what precedes it) out of `value`;
/// `None` when it is no longer there.
fn without_added(value: &str, added: &str) -> Option<String> {
    let at = value.rfind(added)?;
    let before = &value[..at];
    let after = &value[at + added.len()..];
    let before = before.strip_suffix(' ').unwrap_or(before);
    let after = if before.is_empty() {
        after.strip_prefix(' ').unwrap_or(after)
    } else {
        after
    };
    Some(format!("{before}{after}"))
}

/// Puts `JAVA_TOOL_OPTIONS` back: without `enable`'s own options and with every change made
/// since; the recorded entry exactly when nothing else changed.
fn restore_java_tool_options(env: &mut Vec<Value>, c: &ContainerRecord) {
    let Some(added) = &c.added_options else {
        // A record from before `addedOptions`: the snapshot.
        env.retain(|e| e.get("name").and_then(Value::as_str) != Some(JAVA_TOOL_OPTIONS));
        if let Some(EnvEntryRecord { index, entry }) = &c.java_tool_options {
            env.insert((*index).min(env.len()), entry.clone());
        }
        return;
    };
    // The user's own value (an entry without `value` holds an empty one); none for valueFrom.
    let original_value = c
        .java_tool_options
        .as_ref()
        .filter(|r| r.entry.get("valueFrom").is_none())
        .map(|r| r.entry.get("value").and_then(Value::as_str).unwrap_or(""));
    let expansion = format!("$({JAVA_TOOL_OPTIONS})");
    let mut remove = None;
    for (i, entry) in env.iter_mut().enumerate() {
        if entry.get("name").and_then(Value::as_str) != Some(JAVA_TOOL_OPTIONS) {
            continue;
        }
        let Some(value) = entry.get("value").and_then(Value::as_str) else {
            continue;
        };
        let Some(rest) = without_added(value, added) else {
            continue;
        };
        let from_value_from = c
            .java_tool_options
            .as_ref()
            .is_some_and(|r| r.entry.get("valueFrom").is_some());
        // `enable` wrote only its own options over a blank value, and the prefix byte for byte.
        let unchanged = original_value
            .is_some_and(|o| o == rest || (o.trim().is_empty() && rest.trim().is_empty()));
        if unchanged {
            *entry = c
                .java_tool_options
                .as_ref()
                .expect("has a value")
                .entry
                .clone();
        } else if (c.java_tool_options.is_none() && rest.trim().is_empty())
            || (from_value_from && rest.trim() == expansion)
        {
            remove = Some(i);
        } else if let Some(map) = entry.as_object_mut() {
            map.insert("value".into(), Value::String(rest));
        }
        break;
    }
    if let Some(i) = remove {
        env.remove(i);
    }
}

fn restore(
    template: &mut Value,
    record: &UndoRecord,
    object: &str,
    options: DisableOptions,
) -> Result<(), EditError> {
    let root = as_object(template, object, "pod template")?;
    if let Some(meta) = root.get_mut("metadata").and_then(Value::as_object_mut) {
        if let Some(notes) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            notes.shift_remove(ANNOTATION_ARCHIVE);
            notes.shift_remove(ANNOTATION_ORIGINAL);
        }
        close_field(meta, "annotations", record.annotations);
    }
    close_field(root, "metadata", record.metadata);

    let Some(spec) = root.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    let volumes: Vec<&str> = std::iter::once(VOLUME)
        .chain(record.more_volumes.iter().map(String::as_str))
        .collect();
    for (key, names, prior) in [
        ("volumes", volumes.as_slice(), record.volumes),
        (
            "initContainers",
            &[INIT_CONTAINER][..],
            record.init_containers,
        ),
    ] {
        if let Some(list) = spec.get_mut(key).and_then(Value::as_array_mut) {
            names.iter().for_each(|name| remove_named(list, name));
        }
        close_field(spec, key, prior);
    }
    let Some(list) = spec.get_mut("containers").and_then(Value::as_array_mut) else {
        return Ok(());
    };
    for c in &record.containers {
        // A container removed since `enable` has nothing left to restore.
        let Some(container) = list
            .iter_mut()
            .find(|v| v.get("name").and_then(Value::as_str) == Some(c.name.as_str()))
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        if let Some(mounts) = container
            .get_mut("volumeMounts")
            .and_then(Value::as_array_mut)
        {
            volumes.iter().for_each(|name| remove_named(mounts, name));
        }
        close_field(container, "volumeMounts", c.volume_mounts);
        if let Some(env) = container.get_mut("env").and_then(Value::as_array_mut) {
            restore_java_tool_options(env, c);
        }
        close_field(container, "env", c.env);
        if let Some(image) = &c.image {
            let current = container.get("image").and_then(Value::as_str);
            match &c.pinned_image {
                Some(pinned) if current != Some(pinned.as_str()) => {
                    if !options.keep_image {
                        return Err(EditError::ImageChanged {
                            object: object.to_string(),
                            container: c.name.clone(),
                            current: current.unwrap_or_default().to_string(),
                            pinned: pinned.clone(),
                            original: image.clone(),
                        });
                    }
                }
                _ => {
                    container.insert("image".to_string(), Value::String(image.clone()));
                }
            }
        }
    }
    Ok(())
}
