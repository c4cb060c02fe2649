//! Checks that action.yml's inputs map one to one onto classcache-build's flags (same names, the
//! right kind of value), that its outputs are the ones the build writes, and how it installs.

use clap::{ArgAction, CommandFactory};
use classcache_build::cli::Args;
use serde_json::Value;
use std::collections::BTreeSet;

fn action() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../action.yml");
    let text = std::fs::read_to_string(path).unwrap();
    serde_saphyr::from_str(&text).unwrap()
}

fn run_script(action: &Value, id: &str) -> (String, serde_json::Map<String, Value>) {
    let steps = action["runs"]["steps"].as_array().unwrap();
    let step = steps
        .iter()
        .find(|s| {
            s["id"] == id
                || (id == "install" && s["name"].as_str().is_some_and(|n| n.starts_with("Install")))
        })
        .unwrap_or_else(|| panic!("no step {id}"));
    (
        step["run"].as_str().unwrap().to_string(),
        step["env"].as_object().cloned().unwrap_or_default(),
    )
}

#[test]
fn inputs_map_one_to_one_onto_flags() {
    let action = action();
    assert_eq!(action["runs"]["using"], "composite");
    let inputs: BTreeSet<String> = action["inputs"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let command = Args::command();
    let mut flags = BTreeSet::new();
    let (script, env) = run_script(&action, "build");
    for arg in command.get_arguments() {
        let id = arg.get_id().as_str();
        if id == "help" || id == "version" {
            continue;
        }
        let name = match arg.get_long() {
            Some(long) => long.to_string(),
            None => id.to_string(), // positionals: image, args
        };
        assert!(
            inputs.contains(&name),
            "flag --{name} has no input in action.yml"
        );
        let var = format!("IN_{}", name.to_uppercase().replace('-', "_"));
        assert_eq!(
            env.get(&var).and_then(Value::as_str),
            Some(format!("${{{{ inputs.{name} }}}}").as_str()),
            "input {name} is not passed to the build step as {var}"
        );
        if arg.get_long().is_some() {
            let helper = match arg.get_action() {
                ArgAction::SetTrue => "flag",
                ArgAction::Append => "lines",
                _ => "value",
            };
            let call = format!("{helper} {name} \"${var}\"");
            assert!(
                script.contains(&call),
                "action.yml does not pass --{name} as `{call}`"
            );
        }
        flags.insert(name);
    }
    assert_eq!(
        inputs,
        flags,
        "action.yml inputs that are no flag: {:?}",
        inputs.difference(&flags).collect::<Vec<_>>()
    );
    assert!(
        script.contains("args+=(\"$IN_IMAGE\")") && script.contains("args+=(-- \"${extra[@]}\")")
    );
}

#[test]
fn outputs_are_the_ones_the_build_writes() {
    let action = action();
    let outputs: BTreeSet<&str> = action["outputs"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        outputs,
        BTreeSet::from(["archive", "digest", "index", "key", "speedup"])
    );
    for name in outputs {
        assert_eq!(
            action["outputs"][name]["value"],
            format!("${{{{ steps.build.outputs.{name} }}}}")
        );
    }
}

#[test]
fn installs_a_release_else_from_source() {
    let (script, _) = run_script(&action(), "install");
    let release = script.find("releases/download").expect("tries a release");
    let source = script
        .find("cargo install --locked --path \"$ACTION_PATH/action\"")
        .expect("builds from source");
    assert!(release < source, "the release is tried first");
}
