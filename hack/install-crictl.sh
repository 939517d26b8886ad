#!/usr/bin/env bash
# install-crictl.sh: make crictl, the CRI's command-line client, available for the Kubernetes
# end-to-end tests, which drive containerd's CRI plugin with it as the kubelet would.
#
# Builds sigs.k8s.io/cri-tools/cmd/crictl at a pinned version with `go install` into a
# project-independent tool directory (default /opt/cedana/bin, override with CEDANA_TOOLS_BIN),
# so every checkout and worktree on the machine shares one binary. The first build takes a minute
# or two; re-running the script when the pinned version is present returns at once.
# Prints the binary's path on stdout when done.
set -euo pipefail

version=${CEDANA_CRICTL_VERSION:-v1.37.0}
bindir=${CEDANA_TOOLS_BIN:-/opt/cedana/bin}
bin=$bindir/crictl

say() { printf '[install-crictl] %s\n' "$*" >&2; }

# usable BINARY: true when BINARY runs and `crictl --version` reports the pinned version
# ("crictl version v1.37.0").
usable() {
  local out
  [ -x "$1" ] || return 1
  out=$("$1" --version 2>/dev/null) || return 1
  printf '%s\n' "$out" | grep -Eq "^crictl version v?${version#v}\$"
}

if usable "$bin"; then
  say "ok: $("$bin" --version 2>/dev/null) at $bin"
  printf '%s\n' "$bin"
  exit 0
fi

command -v go >/dev/null || { say "go is not on PATH; install Go first"; exit 1; }

mkdir -p "$bindir"
say "building crictl $version into $bindir (takes a minute or two the first time)"
start=$(date +%s)
# Run outside any module so the project's go.mod and GOFLAGS cannot influence the build. Plain
# `go install` leaves crictl's version "unknown"; stamp it as cri-tools' Makefile does.
(cd / && GOBIN="$bindir" GOFLAGS= CGO_ENABLED=0 go install -trimpath \
  -ldflags "-X sigs.k8s.io/cri-tools/pkg/version.Version=$version" \
  "sigs.k8s.io/cri-tools/cmd/crictl@$version")

if ! usable "$bin"; then
  say "built $bin but \`$bin --version\` does not report $version:"
  "$bin" --version >&2 || true
  exit 1
fi
say "ok: $("$bin" --version 2>/dev/null) at $bin (built in $(( $(date +%s) - start ))s)"
printf '%s\n' "$bin"
