#!/usr/bin/env bash
# Builds actionlint from the Go module proxy, at the version pinned in test/tools/actionlint/go.mod, into a cache
# outside the repository keyed by that version and by go.mod and go.sum. `make workflows` (part of `make test`) lints
# .github/workflows with it.
# Prints the directory on stdout; it holds the binary `actionlint`. Everything else goes to stderr.
set -euo pipefail

tools=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$tools/cached-build.sh"
cached_go_tool actionlint github.com/rhysd/actionlint github.com/rhysd/actionlint/cmd/actionlint "actionlint" "under a minute" '-X github.com/rhysd/actionlint.version=$version'
