#!/usr/bin/env bash
# Builds the Helm CLI from the Go module proxy, at the version pinned in test/tools/helm/go.mod, into a cache
# outside the repository keyed by that version and by go.mod and go.sum. test/chart runs it (lint, template, install,
# upgrade, uninstall), and the release packages and pushes the chart with it.
# Prints the directory on stdout; it holds the binary `helm`. Everything else goes to stderr.
set -euo pipefail

tools=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$tools/cached-build.sh"
# Helm's release build stamps the Kubernetes version it was built with (from client-go's): without it,
# helm template and lint assume Kubernetes v1.20 and refuse the chart's kubeVersion.
k8s_minor=$(awk '$1 == "k8s.io/client-go" { split($2, v, "."); print v[2]; exit }' "$tools/helm/go.mod")
stamp=""
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  stamp+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$k8s_minor"
done
cached_go_tool helm helm.sh/helm/v3 helm.sh/helm/v3/cmd/helm "the Helm CLI" "about 5 minutes on 2 busy cores" \
  "-X helm.sh/helm/v3/internal/version.version=\$version$stamp"
