#!/usr/bin/env bash
# Installs the build and test dependencies from Debian's packages (run as root, or with sudo).
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
PKGS="build-essential cmake pkg-config python3 python3-pip unzip ca-certificates \
  libcriterion-dev libcjson-dev libmicrohttpd-dev libpcre2-dev libsentencepiece-dev sentencepiece libutf8proc-dev libcurl4-openssl-dev zlib1g-dev \
  clang libclang-rt-14-dev libopenmpi-dev openmpi-bin"
missing=""
for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
    echo "installing:$missing"
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
