//! One index of per-platform archives, two real fetcher processes: the one told it is
//! linux/arm64 (`serve --platform`) publishes the arm64 archive, the one on this machine's
//! platform publishes that platform's, both from the same pinned reference, at the same path.
//!
//! The image and its archives are fixtures in the harness registry (`classcache_e2e::multiarch`:
//! no arm64 JVM runs here), put in the index by the code classcache-build runs.

mod support;

use classcache_core::artifact::Platform;
use classcache_core::fetcher::http::ArchiveAnswer;
use classcache_e2e::multiarch::{
    fixture_config, fixture_index_key, push_platform_archive, synthetic_image, with_arm64_fixture,
};
use support::block_on;
use support::local::{init, LocalFetcher};

fn sha_of(path: &std::path::Path) -> String {
    classcache_core::digest::Digest::of(&std::fs::read(path).unwrap())
        .hex()
        .to_string()
}

#[test]
fn each_node_publishes_its_own_platforms_archive_from_one_index() {
    let here = Platform::current();
    assert!(
        ["amd64", "arm64"].contains(&here.architecture.as_str()),
        "the fixture index covers linux/amd64 and linux/arm64; this machine is {here}"
    );
    // The index names the arm64 entry linux/arm64/v8, as multi-platform images do.
    let (here_name, other_name, other_flag) = if here.architecture == "amd64" {
        ("linux/amd64", "linux/arm64/v8", "linux/arm64")
    } else {
        ("linux/arm64/v8", "linux/amd64", "linux/amd64")
    };
    let image =
        block_on(async { with_arm64_fixture(&synthetic_image("fetcher-platforms").await).await });
    let key = fixture_index_key(&image);
    let mut pushed = vec![];
    let mut index = None;
    for (platform, seed) in [("linux/amd64", 11), ("linux/arm64/v8", 12)] {
        let data = support::noise(400_000, seed);
        let (archive, updated) = block_on(push_platform_archive(
            &image,
            platform,
            &fixture_config(&image, platform),
            &data,
            &key,
        ));
        pushed.push((platform, archive.config.archive.sha256.clone()));
        index = Some(updated);
    }
    let index = index.unwrap();
    assert!(index.missing.is_empty(), "{index:?}");
    let sha = |platform: &str| {
        pushed
            .iter()
            .find(|(p, _)| *p == platform)
            .unwrap()
            .1
            .clone()
    };
    // The one reference both nodes' pods pin.
    let reference = format!("{}@{}", image.repository, index.digest);

    let dir = tempfile::tempdir().unwrap();
    let native = LocalFetcher::start(
        &dir.path().join("native-store"),
        &dir.path().join("native.log"),
        &[],
    );
    let overridden = LocalFetcher::start(
        &dir.path().join("other-store"),
        &dir.path().join("other.log"),
        &["--platform", other_flag],
    );
    let mut file_names = vec![];
    for (node, platform) in [(&native, here_name), (&overridden, other_name)] {
        let (status, body) = node.ask(&reference);
        assert_eq!(status, 200, "{platform}: {body}\n{}", node.log_text());
        let answer: ArchiveAnswer = serde_json::from_str(&body).unwrap();
        assert_eq!(answer.sha256, sha(platform), "{platform} node: {body}");
        let published = node
            .store
            .join("published")
            .join(classcache_core::paths::published_dir_name(
                index.digest.as_str(),
            ))
            .join(&answer.file_name);
        assert_eq!(sha_of(&published), sha(platform), "{}", published.display());

        // The pod's init container (copy mode) gets the same file at the same place.
        let volume = dir.path().join(format!("volume-{}", file_names.len()));
        std::fs::create_dir(&volume).unwrap();
        let out = init(&[
            "--archive",
            &reference,
            "--mode",
            "copy",
            "--dir",
            volume.to_str().unwrap(),
            "--fetcher-url",
            &node.url,
            "--timeout",
            "60s",
            "--fail-closed",
        ]);
        assert!(
            out.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            node.log_text()
        );
        let copied = volume
            .join(classcache_core::paths::published_dir_name(
                index.digest.as_str(),
            ))
            .join(&answer.file_name);
        assert_eq!(sha_of(&copied), sha(platform));
        file_names.push(answer.file_name);
    }
    assert_ne!(sha(here_name), sha(other_name));
    assert_eq!(
        file_names[0], file_names[1],
        "the JVM's path (paths::pod_archive_path) is the same on every node"
    );

    // A node of a platform the index lacks publishes nothing and says what the index has.
    let s390x = LocalFetcher::start(
        &dir.path().join("s390x-store"),
        &dir.path().join("s390x.log"),
        &["--platform", "linux/s390x"],
    );
    let (status, body) = s390x.ask(&reference);
    assert_eq!(status, 502, "{body}");
    assert!(
        body.contains("no archive for platform linux/s390x")
            && body.contains("linux/amd64, linux/arm64/v8"),
        "{body}"
    );
    assert!(!s390x
        .store
        .join("published")
        .join(classcache_core::paths::published_dir_name(
            index.digest.as_str()
        ))
        .join(&file_names[0])
        .exists());
}
