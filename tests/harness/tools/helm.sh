#!/usr/bin/env bash
# tests/harness/tools/helm.sh - build the helm CLI (lint, template and package of the chart that
# scripts/helm-chart.sh generates) from its Go module, once per version, and print
# `export CLASSCACHE_HELM=...` for $H/env. It never installs helm on the system PATH and never
# changes the checkout.
#
# Cache: ${CLASSCACHE_CACHE_DIR:-/var/cache/classcache}/helm-<version>/bin/helm, with a `complete`
# marker written only after a successful build (as cosign.sh does), so a fresh clone on this
# machine starts warm. Version: CLASSCACHE_HELM_VERSION, default v4.3.2 (the v4 line; its module
# path is helm.sh/helm/v4, and it needs Go 1.26). A v3 version builds helm.sh/helm/v3.
# Static (CGO_ENABLED=0), -trimpath; uses GOCACHE, GOMODCACHE and GOPROXY as configured.
# A cold build (empty GOCACHE and GOMODCACHE) took 4.7 min on 2 busy cores; progress to stderr
# as "helm: ...".
set -euo pipefail
version=${CLASSCACHE_HELM_VERSION:-v4.3.2}
case $version in v[34].*.*) ;; *) echo "helm: ERROR: CLASSCACHE_HELM_VERSION='$version' is not a helm v3 or v4 version like v4.3.2" >&2; exit 1 ;; esac
module=helm.sh/helm/${version%%.*}
dir=${CLASSCACHE_CACHE_DIR:-/var/cache/classcache}/helm-$version
if [ ! -f "$dir/complete" ]; then
	mkdir -p "$dir" || { echo "helm: ERROR: cannot create $dir; set CLASSCACHE_CACHE_DIR to a writable dir" >&2; exit 1; }
	exec 7>"$dir.lock"
	flock -w 3600 7 || { echo "helm: ERROR: another build of $dir has held $dir.lock for an hour; check that process" >&2; exit 1; }
	if [ ! -f "$dir/complete" ]; then
		command -v go >/dev/null || { echo "helm: ERROR: no go command to build helm; install Go (1.26 or later)" >&2; exit 1; }
		echo "helm: cold build of $module/cmd/helm@$version into $dir/bin (minutes; log $dir/build.log)" >&2
		rm -rf "$dir/bin.tmp"
		if ! CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOBIN="$dir/bin.tmp" \
			go install -trimpath -ldflags "-s -w -X $module/internal/version.version=$version" \
			"$module/cmd/helm@$version" >"$dir/build.log" 2>&1; then
			tail -n 20 "$dir/build.log" >&2
			echo "helm: ERROR: building helm $version failed (log $dir/build.log); fix the build or set CLASSCACHE_HELM_VERSION" >&2
			exit 1
		fi
		rm -rf "$dir/bin"
		mv "$dir/bin.tmp" "$dir/bin"
		touch "$dir/complete"
	fi
fi
touch "$dir/last-used"
"$dir/bin/helm" version >/dev/null 2>&1 || { echo "helm: ERROR: $dir/bin/helm does not run; delete $dir and run again" >&2; exit 1; }
printf "export CLASSCACHE_HELM='%s'\n" "$dir/bin/helm"
