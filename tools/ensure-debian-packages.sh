#!/usr/bin/env bash
# Install the Debian packages of tools/debian-packages.txt that are missing.
#
#   tools/ensure-debian-packages.sh          every package in the list
#   tools/ensure-debian-packages.sh run      only the packages of group "run"
#
# Does nothing (and needs no root) when all are installed.  Otherwise runs
# apt-get update + install, through sudo when not root.
set -euo pipefail

list="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/debian-packages.txt"
group="${1:-}"

wanted=()
while read -r name groups; do
    groups="${groups%%#*}"
    [[ -z "$name" || "$name" == \#* ]] && continue
    if [[ -z "$group" || " $groups " == *" $group "* ]]; then
        wanted+=("$name")
    fi
done < "$list"

if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "ensure-debian-packages: not a Debian system; install these yourself: ${wanted[*]}" >&2
    exit 1
fi

missing=()
for pkg in "${wanted[@]}"; do
    status="$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null || true)"
    [[ "$status" == ii* ]] || missing+=("$pkg")
done

if [[ ${#missing[@]} -eq 0 ]]; then
    echo "Debian packages${group:+ ($group)}: all ${#wanted[@]} installed"
    exit 0
fi

if [[ "$(id -u)" -eq 0 ]]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
else
    echo "ensure-debian-packages: need root or sudo to install: ${missing[*]}" >&2
    exit 1
fi

echo "Installing Debian packages: ${missing[*]}"
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}"
