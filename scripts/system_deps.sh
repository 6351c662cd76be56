#!/usr/bin/env bash
# System packages for a fresh Debian/Ubuntu machine: libusb-1.0-0 (Open3D loads it) and venv support
# (required), and chromium (optional: the slow test that opens report.html in a headless browser; skipped
# without it). As root they are installed with apt-get; otherwise missing required ones are an error.
set -euo pipefail
PY="${1:-python3}"
need=()
ldconfig_bin=$(command -v ldconfig || echo /sbin/ldconfig)   # not on PATH for ordinary users on Debian
"$ldconfig_bin" -p 2>/dev/null | grep 'libusb-1.0.so.0' >/dev/null || need+=(libusb-1.0-0)  # no -q: SIGPIPE + pipefail
"$PY" -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
optional=()
command -v chromium >/dev/null || command -v chromium-browser >/dev/null || optional+=(chromium)
[ ${#need[@]} -eq 0 ] && [ ${#optional[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "installing system packages: ${need[*]} ${optional[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" "${optional[@]}" >/dev/null
elif [ ${#need[@]} -gt 0 ]; then
    echo "error: missing system packages: ${need[*]}. Install them with: sudo apt-get install ${need[*]}" >&2
    exit 1
else
    echo "note: ${optional[*]} is not installed; the report test in a headless browser will be skipped" \
         "(sudo apt-get install ${optional[*]})"
fi
