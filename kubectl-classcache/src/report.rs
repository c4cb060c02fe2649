//! What a run tells the user on stderr: notes, warnings with their fix, and failures.
//! It collects and prints messages; stdout stays for objects, so pipelines keep working.

/// Messages of one run; failures decide the exit code.
#[derive(Default)]
pub struct Report {
    failures: usize,
    pub quiet: bool,
}

impl Report {
    pub fn note(&mut self, message: impl AsRef<str>) {
        if !self.quiet {
            eprintln!("{}", message.as_ref());
        }
    }

    pub fn warn(&mut self, message: impl AsRef<str>) {
        eprintln!("Warning: {}", message.as_ref());
    }

    pub fn fail(&mut self, error: anyhow::Error) {
        self.failures += 1;
        eprintln!("error: {error:#}");
    }

    pub fn failed(&self) -> bool {
        self.failures > 0
    }
}
