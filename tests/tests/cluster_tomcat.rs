//! Debian's Tomcat 10, running as a non-root user, through the whole pipeline on the harness's
//! real cluster: its image trained and pushed by classcache-build (Tomcat serves until stopped:
//! the training run ends with SIGTERM after a warm-up), `kubectl classcache enable` on its
//! Deployment, and the pod's JVM log shows the classes it took from the delivered archive while
//! Tomcat answers HTTP inside the cluster.

use classcache_e2e::apps::{tomcat_image, train_tomcat, APP_USER, TOMCAT_PORT};
use classcache_e2e::cluster::{cluster, exclusive};
use classcache_e2e::step;
use std::time::Duration;

const ROLLOUT: Duration = Duration::from_secs(300);
/// Tomcat with its webapps loads a few thousand classes; several hundred of them must come
/// from the archive in the pod.
const MIN_FROM_ARCHIVE: usize = 500;

/// A Tomcat Deployment with the workload's own JVM options (class-load logging, a heap size),
/// non-root, ready when Tomcat answers `GET /` on its port.
fn tomcat_deployment(name: &str, namespace: &str, image: &str) -> String {
    let (uid, gid) = APP_USER.split_once(':').unwrap();
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: {namespace}
spec:
  replicas: 1
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      terminationGracePeriodSeconds: 5
      securityContext:
        runAsNonRoot: true
        runAsUser: {uid}
        runAsGroup: {gid}
        seccompProfile: {{type: RuntimeDefault}}
      containers:
        - name: tomcat
          image: {image}
          env:
            - name: JAVA_TOOL_OPTIONS
              value: "-Xlog:class+load=info:stdout -Xmx256m"
          ports:
            - {{name: http, containerPort: {TOMCAT_PORT}}}
          securityContext:
            allowPrivilegeEscalation: false
            capabilities: {{drop: ["ALL"]}}
          readinessProbe:
            httpGet: {{path: /, port: {TOMCAT_PORT}}}
            periodSeconds: 1
            failureThreshold: 300
"#
    )
}

#[test]
fn tomcat_non_root_loads_from_the_archive_on_real_nodes() {
    let c = cluster();
    let _serial = exclusive();
    let h = c.harness;

    step("build Debian's Tomcat 10 as a non-root image and train it in that image");
    let image = tomcat_image(h);
    let user = h.docker_ok(&["image", "inspect", "-f", "{{.Config.User}}", &image]);
    assert_eq!(user, APP_USER, "the Tomcat image must run as non-root");
    let report = train_tomcat(h, &image);
    let classes = &report["classes"];
    let total = classes["total"].as_u64().unwrap_or(0);
    let from_archive = classes["fromArchive"].as_u64().unwrap_or(0);
    eprintln!(
        "image {image}: classes {classes}; archive {} ({} bytes); warnings {}",
        report["archive"]["reference"], report["archive"]["size"], report["warnings"]
    );
    assert!(
        total > 0 && from_archive * 2 > total,
        "classcache-build's verification run must load most of Tomcat's classes from the archive: {report:#}"
    );

    step("install (idempotent): a Ready fetcher on every node");
    c.install_fetcher();

    step("a Tomcat Deployment, enabled; its JVM loads from the archive and Tomcat answers");
    let ns = c.namespace("tomcat", &[]);
    c.apply(&tomcat_deployment("tomcat", &ns.name, &image));
    c.rollout_status(&ns.name, "deploy/tomcat", ROLLOUT);
    for (pod, node, count) in c.classes_from_archive(&ns.name, "tomcat", "tomcat") {
        assert_eq!(count, 0, "{pod} on {node} used an archive before enable");
    }
    c.plugin_ok(&["enable", "deploy/tomcat", "-n", &ns.name]);
    c.rollout_status(&ns.name, "deploy/tomcat", ROLLOUT);

    let counts = c.classes_from_archive(&ns.name, "tomcat", "tomcat");
    assert_eq!(counts.len(), 1, "one Tomcat pod: {counts:?}");
    let (pod, node, count) = &counts[0];
    eprintln!("{pod} on {node}: {count} classes from the archive (JVM log)");
    assert!(
        *count >= MIN_FROM_ARCHIVE,
        "{pod} on {node} loaded only {count} classes from the archive (JVM log)\n{}",
        c.describe_namespace(&ns.name)
    );
    let uid = c.kubectl_ok(&[
        "get",
        "pod",
        "-n",
        &ns.name,
        pod,
        "-o",
        "jsonpath={.spec.securityContext.runAsUser}",
    ]);
    assert_eq!(
        uid,
        APP_USER.split_once(':').unwrap().0,
        "the pod runs as non-root"
    );
    let ready = c.kubectl_ok(&[
        "get",
        "pod",
        "-n",
        &ns.name,
        pod,
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
    ]);
    assert_eq!(
        ready, "True",
        "the kubelet's HTTP GET / to Tomcat on port {TOMCAT_PORT} must answer"
    );
    let log = c.kubectl_ok(&["logs", "-n", &ns.name, pod, "-c", "tomcat"]);
    assert!(
        log.contains("Server startup in"),
        "Tomcat did not start:\n{log}"
    );
    let loaded = log.lines().filter(|l| l.contains(" source: ")).count();
    eprintln!("{pod}: {count} of the {loaded} classes its JVM loaded came from the archive");

    step("a JSP answers through the API server's proxy to the pod");
    let page = c.kubectl_ok(&[
        "get",
        "--raw",
        &format!(
            "/api/v1/namespaces/{}/pods/{pod}:{TOMCAT_PORT}/proxy/examples/jsp/jsp2/el/basic-arithmetic.jsp",
            ns.name
        ),
    ]);
    assert!(
        page.contains("Basic Arithmetic"),
        "Tomcat's examples JSP did not answer as expected:\n{page}"
    );
}
