#!/usr/bin/env bash
# scripts/fetcher-image.sh - build the classcache-fetcher container image from this checkout.
#
# The image holds one statically linked binary (glibc, `-C target-feature=+crt-static`: no
# shared library, no shell), /etc/passwd and /etc/group with the non-root user 65532
# (`nonroot`), the CA bundle for HTTPS registries and an empty /tmp. Its user is 65532, so the
# init container runs as non-root under the restricted Pod Security profile; the DaemonSet says
# in its own securityContext which user the node store needs. PATH holds the binary, so
# `command: ["classcache-fetcher"]` (templates/daemonset.yaml and the init container) finds it.
#
# Usage: scripts/fetcher-image.sh [--tag REF]... [--push REF]... [--save FILE]
#   --tag REF          also tag the image REF in the Docker engine (default tag: the name
#                      `kubectl classcache install` uses by default, with the workspace version)
#   --push REF         tag and push REF (a registry reachable from the Docker engine)
#   --save FILE        write the image as a docker-archive tar (for `ctr images import`)
# Prints the default reference on stdout. Uses $DOCKER_HOST (the harness's engine when
# `.harness/env` is sourced) and the docker CLI on PATH (or $CLASSCACHE_DOCKER_CLI).
# Builds with the `image` profile into target/image (its own directory, so the test build's
# artifacts are not invalidated by the static-linking flag). Rebuilds only what changed.
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
	-h | --help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown argument $1; see $0 --help" ;;
	esac
done

docker_cli=${CLASSCACHE_DOCKER_CLI:-$(command -v docker || true)}
[ -n "$docker_cli" ] || die "no docker CLI; install docker.io, or source .harness/env after tests/harness/up.sh"

# The default image name and the version come from the code, so `install` names what this builds.
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/Cargo.toml" | head -n 1)
[ -n "$version" ] || die "no version in $root/Cargo.toml [workspace.package]"
repository=$(grep -A2 '^macro_rules! fetcher_image_repository' "$root/core/src/podtemplate/cluster.rs" |
	sed -n 's/^ *"\(.*\)"$/\1/p')
default_ref=$repository:$version
case "$default_ref" in :*) die "macro fetcher_image_repository not found in core/src/podtemplate/cluster.rs" ;; esac

target=x86_64-unknown-linux-gnu
log "building a static classcache-fetcher (cargo --profile image, target/image)"
(
	cd "$root"
	RUSTFLAGS="-C target-feature=+crt-static" cargo build --locked --quiet -p classcache-fetcher \
		--profile image --target "$target" --target-dir target/image
) || die "cargo build of the static fetcher failed (output above)"
binary=$root/target/image/$target/image/classcache-fetcher
[ -x "$binary" ] || die "cargo built no $binary"
if ldd "$binary" 2>&1 | grep -q '=>'; then
	die "$binary is dynamically linked; the image has no shared libraries"
fi

rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
mkdir -p "$rootfs/usr/local/bin" "$rootfs/etc/ssl/certs" "$rootfs/tmp"
install -m 0755 "$binary" "$rootfs/usr/local/bin/classcache-fetcher"
chmod 1777 "$rootfs/tmp"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$rootfs/etc/group"
printf 'hosts: files dns\n' >"$rootfs/etc/nsswitch.conf"
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
	cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
else
	log "warning: no /etc/ssl/certs/ca-certificates.crt here (apt-get install ca-certificates); the image trusts no HTTPS registry"
fi
# Same binary, same layer: fixed mtimes and a sorted tar.
find "$rootfs" -exec touch -h -d @0 {} +

image_id=$(tar -C "$rootfs" --sort=name --numeric-owner --owner=0 --group=0 -cf - . |
	"$docker_cli" import \
		--change 'USER 65532:65532' \
		--change 'ENV PATH=/usr/local/bin' \
		--change 'ENTRYPOINT ["/usr/local/bin/classcache-fetcher"]' \
		--change "LABEL org.opencontainers.image.version=$version" \
		--change 'LABEL org.opencontainers.image.title=classcache-fetcher' \
		- "$default_ref") || die "docker import failed; is the engine up? (DOCKER_HOST=${DOCKER_HOST:-unset})"
log "built $default_ref ($image_id)"

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
