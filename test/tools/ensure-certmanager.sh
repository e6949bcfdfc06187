#!/usr/bin/env bash
# Builds the cert-manager runner in test/tools/certmanager (the real cert-manager controllers and CA
# injector, from the Go module proxy at the version pinned in that folder's go.mod) into a cache
# outside the repository keyed by that version and by go.mod, go.sum and main.go, and copies
# cert-manager's CRDs next to it. Prints the directory on stdout; it holds the binary `certmanager` and
# the CRDs in crds/. Everything else goes to stderr.
set -euo pipefail

tools=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$tools/cached-build.sh"
cd "$tools/certmanager"

# main.go is part of the key too, so an edited runner is rebuilt (Go's build cache keeps that quick).
sum_key=$(cat go.mod go.sum main.go | sha256sum | cut -c1-12)
# The version is read from go.mod rather than with `go list`, so a cached build is found without Go.
cm_version=$(awk '$1 == "github.com/cert-manager/cert-manager" { print $2; exit }' go.mod)
out_dir="$cache_root/cert-manager-$cm_version-$sum_key"

complete() { [ -f "$out_dir/.complete" ] && [ -x "$out_dir/certmanager" ] && [ -f "$out_dir/crds/cert-manager.io_certificates.yaml" ]; }

build() {
  go_build_with_progress 100 -trimpath -ldflags "-s -w" -o "$1/certmanager" .
  local module_dir
  module_dir=$(go list -m -f '{{.Dir}}' github.com/cert-manager/cert-manager)
  mkdir "$1/crds"
  cp "$module_dir"/deploy/crds/*.yaml "$1/crds/"
  chmod u+w "$1"/crds/*.yaml
}

cached_build "the cert-manager $cm_version runner" "about 2.5 minutes on 2 idle cores"
