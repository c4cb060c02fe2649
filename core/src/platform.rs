//! The OCI platform (`os/architecture[/variant]`): parsing, printing and matching it.
//! It is the one place that spells a platform as text; it must not look at the machine beyond
//! the compile-time target of [`Platform::current`].

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// An OCI platform as descriptors and configs carry it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// Text that is not `os/architecture[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a platform; write os/architecture or os/architecture/variant, e.g. linux/arm64 or linux/arm/v7")]
pub struct BadPlatform(pub String);

impl Platform {
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Self {
        Self {
            os: os.to_string(),
            architecture: architecture.to_string(),
            variant: variant.map(str::to_string),
        }
    }

    /// The platform this program was built for (`linux/amd64`, `linux/arm64`, …).
    pub fn current() -> Self {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        Self::new(std::env::consts::OS, architecture, None)
    }

    /// True when `self` (what an image or index has) satisfies `want`: same os and
    /// architecture, and a `want` without variant accepts any variant.
    pub fn satisfies(&self, want: &Platform) -> bool {
        self.os == want.os
            && self.architecture == want.architecture
            && (want.variant.is_none() || self.variant == want.variant)
    }

    /// The same platform without its variant.
    pub fn without_variant(&self) -> Platform {
        Platform {
            variant: None,
            ..self.clone()
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = BadPlatform;
    fn from_str(s: &str) -> Result<Self, BadPlatform> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [os, arch] if !os.is_empty() && !arch.is_empty() => Ok(Self::new(os, arch, None)),
            [os, arch, variant] if !os.is_empty() && !arch.is_empty() && !variant.is_empty() => {
                Ok(Self::new(os, arch, Some(variant)))
            }
            _ => Err(BadPlatform(s.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_print_and_parse_back() {
        for text in ["linux/amd64", "linux/arm/v7", "windows/amd64"] {
            let p: Platform = text.parse().unwrap();
            assert_eq!(p.to_string(), text);
        }
        let arm: Platform = "linux/arm64/v8".parse().unwrap();
        assert_eq!(arm.variant.as_deref(), Some("v8"));
        for bad in ["", "linux", "linux/", "/amd64", "a/b/c/d", "linux/arm/"] {
            let e = bad.parse::<Platform>().unwrap_err();
            assert!(e.to_string().contains("e.g. linux/arm64"), "{e}");
        }
        assert_eq!(Platform::current().os, std::env::consts::OS);
    }

    #[test]
    fn a_platform_without_variant_accepts_any_variant() {
        let arm: Platform = "linux/arm64/v8".parse().unwrap();
        assert!(arm.satisfies(&arm.without_variant()));
        assert!(arm.satisfies(&arm));
        assert!(!arm.without_variant().satisfies(&arm));
        assert!(!arm.satisfies(&"linux/amd64".parse().unwrap()));
    }
}
