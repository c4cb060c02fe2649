//! Finding a container image's archive in a real registry (the harness's CNCF distribution,
//! which has no referrers API, so the fallback index is what the plugin reads).

mod common;

use classcache_core::digest::Digest;
use classcache_core::reference::RegistryRef;
use classcache_oci::registry::{RegistryClient, RegistryOptions};
use common::*;
use serde_json::json;

/// Pushes a minimal single-platform image (config only, no layers) and returns its digest.
async fn push_image(client: &RegistryClient, image: &RegistryRef) -> Digest {
    push_built_image(client, image, json!({})).await
}

/// Like [`push_image`], with `config` as the image's run config (another build of the image).
async fn push_built_image(
    client: &RegistryClient,
    image: &RegistryRef,
    config: serde_json::Value,
) -> Digest {
    let config = json!({"architecture": "amd64", "os": "linux", "config": config, "rootfs": {"type": "layers", "diff_ids": []}});
    classcache_oci::testing::push_minimal_image(client, image, &config, &[])
        .await
        .unwrap()
        .digest
}

fn manifest(image: &str, other: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      containers:\n      - name: web\n        image: {image}\n      - name: proxy\n        image: {other}\n"
    )
}

#[test]
fn enable_finds_the_images_archive_in_the_registry() {
    let h = classcache_e2e::harness();
    let repo = classcache_e2e::unique_name("plugin-web");
    let image = format!("{}:1.0", h.registry_ref(&repo));
    let plain = format!(
        "{}:1.0",
        h.registry_ref(&classcache_e2e::unique_name("plugin-proxy"))
    );
    let tmp = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let archive_digest = rt.block_on(async {
        let client = RegistryClient::new(RegistryOptions::default()).unwrap();
        let image_ref: RegistryRef = image.parse().unwrap();
        let image_digest = push_image(&client, &image_ref).await;
        push_image(&client, &plain.parse().unwrap()).await;
        let file = tmp.path().join("app.jsa");
        std::fs::write(
            &file,
            b"not really a CDS archive, but bytes to deliver".repeat(100),
        )
        .unwrap();
        let pushed = client
            .push_archive(
                &image_ref,
                archive_config(&image, image_digest.as_str(), &[], &[]),
                &file,
                None,
            )
            .await
            .unwrap();
        pushed.manifest_digest
    });

    // Default: every container whose image has an archive; the proxy's image has none.
    let (code, out, err) = run(&["enable", "-f", "-"], Some(&manifest(&image, &plain)), &[]);
    assert_eq!(code, 0, "{err}");
    let docs = parse_yaml(&out);
    let t = &docs[0]["spec"]["template"];
    let pinned: serde_json::Value = serde_json::from_str(
        t["metadata"]["annotations"]["classcache.io/archive"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        pinned,
        json!({"web": format!("{}@{archive_digest}", h.registry_ref(&repo))})
    );
    assert_eq!(
        t["spec"]["containers"][0]["env"][0]["value"],
        format!(
            "-XX:SharedArchiveFile=/classcache/{}/app.jsa -Xshare:auto",
            archive_digest.to_string().replace(':', "-")
        )
    );
    assert!(
        t["spec"]["containers"][1].get("env").is_none(),
        "no archive, untouched"
    );

    // --pin-image pins the moving tag to the digest the archive was trained on.
    let (code, out, err) = run(
        &["enable", "-f", "-", "--pin-image"],
        Some(&manifest(&image, &plain)),
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        parse_yaml(&out)[0]["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{image}@sha256:"))
    );

    // Asking for a container whose image has no archive is an error that names the fix.
    let (code, out, err) = run(
        &["enable", "-f", "-", "-c", "proxy"],
        Some(&manifest(&image, &plain)),
        &[],
    );
    assert_eq!((code, out.as_str()), (1, ""));
    assert!(
        err.contains("has no archive in its registry") && err.contains("classcache-build"),
        "{err}"
    );

    // An image that is not in the registry at all.
    let missing = format!("{}:nope", h.registry_ref(&repo));
    let (code, _, err) = run(
        &["enable", "-f", "-", "-c", "web"],
        Some(&manifest(&missing, &plain)),
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("not found") && err.contains(&missing), "{err}");
}

#[test]
fn an_explicit_archive_is_checked_against_the_image() {
    let h = classcache_e2e::harness();
    let repo = classcache_e2e::unique_name("plugin-check");
    let image = format!("{}:1.0", h.registry_ref(&repo));
    let rebuilt = format!("{}:1.1", h.registry_ref(&repo));
    let tmp = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (amd64_archive, arm64_archive) = rt.block_on(async {
        let client = RegistryClient::new(RegistryOptions::default()).unwrap();
        let image_ref: RegistryRef = image.parse().unwrap();
        let digest = push_image(&client, &image_ref).await;
        // Another build: same platform, different content (so a different digest).
        push_built_image(
            &client,
            &rebuilt.parse().unwrap(),
            json!({"Env": ["BUILD=2"]}),
        )
        .await;

        let file = tmp.path().join("app.jsa");
        std::fs::write(&file, b"archive bytes".repeat(100)).unwrap();
        let amd64 = client
            .push_archive(
                &image_ref,
                archive_config(&image, digest.as_str(), &[], &[]),
                &file,
                None,
            )
            .await
            .unwrap();
        let mut arm = archive_config(&image, digest.as_str(), &["java"], &[]);
        arm.platform.architecture = "arm64".into();
        let arm64 = client
            .push_archive(&image_ref, arm, &file, None)
            .await
            .unwrap();
        (amd64.reference, arm64.reference)
    });

    let (code, out, err) = run(
        &[
            "enable",
            "-f",
            "-",
            "--archive",
            &arm64_archive,
            "-c",
            "web",
        ],
        Some(&manifest(&image, &image)),
        &[],
    );
    assert_eq!((code, out.as_str()), (1, ""));
    assert!(
        err.contains("is for linux/arm64 but image") && err.contains("runs on linux/amd64"),
        "{err}"
    );

    let (code, _, err) = run(
        &[
            "enable",
            "-f",
            "-",
            "--archive",
            &amd64_archive,
            "-c",
            "web",
        ],
        Some(&manifest(&rebuilt, &image)),
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("trained on another build of the image"),
        "{err}"
    );

    let (code, _, err) = run(
        &[
            "enable",
            "-f",
            "-",
            "--archive",
            &amd64_archive,
            "-c",
            "web",
        ],
        Some(&manifest(&image, &image)),
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("another build"), "{err}");
}
