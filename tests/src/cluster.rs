//! The harness's real Kubernetes cluster as the end-to-end tests use it: kubectl, the plugin,
//! images on the nodes, namespaces that clean up, waits. It must not start or stop the cluster.
//!
//! `tests/harness/cluster-up.sh` (called by `up.sh`) starts the API server, the nodes' kubelets
//! and containerds; [`cluster`] reads where they are from `$H/env`.

use crate::{harness, repo_root, unique_name, Harness};
use serde_json::Value;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// The running cluster, as `cluster-up.sh` reported it in `$H/env`.
#[derive(Debug)]
pub struct Cluster {
    pub harness: &'static Harness,
    /// The admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// kubectl built from the same Kubernetes version as the cluster.
    pub kubectl: PathBuf,
    /// Node names, e.g. `node-a node-b`.
    pub nodes: Vec<String>,
    /// `v1.35.4`.
    pub version: String,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();

/// The harness's cluster; panics (never skips) when `up.sh` did not start one.
pub fn cluster() -> &'static Cluster {
    match CLUSTER.get_or_init(|| Cluster::from_harness(harness())) {
        Ok(cluster) => cluster,
        Err(message) => panic!("the harness's Kubernetes cluster is not available: {message}"),
    }
}

/// Held while a test changes cluster-wide state (the fetcher install, the sweep of stale
/// `classcache-test` namespaces): a mutex in this process, and an exclusive `flock` on
/// `$H/cluster-install.lock` across processes. The plugin's live tests
/// (kubectl-classcache/tests/common/real.rs) take the same lock: shared while they have
/// workloads enabled in their namespaces, exclusive around install/uninstall.
pub struct ClusterWide {
    _file: std::fs::File,
    _guard: MutexGuard<'static, ()>,
}

/// Waits for, then holds, the in-process and the cross-process lock on cluster-wide state.
pub fn exclusive() -> ClusterWide {
    static LOCK: Mutex<()> = Mutex::new(());
    let guard = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let file = lock_file();
    file.lock()
        .expect("flock LOCK_EX on $H/cluster-install.lock");
    ClusterWide {
        _file: file,
        _guard: guard,
    }
}

/// `$H/cluster-install.lock`, the file every process that touches cluster-wide state locks
/// (exclusively to change it, shared to depend on it).
pub fn lock_file() -> std::fs::File {
    let path = harness().harness_dir.join("cluster-install.lock");
    std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()))
}

/// The class+load log line of a class the JVM took from the dynamic (top) archive: the one
/// classcache delivered, never the JDK's own base archive.
pub const FROM_TOP_ARCHIVE: &str = "source: shared objects file (top)";

/// A workspace binary (`kubectl-classcache`, `classcache-build`), found beside the running test
/// executable (`target/<profile>/deps/<test>` -> `target/<profile>/<name>`), since Cargo gives a
/// test the paths of its own package's binaries only. A benchmark (profile `release`) falls
/// back to the `debug` build that `cargo build --workspace` makes.
pub fn workspace_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable has a path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executables live in target/<profile>/deps");
    let candidates = [dir.join(name), dir.with_file_name("debug").join(name)];
    candidates
        .iter()
        .find(|path| path.is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "{} is missing; build the workspace first (`cargo build --workspace`; `cargo test --workspace` builds every binary too)",
                candidates[0].display()
            )
        })
}

impl Cluster {
    fn from_harness(h: &'static Harness) -> Result<Cluster, String> {
        let get = |name: &str| {
            h.env.get(name).cloned().ok_or_else(|| {
                format!("$H/env has no {name}; run tests/harness/up.sh without CLASSCACHE_HARNESS_CLUSTER=0")
            })
        };
        Ok(Cluster {
            harness: h,
            kubeconfig: get("CLASSCACHE_KUBECONFIG")?.into(),
            kubectl: get("CLASSCACHE_KUBECTL")?.into(),
            nodes: get("CLASSCACHE_CLUSTER_NODES")?
                .split_whitespace()
                .map(str::to_string)
                .collect(),
            version: get("CLASSCACHE_CLUSTER_VERSION")?,
        })
    }

    /// A command for `program` with the harness's variables and `KUBECONFIG` set.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = self.harness.command(program);
        command.env("KUBECONFIG", &self.kubeconfig);
        command
    }

    /// Runs kubectl and returns its output, success or not.
    pub fn kubectl<S: AsRef<OsStr>>(&self, args: &[S]) -> Output {
        self.command(&self.kubectl)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.kubectl.display()))
    }

    /// Runs kubectl; panics with its stderr when it fails; returns trimmed stdout.
    pub fn kubectl_ok<S: AsRef<OsStr>>(&self, args: &[S]) -> String {
        ok(&self.kubectl, args, self.kubectl(args))
    }

    /// `kubectl get -o json`.
    pub fn get_json(&self, args: &[&str]) -> Value {
        let mut all = vec!["get", "-o", "json"];
        all.extend(args);
        let text = self.kubectl_ok(&all);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("kubectl {all:?}: not JSON: {e}"))
    }

    /// `kubectl apply -f -` of `manifest` (YAML or JSON).
    pub fn apply(&self, manifest: &str) -> String {
        let mut child = self
            .command(&self.kubectl)
            .args(["apply", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("kubectl starts");
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(manifest.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        ok(&self.kubectl, &["apply", "-f", "-"], output)
    }

    /// Runs `kubectl-classcache` (the workspace's build) against the cluster.
    pub fn plugin<S: AsRef<OsStr>>(&self, args: &[S]) -> Output {
        let plugin = workspace_binary("kubectl-classcache");
        self.command(&plugin)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", plugin.display()))
    }

    /// Runs the plugin; panics with its output when it fails; returns stdout.
    pub fn plugin_ok<S: AsRef<OsStr>>(&self, args: &[S]) -> String {
        ok(
            &workspace_binary("kubectl-classcache"),
            args,
            self.plugin(args),
        )
    }

    /// A namespace with a unique name, deleted when the value is dropped.
    pub fn namespace(&self, prefix: &str, labels: &[(&str, &str)]) -> Namespace<'_> {
        let name = unique_name(prefix).to_lowercase();
        let labels: String = labels
            .iter()
            .map(|(k, v)| format!("    {k}: \"{v}\"\n"))
            .collect();
        self.apply(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n  labels:\n    classcache-test: \"true\"\n{labels}"
        ));
        Namespace {
            cluster: self,
            name,
        }
    }

    /// Deletes the namespaces that test processes no longer running made (label
    /// `classcache-test`; [`unique_name`] puts the creating process id in the name), and waits
    /// until they are gone. Namespaces of tests still running are left alone.
    pub fn delete_stale_test_namespaces(&self) {
        let list = self.get_json(&["namespaces", "-l", "classcache-test=true"]);
        let stale: Vec<String> = list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|ns| ns["metadata"]["name"].as_str())
            .filter(|name| {
                name.split('-')
                    .rev()
                    .nth(2)
                    .and_then(|pid| pid.parse::<u32>().ok())
                    .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
            })
            .map(str::to_string)
            .collect();
        if stale.is_empty() {
            return;
        }
        let mut args = vec!["delete", "namespace", "--wait=true", "--timeout=180s"];
        args.extend(stale.iter().map(String::as_str));
        self.kubectl_ok(&args);
    }

    /// Polls `check` every 500 ms until it returns `Some`, or panics after `timeout` with
    /// `what` and the last state `describe` gives.
    pub fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut() -> Option<T>,
        describe: impl Fn() -> String,
    ) -> T {
        let start = Instant::now();
        loop {
            if let Some(value) = check() {
                return value;
            }
            if start.elapsed() > timeout {
                panic!(
                    "timed out after {timeout:?} waiting for {what}\n{}",
                    describe()
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// What the cluster says about a namespace's pods and events (for failure messages).
    pub fn describe_namespace(&self, namespace: &str) -> String {
        let pods = self.kubectl(&["get", "pods", "-n", namespace, "-o", "wide"]);
        let events = self.kubectl(&["get", "events", "-n", namespace, "--sort-by=.lastTimestamp"]);
        format!(
            "pods:\n{}{}\nevents:\n{}",
            String::from_utf8_lossy(&pods.stdout),
            String::from_utf8_lossy(&pods.stderr),
            String::from_utf8_lossy(&events.stdout)
        )
    }

    /// Waits for a rollout (`deploy/NAME`, `ds/NAME`) to complete.
    pub fn rollout_status(&self, namespace: &str, workload: &str, timeout: Duration) {
        let secs = format!("--timeout={}s", timeout.as_secs());
        let output = self.kubectl(&["rollout", "status", "-n", namespace, workload, &secs]);
        assert!(
            output.status.success(),
            "rollout of {workload} in {namespace} did not complete: {}\n{}",
            String::from_utf8_lossy(&output.stderr),
            self.describe_namespace(namespace)
        );
    }

    /// Names of the pods matching `selector`, with their node.
    pub fn pods(&self, namespace: &str, selector: &str) -> Vec<(String, String)> {
        let list = self.get_json(&["pods", "-n", namespace, "-l", selector]);
        list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .map(|p| {
                (
                    p["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    p["spec"]["nodeName"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                )
            })
            .collect()
    }

    /// How many classes the JVM of each running pod of `app` (container `container`) says it
    /// loaded from the delivered archive, from its own `-Xlog:class+load` output: (pod, node, count).
    pub fn classes_from_archive(
        &self,
        namespace: &str,
        app: &str,
        container: &str,
    ) -> Vec<(String, String, usize)> {
        self.pods(namespace, &format!("app={app}"))
            .into_iter()
            .map(|(pod, node)| {
                let log = self.kubectl_ok(&["logs", "-n", namespace, &pod, "-c", container]);
                let count = log.lines().filter(|l| l.contains(FROM_TOP_ARCHIVE)).count();
                (pod, node, count)
            })
            .collect()
    }

    /// The archive reference (`repo@sha256:…`) that `enable` pinned in `template` (a pod
    /// template, as JSON), from its `classcache.io/archive` annotation's `app` container.
    pub fn pinned_reference(template: &Value) -> String {
        let pinned = template["metadata"]["annotations"]
            [classcache_core::podtemplate::ANNOTATION_ARCHIVE]
            .as_str()
            .expect("enable pins the archive");
        serde_json::from_str::<Value>(pinned).unwrap()["app"]
            .as_str()
            .expect("the app container's archive")
            .to_string()
    }

    /// The pod template of deployment `name` in `namespace`, as JSON.
    pub fn deployment_template(&self, namespace: &str, name: &str) -> Value {
        self.get_json(&["deployment", "-n", namespace, name])["spec"]["template"].clone()
    }

    /// GET `http://host:FETCHER_PORT/path` from inside `pod` with busybox nc (the harness's
    /// busybox wget crashes): the status code and body, or 0 and what kubectl said.
    pub fn get_from_pod(
        &self,
        namespace: &str,
        pod: &str,
        host: &str,
        path: &str,
    ) -> (u16, String) {
        let out = self.kubectl(&[
            "-n",
            namespace,
            "exec",
            pod,
            "--",
            "sh",
            "-c",
            // stdin stays open a while: on busybox nc's early half-close the server may drop
            // the request unanswered.
            r#"(printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$2" "$0"; sleep 3) | nc -w 30 "$0" "$1""#,
            host,
            &classcache_core::podtemplate::FETCHER_PORT.to_string(),
            path,
        ]);
        match parse_http_response(&String::from_utf8_lossy(&out.stdout)) {
            (0, _) => (0, String::from_utf8_lossy(&out.stderr).into_owned()),
            answer => answer,
        }
    }

    /// The layer (digest, size) of the archive `reference` (`repo@sha256:…`, an archive
    /// manifest or an index of them, whose first entry is taken), read from the registry.
    pub fn archive_layer(&self, reference: &str) -> (String, u64) {
        let layer = self.archive_layer_descriptor(reference);
        (
            layer["digest"]
                .as_str()
                .expect("a layer digest")
                .to_string(),
            layer["size"].as_u64().expect("a layer size"),
        )
    }

    /// Where the JVM of a pod enabled with the pinned `reference` sees its archive:
    /// `paths::pod_archive_path` with the file name the archive's layer carries.
    pub fn pod_archive_path(&self, reference: &str) -> String {
        let pinned = reference.rsplit_once('@').expect("a pinned reference").1;
        let layer = self.archive_layer_descriptor(reference);
        let file = layer["annotations"]["org.opencontainers.image.title"]
            .as_str()
            .expect("the archive layer names its file");
        classcache_core::paths::pod_archive_path(pinned, file)
    }

    /// The archive layer's descriptor (of the first platform's archive for an index).
    fn archive_layer_descriptor(&self, reference: &str) -> Value {
        let repository = reference.rsplit_once('@').expect("a pinned reference").0;
        let manifest = self.registry_manifest(reference);
        if let Some(first) = manifest["manifests"].as_array().and_then(|m| m.first()) {
            let platform = format!("{repository}@{}", first["digest"].as_str().unwrap());
            return self.archive_layer_descriptor(&platform);
        }
        manifest["layers"][0].clone()
    }

    /// The manifest or index `reference` (`registry/repo@sha256:…` or `registry/repo:tag`)
    /// names, as the registry serves it.
    pub fn registry_manifest(&self, reference: &str) -> Value {
        let (repository, pinned) = reference
            .rsplit_once('@')
            .or_else(|| reference.rsplit_once(':'))
            .expect("a pinned or tagged reference");
        let path = repository.split_once('/').expect("registry/repository").1;
        let url = format!(
            "{}/v2/{path}/manifests/{pinned}",
            self.harness.registry_url()
        );
        let output = Command::new("curl")
            .args([
                "-fsS",
                "-H",
                "Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json",
                &url,
            ])
            .output()
            .expect("curl runs");
        serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|e| panic!("{url}: {e}: {}", String::from_utf8_lossy(&output.stderr)))
    }

    /// Stores `manifest` (an OCI image manifest) in `repository` (`registry/repo`) under `tag`;
    /// returns its pinned reference.
    pub fn put_registry_manifest(&self, repository: &str, tag: &str, manifest: &Value) -> String {
        let body = serde_json::to_vec(manifest).unwrap();
        let path = repository.split_once('/').expect("registry/repository").1;
        let url = format!("{}/v2/{path}/manifests/{tag}", self.harness.registry_url());
        let mut child = Command::new("curl")
            .args([
                "-fsS",
                "-X",
                "PUT",
                "-H",
                "Content-Type: application/vnd.oci.image.manifest.v1+json",
                "--data-binary",
                "@-",
                &url,
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("curl runs");
        use std::io::Write;
        child.stdin.take().unwrap().write_all(&body).unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "PUT {url}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        format!(
            "{repository}@sha256:{}",
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&body))
        )
    }

    /// The registry's answered GETs of blob `digest` in the repository of `reference`, from its
    /// access log, skipping its first `skip` lines: (requests, bytes sent).
    pub fn registry_blob_gets(&self, reference: &str, digest: &str, skip: usize) -> (usize, u64) {
        let repository = reference.rsplit_once('@').map_or(reference, |(r, _)| r);
        let path = repository.split_once('/').expect("registry/repository").1;
        let request = format!("\"GET /v2/{path}/blobs/{digest} ");
        self.registry_log()
            .lines()
            .skip(skip)
            .filter(|l| l.contains(&request))
            .filter_map(|l| {
                // Apache combined: … "GET /path HTTP/1.1" 200 12345 "referer" "agent"
                let mut fields = l.split("\" ").nth(1)?.split_whitespace();
                let status = fields.next()?;
                let bytes = fields.next()?.parse::<u64>().ok()?;
                status.starts_with('2').then_some(bytes)
            })
            .fold((0, 0), |(n, total), bytes| (n + 1, total + bytes))
    }

    /// The registry's access log (`$H/registry.log`).
    pub fn registry_log(&self) -> String {
        std::fs::read_to_string(self.harness.harness_dir.join("registry.log")).unwrap_or_default()
    }

    /// `kubectl classcache install` with its defaults (the project's fetcher image on every
    /// node first), then waits for a Ready fetcher on every node. Idempotent.
    pub fn install_fetcher(&self) {
        self.install_fetcher_with(&[]);
    }

    /// [`Cluster::install_fetcher`] with more `install` flags (e.g. `--stats`); a later
    /// `install_fetcher` takes them away again (server-side apply drops what it no longer sets).
    pub fn install_fetcher_with(&self, extra: &[&str]) {
        self.fetcher_image();
        // The archives the tests enable are in the harness registry.
        let mut args = vec![
            "install",
            "--allowed-registry",
            self.harness.registry.as_str(),
        ];
        args.extend(extra);
        self.plugin_ok(&args);
        self.rollout_status(
            "classcache",
            "ds/classcache-fetcher",
            Duration::from_secs(300),
        );
    }

    /// The fetcher image the project builds (`scripts/fetcher-image.sh`), built once per test
    /// process under its default name and loaded into every node's containerd, as an operator
    /// who builds it would; `install` and `enable` then run with their default image.
    pub fn fetcher_image(&self) -> &'static str {
        static IMAGE: OnceLock<String> = OnceLock::new();
        IMAGE.get_or_init(|| {
            let script = repo_root().join("scripts/fetcher-image.sh");
            let archive = tempfile::tempdir().expect("a temp dir");
            let tar = archive.path().join("fetcher.tar");
            let args = ["--save".to_string(), tar.display().to_string()];
            let output = self
                .harness
                .command("bash")
                .arg(&script)
                .args(&args)
                .env("DOCKER_HOST", &self.harness.docker_host)
                .env("CLASSCACHE_DOCKER_CLI", &self.harness.docker_cli)
                .output()
                .expect("bash runs");
            let reference = ok(&script, &args, output);
            let ctr = self
                .harness
                .env
                .get("CLASSCACHE_CLUSTER_CTR")
                .expect("cluster-up.sh writes CLASSCACHE_CLUSTER_CTR");
            for node in &self.nodes {
                let import = [
                    node.as_str(),
                    "images",
                    "import",
                    &tar.display().to_string(),
                ];
                let output = self.command(ctr).args(import).output().expect("ctr runs");
                ok(Path::new(ctr), &import, output);
            }
            reference
        })
    }
}

/// A test namespace; deleted (without waiting) when dropped.
pub struct Namespace<'a> {
    cluster: &'a Cluster,
    pub name: String,
}

impl Drop for Namespace<'_> {
    fn drop(&mut self) {
        if std::env::var_os("CLASSCACHE_KEEP_NAMESPACES").is_none() {
            let _ = self
                .cluster
                .kubectl(&["delete", "namespace", &self.name, "--wait=false"]);
        }
    }
}

fn ok<S: AsRef<OsStr>>(program: &Path, args: &[S], output: Output) -> String {
    if !output.status.success() {
        let shown: Vec<_> = args.iter().map(|a| a.as_ref().to_string_lossy()).collect();
        panic!(
            "{} {} failed ({}):\nstdout: {}\nstderr: {}",
            program.display(),
            shown.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// Σ Pss and Σ Rss (kB) of every mapping of a file whose path ends with `file_name` (e.g. the
/// pod's whole archive path, [`Cluster::pod_archive_path`]), in the
/// processes of the pods `pods` (found by the `HOSTNAME` the kubelet gives each pod; the nodes
/// share this machine's PID namespace), and how many of those processes map it.
pub fn archive_mappings(pods: &[String], file_name: &str) -> (u64, u64, usize) {
    let (mut pss, mut rss, mut processes) = (0, 0, 0);
    let hostnames: Vec<Vec<u8>> = pods
        .iter()
        .map(|p| format!("HOSTNAME={p}").into_bytes())
        .collect();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if !environ
            .split(|b| *b == 0)
            .any(|v| hostnames.iter().any(|h| h == v))
        {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(entry.path().join("smaps")) else {
            continue;
        };
        let mut inside = false;
        let mut found = false;
        for line in text.lines() {
            let first = line.split_whitespace().next().unwrap_or_default();
            if first.contains('-') && !first.ends_with(':') {
                inside = line.ends_with(file_name);
                found |= inside;
            } else if inside {
                let value = |prefix: &str| {
                    line.strip_prefix(prefix)
                        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                };
                if let Some(v) = value("Pss:") {
                    pss += v;
                }
                if let Some(v) = value("Rss:") {
                    rss += v;
                }
            }
        }
        processes += usize::from(found);
    }
    (pss, rss, processes)
}

/// The uid the example app's image runs as ([`crate::apps::APP_USER`]).
pub const APP_UID: u32 = 65532;

/// A Deployment of an example-app image serving (`args: ["serve"]`) as the cluster tests run it:
/// non-root as `uid`, restricted-profile compliant, with its own JVM options (class-load logging,
/// a heap size) in JAVA_TOOL_OPTIONS as real workloads carry them, ready once the app answers.
/// `placement` is pod-spec YAML at the spec's level (a nodeSelector, spread constraints), or "".
pub fn jvm_deployment(
    name: &str,
    namespace: &str,
    image: &str,
    replicas: usize,
    uid: u32,
    placement: &str,
) -> String {
    let placement: String = placement.lines().map(|l| format!("      {l}\n")).collect();
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: {namespace}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      terminationGracePeriodSeconds: 2
{placement}      securityContext:
        runAsNonRoot: true
        runAsUser: {uid}
        runAsGroup: {uid}
        seccompProfile: {{type: RuntimeDefault}}
      containers:
        - name: app
          image: {image}
          args: ["serve"]
          env:
            - name: JAVA_TOOL_OPTIONS
              value: "-Xlog:class+load=info:stdout -Xmx128m"
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

/// The status code and body of a raw HTTP/1.0 response (0 when there is no status line).
pub fn parse_http_response(text: &str) -> (u16, String) {
    let text = text.replace('\r', "");
    let status = text
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\n\n").map(|(_, b)| b).unwrap_or_default();
    (status, body.to_string())
}

/// A plain pod of `image` that only sleeps, on `node`, with `annotations` (a YAML flow map), run
/// as [`APP_UID`] under the restricted profile: a tenant's ordinary pod, or a hostile one.
pub fn idle_pod(name: &str, namespace: &str, image: &str, node: &str, annotations: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: {namespace}
  annotations: {annotations}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  securityContext:
    runAsNonRoot: true
    runAsUser: {APP_UID}
    seccompProfile: {{type: RuntimeDefault}}
  containers:
    - name: shell
      image: {image}
      command: ["sh", "-c", "exec sleep 3600"]
      securityContext:
        allowPrivilegeEscalation: false
        capabilities: {{drop: ["ALL"]}}
"#
    )
}
