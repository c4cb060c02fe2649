//! Shared helpers of the OCI tests and benchmark: archive-like data, a subject image, configs.
//! It builds inputs only; it must not assert anything about the code under test.
#![allow(dead_code)]

use classcache_core::artifact::ArchiveConfig;
use classcache_core::digest::Digest;
use classcache_core::key::ArchiveKind;
use classcache_core::oci::Descriptor;
use classcache_core::reference::RegistryRef;
use classcache_core::testing::sample_config;
use classcache_oci::registry::{RegistryClient, RegistryOptions};

use std::io::Write;
use std::path::{Path, PathBuf};

/// A registry client that ignores the machine's Docker credentials (the harness registry is
/// anonymous), so a stray `~/.docker/config.json` cannot change what the tests see.
pub fn client() -> RegistryClient {
    RegistryClient::new(RegistryOptions {
        docker_config: Some(PathBuf::from("/nonexistent/classcache-test/config.json")),
        ..Default::default()
    })
    .expect("a registry client builds")
}

/// Writes `size` bytes that look like a JVM archive to the compressor: a mix of incompressible
/// runs, repeated structures and zero pages (gzip gets roughly 3:1, as on real archives).
/// `seed` makes the content unique, so tests never share (and corrupt) each other's blobs.
pub fn write_archive_like(path: &Path, size: u64, seed: u64) {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut out = std::io::BufWriter::with_capacity(
        1 << 20,
        std::fs::File::create(path).expect("create archive file"),
    );
    let mut block = vec![0u8; 64 * 1024];
    let mut written = 0u64;
    while written < size {
        let r = next();
        match r % 8 {
            // Random bytes: pointers, hashes.
            0..=2 => block.iter_mut().for_each(|b| *b = next() as u8),
            // Structured records: class names and field tables repeat with small changes.
            3..=5 => {
                for (i, chunk) in block.chunks_mut(32).enumerate() {
                    let text = format!("java/lang/Class{:08x}#{:04}", r >> 40, i % 97);
                    let n = chunk.len().min(text.len());
                    chunk[..n].copy_from_slice(&text.as_bytes()[..n]);
                }
            }
            _ => block.iter_mut().for_each(|b| *b = 0),
        }
        let n = (size - written).min(block.len() as u64) as usize;
        out.write_all(&block[..n]).expect("write archive file");
        written += n as u64;
    }
    out.flush().expect("flush archive file");
}

/// Lower-case hex sha256 of a file, streamed.
pub fn sha256_file(path: &Path) -> String {
    classcache_oci::verified::sha256_file_hex(path).expect("read file to hash")
}

/// A config as the CI build writes it, for an image digest; `variant` changes the key.
pub fn archive_config(
    image: &str,
    image_digest: &Digest,
    kind: ArchiveKind,
    variant: &str,
) -> ArchiveConfig {
    sample_config(
        image,
        image_digest.as_str(),
        kind,
        &[format!("-Dclasscache.test={variant}")],
    )
}

/// Pushes a tiny single-platform image (`linux/amd64`) tagged `app` to `repo` and returns its
/// manifest descriptor: the subject the archives attach to. `salt` makes its digest unique.
pub async fn push_subject_image(
    client: &RegistryClient,
    repo: &RegistryRef,
    salt: &str,
) -> Descriptor {
    let layer = format!("layer of {salt}").into_bytes();
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {"Labels": {"salt": salt}},
        "rootfs": {"type": "layers", "diff_ids": [Digest::of(&layer).to_string()]},
    });
    classcache_oci::testing::push_minimal_image(client, &repo.with_tag("app"), &config, &[&layer])
        .await
        .expect("push the subject image")
}

/// The file holding a blob in the harness registry's storage (filesystem driver layout).
pub fn registry_blob_file(harness_dir: &Path, digest: &Digest) -> PathBuf {
    let hex = digest.hex();
    harness_dir
        .join("registry/data/docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data")
}

/// A request as the fake server saw it.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
}

/// A canned answer of the fake server.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn new(status: u16, body: &str) -> Self {
        Self {
            status,
            headers: vec![],
            body: body.to_string(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
}

/// Starts a minimal HTTP/1.1 server on 127.0.0.1 that answers every request with `handler`
/// (one request per connection). It stands in for registries this machine cannot run, such
/// as one with a token service, to check what the client sends and how it reports refusals.
pub async fn fake_server<F>(handler: F) -> String
where
    F: Fn(&SeenRequest) -> Answer + Send + Sync + 'static,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind fake server");
    let addr = listener
        .local_addr()
        .expect("fake server address")
        .to_string();
    let handler = std::sync::Arc::new(handler);
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&buf).to_string();
                let mut lines = text.lines();
                let mut first = lines.next().unwrap_or("").split(' ');
                let method = first.next().unwrap_or("").to_string();
                let path = first.next().unwrap_or("").to_string();
                let authorization = lines.find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("authorization")
                        .then(|| value.trim().to_string())
                });
                let answer = handler(&SeenRequest {
                    method: method.clone(),
                    path,
                    authorization,
                });
                let mut head = format!(
                    "HTTP/1.1 {} X\r\nConnection: close\r\nContent-Length: {}\r\n",
                    answer.status,
                    answer.body.len()
                );
                for (name, value) in &answer.headers {
                    head.push_str(&format!("{name}: {value}\r\n"));
                }
                head.push_str("\r\n");
                let _ = socket.write_all(head.as_bytes()).await;
                if method != "HEAD" {
                    let _ = socket.write_all(answer.body.as_bytes()).await;
                }
                let _ = socket.shutdown().await;
            });
        }
    });
    addr
}
