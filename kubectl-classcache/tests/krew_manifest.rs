//! scripts/krew-manifest.sh: its manifest passes krew's own validator, and krew itself installs
//! the plugin from it offline (`krew install --manifest --archive`), checking the sha256.
//! It builds its own small release (this test's binary, the release layout); no network.

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn tool(name: &str) -> String {
    classcache_e2e::harness().tool(name, "it builds krew with tests/harness/tools/krew.sh")
}

use classcache_e2e::project_version as version;

const TARGETS: [(&str, &str); 2] = [
    ("x86_64-unknown-linux-musl", "amd64"),
    ("aarch64-unknown-linux-musl", "arm64"),
];
const BASE_URL: &str = "https://downloads.example/classcache/releases";

fn ok(out: Output, what: &str) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{what} failed:\n{text}");
    text
}

/// The release assets as scripts/release.sh lays them out: `kubectl-classcache-<target>.tar.gz`
/// with the binary at the root plus LICENSE and README.md, and SHA256SUMS. Both hold this host's debug
/// binary, stripped (the arm64 one is installed, never run).
fn release(dir: &Path) -> PathBuf {
    let stage = dir.join("stage");
    std::fs::create_dir(&stage).unwrap();
    std::fs::copy(bin(), stage.join("kubectl-classcache")).unwrap();
    // Without its debug info (200 MB): gzip and krew's sha256 then take a moment, not half a minute.
    ok(
        Command::new("strip")
            .arg(stage.join("kubectl-classcache"))
            .output()
            .unwrap(),
        "strip",
    );
    for file in ["LICENSE", "README.md"] {
        std::fs::copy(classcache_e2e::repo_root().join(file), stage.join(file)).unwrap();
    }
    let mut names = vec![];
    for (target, _) in TARGETS {
        let name = format!("kubectl-classcache-{target}.tar.gz");
        ok(
            Command::new("tar")
                .arg("-czf")
                .arg(dir.join(&name))
                .arg("-C")
                .arg(&stage)
                .args(["kubectl-classcache", "LICENSE", "README.md"])
                .output()
                .unwrap(),
            "tar",
        );
        names.push(name);
    }
    let sums = ok(
        Command::new("sha256sum")
            .args(&names)
            .current_dir(dir)
            .output()
            .unwrap(),
        "sha256sum",
    );
    let path = dir.join("SHA256SUMS");
    std::fs::write(&path, sums).unwrap();
    path
}

fn krew_manifest(sums: &Path, base_url: &str) -> Output {
    Command::new("bash")
        .arg(classcache_e2e::repo_root().join("scripts/krew-manifest.sh"))
        .args(["--sums", sums.to_str().unwrap(), "--base-url", base_url])
        .output()
        .unwrap()
}

fn krew(root: &Path, args: &[&str], arch: &str) -> Output {
    Command::new(tool("CLASSCACHE_KREW"))
        .args(args)
        .env("KREW_ROOT", root)
        .env("KREW_OS", "linux")
        .env("KREW_ARCH", arch)
        .env("KREW_NO_UPGRADE_CHECK", "1")
        .env("HOME", root)
        .output()
        .unwrap()
}

#[test]
fn the_manifest_passes_krews_validator_and_krew_installs_from_it() {
    let tmp = tempfile::tempdir().unwrap();
    let sums = release(tmp.path());
    let text = ok(
        krew_manifest(&sums, &format!("{BASE_URL}/")),
        "krew-manifest.sh",
    );
    let manifest = tmp.path().join("classcache.yaml");
    std::fs::write(&manifest, &text).unwrap();

    // What it says: this version, one platform per release target, uri and sha256 of its asset.
    let doc: Value = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(
        doc["apiVersion"],
        "krew.googlecontainertools.github.com/v1alpha2"
    );
    assert_eq!(doc["kind"], "Plugin");
    assert_eq!(doc["metadata"]["name"], "classcache");
    assert_eq!(doc["spec"]["version"], format!("v{}", version()));
    let sums_text = std::fs::read_to_string(&sums).unwrap();
    let platforms = doc["spec"]["platforms"].as_array().unwrap();
    assert_eq!(platforms.len(), TARGETS.len());
    for ((target, arch), p) in TARGETS.iter().zip(platforms) {
        let asset = format!("kubectl-classcache-{target}.tar.gz");
        assert_eq!(p["selector"]["matchLabels"]["os"], "linux");
        assert_eq!(p["selector"]["matchLabels"]["arch"], *arch);
        assert_eq!(p["uri"], format!("{BASE_URL}/{asset}"));
        let sha = p["sha256"].as_str().unwrap();
        assert!(
            sums_text.contains(&format!("{sha}  {asset}\n")),
            "{sha} {asset}"
        );
        assert_eq!(p["bin"], "kubectl-classcache");
    }

    // krew's own validator (what krew-index runs), structure and platforms; its install step
    // downloads the uri, which krew install --archive below does offline instead.
    let validator = tool("CLASSCACHE_KREW_VALIDATOR");
    let out = ok(
        Command::new(&validator)
            .arg("-manifest")
            .arg(&manifest)
            .arg("-skip-install")
            .output()
            .unwrap(),
        "validate-krew-manifest",
    );
    assert!(out.contains("structural validation OK"), "{out}");
    // The validator is real: the file name must be the plugin's name.
    let renamed = tmp.path().join("other.yaml");
    std::fs::write(&renamed, &text).unwrap();
    let out = Command::new(&validator)
        .arg("-manifest")
        .arg(&renamed)
        .arg("-skip-install")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("plugin should be named"));

    // krew install, offline, on each platform with its own archive.
    for (target, arch) in TARGETS {
        let root = tmp.path().join(format!("krew-{arch}"));
        std::fs::create_dir(&root).unwrap();
        let archive = tmp
            .path()
            .join(format!("kubectl-classcache-{target}.tar.gz"));
        let out = krew(
            &root,
            &[
                "install",
                &format!("--manifest={}", manifest.display()),
                &format!("--archive={}", archive.display()),
            ],
            arch,
        );
        ok(out, &format!("krew install ({arch})"));
        let installed = root.join("bin/kubectl-classcache");
        assert!(installed.exists(), "krew linked {}", installed.display());
        let store = root.join(format!("store/classcache/v{}", version()));
        for file in ["LICENSE", "README.md"] {
            assert!(store.join(file).is_file(), "{file} in {}", store.display());
        }
        if arch == "amd64" {
            let out = ok(
                Command::new(&installed).arg("--version").output().unwrap(),
                "the installed plugin",
            );
            assert_eq!(out.trim(), format!("kubectl-classcache {}", version()));
        }
    }

    // krew checks the sha256 the manifest gives: another archive is refused.
    let root = tmp.path().join("krew-mismatch");
    std::fs::create_dir(&root).unwrap();
    let other = tmp.path().join("other.tar.gz");
    std::fs::write(&other, b"not the release").unwrap();
    let out = krew(
        &root,
        &[
            "install",
            &format!("--manifest={}", manifest.display()),
            &format!("--archive={}", other.display()),
        ],
        "amd64",
    );
    assert!(
        !out.status.success(),
        "krew installed an archive with another sha256"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("checksum does not match"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_script_refuses_incomplete_sums_and_bad_urls() {
    let tmp = tempfile::tempdir().unwrap();
    let sums = release(tmp.path());
    let only_amd64: String = std::fs::read_to_string(&sums)
        .unwrap()
        .lines()
        .filter(|l| l.contains("x86_64"))
        .map(|l| format!("{l}\n"))
        .collect();
    let partial = tmp.path().join("PARTIAL");
    std::fs::write(&partial, only_amd64).unwrap();
    for (sums, url, wanted) in [
        (
            &partial,
            BASE_URL,
            "has no line for kubectl-classcache-aarch64-unknown-linux-musl.tar.gz",
        ),
        (&sums, "downloads.example/x", "is not an http(s) URL"),
        (&tmp.path().join("missing"), BASE_URL, "cannot read --sums"),
    ] {
        let out = krew_manifest(sums, url);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(wanted), "{wanted}: {err}");
    }
}
