//! Audits the workflows and action.yml with zizmor, offline; any finding above informational fails.
//! It must not install zizmor: the harness does (tests/harness/tools/zizmor.sh via up.sh).

use classcache_e2e::{harness, repo_root};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The workflow files of one directory, relative to the repository root; at least one.
fn workflows(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo_root().join(dir))
        .unwrap_or_else(|e| panic!("cannot list {dir}: {e}"))
        .map(|entry| Path::new(dir).join(entry.unwrap().file_name()))
        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{dir} has no workflow to audit");
    files
}

#[test]
fn workflows_and_action_have_no_finding_above_informational() {
    let h = harness();
    let zizmor = h.tool(
        "CLASSCACHE_ZIZMOR",
        "it installs zizmor with tests/harness/tools/zizmor.sh",
    );
    // Files, not directories: zizmor collects a directory only when it looks like a repository,
    // and examples/workflows/ does not.
    let mut inputs = workflows(".github/workflows");
    inputs.extend(workflows("examples/workflows"));
    inputs.push(PathBuf::from("action.yml"));

    let out = Command::new(&zizmor)
        .current_dir(repo_root())
        // --no-config: a zizmor.yml cannot switch audits off unseen; an ignore comment stays
        // visible on the line it excuses. --strict-collection: a file zizmor cannot parse fails
        // instead of being skipped with a warning.
        .args([
            "--offline",
            "--no-config",
            "--strict-collection",
            "--min-severity=low",
            "--color=never",
            "--no-progress",
        ])
        .args(&inputs)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {zizmor}: {e}; rerun tests/harness/up.sh"));
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "zizmor ({}) reports findings above informational in {inputs:?}:\n{report}",
        out.status
    );
    for input in &inputs {
        let name = input.display();
        assert!(
            report.contains(&format!("completed {name}")),
            "zizmor did not audit {name}:\n{report}"
        );
    }
}
