#!/usr/bin/env bash
# tests/harness/tools/helm.sh - build the helm CLI (lint, template and package of the chart that
# scripts/helm-chart.sh generates) from its Go module, once per version, and print
# `export CLASSCACHE_HELM=...` for $H/env. It never installs helm on the system PATH and never
# changes the checkout.
#
# Cache: ${CLASSCACHE_CACHE_DIR:-/var/cache/classcache}/helm-<version>/bin/helm, with a `complete`
# marker written only after a successful build (tools/go-install.sh), so a fresh clone on this
# machine starts warm. Version: CLASSCACHE_HELM_VERSION, default v4.3.2 (the v4 line; its module
# path is helm.sh/helm/v4, and it needs Go 1.26). A v3 version builds helm.sh/helm/v3.
# Static (CGO_ENABLED=0), -trimpath; uses GOCACHE, GOMODCACHE and GOPROXY as configured.
# A cold build (empty GOCACHE and GOMODCACHE) took 4.7 min on 2 busy cores; progress to stderr
# as "helm: ...".
set -euo pipefail
version=${CLASSCACHE_HELM_VERSION:-v4.3.2}
case $version in v[34].*.*) ;; *) echo "helm: ERROR: CLASSCACHE_HELM_VERSION='$version' is not a helm v3 or v4 version like v4.3.2" >&2; exit 1 ;; esac
module=helm.sh/helm/${version%%.*}
# shellcheck source=tests/harness/tools/go-install.sh
. "$(dirname "${BASH_SOURCE[0]}")/go-install.sh"
go_install_cached helm "$version" "-X $module/internal/version.version=$version" "$module/cmd/helm@$version"
"$dir/bin/helm" version >/dev/null 2>&1 || { echo "helm: ERROR: $dir/bin/helm does not run; delete $dir and run again" >&2; exit 1; }
printf "export CLASSCACHE_HELM='%s'\n" "$dir/bin/helm"
