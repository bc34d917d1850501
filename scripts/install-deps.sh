#!/bin/sh
# Installs the Debian packages deploybench builds and tests with (needs root or sudo).
# Only missing packages are installed; nothing else is downloaded.
# The report (deploybench report/study) draws figures with gnuplot-nox (cairo terminals), builds the
# paper with latexmk + texlive-latex-recommended (booktabs, longtable, hyperref) + texlive-fonts-
# recommended + lmodern, and its test opens report.html in chromium; tests skip cleanly without them.
set -e
PKGS="build-essential pkg-config clang libclang-rt-dev libomp-dev libcjson-dev libpcre2-dev libutf8proc-dev zlib1g-dev
libcurl4-openssl-dev libmicrohttpd-dev python3
gnuplot-nox latexmk texlive-latex-recommended texlive-fonts-recommended lmodern chromium"
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
