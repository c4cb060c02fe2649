//! `enable` against an archive in a real registry whose config carries options no archive needs
//! (a hostile push): refused before any edit, naming the option, the manifest left as it was.

mod common;

use classcache_core::reference::RegistryRef;
use classcache_oci::registry::{RegistryClient, RegistryOptions};
use common::*;

fn deployment(image: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      containers:\n      - name: web\n        image: {image}\n        env:\n        - name: JAVA_TOOL_OPTIONS\n          value: -Xmx256m\n"
    )
}

/// Pushes an archive for `image` whose run-time options get `extra`; its pinned reference.
fn push_archive_with(image: &str, extra: &[&str]) -> String {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = RegistryClient::new(RegistryOptions::default()).unwrap();
        let image_ref: RegistryRef = image.parse().unwrap();
        let config = serde_json::json!({"architecture": "amd64", "os": "linux", "config": {}, "rootfs": {"type": "layers", "diff_ids": []}});
        let image_digest = classcache_oci::testing::push_minimal_image(&client, &image_ref, &config, &[])
            .await
            .unwrap()
            .digest;
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("app.jsa");
        std::fs::write(&file, b"archive bytes".repeat(100)).unwrap();
        let mut config = archive_config(image, image_digest.as_str(), &[], &[]);
        config
            .runtime_options
            .extend(extra.iter().map(|o| o.to_string()));
        let pushed = client
            .push_archive(&image_ref, config, &file, None)
            .await
            .unwrap();
        format!("{}@{}", image_ref.repository_only(), pushed.manifest_digest)
    })
}

#[test]
fn enable_refuses_an_archive_with_non_archive_options_and_changes_nothing() {
    let h = classcache_e2e::harness();
    let image = format!(
        "{}:1.0",
        h.registry_ref(&classcache_e2e::unique_name("refused-options"))
    );
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("deploy.yaml");
    let original = deployment(&image);
    std::fs::write(&path, &original).unwrap();
    let enable = |archive: Option<&str>| {
        let mut args = vec!["enable", "-f", path.to_str().unwrap()];
        args.extend(archive.iter().flat_map(|a| ["--archive", *a]));
        run(&args, None, &[])
    };

    for evil in [
        "-javaagent:/tmp/evil.jar",
        "-XX:OnError=/bin/sh",
        "-Djava.security.manager=allow",
    ] {
        let archive = push_archive_with(&image, &[evil]);
        // Named, and found from the image as `enable` does without --archive.
        for named in [Some(archive.as_str()), None] {
            let (code, out, err) = enable(named);
            assert_ne!(code, 0, "{named:?} must refuse {evil}:\n{out}");
            assert!(
                err.contains(evil) && err.contains("nothing was changed"),
                "{named:?}: the error names the option: {err}"
            );
            assert!(!out.contains("classcache.io"), "nothing emitted: {out}");
            assert_eq!(std::fs::read_to_string(&path).unwrap(), original);
        }
    }

    // The same image with a clean archive enables (the refusal was the options, nothing else).
    let archive = push_archive_with(&image, &[]);
    let (code, out, err) = enable(Some(&archive));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("-XX:SharedArchiveFile=/classcache/"), "{out}");
}
