#!/usr/bin/env bash
# scripts/krew-manifest.sh --sums SHA256SUMS --base-url URL - print the krew plugin manifest
# (classcache.yaml) of this version's release: one platform per release target, its archive
# kubectl-classcache-<target>.tar.gz under URL and that archive's sha256 from SHA256SUMS. It
# must not build, download or upload anything; scripts/release.sh calls it.
#
# The archive holds kubectl-classcache at its root plus LICENSE and README.md (scripts/release.sh makes them).
# Checked by krew's own validator and a real `krew install --archive` in
# kubectl-classcache/tests/krew_completion.rs.
set -euo pipefail
usage="usage: scripts/krew-manifest.sh --sums SHA256SUMS --base-url URL"
die() {
	echo "krew-manifest.sh: ERROR: $*" >&2
	exit 1
}
sums='' base=''
while [ $# -gt 0 ]; do
	case $1 in
	--sums) [ $# -ge 2 ] || die "--sums needs a file; $usage"; sums=$2; shift 2 ;;
	--sums=*) sums=${1#--sums=}; shift ;;
	--base-url) [ $# -ge 2 ] || die "--base-url needs a URL; $usage"; base=$2; shift 2 ;;
	--base-url=*) base=${1#--base-url=}; shift ;;
	*) die "unknown argument '$1'; $usage" ;;
	esac
done
[ -n "$sums" ] && [ -n "$base" ] || die "$usage"
[ -r "$sums" ] || die "cannot read --sums $sums; pass the SHA256SUMS of the release (sha256sum format)"
case $base in http://* | https://*) ;; *) die "--base-url '$base' is not an http(s) URL; pass where the release assets are downloaded from" ;; esac
base=${base%/}
case $base in *[[:space:]\"\\]*) die "--base-url '$base' holds white space, a quote or a backslash" ;; esac
version=$(bash "$(dirname "$0")/version.sh")

# target -> krew platform (os/arch), the release targets of scripts/release.sh.
platforms=(
	"x86_64-unknown-linux-musl linux amd64"
	"aarch64-unknown-linux-musl linux arm64"
)

cat <<YAML
apiVersion: krew.googlecontainertools.github.com/v1alpha2
kind: Plugin
metadata:
  name: classcache
spec:
  version: v$version
  shortDescription: Deliver trained JVM CDS / AOT-cache archives to workloads
  description: |
    classcache gives JVM workloads a class-data-sharing / AOT-cache archive trained on
    their own image in CI. \`kubectl classcache enable deploy/my-app\` adds an init
    container that gets the archive from a node fetcher (\`kubectl classcache install\`),
    which pulls it once per cluster from your OCI registry and shares it between nodes.
  caveats: |
    Install the node fetcher once per cluster (it pulls only from the registries you allow):
      kubectl classcache install --allowed-registry registry.example/shop
    Shell completion of \`kubectl classcache\` (kubectl 1.26+, with kubectl's completion on):
      kubectl classcache completion kubectl > "\${KREW_ROOT:-\$HOME/.krew}/bin/kubectl_complete-classcache"
      chmod +x "\${KREW_ROOT:-\$HOME/.krew}/bin/kubectl_complete-classcache"
  platforms:
YAML
for p in "${platforms[@]}"; do
	read -r target os arch <<<"$p"
	asset=kubectl-classcache-$target.tar.gz
	# sha256sum lines: "<hex>  <name>" (or "<hex> *<name>" in binary mode).
	sha=$(awk -v a="$asset" '($2 == a || $2 == "*" a) { print $1 }' "$sums")
	[ -n "$sha" ] || die "$sums has no line for $asset; run scripts/release.sh for both targets first"
	[ "$(printf '%s\n' "$sha" | wc -l)" -eq 1 ] || die "$sums has several lines for $asset"
	[[ $sha =~ ^[0-9a-f]{64}$ ]] || die "$sums gives '$sha' for $asset, not a lowercase sha256"
	cat <<YAML
  - selector:
      matchLabels:
        os: $os
        arch: $arch
    uri: $base/$asset
    sha256: $sha
    bin: kubectl-classcache
    files:
    - from: kubectl-classcache
      to: .
    - from: LICENSE
      to: .
    - from: README.md
      to: .
YAML
done
