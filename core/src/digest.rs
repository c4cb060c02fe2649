//! sha256 content digests (`sha256:<hex>`): computing them over bytes and streams as they pass.
//! It hashes and compares only; it must not decide what a mismatch means for the caller.

use sha2::{Digest as _, Sha256};
use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

pub use crate::key::is_sha256_digest;

/// A validated OCI content digest, `sha256:<64 lower-case hex>`: parsed once where it enters
/// (a reference, a descriptor, a URL), then passed around typed. No other algorithm is accepted,
/// so a digest is also safe as a file name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    /// `sha256:<hex>`, kept whole so that it can be lent as text.
    text: String,
}

/// A string that is not a `sha256:<64 lower-case hex>` digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a sha256 digest; expected sha256:<64 lower-case hex digits>")]
pub struct BadDigest(pub String);

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self::from_valid_hex(&hex::encode(Sha256::digest(bytes)))
    }

    fn from_valid_hex(hex: &str) -> Self {
        Self {
            text: format!("sha256:{hex}"),
        }
    }

    /// The digest with hex part `hex` (64 lower-case hex digits).
    pub fn from_hex(hex: &str) -> Result<Self, BadDigest> {
        format!("sha256:{hex}").parse()
    }

    /// The lower-case hex part.
    pub fn hex(&self) -> &str {
        &self.text["sha256:".len()..]
    }

    /// `sha256:<hex>`.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl FromStr for Digest {
    type Err = BadDigest;
    fn from_str(s: &str) -> Result<Self, BadDigest> {
        if is_sha256_digest(s) {
            Ok(Self {
                text: s.to_string(),
            })
        } else {
            Err(BadDigest(s.to_string()))
        }
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl PartialEq<str> for Digest {
    fn eq(&self, other: &str) -> bool {
        self.text == other
    }
}

impl PartialEq<Digest> for String {
    fn eq(&self, other: &Digest) -> bool {
        *self == other.text
    }
}

impl PartialEq<Digest> for &str {
    fn eq(&self, other: &Digest) -> bool {
        *self == other.text
    }
}

impl AsRef<str> for Digest {
    fn as_ref(&self) -> &str {
        &self.text
    }
}

impl PartialEq<&str> for Digest {
    fn eq(&self, other: &&str) -> bool {
        *self == **other
    }
}

impl PartialEq<String> for Digest {
    fn eq(&self, other: &String) -> bool {
        *self == *other.as_str()
    }
}

/// The OCI digest (`sha256:<hex>`) of `bytes`, as text.
pub fn sha256_digest(bytes: &[u8]) -> String {
    Digest::of(bytes).to_string()
}

/// A running sha256 and byte count, fed as data streams past.
#[derive(Clone, Default)]
pub struct Sha256Counter {
    hasher: Sha256,
    bytes: u64,
}

impl Sha256Counter {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, data: &[u8]) {
        self.hasher.update(data);
        self.bytes += data.len() as u64;
    }

    /// Bytes seen so far.
    pub fn len(&self) -> u64 {
        self.bytes
    }

    pub fn is_empty(&self) -> bool {
        self.bytes == 0
    }

    /// Lower-case hex sha256 of everything seen.
    pub fn finish_hex(self) -> String {
        hex::encode(self.hasher.finalize())
    }

    /// `sha256:<hex>` of everything seen.
    pub fn finish_digest(self) -> Digest {
        Digest::from_valid_hex(&self.finish_hex())
    }
}

/// A writer that hashes and counts what passes through it to the inner writer.
pub struct HashingWriter<W> {
    inner: W,
    counter: Sha256Counter,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            counter: Sha256Counter::new(),
        }
    }

    /// The inner writer and the digest and size of everything written.
    pub fn into_parts(self) -> (W, Sha256Counter) {
        (self.inner, self.counter)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.counter.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes and counts what is read through it.
pub struct HashingReader<R> {
    inner: R,
    counter: Sha256Counter,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            counter: Sha256Counter::new(),
        }
    }

    /// The inner reader and the digest and size of everything read.
    pub fn into_parts(self) -> (R, Sha256Counter) {
        (self.inner, self.counter)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.counter.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streaming_and_one_shot_digests_agree() {
        let data = b"classcache".repeat(1000);
        let mut w = HashingWriter::new(Vec::new());
        for chunk in data.chunks(333) {
            w.write_all(chunk).unwrap();
        }
        let (out, counter) = w.into_parts();
        assert_eq!(out, data);
        assert_eq!(counter.len(), data.len() as u64);
        assert_eq!(counter.finish_digest(), sha256_digest(&data));
        let mut r = HashingReader::new(&data[..]);
        io::copy(&mut r, &mut io::sink()).unwrap();
        assert_eq!(r.into_parts().1.finish_digest(), sha256_digest(&data));
        assert_eq!(
            sha256_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn digests_parse_only_sha256_hex() {
        let d = Digest::of(b"abc");
        assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
        assert_eq!(Digest::from_hex(d.hex()).unwrap(), d);
        assert!("sha512:00".parse::<Digest>().is_err());
        assert!(format!("sha256:{}", "A".repeat(64))
            .parse::<Digest>()
            .is_err());
        assert!(format!("sha256:../{}", "a".repeat(61))
            .parse::<Digest>()
            .is_err());
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
        let e = serde_json::from_str::<Digest>("\"md5:00\"").unwrap_err();
        assert!(e.to_string().contains("is not a sha256 digest"), "{e}");
    }
}
