//! A container the tests and benchmarks start on the harness's Docker engine, removed when
//! dropped (also on a panic). It wraps `docker` commands; it must not decide what runs in it.

use crate::Harness;

/// A named container on the harness engine; `docker rm -f` when dropped.
pub struct Container<'h> {
    pub h: &'h Harness,
    pub name: String,
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        let _ = self.h.docker(&["rm", "-f", &self.name]);
    }
}

impl Container<'_> {
    /// stdout and stderr of the container's process, as one text.
    pub fn logs(&self) -> String {
        let out = self.h.docker(&["logs", &self.name]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    pub fn running(&self) -> bool {
        self.h
            .docker(&["inspect", "-f", "{{.State.Running}}", &self.name])
            .stdout
            .starts_with(b"true")
    }
}
