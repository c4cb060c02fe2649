//! Property tests of the pod-template edits over generated pod templates.
//! They check the laws only; fixtures of real manifests are tested in kubectl-classcache.

use super::*;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

const DIGEST_A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const DIGEST_B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        "-Xm[sx][1-9][0-9]{0,3}[mg]",
        "-D[a-z]{1,6}=[a-z0-9$()]{0,6}",
        Just("-XX:+UseG1GC".to_string()),
        Just("-javaagent:/otel/agent.jar".to_string()),
        Just("-Xshare:off".to_string()),
    ]
}

fn java_tool_options_entry() -> impl Strategy<Value = Value> {
    prop_oneof![
        (prop::collection::vec(token(), 0..4), "[ ]{0,2}").prop_map(|(t, pad)| json!({
            "name": "JAVA_TOOL_OPTIONS", "value": format!("{pad}{}", t.join(" "))
        })),
        Just(json!({"name": "JAVA_TOOL_OPTIONS"})),
        Just(
            json!({"name": "JAVA_TOOL_OPTIONS", "valueFrom": {"configMapKeyRef": {"name": "jvm", "key": "opts"}}})
        ),
    ]
}

/// A list field that may be absent, null, empty or hold entries.
fn maybe_list(entries: impl Strategy<Value = Vec<Value>>) -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        Just(None),
        Just(Some(Value::Null)),
        entries.prop_map(|e| Some(Value::Array(e)))
    ]
}

fn container(name: String) -> impl Strategy<Value = Value> {
    let other_env = prop::collection::vec(
        "[A-Z]{1,5}".prop_map(|n| json!({"name": n, "value": "x"})),
        0..3,
    );
    let env = (
        other_env,
        prop::option::of(java_tool_options_entry()),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(mut env, jto, at)| {
            if let Some(jto) = jto {
                let i = at.index(env.len() + 1);
                env.insert(i, jto);
            }
            env
        });
    let mounts = prop::collection::vec(
        "[a-z]{1,5}".prop_map(|n| json!({"name": n, "mountPath": format!("/m/{n}")})),
        0..2,
    );
    (
        maybe_list(env),
        maybe_list(mounts),
        prop::option::of(prop::collection::vec("[a-z-]{1,6}", 0..3)),
        prop::option::of(prop::collection::vec(token(), 0..3)),
        "[a-z]{1,6}(:[0-9]{1,2})?",
    )
        .prop_map(move |(env, mounts, command, args, image)| {
            let mut c = Map::new();
            c.insert("name".into(), json!(name));
            c.insert("image".into(), json!(format!("registry.example/{image}")));
            if let Some(command) = command {
                c.insert("command".into(), json!(command));
            }
            if let Some(args) = args {
                c.insert("args".into(), json!(args));
            }
            if let Some(env) = env {
                c.insert("env".into(), env);
            }
            if let Some(mounts) = mounts {
                c.insert("volumeMounts".into(), mounts);
            }
            Value::Object(c)
        })
}

fn arb_pod_template() -> impl Strategy<Value = Value> {
    let containers = (1usize..4).prop_flat_map(|n| {
        (0..n)
            .map(|i| container(format!("c{i}")))
            .collect::<Vec<_>>()
    });
    let metadata = prop_oneof![
        Just(None),
        Just(Some(Value::Null)),
        Just(Some(json!({"labels": {"app": "shop"}}))),
        Just(Some(
            json!({"labels": {"app": "shop"}, "annotations": null})
        )),
        Just(Some(
            json!({"annotations": {"prometheus.io/scrape": "true"}})
        )),
    ];
    let inits = maybe_list(prop::collection::vec(
        Just(json!({"name": "migrate", "image": "flyway"})),
        0..2,
    ));
    let volumes = maybe_list(prop::collection::vec(
        Just(json!({"name": "tmp", "emptyDir": {}})),
        0..2,
    ));
    (metadata, containers, inits, volumes, any::<bool>()).prop_map(
        |(metadata, containers, inits, volumes, sa)| {
            let mut spec = Map::new();
            if sa {
                spec.insert("serviceAccountName".into(), json!("shop"));
            }
            if let Some(i) = inits {
                spec.insert("initContainers".into(), i);
            }
            spec.insert("containers".into(), Value::Array(containers));
            if let Some(v) = volumes {
                spec.insert("volumes".into(), v);
            }
            let mut t = Map::new();
            if let Some(m) = metadata {
                t.insert("metadata".into(), m);
            }
            t.insert("spec".into(), Value::Object(spec));
            Value::Object(t)
        },
    )
}

fn plan(
    template: &Value,
    select: &[bool],
    second_archive: bool,
    mode: DeliveryMode,
    force: bool,
    pin: bool,
) -> EnablePlan {
    let names: Vec<String> = containers(template).into_iter().map(|c| c.name).collect();
    let chosen: Vec<&String> = names
        .iter()
        .zip(select.iter().cycle())
        .filter(|(_, s)| **s)
        .map(|(n, _)| n)
        .collect();
    let chosen = if chosen.is_empty() {
        vec![&names[0]]
    } else {
        chosen
    };
    EnablePlan {
        containers: chosen
            .iter()
            .enumerate()
            .map(|(i, name)| ContainerArchive {
                container: name.to_string(),
                archive: format!(
                    "registry.example/shop/archives@{}",
                    if second_archive && i % 2 == 1 {
                        DIGEST_B
                    } else {
                        DIGEST_A
                    }
                ),
                runtime_options: vec![
                    "-XX:SharedArchiveFile={archive}".into(),
                    "-Xshare:auto".into(),
                    "-Xlog:cds=off:file=/tmp/x y".into(),
                ],
                pin_image: pin.then(|| format!("registry.example/app@{DIGEST_B}")),
                archive_file: "app.jsa".into(),
                image_volume: Some(format!(
                    "registry.example/shop/archives@{}",
                    if second_archive && i % 2 == 1 {
                        DIGEST_A
                    } else {
                        DIGEST_B
                    }
                )),
                trained_agent: None,
            })
            .collect(),
        mode,
        node_store_dir: "/var/lib/classcache".into(),
        fetcher_image: DEFAULT_FETCHER_IMAGE.into(),
        fetcher_url: fetcher_url(),
        timeout_secs: 120,
        fail_closed: false,
        force,
    }
}

fn exact(v: &Value) -> String {
    serde_json::to_string(v).unwrap()
}

fn jto_values(template: &Value, container: &str) -> Vec<String> {
    template["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"] == container)
        .flat_map(|c| c["env"].as_array().cloned().unwrap_or_default())
        .filter(|e| e["name"] == JAVA_TOOL_OPTIONS)
        .map(|e| e["value"].as_str().unwrap_or_default().to_string())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn enable_is_undone_exactly_and_idempotent(
        original in arb_pod_template(),
        select in prop::collection::vec(any::<bool>(), 1..4),
        second_archive: bool, mode in prop::sample::select(DeliveryMode::ALL.to_vec()), force: bool, pin: bool,
    ) {
        let plan = plan(&original, &select, second_archive, mode, force, pin);
        let mut once = original.clone();
        match enable_template(&mut once, &plan, "Deployment/shop") {
            Err(e) => {
                prop_assert!(matches!(e, EditError::ValueFrom { .. }), "unexpected error {e}");
                prop_assert_eq!(exact(&once), exact(&original), "a failed enable must not change anything");
            }
            Ok(_) => {
                prop_assert_ne!(exact(&once), exact(&original));
                let mut twice = once.clone();
                enable_template(&mut twice, &plan, "Deployment/shop").unwrap();
                prop_assert_eq!(exact(&twice), exact(&once), "enable(enable(x)) == enable(x)");

                let archives = enabled_archives(&once).unwrap().unwrap();
                prop_assert_eq!(archives.len(), plan.containers.len());

                for c in &plan.containers {
                    let before = jto_values(&original, &c.container);
                    let after = jto_values(&once, &c.container);
                    let merged = after.last().unwrap();
                    prop_assert!(merged.contains(&paths::pod_archive_path(c.archive.rsplit_once('@').unwrap().1, &c.archive_file)));
                    if let Some(user) = before.first().filter(|_| after.len() == 1) {
                        let user_tokens: Vec<&str> = user.split_whitespace().collect();
                        let merged_tokens: Vec<&str> = merged.split_whitespace().collect();
                        prop_assert_eq!(&merged_tokens[..user_tokens.len()], &user_tokens[..]);
                    }
                }

                if mode == DeliveryMode::HostPath {
                    // Each archive's own directory, never the whole published directory.
                    let published: Vec<&str> = once["spec"]["volumes"].as_array().unwrap().iter()
                        .filter_map(|v| v["hostPath"]["path"].as_str())
                        .filter(|p| p.starts_with("/var/lib/classcache/"))
                        .collect();
                    let distinct: std::collections::BTreeSet<&str> = plan.containers.iter()
                        .map(|c| c.archive.rsplit_once('@').unwrap().1).collect();
                    prop_assert_eq!(published.len(), distinct.len());
                    for d in &distinct {
                        let dir = format!("/var/lib/classcache/published/{}", paths::published_dir_name(d));
                        prop_assert!(published.contains(&dir.as_str()), "{published:?}");
                    }
                }

                let mut undone = once.clone();
                prop_assert!(disable_template(&mut undone, "Deployment/shop").unwrap());
                prop_assert_eq!(exact(&undone), exact(&original), "disable(enable(x)) == x");
                prop_assert!(!disable_template(&mut undone, "Deployment/shop").unwrap());
            }
        }
    }
}

use crate::paths;

#[test]
fn finds_templates_of_every_kind() {
    let t = json!({"spec": {"containers": [{"name": "app", "image": "a"}]}});
    for (obj, pointer) in [
        (
            json!({"kind": "Deployment", "spec": {"template": t}}),
            "/spec/template",
        ),
        (
            json!({"kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": t}}}}),
            "/spec/jobTemplate/spec/template",
        ),
        (
            json!({"kind": "Rollout", "apiVersion": "argoproj.io/v1alpha1", "spec": {"template": t}}),
            "/spec/template",
        ),
    ] {
        assert_eq!(pod_template(&obj), obj.pointer(pointer));
    }
    let pod = json!({"kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": []}});
    assert_eq!(pod_template(&pod), Some(&pod));
    assert_eq!(
        pod_template(&json!({"kind": "ConfigMap", "data": {}})),
        None
    );
}

#[test]
fn errors_name_the_object_and_leave_it_alone() {
    let mut obj = json!({"kind": "Deployment", "metadata": {"name": "shop"},
        "spec": {"template": {"spec": {"containers": [{"name": "app", "image": "a"}]}}}});
    let before = obj.clone();
    let mut p = plan(
        pod_template(&obj).unwrap(),
        &[true],
        false,
        DeliveryMode::HostPath,
        false,
        false,
    );
    p.containers[0].container = "web".into();
    let e = enable_object(&mut obj, &p).unwrap_err();
    assert_eq!(obj, before);
    assert!(
        e.to_string().contains("Deployment/shop") && e.to_string().contains("\"app\""),
        "{e}"
    );

    p.containers[0].container = "app".into();
    p.containers[0].archive = "registry.example/shop:latest".into();
    assert!(matches!(
        enable_object(&mut obj, &p),
        Err(EditError::UnpinnedArchive { .. })
    ));
    assert_eq!(obj, before);

    let mut cm = json!({"kind": "ConfigMap", "metadata": {"name": "x"}});
    assert!(enable_object(&mut cm, &p)
        .unwrap_err()
        .to_string()
        .contains("ConfigMap/x has no pod template"));
}

#[test]
fn hostpath_mode_mounts_only_each_pinned_archives_own_directory_read_only() {
    let original = json!({"spec": {"containers": [
        {"name": "app", "image": "a"},
        {"name": "side", "image": "b"},
        {"name": "third", "image": "c"},
    ]}});
    let mut t = original.clone();
    // app and third pin archive A, side pins B.
    let p = plan(&t, &[true], true, DeliveryMode::HostPath, false, false);
    enable_template(&mut t, &p, "Pod/x").unwrap();
    assert_eq!(delivery_mode(&t), Some(DeliveryMode::HostPath));
    let dir_a = paths::pod_archive_dir(DIGEST_A);
    let dir_b = paths::pod_archive_dir(DIGEST_B);
    let host = |d: &str| json!({"path": format!("/var/lib/classcache/published/{}", paths::published_dir_name(d)), "type": "DirectoryOrCreate"});
    assert_eq!(
        t["spec"]["volumes"],
        json!([
            {"name": VOLUME, "hostPath": host(DIGEST_A)},
            {"name": format!("{VOLUME}-2"), "hostPath": host(DIGEST_B)},
        ]),
        "one hostPath volume per distinct archive, never the whole published directory"
    );
    let mounts = |i: usize| t["spec"]["containers"][i]["volumeMounts"].clone();
    assert_eq!(
        mounts(0),
        json!([{"name": VOLUME, "mountPath": dir_a, "readOnly": true}])
    );
    assert_eq!(
        mounts(1),
        json!([{"name": format!("{VOLUME}-2"), "mountPath": dir_b, "readOnly": true}])
    );
    assert_eq!(mounts(2), mounts(0));
    let init = &t["spec"]["initContainers"][0];
    assert_eq!(
        init["volumeMounts"],
        json!([
            {"name": VOLUME, "mountPath": dir_a, "readOnly": true},
            {"name": format!("{VOLUME}-2"), "mountPath": dir_b, "readOnly": true},
        ])
    );
    assert_eq!(init["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        t["spec"]["containers"][1]["env"][0]["value"],
        format!(
            "-XX:SharedArchiveFile={} -Xshare:auto \"-Xlog:cds=off:file=/tmp/x y\"",
            paths::pod_archive_path(DIGEST_B, "app.jsa")
        )
    );
    assert_eq!(
        paths::pod_archive_path(DIGEST_B, "app.jsa"),
        format!("/classcache/{}/app.jsa", DIGEST_B.replace(':', "-"))
    );

    let mut undone = t.clone();
    assert!(disable_template(&mut undone, "Pod/x").unwrap());
    assert_eq!(exact(&undone), exact(&original));

    // One archive: one volume, and the record lists no further one.
    let mut one = original.clone();
    let p = plan(&one, &[true], false, DeliveryMode::HostPath, false, false);
    enable_template(&mut one, &p, "Pod/x").unwrap();
    assert_eq!(one["spec"]["volumes"].as_array().unwrap().len(), 1);
    assert!(disable_template(&mut one, "Pod/x").unwrap());
    assert_eq!(exact(&one), exact(&original));
}

#[test]
fn copy_mode_gives_the_same_paths_in_the_pods_own_empty_dir() {
    let original = json!({"spec": {"containers": [{"name": "app", "image": "a"}, {"name": "side", "image": "b"}]}});
    let mut t = original.clone();
    let p = plan(&t, &[true], true, DeliveryMode::Copy, false, false);
    enable_template(&mut t, &p, "Pod/x").unwrap();
    assert_eq!(
        t["spec"]["volumes"],
        json!([{"name": VOLUME, "emptyDir": {}}])
    );
    assert_eq!(
        t["spec"]["initContainers"][0]["volumeMounts"],
        json!([{"name": VOLUME, "mountPath": paths::POD_ARCHIVE_DIR, "readOnly": false}])
    );
    assert!(t["spec"]["containers"][1]["env"][0]["value"]
        .as_str()
        .unwrap()
        .contains(&paths::pod_archive_path(DIGEST_B, "app.jsa")));
    assert!(disable_template(&mut t, "Pod/x").unwrap());
    assert_eq!(exact(&t), exact(&original));
}

/// The archive's file name is joined to its directory in the pod: a config naming a path is
/// refused, naming the archive and the fix.
#[test]
fn an_archive_file_name_that_is_not_plain_is_refused() {
    let mut config = crate::testing::sample_config(
        "reg.example/app:1",
        &format!("sha256:{}", "ab".repeat(32)),
        crate::key::ArchiveKind::DynamicCds,
        &[],
    );
    let reference = format!("reg.example/app@{DIGEST_A}");
    for bad in ["../../etc/passwd", "a/b", "..", ""] {
        config.archive.name = bad.into();
        let e = ContainerArchive::new("app", &reference, &config, None).unwrap_err();
        assert!(matches!(e, EditError::BadArchiveFile { .. }), "{bad}: {e}");
        assert!(
            e.to_string().contains(&reference) && e.to_string().contains("classcache-build"),
            "{e}"
        );
    }
    config.archive.name = "app.jsa".into();
    assert!(ContainerArchive::new("app", &reference, &config, None).is_ok());
}

#[test]
fn image_volume_mode_mounts_each_archive_form_without_an_init_container() {
    let original = json!({"spec": {"containers": [
        {"name": "app", "image": "a", "env": [{"name": "JAVA_TOOL_OPTIONS", "value": "-Xmx1g"}]},
        {"name": "side", "image": "b"},
    ]}});
    let mut t = original.clone();
    let p = plan(&t, &[true], true, DeliveryMode::ImageVolume, false, false);
    enable_template(&mut t, &p, "Deployment/shop").unwrap();
    assert!(t["spec"].get("initContainers").is_none(), "{t}");
    assert_eq!(delivery_mode(&t), Some(DeliveryMode::ImageVolume));
    let volumes = t["spec"]["volumes"].as_array().unwrap();
    assert_eq!(
        volumes.len(),
        2,
        "one image volume per distinct archive: {t}"
    );
    assert_eq!(volumes[0]["name"], VOLUME);
    assert_eq!(volumes[1]["name"], format!("{VOLUME}-2"));
    assert_eq!(
        volumes[0]["image"],
        json!({"reference": format!("registry.example/shop/archives@{DIGEST_B}"), "pullPolicy": "IfNotPresent"})
    );
    let app = &t["spec"]["containers"][0];
    let dir = paths::pod_archive_dir(DIGEST_A);
    assert_eq!(
        app["volumeMounts"][0],
        json!({"name": VOLUME, "mountPath": dir, "readOnly": true})
    );
    assert_eq!(
        app["env"][0]["value"],
        format!("-Xmx1g -XX:SharedArchiveFile={dir}/app.jsa -Xshare:auto \"-Xlog:cds=off:file=/tmp/x y\"")
    );
    assert_eq!(
        t["spec"]["containers"][1]["volumeMounts"][0]["name"],
        format!("{VOLUME}-2")
    );

    let mut undone = t.clone();
    assert!(disable_template(&mut undone, "Deployment/shop").unwrap());
    assert_eq!(exact(&undone), exact(&original));

    let mut no_form = plan(
        &original,
        &[true],
        false,
        DeliveryMode::ImageVolume,
        false,
        false,
    );
    no_form.containers[0].image_volume = None;
    let mut t = original.clone();
    let e = enable_template(&mut t, &no_form, "Deployment/shop").unwrap_err();
    assert!(matches!(e, EditError::NoImageVolume { .. }), "{e}");
    assert!(e.to_string().contains("--mode hostpath"), "{e}");
    assert_eq!(t, original);
}

/// `enable` against the agents a workload runs: one case per rule of the agent model.
#[test]
fn agents_are_the_workloads_own_never_added_and_checked_against_the_archive() {
    const OTEL: &str = "/otel/opentelemetry-javaagent.jar";
    let template = |env: Option<(&str, &str)>, args: Option<&[&str]>| {
        let mut c = json!({"name": "app", "image": "a"});
        if let Some((name, value)) = env {
            c["env"] = json!([{"name": name, "value": value}]);
        }
        if let Some(args) = args {
            c["args"] = json!(args);
        }
        json!({"spec": {"containers": [c]}})
    };
    let with_agent = |trained: Option<&str>, force: bool| {
        let mut p = plan(
            &template(None, None),
            &[true],
            false,
            DeliveryMode::HostPath,
            force,
            false,
        );
        p.containers[0].trained_agent = trained.map(str::to_string);
        p
    };
    // Enables a copy of `t`; on error the copy must be unchanged.
    let enable = |t: &Value, trained: Option<&str>, force: bool| {
        let mut edited = t.clone();
        let result = enable_template(&mut edited, &with_agent(trained, force), "Deployment/shop");
        if result.is_err() {
            assert_eq!(&edited, t, "a refused enable changes nothing");
        }
        result.map(|warnings| (edited, warnings))
    };
    // The containers only: the undo record keeps a copy of the original value.
    let agents_in = |t: &Value| -> usize {
        t["spec"]["containers"]
            .to_string()
            .matches("-javaagent:")
            .count()
    };

    // Trained with the agent the workload runs (in JAVA_TOOL_OPTIONS, JDK_JAVA_OPTIONS or args):
    // accepted, and the agent is still loaded exactly once.
    for t in [
        template(
            Some(("JAVA_TOOL_OPTIONS", &format!("-javaagent:{OTEL}=x -Xmx1g"))),
            None,
        ),
        template(
            Some(("JDK_JAVA_OPTIONS", &format!("-javaagent:{OTEL}"))),
            None,
        ),
        template(
            None,
            Some(&[&format!("-javaagent:{OTEL}"), "-jar", "app.jar"]),
        ),
    ] {
        let (edited, warnings) = enable(&t, Some(OTEL), false).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(agents_in(&edited), 1, "{edited}");
    }

    // Another agent, or none: an error naming both, nothing changed; a warning with --force.
    for (t, runs) in [
        (
            template(
                Some(("JAVA_TOOL_OPTIONS", "-javaagent:/splunk/agent.jar")),
                None,
            ),
            "runs the agent /splunk/agent.jar",
        ),
        (template(None, None), "runs no Java agent"),
    ] {
        let e = enable(&t, Some(OTEL), false).unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, EditError::AgentMismatch { .. }), "{text}");
        assert!(
            text.contains(runs) && text.contains(OTEL) && text.contains("--force"),
            "{text}"
        );
        let (edited, warnings) = enable(&t, Some(OTEL), true).unwrap();
        assert!(
            warnings.iter().any(|w| w.message.contains(runs)),
            "{warnings:?}"
        );
        assert_eq!(
            agents_in(&edited),
            agents_in(&t),
            "no agent added: {edited}"
        );
    }

    // Trained without an agent, the workload runs one: a warning, and its agent stays the only one.
    let t = template(
        Some(("JAVA_TOOL_OPTIONS", &format!("-javaagent:{OTEL}"))),
        None,
    );
    let (edited, warnings) = enable(&t, None, false).unwrap();
    assert!(
        warnings
            .iter()
            .any(|w| w.message.contains("trained without one")),
        "{warnings:?}"
    );
    assert_eq!(agents_in(&edited), 1);

    // The same agent twice in the workload: a warning.
    let t = template(
        Some(("JAVA_TOOL_OPTIONS", &format!("-javaagent:{OTEL}"))),
        Some(&[&format!("-javaagent:{OTEL}")]),
    );
    let (_, warnings) = enable(&t, Some(OTEL), false).unwrap();
    assert!(
        warnings.iter().any(|w| w.message.contains("twice")),
        "{warnings:?}"
    );
}

/// An archive written when run-time options still carried `-javaagent`: the option is dropped
/// and names the trained agent.
#[test]
fn old_archives_lose_their_agent_option_and_keep_the_check() {
    let mut config = crate::testing::sample_config(
        "reg.example/app:1",
        &format!("sha256:{}", "ab".repeat(32)),
        crate::key::ArchiveKind::DynamicCds,
        &[],
    );
    config.runtime_options = vec![
        "-javaagent:/opt/agent.jar".into(),
        "-XX:SharedArchiveFile={archive}".into(),
    ];
    let c = ContainerArchive::new("app", &format!("reg.example/app@{DIGEST_A}"), &config, None)
        .unwrap();
    assert_eq!(c.runtime_options, ["-XX:SharedArchiveFile={archive}"]);
    assert_eq!(c.trained_agent.as_deref(), Some("/opt/agent.jar"));
}

/// `disable` takes out only what `enable` added: JAVA_TOOL_OPTIONS changes made since survive,
/// and a pinned image comes back only while the container still runs it.
#[test]
fn disable_is_surgical() {
    let original = json!({"spec": {"containers": [
        {"name": "app", "image": "registry.example/app:1", "env": [{"name": "JAVA_TOOL_OPTIONS", "value": "-Xmx1g"}]},
    ]}});
    let p = plan(
        &original,
        &[true],
        false,
        DeliveryMode::HostPath,
        false,
        true,
    );
    let mut enabled = original.clone();
    enable_template(&mut enabled, &p, "Deployment/shop").unwrap();
    let jto = |t: &Value| {
        t["spec"]["containers"][0]["env"][0]["value"]
            .as_str()
            .unwrap()
            .to_string()
    };

    // A deploy after enable changed the user's options and appended one: both are kept.
    let mut changed = enabled.clone();
    let value = jto(&changed).replace("-Xmx1g", "-Xmx2g") + " -Dlater=1";
    changed["spec"]["containers"][0]["env"][0]["value"] = json!(value);
    let mut undone = changed.clone();
    assert!(disable_template(&mut undone, "Deployment/shop").unwrap());
    assert_eq!(jto(&undone), "-Xmx2g -Dlater=1");
    assert_eq!(
        undone["spec"]["containers"][0]["image"],
        "registry.example/app:1"
    );

    // A deploy after enable --pin-image set another image: refused (naming both), or kept.
    let mut redeployed = enabled.clone();
    redeployed["spec"]["containers"][0]["image"] = json!("registry.example/app:2");
    let mut undone = redeployed.clone();
    let e = disable_template(&mut undone, "Deployment/shop").unwrap_err();
    assert!(matches!(e, EditError::ImageChanged { .. }), "{e}");
    assert!(
        e.to_string().contains("registry.example/app:2") && e.to_string().contains("--keep-image"),
        "{e}"
    );
    assert_eq!(undone, redeployed, "a refused disable changes nothing");
    assert!(disable_template_with(
        &mut undone,
        "Deployment/shop",
        DisableOptions { keep_image: true }
    )
    .unwrap());
    assert_eq!(
        undone["spec"]["containers"][0]["image"],
        "registry.example/app:2"
    );
    assert_eq!(jto(&undone), "-Xmx1g");

    // An entry enable added, to which a deploy appended: only enable's part goes.
    let bare = json!({"spec": {"containers": [{"name": "app", "image": "a"}]}});
    let p = plan(&bare, &[true], false, DeliveryMode::HostPath, false, false);
    let mut enabled = bare.clone();
    enable_template(&mut enabled, &p, "Deployment/shop").unwrap();
    let mut changed = enabled.clone();
    changed["spec"]["containers"][0]["env"][0]["value"] = json!(jto(&enabled) + " -Dlater=1");
    assert!(disable_template(&mut changed, "Deployment/shop").unwrap());
    assert_eq!(jto(&changed), "-Dlater=1");
}
