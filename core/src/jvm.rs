//! JVM identity (parsed from `java -XshowSettings:properties -version`) and the JVM flags of every
//! archive kind: the one place classcache spells a JVM flag. It parses and composes; it must not run a JVM.

use crate::artifact::{JvmIdentity, ARCHIVE_PATH_PLACEHOLDER};
use crate::key::{AgentMode, ArchiveKind};

/// The arguments that make a `java` launcher print its system properties and exit.
/// The launcher option that prints the JVM's properties (to stderr) before it runs anything.
pub const SHOW_PROPERTIES_OPTION: &str = "-XshowSettings:properties";
pub const PROPERTIES_ARGS: [&str; 2] = [SHOW_PROPERTIES_OPTION, "-version"];

/// The `java` launcher's own options variable (JDK 9+), which takes launcher options such as
/// `-XshowSettings` that `JAVA_TOOL_OPTIONS` refuses.
pub const LAUNCHER_OPTIONS_ENV: &str = "JDK_JAVA_OPTIONS";

/// Added to a probe to learn, in the same JVM start, whether the base CDS archive maps
/// (see [`base_archive_in_log`]).
pub const CDS_LOG_OPTION: &str = "-Xlog:cds=info";

/// What a `-Xlog:cds=info` log says about the JDK's base CDS archive: `Some(true)` when it was
/// opened, `Some(false)` when it is missing or unusable, `None` when the log does not say
/// (then `java -Xshare:on -version` decides: it refuses to start without a usable archive).
pub fn base_archive_in_log(log: &str) -> Option<bool> {
    if log.contains("[cds] Opened archive") || log.contains("[cds] Mapped static") {
        Some(true)
    } else if log.contains("Specified shared archive file not found")
        || log.contains("Loading static archive failed")
        || log.contains("Unable to use shared archive")
    {
        Some(false)
    } else {
        None
    }
}

/// The oldest feature release classcache can build an archive for (static AppCDS).
pub const MIN_FEATURE_VERSION: u32 = 11;
/// First release with dynamic CDS archives (`-XX:ArchiveClassesAtExit`).
pub const DYNAMIC_CDS_SINCE: u32 = 13;
/// First release with the AOT cache (JEP 483, two steps: record + create).
pub const AOT_CACHE_SINCE: u32 = 24;
/// First release with the one-step AOT cache (`-XX:AOTCacheOutput`, JEP 514).
pub const AOT_ONE_STEP_SINCE: u32 = 25;
/// First release with `-XX:ArchiveRelocationMode` (diagnostic); older JVMs refuse the flag.
pub const RELOCATION_MODE_SINCE: u32 = 14;

/// The JDK's default (base) CDS archive, relative to `java.home`; dynamic archives need it.
pub const BASE_ARCHIVE_IN_JAVA_HOME: &str = "lib/server/classes.jsa";

/// Makes a Spring Boot app exit once its context has refreshed (Spring Boot 3.2+): a training run
/// that ends by itself, after the start-up classes are loaded.
pub const SPRING_EXIT_ON_REFRESH: &str = "-Dspring.context.exit=onRefresh";

/// The class-load log option of the verification run (`-Xlog:class+load=info`, on stdout).
pub const CLASS_LOAD_LOG_OPTION: &str = "-Xlog:class+load=info";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JvmError {
    #[error("the `java -XshowSettings:properties -version` output has no `{0}` property; is this a HotSpot JVM (OpenJDK 11 or newer)?")]
    MissingProperty(&'static str),
    #[error("cannot read a feature release from java.version {0:?}; expected something like 17.0.15 or 1.8.0_392")]
    BadVersion(String),
    #[error("the JVM is Java {found} ({version}); classcache needs Java {MIN_FEATURE_VERSION} or newer: move the image to JDK 17, 21 or 25")]
    TooOld { found: u32, version: String },
    #[error("archive kind {kind} needs Java {needs} or newer, but the JVM is Java {found}; drop --kind to let classcache choose")]
    KindNeedsNewerJvm {
        kind: ArchiveKind,
        needs: u32,
        found: u32,
    },
    #[error("archive kind static-appcds is for Java 11 to 23; on Java {found} `-Xshare:dump` runs the app instead of dumping a class list, and the AOT cache supersedes it: drop --kind (or use --kind aot-cache)")]
    StaticAppcdsSuperseded { found: u32 },
    #[error("a dynamic CDS archive needs the JDK's base archive ({BASE_ARCHIVE_IN_JAVA_HOME}) at run time, and this JDK has none; add `RUN java -Xshare:dump` to the image, or use --kind static-appcds")]
    NoBaseArchive,
}

/// The system properties of a JVM that identify it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JvmProperties {
    /// `java.version`, e.g. `17.0.15`.
    pub version: String,
    /// `java.vendor`, e.g. `Debian`.
    pub vendor: String,
    /// `java.vm.version`: the exact build string an archive is bound to.
    pub vm_version: String,
    /// `os.arch`, e.g. `amd64`, `aarch64`.
    pub os_arch: String,
    /// `java.home`, when printed.
    pub java_home: Option<String>,
}

/// Parses the `Property settings:` block that `java -XshowSettings:properties -version` prints
/// on stderr (lines `    name = value`; continuation lines of multi-valued properties are ignored).
pub fn parse_properties(output: &str) -> Result<JvmProperties, JvmError> {
    let find = |name: &'static str| -> Option<String> {
        output.lines().find_map(|line| {
            let (key, value) = line.trim().split_once(" = ")?;
            (key == name).then(|| value.trim().to_string())
        })
    };
    let require = |name: &'static str| find(name).ok_or(JvmError::MissingProperty(name));
    Ok(JvmProperties {
        version: require("java.version")?,
        vendor: require("java.vendor")?,
        vm_version: require("java.vm.version")?,
        os_arch: require("os.arch")?,
        java_home: find("java.home"),
    })
}

/// The feature release of a `java.version`: `17.0.15` -> 17, `25` -> 25, `1.8.0_392` -> 8, `26-ea` -> 26.
pub fn feature_version(java_version: &str) -> Result<u32, JvmError> {
    let bad = || JvmError::BadVersion(java_version.to_string());
    let mut parts = java_version.split(['.', '-', '+', '_']);
    let first: u32 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    if first == 1 {
        // Java 8 and older: 1.<feature>.0_<update>.
        return parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad);
    }
    Ok(first)
}

/// The OCI platform architecture of a JVM's `os.arch`.
pub fn oci_arch(os_arch: &str) -> String {
    match os_arch {
        "amd64" | "x86_64" => "amd64",
        "aarch64" | "arm64" => "arm64",
        "x86" | "i386" | "i486" | "i586" | "i686" => "386",
        "arm" | "armv7l" => "arm",
        other => other,
    }
    .to_string()
}

impl JvmProperties {
    pub fn feature_version(&self) -> Result<u32, JvmError> {
        feature_version(&self.version)
    }

    /// The identity recorded in an artifact; fails for JVMs classcache cannot build for.
    pub fn identity(&self) -> Result<JvmIdentity, JvmError> {
        let feature_version = self.feature_version()?;
        if feature_version < MIN_FEATURE_VERSION {
            return Err(JvmError::TooOld {
                found: feature_version,
                version: self.version.clone(),
            });
        }
        Ok(JvmIdentity {
            feature_version,
            version: self.version.clone(),
            vendor: self.vendor.clone(),
            build: self.vm_version.clone(),
        })
    }

    /// Where this JVM's base CDS archive would be, when `java.home` is known.
    pub fn base_archive_path(&self) -> Option<String> {
        let home = self.java_home.as_deref()?.trim_end_matches('/');
        Some(format!("{home}/{BASE_ARCHIVE_IN_JAVA_HOME}"))
    }
}

/// The kind classcache builds for a JVM when the user does not choose one.
pub fn default_kind(feature_version: u32, has_base_archive: bool) -> Result<ArchiveKind, JvmError> {
    Ok(match feature_version {
        v if v >= AOT_CACHE_SINCE => ArchiveKind::AotCache,
        // A static archive carries the JDK's classes itself, so it also serves JDKs without a base archive.
        v if v >= DYNAMIC_CDS_SINCE && has_base_archive => ArchiveKind::DynamicCds,
        v if v >= MIN_FEATURE_VERSION => ArchiveKind::StaticAppcds,
        found => {
            return Err(JvmError::TooOld {
                found,
                version: found.to_string(),
            })
        }
    })
}

/// Checks that a JVM can build (and later load) an archive of `kind`.
pub fn check_kind(
    kind: ArchiveKind,
    feature_version: u32,
    has_base_archive: bool,
) -> Result<(), JvmError> {
    let needs = match kind {
        ArchiveKind::AotCache => AOT_CACHE_SINCE,
        ArchiveKind::DynamicCds => DYNAMIC_CDS_SINCE,
        ArchiveKind::StaticAppcds => MIN_FEATURE_VERSION,
    };
    if feature_version < needs {
        return Err(JvmError::KindNeedsNewerJvm {
            kind,
            needs,
            found: feature_version,
        });
    }
    if kind == ArchiveKind::StaticAppcds && feature_version >= AOT_CACHE_SINCE {
        return Err(JvmError::StaticAppcdsSuperseded {
            found: feature_version,
        });
    }
    if kind == ArchiveKind::DynamicCds && !has_base_archive {
        return Err(JvmError::NoBaseArchive);
    }
    Ok(())
}

/// A Java agent as the training run and the workload see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSetup {
    /// The agent jar's path inside the container (same at training and at run time).
    pub path: String,
    pub mode: AgentMode,
}

/// What a training step is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepRole {
    /// Runs the app under its normal command; the archive (or a class list / configuration)
    /// is written when the JVM exits normally.
    Train,
    /// Starts the JVM on the app's class path to assemble the archive from the first step's
    /// output; the JVM exits by itself without running `main`.
    Assemble,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainingStep {
    pub role: StepRole,
    /// Options added to `JAVA_TOOL_OPTIONS` for this step.
    pub options: Vec<String>,
}

/// Every JVM flag of one build: how to train, where the archive lands, how to use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainingPlan {
    pub kind: ArchiveKind,
    pub steps: Vec<TrainingStep>,
    /// The archive file the last step writes.
    pub archive_path: String,
    /// File name of the archive (inside the artifact's layer).
    pub archive_file_name: String,
    /// The options recorded in the artifact as the training options (all steps' options, once).
    pub training_options: Vec<String>,
    /// The options a workload adds at run time, with [`ARCHIVE_PATH_PLACEHOLDER`] for the path:
    /// [`TrainingPlan::app_options`] then [`TrainingPlan::archive_options`].
    pub runtime_options: Vec<String>,
    /// The options every run of the app has, with or without the archive (the user's, the agent's).
    pub app_options: Vec<String>,
    /// The options that use the archive (with the placeholder), page sharing included.
    pub archive_options: Vec<String>,
    /// Names of the files the steps write in the work directory, the archive last.
    pub work_files: Vec<String>,
    /// Options that make the JVM refuse to start when the archive does not load.
    pub require_options: Vec<String>,
}

/// Whether a JVM option loads a Java agent (`-javaagent:<jar>[=options]`).
pub fn is_java_agent(option: &str) -> bool {
    option.starts_with("-javaagent:")
}

/// The agent jar of a `-javaagent:<jar>[=options]` option.
pub fn java_agent_jar(option: &str) -> Option<&str> {
    let rest = option.strip_prefix("-javaagent:")?;
    Some(rest.split_once('=').map_or(rest, |(jar, _)| jar))
}

/// Whether a JVM's output says a `-javaagent` stopped it at start: its premain threw, or the
/// jar could not be loaded (HotSpot's `libinstrument` messages).
pub fn agent_failed_to_start(output: &str) -> bool {
    [
        "processing of -javaagent failed",
        "loadClassAndCallPremain",
        "Error opening zip file or JAR manifest missing",
    ]
    .iter()
    .any(|m| output.contains(m))
}

/// What an agent that failed at start threw, from the JVM's output: the last `Caused by:` of its
/// stack trace, else the exception line itself.
pub fn agent_failure_cause(output: &str) -> Option<String> {
    let lines: Vec<&str> = output.lines().map(str::trim).collect();
    lines
        .iter()
        .rev()
        .find(|l| l.starts_with("Caused by: "))
        .or_else(|| lines.iter().find(|l| l.starts_with("Exception in thread")))
        .map(|l| l.to_string())
}

/// The options of a run of the app without the archive, whatever the archive's kind: the user's,
/// and the agent as the workload runs it. Known before the JVM is: the build's first run, which
/// also tells the JVM's version, uses them. [`TrainingPlan::app_options`] equals them but for
/// [`AGENT_MODULES_OPTION`], which `-javaagent` implies anyway.
pub fn baseline_options(agent: Option<&AgentSetup>, app_options: &[String]) -> Vec<String> {
    let o = agent_options(None, agent, app_options);
    [o.shared, o.run].concat()
}

/// An agent's part in the options of each phase, around the user's `app_options`.
struct AgentOptions {
    /// Every phase: the user's options, then what the agent needs in all of them.
    shared: Vec<String>,
    /// Training steps only.
    training: Vec<String>,
    /// Runs of the app (verification, production): the agent as the workload runs it.
    run: Vec<String>,
}

/// The agent's options for an archive of `kind` (`None`: not known yet, as in the build's first
/// run, which then leaves out what only an archive's kind needs).
fn agent_options(
    kind: Option<ArchiveKind>,
    agent: Option<&AgentSetup>,
    app_options: &[String],
) -> AgentOptions {
    let mut o = AgentOptions {
        shared: app_options.to_vec(),
        training: vec![],
        run: vec![],
    };
    let Some(agent) = agent else {
        return o;
    };
    match agent.mode {
        // Trained without the agent, verified and run with it (docs/agents.md, measured with
        // the OpenTelemetry agent on Spring Boot): attached during training it crashed the
        // archive dump on JDK 17 (SIGSEGV) and the AOT cache assembly on JDK 25, while an
        // archive of the app's classes serves the JVM that attaches it (13,760 classes on 17,
        // 16,918 on 25). `-javaagent` implies `--add-modules=java.instrument`, and an AOT
        // cache maps only with the module graph it was made with, so it is made with that.
        AgentMode::Attached => {
            if kind == Some(ArchiveKind::AotCache) {
                o.shared.push(AGENT_MODULES_OPTION.to_string());
            }
            o.run.push(format!("-javaagent:{}", agent.path));
        }
        // CDS refuses to dump while any agent runs unless this diagnostic flag is on, and
        // then refuses to map the archive without it; the AOT cache needs it to archive the
        // classes the agent transformed.
        AgentMode::Baked => {
            o.shared.push("-XX:+UnlockDiagnosticVMOptions".to_string());
            o.shared
                .push("-XX:+AllowArchivingWithJavaAgent".to_string());
            let boot = format!("-Xbootclasspath/a:{}", agent.path);
            o.training.push(format!("-javaagent:{}", agent.path));
            o.training.push(boot.clone());
            o.run.push(boot);
        }
    }
    o
}

/// The module `-javaagent` adds to the boot layer; an AOT cache for a JVM that attaches an agent
/// is made with it (the cache maps only with the module graph it was made with).
pub const AGENT_MODULES_OPTION: &str = "--add-modules=java.instrument";

/// The JDK 24 AOT configuration the record step writes and the create step reads.
pub const AOT_CONFIGURATION_FILE: &str = "app.aotconf";
/// The class list the static AppCDS training step writes and the dump step reads.
pub const CLASS_LIST_FILE: &str = "classes.lst";

/// The archive's file name inside the artifact, per kind.
pub fn archive_file_name(kind: ArchiveKind) -> &'static str {
    match kind {
        ArchiveKind::AotCache => "app.aot",
        ArchiveKind::DynamicCds | ArchiveKind::StaticAppcds => "app.jsa",
    }
}

/// Composes the training and run-time flags of an archive of `kind` for a JVM of
/// `feature_version`, writing into the container directory `work_dir`.
/// `app_options` are the user's JVM options that affect the archive (passed in every phase).
pub fn training_plan(
    kind: ArchiveKind,
    feature_version: u32,
    work_dir: &str,
    agent: Option<&AgentSetup>,
    app_options: &[String],
) -> TrainingPlan {
    let work_dir = work_dir.trim_end_matches('/');
    let file_name = archive_file_name(kind);
    let archive_path = format!("{work_dir}/{file_name}");

    // Options every phase shares: the user's, and what the agent needs in all of them.
    let AgentOptions {
        shared,
        training: training_agent,
        run: runtime_agent,
    } = agent_options(Some(kind), agent, app_options);
    let train = |extra: Vec<String>| TrainingStep {
        role: StepRole::Train,
        options: [shared.clone(), training_agent.clone(), extra].concat(),
    };
    let assemble = |extra: Vec<String>| TrainingStep {
        role: StepRole::Assemble,
        options: [shared.clone(), training_agent.clone(), extra].concat(),
    };

    let (steps, use_archive, require) = match kind {
        ArchiveKind::AotCache if feature_version >= AOT_ONE_STEP_SINCE => (
            vec![train(vec![format!("-XX:AOTCacheOutput={archive_path}")])],
            vec![format!("-XX:AOTCache={ARCHIVE_PATH_PLACEHOLDER}")],
            vec!["-XX:AOTMode=on".to_string()],
        ),
        ArchiveKind::AotCache => {
            let conf = format!("{work_dir}/{AOT_CONFIGURATION_FILE}");
            (
                vec![
                    train(vec![
                        "-XX:AOTMode=record".to_string(),
                        format!("-XX:AOTConfiguration={conf}"),
                    ]),
                    assemble(vec![
                        "-XX:AOTMode=create".to_string(),
                        format!("-XX:AOTConfiguration={conf}"),
                        format!("-XX:AOTCache={archive_path}"),
                    ]),
                ],
                vec![format!("-XX:AOTCache={ARCHIVE_PATH_PLACEHOLDER}")],
                vec!["-XX:AOTMode=on".to_string()],
            )
        }
        ArchiveKind::DynamicCds => (
            vec![train(vec![format!(
                "-XX:ArchiveClassesAtExit={archive_path}"
            )])],
            vec![format!("-XX:SharedArchiveFile={ARCHIVE_PATH_PLACEHOLDER}")],
            vec!["-Xshare:on".to_string()],
        ),
        ArchiveKind::StaticAppcds => {
            let list = format!("{work_dir}/{CLASS_LIST_FILE}");
            (
                vec![
                    train(vec![format!("-XX:DumpLoadedClassList={list}")]),
                    assemble(vec![
                        "-Xshare:dump".to_string(),
                        format!("-XX:SharedClassListFile={list}"),
                        format!("-XX:SharedArchiveFile={archive_path}"),
                    ]),
                ],
                vec![format!("-XX:SharedArchiveFile={ARCHIVE_PATH_PLACEHOLDER}")],
                vec!["-Xshare:on".to_string()],
            )
        }
    };

    // What the agent adds to every phase, after the user's options: the archive carries only
    // this and its own options (the workload's own options stay in its template).
    let agent_shared = shared[app_options.len()..].to_vec();
    let app_options = [shared.clone(), runtime_agent].concat();
    let mut archive_options = use_archive;
    if feature_version >= RELOCATION_MODE_SINCE {
        // Pages of the archive are shared between JVMs only when it is mapped at its base address.
        archive_options.push("-XX:+UnlockDiagnosticVMOptions".to_string());
        archive_options.push("-XX:ArchiveRelocationMode=0".to_string());
    }
    // The workload runs its own agent (`enable` checks that it is the one trained with): the
    // archive's options never add one, so an agent missing from a production image cannot stop
    // the JVM and none is loaded twice.
    let mut runtime_options: Vec<String> = agent_shared
        .iter()
        .chain(&app_options[shared.len()..])
        .filter(|o| !is_java_agent(o))
        .cloned()
        .collect();
    for option in &archive_options {
        push_once(&mut runtime_options, option);
    }
    let work_files = match kind {
        ArchiveKind::AotCache if feature_version >= AOT_ONE_STEP_SINCE => vec![file_name],
        ArchiveKind::AotCache => vec![AOT_CONFIGURATION_FILE, file_name],
        ArchiveKind::DynamicCds => vec![file_name],
        ArchiveKind::StaticAppcds => vec![CLASS_LIST_FILE, file_name],
    }
    .into_iter()
    .map(str::to_string)
    .collect();
    let mut training_options = Vec::new();
    for option in steps.iter().flat_map(|s| &s.options) {
        push_once(&mut training_options, option);
    }
    TrainingPlan {
        kind,
        steps,
        archive_path,
        archive_file_name: file_name.to_string(),
        training_options,
        runtime_options,
        app_options,
        archive_options,
        work_files,
        require_options: require,
    }
}

fn push_once(options: &mut Vec<String>, option: &str) {
    if !options.iter().any(|o| o == option) {
        options.push(option.to_string());
    }
}

/// Joins options for `JAVA_TOOL_OPTIONS`, after the value the image already sets (if any).
/// The JVM splits that variable on white space, so an option with a space cannot be passed.
pub fn java_tool_options(existing: Option<&str>, added: &[String]) -> String {
    existing
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .into_iter()
        .chain(added.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The run-time options an archive may carry, exactly as classcache-build writes them: the ones
/// that use the archive itself, and the diagnostic and sharing flags they need.
pub const ARCHIVE_OPTIONS: [&str; 7] = [
    "-XX:SharedArchiveFile={archive}",
    "-XX:AOTCache={archive}",
    "-XX:+UnlockDiagnosticVMOptions",
    "-XX:ArchiveRelocationMode=0",
    "-Xshare:auto",
    "-XX:+AllowArchivingWithJavaAgent",
    AGENT_MODULES_OPTION,
];

/// The boot class path append of a baked agent (`-Xbootclasspath/a:<agent jar>`).
const BOOT_CLASS_PATH_APPEND: &str = "-Xbootclasspath/a:";

/// An option an archive's config carries that no archive needs: it would reach production
/// `JAVA_TOOL_OPTIONS` with no one having reviewed it.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("the archive's run-time option {option:?} is refused: it {why}. An archive may carry only archive options ({}, and -Xbootclasspath/a:<its baked agent's jar>); the workload's own options belong in its pod template: rebuild the archive with classcache-build", ARCHIVE_OPTIONS.join(" "))]
pub struct RefusedOption {
    pub option: String,
    pub why: &'static str,
}

/// Checks an archive config's run-time options against [`ARCHIVE_OPTIONS`]; `baked_agent` is
/// the jar of the config's baked agent, the one path a boot class path append may name.
pub fn check_archive_options(
    options: &[String],
    baked_agent: Option<&str>,
) -> Result<(), RefusedOption> {
    for option in options {
        if ARCHIVE_OPTIONS.contains(&option.as_str()) {
            continue;
        }
        let appended = option.strip_prefix(BOOT_CLASS_PATH_APPEND);
        if appended.is_some() && appended == baked_agent && is_plain_jar_path(appended) {
            continue;
        }
        return Err(RefusedOption {
            option: option.clone(),
            why: refusal_reason(option, appended.is_some()),
        });
    }
    Ok(())
}

/// One absolute path with nothing the JVM would split into more (`:` separates class path
/// entries, white space separates `JAVA_TOOL_OPTIONS`).
fn is_plain_jar_path(path: Option<&str>) -> bool {
    path.is_some_and(|p| {
        p.starts_with('/') && !p.contains(|c: char| c == ':' || c.is_whitespace() || c == '=')
    })
}

fn refusal_reason(option: &str, boot_class_path: bool) -> &'static str {
    let starts = |prefixes: &[&str]| prefixes.iter().any(|p| option.starts_with(p));
    if starts(&["-javaagent:", "-agentlib:", "-agentpath:", "-Xrun"]) {
        "loads an agent (code) into the JVM; the workload attaches its own agents"
    } else if boot_class_path {
        "puts a jar other than the archive's baked agent on the boot class path"
    } else if starts(&["-XX:SharedArchiveFile=", "-XX:AOTCache="]) {
        "points the JVM at a file other than the archive itself ({archive})"
    } else if starts(&["-XX:OnError", "-XX:OnOutOfMemoryError"]) {
        "runs a command"
    } else if starts(&["-D"]) {
        "sets a system property"
    } else if option.contains(char::is_whitespace) {
        "holds white space, which JAVA_TOOL_OPTIONS splits into more options"
    } else {
        "is not an archive option"
    }
}

/// Where a class came from, per one line of the `-Xlog:class+load=info` log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedClass {
    pub name: String,
    /// True when the class was mapped from a CDS archive or AOT cache.
    pub from_archive: bool,
    /// The `source:` text, e.g. `shared objects file (top)`, `jrt:/java.base`, `file:/app/app.jar`.
    pub source: String,
}

/// Parses one class-load log line such as
/// `[0.041s][info][class,load] com.example.Main source: shared objects file (top)`.
pub fn parse_class_load_line(line: &str) -> Option<LoadedClass> {
    // The tag set is padded to a common width when other tags log too: `[class,load         ]`.
    let after_tag = line.split_once("[class,load")?.1;
    let rest = after_tag
        .trim_start_matches(' ')
        .strip_prefix(']')?
        .trim_start();
    let (name, source) = rest.split_once(" source: ")?;
    let source = source.trim().to_string();
    Some(LoadedClass {
        name: name.trim().to_string(),
        // JDK 17-23: `shared objects file` (base) or `shared objects file (top)` (dynamic);
        // JDK 24+ AOT cache: `shared objects file` as well.
        from_archive: source.starts_with("shared objects file"),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const JDK17: &str = "Property settings:\n    file.encoding = UTF-8\n    java.class.path = \n    java.home = /usr/lib/jvm/java-17-openjdk-amd64\n    java.library.path = /usr/java/packages/lib\n        /usr/lib/x86_64-linux-gnu/jni\n    java.vendor = Debian\n    java.version = 17.0.15\n    java.vm.version = 17.0.15+6-Debian-1deb12u1\n    os.arch = amd64\n\nopenjdk version \"17.0.15\" 2025-04-15\n";

    #[test]
    fn parses_jdk17_properties() {
        let p = parse_properties(JDK17).unwrap();
        assert_eq!(p.version, "17.0.15");
        assert_eq!(p.vendor, "Debian");
        assert_eq!(p.vm_version, "17.0.15+6-Debian-1deb12u1");
        assert_eq!(oci_arch(&p.os_arch), "amd64");
        assert_eq!(
            p.base_archive_path().unwrap(),
            "/usr/lib/jvm/java-17-openjdk-amd64/lib/server/classes.jsa"
        );
        let id = p.identity().unwrap();
        assert_eq!(id.feature_version, 17);
        assert_eq!(id.build, "17.0.15+6-Debian-1deb12u1");
    }

    #[test]
    fn missing_property_is_named() {
        let e = parse_properties("openjdk version \"17\"").unwrap_err();
        assert_eq!(e, JvmError::MissingProperty("java.version"));
    }

    #[test]
    fn feature_versions() {
        for (v, f) in [
            ("17.0.15", 17),
            ("25", 25),
            ("1.8.0_392", 8),
            ("26-ea", 26),
            ("21.0.1+12", 21),
        ] {
            assert_eq!(feature_version(v).unwrap(), f, "{v}");
        }
        assert!(matches!(feature_version("x"), Err(JvmError::BadVersion(_))));
    }

    #[test]
    fn base_archive_logs() {
        let opened = "[0.015s][info][cds] Opened archive /usr/lib/jvm/java-17-openjdk-amd64/lib/server/classes.jsa.";
        assert_eq!(base_archive_in_log(opened), Some(true));
        let missing = "[0.004s][info][cds] Specified shared archive file not found (/opt/jdk/lib/server/classes.jsa)";
        assert_eq!(base_archive_in_log(missing), Some(false));
        assert_eq!(base_archive_in_log("openjdk version \"21\""), None);
    }

    #[test]
    fn java_8_is_too_old() {
        let p = JvmProperties {
            version: "1.8.0_392".into(),
            vendor: "Temurin".into(),
            vm_version: "25.392-b08".into(),
            os_arch: "amd64".into(),
            java_home: None,
        };
        let e = p.identity().unwrap_err();
        assert!(e.to_string().contains("Java 8"), "{e}");
    }

    #[test]
    fn kinds_follow_the_release() {
        assert_eq!(default_kind(25, false).unwrap(), ArchiveKind::AotCache);
        assert_eq!(default_kind(24, true).unwrap(), ArchiveKind::AotCache);
        assert_eq!(default_kind(17, true).unwrap(), ArchiveKind::DynamicCds);
        assert_eq!(default_kind(17, false).unwrap(), ArchiveKind::StaticAppcds);
        assert_eq!(default_kind(11, true).unwrap(), ArchiveKind::StaticAppcds);
        assert!(default_kind(8, true).is_err());
        assert!(check_kind(ArchiveKind::AotCache, 21, true).is_err());
        assert_eq!(
            check_kind(ArchiveKind::DynamicCds, 21, false),
            Err(JvmError::NoBaseArchive)
        );
        assert!(check_kind(ArchiveKind::StaticAppcds, 17, false).is_ok());
        assert_eq!(
            check_kind(ArchiveKind::StaticAppcds, 25, false),
            Err(JvmError::StaticAppcdsSuperseded { found: 25 })
        );
    }

    #[test]
    fn jdk25_trains_in_one_step() {
        let plan = training_plan(ArchiveKind::AotCache, 25, "/tmp/cc/", None, &[]);
        assert_eq!(plan.steps.len(), 1);
        assert_eq!(
            plan.steps[0].options,
            ["-XX:AOTCacheOutput=/tmp/cc/app.aot"]
        );
        assert_eq!(plan.archive_path, "/tmp/cc/app.aot");
        assert_eq!(
            plan.runtime_options,
            [
                "-XX:AOTCache={archive}",
                "-XX:+UnlockDiagnosticVMOptions",
                "-XX:ArchiveRelocationMode=0"
            ]
        );
        assert_eq!(plan.require_options, ["-XX:AOTMode=on"]);
    }

    #[test]
    fn jdk24_records_then_creates() {
        let plan = training_plan(ArchiveKind::AotCache, 24, "/w", None, &[]);
        assert_eq!(plan.steps.len(), 2);
        assert_eq!(plan.steps[0].role, StepRole::Train);
        assert!(plan.steps[0]
            .options
            .contains(&"-XX:AOTMode=record".to_string()));
        assert_eq!(plan.steps[1].role, StepRole::Assemble);
        assert!(plan.steps[1]
            .options
            .contains(&"-XX:AOTCache=/w/app.aot".to_string()));
    }

    #[test]
    fn cds_plans_and_agent_modes() {
        let agent = AgentSetup {
            path: "/opt/agent.jar".into(),
            mode: AgentMode::Attached,
        };
        // An attached agent: trained without it, verified with it, never in run-time options.
        let plan = training_plan(
            ArchiveKind::DynamicCds,
            17,
            "/w",
            Some(&agent),
            &["-XX:+UseG1GC".into()],
        );
        assert_eq!(
            plan.steps[0].options,
            ["-XX:+UseG1GC", "-XX:ArchiveClassesAtExit=/w/app.jsa"]
        );
        assert_eq!(
            plan.runtime_options[..1],
            ["-XX:SharedArchiveFile={archive}"],
            "the workload runs its own agent and keeps its own options: run-time options add neither"
        );
        assert!(
            plan.app_options
                .contains(&"-javaagent:/opt/agent.jar".to_string()),
            "verification runs attach it, as production does"
        );
        assert_eq!(plan.require_options, ["-Xshare:on"]);
        assert_eq!(
            java_agent_jar("-javaagent:/a/b.jar=x=1,y"),
            Some("/a/b.jar")
        );
        assert_eq!(java_agent_jar("-jar"), None);
        // The AOT cache is made with the module graph of a JVM that attaches an agent.
        let plan = training_plan(ArchiveKind::AotCache, 25, "/w", Some(&agent), &[]);
        assert_eq!(
            plan.steps[0].options,
            [AGENT_MODULES_OPTION, "-XX:AOTCacheOutput=/w/app.aot"]
        );
        assert!(plan
            .runtime_options
            .contains(&AGENT_MODULES_OPTION.to_string()));
        assert!(!plan.runtime_options.iter().any(|o| is_java_agent(o)));

        let baked = AgentSetup {
            mode: AgentMode::Baked,
            ..agent
        };
        let plan = training_plan(ArchiveKind::DynamicCds, 17, "/w", Some(&baked), &[]);
        assert!(plan.steps[0]
            .options
            .contains(&"-XX:+AllowArchivingWithJavaAgent".to_string()));
        assert!(plan
            .runtime_options
            .contains(&"-XX:+AllowArchivingWithJavaAgent".to_string()));
        assert!(plan
            .runtime_options
            .contains(&"-Xbootclasspath/a:/opt/agent.jar".to_string()));
        assert!(!plan
            .runtime_options
            .iter()
            .any(|o| o.starts_with("-javaagent")));
        let unlocks = plan
            .runtime_options
            .iter()
            .filter(|o| *o == "-XX:+UnlockDiagnosticVMOptions")
            .count();
        assert_eq!(unlocks, 1);

        // JDK 11 and 12 know no ArchiveRelocationMode: the flag would stop the JVM.
        let plan = training_plan(ArchiveKind::StaticAppcds, 11, "/w", None, &[]);
        assert_eq!(plan.runtime_options, ["-XX:SharedArchiveFile={archive}"]);
        assert!(plan.steps[1].options.contains(&"-Xshare:dump".to_string()));
    }

    /// Every option set core composes, for every kind, release and agent mode, passes the
    /// allow-list (with the plan's agent as the config records it).
    #[test]
    fn every_composed_runtime_option_set_is_allowed() {
        let mut checked = 0;
        for kind in [
            ArchiveKind::AotCache,
            ArchiveKind::DynamicCds,
            ArchiveKind::StaticAppcds,
        ] {
            for version in [11, 13, 14, 17, 21, 24, 25, 26] {
                if check_kind(kind, version, true).is_err() {
                    continue;
                }
                for mode in [None, Some(AgentMode::Attached), Some(AgentMode::Baked)] {
                    let agent = mode.map(|mode| AgentSetup {
                        path: "/opt/classcache/agent/otel.jar".into(),
                        mode,
                    });
                    let app = ["-XX:+UseG1GC".to_string(), "-Xmx512m".to_string()];
                    let plan = training_plan(kind, version, "/w", agent.as_ref(), &app);
                    let baked = agent
                        .as_ref()
                        .filter(|a| a.mode == AgentMode::Baked)
                        .map(|a| a.path.as_str());
                    check_archive_options(&plan.runtime_options, baked)
                        .unwrap_or_else(|e| panic!("{kind} on {version}, agent {mode:?}: {e}"));
                    assert!(
                        !plan.runtime_options.iter().any(|o| app.contains(o)),
                        "the workload's own options stay in its template: {:?}",
                        plan.runtime_options
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked >= 30, "{checked}");
    }

    #[test]
    fn options_outside_the_archive_are_refused_with_the_reason() {
        let refused = |option: &str, baked: Option<&str>| {
            check_archive_options(
                &["-XX:SharedArchiveFile={archive}".into(), option.into()],
                baked,
            )
            .unwrap_err()
        };
        for (option, why) in [
            ("-javaagent:/tmp/evil.jar", "loads an agent"),
            ("-agentpath:/tmp/evil.so", "loads an agent"),
            ("-agentlib:jdwp=transport=dt_socket", "loads an agent"),
            ("-XX:OnError=curl evil", "runs a command"),
            ("-XX:OnOutOfMemoryError=sh", "runs a command"),
            ("-Djava.security.manager=allow", "sets a system property"),
            (
                "-XX:SharedArchiveFile=/tmp/other.jsa",
                "other than the archive",
            ),
            ("-XX:AOTCache={archive}:/tmp/x", "other than the archive"),
            ("-Xshare:auto -javaagent:/x.jar", "white space"),
            ("-Xbootclasspath/a:/tmp/evil.jar", "boot class path"),
            ("-XX:+UseG1GC", "not an archive option"),
            ("-Xshare:off", "not an archive option"),
            ("-XX:ArchiveRelocationMode=1 ", "white space"),
        ] {
            let e = refused(option, None);
            assert_eq!(e.option, option);
            assert!(e.to_string().contains(why), "{option}: {e}");
            assert!(e.to_string().contains("pod template"), "{e}");
        }
        // A boot class path append only of the baked agent's own jar, one plain path.
        let baked = Some("/opt/agent.jar");
        assert!(check_archive_options(&["-Xbootclasspath/a:/opt/agent.jar".into()], baked).is_ok());
        for sneaky in [
            "-Xbootclasspath/a:/opt/agent.jar:/tmp/evil.jar",
            "-Xbootclasspath/a:/tmp/evil.jar",
            "-Xbootclasspath/p:/opt/agent.jar",
            "-Xbootclasspath:/opt/agent.jar",
        ] {
            assert!(refused(sneaky, baked).option == sneaky);
        }
        let colon = Some("/opt/a.jar:/tmp/evil.jar");
        assert!(check_archive_options(
            &["-Xbootclasspath/a:/opt/a.jar:/tmp/evil.jar".into()],
            colon
        )
        .is_err());
        assert!(check_archive_options(&[], None).is_ok());
    }

    #[test]
    fn tool_options_keep_the_images_value_first() {
        let added = vec!["-Xshare:on".to_string()];
        assert_eq!(
            java_tool_options(Some(" -Xmx1g "), &added),
            "-Xmx1g -Xshare:on"
        );
        assert_eq!(java_tool_options(None, &added), "-Xshare:on");
        assert_eq!(java_tool_options(Some(""), &added), "-Xshare:on");
    }

    #[test]
    fn class_load_lines() {
        let c = parse_class_load_line(
            "[0.041s][info][class,load] com.example.Main source: shared objects file (top)",
        )
        .unwrap();
        assert!(c.from_archive);
        assert_eq!(c.name, "com.example.Main");
        let c = parse_class_load_line(
            "[0.05s][info][class,load] com.example.A source: file:/app/app.jar",
        )
        .unwrap();
        assert!(!c.from_archive);
        assert!(parse_class_load_line("hello").is_none());
        // Seen on JDK 25 with an agent attached: tags padded to a common width.
        let c = parse_class_load_line(
            "[9.997s][info   ][class,load         ] org.apache.X source: shared objects file",
        )
        .unwrap();
        assert!(c.from_archive);
        assert_eq!(c.name, "org.apache.X");
        assert!(parse_class_load_line("[0.1s][info][class,loader,data] x source: y").is_none());
    }
}
