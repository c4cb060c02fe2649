#!/usr/bin/env bash
# tests/harness/cluster-down.sh - stop the cluster tests/harness/cluster-up.sh started and
# remove what it made on the host, and nothing else. down.sh calls it first. Idempotent.
#
#   cluster-down.sh           kill the pods' processes (through the nodes' cgroups), the
#                             shims, kubelets, kube-proxies, containerds, forwarders, the
#                             control plane and etcd (pidfiles checked against their command
#                             lines); unmount everything under $H/cluster (the nodes' mount
#                             namespaces take the kubelet's and containerd's mounts with
#                             them); delete the network namespaces, veths, bridge and the
#                             cgroups /classcache-cluster/* in every hierarchy. Keeps the
#                             certificates, etcd data is deleted (a new cluster each up).
#   cluster-down.sh --purge   the same, then delete $H/cluster.
# The binaries in ${CLASSCACHE_CACHE_DIR:-/var/cache/classcache}/cluster-<hash> stay.
set -euo pipefail

log() { printf 'cluster: %s\n' "$*" >&2; }
die() {
	printf 'cluster: ERROR: %s; log: %s; %s\n' "$1" "${2:-none}" "${3:-retry cluster-down.sh}" >&2
	exit 1
}

purge=false
case ${1:-} in
--purge) purge=true ;;
'') ;;
*) die "unknown argument '$1'" "none" "usage: cluster-down.sh [--purge]" ;;
esac

# shellcheck source=tests/harness/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# shellcheck source=tests/harness/cluster-common.sh
. "$(dirname "${BASH_SOURCE[0]}")/cluster-common.sh"

[ -d "$C" ] || exit 0
[ "$(id -u)" -eq 0 ] || die "cluster-down.sh needs root" "none" "run it as root"
exec 8>"$H/cluster.lock"
flock -w 600 8 || die "cluster-up.sh has held $H/cluster.lock for 10 minutes" "$H/cluster.lock" "wait for it or stop it first"

# The cluster's names leave $H/env first, so no test starts against a stopping cluster.
rm -f "$C/env"
if [ -f "$H/env" ] && grep -q '^export CLASSCACHE_KUBECONFIG=' "$H/env"; then
	grep -v -e '^export CLASSCACHE_CLUSTER_' -e '^export CLASSCACHE_KUBECONFIG=' -e '^export CLASSCACHE_KUBECTL=' \
		-e '^# Written by tests/harness/cluster-up.sh' "$H/env" >"$H/env.cluster.tmp" || true
	mv "$H/env.cluster.tmp" "$H/env"
fi

# alive PID: running, not a zombie (our daemons' parent is init, which may reap late).
alive() {
	local state
	state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
	[ -n "$state" ] && [ "$state" != Z ]
}

# stop_batch TIMEOUT_S NAME PIDFILE MARKER [NAME PIDFILE MARKER]...: SIGTERM every listed
# process that is ours at once, wait for all, SIGKILL what is left after TIMEOUT_S.
stop_batch() {
	local timeout=$1 pids=() pid
	shift
	while [ $# -ge 3 ]; do
		if pid_is_ours "$2" "$3"; then
			pid=$(cat "$2")
			log "stopping $1 (pid $pid)"
			kill -TERM "$pid" 2>/dev/null || true
			pids+=("$pid")
		fi
		rm -f "$2"
		shift 3
	done
	for _ in $(seq 1 $((timeout * 10))); do
		local left=()
		for pid in "${pids[@]}"; do alive "$pid" && left+=("$pid"); done
		pids=("${left[@]}")
		[ ${#pids[@]} -eq 0 ] && return 0
		sleep 0.1
	done
	log "killing pids ${pids[*]} (no exit ${timeout}s after SIGTERM)"
	kill -KILL "${pids[@]}" 2>/dev/null || true
}

# Every process in a cgroup tree, in any hierarchy.
pids_in_cgroups() {
	local hier
	for hier in $(cgroup_hierarchies); do
		if [ -d "$hier/$1" ]; then find "$hier/$1" -name cgroup.procs -exec cat {} + 2>/dev/null || true; fi
	done | sort -u
}

batch=()
for node in "${NODES[@]}"; do
	batch+=("kubelet of $node" "$C/$node/kubelet.pid" "$C/$node/kubelet.yaml")
	batch+=("kube-proxy of $node" "$C/$node/kube-proxy.pid" "$C/$node/kube-proxy.yaml")
done
stop_batch 10 "${batch[@]}"

# The pods' processes: everything in the nodes' cgroups (the kubelet put them there).
for _ in $(seq 1 50); do
	cg_pids=$(pids_in_cgroups "$CGROUP_PARENT")
	[ -z "$cg_pids" ] && break
	# shellcheck disable=SC2086
	kill -KILL $cg_pids 2>/dev/null || true
	sleep 0.1
done
[ -z "$(pids_in_cgroups "$CGROUP_PARENT")" ] || log "processes left in the cgroups /$CGROUP_PARENT: $(pids_in_cgroups "$CGROUP_PARENT" | tr '\n' ' ')"

# Shims of our containerds (their command line names our socket), and their sockets in
# /run/containerd/s (named by a hash of socket, namespace and id; see containerd's
# pkg/shim SocketAddress).
batch=()
sockets=()
for node in "${NODES[@]}"; do
	sock=$(containerd_sock "$node")
	n=0
	for pid in $(pgrep -f -- "containerd-shim-runc-v2 .*-address $sock" 2>/dev/null || true); do
		args=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || continue
		id=$(echo "$args" | sed -n 's/.* -id \([^ ]*\).*/\1/p')
		ns=$(echo "$args" | sed -n 's/.* -namespace \([^ ]*\).*/\1/p')
		n=$((n + 1))
		echo "$pid" >"$C/shim-$node-$n.pid"
		batch+=("shim $id" "$C/shim-$node-$n.pid" "-address $sock")
		[ -n "$id" ] && sockets+=("/run/containerd/s/$(printf '%s' "$sock/$ns/$id" | sha256sum | cut -c1-64)")
	done
	batch+=("containerd of $node" "$C/$node/containerd.pid" "$C/$node/containerd/config.toml")
	batch+=("registry forwarder of $node" "$C/$node/forwarder.pid" "classcache-cluster-fwd:$C:")
done
batch+=("registry forwarder" "$C/forwarder.pid" "classcache-cluster-fwd:$C:")
batch+=(kube-scheduler "$C/scheduler.pid" "$C/kubeconfig/scheduler.kubeconfig")
batch+=(kube-controller-manager "$C/controller-manager.pid" "$C/kubeconfig/controller-manager.kubeconfig")
stop_batch 10 "${batch[@]}"
[ ${#sockets[@]} -eq 0 ] || rm -f "${sockets[@]}"
rmdir /run/containerd/s /run/containerd 2>/dev/null || true
stop_batch 15 kube-apiserver "$C/apiserver.pid" "$C/pki/apiserver.crt"
stop_batch 10 etcd "$C/etcd.pid" "$C/etcd/data"

# Mounts under $C and the short run dir (the node mount namespaces' nsfs files, and
# anything a crashed run left in the host's table), deepest first; lazy when busy.
unmount_under() {
	local mountpoint
	awk -v d="$1/" 'index($5, d) == 1 || $5 == substr(d, 1, length(d) - 1) { print $5 }' /proc/self/mountinfo | sort -r |
		while IFS= read -r mountpoint; do
			umount "$mountpoint" 2>/dev/null || umount -l "$mountpoint" 2>/dev/null || log "could not unmount $mountpoint"
		done
}
unmount_under "$C"
for node in "${NODES[@]}"; do
	run=$(node_run_dir "$node")
	case $run in "$C"/*) ;; *) unmount_under "$run" ;; esac
done

# Network: the namespaces (their veth ends and pods' veths go with them), the host veths
# and the bridge (the routes to the pod CIDRs go with it).
for node in "${NODES[@]}"; do
	ns=$(netns_of "$node")
	if [ -e "/run/netns/$ns" ]; then
		log "deleting network namespace $ns"
		ip netns del "$ns" 2>/dev/null || { umount -l "/run/netns/$ns" 2>/dev/null; rm -f "/run/netns/$ns"; }
	fi
	ip link del "$(veth_of "$node")" 2>/dev/null || true
done
if [ "$(cat "$OWNER_FILE" 2>/dev/null)" = "$H" ]; then
	ip link del "$BRIDGE" 2>/dev/null && log "deleted bridge $BRIDGE"
	rm -f "$OWNER_FILE"
fi

# cgroups, deepest first, in every hierarchy.
for hier in $(cgroup_hierarchies); do
	[ -d "$hier/$CGROUP_PARENT" ] || continue
	find "$hier/$CGROUP_PARENT" -depth -type d -exec rmdir {} \; 2>/dev/null || true
	[ -d "$hier/$CGROUP_PARENT" ] && log "could not remove every cgroup under $hier/$CGROUP_PARENT"
done

# What the runtimes leave on the host outside $C: CNI result cache entries of our
# network, kubelet's symlinks to our pods' logs, the short run dirs.
rm -f /var/lib/cni/results/classcache-harness-* 2>/dev/null || true
# go-cni's loopback network caches results too; ours name a netns under our run dirs.
for node in "${NODES[@]}"; do
	{ grep -lF "$(node_run_dir "$node")/" /var/lib/cni/results/cni-loopback-* 2>/dev/null || true; } | xargs -r rm -f
done
rmdir /var/lib/cni/results /var/lib/cni 2>/dev/null || true
find /var/log/containers -maxdepth 1 -type l -lname "$C/*" -delete 2>/dev/null || true
for node in "${NODES[@]}"; do
	run=$(node_run_dir "$node")
	rm -rf "$run"
	case $run in "$C"/*) ;; *) rmdir "$(dirname "$run")" 2>/dev/null || true ;; esac
done
# A new cluster each up: etcd data, node state and pod volumes go (certificates stay).
rm -rf "$C/etcd" "${NODES[@]/#/$C/}"
if $purge; then
	log "deleting $C"
	rm -rf "$C"
	rm -f "$H/cluster.lock"
fi
log "cluster stopped"
