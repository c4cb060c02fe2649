//! The node store: content-addressed blobs, unpacked archives and the `published/` directory pods mount.
//! It must never make a file visible under its final name before its sha256 matched.
//!
//! Its methods block (files, fsync, the `/proc` scan): async code calls them through
//! [`Store::run`] (the blocking pool) and writes downloads with [`Partial::append_async`]; no lock
//! is held across file I/O.
//!
//! Layout under the store root:
//! - `tmp/`: partial downloads and unpacks; emptied at start.
//! - `blobs/sha256/<hex>`: verified blobs (manifests, configs, layers), named by their digest.
//! - `archives/sha256-<hex>`: verified unpacked archives, named by the archive file's sha256.
//! - `refs/<published name>.json`: what a pinned reference resolved to (for hits after restarts).
//! - `published/<published name>`: hard links to `archives/`, named after the pinned digest.

use crate::metrics::{ErrorKind, Metrics};
use bytes::Bytes;
use classcache_core::artifact::{ArchiveFile, ArtifactError};
use classcache_core::digest::Digest;
use classcache_core::digest::Sha256Counter;
use classcache_core::media_types::ARCHIVE_LAYER;
use classcache_core::oci::Descriptor;
use classcache_core::paths::{published_file_name, PUBLISHED_SUBDIR};
use classcache_oci::archive_file::unpack_layer_to_file;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the store's disk is full while writing {path}: free space on that volume or lower --max-size")]
    DiskFull { path: PathBuf },
    #[error(
        "store I/O on {path}: {source}; check that the store directory is writable by the fetcher"
    )]
    Io { path: PathBuf, source: io::Error },
    #[error("{what} has sha256:{actual}, expected {expected}: the bytes are discarded")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    #[error("another classcache-fetcher uses the store {path} (it holds {path}/{LOCK_FILE}); two fetchers on one store would remove each other's downloads: give each its own --store, or stop the other")]
    InUse { path: PathBuf },
    #[error("the store cap of {cap} bytes is reached and every entry is in use; raise --max-size (needed {needed} more bytes)")]
    CapReached { cap: u64, needed: u64 },
}

fn is_disk_full(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

impl StoreError {
    fn io(path: &Path, source: io::Error) -> Self {
        if is_disk_full(&source) {
            StoreError::DiskFull {
                path: path.to_path_buf(),
            }
        } else {
            StoreError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    }

    pub fn metric_kind(&self) -> ErrorKind {
        match self {
            StoreError::DiskFull { .. } | StoreError::CapReached { .. } => ErrorKind::DiskFull,
            StoreError::Artifact(ArtifactError::Write { source, .. }) if is_disk_full(source) => {
                ErrorKind::DiskFull
            }
            StoreError::Artifact(_) => ErrorKind::NotAnArchive,
            _ => ErrorKind::Store,
        }
    }
}

/// What a pinned reference resolved to, kept beside its published link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishedRecord {
    pub pinned: String,
    pub layer_digest: String,
    pub layer_size: u64,
    pub archive: ArchiveFile,
    /// The artifact's run-time JVM options, `{archive}` standing for the path.
    #[serde(default)]
    pub runtime_options: Vec<String>,
}

struct Entry {
    size: u64,
    last_used: SystemTime,
}

pub struct Store {
    root: PathBuf,
    cap_bytes: u64,
    /// Entries used this recently count as in use (a pod may be starting on them).
    in_use_grace: Duration,
    entries: Mutex<HashMap<PathBuf, Entry>>,
    /// Open readers per entry path: never evicted while served.
    readers: Mutex<HashMap<PathBuf, usize>>,
    partial_seq: AtomicU64,
    metrics: Arc<Metrics>,
    /// Held (flock) while this store is open: one fetcher per store.
    _lock: fs::File,
}

/// The file a running fetcher holds locked in its store's root.
pub const LOCK_FILE: &str = ".lock";

/// A download in progress under `tmp/`, hashed as it is written; removed unless committed.
pub struct Partial {
    digest: Digest,
    path: PathBuf,
    /// None only while a write runs on the blocking pool (or after one was cancelled).
    open: Option<OpenPartial>,
    written: u64,
    committed: bool,
}

/// The file and the hash of what was written to it, moved to the blocking pool for each write.
struct OpenPartial {
    file: File,
    hasher: Sha256Counter,
}

/// Keeps an entry from eviction while it is being read.
pub struct ReadGuard {
    store: Arc<Store>,
    path: PathBuf,
}

impl Drop for ReadGuard {
    fn drop(&mut self) {
        let mut readers = self.store.readers.lock().unwrap();
        if let Some(n) = readers.get_mut(&self.path) {
            *n -= 1;
            if *n == 0 {
                readers.remove(&self.path);
            }
        }
    }
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io(dir, e))
}

impl Store {
    /// Opens (creating if needed) a store, dropping partial files a crash left behind and
    /// published links whose record is gone. Complete blobs are trusted by their digest name:
    /// they were only ever renamed into place after their sha256 matched.
    pub fn open(
        root: &Path,
        cap_bytes: u64,
        in_use_grace: Duration,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Store>, StoreError> {
        fs::create_dir_all(root).map_err(|e| StoreError::io(root, e))?;
        // Taken before anything is touched: a second fetcher must not clean the first's tmp/.
        let lock_path = root.join(LOCK_FILE);
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| StoreError::io(&lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(StoreError::InUse {
                    path: root.to_path_buf(),
                })
            }
            Err(fs::TryLockError::Error(e)) => return Err(StoreError::io(&lock_path, e)),
        }
        for sub in ["tmp", "blobs/sha256", "archives", "refs", PUBLISHED_SUBDIR] {
            let dir = root.join(sub);
            fs::create_dir_all(&dir).map_err(|e| StoreError::io(&dir, e))?;
        }
        // Pods mount `published` read-only and their JVMs run as any user: the path to it
        // must be searchable by all, whatever the fetcher's umask.
        for dir in [root.to_path_buf(), root.join(PUBLISHED_SUBDIR)] {
            fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .map_err(|e| StoreError::io(&dir, e))?;
        }
        let store = Store {
            root: root.to_path_buf(),
            cap_bytes,
            in_use_grace,
            entries: Mutex::new(HashMap::new()),
            readers: Mutex::new(HashMap::new()),
            partial_seq: AtomicU64::new(0),
            metrics,
            _lock: lock,
        };
        store.recover()?;
        Ok(Arc::new(store))
    }

    /// Runs `f` on the runtime's blocking pool: how async code calls the store's blocking methods.
    pub async fn run<T, F>(self: &Arc<Self>, f: F) -> T
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> T + Send + 'static,
    {
        let store = self.clone();
        match tokio::task::spawn_blocking(move || f(&store)).await {
            Ok(value) => value,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    fn recover(&self) -> Result<(), StoreError> {
        let tmp = self.root.join("tmp");
        for path in list_dir(&tmp)? {
            let _ = fs::remove_file(&path).or_else(|_| fs::remove_dir_all(&path));
        }
        let mut entries = Vec::new();
        for (dir, valid) in [
            (self.root.join("blobs/sha256"), None),
            (self.root.join("archives"), Some("sha256-")),
        ] {
            for path in list_dir(&dir)? {
                let name = path.file_name().unwrap_or_default().to_string_lossy();
                let hex = match valid {
                    Some(prefix) => name.strip_prefix(prefix).unwrap_or(""),
                    None => &name,
                };
                let meta = fs::metadata(&path).map_err(|e| StoreError::io(&path, e))?;
                if Digest::from_hex(hex).is_err() || !meta.is_file() {
                    tracing::warn!(path = %path.display(), "removing a store file with no digest name");
                    let _ = fs::remove_file(&path);
                    continue;
                }
                let last_used = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                entries.push((
                    path,
                    Entry {
                        size: meta.len(),
                        last_used,
                    },
                ));
            }
        }
        self.entries.lock().unwrap().extend(entries);
        for path in list_dir(&self.root.join(PUBLISHED_SUBDIR))? {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            let record = self.read_record(&name);
            let target_ok = record
                .as_ref()
                .map(|r| self.archive_path(&r.archive.sha256).exists())
                .unwrap_or(false);
            if !target_ok {
                tracing::warn!(path = %path.display(), "removing a published archive with no record");
                let _ = fs::remove_file(&path);
            }
        }
        self.update_size_gauge();
        Ok(())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    fn archive_path(&self, sha256_hex: &str) -> PathBuf {
        self.root
            .join("archives")
            .join(format!("sha256-{sha256_hex}"))
    }

    pub fn published_path(&self, pinned: &Digest) -> PathBuf {
        self.root
            .join(PUBLISHED_SUBDIR)
            .join(published_file_name(pinned.as_str()))
    }

    fn record_path(&self, published_name: &str) -> PathBuf {
        self.root
            .join("refs")
            .join(format!("{published_name}.json"))
    }

    fn read_record(&self, published_name: &str) -> Option<PublishedRecord> {
        let bytes = fs::read(self.record_path(published_name)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// The size of a complete blob, marking it used.
    pub fn blob_size(&self, digest: &Digest) -> Option<u64> {
        let path = self.blob_path(digest);
        let size = fs::metadata(&path).ok()?.len();
        self.touch(&path);
        Some(size)
    }

    pub fn read_blob(&self, digest: &Digest) -> Option<Vec<u8>> {
        let path = self.blob_path(digest);
        let bytes = fs::read(&path).ok()?;
        self.touch(&path);
        Some(bytes)
    }

    /// The record of a published archive, if it is published (the hit path: no hashing).
    pub fn published(&self, pinned: &Digest) -> Option<PublishedRecord> {
        let path = self.published_path(pinned);
        if !path.exists() {
            return None;
        }
        let record = self.read_record(&published_file_name(pinned.as_str()))?;
        self.touch(&self.archive_path(&record.archive.sha256));
        Some(record)
    }

    fn touch(&self, path: &Path) {
        let now = SystemTime::now();
        if let Some(e) = self.entries.lock().unwrap().get_mut(path) {
            e.last_used = now;
        }
        // The mtime carries recency across restarts.
        if let Ok(f) = File::options().append(true).open(path) {
            let _ = f.set_modified(now);
        }
    }

    /// Protects an entry from eviction until the guard drops.
    pub fn guard(self: &Arc<Self>, path: &Path) -> ReadGuard {
        *self
            .readers
            .lock()
            .unwrap()
            .entry(path.to_path_buf())
            .or_default() += 1;
        ReadGuard {
            store: self.clone(),
            path: path.to_path_buf(),
        }
    }

    /// Starts a partial download of `digest`, making room for `size` bytes first.
    pub fn begin(&self, digest: &Digest, size: u64) -> Result<Partial, StoreError> {
        self.make_room(size)?;
        let seq = self.partial_seq.fetch_add(1, Relaxed);
        let path = self
            .root
            .join("tmp")
            .join(format!("{}.{seq}.partial", digest.hex()));
        let file = OpenOptions::new()
            .create_new(true)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| StoreError::io(&path, e))?;
        Ok(Partial {
            digest: digest.clone(),
            path,
            open: Some(OpenPartial {
                file,
                hasher: Sha256Counter::new(),
            }),
            written: 0,
            committed: false,
        })
    }

    /// Verifies a partial download and moves it to its digest name: temp, fsync, rename, fsync.
    pub fn commit(&self, mut partial: Partial) -> Result<PathBuf, StoreError> {
        let actual = partial.open()?.hasher.clone().finish_hex();
        if actual != partial.digest.hex() {
            return Err(StoreError::DigestMismatch {
                what: format!("blob {}", partial.digest),
                expected: partial.digest.to_string(),
                actual,
            });
        }
        let synced = partial.open()?.file.sync_all();
        synced.map_err(|e| StoreError::io(&partial.path, e))?;
        let dest = self.blob_path(&partial.digest);
        fs::rename(&partial.path, &dest).map_err(|e| StoreError::io(&dest, e))?;
        partial.committed = true;
        sync_dir(dest.parent().unwrap())?;
        self.add_entry(&dest, partial.written());
        Ok(dest)
    }

    /// Stores a small blob already in memory (a manifest or config) after checking its digest.
    pub fn put_blob(&self, digest: &Digest, bytes: &[u8]) -> Result<(), StoreError> {
        let mut partial = self.begin(digest, bytes.len() as u64)?;
        partial.append(bytes)?;
        self.commit(partial).map(|_| ())
    }

    fn add_entry(&self, path: &Path, size: u64) {
        self.entries.lock().unwrap().insert(
            path.to_path_buf(),
            Entry {
                size,
                last_used: SystemTime::now(),
            },
        );
        self.update_size_gauge();
    }

    fn update_size_gauge(&self) {
        let total: u64 = self.entries.lock().unwrap().values().map(|e| e.size).sum();
        self.metrics.store_bytes.store(total, Relaxed);
    }

    /// Unpacks the archive file from a verified layer blob (tar+gzip), checks its size and
    /// sha256, and publishes it under the pinned digest's name. Idempotent.
    pub fn publish(
        &self,
        pinned: &Digest,
        layer: &Digest,
        record: &PublishedRecord,
    ) -> Result<PathBuf, StoreError> {
        self.unpack(layer, record)?;
        let archive = self.archive_path(&record.archive.sha256);
        let name = published_file_name(pinned.as_str());
        // The record goes first, so that a published file always has one (see `recover`).
        let record_path = self.record_path(&name);
        let tmp = self.tmp_path("record");
        let json = serde_json::to_vec_pretty(record).expect("a record serializes");
        write_synced(&tmp, &json)?;
        fs::rename(&tmp, &record_path).map_err(|e| StoreError::io(&record_path, e))?;
        let published = self.published_path(pinned);
        let tmp = self.tmp_path("link");
        fs::hard_link(&archive, &tmp).map_err(|e| StoreError::io(&tmp, e))?;
        fs::rename(&tmp, &published).map_err(|e| StoreError::io(&published, e))?;
        sync_dir(published.parent().unwrap())?;
        self.touch(&archive);
        Ok(published)
    }

    fn tmp_path(&self, what: &str) -> PathBuf {
        let seq = self.partial_seq.fetch_add(1, Relaxed);
        self.root.join("tmp").join(format!("{what}.{seq}"))
    }

    fn unpack(&self, layer: &Digest, record: &PublishedRecord) -> Result<(), StoreError> {
        let layer_path = self.blob_path(layer);
        let _reading = self.readers_hold(&layer_path);
        let gz = File::open(&layer_path).map_err(|e| StoreError::io(&layer_path, e))?;
        self.unpack_from(io::BufReader::with_capacity(128 * 1024, gz), layer, record)
    }

    /// Unpacks the archive of `record` from layer bytes read from `layer_bytes` (the stored
    /// blob, or a download still in progress); the layer digest and the archive's sha256 are
    /// both checked before the archive gets its name. Does nothing when it is already there.
    pub fn unpack_from(
        &self,
        layer_bytes: impl io::Read,
        layer: &Digest,
        record: &PublishedRecord,
    ) -> Result<(), StoreError> {
        let dest = self.archive_path(&record.archive.sha256);
        if dest.exists() {
            return Ok(());
        }
        self.make_room(record.archive.size)?;
        let descriptor = Descriptor::new(ARCHIVE_LAYER, layer.clone(), record.layer_size);
        unpack_layer_to_file(
            layer_bytes,
            &descriptor,
            &record.archive,
            &dest,
            &record.pinned,
        )?;
        self.add_entry(&dest, record.archive.size);
        Ok(())
    }

    fn readers_hold(&self, path: &Path) -> impl Drop + '_ {
        *self
            .readers
            .lock()
            .unwrap()
            .entry(path.to_path_buf())
            .or_default() += 1;
        struct Hold<'a>(&'a Store, PathBuf);
        impl Drop for Hold<'_> {
            fn drop(&mut self) {
                let mut readers = self.0.readers.lock().unwrap();
                if let Some(n) = readers.get_mut(&self.1) {
                    *n -= 1;
                    if *n == 0 {
                        readers.remove(&self.1);
                    }
                }
            }
        }
        Hold(self, path.to_path_buf())
    }

    /// Bytes over the cap if `needed` more were added now.
    fn excess(&self, needed: u64) -> u64 {
        let total: u64 = self.entries.lock().unwrap().values().map(|e| e.size).sum();
        (total + needed).saturating_sub(self.cap_bytes)
    }

    /// Evicts least-recently-used entries until `needed` more bytes fit under the cap.
    /// Entries being read, used within the grace period, or mapped by a process are kept.
    /// The locks are held only to copy or update the entry list: the `/proc` scan, the stats
    /// and the removals run outside them; an entry is claimed (taken out of the list) under
    /// the lock before its file is removed, so two callers never evict the same one.
    fn make_room(&self, needed: u64) -> Result<(), StoreError> {
        let mut by_age: Vec<(PathBuf, SystemTime, u64)> = {
            let entries = self.entries.lock().unwrap();
            let total: u64 = entries.values().map(|e| e.size).sum();
            if total + needed <= self.cap_bytes {
                return Ok(());
            }
            entries
                .iter()
                .map(|(p, e)| (p.clone(), e.last_used, e.size))
                .collect()
        };
        by_age.sort_by_key(|(_, t, _)| *t);
        let readers = self.readers.lock().unwrap().clone();
        let now = SystemTime::now();
        let mut mapped: Option<Vec<(u64, u64)>> = None;
        for (path, last_used, size) in by_age {
            if self.excess(needed) == 0 {
                break;
            }
            let recent = now
                .duration_since(last_used)
                .map(|age| age < self.in_use_grace)
                .unwrap_or(true);
            if recent || readers.contains_key(&path) {
                continue;
            }
            let is_archive = path.parent() == Some(&self.root.join("archives"));
            if is_archive && is_mapped(&path, mapped.get_or_insert_with(mapped_files)) {
                continue;
            }
            let Some(entry) = self.entries.lock().unwrap().remove(&path) else {
                continue; // another caller evicted it
            };
            if is_archive {
                self.unpublish(&path);
            }
            if fs::remove_file(&path).is_ok() {
                tracing::info!(path = %path.display(), size, "evicted to stay under the store cap");
                self.metrics.evictions.fetch_add(1, Relaxed);
            } else {
                self.entries.lock().unwrap().insert(path, entry);
            }
        }
        self.update_size_gauge();
        if self.excess(needed) > 0 {
            return Err(StoreError::CapReached {
                cap: self.cap_bytes,
                needed,
            });
        }
        Ok(())
    }

    /// Removes the published links (and their records) that point at an archive file.
    fn unpublish(&self, archive: &Path) {
        let Ok(target) = fs::metadata(archive) else {
            return;
        };
        for path in list_dir(&self.root.join(PUBLISHED_SUBDIR)).unwrap_or_default() {
            let same = fs::metadata(&path)
                .map(|m| m.ino() == target.ino() && m.dev() == target.dev())
                .unwrap_or(false);
            if same {
                let name = path.file_name().unwrap_or_default().to_string_lossy();
                let _ = fs::remove_file(&path);
                let _ = fs::remove_file(self.record_path(&name));
            }
        }
    }
}

impl Partial {
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn written(&self) -> u64 {
        self.written
    }

    fn open(&mut self) -> Result<&mut OpenPartial, StoreError> {
        let path = &self.path;
        self.open.as_mut().ok_or_else(|| StoreError::Io {
            path: path.clone(),
            source: io::Error::other("an earlier write to this partial file was interrupted"),
        })
    }

    /// Writes and hashes `bytes` (blocking: from the blocking pool or a thread of its own).
    pub fn append(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        let path = self.path.clone();
        let open = self.open()?;
        open.file
            .write_all(bytes)
            .map_err(|e| StoreError::io(&path, e))?;
        open.hasher.update(bytes);
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// As [`Partial::append`], from async code: the write and the hashing run on the blocking
    /// pool.
    pub async fn append_async(&mut self, bytes: Bytes) -> Result<(), StoreError> {
        let mut open = self.open.take();
        let path = self.path.clone();
        let (open, result) = match tokio::task::spawn_blocking(move || {
            let result = match open.as_mut() {
                Some(o) => o.file.write_all(&bytes).map(|_| {
                    o.hasher.update(&bytes);
                    bytes.len() as u64
                }),
                None => Err(io::Error::other(
                    "an earlier write to this partial file was interrupted",
                )),
            };
            (open, result)
        })
        .await
        {
            Ok(done) => done,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        self.open = open;
        self.written += result.map_err(|e| StoreError::io(&path, e))?;
        Ok(())
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

fn list_dir(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let rd = fs::read_dir(dir).map_err(|e| StoreError::io(dir, e))?;
    Ok(rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let mut f = File::create(path).map_err(|e| StoreError::io(path, e))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| StoreError::io(path, e))
}

/// (device, inode) of every file some process maps: a JVM maps its archive while it runs.
/// Seeing other pods' processes needs the fetcher to share the host's PID namespace.
fn mapped_files() -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let Ok(procs) = fs::read_dir("/proc") else {
        return out;
    };
    for p in procs.flatten() {
        if !p
            .file_name()
            .to_string_lossy()
            .bytes()
            .all(|b| b.is_ascii_digit())
        {
            continue;
        }
        let Ok(maps) = fs::read_to_string(p.path().join("maps")) else {
            continue;
        };
        for line in maps.lines() {
            let mut fields = line.split_ascii_whitespace().skip(3);
            let (Some(dev), Some(inode)) = (fields.next(), fields.next()) else {
                continue;
            };
            let Ok(inode) = inode.parse::<u64>() else {
                continue;
            };
            if inode == 0 {
                continue;
            }
            if let Some((major, minor)) = dev.split_once(':') {
                if let (Ok(major), Ok(minor)) = (
                    u64::from_str_radix(major, 16),
                    u64::from_str_radix(minor, 16),
                ) {
                    out.push((libc::makedev(major as u32, minor as u32), inode));
                }
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

fn is_mapped(path: &Path, mapped: &[(u64, u64)]) -> bool {
    fs::metadata(path)
        .map(|m| mapped.binary_search(&(m.dev(), m.ino())).is_ok())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &Path, cap: u64) -> Arc<Store> {
        Store::open(dir, cap, Duration::ZERO, Arc::new(Metrics::default())).unwrap()
    }

    /// A tar+gzip layer holding one file, and its ArchiveFile description.
    pub(crate) fn layer_with(name: &str, content: &[u8]) -> (Vec<u8>, ArchiveFile) {
        let (gz, packed) =
            classcache_core::artifact::pack_layer(content, content.len() as u64, name, Vec::new())
                .unwrap();
        (gz, packed.archive)
    }

    fn record(pinned: &Digest, layer: &Digest, gz: &[u8], file: &ArchiveFile) -> PublishedRecord {
        PublishedRecord {
            pinned: pinned.to_string(),
            layer_digest: layer.to_string(),
            layer_size: gz.len() as u64,
            archive: file.clone(),
            runtime_options: vec![],
        }
    }

    #[test]
    fn commit_refuses_wrong_bytes_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), 1 << 30);
        let digest = Digest::of(b"right");
        let mut p = store.begin(&digest, 5).unwrap();
        p.append(b"wrong").unwrap();
        let err = store.commit(p).unwrap_err();
        assert!(matches!(err, StoreError::DigestMismatch { .. }), "{err}");
        assert!(store.blob_size(&digest).is_none());
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
        store.put_blob(&digest, b"right").unwrap();
        assert_eq!(store.read_blob(&digest).unwrap(), b"right");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn async_writes_and_lookups_run_on_the_blocking_pool() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), 1 << 30);
        let data = classcache_core::testing::noise(300_000, 5);
        let digest = Digest::of(&data);
        let d = digest.clone();
        let mut partial = store.run(move |s| s.begin(&d, 300_000)).await.unwrap();
        for chunk in data.chunks(64 * 1024) {
            partial
                .append_async(Bytes::copy_from_slice(chunk))
                .await
                .unwrap();
        }
        assert_eq!(partial.written(), data.len() as u64);
        let path = store.run(move |s| s.commit(partial)).await.unwrap();
        assert_eq!(fs::read(path).unwrap(), data);
        let d = digest.clone();
        assert_eq!(
            store.run(move |s| s.blob_size(&d)).await,
            Some(data.len() as u64)
        );
    }

    #[test]
    fn one_fetcher_per_store() {
        let dir = tempfile::tempdir().unwrap();
        let first = open(dir.path(), 1 << 30);
        let p = first.begin(&Digest::of(b"in flight"), 1).unwrap();
        let second = Store::open(
            dir.path(),
            1 << 30,
            Duration::ZERO,
            Arc::new(Metrics::default()),
        );
        let e = second
            .err()
            .expect("a second fetcher on the same store is refused");
        assert!(matches!(e, StoreError::InUse { .. }), "{e}");
        assert!(e.to_string().contains("--store"), "{e}");
        assert_eq!(
            fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            1,
            "the first fetcher's download is left alone"
        );
        drop(p);
        drop(first);
        open(dir.path(), 1 << 30);
    }

    #[test]
    fn publishes_a_verified_archive_and_finds_it_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (gz, file) = layer_with("app.jsa", b"archive bytes");
        let layer = Digest::of(&gz);
        let pinned = Digest::of(b"manifest");
        {
            let store = open(dir.path(), 1 << 30);
            store.put_blob(&layer, &gz).unwrap();
            let path = store
                .publish(&pinned, &layer, &record(&pinned, &layer, &gz, &file))
                .unwrap();
            assert_eq!(fs::read(&path).unwrap(), b"archive bytes");
            assert!(path.ends_with(published_file_name(pinned.as_str())));
            // A crash mid-download leaves a partial behind.
            let p = store.begin(&Digest::of(b"other"), 1).unwrap();
            std::mem::forget(p);
        }
        let store = open(dir.path(), 1 << 30);
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
        let rec = store.published(&pinned).unwrap();
        assert_eq!(rec.archive, file);
        assert_eq!(store.blob_size(&layer), Some(gz.len() as u64));
    }

    #[test]
    fn publish_refuses_a_layer_whose_archive_file_does_not_match() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), 1 << 30);
        let (gz, mut file) = layer_with("app.jsa", b"archive bytes");
        let layer = Digest::of(&gz);
        store.put_blob(&layer, &gz).unwrap();
        let pinned = Digest::of(b"m");
        file.sha256 = Digest::of(b"something else").hex().into();
        let err = store
            .publish(&pinned, &layer, &record(&pinned, &layer, &gz, &file))
            .unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::Artifact(ArtifactError::DigestMismatch { .. })
            ),
            "{err}"
        );
        file.name = "other.jsa".into();
        let err = store
            .publish(&pinned, &layer, &record(&pinned, &layer, &gz, &file))
            .unwrap_err();
        assert!(
            matches!(err, StoreError::Artifact(ArtifactError::BadLayer { .. })),
            "{err}"
        );
        assert!(store.published(&pinned).is_none());
        assert_eq!(
            fs::read_dir(dir.path().join("published")).unwrap().count(),
            0
        );
    }

    #[test]
    fn evicts_least_recently_used_but_never_an_entry_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), 300);
        let a = Digest::of(&[1u8; 100]);
        let b = Digest::of(&[2u8; 100]);
        let c = Digest::of(&[3u8; 100]);
        store.put_blob(&a, &[1u8; 100]).unwrap();
        std::thread::sleep(Duration::from_millis(10));
        store.put_blob(&b, &[2u8; 100]).unwrap();
        std::thread::sleep(Duration::from_millis(10));
        store.put_blob(&c, &[3u8; 100]).unwrap();
        let reading_a = store.guard(&store.blob_path(&a));
        // a is older but being read: b goes.
        store
            .put_blob(&Digest::of(&[4u8; 100]), &[4u8; 100])
            .unwrap();
        assert!(store.blob_size(&a).is_some());
        assert!(store.blob_size(&b).is_none());
        drop(reading_a);
        // Now a is the oldest... but blob_size above touched it; c is oldest.
        store
            .put_blob(&Digest::of(&[5u8; 100]), &[5u8; 100])
            .unwrap();
        assert!(store.blob_size(&c).is_none());
        assert!(store.blob_size(&a).is_some());
    }

    #[test]
    fn keeps_an_archive_a_process_maps() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), 1 << 20);
        let (gz, file) = layer_with("app.jsa", &[7u8; 4096]);
        let layer = Digest::of(&gz);
        store.put_blob(&layer, &gz).unwrap();
        let pinned = Digest::of(b"m");
        let path = store
            .publish(&pinned, &layer, &record(&pinned, &layer, &gz, &file))
            .unwrap();
        // Map it as a JVM would, in this very process.
        let f = File::open(&path).unwrap();
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                std::os::fd::AsRawFd::as_raw_fd(&f),
                0,
            )
        };
        assert_ne!(addr, libc::MAP_FAILED);
        let err = store.begin(&Digest::of(b"big"), (1 << 20) - 10).err();
        assert!(
            matches!(err, Some(StoreError::CapReached { .. })),
            "{err:?}"
        );
        assert!(store.published(&pinned).is_some());
        unsafe { libc::munmap(addr, 4096) };
        store.begin(&Digest::of(b"big"), (1 << 20) - 10).unwrap();
        assert!(
            store.published(&pinned).is_none(),
            "unmapped archive is evicted"
        );
    }
}
