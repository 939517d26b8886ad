#!/usr/bin/env bash
# install-deps.sh: everything cedana needs at run time and in its tests, installed idempotently.
# Host tools come from the system's own Debian suite; CRIU comes from hack/install-criu.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

missing=()
command -v iptables-restore >/dev/null || missing+=(iptables)
command -v ip >/dev/null || missing+=(iproute2)
command -v tar >/dev/null || missing+=(tar)
command -v curl >/dev/null || missing+=(curl)
command -v file >/dev/null || missing+=(file)
command -v patchelf >/dev/null || missing+=(patchelf)
[ -x /bin/busybox ] || missing+=(busybox-static)
command -v runc >/dev/null || missing+=(runc)
if ((${#missing[@]})); then
  echo "[install-deps] installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
"$here/install-criu.sh"
"$here/install-containerd.sh"
# The S3 server the storage tests run against (a Go build, a few minutes the first time).
"$here/install-versitygw.sh" >/dev/null
# crictl, with which the Kubernetes end-to-end tests drive containerd's CRI as the kubelet would.
"$here/install-crictl.sh" >/dev/null
