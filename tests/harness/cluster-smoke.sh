#!/usr/bin/env bash
# tests/harness/cluster-smoke.sh - prove the harness cluster works, end to end; prints
# what it saw. Needs tests/harness/up.sh (with the cluster) to have run. Leaves the
# namespaces cc-smoke and cc-smoke-host behind for a look; it deletes them at its start.
#
# Checks: both nodes Ready at v1.35.4; an image pushed by the host to the harness registry
# as 127.0.0.1:<port>/... is pulled by both nodes under that same reference (and the pulls
# show in the registry's access log); a 2-replica Deployment spread over both nodes, as
# uid 65532, in a namespace enforcing the restricted Pod Security Standard (and a
# non-compliant pod is refused there); pod to pod across nodes; a ClusterIP Service with
# internalTrafficPolicy: Local answers from the caller's own node; a Cluster-policy
# Service; kubectl logs and exec (API server -> kubelet -> containerd); hostPort and
# hostNetwork pods reached at status.hostIP from a pod on the other node and from the host;
# an image volume.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
H=${CLASSCACHE_HARNESS_DIR:-$PWD/.harness}
# shellcheck source=/dev/null
. "$H/env"
k() { "$CLASSCACHE_KUBECTL" --kubeconfig "$CLASSCACHE_KUBECONFIG" "$@"; }
say() { printf 'smoke: %s\n' "$*"; }
# get NS POD HOST PORT: the body of GET / from inside the pod. busybox nc, since Debian's
# busybox-static 1.35 wget segfaults (on the host too).
get() {
	k -n "$1" exec "$2" -- sh -c 'printf "GET / HTTP/1.0\r\nHost: $0\r\n\r\n" | nc -w 5 "$0" "$1"' "$3" "$4" |
		tr -d '\r' | sed '1,/^$/d'
}
fail() {
	printf 'smoke: FAILED: %s\n' "$*" >&2
	exit 1
}

say "kubectl version:"
k version | sed 's/^/  /'
say "nodes:"
k get nodes -o wide | sed 's/^/  /'
for n in $CLASSCACHE_CLUSTER_NODES; do
	[ "$(k get node "$n" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}')" = True ] || fail "node $n is not Ready"
done

# ---- a tiny image, built by the harness docker and pushed to the harness registry
img=$CLASSCACHE_TEST_REGISTRY/classcache-harness/busybox:smoke
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/rootfs/bin" "$work/rootfs/etc" "$work/rootfs/tmp"
chmod 1777 "$work/rootfs/tmp"
cp /bin/busybox "$work/rootfs/bin/busybox"
for a in sh httpd wget sleep id hostname cat echo ls mkdir nc ip; do ln -s busybox "$work/rootfs/bin/$a"; done
printf 'root:x:0:0:root:/root:/bin/sh\nnonroot:x:65532:65532:nonroot:/tmp:/bin/sh\n' >"$work/rootfs/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$work/rootfs/etc/group"
find "$work/rootfs" -exec touch -h -d '2000-01-01T00:00:00Z' {} +
tar -C "$work/rootfs" --sort=name --numeric-owner --owner=0 --group=0 -cf - . |
	"$CLASSCACHE_DOCKER_CLI" import --change 'CMD ["/bin/sh"]' - "$img" >/dev/null
"$CLASSCACHE_DOCKER_CLI" push "$img" >"$work/push.log" 2>&1 || { cat "$work/push.log"; fail "docker push $img"; }
layer=$("$CLASSCACHE_DOCKER_CLI" image inspect -f '{{index .RootFS.Layers 0}}' "$img")
say "pushed $img"
log_lines_before=$(wc -l <"$H/registry.log")

# ---- restricted namespace: Deployment as uid 65532, spread over the nodes
k delete namespace cc-smoke cc-smoke-host --ignore-not-found --wait=true >/dev/null
k create namespace cc-smoke >/dev/null
k label namespace cc-smoke pod-security.kubernetes.io/enforce=restricted >/dev/null
k create namespace cc-smoke-host >/dev/null
k label namespace cc-smoke-host pod-security.kubernetes.io/enforce=privileged >/dev/null
k -n cc-smoke create serviceaccount web >/dev/null
restricted_ctx='
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
        runAsGroup: 65532
        seccompProfile: {type: RuntimeDefault}'
restricted_container='
        securityContext:
          allowPrivilegeEscalation: false
          capabilities: {drop: [ALL]}'
k apply -f - >/dev/null <<EOF
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: cc-smoke}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      serviceAccountName: web
      terminationGracePeriodSeconds: 1
$restricted_ctx
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule, labelSelector: {matchLabels: {app: web}}}
      containers:
      - name: web
        image: $img
        command: [sh, -c, 'mkdir -p /tmp/www && echo "\$(hostname) on \$NODE uid=\$(id -u)" >/tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www']
        env: [{name: NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}]
        ports: [{containerPort: 8080}]
$restricted_container
---
apiVersion: v1
kind: Service
metadata: {name: web-local, namespace: cc-smoke}
spec:
  selector: {app: web}
  internalTrafficPolicy: Local
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: cc-smoke}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
EOF
k -n cc-smoke rollout status deployment/web --timeout=180s >/dev/null || {
	k -n cc-smoke get pods -o wide
	k -n cc-smoke describe pods | tail -30
	fail "deployment web did not roll out"
}
say "deployment web (restricted namespace, uid 65532):"
k -n cc-smoke get pods -o wide | sed 's/^/  /'
declare -A pod_on ip_on
while read -r name node ip; do
	pod_on[$node]=$name
	ip_on[$node]=$ip
done < <(k -n cc-smoke get pods -l app=web -o 'jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName} {.status.podIP}{"\n"}{end}')
[ ${#pod_on[@]} -eq 2 ] || fail "the 2 replicas are not on 2 different nodes"

say "non-compliant pod in the restricted namespace:"
if out=$(k -n cc-smoke run rootpod --image="$img" --restart=Never -- sleep 1 2>&1); then
	fail "a root pod was admitted in the restricted namespace"
fi
echo "  refused: $(echo "$out" | head -c 200)"

# ---- pod to pod across nodes, Services, logs and exec
a=node-a b=node-b
out=$(get cc-smoke "${pod_on[$a]}" "${ip_on[$b]}" 8080)
say "pod on $a -> pod IP ${ip_on[$b]} on $b: $out"
grep -q "on $b uid=65532" <<<"$out" || fail "cross-node pod to pod"
out=$(get cc-smoke "${pod_on[$b]}" "${ip_on[$a]}" 8080)
say "pod on $b -> pod IP ${ip_on[$a]} on $a: $out"
grep -q "on $a uid=65532" <<<"$out" || fail "cross-node pod to pod"
local_ip=$(k -n cc-smoke get svc web-local -o 'jsonpath={.spec.clusterIP}')
cluster_ip=$(k -n cc-smoke get svc web -o 'jsonpath={.spec.clusterIP}')
for n in $a $b; do
	for i in 1 2 3; do
		out=$(get cc-smoke "${pod_on[$n]}" "$local_ip" 80)
		say "pod on $n -> Service web-local $local_ip (internalTrafficPolicy Local) #$i: $out"
		grep -q "on $n uid" <<<"$out" || fail "internalTrafficPolicy Local answered from another node"
	done
done
seen=""
for i in 1 2 3 4 5 6 7 8; do
	seen+=$(get cc-smoke "${pod_on[$a]}" "$cluster_ip" 80 | awk '{print $3}')" "
done
say "pod on $a -> Service web $cluster_ip (Cluster policy) x8 answered from: $seen"
if k -n cc-smoke exec "${pod_on[$a]}" -- sh -c 'nc -w 3 10.96.0.1 443 </dev/null'; then
	say "pod on $a -> 10.96.0.1:443 (Service kubernetes -> API server $CLASSCACHE_CLUSTER_API_SERVER): TCP connect OK"
else
	fail "pod on $a cannot connect to the kubernetes Service 10.96.0.1:443"
fi
say "kubectl logs of ${pod_on[$b]}: $(k -n cc-smoke logs "${pod_on[$b]}" 2>&1 | head -c 200)(empty is fine)"

# ---- hostPort and hostNetwork (privileged namespace), reached at status.hostIP
k apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: hostport, namespace: cc-smoke-host}
spec:
  nodeName: $a
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: $img
    command: [sh, -c, 'mkdir -p /tmp/www && echo "hostPort pod on \$(hostname)" >/tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www']
    ports: [{containerPort: 8080, hostPort: 18080}]
---
apiVersion: v1
kind: Pod
metadata: {name: hostnet, namespace: cc-smoke-host}
spec:
  nodeName: $a
  hostNetwork: true
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: $img
    command: [sh, -c, 'mkdir -p /tmp/www && echo "hostNetwork pod, node netns ip: \$(ip -4 -o addr show eth0 | awk "{print \\\$4}")" >/tmp/www/index.html && exec httpd -f -p 18081 -h /tmp/www']
    env: [{name: REG, value: "$CLASSCACHE_TEST_REGISTRY"}]
EOF
k -n cc-smoke-host wait --for=condition=Ready pod/hostport pod/hostnet --timeout=120s >/dev/null || {
	k -n cc-smoke-host describe pods | tail -30
	fail "hostPort/hostNetwork pods not Ready"
}
host_ip=$(k -n cc-smoke-host get pod hostport -o 'jsonpath={.status.hostIP}')
out=$(get cc-smoke "${pod_on[$b]}" "$host_ip" 18080)
say "pod on $b -> hostPort $host_ip:18080 (status.hostIP of $a): $out"
grep -q "hostPort pod" <<<"$out" || fail "hostPort from another node's pod"
out=$(curl -fsS --max-time 5 "http://$host_ip:18080/")
say "host -> hostPort $host_ip:18080: $out"
out=$(get cc-smoke "${pod_on[$b]}" "$host_ip" 18081)
say "pod on $b -> hostNetwork pod $host_ip:18081: $out"
grep -q "$host_ip" <<<"$out" || fail "hostNetwork pod at status.hostIP"
out=$(k -n cc-smoke-host exec hostnet -- sh -c 'printf "GET /v2/ HTTP/1.0\r\n\r\n" | nc -w 5 127.0.0.1 "${REG#*:}"' | head -1)
say "hostNetwork pod on $a -> registry http://$CLASSCACHE_TEST_REGISTRY/v2/: $out"

# ---- an image volume (beta, on by default in 1.35), in the restricted namespace
k apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: imagevolume, namespace: cc-smoke}
spec:
  terminationGracePeriodSeconds: 1
  securityContext: {runAsNonRoot: true, runAsUser: 65532, seccompProfile: {type: RuntimeDefault}}
  containers:
  - name: c
    image: $img
    command: [sh, -c, 'ls /cache/bin/busybox && exec sleep 3600']
    volumeMounts: [{name: cache, mountPath: /cache}]
    securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
  volumes:
  - name: cache
    image: {reference: "$img", pullPolicy: IfNotPresent}
EOF
k -n cc-smoke wait --for=condition=Ready pod/imagevolume --timeout=120s >/dev/null || fail "image volume pod not Ready"
say "image volume $img mounted at /cache: $(k -n cc-smoke logs imagevolume)"

# ---- registry access log: the nodes' blob GETs
say "registry access log since the push (blob GETs by containerd):"
tail -n +"$((log_lines_before + 1))" "$H/registry.log" | grep '"GET /v2/.*/blobs/' | grep -i containerd |
	sed -E 's/^([^ ]+) .*"(GET [^"]*)" ([0-9]+) ([0-9]+) .*/  \2 -> \3, \4 bytes/' | head -10 || true
n=$(tail -n +"$((log_lines_before + 1))" "$H/registry.log" | grep -c "GET /v2/classcache-harness/busybox/blobs/" || true)
say "blob GETs of the busybox image since the push: $n (layer diff id $layer)"
say "OK"
