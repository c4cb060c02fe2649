//! `enable` on real Spring Boot workloads that attach the real OpenTelemetry agent, on the
//! harness's cluster: the archive trained for that agent is enabled and the JVMs (uid 65532,
//! agent attached by their own JAVA_TOOL_OPTIONS) load from it; a workload running another agent,
//! or none, is refused with nothing changed, and `--force` enables it without adding an agent.

use classcache_e2e::apps::{spring_boot_image, train_spring_boot, SpringBoot, OTEL_AGENT_IN_IMAGE};
use classcache_e2e::cluster::{cluster, exclusive, Cluster};
use classcache_e2e::step;
use serde_json::Value;
use std::time::Duration;

const ROLLOUT: Duration = Duration::from_secs(400);

/// The JDK 25 image has no base CDS archive (a jlink'd runtime): every class the JVM maps comes
/// from the AOT cache classcache delivered.
const FROM_AOT_CACHE: &str = "source: shared objects file";

/// Spring Boot 4 on JDK 25 with `java_tool_options` as the workload's own, on `node`.
fn deployment(name: &str, namespace: &str, image: &str, java_tool_options: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      terminationGracePeriodSeconds: 2
      securityContext: {{runAsNonRoot: true, runAsUser: 65532, seccompProfile: {{type: RuntimeDefault}}}}
      containers:
        - name: app
          image: {image}
          env:
            - {{name: JAVA_TOOL_OPTIONS, value: "{java_tool_options}"}}
            - {{name: OTEL_TRACES_EXPORTER, value: none}}
            - {{name: OTEL_METRICS_EXPORTER, value: none}}
            - {{name: OTEL_LOGS_EXPORTER, value: none}}
          securityContext:
            allowPrivilegeEscalation: false
            capabilities: {{drop: ["ALL"]}}
          readinessProbe:
            httpGet: {{path: /owners, port: 8080}}
            periodSeconds: 2
"#
    )
}

fn template_of(c: &Cluster, namespace: &str, name: &str) -> Value {
    c.get_json(&["deployment", "-n", namespace, name])["spec"]["template"].clone()
}

fn from_cache(c: &Cluster, namespace: &str, app: &str) -> Vec<(String, usize)> {
    c.pods(namespace, &format!("app={app}"))
        .into_iter()
        .map(|(pod, _)| {
            let log = c.kubectl_ok(&["logs", "-n", namespace, &pod, "-c", "app"]);
            (
                pod,
                log.lines().filter(|l| l.contains(FROM_AOT_CACHE)).count(),
            )
        })
        .collect()
}

fn agents_in(template: &Value) -> usize {
    template["spec"]["containers"]
        .to_string()
        .matches("-javaagent:")
        .count()
}

#[test]
fn enable_checks_the_workloads_own_agent_on_real_spring_boot_pods() {
    let c = cluster();
    let _serial = exclusive();
    let h = c.harness;
    let image = spring_boot_image(h, SpringBoot::Four);
    let report = train_spring_boot(h, SpringBoot::Four, true, &["--verify-runs", "0"]);
    let archive = report["archive"]["reference"].as_str().unwrap().to_string();
    let archive = format!(
        "{}@{}",
        archive
            .rsplit_once('@')
            .unwrap()
            .0
            .rsplit_once(':')
            .unwrap()
            .0,
        archive.rsplit_once('@').unwrap().1
    );
    c.delete_stale_test_namespaces();
    let ns = c.namespace("spring-agent", &[]);
    let log = "-Xlog:class+load=info:stdout";

    step("the workload attaches the agent the archive was trained for: enabled, loaded once");
    let with_agent = format!("-javaagent:{OTEL_AGENT_IN_IMAGE} {log}");
    c.apply(&deployment("otel", &ns.name, &image, &with_agent));
    c.plugin_ok(&[
        "enable",
        "deploy/otel",
        "-n",
        &ns.name,
        "--mode",
        "image-volume",
        "--archive",
        &archive,
    ]);
    let enabled = template_of(c, &ns.name, "otel");
    assert_eq!(
        agents_in(&enabled),
        1,
        "one -javaagent, the workload's own: {enabled}"
    );
    c.rollout_status(&ns.name, "deploy/otel", ROLLOUT);
    for (pod, count) in from_cache(c, &ns.name, "otel") {
        eprintln!("{pod}: {count} classes from the AOT cache with the agent attached");
        assert!(
            count >= 10_000,
            "{pod}: {count}\n{}",
            c.describe_namespace(&ns.name)
        );
    }

    step("another agent, or none: refused, nothing changed");
    for (name, options, says) in [
        (
            "splunk",
            format!("-javaagent:/splunk/agent.jar {log}"),
            "runs the agent /splunk/agent.jar",
        ),
        ("plain", log.to_string(), "runs no Java agent"),
    ] {
        c.apply(&deployment(name, &ns.name, &image, &options));
        let before = template_of(c, &ns.name, name);
        let out = c.plugin(&[
            "enable",
            &format!("deploy/{name}"),
            "-n",
            &ns.name,
            "--mode",
            "image-volume",
            "--archive",
            &archive,
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name} must be refused");
        assert!(
            err.contains(says) && err.contains(OTEL_AGENT_IN_IMAGE) && err.contains("--force"),
            "{err}"
        );
        assert_eq!(template_of(c, &ns.name, name), before, "nothing changed");
    }

    step("--force on the workload without an agent: enabled with a warning, no agent added, the cache maps");
    let out = c.plugin(&[
        "enable",
        "deploy/plain",
        "-n",
        &ns.name,
        "--mode",
        "image-volume",
        "--archive",
        &archive,
        "--force",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("runs no Java agent"), "{err}");
    assert_eq!(agents_in(&template_of(c, &ns.name, "plain")), 0);
    c.rollout_status(&ns.name, "deploy/plain", ROLLOUT);
    for (pod, count) in from_cache(c, &ns.name, "plain") {
        eprintln!("{pod}: {count} classes from the AOT cache without an agent");
        assert!(count >= 10_000, "{pod}: {count}");
    }
}
