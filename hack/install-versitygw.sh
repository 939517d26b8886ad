#!/usr/bin/env bash
# install-versitygw.sh: make the versitygw S3 server used by the storage tests available.
#
# Builds github.com/versity/versitygw/cmd/versitygw at a pinned version into the shared tool
# directory (hack/go-tool.sh: /opt/cedana/bin unless CEDANA_TOOLS_BIN says otherwise). The first
# build takes a few minutes; re-running the script when a working binary is present returns at
# once. Prints the binary's path on stdout when done.
set -euo pipefail

version=${CEDANA_VERSITYGW_VERSION:-v1.8.0}

say() { printf '[install-versitygw] %s\n' "$*" >&2; }

# usable BINARY: true when BINARY runs and `versitygw --version` reports the pinned version
# (plain `go install` leaves it at "git"; the build stamps it with -ldflags).
usable() {
  local out
  [ -x "$1" ] || return 1
  out=$("$1" --version 2>/dev/null) || return 1
  printf '%s\n' "$out" | grep -Eq "^Version *: *v?${version#v}\$"
}

# shellcheck source=hack/go-tool.sh
. "$(dirname "$0")/go-tool.sh"
go_tool_install versitygw "github.com/versity/versitygw/cmd/versitygw@$version" \
  "-X main.Version=$version -X main.BuildTime=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
