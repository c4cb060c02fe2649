//! Where archives live on a node and inside a pod: the contract between the fetcher and the
//! pod-template edit. It computes paths only; it must not touch the file system.

/// Mount point of the archive directory inside every enabled container.
pub const POD_ARCHIVE_DIR: &str = "/classcache";
/// Default hostPath of the fetcher's store on a node.
pub const NODE_STORE_DIR: &str = "/var/lib/classcache";
/// Sub-directory of the store that pods mount read-only: only complete, verified archives.
pub const PUBLISHED_SUBDIR: &str = "published";

/// File name of a published archive, named after the digest pinned in the pod template
/// (an archive manifest or an index of per-platform archives), so the path in
/// `JAVA_TOOL_OPTIONS` is the same on every node whatever its platform.
pub fn published_file_name(pinned_digest: &str) -> String {
    pinned_digest.replace(':', "-")
}

/// The archive's path as the JVM in the pod sees it.
pub fn pod_archive_path(pinned_digest: &str) -> String {
    format!("{POD_ARCHIVE_DIR}/{}", published_file_name(pinned_digest))
}

/// The archive's path as the JVM sees it when an image volume delivers it: the volume is mounted
/// as a directory at [`pod_archive_path`] (containerd mounts only directory sub-paths of an image
/// volume, not one file), holding the archive under its own file name.
pub fn pod_image_volume_archive_path(pinned_digest: &str, archive_file: &str) -> String {
    format!("{}/{archive_file}", pod_archive_path(pinned_digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_is_named_after_the_pinned_digest() {
        assert_eq!(pod_archive_path("sha256:ab12"), "/classcache/sha256-ab12");
    }
}
