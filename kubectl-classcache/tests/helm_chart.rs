//! The Helm chart of scripts/helm-chart.sh against `install --dry-run=client -o yaml`: `helm lint`,
//! `helm template` giving the same objects for default and non-default settings, `helm package`.
//! It renders only; it must not reach a cluster. helm comes from the harness (tools/helm.sh).

mod common;

use classcache_core::podtemplate as names;
use classcache_core::testing::{OTHER_SIGNING_KEY_PEM, SIGNING_KEY_PEM};
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn helm() -> String {
    classcache_e2e::harness().tool(
        "CLASSCACHE_HELM",
        "it builds helm with tests/harness/tools/helm.sh",
    )
}

use classcache_e2e::project_version as version;

/// Runs scripts/helm-chart.sh into a new directory with this test's plugin binary, as
/// `helm-chart.sh DIR` or (scripts/release.sh's way) `helm-chart.sh --out DIR`.
fn generate_chart(out_flag: bool) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .arg(classcache_e2e::repo_root().join("scripts/helm-chart.sh"))
        .args(out_flag.then_some("--out"))
        .arg(dir.path())
        .env("KUBECTL_CLASSCACHE", bin())
        .env("CLASSCACHE_HELM", helm())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "helm-chart.sh failed:\n{stderr}");
    let tgz = dir.path().join(format!("classcache-{}.tgz", version()));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        tgz.to_str().unwrap(),
        "helm-chart.sh prints the package it made"
    );
    assert!(tgz.is_file(), "helm package wrote {}", tgz.display());
    (dir, tgz)
}

fn run_helm(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(helm())
        .args(args)
        .env(
            "HELM_CACHE_HOME",
            std::env::temp_dir().join("classcache-helm-test-cache"),
        )
        .env(
            "HELM_CONFIG_HOME",
            std::env::temp_dir().join("classcache-helm-test-config"),
        )
        .env(
            "HELM_DATA_HOME",
            std::env::temp_dir().join("classcache-helm-test-data"),
        )
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Objects in a stable order (kind, namespace, name): helm sorts by kind, install applies in
/// template order; neither order is part of what is compared.
fn normalised(mut docs: Vec<Value>) -> Vec<Value> {
    let key = |o: &Value| {
        (
            o["kind"].as_str().unwrap_or_default().to_string(),
            o["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            o["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        )
    };
    docs.sort_by_key(key);
    docs
}

fn helm_template(chart: &Path, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["template", "classcache", chart.to_str().unwrap()];
    all.extend(args);
    let (ok, out, err) = run_helm(&all);
    assert!(ok, "helm {all:?} failed:\n{err}");
    normalised(parse_yaml(&out))
}

fn install_dry_run(args: &[&str]) -> Vec<Value> {
    let mut all = vec!["install", "--dry-run=client", "-o", "yaml"];
    all.extend(args);
    let (code, out, err) = run(&all, None, &[]);
    assert_eq!(code, 0, "install {all:?} failed:\n{err}");
    normalised(parse_yaml(&out))
}

/// The first difference, readable: the object and both texts.
fn assert_same(helm: &[Value], install: &[Value], what: &str) {
    let kinds = |v: &[Value]| -> Vec<String> {
        v.iter()
            .map(|o| format!("{}/{}", o["kind"], o["metadata"]["name"]))
            .collect()
    };
    assert_eq!(kinds(helm), kinds(install), "{what}: not the same objects");
    for (h, i) in helm.iter().zip(install) {
        assert_eq!(
            h,
            i,
            "{what}: {}/{} differs\nhelm:    {}\ninstall: {}",
            i["kind"],
            i["metadata"]["name"],
            serde_json::to_string(h).unwrap(),
            serde_json::to_string(i).unwrap()
        );
    }
}

#[test]
fn the_chart_renders_what_install_renders_and_lints_and_packages() {
    let (dir, tgz) = generate_chart(true);
    let chart = dir.path().join("classcache");

    let chart_yaml = std::fs::read_to_string(chart.join("Chart.yaml")).unwrap();
    let version = version();
    assert!(
        chart_yaml.contains(&format!("\nversion: {version}\n")),
        "{chart_yaml}"
    );
    assert!(
        chart_yaml.contains(&format!("\nappVersion: \"{version}\"\n")),
        "{chart_yaml}"
    );

    // helm lint passes, on the chart's own defaults too.
    let (ok, out, err) = run_helm(&["lint", "--strict", chart.to_str().unwrap()]);
    assert!(
        ok && out.contains("0 chart(s) failed"),
        "helm lint:\n{out}{err}"
    );

    // Defaults: install needs only --allowed-registry; so does the chart.
    let one = "registry.example/shop";
    let helm_defaults = helm_template(&chart, &["--set", &format!("allowedRegistries={{{one}}}")]);
    let install_defaults = install_dry_run(&["--allowed-registry", one]);
    assert_same(&helm_defaults, &install_defaults, "defaults");
    let ds = install_defaults
        .iter()
        .find(|o| o["kind"] == "DaemonSet")
        .unwrap();
    assert_eq!(ds["metadata"]["namespace"], names::NAMESPACE);
    assert_eq!(
        ds["spec"]["template"]["spec"]["containers"][0]["image"],
        names::DEFAULT_FETCHER_IMAGE
    );
    // The packaged chart renders the same.
    assert_same(
        &helm_template(&tgz, &["--set", &format!("allowedRegistries={{{one}}}")]),
        &install_defaults,
        "defaults, from the package",
    );

    // Every setting away from its default, as install's flags and as the chart's values.
    let tmp = tempfile::tempdir().unwrap();
    let registry_config = tmp.path().join("config.json");
    std::fs::write(
        &registry_config,
        "{\n  \"auths\": {\n    \"registry.example:5000\": {\"auth\": \"dXNlcjpwYXNz\"}\n  }\n}\n",
    )
    .unwrap();
    let mut keys = vec![];
    for (name, pem) in [("ci", SIGNING_KEY_PEM), ("release", OTHER_SIGNING_KEY_PEM)] {
        let path = tmp.path().join(format!("{name}.pub"));
        let key = classcache_core::artifact::signature::SigningKey::from_pem(pem, name).unwrap();
        std::fs::write(&path, key.public_key_pem()).unwrap();
        keys.push(path.to_str().unwrap().to_string());
    }
    let registries = [
        "registry.example:5000/team/app",
        "[fd00::1]:5000",
        "ghcr.io/classcache",
    ];
    let values = tmp.path().join("values.json");
    std::fs::write(
        &values,
        serde_json::json!({
            "namespace": "cc-tenant",
            "image": "registry.example:5000/classcache-fetcher@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "storeDir": "/data/classcache/",
            "maxSize": "1.5Gi",
            "allowedRegistries": registries,
            "imagePullSecret": "pull-me",
            "requireSignature": true,
            "stats": true,
        })
        .to_string(),
    )
    .unwrap();
    let helm_custom = helm_template(
        &chart,
        &[
            "-f",
            values.to_str().unwrap(),
            "--set-file",
            &format!("registryConfig={}", registry_config.display()),
            "--set-file",
            &format!("signatureKeys[0]={}", keys[0]),
            "--set-file",
            &format!("signatureKeys[1]={}", keys[1]),
        ],
    );
    let mut install_args = vec![
        "-n",
        "cc-tenant",
        "--image",
        "registry.example:5000/classcache-fetcher@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "--store-dir",
        "/data/classcache/",
        "--max-size",
        "1.5Gi",
        "--image-pull-secret",
        "pull-me",
        "--registry-config",
        registry_config.to_str().unwrap(),
        "--stats",
        "--require-signature",
        "--signature-key",
        &keys[0],
        "--signature-key",
        &keys[1],
    ];
    for r in registries {
        install_args.extend(["--allowed-registry", r]);
    }
    let install_custom = install_dry_run(&install_args);
    assert_same(&helm_custom, &install_custom, "every setting changed");
    // The comparison saw the settings (not two renderings that ignore them alike).
    let kinds: Vec<&str> = install_custom
        .iter()
        .filter_map(|o| o["kind"].as_str())
        .collect();
    assert!(
        kinds.contains(&"Secret") && kinds.contains(&"ConfigMap"),
        "{kinds:?}"
    );
    let text = serde_json::to_string(&install_custom).unwrap();
    for wanted in [
        "cc-tenant",
        "/data/classcache\"",
        "1.5Gi",
        "pull-me",
        "dXNlcjpwYXNz",
        "--allowed-registry=registry.example:5000/team/app,[fd00::1]:5000,ghcr.io/classcache",
        "/etc/classcache/signature-keys/key-2.pub",
        "\"hostPID\":true",
    ] {
        assert!(text.contains(wanted), "{wanted} not in {text}");
    }

    // createNamespace=false (helm install --create-namespace): the same objects but the Namespace.
    let without_ns = helm_template(
        &chart,
        &[
            "--set",
            &format!("allowedRegistries={{{one}}}"),
            "--set",
            "createNamespace=false",
        ],
    );
    let mut expected = install_defaults.clone();
    expected.retain(|o| o["kind"] != "Namespace");
    assert_same(&without_ns, &expected, "createNamespace=false");
}

/// What install refuses, the chart refuses too, naming the value and the fix.
#[test]
fn the_chart_refuses_what_install_refuses() {
    let (dir, _) = generate_chart(false);
    let chart = dir.path().join("classcache");
    let chart = chart.to_str().unwrap();
    for (args, wanted) in [
        (vec![], "set allowedRegistries"),
        (
            vec![
                "--set",
                "allowedRegistries={r.example}",
                "--set",
                "requireSignature=true",
            ],
            "requireSignature needs signatureKeys",
        ),
        (
            vec![
                "--set",
                "allowedRegistries={r.example}",
                "--set",
                "signatureKeys={x}",
            ],
            "signatureKeys are only checked with requireSignature",
        ),
        (
            vec![
                "--set",
                "allowedRegistries={r.example}",
                "--set",
                "maxSize=10",
            ],
            "maxSize",
        ),
        (
            vec![
                "--set",
                "allowedRegistries={r.example}",
                "--set",
                "storeDir=relative",
            ],
            "storeDir",
        ),
    ] {
        let mut all = vec!["template", "classcache", chart];
        all.extend(&args);
        let (ok, _, err) = run_helm(&all);
        assert!(!ok, "helm {args:?} rendered");
        assert!(err.contains(wanted), "helm {args:?}: {err}");
    }
}
