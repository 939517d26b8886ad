#!/usr/bin/env bash
# install-containerd.sh: make containerd >= 1.7 (with its runc shim and ctr) available under
# /opt/cedana/containerd/bin, for the containerd runtime's tests.
#
# Debian 12 has containerd 1.6; Debian 13's 1.7 package needs only libc6 >= 2.34 and runc, so its
# binaries run here as they are. The package is fetched through a private apt configuration
# (hack/private-apt.sh) and unpacked into the prefix: the system's apt sources and dpkg database
# are not touched, and nothing is started. Re-running it when the binaries are there returns at once.
set -euo pipefail

prefix=${CEDANA_CONTAINERD_PREFIX:-/opt/cedana/containerd}
suite=${CEDANA_CONTAINERD_SUITE:-trixie}
mirror=${CEDANA_CONTAINERD_MIRROR:-http://deb.debian.org/debian}
scratch=${CEDANA_CONTAINERD_SCRATCH:-/var/cache/cedana/containerd-apt}
minimum=1.7

say() { printf '[install-containerd] %s\n' "$*" >&2; }

usable() {
  local version
  [ -x "$prefix/bin/containerd" ] && [ -x "$prefix/bin/containerd-shim-runc-v2" ] && [ -x "$prefix/bin/ctr" ] || return 1
  version=$("$prefix/bin/containerd" --version 2>/dev/null | awk '{print $3}' | sed 's/^v//; s/~.*//')
  [ -n "$version" ] && dpkg --compare-versions "$version" ge "$minimum"
}

if usable; then
  say "ok: $("$prefix/bin/containerd" --version) at $prefix"
  exit 0
fi

# shellcheck source=hack/private-apt.sh
. "$(dirname "$0")/private-apt.sh"
say "reading the $suite package index"
private_apt_init "$scratch/state" "$suite" "$mirror"
debs=$scratch/debs root=$scratch/root
rm -rf "$debs" "$root" && mkdir -p "$debs" "$root"
(cd "$debs" && apt-get "${apt_opts[@]}" download containerd)
dpkg-deb -x "$debs"/containerd_*.deb "$root"
staging=$prefix.staging
rm -rf "$staging" && mkdir -p "$staging/bin"
for bin in containerd containerd-shim-runc-v2 ctr; do
  cp "$root/usr/bin/$bin" "$staging/bin/"
done
dpkg-deb -f "$debs"/containerd_*.deb Package Version | paste -sd' ' >"$staging/PACKAGES"
[ -f "$root/usr/share/doc/containerd/copyright" ] && install -D -m 0644 "$root/usr/share/doc/containerd/copyright" "$staging/share/doc/containerd/copyright"
rm -rf "$prefix" && mv "$staging" "$prefix"
rm -rf "$debs" "$root"
usable || { say "the installed containerd does not work:"; "$prefix/bin/containerd" --version >&2 || true; exit 1; }
say "installed $("$prefix/bin/containerd" --version) at $prefix"
