#!/usr/bin/env bash
# tests/harness/tools/cosign.sh - build the cosign CLI (the independent verifier and signer of
# the signature tests) from its Go module, once per version, and print `export CLASSCACHE_COSIGN=...`
# for $H/env. It never installs cosign on the system PATH and never changes the checkout.
#
# Cache: ${CLASSCACHE_CACHE_DIR:-/var/cache/classcache}/cosign-<version>/bin/cosign, with a
# `complete` marker written only after a successful build (tools/go-install.sh),
# so a fresh clone on this machine starts warm. Version: CLASSCACHE_COSIGN_VERSION, default
# v2.6.5 (the v2 line signs with --key and --tlog-upload=false and verifies with
# --insecure-ignore-tlog fully offline; v3 wants a TUF signing config from the Sigstore CDN).
# Static (CGO_ENABLED=0), -trimpath; uses GOCACHE, GOMODCACHE and GOPROXY as configured.
# A cold build takes several minutes on 2 cores; progress to stderr as "cosign: ...".
set -euo pipefail
version=${CLASSCACHE_COSIGN_VERSION:-v2.6.5}
case $version in v[0-9]*.*) ;; *) echo "cosign: ERROR: CLASSCACHE_COSIGN_VERSION='$version' is not a version like v2.6.5" >&2; exit 1 ;; esac
major=${version%%.*}
module=github.com/sigstore/cosign
[ "$major" = v0 ] || [ "$major" = v1 ] || module=$module/$major
# shellcheck source=tests/harness/tools/go-install.sh
. "$(dirname "${BASH_SOURCE[0]}")/go-install.sh"
go_install_cached cosign "$version" "-X sigs.k8s.io/release-utils/version.gitVersion=$version" "$module/cmd/cosign@$version"
"$dir/bin/cosign" version >/dev/null 2>&1 || { echo "cosign: ERROR: $dir/bin/cosign does not run; delete $dir and run again" >&2; exit 1; }
printf "export CLASSCACHE_COSIGN='%s'\n" "$dir/bin/cosign"
