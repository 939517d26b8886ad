#!/usr/bin/env bash
# install-criu.sh: make a CRIU >= 4.1 that passes `criu check` available as /usr/local/sbin/criu.
#
# Debian 12 ships criu 3.17, which cannot dump on kernels >= 6.13 (split vvar/vvar_vclock vmas).
# When the system CRIU is too old, this script fetches Debian 13's criu and the exact shared
# libraries it loads into a private prefix (default /opt/cedana/criu), with the ELF interpreter
# and RPATH pointed at that prefix. The system libc, apt sources and dpkg database are not touched.
# Re-running it when a working CRIU is present returns at once.
set -euo pipefail

prefix=${CEDANA_CRIU_PREFIX:-/opt/cedana/criu}
link=${CEDANA_CRIU_LINK:-/usr/local/sbin/criu}
suite=${CEDANA_CRIU_SUITE:-trixie}
mirror=${CEDANA_CRIU_MIRROR:-http://deb.debian.org/debian}
scratch=${CEDANA_CRIU_SCRATCH:-/var/cache/cedana/criu-apt}
minimum=4.1

say() { printf '[install-criu] %s\n' "$*" >&2; }

# criu_usable BINARY: true when BINARY reports a version >= $minimum and `criu check` passes.
criu_usable() {
  local bin=$1 version
  [ -x "$bin" ] || return 1
  version=$("$bin" --version 2>/dev/null | awk '/^Version:/ {print $2}')
  [ -n "$version" ] && dpkg --compare-versions "$version" ge "$minimum" || return 1
  "$bin" check >/dev/null 2>&1
}

# 1. A qualifying CRIU already on the machine (system package or an earlier run of this script).
for candidate in "$link" "$prefix/bin/criu" "$(command -v criu 2>/dev/null || true)"; do
  [ -n "$candidate" ] || continue
  if criu_usable "$candidate"; then
    if [ "$candidate" = "$prefix/bin/criu" ]; then ln -sfn "$candidate" "$link"; fi
    say "ok: $("$candidate" --version | head -n1) at $candidate"
    exit 0
  fi
done

command -v patchelf >/dev/null || {
  say "installing patchelf from the system's own suite"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends patchelf
}

# 2. A private apt configuration that knows only $suite: nothing here reaches /etc/apt or /var/lib/dpkg.
# shellcheck source=hack/private-apt.sh
. "$(dirname "$0")/private-apt.sh"
say "reading the $suite package index"
private_apt_init "$scratch/state" "$suite" "$mirror"

# 3. Download criu with its whole Depends closure and unpack it into a scratch root.
mapfile -t packages < <(apt-cache "${apt_opts[@]}" depends --recurse --no-recommends --no-suggests \
  --no-conflicts --no-breaks --no-replaces --no-enhances criu | grep -E '^[a-z0-9]' | sort -u)
say "downloading ${#packages[@]} packages"
debs=$scratch/debs root=$scratch/root
rm -rf "$debs" "$root" && mkdir -p "$debs" "$root"
(cd "$debs" && apt-get "${apt_opts[@]}" download "${packages[@]}")
for deb in "$debs"/*.deb; do dpkg-deb -x "$deb" "$root"; done

# 4. Keep exactly the libraries $suite's loader resolves for criu, all from the scratch root.
loader=$(find "$root" -name ld-linux-x86-64.so.2 -type f | head -n1)
binary=$root/usr/sbin/criu
libs=$("$loader" --inhibit-cache --library-path "$root/usr/lib/x86_64-linux-gnu:$root/lib/x86_64-linux-gnu" --list "$binary")
if grep -q 'not found' <<<"$libs" || grep '=>' <<<"$libs" | grep -vq "=> $root/"; then
  say "the dependency closure is incomplete:"; echo "$libs" >&2; exit 1
fi
staging=$prefix.staging
rm -rf "$staging" && mkdir -p "$staging/bin" "$staging/lib"
awk '$2 == "=>" && $1 !~ /^\// {print $1, $3}' <<<"$libs" | while read -r soname path; do
  cp -L "$path" "$staging/lib/$soname"
done
gcc_s=$(find "$root" -name libgcc_s.so.1 | head -n1) # loaded by glibc at run time for unwinding
[ -n "$gcc_s" ] && cp -L "$gcc_s" "$staging/lib/"
cp -L "$loader" "$staging/lib/ld-linux-x86-64.so.2"
cp "$binary" "$staging/bin/criu"
# RPATH (not RUNPATH): RUNPATH would not apply to the libraries' own dependencies.
patchelf --set-interpreter "$prefix/lib/ld-linux-x86-64.so.2" --force-rpath --set-rpath "$prefix/lib" "$staging/bin/criu"
for deb in "$debs"/*.deb; do dpkg-deb -f "$deb" Package Version | paste -sd' '; done >"$staging/PACKAGES"
for pkg in "${packages[@]}"; do
  [ -f "$root/usr/share/doc/$pkg/copyright" ] && install -D -m 0644 "$root/usr/share/doc/$pkg/copyright" "$staging/share/doc/$pkg/copyright"
done

# 5. Swap the new prefix in, check it where it lives, and roll back when it does not work.
rm -rf "$prefix.previous"
[ -e "$prefix" ] && mv "$prefix" "$prefix.previous"
mv "$staging" "$prefix"
if criu_usable "$prefix/bin/criu"; then
  rm -rf "$prefix.previous" "$debs" "$root"
  mkdir -p "$(dirname "$link")" && ln -sfn "$prefix/bin/criu" "$link"
  say "installed $("$prefix/bin/criu" --version | head -n1) at $prefix, linked from $link"
else
  say "the installed criu does not pass 'criu check':"; "$prefix/bin/criu" check >&2 || true
  rm -rf "$prefix"; [ -e "$prefix.previous" ] && mv "$prefix.previous" "$prefix"
  exit 1
fi
