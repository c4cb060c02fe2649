#!/usr/bin/env bash
# scripts/fetcher-image.sh - build the classcache-fetcher container image from this checkout.
#
# The image holds one static musl binary (no shared library, no shell), /etc/passwd and
# /etc/group with the non-root user 65532 (`nonroot`), the CA bundle for HTTPS registries and
# an empty /tmp; classcache-release (release/src/image.rs) defines those files and the config.
# Its user is 65532, so the init container runs as non-root under the restricted Pod Security
# profile; the DaemonSet says in its own securityContext which user the node store needs. PATH
# holds the binary, so `command: ["classcache-fetcher"]` (templates/daemonset.yaml and the init
# container) finds it. This builds the image of this machine's platform only and loads it into
# Docker; scripts/release.sh builds the linux/amd64 + linux/arm64 index.
#
# Usage: scripts/fetcher-image.sh [--tag REF]... [--push REF]... [--save FILE]
#   --tag REF          also tag the image REF in the Docker engine (default tag: the name
#                      `kubectl classcache install` uses by default, with the workspace version)
#   --push REF         tag and push REF (a registry reachable from the Docker engine)
#   --save FILE        write the image as a docker-archive tar (for `ctr images import`)
# Prints the default reference on stdout. Uses $DOCKER_HOST (the harness's engine when
# `.harness/env` is sourced) and the docker CLI on PATH (or $CLASSCACHE_DOCKER_CLI).
# Builds with scripts/static-binaries.sh (the `image` profile, target/image: the test build's
# artifacts are not invalidated). Rebuilds only what changed.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
die() { printf 'fetcher-image: ERROR: %s\n' "$*" >&2; exit 1; }
log() { printf 'fetcher-image: %s\n' "$*" >&2; }

tags=()
pushes=()
archive=""
while [ $# -gt 0 ]; do
	case "$1" in
	--tag) [ $# -ge 2 ] || die "--tag needs a reference"; tags+=("$2"); shift 2 ;;
	--push) [ $# -ge 2 ] || die "--push needs a reference"; pushes+=("$2"); shift 2 ;;
	--save) [ $# -ge 2 ] || die "--save needs a file name"; archive=$2; shift 2 ;;
	-h | --help) sed -n '2,/^set -e/{/^#/p}' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown argument $1; see $0 --help" ;;
	esac
done

docker_cli=${CLASSCACHE_DOCKER_CLI:-$(command -v docker || true)}
[ -n "$docker_cli" ] || die "no docker CLI; install docker.io, or source .harness/env after tests/harness/up.sh"

# The binaries and the image tool, built for this machine's architecture (static, musl).
case "$(uname -m)" in
x86_64) target=x86_64-unknown-linux-musl platform=linux/amd64 ;;
aarch64 | arm64) target=aarch64-unknown-linux-musl platform=linux/arm64 ;;
*) die "no release target for $(uname -m); build on x86_64 or aarch64" ;;
esac
dir=$(bash "$root/scripts/static-binaries.sh" "$target") || die "building the static binaries failed (output above)"
binary=$dir/classcache-fetcher
tool=$dir/classcache-release
if ldd "$binary" 2>&1 | grep -q '=>'; then
	die "$binary is dynamically linked; the image has no shared libraries"
fi

# The default image name comes from the code (core's DEFAULT_FETCHER_IMAGE), so `install` names
# what this builds; its tag is the one version (scripts/version.sh).
version=$(bash "$root/scripts/version.sh")
default_ref=$("$tool" default-image) || die "$tool default-image failed"
[ "${default_ref##*:}" = "$version" ] ||
	die "$tool names $default_ref, not version $version of Cargo.toml; rerun (a stale build?)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$tool" image --binary "$platform=$binary" --docker-archive "$work/image.tar" \
	--archive-platform "$platform" --repo-tag "$default_ref" ||
	die "classcache-release image failed (output above)"
"$docker_cli" load -q -i "$work/image.tar" >&2 ||
	die "docker load failed; is the engine up? (DOCKER_HOST=${DOCKER_HOST:-unset})"
log "built $default_ref ($platform)"

for ref in "${tags[@]}" "${pushes[@]}"; do
	"$docker_cli" tag "$default_ref" "$ref" || die "docker tag $default_ref $ref failed"
done
for ref in "${pushes[@]}"; do
	"$docker_cli" push -q "$ref" >&2 || die "docker push $ref failed; is the registry up and reachable from the engine?"
	log "pushed $ref"
done
if [ -n "$archive" ]; then
	"$docker_cli" save -o "$archive" "$default_ref" "${tags[@]}" || die "docker save to $archive failed"
	log "wrote $archive"
fi
echo "$default_ref"
