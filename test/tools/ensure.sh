#!/usr/bin/env bash
# Builds the real kube-apiserver, etcd and kubectl that the tests and the demo run, from the Go module
# proxy at the versions pinned in this folder's go.mod, into a cache outside the repository keyed by
# those versions and by go.sum. A cached set is reused as it is; the first build takes minutes.
# Prints the directory holding the binaries on stdout; everything else goes to stderr.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here"

k8s_version=$(go list -m -f '{{.Version}}' k8s.io/kubernetes)
etcd_version=$(go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)
sum_key=$(cat go.mod go.sum | sha256sum | cut -c1-12)
cache_root=${BACKUPGUARD_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/backupguard/tools}
bin_dir="$cache_root/kubernetes-$k8s_version-etcd-$etcd_version-$sum_key"

complete() { [ -f "$bin_dir/.complete" ] && [ -x "$bin_dir/kube-apiserver" ] && [ -x "$bin_dir/etcd" ] && [ -x "$bin_dir/kubectl" ]; }

if complete; then
  echo "$bin_dir"
  exit 0
fi

mkdir -p "$cache_root"
# One build at a time, even when make test and make demo start together.
exec 9>"$cache_root/.lock"
flock 9
if complete; then
  echo "$bin_dir"
  exit 0
fi

major=${k8s_version#v}; major=${major%%.*}
minor=${k8s_version#v*.}; minor=${minor%%.*}
stamp=""
# kube-apiserver reads its version from component-base, kubectl its client version from client-go;
# unstamped binaries report v0.0.0 and kubectl refuses to talk to them.
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  stamp+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done

echo ">> building kube-apiserver and kubectl $k8s_version and etcd $etcd_version into $bin_dir" >&2
echo ">> this happens once per version and takes about 9 minutes on 2 cores; later runs reuse it" >&2
tmp=$(mktemp -d "$cache_root/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
start=$(date +%s)
# -v names each package as it is compiled; print a progress line every 200 of them.
go build -v -ldflags "-s -w$stamp" -o "$tmp/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl go.etcd.io/etcd/server/v3 2>&1 |
  awk -v start="$start" '
    /^(#|go: |.*\.go:[0-9]+)/ { print; next }
    { n++; if (n % 200 == 0) { printf(">> %d packages compiled (%ds)\n", n, systime() - start); fflush() } }
  ' >&2
status=${PIPESTATUS[0]}
if [ "$status" -ne 0 ]; then
  echo ">> build failed" >&2
  exit "$status"
fi
# go names a binary built from a ".../server/v3" package "server".
mv "$tmp/server" "$tmp/etcd"
touch "$tmp/.complete"
rm -rf "$bin_dir"
mv "$tmp" "$bin_dir"
trap - EXIT
echo ">> built in $(( $(date +%s) - start ))s" >&2
echo "$bin_dir"
