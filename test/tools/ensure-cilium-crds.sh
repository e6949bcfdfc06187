#!/usr/bin/env bash
# Fetches Cilium's CiliumNetworkPolicy CRD, as Cilium ships it, from the github.com/cilium/cilium module
# on the Go module proxy (the module holds the generated CRDs that the agent installs,
# pkg/k8s/apis/cilium.io/client/crds/v2), into a cache outside the repository keyed by the version.
# Cilium itself cannot run in the tests; its CRD lets the real kube-apiserver validate the policies the
# window writes. Prints the directory on stdout; it holds crds/ciliumnetworkpolicies.yaml. Everything
# else goes to stderr.
set -euo pipefail

tools=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$tools/cached-build.sh"

# The newest stable release the proxy serves. The window's policies set enableDefaultDeny, which 1.15's
# schema lacks (there the API server drops it with a warning).
cilium_version=${CILIUM_VERSION:-v1.20.2}
out_dir="$cache_root/cilium-crds-$cilium_version"

complete() { [ -f "$out_dir/.complete" ] && [ -f "$out_dir/crds/ciliumnetworkpolicies.yaml" ]; }

build() {
  local dir
  echo ">> fetching github.com/cilium/cilium@$cilium_version (about 40 MB)" >&2
  # Outside any module, so no go.mod here changes.
  dir=$(cd "$1" && GOWORK=off GO111MODULE=on GOFLAGS=-mod=mod go mod download -json "github.com/cilium/cilium@$cilium_version" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  if [ -z "$dir" ] || [ ! -f "$dir/pkg/k8s/apis/cilium.io/client/crds/v2/ciliumnetworkpolicies.yaml" ]; then
    echo ">> could not download github.com/cilium/cilium@$cilium_version" >&2
    exit 1
  fi
  mkdir "$1/crds"
  cp "$dir/pkg/k8s/apis/cilium.io/client/crds/v2/ciliumnetworkpolicies.yaml" "$1/crds/"
  chmod u+w "$1"/crds/*.yaml
}

cached_build "Cilium's CiliumNetworkPolicy CRD $cilium_version" "seconds (one module download)"
