//! Live mode end to end: the plugin binary against the harness's real Kubernetes v1.35 API
//! server (tests/harness/up.sh starts it), each test in namespaces of its own; and, for what a
//! real server cannot be made to do at a chosen moment, against the in-process fake.

mod common;
mod fake_api;

use classcache_core::podtemplate;
use common::real::{exclusive_lock, real, shared_lock, Real};
use common::*;
use fake_api::*;
use serde_json::{json, Value};
use std::time::Duration;

fn template(obj: &Value) -> Value {
    obj["spec"]["template"].clone()
}

/// The petclinic Deployment of the fixture, in namespace `ns`, with `replicas`.
fn petclinic(ns: &str, replicas: u64) -> Value {
    let mut deploy = fixture_docs("deployment-petclinic.yaml")
        .into_iter()
        .find(|d| d["kind"] == "Deployment")
        .unwrap();
    deploy["metadata"]["namespace"] = json!(ns);
    deploy["spec"]["replicas"] = json!(replicas);
    deploy
}

/// The fixture's petclinic archive pushed to `registry` (the harness registry under some name);
/// its pinned reference.
fn push_petclinic_archive(registry: &str) -> String {
    let repo: classcache_core::reference::RegistryRef = format!(
        "{registry}/{}",
        classcache_e2e::unique_name("petclinic-archive")
    )
    .parse()
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("app.jsa");
    std::fs::write(&file, b"archive bytes".repeat(100)).unwrap();
    let image_digest = classcache_core::digest::Digest::of(b"petclinic image");
    let config = archive_config(
        "registry.example/shop/petclinic:3.2.0",
        image_digest.as_str(),
        &[],
        &[],
    );
    let subject = classcache_core::oci::Descriptor::new(
        classcache_core::media_types::OCI_MANIFEST,
        image_digest,
        500,
    );
    let pushed = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async {
            classcache_oci::registry::RegistryClient::with_defaults()?
                .push_archive(&repo, config, &file, Some(subject))
                .await
        })
        .unwrap();
    format!("{repo}@{}", pushed.manifest_digest)
}

/// An archive trained on the fixture's petclinic image, in an OCI layout under `dir`.
fn petclinic_archive(dir: &std::path::Path) -> String {
    make_archive(
        &dir.join("petclinic"),
        "registry.example/shop/petclinic:3.2.0",
        &[],
        &[],
    )
}

fn managers(obj: &Value) -> Vec<(String, String)> {
    obj["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            (
                f["manager"].as_str().unwrap_or_default().to_string(),
                f["operation"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// What a write of the plugin would change: spec, labels, annotations and the field managers
/// (not status and resourceVersion, which the Deployment controller updates on its own).
fn stored_part(obj: &Value) -> Value {
    let managers: Vec<Value> = managers(obj)
        .into_iter()
        .map(|(m, op)| json!([m, op]))
        .collect();
    json!({
        "labels": obj["metadata"]["labels"],
        "annotations": obj["metadata"]["annotations"],
        "managers": managers,
        "spec": obj["spec"],
    })
}

/// An object seeded with kubectl, as the API server stored it (a Deployment once its
/// controller has observed it).
fn seed(c: &Real, obj: &Value) -> Value {
    c.apply(&obj.to_string());
    let what = format!(
        "{}/{}",
        obj["kind"].as_str().unwrap().to_lowercase(),
        obj["metadata"]["name"].as_str().unwrap()
    );
    let ns = obj["metadata"]["namespace"].as_str().unwrap();
    if obj["kind"] != "Deployment" {
        return c.get(&[&what, "-n", ns]);
    }
    // Once the controller has seen it (revision annotation, status), it stays as it is.
    c.wait_for(
        &format!("the controller to observe {what}"),
        Duration::from_secs(60),
        || {
            let stored = c.get(&[&what, "-n", ns]);
            (stored["status"]["observedGeneration"] == stored["metadata"]["generation"])
                .then_some(stored)
        },
    )
}

#[test]
fn enable_writes_with_the_field_manager_and_disable_restores_exactly() {
    let c = real();
    let _lock = shared_lock();
    let ns = c.namespace("plugin-enable");
    let tmp = tempfile::tempdir().unwrap();
    let archive = petclinic_archive(tmp.path());
    let original = seed(c, &petclinic(&ns.name, 0));
    let deployment = || c.get(&["deploy/petclinic", "-n", &ns.name]);

    let (code, out, err) = c.plugin(&[
        "enable",
        "deploy/petclinic",
        "-n",
        &ns.name,
        "--archive",
        &archive,
        "-o",
        "yaml",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!(
            "deployment.apps/petclinic in namespace {} enabled",
            ns.name
        )),
        "{err}"
    );
    let stored = deployment();
    assert_eq!(
        stored["spec"]["template"]["spec"]["initContainers"][0]["name"],
        "classcache-init"
    );
    assert!(
        managers(&stored).contains(&("classcache".into(), "Update".into())),
        "the API server records the field manager: {:?}",
        managers(&stored)
    );
    let printed = parse_yaml(&out);
    assert_eq!(
        template(&printed[0]),
        template(&stored),
        "-o yaml prints what the server stored"
    );
    assert!(printed[0]["metadata"].get("managedFields").is_none());

    let (code, _, err) = c.plugin(&[
        "enable",
        "deploy/petclinic",
        "-n",
        &ns.name,
        "--archive",
        &archive,
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("unchanged"), "{err}");
    assert_eq!(
        template(&deployment()),
        template(&stored),
        "enable twice == once"
    );

    let (code, _, err) = c.plugin(&["disable", "deployment", "petclinic", "-n", &ns.name]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        template(&deployment()),
        template(&original),
        "disable restores the template exactly as the server stored it"
    );
    let (code, _, err) = c.plugin(&["disable", "deploy/petclinic", "-n", &ns.name]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("unchanged"), "{err}");
}

#[test]
fn dry_runs_store_nothing() {
    let c = real();
    let _lock = shared_lock();
    let ns = c.namespace("plugin-dryrun");
    let tmp = tempfile::tempdir().unwrap();
    let archive = petclinic_archive(tmp.path());
    let original = seed(c, &petclinic(&ns.name, 0));
    let deployment = || c.get(&["deploy/petclinic", "-n", &ns.name]);
    let enable = |extra: &[&str]| {
        let mut args = vec![
            "enable",
            "deploy/petclinic",
            "-n",
            &ns.name,
            "--archive",
            &archive,
        ];
        args.extend(extra);
        c.plugin(&args)
    };

    let (code, out, err) = enable(&["--dry-run=server", "-o", "json"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("(server dry run)"), "{err}");
    let shown: Value = serde_json::from_str(&out).unwrap();
    let init = &shown["spec"]["template"]["spec"]["initContainers"][0];
    assert_eq!(init["name"], "classcache-init");
    assert_eq!(
        init["terminationMessagePath"], "/dev/termination-log",
        "the real API server defaulted (so processed) the object: {init:#}"
    );
    assert_eq!(
        stored_part(&deployment()),
        stored_part(&original),
        "a server dry run stores nothing"
    );

    let (code, out, err) = enable(&["--dry-run=client", "-o", "yaml"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("(dry run)"), "{err}");
    let shown = parse_yaml(&out).remove(0);
    let init = &shown["spec"]["template"]["spec"]["initContainers"][0];
    assert_eq!(init["name"], "classcache-init");
    assert!(
        init.get("terminationMessagePath").is_none(),
        "a client dry run never reaches the server: {init:#}"
    );
    assert_eq!(
        stored_part(&deployment()),
        stored_part(&original),
        "a client dry run stores nothing"
    );

    // A hostPath with `..` (which the API server would refuse too) is refused before anything
    // is sent, naming the flag and the fix.
    let (code, _, err) = enable(&["--dry-run=server", "--store-dir", "/var/lib/../classcache"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("--store-dir")
            && err.contains("plain path")
            && err.contains("/var/lib/classcache"),
        "{err}"
    );
    assert_eq!(stored_part(&deployment()), stored_part(&original));
}

#[test]
fn errors_name_the_object_and_the_fix() {
    let c = real();
    let _lock = shared_lock();
    c.crds();
    let ns = c.namespace("plugin-errors");
    let tmp = tempfile::tempdir().unwrap();
    let archive = petclinic_archive(tmp.path());
    let original = seed(c, &petclinic(&ns.name, 0));
    let enable = |target: &str, extra: &[&str]| {
        let mut args = vec!["enable", target, "-n", &ns.name, "--archive", &archive];
        args.extend(extra);
        c.plugin(&args)
    };

    let (code, _, err) = enable("deploy/nope", &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!(
            "deployment.apps/nope in namespace {} not found",
            ns.name
        )) && err.contains("-n"),
        "{err}"
    );

    // RBAC of the real server: a service account that may read Deployments but not update them.
    c.apply(
        &json!({"apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "reader", "namespace": ns.name}})
        .to_string(),
    );
    c.apply(
        &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "reader", "namespace": ns.name},
        "rules": [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list"]}]})
        .to_string(),
    );
    c.apply(
        &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "reader", "namespace": ns.name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": ns.name}]})
        .to_string(),
    );
    let reader = c.service_account_kubeconfig(&ns.name, "reader", tmp.path());
    let reader = reader.display().to_string();
    let (code, _, err) = enable("deploy/petclinic", &["--kubeconfig", &reader]);
    assert_eq!(code, 1);
    assert!(
        err.contains("forbids update") && err.contains("RBAC"),
        "{err}"
    );
    assert_eq!(
        stored_part(&c.get(&["deploy/petclinic", "-n", &ns.name])),
        stored_part(&original),
        "left exactly as it was"
    );

    // A context whose server does not answer, merged from a second kubeconfig file.
    let down = tmp.path().join("down.kubeconfig");
    std::fs::write(
        &down,
        json!({"apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "down", "cluster": {"server": "https://127.0.0.1:1"}}],
            "users": [{"name": "down", "user": {"token": "x"}}],
            "contexts": [{"name": "down", "context": {"cluster": "down", "user": "down"}}]})
        .to_string(),
    )
    .unwrap();
    let both = std::env::join_paths([c.kubeconfig.as_path(), down.as_path()]).unwrap();
    let both = both.to_str().unwrap();
    let (code, _, err) = enable(
        "deploy/petclinic",
        &["--kubeconfig", both, "--context", "down"],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("cannot reach the cluster at https://127.0.0.1:1"),
        "{err}"
    );

    let (code, _, err) = enable("gizmos/x", &[]);
    assert_eq!(code, 1);
    assert!(err.contains("no resource type \"gizmos\""), "{err}");

    c.apply(
        &json!({"apiVersion": "example.com/v1alpha1", "kind": "Widget",
        "metadata": {"name": "w", "namespace": ns.name}, "spec": {"size": 3}})
        .to_string(),
    );
    let (code, _, err) = enable("widgets/w", &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!(
            "Widget/w in namespace {} has no pod template",
            ns.name
        )),
        "{err}"
    );

    // A Pod that the scheduler never places (no node has the label), so nothing runs.
    let mut pod = fixture_docs("pod-debug.yaml").remove(0);
    pod["metadata"]["namespace"] = json!(ns.name);
    pod["spec"]["nodeSelector"] = json!({"classcache-test/no-such-node": "true"});
    c.apply(&pod.to_string());
    let (code, _, err) = enable("pod/petclinic-debug", &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains("running Pod's containers cannot be changed")
            && err.contains("ownerReferences"),
        "{err}"
    );

    let (code, _, err) = enable("deploy/petclinic", &["-c", "sidecar"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("container \"sidecar\" does not exist"),
        "{err}"
    );
    assert_eq!(
        stored_part(&c.get(&["deploy/petclinic", "-n", &ns.name])),
        stored_part(&original)
    );
}

#[test]
fn selectors_namespaces_and_custom_resources() {
    let c = real();
    let _lock = shared_lock();
    c.crds();
    let shop = c.namespace("plugin-shop");
    let staging = c.namespace("plugin-staging");
    let tmp = tempfile::tempdir().unwrap();
    let archive = petclinic_archive(tmp.path());
    // A label value only this test uses, so that -A cannot reach other tests' Deployments.
    let part_of = shop.name.clone();
    let mut deploy = petclinic(&shop.name, 0);
    deploy["metadata"]["labels"]["app.kubernetes.io/part-of"] = json!(part_of);
    seed(c, &deploy);
    let mut other = petclinic(&staging.name, 0);
    other["metadata"]["labels"]["app.kubernetes.io/part-of"] = json!(format!("{part_of}-other"));
    let other = seed(c, &other);
    let selector = format!("app.kubernetes.io/part-of={part_of}");

    let (code, _, err) = c.plugin(&[
        "enable",
        "deploy",
        "-l",
        &selector,
        "-n",
        &staging.name,
        "--archive",
        &archive,
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!(
            "no deployments matched in namespace {}",
            staging.name
        )),
        "{err}"
    );

    let (code, _, err) = c.plugin(&[
        "enable",
        "deploy",
        "-l",
        &selector,
        "-A",
        "--archive",
        &archive,
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        c.get(&["deploy/petclinic", "-n", &shop.name])["spec"]["template"]["spec"]
            .get("initContainers")
            .is_some()
    );
    assert_eq!(
        stored_part(&c.get(&["deploy/petclinic", "-n", &staging.name])),
        stored_part(&other),
        "the selector left it alone"
    );

    let mut rollout = fixture_docs("rollout-checkout.yaml").remove(0);
    rollout["metadata"]["namespace"] = json!(shop.name);
    c.apply(&rollout.to_string());
    let checkout = make_archive(
        &tmp.path().join("checkout"),
        "registry.example/shop/checkout:5.0.1",
        &[],
        &[],
    );
    let (code, _, err) = c.plugin(&[
        "enable",
        "rollouts.argoproj.io",
        "checkout",
        "--archive",
        &checkout,
        "-n",
        &shop.name,
    ]);
    assert_eq!(code, 0, "{err}");
    let stored = c.get(&["rollouts.argoproj.io/checkout", "-n", &shop.name]);
    let spec = &stored["spec"]["template"]["spec"];
    assert_eq!(
        spec["initContainers"][1]["name"], "classcache-init",
        "after the user's own init container"
    );
    assert!(spec["containers"][0]["env"][0]["value"].as_str().unwrap().starts_with(
        "-javaagent:/otel/opentelemetry-javaagent.jar -Dotel.service.name=checkout -XX:SharedArchiveFile="
    ));
    assert!(managers(&stored).contains(&("classcache".into(), "Update".into())));
}

/// `status` against real pods: the Deployment's pods, placed by the real scheduler, and two
/// stand-in fetchers (busybox httpd, one per node, in a namespace of their own, reached through
/// the real API server's pod proxy), one of which has published the archive. The fetcher
/// DaemonSet itself is cluster-wide and covered by tests/tests/cluster_pipeline.rs.
#[test]
fn status_shows_archive_nodes_and_pods() {
    let c = real();
    let _lock = shared_lock();
    let ns = c.namespace("plugin-status");
    let fetchers = c.namespace("plugin-fetchers");
    let tmp = tempfile::tempdir().unwrap();
    let archive = petclinic_archive(tmp.path());
    seed(c, &petclinic(&ns.name, 0));
    let (code, _, err) = c.plugin(&[
        "enable",
        "deploy/petclinic",
        "-n",
        &ns.name,
        "--archive",
        &archive,
    ]);
    assert_eq!(code, 0, "{err}");
    let enabled = c.get(&["deploy/petclinic", "-n", &ns.name]);
    let annotation = enabled["spec"]["template"]["metadata"]["annotations"]
        ["classcache.io/archive"]
        .as_str()
        .unwrap()
        .to_string();
    let pinned = serde_json::from_str::<Value>(&annotation).unwrap()["petclinic"]
        .as_str()
        .unwrap()
        .to_string();
    let digest = pinned.rsplit_once('@').unwrap().1.to_string();

    // The Deployment's pods carry the archive annotation; they need not run (their images do
    // not exist), only exist on nodes. Its service account must exist for pods to be created.
    c.kubectl_ok(&["create", "serviceaccount", "petclinic", "-n", &ns.name]);
    c.kubectl_ok(&["scale", "deploy/petclinic", "--replicas=2", "-n", &ns.name]);
    // A pod without the annotation, never scheduled: not listed.
    c.apply(&json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "petclinic-old", "namespace": ns.name, "labels": {"app.kubernetes.io/name": "petclinic-old"}},
        "spec": {"nodeSelector": {"classcache-test/no-such-node": "true"},
            "containers": [{"name": "c", "image": "registry.example/shop/petclinic:3.2.0"}]}}).to_string());
    let app_pods: Vec<(String, String)> = c.wait_for(
        "2 scheduled petclinic pods",
        Duration::from_secs(60),
        || {
            let list = c.get(&[
                "pods",
                "-n",
                &ns.name,
                "-l",
                "app.kubernetes.io/name=petclinic",
            ]);
            let pods: Vec<(String, String)> = list["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| p["spec"]["nodeName"].is_string())
                .map(|p| {
                    (
                        p["metadata"]["name"].as_str().unwrap().to_string(),
                        p["spec"]["nodeName"].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            (pods.len() == 2).then_some(pods)
        },
    );

    let image = c.busybox_image();
    assert!(c.nodes.len() >= 2, "nodes {:?}", c.nodes);
    // Stand-ins for the fetcher, found and asked as the real one: its pod label, its port and
    // its archive route (the HTTP contract, classcache_core::fetcher::http).
    let route = classcache_core::fetcher::http::archive_path(&digest);
    let route_dir = route.rsplit_once('/').unwrap().0;
    let (label, port) = (podtemplate::FETCHER_POD_LABEL, podtemplate::FETCHER_PORT);
    for (i, node) in c.nodes.iter().take(2).enumerate() {
        let publish = if i == 0 {
            format!("mkdir -p /www{route_dir} && echo '{{}}' > /www{route} && ")
        } else {
            "mkdir -p /www && ".to_string()
        };
        c.apply(
            &json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("fetcher-{node}"), "namespace": fetchers.name,
                "labels": {label.0: label.1}},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 0,
                "containers": [{"name": "httpd", "image": image,
                    "command": ["sh", "-c", format!("{publish}exec httpd -f -p {port} -h /www")],
                    "readinessProbe": {"tcpSocket": {"port": port}, "periodSeconds": 1}}]}})
            .to_string(),
        );
    }
    c.kubectl_ok(&[
        "wait",
        "--for=condition=Ready",
        "pods",
        "--all",
        "-n",
        &fetchers.name,
        "--timeout=120s",
    ]);

    let (code, out, err) = c.plugin(&[
        "status",
        "-n",
        &ns.name,
        "--fetcher-namespace",
        &fetchers.name,
        "-o",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let rows: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1, "{rows:#}");
    let row = &rows[0];
    assert_eq!(row["workload"], "deployment.apps/petclinic");
    assert_eq!(row["namespace"], ns.name);
    assert_eq!(row["archives"][0]["archive"], pinned);
    assert_eq!(row["archives"][0]["platforms"][0]["kind"], "dynamic-cds");
    assert_eq!(
        row["archives"][0]["platforms"][0]["jvm"],
        "17.0.15+6-Debian-1deb12u1"
    );
    assert_eq!(
        row["archives"][0]["nodes"],
        json!({"fetchers": 2, "present": [c.nodes[0]], "unknown": []}),
        "{row:#}"
    );
    let mut listed: Vec<(String, String)> = row["pods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["node"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    listed.sort();
    let mut expected = app_pods;
    expected.sort();
    assert_eq!(listed, expected);

    let (code, out, err) = c.plugin(&[
        "status",
        "deploy/petclinic",
        "-n",
        &ns.name,
        "--fetcher-namespace",
        &fetchers.name,
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("present on 1 of 2 nodes") && out.contains("pods with the archive: 2"),
        "{out}"
    );
}

#[test]
fn install_applies_and_uninstall_refuses_while_enabled() {
    let c = real();
    // install and uninstall change the cluster-wide fetcher: no other test may meanwhile.
    let _lock = exclusive_lock();
    let image = "registry.example/classcache-fetcher:0.1.0";
    // What an interrupted run left goes first.
    let (code, _, err) = c.plugin(&["uninstall", "--force"]);
    assert_eq!(code, 0, "{err}");
    assert!(c.find(None, "namespace/classcache").is_none());
    let ns = c.namespace("plugin-install");
    let tmp = tempfile::tempdir().unwrap();
    let archive = petclinic_archive(tmp.path());
    seed(c, &petclinic(&ns.name, 0));

    let (code, _, err) = c.plugin(&[
        "install",
        "--dry-run=server",
        "--image",
        image,
        "--allowed-registry",
        c.harness.registry.as_str(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("namespace/classcache applied (server dry run)")
            && err.contains("daemonset.apps/classcache-fetcher not checked by the server: namespace/classcache does not exist yet"),
        "{err}"
    );
    assert!(
        c.find(None, "namespace/classcache").is_none(),
        "a server dry run stores nothing"
    );

    let (code, out, err) = c.plugin(&[
        "install",
        "--image",
        image,
        "-o",
        "yaml",
        "--allowed-registry",
        c.harness.registry.as_str(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(parse_yaml(&out).len(), 8);
    let ds = c
        .find(Some("classcache"), "daemonset/classcache-fetcher")
        .expect("the DaemonSet is stored");
    assert_eq!(
        ds["spec"]["template"]["spec"]["containers"][0]["image"],
        image
    );
    assert!(
        managers(&ds).contains(&("classcache".into(), "Apply".into())),
        "{:?}",
        managers(&ds)
    );
    assert_eq!(
        c.get(&["service/classcache-peers", "-n", "classcache"])["spec"]["clusterIP"],
        "None"
    );
    let (code, _, err) = c.plugin(&[
        "install",
        "--image",
        image,
        "--allowed-registry",
        c.harness.registry.as_str(),
    ]);
    assert_eq!(code, 0, "install twice is fine: {err}");
    // With the namespace there, the real server checks every object of a dry run.
    let (code, _, err) = c.plugin(&[
        "install",
        "--dry-run=server",
        "--image",
        "other:1",
        "--allowed-registry",
        c.harness.registry.as_str(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("daemonset.apps/classcache-fetcher applied (server dry run)")
            && !err.contains("not checked"),
        "{err}"
    );
    assert_eq!(
        c.get(&["daemonset/classcache-fetcher", "-n", "classcache"])["spec"]["template"]["spec"]
            ["containers"][0]["image"],
        image,
        "a server dry run stores nothing"
    );

    // The installed fetcher allows only the harness registry by its address: the same registry
    // named `localhost:PORT` is another registry to it, so enable refuses before patching.
    let port = c.harness.registry.rsplit_once(':').unwrap().1;
    let elsewhere = push_petclinic_archive(&format!("localhost:{port}"));
    let before = c.get(&["deploy/petclinic", "-n", &ns.name]);
    let (code, _, err) = c.plugin(&[
        "enable",
        "deploy/petclinic",
        "-n",
        &ns.name,
        "--archive",
        &elsewhere,
    ]);
    assert_ne!(code, 0, "{err}");
    assert!(
        err.contains(&format!(
            "kubectl classcache install --allowed-registry localhost:{port}"
        )) && err.contains("nothing was changed"),
        "{err}"
    );
    assert_eq!(
        stored_part(&c.get(&["deploy/petclinic", "-n", &ns.name])),
        stored_part(&before),
        "the workload is left as it was"
    );

    let (code, _, err) = c.plugin(&[
        "enable",
        "deploy/petclinic",
        "-n",
        &ns.name,
        "--archive",
        &archive,
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = c.plugin(&["uninstall"]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!(
            "deployment.apps/petclinic in namespace {}",
            ns.name
        )) && err.contains("--force"),
        "{err}"
    );
    assert!(c
        .find(Some("classcache"), "daemonset/classcache-fetcher")
        .is_some());

    let (code, _, err) = c.plugin(&["uninstall", "--dry-run=server", "--force"]);
    assert_eq!(code, 0, "{err}");
    assert!(c
        .find(Some("classcache"), "daemonset/classcache-fetcher")
        .is_some());

    let (code, _, err) = c.plugin(&["disable", "deploy/petclinic", "-n", &ns.name]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = c.plugin(&["uninstall"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        c.find(None, "namespace/classcache").is_none(),
        "uninstall waited until the namespace and everything in it were gone"
    );
}

// ---- The in-process fake, only for what a real API server cannot be made to do on cue.

/// The fake API server seeded with the fixture's Deployment in namespace `shop`.
struct Fake {
    api: FakeApi,
    archive: String,
    original: Value,
    _tmp: tempfile::TempDir,
}

fn fake() -> Fake {
    let api = FakeApi::start();
    let tmp = tempfile::tempdir().unwrap();
    let archive = petclinic_archive(tmp.path());
    api.seed(&petclinic("shop", 3));
    let original = api.get("apps", "deployments", "shop", "petclinic").unwrap();
    Fake {
        api,
        archive,
        original,
        _tmp: tmp,
    }
}

impl Fake {
    fn enable(&self) -> (i32, String, String) {
        let kubeconfig = self.api.kubeconfig_arg();
        run(
            &[
                "enable",
                "deploy/petclinic",
                "--archive",
                &self.archive,
                "--kubeconfig",
                &kubeconfig,
            ],
            None,
            &[],
        )
    }

    fn deployment(&self) -> Value {
        self.api
            .get("apps", "deployments", "shop", "petclinic")
            .unwrap()
    }
}

/// On the fake: another writer changes the object between the plugin's read and its write, a
/// chosen number of times. A real server gives a 409 only when a race happens to occur.
#[test]
fn concurrent_edits_are_retried_and_never_overwritten() {
    let s = fake();
    s.api
        .state
        .lock()
        .unwrap()
        .concurrent_writes
        .insert("petclinic".into(), 2);
    let (code, _, err) = s.enable();
    assert_eq!(code, 0, "{err}");
    assert_eq!(err.matches("changed by someone else").count(), 2, "{err}");
    let stored = s.deployment();
    assert_eq!(
        stored["metadata"]["labels"]["touched-by-other"], "round-0",
        "the other writer's change survives"
    );
    assert_eq!(
        stored["spec"]["template"]["spec"]["initContainers"][0]["name"],
        "classcache-init"
    );

    let s = fake();
    s.api
        .state
        .lock()
        .unwrap()
        .concurrent_writes
        .insert("petclinic".into(), 100);
    let (code, out, err) = s.enable();
    assert_eq!((code, out.as_str()), (1, ""));
    assert!(
        err.contains("kept changing") && err.contains("nothing was overwritten"),
        "{err}"
    );
    let stored = s.deployment();
    assert!(
        stored["spec"]["template"]["spec"]
            .get("initContainers")
            .is_none(),
        "our change was not forced in"
    );
    assert_eq!(template(&stored), template(&s.original));
}

/// A hand-edited `classcache.io/archive` is reported by `status` (per workload, the rest still
/// shown), and `disable` after a later deploy keeps that deploy's changes: its own
/// JAVA_TOOL_OPTIONS additions, and (with `--keep-image`) its image; without `--keep-image` it
/// refuses rather than roll the image back.
#[test]
fn status_reports_malformed_records_and_disable_keeps_later_changes() {
    let c = real();
    let _lock = shared_lock();
    let ns = c.namespace("plugin-surgical");
    let tmp = tempfile::tempdir().unwrap();
    let archive = petclinic_archive(tmp.path());
    seed(c, &petclinic(&ns.name, 0));
    let (code, _, err) = c.plugin(&[
        "enable",
        "deploy/petclinic",
        "-n",
        &ns.name,
        "--archive",
        &archive,
        "--pin-image",
    ]);
    assert_eq!(code, 0, "{err}");
    let enabled = c.get(&["deploy/petclinic", "-n", &ns.name]);
    let container = &enabled["spec"]["template"]["spec"]["containers"][0];
    let pinned = container["image"].as_str().unwrap().to_string();
    let jto_index = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .position(|e| e["name"] == "JAVA_TOOL_OPTIONS")
        .unwrap();
    let value = container["env"][jto_index]["value"]
        .as_str()
        .unwrap()
        .to_string();

    // A later deploy: a new image, and one more option appended to JAVA_TOOL_OPTIONS.
    let patch = json!([
        {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "registry.example/shop/petclinic:9.9.9"},
        {"op": "replace", "path": format!("/spec/template/spec/containers/0/env/{jto_index}/value"), "value": format!("{value} -Dlater=1")},
    ]);
    c.kubectl_ok(&[
        "patch",
        "deploy/petclinic",
        "-n",
        &ns.name,
        "--type",
        "json",
        "-p",
        &patch.to_string(),
    ]);
    let (code, _, err) = c.plugin(&["disable", "deploy/petclinic", "-n", &ns.name]);
    assert_ne!(code, 0, "the image changed since enable: refused");
    assert!(
        err.contains("registry.example/shop/petclinic:9.9.9")
            && err.contains(&pinned)
            && err.contains("--keep-image"),
        "{err}"
    );
    let (code, _, err) = c.plugin(&[
        "disable",
        "deploy/petclinic",
        "-n",
        &ns.name,
        "--keep-image",
    ]);
    assert_eq!(code, 0, "{err}");
    let disabled = c.get(&["deploy/petclinic", "-n", &ns.name]);
    let container = &disabled["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "registry.example/shop/petclinic:9.9.9");
    let after = container["env"][jto_index]["value"].as_str().unwrap();
    assert!(
        after.ends_with("-Dlater=1") && !after.contains("SharedArchiveFile"),
        "{after}"
    );

    // A hand-edited record: status names it and the fix, and does not fail.
    let patch = json!({"spec": {"template": {"metadata": {"annotations": {"classcache.io/archive": "{\"petclinic\": 5}"}}}}});
    c.kubectl_ok(&[
        "patch",
        "deploy/petclinic",
        "-n",
        &ns.name,
        "--type",
        "merge",
        "-p",
        &patch.to_string(),
    ]);
    let (code, out, err) = c.plugin(&["status", "-n", &ns.name, "-o", "json"]);
    assert_eq!(code, 0, "{err}");
    let rows: Value = serde_json::from_str(&out).unwrap();
    let row = &rows[0];
    assert!(
        row["error"]
            .as_str()
            .is_some_and(|e| e.contains("Deployment/petclinic")
                && e.contains("restore the pod template by hand")),
        "{rows:#}"
    );
}
