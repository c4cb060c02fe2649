//! Reading a blob while it is still being downloaded: a cursor that follows a transfer's
//! progress (for peers over HTTP, and for unpacking while the bytes arrive).
//! It must fail, never yield bytes, once the attempt it started on was discarded.

use crate::digest::Digest;
use crate::pull::{Progress, State};
use crate::store::Store;
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
    pub pos: u64,
    pub end: u64,
}

enum Look {
    Until(u64),
    Wait,
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
            pos: start,
            end,
        }
    }

    /// The download attempt whose bytes this cursor yields (None for a complete file).
    pub fn attempt(&self) -> Option<u64> {
        self.progress.as_ref().map(|_| self.attempt)
    }

    fn final_path(&self) -> std::path::PathBuf {
        self.store.blob_path(
            self.digest
                .as_ref()
                .expect("a transfer cursor has a digest"),
        )
    }

    fn look(&mut self) -> io::Result<Look> {
        let Some(rx) = self.progress.as_mut() else {
            return Ok(Look::Until(self.end));
        };
        let p = rx.borrow_and_update().clone();
        if p.attempt != self.attempt {
            return Err(io::Error::other(
                "the download restarted after a digest mismatch; the bytes sent were wrong",
            ));
        }
        if self.file.is_none() {
            let path = match (&p.state, &p.partial) {
                (State::Done, _) => Some(self.final_path()),
                (State::Running, Some(partial)) => Some(partial.clone()),
                _ => None,
            };
            if let Some(path) = path {
                // The partial may have just been renamed into place: try the final name too.
                self.file = File::open(&path)
                    .or_else(|_| File::open(self.final_path()))
                    .ok();
            }
        }
        match &p.state {
            State::Failed(e) => Err(io::Error::other(format!("the download failed: {e}"))),
            State::Done if self.file.is_some() => Ok(Look::Until(self.end)),
            _ if self.file.is_some() && p.written > self.pos => {
                Ok(Look::Until(p.written.min(self.end)))
            }
            _ => Ok(Look::Wait),
        }
    }

    /// The download finished and its progress is gone: the store has the blob, or nothing.
    fn finished(&mut self) -> io::Result<u64> {
        if self.file.is_none() {
            self.file = Some(File::open(self.final_path())?);
        }
        self.progress = None;
        Ok(self.end)
    }

    /// How far the file may be read now, waiting for the download when it is behind.
    pub async fn readable_until(&mut self) -> io::Result<u64> {
        loop {
            if let Look::Until(until) = self.look()? {
                return Ok(until);
            }
            let rx = self.progress.as_mut().expect("waiting needs a transfer");
            if rx.changed().await.is_err() {
                return self.finished();
            }
        }
    }

    /// As [`Cursor::readable_until`], from a blocking thread.
    pub fn readable_until_blocking(&mut self, rt: &tokio::runtime::Handle) -> io::Result<u64> {
        loop {
            if let Look::Until(until) = self.look()? {
                return Ok(until);
            }
            let rx = self.progress.as_mut().expect("waiting needs a transfer");
            if rt.block_on(rx.changed()).is_err() {
                return self.finished();
            }
        }
    }

    /// Reads up to `max` bytes at the cursor, not past `until`.
    pub fn read_into(&mut self, buf: &mut [u8], until: u64) -> io::Result<usize> {
        let n = ((until - self.pos) as usize).min(buf.len());
        let file = self.file.as_ref().expect("readable_until opened the file");
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
        if self.cursor.pos >= self.cursor.end || buf.is_empty() {
            return Ok(0);
        }
        let until = self.cursor.readable_until_blocking(&self.rt)?;
        self.cursor.read_into(buf, until)
    }
}
