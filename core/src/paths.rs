//! Where archives live on a node and inside a pod: the contract between the fetcher and the
//! pod-template edit. It computes paths only; it must not touch the file system.

/// Mount point of the archive directory inside every enabled container.
pub const POD_ARCHIVE_DIR: &str = "/classcache";
/// Default hostPath of the fetcher's store on a node.
pub const NODE_STORE_DIR: &str = "/var/lib/classcache";
/// Sub-directory of the store holding one directory per published archive
/// ([`published_dir_name`]), each mounted read-only by the pods that pin it: only complete,
/// verified archives.
pub const PUBLISHED_SUBDIR: &str = "published";

/// Directories a node store must not be, nor lie under: the fetcher would publish into, and
/// evict from, the node's own system files (`/` itself is refused too).
const SYSTEM_DIRS: &[&str] = &[
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/lib",
    "/lib32",
    "/lib64",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/sys",
    "/usr",
    "/var/run",
    "/var/lib/kubelet",
    "/var/lib/containerd",
    "/var/lib/docker",
];

/// A problem with a node store directory (`install --store-dir`, `enable --store-dir`, the
/// fetcher's `--store`), with the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreDirError {
    #[error("store directory {0:?} must be an absolute path on the nodes, e.g. {NODE_STORE_DIR}")]
    NotAbsolute(String),
    #[error("store directory {0:?} must be a plain path (no `.` or `..` parts, no doubled `/`), e.g. {NODE_STORE_DIR}")]
    NotPlain(String),
    #[error("store directory {dir:?} is {what}, which the fetcher would fill and evict from; use a directory of its own, e.g. {NODE_STORE_DIR}")]
    System { dir: String, what: String },
}

/// Checks a node store directory: absolute, plain, and neither `/` nor a system directory (or
/// one below it). Returns it without a trailing `/`.
pub fn check_store_dir(dir: &str) -> Result<&str, StoreDirError> {
    if !dir.starts_with('/') {
        return Err(StoreDirError::NotAbsolute(dir.to_string()));
    }
    let trimmed = dir.trim_end_matches('/');
    if trimmed.is_empty() {
        return Err(StoreDirError::System {
            dir: dir.to_string(),
            what: "the root directory".into(),
        });
    }
    if trimmed[1..]
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Err(StoreDirError::NotPlain(dir.to_string()));
    }
    if let Some(system) = SYSTEM_DIRS
        .iter()
        .find(|s| trimmed == **s || trimmed.starts_with(&format!("{s}/")))
    {
        return Err(StoreDirError::System {
            dir: dir.to_string(),
            what: format!("{system} or below it"),
        });
    }
    Ok(trimmed)
}

/// Name of an archive's own directory, in the node store's `published` directory and inside
/// the pod: the digest pinned in the pod template (an archive manifest or an index of
/// per-platform archives), so the path in `JAVA_TOOL_OPTIONS` is the same on every node whatever
/// its platform. A pod mounts only the directories of the archives it pins.
pub fn published_dir_name(pinned_digest: &str) -> String {
    pinned_digest.replace(':', "-")
}

/// An archive's own directory on a node (`<store>/published/sha256-<hex>`): what a pod's
/// hostPath volume names, so the pod sees that archive and no other.
pub fn node_archive_dir(store_dir: &str, pinned_digest: &str) -> String {
    format!(
        "{}/{PUBLISHED_SUBDIR}/{}",
        store_dir.trim_end_matches('/'),
        published_dir_name(pinned_digest)
    )
}

/// The directory a pod sees one archive in (one mount per archive in hostpath and image-volume
/// modes: containerd mounts only directory sub-paths of an image volume, not one file).
pub fn pod_archive_dir(pinned_digest: &str) -> String {
    format!("{POD_ARCHIVE_DIR}/{}", published_dir_name(pinned_digest))
}

/// The archive's path as the JVM in the pod sees it, in every delivery mode: its directory
/// holding the archive under its own file name (`config.archive.name`).
pub fn pod_archive_path(pinned_digest: &str, archive_file: &str) -> String {
    format!("{}/{archive_file}", pod_archive_dir(pinned_digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_dirs_are_absolute_plain_and_not_the_systems() {
        assert_eq!(
            check_store_dir("/var/lib/classcache/"),
            Ok("/var/lib/classcache")
        );
        assert_eq!(check_store_dir("/data/cc"), Ok("/data/cc"));
        for (bad, says) in [
            ("var/lib/classcache", "absolute"),
            ("/", "root directory"),
            ("//", "root directory"),
            ("/data/../etc", "plain path"),
            ("/data//cc", "plain path"),
            ("/etc", "/etc or below"),
            ("/usr/local/cc", "/usr or below"),
            ("/var/lib/kubelet/pods", "/var/lib/kubelet or below"),
            ("/proc/1", "/proc or below"),
        ] {
            let e = check_store_dir(bad).unwrap_err().to_string();
            assert!(e.contains(says) && e.contains(NODE_STORE_DIR), "{bad}: {e}");
        }
        assert!(
            check_store_dir("/variable").is_ok(),
            "a prefix of a name is not a parent"
        );
    }

    #[test]
    fn path_is_named_after_the_pinned_digest() {
        assert_eq!(pod_archive_dir("sha256:ab12"), "/classcache/sha256-ab12");
        assert_eq!(
            node_archive_dir("/var/lib/classcache/", "sha256:ab12"),
            "/var/lib/classcache/published/sha256-ab12"
        );
        assert_eq!(
            pod_archive_path("sha256:ab12", "app.jsa"),
            "/classcache/sha256-ab12/app.jsa"
        );
    }
}
