#!/usr/bin/env bash
# Install the C references bench.references measures livepush against, from Debian packages:
# nginx (the static page), libnginx-mod-nchan (WebSocket pub/sub) and wrk (the page load generator).
# The bench starts Nginx itself with its own config in a temporary directory, on a loopback port;
# RUNLEVEL=1 keeps the package's service from being started on port 80 by the install.
set -euo pipefail
packages=(nginx libnginx-mod-nchan wrk)
missing=()
command -v nginx >/dev/null 2>&1 || missing+=(nginx)
[ -e /usr/lib/nginx/modules/ngx_nchan_module.so ] || missing+=(libnginx-mod-nchan)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
if ((${#missing[@]} == 0)); then
  echo "bench/setup_references.sh: ${packages[*]} already installed"
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "bench/setup_references.sh: please install ${missing[*]} (Debian/Ubuntu: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
apt-get update -qq
RUNLEVEL=1 DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "bench/setup_references.sh: installed ${missing[*]}; $(nginx -v 2>&1)"
