//! The node store: content-addressed blobs, unpacked archives and the `published/` directory pods mount.
//! It must never make a file visible under its final name before its sha256 matched.
//!
//! Its methods block (files, fsync): async code calls them through
//! [`Store::run`] (the blocking pool) and writes downloads with [`Partial::write_at_async`]; no lock
//! is held across file I/O.
//!
//! Layout under the store root:
//! - `tmp/`: partial downloads and unpacks; emptied at start.
//! - `blobs/sha256/<hex>`: verified blobs (manifests, configs, layers), named by their digest.
//! - `archives/sha256-<hex>`: verified unpacked archives, named by the archive file's sha256.
//! - `refs/<published name>.json`: what a pinned reference resolved to (for hits after restarts).
//! - `published/<published name>/<archive file name>`: a directory per pinned digest (0755),
//!   which the pods pinning it mount, holding a hard link to `archives/` (0444) under the
//!   archive's own file name. The kubelet may have created the directory (empty, root's) first.

use crate::locks::LockExt;
use crate::metrics::{ErrorKind, Metrics};
use bytes::Bytes;
use classcache_core::artifact::{check_archive_name, ArchiveFile, ArtifactError};
use classcache_core::digest::Digest;
use classcache_core::digest::Sha256Counter;
use classcache_core::media_types::ARCHIVE_LAYER;
use classcache_core::oci::Descriptor;
use classcache_core::paths::{published_dir_name, PUBLISHED_SUBDIR};
use classcache_oci::archive_file::unpack_layer_to_file;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
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
    #[error("the store cap of {cap} bytes is reached and every entry is in use or being downloaded; raise --max-size (needed {needed} more bytes)")]
    CapReached { cap: u64, needed: u64 },
    #[error("{what} is {size} bytes, more than the store cap of {cap} bytes; raise --max-size if it is legitimate")]
    TooLarge { what: String, size: u64, cap: u64 },
    #[error("{what} is {size} bytes, more than the {limit} bytes a manifest or config may have: it is not one")]
    NotSmall { what: String, size: u64, limit: u64 },
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
            StoreError::DiskFull { .. }
            | StoreError::CapReached { .. }
            | StoreError::TooLarge { .. } => ErrorKind::DiskFull,
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
    /// Bytes promised to downloads and unpacks in flight (under `tmp/`): they count against
    /// the cap like stored entries, so concurrent partials cannot overfill the disk.
    reserved: Arc<AtomicU64>,
    metrics: Arc<Metrics>,
    /// The pinned digests of the node's pods (set once, by the pod watch's owner).
    pods_pin: std::sync::OnceLock<PodsPin>,
    /// Held (flock) while this store is open: one fetcher per store.
    _lock: fs::File,
}

type PodsPin = Box<dyn Fn() -> Vec<Digest> + Send + Sync>;

/// The file a running fetcher holds locked in its store's root.
pub const LOCK_FILE: &str = ".lock";

/// A download in progress under `tmp/`, written at any offset (stripes arrive side by side) by
/// several writers at once; removed unless committed.
pub struct Partial {
    digest: Digest,
    path: PathBuf,
    size: u64,
    file: Arc<File>,
    /// The hash of the file's prefix, extended as writes reach its end: a single-stream download
    /// is hashed as it arrives, and commit reads back only what came out of order.
    prefix: Arc<Mutex<PrefixHash>>,
    committed: bool,
    _room: Reservation,
}

/// Room under the cap promised to one partial file; given back when dropped (the committed
/// entry then counts instead).
pub struct Reservation {
    reserved: Arc<AtomicU64>,
    bytes: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.reserved.fetch_sub(self.bytes, Relaxed);
    }
}

/// The sha256 of a partial file's first `hashed` bytes, and the ranges written past them
/// (start to end), read back and hashed as soon as the prefix reaches them: interleaved stripes
/// land out of order, and this keeps commit from reading the whole file back at the end.
struct PrefixHash {
    hasher: Sha256Counter,
    hashed: u64,
    ahead: std::collections::BTreeMap<u64, u64>,
}

/// Keeps an entry from eviction while it is being read.
pub struct ReadGuard {
    store: Arc<Store>,
    path: PathBuf,
}

impl Drop for ReadGuard {
    fn drop(&mut self) {
        let mut readers = self.store.readers.locked();
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
            reserved: Arc::new(AtomicU64::new(0)),
            metrics,
            pods_pin: std::sync::OnceLock::new(),
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
        self.entries.locked().extend(entries);
        for dir in list_dir(&self.root.join(PUBLISHED_SUBDIR))? {
            let name = dir.file_name().unwrap_or_default().to_string_lossy();
            let is_dir = fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir());
            if !is_dir {
                // The layout before one directory per archive (or a stray file).
                tracing::warn!(path = %dir.display(), "removing a published file outside an archive directory");
                let _ = fs::remove_file(&dir);
                continue;
            }
            let record = self.read_record(&name);
            let target_ok = record
                .as_ref()
                .map(|r| self.archive_path(&r.archive.sha256).exists())
                .unwrap_or(false);
            if !target_ok {
                // An empty directory stays: the kubelet may have just made it for a pod.
                for path in list_dir(&dir).unwrap_or_default() {
                    tracing::warn!(path = %path.display(), "removing a published archive with no record");
                    let _ = fs::remove_file(&path);
                }
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

    /// The directory of the pinned digest's archive: what the pods pinning it mount.
    pub fn published_dir(&self, pinned: &Digest) -> PathBuf {
        self.root
            .join(PUBLISHED_SUBDIR)
            .join(published_dir_name(pinned.as_str()))
    }

    /// The published archive file (`archive_file`: its record's `archive.name`).
    pub fn published_path(&self, pinned: &Digest, archive_file: &str) -> PathBuf {
        self.published_dir(pinned).join(archive_file)
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

    /// A complete small blob (a manifest or config), refused when it is over `limit` bytes:
    /// a layer's digest asked as a manifest must not be read into memory.
    pub fn read_small_blob(
        &self,
        digest: &Digest,
        limit: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        use std::io::Read;
        let path = self.blob_path(digest);
        let Ok(file) = File::open(&path) else {
            return Ok(None);
        };
        let mut bytes = Vec::new();
        file.take(limit.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|e| StoreError::io(&path, e))?;
        if bytes.len() as u64 > limit {
            return Err(StoreError::NotSmall {
                what: format!("blob {digest}"),
                size: fs::metadata(&path).map(|m| m.len()).unwrap_or(u64::MAX),
                limit,
            });
        }
        self.touch(&path);
        Ok(Some(bytes))
    }

    /// The record of a published archive, if it is published (the hit path: no hashing).
    pub fn published(&self, pinned: &Digest) -> Option<PublishedRecord> {
        let record = self.read_record(&published_dir_name(pinned.as_str()))?;
        if check_archive_name(&record.archive.name).is_err()
            || !self.published_path(pinned, &record.archive.name).exists()
        {
            return None;
        }
        self.touch(&self.archive_path(&record.archive.sha256));
        Some(record)
    }

    /// Every archive published in the store, with its record, without marking any used (the
    /// page-sharing stats read them; reading is no use).
    pub fn published_records(&self) -> Vec<(Digest, PublishedRecord)> {
        let mut out = vec![];
        let dirs = fs::read_dir(self.root.join(PUBLISHED_SUBDIR))
            .into_iter()
            .flatten();
        for entry in dirs.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(pinned) = name.replacen('-', ":", 1).parse::<Digest>() else {
                continue;
            };
            if let Some(record) = self.read_record(&name).filter(|r| {
                check_archive_name(&r.archive.name).is_ok()
                    && self.published_path(&pinned, &r.archive.name).exists()
            }) {
                out.push((pinned, record));
            }
        }
        out.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        out
    }

    fn touch(&self, path: &Path) {
        let now = SystemTime::now();
        if let Some(e) = self.entries.locked().get_mut(path) {
            e.last_used = now;
        }
        // The mtime carries recency across restarts.
        if let Ok(f) = File::options().append(true).open(path) {
            let _ = f.set_modified(now);
        }
    }

    /// Protects an entry from eviction until the guard drops.
    pub fn guard(self: &Arc<Self>, path: &Path) -> ReadGuard {
        *self.readers.locked().entry(path.to_path_buf()).or_default() += 1;
        ReadGuard {
            store: self.clone(),
            path: path.to_path_buf(),
        }
    }

    /// Starts a partial download of `digest`, making room for (and reserving) `size` bytes
    /// first.
    pub fn begin(&self, digest: &Digest, size: u64) -> Result<Partial, StoreError> {
        let room = self.reserve(&format!("blob {digest}"), size)?;
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
            size,
            file: Arc::new(file),
            prefix: Arc::new(Mutex::new(PrefixHash {
                hasher: Sha256Counter::new(),
                hashed: 0,
                ahead: Default::default(),
            })),
            committed: false,
            _room: room,
        })
    }

    /// Verifies a partial download and moves it to its digest name: temp, fsync, rename, fsync.
    pub fn commit(&self, mut partial: Partial) -> Result<PathBuf, StoreError> {
        let actual = partial.finish_hash()?;
        if actual != partial.digest.hex() {
            return Err(StoreError::DigestMismatch {
                what: format!("blob {}", partial.digest),
                expected: partial.digest.to_string(),
                actual,
            });
        }
        let synced = partial.file.sync_all();
        synced.map_err(|e| StoreError::io(&partial.path, e))?;
        let dest = self.blob_path(&partial.digest);
        fs::rename(&partial.path, &dest).map_err(|e| StoreError::io(&dest, e))?;
        partial.committed = true;
        sync_dir(dest.parent().unwrap())?;
        self.add_entry(&dest, partial.size);
        Ok(dest)
    }

    /// Stores a small blob already in memory (a manifest or config) after checking its digest.
    pub fn put_blob(&self, digest: &Digest, bytes: &[u8]) -> Result<(), StoreError> {
        let partial = self.begin(digest, bytes.len() as u64)?;
        partial.write_at(0, bytes)?;
        self.commit(partial).map(|_| ())
    }

    fn add_entry(&self, path: &Path, size: u64) {
        self.entries.locked().insert(
            path.to_path_buf(),
            Entry {
                size,
                last_used: SystemTime::now(),
            },
        );
        self.update_size_gauge();
    }

    fn update_size_gauge(&self) {
        let total = stored_bytes(&self.entries.locked());
        self.metrics.store_bytes.store(total, Relaxed);
    }

    /// Unpacks the archive file from a verified layer blob (tar+gzip), checks its size and
    /// sha256, and publishes it in the pinned digest's own directory under its own file name,
    /// readable by any uid (the pods' JVMs run as any user) and by nobody writable. Idempotent.
    pub fn publish(
        &self,
        pinned: &Digest,
        layer: &Digest,
        record: &PublishedRecord,
    ) -> Result<PathBuf, StoreError> {
        // The name is joined to a path: one plain component only.
        check_archive_name(&record.archive.name)?;
        self.unpack(layer, record)?;
        let archive = self.archive_path(&record.archive.sha256);
        // A hard link shares the inode: this mode is the published file's too.
        fs::set_permissions(&archive, fs::Permissions::from_mode(0o444))
            .map_err(|e| StoreError::io(&archive, e))?;
        let name = published_dir_name(pinned.as_str());
        // The record goes first, so that a published file always has one (see `recover`).
        let record_path = self.record_path(&name);
        let tmp = self.tmp_path("record");
        let json = serde_json::to_vec_pretty(record).expect("a record serializes");
        write_synced(&tmp, &json)?;
        fs::rename(&tmp, &record_path).map_err(|e| StoreError::io(&record_path, e))?;
        let dir = self.published_dir(pinned);
        self.make_published_dir(&dir)?;
        let published = dir.join(&record.archive.name);
        let tmp = self.tmp_path("link");
        fs::hard_link(&archive, &tmp).map_err(|e| StoreError::io(&tmp, e))?;
        fs::rename(&tmp, &published).map_err(|e| StoreError::io(&published, e))?;
        sync_dir(&dir)?;
        sync_dir(dir.parent().expect("under published/"))?;
        self.touch(&archive);
        Ok(published)
    }

    /// Makes (or takes over) an archive's directory, mode 0755. The kubelet creates it, empty and
    /// root's, when a pod mounting it starts before the archive is published: the fetcher runs
    /// as root, so it may write into it and set its mode. Never follows a symlink.
    fn make_published_dir(&self, dir: &Path) -> Result<(), StoreError> {
        match fs::create_dir(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(StoreError::io(dir, e)),
        }
        let meta = fs::symlink_metadata(dir).map_err(|e| StoreError::io(dir, e))?;
        if !meta.is_dir() {
            return Err(StoreError::io(
                dir,
                io::Error::other("is not a directory; remove it so the archive can be published"),
            ));
        }
        if meta.mode() & 0o7777 != 0o755 {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
                .map_err(|e| StoreError::io(dir, e))?;
        }
        Ok(())
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
        let _room = self.reserve(
            &format!("the archive file of {}", record.pinned),
            record.archive.size,
        )?;
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
        *self.readers.locked().entry(path.to_path_buf()).or_default() += 1;
        struct Hold<'a>(&'a Store, PathBuf);
        impl Drop for Hold<'_> {
            fn drop(&mut self) {
                let mut readers = self.0.readers.locked();
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

    /// Bytes over the cap if `needed` more were added now (saturating: a caller's number
    /// never overflows).
    fn excess(&self, entries: &HashMap<PathBuf, Entry>, needed: u64) -> u64 {
        stored_bytes(entries)
            .saturating_add(self.reserved.load(Relaxed))
            .saturating_add(needed)
            .saturating_sub(self.cap_bytes)
    }

    /// Reserves `needed` bytes if they fit now; the check and the reservation happen under
    /// the entries lock, so two callers cannot both take the last room.
    fn try_reserve(&self, needed: u64) -> Option<Reservation> {
        let entries = self.entries.locked();
        (self.excess(&entries, needed) == 0).then(|| {
            self.reserved.fetch_add(needed, Relaxed);
            Reservation {
                reserved: self.reserved.clone(),
                bytes: needed,
            }
        })
    }

    /// Room for `needed` more bytes of `what`, evicting old entries if that makes it fit.
    fn reserve(&self, what: &str, needed: u64) -> Result<Reservation, StoreError> {
        if needed > self.cap_bytes {
            return Err(StoreError::TooLarge {
                what: what.to_string(),
                size: needed,
                cap: self.cap_bytes,
            });
        }
        if let Some(room) = self.try_reserve(needed) {
            return Ok(room);
        }
        self.make_room(needed);
        self.try_reserve(needed).ok_or(StoreError::CapReached {
            cap: self.cap_bytes,
            needed,
        })
    }

    /// Whether the store takes new files: writable, within its cap, no lock left poisoned by
    /// a panic. The reason when not (for `/readyz`).
    pub fn health(&self) -> Result<(), String> {
        if self.entries.is_poisoned() || self.readers.is_poisoned() {
            return Err("a store lock was poisoned by a panicking request".into());
        }
        let over = self.excess(&self.entries.locked(), 0);
        if over > 0 {
            return Err(format!(
                "the store is {over} bytes over its cap of {} bytes (entries in use cannot be evicted)",
                self.cap_bytes
            ));
        }
        let probe = self.root.join("tmp").join(".ready-probe");
        fs::write(&probe, b"ok")
            .and_then(|_| fs::remove_file(&probe))
            .map_err(|e| format!("store {} is not writable: {e}", self.root.display()))
    }

    /// Answers when the store's locks can be taken (for `/healthz`: a wedged lock is a wedged
    /// process).
    pub fn locks_answer(&self) {
        drop(self.entries.locked());
        drop(self.readers.locked());
    }

    /// Evicts least-recently-used entries until `needed` more bytes fit under the cap.
    /// Entries being read, used within the grace period, or archives a pod on the node pins are
    /// kept. The locks are held only to copy or update the entry list: the record reads, the stats
    /// and the removals run outside them; an entry is claimed (taken out of the list) under
    /// the lock before its file is removed, so two callers never evict the same one.
    fn make_room(&self, needed: u64) {
        let mut by_age: Vec<(PathBuf, SystemTime, u64)> = {
            let entries = self.entries.locked();
            if self.excess(&entries, needed) == 0 {
                return;
            }
            entries
                .iter()
                .map(|(p, e)| (p.clone(), e.last_used, e.size))
                .collect()
        };
        by_age.sort_by_key(|(_, t, _)| *t);
        let readers = self.readers.locked().clone();
        let now = SystemTime::now();
        let mut pinned: Option<Vec<PathBuf>> = None;
        for (path, last_used, size) in by_age {
            if self.excess(&self.entries.locked(), needed) == 0 {
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
            if is_archive
                && pinned
                    .get_or_insert_with(|| self.archives_pods_pin())
                    .contains(&path)
            {
                continue;
            }
            let Some(entry) = self.entries.locked().remove(&path) else {
                continue; // another caller evicted it
            };
            if is_archive {
                self.unpublish(&path);
            }
            if fs::remove_file(&path).is_ok() {
                tracing::info!(path = %path.display(), size, "evicted to stay under the store cap");
                self.metrics.evictions.fetch_add(1, Relaxed);
            } else {
                self.entries.locked().insert(path, entry);
            }
        }
        self.update_size_gauge();
    }

    /// Tells the store which pinned digests the pods on its node pin (the pod watch knows): their
    /// archives are never evicted, whenever the pods last started.
    pub fn keep_pinned_by_pods(&self, pinned: impl Fn() -> Vec<Digest> + Send + Sync + 'static) {
        let _ = self.pods_pin.set(Box::new(pinned));
    }

    /// The archive files of the pinned digests this node's pods pin.
    fn archives_pods_pin(&self) -> Vec<PathBuf> {
        let Some(pinned) = self.pods_pin.get() else {
            return Vec::new();
        };
        pinned()
            .iter()
            .filter_map(|d| self.read_record(&published_dir_name(d.as_str())))
            .map(|record| self.archive_path(&record.archive.sha256))
            .collect()
    }

    /// Removes the published links (and their records) that point at an archive file, then
    /// each archive directory left empty (a running pod's bind mount keeps its open file).
    fn unpublish(&self, archive: &Path) {
        let Ok(target) = fs::metadata(archive) else {
            return;
        };
        for dir in list_dir(&self.root.join(PUBLISHED_SUBDIR)).unwrap_or_default() {
            let mut emptied = false;
            for path in list_dir(&dir).unwrap_or_default() {
                let same = fs::symlink_metadata(&path)
                    .map(|m| m.ino() == target.ino() && m.dev() == target.dev())
                    .unwrap_or(false);
                if same && fs::remove_file(&path).is_ok() {
                    emptied = true;
                }
            }
            if emptied {
                let name = dir.file_name().unwrap_or_default().to_string_lossy();
                let _ = fs::remove_file(self.record_path(&name));
                // Fails, and keeps it, if anything else is in it.
                let _ = fs::remove_dir(&dir);
            }
        }
    }
}

impl Partial {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The blob's size: what commit expects in the file.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Writes `bytes` at `offset` (blocking: from the blocking pool or a thread of its own).
    pub fn write_at(&self, offset: u64, bytes: &[u8]) -> Result<(), StoreError> {
        write_extending_hash(&self.file, &self.prefix, offset, bytes)
            .map_err(|e| StoreError::io(&self.path, e))
    }

    /// As [`Partial::write_at`], from async code: the write and the hashing run on the blocking
    /// pool. Writers of different ranges may run at once.
    pub async fn write_at_async(&self, offset: u64, bytes: Bytes) -> Result<(), StoreError> {
        let (file, prefix) = (self.file.clone(), self.prefix.clone());
        let written = tokio::task::spawn_blocking(move || {
            write_extending_hash(&file, &prefix, offset, &bytes)
        })
        .await;
        match written {
            Ok(result) => result.map_err(|e| StoreError::io(&self.path, e)),
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    /// The sha256 (hex) of the file's first `size` bytes, reading back what was not hashed as
    /// it arrived; a file shorter than that gives an error.
    fn finish_hash(&self) -> Result<String, StoreError> {
        let mut prefix = self.prefix.lock().expect("no panics under the prefix lock");
        let mut buf = vec![0u8; 1 << 20];
        while prefix.hashed < self.size {
            let n = ((self.size - prefix.hashed) as usize).min(buf.len());
            self.file
                .read_exact_at(&mut buf[..n], prefix.hashed)
                .map_err(|e| StoreError::io(&self.path, e))?;
            prefix.hasher.update(&buf[..n]);
            prefix.hashed += n as u64;
        }
        Ok(prefix.hasher.clone().finish_hex())
    }
}

/// Writes `bytes` at `offset` of `file`, extending the prefix hash when they continue it (and
/// then over what was written ahead of them), or noting them as written ahead.
fn write_extending_hash(
    file: &File,
    prefix: &Mutex<PrefixHash>,
    offset: u64,
    bytes: &[u8],
) -> io::Result<()> {
    file.write_all_at(bytes, offset)?;
    let end = offset + bytes.len() as u64;
    let mut prefix = prefix.lock().expect("no panics under the prefix lock");
    if prefix.hashed == offset {
        prefix.hasher.update(bytes);
        prefix.hashed = end;
        catch_up(file, &mut prefix)?;
    } else if offset > prefix.hashed && end > offset {
        // Extend the range this write continues, so the map holds one entry per gap.
        let joined = prefix
            .ahead
            .range(..=offset)
            .next_back()
            .filter(|(_, &e)| e == offset)
            .map(|(&s, _)| s);
        let start = joined.unwrap_or(offset);
        let end = end.max(prefix.ahead.remove(&end).unwrap_or(end));
        prefix.ahead.insert(start, end);
    }
    Ok(())
}

/// Hashes, from the file, the ranges written ahead that the prefix now reaches.
fn catch_up(file: &File, prefix: &mut PrefixHash) -> io::Result<()> {
    let mut buf = Vec::new();
    while let Some((&start, &end)) = prefix.ahead.first_key_value() {
        if start > prefix.hashed {
            break;
        }
        prefix.ahead.remove(&start);
        while prefix.hashed < end {
            buf.resize(((end - prefix.hashed) as usize).min(1 << 20), 0);
            file.read_exact_at(&mut buf, prefix.hashed)?;
            prefix.hasher.update(&buf);
            prefix.hashed += buf.len() as u64;
        }
    }
    Ok(())
}

impl Drop for Partial {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// The bytes of the stored entries.
fn stored_bytes(entries: &HashMap<PathBuf, Entry>) -> u64 {
    entries
        .values()
        .fold(0u64, |sum, e| sum.saturating_add(e.size))
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

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
        let p = store.begin(&digest, 5).unwrap();
        p.write_at(0, b"wrong").unwrap();
        let err = store.commit(p).unwrap_err();
        assert!(matches!(err, StoreError::DigestMismatch { .. }), "{err}");
        assert!(store.blob_size(&digest).is_none());
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
        store.put_blob(&digest, b"right").unwrap();
        assert_eq!(
            store.read_small_blob(&digest, 5).unwrap().unwrap(),
            b"right"
        );
        let e = store.read_small_blob(&digest, 4).unwrap_err();
        assert!(matches!(e, StoreError::NotSmall { .. }), "{e}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn async_writes_and_lookups_run_on_the_blocking_pool() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), 1 << 30);
        let data = classcache_core::testing::noise(300_000, 5);
        let digest = Digest::of(&data);
        let d = digest.clone();
        let partial = store.run(move |s| s.begin(&d, 300_000)).await.unwrap();
        // Two halves side by side, the second first, as stripes arrive: commit hashes the whole.
        let half = data.len() / 2;
        let (first, second) = (&data[..half], &data[half..]);
        for (i, chunk) in second.chunks(64 * 1024).enumerate() {
            let at = (half + i * 64 * 1024) as u64;
            let bytes = Bytes::copy_from_slice(chunk);
            partial.write_at_async(at, bytes).await.unwrap();
        }
        for (i, chunk) in first.chunks(64 * 1024).enumerate() {
            let bytes = Bytes::copy_from_slice(chunk);
            partial
                .write_at_async((i * 64 * 1024) as u64, bytes)
                .await
                .unwrap();
        }
        assert_eq!(
            partial.prefix.lock().unwrap().hashed,
            data.len() as u64,
            "the second half was hashed as soon as the first reached it, not at commit"
        );
        let path = store.run(move |s| s.commit(partial)).await.unwrap();
        assert_eq!(fs::read(path).unwrap(), data);
        let d = digest.clone();
        assert_eq!(
            store.run(move |s| s.blob_size(&d)).await,
            Some(data.len() as u64)
        );
    }

    #[test]
    fn downloads_in_flight_count_against_the_cap_and_sizes_never_overflow() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), 1000);
        let e = store.begin(&Digest::of(b"huge"), u64::MAX).err().unwrap();
        assert!(matches!(e, StoreError::TooLarge { .. }), "{e}");
        assert!(e.to_string().contains("--max-size"), "{e}");
        let first = store.begin(&Digest::of(b"a"), 600).unwrap();
        let e = store.begin(&Digest::of(b"b"), 600).err().unwrap();
        assert!(matches!(e, StoreError::CapReached { .. }), "{e}");
        store.put_blob(&Digest::of(b"small"), b"small").unwrap();
        assert!(store.health().is_ok());
        drop(first);
        let second = store.begin(&Digest::of(b"b"), 600).unwrap();
        drop(second);
        assert_eq!(
            store.reserved.load(Relaxed),
            0,
            "every reservation is given back"
        );
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn a_store_lock_poisoned_by_a_panic_is_unready_then_recovers() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), 1000);
        let s = store.clone();
        let _ = std::thread::spawn(move || {
            let _held = s.entries.lock().unwrap();
            panic!("a request panics holding the store lock");
        })
        .join();
        let why = store.health().unwrap_err();
        assert!(why.contains("poisoned"), "{why}");
        store.put_blob(&Digest::of(b"after"), b"after").unwrap();
        assert!(store.health().is_ok());
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
            assert!(path.ends_with(format!("{}/app.jsa", published_dir_name(pinned.as_str()))));
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
    fn keeps_an_archive_a_pod_on_the_node_pins() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), 1 << 20);
        let (gz, file) = layer_with("app.jsa", &[7u8; 4096]);
        let layer = Digest::of(&gz);
        store.put_blob(&layer, &gz).unwrap();
        let pinned = Digest::of(b"m");
        store
            .publish(&pinned, &layer, &record(&pinned, &layer, &gz, &file))
            .unwrap();
        // What the pod watch tells the store: a pod on this node pins it, until it goes.
        let pods_pin = Arc::new(Mutex::new(vec![pinned.clone()]));
        let told = pods_pin.clone();
        store.keep_pinned_by_pods(move || told.lock().unwrap().clone());
        let err = store.begin(&Digest::of(b"big"), (1 << 20) - 10).err();
        assert!(
            matches!(err, Some(StoreError::CapReached { .. })),
            "{err:?}"
        );
        assert!(store.published(&pinned).is_some());
        pods_pin.lock().unwrap().clear();
        store.begin(&Digest::of(b"big"), (1 << 20) - 10).unwrap();
        assert!(
            store.published(&pinned).is_none(),
            "an archive no pod pins is evicted"
        );
    }

    /// Stores a layer holding `content` as `name`: its digest and the record publishing it as
    /// `pinned`.
    fn stored_layer(
        store: &Store,
        name: &str,
        content: &[u8],
        pinned: &Digest,
    ) -> (Digest, PublishedRecord) {
        let (gz, file) = layer_with(name, content);
        let layer = Digest::of(&gz);
        store.put_blob(&layer, &gz).unwrap();
        let rec = record(pinned, &layer, &gz, &file);
        (layer, rec)
    }

    fn mode_of(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().mode() & 0o7777
    }

    /// The kubelet makes a pod's hostPath directory (empty, root's, DirectoryOrCreate) before
    /// the init container asks for the archive: the fetcher publishes into it, and the file is
    /// readable by a JVM running as any uid while nobody can write it.
    #[test]
    fn publishes_into_the_directory_the_kubelet_made_readable_by_any_uid() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), 1 << 30);
        let pinned = Digest::of(b"manifest");
        let (layer, rec) = stored_layer(&store, "app.aot", b"archive bytes", &pinned);
        let made_first = store.published_dir(&pinned);
        fs::create_dir(&made_first).unwrap();
        fs::set_permissions(&made_first, fs::Permissions::from_mode(0o700)).unwrap();
        assert_eq!(
            fs::metadata(&made_first).unwrap().uid(),
            0,
            "root's, as the kubelet makes it"
        );
        let path = store.publish(&pinned, &layer, &rec).unwrap();
        assert_eq!(path, made_first.join("app.aot"));
        assert_eq!(mode_of(&path), 0o444);
        assert_eq!(mode_of(&made_first), 0o755);
        assert_eq!(mode_of(&dir.path().join("published")), 0o755);
        assert_eq!(fs::read_dir(&made_first).unwrap().count(), 1);
        // Idempotent over the read-only file.
        assert_eq!(store.publish(&pinned, &layer, &rec).unwrap(), path);
        assert_eq!(store.published(&pinned).unwrap().archive, rec.archive);
        // A JVM as another user reads it through the whole path, and cannot write it.
        let as_nobody = |cmd: &str| {
            std::process::Command::new("sh")
                .args(["-c", cmd, "sh", path.to_str().unwrap()])
                .uid(65534)
                .gid(65534)
                .output()
                .unwrap()
        };
        let read = as_nobody("cat \"$1\"");
        assert!(read.status.success(), "{read:?}");
        assert_eq!(read.stdout, b"archive bytes");
        assert!(!as_nobody("echo x >> \"$1\"").status.success());
        assert_eq!(fs::read(&path).unwrap(), b"archive bytes");
    }

    /// The archive's file name comes from a config: a name that is a path publishes nothing,
    /// and a symlink in the directory's place is not followed.
    #[test]
    fn publish_refuses_a_file_name_that_is_a_path_and_a_symlinked_directory() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), 1 << 30);
        let pinned = Digest::of(b"m");
        let (layer, rec) = stored_layer(&store, "app.jsa", b"archive bytes", &pinned);
        let mut bad = rec.clone();
        bad.archive.name = "../../escaped".into();
        let err = store.publish(&pinned, &layer, &bad).unwrap_err();
        assert!(
            matches!(err, StoreError::Artifact(ArtifactError::BadArchiveName(_))),
            "{err}"
        );
        assert!(!dir.path().join("escaped").exists());
        assert_eq!(
            fs::read_dir(dir.path().join("published")).unwrap().count(),
            0
        );

        let elsewhere = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), store.published_dir(&pinned)).unwrap();
        let err = store.publish(&pinned, &layer, &rec).unwrap_err();
        assert!(err.to_string().contains("is not a directory"), "{err}");
        assert_eq!(fs::read_dir(elsewhere.path()).unwrap().count(), 0);
        assert!(store.published(&pinned).is_none());
    }

    /// Eviction removes the published file, its record and then its directory; a pod that has
    /// the file open keeps reading it.
    #[test]
    fn eviction_removes_the_file_then_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), 1 << 20);
        let pinned = Digest::of(b"m");
        let (layer, rec) = stored_layer(&store, "app.jsa", &[7u8; 4096], &pinned);
        let path = store.publish(&pinned, &layer, &rec).unwrap();
        let mapped_by_a_pod = File::open(&path).unwrap();
        store.begin(&Digest::of(b"big"), (1 << 20) - 10).unwrap();
        assert!(store.published(&pinned).is_none());
        assert!(!path.exists());
        assert!(
            !store.published_dir(&pinned).exists(),
            "the emptied directory goes too"
        );
        assert!(!dir
            .path()
            .join("refs")
            .join(format!("{}.json", published_dir_name(pinned.as_str())))
            .exists());
        let mut kept = Vec::new();
        io::Read::read_to_end(&mut &mapped_by_a_pod, &mut kept).unwrap();
        assert_eq!(kept, [7u8; 4096]);
    }

    /// At start: a file of the layout before one directory per archive goes, an archive with no
    /// record goes, and an empty directory (a pod's, made by the kubelet) stays.
    #[test]
    fn recovery_cleans_the_published_directory_and_keeps_pods_empty_ones() {
        let dir = tempfile::tempdir().unwrap();
        let published = dir.path().join("published");
        let pinned = Digest::of(b"m");
        {
            let store = open(dir.path(), 1 << 30);
            let (layer, rec) = stored_layer(&store, "app.jsa", b"archive bytes", &pinned);
            store.publish(&pinned, &layer, &rec).unwrap();
        }
        let old_layout = published.join(published_dir_name(Digest::of(b"old").as_str()));
        fs::write(&old_layout, b"x").unwrap();
        let orphan = published.join(published_dir_name(Digest::of(b"orphan").as_str()));
        fs::create_dir(&orphan).unwrap();
        fs::write(orphan.join("app.jsa"), b"x").unwrap();
        let kubelets = published.join(published_dir_name(Digest::of(b"starting").as_str()));
        fs::create_dir(&kubelets).unwrap();
        let store = open(dir.path(), 1 << 30);
        assert!(!old_layout.exists());
        assert_eq!(fs::read_dir(&orphan).unwrap().count(), 0);
        assert!(kubelets.is_dir());
        assert_eq!(
            fs::read(store.published_path(&pinned, "app.jsa")).unwrap(),
            b"archive bytes"
        );
    }
}
