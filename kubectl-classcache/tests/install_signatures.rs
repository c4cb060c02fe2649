//! `install --require-signature --signature-key FILE…` through the real binary (`--dry-run=client`): keys in a ConfigMap, mounted, named in the fetcher's args; bad keys refused.
//! It renders only; it must not reach a cluster.

mod common;

use classcache_core::artifact::signature::SigningKey;
use classcache_core::fetcher::args::{SIGNATURE_KEYS_CONFIGMAP, SIGNATURE_KEYS_DIR};
use classcache_core::testing::{OTHER_SIGNING_KEY_PEM, SIGNING_KEY_PEM};
use common::*;
use k8s_openapi::api::{apps::v1::DaemonSet, core::v1::ConfigMap};

fn install(extra: &[&str]) -> (i32, String, String) {
    let mut args = vec![
        "install",
        "--dry-run=client",
        "-o",
        "yaml",
        "--allowed-registry",
        "registry.example/shop",
    ];
    args.extend(extra);
    run(&args, None, &[])
}

#[test]
fn install_require_signature_renders_the_keys_and_the_fetcher_flags() {
    let tmp = tempfile::tempdir().unwrap();
    let mut keys = vec![];
    for (name, pem) in [("ci", SIGNING_KEY_PEM), ("release", OTHER_SIGNING_KEY_PEM)] {
        let path = tmp.path().join(format!("{name}.pub"));
        let public = SigningKey::from_pem(pem, name).unwrap().public_key_pem();
        std::fs::write(&path, &public).unwrap();
        keys.push((path, public));
    }
    let (code, out, err) = install(&[
        "--require-signature",
        "--signature-key",
        keys[0].0.to_str().unwrap(),
        "--signature-key",
        keys[1].0.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let docs = parse_yaml(&out);
    let cm: ConfigMap = serde_json::from_value(
        docs.iter()
            .find(|d| d["kind"] == "ConfigMap")
            .expect("a ConfigMap with the keys")
            .clone(),
    )
    .unwrap();
    assert_eq!(cm.metadata.name.as_deref(), Some(SIGNATURE_KEYS_CONFIGMAP));
    let data = cm.data.unwrap();
    assert_eq!(data["key-1.pub"], keys[0].1);
    assert_eq!(data["key-2.pub"], keys[1].1);
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    let position = |k: &str| kinds.iter().position(|x| *x == k).unwrap();
    assert!(position("ConfigMap") < position("DaemonSet"), "{kinds:?}");

    let ds: DaemonSet = serde_json::from_value(
        docs.iter()
            .find(|d| d["kind"] == "DaemonSet")
            .unwrap()
            .clone(),
    )
    .unwrap();
    let pod = ds.spec.template.spec.unwrap();
    let fetcher = &pod.containers[0];
    let args = fetcher.args.clone().unwrap();
    let tail = &args[args.len() - 5..];
    assert_eq!(
        tail,
        [
            "--require-signature".to_string(),
            "--signature-key".into(),
            format!("{SIGNATURE_KEYS_DIR}/key-1.pub"),
            "--signature-key".into(),
            format!("{SIGNATURE_KEYS_DIR}/key-2.pub"),
        ]
    );
    let mount = fetcher
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.mount_path == SIGNATURE_KEYS_DIR)
        .expect("the keys are mounted where the args name them");
    assert_eq!(mount.read_only, Some(true));
    let volume = pod
        .volumes
        .unwrap()
        .into_iter()
        .find(|v| v.name == mount.name)
        .unwrap();
    assert_eq!(
        volume.config_map.unwrap().name,
        SIGNATURE_KEYS_CONFIGMAP.to_string()
    );

    // Without --require-signature: no ConfigMap and no signature flags.
    let (code, out, err) = install(&[]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("kind: ConfigMap") && !out.contains("--require-signature"));

    // A private key given as --signature-key: refused, named, with the fix; and the flags
    // need each other.
    let private = tmp.path().join("ci.key");
    std::fs::write(&private, SIGNING_KEY_PEM).unwrap();
    let (code, _, err) = install(&[
        "--require-signature",
        "--signature-key",
        private.to_str().unwrap(),
    ]);
    assert_ne!(code, 0);
    assert!(
        err.contains("ci.key") && err.contains("not a PUBLIC KEY") && err.contains("openssl"),
        "{err}"
    );
    let (code, _, err) = install(&["--require-signature"]);
    assert_ne!(code, 0);
    assert!(err.contains("--signature-key"), "{err}");
}
