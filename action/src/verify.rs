//! Verification of a trained archive: it must load under options that refuse to run without it;
//! how many classes come from it; start-up with and without it. It must not push or write reports.

use crate::runtime::{RunOutcome, RunSpec, Runtime, StopWhen};
use anyhow::{bail, Result};
use classcache_core::jvm::{self, parse_class_load_line, CLASS_LOAD_LOG_OPTION};
use std::collections::HashSet;
use std::time::Duration;

/// What the class-load logs of two runs (without and with the archive) say.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Coverage {
    /// Classes loaded in the run with the archive.
    pub classes_total: u64,
    /// Of those, mapped from the archive.
    pub classes_from_archive: u64,
    /// The app's own classes (loaded from its class path in the run without the archive).
    pub app_classes: u64,
    /// Of those, mapped from the archive in the run with it.
    pub app_classes_from_archive: u64,
}

impl Coverage {
    /// Percentage of the app's own classes that came from the archive.
    pub fn app_percent(&self) -> f64 {
        if self.app_classes == 0 {
            return 0.0;
        }
        100.0 * self.app_classes_from_archive as f64 / self.app_classes as f64
    }
}

/// Start-up medians with and without the archive (interleaved runs).
#[derive(Debug, Clone, PartialEq)]
pub struct Timing {
    pub runs: u32,
    pub median_ms_without: f64,
    pub median_ms_with: f64,
}

impl Timing {
    /// Start-up without over with: 1.5 means 1.5 times as fast.
    pub fn speedup(&self) -> f64 {
        if self.median_ms_with <= 0.0 {
            return 0.0;
        }
        self.median_ms_without / self.median_ms_with
    }
}

/// A class-path class: loaded from a jar or directory, not from the JDK or generated.
fn is_class_path_source(source: &str) -> bool {
    source.starts_with("file:") || source.starts_with("jar:")
}

/// Counts classes from the logs of a run without the archive and a run with it.
pub fn coverage(log_without: &str, log_with: &str) -> Coverage {
    let app: HashSet<String> = log_without
        .lines()
        .filter_map(parse_class_load_line)
        .filter(|c| is_class_path_source(&c.source))
        .map(|c| c.name)
        .collect();
    let mut result = Coverage {
        app_classes: app.len() as u64,
        ..Default::default()
    };
    for class in log_with.lines().filter_map(parse_class_load_line) {
        result.classes_total += 1;
        if class.from_archive {
            result.classes_from_archive += 1;
            if app.contains(&class.name) {
                result.app_classes_from_archive += 1;
            }
        }
    }
    result
}

/// The median of some durations, in milliseconds.
pub fn median_ms(samples: &[Duration]) -> f64 {
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(|a, b| a.total_cmp(b));
    match ms.len() {
        0 => 0.0,
        n if n % 2 == 1 => ms[n / 2],
        n => (ms[n / 2 - 1] + ms[n / 2]) / 2.0,
    }
}

/// The runs verification makes: `base` are the options of every run (app options, Spring
/// exit), `with_archive` the run-time options with the archive's path and the refusing options.
pub struct Verifier<'a> {
    pub runtime: &'a Runtime,
    /// The agent the runs attach (in `base`), to name it when it stops the JVM.
    pub agent: Option<String>,
    pub base: Vec<String>,
    pub with_archive: Vec<String>,
    pub archive_file_name: String,
    pub stop: StopWhen,
    pub timeout: Duration,
}

/// The error for a run that an agent stopped at start (its premain threw, or its jar could not
/// be loaded), naming the agent and what it threw; `None` when the agent is not the cause.
pub fn agent_failure(agent: &str, purpose: &str, outcome: &RunOutcome) -> Option<anyhow::Error> {
    let output = format!("{}\n{}", outcome.stdout, outcome.stderr);
    jvm::agent_failed_to_start(&output).then(|| {
        anyhow::anyhow!(
            "the agent {agent} failed when the JVM started it in the {purpose} run (its premain threw, or the JVM could not \
             load it), so the JVM stopped; nothing was pushed. It threw: {}. Fix the agent or its settings (options \
             after -javaagent:JAR=, its environment variables), or build without it. The JVM's last output:\n{}",
            jvm::agent_failure_cause(&output).unwrap_or_else(|| "(no exception in the output)".into()),
            outcome.log_tail()
        )
    })
}

impl Verifier<'_> {
    fn spec(&self, purpose: &str, archive: bool, log: bool) -> RunSpec {
        let mut options = self.base.clone();
        let mut inputs = Vec::new();
        if archive {
            options.extend(self.with_archive.iter().cloned());
            inputs.push(self.archive_file_name.clone());
        }
        if log {
            options.push(CLASS_LOAD_LOG_OPTION.to_string());
        }
        RunSpec {
            purpose: purpose.to_string(),
            options,
            stop: self.stop.clone(),
            timeout: self.timeout,
            inputs,
            outputs: vec![],
            launcher_options: vec![],
        }
    }

    /// The first run without the archive, logging class loads: the baseline of [`Self::coverage`].
    pub fn baseline_spec(&self) -> RunSpec {
        self.spec("class-load log (without archive)", false, true)
    }

    async fn run_ok(&self, spec: &RunSpec, archive: bool) -> Result<RunOutcome> {
        let outcome = self.runtime.run(spec).await?;
        self.check(spec, &outcome, archive)?;
        Ok(outcome)
    }

    /// An error naming the cause when a run (`archive`: with the archive) ended abnormally.
    pub fn check(&self, spec: &RunSpec, outcome: &RunOutcome, archive: bool) -> Result<()> {
        if !outcome.exited_normally() {
            if let Some(e) = self
                .agent
                .as_deref()
                .and_then(|a| agent_failure(a, &spec.purpose, outcome))
            {
                return Err(e);
            }
            if archive {
                bail!(
                    "the archive does not load: the JVM refused to start with it (exit code {}); nothing was pushed. Usually the class path or the JVM differs between training and this run, or the app writes to its jars. The JVM said:\n{}",
                    outcome.exit_code,
                    outcome.log_tail()
                );
            }
            bail!(
                "the {} run failed (exit code {}) without the archive, so the app itself does not start this way. Its last output:\n{}",
                spec.purpose,
                outcome.exit_code,
                outcome.log_tail()
            );
        }
        Ok(())
    }

    /// Compares a run without the archive (`baseline`, when the build's first run was it; else
    /// run now) with one with the archive, both logging class loads.
    pub async fn coverage(&self, baseline: Option<RunOutcome>) -> Result<Coverage> {
        let without = match baseline {
            Some(outcome) => outcome,
            None => self.run_ok(&self.baseline_spec(), false).await?,
        };
        let with = self
            .run_ok(&self.spec("verification (with archive)", true, true), true)
            .await?;
        let result = coverage(&without.stdout, &with.stdout);
        if result.classes_from_archive == 0 {
            bail!(
                "the JVM started with the archive but loaded no class from it ({} classes loaded); nothing was pushed. The JVM said:\n{}",
                result.classes_total,
                with.log_tail()
            );
        }
        Ok(result)
    }

    /// `runs` start-ups without and with the archive, interleaved so that noise hits both alike.
    /// `None` when the stop condition gives no start-up time (a timed stop).
    pub async fn timing(
        &self,
        runs: u32,
        mut progress: impl FnMut(u32, u32),
    ) -> Result<Option<Timing>> {
        if runs == 0 || matches!(self.stop, StopWhen::After(_)) {
            return Ok(None);
        }
        let (mut without, mut with) = (Vec::new(), Vec::new());
        for i in 0..runs {
            progress(i + 1, runs);
            let a = self
                .run_ok(&self.spec("timing (without archive)", false, false), false)
                .await?;
            let b = self
                .run_ok(&self.spec("timing (with archive)", true, false), true)
                .await?;
            without.extend(a.startup);
            with.extend(b.startup);
        }
        Ok(Some(Timing {
            runs,
            median_ms_without: median_ms(&without),
            median_ms_with: median_ms(&with),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coverage_counts_the_apps_classes() {
        let without = "[0.01s][info][class,load] java.lang.Object source: shared objects file\n\
                       [0.02s][info][class,load] com.example.A source: file:/app/app.jar\n\
                       [0.02s][info][class,load] com.example.B source: jar:file:/app/app.jar!/BOOT-INF/lib/x.jar!/\n\
                       [0.03s][info][class,load] com.example.A$$Lambda/0x1 source: com.example.A\n\
                       shop started\n";
        let with = "[0.01s][info][class,load] java.lang.Object source: shared objects file\n\
                    [0.02s][info][class,load] com.example.A source: shared objects file (top)\n\
                    [0.02s][info][class,load] com.example.B source: jar:file:/app/app.jar!/BOOT-INF/lib/x.jar!/\n";
        let c = coverage(without, with);
        assert_eq!(
            c,
            Coverage {
                classes_total: 3,
                classes_from_archive: 2,
                app_classes: 2,
                app_classes_from_archive: 1
            }
        );
        assert_eq!(c.app_percent(), 50.0);
    }

    #[test]
    fn medians() {
        let ms = |v: &[u64]| {
            v.iter()
                .map(|m| Duration::from_millis(*m))
                .collect::<Vec<_>>()
        };
        assert_eq!(median_ms(&ms(&[30, 10, 20])), 20.0);
        assert_eq!(median_ms(&ms(&[10, 20, 30, 40])), 25.0);
        assert_eq!(median_ms(&[]), 0.0);
        let t = Timing {
            runs: 3,
            median_ms_without: 300.0,
            median_ms_with: 200.0,
        };
        assert_eq!(t.speedup(), 1.5);
    }
}
