//! Runs the release workflow's build step (`scripts/release.sh --dry-run`) and checks what a
//! release would publish; it must not publish anything beyond the harness's own registry.
//!
//! Checked: the six binary tarballs and SHA256SUMS (sums right), binaries static and of the right
//! ELF machine, the arm64 ones running under qemu-aarch64, the fetcher image's OCI layout (one
//! index over linux/amd64 and linux/arm64, user 65532, the binaries in the layers), skopeo reading
//! it, `classcache-release push` copying it to the harness registry, and the amd64 image running.
//! Also the arm64 build of core's and the fetcher's unit tests, run under qemu-user.

use classcache_core::media_types;
use classcache_core::oci::{ImageIndex, ImageManifest};
use classcache_core::platform::Platform;
use classcache_e2e::{harness, repo_root, step, unique_name};
use classcache_oci::layout::OciLayout;
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

const VERSION: &str = env!("CARGO_PKG_VERSION");
const BINS: [&str; 3] = [
    "classcache-build",
    "kubectl-classcache",
    "classcache-fetcher",
];
/// (target, ELF e_machine, OCI platform)
const TARGETS: [(&str, u16, &str); 2] = [
    ("x86_64-unknown-linux-musl", 62, "linux/amd64"),
    ("aarch64-unknown-linux-musl", 183, "linux/arm64"),
];
const USER: &str = "65532:65532";

fn ok(what: &str, output: Output) -> String {
    assert!(
        output.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

fn sha256_hex(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

/// Whether a 64-bit little-endian ELF file is for `machine` and static: no program interpreter
/// and no DT_NEEDED entry (a static-pie keeps a dynamic section for its own relocations).
fn elf_machine_and_static(bytes: &[u8]) -> (u16, bool) {
    assert_eq!(&bytes[..4], b"\x7fELF", "not an ELF file");
    assert_eq!(bytes[4], 2, "not a 64-bit ELF file");
    assert_eq!(bytes[5], 1, "not a little-endian ELF file");
    let u16_at = |o: usize| u16::from_le_bytes(bytes[o..o + 2].try_into().unwrap());
    let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap()) as usize;
    let machine = u16_at(18);
    let (phoff, phentsize, phnum) = (u64_at(32), u16_at(54) as usize, u16_at(56) as usize);
    let mut is_static = true;
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        match u32_at(ph) {
            // PT_INTERP: the kernel would start a dynamic loader.
            3 => is_static = false,
            // PT_DYNAMIC: entries of 16 bytes (tag, value) up to DT_NULL; DT_NEEDED is 1.
            2 => {
                let (offset, size) = (u64_at(ph + 8), u64_at(ph + 32));
                for entry in (offset..offset + size).step_by(16) {
                    match u64_at(entry) {
                        0 => break,
                        1 => is_static = false,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    (machine, is_static)
}

/// The `sha256sum` lines of SHA256SUMS, asset name → hex.
fn read_sums(out: &Path) -> BTreeMap<String, String> {
    let text =
        std::fs::read_to_string(out.join("SHA256SUMS")).expect("the dry run writes SHA256SUMS");
    text.lines()
        .map(|line| {
            let (sum, name) = line
                .split_once("  ")
                .unwrap_or_else(|| panic!("SHA256SUMS line {line:?} is not \"<sha256>  <asset>\""));
            assert!(
                sum.len() == 64
                    && sum
                        .bytes()
                        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
                "SHA256SUMS line {line:?}: not a lowercase sha256"
            );
            (name.to_string(), sum.to_string())
        })
        .collect()
}

/// Extracts a gzip tar with the system's tar and returns the directory.
fn untar(archive: &Path, into: &Path) -> PathBuf {
    std::fs::create_dir_all(into).unwrap();
    let output = Command::new("tar")
        .arg("-xzf")
        .arg(archive)
        .arg("-C")
        .arg(into)
        .output()
        .unwrap();
    ok(&format!("tar -xzf {}", archive.display()), output);
    into.to_path_buf()
}

#[test]
fn dry_run_builds_every_asset_checked_and_the_image_for_both_platforms() {
    let h = harness();
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");

    step("scripts/release.sh --dry-run");
    let started = Instant::now();
    let output = Command::new("bash")
        .arg(repo_root().join("scripts/release.sh"))
        .args(["--dry-run", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    ok("scripts/release.sh --dry-run", output);
    eprintln!("release.sh --dry-run took {:?}", started.elapsed());

    step("SHA256SUMS lists every asset, and the sums are right");
    let sums = read_sums(&out);
    let mut expected: BTreeSet<String> = BINS
        .iter()
        .flat_map(|bin| {
            TARGETS
                .iter()
                .map(move |(t, _, _)| format!("{bin}-{t}.tar.gz"))
        })
        .collect();
    expected.insert(format!("classcache-fetcher-image-{VERSION}.tar"));
    if repo_root().join("scripts/helm-chart.sh").exists() {
        expected.insert(format!("classcache-{VERSION}.tgz"));
    }
    if repo_root().join("scripts/krew-manifest.sh").exists() {
        expected.insert("classcache.yaml".to_string());
    }
    assert_eq!(
        sums.keys().cloned().collect::<BTreeSet<_>>(),
        expected,
        "SHA256SUMS names exactly the release's assets"
    );
    for (name, sum) in &sums {
        assert_eq!(&sha256_hex(&out.join(name)), sum, "sha256 of {name}");
    }

    step("each tarball holds its static binary, LICENSE and README.md; the binaries run");
    let unpacked = work.path().join("unpacked");
    let mut fetchers = BTreeMap::new();
    for (target, machine, platform) in TARGETS {
        for bin in BINS {
            let archive = out.join(format!("{bin}-{target}.tar.gz"));
            let listing = ok(
                "tar -tzf",
                Command::new("tar")
                    .arg("-tzf")
                    .arg(&archive)
                    .output()
                    .unwrap(),
            );
            let mut entries: Vec<&str> = listing.lines().collect();
            entries.sort();
            assert_eq!(
                entries,
                ["LICENSE", "README.md", bin],
                "entries of {}",
                archive.display()
            );
            let dir = untar(&archive, &unpacked.join(target));
            let binary = dir.join(bin);
            let (found, is_static) = elf_machine_and_static(&std::fs::read(&binary).unwrap());
            assert_eq!(found, machine, "ELF machine of {}", binary.display());
            assert!(is_static, "{} is not static", binary.display());
            let on_host = Platform::current().to_string() == platform;
            let mut run = if on_host {
                Command::new(&binary)
            } else {
                let mut qemu = Command::new("qemu-aarch64");
                qemu.arg(&binary);
                qemu
            };
            let version = ok(
                &format!("{} --version (qemu: {})", binary.display(), !on_host),
                run.arg("--version")
                    .output()
                    .expect("qemu-aarch64 runs (tests/harness/up.sh installs qemu-user)"),
            );
            assert_eq!(version, format!("{bin} {VERSION}"));
            if bin == "classcache-fetcher" {
                fetchers.insert(platform.to_string(), std::fs::read(&binary).unwrap());
            }
        }
    }

    step("the image layout: one index over linux/amd64 and linux/arm64, user 65532");
    let layout_dir = out.join("fetcher-image");
    let layout = OciLayout::open(&layout_dir).unwrap();
    let entry = layout.resolve(Some(VERSION), None).unwrap();
    assert_eq!(entry.media_type, media_types::OCI_INDEX);
    let index_bytes = layout.read_blob(&entry).unwrap();
    let index: ImageIndex = serde_json::from_slice(&index_bytes).unwrap();
    let platforms: Vec<String> = index
        .manifests
        .iter()
        .map(|m| {
            m.platform
                .as_ref()
                .expect("every index entry names its platform")
                .to_string()
        })
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
    for descriptor in &index.manifests {
        let platform = descriptor.platform.as_ref().unwrap();
        assert_eq!(descriptor.media_type, media_types::OCI_MANIFEST);
        let manifest: ImageManifest =
            serde_json::from_slice(&layout.read_blob(descriptor).unwrap()).unwrap();
        let config: serde_json::Value =
            serde_json::from_slice(&layout.read_blob(&manifest.config).unwrap()).unwrap();
        assert_eq!(config["config"]["User"], USER, "{platform}: {config}");
        assert_eq!(config["os"], platform.os.as_str());
        assert_eq!(config["architecture"], platform.architecture.as_str());
        assert_eq!(manifest.layers.len(), 1, "{platform}: one layer");
        let rootfs = untar(
            &layout.blob_path(&manifest.layers[0].digest),
            &work
                .path()
                .join("rootfs")
                .join(platform.architecture.as_str()),
        );
        assert!(
            std::fs::read(rootfs.join("usr/local/bin/classcache-fetcher")).unwrap()
                == fetchers[&platform.to_string()],
            "{platform}: the layer's binary is the released classcache-fetcher of that platform"
        );
        let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap();
        assert!(passwd.contains("nonroot:x:65532:65532:"), "{passwd}");
        assert!(
            std::fs::metadata(rootfs.join("etc/ssl/certs/ca-certificates.crt"))
                .unwrap()
                .len()
                > 0,
            "{platform}: the image has a CA bundle"
        );
    }
    let listing = ok(
        "tar -tf the OCI archive",
        Command::new("tar")
            .arg("-tf")
            .arg(out.join(format!("classcache-fetcher-image-{VERSION}.tar")))
            .output()
            .unwrap(),
    );
    for name in [
        "./oci-layout",
        "./index.json",
        &format!("./blobs/sha256/{}", entry.digest.hex()),
    ] {
        assert!(
            listing.lines().any(|l| l == name),
            "the OCI archive has no {name}:\n{listing}"
        );
    }

    step("skopeo reads the layout");
    let raw = ok(
        "skopeo inspect --raw oci:",
        h.command("skopeo")
            .args(["inspect", "--raw"])
            .arg(format!("oci:{}:{VERSION}", layout_dir.display()))
            .output()
            .unwrap(),
    );
    assert_eq!(
        raw.as_bytes(),
        index_bytes.as_slice(),
        "skopeo reads the same index"
    );

    step("classcache-release push copies the index to the harness registry");
    let reference = format!(
        "{}/{}:{VERSION}",
        h.registry,
        unique_name("fetcher-release")
    );
    let pushed = ok(
        "classcache-release push",
        h.command(out.join("tools/classcache-release"))
            .args(["push", "--layout"])
            .arg(&layout_dir)
            .args(["--to", &reference])
            .output()
            .unwrap(),
    );
    assert_eq!(pushed, format!("{reference}@{}", entry.digest));
    let remote = ok(
        "skopeo inspect --raw docker://",
        h.command("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{reference}"))
            .output()
            .unwrap(),
    );
    assert_eq!(
        remote.as_bytes(),
        index_bytes.as_slice(),
        "the registry serves the same index"
    );

    step("publishing: a tag that is not v<version> is refused; the right one pushes and releases");
    let fake_bin = work.path().join("fake-bin");
    std::fs::create_dir_all(&fake_bin).unwrap();
    let gh_args = work.path().join("gh-args");
    // A stand-in gh that records its arguments: nothing reaches GitHub.
    std::fs::write(
        fake_bin.join("gh"),
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{}'\n",
            gh_args.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        fake_bin.join("gh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let published = format!(
        "{}/{}:{VERSION}",
        h.registry,
        unique_name("fetcher-publish")
    );
    let publish = |tag: &str| {
        let path = format!("{}:{}", fake_bin.display(), std::env::var("PATH").unwrap());
        h.command("bash")
            .arg(repo_root().join("scripts/release.sh"))
            .args(["--publish-only", "--out"])
            .arg(&out)
            .env("PATH", path)
            .env("GITHUB_REPOSITORY", "classcache-test/classcache")
            .env("GITHUB_ACTOR", "release-test")
            .env("GH_TOKEN", "not-a-token")
            .env("GITHUB_REF_NAME", tag)
            .env("CLASSCACHE_RELEASE_IMAGE", &published)
            .output()
            .unwrap()
    };
    let refused = publish("v0.0.0-not-this-version");
    assert!(!refused.status.success(), "a wrong tag was published");
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .contains(&format!("tag v0.0.0-not-this-version is not v{VERSION}")),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(!gh_args.exists(), "gh ran for a wrong tag");
    ok("release.sh --publish-only", publish(&format!("v{VERSION}")));
    let args = std::fs::read_to_string(&gh_args).expect("release.sh runs gh");
    let args: Vec<&str> = args.lines().collect();
    assert_eq!(
        args[..6],
        [
            "release",
            "create",
            &format!("v{VERSION}"),
            "--repo",
            "classcache-test/classcache",
            "--verify-tag"
        ],
        "{args:?}"
    );
    let uploaded: BTreeSet<String> = args
        .iter()
        .filter(|a| a.starts_with(out.to_str().unwrap()))
        .map(|a| a.rsplit('/').next().unwrap().to_string())
        .collect();
    let mut assets: BTreeSet<String> = sums.keys().cloned().collect();
    assets.insert("SHA256SUMS".to_string());
    assert_eq!(uploaded, assets, "gh uploads every asset and SHA256SUMS");
    let remote = ok(
        "skopeo inspect --raw docker:// (published)",
        h.command("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{published}"))
            .output()
            .unwrap(),
    );
    assert_eq!(
        remote.as_bytes(),
        index_bytes.as_slice(),
        "publishing pushed the index"
    );

    step("the amd64 image runs as non-root");
    h.docker_ok(&["pull", "-q", &reference]);
    let inspected = h.docker_ok(&[
        "image",
        "inspect",
        "-f",
        "{{.Config.User}} {{.Os}}/{{.Architecture}}",
        &reference,
    ]);
    assert_eq!(inspected, format!("{USER} {}", Platform::current()));
    let ran = h.docker_ok(&["run", "--rm", "--network", "none", &reference, "--version"]);
    assert_eq!(ran, format!("classcache-fetcher {VERSION}"));
    h.docker_ok(&["image", "rm", &reference]);
}

#[test]
fn arm64_unit_tests_of_core_and_the_fetcher_pass_under_qemu() {
    // up.sh installs qemu-user and the cross compiler.
    let _ = harness();
    let started = Instant::now();
    let output = Command::new("bash")
        .arg(repo_root().join("scripts/static-binaries.sh"))
        .args([
            "--test",
            "aarch64-unknown-linux-musl",
            "-p",
            "classcache-core",
            "-p",
            "classcache-fetcher",
            "--lib",
        ])
        .output()
        .unwrap();
    let report = ok("cargo test under qemu-aarch64", output);
    eprintln!(
        "arm64 unit tests under qemu took {:?}\n{report}",
        started.elapsed()
    );
    assert!(report.contains("test result: ok"), "no test ran:\n{report}");
}
