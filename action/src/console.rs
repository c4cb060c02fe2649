//! What the build tells the person watching: step lines, warnings (`::warning::` in GitHub
//! Actions), and indicatif progress on a terminal. It must not decide anything about the build.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

/// Prints to stderr; stdout stays free for the final summary line.
#[derive(Debug)]
pub struct Console {
    tty: bool,
    github: bool,
    warnings: Mutex<Vec<String>>,
}

impl Console {
    pub fn new() -> Console {
        Console {
            tty: std::io::stderr().is_terminal(),
            github: std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true"),
            warnings: Mutex::new(Vec::new()),
        }
    }

    pub fn step(&self, message: impl AsRef<str>) {
        eprintln!("classcache: {}", message.as_ref());
    }

    /// A warning: `::warning::` in GitHub Actions (shown on the run's page), else a plain line.
    pub fn warn(&self, message: impl Into<String>) {
        let message = message.into();
        if self.github {
            // Workflow commands end at a line break: keep the message on one line.
            eprintln!("::warning title=classcache::{}", message.replace('\n', " "));
        } else {
            eprintln!("classcache: warning: {message}");
        }
        self.warnings.lock().expect("warnings lock").push(message);
    }

    pub fn warnings(&self) -> Vec<String> {
        self.warnings.lock().expect("warnings lock").clone()
    }

    /// A spinner on a terminal; on a pipe (CI logs) only the start and end lines.
    pub fn activity(&self, message: impl Into<String>) -> Activity {
        let message = message.into();
        if self.tty {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
                    .expect("valid template"),
            );
            bar.set_message(message);
            bar.enable_steady_tick(Duration::from_millis(120));
            Activity { bar: Some(bar) }
        } else {
            self.step(format!("{message} ..."));
            Activity { bar: None }
        }
    }
}

impl Default for Console {
    fn default() -> Self {
        Console::new()
    }
}

/// One long-running activity (pull, training run); updates replace the spinner's text.
pub struct Activity {
    bar: Option<ProgressBar>,
}

impl Activity {
    pub fn update(&self, message: impl Into<String>) {
        if let Some(bar) = &self.bar {
            bar.set_message(message.into());
        }
    }

    pub fn finish(self, message: impl AsRef<str>) {
        match self.bar {
            Some(bar) => bar.finish_with_message(message.as_ref().to_string()),
            None => eprintln!("classcache: {}", message.as_ref()),
        }
    }
}
