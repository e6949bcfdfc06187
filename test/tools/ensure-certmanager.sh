#!/usr/bin/env bash
# Builds the cert-manager runner in test/tools/certmanager (the real cert-manager controllers and CA
# injector, from the Go module proxy at the version pinned in that folder's go.mod) into a cache
# outside the repository keyed by that version and by go.mod and go.sum, and copies cert-manager's
# CRDs next to it. A cached build is reused as it is; the first build takes a few minutes.
# Prints the directory on stdout; it holds the binary `certmanager` and the CRDs in crds/. Everything
# else goes to stderr.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/certmanager" && pwd)
cd "$here"

# main.go is part of the key too, so an edited runner is rebuilt (Go's build cache keeps that quick).
sum_key=$(cat go.mod go.sum main.go | sha256sum | cut -c1-12)
# The version is read from go.mod rather than with `go list`, so a cached build is found without Go.
cm_version=$(awk '$1 == "github.com/cert-manager/cert-manager" { print $2; exit }' go.mod)
cache_root=${BACKUPGUARD_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/backupguard/tools}
out_dir="$cache_root/cert-manager-$cm_version-$sum_key"

complete() { [ -f "$out_dir/.complete" ] && [ -x "$out_dir/certmanager" ] && [ -f "$out_dir/crds/cert-manager.io_certificates.yaml" ]; }

if complete; then
  echo "$out_dir"
  exit 0
fi

mkdir -p "$cache_root"
# One build at a time, shared with ensure.sh, even when make test and make demo start together.
exec 9>"$cache_root/.lock"
flock 9
if complete; then
  echo "$out_dir"
  exit 0
fi

echo ">> building the cert-manager $cm_version runner into $out_dir" >&2
echo ">> this happens once per version and takes about 2.5 minutes on 2 idle cores; later runs reuse it" >&2
tmp=$(mktemp -d "$cache_root/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
start=$(date +%s)
# -v names each package as it is compiled; print a progress line every 100 of them.
go build -v -trimpath -ldflags "-s -w" -o "$tmp/certmanager" . 2>&1 |
  awk -v start="$start" '
    /^(#|go: |.*\.go:[0-9]+)/ { print; next }
    { n++; if (n % 100 == 0) { printf(">> %d packages compiled (%ds)\n", n, systime() - start); fflush() } }
  ' >&2
status=${PIPESTATUS[0]}
if [ "$status" -ne 0 ]; then
  echo ">> build failed" >&2
  exit "$status"
fi
module_dir=$(go list -m -f '{{.Dir}}' github.com/cert-manager/cert-manager)
mkdir "$tmp/crds"
cp "$module_dir"/deploy/crds/*.yaml "$tmp/crds/"
chmod u+w "$tmp"/crds/*.yaml
touch "$tmp/.complete"
rm -rf "$out_dir"
mv "$tmp" "$out_dir"
trap - EXIT
echo ">> built in $(( $(date +%s) - start ))s" >&2
echo "$out_dir"
