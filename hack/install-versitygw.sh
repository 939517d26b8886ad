#!/usr/bin/env bash
# install-versitygw.sh: make the versitygw S3 server used by the storage tests available.
#
# Builds github.com/versity/versitygw/cmd/versitygw at a pinned version with `go install` into a
# project-independent tool directory (default /opt/cedana/bin, override with CEDANA_TOOLS_BIN),
# so every checkout and worktree on the machine shares one binary. The first build takes a few
# minutes; re-running the script when a working binary is present returns at once.
# Prints the binary's path on stdout when done.
set -euo pipefail

version=${CEDANA_VERSITYGW_VERSION:-v1.8.0}
bindir=${CEDANA_TOOLS_BIN:-/opt/cedana/bin}
bin=$bindir/versitygw

say() { printf '[install-versitygw] %s\n' "$*" >&2; }

# usable BINARY: true when BINARY runs and `versitygw --version` reports the pinned version
# (plain `go install` leaves it at "git"; the build below stamps it with -ldflags).
usable() {
  local out
  [ -x "$1" ] || return 1
  out=$("$1" --version 2>/dev/null) || return 1
  printf '%s\n' "$out" | grep -Eq "^Version *: *v?${version#v}\$"
}

if usable "$bin"; then
  say "ok: $("$bin" --version 2>/dev/null | head -n1) at $bin"
  printf '%s\n' "$bin"
  exit 0
fi

command -v go >/dev/null || { say "go is not on PATH; install Go first"; exit 1; }

mkdir -p "$bindir"
say "building versitygw $version into $bindir (takes a few minutes the first time)"
start=$(date +%s)
# Run outside any module so the project's go.mod and GOFLAGS cannot influence the build.
(cd / && GOBIN="$bindir" GOFLAGS= CGO_ENABLED=0 go install -trimpath \
  -ldflags "-X main.Version=$version -X main.BuildTime=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  "github.com/versity/versitygw/cmd/versitygw@$version")

if ! usable "$bin"; then
  say "built $bin but \`$bin --version\` does not report $version"
  exit 1
fi
say "ok: $("$bin" --version 2>/dev/null | head -n1) at $bin (built in $(( $(date +%s) - start ))s)"
printf '%s\n' "$bin"
