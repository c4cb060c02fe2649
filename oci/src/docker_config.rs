//! Registry credentials from Docker's client config (`$DOCKER_CONFIG/config.json` or
//! `~/.docker/config.json`): `auths` entries and credential helpers. It must not store secrets.

use base64::Engine;
use serde::Deserialize;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a credential helper may take before it is killed and the lookup fails.
pub const HELPER_TIMEOUT: Duration = Duration::from_secs(30);

/// Credentials for one registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    Anonymous,
    Basic {
        username: String,
        password: String,
    },
    /// An identity token (`docker login` with OAuth2 registries) used as a refresh token.
    IdentityToken {
        username: String,
        token: String,
    },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets, even in debug logs.
        match self {
            Credentials::Anonymous => f.write_str("Anonymous"),
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            Credentials::IdentityToken { username, .. } => {
                write!(f, "IdentityToken({username}, ***)")
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DockerConfigError {
    #[error("cannot read Docker config {path}: {source}; fix or remove the file")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("Docker config {path} is not valid JSON ({error}); fix or remove the file")]
    Parse { path: PathBuf, error: String },
    #[error("the `auth` entry for {registry} in {path} is not base64 of `user:password`; run `docker login {registry}` again")]
    BadAuth { registry: String, path: PathBuf },
    #[error("credential helper {helper} failed for {registry}: {problem}; check the helper is installed and works (`echo {registry} | {helper} get`), or run `docker login {registry}`")]
    Helper {
        helper: String,
        registry: String,
        problem: String,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfigFile {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
    #[serde(default)]
    cred_helpers: HashMap<String, String>,
    #[serde(default)]
    creds_store: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default, rename = "identitytoken")]
    identity_token: Option<String>,
}

/// The Docker client config, loaded once.
#[derive(Debug, Default)]
pub struct DockerConfig {
    path: Option<PathBuf>,
    file: ConfigFile,
}

/// Where Docker keeps its client config: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
pub fn default_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker").join("config.json"))
}

/// The keys `docker login` may have written for a registry host.
fn lookup_keys(registry: &str) -> Vec<String> {
    if registry == "docker.io"
        || registry == "registry-1.docker.io"
        || registry == "index.docker.io"
    {
        return vec![
            "https://index.docker.io/v1/".into(),
            "index.docker.io".into(),
            "docker.io".into(),
            "registry-1.docker.io".into(),
        ];
    }
    vec![
        registry.to_string(),
        format!("https://{registry}"),
        format!("http://{registry}"),
        format!("https://{registry}/v1/"),
        format!("https://{registry}/v2/"),
    ]
}

impl DockerConfig {
    /// Loads the config at [`default_path`]; a missing file means no credentials.
    pub fn load_default() -> Result<Self, DockerConfigError> {
        match default_path() {
            Some(path) => Self::load(&path),
            None => Ok(Self::default()),
        }
    }

    /// Loads the config at `path`; a missing file means no credentials.
    pub fn load(path: &Path) -> Result<Self, DockerConfigError> {
        let text = match std::fs::read(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => {
                return Err(DockerConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        let file = serde_json::from_slice(&text).map_err(|e| DockerConfigError::Parse {
            path: path.to_path_buf(),
            error: e.to_string(),
        })?;
        Ok(Self {
            path: Some(path.to_path_buf()),
            file,
        })
    }

    /// The credentials for `registry` (`host[:port]`): a per-registry helper, then `auths`,
    /// then the default `credsStore`; anonymous when none has an entry.
    pub fn credentials_for(&self, registry: &str) -> Result<Credentials, DockerConfigError> {
        let keys = lookup_keys(registry);
        if let Some(helper) = keys.iter().find_map(|k| self.file.cred_helpers.get(k)) {
            return run_helper(&helper_program(helper), registry, HELPER_TIMEOUT);
        }
        if let Some(entry) = keys.iter().find_map(|k| self.file.auths.get(k)) {
            if let Some(creds) = self.entry_credentials(registry, entry)? {
                return Ok(creds);
            }
        }
        match &self.file.creds_store {
            Some(store) if !store.is_empty() => {
                run_helper(&helper_program(store), registry, HELPER_TIMEOUT)
            }
            _ => Ok(Credentials::Anonymous),
        }
    }

    fn entry_credentials(
        &self,
        registry: &str,
        entry: &AuthEntry,
    ) -> Result<Option<Credentials>, DockerConfigError> {
        let bad = || DockerConfigError::BadAuth {
            registry: registry.to_string(),
            path: self.path.clone().unwrap_or_default(),
        };
        let (username, password) = match (&entry.auth, &entry.username, &entry.password) {
            (Some(auth), _, _) if !auth.is_empty() => {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(auth.trim())
                    .map_err(|_| bad())?;
                let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
                let (u, p) = decoded.split_once(':').ok_or_else(bad)?;
                (u.to_string(), p.to_string())
            }
            (_, Some(u), Some(p)) => (u.clone(), p.clone()),
            _ => (String::new(), String::new()),
        };
        if let Some(token) = entry.identity_token.as_ref().filter(|t| !t.is_empty()) {
            return Ok(Some(Credentials::IdentityToken {
                username,
                token: token.clone(),
            }));
        }
        if username.is_empty() && password.is_empty() {
            return Ok(None);
        }
        Ok(Some(Credentials::Basic { username, password }))
    }
}

fn helper_program(helper: &str) -> String {
    format!("docker-credential-{helper}")
}

/// Runs `<program> get` as Docker does (server on stdin, JSON on stdout), killing it when it
/// has not answered within `timeout`.
fn run_helper(
    program: &str,
    registry: &str,
    timeout: Duration,
) -> Result<Credentials, DockerConfigError> {
    let fail = |problem: String| DockerConfigError::Helper {
        helper: program.to_string(),
        registry: registry.to_string(),
        problem,
    };
    let mut child = Command::new(program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot start it ({e})")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(registry.as_bytes())
            .map_err(|e| fail(e.to_string()))?;
    }
    // The pipes are read on threads of their own, so a helper that fills one cannot block.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut out = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut out);
            }
            out
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let started = Instant::now();
    let status = loop {
        match child.try_wait().map_err(|e| fail(e.to_string()))? {
            Some(status) => break status,
            None if started.elapsed() >= timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(format!(
                    "it did not answer within {} s and was stopped",
                    timeout.as_secs_f32()
                )));
            }
            None => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    if !status.success() {
        let text = String::from_utf8_lossy(&stdout);
        // Helpers answer "credentials not found" when they hold nothing for the host.
        if text.contains("credentials not found") {
            return Ok(Credentials::Anonymous);
        }
        return Err(fail(format!(
            "{} {}",
            status,
            String::from_utf8_lossy(&stderr).trim()
        )));
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct HelperAnswer {
        username: String,
        secret: String,
    }
    let answer: HelperAnswer =
        serde_json::from_slice(&stdout).map_err(|e| fail(format!("unreadable answer ({e})")))?;
    Ok(if answer.username == "<token>" {
        Credentials::IdentityToken {
            username: answer.username,
            token: answer.secret,
        }
    } else {
        Credentials::Basic {
            username: answer.username,
            password: answer.secret,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> (tempfile::TempDir, DockerConfig) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, json).unwrap();
        let c = DockerConfig::load(&path).unwrap();
        (dir, c)
    }

    #[test]
    fn auths_entries_are_found_by_host_and_url_forms() {
        let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
        let (_d, c) = config(&format!(
            r#"{{"auths":{{"127.0.0.1:5000":{{"auth":"{auth}"}},"https://ghcr.io":{{"username":"bob","password":"pw"}},"https://index.docker.io/v1/":{{"auth":"{auth}"}}}}}}"#
        ));
        assert_eq!(
            c.credentials_for("127.0.0.1:5000").unwrap(),
            Credentials::Basic {
                username: "alice".into(),
                password: "s3cret".into()
            }
        );
        assert_eq!(
            c.credentials_for("ghcr.io").unwrap(),
            Credentials::Basic {
                username: "bob".into(),
                password: "pw".into()
            }
        );
        assert!(matches!(
            c.credentials_for("docker.io").unwrap(),
            Credentials::Basic { .. }
        ));
        assert_eq!(
            c.credentials_for("quay.io").unwrap(),
            Credentials::Anonymous
        );
        assert!(!format!("{:?}", c.credentials_for("ghcr.io").unwrap()).contains("pw"));
    }

    #[test]
    fn broken_config_and_entries_name_the_file_and_the_fix() {
        let (_d, c) = config(r#"{"auths":{"r.example":{"auth":"!!"}}}"#);
        let e = c.credentials_for("r.example").unwrap_err();
        assert!(e.to_string().contains("docker login r.example"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, "{").unwrap();
        let e = DockerConfig::load(&path).unwrap_err();
        assert!(e.to_string().contains("config.json"), "{e}");
        assert!(
            DockerConfig::load(&dir.path().join("none.json"))
                .unwrap()
                .credentials_for("x")
                .unwrap()
                == Credentials::Anonymous
        );
    }

    #[test]
    fn missing_helper_is_reported() {
        let (_d, c) = config(r#"{"credHelpers":{"r.example":"classcache-test-missing"}}"#);
        let e = c.credentials_for("r.example").unwrap_err();
        assert!(
            e.to_string()
                .contains("docker-credential-classcache-test-missing"),
            "{e}"
        );
    }

    fn script(dir: &Path, body: &str) -> String {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("docker-credential-test");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path.display().to_string()
    }

    #[test]
    fn a_hanging_helper_is_stopped_after_the_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let hang = script(dir.path(), "sleep 60");
        let started = Instant::now();
        let e = run_helper(&hang, "r.example", Duration::from_millis(300)).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(e.to_string().contains("did not answer within 0.3 s"), "{e}");
        assert!(e.to_string().contains("docker login r.example"), "{e}");
        let answer = script(
            dir.path(),
            r#"read server; echo "{\"Username\":\"u\",\"Secret\":\"s-$server\"}""#,
        );
        assert_eq!(
            run_helper(&answer, "r.example", HELPER_TIMEOUT).unwrap(),
            Credentials::Basic {
                username: "u".into(),
                password: "s-r.example".into()
            }
        );
    }
}
