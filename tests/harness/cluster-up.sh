#!/usr/bin/env bash
# tests/harness/cluster-up.sh - start a real two-node Kubernetes v1.35.4 cluster for the
# tests, idempotently. tests/harness/up.sh runs it at its end (CLASSCACHE_HARNESS_CLUSTER=0
# skips it there); it needs up.sh's registry ($H/env), so run up.sh first when calling it
# by hand. Stop: tests/harness/cluster-down.sh (down.sh calls it first).
#
# What it starts (each only if not already running from an earlier call):
#   * binaries built from Go modules (tests/harness/cluster/build.sh: k8s.io/kubernetes
#     v1.35.4, etcd v3.6, containerd v2.2, CNI plugins v1.10) and a static pause binary,
#     cached by the hash of their sources in ${CLASSCACHE_CACHE_DIR:-/var/cache/classcache}/
#     cluster-<hash>/bin, outside the checkout: a fresh clone on the same machine starts warm.
#     A cold build takes many minutes on 2 cores (build log $H/cluster/build.log).
#   * a bridge classcache0 with 10.88.0.1/24 on the host; etcd on 127.0.0.1:23790 (data
#     $H/cluster/etcd, --unsafe-no-fsync); kube-apiserver on https://10.88.0.1:6443
#     (service CIDR 10.96.0.0/24, admission incl. NodeRestriction and PodSecurity,
#     authorization Node,RBAC), kube-controller-manager (node CIDRs from 10.244.0.0/16) and
#     kube-scheduler on 10.88.0.1; certificates made with openssl under $H/cluster/pki.
#   * two nodes, node-a (10.88.0.11) and node-b (10.88.0.12), each a network namespace
#     classcache-<node> (veth cc-<node> on the bridge) plus a mount namespace of its own
#     ($H/cluster/ns/<node>.mnt), running its own containerd (socket below, snapshotter
#     overlayfs or native when overlay does not mount here, runc from Debian), kubelet
#     (cgroupfs driver, cgroup v1 with failCgroupV1: false, cgroupRoot
#     /classcache-cluster/<node>, root dir $H/cluster/<node>/kubelet), kube-proxy (iptables
#     mode, rules only inside the node's network namespace) and a registry forwarder.
#     Pod networking: CNI bridge cni0 + host-local with the Node's spec.podCIDR, routes
#     between the nodes' namespaces, portmap for hostPort. No DNS server (pods get
#     $H/cluster/resolv.conf, which resolves nothing).
#   * registry access: the nodes pull from up.sh's registry under the host's own reference
#     (127.0.0.1:<port>/...): socat on 10.88.0.1:<port> forwards to 127.0.0.1:<port>, and a
#     socat in each node's namespace listens on 127.0.0.1:<port> and forwards to
#     10.88.0.1:<port>; containerd treats 127.0.0.1:<port> as plain HTTP (certs.d/hosts.toml).
#     Every blob GET the nodes make shows in the registry's access log $H/registry.log
#     (Apache combined format: request, status, bytes; user agent containerd/...).
#   The host's iptables rules and sysctls are left alone: kube-proxy skips its conntrack
#   sysctls (conntrack.maxPerCore 0) and localhost node ports, and the kubelet, which wants
#   vm.overcommit_memory=1, kernel.panic=10 and kernel.panic_on_oops=1 and would write
#   them, sees files with those values bind-mounted over /proc/sys in its node's mount
#   namespace instead (containers get their own /proc and see the host's real values).
#   The host gets routes to the pod CIDRs via the nodes, on the bridge only.
#
# Appends to $H/env (after up.sh's part; sourceable):
#   CLASSCACHE_KUBECONFIG         admin kubeconfig (cluster-admin, system:masters)
#   CLASSCACHE_KUBECTL            the built kubectl v1.35.4
#   CLASSCACHE_CLUSTER_VERSION    v1.35.4
#   CLASSCACHE_CLUSTER_API_SERVER https://10.88.0.1:6443
#   CLASSCACHE_CLUSTER_NODES      "node-a node-b"
#   CLASSCACHE_CLUSTER_NODE_IPS   "10.88.0.11 10.88.0.12" (same order; status.hostIP)
#   CLASSCACHE_CLUSTER_NETNS      "classcache-node-a classcache-node-b" (`ip netns exec`)
#   CLASSCACHE_CLUSTER_CONTAINERD_SOCKETS  "<socket of node-a> <socket of node-b>"
#   CLASSCACHE_CLUSTER_NODE_A_IP / _NETNS / _CONTAINERD_SOCK, and the same for NODE_B
#   CLASSCACHE_CLUSTER_CTR        a command: `$CLASSCACHE_CLUSTER_CTR <node> <ctr args>` runs
#                                 ctr on that node's containerd in namespace k8s.io, e.g.
#                                 `$CLASSCACHE_CLUSTER_CTR node-a images import img.tar`
#   CLASSCACHE_CLUSTER_REGISTRY   the registry as the nodes see it (= CLASSCACHE_TEST_REGISTRY)
#   CLASSCACHE_CLUSTER_BIN        the dir with all cluster binaries
# Concurrent calls are serialised by flock on $H/cluster.lock; a warm call (cluster up)
# takes about a second. One cluster per machine (fixed names and addresses): the owner is
# recorded in /run/classcache-cluster.owner.
# Progress goes to stderr as "cluster: [seconds] ..."; a failure exits non-zero with
# "cluster: ERROR: <what>; log: <path>; <fix>". Needs root. Installs with apt-get when
# missing: runc, socat, iptables, conntrack, openssl, gcc.
set -euo pipefail

started_ms=$(date +%s%3N)
phase_ms=$started_ms
phase_name=""
log() {
	local ms=$(($(date +%s%3N) - started_ms))
	printf 'cluster: [%d.%ds] %s\n' $((ms / 1000)) $((ms % 1000 / 100)) "$*" >&2
}
# phase NAME: ends the previous phase (printing its time) and starts NAME.
phase() {
	local now
	now=$(date +%s%3N)
	[ -z "$phase_name" ] || log "$phase_name: done in $(((now - phase_ms) / 1000)).$(((now - phase_ms) % 1000 / 100))s"
	phase_name=$1
	phase_ms=$now
	[ -z "$1" ] || log "$1"
}
# die WHAT LOG FIX
die() {
	printf 'cluster: ERROR: %s; log: %s; %s\n' "$1" "${2:-none}" "${3:-run tests/harness/cluster-down.sh, then cluster-up.sh again}" >&2
	exit 1
}

# shellcheck source=tests/harness/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# shellcheck source=tests/harness/cluster-common.sh
. "$(dirname "${BASH_SOURCE[0]}")/cluster-common.sh"

# The fetcher's default store (core/src/paths.rs, the one definition), given to each node as a
# directory of its own.
NODE_STORE_DIR=$(sed -n 's/^pub const NODE_STORE_DIR: &str = "\(.*\)";$/\1/p' "$REPO_ROOT/core/src/paths.rs")
[ -n "$NODE_STORE_DIR" ] || die "cannot read NODE_STORE_DIR from core/src/paths.rs" "none" "fix the pattern above"
# Any other failing command still ends in the one-line ERROR format.
set -E
trap 'die "cluster-up.sh line $LINENO failed: $BASH_COMMAND (phase: ${phase_name:-start})" "$C (the phase'"'"'s logs)" "run tests/harness/cluster-down.sh, then cluster-up.sh again"' ERR

[ "$(id -u)" -eq 0 ] || die "cluster-up.sh needs root (namespaces, mounts, cgroups)" "none" "run it as root"
mkdir -p "$C"
exec 8>"$H/cluster.lock"
if ! flock -n 8; then
	log "waiting for another cluster-up/down (lock $H/cluster.lock)"
	flock -w 1800 8 || die "another cluster-up.sh has held $H/cluster.lock for 30 minutes" "$H/cluster.lock" "check that process"
fi

kc() { "$BIN/kubectl" --kubeconfig "$C/kubeconfig/admin.kubeconfig" "$@"; }

# ---------------------------------------------------------------- packages
install_packages() {
	local missing=()
	command -v runc >/dev/null || missing+=(runc)
	command -v socat >/dev/null || missing+=(socat)
	command -v iptables >/dev/null || missing+=(iptables)
	command -v conntrack >/dev/null || missing+=(conntrack)
	command -v openssl >/dev/null || missing+=(openssl)
	command -v gcc >/dev/null || missing+=(gcc libc6-dev)
	command -v nsenter >/dev/null || missing+=(util-linux)
	[ ${#missing[@]} -eq 0 ] && return 0
	log "installing ${missing[*]} with apt-get (log $C/apt.log)"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y --no-install-recommends "${missing[@]}" >>"$C/apt.log" 2>&1 ||
		{ apt-get update >>"$C/apt.log" 2>&1 && apt-get install -y --no-install-recommends "${missing[@]}" >>"$C/apt.log" 2>&1; } ||
		die "apt-get install ${missing[*]} failed" "$C/apt.log" "install them by hand"
}

# ---------------------------------------------------------------- binaries
ensure_binaries() {
	local hash dir
	hash=$(cluster_build_hash)
	dir=$CACHE_ROOT/cluster-$hash
	BIN=$dir/bin
	if [ -f "$dir/complete" ]; then
		touch "$dir/last-used"
		return 0
	fi
	mkdir -p "$dir" || die "cannot create the binary cache $dir" "none" "set CLASSCACHE_CACHE_DIR to a writable dir"
	exec 7>"$dir.lock"
	if ! flock -n 7; then
		log "waiting for another build of $dir (lock $dir.lock)"
		flock -w 3600 7 || die "another build of $dir has run for an hour" "$dir.lock" "check that process"
	fi
	if [ ! -f "$dir/complete" ]; then
		command -v go >/dev/null || die "no go command for the cold build" "none" "install Go (1.25 or later)"
		log "cold build of the cluster binaries into $BIN (many minutes on 2 cores; log $C/build.log)"
		local t0=$SECONDS
		rm -rf "$dir/bin.tmp"
		if ! "$CLUSTER_SRC/build.sh" "$dir/bin.tmp" >"$C/build.log" 2>&1; then
			tail -n 20 "$C/build.log" >&2
			die "building the cluster binaries failed (last lines above)" "$C/build.log" "fix the build; the cache stays cold until it succeeds"
		fi
		rm -rf "$BIN"
		mv "$dir/bin.tmp" "$BIN"
		echo "$((SECONDS - t0))" >"$dir/build-seconds"
		touch "$dir/complete" "$dir/last-used"
		log "cold build took $((SECONDS - t0)) s"
		# Builds of other sources (other branches) unused for 14 days go.
		find "$CACHE_ROOT" -maxdepth 2 -path "$CACHE_ROOT/cluster-*/last-used" -mtime +14 -printf '%h\n' |
			while IFS= read -r old; do
				log "deleting the unused cluster binaries $old"
				rm -rf "$old" "$old.lock"
			done
	fi
	exec 7>&-
}

# ---------------------------------------------------------------- owner
claim_names() {
	local owner
	owner=$(cat "$OWNER_FILE" 2>/dev/null || true)
	if [ -n "$owner" ] && [ "$owner" != "$H" ] && ip link show "$BRIDGE" >/dev/null 2>&1; then
		# A harness whose processes all ended (a session or CI job that was stopped) left
		# only kernel objects behind: take them over instead of refusing forever.
		if pgrep -f -- "$owner/cluster/" >/dev/null 2>&1; then
			die "the cluster names and addresses (bridge $BRIDGE, 10.88.0.0/24) belong to the running harness in $owner" "$OWNER_FILE" \
				"stop it with CLASSCACHE_HARNESS_DIR=$owner tests/harness/cluster-down.sh in that checkout"
		fi
		log "the cluster of $owner is stale (none of its processes run); removing what it left"
		if [ -d "$owner/cluster" ]; then
			CLASSCACHE_HARNESS_DIR=$owner bash "$(dirname "${BASH_SOURCE[0]}")/cluster-down.sh" ||
				log "cluster-down.sh for $owner failed; removing its network objects by name"
		fi
		local node
		for node in "${NODES[@]}"; do
			ip netns del "$(netns_of "$node")" 2>/dev/null || true
		done
		ip link del "$BRIDGE" 2>/dev/null || true
		rm -f "$OWNER_FILE"
		owner=""
	fi
	if [ -z "$owner" ] || [ "$owner" != "$H" ]; then
		ip link show "$BRIDGE" >/dev/null 2>&1 &&
			die "a bridge $BRIDGE exists that no harness claims" "none" "delete it: ip link del $BRIDGE"
		echo "$H" >"$OWNER_FILE"
	fi
}

# ---------------------------------------------------------------- pki
issue_cert() { # NAME SUBJECT EKU [SAN]
	local name=$1 subj=$2 eku=$3 san=${4:-} p=$C/pki
	[ -s "$p/$name.crt" ] && [ -s "$p/$name.key" ] && return 0
	openssl ecparam -name prime256v1 -genkey -noout -out "$p/$name.key" 2>>"$C/pki.log"
	openssl req -new -key "$p/$name.key" -subj "$subj" -out "$p/$name.csr" 2>>"$C/pki.log"
	{
		echo "basicConstraints=critical,CA:FALSE"
		echo "keyUsage=critical,digitalSignature,keyEncipherment"
		echo "extendedKeyUsage=$eku"
		[ -z "$san" ] || echo "subjectAltName=$san"
	} >"$p/$name.ext"
	openssl x509 -req -in "$p/$name.csr" -CA "$p/ca.crt" -CAkey "$p/ca.key" -set_serial "0x$(openssl rand -hex 16)" \
		-days 3650 -sha256 -extfile "$p/$name.ext" -out "$p/$name.crt" 2>>"$C/pki.log" ||
		die "openssl could not issue $name.crt" "$C/pki.log" "delete $p and retry"
	rm -f "$p/$name.csr" "$p/$name.ext"
}

make_pki() {
	local p=$C/pki
	mkdir -p "$p"
	chmod 700 "$p"
	if [ ! -s "$p/ca.crt" ]; then
		rm -f "$p"/*
		openssl ecparam -name prime256v1 -genkey -noout -out "$p/ca.key" 2>>"$C/pki.log"
		openssl req -x509 -new -key "$p/ca.key" -subj "/CN=classcache-harness-ca" -days 3650 -sha256 \
			-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
			-out "$p/ca.crt" 2>>"$C/pki.log" || die "openssl could not make the CA" "$C/pki.log" "delete $p and retry"
	fi
	if [ ! -s "$p/sa.key" ]; then
		openssl ecparam -name prime256v1 -genkey -noout -out "$p/sa.key" 2>>"$C/pki.log"
		openssl ec -in "$p/sa.key" -pubout -out "$p/sa.pub" 2>>"$C/pki.log"
	fi
	issue_cert apiserver "/CN=kube-apiserver" serverAuth \
		"DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,IP:$SERVICE_IP,IP:$BRIDGE_IP,IP:127.0.0.1"
	issue_cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
	issue_cert admin "/O=system:masters/CN=classcache-admin" clientAuth
	issue_cert controller-manager "/CN=system:kube-controller-manager" clientAuth
	issue_cert scheduler "/CN=system:kube-scheduler" clientAuth
	issue_cert kube-proxy "/CN=system:kube-proxy" clientAuth
	local node
	for node in "${NODES[@]}"; do
		# Client cert for the Node authorizer and serving cert of the kubelet in one.
		issue_cert "$node" "/O=system:nodes/CN=system:node:$node" clientAuth,serverAuth "DNS:$node,IP:${NODE_IP[$node]}"
	done
}

write_kubeconfig() { # NAME CERT
	cat >"$C/kubeconfig/$1.kubeconfig.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: classcache-harness
  cluster:
    server: $API_SERVER
    certificate-authority: $C/pki/ca.crt
users:
- name: $2
  user:
    client-certificate: $C/pki/$2.crt
    client-key: $C/pki/$2.key
contexts:
- name: classcache-harness
  context:
    cluster: classcache-harness
    user: $2
current-context: classcache-harness
EOF
	mv "$C/kubeconfig/$1.kubeconfig.tmp" "$C/kubeconfig/$1.kubeconfig"
}

make_kubeconfigs() {
	mkdir -p "$C/kubeconfig"
	write_kubeconfig admin admin
	write_kubeconfig controller-manager controller-manager
	write_kubeconfig scheduler scheduler
	write_kubeconfig kube-proxy kube-proxy
	local node
	for node in "${NODES[@]}"; do write_kubeconfig "$node" "$node"; done
}

# ---------------------------------------------------------------- network
setup_network() {
	if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
		ip link add "$BRIDGE" type bridge || die "ip link add $BRIDGE type bridge failed" "none" "check that this host allows bridges"
	fi
	ip addr replace "$BRIDGE_IP/24" dev "$BRIDGE"
	ip link set "$BRIDGE" up
	local node ns veth
	for node in "${NODES[@]}"; do
		ns=$(netns_of "$node")
		veth=$(veth_of "$node")
		[ -e "/run/netns/$ns" ] || ip netns add "$ns" || die "ip netns add $ns failed" "none" "check /run/netns"
		if ! ip link show "$veth" >/dev/null 2>&1; then
			ip netns exec "$ns" ip link del eth0 2>/dev/null || true
			ip link add "$veth" type veth peer name eth0 netns "$ns" || die "creating the veth $veth failed" "none" "delete a leftover: ip link del $veth"
		fi
		ip link set "$veth" master "$BRIDGE" up
		ip netns exec "$ns" sh -c "
			ip link set lo up &&
			ip addr replace ${NODE_IP[$node]}/24 dev eth0 &&
			ip link set eth0 up &&
			ip route replace default via $BRIDGE_IP &&
			sysctl -qw net.ipv4.ip_forward=1 &&
			sysctl -qw net.bridge.bridge-nf-call-iptables=1" ||
			die "configuring the network namespace $ns failed" "none" "run cluster-down.sh and retry"
	done
}

# A mount namespace per node, kept by a bind mount of its nsfs file: the kubelet's and
# containerd's mounts stay out of the host's mount table, and the kubelet reads the
# kernel tunables it insists on from files of ours (see the header).
# The kubelet's device-plugin directory (kubelet's constant, not under --root-dir).
DEVICE_PLUGIN_DIR=/var/lib/kubelet/device-plugins

setup_mount_namespaces() {
	mkdir -p "$C/ns"
	if ! mountpoint -q "$C/ns"; then
		mount --bind "$C/ns" "$C/ns"
		mount --make-private "$C/ns"
	fi
	local node file sysctl_dir
	for node in "${NODES[@]}"; do
		file=$(mntns_of "$node")
		[ "$(findmnt -no FSTYPE "$file" 2>/dev/null)" = nsfs ] && continue
		sysctl_dir=$C/$node/sysctl
		mkdir -p "$sysctl_dir"
		echo 1 >"$sysctl_dir/vm.overcommit_memory"
		echo 0 >"$sysctl_dir/vm.panic_on_oom"
		echo 10 >"$sysctl_dir/kernel.panic"
		echo 1 >"$sysctl_dir/kernel.panic_on_oops"
		echo 1000000 >"$sysctl_dir/kernel.keys.root_maxkeys"
		echo 25000000 >"$sysctl_dir/kernel.keys.root_maxbytes"
		touch "$file"
		# Each node has a disk of its own: its fetcher's store (the DaemonSet's hostPath,
		# $NODE_STORE_DIR) is a directory of this node's only, as on real nodes. So is the
		# kubelet's device-plugin socket directory, a fixed path whatever --root-dir says: two
		# kubelets starting at once on a shared one race on kubelet.sock ("address already in
		# use") and one exits.
		mkdir -p "$C/$node/store" "$NODE_STORE_DIR" "$C/$node/device-plugins" "$DEVICE_PLUGIN_DIR"
		# Inside: drop the copies of other namespaces' nsfs mounts (they would keep the
		# fetcher tests' and the other node's namespaces alive), mask the tunables, and
		# mount the node's store.
		unshare --mount="$file" --propagation private sh -euc '
			awk '\''$9 == "nsfs" { print $5 }'\'' /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" || true; done
			umount -l "$1" 2>/dev/null || true
			for f in "$2"/*; do
				t=/proc/sys/$(basename "$f" | tr . /)
				mount --bind "$f" "$t"
				mount -o remount,bind,ro "$t"
			done
			mount --bind "$3" "$4"
			mount --bind "$5" "$6"' sh "$C/ns" "$sysctl_dir" "$C/$node/store" "$NODE_STORE_DIR" \
			"$C/$node/device-plugins" "$DEVICE_PLUGIN_DIR" >>"$C/$node/mntns.log" 2>&1 ||
			die "making the mount namespace of $node failed" "$C/$node/mntns.log" "run cluster-down.sh and retry"
	done
}

setup_cgroups() {
	local hier node d
	for hier in $(cgroup_hierarchies); do
		for d in "$CGROUP_PARENT" $(for node in "${NODES[@]}"; do echo "$CGROUP_PARENT/$node"; done); do
			[ -d "$hier/$d" ] && continue
			mkdir "$hier/$d" || die "mkdir $hier/$d failed" "none" "check the cgroup mounts"
			if [ -f "$hier/$d/cpuset.cpus" ]; then
				cat "$(dirname "$hier/$d")/cpuset.cpus" >"$hier/$d/cpuset.cpus"
				cat "$(dirname "$hier/$d")/cpuset.mems" >"$hier/$d/cpuset.mems"
			fi
		done
	done
}

# ---------------------------------------------------------------- daemons
# config_changed FILE: moves FILE.new over FILE; true when the content changed (a daemon
# running with the old one must restart).
config_changed() {
	if cmp -s "$1.new" "$1" 2>/dev/null; then
		rm -f "$1.new"
		return 1
	fi
	mv "$1.new" "$1"
}

# start_daemon NAME PIDFILE MARKER LOG CMD...: starts CMD in its own session unless the
# pidfile's process is alive and has MARKER in its command line.
start_daemon() {
	local name=$1 pidfile=$2 marker=$3 logf=$4
	shift 4
	pid_is_ours "$pidfile" "$marker" && return 0
	log "starting $name (log $logf)"
	setsid "$@" </dev/null >>"$logf" 2>&1 7>&- 8>&- 9>&- &
	echo $! >"$pidfile"
}

# wait_for NAME SECONDS PIDFILE MARKER LOG CHECK...: polls CHECK until it succeeds; dies
# when the process exits or time runs out.
wait_for() {
	local name=$1 secs=$2 pidfile=$3 marker=$4 logf=$5
	shift 5
	for _ in $(seq 1 $((secs * 5))); do
		"$@" >/dev/null 2>&1 && return 0
		if ! pid_is_ours "$pidfile" "$marker"; then
			tail -n 15 "$logf" >&2 || true
			die "$name exited at start (last lines above)" "$logf" "read the log, then run cluster-down.sh and cluster-up.sh"
		fi
		sleep 0.2
	done
	tail -n 15 "$logf" >&2 || true
	die "$name was not ready within $secs s (last lines above)" "$logf" "read the log, then run cluster-down.sh and cluster-up.sh"
}

start_etcd() {
	mkdir -p "$C/etcd"
	start_daemon etcd "$C/etcd.pid" "$C/etcd/data" "$C/etcd.log" \
		"$BIN/etcd" --name harness --data-dir "$C/etcd/data" \
		--listen-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
		--listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
		--initial-cluster "harness=http://127.0.0.1:$ETCD_PEER_PORT" --unsafe-no-fsync --log-level warn
	wait_for etcd 60 "$C/etcd.pid" "$C/etcd/data" "$C/etcd.log" curl -fsS --max-time 2 "http://127.0.0.1:$ETCD_CLIENT_PORT/health"
}

start_control_plane() {
	local p=$C/pki
	start_daemon kube-apiserver "$C/apiserver.pid" "$p/apiserver.crt" "$C/apiserver.log" \
		"$BIN/kube-apiserver" --advertise-address "$BRIDGE_IP" --bind-address "$BRIDGE_IP" --secure-port "$API_PORT" \
		--etcd-servers "http://127.0.0.1:$ETCD_CLIENT_PORT" --service-cluster-ip-range "$SERVICE_CIDR" \
		--client-ca-file "$p/ca.crt" --tls-cert-file "$p/apiserver.crt" --tls-private-key-file "$p/apiserver.key" \
		--kubelet-client-certificate "$p/apiserver-kubelet-client.crt" --kubelet-client-key "$p/apiserver-kubelet-client.key" \
		--kubelet-certificate-authority "$p/ca.crt" --kubelet-preferred-address-types InternalIP,Hostname \
		--service-account-key-file "$p/sa.pub" --service-account-signing-key-file "$p/sa.key" \
		--service-account-issuer https://kubernetes.default.svc.cluster.local \
		--requestheader-client-ca-file "$p/ca.crt" --requestheader-allowed-names front-proxy-client \
		--requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
		--requestheader-extra-headers-prefix X-Remote-Extra- \
		--authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction,PodSecurity \
		--allow-privileged=true --profiling=false --v=1
	wait_for kube-apiserver 120 "$C/apiserver.pid" "$p/apiserver.crt" "$C/apiserver.log" kc get --raw /readyz
	start_daemon kube-controller-manager "$C/controller-manager.pid" "$C/kubeconfig/controller-manager.kubeconfig" "$C/controller-manager.log" \
		"$BIN/kube-controller-manager" --kubeconfig "$C/kubeconfig/controller-manager.kubeconfig" \
		--authentication-kubeconfig "$C/kubeconfig/controller-manager.kubeconfig" \
		--authorization-kubeconfig "$C/kubeconfig/controller-manager.kubeconfig" \
		--bind-address "$BRIDGE_IP" --leader-elect=false \
		--service-account-private-key-file "$p/sa.key" --root-ca-file "$p/ca.crt" --use-service-account-credentials \
		--cluster-signing-cert-file "$p/ca.crt" --cluster-signing-key-file "$p/ca.key" \
		--allocate-node-cidrs --cluster-cidr "$CLUSTER_CIDR" --node-cidr-mask-size 24 \
		--service-cluster-ip-range "$SERVICE_CIDR" --configure-cloud-routes=false --profiling=false --v=1
	start_daemon kube-scheduler "$C/scheduler.pid" "$C/kubeconfig/scheduler.kubeconfig" "$C/scheduler.log" \
		"$BIN/kube-scheduler" --kubeconfig "$C/kubeconfig/scheduler.kubeconfig" \
		--authentication-kubeconfig "$C/kubeconfig/scheduler.kubeconfig" \
		--authorization-kubeconfig "$C/kubeconfig/scheduler.kubeconfig" \
		--bind-address "$BRIDGE_IP" --leader-elect=false --profiling=false --v=1
}

# ---------------------------------------------------------------- registry forwarders
FWD_MARKER=classcache-cluster-fwd
start_forwarders() {
	local port=${REGISTRY#*:} node
	# argv[0] names the forwarder (socat has no place for a marker of ours).
	fwd() { # PIDFILE TAG CMD-PREFIX... -- LISTEN CONNECT
		local pidfile=$1 tag=$2
		shift 2
		if pid_is_ours "$pidfile" "$FWD_MARKER:$C:" && ! pid_is_ours "$pidfile" "$tag"; then
			stop_pidfile "$pidfile" "$FWD_MARKER:$C:" 5 # the registry port changed
		fi
		start_daemon "registry forwarder $tag" "$pidfile" "$tag" "$C/forwarder.log" "$@"
	}
	fwd "$C/forwarder.pid" "$FWD_MARKER:$C:host:$port" \
		bash -c 'exec -a "$0" socat "$@"' "$FWD_MARKER:$C:host:$port" \
		"TCP-LISTEN:$port,bind=$BRIDGE_IP,fork,reuseaddr" "TCP:127.0.0.1:$port"
	for node in "${NODES[@]}"; do
		fwd "$C/$node/forwarder.pid" "$FWD_MARKER:$C:$node:$port" \
			nsenter --net="/run/netns/$(netns_of "$node")" -- bash -c 'exec -a "$0" socat "$@"' "$FWD_MARKER:$C:$node:$port" \
			"TCP-LISTEN:$port,bind=127.0.0.1,fork,reuseaddr" "TCP:$BRIDGE_IP:$port"
	done
	for node in "${NODES[@]}"; do
		wait_for "registry forwarder of $node" 20 "$C/$node/forwarder.pid" "$FWD_MARKER:$C:$node:$port" "$C/forwarder.log" \
			ip netns exec "$(netns_of "$node")" curl -fsS --max-time 2 "http://127.0.0.1:$port/v2/"
	done
}

# ---------------------------------------------------------------- nodes
PAUSE_IMAGE=classcache.test/harness/pause:1

# An OCI image layout tarball with the static pause binary, for `ctr images import`.
build_pause_image() {
	local out=$C/images/pause.tar work
	[ -s "$out" ] && [ "$(cat "$C/images/pause.bin" 2>/dev/null)" = "$BIN" ] && return 0
	mkdir -p "$C/images"
	work=$(mktemp -d "$C/images/pause.XXXXXX")
	mkdir -p "$work/rootfs" "$work/oci/blobs/sha256"
	cp "$BIN/pause" "$work/rootfs/pause"
	tar -C "$work/rootfs" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf "$work/layer.tar" pause
	local layer layer_size config config_size manifest manifest_size
	layer=$(sha256sum "$work/layer.tar" | cut -c1-64)
	layer_size=$(stat -c %s "$work/layer.tar")
	mv "$work/layer.tar" "$work/oci/blobs/sha256/$layer"
	printf '{"architecture":"amd64","os":"linux","config":{"Entrypoint":["/pause"],"User":"65535:65535"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
		"$layer" >"$work/config.json"
	config=$(sha256sum "$work/config.json" | cut -c1-64)
	config_size=$(stat -c %s "$work/config.json")
	mv "$work/config.json" "$work/oci/blobs/sha256/$config"
	printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' \
		"$config" "$config_size" "$layer" "$layer_size" >"$work/manifest.json"
	manifest=$(sha256sum "$work/manifest.json" | cut -c1-64)
	manifest_size=$(stat -c %s "$work/manifest.json")
	mv "$work/manifest.json" "$work/oci/blobs/sha256/$manifest"
	printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"amd64","os":"linux"},"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"1"}}]}' \
		"$manifest" "$manifest_size" "$PAUSE_IMAGE" >"$work/oci/index.json"
	echo '{"imageLayoutVersion":"1.0.0"}' >"$work/oci/oci-layout"
	tar -C "$work/oci" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf "$out.tmp" oci-layout index.json blobs
	mv "$out.tmp" "$out"
	echo "sha256:$manifest" >"$C/images/pause.digest"
	echo "$BIN" >"$C/images/pause.bin"
	rm -rf "$work"
}

# overlayfs if it mounts on the filesystem holding $C, else native (copies).
pick_snapshotter() {
	[ -n "${SNAPSHOTTER:-}" ] && return 0
	local t
	t=$(mktemp -d "$C/.overlay-check.XXXXXX")
	mkdir -p "$t/l" "$t/u" "$t/w" "$t/m"
	if mount -t overlay overlay -o "lowerdir=$t/l,upperdir=$t/u,workdir=$t/w" "$t/m" 2>/dev/null; then
		umount "$t/m"
		SNAPSHOTTER=overlayfs
	else
		SNAPSHOTTER=native
	fi
	rm -rf "$t"
}

write_containerd_config() {
	local node=$1 d=$C/$1/containerd run port=${REGISTRY#*:}
	run=$(node_run_dir "$node")
	mkdir -p "$d/root" "$d/certs.d/$REGISTRY" "$run" "$C/$node/cni/net.d" "$C/$node/cni/ipam"
	cat >"$d/certs.d/$REGISTRY/hosts.toml" <<EOF
# The harness registry, reached through the node's forwarder: plain HTTP.
server = "http://$REGISTRY"

[host."http://$REGISTRY"]
  capabilities = ["pull", "resolve"]
EOF
	cat >"$d/config.toml.new" <<EOF
# Written by tests/harness/cluster-up.sh for $node.
version = 3
root = "$d/root"
state = "$run/state"
disabled_plugins = ["io.containerd.nri.v1.nri"]

[grpc]
  address = "$run/containerd.sock"

[debug]
  level = "warn"

[plugins."io.containerd.internal.v1.opt"]
  path = "$d/opt"

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "$SNAPSHOTTER"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "$PAUSE_IMAGE"
  [plugins."io.containerd.cri.v1.images".registry]
    config_path = "$d/certs.d"

[plugins."io.containerd.cri.v1.runtime"]
  netns_mounts_under_state_dir = true
  # No CAP_SYS_RESOURCE here: a negative oom_score_adj (the sandbox's -998, Guaranteed
  # pods' -997) fails in runc ("can't get final child's PID from pipe: EOF").
  restrict_oom_score_adj = true
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["$BIN"]
    conf_dir = "$C/$node/cni/net.d"
    max_conf_num = 1
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = "$(command -v runc)"
        Root = "$run/runc"
        SystemdCgroup = false

[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
EOF
}

start_containerd() {
	local node=$1
	write_containerd_config "$node"
	if config_changed "$C/$node/containerd/config.toml"; then
		stop_pidfile "$C/$node/containerd.pid" "$C/$node/containerd/config.toml" 10
	fi
	# PATH: the shim and the CNI plugins come from $BIN, runc from Debian.
	start_daemon "containerd of $node" "$C/$node/containerd.pid" "$C/$node/containerd/config.toml" "$C/$node/containerd.log" \
		env PATH="$BIN:$PATH" nsenter --mount="$(mntns_of "$node")" --net="/run/netns/$(netns_of "$node")" -- \
		"$BIN/containerd" --config "$C/$node/containerd/config.toml"
}

wait_containerd() {
	local node=$1
	wait_for "containerd of $node" 60 "$C/$node/containerd.pid" "$C/$node/containerd/config.toml" "$C/$node/containerd.log" \
		"$BIN/ctr" --address "$(containerd_sock "$node")" version
	local want
	want=$(cat "$C/images/pause.digest")
	if [ "$("$BIN/ctr" --address "$(containerd_sock "$node")" -n k8s.io images ls "name==$PAUSE_IMAGE" -q 2>/dev/null)" != "$PAUSE_IMAGE" ] ||
		! "$BIN/ctr" --address "$(containerd_sock "$node")" -n k8s.io images ls "name==$PAUSE_IMAGE" | grep -qF "$want"; then
		"$BIN/ctr" --address "$(containerd_sock "$node")" -n k8s.io images import --snapshotter "$SNAPSHOTTER" "$C/images/pause.tar" \
			>>"$C/$node/containerd.log" 2>&1 ||
			die "importing the pause image into containerd of $node failed" "$C/$node/containerd.log" "run cluster-down.sh and retry"
	fi
}

start_kubelet() {
	local node=$1 d=$C/$1
	mkdir -p "$d/kubelet" "$d/pod-logs"
	cat >"$d/kubelet.yaml.new" <<EOF
# Written by tests/harness/cluster-up.sh for $node.
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
failSwapOn: false
cgroupDriver: cgroupfs
cgroupRoot: /$CGROUP_PARENT/$node
cgroupsPerQOS: true
containerRuntimeEndpoint: unix://$(containerd_sock "$node")
address: ${NODE_IP[$node]}
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: $C/pki/$node.crt
tlsPrivateKeyFile: $C/pki/$node.key
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: $C/pki/ca.crt
authorization:
  mode: Webhook
resolvConf: $C/resolv.conf
clusterDomain: cluster.local
podLogsDir: $d/pod-logs
serializeImagePulls: false
protectKernelDefaults: true
rotateCertificates: false
evictionHard:
  memory.available: 50Mi
  nodefs.available: 1%
  imagefs.available: 1%
  nodefs.inodesFree: 1%
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
EOF
	config_changed "$d/kubelet.yaml" && stop_pidfile "$d/kubelet.pid" "$d/kubelet.yaml" 10
	start_daemon "kubelet of $node" "$d/kubelet.pid" "$d/kubelet.yaml" "$d/kubelet.log" \
		nsenter --mount="$(mntns_of "$node")" --net="/run/netns/$(netns_of "$node")" -- \
		"$BIN/kubelet" --config "$d/kubelet.yaml" --kubeconfig "$C/kubeconfig/$node.kubeconfig" \
		--root-dir "$d/kubelet" --hostname-override "$node" --node-ip "${NODE_IP[$node]}" --v=1
}

pod_cidr_of() { kc get node "$1" -o 'jsonpath={.spec.podCIDR}' 2>/dev/null; }
has_pod_cidr() { [ -n "$(pod_cidr_of "$1")" ]; }

configure_pod_network() {
	local node=$1 cidr=$2 other ocidr
	cat >"$C/$node/cni/net.d/10-classcache.conflist.tmp" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "classcache-harness",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$C/$node/cni/ipam",
        "ranges": [[{ "subnet": "$cidr" }]],
        "routes": [{ "dst": "0.0.0.0/0" }]
      }
    },
    { "type": "portmap", "capabilities": { "portMappings": true }, "snat": true }
  ]
}
EOF
	mv "$C/$node/cni/net.d/10-classcache.conflist.tmp" "$C/$node/cni/net.d/10-classcache.conflist"
	ip route replace "$cidr" via "${NODE_IP[$node]}" dev "$BRIDGE"
	for other in "${NODES[@]}"; do
		[ "$other" = "$node" ] && continue
		ocidr=$(pod_cidr_of "$other")
		[ -n "$ocidr" ] && ip netns exec "$(netns_of "$node")" ip route replace "$ocidr" via "${NODE_IP[$other]}"
	done
	return 0
}

start_kube_proxy() {
	local node=$1 d=$C/$1
	cat >"$d/kube-proxy.yaml.new" <<EOF
# Written by tests/harness/cluster-up.sh for $node. Runs in the node's network namespace;
# conntrack and localhost node ports are off so it writes no host-wide sysctl.
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: $C/kubeconfig/kube-proxy.kubeconfig
hostnameOverride: $node
mode: iptables
clusterCIDR: $CLUSTER_CIDR
detectLocalMode: ClusterCIDR
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: ["${NODE_IP[$node]}/32"]
iptables:
  masqueradeAll: false
  localhostNodePorts: false
  syncPeriod: 30s
  minSyncPeriod: 0s
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
  udpTimeout: 0s
  udpStreamTimeout: 0s
EOF
	config_changed "$d/kube-proxy.yaml" && stop_pidfile "$d/kube-proxy.pid" "$d/kube-proxy.yaml" 10
	start_daemon "kube-proxy of $node" "$d/kube-proxy.pid" "$d/kube-proxy.yaml" "$d/kube-proxy.log" \
		nsenter --mount="$(mntns_of "$node")" --net="/run/netns/$(netns_of "$node")" -- \
		"$BIN/kube-proxy" --config "$d/kube-proxy.yaml" --v=1
}

node_ready() { [ "$(kc get node "$1" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]; }

# ---------------------------------------------------------------- warm check
all_running() {
	pid_is_ours "$C/etcd.pid" "$C/etcd/data" &&
		pid_is_ours "$C/apiserver.pid" "$C/pki/apiserver.crt" &&
		pid_is_ours "$C/controller-manager.pid" "$C/kubeconfig/controller-manager.kubeconfig" &&
		pid_is_ours "$C/scheduler.pid" "$C/kubeconfig/scheduler.kubeconfig" &&
		pid_is_ours "$C/forwarder.pid" "$FWD_MARKER:$C:host:${REGISTRY#*:}" || return 1
	local node
	for node in "${NODES[@]}"; do
		pid_is_ours "$C/$node/containerd.pid" "$C/$node/containerd/config.toml" &&
			pid_is_ours "$C/$node/kubelet.pid" "$C/$node/kubelet.yaml" &&
			pid_is_ours "$C/$node/kube-proxy.pid" "$C/$node/kube-proxy.yaml" &&
			pid_is_ours "$C/$node/forwarder.pid" "$FWD_MARKER:$C:$node:${REGISTRY#*:}" || return 1
	done
	kc get --raw /readyz >/dev/null 2>&1 || return 1
	for node in "${NODES[@]}"; do node_ready "$node" || return 1; done
}

write_env() {
	local envf=$H/env node var socks="" ips="" nss=""
	for node in "${NODES[@]}"; do
		socks+="${socks:+ }$(containerd_sock "$node")"
		ips+="${ips:+ }${NODE_IP[$node]}"
		nss+="${nss:+ }$(netns_of "$node")"
	done
	cat >"$C/ctr" <<EOF
#!/bin/sh
# ctr on one node's containerd, namespace k8s.io: ctr NODE ARGS... (cluster-up.sh writes it)
case \$1 in
$(for node in "${NODES[@]}"; do printf '%s) sock=%s ;;\n' "$node" "$(containerd_sock "$node")"; done)
*) echo "usage: \$0 {${NODES[*]// /|}} ctr-args..." >&2; exit 2 ;;
esac
shift
exec "$BIN/ctr" --address "\$sock" --namespace k8s.io "\$@"
EOF
	chmod +x "$C/ctr"
	{
		echo "# Written by tests/harness/cluster-up.sh: the harness Kubernetes cluster."
		printf "export CLASSCACHE_KUBECONFIG='%s'\n" "$C/kubeconfig/admin.kubeconfig"
		printf "export CLASSCACHE_KUBECTL='%s'\n" "$BIN/kubectl"
		printf "export CLASSCACHE_CLUSTER_VERSION='%s'\n" "$K8S_VERSION"
		printf "export CLASSCACHE_CLUSTER_API_SERVER='%s'\n" "$API_SERVER"
		printf "export CLASSCACHE_CLUSTER_NODES='%s'\n" "${NODES[*]}"
		printf "export CLASSCACHE_CLUSTER_NODE_IPS='%s'\n" "$ips"
		printf "export CLASSCACHE_CLUSTER_NETNS='%s'\n" "$nss"
		printf "export CLASSCACHE_CLUSTER_CONTAINERD_SOCKETS='%s'\n" "$socks"
		for node in "${NODES[@]}"; do
			var=CLASSCACHE_CLUSTER_$(echo "$node" | tr 'a-z-' 'A-Z_')
			printf "export %s_IP='%s'\n" "$var" "${NODE_IP[$node]}"
			printf "export %s_NETNS='%s'\n" "$var" "$(netns_of "$node")"
			printf "export %s_CONTAINERD_SOCK='%s'\n" "$var" "$(containerd_sock "$node")"
		done
		printf "export CLASSCACHE_CLUSTER_CTR='%s'\n" "$C/ctr"
		printf "export CLASSCACHE_CLUSTER_REGISTRY='%s'\n" "$REGISTRY"
		printf "export CLASSCACHE_CLUSTER_BIN='%s'\n" "$BIN"
	} >"$C/env"
	# $C/env is the cluster's part; up.sh keeps it in $H/env while the cluster runs, even
	# when CLASSCACHE_HARNESS_CLUSTER=0 skips this script; cluster-down.sh deletes it.
	{
		[ -f "$envf" ] && grep -v -e '^export CLASSCACHE_CLUSTER_' -e '^export CLASSCACHE_KUBECONFIG=' -e '^export CLASSCACHE_KUBECTL=' \
			-e '^# Written by tests/harness/cluster-up.sh' "$envf"
		cat "$C/env"
	} >"$envf.cluster.tmp"
	mv "$envf.cluster.tmp" "$envf"
}

# ---------------------------------------------------------------- main
REGISTRY=$(sed -n "s/^export CLASSCACHE_TEST_REGISTRY='\(.*\)'$/\1/p" "$H/env" 2>/dev/null || true)
[ -n "$REGISTRY" ] || die "no CLASSCACHE_TEST_REGISTRY in $H/env" "$H/env" "run tests/harness/up.sh first (it starts the registry)"

phase "binaries"
install_packages
ensure_binaries
if [ "$(cat "$C/bin.path" 2>/dev/null)" != "$BIN" ] && pid_is_ours "$C/apiserver.pid" "$C/pki/apiserver.crt"; then
	log "the binaries changed ($BIN); restarting the cluster"
	flock -u 8
	"$REPO_ROOT/tests/harness/cluster-down.sh" || die "cluster-down.sh failed" "none" "run it by hand"
	flock -w 600 8 || die "cannot take $H/cluster.lock again" "$H/cluster.lock" "retry"
fi
echo "$BIN" >"$C/bin.path"

# The scripts' own hash: after an edit the full path runs (and restarts what changed).
script_hash=$(cat "$REPO_ROOT/tests/harness/cluster-up.sh" "$REPO_ROOT/tests/harness/cluster-common.sh" | sha256sum | cut -c1-16)
if [ "$(cat "$C/script.hash" 2>/dev/null)" = "$script_hash" ] && all_running; then
	write_env
	phase ""
	log "ready (already running); source $H/env"
	exit 0
fi

phase "certificates and kubeconfigs"
claim_names
make_pki
make_kubeconfigs
printf 'nameserver 127.0.0.1\noptions ndots:1 timeout:1 attempts:1\n' >"$C/resolv.conf"
build_pause_image
pick_snapshotter

phase "network, mount namespaces and cgroups"
setup_network
setup_mount_namespaces
setup_cgroups
start_forwarders

phase "etcd and control plane"
start_etcd
start_control_plane

phase "containerd ($SNAPSHOTTER snapshotter) on ${NODES[*]}"
for node in "${NODES[@]}"; do start_containerd "$node"; done
for node in "${NODES[@]}"; do wait_containerd "$node"; done

phase "kubelets"
for node in "${NODES[@]}"; do start_kubelet "$node"; done
for node in "${NODES[@]}"; do
	wait_for "kubelet of $node (registration and podCIDR)" 120 "$C/$node/kubelet.pid" "$C/$node/kubelet.yaml" "$C/$node/kubelet.log" \
		has_pod_cidr "$node"
done
for node in "${NODES[@]}"; do configure_pod_network "$node" "$(pod_cidr_of "$node")"; done

phase "kube-proxy"
for node in "${NODES[@]}"; do start_kube_proxy "$node"; done

phase "nodes Ready"
for node in "${NODES[@]}"; do
	wait_for "node $node Ready" 180 "$C/$node/kubelet.pid" "$C/$node/kubelet.yaml" "$C/$node/kubelet.log" node_ready "$node"
done
for node in "${NODES[@]}"; do
	wait_for "kube-proxy of $node" 60 "$C/$node/kube-proxy.pid" "$C/$node/kube-proxy.yaml" "$C/$node/kube-proxy.log" \
		ip netns exec "$(netns_of "$node")" curl -fsS --max-time 2 http://127.0.0.1:10256/healthz
done
write_env
echo "$script_hash" >"$C/script.hash"
phase ""
log "ready: nodes ${NODES[*]} on $API_SERVER; source $H/env"
