//! The fetcher's `--require-signature` against signatures made by cosign (and by classcache, as referrers): trusted ones publish; unsigned, other-key, other-digest ones are refused, clearly.
//! It must only reach loopback: the harness registry and the fetchers it starts.

mod support;

use classcache_core::artifact::signature::{
    signature_layer, signature_layers, signature_manifest, signature_tag, SigningKey,
    SimpleSigning, ANNOTATION_SIGNATURE,
};
use classcache_core::digest::Digest;
use classcache_core::fetcher::http as api;
use classcache_core::media_types;
use classcache_core::reference::RegistryRef;
use classcache_core::testing::{OTHER_SIGNING_KEY_PEM, SIGNING_KEY_PEM};
use classcache_e2e::cosign;
use classcache_oci::registry::RegistryClient;
use support::local::{get, init_fail_closed, pinned_reference, LocalFetcher};
use support::{push_archive, Fixture};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn repo_of(fixture: &Fixture) -> RegistryRef {
    let h = classcache_e2e::harness();
    format!("{}/{}", h.registry, fixture.repository)
        .parse()
        .unwrap()
}

/// Replaces the `.sig` tag of `fixture`'s archive with one signature: `payload`, `signature`.
fn put_tag_signature(fixture: &Fixture, payload: &[u8], signature: &str) {
    let client = RegistryClient::with_defaults().unwrap();
    let repo = repo_of(fixture);
    let layer = signature_layer(payload, signature);
    let manifest = signature_manifest(std::slice::from_ref(&layer), None);
    let pinned: Digest = fixture.pinned.parse().unwrap();
    rt().block_on(async {
        client
            .push_blob_bytes(&repo, &layer, payload.to_vec().into())
            .await?;
        client
            .push_blob_bytes(&repo, &manifest.config, manifest.config_json.clone().into())
            .await?;
        client
            .put_manifest(
                &repo.with_tag(&signature_tag(&pinned)),
                media_types::OCI_MANIFEST,
                manifest.manifest_json.clone().into(),
            )
            .await
    })
    .unwrap();
}

/// Asks `node` for the archive, as the init container does (hostpath mode, fail closed):
/// (it succeeded, what it printed).
fn init_request(node: &LocalFetcher, fixture: &Fixture) -> (bool, String) {
    let out = init_fail_closed(fixture, node, "hostpath", &node.store.join("published"));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn published_count(node: &LocalFetcher) -> usize {
    std::fs::read_dir(node.store.join("published"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn unsigned_errors(node: &LocalFetcher) -> f64 {
    let (_, text) = get(&format!("{}{}", node.url, api::routes::METRICS)).unwrap();
    text.lines()
        .find(|l| l.starts_with("classcache_fetcher_errors_total{kind=\"unsigned\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no unsigned error counter in\n{text}"))
}

#[test]
fn the_fetcher_publishes_only_what_cosign_signed_with_a_trusted_key() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let out = cosign::run(dir, &["generate-key-pair"]);
    assert!(out.status.success(), "cosign generate-key-pair failed");
    let cosign_pub = dir.join("cosign.pub");
    let cosign_sign = |fixture: &Fixture| {
        let out = cosign::sign(dir, &dir.join("cosign.key"), &pinned_reference(fixture));
        assert!(out.status.success(), "cosign sign failed");
    };

    let signed = push_archive(30_000);
    let unsigned = push_archive(31_000);
    let other_key = push_archive(32_000);
    let other_digest = push_archive(33_000);
    cosign_sign(&signed);
    // Signed, and well formed, but by a key the fetcher does not trust.
    let other = SigningKey::from_pem(OTHER_SIGNING_KEY_PEM, "other").unwrap();
    let payload = SimpleSigning::new(
        &repo_of(&other_key).to_string(),
        &other_key.pinned.parse().unwrap(),
    )
    .to_bytes();
    put_tag_signature(&other_key, &payload, &other.sign(&payload));
    // cosign's own signature of `signed`, copied to `other_digest`'s .sig tag: it verifies with
    // the trusted key, but its payload names another digest.
    let client = RegistryClient::with_defaults().unwrap();
    let (cosign_payload, cosign_signature) = rt().block_on(async {
        let pinned: Digest = signed.pinned.parse().unwrap();
        let tagged = repo_of(&signed).with_tag(&signature_tag(&pinned));
        let manifest = client.get_manifest(&tagged).await.unwrap();
        let layer = signature_layers(&manifest.bytes).unwrap()[0].clone();
        let payload = client
            .get_blob_bytes(&repo_of(&signed), &layer)
            .await
            .unwrap();
        (
            payload,
            layer.annotation(ANNOTATION_SIGNATURE).unwrap().to_string(),
        )
    });
    put_tag_signature(&other_digest, &cosign_payload, &cosign_signature);

    // Signed by classcache (as `classcache-build --sign-key`) with a second trusted key, then its
    // `.sig` tag emptied: only the referrer form is left for the fetcher to find.
    let referrer_only = push_archive(34_000);
    let classcache_key = SigningKey::from_pem(SIGNING_KEY_PEM, "classcache").unwrap();
    let classcache_pub = dir.join("classcache.pub");
    std::fs::write(&classcache_pub, classcache_key.public_key_pem()).unwrap();
    rt().block_on(async {
        let repo = repo_of(&referrer_only);
        let pinned: Digest = referrer_only.pinned.parse().unwrap();
        let signed = client
            .head_manifest(&repo.with_digest(&pinned))
            .await
            .unwrap()
            .unwrap();
        client
            .push_signature(&repo, &signed, &classcache_key)
            .await
            .unwrap();
        let empty = signature_manifest(&[], None);
        client
            .push_blob_bytes(&repo, &empty.config, empty.config_json.clone().into())
            .await
            .unwrap();
        client
            .put_manifest(
                &repo.with_tag(&signature_tag(&pinned)),
                media_types::OCI_MANIFEST,
                empty.manifest_json.clone().into(),
            )
            .await
            .unwrap();
    });

    let store = dir.join("store");
    // Published by a fetcher without the policy, in the same store: after a restart with
    // --require-signature, it is not served unsigned.
    let published_before = push_archive(35_000);
    let before = LocalFetcher::start(&store, &dir.join("before.log"), &[]);
    let (ok, output) = init_request(&before, &published_before);
    assert!(ok, "{output}");
    before.kill();

    let node = LocalFetcher::start(
        &store,
        &dir.join("fetcher.log"),
        &[
            "--require-signature",
            "--signature-key",
            cosign_pub.to_str().unwrap(),
            "--signature-key",
            classcache_pub.to_str().unwrap(),
        ],
    );

    for (what, fixture, says) in [
        ("unsigned", &unsigned, "it has no signature"),
        (
            "unsigned, published before the policy",
            &published_before,
            "it has no signature",
        ),
        (
            "signed by another key",
            &other_key,
            "verifies against none of the keys",
        ),
        (
            "signature naming another digest",
            &other_digest,
            &*format!("it signs {}", signed.pinned),
        ),
    ] {
        classcache_e2e::step(what);
        let before = unsigned_errors(&node);
        let (ok, output) = init_request(&node, fixture);
        eprintln!("{what}: the init container said:\n{output}");
        assert!(
            output.contains("HTTP 403"),
            "{what}: a refusal is 403:\n{output}"
        );
        assert!(!ok, "{what}: the init container got the archive:\n{output}");
        for expected in [
            fixture.pinned.as_str(),
            "requires signed archives",
            "Fix: sign exactly this digest",
            says,
        ] {
            assert!(
                output.contains(expected),
                "{what}: the init container's message lacks {expected:?}:\n{output}"
            );
            assert!(
                node.log_text().contains(expected),
                "{what}: the log lacks {expected:?}"
            );
        }
        assert_eq!(
            published_count(&node),
            1,
            "{what}: something was published (beside the archive from before the policy)"
        );
        assert_eq!(
            unsigned_errors(&node),
            before + 1.0,
            "{what}: the metric did not count it"
        );
    }

    classcache_e2e::step(
        "signed by cosign with the trusted key: published, and the node still serves",
    );
    let (ok, output) = init_request(&node, &signed);
    assert!(
        ok,
        "the cosign-signed archive was refused:\n{output}\n{}",
        node.log_text()
    );
    assert_eq!(published_count(&node), 2);
    let (status, _) = get(&format!(
        "{}{}",
        node.url,
        api::archive_file_path(&signed.pinned)
    ))
    .unwrap();
    assert_eq!(status, 200);

    classcache_e2e::step(
        "signed by classcache with the second key, found as a referrer: published",
    );
    let (ok, output) = init_request(&node, &referrer_only);
    assert!(
        ok,
        "the referrer-signed archive was refused:\n{output}\n{}",
        node.log_text()
    );
    assert_eq!(published_count(&node), 3);
}
