#!/usr/bin/env bash
# Builds kube-router (its network policy controller is what k3s enforces NetworkPolicies with), from the
# Go module proxy at the version pinned in test/tools/kuberouter/go.mod, into a cache outside the
# repository keyed by that version and by go.mod and go.sum, and installs the Debian packages iptables
# and ipset it drives when they are missing. Prints the directory on stdout; it holds the binary
# `kube-router`. Everything else goes to stderr.
#
# v2.1.0 is the only version the module proxy serves, and security flaws are reported against it.
# Acceptable here: the network test (test/network) runs it only inside network namespaces it creates
# and deletes, and it never ships.
set -euo pipefail

tools=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$tools/cached-build.sh"
cd "$tools/kuberouter"

if ! command -v iptables >/dev/null || ! command -v ipset >/dev/null; then
  echo ">> installing the Debian packages iptables and ipset (kube-router drives them)" >&2
  apt-get update >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y iptables ipset >&2
fi

sum_key=$(cat go.mod go.sum | sha256sum | cut -c1-12)
# The version is read from go.mod rather than with `go list`, so a cached build is found without Go.
kr_version=$(awk '$1 == "github.com/cloudnativelabs/kube-router/v2" { print $2; exit }' go.mod)
out_dir="$cache_root/kube-router-$kr_version-$sum_key"

complete() { [ -f "$out_dir/.complete" ] && [ -x "$out_dir/kube-router" ]; }

build() {
  go_build_with_progress 100 -trimpath -ldflags "-s -w" -o "$1/kube-router" github.com/cloudnativelabs/kube-router/v2/cmd/kube-router
}

cached_build "kube-router $kr_version" "about 4 minutes on 2 cores"
