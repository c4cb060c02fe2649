#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine with Rust: installs what the tests need,
# starts the project's own Docker engine, registry and JVM images (tests/harness/up.sh), runs every
# test of the workspace, and stops what it started. `.ci/run` calls this and nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*" >&2; }

step "checking formatting and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

step "starting the test harness (Docker engine, registry, JVM images)"
# up.sh installs its own apt packages (docker.io, docker-registry, skopeo, iproute2, a JDK).
# Stop at the end only what this run started: a harness already up (a developer's) stays up.
harness_was_up=false
if [ -f .harness/env ] && (. .harness/env && "${CLASSCACHE_DOCKER_CLI:-docker}" version) >/dev/null 2>&1; then
	harness_was_up=true
fi
# The trap comes first: an up.sh that fails half-way still leaves nothing running.
if [ "$harness_was_up" = false ]; then
	trap 'bash tests/harness/down.sh || true' EXIT
fi
bash tests/harness/up.sh

step "running the test suite"
# Benchmarks are not tests: they print figures and run with `cargo bench` (see README).
cargo test --workspace --locked --no-fail-fast
