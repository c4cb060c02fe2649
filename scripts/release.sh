#!/usr/bin/env bash
# scripts/release.sh - build (and publish) a classcache release: the release workflow's only build
# step, and the tests' local dry run. It must not bump versions nor change the checkout.
#
# Usage: scripts/release.sh --out DIR [--dry-run]
#        scripts/release.sh --out DIR --publish-only
#   --out DIR        where the release goes (created; must be missing or empty unless --publish-only)
#   --dry-run        build everything, publish nothing
#   --publish-only   publish what `--dry-run --out DIR` built (the workflow builds in a job without
#                    write permissions and publishes in another)
# DIR receives, for the one version of scripts/version.sh:
#   <bin>-<target>.tar.gz   bin: classcache-build, kubectl-classcache, classcache-fetcher;
#                           target: x86_64-unknown-linux-musl, aarch64-unknown-linux-musl; the
#                           static binary at the archive's root, LICENSE and README.md
#   classcache-fetcher-image-<version>.tar   the fetcher image as an OCI archive (linux/amd64 +
#                           linux/arm64 index, tagged <version>), also unpacked in DIR/fetcher-image
#   classcache-<version>.tgz   the Helm chart (scripts/helm-chart.sh, when present)
#   classcache.yaml         the krew plugin manifest (scripts/krew-manifest.sh, when present)
#   SHA256SUMS              `sha256sum` lines "<sha256>  <asset>" for every asset above
#   tools/classcache-release   the image tool, for --publish-only (not an asset)
# Publishing pushes the image index to ghcr.io/classcache/classcache-fetcher:<version> (core's
# DEFAULT_FETCHER_IMAGE) with the oci crate's client, then creates GitHub release v<version> with
# the assets and SHA256SUMS (gh CLI). It needs GITHUB_REPOSITORY, GITHUB_ACTOR, GH_TOKEN and
# GITHUB_REF_NAME=v<version> (set by the release workflow). $CLASSCACHE_RELEASE_IMAGE pushes the
# image elsewhere (the tests' registry).
# Builds with scripts/static-binaries.sh (target/image); a warm rerun only repackages.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
die() { printf 'release: ERROR: %s\n' "$*" >&2; exit 1; }
log() { printf 'release: %s\n' "$*" >&2; }

out=""
mode=publish
while [ $# -gt 0 ]; do
	case "$1" in
	--out) [ $# -ge 2 ] || die "--out needs a directory"; out=$2; shift 2 ;;
	--dry-run) mode=dry-run; shift ;;
	--publish-only) mode=publish-only; shift ;;
	-h | --help) sed -n '2,/^set -e/{/^#/p}' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown argument $1; see $0 --help" ;;
	esac
done
[ -n "$out" ] || die "--out DIR is required; see $0 --help"

version=$(bash "$root/scripts/version.sh")
targets=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl)
bins=(classcache-build kubectl-classcache classcache-fetcher)
platform_of() {
	case "$1" in
	x86_64-*) echo linux/amd64 ;;
	aarch64-*) echo linux/arm64 ;;
	esac
}
repository=${GITHUB_REPOSITORY:-classcache/classcache}
base_url=${GITHUB_SERVER_URL:-https://github.com}/$repository/releases/download/v$version
image_archive=classcache-fetcher-image-$version.tar

build() {
	mkdir -p "$out"
	[ -z "$(ls -A "$out")" ] || die "$out is not empty; give a new or empty directory"
	out=$(cd "$out" && pwd -P)
	local staging=$out/.staging
	mkdir -p "$staging" "$out/tools"
	local image_args=() host_dir=""
	for target in "${targets[@]}"; do
		local dir
		dir=$(bash "$root/scripts/static-binaries.sh" "$target") || die "building the $target binaries failed (output above)"
		for bin in "${bins[@]}"; do
			# Static: no program interpreter, no shared library needed (a static-pie keeps a
			# dynamic section for its own relocations). readelf is binutils'.
			if readelf -lW "$dir/$bin" | grep -q INTERP || readelf -dW "$dir/$bin" | grep -q NEEDED; then
				die "$dir/$bin is dynamically linked; release binaries must be static"
			fi
			rm -rf "${staging:?}"/*
			cp "$dir/$bin" "$staging/$bin"
			cp "$root/README.md" "$root/LICENSE" "$staging/"
			# Reproducible: sorted names, owner 0, mtime 0, gzip without name or time.
			tar -C "$staging" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
				-cf - "$bin" LICENSE README.md | gzip -n -9 >"$out/$bin-$target.tar.gz"
		done
		image_args+=(--binary "$(platform_of "$target")=$dir/classcache-fetcher")
		local host
		case "$(uname -m)" in aarch64 | arm64) host=aarch64 ;; *) host=x86_64 ;; esac
		if [ "${target%%-*}" = "$host" ]; then
			cp "$dir/classcache-release" "$out/tools/classcache-release"
			host_dir=$dir
		fi
	done
	rm -rf "$staging"
	[ -x "$out/tools/classcache-release" ] || die "no classcache-release for this machine ($(uname -m))"

	local source_args=()
	[ -z "${GITHUB_REPOSITORY:-}" ] || source_args=(--source "${GITHUB_SERVER_URL:-https://github.com}/$GITHUB_REPOSITORY")
	"$out/tools/classcache-release" image "${image_args[@]}" "${source_args[@]}" \
		--layout "$out/fetcher-image" || die "classcache-release image failed (output above)"
	tar -C "$out/fetcher-image" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
		-cf "$out/$image_archive" .

	if [ -f "$root/scripts/helm-chart.sh" ]; then
		# The chart comes from the plugin just built: no second build of it (and no cargo run,
		# which would wait for the lock of a `cargo test` that runs this script).
		KUBECTL_CLASSCACHE=$host_dir/kubectl-classcache bash "$root/scripts/helm-chart.sh" --out "$out/.chart" >&2 ||
			die "scripts/helm-chart.sh failed (output above)"
		mv "$out/.chart/classcache-$version.tgz" "$out/" || die "scripts/helm-chart.sh wrote no classcache-$version.tgz"
		rm -rf "$out/.chart"
	else
		log "no scripts/helm-chart.sh: the release has no Helm chart"
	fi

	(cd "$out" && sha256sum -- *.tar.gz "$image_archive" $(ls classcache-*.tgz 2>/dev/null) >SHA256SUMS)
	if [ -f "$root/scripts/krew-manifest.sh" ]; then
		bash "$root/scripts/krew-manifest.sh" --sums "$out/SHA256SUMS" --base-url "$base_url" >"$out/classcache.yaml" ||
			die "scripts/krew-manifest.sh failed (output above)"
		(cd "$out" && sha256sum classcache.yaml >>SHA256SUMS)
	else
		log "no scripts/krew-manifest.sh: the release has no krew manifest"
	fi
	log "built release $version in $out:"
	sed 's/^/  /' "$out/SHA256SUMS" >&2
}

publish() {
	out=$(cd "$out" && pwd -P)
	[ -f "$out/SHA256SUMS" ] || die "$out has no SHA256SUMS; build it first with --dry-run --out $out"
	(cd "$out" && sha256sum --quiet -c SHA256SUMS) || die "the assets in $out do not match their SHA256SUMS; build again"
	for var in GITHUB_REPOSITORY GITHUB_ACTOR GH_TOKEN GITHUB_REF_NAME; do
		[ -n "${!var:-}" ] || die "\$$var is not set; publishing runs in the release workflow (.github/workflows/release.yml)"
	done
	[ "$GITHUB_REF_NAME" = "v$version" ] ||
		die "tag $GITHUB_REF_NAME is not v$version (Cargo.toml [workspace.package] version); tag the commit v$version"
	command -v gh >/dev/null || die "no gh CLI to create the GitHub release"
	# Workflow artifacts do not keep file modes.
	chmod +x "$out/tools/classcache-release"
	local image=${CLASSCACHE_RELEASE_IMAGE:-}
	[ -n "$image" ] || image=$("$out/tools/classcache-release" default-image)
	log "pushing the fetcher image index to $image"
	CLASSCACHE_REGISTRY_PASSWORD=$GH_TOKEN "$out/tools/classcache-release" push \
		--layout "$out/fetcher-image" --to "$image" --username "$GITHUB_ACTOR" >&2 ||
		die "pushing $image failed (output above)"
	local assets=()
	while read -r _ asset; do assets+=("$out/$asset"); done <"$out/SHA256SUMS"
	log "creating GitHub release v$version of $repository"
	gh release create "v$version" --repo "$repository" --verify-tag --title "classcache $version" \
		--notes "Fetcher image: $image (linux/amd64, linux/arm64). Check downloads with \`sha256sum -c SHA256SUMS\`." \
		"${assets[@]}" "$out/SHA256SUMS" || die "gh release create v$version failed (output above)"
}

case "$mode" in
dry-run) build ;;
publish) build; publish ;;
publish-only) publish ;;
esac
