//! JVM options in a pod template: merging the archive's run-time options into `JAVA_TOOL_OPTIONS`
//! and spotting what would stop the archive from being used. It must not edit the template itself.

use super::locate::ContainerView;
use crate::artifact::ImageIdentity;

/// One option as a `JAVA_TOOL_OPTIONS` token: the JVM splits the variable on white space and
/// keeps quoted runs together, so an option with a space is double-quoted.
pub fn quote_option(option: &str) -> String {
    if option.chars().any(char::is_whitespace) {
        format!("\"{option}\"")
    } else {
        option.to_string()
    }
}

/// The user's value followed by the archive's options. The user's text is kept byte for byte as
/// the prefix (so its tokens survive in order); ours come last so they win over a stale
/// `-XX:SharedArchiveFile` the user may have left there.
pub fn merge_java_tool_options(user: Option<&str>, ours: &[String]) -> String {
    let ours = ours
        .iter()
        .map(|o| quote_option(o))
        .collect::<Vec<_>>()
        .join(" ");
    match user {
        Some(user) if !user.trim().is_empty() => format!("{user} {ours}"),
        _ => ours,
    }
}

/// Options that switch sharing off or point the JVM at another archive; each is worth a warning
/// when the user's settings carry it.
const CONFLICTING: [&str; 6] = [
    "-Xshare:off",
    "-XX:SharedArchiveFile",
    "-XX:AOTCache",
    "-XX:AOTMode=off",
    "-XX:ArchiveClassesAtExit",
    "-XX:AOTCacheOutput",
];

/// The user's options (in `JAVA_TOOL_OPTIONS` or on the command line) that fight the archive.
pub fn conflicting_options<'a>(tokens: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    tokens
        .into_iter()
        .filter(|t| CONFLICTING.iter().any(|c| t.starts_with(c)))
        .map(str::to_string)
        .collect()
}

/// A warning when the container runs another command than the training run did: the class path
/// may then differ and the JVM would skip the archive. `None` when they match or when the archive
/// does not record the training command.
pub fn command_warning(container: &ContainerView, image: &ImageIdentity) -> Option<String> {
    if image.entrypoint.is_empty() && image.cmd.is_empty() {
        return None;
    }
    // Kubernetes semantics: `command` replaces ENTRYPOINT and drops CMD unless `args` is given.
    let entrypoint = container
        .command
        .clone()
        .unwrap_or_else(|| image.entrypoint.clone());
    let cmd = match (&container.args, &container.command) {
        (Some(args), _) => args.clone(),
        (None, Some(_)) => vec![],
        (None, None) => image.cmd.clone(),
    };
    let runs = [entrypoint, cmd].concat();
    let trained = [image.entrypoint.clone(), image.cmd.clone()].concat();
    (runs != trained).then(|| {
        format!(
            "it runs `{}` but the archive was trained with `{}`; if the class path differs the JVM skips \
             the archive: train with the same command (classcache-build --command), or drop command/args",
            runs.join(" "),
            trained.join(" ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_value_is_kept_as_prefix() {
        let ours = vec![
            "-XX:SharedArchiveFile=/classcache/x".to_string(),
            "-Da=b c".to_string(),
        ];
        assert_eq!(
            merge_java_tool_options(Some("-Xmx1g  -Dq=1"), &ours),
            "-Xmx1g  -Dq=1 -XX:SharedArchiveFile=/classcache/x \"-Da=b c\""
        );
        assert_eq!(
            merge_java_tool_options(None, &ours[..1]),
            "-XX:SharedArchiveFile=/classcache/x"
        );
        assert_eq!(
            merge_java_tool_options(Some(" "), &ours[..1]),
            "-XX:SharedArchiveFile=/classcache/x"
        );
    }

    #[test]
    fn command_overrides_are_compared_with_kubernetes_semantics() {
        let image = ImageIdentity {
            reference: "app".into(),
            digest: crate::digest::Digest::of(b"x"),
            entrypoint: vec!["java".into()],
            cmd: vec!["-jar".into(), "app.jar".into()],
        };
        let view = |command: Option<&[&str]>, args: Option<&[&str]>| ContainerView {
            name: "app".into(),
            image: "app".into(),
            command: command.map(|c| c.iter().map(|s| s.to_string()).collect()),
            args: args.map(|c| c.iter().map(|s| s.to_string()).collect()),
        };
        assert_eq!(command_warning(&view(None, None), &image), None);
        assert_eq!(
            command_warning(&view(Some(&["java"]), Some(&["-jar", "app.jar"])), &image),
            None
        );
        assert!(command_warning(&view(None, Some(&["-cp", "other"])), &image).is_some());
        assert!(command_warning(&view(Some(&["java"]), None), &image).is_some());
        assert_eq!(
            conflicting_options(["-Xmx1g", "-Xshare:off", "-XX:SharedArchiveFile=/a"]).len(),
            2
        );
    }
}
