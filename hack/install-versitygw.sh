#!/usr/bin/env bash
# install-versitygw.sh: make the versitygw S3 server used by the storage tests available.
#
# Builds github.com/versity/versitygw/cmd/versitygw at a pinned version (plain `go install` would
# report "git"; the build stamps the version with -ldflags) into the shared tool
# directory (hack/go-tool.sh: /opt/cedana/bin unless CEDANA_TOOLS_BIN says otherwise). The first
# build takes a few minutes; re-running the script when a working binary is present returns at
# once. Prints the binary's path on stdout when done.
set -euo pipefail

version=${CEDANA_VERSITYGW_VERSION:-v1.8.0}

say() { printf '[install-versitygw] %s\n' "$*" >&2; }

# shellcheck source=hack/go-tool.sh
. "$(dirname "$0")/go-tool.sh"
go_tool_install versitygw "github.com/versity/versitygw/cmd/versitygw@$version" \
  "-X main.Version=$version -X main.BuildTime=$(date -u +%Y-%m-%dT%H:%M:%SZ)" "^Version *: *v?${version#v}\$"
