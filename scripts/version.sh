#!/usr/bin/env bash
# scripts/version.sh - print the project's one version (Cargo.toml [workspace.package] version).
# Every shell tool (image tags, release assets, the Helm chart, the krew manifest) asks this; Rust
# code uses env!("CARGO_PKG_VERSION"), which Cargo fills from the same line. It must not compute
# or bump versions.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"$/\1/p' "$root/Cargo.toml" | head -n 1)
[ -n "$version" ] || { echo "version.sh: ERROR: no version in $root/Cargo.toml [workspace.package]; add version = \"X.Y.Z\" there" >&2; exit 1; }
printf '%s\n' "$version"
