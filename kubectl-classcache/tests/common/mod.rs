//! Shared helpers of the plugin's tests: running the binary, archives in OCI layouts, fixtures.
//! They set up inputs only; each test states its own expectations.
#![allow(dead_code)]

use classcache_core::artifact::ArchiveConfig;
use classcache_core::key::ArchiveKind;
use classcache_core::media_types;
use classcache_core::oci::Descriptor;
use classcache_core::testing::sample_config;
use classcache_oci::layout::OciLayout;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kubectl-classcache"))
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Runs the plugin with `args`, feeding `stdin`; returns (exit code, stdout, stderr).
pub fn run(args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.env_remove("KUBECONFIG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("the plugin binary starts");
    {
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
    }
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().unwrap();
    (
        status.code().unwrap_or(-1),
        String::from_utf8(stdout).unwrap(),
        String::from_utf8(stderr).unwrap(),
    )
}

pub fn parse_yaml(text: &str) -> Vec<Value> {
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(text).unwrap_or_else(|e| panic!("not YAML: {e}\n{text}"));
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

pub fn fixture_docs(name: &str) -> Vec<Value> {
    parse_yaml(&std::fs::read_to_string(fixtures().join(name)).unwrap())
}

/// A platform image digest for `repository`, stable across runs.
pub fn image_digest(repository: &str) -> String {
    use sha2::Digest;
    format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(repository.as_bytes()))
    )
}

/// The config of an archive trained on `image` (platform manifest `digest`), linux/amd64.
pub fn archive_config(
    image: &str,
    digest: &str,
    entrypoint: &[&str],
    cmd: &[&str],
) -> ArchiveConfig {
    let mut config = sample_config(image, digest, ArchiveKind::DynamicCds, &[]);
    config.image.entrypoint = entrypoint.iter().map(|s| s.to_string()).collect();
    config.image.cmd = cmd.iter().map(|s| s.to_string()).collect();
    config.runtime_options.push("-Xshare:auto".into());
    config
}

/// Writes an archive trained on `image` (e.g. `registry.example/shop/petclinic:3.2.0`) into the
/// OCI layout `dir` and returns `oci:DIR:TAG` for `--archive`.
pub fn make_archive(dir: &Path, image: &str, entrypoint: &[&str], cmd: &[&str]) -> String {
    let layout = OciLayout::create(dir).unwrap();
    let repository = image
        .split('@')
        .next()
        .unwrap()
        .rsplit_once(':')
        .map(|(r, _)| r)
        .unwrap_or(image);
    let digest = image_digest(repository);
    let config = archive_config(image, &digest, entrypoint, cmd);
    let file = dir.join(format!("{}.jsa", config.key));
    std::fs::write(&file, repository.repeat(1000)).unwrap();
    let subject = Descriptor::new(media_types::OCI_MANIFEST, digest.parse().unwrap(), 512);
    let (prepared, _) = layout.push_archive(config, &file, Some(subject)).unwrap();
    std::fs::remove_file(&file).unwrap();
    format!("oci:{}:{}", dir.display(), prepared.config.key)
}

pub mod real;
