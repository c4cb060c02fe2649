//! classcache's archive signatures (the client's `push_signature`) checked by cosign against the harness registry: accepted with the key, refused tampered or with another key.
//! It must only reach loopback: the harness registry.

mod oci_support;

use classcache_core::artifact::signature::{
    signature_layer, signature_manifest, signature_tag, PublicKey, SigningKey, SimpleSigning,
};
use classcache_core::digest::Digest;
use classcache_core::key::ArchiveKind;
use classcache_core::media_types;
use classcache_core::reference::RegistryRef;
use classcache_core::testing::{OTHER_SIGNING_KEY_PEM, SIGNING_KEY_PEM};
use classcache_e2e::cosign;
use classcache_oci::registry::{ReferrersUpdate, RegistryClient};
use oci_support::*;
use std::path::{Path, PathBuf};

/// Writes the public key of `pem` to `dir/<name>.pub`.
fn write_public_key(dir: &Path, name: &str, pem: &str) -> PathBuf {
    let path = dir.join(format!("{name}.pub"));
    std::fs::write(
        &path,
        SigningKey::from_pem(pem, name).unwrap().public_key_pem(),
    )
    .unwrap();
    path
}

/// Replaces the `.sig` tag of `signed` with one signature: `payload` with `signature`.
async fn put_tag_signature(
    client: &RegistryClient,
    repo: &RegistryRef,
    signed: &Digest,
    payload: &[u8],
    signature: &str,
) {
    let layer = signature_layer(payload, signature);
    let manifest = signature_manifest(std::slice::from_ref(&layer), None);
    client
        .push_blob_bytes(repo, &layer, payload.to_vec().into())
        .await
        .unwrap();
    client
        .push_blob_bytes(repo, &manifest.config, manifest.config_json.clone().into())
        .await
        .unwrap();
    client
        .put_manifest(
            &repo.with_tag(&signature_tag(signed)),
            media_types::OCI_MANIFEST,
            manifest.manifest_json.clone().into(),
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cosign_verifies_classcache_signatures_and_refuses_tampered_ones() {
    let h = classcache_e2e::harness();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let repo: RegistryRef = h
        .registry_ref(&classcache_e2e::unique_name("signed"))
        .parse()
        .unwrap();
    let client = client();
    let subject = push_subject_image(&client, &repo, &repo.repository).await;
    let src = dir.join("app.jsa");
    write_archive_like(&src, 64 * 1024, 7);
    let config = archive_config(
        &repo.with_tag("app").to_string(),
        &subject.digest,
        ArchiveKind::DynamicCds,
        "signed",
    );
    let pushed = client
        .push_archive(&repo, config, &src, None)
        .await
        .unwrap();
    let reference = repo.with_digest(&pushed.manifest_digest).to_string();
    let public = write_public_key(dir, "classcache", SIGNING_KEY_PEM);
    let other_public = write_public_key(dir, "other", OTHER_SIGNING_KEY_PEM);

    classcache_e2e::step("unsigned: cosign refuses");
    assert!(!cosign::verify(dir, &public, &reference, false)
        .status
        .success());

    classcache_e2e::step("signed by classcache: cosign accepts the .sig tag and the referrer");
    let key = SigningKey::from_pem(SIGNING_KEY_PEM, "classcache.key").unwrap();
    let signed = client
        .push_signature(&repo, &pushed.manifest_descriptor, &key)
        .await
        .unwrap();
    assert_eq!(signed.signed, pushed.manifest_digest);
    assert_eq!(
        signed.referrers,
        ReferrersUpdate::FallbackIndexUpdated,
        "distribution 2.8 has no referrers API"
    );
    for referrers in [false, true] {
        let out = cosign::verify(dir, &public, &reference, referrers);
        assert!(
            out.status.success(),
            "cosign verify (referrers: {referrers}) refused classcache's signature"
        );
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(said.contains(pushed.manifest_digest.as_str()), "{said}");
        assert!(
            !cosign::verify(dir, &other_public, &reference, referrers)
                .status
                .success(),
            "cosign accepted the signature with another key (referrers: {referrers})"
        );
    }

    classcache_e2e::step("tampered signature: cosign refuses");
    let payload = SimpleSigning::new(&repo.to_string(), &pushed.manifest_digest).to_bytes();
    let mut chars: Vec<char> = key.sign(&payload).chars().collect();
    let n = chars.len() / 2 + 8;
    chars[n] = if chars[n] == 'A' { 'B' } else { 'A' };
    let tampered: String = chars.into_iter().collect();
    let public_key = PublicKey::from_pem(&std::fs::read_to_string(&public).unwrap(), "k").unwrap();
    assert!(
        !public_key.verifies(&payload, &tampered),
        "the tampered signature must be invalid"
    );
    put_tag_signature(&client, &repo, &pushed.manifest_digest, &payload, &tampered).await;
    assert!(
        !cosign::verify(dir, &public, &reference, false)
            .status
            .success(),
        "cosign accepted a tampered signature"
    );

    classcache_e2e::step("a valid signature of another digest: cosign refuses");
    let elsewhere =
        SimpleSigning::new(&repo.to_string(), &Digest::of(b"another archive")).to_bytes();
    put_tag_signature(
        &client,
        &repo,
        &pushed.manifest_digest,
        &elsewhere,
        &key.sign(&elsewhere),
    )
    .await;
    assert!(
        !cosign::verify(dir, &public, &reference, false)
            .status
            .success(),
        "cosign accepted a signature whose payload names another digest"
    );
}
