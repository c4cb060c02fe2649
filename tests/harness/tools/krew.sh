#!/usr/bin/env bash
# tests/harness/tools/krew.sh - build krew (the kubectl plugin manager) and its manifest validator
# validate-krew-manifest from the Go module sigs.k8s.io/krew, once per version, and print
# `export CLASSCACHE_KREW_VALIDATOR=...` and `export CLASSCACHE_KREW=...` for $H/env (for
# kubectl-classcache/tests/krew_manifest.rs). It never installs krew on the system PATH and
# never changes the checkout.
#
# Cache: ${CLASSCACHE_CACHE_DIR:-/var/cache/classcache}/krew-<version>/bin/{krew,validate-krew-manifest},
# with a `complete` marker written only after a successful build (tools/go-install.sh), so a fresh
# clone on this machine starts warm. Version: CLASSCACHE_KREW_VERSION, default v0.4.3 (the
# latest release; its validator is what krew-index runs on submitted manifests).
# Static (CGO_ENABLED=0), -trimpath; uses GOCACHE, GOMODCACHE and GOPROXY as configured.
# A cold build (empty GOCACHE and GOMODCACHE) took 50 s on 2 busy cores; progress to stderr as
# "krew: ...".
set -euo pipefail
version=${CLASSCACHE_KREW_VERSION:-v0.4.3}
case $version in v[0-9]*.*) ;; *) echo "krew: ERROR: CLASSCACHE_KREW_VERSION='$version' is not a version like v0.4.3" >&2; exit 1 ;; esac
module=sigs.k8s.io/krew
# shellcheck source=tests/harness/tools/go-install.sh
. "$(dirname "${BASH_SOURCE[0]}")/go-install.sh"
go_install_cached krew "$version" "-X $module/internal/version.gitTag=$version" "$module/cmd/krew@$version" "$module/cmd/validate-krew-manifest@$version"
KREW_ROOT="$dir/root" KREW_NO_UPGRADE_CHECK=1 "$dir/bin/krew" version >/dev/null 2>&1 || { echo "krew: ERROR: $dir/bin/krew does not run; delete $dir and run again" >&2; exit 1; }
[ -x "$dir/bin/validate-krew-manifest" ] || { echo "krew: ERROR: $dir/bin/validate-krew-manifest is missing; delete $dir and run again" >&2; exit 1; }
printf "export CLASSCACHE_KREW_VALIDATOR='%s'\n" "$dir/bin/validate-krew-manifest"
printf "export CLASSCACHE_KREW='%s'\n" "$dir/bin/krew"
