#!/usr/bin/env bash
# Builds the real Flux kustomize-controller (from the Go module proxy, at the version pinned in
# test/tools/flux/go.mod) into a cache outside the repository keyed by that version and by go.mod and
# go.sum, and copies the CRDs it needs next to it: the Kustomization CRD from the kustomize-controller
# module, and the GitRepository, OCIRepository, Bucket and ExternalArtifact CRDs from the
# source-controller module at the version of source-controller/api the controller is built with (the
# controller watches GitRepositories, OCIRepositories and Buckets, and does not start without their
# CRDs). No source-controller runs: tests serve the artifact tarball themselves and write the
# GitRepository's status. A cached build is reused as it is; the first build takes a few minutes.
# Prints the directory on stdout; it holds the binary `kustomize-controller` and the CRDs in crds/.
# Everything else goes to stderr.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/flux" && pwd)
cd "$here"

sum_key=$(cat go.mod go.sum | sha256sum | cut -c1-12)
# The version is read from go.mod rather than with `go list`, so a cached build is found without Go.
kc_version=$(awk '$1 == "github.com/fluxcd/kustomize-controller" { print $2; exit }' go.mod)
cache_root=${BACKUPGUARD_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/backupguard/tools}
out_dir="$cache_root/flux-kustomize-controller-$kc_version-$sum_key"

complete() {
  [ -f "$out_dir/.complete" ] && [ -x "$out_dir/kustomize-controller" ] &&
    [ -f "$out_dir/crds/kustomize.toolkit.fluxcd.io_kustomizations.yaml" ] &&
    [ -f "$out_dir/crds/source.toolkit.fluxcd.io_gitrepositories.yaml" ]
}

if complete; then
  echo "$out_dir"
  exit 0
fi

mkdir -p "$cache_root"
# One build at a time, shared with ensure.sh and ensure-certmanager.sh.
exec 9>"$cache_root/.lock"
flock 9
if complete; then
  echo "$out_dir"
  exit 0
fi

echo ">> building Flux kustomize-controller $kc_version into $out_dir" >&2
echo ">> this happens once per version and takes 3-5 minutes on 2 cores; later runs reuse it" >&2
tmp=$(mktemp -d "$cache_root/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
start=$(date +%s)
# -v names each package as it is compiled; print a progress line every 100 of them.
go build -v -trimpath -ldflags "-s -w" -o "$tmp/kustomize-controller" github.com/fluxcd/kustomize-controller 2>&1 |
  awk -v start="$start" '
    /^(#|go: |.*\.go:[0-9]+)/ { print; next }
    { n++; if (n % 100 == 0) { printf(">> %d packages compiled (%ds)\n", n, systime() - start); fflush() } }
  ' >&2
status=${PIPESTATUS[0]}
if [ "$status" -ne 0 ]; then
  echo ">> build failed" >&2
  exit "$status"
fi

mkdir "$tmp/crds"
kc_dir=$(go list -m -f '{{.Dir}}' github.com/fluxcd/kustomize-controller)
cp "$kc_dir/config/crd/bases/kustomize.toolkit.fluxcd.io_kustomizations.yaml" "$tmp/crds/"

# The source CRDs are not in the api module the controller imports, only in the source-controller
# module of the same version, which is not part of the build: download it outside any module (so
# go.mod and go.sum here stay as they are) and copy the CRDs of the kinds the controller reads.
sc_version=$(go list -m -f '{{.Version}}' github.com/fluxcd/source-controller/api)
echo ">> fetching the source CRDs from github.com/fluxcd/source-controller@$sc_version" >&2
sc_dir=$(cd "$tmp" && GOWORK=off GO111MODULE=on go mod download -json "github.com/fluxcd/source-controller@$sc_version" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
if [ -z "$sc_dir" ] || [ ! -d "$sc_dir/config/crd/bases" ]; then
  echo ">> could not download github.com/fluxcd/source-controller@$sc_version" >&2
  exit 1
fi
for kind in gitrepositories ocirepositories buckets externalartifacts; do
  cp "$sc_dir/config/crd/bases/source.toolkit.fluxcd.io_$kind.yaml" "$tmp/crds/"
done
chmod u+w "$tmp"/crds/*.yaml

touch "$tmp/.complete"
rm -rf "$out_dir"
mv "$tmp" "$out_dir"
trap - EXIT
echo ">> built in $(( $(date +%s) - start ))s" >&2
echo "$out_dir"
