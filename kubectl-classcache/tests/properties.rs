//! The edit's laws over the real-world fixtures, with generated choices of containers and options:
//! disable(enable(x)) == x, enable(enable(x)) == enable(x), user JAVA_TOOL_OPTIONS tokens kept in
//! order, and the enabled template is a valid typed PodTemplateSpec.

mod common;

use classcache_core::podtemplate::*;
use common::*;
use proptest::prelude::*;
use serde_json::Value;

fn fixture_templates() -> Vec<(String, Value)> {
    let mut out = vec![];
    for entry in std::fs::read_dir(fixtures()).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        for doc in fixture_docs(&name) {
            let items = if doc["kind"] == "List" {
                doc["items"].as_array().unwrap().clone()
            } else {
                vec![doc]
            };
            for obj in items {
                if pod_template(&obj).is_some() {
                    out.push((format!("{name}: {}", object_label(&obj)), obj));
                }
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn exact(v: &Value) -> String {
    serde_json::to_string(v).unwrap()
}

const DIGEST: &str = "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn laws_hold_on_real_manifests(
        pick in any::<prop::sample::Index>(),
        select in prop::collection::vec(any::<bool>(), 4),
        mode in prop::sample::select(DeliveryMode::ALL.to_vec()), force: bool, pin: bool, fail_closed: bool,
        options in prop::collection::vec("-X[a-zA-Z:+=/{}]{1,20}", 0..3),
    ) {
        let all = fixture_templates();
        let (name, original) = &all[pick.index(all.len())];
        let names: Vec<String> = containers(pod_template(original).unwrap()).into_iter().map(|c| c.name).collect();
        let mut chosen: Vec<&String> = names.iter().zip(select.iter().cycle()).filter(|(_, s)| **s).map(|(n, _)| n).collect();
        if chosen.is_empty() { chosen.push(&names[0]); }
        let mut runtime_options = vec!["-XX:SharedArchiveFile={archive}".to_string()];
        runtime_options.extend(options);
        let plan = EnablePlan {
            containers: chosen.iter().map(|c| ContainerArchive {
                container: c.to_string(),
                archive: format!("registry.example/shop/archives@{DIGEST}"),
                runtime_options: runtime_options.clone(),
                pin_image: pin.then(|| format!("registry.example/shop/app@{DIGEST}")),
                archive_file: "app.jsa".into(),
                image_volume: Some(format!("registry.example/shop/archives@{DIGEST}")),
                trained_agent: None,
            }).collect(),
            mode,
            node_store_dir: "/var/lib/classcache".into(),
            fetcher_image: DEFAULT_FETCHER_IMAGE.into(),
            fetcher_url: fetcher_url(),
            timeout_secs: 30,
            fail_closed,
            force,
        };
        let mut once = original.clone();
        match enable_object(&mut once, &plan) {
            Err(EditError::ValueFrom { .. }) => prop_assert_eq!(exact(&once), exact(original)),
            Err(e) => prop_assert!(false, "{name}: {e}"),
            Ok(_) => {
                let mut twice = once.clone();
                enable_object(&mut twice, &plan).unwrap();
                prop_assert_eq!(exact(&twice), exact(&once), "{}: enable twice", name);

                for c in &chosen {
                    let jto = |obj: &Value| -> Vec<String> {
                        let t = pod_template(obj).unwrap();
                        t["spec"]["containers"].as_array().unwrap().iter().filter(|x| &x["name"] == *c)
                            .flat_map(|x| x["env"].as_array().cloned().unwrap_or_default())
                            .filter(|e| e["name"] == JAVA_TOOL_OPTIONS)
                            .filter_map(|e| e["value"].as_str().map(str::to_string)).collect()
                    };
                    if let (Some(user), Some(merged)) = (jto(original).first().cloned(), jto(&once).first().cloned()) {
                        let u: Vec<&str> = user.split_whitespace().collect();
                        let m: Vec<&str> = merged.split_whitespace().collect();
                        prop_assert_eq!(&m[..u.len()], &u[..], "{}: user tokens first, in order", name);
                    }
                }

                let typed: k8s_openapi::api::core::v1::PodTemplateSpec =
                    serde_json::from_value(pod_template(&once).unwrap().clone()).unwrap();
                let spec = typed.spec.unwrap();
                let inits = spec.init_containers.unwrap_or_default();
                if mode.uses_fetcher() {
                    prop_assert_eq!(inits.last().unwrap().name.as_str(), INIT_CONTAINER);
                } else {
                    prop_assert!(inits.iter().all(|i| i.name != INIT_CONTAINER), "{}: no init container", name);
                    let volumes = spec.volumes.unwrap();
                    prop_assert!(volumes.iter().any(|v| v.image.as_ref().is_some_and(|i| i.reference.as_deref() == Some(&format!("registry.example/shop/archives@{DIGEST}")[..]))), "{}: the image volume", name);
                }

                let mut undone = once.clone();
                prop_assert!(disable_object(&mut undone).unwrap());
                prop_assert_eq!(exact(&undone), exact(original), "{}: disable(enable(x)) == x", name);
            }
        }
    }
}
