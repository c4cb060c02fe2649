//! The index of per-platform archives against the harness's real registry (CNCF distribution
//! 2.8: no referrers API, no conditional writes): two platforms' jobs racing both end in it, and
//! a slot holding another image's archive is refused. The images and archives are fixtures
//! (`classcache_e2e::multiarch`); the index code is the one classcache-build runs.

use classcache_core::artifact::archive_index_slot_tag;
use classcache_core::media_types;
use classcache_e2e::multiarch::{
    client, fixture_config, fixture_index_key, push_platform_archive, read_index, synthetic_image,
    with_arm64_fixture,
};

const AMD64: &str = "linux/amd64";
const ARM64: &str = "linux/arm64/v8";

/// Both platforms' jobs push at once, several times: whatever the interleaving, the index
/// ends with both new archives, and it is the newest index listed from the image index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_platforms_racing_both_end_in_the_index() {
    let image = with_arm64_fixture(&synthetic_image("race").await).await;
    let key = fixture_index_key(&image);
    for round in 0..6 {
        let jobs: Vec<_> = [AMD64, ARM64]
            .into_iter()
            .map(|platform| {
                let (image, key) = (image.clone(), key.clone());
                tokio::spawn(async move {
                    let like = fixture_config(&image, platform);
                    let data = format!("{platform} archive of round {round}").into_bytes();
                    push_platform_archive(&image, platform, &like, &data, &key).await
                })
            })
            .collect();
        let mut pushed = vec![];
        for job in jobs {
            let (archive, updated) = job.await.expect("the job does not panic");
            assert!(
                updated.platforms.contains(&archive.config.platform),
                "round {round}: a job's own archive is in the index it ends with: {updated:?}"
            );
            pushed.push(archive.manifest_digest);
        }
        let (digest, entries) = read_index(&image, key.as_str()).await;
        assert_eq!(
            entries,
            [
                (AMD64.to_string(), pushed[0].clone()),
                (ARM64.to_string(), pushed[1].clone())
            ],
            "round {round}"
        );
        // Superseded indexes of the same second stay listed; enable's lookup takes the
        // newest listed index key and that key's tag.
        let found = client()
            .find_archive_index(&image.repository, &image.index.digest)
            .await
            .unwrap();
        assert_eq!(
            found.map(|d| d.digest),
            Some(digest.clone()),
            "round {round}"
        );
        let listed = client()
            .find_archives(&image.repository, &image.index.digest)
            .await
            .unwrap();
        assert!(
            listed.iter().any(|d| d.digest == digest),
            "round {round}: the image index lists the current index: {listed:#?}"
        );
    }
}

/// A slot tag holding an archive of another platform's manifest (a hand-made tag, say) stops
/// the update with the tag and the fix, instead of putting that archive in the index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_with_another_images_archive_is_refused() {
    let image = with_arm64_fixture(&synthetic_image("slot").await).await;
    let key = fixture_index_key(&image);
    let like = fixture_config(&image, AMD64);
    let (amd, _) = push_platform_archive(&image, AMD64, &like, b"amd64", &key).await;
    let client = client();
    let manifest = client
        .get_manifest(&image.repository.with_digest(&amd.manifest_digest))
        .await
        .unwrap();
    let arm_slot = archive_index_slot_tag(&key, &ARM64.parse().unwrap());
    client
        .put_manifest(
            &image.repository.with_tag(&arm_slot),
            media_types::OCI_MANIFEST,
            manifest.bytes,
        )
        .await
        .unwrap();
    let like = fixture_config(&image, AMD64);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.jsa");
    std::fs::write(&file, b"amd64 again").unwrap();
    let pushed = client
        .push_archive(
            &image.repository,
            like,
            &file,
            Some(image.manifest(AMD64).clone()),
        )
        .await
        .unwrap();
    let e = client
        .update_archive_index(&image.repository, &key, &image.index, &pushed)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&arm_slot)
            && e.contains("not of the image's linux/arm64/v8 manifest")
            && e.contains("delete the tag"),
        "{e}"
    );
}
