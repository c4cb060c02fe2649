//! The local runtime: trains with a `java` on this machine (no Docker), for laptops and the README.
//! The archive is bound to the class path instead of an image: its digest stands in for the image's.

use super::{
    drive, exit_grace, log_tail, no_exit_after_sigterm, probe_args, share_on_args, AppProcess,
    JvmProbe, RunOutcome, RunSpec, Target,
};
use anyhow::{bail, Context, Result};
use classcache_core::jvm::{self, java_tool_options};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, UNIX_EPOCH};
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

/// Version line of the class-path digest's canonical text (see [`class_path_digest`]).
pub const CLASS_PATH_DIGEST_VERSION: &str = "classcache-local-class-path/v1";

pub struct LocalRuntime {
    java: PathBuf,
    /// The `java` arguments of the app (class path, main class or -jar, program arguments).
    java_args: Vec<String>,
    env: Vec<(String, String)>,
    work_dir: tempfile::TempDir,
    target: Target,
}

/// The `java` to use: `--java`, else `$JAVA_HOME/bin/java`, else `java` on PATH.
pub fn resolve_java(explicit: Option<&Path>) -> PathBuf {
    if let Some(java) = explicit {
        return java.to_path_buf();
    }
    if let Some(home) = std::env::var_os("JAVA_HOME") {
        let java = Path::new(&home).join("bin/java");
        if java.is_file() {
            return java;
        }
    }
    PathBuf::from("java")
}

impl LocalRuntime {
    /// `image` is `local` (then `args` are the `java` arguments) or a jar (then `args` are its
    /// program arguments).
    pub fn new(
        java: PathBuf,
        image: &str,
        args: &[String],
        env: Vec<(String, String)>,
    ) -> Result<LocalRuntime> {
        let java_args: Vec<String> = if image == "local" {
            if args.is_empty() {
                bail!("with `local` as the image, pass the java arguments after `--`, for example: classcache-build --to oci:DIR:TAG local -- -cp app.jar com.example.Main");
            }
            args.to_vec()
        } else {
            let jar = Path::new(image);
            if !jar.is_file() {
                bail!("the jar {image} does not exist; build it first (examples/build-example-app.sh builds the example app) or pass its path");
            }
            let jar = jar
                .canonicalize()
                .with_context(|| format!("cannot resolve the path of {image}"))?;
            [
                vec!["-jar".to_string(), jar.display().to_string()],
                args.to_vec(),
            ]
            .concat()
        };
        let class_path = class_path_of(&java_args, std::env::var("CLASSPATH").ok().as_deref())
            .context("the local runtime needs the app's class path (-jar, -cp, -classpath or --class-path) to bind the archive to it")?;
        let digest = class_path_digest(&class_path)?;
        let work_dir = tempfile::Builder::new()
            .prefix("classcache-build-")
            .tempdir()
            .context("cannot create a work directory under the temp dir; set TMPDIR to a writable directory")?;
        let target = Target {
            reference: format!("local:{}", class_path.join(":")),
            digest,
            manifest_size: 0,
            manifest_media_type: classcache_core::media_types::OCI_MANIFEST.to_string(),
            os: std::env::consts::OS.to_string(),
            arch: classcache_core::jvm::oci_arch(std::env::consts::ARCH),
            variant: None,
            entrypoint: vec![java.display().to_string()],
            cmd: java_args.clone(),
            java_tool_options: std::env::var("JAVA_TOOL_OPTIONS").ok(),
            image_index: None,
        };
        Ok(LocalRuntime {
            java,
            java_args,
            env,
            work_dir,
            target,
        })
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    pub fn host_work_dir(&self) -> &Path {
        self.work_dir.path()
    }

    fn command(
        &self,
        args: &[String],
        added_options: &[String],
        launcher_options: &[String],
    ) -> Command {
        let mut command = Command::new(&self.java);
        command
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let tool_options =
            java_tool_options(self.target.java_tool_options.as_deref(), added_options);
        if tool_options.is_empty() {
            command.env_remove("JAVA_TOOL_OPTIONS");
        } else {
            command.env("JAVA_TOOL_OPTIONS", tool_options);
        }
        if !launcher_options.is_empty() {
            let own = std::env::var(jvm::LAUNCHER_OPTIONS_ENV).ok();
            command.env(
                jvm::LAUNCHER_OPTIONS_ENV,
                java_tool_options(own.as_deref(), launcher_options),
            );
        }
        command
    }

    fn no_java(&self, e: std::io::Error) -> anyhow::Error {
        anyhow::anyhow!(
            "cannot run {}: {e}; install a JDK 11 or newer or pass --java PATH (the local runtime needs a `java`)",
            self.java.display()
        )
    }

    pub async fn probe_jvm(&self) -> Result<JvmProbe> {
        let output = self
            .command(&probe_args(), &[], &[])
            .output()
            .await
            .map_err(|e| self.no_java(e))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout)
        );
        if !output.status.success() {
            bail!(
                "{} -XshowSettings:properties -version failed ({}): {}; pass --java with a working JDK 11 or newer",
                self.java.display(),
                output.status,
                text.trim()
            );
        }
        let has_base_archive = match jvm::base_archive_in_log(&text) {
            Some(known) => known,
            None => self
                .command(&share_on_args(), &[], &[])
                .output()
                .await
                .map_err(|e| self.no_java(e))?
                .status
                .success(),
        };
        Ok(JvmProbe {
            properties_output: text,
            java: self.java.display().to_string(),
            has_base_archive,
        })
    }

    pub async fn run(&self, spec: &RunSpec) -> Result<RunOutcome> {
        let mut child = self
            .command(&self.java_args, &spec.options, &spec.launcher_options)
            .spawn()
            .map_err(|e| self.no_java(e))?;
        let started = Instant::now();
        let stdout = collect(child.stdout.take());
        let stderr = collect(child.stderr.take());
        let mut process = LocalProcess { child };
        let driven = drive(spec, started, &mut process).await;
        let mut child = process.child;
        // A run that outlives its grace after SIGTERM is killed; its error comes with the output.
        let mut hung: Option<Duration> = None;
        let exit_code = match &driven {
            Ok((_, terminated)) => {
                let grace = exit_grace(spec, *terminated);
                match tokio::time::timeout(grace, child.wait()).await {
                    Ok(status) => status_code(status.context("waiting for java")?),
                    Err(_) => {
                        let _ = child.kill().await;
                        hung = Some(grace);
                        -1
                    }
                }
            }
            Err(_) => {
                let _ = child.kill().await;
                -1
            }
        };
        let stdout = stdout.await.unwrap_or_default();
        let stderr = stderr.await.unwrap_or_default();
        if let Some(grace) = hung {
            return Err(no_exit_after_sigterm(
                &spec.purpose,
                grace,
                &log_tail(&stdout, &stderr),
            ));
        }
        let (startup, terminated_by_us) = match driven {
            Ok(v) => v,
            Err(e) => {
                let tail = log_tail(&stdout, &stderr);
                return Err(e.context(format!("the app's last output:\n{tail}")));
            }
        };
        Ok(RunOutcome {
            exit_code,
            terminated_by_us,
            startup,
            stdout,
            stderr,
        })
    }
}

fn status_code(status: std::process::ExitStatus) -> i64 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => code as i64,
        (None, Some(signal)) => 128 + signal as i64,
        _ => -1,
    }
}

fn collect<R: tokio::io::AsyncRead + Unpin + Send + 'static>(
    pipe: Option<R>,
) -> JoinHandle<String> {
    tokio::spawn(async move {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes).await;
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

struct LocalProcess {
    child: Child,
}

impl AppProcess for LocalProcess {
    async fn exit_code(&mut self) -> Result<Option<i64>> {
        Ok(self
            .child
            .try_wait()
            .context("checking on java")?
            .map(status_code))
    }

    async fn terminate(&mut self) -> Result<()> {
        let Some(pid) = self.child.id() else {
            return Ok(());
        };
        let status = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await
            .context("cannot run `kill` to send SIGTERM to the app")?;
        if !status.success() {
            // It exited between the check and the signal; its exit code tells the rest.
            tracing::debug!("kill -TERM {pid}: {status}");
        }
        Ok(())
    }
}

/// The class path of a `java` command line: `-jar X`, `-cp`/`-classpath`/`--class-path X`,
/// `--class-path=X`, else `$CLASSPATH`. Entries are absolute where they exist.
pub fn class_path_of(java_args: &[String], env_class_path: Option<&str>) -> Result<Vec<String>> {
    let mut found: Option<String> = None;
    let mut iter = java_args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "-jar" => {
                found = iter.next().cloned();
                break;
            }
            "-cp" | "-classpath" | "--class-path" => found = iter.next().cloned(),
            a if a.starts_with("--class-path=") => {
                found = Some(a["--class-path=".len()..].to_string())
            }
            // The first argument that is not an option is the main class: the rest is the app's.
            a if !a.starts_with('-') => break,
            _ => {}
        }
    }
    let class_path = found
        .or_else(|| env_class_path.map(str::to_string))
        .filter(|c| !c.is_empty());
    let Some(class_path) = class_path else {
        bail!("no class path in the java arguments {java_args:?}");
    };
    Ok(class_path
        .split(':')
        .filter(|e| !e.is_empty())
        .map(|entry| {
            Path::new(entry)
                .canonicalize()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| entry.to_string())
        })
        .collect())
}

/// The digest that stands in for an image digest with the local runtime: sha256 over
/// `classcache-local-class-path/v1\n` then, per class-path entry in order,
/// `<path>\t<size>\t<mtime seconds>\t<sha256 of the content>\n` (a directory contributes its
/// files, sorted, with paths under it). Path, size and mtime are what the JVM checks; the
/// content hash makes equal digests mean equal code.
pub fn class_path_digest(entries: &[String]) -> Result<String> {
    let mut canonical = format!("{CLASS_PATH_DIGEST_VERSION}\n");
    for entry in entries {
        let path = Path::new(entry);
        let mut files = Vec::new();
        list_files(path, &mut files)
            .with_context(|| format!("class-path entry {entry} cannot be read; build the app first or fix the class path"))?;
        for file in files {
            let meta = std::fs::metadata(&file)
                .with_context(|| format!("cannot stat {}", file.display()))?;
            let mtime = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs());
            canonical.push_str(&format!(
                "{}\t{}\t{mtime}\t{}\n",
                file.display(),
                meta.len(),
                sha256_file(&file)?
            ));
        }
    }
    Ok(format!(
        "sha256:{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    ))
}

fn list_files(path: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let meta = std::fs::metadata(path)?;
    if meta.is_dir() {
        let mut children: Vec<PathBuf> = std::fs::read_dir(path)?
            .map(|e| e.map(|e| e.path()))
            .collect::<std::io::Result<_>>()?;
        children.sort();
        for child in children {
            list_files(&child, out)?;
        }
    } else {
        out.push(path.to_path_buf());
    }
    Ok(())
}

/// Lower-case hex sha256 of a file, streamed.
/// [`super::Runtime::file_facts`] for a file on this machine.
pub fn file_facts(path: &Path) -> Result<Option<super::FileFacts>> {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    if !file.metadata().map(|m| m.is_file()).unwrap_or(false) {
        return Ok(None);
    }
    let mut hasher = super::FileHasher::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = std::io::Read::read(&mut file, &mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(Some(hasher.finish()))
}

pub fn sha256_file(path: &Path) -> Result<String> {
    classcache_oci::verified::sha256_file_hex(path)
        .with_context(|| format!("cannot read {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn class_paths_are_found() {
        assert_eq!(
            class_path_of(&strings(&["-Xmx1g", "-jar", "/x/app.jar", "run"]), None).unwrap(),
            ["/x/app.jar"]
        );
        assert_eq!(
            class_path_of(&strings(&["-cp", "/a.jar:/b.jar", "Main"]), None).unwrap(),
            ["/a.jar", "/b.jar"]
        );
        assert_eq!(
            class_path_of(&strings(&["--class-path=/a.jar", "Main"]), None).unwrap(),
            ["/a.jar"]
        );
        assert_eq!(
            class_path_of(&strings(&["Main"]), Some("/env.jar")).unwrap(),
            ["/env.jar"]
        );
        assert!(class_path_of(&strings(&["Main"]), None).is_err());
        // Arguments after the main class belong to the app.
        assert!(class_path_of(&strings(&["Main", "-cp", "/x.jar"]), None).is_err());
    }

    #[test]
    fn the_digest_follows_content_and_mtime() {
        let dir = tempfile::tempdir().unwrap();
        let jar = dir.path().join("app.jar");
        std::fs::write(&jar, b"one").unwrap();
        let entries = vec![jar.display().to_string()];
        let first = class_path_digest(&entries).unwrap();
        assert!(classcache_core::key::is_sha256_digest(&first));
        assert_eq!(class_path_digest(&entries).unwrap(), first);
        std::fs::write(&jar, b"two").unwrap();
        assert_ne!(class_path_digest(&entries).unwrap(), first);
        let e =
            class_path_digest(&[dir.path().join("missing.jar").display().to_string()]).unwrap_err();
        assert!(format!("{e:#}").contains("missing.jar"), "{e:#}");
    }
}
