//! classcache-build on a multi-platform image: one build per platform keeps one index of
//! per-platform archives, each build adding or replacing its own platform's entry only.
//!
//! linux/amd64 is trained for real (the harness's JDK 17 image). No arm64 JVM runs here, so
//! the linux/arm64 side is a fixture (`classcache_e2e::multiarch`): an arm64 manifest in the
//! image index and an archive of made-up bytes, pushed and added to the index through the same
//! `RegistryClient::update_archive_index` the build runs.

mod common;

use classcache_core::artifact::signature::SigningKey;
use classcache_core::artifact::{newest_referrer, ANNOTATION_PLATFORMS};
use classcache_core::digest::Digest;
use classcache_core::media_types;
use classcache_core::testing::SIGNING_KEY_PEM;
use classcache_e2e::cosign;
use classcache_e2e::multiarch::{
    block_on, client, fixture_index_key, push_platform_archive, read_index, with_arm64_fixture,
};
use classcache_e2e::step;
use classcache_oci::content::{archive_manifests, ContentRef};
use common::*;

const AMD64: &str = "linux/amd64";
const ARM64: &str = "linux/arm64/v8";

fn digest_of(report: &serde_json::Value) -> Digest {
    report["archive"]["digest"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn one_build_per_platform_keeps_one_index_and_replaces_only_its_own_entry() {
    let h = classcache_e2e::harness();
    let (amd64_image, _, _) = app_image(h, &h.jdk17_image, &["run"], "");
    let image = block_on(with_arm64_fixture(&amd64_image));
    let repo = image.repository.clone();

    step("classcache-build on the multi-platform image (linux/amd64 here): an index with its archive");
    let run = run_build(h, &["--verify-runs", "0", &image.reference], &[]);
    let report = run.assert_trained(h, "dynamic-cds");
    assert_eq!(
        report["image"]["digest"],
        image.manifest(AMD64).digest.as_str(),
        "the archive is bound to the platform manifest, not the index"
    );
    let index = &report["archive"]["index"];
    let key = index["key"].as_str().unwrap().to_string();
    assert_eq!(
        key,
        fixture_index_key(&image).as_str(),
        "the index key is core's, from the image index and the build's platform-independent inputs"
    );
    assert_eq!(index["platforms"], serde_json::json!([AMD64]), "{report:#}");
    assert_eq!(index["missing"], serde_json::json!([ARM64]), "{report:#}");
    let amd1 = digest_of(&report);
    let (digest, entries) = block_on(read_index(&image, &key));
    assert_eq!(entries, [(AMD64.to_string(), amd1.clone())]);
    assert_eq!(index["digest"], digest.as_str());
    assert_eq!(
        index["reference"],
        format!("{}:{key}@{digest}", repo),
        "{report:#}"
    );

    step("the linux/arm64 job (fixture) adds its entry and keeps amd64's");
    let like = block_on(client().fetch_archive(&repo.with_digest(&amd1), None))
        .unwrap()
        .config;
    let key = fixture_index_key(&image);
    let (arm1, updated) = block_on(push_platform_archive(
        &image,
        ARM64,
        &like,
        b"arm64 archive, first build",
        &key,
    ));
    assert!(updated.missing.is_empty(), "{updated:?}");
    let (digest, entries) = block_on(read_index(&image, key.as_str()));
    assert_eq!(updated.digest, digest);
    assert_eq!(
        entries,
        [
            (AMD64.to_string(), amd1.clone()),
            (ARM64.to_string(), arm1.manifest_digest.clone())
        ]
    );

    step("classcache-build again on amd64, signing: its entry is replaced, arm64's kept");
    let keys = tempfile::tempdir().unwrap();
    let (sign_key, public_key) = (keys.path().join("k.key"), keys.path().join("k.pub"));
    std::fs::write(&sign_key, SIGNING_KEY_PEM).unwrap();
    std::fs::write(
        &public_key,
        SigningKey::from_pem(SIGNING_KEY_PEM, "k")
            .unwrap()
            .public_key_pem(),
    )
    .unwrap();
    let run = run_build(
        h,
        &[
            "--verify-runs",
            "0",
            "--sign-key",
            sign_key.to_str().unwrap(),
            &image.reference,
        ],
        &[],
    );
    let report = run.assert_trained(h, "dynamic-cds");
    let amd2 = digest_of(&report);
    assert_ne!(amd2, amd1, "a new build is a new archive manifest");
    assert_eq!(
        report["archive"]["index"]["platforms"],
        serde_json::json!([AMD64, ARM64])
    );
    assert_eq!(report["archive"]["index"]["missing"], serde_json::json!([]));
    let (digest, entries) = block_on(read_index(&image, key.as_str()));
    assert_eq!(
        entries,
        [
            (AMD64.to_string(), amd2.clone()),
            (ARM64.to_string(), arm1.manifest_digest.clone())
        ]
    );
    assert_eq!(report["archive"]["index"]["digest"], digest.as_str());
    // Pods pin the index: it is signed too, and cosign accepts the signature.
    for referrers in [false, true] {
        let verified = cosign::verify(
            keys.path(),
            &public_key,
            &format!("{repo}@{digest}"),
            referrers,
        );
        assert!(
            verified.status.success(),
            "cosign verify (referrers: {referrers}) of the index {digest}: {}",
            String::from_utf8_lossy(&verified.stderr)
        );
    }

    step("the arm64 job again: its entry is replaced, amd64's kept");
    let (arm2, _) = block_on(push_platform_archive(
        &image,
        ARM64,
        &like,
        b"arm64 archive, second build",
        &key,
    ));
    let (digest, entries) = block_on(read_index(&image, key.as_str()));
    assert_eq!(
        entries,
        [
            (AMD64.to_string(), amd2),
            (ARM64.to_string(), arm2.manifest_digest)
        ]
    );

    step("found from the image index (as enable finds it): the current index");
    let found = block_on(client().find_archive_index(&repo, &image.index.digest))
        .unwrap()
        .expect("the image index lists its archive index");
    assert_eq!(found.digest, digest);
    let listed = block_on(client().find_archives(&repo, &image.index.digest)).unwrap();
    let newest = newest_referrer(
        listed
            .iter()
            .filter(|d| media_types::is_index(&d.media_type)),
    )
    .unwrap();
    assert_eq!(
        newest.annotation(ANNOTATION_PLATFORMS),
        Some(format!("{AMD64},{ARM64}").as_str()),
        "a listing shows the platforms: {listed:#?}"
    );
    // Every platform's archive has the same file name and run-time options: one template.
    let (_, manifests) = block_on(archive_manifests(
        &client().source(&repo),
        &ContentRef::Digest(digest),
    ))
    .unwrap();
    assert_eq!(manifests.len(), 2);
    assert!(manifests.iter().all(|m| {
        m.config.archive.name == like.archive.name
            && m.config.runtime_options == like.runtime_options
    }));
}
