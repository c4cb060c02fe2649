//! The harness's real Kubernetes cluster (tests/harness/up.sh) as the plugin's live tests use it:
//! kubectl, the plugin with the admin kubeconfig, namespaces that clean up, the test CRDs, and
//! the cross-process lock on cluster-wide state. It must not start or stop the cluster.

use classcache_e2e::cluster::Cluster;
use classcache_e2e::unique_name;
use serde_json::Value;
use std::fs::File;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

/// The label every test namespace carries (the e2e tests delete such namespaces in bulk).
pub const TEST_LABEL: (&str, &str) = ("classcache-test", "true");

/// The harness's cluster (`classcache_e2e::cluster::Cluster`: kubectl, apply, kubeconfig,
/// nodes), with what the plugin's live tests add to it.
pub struct Real(&'static Cluster);

impl Deref for Real {
    type Target = Cluster;
    fn deref(&self) -> &Cluster {
        self.0
    }
}

/// The cluster; panics (never skips) when the harness has none.
pub fn real() -> &'static Real {
    static REAL: OnceLock<Real> = OnceLock::new();
    REAL.get_or_init(|| Real(classcache_e2e::cluster::cluster()))
}

/// Held while a test depends on cluster-wide state: shared by tests that enable workloads
/// (`uninstall` and the e2e pipeline's namespace sweep must not run meanwhile), exclusive by
/// tests that install or uninstall the fetcher. A `flock` on `$H/cluster-install.lock`, the
/// same lock as `classcache_e2e::cluster::exclusive`.
pub struct ClusterLock(#[allow(dead_code)] File);

pub fn shared_lock() -> ClusterLock {
    let file = classcache_e2e::cluster::lock_file();
    file.lock_shared().expect("flock LOCK_SH");
    ClusterLock(file)
}

pub fn exclusive_lock() -> classcache_e2e::cluster::ClusterWide {
    classcache_e2e::cluster::exclusive()
}

impl Real {
    /// `kubectl get -o json ARGS`, with managedFields (kubectl hides them by default).
    pub fn get(&self, args: &[&str]) -> Value {
        let mut all = vec!["--show-managed-fields"];
        all.extend(args);
        self.get_json(&all)
    }

    /// The object `kind/name` in `ns` as the API server stores it, or `None` when it does not exist.
    pub fn find(&self, ns: Option<&str>, what: &str) -> Option<Value> {
        let mut args = vec!["get", "--show-managed-fields", "-o", "json", what];
        if let Some(ns) = ns {
            args.extend(["-n", ns]);
        }
        let out = self.kubectl(&args);
        if out.status.success() {
            return Some(serde_json::from_slice(&out.stdout).unwrap());
        }
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("NotFound") || err.contains("not found"),
            "kubectl {args:?}: {err}"
        );
        None
    }

    /// Runs the plugin with the cluster's admin kubeconfig; (exit code, stdout, stderr).
    pub fn plugin(&self, args: &[&str]) -> (i32, String, String) {
        let kubeconfig = self.kubeconfig.display().to_string();
        let mut all = args.to_vec();
        if !args.contains(&"--kubeconfig") {
            all.extend(["--kubeconfig", &kubeconfig]);
        }
        super::run(&all, None, &[])
    }

    /// A namespace with a unique name and the test label; deleted (and waited for) when dropped.
    pub fn namespace(&self, prefix: &str) -> TestNamespace<'_> {
        let name = unique_name(prefix).to_lowercase();
        self.apply(&format!(
            r#"{{"apiVersion": "v1", "kind": "Namespace", "metadata": {{"name": "{name}", "labels": {{"{}": "{}"}}}}}}"#,
            TEST_LABEL.0, TEST_LABEL.1
        ));
        TestNamespace {
            cluster: self,
            name,
        }
    }

    /// The custom resources the tests use, created once (idempotently, also across processes):
    /// Argo Rollouts' `rollouts.argoproj.io` (a workload the plugin knows) and
    /// `widgets.example.com` (a type without a pod template, found by discovery).
    pub fn crds(&self) {
        static DONE: OnceLock<()> = OnceLock::new();
        DONE.get_or_init(|| {
            for (group, kind, plural) in [
                ("argoproj.io", "Rollout", "rollouts"),
                ("example.com", "Widget", "widgets"),
            ] {
                self.apply(&format!(
                    r#"{{"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                    "metadata": {{"name": "{plural}.{group}", "labels": {{"{}": "{}"}}}},
                    "spec": {{"group": "{group}", "scope": "Namespaced",
                      "names": {{"kind": "{kind}", "plural": "{plural}", "singular": "{}", "listKind": "{kind}List"}},
                      "versions": [{{"name": "v1alpha1", "served": true, "storage": true,
                        "schema": {{"openAPIV3Schema": {{"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}}}]}}}}"#,
                    TEST_LABEL.0,
                    TEST_LABEL.1,
                    kind.to_lowercase()
                ));
                self.kubectl_ok(&[
                    "wait",
                    "--for=condition=Established",
                    &format!("crd/{plural}.{group}"),
                    "--timeout=60s",
                ]);
            }
        });
    }

    /// A kubeconfig for the service account `sa` of `ns` (a token from the TokenRequest API),
    /// written to `dir`: the cluster's RBAC then decides what the plugin may do.
    pub fn service_account_kubeconfig(&self, ns: &str, sa: &str, dir: &Path) -> PathBuf {
        let token = self.kubectl_ok(&["create", "token", sa, "-n", ns]);
        let admin = self.get_raw_config();
        let cluster = &admin["clusters"][0]["cluster"];
        let config = serde_json::json!({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "c", "cluster": cluster}],
            "users": [{"name": sa, "user": {"token": token.trim()}}],
            "contexts": [{"name": "c", "context": {"cluster": "c", "user": sa, "namespace": ns}}],
            "current-context": "c",
        });
        let path = dir.join(format!("{sa}.kubeconfig"));
        std::fs::write(&path, serde_json::to_string(&config).unwrap()).unwrap();
        path
    }

    fn get_raw_config(&self) -> Value {
        serde_json::from_str(&self.kubectl_ok(&[
            "config",
            "view",
            "--raw",
            "--minify",
            "--flatten",
            "-o",
            "json",
        ]))
        .unwrap()
    }

    /// An image with busybox (sh, httpd, sleep), pushed once to the harness registry, which
    /// the nodes pull from under the same reference.
    pub fn busybox_image(&self) -> &'static str {
        static IMAGE: OnceLock<String> = OnceLock::new();
        IMAGE.get_or_init(|| {
            let h = self.harness;
            let image = format!("{}/classcache-test/busybox:plugin-live", h.registry);
            let dir = tempfile::tempdir().unwrap();
            let bin = dir.path().join("rootfs/bin");
            std::fs::create_dir_all(&bin).unwrap();
            std::fs::copy("/bin/busybox", bin.join("busybox"))
                .expect("/bin/busybox (Debian's busybox-static) is installed by the harness");
            for applet in ["sh", "httpd", "sleep", "mkdir", "echo"] {
                std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
            }
            std::fs::write(
                dir.path().join("Dockerfile"),
                "FROM scratch\nCOPY rootfs /\nCMD [\"/bin/sh\"]\n",
            )
            .unwrap();
            h.docker_build(dir.path(), &image);
            h.docker_ok(&["push", &image]);
            image
        })
    }

    /// Polls `check` every 500 ms until it gives `Some`, or panics after `timeout`.
    pub fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        check: impl FnMut() -> Option<T>,
    ) -> T {
        self.0.wait_for(what, timeout, check, String::new)
    }
}

/// A test namespace; deleted when dropped, waiting until it is gone, so that nothing it held
/// (an enabled workload) is still listed by a later `uninstall`.
pub struct TestNamespace<'a> {
    cluster: &'a Cluster,
    pub name: String,
}

impl Drop for TestNamespace<'_> {
    fn drop(&mut self) {
        if std::env::var_os("CLASSCACHE_KEEP_NAMESPACES").is_none() {
            let _ = self.cluster.kubectl(&[
                "delete",
                "namespace",
                &self.name,
                "--wait=true",
                "--timeout=120s",
            ]);
        }
    }
}
