//! `enable` on a workload of a multi-platform image whose archives form an index of
//! per-platform archives (harness registry): it pins the index, names the platforms still
//! without an archive, and refuses an index whose platforms' configs one template cannot serve.
//! The image and archives are fixtures (`classcache_e2e::multiarch`), put in the index by the
//! code classcache-build runs.

mod common;

use classcache_e2e::multiarch::{
    block_on, fixture_config, fixture_index_key, push_platform_archive, synthetic_image,
    with_arm64_fixture, MultiPlatformImage,
};
use common::*;

fn deployment(image: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      containers:\n      - name: web\n        image: {image}\n"
    )
}

/// `enable -f` of a Deployment of `image`: (exit code, pinned archive, JAVA_TOOL_OPTIONS, stderr).
fn enable(image: &MultiPlatformImage) -> (i32, String, String, String) {
    let (code, out, err) = run(
        &["enable", "-f", "-"],
        Some(&deployment(&image.reference)),
        &[],
    );
    if code != 0 {
        return (code, String::new(), String::new(), err);
    }
    let docs = parse_yaml(&out);
    let t = &docs[0]["spec"]["template"];
    let pinned: serde_json::Value = serde_json::from_str(
        t["metadata"]["annotations"]["classcache.io/archive"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let options = t["spec"]["containers"][0]["env"][0]["value"]
        .as_str()
        .unwrap()
        .to_string();
    (
        code,
        pinned["web"].as_str().unwrap().to_string(),
        options,
        err,
    )
}

#[test]
fn enable_pins_the_index_and_names_the_platforms_without_an_archive() {
    let image =
        block_on(async { with_arm64_fixture(&synthetic_image("plugin-multi").await).await });
    let key = fixture_index_key(&image);
    let (_, only_amd) = block_on(push_platform_archive(
        &image,
        "linux/amd64",
        &fixture_config(&image, "linux/amd64"),
        b"amd64 archive",
        &key,
    ));
    let (code, pinned, options, err) = enable(&image);
    assert_eq!(code, 0, "{err}");
    assert_eq!(pinned, format!("{}@{}", image.repository, only_amd.digest));
    assert!(
        err.contains("has no archive for linux/arm64/v8") && err.contains("classcache-build"),
        "{err}"
    );

    let (_, both) = block_on(push_platform_archive(
        &image,
        "linux/arm64/v8",
        &fixture_config(&image, "linux/arm64/v8"),
        b"arm64 archive",
        &key,
    ));
    let (code, pinned, options_both, err) = enable(&image);
    assert_eq!(code, 0, "{err}");
    assert_eq!(pinned, format!("{}@{}", image.repository, both.digest));
    assert!(!err.contains("has no archive for"), "{err}");
    // One path for every node: the index's digest and the file name every platform shares.
    assert_eq!(
        options_both,
        format!(
            "-XX:SharedArchiveFile={} -Xshare:auto",
            classcache_core::paths::pod_archive_path(both.digest.as_str(), "app.jsa")
        )
    );
    assert_ne!(options, options_both, "the new index is pinned");
}

#[test]
fn an_index_one_template_cannot_serve_is_refused() {
    // The arm64 build wrote a file of another name: no single JVM path fits both nodes.
    let image =
        block_on(async { with_arm64_fixture(&synthetic_image("plugin-names").await).await });
    let key = fixture_index_key(&image);
    block_on(push_platform_archive(
        &image,
        "linux/amd64",
        &fixture_config(&image, "linux/amd64"),
        b"amd64",
        &key,
    ));
    let mut other_name = fixture_config(&image, "linux/arm64/v8");
    other_name.archive.name = "other.jsa".into();
    block_on(push_platform_archive(
        &image,
        "linux/arm64/v8",
        &other_name,
        b"arm64",
        &key,
    ));
    let (code, _, _, err) = enable(&image);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("files of different names (app.jsa vs other.jsa)")
            && err.contains("linux/arm64/v8"),
        "{err}"
    );

    // Every platform's config is checked: an arm64 archive whose run-time options carry a
    // non-archive option is refused, though amd64's is fine.
    let image = block_on(async { with_arm64_fixture(&synthetic_image("plugin-opts").await).await });
    let key = fixture_index_key(&image);
    block_on(push_platform_archive(
        &image,
        "linux/amd64",
        &fixture_config(&image, "linux/amd64"),
        b"amd64",
        &key,
    ));
    let mut hostile = fixture_config(&image, "linux/arm64/v8");
    hostile.runtime_options.push("-Xmx1g".into());
    block_on(push_platform_archive(
        &image,
        "linux/arm64/v8",
        &hostile,
        b"arm64",
        &key,
    ));
    let (code, _, _, err) = enable(&image);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("(linux/arm64/v8): refused, nothing was changed") && err.contains("-Xmx1g"),
        "{err}"
    );
}
