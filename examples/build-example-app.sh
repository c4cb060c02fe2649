#!/usr/bin/env bash
# examples/build-example-app.sh - compile the example shop app (examples/app) with javac.
# Writes OUT (default examples/app/build): classes/ and app.jar (runnable: java -jar app.jar run|serve).
# Needs a JDK 17 or newer; on Debian/Ubuntu it installs openjdk-17-jdk-headless when javac is missing.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
out=${1:-$here/app/build}
modules=${EXAMPLE_APP_MODULES:-300}

die() { printf 'build-example-app: ERROR: %s\n' "$*" >&2; exit 1; }

if ! command -v javac >/dev/null; then
	command -v apt-get >/dev/null || die "javac not found; install a JDK 17 or newer (javac and jar on PATH)"
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	printf 'build-example-app: javac not found; installing openjdk-17-jdk-headless with apt-get\n' >&2
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends openjdk-17-jdk-headless >&2 ||
		{ $sudo apt-get update >&2 && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends openjdk-17-jdk-headless >&2; } ||
		die "apt-get install openjdk-17-jdk-headless failed; install a JDK 17 or newer by hand"
fi
command -v jar >/dev/null || die "javac is on PATH but jar is not; install the full JDK (openjdk-17-jdk-headless)"

rm -rf "$out/generated" "$out/classes" "$out/app.jar"
mkdir -p "$out/generated" "$out/classes"
# The catalog's generated classes make the app load as many of its own classes as a real service.
java "$here/app/gen/GenerateModules.java" "$out/generated" "$modules"
find "$here/app/src" "$out/generated" -name '*.java' >"$out/sources.txt"
javac --release 17 -encoding UTF-8 -d "$out/classes" @"$out/sources.txt"
# CDS archives only classes from jars, never from class directories: the app runs from app.jar.
jar --create --file "$out/app.jar" --main-class com.example.shop.ShopApp -C "$out/classes" .
printf 'build-example-app: %s (%s classes)\n' "$out/app.jar" "$(find "$out/classes" -name '*.class' | wc -l)" >&2
echo "$out/app.jar"
