//! Where the app's JVM runs for training and verification: a Docker engine or a local `java`.
//! Both answer the same questions (identity, run with options, copy files); neither knows JVM flags.

pub mod docker;
pub mod local;

use crate::http_probe;
use anyhow::{bail, Result};
use classcache_core::jvm;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How long a JVM gets to exit after SIGTERM: it writes the archive on the way out.
pub const SIGTERM_GRACE: Duration = Duration::from_secs(120);
/// How many lines of the app's log an error shows.
pub const LOG_TAIL_LINES: usize = 30;

/// The image (or local class path) the archive is bound to.
#[derive(Debug, Clone)]
pub struct Target {
    /// What the user named (image reference, or `local:<class path>`).
    pub reference: String,
    /// The platform manifest digest (docker) or the class-path digest (local).
    pub digest: String,
    /// Size of the platform manifest (0 for local), for the artifact's `subject`.
    pub manifest_size: u64,
    /// Media type of the platform manifest.
    pub manifest_media_type: String,
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `JAVA_TOOL_OPTIONS` the image already sets; the build's options go after it.
    pub java_tool_options: Option<String>,
    /// The multi-platform image (OCI index or Docker manifest list) the platform manifest was
    /// picked from, when the image is one: its index of per-platform archives gets this
    /// platform's archive.
    pub image_index: Option<classcache_core::oci::Descriptor>,
}

/// When a run ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopWhen {
    /// The app exits by itself (also Spring's `onRefresh` exit).
    Exit,
    /// SIGTERM this long after start.
    After(Duration),
    /// SIGTERM once `url` answers 2xx and the warm-up requests are done.
    Ready {
        url: String,
        warmup_urls: Vec<String>,
        warmup_requests: u32,
    },
}

impl StopWhen {
    /// The same condition without warm-up traffic (verification measures start-up only).
    pub fn without_warmup(&self) -> StopWhen {
        match self {
            StopWhen::Ready { url, .. } => StopWhen::Ready {
                url: url.clone(),
                warmup_urls: vec![],
                warmup_requests: 0,
            },
            other => other.clone(),
        }
    }
}

/// One run of the app.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// For messages: `training`, `verification`, …
    pub purpose: String,
    /// Options appended to `JAVA_TOOL_OPTIONS` (after the image's own).
    pub options: Vec<String>,
    /// Options appended to `JDK_JAVA_OPTIONS` (after the image's own): the `java` launcher's,
    /// such as `-XshowSettings`, which `JAVA_TOOL_OPTIONS` does not take.
    pub launcher_options: Vec<String>,
    pub stop: StopWhen,
    /// The run is killed, and fails, after this long.
    pub timeout: Duration,
    /// Files of the work directory the run reads (copied in before start).
    pub inputs: Vec<String>,
    /// Files of the work directory the run writes (copied out after exit, when present).
    pub outputs: Vec<String>,
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub exit_code: i64,
    /// True when the build sent SIGTERM (then 143 is a normal exit).
    pub terminated_by_us: bool,
    /// Start to exit (Exit) or start to ready (Ready); `None` for a timed stop.
    pub startup: Option<Duration>,
    pub stdout: String,
    pub stderr: String,
}

impl RunOutcome {
    /// True when the JVM ended normally, so it wrote its archive.
    pub fn exited_normally(&self) -> bool {
        self.exit_code == 0 || (self.terminated_by_us && self.exit_code == 128 + 15)
    }

    /// The last lines of the app's output, for error messages.
    pub fn log_tail(&self) -> String {
        log_tail(&self.stdout, &self.stderr)
    }
}

/// The last [`LOG_TAIL_LINES`] lines of an app's output (stderr first, then stdout).
pub fn log_tail(stdout: &str, stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().chain(stdout.lines()).collect();
    let start = lines.len().saturating_sub(LOG_TAIL_LINES);
    lines[start..].join("\n")
}

/// How long to wait for the app's end once [`drive`] returned: the SIGTERM grace after a
/// signal, else the run's timeout (the app has ended already; this only bounds the wait).
pub(crate) fn exit_grace(spec: &RunSpec, terminated_by_us: bool) -> Duration {
    if terminated_by_us {
        SIGTERM_GRACE
    } else {
        spec.timeout
    }
}

/// The error of an app that did not exit within `grace` after SIGTERM.
pub(crate) fn no_exit_after_sigterm(purpose: &str, grace: Duration, tail: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "the {purpose} run did not exit within {} after SIGTERM; the app must shut down on SIGTERM so the JVM can write the archive. Its last output:\n{tail}",
        humantime::format_duration(grace)
    )
}

/// The result of probing for a JVM.
#[derive(Debug, Clone)]
pub struct JvmProbe {
    /// `java -XshowSettings:properties -version` output (stderr and stdout).
    pub properties_output: String,
    /// The `java` command that answered.
    pub java: String,
    /// True when `-Xshare:on` starts: the JDK has a usable base CDS archive.
    pub has_base_archive: bool,
}

/// The arguments of the first JVM probe: the properties, and the CDS log that tells whether
/// the base archive maps.
pub(crate) fn probe_args() -> Vec<String> {
    std::iter::once(jvm::CDS_LOG_OPTION)
        .chain(jvm::PROPERTIES_ARGS)
        .map(str::to_string)
        .collect()
}

/// The arguments of the second probe, made only when the first one's log does not say
/// whether the base archive maps: `-Xshare:on` refuses to start without it.
pub(crate) fn share_on_args() -> Vec<String> {
    vec!["-Xshare:on".to_string(), "-version".to_string()]
}

// One runtime exists per build, so the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
pub enum Runtime {
    Docker(docker::DockerRuntime),
    Local(local::LocalRuntime),
}

impl Runtime {
    pub fn target(&self) -> &Target {
        match self {
            Runtime::Docker(d) => d.target(),
            Runtime::Local(l) => l.target(),
        }
    }

    /// The work directory as the JVM sees it.
    pub fn work_dir(&self) -> String {
        match self {
            Runtime::Docker(_) => docker::CONTAINER_WORK_DIR.to_string(),
            Runtime::Local(l) => l.host_work_dir().display().to_string(),
        }
    }

    /// The work directory on this machine (runs' outputs land here).
    pub fn host_work_dir(&self) -> PathBuf {
        match self {
            Runtime::Docker(d) => d.host_work_dir().to_path_buf(),
            Runtime::Local(l) => l.host_work_dir().to_path_buf(),
        }
    }

    pub async fn probe_jvm(&self) -> Result<JvmProbe> {
        match self {
            Runtime::Docker(d) => d.probe_jvm().await,
            Runtime::Local(l) => l.probe_jvm().await,
        }
    }

    pub async fn run(&self, spec: &RunSpec) -> Result<RunOutcome> {
        match self {
            Runtime::Docker(d) => d.run(spec).await,
            Runtime::Local(l) => l.run(spec).await,
        }
    }

    /// The JVM probe, and the app's first run (`baseline`: without the archive) when the probe
    /// came from that same JVM start. In a container, detection rides on that run
    /// (`JDK_JAVA_OPTIONS=-XshowSettings:properties` prints the JVM's properties as the app
    /// starts, `-Xlog:cds` whether the base archive maps) instead of a container of its own;
    /// when the run prints no properties (the app is not started by a `java` launcher) the
    /// separate probe runs and the baseline is `None`. The local runtime probes directly.
    pub async fn probe_with_baseline(
        &self,
        baseline: &RunSpec,
    ) -> Result<(JvmProbe, Option<RunOutcome>)> {
        let Runtime::Docker(d) = self else {
            return Ok((self.probe_jvm().await?, None));
        };
        let mut spec = baseline.clone();
        spec.launcher_options
            .push(jvm::SHOW_PROPERTIES_OPTION.to_string());
        spec.options.push(jvm::CDS_LOG_OPTION.to_string());
        // A run that cannot start (no `java` in the image) or prints no properties: the
        // separate probe says what is wrong.
        let outcome = match d.run(&spec).await {
            Ok(outcome) => outcome,
            Err(_) => return Ok((d.probe_jvm().await?, None)),
        };
        let text = format!("{}\n{}", outcome.stderr, outcome.stdout);
        if jvm::parse_properties(&text).is_err() {
            return Ok((d.probe_jvm().await?, None));
        }
        let has_base_archive = match jvm::base_archive_in_log(&text) {
            Some(known) => known,
            None => d.probe_jvm().await?.has_base_archive,
        };
        Ok((
            JvmProbe {
                properties_output: text,
                java: "the image's java (its first run)".to_string(),
                has_base_archive,
            },
            Some(outcome),
        ))
    }

    /// The sha256 of the file at `path` as the app sees it (in the image, or on this machine for
    /// the local runtime) and whether it is a zip; `None` when there is no such file.
    pub async fn file_facts(&self, path: &str) -> Result<Option<FileFacts>> {
        match self {
            Runtime::Docker(d) => d.file_facts(path).await,
            Runtime::Local(_) => local::file_facts(std::path::Path::new(path)),
        }
    }

    /// Removes whatever the runtime left (containers); safe to call more than once.
    pub async fn cleanup(&self) {
        if let Runtime::Docker(d) = self {
            d.cleanup().await;
        }
    }
}

/// What [`Runtime::file_facts`] learns about a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileFacts {
    pub sha256: String,
    /// Starts with a zip header (a jar).
    pub is_zip: bool,
}

/// Hashes a stream of file bytes and looks at its first four.
pub(crate) struct FileHasher {
    hasher: sha2::Sha256,
    head: Vec<u8>,
}

impl FileHasher {
    pub(crate) fn new() -> Self {
        FileHasher {
            hasher: sha2::Digest::new(),
            head: Vec::with_capacity(4),
        }
    }

    pub(crate) fn update(&mut self, bytes: &[u8]) {
        let want = 4usize.saturating_sub(self.head.len()).min(bytes.len());
        self.head.extend_from_slice(&bytes[..want]);
        sha2::Digest::update(&mut self.hasher, bytes);
    }

    pub(crate) fn finish(self) -> FileFacts {
        FileFacts {
            sha256: hex::encode(sha2::Digest::finalize(self.hasher)),
            is_zip: self.head == b"PK\x03\x04",
        }
    }
}

/// A started app, as [`drive`] needs it.
pub(crate) trait AppProcess {
    /// The exit code once the app has ended, `None` while it runs.
    async fn exit_code(&mut self) -> Result<Option<i64>>;
    /// Sends SIGTERM.
    async fn terminate(&mut self) -> Result<()>;
}

/// Drives a started app to its stop condition; returns (start-up time, terminated by us).
pub(crate) async fn drive(
    spec: &RunSpec,
    started: Instant,
    app: &mut impl AppProcess,
) -> Result<(Option<Duration>, bool)> {
    let deadline = started + spec.timeout;
    let poll = Duration::from_millis(50);
    let timed_out = |what: &str| {
        anyhow::anyhow!(
            "the {} run did not {what} within --timeout {}; the app does not exit by itself: pass --stop-after DURATION, --ready-url URL, or --spring for Spring Boot (or raise --timeout)",
            spec.purpose,
            humantime::format_duration(spec.timeout)
        )
    };
    match &spec.stop {
        StopWhen::Exit => loop {
            if app.exit_code().await?.is_some() {
                return Ok((Some(started.elapsed()), false));
            }
            if Instant::now() >= deadline {
                return Err(timed_out("end"));
            }
            tokio::time::sleep(poll).await;
        },
        StopWhen::After(duration) => {
            let stop_at = started + *duration;
            while Instant::now() < stop_at {
                if app.exit_code().await?.is_some() {
                    // It ended before the time was up: that counts as a normal end of training.
                    return Ok((None, false));
                }
                tokio::time::sleep(poll).await;
            }
            app.terminate().await?;
            Ok((None, true))
        }
        StopWhen::Ready {
            url,
            warmup_urls,
            warmup_requests,
        } => {
            loop {
                if let Some(code) = app.exit_code().await? {
                    bail!(
                        "the app exited (code {code}) before {url} answered; check --ready-url (host networking: the app must listen where the URL points)"
                    );
                }
                if http_probe::get_ok(url, poll * 4).await {
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(timed_out(&format!("answer {url}")));
                }
                tokio::time::sleep(poll).await;
            }
            let startup = started.elapsed();
            for _ in 0..*warmup_requests {
                for warmup in warmup_urls {
                    // Warm-up only loads classes; a failing request is the app's business.
                    let _ = http_probe::get_ok(warmup, Duration::from_secs(10)).await;
                }
            }
            app.terminate().await?;
            Ok((Some(startup), true))
        }
    }
}
