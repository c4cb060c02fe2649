//! The Docker runtime (bollard): pull and inspect the app image, run it with the build's options
//! in `JAVA_TOOL_OPTIONS`, copy files in and out, and always remove the containers it made.

use super::{
    drive, exit_grace, log_tail, no_exit_after_sigterm, probe_args, share_on_args, AppProcess,
    JvmProbe, RunOutcome, RunSpec, Target,
};
use crate::console::Console;
use anyhow::{anyhow, bail, Context, Result};
use bollard::auth::DockerCredentials;
use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateImageOptionsBuilder, DownloadFromContainerOptionsBuilder, KillContainerOptionsBuilder,
    LogsOptionsBuilder, RemoveContainerOptionsBuilder, UploadToContainerOptionsBuilder,
};
use bollard::Docker;
use bytes::Bytes;
use classcache_core::jvm::{self, java_tool_options};
use classcache_core::reference::RegistryRef;
use classcache_oci::docker_config::{Credentials, DockerConfig};
use futures_util::StreamExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The build's directory inside every container (training output, class lists, the archive
/// for verification). Under /tmp, which every image the harness or a JDK base image has.
pub const CONTAINER_WORK_DIR: &str = "/tmp/classcache-build";
/// Label on every container the build makes, so leftovers can be found
/// (`docker ps -a --filter label=dev.classcache.build=<run id>`).
pub const CONTAINER_LABEL: &str = "dev.classcache.build";
/// Names the build in [`CONTAINER_LABEL`]'s value (default: `GITHUB_RUN_ID`, else pid and time).
pub const RUN_ID_ENV: &str = "CLASSCACHE_RUN_ID";

/// The value of [`CONTAINER_LABEL`] on this build's containers.
pub fn run_id() -> String {
    std::env::var(RUN_ID_ENV)
        .or_else(|_| std::env::var("GITHUB_RUN_ID"))
        .unwrap_or_else(|_| format!("{}-{}", std::process::id(), now_secs()))
}
/// The oldest engine API the build works with.
pub const MIN_API_VERSION: &str = "1.41";

pub struct DockerRuntime {
    docker: Docker,
    /// The image as containers are created from it (the pulled reference).
    image: String,
    target: Target,
    /// The registry digests the engine knows for the image's repository (`RepoDigests`):
    /// several when it was pushed as a platform manifest and pulled as a multi-platform index.
    repo_digests: Vec<String>,
    network: String,
    env: Vec<String>,
    /// The image's own environment (`KEY=VALUE`), as inspect shows it.
    image_env: Vec<String>,
    /// Replaces the image's CMD when the user passed ARGS.
    cmd: Option<Vec<String>>,
    /// Files placed into every container before start (host file, container path).
    extra_files: Vec<(PathBuf, String)>,
    work_dir: tempfile::TempDir,
    /// Containers made and not yet removed.
    live: Mutex<Vec<String>>,
    run_id: String,
}

/// Connects to the engine DOCKER_HOST names (default /var/run/docker.sock), negotiating the
/// API version down to what the engine speaks.
pub async fn connect() -> Result<Docker> {
    let host =
        std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".to_string());
    let unreachable = |e: &dyn std::fmt::Display| {
        anyhow!("cannot reach the Docker engine at {host}: {e}; start Docker or set DOCKER_HOST, or train without Docker: --runtime local")
    };
    let docker = Docker::connect_with_defaults().map_err(|e| unreachable(&e))?;
    let docker = docker
        .negotiate_version()
        .await
        .map_err(|e| unreachable(&e))?;
    let version = docker.version().await.map_err(|e| unreachable(&e))?;
    let api = version.api_version.unwrap_or_default();
    if version_less(&api, MIN_API_VERSION) {
        bail!("the Docker engine at {host} speaks API {api}; classcache-build needs {MIN_API_VERSION} or newer (Docker 20.10+): upgrade the engine");
    }
    Ok(docker)
}

fn version_less(a: &str, b: &str) -> bool {
    let parse = |v: &str| -> Vec<u32> { v.split('.').filter_map(|p| p.parse().ok()).collect() };
    parse(a) < parse(b)
}

fn credentials_for(image: &str) -> Option<DockerCredentials> {
    let registry = image.parse::<RegistryRef>().ok()?.registry;
    let config = DockerConfig::load_default().ok()?;
    match config.credentials_for(&registry).ok()? {
        Credentials::Anonymous => None,
        Credentials::Basic { username, password } => Some(DockerCredentials {
            username: Some(username),
            password: Some(password),
            serveraddress: Some(registry),
            ..Default::default()
        }),
        Credentials::IdentityToken { username, token } => Some(DockerCredentials {
            username: Some(username),
            identitytoken: Some(token),
            serveraddress: Some(registry),
            ..Default::default()
        }),
    }
}

/// What `DockerRuntime::open` needs besides the engine.
pub struct DockerOptions {
    pub image: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub network: String,
    pub extra_files: Vec<(PathBuf, String)>,
}

impl DockerRuntime {
    /// Pulls the image (progress on the console) and inspects it.
    pub async fn open(
        docker: Docker,
        options: DockerOptions,
        console: &Console,
    ) -> Result<DockerRuntime> {
        let image = options.image.clone();
        pull(&docker, &image, console).await?;
        let inspect = docker
            .inspect_image(&image)
            .await
            .with_context(|| format!("cannot inspect the image {image} after pulling it"))?;
        let repository = classcache_core::reference::repository_of(&image);
        let repo_digests = inspect.repo_digests.clone().unwrap_or_default();
        let digest = repo_digests
            .iter()
            .find_map(|d| d.strip_prefix(&format!("{repository}@")).map(str::to_string))
            .or_else(|| {
                // Docker Hub short names: RepoDigests say `app@…` for `docker.io/library/app`.
                repo_digests.iter().find_map(|d| d.split_once('@').map(|(_, h)| h.to_string()))
            })
            .ok_or_else(|| anyhow!("the image {image} has no registry digest (RepoDigests {repo_digests:?}); push it to its registry first, the archive is bound to the pushed manifest"))?;
        let config = inspect.config.clone().unwrap_or_default();
        let image_env = config.env.clone().unwrap_or_default();
        let java_tool_options = image_env
            .iter()
            .find_map(|e| e.strip_prefix("JAVA_TOOL_OPTIONS=").map(str::to_string));
        let target = Target {
            reference: image.clone(),
            digest,
            manifest_size: 0,
            manifest_media_type: String::new(),
            os: inspect.os.clone().unwrap_or_else(|| "linux".to_string()),
            arch: inspect
                .architecture
                .clone()
                .unwrap_or_else(|| "amd64".to_string()),
            variant: inspect.variant.clone().filter(|v| !v.is_empty()),
            entrypoint: config.entrypoint.clone().unwrap_or_default(),
            cmd: config.cmd.clone().unwrap_or_default(),
            java_tool_options,
            image_index: None,
        };
        let work_dir = tempfile::Builder::new()
            .prefix("classcache-build-")
            .tempdir()
            .context("cannot create a work directory under the temp dir; set TMPDIR to a writable directory")?;
        let repo_digests = repo_digests
            .iter()
            .filter_map(|d| d.split_once('@').map(|(_, h)| h.to_string()))
            .collect();
        Ok(DockerRuntime {
            docker,
            image,
            target,
            repo_digests,
            network: options.network,
            env: options
                .env
                .into_iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
            image_env,
            cmd: (!options.args.is_empty()).then_some(options.args),
            extra_files: options.extra_files,
            work_dir,
            live: Mutex::new(Vec::new()),
            run_id: run_id(),
        })
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The registry digests the engine knows for the image (see `repo_digests`).
    pub fn repo_digests(&self) -> &[String] {
        &self.repo_digests
    }

    /// Fills in the platform manifest's size and media type (from the registry), for `subject`,
    /// and the image index it was picked from, if any.
    pub fn set_manifest(
        &mut self,
        digest: String,
        size: u64,
        media_type: String,
        image_index: Option<classcache_core::oci::Descriptor>,
    ) {
        self.target.digest = digest;
        self.target.manifest_size = size;
        self.target.manifest_media_type = media_type;
        self.target.image_index = image_index;
    }

    pub fn host_work_dir(&self) -> &Path {
        self.work_dir.path()
    }

    async fn create(
        &self,
        entrypoint: Option<Vec<String>>,
        cmd: Option<Vec<String>>,
        added_options: &[String],
        launcher_options: &[String],
    ) -> Result<String> {
        let mut env = self.env.clone();
        let tool_options =
            java_tool_options(self.target.java_tool_options.as_deref(), added_options);
        if !tool_options.is_empty() {
            env.push(format!("JAVA_TOOL_OPTIONS={tool_options}"));
        }
        if !launcher_options.is_empty() {
            let own = self.env_value(jvm::LAUNCHER_OPTIONS_ENV);
            env.retain(|e| !e.starts_with(&format!("{}=", jvm::LAUNCHER_OPTIONS_ENV)));
            env.push(format!(
                "{}={}",
                jvm::LAUNCHER_OPTIONS_ENV,
                java_tool_options(own.as_deref(), launcher_options)
            ));
        }
        let body = ContainerCreateBody {
            image: Some(self.image.clone()),
            env: Some(env),
            entrypoint,
            cmd,
            labels: Some([(CONTAINER_LABEL.to_string(), self.run_id.clone())].into()),
            host_config: Some(HostConfig {
                network_mode: Some(self.network.clone()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let created = self
            .docker
            .create_container(
                None::<bollard::query_parameters::CreateContainerOptions>,
                body,
            )
            .await
            .with_context(|| format!("cannot create a container from {}", self.image))?;
        self.live
            .lock()
            .expect("live lock")
            .push(created.id.clone());
        Ok(created.id)
    }

    async fn remove(&self, id: &str) {
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        match self.docker.remove_container(id, Some(options)).await {
            Ok(()) => self.live.lock().expect("live lock").retain(|c| c != id),
            Err(e) => tracing::warn!("cannot remove container {id}: {e}"),
        }
    }

    /// Removes every container this runtime made that is still there.
    pub async fn cleanup(&self) {
        let ids = self.live.lock().expect("live lock").clone();
        for id in ids {
            self.remove(&id).await;
        }
    }

    async fn logs(&self, id: &str) -> (String, String) {
        let options = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .follow(false)
            .tail("all")
            .build();
        let mut stream = self.docker.logs(id, Some(options));
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        while let Some(Ok(chunk)) = stream.next().await {
            match chunk {
                LogOutput::StdErr { message } => stderr.extend_from_slice(&message),
                LogOutput::StdOut { message } | LogOutput::Console { message } => {
                    stdout.extend_from_slice(&message)
                }
                LogOutput::StdIn { .. } => {}
            }
        }
        (
            String::from_utf8_lossy(&stdout).into_owned(),
            String::from_utf8_lossy(&stderr).into_owned(),
        )
    }

    /// Places the work directory (with `inputs` from the host work dir) and the extra files.
    async fn upload(&self, id: &str, inputs: &[String]) -> Result<()> {
        let mut tar = tar::Builder::new(Vec::new());
        let work = CONTAINER_WORK_DIR.trim_start_matches('/');
        add_dir(&mut tar, work)?;
        for name in inputs {
            let host = self.work_dir.path().join(name);
            add_file(&mut tar, &host, &format!("{work}/{name}"))?;
        }
        for (host, container_path) in &self.extra_files {
            let path = container_path.trim_start_matches('/');
            if let Some(parent) = Path::new(path)
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
            {
                let mut partial = PathBuf::new();
                for part in parent.components() {
                    partial.push(part);
                    add_dir(&mut tar, &partial.display().to_string())?;
                }
            }
            add_file(&mut tar, host, path)?;
        }
        let bytes = tar.into_inner().context("cannot build the upload tar")?;
        let options = UploadToContainerOptionsBuilder::default().path("/").build();
        self.docker
            .upload_to_container(id, Some(options), bollard::body_full(Bytes::from(bytes)))
            .await
            .with_context(|| {
                format!(
                    "cannot copy the build's files into the container (image {})",
                    self.image
                )
            })
    }

    /// Copies the work directory out and keeps the files named in `outputs`.
    async fn download(&self, id: &str, outputs: &[String]) -> Result<()> {
        if outputs.is_empty() {
            return Ok(());
        }
        let options = DownloadFromContainerOptionsBuilder::default()
            .path(CONTAINER_WORK_DIR)
            .build();
        let mut stream = self.docker.download_from_container(id, Some(options));
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            bytes.extend_from_slice(
                &chunk.context("cannot copy the work directory out of the container")?,
            );
        }
        let mut archive = tar::Archive::new(bytes.as_slice());
        for entry in archive.entries().context("the engine sent a broken tar")? {
            let mut entry = entry.context("the engine sent a broken tar")?;
            let path = entry.path()?.to_path_buf();
            let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
                continue;
            };
            if outputs.contains(&name) && entry.header().entry_type().is_file() {
                let dest = self.work_dir.path().join(&name);
                entry.unpack(&dest).with_context(|| {
                    format!(
                        "cannot write {}; check free disk space in the temp dir",
                        dest.display()
                    )
                })?;
            }
        }
        Ok(())
    }

    /// [`super::Runtime::file_facts`] in the image: the file is streamed out of a created (never
    /// started) container and hashed as it passes; `None` when the image has no file there.
    pub async fn file_facts(&self, path: &str) -> Result<Option<super::FileFacts>> {
        let id = self.create(None, None, &[], &[]).await?;
        let result = self.stream_file(&id, path).await;
        self.remove(&id).await;
        result
    }

    async fn stream_file(&self, id: &str, path: &str) -> Result<Option<super::FileFacts>> {
        let options = DownloadFromContainerOptionsBuilder::default()
            .path(path)
            .build();
        let mut stream = self.docker.download_from_container(id, Some(options));
        // The engine sends a tar: a 512-byte header, then the file's bytes.
        let mut header = Vec::with_capacity(512);
        let mut hasher = super::FileHasher::new();
        let mut remaining: Option<u64> = None;
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) => return Ok(None),
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!("cannot read {path} from the image {}", self.image)
                    })
                }
            };
            let mut bytes = &chunk[..];
            if remaining.is_none() {
                let want = (512 - header.len()).min(bytes.len());
                header.extend_from_slice(&bytes[..want]);
                bytes = &bytes[want..];
                if header.len() < 512 {
                    continue;
                }
                let h = tar::Header::from_byte_slice(&header);
                if h.entry_type().is_symlink() {
                    let target = h
                        .link_name()
                        .ok()
                        .flatten()
                        .map(|t| t.display().to_string())
                        .unwrap_or_default();
                    bail!(
                        "{path} in the image {} is a symbolic link to {target}; pass the path of the jar itself",
                        self.image
                    );
                }
                if !h.entry_type().is_file() {
                    // A directory, or a link the engine does not follow: not an agent jar.
                    return Ok(None);
                }
                remaining = Some(h.size().context("the engine sent a broken tar")?);
            }
            let left = remaining.as_mut().expect("set above");
            let take = (*left).min(bytes.len() as u64) as usize;
            hasher.update(&bytes[..take]);
            *left -= take as u64;
            if *left == 0 {
                break;
            }
        }
        match remaining {
            Some(0) => Ok(Some(hasher.finish())),
            _ => bail!(
                "the engine's copy of {path} from {} ended early; retry",
                self.image
            ),
        }
    }

    /// Runs a container to its end, returning its exit code and output; it is removed after.
    async fn run_to_end(
        &self,
        entrypoint: Vec<String>,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> Result<(i64, String)> {
        let id = self.create(Some(entrypoint), Some(cmd), &[], &[]).await?;
        let result = async {
            self.docker
                .start_container(&id, None)
                .await
                .map_err(|e| start_error(&self.image, e))?;
            let mut process = DockerProcess {
                docker: &self.docker,
                id: &id,
            };
            let deadline = Instant::now() + timeout;
            let code = loop {
                if let Some(code) = process.exit_code().await? {
                    break code;
                }
                if Instant::now() > deadline {
                    bail!(
                        "the JVM probe in {} did not finish within {}",
                        self.image,
                        humantime::format_duration(timeout)
                    );
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            let (stdout, stderr) = self.logs(&id).await;
            Ok((code, format!("{stderr}{stdout}")))
        }
        .await;
        self.remove(&id).await;
        result
    }

    /// Finds the image's `java`: the entrypoint's when it is a java, then $JAVA_HOME/bin/java, then `java` on PATH.
    pub async fn probe_jvm(&self) -> Result<JvmProbe> {
        let mut candidates = Vec::new();
        if let Some(first) = self
            .target
            .entrypoint
            .first()
            .filter(|e| e.rsplit('/').next() == Some("java"))
        {
            candidates.push(first.clone());
        }
        if let Some(first) = self
            .cmd
            .as_ref()
            .or(Some(&self.target.cmd))
            .and_then(|c| c.first())
        {
            if first.rsplit('/').next() == Some("java") && !candidates.contains(first) {
                candidates.push(first.clone());
            }
        }
        let java_home = self.env_value("JAVA_HOME");
        if let Some(home) = java_home {
            candidates.push(format!("{}/bin/java", home.trim_end_matches('/')));
        }
        candidates.push("java".to_string());
        let mut tried = Vec::new();
        for java in candidates {
            match self
                .run_to_end(vec![java.clone()], probe_args(), Duration::from_secs(120))
                .await
            {
                Ok((0, output)) => {
                    let has_base_archive = match jvm::base_archive_in_log(&output) {
                        Some(known) => known,
                        None => {
                            let (code, _) = self
                                .run_to_end(
                                    vec![java.clone()],
                                    share_on_args(),
                                    Duration::from_secs(120),
                                )
                                .await?;
                            code == 0
                        }
                    };
                    return Ok(JvmProbe {
                        properties_output: output,
                        java,
                        has_base_archive,
                    });
                }
                Ok((code, output)) => tried.push(format!("{java}: exit {code}: {}", output.trim())),
                Err(e) => tried.push(format!("{java}: {e:#}")),
            }
        }
        bail!(
            "the image {} has no JVM that classcache can use (tried {}); classcache needs a HotSpot JVM 11 or newer in the image, on PATH or at $JAVA_HOME/bin/java",
            self.image,
            tried.join("; ")
        )
    }

    fn env_value(&self, name: &str) -> Option<String> {
        let prefix = format!("{name}=");
        self.env
            .iter()
            .rev()
            .find_map(|e| e.strip_prefix(&prefix).map(str::to_string))
            .or_else(|| {
                self.image_env
                    .iter()
                    .find_map(|e| e.strip_prefix(&prefix).map(str::to_string))
            })
    }

    pub async fn run(&self, spec: &RunSpec) -> Result<RunOutcome> {
        let id = self
            .create(
                None,
                self.cmd.clone(),
                &spec.options,
                &spec.launcher_options,
            )
            .await?;
        let result = self.run_container(&id, spec).await;
        self.remove(&id).await;
        result
    }

    async fn run_container(&self, id: &str, spec: &RunSpec) -> Result<RunOutcome> {
        self.upload(id, &spec.inputs).await?;
        let started = Instant::now();
        self.docker
            .start_container(id, None)
            .await
            .map_err(|e| start_error(&self.image, e))?;
        let mut process = DockerProcess {
            docker: &self.docker,
            id,
        };
        let driven = drive(spec, started, &mut process).await;
        let exit_code = match &driven {
            Ok((_, terminated)) => {
                let grace = exit_grace(spec, *terminated);
                let deadline = Instant::now() + grace;
                loop {
                    if let Some(code) = process.exit_code().await? {
                        break code;
                    }
                    if Instant::now() > deadline {
                        let (stdout, stderr) = self.logs(id).await;
                        return Err(no_exit_after_sigterm(
                            &spec.purpose,
                            grace,
                            &log_tail(&stdout, &stderr),
                        ));
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            Err(_) => -1,
        };
        let (stdout, stderr) = self.logs(id).await;
        let (startup, terminated_by_us) = match driven {
            Ok(v) => v,
            Err(e) => {
                return Err(e.context(format!(
                    "the app's last output:\n{}",
                    log_tail(&stdout, &stderr)
                )))
            }
        };
        let outcome = RunOutcome {
            exit_code,
            terminated_by_us,
            startup,
            stdout,
            stderr,
        };
        if outcome.exited_normally() {
            self.download(id, &spec.outputs).await?;
        }
        Ok(outcome)
    }
}

fn start_error(image: &str, e: bollard::errors::Error) -> anyhow::Error {
    let text = e.to_string();
    if text.contains("executable file not found") || text.contains("no such file or directory") {
        anyhow!("the image {image} cannot start the command: {text}; the image needs a JVM (java on PATH or $JAVA_HOME/bin/java) and a valid entrypoint")
    } else {
        anyhow!("cannot start a container from {image}: {text}")
    }
}

fn add_dir(tar: &mut tar::Builder<Vec<u8>>, path: &str) -> Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Directory);
    // World-writable: the image may run as any user, and the JVM writes the archive here.
    header.set_mode(0o1777);
    header.set_size(0);
    header.set_mtime(now_secs());
    tar.append_data(&mut header, format!("{path}/"), std::io::empty())
        .context("cannot build the upload tar")
}

fn add_file(tar: &mut tar::Builder<Vec<u8>>, host: &Path, path: &str) -> Result<()> {
    let mut file =
        std::fs::File::open(host).with_context(|| format!("cannot read {}", host.display()))?;
    let size = file.metadata()?.len();
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(0o644);
    header.set_size(size);
    header.set_mtime(now_secs());
    tar.append_data(&mut header, path, &mut file)
        .context("cannot build the upload tar")
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

struct DockerProcess<'a> {
    docker: &'a Docker,
    id: &'a str,
}

impl AppProcess for DockerProcess<'_> {
    async fn exit_code(&mut self) -> Result<Option<i64>> {
        let inspect = self
            .docker
            .inspect_container(self.id, None)
            .await
            .context("cannot inspect the training container")?;
        let state = inspect.state.unwrap_or_default();
        if state.running.unwrap_or(false) {
            return Ok(None);
        }
        if state.oom_killed.unwrap_or(false) {
            bail!("the app's container was killed for lack of memory (OOM); give the runner more memory or lower -Xmx");
        }
        Ok(Some(state.exit_code.unwrap_or(-1)))
    }

    async fn terminate(&mut self) -> Result<()> {
        let options = KillContainerOptionsBuilder::default()
            .signal("SIGTERM")
            .build();
        match self.docker.kill_container(self.id, Some(options)).await {
            Ok(()) => Ok(()),
            // 409: it is not running any more; its exit code tells the rest.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409, ..
            }) => Ok(()),
            Err(e) => Err(anyhow!("cannot send SIGTERM to the app's container: {e}")),
        }
    }
}

/// Pulls `image`, showing layer progress.
async fn pull(docker: &Docker, image: &str, console: &Console) -> Result<()> {
    let activity = console.activity(format!("pulling {image}"));
    let options = CreateImageOptionsBuilder::default()
        .from_image(image)
        .build();
    let mut stream = docker.create_image(Some(options), None, credentials_for(image));
    let mut last_status = String::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                let status = info.status.unwrap_or_default();
                let progress = info
                    .progress_detail
                    .and_then(|p| Some(format!(" {}/{} MB", p.current? >> 20, p.total? >> 20)))
                    .unwrap_or_default();
                activity.update(format!(
                    "pulling {image}: {} {status}{progress}",
                    info.id.unwrap_or_default()
                ));
                last_status = status;
            }
            Err(e) => {
                activity.finish(format!("pulling {image} failed"));
                let text = e.to_string();
                if text.contains("not found")
                    || text.contains("manifest unknown")
                    || text.contains("does not exist")
                    || text.contains("404")
                {
                    bail!("the image {image} was not found: {text}; check the reference and that the pipeline pushed the image before this step");
                }
                bail!("cannot pull {image}: {text}; check the reference, the registry's address and your `docker login`");
            }
        }
    }
    activity.finish(format!("pulled {image} ({last_status})"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_versions_compare_numerically() {
        assert!(version_less("1.40", "1.41"));
        assert!(!version_less("1.50", "1.41"));
        assert!(!version_less("1.41", "1.41"));
    }
}
