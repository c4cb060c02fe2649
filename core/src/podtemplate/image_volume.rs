//! When a cluster can deliver archives as image volumes: the versions of the API server, the
//! kubelets and the container runtimes that mount them. It judges given facts; it must not ask a cluster.

/// First Kubernetes minor with image volumes on by default (beta in 1.35, GA in 1.36).
pub const MIN_KUBERNETES_MINOR: u32 = 35;
/// First containerd that mounts image volumes with the kubelet's sub-path support.
pub const MIN_CONTAINERD: (u32, u32) = (2, 1);
/// First CRI-O that mounts image volumes.
pub const MIN_CRIO: (u32, u32) = (1, 33);

/// One node as its status reports it (`status.nodeInfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRuntime {
    pub name: String,
    /// `kubeletVersion`, e.g. `v1.35.4`.
    pub kubelet: String,
    /// `containerRuntimeVersion`, e.g. `containerd://2.2.9`.
    pub runtime: String,
}

/// `major.minor` of a version such as `v1.35.4`, `1.35+` or `2.2.9-k3s1`.
fn major_minor(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.trim_start_matches('v').split('.');
    let number = |s: &str| -> Option<u32> {
        let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    };
    Some((number(parts.next()?)?, number(parts.next()?)?))
}

/// Why the cluster cannot use image volumes, one reason per line; empty when it can.
/// `server` is the API server's `major` and `minor` as `/version` gives them.
pub fn image_volume_blockers(server: (&str, &str), nodes: &[NodeRuntime]) -> Vec<String> {
    let mut blockers = vec![];
    let min = format!("1.{MIN_KUBERNETES_MINOR}");
    match major_minor(&format!("{}.{}", server.0, server.1)) {
        Some((1, minor)) if minor >= MIN_KUBERNETES_MINOR => {}
        _ => blockers.push(format!(
            "the API server is {}.{}; image volumes are on by default from Kubernetes {min}",
            server.0, server.1
        )),
    }
    if nodes.is_empty() {
        blockers.push("the cluster has no nodes to run image volumes".into());
    }
    for node in nodes {
        match major_minor(&node.kubelet) {
            Some((1, minor)) if minor >= MIN_KUBERNETES_MINOR => {}
            _ => blockers.push(format!(
                "node {} runs kubelet {}; image volumes need {min} or later",
                node.name, node.kubelet
            )),
        }
        let (runtime, version) = node.runtime.split_once("://").unwrap_or(("", ""));
        let needed = match runtime {
            "containerd" => MIN_CONTAINERD,
            "cri-o" => MIN_CRIO,
            _ => {
                blockers.push(format!(
                    "node {} runs {:?}; image volumes are known to work on containerd {}.{}+ and CRI-O {}.{}+",
                    node.name, node.runtime, MIN_CONTAINERD.0, MIN_CONTAINERD.1, MIN_CRIO.0, MIN_CRIO.1
                ));
                continue;
            }
        };
        if major_minor(version).is_none_or(|v| v < needed) {
            blockers.push(format!(
                "node {} runs {}; image volumes need {runtime} {}.{} or later",
                node.name, node.runtime, needed.0, needed.1
            ));
        }
    }
    blockers
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(kubelet: &str, runtime: &str) -> NodeRuntime {
        NodeRuntime {
            name: "n1".into(),
            kubelet: kubelet.into(),
            runtime: runtime.into(),
        }
    }

    #[test]
    fn versions_decide() {
        let ok = [
            node("v1.35.4", "containerd://2.2.9"),
            node("v1.36.0", "cri-o://1.35.1"),
        ];
        assert!(image_volume_blockers(("1", "35"), &ok).is_empty());
        assert!(image_volume_blockers(("1", "36+"), &ok).is_empty());
        let old_server = image_volume_blockers(("1", "34"), &ok);
        assert!(
            old_server[0].contains("API server is 1.34"),
            "{old_server:?}"
        );
        for (n, word) in [
            (node("v1.34.2", "containerd://2.2.9"), "kubelet v1.34.2"),
            (
                node("v1.35.0", "containerd://1.7.27"),
                "containerd 2.1 or later",
            ),
            (node("v1.35.0", "cri-o://1.32.0"), "cri-o 1.33 or later"),
            (
                node("v1.35.0", "docker://28.0.0"),
                "known to work on containerd",
            ),
            (
                node("v1.35.0", "containerd://garbage"),
                "containerd 2.1 or later",
            ),
        ] {
            let b = image_volume_blockers(("1", "35"), &[n]);
            assert!(b.len() == 1 && b[0].contains(word), "{word}: {b:?}");
        }
        assert!(!image_volume_blockers(("1", "35"), &[]).is_empty());
    }
}
