//! Reading a blob while it is still being downloaded: a cursor that follows a transfer's progress (for peers over HTTP, and for unpacking).
//! It must fail, never yield bytes, once the attempt it started on was discarded.

use crate::node::{Progress, State};
use crate::store::Store;
use classcache_core::digest::Digest;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use tokio::sync::watch;

pub struct Cursor {
    store: Arc<Store>,
    digest: Option<Digest>,
    progress: Option<watch::Receiver<Progress>>,
    file: Option<File>,
    attempt: u64,
    /// The last read found nothing to open: wait for the download's next change first.
    stale: bool,
    pub pos: u64,
    pub end: u64,
}

impl Cursor {
    /// Bytes `start..end` of a complete file.
    pub fn over_file(store: &Arc<Store>, file: File, start: u64, end: u64) -> Self {
        Self {
            store: store.clone(),
            digest: None,
            progress: None,
            file: Some(file),
            attempt: 0,
            stale: false,
            pos: start,
            end,
        }
    }

    /// Bytes `start..end` of blob `digest` as its download (followed by `progress`) writes them.
    pub fn over_transfer(
        store: &Arc<Store>,
        digest: &Digest,
        progress: watch::Receiver<Progress>,
        start: u64,
        end: u64,
    ) -> Self {
        let attempt = progress.borrow().attempt;
        Self {
            store: store.clone(),
            digest: Some(digest.clone()),
            progress: Some(progress),
            file: None,
            attempt,
            stale: false,
            pos: start,
            end,
        }
    }

    /// The download attempt whose bytes this cursor yields (None for a complete file).
    pub fn attempt(&self) -> Option<u64> {
        self.progress.as_ref().map(|_| self.attempt)
    }

    /// Whether every byte up to `end` was read.
    pub fn done(&self) -> bool {
        self.pos >= self.end
    }

    fn final_path(&self) -> std::path::PathBuf {
        self.store.blob_path(
            self.digest
                .as_ref()
                .expect("a transfer cursor has a digest"),
        )
    }

    /// The download's state, or why its bytes must not be read.
    fn check(&self, p: &Progress) -> io::Result<()> {
        if p.attempt != self.attempt {
            return Err(io::Error::other(
                "the download restarted after a digest mismatch; the bytes sent were wrong",
            ));
        }
        if let State::Failed(e) = &p.state {
            return Err(io::Error::other(format!("the download failed: {e}")));
        }
        Ok(())
    }

    /// Waits, without any file I/O, until there are bytes past the cursor to read (or the
    /// download ended); for async code, which then reads with [`Cursor::read_blocking`] on the
    /// blocking pool.
    pub async fn wait_readable(&mut self) -> io::Result<()> {
        loop {
            let stale = std::mem::take(&mut self.stale);
            let Some(rx) = self.progress.as_mut() else {
                return Ok(());
            };
            if !stale {
                let p = rx.borrow_and_update().clone();
                self.check(&p)?;
                if matches!(p.state, State::Done) || p.readable_to(self.pos) > self.pos {
                    return Ok(());
                }
            }
            let rx = self.progress.as_mut().expect("checked above");
            if rx.changed().await.is_err() {
                // The download finished and its progress is gone: the store has the blob, or
                // nothing; the next read tells.
                self.progress = None;
                return Ok(());
            }
        }
    }

    /// As [`Cursor::wait_readable`], from a blocking thread.
    pub fn wait_readable_blocking(&mut self, rt: &tokio::runtime::Handle) -> io::Result<()> {
        rt.block_on(self.wait_readable())
    }

    /// Reads what can be read now at the cursor into `buf` (blocking: it may open the file).
    /// Returns 0 when nothing is readable yet; wait with [`Cursor::wait_readable`] and retry.
    pub fn read_blocking(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let until = match self.progress.as_ref().map(|rx| rx.borrow().clone()) {
            None => {
                if self.file.is_none() {
                    self.file = Some(File::open(self.final_path())?);
                }
                self.end
            }
            Some(p) => {
                self.check(&p)?;
                if self.file.is_none() {
                    let path = match (&p.state, &p.partial) {
                        (State::Done, _) => Some(self.final_path()),
                        (State::Running, Some(partial)) => Some(partial.clone()),
                        _ => None,
                    };
                    // The partial may have just been renamed into place: try the final name too.
                    self.file = path.and_then(|path| {
                        File::open(&path)
                            .or_else(|_| File::open(self.final_path()))
                            .ok()
                    });
                }
                if self.file.is_none() {
                    self.stale = true;
                    return Ok(0);
                }
                match p.state {
                    State::Done => self.end,
                    _ => p.readable_to(self.pos).min(self.end),
                }
            }
        };
        if until <= self.pos {
            self.stale = self.progress.is_some();
            return Ok(0);
        }
        let n = ((until - self.pos) as usize).min(buf.len());
        let file = self.file.as_ref().expect("opened above");
        file.read_exact_at(&mut buf[..n], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// A blocking `Read` over a cursor, for the unpacker running beside a download.
pub struct BlockingReader {
    pub cursor: Cursor,
    pub rt: tokio::runtime::Handle,
}

impl io::Read for BlockingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while !self.cursor.done() && !buf.is_empty() {
            self.cursor.wait_readable_blocking(&self.rt)?;
            let n = self.cursor.read_blocking(buf)?;
            if n > 0 {
                return Ok(n);
            }
        }
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use classcache_core::fetcher::stripes::Stripes;
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cursor_yields_written_bytes_and_fails_once_its_attempt_is_discarded() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            &dir.path().join("store"),
            1 << 20,
            Duration::ZERO,
            Arc::new(Metrics::default()),
        )
        .unwrap();
        let partial = dir.path().join("partial");
        std::fs::write(&partial, b"0123456789").unwrap();
        let (tx, rx) = watch::channel(Progress {
            partial: Some(partial),
            written: vec![4],
            ..Progress::new(1, Stripes::new(10, 1, 1))
        });
        let digest = Digest::of(b"0123456789");
        let mut cursor = Cursor::over_transfer(&store, &digest, rx, 0, 10);
        assert_eq!(cursor.attempt(), Some(1));
        cursor.wait_readable().await.unwrap();
        let mut buf = [0u8; 10];
        assert_eq!(
            cursor.read_blocking(&mut buf).unwrap(),
            4,
            "only what was written"
        );
        assert_eq!(&buf[..4], b"0123");
        tx.send_modify(|p| p.written = vec![6]);
        cursor.wait_readable().await.unwrap();
        assert_eq!(cursor.read_blocking(&mut buf).unwrap(), 2);
        // The download restarts after a digest mismatch: the bytes sent were wrong.
        tx.send_modify(|p| {
            p.attempt = 2;
            p.written = vec![10];
        });
        let e = cursor.wait_readable().await.unwrap_err();
        assert!(e.to_string().contains("digest mismatch"), "{e}");
        assert!(cursor.read_blocking(&mut buf).is_err());
    }
}
