#!/bin/sh
# Installs the Debian packages deploybench builds and tests with (needs root or sudo).
# Only missing packages are installed; nothing else is downloaded.
set -e
PKGS="build-essential pkg-config clang libclang-rt-dev libomp-dev libcjson-dev libpcre2-dev libutf8proc-dev zlib1g-dev
libcurl4-openssl-dev libmicrohttpd-dev python3"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
echo "installing:$missing" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
