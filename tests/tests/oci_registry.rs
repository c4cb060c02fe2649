//! End-to-end tests of archive push, discovery and pull against the harness's real registry
//! (CNCF distribution 2.8 on 127.0.0.1), and of the errors a user can cause.

mod oci_support;

use classcache_core::artifact::{self, ArtifactError, Platform};
use classcache_core::digest::Digest;
use classcache_core::key::ArchiveKind;
use classcache_core::media_types;
use classcache_core::oci::{Descriptor, ImageManifest};
use classcache_core::reference::RegistryRef;
use classcache_oci::docker_config::Credentials;
use classcache_oci::registry::{
    fallback_tag, ReferrersUpdate, RegistryClient, RegistryError, RegistryOptions,
};
use oci_support::*;
use std::collections::HashMap;

fn repo(name: &str) -> RegistryRef {
    let h = classcache_e2e::harness();
    h.registry_ref(&classcache_e2e::unique_name(name))
        .parse()
        .expect("valid repository")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_150_mb_archive_is_pushed_found_through_the_fallback_index_and_pulled_back_identical() {
    let repo = repo("oci-e2e");
    let client = client();
    let subject = push_subject_image(&client, &repo, &repo.repository).await;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("app.jsa");
    write_archive_like(&src, 150 * 1024 * 1024, 150);
    let config = archive_config(
        &repo.with_tag("app").to_string(),
        &subject.digest,
        ArchiveKind::DynamicCds,
        "big",
    );
    let key = config.key.to_string();

    // Subject looked up by the client itself (None): it must be the image in the repository.
    let pushed = client
        .push_archive(&repo, config.clone(), &src, None)
        .await
        .expect("push the archive");
    assert_eq!(pushed.tag, key);
    assert_eq!(
        pushed.referrers,
        ReferrersUpdate::FallbackIndexUpdated,
        "distribution 2.8 has no referrers API"
    );
    assert!(
        pushed.layer.size < 100 * 1024 * 1024,
        "the layer is compressed: {} bytes",
        pushed.layer.size
    );
    assert_eq!(
        pushed.bytes_uploaded,
        pushed.layer.size + config_size(&client, &repo, &pushed.manifest_digest).await
    );

    // The registry really has no referrers API, and the fallback tag is an OCI index listing it.
    assert!(client
        .referrers_api(&repo, &subject.digest, None)
        .await
        .unwrap()
        .is_none());
    let index = client
        .get_manifest(&repo.with_tag(&fallback_tag(&subject.digest)))
        .await
        .unwrap();
    assert_eq!(index.media_type, media_types::OCI_INDEX);

    // Found from the image digest, with the annotations a listing shows.
    let found = client.find_archives(&repo, &subject.digest).await.unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].digest, pushed.manifest_digest);
    assert_eq!(
        found[0].artifact_type.as_deref(),
        Some(media_types::ARCHIVE_ARTIFACT_TYPE)
    );
    assert_eq!(
        found[0].annotation(artifact::ANNOTATION_KEY),
        Some(key.as_str())
    );
    assert_eq!(
        found[0].annotation(artifact::ANNOTATION_KIND),
        Some("dynamic-cds")
    );
    assert!(found[0]
        .annotation("org.opencontainers.image.created")
        .is_some());

    // Pushing again uploads nothing and adds no duplicate; a second archive is added beside it.
    let again = client
        .push_archive(&repo, config, &src, Some(subject.clone()))
        .await
        .unwrap();
    assert_eq!(
        (again.bytes_uploaded, again.referrers),
        (0, ReferrersUpdate::FallbackIndexUnchanged)
    );
    let small = dir.path().join("small.jsa");
    write_archive_like(&small, 1024 * 1024, 151);
    let other = client
        .push_archive(
            &repo,
            archive_config("app", &subject.digest, ArchiveKind::AotCache, "other"),
            &small,
            None,
        )
        .await
        .unwrap();
    let found = client.find_archives(&repo, &subject.digest).await.unwrap();
    let digests: Vec<_> = found.iter().map(|d| d.digest.as_str()).collect();
    assert_eq!(
        digests,
        [
            pushed.manifest_digest.as_str(),
            other.manifest_digest.as_str()
        ]
    );

    // Pulled back by tag and by the digest the listing gave: byte-identical.
    let out = dir.path().join("pulled.jsa");
    let pulled = client
        .pull_archive(&repo.with_tag(&key), None, &out)
        .await
        .expect("pull by tag");
    assert_eq!(pulled.manifest_digest, pushed.manifest_digest);
    assert_eq!(sha256_file(&out), sha256_file(&src));
    assert_eq!(std::fs::metadata(&out).unwrap().len(), 150 * 1024 * 1024);
    std::fs::remove_file(&out).unwrap();
    let pulled = client
        .pull_archive(&repo.with_digest(&found[0].digest), None, &out)
        .await
        .expect("pull by digest");
    assert_eq!(pulled.config.key.as_str(), key);
    assert_eq!(sha256_file(&out), sha256_file(&src));

    // A range read from the middle of the layer is the blob's tail from there: same sha256 as
    // the whole blob's bytes past that offset.
    let offset = pushed.layer.size / 3;
    let whole = client
        .blob_stream(&repo, &pushed.layer, 0..pushed.layer.size)
        .await
        .unwrap();
    assert_eq!(
        (whole.offset, whole.total_size),
        (0, Some(pushed.layer.size))
    );
    let tail = client
        .blob_stream(&repo, &pushed.layer, offset..pushed.layer.size)
        .await
        .unwrap();
    assert_eq!(
        (tail.offset, tail.total_size),
        (offset, Some(pushed.layer.size))
    );
    let (whole_tail, whole_len) = hash_stream(whole, offset).await;
    let (tail_hash, tail_len) = hash_stream(tail, 0).await;
    assert_eq!(whole_len, pushed.layer.size);
    // A bounded range (a stripe) is exactly those bytes: the registry sends no more.
    let stripe = client
        .blob_stream(&repo, &pushed.layer, offset..offset + 1000)
        .await
        .unwrap();
    assert_eq!(stripe.offset, offset);
    let (_, stripe_len) = hash_stream(stripe, 0).await;
    assert_eq!(stripe_len, 1000);
    assert_eq!(
        (tail_hash, tail_len),
        (whole_tail, pushed.layer.size - offset)
    );
}

/// sha256 of a blob stream's bytes past `skip`, and how many bytes the stream had in all.
async fn hash_stream(mut blob: classcache_oci::registry::BlobStream, skip: u64) -> (String, u64) {
    use futures_util::StreamExt;
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    let mut seen = 0u64;
    while let Some(chunk) = blob.stream.next().await {
        let chunk = chunk.unwrap();
        let start = skip.saturating_sub(seen).min(chunk.len() as u64) as usize;
        hasher.update(&chunk[start..]);
        seen += chunk.len() as u64;
    }
    (hex::encode(hasher.finalize()), seen)
}

/// The size of the archive's config plus that of its image-volume form's config: the small
/// blobs a push uploads besides the layer (the form reuses the layer).
async fn config_size(client: &RegistryClient, repo: &RegistryRef, manifest_digest: &Digest) -> u64 {
    let read = |digest: Digest| async move {
        let raw = client
            .get_manifest(&repo.with_digest(&digest))
            .await
            .unwrap();
        serde_json::from_slice::<ImageManifest>(&raw.bytes).unwrap()
    };
    let manifest = read(manifest_digest.clone()).await;
    let form_digest = classcache_core::artifact::image_volume_of(&manifest)
        .expect("every archive names its image-volume form");
    let form = read(form_digest).await;
    assert_eq!(
        form.layers[0].digest, manifest.layers[0].digest,
        "the form reuses the layer"
    );
    manifest.config.size + form.config.size
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_blob_in_the_registry_is_detected_and_nothing_is_written() {
    let h = classcache_e2e::harness();
    let repo = repo("oci-corrupt");
    let client = client();
    let subject = push_subject_image(&client, &repo, &repo.repository).await;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("app.jsa");
    write_archive_like(&src, 8 * 1024 * 1024, 7 + std::process::id() as u64);
    let pushed = client
        .push_archive(
            &repo,
            archive_config("app", &subject.digest, ArchiveKind::DynamicCds, "corrupt"),
            &src,
            None,
        )
        .await
        .unwrap();

    let blob_file = registry_blob_file(&h.harness_dir, &pushed.layer.digest);
    let mut bytes =
        std::fs::read(&blob_file).unwrap_or_else(|e| panic!("{}: {e}", blob_file.display()));
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 16] {
        *b ^= 0xa5;
    }
    std::fs::write(&blob_file, &bytes).unwrap();

    let out = dir.path().join("out.jsa");
    let err = client
        .pull_archive(&repo.with_tag(&pushed.tag), None, &out)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RegistryError::Artifact(ArtifactError::DigestMismatch { what: "layer", expected, .. }) if *expected == pushed.layer.digest),
        "{err}"
    );
    let message = err.to_string();
    assert!(
        message.contains(pushed.manifest_digest.as_str())
            && message.contains("push the archive again"),
        "{message}"
    );
    assert!(
        !out.exists(),
        "a JVM must never see a partial or corrupted archive"
    );
    let leftovers = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".classcache")
        })
        .count();
    assert_eq!(leftovers, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_push_leaves_no_tag() {
    let repo = repo("oci-failed-push");
    let client = client();
    let subject = push_subject_image(&client, &repo, &repo.repository).await;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("app.jsa");
    write_archive_like(&src, 2 * 1024 * 1024, 99 + std::process::id() as u64);
    let config = archive_config("app", &subject.digest, ArchiveKind::DynamicCds, "failed");
    let prepared = classcache_oci::archive_file::prepare_archive(
        config.clone(),
        &src,
        subject.clone(),
        dir.path(),
    )
    .unwrap();
    // The packed layer changes on disk before the upload: the registry refuses the blob.
    let mut layer = std::fs::read(prepared.layer_file.path()).unwrap();
    layer[100] ^= 1;
    std::fs::write(prepared.layer_file.path(), &layer).unwrap();
    let err = client
        .push_prepared(&repo, &prepared, config.key.as_str())
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::Http { status: 400, .. }),
        "{err}"
    );
    assert!(
        client
            .head_manifest(&repo.with_tag(config.key.as_str()))
            .await
            .unwrap()
            .is_none(),
        "no tag after a failed push"
    );
    assert!(client
        .find_archives(&repo, &subject.digest)
        .await
        .unwrap()
        .is_empty());

    // An archive for an image that is not in the repository is refused before any upload.
    let other: Digest = format!("sha256:{}", "e".repeat(64)).parse().unwrap();
    let err = client
        .push_archive(
            &repo,
            archive_config("app", &other, ArchiveKind::DynamicCds, "x"),
            &src,
            None,
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("must be pushed to the repository of the image"),
        "{err}"
    );
}

/// Pushes `manifest` (with config bytes `config`) under `tag` and returns the pull error.
async fn pull_error(
    client: &RegistryClient,
    repo: &RegistryRef,
    tag: &str,
    config: &[u8],
    edit: impl Fn(&mut ImageManifest),
) -> String {
    let config_desc = Descriptor::new(
        media_types::ARCHIVE_CONFIG,
        classcache_core::digest::Digest::of(config),
        config.len() as u64,
    );
    client
        .push_blob_bytes(repo, &config_desc, config.to_vec().into())
        .await
        .unwrap();
    let layer = b"not really a layer".to_vec();
    let layer_desc = Descriptor::new(
        media_types::ARCHIVE_LAYER,
        classcache_core::digest::Digest::of(&layer),
        layer.len() as u64,
    );
    client
        .push_blob_bytes(repo, &layer_desc, layer.into())
        .await
        .unwrap();
    let mut manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(media_types::OCI_MANIFEST.into()),
        artifact_type: Some(media_types::ARCHIVE_ARTIFACT_TYPE.into()),
        config: config_desc,
        layers: vec![layer_desc],
        subject: None,
        annotations: Default::default(),
    };
    edit(&mut manifest);
    let body = serde_json::to_vec(&manifest).unwrap();
    client
        .put_manifest(&repo.with_tag(tag), media_types::OCI_MANIFEST, body.into())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let err = client
        .pull_archive(&repo.with_tag(tag), None, &dir.path().join("x"))
        .await
        .unwrap_err();
    err.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_artifacts_in_the_registry_are_named_with_the_fix() {
    let repo = repo("oci-bad");
    let client = client();
    let subject = push_subject_image(&client, &repo, &repo.repository).await;
    let good_config = serde_json::to_vec(&archive_config(
        "app",
        &subject.digest,
        ArchiveKind::DynamicCds,
        "bad",
    ))
    .unwrap();

    // A tag that is not an archive (the app image itself).
    let e = client
        .pull_archive(
            &repo.with_tag("app"),
            None,
            std::path::Path::new("/tmp/never"),
        )
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains(&format!("{}:app is not a classcache archive", repo)),
        "{e}"
    );
    // A tag that does not exist.
    let e = client
        .fetch_archive(&repo.with_tag("nope"), None)
        .await
        .unwrap_err();
    assert!(
        matches!(e, RegistryError::NotFound { .. })
            && e.to_string()
                .contains("check the repository, tag or digest"),
        "{e}"
    );
    // A reference with neither tag nor digest.
    let e = client.fetch_archive(&repo, None).await.unwrap_err();
    assert!(e.to_string().contains("add `:TAG`"), "{e}");

    // Unknown layer and config media types; wrong artifactType.
    let e = pull_error(&client, &repo, "unknown-layer", &good_config, |m| {
        m.layers[0].media_type = "application/x-tar".into()
    })
    .await;
    assert!(
        e.contains("layer has media type \"application/x-tar\"") && e.contains(":unknown-layer"),
        "{e}"
    );
    let e = pull_error(&client, &repo, "unknown-config", &good_config, |m| {
        m.config.media_type = "application/x-json".into()
    })
    .await;
    assert!(
        e.contains("config has media type \"application/x-json\""),
        "{e}"
    );
    let e = pull_error(&client, &repo, "other-type", &good_config, |m| {
        m.artifact_type = Some("application/vnd.example.sbom".into())
    })
    .await;
    assert!(
        e.contains(
            "is not a classcache archive (artifactType Some(\"application/vnd.example.sbom\")"
        ),
        "{e}"
    );
    // A config from a newer classcache.
    let mut newer: serde_json::Value = serde_json::from_slice(&good_config).unwrap();
    newer["schemaVersion"] = 7.into();
    let e = pull_error(
        &client,
        &repo,
        "newer",
        &serde_json::to_vec(&newer).unwrap(),
        |_| {},
    )
    .await;
    assert!(
        e.contains("config schema version 7 is newer") && e.contains("upgrade classcache"),
        "{e}"
    );
    // A config descriptor whose digest does not match the bytes stored under it.
    let e = pull_error(&client, &repo, "wrong-config-size", &good_config, |m| {
        m.config.size += 1
    })
    .await;
    assert!(
        e.contains("the blob has")
            && e.contains("bytes, expected")
            && e.contains("push the archive again"),
        "{e}"
    );
    // A layer that is not tar+gzip.
    let e = pull_error(&client, &repo, "bad-layer", &good_config, |_| {}).await;
    assert!(e.contains(":bad-layer") || e.contains("@sha256:"), "{e}");
    assert!(e.contains("the layer is not a tar+gzip stream"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_registry_is_named_with_the_fix() {
    let free_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let r: RegistryRef = format!("127.0.0.1:{free_port}/app:tag").parse().unwrap();
    let e = client().fetch_archive(&r, None).await.unwrap_err();
    assert!(matches!(e, RegistryError::Unreachable { .. }), "{e}");
    let m = e.to_string();
    assert!(
        m.contains(&format!("cannot reach registry 127.0.0.1:{free_port}"))
            && m.contains("check that the registry runs"),
        "{m}"
    );
}

/// A client with explicit Basic credentials for `registry`.
fn client_logged_in(registry: &str, username: &str, password: &str) -> RegistryClient {
    let credentials = Credentials::Basic {
        username: username.into(),
        password: password.into(),
    };
    RegistryClient::new(RegistryOptions {
        credentials: HashMap::from([(registry.to_string(), credentials)]),
        ..Default::default()
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_come_from_the_docker_config_and_refusals_name_docker_login() {
    // A registry with Basic auth that takes only alice:s3cret, and answers 404 once in.
    let addr = fake_server(|req| match req.authorization.as_deref() {
        Some("Basic YWxpY2U6czNjcmV0") => Answer::new(
            404,
            r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
        ),
        _ => Answer::new(401, "").header("WWW-Authenticate", r#"Basic realm="test""#),
    })
    .await;
    let r: RegistryRef = format!("{addr}/team/app:v1").parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("config.json");
    std::fs::write(
        &config_path,
        format!(r#"{{"auths":{{"{addr}":{{"auth":"YWxpY2U6czNjcmV0"}}}}}}"#),
    )
    .unwrap();
    let with_login = RegistryClient::new(RegistryOptions {
        docker_config: Some(config_path),
        ..Default::default()
    })
    .unwrap();
    let e = with_login.fetch_archive(&r, None).await.unwrap_err();
    assert!(
        matches!(e, RegistryError::NotFound { .. }),
        "the credentials were accepted, then 404: {e}"
    );

    let e = client().fetch_archive(&r, None).await.unwrap_err();
    assert!(matches!(e, RegistryError::Unauthorized { .. }), "{e}");
    assert!(
        e.to_string()
            .contains(&format!("run `docker login {addr}`")),
        "{e}"
    );
    let wrong = client_logged_in(&addr, "alice", "wrong");
    let e = wrong.fetch_archive(&r, None).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("without valid credentials (HTTP 401)")
            && e.to_string().contains("team/app"),
        "{e}"
    );

    // A token service (as Docker Hub, GHCR, Harbor use): Basic to the realm, Bearer after.
    let token_addr = std::sync::Arc::new(std::sync::OnceLock::<String>::new());
    let realm = token_addr.clone();
    let addr = fake_server(move |req| {
        if req.path.starts_with("/token") {
            assert!(
                req.path.contains("scope=repository%3Ateam%2Fapp%3Apull"),
                "{}",
                req.path
            );
            return match req.authorization.as_deref() {
                Some("Basic YWxpY2U6czNjcmV0") => Answer::new(200, r#"{"token":"tok-123"}"#),
                _ => Answer::new(401, "{}"),
            };
        }
        match req.authorization.as_deref() {
            Some("Bearer tok-123") => Answer::new(404, "{}"),
            _ => Answer::new(401, "").header(
                "WWW-Authenticate",
                &format!(
                    r#"Bearer realm="http://{}/token",service="fake""#,
                    realm.get().unwrap()
                ),
            ),
        }
    })
    .await;
    token_addr.set(addr.clone()).unwrap();
    let r: RegistryRef = format!("{addr}/team/app:v1").parse().unwrap();
    let with_token = client_logged_in(&addr, "alice", "s3cret");
    let e = with_token.fetch_archive(&r, None).await.unwrap_err();
    assert!(
        matches!(e, RegistryError::NotFound { .. }),
        "token obtained and used: {e}"
    );
    let e = client().fetch_archive(&r, None).await.unwrap_err();
    assert!(
        e.to_string().contains(&format!("docker login {addr}")),
        "{e}"
    );

    // 403: authenticated but not allowed.
    let addr =
        fake_server(|_| Answer::new(403, r#"{"errors":[{"code":"DENIED","message":"denied"}]}"#))
            .await;
    let r: RegistryRef = format!("{addr}/team/app:v1").parse().unwrap();
    let e = client().fetch_archive(&r, None).await.unwrap_err();
    assert!(
        matches!(e, RegistryError::Denied { .. }) && e.to_string().contains("HTTP 403"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_resolve_to_their_platform_manifests() {
    let repo = repo("oci-resolve");
    let client = client();
    let subject = push_subject_image(&client, &repo, &repo.repository).await;
    let single = client.resolve_image(&repo.with_tag("app")).await.unwrap();
    assert_eq!(single.digest, subject.digest);
    assert_eq!(single.manifests.len(), 1);
    assert_eq!(
        single.manifests[0]
            .platform
            .as_ref()
            .map(|p| p.architecture.as_str()),
        Some("amd64")
    );

    // An index over it and an arm64 sibling, plus an attestation entry that must be skipped.
    let arm = push_subject_image(&client, &repo, "arm64").await;
    let entry = |d: &Descriptor, arch: &str| {
        let mut d = d.clone();
        d.platform = Some(classcache_core::artifact::Platform {
            os: if arch == "unknown" {
                "unknown".into()
            } else {
                "linux".into()
            },
            architecture: arch.into(),
            variant: None,
        });
        d
    };
    let mut index = classcache_core::oci::ImageIndex::empty();
    index.manifests = vec![
        entry(&subject, "amd64"),
        entry(&arm, "arm64"),
        entry(&arm, "unknown"),
    ];
    let body = serde_json::to_vec(&index).unwrap();
    client
        .put_manifest(&repo.with_tag("multi"), media_types::OCI_INDEX, body.into())
        .await
        .unwrap();
    let multi = client.resolve_image(&repo.with_tag("multi")).await.unwrap();
    assert_eq!(multi.media_type, media_types::OCI_INDEX);
    assert_eq!(multi.manifests.len(), 2);
    let want = classcache_core::artifact::Platform {
        os: "linux".into(),
        architecture: "arm64".into(),
        variant: None,
    };
    assert_eq!(
        multi.for_platform(&want).map(|d| d.digest.as_str()),
        Some(arm.digest.as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_manifest_in_the_registry_is_detected() {
    let h = classcache_e2e::harness();
    let repo = repo("oci-tampered");
    let client = client();
    let subject = push_subject_image(&client, &repo, &repo.repository).await;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("app.jsa");
    write_archive_like(&src, 64 * 1024, 3 + std::process::id() as u64);
    let pushed = client
        .push_archive(
            &repo,
            archive_config(
                "app",
                &subject.digest,
                ArchiveKind::DynamicCds,
                &repo.repository,
            ),
            &src,
            None,
        )
        .await
        .unwrap();

    // Same length, still valid JSON, one character of an annotation changed.
    let manifest_file = registry_blob_file(&h.harness_dir, &pushed.manifest_digest);
    let text = std::fs::read_to_string(&manifest_file).unwrap();
    std::fs::write(
        &manifest_file,
        text.replacen("dynamic-cds", "dynamic-cdz", 1),
    )
    .unwrap();

    for reference in [
        repo.with_digest(&pushed.manifest_digest),
        repo.with_tag(&pushed.tag),
    ] {
        let e = client.fetch_archive(&reference, None).await.unwrap_err();
        assert!(
            matches!(&e, RegistryError::Artifact(ArtifactError::DigestMismatch { what: "manifest", expected, .. }) if *expected == pushed.manifest_digest),
            "{reference}: {e}"
        );
        assert!(e.to_string().contains(&reference.to_string()), "{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_of_per_platform_archives_hangs_off_a_multi_platform_image() {
    let repo = repo("oci-multi");
    let client = client();
    let amd = push_subject_image(&client, &repo, &format!("{}-amd64", repo.repository)).await;
    let arm = push_subject_image(&client, &repo, &format!("{}-arm64", repo.repository)).await;
    let with_platform = |d: &Descriptor, arch: &str| {
        let mut d = d.clone();
        d.platform = Some(Platform {
            os: "linux".into(),
            architecture: arch.into(),
            variant: None,
        });
        d
    };
    let mut image_index = classcache_core::oci::ImageIndex::empty();
    image_index.manifests = vec![with_platform(&amd, "amd64"), with_platform(&arm, "arm64")];
    let body = serde_json::to_vec(&image_index).unwrap();
    let image_index_desc = Descriptor::new(
        media_types::OCI_INDEX,
        classcache_core::digest::Digest::of(&body),
        body.len() as u64,
    );
    client
        .put_manifest(&repo.with_tag("multi"), media_types::OCI_INDEX, body.into())
        .await
        .unwrap();

    // One CI job per platform pushes its archive; then the index of them is pushed.
    let dir = tempfile::tempdir().unwrap();
    let mut entries = vec![];
    let mut sources = HashMap::new();
    for (subject, arch) in [(&amd, "amd64"), (&arm, "arm64")] {
        let src = dir.path().join(format!("{arch}.jsa"));
        write_archive_like(
            &src,
            256 * 1024,
            arch.len() as u64 + std::process::id() as u64,
        );
        let mut config = archive_config("app", &subject.digest, ArchiveKind::DynamicCds, arch);
        config.platform.architecture = arch.into();
        let pushed = client
            .push_archive(&repo, config, &src, None)
            .await
            .unwrap();
        entries.push(artifact::archive_index_entry(
            &pushed.manifest_descriptor,
            &pushed.config,
        ));
        sources.insert(arch, src);
    }
    let store = classcache_oci::store::ArchiveStore::open(
        &classcache_core::reference::ArchiveLocation::Registry(repo.clone()),
        &client,
        false,
    )
    .unwrap();
    let key: classcache_core::key::IndexKey = format!(
        "{}{}",
        classcache_core::key::INDEX_KEY_PREFIX,
        image_index_desc.digest.hex()
    )
    .parse()
    .unwrap();
    let index_digest = store
        .push_archive_index(&key, image_index_desc.clone(), entries)
        .await
        .unwrap();

    // Found from the image index digest, and tagged for people.
    let found = client
        .find_archives(&repo, &image_index_desc.digest)
        .await
        .unwrap();
    assert_eq!(
        found
            .iter()
            .map(|d| (d.media_type.as_str(), d.digest.as_str()))
            .collect::<Vec<_>>(),
        [(media_types::OCI_INDEX, index_digest.as_str())]
    );
    let tagged = client
        .head_manifest(&repo.with_tag(key.as_str()))
        .await
        .unwrap();
    assert_eq!(tagged.map(|d| d.digest), Some(index_digest.clone()));

    // Each platform gets its own archive from the one pinned digest.
    for arch in ["amd64", "arm64"] {
        let want = Platform {
            os: "linux".into(),
            architecture: arch.into(),
            variant: None,
        };
        let out = dir.path().join(format!("pulled-{arch}"));
        let pulled = client
            .pull_archive(&repo.with_digest(&index_digest), Some(&want), &out)
            .await
            .unwrap();
        assert_eq!(pulled.config.platform.architecture, arch);
        assert_eq!(sha256_file(&out), sha256_file(&sources[arch]));
    }
    let s390 = Platform {
        os: "linux".into(),
        architecture: "s390x".into(),
        variant: None,
    };
    let e = client
        .fetch_archive(&repo.with_digest(&index_digest), Some(&s390))
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("no archive for platform linux/s390x")
            && e.to_string().contains("linux/amd64, linux/arm64"),
        "{e}"
    );
}
