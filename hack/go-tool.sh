# go-tool.sh: what the installers of Go tools (install-crictl.sh, install-versitygw.sh) share;
# sourced, not run. They build a pinned version with `go install` into a project-independent tool
# directory (default /opt/cedana/bin, override with CEDANA_TOOLS_BIN), so every checkout and
# worktree on the machine shares one binary, and return at once when it is already there.
#
# The installer defines say() and calls go_tool_install.

bindir=${CEDANA_TOOLS_BIN:-/opt/cedana/bin}

# usable BINARY PATTERN: true when BINARY runs and a line of its `--version` matches the extended
# regular expression PATTERN (the pinned version).
usable() {
  local out
  [ -x "$1" ] || return 1
  out=$("$1" --version 2>/dev/null) || return 1
  printf '%s\n' "$out" | grep -Eq "$2"
}

# go_tool_install NAME PACKAGE@VERSION LDFLAGS PATTERN: make $bindir/NAME a build whose `--version`
# matches PATTERN, building it with LDFLAGS when it is not, and print its path on stdout.
go_tool_install() {
  local name=$1 package=$2 ldflags=$3 pattern=$4 bin=$bindir/$1 start
  if usable "$bin" "$pattern"; then
    say "ok: $("$bin" --version 2>/dev/null | head -n1) at $bin"
    printf '%s\n' "$bin"
    return 0
  fi
  command -v go >/dev/null || { say "go is not on PATH; install Go first"; return 1; }
  mkdir -p "$bindir"
  say "building $package into $bindir (takes a few minutes the first time)"
  start=$(date +%s)
  # Run outside any module so the project's go.mod and GOFLAGS cannot influence the build.
  (cd / && GOBIN="$bindir" GOFLAGS= CGO_ENABLED=0 go install -trimpath -ldflags "$ldflags" "$package")
  if ! usable "$bin" "$pattern"; then
    say "built $bin but \`$bin --version\` does not report the pinned version:"
    "$bin" --version >&2 || true
    return 1
  fi
  say "ok: $("$bin" --version 2>/dev/null | head -n1) at $bin (built in $(($(date +%s) - start))s)"
  printf '%s\n' "$bin"
}
