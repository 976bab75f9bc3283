#!/usr/bin/env bash
# mmdebstrap customize hook: the app's venv at /opt/linegram/venv, built inside the arm64 root
# (pip and the one C extension's compiler run under qemu-user), then the build tools purged.
#
#   venv.sh ROOTFS WHEEL CONSTRAINTS BUILD-PACKAGES-LIST
set -euo pipefail
root="$1" wheel="$2" constraints="$3" build_list="$4"

mounted=()
cleanup() {
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[i]}" || true; done
    rm -rf "$root/tmp/linegram-build"
    if [[ -e "$root/etc/resolv.conf.linegram" || -L "$root/etc/resolv.conf.linegram" ]]; then
        rm -f "$root/etc/resolv.conf"
        mv "$root/etc/resolv.conf.linegram" "$root/etc/resolv.conf"
    fi
}
trap cleanup EXIT
# mmdebstrap (root mode) normally has these mounted during hooks; mount what is missing.
for fs in proc sys dev; do
    if ! mountpoint -q "$root/$fs"; then
        case "$fs" in
            proc) mount -t proc proc "$root/proc" ;;
            sys) mount -t sysfs sys "$root/sys" ;;
            dev) mount --rbind /dev "$root/dev" ;;
        esac
        mounted+=("$root/$fs")
    fi
done

# pip inside the chroot needs the host's name server; the image gets resolved's stub later.
if [[ -e "$root/etc/resolv.conf" || -L "$root/etc/resolv.conf" ]]; then
    mv "$root/etc/resolv.conf" "$root/etc/resolv.conf.linegram"
fi
cp -L /etc/resolv.conf "$root/etc/resolv.conf"

build="$root/tmp/linegram-build"
mkdir -p "$build"
cp "$wheel" "$constraints" "$build/"
# Build machines may intercept TLS with their own CA, named by these variables: hand the
# host's bundle to pip inside the chroot (does nothing when none is set).
ca_env=(-u PIP_FIND_LINKS -u PIP_INDEX_URL -u PIP_EXTRA_INDEX_URL)
ca="${PIP_CERT:-${REQUESTS_CA_BUNDLE:-${SSL_CERT_FILE:-}}}"
if [[ -n "$ca" && -f "$ca" ]]; then
    cp "$ca" "$build/ca.crt"
    for var in PIP_CERT REQUESTS_CA_BUNDLE SSL_CERT_FILE CURL_CA_BUNDLE; do
        ca_env+=("$var=/tmp/linegram-build/ca.crt")
    done
fi
[[ -n "${PIP_INDEX_URL:-}" ]] && ca_env+=("PIP_INDEX_URL=$PIP_INDEX_URL")

echo "venv: pip install starts"
whl="/tmp/linegram-build/$(basename "$wheel")"
con="/tmp/linegram-build/$(basename "$constraints")"
env "${ca_env[@]}" PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    chroot "$root" /bin/sh -euc "
        python3 -m venv /opt/linegram/venv
        # Binary wheels for everything that has one for aarch64; pure-Python sdists (pyaes)
        # and pyalsaaudio (C, no wheels at all) are built here.
        /opt/linegram/venv/bin/pip install --quiet --prefer-binary \
            --only-binary=ntgcalls,cryptg,lgpio,markupsafe,argon2-cffi-bindings,cffi \
            --constraint '$con' '$whl'
        /opt/linegram/venv/bin/python -c 'import gateway, webui, ntgcalls, telethon'
        /opt/linegram/venv/bin/pip list --format=freeze > /opt/linegram/requirements.installed
    "

echo "venv: pip install done; purging the build packages"
# The compiler and headers were only for pyalsaaudio.
build_packages="$(sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' "$build_list" | paste -sd' ' -)"
chroot "$root" env DEBIAN_FRONTEND=noninteractive \
    apt-get purge --quiet --yes --autoremove $build_packages >/dev/null
