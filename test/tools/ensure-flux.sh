#!/usr/bin/env bash
# Builds the real Flux kustomize-controller (from the Go module proxy, at the version pinned in
# test/tools/flux/go.mod) into a cache outside the repository keyed by that version and by go.mod and
# go.sum, and copies the CRDs it needs next to it: the Kustomization CRD from the kustomize-controller
# module, and the GitRepository, OCIRepository, Bucket and ExternalArtifact CRDs from the
# source-controller module at the version of source-controller/api the controller is built with (the
# controller watches GitRepositories, OCIRepositories and Buckets, and does not start without their
# CRDs). No source-controller runs: tests serve the artifact tarball themselves and write the
# GitRepository's status. Prints the directory on stdout; it holds the binary `kustomize-controller`
# and the CRDs in crds/. Everything else goes to stderr.
set -euo pipefail

tools=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$tools/cached-build.sh"
cd "$tools/flux"

sum_key=$(cat go.mod go.sum | sha256sum | cut -c1-12)
# The version is read from go.mod rather than with `go list`, so a cached build is found without Go.
kc_version=$(awk '$1 == "github.com/fluxcd/kustomize-controller" { print $2; exit }' go.mod)
out_dir="$cache_root/flux-kustomize-controller-$kc_version-$sum_key"

complete() {
  [ -f "$out_dir/.complete" ] && [ -x "$out_dir/kustomize-controller" ] &&
    [ -f "$out_dir/crds/kustomize.toolkit.fluxcd.io_kustomizations.yaml" ] &&
    [ -f "$out_dir/crds/source.toolkit.fluxcd.io_gitrepositories.yaml" ]
}

build() {
  go_build_with_progress 100 -trimpath -ldflags "-s -w" -o "$1/kustomize-controller" github.com/fluxcd/kustomize-controller
  mkdir "$1/crds"
  local kc_dir sc_version sc_dir
  kc_dir=$(go list -m -f '{{.Dir}}' github.com/fluxcd/kustomize-controller)
  cp "$kc_dir/config/crd/bases/kustomize.toolkit.fluxcd.io_kustomizations.yaml" "$1/crds/"
  # The source CRDs are not in the api module the controller imports, only in the source-controller
  # module of the same version, which is not part of the build: download it outside any module (so
  # go.mod and go.sum here stay as they are) and copy the CRDs of the kinds the controller reads.
  sc_version=$(go list -m -f '{{.Version}}' github.com/fluxcd/source-controller/api)
  echo ">> fetching the source CRDs from github.com/fluxcd/source-controller@$sc_version" >&2
  sc_dir=$(cd "$1" && GOWORK=off GO111MODULE=on go mod download -json "github.com/fluxcd/source-controller@$sc_version" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  if [ -z "$sc_dir" ] || [ ! -d "$sc_dir/config/crd/bases" ]; then
    echo ">> could not download github.com/fluxcd/source-controller@$sc_version" >&2
    exit 1
  fi
  for kind in gitrepositories ocirepositories buckets externalartifacts; do
    cp "$sc_dir/config/crd/bases/source.toolkit.fluxcd.io_$kind.yaml" "$1/crds/"
  done
  chmod u+w "$1"/crds/*.yaml
}

cached_build "Flux kustomize-controller $kc_version" "3-5 minutes on 2 cores"
