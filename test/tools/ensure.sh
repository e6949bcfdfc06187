#!/usr/bin/env bash
# Builds the real kube-apiserver, etcd and kubectl that the tests and the demo run, from the Go module
# proxy at the versions pinned in this folder's go.mod, into a cache outside the repository keyed by
# those versions and by go.sum. A cached set is reused as it is; the first build takes minutes.
# Prints the directory holding the binaries on stdout; everything else goes to stderr.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/cached-build.sh"
cd "$here"

k8s_version=$(go list -m -f '{{.Version}}' k8s.io/kubernetes)
etcd_version=$(go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)
sum_key=$(cat go.mod go.sum | sha256sum | cut -c1-12)
out_dir="$cache_root/kubernetes-$k8s_version-etcd-$etcd_version-$sum_key"

complete() { [ -f "$out_dir/.complete" ] && [ -x "$out_dir/kube-apiserver" ] && [ -x "$out_dir/etcd" ] && [ -x "$out_dir/kubectl" ]; }

build() {
  local major minor stamp=""
  major=${k8s_version#v}; major=${major%%.*}
  minor=${k8s_version#v*.}; minor=${minor%%.*}
  # kube-apiserver reads its version from component-base, kubectl its client version from client-go;
  # unstamped binaries report v0.0.0 and kubectl refuses to talk to them.
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    stamp+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  go_build_with_progress 200 -ldflags "-s -w$stamp" -o "$1/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl go.etcd.io/etcd/server/v3
  # go names a binary built from a ".../server/v3" package "server".
  mv "$1/server" "$1/etcd"
}

cached_build "kube-apiserver and kubectl $k8s_version and etcd $etcd_version" "about 6-9 minutes on 2 cores"
