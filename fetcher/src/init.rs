//! Init-container mode: ask the node's fetcher for each pinned archive, then wait for it in the mounted store (hostpath) or copy it, verified (copy).
//! It must not leave a partial file under an archive's final name.

use classcache_core::artifact::check_archive_name;
use classcache_core::digest::Digest;
use classcache_core::fetcher::args::InitArgs;
use classcache_core::fetcher::http::{self as api, ArchiveAnswer};
use classcache_core::paths::published_dir_name;
use classcache_core::podtemplate::cluster::DeliveryMode;
use classcache_core::reference::RegistryRef;
use classcache_oci::verified::{Expected, VerifiedFile, WriteError};
use futures_util::StreamExt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("--archive {0:?}: {1}")]
    BadReference(String, String),
    #[error("--archive {0:?} is not pinned by digest; kubectl classcache enable writes <registry>/<repo>@sha256:<hex>")]
    NotPinned(String),
    #[error("gave up after {0:?} (--timeout) waiting for the node fetcher")]
    Timeout(Duration),
    #[error("node fetcher at {url}: {message}")]
    Fetcher { url: String, message: String },
    #[error("{path}: {message}")]
    Volume { path: PathBuf, message: String },
}

/// Runs the whole job (the command line itself: core's one definition of the init container's
/// arguments) within its timeout.
pub async fn run(job: &InitArgs) -> Result<Vec<PathBuf>, InitError> {
    match tokio::time::timeout(job.timeout, run_all(job)).await {
        Ok(result) => result,
        Err(_) => Err(InitError::Timeout(job.timeout)),
    }
}

async fn run_all(job: &InitArgs) -> Result<Vec<PathBuf>, InitError> {
    let http = crate::peer_client::fetcher_http()
        .build()
        .expect("a plain HTTP client builds");
    let mut done = Vec::new();
    for archive in &job.archives {
        let reference: RegistryRef =
            archive
                .parse()
                .map_err(|e: classcache_core::reference::ReferenceError| {
                    InitError::BadReference(archive.clone(), e.to_string())
                })?;
        let digest = reference
            .digest
            .as_ref()
            .map(ToString::to_string)
            .ok_or_else(|| InitError::NotPinned(archive.clone()))?;
        let answer = request(&http, job, &digest, archive).await?;
        // Joined to a path below: one plain file name only.
        check_archive_name(&answer.file_name).map_err(|e| InitError::Fetcher {
            url: job.fetcher_url.clone(),
            message: format!("answered for {archive}: {e}"),
        })?;
        let archive_dir = Path::new(&job.dir).join(published_dir_name(&digest));
        let dest = archive_dir.join(&answer.file_name);
        match job.mode {
            DeliveryMode::HostPath => wait_visible(&dest, answer.size).await?,
            DeliveryMode::Copy => {
                std::fs::create_dir_all(&archive_dir).map_err(|e| InitError::Volume {
                    path: archive_dir.clone(),
                    message: format!("{e}; --dir must be a writable emptyDir in copy mode"),
                })?;
                copy(&http, job, &digest, &answer, &dest).await?
            }
            // Refused when the arguments are parsed; an image volume needs no init container.
            DeliveryMode::ImageVolume => {
                return Err(InitError::Volume {
                    path: dest,
                    message:
                        "--mode image-volume has no init container: the kubelet mounts the archive"
                            .into(),
                })
            }
        }
        tracing::info!(archive = %archive, path = %dest.display(), hit = answer.hit, "archive ready");
        done.push(dest);
    }
    Ok(done)
}

/// Asks the fetcher to publish the archive; retries while the fetcher is not reachable yet
/// (a node that just booted), within the job's timeout.
async fn request(
    http: &reqwest::Client,
    job: &InitArgs,
    digest: &str,
    archive: &str,
) -> Result<ArchiveAnswer, InitError> {
    let base = job.fetcher_url.trim_end_matches('/');
    let url = reqwest::Url::parse(&format!(
        "{base}{}",
        api::archive_request_path(digest, archive)
    ))
    .map_err(|e| InitError::Fetcher {
        url: base.to_string(),
        message: format!("bad --fetcher-url: {e}"),
    })?;
    let mut delay = Duration::from_millis(100);
    loop {
        let failure = match http.get(url.clone()).send().await {
            Ok(r) if r.status().is_success() => {
                return r.json().await.map_err(|e| InitError::Fetcher {
                    url: url.to_string(),
                    message: format!("unreadable answer: {e}"),
                })
            }
            Ok(r) => {
                let status = r.status();
                let body = r.text().await.unwrap_or_default();
                // The fetcher tried and failed: its message says why; retrying will not help.
                return Err(InitError::Fetcher {
                    url: url.to_string(),
                    message: format!("HTTP {status}: {}", body.trim()),
                });
            }
            Err(e) => e,
        };
        tracing::warn!(url = %url, error = %failure, "node fetcher not reachable yet; retrying");
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

async fn wait_visible(dest: &Path, size: u64) -> Result<(), InitError> {
    let started = Instant::now();
    loop {
        match std::fs::metadata(dest) {
            Ok(m) if m.len() == size => return Ok(()),
            Ok(m) => {
                return Err(InitError::Volume {
                    path: dest.to_path_buf(),
                    message: format!(
                        "has {} bytes, the fetcher published {size}; is the archive's directory in the node store mounted there?",
                        m.len()
                    ),
                })
            }
            Err(e) if started.elapsed() > Duration::from_secs(5) => {
                return Err(InitError::Volume {
                    path: dest.to_path_buf(),
                    message: format!(
                        "not visible although the fetcher published it ({e}); mount the archive's own directory of the node store (<store>/published/<its directory>) read-only at its parent"
                    ),
                })
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

async fn copy(
    http: &reqwest::Client,
    job: &InitArgs,
    digest: &str,
    answer: &ArchiveAnswer,
    dest: &Path,
) -> Result<(), InitError> {
    let url = format!(
        "{}{}",
        job.fetcher_url.trim_end_matches('/'),
        api::archive_file_path(digest)
    );
    let fetcher = |message: String| InitError::Fetcher {
        url: url.clone(),
        message,
    };
    let response = http
        .get(&url)
        .send()
        .await
        .map_err(|e| fetcher(e.to_string()))?;
    if !response.status().is_success() {
        return Err(fetcher(format!("HTTP {}", response.status())));
    }
    let volume = |message: String| InitError::Volume {
        path: dest.to_path_buf(),
        message: format!("{message}; --dir must be a writable emptyDir in copy mode"),
    };
    let expected = Digest::from_hex(&answer.sha256)
        .map(|digest| Expected::new(digest, answer.size))
        .map_err(|_| {
            fetcher(format!(
                "answered an archive sha256 {:?} that is not 64 hex digits",
                answer.sha256
            ))
        })?;
    // The one verified write: a partial file that is removed unless its bytes match.
    let mut out = VerifiedFile::create(dest).map_err(|e| volume(e.to_string()))?;
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| fetcher(e.to_string()))?;
        out.write_all(&chunk).map_err(|e| volume(e.to_string()))?;
    }
    match out.commit(Some(&expected)) {
        Ok(_) => Ok(()),
        Err(e @ WriteError::Mismatch { .. }) => Err(fetcher(format!(
            "sent bytes that do not match the archive: {e}"
        ))),
        Err(e) => Err(volume(e.to_string())),
    }
}
