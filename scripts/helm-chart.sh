#!/usr/bin/env bash
# scripts/helm-chart.sh OUT_DIR (or --out OUT_DIR) - generate the Helm chart from templates/ (the ones
# `kubectl classcache install` renders) into OUT_DIR/classcache, lint it and package it as
# OUT_DIR/classcache-<version>.tgz. It must not hand-edit the chart: every file of it is written
# by the plugin's hidden `helm-chart` subcommand (kubectl-classcache/src/helm.rs).
#
# The plugin: $KUBECTL_CLASSCACHE when set (a built kubectl-classcache of this checkout), else
# `cargo run -p kubectl-classcache`. helm: $CLASSCACHE_HELM, else `helm` on PATH, else built
# (cached) by tests/harness/tools/helm.sh. scripts/release.sh calls this.
set -euo pipefail
die() {
	echo "helm-chart.sh: ERROR: $*" >&2
	exit 1
}
usage="usage: scripts/helm-chart.sh OUT_DIR (or --out OUT_DIR)"
case $# in
1) out=$1 ;;
2) [ "$1" = --out ] || die "$usage"; out=$2 ;;
*) die "$usage" ;;
esac
case $out in -*) die "$usage" ;; esac
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
version=$(bash "$root/scripts/version.sh")
mkdir -p "$out" || die "cannot create $out"
out=$(cd "$out" && pwd -P)
chart=$out/classcache
rm -rf "$chart" "$out/classcache-$version.tgz"

if [ -n "${KUBECTL_CLASSCACHE:-}" ]; then
	"$KUBECTL_CLASSCACHE" helm-chart --out "$chart" || die "$KUBECTL_CLASSCACHE helm-chart failed (message above)"
else
	(cd "$root" && cargo run --quiet --locked -p kubectl-classcache -- helm-chart --out "$chart") ||
		die "cargo run -p kubectl-classcache -- helm-chart failed (message above)"
fi
grep -qx "version: $version" "$chart/Chart.yaml" ||
	die "$chart/Chart.yaml is not version $version (scripts/version.sh): the plugin was built from another version; rebuild it"

helm=${CLASSCACHE_HELM:-}
if [ -z "$helm" ]; then
	if command -v helm >/dev/null; then
		helm=helm
	else
		eval "$("$root/tests/harness/tools/helm.sh")" || die "tests/harness/tools/helm.sh failed (message above)"
		helm=$CLASSCACHE_HELM
	fi
fi
"$helm" lint --strict "$chart" --set 'allowedRegistries={registry.example}' >&2 ||
	die "helm lint found problems in the generated chart (above); fix templates/ or kubectl-classcache/src/helm.rs"
"$helm" package "$chart" --destination "$out" >&2 || die "helm package $chart failed (message above)"
[ -f "$out/classcache-$version.tgz" ] || die "helm package did not write $out/classcache-$version.tgz"
echo "$out/classcache-$version.tgz"
