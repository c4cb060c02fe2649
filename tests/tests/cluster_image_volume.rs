//! Image-volume delivery on the harness's real cluster (Kubernetes 1.35, containerd 2.2): with
//! no fetcher installed, `enable --mode auto` picks image volumes, the kubelet mounts the
//! archive, the JVMs (uid 65532) load from it and share its pages; a missing archive is refused
//! before patching, and one that vanishes later holds only the new pod while the old ones serve.

use classcache_core::artifact::ANNOTATION_IMAGE_VOLUME;
use classcache_e2e::apps::trained_example_app;
use classcache_e2e::cluster::{archive_mappings, cluster, exclusive, Cluster};
use classcache_e2e::step;
use serde_json::{json, Value};
use std::time::Duration;

const ROLLOUT: Duration = Duration::from_secs(300);

/// The app with `replicas` pods on `node`, its own JVM options in JAVA_TOOL_OPTIONS.
fn deployment(name: &str, namespace: &str, image: &str, node: &str, replicas: usize) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      nodeSelector: {{kubernetes.io/hostname: {node}}}
      terminationGracePeriodSeconds: 2
      securityContext: {{runAsNonRoot: true, runAsUser: 65532, seccompProfile: {{type: RuntimeDefault}}}}
      containers:
        - name: app
          image: {image}
          args: ["serve"]
          env:
            - {{name: JAVA_TOOL_OPTIONS, value: "-Xlog:class+load=info:stdout -Xmx128m"}}
          securityContext:
            allowPrivilegeEscalation: false
            capabilities: {{drop: ["ALL"]}}
          readinessProbe:
            exec:
              command: ["wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/ready"]
            periodSeconds: 1
"#
    )
}

fn template_of(c: &Cluster, namespace: &str, name: &str) -> Value {
    c.get_json(&["deployment", "-n", namespace, name])["spec"]["template"].clone()
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn image_volume_delivery_on_real_nodes() {
    let c = cluster();
    let _serial = exclusive();
    let image = trained_example_app(c.harness);
    let node = c.nodes[0].clone();
    c.delete_stale_test_namespaces();
    // No fetcher anywhere: this mode must not need one.
    let _ = c.plugin(&["uninstall", "--force"]);

    step("--mode auto picks image volumes on Kubernetes 1.35 with containerd 2.2");
    let ns = c.namespace("volume", &[]);
    c.apply(&deployment("shop", &ns.name, image, &node, 2));
    c.rollout_status(&ns.name, "deploy/shop", ROLLOUT);
    let before = template_of(c, &ns.name, "shop");
    let out = c.plugin(&["enable", "deploy/shop", "-n", &ns.name, "--mode", "auto"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("--mode auto: image-volume"),
        "{}",
        stderr_of(&out)
    );
    let enabled = template_of(c, &ns.name, "shop");
    assert!(
        enabled["spec"].get("initContainers").is_none(),
        "no init container: {enabled}"
    );
    let volume = &enabled["spec"]["volumes"][0];
    let form = volume["image"]["reference"]
        .as_str()
        .expect("an image volume")
        .to_string();
    let archive: Value = serde_json::from_str(
        enabled["metadata"]["annotations"]["classcache.io/archive"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let archive = archive["app"].as_str().unwrap().to_string();
    let named = c.registry_manifest(&archive)["annotations"][ANNOTATION_IMAGE_VOLUME]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        form.ends_with(&named),
        "the volume pins the archive's form {named}: {form}"
    );

    step("the kubelet mounts the archive; every JVM loads classes from it");
    c.rollout_status(&ns.name, "deploy/shop", ROLLOUT);
    let counts = c.classes_from_archive(&ns.name, "shop", "app");
    assert_eq!(counts.len(), 2, "{counts:?}");
    for (pod, pod_node, count) in &counts {
        assert_eq!(pod_node, &node);
        assert!(
            *count >= 500,
            "{pod} loaded only {count} classes from the archive\n{}",
            c.describe_namespace(&ns.name)
        );
    }
    eprintln!("classes from the archive per pod: {counts:?}");

    step("two pods on one node share the archive's pages");
    let pods: Vec<String> = counts.iter().map(|(p, _, _)| p.clone()).collect();
    let file = format!(
        "/{}",
        c.registry_manifest(&archive)["layers"][0]["annotations"]["org.opencontainers.image.title"]
            .as_str()
            .unwrap()
    );
    let (pss, rss, processes) = archive_mappings(&pods, &file);
    assert_eq!(processes, 2, "each JVM maps the archive {file}");
    let ratio = pss as f64 / rss.max(1) as f64;
    eprintln!("sum Pss / sum Rss of the archive over 2 pods: {ratio:.3} ({pss} / {rss} kB)");
    assert!(rss > 1000, "the archive is mapped: {rss} kB");
    assert!(
        ratio < 0.75,
        "unshared pages would give 1.0, fully shared 0.5: {ratio:.3}"
    );

    step("status says the kubelet delivers it");
    let status = c.plugin_ok(&["status", "deploy/shop", "-n", &ns.name]);
    assert!(status.contains("image volume"), "{status}");

    step("an archive without an image-volume form is refused, nothing patched");
    let (repository, _) = archive.rsplit_once('@').unwrap();
    let mut old_style = c.registry_manifest(&archive);
    old_style["annotations"]
        .as_object_mut()
        .unwrap()
        .remove(ANNOTATION_IMAGE_VOLUME);
    let old_style = c.put_registry_manifest(repository, "old-style", &old_style);
    let mut dangling = c.registry_manifest(&archive);
    dangling["annotations"][ANNOTATION_IMAGE_VOLUME] = json!(format!("sha256:{}", "0".repeat(64)));
    let dangling = c.put_registry_manifest(repository, "dangling-form", &dangling);
    let other = c.namespace("volume-refused", &[]);
    c.apply(&deployment("shop", &other.name, image, &node, 1));
    let untouched = template_of(c, &other.name, "shop");
    for (reference, expected) in [
        (&old_style, "has no image-volume form"),
        (&dangling, "is not in the registry"),
    ] {
        let out = c.plugin(&[
            "enable",
            "deploy/shop",
            "-n",
            &other.name,
            "--mode",
            "image-volume",
            "--archive",
            reference,
        ]);
        assert!(!out.status.success(), "{reference} must be refused");
        let err = stderr_of(&out);
        assert!(
            err.contains(expected) && err.contains("--mode hostpath"),
            "{err}"
        );
        assert_eq!(
            template_of(c, &other.name, "shop"),
            untouched,
            "nothing patched"
        );
    }
    let out = c.plugin(&[
        "enable",
        "deploy/shop",
        "-n",
        &other.name,
        "--mode",
        "auto",
        "--archive",
        &old_style,
        "--dry-run=client",
        "-o",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("hostpath instead of image-volume"),
        "{}",
        stderr_of(&out)
    );
    let planned: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        planned.to_string().contains("hostPath"),
        "--mode auto falls back to hostpath: {planned}"
    );

    step("an image volume that cannot be pulled holds only the new pod; the old pods keep serving");
    let index = enabled["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .position(|v| v["name"] == "classcache")
        .unwrap();
    c.kubectl_ok(&[
        "patch", "deployment", "shop", "-n", &ns.name, "--type", "json", "-p",
        &json!([{"op": "replace", "path": format!("/spec/template/spec/volumes/{index}/image/reference"),
                 "value": format!("{repository}@sha256:{}", "1".repeat(64))}]).to_string(),
    ]);
    c.wait_for(
        "a new pod waiting on its image volume",
        Duration::from_secs(120),
        || {
            let events = c.kubectl_ok(&["get", "events", "-n", &ns.name, "-o", "json"]);
            events.contains(&"1".repeat(64)).then_some(())
        },
        || c.describe_namespace(&ns.name),
    );
    let deploy = c.get_json(&["deployment", "-n", &ns.name, "shop"]);
    assert_eq!(
        deploy["status"]["readyReplicas"], 2,
        "the old pods still serve: {}",
        deploy["status"]
    );

    step("disable restores the template exactly and the rollout completes");
    c.plugin_ok(&["disable", "deploy/shop", "-n", &ns.name]);
    c.rollout_status(&ns.name, "deploy/shop", ROLLOUT);
    assert_eq!(
        template_of(c, &ns.name, "shop"),
        before,
        "disable must restore exactly"
    );
    for (pod, _, count) in c.classes_from_archive(&ns.name, "shop", "app") {
        assert_eq!(count, 0, "{pod} still uses the archive after disable");
    }
}
