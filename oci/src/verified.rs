//! The one way classcache gives a file its final name: a temporary file in the same directory,
//! bytes streamed through sha256, compared with the expected digest, fsync, rename, fsync of the
//! directory. It must never leave a partial or unverified file under the final name.

use classcache_core::digest::{Digest, Sha256Counter};
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// How the temporary file beside a destination begins; no file so named is ever final.
pub const PARTIAL_PREFIX: &str = ".classcache-partial-";

/// The mode of every file given its final name: readable by every user, writable by its owner.
pub const PUBLISHED_MODE: u32 = 0o644;

/// What the bytes must be: their digest and, when known, their size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub digest: Digest,
    pub size: Option<u64>,
}

impl Expected {
    pub fn new(digest: Digest, size: u64) -> Self {
        Self {
            digest,
            size: Some(size),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(
        "cannot write {path}: {source}; check that the directory exists, is writable and has space"
    )]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: the bytes written do not match {expected} (got {actual}, {size} bytes); nothing was written under that name")]
    Mismatch {
        path: PathBuf,
        expected: String,
        actual: Digest,
        size: u64,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> WriteError + '_ {
    move |source| WriteError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A file being written beside its destination; it gets the destination's name only through
/// [`VerifiedFile::commit`], and is removed when dropped uncommitted.
pub struct VerifiedFile {
    temp: tempfile::NamedTempFile,
    dest: PathBuf,
    counter: Sha256Counter,
}

impl VerifiedFile {
    /// Starts a file that will become `dest` (its directory must exist).
    pub fn create(dest: &Path) -> Result<Self, WriteError> {
        let dir = parent_dir(dest);
        let temp = tempfile::Builder::new()
            .prefix(PARTIAL_PREFIX)
            .tempfile_in(dir)
            .map_err(io_err(dir))?;
        Ok(Self {
            temp,
            dest: dest.to_path_buf(),
            counter: Sha256Counter::new(),
        })
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.counter.len()
    }

    /// Checks the bytes against `expected` (when given), then fsync, rename, fsync of the
    /// directory; returns the digest of what was written.
    pub fn commit(self, expected: Option<&Expected>) -> Result<Digest, WriteError> {
        let size = self.counter.len();
        let actual = self.counter.finish_digest();
        if let Some(e) = expected {
            if e.digest != actual || e.size.is_some_and(|s| s != size) {
                return Err(WriteError::Mismatch {
                    path: self.dest,
                    expected: match e.size {
                        Some(s) => format!("{} ({s} bytes)", e.digest),
                        None => e.digest.to_string(),
                    },
                    actual,
                    size,
                });
            }
        }
        // Content is read by other users: a JVM in a pod runs as whatever user its image
        // says, and a temp file is 0600. Archives and blobs are not secrets; integrity is
        // kept by the digest and the read-only mount.
        self.temp
            .as_file()
            .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(PUBLISHED_MODE))
            .map_err(io_err(&self.dest))?;
        self.temp.as_file().sync_all().map_err(io_err(&self.dest))?;
        self.temp
            .persist(&self.dest)
            .map_err(|e| io_err(&self.dest)(e.error))?;
        sync_dir(parent_dir(&self.dest));
        Ok(actual)
    }
}

impl Write for VerifiedFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.temp.as_file_mut().write(buf)?;
        self.counter.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.temp.as_file_mut().flush()
    }
}

/// Streams `reader` to `dest` through a [`VerifiedFile`]; returns the digest written.
pub fn write_verified<R: Read>(
    mut reader: R,
    dest: &Path,
    expected: Option<&Expected>,
) -> Result<Digest, WriteError> {
    let mut file = VerifiedFile::create(dest)?;
    io::copy(&mut reader, &mut file).map_err(io_err(dest))?;
    file.commit(expected)
}

/// Writes small `bytes` to `dest` atomically (their own digest is what is checked on disk).
pub fn write_bytes(bytes: &[u8], dest: &Path) -> Result<Digest, WriteError> {
    write_verified(bytes, dest, None)
}

/// Lower-case hex sha256 of a file, streamed (never the whole file in memory).
pub fn sha256_file_hex(path: &Path) -> io::Result<String> {
    let mut reader = classcache_core::digest::HashingReader::new(File::open(path)?);
    io::copy(&mut reader, &mut io::sink())?;
    Ok(reader.into_parts().1.finish_hex())
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Makes a rename in `dir` durable; not every file system supports fsync on a directory.
pub fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testing::partial_files as leftovers;

    #[test]
    fn only_matching_bytes_get_the_name() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("blob");
        let good = Expected::new(Digest::of(b"hello"), 5);
        assert_eq!(
            write_verified(&b"hello"[..], &dest, Some(&good)).unwrap(),
            good.digest
        );
        assert_eq!(std::fs::read(&dest).unwrap(), b"hello");

        let other = dir.path().join("other");
        let e = write_verified(&b"hellO"[..], &other, Some(&good)).unwrap_err();
        assert!(matches!(e, WriteError::Mismatch { .. }), "{e}");
        assert!(e.to_string().contains("nothing was written"), "{e}");
        let short = Expected::new(Digest::of(b"hello"), 6);
        assert!(write_verified(&b"hello"[..], &other, Some(&short)).is_err());
        assert!(!other.exists());
        assert!(leftovers(dir.path()).is_empty());

        write_bytes(b"x", &other).unwrap();
        assert_eq!(std::fs::read(&other).unwrap(), b"x");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            mode, PUBLISHED_MODE,
            "a JVM running as another user must read it"
        );
        let e = write_bytes(b"x", &dir.path().join("missing/dir/f")).unwrap_err();
        assert!(e.to_string().contains("missing/dir"), "{e}");
    }
}
