#!/usr/bin/env bash
# The main job on the embedded default, from a fresh Debian machine with Rust: no registry and
# no cluster. Builds the bundled example service, trains and verifies its archive with the
# machine's JVM, and writes the artifact to an OCI image-layout directory, which a third-party
# client (skopeo) then reads. Output: target/classcache-layout and target/classcache-report.json.
set -euo pipefail
cd "$(dirname "$0")/.."

layout=${CLASSCACHE_LAYOUT:-target/classcache-layout}
step() { printf '\n==> %s\n' "$*" >&2; }

step "building the example app (examples/app) with javac"
bash examples/build-example-app.sh

step "training, verifying and writing the archive to oci:$layout:example"
cargo run --release --locked -p classcache-build -- \
	--runtime local \
	--to "oci:$layout:example" \
	--report target/classcache-report.json \
	examples/app/build/app.jar -- run

step "reading it back with a third-party client (skopeo)"
if ! command -v skopeo >/dev/null; then
	apt-get install -y -qq skopeo >/dev/null 2>&1 ||
		{ apt-get update -qq && apt-get install -y -qq skopeo >/dev/null; }
fi
skopeo inspect --raw "oci:$layout:example"
echo
printf '\nreport: target/classcache-report.json\n' >&2
