//! Shell completion: the bash script loaded in a real bash and driven through COMP_WORDS, and
//! `kubectl classcache <TAB>` through a real kubectl and the `kubectl_complete-classcache` helper.
//! It runs shells and kubectl's `__complete` only; it must not reach a cluster.

mod common;

use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// Candidates the bash completion function gives for `words` (the last is being completed).
fn bash_complete(words: &[&str]) -> Vec<String> {
    let script = r#"
set -u
eval "$("$PLUGIN" completion bash)"
spec=$(complete -p kubectl-classcache) || { echo "no completion registered for kubectl-classcache" >&2; exit 1; }
[[ $spec =~ -F\ ([^ ]+) ]] || { echo "no function in: $spec" >&2; exit 1; }
COMP_WORDS=(kubectl-classcache "$@")
COMP_CWORD=$#
COMP_LINE="${COMP_WORDS[*]}"
COMP_POINT=${#COMP_LINE}
COMPREPLY=()
"${BASH_REMATCH[1]}" kubectl-classcache "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}" 2>/dev/null
printf '%s\n' "${COMPREPLY[@]}"
"#;
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", script, "bash"])
        .args(words)
        .env("PLUGIN", bin())
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "bash completion of {words:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    lines(&out.stdout)
}

fn lines(out: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(out)
        .lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

#[test]
fn the_bash_script_completes_subcommands_flags_and_values() {
    let top = bash_complete(&[""]);
    for sub in [
        "enable",
        "disable",
        "status",
        "install",
        "uninstall",
        "completion",
    ] {
        assert!(top.contains(&sub.to_string()), "{sub} not in {top:?}");
    }
    assert!(
        !top.iter().any(|c| c == "helm-chart"),
        "the hidden subcommand is offered: {top:?}"
    );
    assert_eq!(bash_complete(&["inst"]), ["install"]);
    assert_eq!(
        bash_complete(&["install", "--allowed-r"]),
        ["--allowed-registry"]
    );
    assert_eq!(bash_complete(&["install", "-o", ""]), ["yaml", "json"]);
    assert_eq!(
        bash_complete(&["completion", ""]),
        ["-h", "--help", "bash", "zsh", "fish", "kubectl"]
    );
}

/// The zsh and fish scripts are made for the plugin's name (no zsh or fish here to load them).
#[test]
fn zsh_and_fish_scripts_name_the_plugin() {
    let (code, zsh, err) = run(&["completion", "zsh"], None, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(zsh.starts_with("#compdef kubectl-classcache\n"), "{zsh}");
    let (code, fish, err) = run(&["completion", "fish"], None, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(fish.contains("complete -c kubectl-classcache "), "{fish}");
}

/// A PATH directory as krew's bin is: the plugin and the helper next to it.
fn plugin_dir(dir: &Path) {
    std::os::unix::fs::symlink(bin(), dir.join("kubectl-classcache")).unwrap();
    let (code, helper, err) = run(&["completion", "kubectl"], None, &[]);
    assert_eq!(code, 0, "{err}");
    let path = dir.join("kubectl_complete-classcache");
    std::fs::write(&path, helper).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn kubectl_complete_helper_answers_in_kubectls_protocol() {
    let dir = tempfile::tempdir().unwrap();
    plugin_dir(dir.path());
    let helper = |args: &[&str]| {
        // An empty PATH: the helper finds the plugin next to itself, as in krew's bin.
        let out = Command::new(dir.path().join("kubectl_complete-classcache"))
            .args(args)
            .env("PATH", "/usr/bin:/bin")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        lines(&out.stdout)
    };
    assert_eq!(helper(&["st"]), ["status", ":4"]);
    assert_eq!(helper(&["install", "--dry-run=", ""]).last().unwrap(), ":4");
    assert_eq!(helper(&["enable", "--fail"]), ["--fail-closed", ":4"]);
    // No argument at all (kubectl always passes the word being completed, but be kind).
    assert!(helper(&[]).contains(&"enable".to_string()));
}

/// The real thing: kubectl (1.26+) finds kubectl_complete-classcache on PATH for `kubectl classcache`.
#[test]
fn kubectl_completes_the_plugin_through_the_helper() {
    let h = classcache_e2e::harness();
    let kubectl = h.tool("CLASSCACHE_KUBECTL", "its cluster builds kubectl");
    let dir = tempfile::tempdir().unwrap();
    plugin_dir(dir.path());
    let complete = |args: &[&str]| {
        let out = Command::new(&kubectl)
            .arg("__complete")
            .arg("classcache")
            .args(args)
            .env("PATH", format!("{}:/usr/bin:/bin", dir.path().display()))
            .env("KUBECONFIG", dir.path().join("no-kubeconfig"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        lines(&out.stdout)
    };
    let top = complete(&[""]);
    for sub in [
        "enable",
        "disable",
        "status",
        "install",
        "uninstall",
        "completion",
    ] {
        assert!(top.contains(&sub.to_string()), "{sub} not in {top:?}");
    }
    assert_eq!(top.last().unwrap(), ":4", "{top:?}");
    assert_eq!(
        complete(&["install", "--allowed-r"]),
        ["--allowed-registry", ":4"]
    );
    // Without the helper kubectl has nothing to offer for the plugin's arguments.
    std::fs::remove_file(dir.path().join("kubectl_complete-classcache")).unwrap();
    assert!(!complete(&["inst"]).contains(&"install".to_string()));
}
