# shellcheck shell=bash disable=SC2034
# tests/harness/cluster-common.sh - names, addresses and paths shared by cluster-up.sh and
# cluster-down.sh. Sourced after common.sh (it needs $H and $REPO_ROOT); starts nothing.

CLUSTER_SRC=$REPO_ROOT/tests/harness/cluster
C=$H/cluster
K8S_VERSION=v1.35.4

# The host side: a bridge with 10.88.0.1/24 (10.77.0.0/24 belongs to the fetcher tests).
BRIDGE=classcache0
BRIDGE_IP=10.88.0.1
API_PORT=6443
API_SERVER=https://$BRIDGE_IP:$API_PORT
SERVICE_CIDR=10.96.0.0/24
SERVICE_IP=10.96.0.1
CLUSTER_CIDR=10.244.0.0/16
ETCD_CLIENT_PORT=23790
ETCD_PEER_PORT=23800
# cgroup v1: every node's kubelet gets its own cgroupRoot below this one.
CGROUP_PARENT=classcache-cluster

NODES=(node-a node-b)
declare -A NODE_IP=([node-a]=10.88.0.11 [node-b]=10.88.0.12)
# Network namespace and the host end of its veth (15 characters at most).
netns_of() { echo "classcache-$1"; }
veth_of() { echo "cc-$1"; }
# The node's mount namespace (a bind-mounted nsfs file; see cluster-up.sh).
mntns_of() { echo "$C/ns/$1.mnt"; }
# containerd's state dir holds its socket and sockets two levels further down: a long $H
# moves it to a short dir under /run, keyed by $C.
node_run_dir() {
	if [ ${#C} -le 50 ]; then
		echo "$C/$1/run"
	else
		echo "/run/classcache-cluster-$(printf '%s' "$C" | sha256sum | cut -c1-12)/$1"
	fi
}
containerd_sock() { echo "$(node_run_dir "$1")/containerd.sock"; }

# Which harness owns the fixed names above (only one cluster per machine).
OWNER_FILE=/run/classcache-cluster.owner

# Runs a command in a node's network and mount namespaces.
in_node() {
	local node=$1
	shift
	nsenter --mount="$(mntns_of "$node")" --net="/run/netns/$(netns_of "$node")" -- "$@"
}

# The v1 hierarchies (and the v2 one of a hybrid setup) where the nodes' cgroups live.
cgroup_hierarchies() {
	awk '$3 == "cgroup" || $3 == "cgroup2" { print $2 }' /proc/self/mounts | sort -u
}

# Binaries: ${CLASSCACHE_CACHE_DIR:-/var/cache/classcache}/cluster-<hash>/bin, the hash
# covering build.sh and every go.mod, go.sum, .go and .c file of tests/harness/cluster.
CACHE_ROOT=${CLASSCACHE_CACHE_DIR:-/var/cache/classcache}
cluster_build_hash() {
	(
		cd "$CLUSTER_SRC" &&
			find . -type f \( -name go.mod -o -name go.sum -o -name '*.go' -o -name '*.c' -o -name build.sh \) -print |
			LC_ALL=C sort | xargs sha256sum
	) | sha256sum | cut -c1-16
}
