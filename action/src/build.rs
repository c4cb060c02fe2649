//! The build from image to published archive: prepare, train, verify, publish, report.
//! It sequences the steps and names every failure; JVM flags come from core's `jvm`, formats from core.

use crate::cli::Args;
use crate::console::Console;
use crate::report::{
    ArchiveReport, ClassesReport, ImageReport, IndexReport, Phases, Report, StartupReport,
};
use crate::runtime::docker::{self, DockerOptions, DockerRuntime};
use crate::runtime::local::{self, LocalRuntime};
use crate::runtime::{RunSpec, Runtime, StopWhen};
use crate::verify::Verifier;
use anyhow::{anyhow, bail, Context, Result};
use classcache_core::artifact::signature::SigningKey;
use classcache_core::artifact::{
    AgentInfo, ArchiveConfig, ArchiveFile, ImageIdentity, Platform, Verification,
    CONFIG_SCHEMA_VERSION,
};
use classcache_core::digest::Digest;
use classcache_core::jvm::{self, AgentSetup, JvmProperties, StepRole, TrainingPlan};
use classcache_core::key::{AgentIdentity, IndexKey, KeyInputs};
use classcache_core::media_types;
use classcache_core::oci::Descriptor;
use classcache_core::reference::{ArchiveLocation, RegistryRef};
use classcache_oci::layout::OciLayout;
use classcache_oci::registry::{PushedArchive, RegistryClient, RegistryOptions};
use classcache_oci::store::ArchiveStore;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Default container directory of an uploaded agent jar.
pub const AGENT_DIR: &str = "/opt/classcache/agent";

/// Where the archive goes, decided before any work so that bad input fails fast.
#[derive(Debug, Clone)]
pub enum Destination {
    /// A registry repository; with `sign_key` the pushed manifest is signed (`--sign-key`).
    Registry {
        repository: RegistryRef,
        sign_key: Option<Arc<SigningKey>>,
    },
    Layout {
        dir: PathBuf,
        tag: Option<String>,
    },
    /// Nothing is published; the reason is reported.
    None(String),
}

/// `--agent` or `--agent-in-image`: checked, hashed, and where it is in the container.
#[derive(Debug, Clone)]
pub struct Agent {
    /// The jar to upload (`--agent`); `None` when the image has it (`--agent-in-image`).
    pub host_path: Option<PathBuf>,
    pub sha256: String,
    pub setup: AgentSetup,
}

/// Checks the agent file: present, a jar (zip), hashed.
pub fn check_agent(args: &Args) -> Result<Option<Agent>> {
    let Some(path) = &args.agent else {
        return Ok(None);
    };
    let mut magic = [0u8; 4];
    let read =
        std::fs::File::open(path).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic));
    match read {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!(
                "the agent file {} does not exist; pass --agent with the path of the agent jar",
                path.display()
            )
        }
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            bail!("the agent file {} is not a jar (it is shorter than a zip header); pass the agent's .jar", path.display())
        }
        Err(e) => bail!("cannot read the agent file {}: {e}", path.display()),
        Ok(()) if &magic != b"PK\x03\x04" => {
            bail!("the agent file {} is not a jar (no zip header); pass the agent's .jar, not a script or a directory", path.display())
        }
        Ok(()) => {}
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "agent.jar".into());
    let sha256 = local::sha256_file(path)?;
    let container_path = match (&args.agent_path, args.uses_local_runtime()) {
        (Some(p), _) => p.clone(),
        // Locally the agent is used where it is.
        (None, true) => path
            .canonicalize()
            .unwrap_or_else(|_| path.clone())
            .display()
            .to_string(),
        (None, false) => format!("{AGENT_DIR}/{name}"),
    };
    Ok(Some(Agent {
        host_path: Some(path.clone()),
        sha256,
        setup: AgentSetup {
            path: container_path,
            mode: args.agent_mode.into(),
        },
    }))
}

/// `--agent-in-image`: the jar the image itself has, hashed in place. An agent missing from the
/// image, or not a jar, stops the build before any training run.
pub async fn agent_in_image(args: &Args, runtime: &Runtime) -> Result<Option<Agent>> {
    let Some(path) = &args.agent_in_image else {
        return Ok(None);
    };
    let facts = runtime.file_facts(path).await?.ok_or_else(|| {
        anyhow!(
            "--agent-in-image {path}: the image {} has no file there; pass the path production attaches with \
             -javaagent:PATH (look inside with `docker run --rm --entrypoint ls {} -l <dir>`), or upload a jar with --agent FILE; nothing was trained or pushed",
            args.image,
            args.image
        )
    })?;
    if !facts.is_zip {
        bail!(
            "--agent-in-image {path}: that file in {} is not a jar (no zip header); pass the agent's .jar; nothing was trained or pushed",
            args.image
        );
    }
    Ok(Some(Agent {
        host_path: None,
        sha256: facts.sha256,
        setup: AgentSetup {
            path: path.clone(),
            mode: args.agent_mode.into(),
        },
    }))
}

/// True when the event is a pull request (GitHub Actions), whose code must not write the cache.
pub fn is_pull_request_event() -> bool {
    matches!(
        std::env::var("GITHUB_EVENT_NAME").as_deref(),
        Ok("pull_request") | Ok("pull_request_target")
    )
}

/// Decides where the archive goes.
pub fn destination(args: &Args) -> Result<Destination> {
    if args.no_push {
        return Ok(Destination::None("--no-push".to_string()));
    }
    if is_pull_request_event() && !args.push_on_pull_request {
        return Ok(Destination::None(
            "pull_request event: builds of pull requests do not write the shared cache (pass --push-on-pull-request to opt in)".to_string(),
        ));
    }
    let to = match (&args.to, args.uses_local_runtime()) {
        (Some(to), _) => to.clone(),
        (None, true) => bail!("the local runtime has no image repository to push to; pass --to oci:DIR:TAG (an OCI layout directory) or --to REGISTRY/REPO"),
        (None, false) => classcache_core::reference::repository_of(&args.image).to_string(),
    };
    match to
        .parse::<ArchiveLocation>()
        .with_context(|| format!("--to {to}"))?
    {
        ArchiveLocation::Layout {
            dir,
            tag,
            digest: None,
        } => {
            if let Some(key) = &args.sign_key {
                bail!("--sign-key {}: signatures are pushed to a registry, and --to {to} is an OCI layout; push to a registry (--to REGISTRY/REPO) to sign, or drop --sign-key", key.display());
            }
            Ok(Destination::Layout { dir, tag })
        }
        ArchiveLocation::Layout { .. } => {
            bail!("--to {to}: a destination cannot pin a digest; use oci:DIR or oci:DIR:TAG")
        }
        ArchiveLocation::Registry(r) => {
            if r.digest.is_some() {
                bail!("--to {to}: a destination cannot pin a digest; name the repository (the tag is the key)");
            }
            Ok(Destination::Registry {
                repository: r.repository_only(),
                sign_key: read_sign_key(args)?,
            })
        }
    }
}

/// `--sign-key`: read and checked before any work, so a bad key fails fast.
fn read_sign_key(args: &Args) -> Result<Option<Arc<SigningKey>>> {
    let Some(path) = &args.sign_key else {
        return Ok(None);
    };
    let pem = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read --sign-key {}; pass the path of a PEM private key",
            path.display()
        )
    })?;
    Ok(Some(Arc::new(SigningKey::from_pem(
        &pem,
        &format!("--sign-key {}", path.display()),
    )?)))
}

fn env_pairs(args: &Args) -> Result<Vec<(String, String)>> {
    args.env
        .iter()
        .map(|e| match e.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(anyhow!("--env {e:?} is not KEY=VALUE")),
        })
        .collect()
}

/// The image digest the archive is bound to, typed (the runtimes report it as text).
fn target_digest(target: &crate::runtime::Target) -> Result<Digest> {
    target.digest.parse().with_context(|| {
        format!(
            "the image {} has no usable sha256 digest; push it to its registry (or use the local runtime) and build again",
            target.reference
        )
    })
}

fn registry_client() -> Result<RegistryClient> {
    RegistryClient::new(RegistryOptions::default()).context("cannot set up the registry client")
}

/// Opens the runtime: pulls and inspects the image (docker), resolves the platform manifest.
pub async fn open_runtime(
    args: &Args,
    agent: Option<&Agent>,
    console: &Console,
) -> Result<Runtime> {
    let env = env_pairs(args)?;
    if args.uses_local_runtime() {
        let java = local::resolve_java(args.java.as_deref());
        return Ok(Runtime::Local(LocalRuntime::new(
            java,
            &args.image,
            &args.args,
            env,
        )?));
    }
    let image_ref: RegistryRef = args
        .image
        .parse()
        .with_context(|| format!("the image {:?} is not an image reference (or use a .jar / `local` with the local runtime)", args.image))?;
    let engine = docker::connect().await?;
    let extra_files = agent
        .and_then(|a| {
            a.host_path
                .clone()
                .map(|host| vec![(host, a.setup.path.clone())])
        })
        .unwrap_or_default();
    let mut runtime = DockerRuntime::open(
        engine,
        DockerOptions {
            image: args.image.clone(),
            args: args.args.clone(),
            env,
            network: args.network.clone(),
            extra_files,
        },
        console,
    )
    .await?;
    // The archive is bound to the platform manifest (not an index): ask the registry for it.
    let target = runtime.target().clone();
    let client = registry_client()?;
    // RepoDigests can list several digests of the repository (an image built and pushed here
    // as a platform manifest, then pulled by a tag that names a multi-platform index): the
    // one the tag names in the registry, which the pull just fetched, wins.
    let mut digest = target_digest(&target)?;
    if let (None, Some(_)) = (&image_ref.digest, &image_ref.tag) {
        if let Ok(Some(named)) = client.head_manifest(&image_ref).await {
            if runtime.repo_digests().contains(&named.digest.to_string()) {
                digest = named.digest;
            }
        }
    }
    let resolved = client
        .resolve_image(&image_ref.with_digest(&digest))
        .await
        .with_context(|| {
            format!(
                "cannot read the manifest of {} from its registry",
                args.image
            )
        })?;
    let want = Platform {
        os: target.os.clone(),
        architecture: target.arch.clone(),
        variant: target.variant.clone(),
    };
    let manifest = resolved
        .for_platform(&want)
        .or_else(|| {
            resolved.for_platform(&Platform {
                variant: None,
                ..want.clone()
            })
        })
        .ok_or_else(|| {
            anyhow!(
                "the image {} has no manifest for {}/{}; pull the platform the runner has",
                args.image,
                want.os,
                want.architecture
            )
        })?;
    // A multi-platform image: its index of per-platform archives will get this platform's.
    let image_index = if media_types::is_index(&resolved.media_type) {
        let pinned = image_ref.with_digest(&resolved.digest);
        client
            .head_manifest(&pinned)
            .await
            .with_context(|| format!("cannot read the image index {pinned}"))?
    } else {
        None
    };
    runtime.set_manifest(
        manifest.digest.to_string(),
        manifest.size,
        manifest.media_type.clone(),
        image_index,
    );
    Ok(Runtime::Docker(runtime))
}

/// The stop condition of training runs.
pub fn training_stop(args: &Args) -> StopWhen {
    match (&args.ready_url, args.stop_after) {
        (Some(url), _) => StopWhen::Ready {
            url: url.clone(),
            warmup_urls: args.warmup_urls.clone(),
            warmup_requests: args.warmup_requests,
        },
        (None, Some(after)) => StopWhen::After(after),
        (None, None) => StopWhen::Exit,
    }
}

/// The whole build. `runtime` is opened by the caller, which removes its containers after.
pub async fn build(
    args: &Args,
    agent: Option<&Agent>,
    destination: &Destination,
    runtime: &Runtime,
    console: &Console,
    started: Instant,
) -> Result<Report> {
    let open_ms = started.elapsed().as_millis() as u64;
    let target = runtime.target().clone();
    console.step(format!(
        "image {} ({}/{}) digest {}",
        target.reference, target.os, target.arch, target.digest
    ));

    // --- the JVM and the plan: detection rides on the first run without the archive.
    let mut base = jvm::baseline_options(agent.map(|a| &a.setup), &args.jvm_options);
    if args.spring {
        base.push(jvm::SPRING_EXIT_ON_REFRESH.to_string());
    }
    let mut verifier = Verifier {
        agent: agent.map(|a| a.setup.path.clone()),
        runtime,
        base,
        with_archive: vec![],
        archive_file_name: String::new(),
        stop: training_stop(args).without_warmup(),
        timeout: args.timeout,
    };
    let baseline_spec = verifier.baseline_spec();
    let baseline_started = Instant::now();
    let (probe, baseline) = runtime.probe_with_baseline(&baseline_spec).await?;
    let baseline_ms = match &baseline {
        Some(outcome) => {
            verifier.check(&baseline_spec, outcome, false)?;
            baseline_started.elapsed().as_millis() as u64
        }
        None => 0,
    };
    let properties: JvmProperties =
        jvm::parse_properties(&probe.properties_output).with_context(|| {
            format!(
                "{} in {} printed no JVM properties",
                probe.java, target.reference
            )
        })?;
    let identity = properties
        .identity()
        .with_context(|| format!("the JVM in {}", target.reference))?;
    let kind = match args.kind.kind() {
        Some(kind) => {
            jvm::check_kind(kind, identity.feature_version, probe.has_base_archive)?;
            kind
        }
        None => jvm::default_kind(identity.feature_version, probe.has_base_archive)?,
    };
    console.step(format!(
        "JVM {} {} (build {}, base CDS archive: {}): building archive kind {kind}",
        identity.vendor,
        identity.version,
        identity.build,
        if probe.has_base_archive { "yes" } else { "no" }
    ));
    let work_dir = runtime.work_dir();
    let plan = jvm::training_plan(
        kind,
        identity.feature_version,
        &work_dir,
        agent.map(|a| &a.setup),
        &args.jvm_options,
    );
    let key_inputs = KeyInputs {
        image_digest: target.digest.clone(),
        jvm_build: identity.build.clone(),
        os: target.os.clone(),
        arch: target.arch.clone(),
        kind,
        agent: agent.map(|a| AgentIdentity {
            sha256: a.sha256.clone(),
            mode: a.setup.mode,
        }),
        jvm_options: args.jvm_options.clone(),
    };
    let key = key_inputs.key()?;
    console.step(format!("key {key}"));
    // One CI job per platform derives the same index key from the image index.
    let index = match &target.image_index {
        Some(image_index) => Some((
            key_inputs.index_key(image_index.digest.as_str())?,
            image_index.clone(),
        )),
        None => None,
    };
    // The first run is the verification's run without the archive: counted there.
    let probe_ms = (started.elapsed().as_millis() as u64).saturating_sub(open_ms + baseline_ms);

    // --- training
    let training_started = Instant::now();
    let archive_path = train(args, &plan, agent, runtime, console).await?;
    let training_ms = training_started.elapsed().as_millis() as u64;

    // --- verification
    let verification_started = Instant::now();
    let mut base = plan.app_options.clone();
    if args.spring {
        base.push(jvm::SPRING_EXIT_ON_REFRESH.to_string());
    }
    verifier.base = base;
    verifier.with_archive = plan
        .archive_options
        .iter()
        .map(|o| {
            o.replace(
                classcache_core::artifact::ARCHIVE_PATH_PLACEHOLDER,
                &plan.archive_path,
            )
        })
        .chain(plan.require_options.iter().cloned())
        .collect();
    verifier.archive_file_name = plan.archive_file_name.clone();
    let activity = console.activity("verifying: class-load logs without and with the archive");
    let coverage = verifier.coverage(baseline).await?;
    activity.finish(format!(
        "archive loads: {} of {} classes from it; app classes {} of {} ({:.1}%)",
        coverage.classes_from_archive,
        coverage.classes_total,
        coverage.app_classes_from_archive,
        coverage.app_classes,
        coverage.app_percent()
    ));
    if coverage.app_classes == 0 {
        console.warn("no class of the app came from its class path (jars or directories): cannot tell the app's coverage; is the app's code loaded by a custom class loader (Spring Boot fat jar)? Run it extracted: java -Djarmode=tools -jar app.jar extract");
    } else if coverage.app_percent() < args.min_coverage {
        console.warn(format!(
            "only {:.1}% of the app's classes ({} of {}) came from the archive (--min-coverage {}): classes from directories or from custom class loaders (a Spring Boot fat jar) are not archived; run the app from jars, extracted (java -Djarmode=tools -jar app.jar extract), and make training exercise the code paths start-up uses",
            coverage.app_percent(),
            coverage.app_classes_from_archive,
            coverage.app_classes,
            args.min_coverage
        ));
    }
    let activity = console.activity(format!(
        "timing start-up, {} runs with and without the archive",
        args.verify_runs
    ));
    let timing = verifier
        .timing(args.verify_runs, |i, n| {
            activity.update(format!("timing start-up: run {i} of {n}"))
        })
        .await?;
    match &timing {
        Some(t) => activity.finish(format!(
            "start-up median {:.0} ms without, {:.0} ms with the archive: {:.2}x",
            t.median_ms_without,
            t.median_ms_with,
            t.speedup()
        )),
        None => activity
            .finish("start-up not timed (--verify-runs 0, or a timed stop gives no start-up time)"),
    }
    let verification_ms = verification_started.elapsed().as_millis() as u64 + baseline_ms;

    // --- the artifact
    let archive_file = ArchiveFile {
        name: plan.archive_file_name.clone(),
        size: std::fs::metadata(&archive_path)
            .map(|m| m.len())
            .unwrap_or(0),
        sha256: local::sha256_file(&archive_path)?,
    };
    let config = ArchiveConfig {
        schema_version: CONFIG_SCHEMA_VERSION,
        key: key.clone(),
        kind,
        jvm: identity.clone(),
        platform: Platform {
            os: target.os.clone(),
            architecture: target.arch.clone(),
            variant: target.variant.clone(),
        },
        image: ImageIdentity {
            reference: target.reference.clone(),
            digest: target_digest(&target)?,
            entrypoint: target.entrypoint.clone(),
            cmd: if args.args.is_empty() {
                target.cmd.clone()
            } else {
                args.args.clone()
            },
        },
        agent: agent.map(|a| AgentInfo {
            identity: AgentIdentity {
                sha256: a.sha256.clone(),
                mode: a.setup.mode,
            },
            path: a.setup.path.clone(),
        }),
        training_options: plan.training_options.clone(),
        runtime_options: plan.runtime_options.clone(),
        archive: archive_file.clone(),
        verification: Some(Verification {
            classes_total: coverage.classes_total,
            classes_from_archive: coverage.classes_from_archive,
            startup_runs: timing.as_ref().map_or(0, |t| t.runs),
            startup_median_ms_without: timing.as_ref().map_or(0.0, |t| t.median_ms_without),
            startup_median_ms_with: timing.as_ref().map_or(0.0, |t| t.median_ms_with),
        }),
        created: classcache_core::artifact::now_rfc3339(),
    };
    let subject = Descriptor::new(
        if target.manifest_media_type.is_empty() {
            classcache_core::media_types::OCI_MANIFEST
        } else {
            &target.manifest_media_type
        },
        target_digest(&target)?,
        target.manifest_size,
    );
    let publish_started = Instant::now();
    let trained_agent = config.agent.clone();
    let (reference, digest, not_published, index) = publish(
        destination,
        config,
        &archive_path,
        subject,
        index.as_ref(),
        console,
    )
    .await?;
    let publish_ms = publish_started.elapsed().as_millis() as u64;

    Ok(Report {
        key,
        kind,
        jvm: identity,
        image: ImageReport {
            reference: target.reference.clone(),
            digest: target.digest.clone(),
            platform: format!("{}/{}", target.os, target.arch),
        },
        archive: ArchiveReport {
            reference,
            digest,
            not_published,
            file_name: archive_file.name,
            size: archive_file.size,
            sha256: archive_file.sha256,
            runtime_options: plan.runtime_options.clone(),
            agent: trained_agent,
            index,
        },
        classes: ClassesReport {
            total: coverage.classes_total,
            from_archive: coverage.classes_from_archive,
            app_classes: coverage.app_classes,
            app_classes_from_archive: coverage.app_classes_from_archive,
            app_coverage_percent: (coverage.app_percent() * 10.0).round() / 10.0,
        },
        startup: timing.map(|t| StartupReport {
            runs: t.runs,
            median_ms_without: t.median_ms_without.round(),
            median_ms_with: t.median_ms_with.round(),
            speedup: (t.speedup() * 100.0).round() / 100.0,
        }),
        phases: Phases {
            open_ms,
            probe_ms,
            training_ms,
            verification_ms,
            publish_ms,
            total_ms: started.elapsed().as_millis() as u64,
        },
        warnings: console.warnings(),
    })
}

/// Runs the plan's steps; returns the archive on this machine.
async fn train(
    args: &Args,
    plan: &TrainingPlan,
    agent: Option<&Agent>,
    runtime: &Runtime,
    console: &Console,
) -> Result<PathBuf> {
    let stop = training_stop(args);
    let mut produced: Vec<String> = Vec::new();
    let step_count = plan.steps.len();
    for (i, step) in plan.steps.iter().enumerate() {
        let mut options = step.options.clone();
        let (purpose, stop) = match step.role {
            StepRole::Train => {
                if args.spring {
                    options.push(jvm::SPRING_EXIT_ON_REFRESH.to_string());
                }
                ("training".to_string(), stop.clone())
            }
            StepRole::Assemble => ("archive assembly".to_string(), StopWhen::Exit),
        };
        let spec = RunSpec {
            purpose: purpose.clone(),
            options,
            stop,
            timeout: args.timeout,
            inputs: produced.clone(),
            outputs: plan.work_files.clone(),
            launcher_options: vec![],
        };
        let activity = console.activity(format!("{purpose} run ({} of {step_count})", i + 1));
        let outcome = runtime.run(&spec).await?;
        if !outcome.exited_normally() {
            activity.finish(format!("{purpose} run failed"));
            if let Some(e) =
                agent.and_then(|a| crate::verify::agent_failure(&a.setup.path, &purpose, &outcome))
            {
                return Err(e);
            }
            bail!(
                "the {purpose} run ended abnormally (exit code {}{}), so the JVM wrote no archive; nothing was pushed. The app's last output:\n{}",
                outcome.exit_code,
                if outcome.exit_code == 137 { ", killed" } else { "" },
                outcome.log_tail()
            );
        }
        activity.finish(format!(
            "{purpose} run done (exit code {})",
            outcome.exit_code
        ));
        let host_dir = runtime.host_work_dir();
        produced = plan
            .work_files
            .iter()
            .filter(|&name| host_dir.join(name).is_file())
            .cloned()
            .collect();
        if i + 1 == step_count {
            let archive = host_dir.join(&plan.archive_file_name);
            let size = std::fs::metadata(&archive).map(|m| m.len()).unwrap_or(0);
            if size == 0 {
                let jvm_lines: Vec<&str> = outcome
                    .stderr
                    .lines()
                    .chain(outcome.stdout.lines())
                    .filter(|l| l.contains("[cds") || l.contains("[aot") || l.contains("rror"))
                    .take(20)
                    .collect();
                bail!(
                    "the {purpose} run exited normally but wrote no archive ({}); nothing was pushed. The JVM writes it only at a normal exit (return from main, System.exit, SIGTERM), never on SIGKILL or a crash; check that the app ends that way and that {} is writable. JVM messages:\n{}\nThe app's last output:\n{}",
                    plan.archive_path,
                    runtime.work_dir(),
                    if jvm_lines.is_empty() { "(none)".to_string() } else { jvm_lines.join("\n") },
                    outcome.log_tail()
                );
            }
            console.step(format!(
                "archive {} ({:.1} MB)",
                plan.archive_file_name,
                size as f64 / 1e6
            ));
            return Ok(archive);
        }
    }
    unreachable!("a training plan has at least one step")
}

/// What [`publish`] did: (reference, manifest digest, why nothing was published, the index of
/// per-platform archives it updated).
type Published = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<IndexReport>,
);

/// Pushes to the registry or writes the layout. `index` is the index key and image index of a
/// multi-platform image, whose index of per-platform archives then gets this archive.
async fn publish(
    destination: &Destination,
    config: ArchiveConfig,
    archive: &Path,
    subject: Descriptor,
    index: Option<&(IndexKey, Descriptor)>,
    console: &Console,
) -> Result<Published> {
    match destination {
        Destination::None(why) => {
            console.step(format!("not publishing the archive: {why}"));
            Ok((None, None, Some(why.clone()), None))
        }
        Destination::Registry {
            repository,
            sign_key,
        } => {
            let activity = console.activity(format!("pushing to {repository}"));
            let client = registry_client()?;
            let store = ArchiveStore::Registry {
                client: client.clone(),
                reference: repository.clone(),
            };
            let pushed = store
                .push_archive(config, archive, Some(subject))
                .await
                .with_context(|| {
                    format!("pushing the archive to {repository} failed; nothing was tagged")
                })?;
            activity.finish(format!(
                "pushed {} ({} bytes uploaded)",
                pushed.reference, pushed.bytes_uploaded
            ));
            if let Some(key) = sign_key {
                let signed = client
                    .push_signature(repository, &pushed.manifest_descriptor, key)
                    .await
                    .with_context(|| format!("signing {} failed: the archive is pushed but unsigned, and fetchers with --require-signature refuse it; push again", pushed.reference))?;
                console.step(format!(
                    "signed {} ({} and a referrer)",
                    signed.signed, signed.tag_reference
                ));
            }
            let index = match index {
                Some((key, image_index)) => {
                    update_index(
                        &client,
                        repository,
                        key,
                        image_index,
                        &pushed,
                        sign_key.as_deref(),
                        console,
                    )
                    .await?
                }
                None => None,
            };
            Ok((
                Some(pushed.reference),
                Some(pushed.manifest_digest.to_string()),
                None,
                index,
            ))
        }
        Destination::Layout { dir, tag } => {
            let layout = OciLayout::create(dir).with_context(|| {
                format!("cannot open or create the OCI layout {}", dir.display())
            })?;
            let store = ArchiveStore::Layout {
                layout,
                tag: tag.clone(),
                digest: None,
            };
            let pushed = store
                .push_archive(config, archive, Some(subject))
                .await
                .with_context(|| {
                    format!(
                        "cannot write the archive into the OCI layout {}",
                        dir.display()
                    )
                })?;
            let reference = format!(
                "oci:{}:{}",
                dir.display(),
                tag.as_deref().unwrap_or(&pushed.tag)
            );
            let digest = pushed.manifest_digest.to_string();
            console.step(format!("wrote {reference} ({digest})"));
            if let Some((key, _)) = index {
                console.step(format!(
                    "the image is multi-platform, but an OCI layout gets this platform's archive only; the index of per-platform archives ({key}) is kept in a registry: push there (--to REGISTRY/REPO) for one pod template across platforms"
                ));
            }
            Ok((Some(reference), Some(digest), None, None))
        }
    }
}

/// Adds the pushed archive to the index of per-platform archives `key` of the multi-platform
/// image `image_index`, keeping the other platforms' entries (one CI job per platform), and
/// signs the index when the archive was signed (pods pin the index's digest). Skipped, with a
/// warning, when the image index is not in the destination repository: referrers relate
/// manifests of one repository only.
async fn update_index(
    client: &RegistryClient,
    repository: &RegistryRef,
    key: &IndexKey,
    image_index: &Descriptor,
    pushed: &PushedArchive,
    sign_key: Option<&SigningKey>,
    console: &Console,
) -> Result<Option<IndexReport>> {
    let pinned = repository.with_digest(&image_index.digest);
    if client
        .head_manifest(&pinned)
        .await
        .with_context(|| format!("cannot look up the image index {pinned}"))?
        .is_none()
    {
        console.warn(format!(
            "the image index {} is not in {repository}, so the archive joins no index of per-platform archives and a pod template serves this platform only; push the archive to the image's own repository (leave out --to)",
            image_index.digest
        ));
        return Ok(None);
    }
    let activity = console.activity(format!(
        "adding the archive to the index of per-platform archives {repository}:{key}"
    ));
    let updated = client
        .update_archive_index(repository, key, image_index, pushed)
        .await
        .with_context(|| {
            format!(
                "the archive {} is pushed, but the index of per-platform archives {repository}:{key} could not be updated; run the build again",
                pushed.reference
            )
        })?;
    let names = |platforms: &[Platform]| {
        platforms
            .iter()
            .map(Platform::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    activity.finish(format!(
        "index {} covers {}{}",
        updated.reference,
        names(&updated.platforms),
        if updated.missing.is_empty() {
            String::new()
        } else {
            format!(
                " (no archive yet for {}: run the build on those platforms too)",
                names(&updated.missing)
            )
        }
    ));
    if let Some(sign_key) = sign_key {
        let signed = client
            .push_signature(repository, &updated.descriptor, sign_key)
            .await
            .with_context(|| format!("signing the index {} failed: fetchers with --require-signature refuse it; run the build again", updated.reference))?;
        console.step(format!(
            "signed the index {} ({} and a referrer)",
            signed.signed, signed.tag_reference
        ));
    }
    Ok(Some(IndexReport {
        reference: updated.reference,
        digest: updated.digest.to_string(),
        key: updated.key.to_string(),
        platforms: updated.platforms.iter().map(Platform::to_string).collect(),
        missing: updated.missing.iter().map(Platform::to_string).collect(),
    }))
}
