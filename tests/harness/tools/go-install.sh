# tests/harness/tools/go-install.sh - sourced by the tool scripts beside it (cosign.sh, helm.sh,
# krew.sh): `go install` of a pinned Go module's commands, once per version, into a cache.
# It must not install anything on the system PATH or print to stdout (the callers' stdout is
# what up.sh appends to $H/env).
#
# go_install_cached TOOL VERSION LDFLAGS PACKAGE@VERSION...
#   Builds into ${CLASSCACHE_CACHE_DIR:-/var/cache/classcache}/TOOL-VERSION/bin with a `complete`
#   marker written only after a successful build, under a flock (concurrent harnesses build once),
#   and sets $dir to that cache directory. Static (CGO_ENABLED=0), -trimpath; uses GOCACHE,
#   GOMODCACHE and GOPROXY as configured. The env variable named in errors is
#   CLASSCACHE_<TOOL>_VERSION. Exits non-zero with "TOOL: ERROR: what failed; the fix".
go_install_cached() {
	local tool=$1 version=$2 ldflags=$3
	shift 3
	local knob
	knob=CLASSCACHE_$(printf '%s' "$tool" | tr 'a-z-' 'A-Z_')_VERSION
	dir=${CLASSCACHE_CACHE_DIR:-/var/cache/classcache}/$tool-$version
	[ -f "$dir/complete" ] && { touch "$dir/last-used"; return 0; }
	mkdir -p "$dir" || { echo "$tool: ERROR: cannot create $dir; set CLASSCACHE_CACHE_DIR to a writable dir" >&2; exit 1; }
	exec 7>"$dir.lock"
	flock -w 3600 7 || { echo "$tool: ERROR: another build of $dir has held $dir.lock for an hour; check that process" >&2; exit 1; }
	if [ ! -f "$dir/complete" ]; then
		command -v go >/dev/null || { echo "$tool: ERROR: no go command to build $tool; install Go (1.26 or later)" >&2; exit 1; }
		echo "$tool: cold build of $* into $dir/bin (minutes; log $dir/build.log)" >&2
		rm -rf "$dir/bin.tmp"
		if ! CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOBIN="$dir/bin.tmp" \
			go install -trimpath -ldflags "-s -w $ldflags" "$@" >"$dir/build.log" 2>&1; then
			tail -n 20 "$dir/build.log" >&2
			echo "$tool: ERROR: building $tool $version failed (log $dir/build.log); fix the build or set $knob" >&2
			exit 1
		fi
		rm -rf "$dir/bin"
		mv "$dir/bin.tmp" "$dir/bin"
		touch "$dir/complete"
	fi
	exec 7>&-
	touch "$dir/last-used"
}
