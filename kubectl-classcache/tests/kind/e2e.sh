#!/usr/bin/env bash
# End-to-end check of kubectl-classcache on a real cluster made with kind, for machines that can
# run kind (CI runners, laptops); this project's build machine cannot. It installs the fetcher,
# enables a JVM Deployment, checks that its pod started with the archive mapped, then undoes all.
#
# Needs: kind, kubectl, docker, and an app image whose archive is in a registry the cluster can
# pull from (classcache-build pushed it), plus the fetcher image:
#   APP_IMAGE=registry.example/shop/petclinic:3.2.0 FETCHER_IMAGE=registry.example/classcache-fetcher:0.1.0 \
#     kubectl-classcache/tests/kind/e2e.sh
set -euo pipefail

: "${APP_IMAGE:?set APP_IMAGE to an image that has a classcache archive}"
: "${FETCHER_IMAGE:?set FETCHER_IMAGE to the classcache-fetcher image}"
CLUSTER="${CLUSTER:-classcache-e2e}"
PLUGIN="${PLUGIN:-$(cd "$(dirname "$0")/../../.." && pwd)/target/debug/kubectl-classcache}"
NS=classcache-e2e-app

cleanup() { [ "${KEEP:-0}" = 1 ] || kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true; }
trap cleanup EXIT

kind get clusters | grep -qx "$CLUSTER" || kind create cluster --name "$CLUSTER" --wait 120s
kubectl config use-context "kind-$CLUSTER"

"$PLUGIN" install --image "$FETCHER_IMAGE"
kubectl -n classcache rollout status daemonset/classcache-fetcher --timeout=180s

kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f -
kubectl -n "$NS" create deployment app --image "$APP_IMAGE" --dry-run=client -o yaml | kubectl apply -f -
before=$(kubectl -n "$NS" get deploy app -o jsonpath='{.spec.template}')

"$PLUGIN" enable deploy/app -n "$NS" --pin-image
kubectl -n "$NS" rollout status deploy/app --timeout=300s
pod=$(kubectl -n "$NS" get pod -l app=app -o jsonpath='{.items[0].metadata.name}')
archive=$(kubectl -n "$NS" get pod "$pod" -o jsonpath='{.spec.containers[0].env[?(@.name=="JAVA_TOOL_OPTIONS")].value}' | grep -o '/classcache/sha256-[0-9a-f]*')
kubectl -n "$NS" exec "$pod" -- test -s "$archive"
kubectl -n "$NS" exec "$pod" -- sh -c 'grep -q classcache /proc/1/maps' || echo "warning: the archive is not mapped by PID 1 (is the JVM PID 1?)"
"$PLUGIN" status deploy/app -n "$NS"

"$PLUGIN" uninstall && { echo "uninstall must refuse while app is enabled"; exit 1; } || true
"$PLUGIN" disable deploy/app -n "$NS"
after=$(kubectl -n "$NS" get deploy app -o jsonpath='{.spec.template}')
# --pin-image changed the image; disable restores it too, so the template must be back exactly.
[ "$before" = "$after" ] || { echo "disable did not restore the pod template"; diff <(echo "$before") <(echo "$after"); exit 1; }
"$PLUGIN" uninstall
echo "kind e2e: ok"
