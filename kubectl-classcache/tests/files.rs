//! File mode end to end: the plugin binary over the fixture manifests, archives in OCI layouts.

mod common;

use common::*;
use serde_json::Value;

const JVM_IMAGES: [(&str, &str); 10] = [
    (
        "deployment-petclinic.yaml",
        "registry.example/shop/petclinic:3.2.0",
    ),
    (
        "statefulset-orders.yaml",
        "registry.example/shop/orders:1.0.0",
    ),
    (
        "cronjob-reports.yaml",
        "registry.example/finance/reports:2024.11.3",
    ),
    (
        "job-migrate.yaml",
        "registry.example/shop/catalog-migrate:1.4.0",
    ),
    (
        "daemonset-logstash.yaml",
        "registry.example/ops/logstash:8.13.0",
    ),
    ("pod-debug.yaml", "registry.example/shop/petclinic:3.2.0"),
    (
        "rollout-checkout.yaml",
        "registry.example/shop/checkout:5.0.1",
    ),
    ("helm-catalog.yaml", "registry.example/shop/catalog:4.1.0"),
    ("list-get-output.yaml", "registry.example/shop/cart:2.0.0"),
    (
        "deployment-inventory.json",
        "registry.example/shop/inventory:1.0.0",
    ),
];

fn templates(docs: &[Value]) -> Vec<Value> {
    let mut out = vec![];
    for d in docs {
        let items = if d["kind"] == "List" {
            d["items"].as_array().unwrap().clone()
        } else {
            vec![d.clone()]
        };
        for o in items {
            if let Some(t) = classcache_core::podtemplate::pod_template(&o) {
                out.push(t.clone());
            }
        }
    }
    out
}

#[test]
fn every_fixture_enables_and_disables_back_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    for (i, (fixture, image)) in JVM_IMAGES.iter().enumerate() {
        let archive = make_archive(&tmp.path().join(format!("a{i}")), image, &[], &[]);
        let path = fixtures().join(fixture);
        let path = path.to_str().unwrap();
        let (code, enabled, stderr) = run(
            &["enable", "-f", path, "--archive", &archive, "--force"],
            None,
            &[],
        );
        assert_eq!(code, 0, "{fixture}: {stderr}");
        let original = fixture_docs(fixture);
        let enabled_docs = parse_yaml(&enabled);
        assert_eq!(
            enabled_docs.len(),
            original.len(),
            "{fixture}: every document is printed"
        );
        let pinned = archive_digest(&enabled_docs);
        assert!(
            pinned.is_some(),
            "{fixture}: an enabled pod template pins the archive\n{enabled}"
        );
        assert!(
            enabled.contains(&format!(
                "/classcache/{}",
                pinned.unwrap().replace(':', "-")
            )),
            "{fixture}"
        );
        for t in templates(&enabled_docs).iter().filter(|t| {
            t.pointer("/metadata/annotations/classcache.io~1archive")
                .is_some()
        }) {
            let inits = t["spec"]["initContainers"].as_array().unwrap();
            assert_eq!(
                inits.last().unwrap()["name"],
                "classcache-init",
                "{fixture}"
            );
        }

        let (code, disabled, stderr) = run(&["disable", "-f", "-"], Some(&enabled), &[]);
        assert_eq!(code, 0, "{fixture}: {stderr}");
        assert_eq!(
            serde_json::to_string(&parse_yaml(&disabled)).unwrap(),
            serde_json::to_string(&original).unwrap(),
            "{fixture}: disable(enable(x)) == x"
        );

        let (code, twice, _) = run(
            &["enable", "-f", "-", "--archive", &archive, "--force"],
            Some(&enabled),
            &[],
        );
        assert_eq!(code, 0);
        assert_eq!(
            parse_yaml(&twice),
            enabled_docs,
            "{fixture}: enable(enable(x)) == enable(x)"
        );
    }
}

fn archive_digest(docs: &[Value]) -> Option<String> {
    templates(docs).iter().find_map(|t| {
        let raw = t
            .pointer("/metadata/annotations/classcache.io~1archive")?
            .as_str()?;
        let map: serde_json::Map<String, Value> = serde_json::from_str(raw).ok()?;
        map.values()
            .next()?
            .as_str()?
            .rsplit_once('@')
            .map(|(_, d)| d.to_string())
    })
}

#[test]
fn sidecars_are_left_alone_and_user_options_are_kept_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = make_archive(
        tmp.path(),
        "registry.example/shop/catalog:4.1.0",
        &["java"],
        &["-jar", "/app/catalog.jar"],
    );
    let path = fixtures().join("helm-catalog.yaml");
    let (code, out, stderr) = run(
        &[
            "enable",
            "-f",
            path.to_str().unwrap(),
            "--archive",
            &archive,
        ],
        None,
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    let docs = parse_yaml(&out);
    let deploy = docs.iter().find(|d| d["kind"] == "Deployment").unwrap();
    let containers = deploy["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    let jto = |c: &Value| {
        c["env"]
            .as_array()
            .and_then(|e| e.iter().find(|e| e["name"] == "JAVA_TOOL_OPTIONS"))
            .map(|e| e["value"].as_str().unwrap().to_string())
    };
    assert!(jto(&containers[0])
        .unwrap()
        .starts_with("-Xss512k   -XX:+UseZGC -XX:SharedArchiveFile=/classcache/sha256-"));
    assert!(
        jto(&containers[1])
            .unwrap()
            .starts_with("-XX:SharedArchiveFile=/classcache/"),
        "same image, also a JVM"
    );
    assert_eq!(containers[2]["name"], "otel-collector");
    assert!(
        containers[2].get("env").is_none() && containers[2].get("volumeMounts").is_none(),
        "sidecar untouched"
    );
    assert!(
        stderr.contains("moving tag") && stderr.contains("--pin-image"),
        "{stderr}"
    );
    assert!(
        stderr.contains("catalog-indexer") && stderr.contains("trained with"),
        "args override warned: {stderr}"
    );
}

#[test]
fn copy_mode_and_pinning_and_selection() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = make_archive(
        tmp.path(),
        "registry.example/shop/petclinic:3.2.0",
        &[],
        &[],
    );
    let path = fixtures().join("deployment-petclinic.yaml");
    let args = [
        "enable",
        "-f",
        path.to_str().unwrap(),
        "--archive",
        &archive,
        "--mode",
        "copy",
        "--pin-image",
        "deploy/petclinic",
        "-c",
        "petclinic",
        "-o",
        "json",
    ];
    let (code, out, stderr) = run(&args, None, &[]);
    assert_eq!(code, 0, "{stderr}");
    let list: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list["kind"], "List");
    let deploy = &list["items"][1];
    let spec = &deploy["spec"]["template"]["spec"];
    assert_eq!(
        spec["volumes"][1],
        serde_json::json!({"name": "classcache", "emptyDir": {}})
    );
    assert_eq!(
        spec["initContainers"][0]["volumeMounts"][0]["readOnly"],
        false
    );
    let args: Vec<&str> = spec["initContainers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(&args[..1], ["init"]);
    assert!(args.windows(2).any(|w| w == ["--mode", "copy"]));
    assert_eq!(
        spec["containers"][0]["image"],
        format!(
            "registry.example/shop/petclinic:3.2.0@{}",
            image_digest("registry.example/shop/petclinic")
        )
    );
}

#[test]
fn bad_input_fails_with_the_object_and_the_fix_and_prints_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = make_archive(
        &tmp.path().join("a"),
        "registry.example/shop/catalog-migrate:1.4.0",
        &[],
        &[],
    );
    let job = fixtures().join("job-migrate.yaml");
    let job = job.to_str().unwrap();

    let (code, out, err) = run(&["enable", "-f", job, "--archive", &archive], None, &[]);
    assert_eq!(
        (code, out.as_str()),
        (1, ""),
        "valueFrom is refused without --force"
    );
    assert!(
        err.contains("Job/catalog-migrate") && err.contains("valueFrom") && err.contains("--force"),
        "{err}"
    );

    let (code, out, err) = run(
        &["enable", "-f", job, "--archive", &archive, "-c", "app"],
        None,
        &[],
    );
    assert_eq!((code, out.as_str()), (1, ""));
    assert!(
        err.contains("container \"app\" does not exist") && err.contains("\"migrate\""),
        "{err}"
    );

    // An archive in an OCI layout has no registry for a kubelet to pull from; auto needs a cluster.
    let (code, out, err) = run(
        &[
            "enable",
            "-f",
            job,
            "--archive",
            &archive,
            "--force",
            "--mode",
            "image-volume",
        ],
        None,
        &[],
    );
    assert_eq!((code, out.as_str()), (1, ""));
    assert!(
        err.contains("is in an OCI layout") && err.contains("--mode hostpath"),
        "{err}"
    );
    let (code, out, err) = run(
        &["enable", "-f", job, "--archive", &archive, "--mode", "auto"],
        None,
        &[],
    );
    assert_eq!((code, out.as_str()), (1, ""));
    assert!(err.contains("--mode auto asks the cluster"), "{err}");

    let (code, out, err) = run(
        &["enable", "-f", job, "--archive", &archive, "deploy/nope"],
        None,
        &[],
    );
    assert_eq!((code, out.as_str()), (1, ""));
    assert!(err.contains("deploy/nope is not in"), "{err}");

    let notes = tmp.path().join("notes.yaml");
    std::fs::write(&notes, "key: [unclosed\n").unwrap();
    let (code, out, err) = run(
        &[
            "enable",
            "-f",
            notes.to_str().unwrap(),
            "--archive",
            &archive,
        ],
        None,
        &[],
    );
    assert_eq!((code, out.as_str()), (1, ""));
    assert!(err.contains("notes.yaml is not valid YAML"), "{err}");

    let (code, _, err) = run(
        &[
            "enable",
            "-f",
            job,
            "--archive",
            &format!("oci:{}/missing:tag", tmp.path().display()),
        ],
        None,
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("--archive"), "{err}");

    let cm = tmp.path().join("cm.yaml");
    std::fs::write(
        &cm,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n",
    )
    .unwrap();
    let (code, _, err) = run(
        &[
            "enable",
            "-f",
            cm.to_str().unwrap(),
            "--archive",
            &archive,
            "configmap/settings",
        ],
        None,
        &[],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("ConfigMap/settings has no pod template"),
        "{err}"
    );

    let (code, _, err) = run(
        &[
            "enable",
            "-f",
            job,
            "--archive",
            &archive,
            "--dry-run=server",
        ],
        None,
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("--dry-run=server needs a cluster"), "{err}");
}

#[test]
fn a_directory_is_read_in_order_and_non_workloads_pass_through() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = make_archive(
        &tmp.path().join("a"),
        "registry.example/shop/petclinic:3.2.0",
        &[],
        &[],
    );
    let (code, out, stderr) = run(
        &[
            "enable",
            "-f",
            fixtures().to_str().unwrap(),
            "--archive",
            &archive,
            "--force",
        ],
        None,
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    let docs = parse_yaml(&out);
    let all: usize = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|f| fixture_docs(f.unwrap().file_name().to_str().unwrap()).len())
        .sum();
    assert_eq!(docs.len(), all);
    let enabled: Vec<&Value> = docs
        .iter()
        .filter(|d| {
            serde_json::to_string(d)
                .unwrap()
                .contains("classcache-init")
        })
        .collect();
    assert_eq!(
        enabled.len(),
        2,
        "the Deployment and the Pod run petclinic: {stderr}"
    );
}
