#!/usr/bin/env bash
# tests/harness/tools/zizmor.sh - install zizmor (PyPI), the GitHub Actions auditor that
# tests/tests/workflows_zizmor.rs runs over the workflows and action.yml, once per version, and
# print `export CLASSCACHE_ZIZMOR=...` for $H/env. It never touches the system's Python, the
# system PATH or the checkout.
#
# Cache: a venv of its own, ${CLASSCACHE_CACHE_DIR:-/var/cache/classcache}/zizmor-<version>,
# with a `complete` marker written only after zizmor runs, so a fresh clone on this machine
# starts warm. Version: pinned below, so every run and CI audit with the same rules (a newer
# zizmor brings new audits: bump it on purpose, with the fixes it asks for). Needs python3 with
# venv (apt-get install python3-venv when missing, as root). Progress to stderr as "zizmor: ...".
set -euo pipefail
version=1.32.0
dir=${CLASSCACHE_CACHE_DIR:-/var/cache/classcache}/zizmor-$version
die() {
	echo "zizmor: ERROR: $*" >&2
	exit 1
}
if [ ! -f "$dir/complete" ]; then
	mkdir -p "$dir" || die "cannot create $dir; set CLASSCACHE_CACHE_DIR to a writable dir"
	exec 7>"$dir.lock"
	flock -w 600 7 || die "another install into $dir has held $dir.lock for 10 minutes; check that process"
	if [ ! -f "$dir/complete" ]; then
		echo "zizmor: installing zizmor==$version with pip into the venv $dir (log $dir.log)" >&2
		rm -rf "$dir"
		if ! python3 -m venv "$dir" >"$dir.log" 2>&1; then
			[ "$(id -u)" -eq 0 ] || die "python3 -m venv failed (log $dir.log); sudo apt-get install python3-venv"
			DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-venv >>"$dir.log" 2>&1 ||
				die "apt-get install python3-venv failed (log $dir.log); install it by hand"
			rm -rf "$dir"
			python3 -m venv "$dir" >>"$dir.log" 2>&1 || die "python3 -m venv failed (log $dir.log)"
		fi
		"$dir/bin/python" -m pip install --quiet --disable-pip-version-check --no-compile "zizmor==$version" >>"$dir.log" 2>&1 ||
			die "pip install zizmor==$version failed (log $dir.log); check PyPI access"
		"$dir/bin/zizmor" --version >>"$dir.log" 2>&1 || die "$dir/bin/zizmor does not run (log $dir.log)"
		touch "$dir/complete"
	fi
fi
"$dir/bin/zizmor" --version >/dev/null 2>&1 || die "$dir/bin/zizmor does not run; delete $dir and run again"
printf "export CLASSCACHE_ZIZMOR='%s'\n" "$dir/bin/zizmor"
