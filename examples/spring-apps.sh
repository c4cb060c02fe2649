#!/usr/bin/env bash
# examples/spring-apps.sh - build the Spring Boot example services and fetch the OpenTelemetry
# Java agent, from Maven Central, with everything cached so a warm run downloads nothing.
#
#   spring-apps.sh jar 3        build examples/spring-boot-3 (Boot 3.5.7), print the jar's path
#   spring-apps.sh jar 4        build examples/spring-boot-4 (Boot 4.0.7, --release 17), same
#   spring-apps.sh otel-agent   fetch the pinned OpenTelemetry Java agent, print the jar's path
#
# Cache, $CACHE = ${CLASSCACHE_CACHE_DIR:-/var/cache/classcache} (as tests/harness/cluster-up.sh):
#   $CACHE/maven-repository/                 Maven's local repository (by artifact version)
#   $CACHE/spring-boot-<N>-<hash>/petclinic.jar   a built jar, <hash> over the pom and the sources
# The agent's jar is the one in the Maven repository, under its version. Concurrent runs are
# serialised by flock on $CACHE/spring-apps.lock. Maven builds in the example's target/.
# Needs Maven and a JDK 17 (it installs maven and openjdk-17-jdk-headless with apt-get when
# missing). Progress and Maven's log go to stderr only on failure; stdout is the path alone.
set -euo pipefail

# The newest release of the agent (Maven Central); bump it here.
OTEL_AGENT_VERSION=2.33.1
# maven-dependency-plugin for `dependency:get`, pinned rather than Maven's latest.
DEPENDENCY_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.8.1

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
cache=${CLASSCACHE_CACHE_DIR:-/var/cache/classcache}
repo=$cache/maven-repository

die() {
	printf 'spring-apps: ERROR: %s\n' "$*" >&2
	exit 1
}
usage() { die "usage: $0 jar 3|4 | otel-agent"; }

install_missing() {
	local missing=()
	command -v mvn >/dev/null || missing+=(maven)
	[ -n "${JAVA_HOME:-}" ] || [ -x /usr/lib/jvm/java-17-openjdk-amd64/bin/javac ] || command -v javac >/dev/null ||
		missing+=(openjdk-17-jdk-headless)
	[ ${#missing[@]} -eq 0 ] && return 0
	command -v apt-get >/dev/null || die "${missing[*]} missing; install Maven and a JDK 17"
	local sudo=""
	[ "$(id -u)" -eq 0 ] || sudo=sudo
	printf 'spring-apps: installing %s with apt-get\n' "${missing[*]}" >&2
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2 ||
		{ $sudo apt-get update >&2 && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2; } ||
		die "apt-get install ${missing[*]} failed; install them by hand"
}

# Maven on the machine's JDK 17 (the Boot 4 build targets 17 too), quiet, logging to $log.
mvn_run() {
	local log=$1
	shift
	if [ -z "${JAVA_HOME:-}" ] && [ -x /usr/lib/jvm/java-17-openjdk-amd64/bin/javac ]; then
		export JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64
	fi
	if ! mvn -B -ntp -Dmaven.repo.local="$repo" "$@" >"$log" 2>&1; then
		tail -n 60 "$log" >&2
		die "mvn $* failed (log above, full log $log)"
	fi
}

build_jar() {
	local boot=$1 project
	case $boot in
	3 | 4) project=$here/spring-boot-$boot ;;
	*) usage ;;
	esac
	# The Boot 4 project compiles the Boot 3 project's sources: both feed the hash.
	local hash
	hash=$(cd "$here" && {
		sha256sum "spring-boot-$boot/pom.xml"
		find spring-boot-3/src -type f | LC_ALL=C sort | xargs sha256sum
	} | sha256sum | cut -c1-16)
	local dir=$cache/spring-boot-$boot-$hash
	if [ ! -f "$dir/petclinic.jar" ]; then
		mkdir -p "$cache"
		local log=$cache/spring-boot-$boot-$hash.log
		local started=$SECONDS
		mvn_run "$log" -f "$project/pom.xml" -DskipTests clean package
		[ -f "$project/target/petclinic.jar" ] || die "mvn package made no $project/target/petclinic.jar (log $log)"
		rm -rf "$dir.tmp"
		mkdir -p "$dir.tmp"
		cp "$project/target/petclinic.jar" "$dir.tmp/"
		rm -rf "$dir"
		mv "$dir.tmp" "$dir"
		printf 'spring-apps: built Spring Boot %s example in %d s: %s\n' "$boot" $((SECONDS - started)) "$dir/petclinic.jar" >&2
	fi
	echo "$dir/petclinic.jar"
}

otel_agent() {
	local jar=$repo/io/opentelemetry/javaagent/opentelemetry-javaagent/$OTEL_AGENT_VERSION/opentelemetry-javaagent-$OTEL_AGENT_VERSION.jar
	if [ ! -f "$jar" ]; then
		mkdir -p "$cache"
		mvn_run "$cache/opentelemetry-javaagent-$OTEL_AGENT_VERSION.log" \
			"$DEPENDENCY_PLUGIN:get" -Dtransitive=false \
			-Dartifact="io.opentelemetry.javaagent:opentelemetry-javaagent:$OTEL_AGENT_VERSION"
		[ -f "$jar" ] || die "Maven fetched no $jar"
	fi
	echo "$jar"
}

[ $# -ge 1 ] || usage
install_missing
mkdir -p "$cache"
exec 9>"$cache/spring-apps.lock"
flock -w 1800 9 || die "another spring-apps.sh has held $cache/spring-apps.lock for 30 minutes"
case $1 in
jar)
	[ $# -eq 2 ] || usage
	build_jar "$2"
	;;
otel-agent)
	[ $# -eq 1 ] || usage
	otel_agent
	;;
*) usage ;;
esac
