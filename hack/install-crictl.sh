#!/usr/bin/env bash
# install-crictl.sh: make crictl, the CRI's command-line client, available for the Kubernetes
# end-to-end tests, which drive containerd's CRI plugin with it as the kubelet would.
#
# Builds sigs.k8s.io/cri-tools/cmd/crictl at a pinned version into the shared tool directory
# (hack/go-tool.sh: /opt/cedana/bin unless CEDANA_TOOLS_BIN says otherwise). Re-running it when
# the pinned version is there returns at once. Prints the binary's path on stdout when done.
set -euo pipefail

version=${CEDANA_CRICTL_VERSION:-v1.37.0}

say() { printf '[install-crictl] %s\n' "$*" >&2; }

# shellcheck source=hack/go-tool.sh
. "$(dirname "$0")/go-tool.sh"
# Plain `go install` leaves crictl's version "unknown"; stamp it as cri-tools' Makefile does.
go_tool_install crictl "sigs.k8s.io/cri-tools/cmd/crictl@$version" "-X sigs.k8s.io/cri-tools/pkg/version.Version=$version" \
  "^crictl version v?${version#v}\$"
