//! sha256 content digests (`sha256:<hex>`): computing them over bytes and streams as they pass.
//! It hashes and compares only; it must not decide what a mismatch means for the caller.

use sha2::{Digest, Sha256};
use std::io::{self, Read, Write};

pub use crate::key::is_sha256_digest;

/// The OCI digest (`sha256:<hex>`) of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Lower-case hex sha256 of a file, streamed (never the whole file in memory).
pub fn sha256_file_hex(path: &std::path::Path) -> io::Result<String> {
    let mut reader = HashingReader::new(std::fs::File::open(path)?);
    io::copy(&mut reader, &mut io::sink())?;
    Ok(reader.into_parts().1.finish_hex())
}

/// The hex part of a `sha256:<hex>` digest (the whole string if it has no algorithm prefix).
pub fn digest_hex(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
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
    pub fn finish_digest(self) -> String {
        format!("sha256:{}", self.finish_hex())
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
        assert_eq!(digest_hex("sha256:ab"), "ab");
    }
}
