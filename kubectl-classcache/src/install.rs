//! Rendering `templates/` into the objects `install` applies and `uninstall` deletes.
//! It renders only; applying them is the live module's job.

use anyhow::{Context, Result};
use classcache_core::podtemplate::FETCHER_PORT;
use classcache_core::size::ByteSize;
use serde_json::Value;

use crate::cli::{RenderArgs, SignatureArgs};
use crate::manifest::parse_documents;
use classcache_core::artifact::signature::PublicKey;
use classcache_core::fetcher::args as fetcher_flags;

/// When a template is rendered: always, or only with the flag that gives its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum When {
    Always,
    /// `--registry-config FILE` (the Helm chart: `registryConfig`).
    RegistryConfig,
    /// `--require-signature` (the Helm chart: `requireSignature`).
    RequireSignature,
    /// `--stats` (the Helm chart: `stats`); the DaemonSet's part is [`set_stats`].
    Stats,
}

/// The templates, in apply order (the namespace first; `uninstall` goes backwards). The Helm
/// chart (`crate::helm`) is generated from this same list.
pub(crate) const TEMPLATES: [(&str, When, &str); 8] = [
    (
        "namespace.yaml",
        When::Always,
        include_str!("../../templates/namespace.yaml"),
    ),
    (
        "serviceaccount.yaml",
        When::Always,
        include_str!("../../templates/serviceaccount.yaml"),
    ),
    (
        "rbac.yaml",
        When::Always,
        include_str!("../../templates/rbac.yaml"),
    ),
    (
        "registry-secret.yaml",
        When::RegistryConfig,
        include_str!("../../templates/registry-secret.yaml"),
    ),
    (
        "services.yaml",
        When::Always,
        include_str!("../../templates/services.yaml"),
    ),
    (
        "signature-keys.yaml",
        When::RequireSignature,
        include_str!("../../templates/signature-keys.yaml"),
    ),
    (
        "stats-rbac.yaml",
        When::Stats,
        include_str!("../../templates/stats-rbac.yaml"),
    ),
    (
        "daemonset.yaml",
        When::Always,
        include_str!("../../templates/daemonset.yaml"),
    ),
];

/// The file name of the `n`th (from 1) `--signature-key` in the ConfigMap and its mount: a
/// prefix and a suffix around the number, so the Helm chart can print the same names.
pub(crate) const KEY_FILE: (&str, &str) = ("key-", ".pub");

/// Renders every template with `args`; `registry-secret.yaml` only when credentials are given.
pub fn render(args: &RenderArgs) -> Result<Vec<Value>> {
    check_quantity(&args.max_size)?;
    let store_dir =
        classcache_core::paths::check_store_dir(&args.store_dir).context("--store-dir")?;
    let registry_config = match &args.registry_config {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| {
                format!(
                    "cannot read --registry-config {}; pass a Docker config.json",
                    path.display()
                )
            })?;
            serde_json::from_str::<Value>(&text).with_context(|| {
                format!("--registry-config {} is not JSON; pass a Docker config.json (as `docker login` writes it)", path.display())
            })?;
            Some(text)
        }
        None => None,
    };
    let params: Vec<(&str, String)> = vec![
        ("namespace", args.namespace.clone()),
        ("image", args.image.clone()),
        ("store_dir", store_dir.to_string()),
        ("max_size", args.max_size.clone()),
        ("port", FETCHER_PORT.to_string()),
        // The fetcher splits its --allowed-registry values on `,` (an entry cannot hold one).
        (
            "allowed_registries",
            args.allowed_registries
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
        ),
        (
            "registry_config",
            registry_config.clone().unwrap_or_default(),
        ),
    ];
    let mut objects = vec![];
    for (name, when, text) in TEMPLATES {
        let wanted = match when {
            When::Always => true,
            When::RegistryConfig => registry_config.is_some(),
            When::RequireSignature => args.signatures.require_signature,
            When::Stats => args.stats,
        };
        if !wanted {
            continue;
        }
        for mut doc in parse_documents(text, name)? {
            substitute(&mut doc, &params);
            objects.push(doc);
        }
    }
    if let Some(secret) = &args.image_pull_secret {
        set_image_pull_secrets(&mut objects, serde_json::json!([{"name": secret}]));
    }
    add_signature_keys(&mut objects, &args.signatures)?;
    if args.stats {
        set_stats(&mut objects);
    }
    Ok(objects)
}

/// `--stats`: what reading other processes' `/proc/<pid>/smaps` takes, and nothing more: the
/// host's PID namespace (to see the JVMs at all), CAP_SYS_PTRACE (the JVMs run as other users;
/// the kernel's ptrace read check), and the fetcher's `--stats` (its stats route). Without the
/// flag the DaemonSet keeps neither.
pub(crate) fn set_stats(objects: &mut [Value]) {
    for ds in objects.iter_mut().filter(|o| o["kind"] == "DaemonSet") {
        let pod = &mut ds["spec"]["template"]["spec"];
        pod["hostPID"] = Value::Bool(true);
        let container = &mut pod["containers"][0];
        container["securityContext"]["capabilities"]["add"] = serde_json::json!([STATS_CAPABILITY]);
        if let Some(args) = container["args"].as_array_mut() {
            args.push(Value::from(format!("--{}", fetcher_flags::STATS_FLAG)));
        }
    }
}

/// The one capability `--stats` adds (Kubernetes names capabilities without `CAP_`).
pub(crate) const STATS_CAPABILITY: &str = "SYS_PTRACE";

/// `--image-pull-secret`: where the DaemonSet's pod names it (`value`: the list, or the Helm
/// chart's stand-in for its template action).
pub(crate) fn set_image_pull_secrets(objects: &mut [Value], value: Value) {
    for ds in objects.iter_mut().filter(|o| o["kind"] == "DaemonSet") {
        ds["spec"]["template"]["spec"]["imagePullSecrets"] = value.clone();
    }
}

/// `--require-signature`: each `--signature-key` file (checked to be a usable public key) into
/// the ConfigMap's data as `key-<n>.pub`, and the fetcher's args naming them where it is mounted.
fn add_signature_keys(objects: &mut [Value], signatures: &SignatureArgs) -> Result<()> {
    if !signatures.require_signature {
        return Ok(());
    }
    let mut data = serde_json::Map::new();
    let mut fetcher_args = vec![format!("--{}", fetcher_flags::REQUIRE_SIGNATURE_FLAG)];
    for (n, path) in signatures.signature_keys.iter().enumerate() {
        let pem = std::fs::read_to_string(path).with_context(|| {
            format!(
                "cannot read --signature-key {}; pass the path of a PEM public key",
                path.display()
            )
        })?;
        PublicKey::from_pem(&pem, &format!("--signature-key {}", path.display()))?;
        let name = format!("{}{}{}", KEY_FILE.0, n + 1, KEY_FILE.1);
        fetcher_args.push(format!("--{}", fetcher_flags::SIGNATURE_KEY_FLAG));
        fetcher_args.push(format!("{}/{name}", fetcher_flags::SIGNATURE_KEYS_DIR));
        data.insert(name, Value::from(pem));
    }
    set_signature_keys(
        objects,
        Value::Object(data),
        fetcher_args.into_iter().map(Value::from).collect(),
    );
    Ok(())
}

/// Where the signature keys go: `data` into the keys ConfigMap, `fetcher_args` appended to the
/// fetcher's args (the values, or the Helm chart's stand-ins for its template actions).
pub(crate) fn set_signature_keys(objects: &mut [Value], data: Value, fetcher_args: Vec<Value>) {
    for o in objects.iter_mut() {
        if o["kind"] == "ConfigMap"
            && o["metadata"]["name"] == fetcher_flags::SIGNATURE_KEYS_CONFIGMAP
        {
            o["data"] = data.clone();
        }
        if o["kind"] == "DaemonSet" {
            if let Some(list) =
                o["spec"]["template"]["spec"]["containers"][0]["args"].as_array_mut()
            {
                list.extend(fetcher_args.iter().cloned());
            }
        }
    }
}

/// Replaces `${name}` in every string; a string that is exactly `${port}` becomes a number.
fn substitute(value: &mut Value, params: &[(&str, String)]) {
    match value {
        Value::String(s) => {
            if s == "${port}" {
                *value = Value::from(FETCHER_PORT);
                return;
            }
            for (name, with) in params {
                let placeholder = format!("${{{name}}}");
                if s.contains(&placeholder) {
                    *s = s.replace(&placeholder, with);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| substitute(v, params)),
        Value::Object(map) => map.values_mut().for_each(|v| substitute(v, params)),
        _ => {}
    }
}

/// Accepts a byte size the fetcher's `--max-size` accepts (core's one parser): the value is
/// rendered into the DaemonSet as written.
fn check_quantity(q: &str) -> Result<()> {
    q.parse::<ByteSize>()
        .map_err(|e| anyhow::Error::new(e).context(format!("--max-size {q:?}")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use classcache_core::podtemplate as names;

    fn defaults() -> RenderArgs {
        RenderArgs {
            image: names::DEFAULT_FETCHER_IMAGE.into(),
            namespace: "cc".into(),
            store_dir: "/data/cc/".into(),
            max_size: "5Gi".into(),
            registry_config: None,
            image_pull_secret: Some("pull".into()),
            signatures: Default::default(),
            stats: false,
            allowed_registries: vec![
                "registry.example/shop".parse().unwrap(),
                "[fd00::1]:5000".parse().unwrap(),
            ],
        }
    }

    /// The DaemonSet carries every allowed registry, read back as `enable` reads it.
    #[test]
    fn allowed_registries_render_into_the_fetchers_args() {
        let objects = render(&defaults()).unwrap();
        let ds = objects.iter().find(|o| o["kind"] == "DaemonSet").unwrap();
        let args: Vec<String> =
            serde_json::from_value(ds["spec"]["template"]["spec"]["containers"][0]["args"].clone())
                .unwrap();
        let read = classcache_core::allowed_registry::AllowedRegistries::from_args(&args).unwrap();
        assert_eq!(read.0, defaults().allowed_registries);
    }

    #[test]
    fn renders_every_object_with_the_core_names() {
        let objects = render(&defaults()).unwrap();
        let text = serde_json::to_string(&objects).unwrap();
        assert!(!text.contains("${"), "unreplaced placeholder in {text}");
        let find = |kind: &str, name: &str| {
            objects
                .iter()
                .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
                .unwrap_or_else(|| panic!("{kind}/{name}"))
        };
        let ds = find("DaemonSet", names::DAEMONSET);
        assert_eq!(ds["metadata"]["namespace"], "cc");
        assert_eq!(
            ds["spec"]["template"]["spec"]["volumes"][0]["hostPath"]["path"],
            "/data/cc"
        );
        assert_eq!(
            ds["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"],
            names::FETCHER_PORT
        );
        assert_eq!(
            ds["spec"]["template"]["spec"]["imagePullSecrets"][0]["name"],
            "pull"
        );
        let pod = &ds["spec"]["template"]["spec"];
        assert_eq!(
            pod["hostNetwork"], true,
            "init containers reach the fetcher at status.hostIP"
        );
        assert_eq!(
            pod["containers"][0]["ports"][0]["hostPort"],
            names::FETCHER_PORT
        );
        assert_eq!(
            find("Service", names::PEERS_SERVICE)["spec"]["clusterIP"],
            "None"
        );
        let role = find("Role", names::DAEMONSET);
        assert_eq!(role["rules"].as_array().unwrap().len(), 1);
        assert_eq!(
            role["rules"][0]["resources"],
            serde_json::json!(["endpointslices"])
        );
        assert_eq!(
            role["rules"][0]["verbs"],
            serde_json::json!(["get", "list", "watch"])
        );
        assert!(objects.iter().all(|o| o["kind"] != "Secret"));
        assert!(objects
            .iter()
            .all(|o| o["metadata"]["labels"][names::PART_OF_LABEL.0] == names::PART_OF_LABEL.1));
    }

    #[test]
    fn require_signature_stores_the_keys_and_passes_them_to_the_fetcher() {
        let dir = tempfile::tempdir().unwrap();
        let key = classcache_core::artifact::signature::SigningKey::from_pem(
            classcache_core::testing::SIGNING_KEY_PEM,
            "k",
        )
        .unwrap();
        let (a, b) = (dir.path().join("a.pub"), dir.path().join("b.pub"));
        std::fs::write(&a, key.public_key_pem()).unwrap();
        std::fs::write(&b, key.public_key_pem()).unwrap();
        let signed = |keys: Vec<std::path::PathBuf>| RenderArgs {
            signatures: SignatureArgs {
                require_signature: true,
                signature_keys: keys,
            },
            ..defaults()
        };
        let objects = render(&signed(vec![a.clone(), b])).unwrap();
        let cm = objects
            .iter()
            .find(|o| o["kind"] == "ConfigMap")
            .expect("the keys ConfigMap");
        assert_eq!(
            cm["metadata"]["name"],
            fetcher_flags::SIGNATURE_KEYS_CONFIGMAP
        );
        assert_eq!(cm["metadata"]["namespace"], "cc");
        assert_eq!(cm["data"]["key-1.pub"], key.public_key_pem());
        assert_eq!(cm["data"]["key-2.pub"], key.public_key_pem());
        let ds = objects.iter().find(|o| o["kind"] == "DaemonSet").unwrap();
        let pod = &ds["spec"]["template"]["spec"];
        let args: Vec<String> =
            serde_json::from_value(pod["containers"][0]["args"].clone()).unwrap();
        let dir_of = fetcher_flags::SIGNATURE_KEYS_DIR;
        assert!(
            args.ends_with(&[
                "--require-signature".into(),
                "--signature-key".into(),
                format!("{dir_of}/key-1.pub"),
                "--signature-key".into(),
                format!("{dir_of}/key-2.pub"),
            ]),
            "{args:?}"
        );
        let mount = pod["containers"][0]["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["mountPath"] == dir_of)
            .expect("the keys are mounted where the args say");
        let volume = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == mount["name"])
            .unwrap();
        assert_eq!(
            volume["configMap"]["name"],
            fetcher_flags::SIGNATURE_KEYS_CONFIGMAP
        );
        // Without the flag: no ConfigMap, no signature args.
        let plain = render(&defaults()).unwrap();
        assert!(plain.iter().all(|o| o["kind"] != "ConfigMap"));
        assert!(!serde_json::to_string(&plain)
            .unwrap()
            .contains("--require-signature"));
        // A file that is not a public key is refused, named, with the fix.
        let e = render(&signed(vec![dir.path().join("missing.pub")])).unwrap_err();
        assert!(
            format!("{e:#}").contains("cannot read --signature-key"),
            "{e:#}"
        );
        std::fs::write(&a, classcache_core::testing::SIGNING_KEY_PEM).unwrap();
        let e = format!("{:#}", render(&signed(vec![a])).unwrap_err());
        assert!(
            e.contains("a.pub") && e.contains("not a PUBLIC KEY") && e.contains("openssl"),
            "{e}"
        );
    }

    /// The default install is least-privilege: no host PID namespace, no capability, no stats
    /// flag, no RBAC outside its namespace but the pod watch's; `--stats` adds exactly those.
    #[test]
    fn stats_add_host_pid_ptrace_and_one_role_only_when_asked() {
        let plain = render(&defaults()).unwrap();
        let ds = plain.iter().find(|o| o["kind"] == "DaemonSet").unwrap();
        let pod = &ds["spec"]["template"]["spec"];
        assert!(pod.get("hostPID").is_none(), "{pod}");
        assert!(
            pod.get("hostIPC").is_none()
                && pod["containers"][0]["securityContext"]["privileged"].is_null()
        );
        assert_eq!(
            pod["containers"][0]["securityContext"]["capabilities"],
            serde_json::json!({"drop": ["ALL"]})
        );
        let text = serde_json::to_string(&plain).unwrap();
        assert!(
            !text.contains("--stats") && !text.contains("SYS_PTRACE"),
            "{text}"
        );
        assert!(plain
            .iter()
            .all(|o| o["metadata"]["namespace"] != "default"));

        let stats = render(&RenderArgs {
            stats: true,
            ..defaults()
        })
        .unwrap();
        let ds = stats.iter().find(|o| o["kind"] == "DaemonSet").unwrap();
        let pod = &ds["spec"]["template"]["spec"];
        assert_eq!(pod["hostPID"], true);
        assert_eq!(
            pod["containers"][0]["securityContext"]["capabilities"],
            serde_json::json!({"drop": ["ALL"], "add": ["SYS_PTRACE"]})
        );
        assert_eq!(
            pod["containers"][0]["securityContext"]["allowPrivilegeEscalation"],
            false
        );
        let args = pod["containers"][0]["args"].as_array().unwrap();
        assert_eq!(args.last().unwrap(), "--stats");
        // The added objects: one Role and its binding in `default`, `get` on one EndpointSlice.
        let added: Vec<&Value> = stats
            .iter()
            .filter(|o| {
                !plain
                    .iter()
                    .any(|p| p["kind"] == o["kind"] && p["metadata"] == o["metadata"])
            })
            .collect();
        assert_eq!(added.len(), 2, "{added:?}");
        let role = added.iter().find(|o| o["kind"] == "Role").unwrap();
        assert_eq!(role["metadata"]["namespace"], "default");
        assert_eq!(role["metadata"]["name"], "classcache-fetcher-stats-cc");
        assert_eq!(
            role["rules"],
            serde_json::json!([{"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "resourceNames": ["kubernetes"], "verbs": ["get"]}])
        );
        let binding = added.iter().find(|o| o["kind"] == "RoleBinding").unwrap();
        assert_eq!(binding["subjects"][0]["namespace"], "cc");
        assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
    }

    #[test]
    fn bad_parameters_are_named() {
        let e = render(&RenderArgs {
            max_size: "lots".into(),
            ..defaults()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("--max-size \"lots\""), "{e}");
        // Every size the fetcher's --max-size takes renders (the same parser, core's ByteSize).
        for (size, _) in classcache_core::size::EXAMPLES {
            let objects = render(&RenderArgs {
                max_size: size.to_string(),
                ..defaults()
            })
            .unwrap_or_else(|e| panic!("--max-size {size}: {e:#}"));
            let ds = objects.iter().find(|o| o["kind"] == "DaemonSet").unwrap();
            let args = ds["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
            assert!(args.contains(&format!("\"{size}\"")), "{args}");
        }
        let e = render(&RenderArgs {
            store_dir: "rel".into(),
            ..defaults()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("--store-dir"), "{e}");
    }
}
