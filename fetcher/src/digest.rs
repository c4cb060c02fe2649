//! A validated `sha256:<64 lower-case hex>` content digest, the fetcher's only object name.
//! It parses and formats; it must not accept any other algorithm or a path-like string.

use classcache_core::digest::{digest_hex, is_sha256_digest, sha256_digest};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    hex: String,
}

#[derive(Debug, thiserror::Error)]
#[error("'{0}' is not a sha256 digest; expected sha256:<64 lower-case hex digits>")]
pub struct BadDigest(pub String);

impl Digest {
    pub fn from_hex(hex: &str) -> Result<Self, BadDigest> {
        format!("sha256:{hex}").parse()
    }

    pub fn of(bytes: &[u8]) -> Self {
        sha256_digest(bytes)
            .parse()
            .expect("sha256_digest gives a valid digest")
    }

    pub fn hex(&self) -> &str {
        &self.hex
    }
}

impl FromStr for Digest {
    type Err = BadDigest;
    fn from_str(s: &str) -> Result<Self, BadDigest> {
        if is_sha256_digest(s) {
            Ok(Self {
                hex: digest_hex(s).to_string(),
            })
        } else {
            Err(BadDigest(s.to_string()))
        }
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_sha256_hex() {
        let d = Digest::of(b"abc");
        assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
        assert!("sha512:00".parse::<Digest>().is_err());
        assert!(format!("sha256:{}", "A".repeat(64))
            .parse::<Digest>()
            .is_err());
        assert!(format!("sha256:../{}", "a".repeat(61))
            .parse::<Digest>()
            .is_err());
    }
}
