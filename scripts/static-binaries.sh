#!/usr/bin/env bash
# scripts/static-binaries.sh - build the project's static (musl) binaries for one release target.
# It builds and prints where they are; it must not package, tag or publish anything.
#
# Usage: scripts/static-binaries.sh TARGET
#        scripts/static-binaries.sh --test TARGET [CARGO TEST ARGS]...
#   TARGET  x86_64-unknown-linux-musl or aarch64-unknown-linux-musl
# Prints the directory holding classcache-build, kubectl-classcache, classcache-fetcher and
# classcache-release (the image tool) on stdout. With --test, runs `cargo test` for TARGET
# instead (dev profile, target/cross), with a target of another architecture run under Debian's
# qemu-user (qemu-aarch64), e.g. `--test aarch64-unknown-linux-musl -p classcache-core --lib`.
#
# Every caller (scripts/fetcher-image.sh, scripts/release.sh) builds the same four packages with
# the `image` profile into target/image, so their builds share every crate (one feature set) and
# the test build in target/debug is never invalidated. Installs the Rust standard library of
# TARGET with rustup when it is missing. Cross-compiling to aarch64 from x86_64 uses Debian's
# gcc-aarch64-linux-gnu as C compiler (ring's and aws-lc's C code) and linker; Rust's musl
# target brings its own static musl libc and start files.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
die() { printf 'static-binaries: ERROR: %s\n' "$*" >&2; exit 1; }
log() { printf 'static-binaries: %s\n' "$*" >&2; }

test_mode=false
if [ "${1:-}" = --test ]; then
	test_mode=true
	shift
fi
[ $# -ge 1 ] || die "usage: $0 [--test] x86_64-unknown-linux-musl|aarch64-unknown-linux-musl"
target=$1
shift
$test_mode || [ $# -eq 0 ] || die "unexpected arguments $*; only --test takes cargo test arguments"
case "$target" in
x86_64-unknown-linux-musl | aarch64-unknown-linux-musl) ;;
*) die "unknown target $target; the release targets are x86_64-unknown-linux-musl and aarch64-unknown-linux-musl" ;;
esac
arch=${target%%-*}
host_arch=$(uname -m)

if command -v rustup >/dev/null; then
	if ! rustup target list --installed | grep -qx "$target"; then
		log "installing the Rust standard library for $target (rustup target add)"
		rustup target add "$target" >&2 || die "rustup target add $target failed; run it by hand"
	fi
fi

# The C compiler and linker for the target's C code (ring, aws-lc) and the final link.
env_target=$(printf '%s' "$target" | tr 'a-z-' 'A-Z_')
cc_target=${target//-/_}
if [ "$arch" != "$host_arch" ]; then
	cross=$arch-linux-gnu-gcc
	case "$arch" in
	aarch64) packages="gcc-aarch64-linux-gnu libc6-dev-arm64-cross" ;;
	*) packages="gcc-x86-64-linux-gnu libc6-dev-amd64-cross" ;;
	esac
	command -v "$cross" >/dev/null ||
		die "no $cross to cross-compile to $target; apt-get install $packages (tests/harness/up.sh installs them on x86_64)"
	export "CARGO_TARGET_${env_target}_LINKER=$cross"
	export "CC_${cc_target}=$cross"
	export "AR_${cc_target}=$arch-linux-gnu-ar"
	if $test_mode; then
		command -v "qemu-$arch" >/dev/null ||
			die "no qemu-$arch to run the $target tests; apt-get install qemu-user (tests/harness/up.sh installs it)"
		export "CARGO_TARGET_${env_target}_RUNNER=qemu-$arch"
	fi
elif command -v musl-gcc >/dev/null; then
	export "CC_${cc_target}=musl-gcc"
fi

if $test_mode; then
	log "cargo test --target $target $* (target/cross)"
	cd "$root"
	exec cargo test --locked --target "$target" --target-dir target/cross "$@"
fi

log "building classcache-build, kubectl-classcache, classcache-fetcher, classcache-release for $target (cargo --profile image, target/image)"
(
	cd "$root"
	cargo build --locked --quiet --profile image --target "$target" --target-dir target/image \
		-p classcache-build -p kubectl-classcache -p classcache-fetcher -p classcache-release >&2
) || die "cargo build for $target failed (output above)"
dir=$root/target/image/$target/image
for bin in classcache-build kubectl-classcache classcache-fetcher classcache-release; do
	[ -x "$dir/$bin" ] || die "cargo built no $dir/$bin"
done
printf '%s\n' "$dir"
