#!/usr/bin/env bash
# Builds the Helm CLI from the Go module proxy, at the version pinned in test/tools/helm/go.mod, into a cache
# outside the repository keyed by that version and by go.mod and go.sum. test/chart runs it (lint, template, install,
# upgrade, uninstall), and the release packages and pushes the chart with it.
# Prints the directory on stdout; it holds the binary `helm`. Everything else goes to stderr.
set -euo pipefail

tools=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$tools/cached-build.sh"
cached_go_tool helm helm.sh/helm/v3 helm.sh/helm/v3/cmd/helm "the Helm CLI" "several minutes" '-X helm.sh/helm/v3/internal/version.version=$version'
