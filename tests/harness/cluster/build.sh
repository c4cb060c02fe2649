#!/usr/bin/env bash
# tests/harness/cluster/build.sh OUT_DIR - build the harness cluster's binaries into OUT_DIR
# (made by cluster-up.sh as ${CLASSCACHE_CACHE_DIR:-/var/cache/classcache}/cluster-<hash>/bin,
# <hash> covering this script and every go.mod, go.sum and .go file under this dir).
#
# Three modules, each built with ONE `go build` so packages shared between its commands
# compile once:
#   .            k8s.io/kubernetes v1.35.4: kube-apiserver kube-controller-manager
#                kube-scheduler kubelet kube-proxy kubectl; etcd v3.6 (./cmd/etcd)
#   ./containerd containerd v2.2 (v2.2 is the line built against k8s.io/* v0.34; later ones
#                want v0.36+): containerd, containerd-shim-runc-v2, ctr
#   ./cni        containernetworking/plugins v1.10.0: bridge host-local loopback portmap
# and the sandbox image's ./pause/pause.c with gcc -static.
# All static (CGO_ENABLED=0), -trimpath -ldflags '-s -w'. Uses the caller's GOCACHE and
# GOMODCACHE, and only the Go module proxy (GOPROXY as configured). Progress on stdout.
set -euo pipefail
out=$1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
mkdir -p "$out"
# readonly: a build never edits go.mod or go.sum in the checkout.
export CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false"
t0=$(date +%s)
step() { printf 'build: [%ds] %s\n' $(($(date +%s) - t0)) "$*"; }

K8S_VERSION=v1.35.4
kv=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	kv+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=35"
	kv+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

step "kubernetes $K8S_VERSION + etcd"
(cd "$here" && go build -trimpath -ldflags "-s -w$kv" -o "$out/" \
	k8s.io/kubernetes/cmd/kube-apiserver \
	k8s.io/kubernetes/cmd/kube-controller-manager \
	k8s.io/kubernetes/cmd/kube-scheduler \
	k8s.io/kubernetes/cmd/kubelet \
	k8s.io/kubernetes/cmd/kube-proxy \
	k8s.io/kubernetes/cmd/kubectl \
	./cmd/etcd)

step "containerd"
# The kubelet refuses a runtime whose CRI Version response has no RuntimeVersion.
ctrd_version=$(cd "$here/containerd" && go list -m -f '{{.Version}}' github.com/containerd/containerd/v2)
(cd "$here/containerd" && go build -trimpath -tags 'no_btrfs no_devmapper no_zfs urfave_cli_no_docs' \
	-ldflags "-s -w -X github.com/containerd/containerd/v2/version.Version=$ctrd_version -X github.com/containerd/containerd/v2/version.Revision=module" \
	-o "$out/" \
	github.com/containerd/containerd/v2/cmd/containerd \
	github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2 \
	github.com/containerd/containerd/v2/cmd/ctr)

step "cni plugins"
(cd "$here/cni" && go build -trimpath -ldflags "-s -w" -o "$out/" \
	github.com/containernetworking/plugins/plugins/main/bridge \
	github.com/containernetworking/plugins/plugins/main/loopback \
	github.com/containernetworking/plugins/plugins/ipam/host-local \
	github.com/containernetworking/plugins/plugins/meta/portmap)
step "pause (gcc -static)"
gcc -static -Os -s -o "$out/pause" "$here/pause/pause.c"
step "done"
