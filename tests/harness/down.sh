#!/usr/bin/env bash
# tests/harness/down.sh - stop what tests/harness/up.sh started, and nothing else.
#
#   down.sh           stop the registry and the harness dockerd (its containers and its
#                     managed containerd with it), unmount what they left under the state dir;
#                     keep images, registry data and the host JDK 25 for a fast next up.sh.
#   down.sh --purge   the same, then delete the state dir ($CLASSCACHE_HARNESS_DIR, default
#                     <repo root>/.harness) and its short socket dir under /tmp, if any.
#
# Processes are found through the pidfiles up.sh keeps and checked against their command
# line, so a dockerd or registry that up.sh did not start is never touched. Idempotent.
set -euo pipefail

log() { printf 'harness: %s\n' "$*" >&2; }
die() {
	printf 'harness: ERROR: %s\n' "$*" >&2
	exit 1
}

purge=false
case ${1:-} in
--purge) purge=true ;;
'') ;;
*) die "unknown argument '$1'; usage: down.sh [--purge]" ;;
esac

# shellcheck source=tests/harness/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

exec 9>"$H/up.lock"
flock -w 600 9 || die "up.sh has held $H/up.lock for 10 minutes; wait for it or stop it first"

# The Kubernetes cluster first: its nodes pull from the registry stopped below.
cluster_args=()
$purge && cluster_args=(--purge)
"$(dirname "${BASH_SOURCE[0]}")/cluster-down.sh" "${cluster_args[@]}" 9>&- || die "cluster-down.sh failed (its message above)"

if pid_is_ours "$H/registry.pid" "$H/registry/config.yml"; then
	log "stopping registry (pid $(cat "$H/registry.pid"))"
fi
stop_pidfile "$H/registry.pid" "$H/registry/config.yml" 10

# dockerd stops its containers (SIGTERM, then SIGKILL after their stop timeout) and its
# managed containerd on SIGTERM; 45 s covers the default 15 s shutdown timeout.
containerd_pid=$(cat "$DOCKER_EXEC_ROOT/containerd/containerd.pid" 2>/dev/null || true)
if pid_is_ours "$H/dockerd.pid" "unix://$DOCKER_SOCK"; then
	log "stopping dockerd (pid $(cat "$H/dockerd.pid")) and its containers"
fi
stop_pidfile "$H/dockerd.pid" "unix://$DOCKER_SOCK" 45
# A dockerd killed earlier can leave its containerd running; it is ours only if its
# config lives under our exec root.
if [ -n "$containerd_pid" ]; then
	printf '%s\n' "$containerd_pid" >"$H/containerd.pid.tmp"
	stop_pidfile "$H/containerd.pid.tmp" "$DOCKER_EXEC_ROOT/containerd/" 15
fi
# Container shims (containerd-shim-runc-v2) of killed daemons: ours name our exec root.
for pid in $(pgrep -f -- "containerd-shim.*$DOCKER_EXEC_ROOT/" 2>/dev/null || true); do
	printf '%s\n' "$pid" >"$H/shim.pid.tmp"
	stop_pidfile "$H/shim.pid.tmp" "$DOCKER_EXEC_ROOT/" 5
done
rm -f "$DOCKER_SOCK" "$H/containerd.pid.tmp" "$H/shim.pid.tmp"

# Mounts the engine left (container shm, network namespaces, overlay of a crashed run),
# deepest first, only those under our own dirs.
unmount_under() {
	local dir=$1 mountpoint
	awk -v d="$dir/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
		while IFS= read -r mountpoint; do
			umount "$mountpoint" 2>/dev/null || umount -l "$mountpoint" 2>/dev/null ||
				log "could not unmount $mountpoint"
		done
}
unmount_under "$H"
[ "$DOCKER_EXEC_ROOT" = "$H/docker-exec" ] || unmount_under "$(dirname "$DOCKER_EXEC_ROOT")"

if $purge; then
	log "deleting $H"
	[ "$DOCKER_EXEC_ROOT" = "$H/docker-exec" ] || rm -rf "$(dirname "$DOCKER_EXEC_ROOT")"
	# vfs layers can hold read-only dirs; make them writable so rm succeeds.
	chmod -R u+w "$H" 2>/dev/null || true
	find "$H" -mindepth 1 -maxdepth 1 ! -name up.lock -exec rm -rf {} +
	rm -f "$H/up.lock"
	rmdir "$H" 2>/dev/null || true
fi
log "stopped"
