# shellcheck shell=bash disable=SC2034
# tests/harness/common.sh - paths and process checks shared by up.sh and down.sh.
# Sourced, never run; it must not start or stop anything. (SC2034: its variables are
# used by the scripts that source it.)

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
H=${CLASSCACHE_HARNESS_DIR:-$REPO_ROOT/.harness}
mkdir -p "$H" || die "cannot create the harness dir $H; set CLASSCACHE_HARNESS_DIR to a writable dir"
H=$(cd "$H" && pwd -P)
case ${CLASSCACHE_REGISTRY_PORT:-5055} in *[!0-9]*) die "CLASSCACHE_REGISTRY_PORT='$CLASSCACHE_REGISTRY_PORT' is not a port number" ;; esac

# Unix socket paths are limited to 108 bytes, and containerd puts its socket two levels
# under the exec root: a deep $H gets a short runtime dir under /tmp, keyed by $H.
if [ ${#H} -le 60 ]; then
	DOCKER_SOCK="$H/docker.sock"
	DOCKER_EXEC_ROOT="$H/docker-exec"
else
	short="/tmp/classcache-harness-$(printf '%s' "$H" | sha256sum | cut -c1-12)"
	mkdir -p "$short"
	DOCKER_SOCK="$short/docker.sock"
	DOCKER_EXEC_ROOT="$short/exec"
fi

# Every docker CLI call of the scripts goes to the harness engine, never to another one.
export DOCKER_HOST="unix://$DOCKER_SOCK"
unset DOCKER_CONTEXT DOCKER_TLS_VERIFY DOCKER_CERT_PATH

# The Debian CLI matches the Debian engine's API; any other docker CLI works too.
if [ -n "${CLASSCACHE_DOCKER_CLI:-}" ]; then
	DOCKER_CLI=$CLASSCACHE_DOCKER_CLI
elif [ -x /usr/bin/docker ]; then
	DOCKER_CLI=/usr/bin/docker
else
	DOCKER_CLI=$(command -v docker || echo docker)
fi

# pid_is_ours PIDFILE MARKER: the pid in PIDFILE is alive and its command line contains
# MARKER (a path only this harness uses), so a recycled pid is never taken for ours.
pid_is_ours() {
	local pid
	pid=$(cat "$1" 2>/dev/null) || return 1
	case $pid in '' | *[!0-9]*) return 1 ;; esac
	[ -r "/proc/$pid/cmdline" ] || return 1
	grep -qF -- "$2" < <(tr '\0' ' ' <"/proc/$pid/cmdline")
}

# stop_pidfile PIDFILE MARKER TIMEOUT_S: SIGTERM the process if it is ours, wait, then SIGKILL.
stop_pidfile() {
	local pid
	if pid_is_ours "$1" "$2"; then
		pid=$(cat "$1")
		kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 1 $(($3 * 10))); do
			[ -d "/proc/$pid" ] || break
			sleep 0.1
		done
		if [ -d "/proc/$pid" ]; then
			printf 'harness: pid %s did not stop in %s s; killing it\n' "$pid" "$3" >&2
			kill -KILL "$pid" 2>/dev/null || true
		fi
	fi
	rm -f "$1"
}
