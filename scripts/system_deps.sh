#!/usr/bin/env bash
# System packages for a fresh Debian/Ubuntu machine: libusb-1.0-0 (Open3D loads it) and venv support.
set -euo pipefail
PY="${1:-python3}"
need=()
ldconfig_bin=$(command -v ldconfig || echo /sbin/ldconfig)   # not on PATH for ordinary users on Debian
"$ldconfig_bin" -p 2>/dev/null | grep 'libusb-1.0.so.0' >/dev/null || need+=(libusb-1.0-0)  # no -q: SIGPIPE + pipefail
"$PY" -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "installing system packages: ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
else
    echo "error: missing system packages: ${need[*]}. Install them with: sudo apt-get install ${need[*]}" >&2
    exit 1
fi
