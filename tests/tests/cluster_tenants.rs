//! Two tenants on one node of the harness's real cluster, in hostpath mode: each pod's JVM maps
//! its own archive as a non-root user, and sees no other archive. It must not share a workload.

use classcache_core::paths::{pod_archive_dir, published_dir_name, POD_ARCHIVE_DIR};
use classcache_e2e::apps::{app_image, train, trained_example_app, APP_USER};
use classcache_e2e::cluster::{
    archive_mappings, cluster, exclusive, jvm_deployment, Cluster, APP_UID,
};
use classcache_e2e::step;
use std::time::Duration;

const ROLLOUT: Duration = Duration::from_secs(300);

/// A one-replica Deployment of `image` on `node`, its JVM run as `uid`.
fn tenant(name: &str, namespace: &str, image: &str, node: &str, uid: u32) -> String {
    let on_node = format!("nodeSelector: {{kubernetes.io/hostname: {node}}}");
    jvm_deployment(name, namespace, image, 1, uid, &on_node)
}

/// `sh -c script` in the pod's app container: (it succeeded, stdout and stderr).
fn shell(c: &Cluster, namespace: &str, pod: &str, script: &str) -> (bool, String) {
    let out = c.kubectl(&[
        "-n", namespace, "exec", pod, "-c", "app", "--", "sh", "-c", script,
    ]);
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn a_pod_sees_only_the_archive_it_pins() {
    let c = cluster();
    let _serial = exclusive();
    let image_a = trained_example_app(c.harness).to_string();
    step("a second tenant's image (another digest), trained: another archive");
    let image_b = app_image(
        c.harness,
        &c.harness.jdk17_image,
        &["run"],
        &format!("USER {APP_USER}\nLABEL classcache.test/tenant=b"),
    )
    .0;
    train(c.harness, &image_b, &["--verify-runs", "1"]);
    c.delete_stale_test_namespaces();
    c.install_fetcher();

    step("both tenants enabled in hostpath mode on one node, their JVMs as different users");
    let node = c.nodes[0].clone();
    let ns = c.namespace("tenants", &[]);
    c.apply(&tenant("a", &ns.name, &image_a, &node, APP_UID));
    c.apply(&tenant("b", &ns.name, &image_b, &node, 4242));
    let mut before = vec![];
    for app in ["a", "b"] {
        c.rollout_status(&ns.name, &format!("deploy/{app}"), ROLLOUT);
        before.push(c.deployment_template(&ns.name, app));
        c.plugin_ok(&[
            "enable",
            &format!("deploy/{app}"),
            "-n",
            &ns.name,
            "--mode",
            "hostpath",
        ]);
    }
    let mut tenants = vec![];
    for app in ["a", "b"] {
        c.rollout_status(&ns.name, &format!("deploy/{app}"), ROLLOUT);
        let template = c.deployment_template(&ns.name, app);
        let reference = Cluster::pinned_reference(&template);
        let pinned = reference.rsplit_once('@').unwrap().1.to_string();
        let dir = format!("/{}", published_dir_name(&pinned));
        let host_paths: Vec<&str> = template["spec"]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v["hostPath"]["path"].as_str())
            .collect();
        assert!(
            host_paths.len() == 1 && host_paths[0].ends_with(&format!("/published{dir}")),
            "one hostPath volume, the archive's own directory: {host_paths:?}"
        );
        let pods = c.pods(&ns.name, &format!("app={app}"));
        assert_eq!(pods.len(), 1, "{pods:?}");
        assert_eq!(pods[0].1, node);
        tenants.push((app, pods[0].0.clone(), reference, pinned));
    }
    assert_ne!(tenants[0].3, tenants[1].3, "two different archives");

    step("each JVM loads classes from, and maps, its own archive");
    for (app, pod, reference, _) in &tenants {
        let counts = c.classes_from_archive(&ns.name, app, "app");
        assert!(
            counts.iter().all(|(_, _, n)| *n >= 500),
            "{app}: {counts:?}\n{}",
            c.describe_namespace(&ns.name)
        );
        let own = c.pod_archive_path(reference);
        let (_, rss, processes) = archive_mappings(std::slice::from_ref(pod), &own);
        assert!(
            processes == 1 && rss > 0,
            "{pod} maps {own}: {processes} processes, {rss} kB"
        );
    }

    step("a pod sees only its own archive, read-only, and cannot read the other's");
    for (i, (app, pod, reference, pinned)) in tenants.iter().enumerate() {
        let (_, other_ref, other) = {
            let (a, _, r, p) = &tenants[1 - i];
            (a, r, p)
        };
        let (ok, listing) = shell(c, &ns.name, pod, &format!("ls -A {POD_ARCHIVE_DIR}"));
        assert!(ok, "{listing}");
        assert_eq!(
            listing.split_whitespace().collect::<Vec<_>>(),
            [published_dir_name(pinned)],
            "{app} lists only its own archive"
        );
        let (ok, long) = shell(
            c,
            &ns.name,
            pod,
            &format!("id -u; ls -ln {}", pod_archive_dir(pinned)),
        );
        assert!(ok, "{long}");
        assert!(!long.starts_with("0\n"), "the JVM runs as non-root: {long}");
        assert!(long.contains("-r--r--r--"), "published 0444: {long}");
        let own = c.pod_archive_path(reference);
        let (ok, out) = shell(c, &ns.name, pod, &format!("head -c 4 {own} | od -An -tx1"));
        assert!(
            ok && !out.trim().is_empty(),
            "{app} reads its archive: {out}"
        );
        let (written, out) = shell(
            c,
            &ns.name,
            pod,
            &format!("echo x >> {own} || touch {}/x", pod_archive_dir(pinned)),
        );
        assert!(
            !written,
            "{app} must not write its archive or directory: {out}"
        );
        let theirs = c.pod_archive_path(other_ref);
        for path in [
            theirs.as_str(),
            &pod_archive_dir(other),
            &format!("{POD_ARCHIVE_DIR}/../published"),
        ] {
            let (read, out) = shell(c, &ns.name, pod, &format!("ls {path} || cat {path}"));
            assert!(!read, "{app} must not see {path}: {out}");
            eprintln!("{app}: {path} refused: {}", out.trim());
        }
        eprintln!("{app} ({pod}): ls {POD_ARCHIVE_DIR} = {listing:?}; {long:?}");
        let (_, _, processes) = archive_mappings(std::slice::from_ref(pod), &theirs);
        assert_eq!(processes, 0, "{pod} maps nothing of the other archive");
    }

    step("disable puts back exactly what each template had");
    for (i, app) in ["a", "b"].iter().enumerate() {
        c.plugin_ok(&["disable", &format!("deploy/{app}"), "-n", &ns.name]);
        assert_eq!(c.deployment_template(&ns.name, app), before[i], "{app}");
    }
}
