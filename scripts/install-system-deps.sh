#!/usr/bin/env bash
# Installs the Debian packages the suite and the demo need, only when one is missing.
# espeak-ng: fallback speech synthesis; prometheus/promtool, alertmanager/amtool: real monitoring peers;
# iproute2 and util-linux: the local cluster's network and mount namespaces.
set -euo pipefail
# Go builds the local control plane (kube-apiserver & co., kubectl, helm) from Go modules; these
# machines ship Go 1.26, and Debian's golang is older than the pinned Kubernetes needs.
if ! command -v go >/dev/null && [ ! -x /usr/local/go/bin/go ]; then
  echo "Go (1.26 or later) is not on PATH: it builds the local Kubernetes control plane" >&2
  exit 1
fi
need=()
command -v espeak-ng >/dev/null || need+=(espeak-ng)
command -v promtool >/dev/null || need+=(prometheus)
command -v prometheus-alertmanager >/dev/null || need+=(prometheus-alertmanager)
# The local cluster: a network namespace (unshare, ip) and a mount namespace per pod (nsenter).
command -v ip >/dev/null || [ -x /usr/sbin/ip ] || need+=(iproute2)
command -v nsenter >/dev/null || need+=(util-linux)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
echo "installing Debian packages: ${need[*]}"
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
  sudo_cmd=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
