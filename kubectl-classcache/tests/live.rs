//! Live mode end to end: the plugin binary against the in-process fake API server.

mod common;
mod fake_api;

use common::*;
use fake_api::*;
use serde_json::{json, Value};

struct Setup {
    api: FakeApi,
    archive: String,
    original: Value,
    _tmp: tempfile::TempDir,
}

fn setup() -> Setup {
    let api = FakeApi::start();
    let tmp = tempfile::tempdir().unwrap();
    let archive = make_archive(
        &tmp.path().join("petclinic"),
        "registry.example/shop/petclinic:3.2.0",
        &[],
        &[],
    );
    let fixture = std::fs::read_to_string(fixtures().join("deployment-petclinic.yaml")).unwrap();
    let deploy = docs(&fixture)
        .into_iter()
        .find(|d| d["kind"] == "Deployment")
        .unwrap();
    api.seed(&deploy);
    let original = api.get("apps", "deployments", "shop", "petclinic").unwrap();
    Setup {
        api,
        archive,
        original,
        _tmp: tmp,
    }
}

impl Setup {
    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let mut all: Vec<&str> = args.to_vec();
        let kubeconfig = self.api.kubeconfig_arg();
        all.extend(["--kubeconfig", &kubeconfig]);
        run(&all, None, &[])
    }

    fn deployment(&self) -> Value {
        self.api
            .get("apps", "deployments", "shop", "petclinic")
            .unwrap()
    }

    fn enable(&self, extra: &[&str]) -> (i32, String, String) {
        let mut args = vec!["enable", "deploy/petclinic", "--archive", &self.archive];
        args.extend(extra);
        self.run(&args)
    }
}

fn template(obj: &Value) -> Value {
    obj["spec"]["template"].clone()
}

#[test]
fn enable_writes_with_the_field_manager_and_disable_restores_exactly() {
    let s = setup();
    let (code, out, err) = s.enable(&["-o", "yaml"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("deployment.apps/petclinic in namespace shop enabled"),
        "{err}"
    );
    let stored = s.deployment();
    let inits = stored["spec"]["template"]["spec"]["initContainers"]
        .as_array()
        .unwrap();
    assert_eq!(inits[0]["name"], "classcache-init");
    assert!(stored["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["manager"] == "classcache"));
    let put = s
        .api
        .requests()
        .into_iter()
        .find(|r| r.method == "PUT")
        .unwrap();
    assert_eq!(
        put.path,
        "/apis/apps/v1/namespaces/shop/deployments/petclinic"
    );
    assert!(
        put.query.contains("fieldManager=classcache"),
        "{}",
        put.query
    );
    let printed = docs(&out);
    assert_eq!(
        template(&printed[0]),
        template(&stored),
        "-o yaml prints what was stored"
    );
    assert!(printed[0]["metadata"].get("managedFields").is_none());

    let (code, _, err) = s.enable(&[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        template(&s.deployment()),
        template(&stored),
        "enable twice == once"
    );

    let (code, _, err) = s.run(&["disable", "deployment", "petclinic"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        serde_json::to_string(&template(&s.deployment())).unwrap(),
        serde_json::to_string(&template(&s.original)).unwrap(),
        "disable restores the template exactly"
    );
    let (code, _, err) = s.run(&["disable", "deploy/petclinic"]);
    assert_eq!(code, 0);
    assert!(err.contains("unchanged"), "{err}");
}

#[test]
fn dry_runs_store_nothing() {
    let s = setup();
    let (code, out, err) = s.enable(&["--dry-run=server", "-o", "json"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("(server dry run)"), "{err}");
    let put = s
        .api
        .requests()
        .into_iter()
        .find(|r| r.method == "PUT")
        .expect("the server checks the object");
    assert!(put.query.contains("dryRun=All"), "{}", put.query);
    assert_eq!(s.deployment(), s.original, "server dry run stores nothing");
    let shown: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        shown["spec"]["template"]["spec"]["initContainers"][0]["name"],
        "classcache-init"
    );

    s.api.clear_requests();
    let (code, out, err) = s.enable(&["--dry-run=client", "-o", "yaml"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        s.api.requests().iter().all(|r| r.method == "GET"),
        "client dry run only reads"
    );
    assert!(out.contains("classcache-init"));
    assert_eq!(s.deployment(), s.original);
}

#[test]
fn concurrent_edits_are_retried_and_never_overwritten() {
    let s = setup();
    s.api
        .state
        .lock()
        .unwrap()
        .concurrent_writes
        .insert("petclinic".into(), 2);
    let (code, _, err) = s.enable(&[]);
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

    let s = setup();
    s.api
        .state
        .lock()
        .unwrap()
        .concurrent_writes
        .insert("petclinic".into(), 100);
    let (code, out, err) = s.enable(&[]);
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

#[test]
fn errors_name_the_object_and_the_fix() {
    let s = setup();
    let (code, _, err) = s.run(&["enable", "deploy/nope", "--archive", &s.archive]);
    assert_eq!(code, 1);
    assert!(
        err.contains("deployment.apps/nope in namespace shop not found") && err.contains("-n"),
        "{err}"
    );

    s.api
        .state
        .lock()
        .unwrap()
        .forbidden
        .push(("update".into(), "deployments".into()));
    let (code, _, err) = s.enable(&[]);
    assert_eq!(code, 1);
    assert!(
        err.contains("forbids update") && err.contains("RBAC"),
        "{err}"
    );
    assert_eq!(s.deployment(), s.original, "left exactly as it was");

    let (code, _, err) = s.run(&[
        "enable",
        "deploy/petclinic",
        "--archive",
        &s.archive,
        "--context",
        "down",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot reach the cluster"), "{err}");

    let (code, _, err) = s.run(&["enable", "gizmos/x", "--archive", &s.archive]);
    assert_eq!(code, 1);
    assert!(err.contains("no resource type \"gizmos\""), "{err}");

    s.api.seed(&json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "shop"}, "spec": {"size": 3}}));
    let (code, _, err) = s.run(&["enable", "widgets/w", "--archive", &s.archive]);
    assert_eq!(code, 1);
    assert!(
        err.contains("Widget/w in namespace shop has no pod template"),
        "{err}"
    );

    let pod = docs(&std::fs::read_to_string(fixtures().join("pod-debug.yaml")).unwrap()).remove(0);
    s.api.seed(&pod);
    let (code, _, err) = s.run(&["enable", "pod/petclinic-debug", "--archive", &s.archive]);
    assert_eq!(code, 1);
    assert!(
        err.contains("running Pod's containers cannot be changed")
            && err.contains("ownerReferences"),
        "{err}"
    );

    let (code, _, err) = s.run(&[
        "enable",
        "deploy/petclinic",
        "-c",
        "sidecar",
        "--archive",
        &s.archive,
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("container \"sidecar\" does not exist"),
        "{err}"
    );
}

#[test]
fn selectors_namespaces_and_custom_resources() {
    let s = setup();
    s.api.seed(&json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "petclinic", "namespace": "staging", "labels": {"app.kubernetes.io/part-of": "other"}},
        "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}},
        "spec": {"containers": [{"name": "petclinic", "image": "registry.example/shop/petclinic:3.2.0"}]}}}}));
    let (code, _, err) = s.run(&[
        "enable",
        "deploy",
        "-l",
        "app.kubernetes.io/part-of=shop",
        "-A",
        "--archive",
        &s.archive,
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(s.deployment()["spec"]["template"]["spec"]
        .get("initContainers")
        .is_some());
    let staging = s
        .api
        .get("apps", "deployments", "staging", "petclinic")
        .unwrap();
    assert!(
        staging["spec"]["template"]["spec"]
            .get("initContainers")
            .is_none(),
        "the selector left it alone"
    );

    let rollout =
        docs(&std::fs::read_to_string(fixtures().join("rollout-checkout.yaml")).unwrap()).remove(0);
    s.api.seed(&rollout);
    let tmp = tempfile::tempdir().unwrap();
    let checkout = make_archive(tmp.path(), "registry.example/shop/checkout:5.0.1", &[], &[]);
    let (code, _, err) = s.run(&[
        "enable",
        "rollouts.argoproj.io",
        "checkout",
        "--archive",
        &checkout,
        "-n",
        "shop",
    ]);
    assert_eq!(code, 0, "{err}");
    let stored = s
        .api
        .get("argoproj.io", "rollouts", "shop", "checkout")
        .unwrap();
    let spec = &stored["spec"]["template"]["spec"];
    assert_eq!(
        spec["initContainers"][1]["name"], "classcache-init",
        "after the user's own init container"
    );
    assert!(spec["containers"][0]["env"][0]["value"].as_str().unwrap().starts_with("-javaagent:/otel/opentelemetry-javaagent.jar -Dotel.service.name=checkout -XX:SharedArchiveFile="));
}

#[test]
fn status_shows_archive_nodes_and_pods() {
    let s = setup();
    let (code, _, err) = s.enable(&[]);
    assert_eq!(code, 0, "{err}");
    let template = template(&s.deployment());
    let annotations = template["metadata"]["annotations"].clone();
    let pinned =
        serde_json::from_str::<Value>(annotations["classcache.io/archive"].as_str().unwrap())
            .unwrap()["petclinic"]
            .as_str()
            .unwrap()
            .to_string();
    let digest = pinned.rsplit_once('@').unwrap().1.to_string();
    for (pod, node, with) in [
        ("petclinic-a", "node-1", true),
        ("petclinic-b", "node-2", true),
        ("petclinic-old", "node-2", false),
    ] {
        let mut meta = json!({"name": pod, "namespace": "shop", "labels": {"app.kubernetes.io/name": "petclinic"}});
        if with {
            meta["annotations"] = annotations.clone();
        }
        s.api.seed(&json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": {"nodeName": node, "containers": []}}));
    }
    for (pod, node, has) in [
        ("fetcher-1", "node-1", 200),
        ("fetcher-2", "node-2", 404),
        ("fetcher-3", "node-3", 200),
    ] {
        s.api.seed(&json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": pod, "namespace": "classcache", "labels": {"app.kubernetes.io/name": "classcache-fetcher"}},
            "spec": {"nodeName": node, "containers": []}}));
        s.api
            .state
            .lock()
            .unwrap()
            .proxy
            .insert((pod.into(), format!("/v1/archives/{digest}")), has);
    }
    let (code, out, err) = s.run(&["status", "-n", "shop", "-o", "json"]);
    assert_eq!(code, 0, "{err}");
    let rows: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1);
    let row = &rows[0];
    assert_eq!(row["workload"], "deployment.apps/petclinic");
    assert_eq!(row["archives"][0]["archive"], pinned);
    assert_eq!(row["archives"][0]["platforms"][0]["kind"], "dynamic-cds");
    assert_eq!(
        row["archives"][0]["platforms"][0]["jvm"],
        "17.0.15+6-Debian-1deb12u1"
    );
    assert_eq!(
        row["archives"][0]["nodes"]["present"],
        json!(["node-1", "node-3"])
    );
    assert_eq!(row["archives"][0]["nodes"]["fetchers"], 3);
    let pods: Vec<&str> = row["pods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(pods, ["petclinic-a", "petclinic-b"]);

    let (code, out, err) = s.run(&["status", "deploy/petclinic"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("present on 2 of 3 nodes") && out.contains("pods with the archive: 2"),
        "{out}"
    );
}

#[test]
fn install_applies_and_uninstall_refuses_while_enabled() {
    let s = setup();
    let (code, _, err) = s.run(&["install", "--dry-run=server"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        s.api.count("apps", "daemonsets"),
        0,
        "server dry run stores nothing"
    );

    let (code, out, err) = s.run(&[
        "install",
        "--image",
        "registry.example/classcache-fetcher:0.1.0",
        "-o",
        "yaml",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(docs(&out).len(), 6);
    let ds = s
        .api
        .get("apps", "daemonsets", "classcache", "classcache-fetcher")
        .expect("the DaemonSet is stored");
    assert_eq!(
        ds["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example/classcache-fetcher:0.1.0"
    );
    assert!(ds["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["manager"] == "classcache" && f["operation"] == "Apply"));
    assert_eq!(
        s.api
            .get("", "services", "classcache", "classcache-peers")
            .unwrap()["spec"]["clusterIP"],
        "None"
    );
    assert!(s.api.get("", "namespaces", "", "classcache").is_some());
    let (code, _, err) = s.run(&["install"]);
    assert_eq!(code, 0, "install twice is fine: {err}");

    let (code, _, _) = s.enable(&[]);
    assert_eq!(code, 0);
    let (code, _, err) = s.run(&["uninstall"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("deployment.apps/petclinic in namespace shop") && err.contains("--force"),
        "{err}"
    );
    assert!(s
        .api
        .get("apps", "daemonsets", "classcache", "classcache-fetcher")
        .is_some());

    let (code, _, err) = s.run(&["uninstall", "--dry-run=server", "--force"]);
    assert_eq!(code, 0, "{err}");
    assert!(s
        .api
        .get("apps", "daemonsets", "classcache", "classcache-fetcher")
        .is_some());

    let (code, _, _) = s.run(&["disable", "deploy/petclinic"]);
    assert_eq!(code, 0);
    let (code, _, err) = s.run(&["uninstall"]);
    assert_eq!(code, 0, "{err}");
    for (group, plural) in [
        ("apps", "daemonsets"),
        ("", "services"),
        ("", "serviceaccounts"),
        ("rbac.authorization.k8s.io", "roles"),
        ("", "namespaces"),
    ] {
        assert_eq!(s.api.count(group, plural), 0, "{plural} removed");
    }
}
