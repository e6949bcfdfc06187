#!/usr/bin/env bash
# Builds Prometheus' promtool from the Go module proxy, at the version pinned in test/tools/promtool/go.mod, into a cache
# outside the repository keyed by that version and by go.mod and go.sum. test/chart runs `promtool test rules` with it.
# Prints the directory on stdout; it holds the binary `promtool`. Everything else goes to stderr.
set -euo pipefail

tools=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$tools/cached-build.sh"
# Built with Prometheus's own build tag remove_all_sd (plugins/plugin_*.go: `//go:build !remove_all_sd ||
# enable_*_sd`): `check rules` and `test rules` need no service discovery, and leaving out every cloud SDK
# cuts the cold build from 40 minutes on 2 busy cores to under 3.
cached_go_tool promtool github.com/prometheus/prometheus github.com/prometheus/prometheus/cmd/promtool "Prometheus' promtool" "about 3 minutes on 2 busy cores" "" remove_all_sd
