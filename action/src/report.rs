//! The build's report: a JSON file, GitHub Actions outputs and step summary, and a closing line.
//! It formats what the build found; it must not run, verify or push anything.

use anyhow::{Context, Result};
use classcache_core::artifact::JvmIdentity;
use classcache_core::key::{ArchiveKey, ArchiveKind};
use serde::Serialize;
use std::io::Write;
use std::path::Path;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub key: ArchiveKey,
    pub kind: ArchiveKind,
    pub jvm: JvmIdentity,
    pub image: ImageReport,
    pub archive: ArchiveReport,
    pub classes: ClassesReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub startup: Option<StartupReport>,
    /// Milliseconds per phase of the build.
    pub phases: Phases,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageReport {
    pub reference: String,
    /// Platform manifest digest (docker) or class-path digest (local runtime).
    pub digest: String,
    pub platform: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchiveReport {
    /// Where it was pushed or written (`registry/repo:key@sha256:…`, `oci:DIR:TAG`); `None` when not published.
    pub reference: Option<String>,
    /// The archive manifest's digest; `None` when not published.
    pub digest: Option<String>,
    /// Why nothing was published, when nothing was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_published: Option<String>,
    pub file_name: String,
    pub size: u64,
    pub sha256: String,
    pub runtime_options: Vec<String>,
    /// The agent trained with (path in the image, sha256, mode), as the config records it; the
    /// workload attaches it itself (`runtime_options` never do).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<classcache_core::artifact::AgentInfo>,
    /// The index of per-platform archives this archive joined (a multi-platform image pushed
    /// to its own repository): what `enable` pins for every node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<IndexReport>,
}

/// The index of per-platform archives after this build's update.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexReport {
    /// `registry/repo:<index key>@sha256:…`.
    pub reference: String,
    pub digest: String,
    /// The index key (its tag).
    pub key: String,
    /// The platforms it covers now.
    pub platforms: Vec<String>,
    /// The image's platforms that have no archive in it yet.
    pub missing: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClassesReport {
    pub total: u64,
    pub from_archive: u64,
    pub app_classes: u64,
    pub app_classes_from_archive: u64,
    pub app_coverage_percent: f64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StartupReport {
    pub runs: u32,
    pub median_ms_without: f64,
    pub median_ms_with: f64,
    /// `median_ms_without / median_ms_with`.
    pub speedup: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Phases {
    /// Pull, inspect and manifest lookup (docker), class-path digest (local).
    pub open_ms: u64,
    /// The JVM probe and the plan.
    pub probe_ms: u64,
    pub training_ms: u64,
    pub verification_ms: u64,
    pub publish_ms: u64,
    pub total_ms: u64,
}

impl Phases {
    /// What the build costs beyond the training run and the verification runs (pull, probe,
    /// copying, packing, pushing), as a fraction of the training run.
    pub fn overhead_ratio(&self) -> f64 {
        let overhead = self
            .total_ms
            .saturating_sub(self.training_ms + self.verification_ms);
        overhead as f64 / self.training_ms.max(1) as f64
    }
}

impl Report {
    pub fn speedup_text(&self) -> String {
        self.startup
            .as_ref()
            .map_or_else(|| "n/a".to_string(), |s| format!("{:.2}", s.speedup))
    }

    pub fn write_json(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self).expect("a report always serializes");
        std::fs::write(path, json).with_context(|| {
            format!("cannot write the report {}; pass --report with a writable path (or check free disk space)", path.display())
        })
    }

    /// `name=value` lines for `$GITHUB_OUTPUT`.
    pub fn github_outputs(&self) -> String {
        format!(
            "key={}\narchive={}\ndigest={}\nspeedup={}\nindex={}\n",
            self.key,
            self.archive.reference.as_deref().unwrap_or(""),
            self.archive.digest.as_deref().unwrap_or(""),
            self.speedup_text(),
            self.archive
                .index
                .as_ref()
                .map_or("", |i| i.reference.as_str())
        )
    }

    /// The Markdown table for `$GITHUB_STEP_SUMMARY`.
    pub fn markdown(&self) -> String {
        let mut rows = vec![
            ("Image", format!("`{}`", self.image.reference)),
            ("Image digest", format!("`{}`", self.image.digest)),
            (
                "JVM",
                format!(
                    "{} {} (`{}`)",
                    self.jvm.vendor, self.jvm.version, self.jvm.build
                ),
            ),
            ("Kind", self.kind.to_string()),
            ("Key", format!("`{}`", self.key)),
            (
                "Archive",
                match (&self.archive.reference, &self.archive.not_published) {
                    (Some(r), _) => format!("`{r}`"),
                    (None, Some(why)) => format!("not published: {why}"),
                    (None, None) => "not published".to_string(),
                },
            ),
            (
                "Index of per-platform archives",
                match &self.archive.index {
                    Some(i) if i.missing.is_empty() => {
                        format!("`{}` ({})", i.reference, i.platforms.join(", "))
                    }
                    Some(i) => format!(
                        "`{}` ({}; none yet for {})",
                        i.reference,
                        i.platforms.join(", "),
                        i.missing.join(", ")
                    ),
                    None => "none (single-platform image)".to_string(),
                },
            ),
            (
                "Archive size",
                format!("{:.1} MB", self.archive.size as f64 / 1e6),
            ),
            (
                "Classes from archive",
                format!(
                    "{} of {} loaded",
                    self.classes.from_archive, self.classes.total
                ),
            ),
            (
                "App classes from archive",
                format!(
                    "{} of {} ({:.1}%)",
                    self.classes.app_classes_from_archive,
                    self.classes.app_classes,
                    self.classes.app_coverage_percent
                ),
            ),
        ];
        if let Some(s) = &self.startup {
            rows.push((
                "Start-up (median)",
                format!(
                    "{:.0} ms → {:.0} ms ({} runs each)",
                    s.median_ms_without, s.median_ms_with, s.runs
                ),
            ));
            rows.push(("Speed-up", format!("{:.2}×", s.speedup)));
        }
        let mut out = String::from("### classcache archive\n\n| | |\n|---|---|\n");
        for (name, value) in rows {
            out.push_str(&format!("| {name} | {} |\n", value.replace('|', "\\|")));
        }
        for warning in &self.warnings {
            out.push_str(&format!("\n> **Warning:** {warning}\n"));
        }
        out
    }

    /// Appends outputs and summary when running in GitHub Actions (the files it names exist).
    pub fn write_github(&self) -> Result<()> {
        for (var, text) in [
            ("GITHUB_OUTPUT", self.github_outputs()),
            ("GITHUB_STEP_SUMMARY", self.markdown()),
        ] {
            if let Some(path) = std::env::var_os(var).filter(|p| !p.is_empty()) {
                let mut file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .with_context(|| {
                        format!("cannot open ${var} ({})", Path::new(&path).display())
                    })?;
                file.write_all(text.as_bytes()).with_context(|| {
                    format!("cannot write ${var} ({})", Path::new(&path).display())
                })?;
            }
        }
        Ok(())
    }

    /// One line for the log's end.
    pub fn summary_line(&self) -> String {
        format!(
            "{} {} archive {} ({:.1} MB, {:.1}% of app classes, speed-up {})",
            self.kind,
            self.key,
            self.archive
                .reference
                .as_deref()
                .unwrap_or("(not published)"),
            self.archive.size as f64 / 1e6,
            self.classes.app_coverage_percent,
            self.speedup_text()
        )
    }
}
