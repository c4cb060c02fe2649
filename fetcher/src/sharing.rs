//! Page-sharing stats (`serve --stats`): reads `/proc/<pid>/cgroup`, `maps` and `smaps` of this node's pods' processes and the store's published archives, and learns the API server's addresses (who may ask).
//! It only reads; the parsing and the sums are core's (`fetcher::sharing`), who may ask is crate::callers's.

use crate::callers::Callers;
use crate::store::Store;
use classcache_core::fetcher::http::SharingStats;
use classcache_core::fetcher::sharing::{
    maps_any, parse_smaps, pod_uid_from_cgroup, sharing_stats, FileId, ProcessMaps,
    PublishedArchive,
};
use classcache_core::paths::pod_archive_path;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The Service in `default` that fronts the API server; its EndpointSlice has the same name.
const API_SERVER_SLICE: (&str, &str) = ("default", "kubernetes");
/// How often the API server's addresses are read again (they change only when control-plane
/// members change).
const API_SERVER_REFRESH: Duration = Duration::from_secs(60);

/// What the stats endpoint reads: the proc filesystem (the host's, with hostPID) and this node.
#[derive(Debug, Clone)]
pub struct StatsSource {
    pub proc_root: PathBuf,
    pub node_id: String,
}

impl StatsSource {
    /// The stats of this moment (blocking: run it on the blocking pool).
    pub fn collect(&self, store: &Store, callers: &Callers) -> SharingStats {
        let archives: Vec<PublishedArchive> = store
            .published_records()
            .into_iter()
            .filter_map(|(pinned, record)| {
                let path = store.published_path(&pinned, &record.archive.name);
                let meta = std::fs::metadata(&path).ok()?;
                Some(PublishedArchive {
                    pod_path: pod_archive_path(pinned.as_str(), &record.archive.name),
                    pinned: pinned.to_string(),
                    file_name: record.archive.name,
                    file: FileId::from_stat(meta.dev(), meta.ino()),
                })
            })
            .collect();
        let files: Vec<FileId> = archives.iter().map(|a| a.file).collect();
        let (processes, unreadable) = if files.is_empty() {
            (vec![], 0)
        } else {
            self.pod_processes(callers, &files)
        };
        sharing_stats(
            &self.node_id,
            &archives,
            &processes,
            |uid| callers.pod_name(uid),
            unreadable,
        )
    }

    /// The mappings of every process of this node's pods that maps one of `files`, and how many
    /// of those pods' processes could not be read.
    fn pod_processes(&self, callers: &Callers, files: &[FileId]) -> (Vec<ProcessMaps>, u32) {
        let mut out = vec![];
        let mut unreadable = 0;
        let entries = std::fs::read_dir(&self.proc_root).into_iter().flatten();
        for entry in entries.flatten() {
            let dir = entry.path();
            if !entry
                .file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
            {
                continue;
            }
            // The cgroup file is world-readable: it tells which pod a process is in before any
            // privileged read. Other nodes' pods (and host processes) are skipped here.
            let Some(uid) = read(&dir.join("cgroup")).and_then(|t| pod_uid_from_cgroup(&t)) else {
                continue;
            };
            if callers.pod_name(&uid).is_none() {
                continue;
            }
            // maps first (headers only); smaps walks the page tables, only where it pays.
            let Some(maps) = read(&dir.join("maps")) else {
                unreadable += u32::from(dir.exists());
                continue;
            };
            if !maps_any(&maps, files) {
                continue;
            }
            match read(&dir.join("smaps")) {
                Some(smaps) => out.push(ProcessMaps {
                    pod_uid: uid,
                    mappings: parse_smaps(&smaps),
                }),
                None => unreadable += u32::from(dir.exists()),
            }
        }
        (out, unreadable)
    }
}

/// A proc file's text; `None` when it cannot be read (EACCES without CAP_SYS_PTRACE, or the
/// process exited meanwhile).
fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// The API server's addresses from the `kubernetes` EndpointSlice, into `callers`, forever.
/// Needs `get` on that one EndpointSlice (the Role `install --stats` adds in `default`).
pub async fn watch_api_servers(client: kube::Client, callers: Arc<Callers>) {
    let api: Api<EndpointSlice> = Api::namespaced(client, API_SERVER_SLICE.0);
    loop {
        match api.get(API_SERVER_SLICE.1).await {
            Ok(slice) => {
                let addresses: Vec<IpAddr> = slice
                    .endpoints
                    .iter()
                    .flatten()
                    .flat_map(|e| e.addresses.iter())
                    .filter_map(|a| a.parse().ok())
                    .collect();
                tracing::debug!(?addresses, "API server addresses");
                callers.set_api_servers(addresses);
            }
            Err(e) => tracing::warn!(
                error = %e,
                "cannot read the API server's addresses (EndpointSlice default/kubernetes); `kubectl classcache status` cannot read page-sharing stats until it can (check the fetcher's RBAC: `kubectl classcache install --stats` grants get on it)"
            ),
        }
        tokio::time::sleep(API_SERVER_REFRESH).await;
    }
}
