//! Where an archive (or an image) lives: an OCI image-layout directory or a registry repository.
//! It parses and prints references only; it must not touch the network or the file system.

use crate::digest::Digest;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// Registry used for references without a host, as Docker does.
pub const DOCKER_HUB: &str = "docker.io";
/// Prefix of an OCI image-layout reference: `oci:DIR[:TAG]` or `oci:DIR@sha256:<hex>`.
pub const LAYOUT_PREFIX: &str = "oci:";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReferenceError {
    #[error("empty reference; pass `oci:DIR[:TAG]` or `HOST[:PORT]/REPO[:TAG][@sha256:<hex>]`")]
    Empty,
    #[error("reference {reference:?}: {problem}; pass `oci:DIR[:TAG]` or `HOST[:PORT]/REPO[:TAG][@sha256:<hex>]`")]
    Invalid { reference: String, problem: String },
}

fn invalid(reference: &str, problem: impl Into<String>) -> ReferenceError {
    ReferenceError::Invalid {
        reference: reference.to_string(),
        problem: problem.into(),
    }
}

/// A repository in a registry, optionally pinned to a tag and/or a digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RegistryRef {
    /// `host[:port]` as written (`docker.io` for references without a host).
    pub registry: String,
    /// Repository path, e.g. `team/app` (`library/app` on Docker Hub for one-part names).
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

/// Where archives are read from or written to: programs take either form interchangeably.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ArchiveLocation {
    /// An OCI image-layout directory, optionally with a tag (`ref.name`) or digest in it.
    Layout {
        dir: PathBuf,
        tag: Option<String>,
        digest: Option<Digest>,
    },
    Registry(RegistryRef),
}

/// `host:port/repo` of `host:port/repo:tag` or `…@sha256:…`, as text (a registry port is not
/// a tag), for references that may not parse as a [`RegistryRef`] (Docker's own names).
pub fn repository_of(image: &str) -> &str {
    let without_digest = image.split('@').next().unwrap_or(image);
    let name_start = without_digest.rfind('/').map_or(0, |slash| slash + 1);
    match without_digest[name_start..].find(':') {
        Some(colon) => &without_digest[..name_start + colon],
        None => without_digest,
    }
}

/// True for a valid OCI tag: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
pub fn is_valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fn is_valid_repository(repo: &str) -> bool {
    !repo.is_empty()
        && repo.split('/').all(|part| {
            !part.is_empty()
                && part.bytes().all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'-')
                })
                && part.as_bytes()[0].is_ascii_alphanumeric()
                && part.as_bytes()[part.len() - 1].is_ascii_alphanumeric()
        })
}

/// Splits `x@sha256:<hex>` into `x` and the checked digest.
fn split_digest<'a>(whole: &str, s: &'a str) -> Result<(&'a str, Option<Digest>), ReferenceError> {
    match s.split_once('@') {
        None => Ok((s, None)),
        Some((rest, digest)) if digest.parse::<Digest>().is_ok() => Ok((rest, digest.parse().ok())),
        Some((_, digest)) => Err(invalid(
            whole,
            format!("{digest:?} is not a sha256:<64 lower-case hex> digest"),
        )),
    }
}

fn check_tag(whole: &str, tag: Option<&str>) -> Result<Option<String>, ReferenceError> {
    match tag {
        Some(t) if !is_valid_tag(t) => Err(invalid(
            whole,
            format!("{t:?} is not a valid tag (letters, digits, `_.-`, at most 128)"),
        )),
        t => Ok(t.map(str::to_string)),
    }
}

impl RegistryRef {
    /// True when the registry is on this machine, where plain HTTP is the norm.
    pub fn is_loopback(&self) -> bool {
        let host = match self.registry.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(v6),
            None => self.registry.split(':').next().unwrap_or(&self.registry),
        };
        host == "localhost" || host == "::1" || host.starts_with("127.")
    }

    /// The host to talk to: Docker Hub's API host for `docker.io`.
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            "registry-1.docker.io"
        } else {
            &self.registry
        }
    }

    /// The same repository with only this tag.
    pub fn with_tag(&self, tag: &str) -> RegistryRef {
        RegistryRef {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        }
    }

    /// The same repository pinned to this digest.
    pub fn with_digest(&self, digest: &Digest) -> RegistryRef {
        RegistryRef {
            tag: None,
            digest: Some(digest.clone()),
            ..self.clone()
        }
    }

    /// The same repository with neither tag nor digest.
    pub fn repository_only(&self) -> RegistryRef {
        RegistryRef {
            tag: None,
            digest: None,
            ..self.clone()
        }
    }

    /// What to ask the registry for: the digest when pinned, else the tag (`latest` if none).
    pub fn reference_for_manifest(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_string(),
        }
    }
}

impl FromStr for RegistryRef {
    type Err = ReferenceError;

    /// Parses `[host[:port]/]repo[:tag][@sha256:<hex>]` with Docker's defaults
    /// (`docker.io`, `library/` for one-part names); no tag is implied.
    fn from_str(s: &str) -> Result<Self, ReferenceError> {
        if s.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let (rest, digest) = split_digest(s, s)?;
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i + 1..].contains('/') && !rest[i + 1..].contains(']') => {
                (&rest[..i], Some(&rest[i + 1..]))
            }
            _ => (rest, None),
        };
        let tag = check_tag(s, tag)?;
        let (registry, repository) = match name.split_once('/') {
            Some((first, path)) if first.contains(['.', ':', '[']) || first == "localhost" => {
                (first.to_string(), path.to_string())
            }
            Some(_) => (DOCKER_HUB.to_string(), name.to_string()),
            None => (DOCKER_HUB.to_string(), format!("library/{name}")),
        };
        if !is_valid_repository(&repository) {
            return Err(invalid(s, format!("{repository:?} is not a valid repository name (lower-case letters, digits, `._-`, `/`-separated)")));
        }
        Ok(RegistryRef {
            registry,
            repository,
            tag,
            digest,
        })
    }
}

impl fmt::Display for RegistryRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl ArchiveLocation {
    /// The tag the reference names, if any.
    pub fn tag(&self) -> Option<&str> {
        match self {
            ArchiveLocation::Layout { tag, .. } => tag.as_deref(),
            ArchiveLocation::Registry(r) => r.tag.as_deref(),
        }
    }

    /// The digest the reference pins, if any.
    pub fn digest(&self) -> Option<&Digest> {
        match self {
            ArchiveLocation::Layout { digest, .. } => digest.as_ref(),
            ArchiveLocation::Registry(r) => r.digest.as_ref(),
        }
    }
}

impl FromStr for ArchiveLocation {
    type Err = ReferenceError;

    /// `oci:DIR`, `oci:DIR:TAG`, `oci:DIR@sha256:<hex>` (as skopeo writes them), or a registry
    /// reference. In a layout reference the last `:` starts the tag, so DIR must not contain `:`.
    fn from_str(s: &str) -> Result<Self, ReferenceError> {
        let Some(path) = s.strip_prefix(LAYOUT_PREFIX) else {
            return s.parse().map(ArchiveLocation::Registry);
        };
        let (path, digest) = split_digest(s, path)?;
        let (dir, tag) = match path.split_once(':') {
            Some((dir, tag)) => (dir, Some(tag)),
            None => (path, None),
        };
        if dir.is_empty() {
            return Err(invalid(s, "the layout directory is empty"));
        }
        let tag = check_tag(s, tag)?;
        Ok(ArchiveLocation::Layout {
            dir: PathBuf::from(dir),
            tag,
            digest,
        })
    }
}

impl fmt::Display for ArchiveLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArchiveLocation::Layout { dir, tag, digest } => {
                write!(f, "{LAYOUT_PREFIX}{}", dir.display())?;
                if let Some(tag) = tag {
                    write!(f, ":{tag}")?;
                }
                if let Some(digest) = digest {
                    write!(f, "@{digest}")?;
                }
                Ok(())
            }
            ArchiveLocation::Registry(r) => r.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn reg(s: &str) -> RegistryRef {
        s.parse().unwrap()
    }

    #[test]
    fn registry_references_follow_docker_defaults() {
        let r = reg("busybox");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("docker.io", "library/busybox", None)
        );
        assert_eq!(r.reference_for_manifest(), "latest");
        assert_eq!(r.api_host(), "registry-1.docker.io");
        let r = reg("team/app:1.0");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("docker.io", "team/app", Some("1.0"))
        );
        let r = reg(&format!("127.0.0.1:5000/a/b:v1@{D}"));
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("127.0.0.1:5000", "a/b")
        );
        assert_eq!(
            (
                r.tag.as_deref(),
                r.digest.as_ref().map(Digest::to_string).as_deref()
            ),
            (Some("v1"), Some(D))
        );
        assert_eq!(r.reference_for_manifest(), D);
        assert!(r.is_loopback());
        assert_eq!(r.to_string(), format!("127.0.0.1:5000/a/b:v1@{D}"));
        let r = reg("localhost/app");
        assert_eq!(r.registry, "localhost");
        assert!(r.is_loopback());
        let r = reg("[::1]:5000/app:t");
        assert_eq!(
            (r.registry.as_str(), r.tag.as_deref()),
            ("[::1]:5000", Some("t"))
        );
        assert!(r.is_loopback());
        let r = reg("ghcr.io/org/app");
        assert!(!r.is_loopback());
        assert_eq!(r.tag, None);
    }

    #[test]
    fn repositories_keep_ports() {
        assert_eq!(repository_of("127.0.0.1:5055/a/b:t"), "127.0.0.1:5055/a/b");
        assert_eq!(repository_of("127.0.0.1:5055/a/b"), "127.0.0.1:5055/a/b");
        assert_eq!(
            repository_of("127.0.0.1:5055/a/b@sha256:00"),
            "127.0.0.1:5055/a/b"
        );
        assert_eq!(repository_of("app"), "app");
    }

    #[test]
    fn layout_references_take_a_tag_or_a_digest() {
        let l: ArchiveLocation = "oci:/tmp/out:classcache-v1-ab".parse().unwrap();
        assert_eq!(
            l,
            ArchiveLocation::Layout {
                dir: "/tmp/out".into(),
                tag: Some("classcache-v1-ab".into()),
                digest: None
            }
        );
        assert_eq!(l.to_string(), "oci:/tmp/out:classcache-v1-ab");
        let l: ArchiveLocation = "oci:rel/dir".parse().unwrap();
        assert_eq!(l.tag(), None);
        let l: ArchiveLocation = format!("oci:d@{D}").parse().unwrap();
        assert_eq!(l.digest().map(Digest::to_string).as_deref(), Some(D));
        let l: ArchiveLocation = "localhost:5000/app:k".parse().unwrap();
        assert!(matches!(l, ArchiveLocation::Registry(_)));
    }

    #[test]
    fn bad_references_say_what_is_wrong() {
        let e = "".parse::<ArchiveLocation>().unwrap_err();
        assert_eq!(e, ReferenceError::Empty);
        let e = "oci:".parse::<ArchiveLocation>().unwrap_err();
        assert!(e.to_string().contains("layout directory is empty"), "{e}");
        let e = "oci:dir:bad/tag".parse::<ArchiveLocation>().unwrap_err();
        assert!(e.to_string().contains("not a valid tag"), "{e}");
        let e = "host:5000/App".parse::<ArchiveLocation>().unwrap_err();
        assert!(e.to_string().contains("not a valid repository"), "{e}");
        let e = "host:5000/app@sha256:xyz"
            .parse::<ArchiveLocation>()
            .unwrap_err();
        assert!(e.to_string().contains("sha256:<64 lower-case hex>"), "{e}");
        assert!(e.to_string().contains("host:5000/app@sha256:xyz"), "{e}");
    }
}
