//! End-to-end tests of the OCI image-layout store: written by classcache, read by a third-party
//! client (skopeo), pushed from there to the harness registry, and pulled back identical.

mod oci_support;

use classcache_core::key::ArchiveKind;
use classcache_core::reference::RegistryRef;
use classcache_oci::layout::OciLayout;
use classcache_oci::registry::ReferrersUpdate;
use classcache_oci::store::{copy_layout_archive_to_registry, ArchiveStore};
use oci_support::*;

fn skopeo(h: &classcache_e2e::Harness, args: &[&str]) -> String {
    let out = h
        .command("skopeo")
        .args(args)
        .output()
        .expect("skopeo runs (the harness installs it)");
    assert!(
        out.status.success(),
        "skopeo {} failed:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layout_archive_is_readable_by_skopeo_and_pushable_from_there() {
    let h = classcache_e2e::harness();
    let client = client();
    let name = classcache_e2e::unique_name("oci-layout");
    let repo: RegistryRef = h.registry_ref(&name).parse().unwrap();
    let subject = push_subject_image(&client, &repo, &name).await;

    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("app.jsa");
    write_archive_like(&src, 20 * 1024 * 1024, 20 + std::process::id() as u64);
    let layout_dir = dir.path().join("layout");
    let location = format!("oci:{}", layout_dir.display());
    let store = ArchiveStore::open_str(&location, &client, true).unwrap();
    let config = archive_config("app", &subject.digest, ArchiveKind::DynamicCds, &name);
    let key = config.key.to_string();
    let pushed = store
        .push_archive(config, &src, Some(subject.clone()))
        .await
        .expect("write the archive to the layout");
    assert_eq!(pushed.tag, key);

    // Read back through the same surface, by tag and from the image digest.
    let tagged = ArchiveStore::open_str(&format!("{location}:{key}"), &client, false).unwrap();
    let out = dir.path().join("from-layout.jsa");
    tagged.pull_archive(None, &out).await.unwrap();
    assert_eq!(sha256_file(&out), sha256_file(&src));
    let found = store.find_archives(&subject.digest).await.unwrap();
    assert_eq!(
        found.iter().map(|d| d.digest.as_str()).collect::<Vec<_>>(),
        [pushed.manifest_digest.as_str()]
    );

    // A third-party client reads it: the manifest it sees is ours, byte for byte.
    let raw = skopeo(
        h,
        &[
            "inspect",
            "--raw",
            &format!("oci:{}:{key}", layout_dir.display()),
        ],
    );
    assert_eq!(
        classcache_core::digest::sha256_digest(raw.trim_end().as_bytes()),
        pushed.manifest_digest
    );
    let manifest: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(manifest["subject"]["digest"], subject.digest.as_str());
    assert_eq!(
        manifest["artifactType"],
        classcache_core::media_types::ARCHIVE_ARTIFACT_TYPE
    );

    // skopeo's decoded (non-raw) inspect refuses every artifact whose config is not an image
    // config ("unsupported image-specific operation on artifact"); its raw config read works.
    let config = skopeo(
        h,
        &[
            "inspect",
            "--config",
            "--raw",
            &format!("oci:{}:{key}", layout_dir.display()),
        ],
    );
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert_eq!(config["key"], key.as_str());
    assert_eq!(config["archive"]["sha256"], sha256_file(&src).as_str());

    // Pushable from there by skopeo: the registry copy pulls back identical.
    let by_skopeo = repo.with_tag("by-skopeo");
    skopeo(
        h,
        &[
            "copy",
            "--dest-tls-verify=false",
            &format!("oci:{}:{key}", layout_dir.display()),
            &format!("docker://{by_skopeo}"),
        ],
    );
    let out = dir.path().join("from-skopeo-copy.jsa");
    client
        .pull_archive(&by_skopeo, None, &out)
        .await
        .expect("pull what skopeo pushed");
    assert_eq!(sha256_file(&out), sha256_file(&src));

    // And by our own copy, which also keeps the fallback index up to date.
    let copied = copy_layout_archive_to_registry(
        &OciLayout::open(&layout_dir).unwrap(),
        Some(&key),
        None,
        &client,
        &repo,
    )
    .await
    .unwrap();
    assert_eq!(copied.manifest_digest, pushed.manifest_digest);
    assert_eq!(copied.referrers, ReferrersUpdate::FallbackIndexUpdated);
    let found = client.find_archives(&repo, &subject.digest).await.unwrap();
    assert_eq!(found.len(), 1);
    let out = dir.path().join("from-copy.jsa");
    client
        .pull_archive(&repo.with_digest(&found[0].digest), None, &out)
        .await
        .unwrap();
    assert_eq!(sha256_file(&out), sha256_file(&src));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directories_that_are_not_oci_layouts_are_refused_with_the_fix() {
    let client = client();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("README"), "not a layout").unwrap();
    let location = format!("oci:{}:tag", dir.path().display());
    for create in [false, true] {
        let e = ArchiveStore::open_str(&location, &client, create)
            .err()
            .expect("refused");
        let m = e.to_string();
        assert!(
            m.contains(&format!(
                "{} is not an OCI image layout (no oci-layout file)",
                dir.path().display()
            )),
            "{m}"
        );
        assert!(m.contains("skopeo copy"), "{m}");
    }
    assert!(
        !dir.path().join("index.json").exists(),
        "nothing is written into a foreign directory"
    );
    let missing = dir.path().join("missing");
    let e = ArchiveStore::open_str(&format!("oci:{}", missing.display()), &client, false)
        .err()
        .expect("refused");
    assert!(e.to_string().contains("does not exist"), "{e}");
    let e = ArchiveStore::open_str("oci:", &client, false)
        .err()
        .expect("refused");
    assert!(e.to_string().contains("layout directory is empty"), "{e}");
}
