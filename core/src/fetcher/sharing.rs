//! Page-sharing stats as pure functions: `/proc/<pid>/smaps` and `/proc/<pid>/cgroup` text parsed, and the archive mappings of a node's pods summed into [`SharingStats`].
//! It parses and adds up text it is given; it must not read `/proc` or any file (the fetcher does).

use super::http::{ArchiveSharing, PodSharing, SharingStats};
use std::collections::BTreeMap;

/// A file as the kernel names it in a memory map: device (major, minor) and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId {
    pub dev: (u32, u32),
    pub inode: u64,
}

impl FileId {
    /// From `stat`'s `st_dev` (glibc's encoding of major and minor) and `st_ino`.
    pub fn from_stat(st_dev: u64, st_ino: u64) -> Self {
        let major = ((st_dev >> 8) & 0xfff) | ((st_dev >> 32) & !0xfff);
        let minor = (st_dev & 0xff) | ((st_dev >> 12) & !0xff);
        Self {
            dev: (major as u32, minor as u32),
            inode: st_ino,
        }
    }
}

/// One file-backed mapping of a process, with its resident memory in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub file: FileId,
    /// The path as the kernel prints it (the process's own view, e.g. the pod's path).
    pub path: String,
    pub rss: u64,
    pub pss: u64,
}

/// The file of a `maps`/`smaps` header line (`start-end perms offset MM:mm inode [path]`), or
/// `None` for other lines and anonymous mappings (inode 0).
pub fn map_header(line: &str) -> Option<(FileId, &str)> {
    let mut rest = line;
    let mut field = || {
        let trimmed = rest.trim_start();
        let end = trimmed.find(' ').unwrap_or(trimmed.len());
        let (f, r) = trimmed.split_at(end);
        rest = r;
        f
    };
    let (range, perms, offset, dev, inode) = (field(), field(), field(), field(), field());
    let (start, end) = range.split_once('-')?;
    if u64::from_str_radix(start, 16).is_err()
        || u64::from_str_radix(end, 16).is_err()
        || perms.len() != 4
        || u64::from_str_radix(offset, 16).is_err()
    {
        return None;
    }
    let (major, minor) = dev.split_once(':')?;
    let dev = (
        u32::from_str_radix(major, 16).ok()?,
        u32::from_str_radix(minor, 16).ok()?,
    );
    let inode: u64 = inode.parse().ok()?;
    (inode != 0).then(|| (FileId { dev, inode }, rest.trim()))
}

/// The file-backed mappings of `/proc/<pid>/smaps` text, with their `Rss:` and `Pss:` in bytes.
pub fn parse_smaps(text: &str) -> Vec<Mapping> {
    let mut out: Vec<Mapping> = vec![];
    // Whether the entry being read is file-backed (its figures belong to the last of `out`).
    let mut in_file = false;
    for line in text.lines() {
        if let Some((file, path)) = map_header(line) {
            out.push(Mapping {
                file,
                path: path.to_string(),
                rss: 0,
                pss: 0,
            });
            in_file = true;
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        if key.contains(' ') || key.contains('-') {
            // Another header line (an anonymous mapping: `7f..-7f.. rw-p 0 00:00 0`).
            in_file = false;
            continue;
        }
        let Some(last) = out.last_mut().filter(|_| in_file) else {
            continue;
        };
        let kb = || -> Option<u64> {
            let v = value.trim().strip_suffix("kB")?.trim();
            v.parse::<u64>().ok()?.checked_mul(1024)
        };
        match key {
            "Rss" => last.rss = kb().unwrap_or(0),
            "Pss" => last.pss = kb().unwrap_or(0),
            _ => {}
        }
    }
    out
}

/// Whether `maps` text (`/proc/<pid>/maps`: headers only, cheap for the kernel to print, unlike
/// smaps which walks the page tables) maps any of `files`.
pub fn maps_any(maps: &str, files: &[FileId]) -> bool {
    maps.lines()
        .filter_map(map_header)
        .any(|(f, _)| files.iter().any(|a| a.inode == f.inode))
}

/// The uid of the pod a process belongs to, from its `/proc/<pid>/cgroup` text: the kubelet's
/// `pod<uid>` cgroup (cgroupfs driver: `/kubepods/burstable/pod<uid>/<container>`) or
/// `kubepods-<qos>-pod<uid_with_underscores>.slice` (systemd driver), under any prefix (a
/// kubelet `--cgroup-root`, a node that is itself a container); v1 and v2 alike.
pub fn pod_uid_from_cgroup(text: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| l.splitn(3, ':').nth(2))
        .flat_map(|path| path.split('/'))
        .find_map(|segment| {
            let uid = if let Some(slice) = segment.strip_suffix(".slice") {
                slice.rsplit_once("-pod")?.1.replace('_', "-")
            } else {
                segment.strip_prefix("pod")?.to_string()
            };
            is_pod_uid(&uid).then_some(uid)
        })
}

/// A pod UID as the kubelet names cgroups with it: a UUID, or a static pod's hash (hex).
fn is_pod_uid(s: &str) -> bool {
    (32..=36).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
        && s.bytes().filter(u8::is_ascii_hexdigit).count() == 32
}

/// An archive published on the node, as the fetcher found it in its store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedArchive {
    pub pinned: String,
    pub file_name: String,
    /// The published file's device and inode (`stat` in the store).
    pub file: FileId,
    /// Where pods see it (`paths::pod_archive_path`).
    pub pod_path: String,
}

impl PublishedArchive {
    /// A mapping of this very file: same inode, and same device or the pod's path for it. The
    /// device alone can differ for one file (overlay and btrfs report another st_dev than the
    /// mapping's), and the path alone also names a copy-mode pod's private copy (another inode).
    fn is_mapped_by(&self, m: &Mapping) -> bool {
        m.file.inode == self.file.inode && (m.file.dev == self.file.dev || m.path == self.pod_path)
    }
}

/// One process of a pod on the node, with its file-backed mappings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessMaps {
    pub pod_uid: String,
    pub mappings: Vec<Mapping>,
}

/// For each of `archives`, the pods whose processes map it and the Σ Pss / Σ Rss of those
/// mappings; `pod_name` gives a pod's `namespace/name` from its uid (processes of pods it does
/// not know, e.g. another node's, are not counted).
pub fn sharing_stats(
    node: &str,
    archives: &[PublishedArchive],
    processes: &[ProcessMaps],
    pod_name: impl Fn(&str) -> Option<String>,
    unreadable: u32,
) -> SharingStats {
    let mut out = vec![];
    for archive in archives {
        let mut pods: BTreeMap<String, PodSharing> = BTreeMap::new();
        for process in processes {
            let (mut pss, mut rss, mut maps) = (0, 0, false);
            for m in process.mappings.iter().filter(|m| archive.is_mapped_by(m)) {
                pss += m.pss;
                rss += m.rss;
                maps = true;
            }
            let Some(name) = maps.then(|| pod_name(&process.pod_uid)).flatten() else {
                continue;
            };
            let pod = pods
                .entry(process.pod_uid.clone())
                .or_insert_with(|| PodSharing {
                    pod: name,
                    uid: process.pod_uid.clone(),
                    ..Default::default()
                });
            pod.processes += 1;
            pod.pss += pss;
            pod.rss += rss;
        }
        let mut pods: Vec<PodSharing> = pods.into_values().collect();
        pods.sort_by(|a, b| a.pod.cmp(&b.pod));
        out.push(ArchiveSharing {
            pinned: archive.pinned.clone(),
            file_name: archive.file_name.clone(),
            pss: pods.iter().map(|p| p.pss).sum(),
            rss: pods.iter().map(|p| p.rss).sum(),
            pods,
        });
    }
    SharingStats {
        node: node.to_string(),
        archives: out,
        unreadable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "8e2c1f4a-3b5d-4c6e-9f70-112233445566";

    /// A JVM's smaps around its archive: two mappings of it, an anonymous one, a jar.
    fn smaps(inode: u64, pss_kb: u64) -> String {
        format!(
            "800000000-800d6e000 r--p 00001000 fd:01 {inode}                      /classcache/sha256-ab/app.jsa
Size:                860 kB
KernelPageSize:        4 kB
Rss:                 800 kB
Pss:                 {pss_kb} kB
Pss_Dirty:             0 kB
Shared_Clean:        800 kB
VmFlags: rd mr mw me
800d6e000-800e00000 rw-p 000d7000 fd:01 {inode}                      /classcache/sha256-ab/app.jsa
Size:                584 kB
Rss:                 200 kB
Pss:                 200 kB
7f0000000000-7f0000021000 rw-p 00000000 00:00 0
Size:                132 kB
Rss:                  64 kB
Pss:                  64 kB
7f1000000000-7f1000100000 r--p 00000000 fd:01 99                         /app/lib/a b.jar
Rss:                  12 kB
Pss:                   6 kB
"
        )
    }

    #[test]
    fn smaps_gives_the_file_mappings_with_bytes() {
        let m = parse_smaps(&smaps(4242, 400));
        assert_eq!(m.len(), 3, "{m:?}");
        assert_eq!(
            m[0].file,
            FileId {
                dev: (0xfd, 1),
                inode: 4242
            }
        );
        assert_eq!(m[0].path, "/classcache/sha256-ab/app.jsa");
        assert_eq!((m[0].rss, m[0].pss), (800 * 1024, 400 * 1024));
        assert_eq!((m[1].rss, m[1].pss), (200 * 1024, 200 * 1024));
        // The anonymous mapping's figures do not leak into the archive's; a path with a space.
        assert_eq!(m[2].path, "/app/lib/a b.jar");
        assert_eq!((m[2].rss, m[2].pss), (12 * 1024, 6 * 1024));
        assert!(maps_any(&smaps(4242, 1), &[m[0].file]));
        assert!(!maps_any(
            &smaps(4242, 1),
            &[FileId {
                dev: (0xfd, 1),
                inode: 7
            }]
        ));
        assert!(parse_smaps("garbage\n: kB\nRss: 5 kB\n").is_empty());
    }

    #[test]
    fn stat_devices_decode_like_the_kernel_prints_them() {
        // makedev(0xfd, 1) and makedev(259, 70000) in glibc's encoding.
        assert_eq!(FileId::from_stat(0xfd01, 5).dev, (0xfd, 1));
        let (major, minor) = (259u64, 70000u64);
        let dev = (minor & 0xff)
            | ((major & 0xfff) << 8)
            | ((minor & !0xff) << 12)
            | ((major & !0xfff) << 32);
        assert_eq!(FileId::from_stat(dev, 5).dev, (259, 70000));
    }

    #[test]
    fn cgroup_paths_name_the_pod_under_either_driver_and_any_prefix() {
        let cgroupfs = format!(
            "12:memory:/classcache-cluster/node-a/kubepods/besteffort/pod{UID}/0123abcd\n11:cpu,cpuacct:/kubepods/besteffort/pod{UID}/0123abcd\n"
        );
        assert_eq!(pod_uid_from_cgroup(&cgroupfs).as_deref(), Some(UID));
        let systemd = format!(
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-0123.scope\n",
            UID.replace('-', "_")
        );
        assert_eq!(pod_uid_from_cgroup(&systemd).as_deref(), Some(UID));
        let guaranteed = format!("0::/kubepods/pod{UID}/c\n");
        assert_eq!(pod_uid_from_cgroup(&guaranteed).as_deref(), Some(UID));
        // Not a pod: a system service, a container runtime's own cgroup, a lookalike name.
        for other in [
            "0::/system.slice/containerd.service\n",
            "12:memory:/docker/0123456789abcdef\n",
            "0::/user.slice/podman-pod.slice\n",
            "0::/kubepods/podnot-a-uid/c\n",
            "",
        ] {
            assert_eq!(pod_uid_from_cgroup(other), None, "{other}");
        }
    }

    #[test]
    fn sums_count_the_archive_in_known_pods_only() {
        let file = FileId {
            dev: (0xfd, 1),
            inode: 4242,
        };
        let archive = PublishedArchive {
            pinned: "sha256:ab".into(),
            file_name: "app.jsa".into(),
            file,
            pod_path: "/classcache/sha256-ab/app.jsa".into(),
        };
        let idle = PublishedArchive {
            pinned: "sha256:cd".into(),
            file_name: "other.jsa".into(),
            file: FileId {
                dev: file.dev,
                inode: 1,
            },
            pod_path: "/classcache/sha256-cd/other.jsa".into(),
        };
        let process = |uid: &str, inode: u64, pss_kb: u64| ProcessMaps {
            pod_uid: uid.into(),
            mappings: parse_smaps(&smaps(inode, pss_kb)),
        };
        let processes = [
            process("a", 4242, 400),
            process("b", 4242, 400),
            process("b", 4242, 800),
            // A copy-mode pod's private copy: same path, another inode.
            process("c", 5555, 800),
            // Another node's pod (the nodes share a PID namespace): unknown, not counted.
            process("elsewhere", 4242, 400),
        ];
        let names = |uid: &str| (uid != "elsewhere").then(|| format!("shop/{uid}"));
        let stats = sharing_stats("node-a", &[archive, idle], &processes, names, 2);
        assert_eq!(stats.node, "node-a");
        assert_eq!(stats.unreadable, 2);
        let a = &stats.archives[0];
        assert_eq!(a.pods.len(), 2, "{a:?}");
        assert_eq!((a.pods[0].pod.as_str(), a.pods[0].processes), ("shop/a", 1));
        assert_eq!(a.pods[0].rss, 1000 * 1024);
        assert_eq!(a.pods[0].pss, 600 * 1024);
        assert_eq!((a.pods[1].pod.as_str(), a.pods[1].processes), ("shop/b", 2));
        assert_eq!(a.rss, 3000 * 1024);
        assert_eq!(a.pss, (600 + 600 + 1000) * 1024);
        assert!(a.pss_per_rss().unwrap() < 1.0);
        let idle = &stats.archives[1];
        assert!(idle.pods.is_empty() && idle.rss == 0 && idle.pss_per_rss().is_none());
        // A mapping on another device counts when the pod's path names it (overlay's st_dev).
        let moved = PublishedArchive {
            file: FileId {
                dev: (0, 99),
                inode: 4242,
            },
            ..stats_archive()
        };
        let stats = sharing_stats("n", &[moved], &processes[..1], names, 0);
        assert_eq!(stats.archives[0].pods.len(), 1);
    }

    fn stats_archive() -> PublishedArchive {
        PublishedArchive {
            pinned: "sha256:ab".into(),
            file_name: "app.jsa".into(),
            file: FileId {
                dev: (0xfd, 1),
                inode: 4242,
            },
            pod_path: "/classcache/sha256-ab/app.jsa".into(),
        }
    }
}
