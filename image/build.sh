#!/usr/bin/env bash
# make image: build build/image/linegram-<version>-arm64.img.xz for Raspberry Pi 3/3+/4/400/Zero 2 W.
#
# Debian bookworm arm64 from Debian's mirror (mmdebstrap, programs run by qemu-user), the
# app in a venv under /opt/linegram built inside that arm64 root from aarch64 wheels, and
# three partitions assembled by genimage (no loop devices, no mounts):
#
#   1  RASPIFIRM  FAT32  256 MiB  Pi firmware, kernel, initrd, config.txt, cmdline.txt, linegram.txt
#   2  RASPIROOT  ext4            the system, mounted read-only under a RAM overlay (overlayroot)
#   3  LGDATA     ext4    64 MiB  /var/lib/linegram: settings, database, Telegram session;
#                                 grown to fill the card on first boot
#
# Needs root (chroot) and the "image" group of tools/debian-packages.txt.  Environment:
#   OUT=dir           where the image goes (default build/image)
#   MIRROR=url        Debian mirror (default http://deb.debian.org/debian)
#   KEEP_RAW=1        also keep the uncompressed .img (make image-test uses the .xz)
#   XZ_LEVEL=n        xz preset (default 6: 176 MB in 4 min here; make test uses 1: 215 MB in 40 s)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
OUT="${OUT:-$REPO/build/image}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
SECURITY_MIRROR="${SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
VERSION="$(python3 -c 'import sys,tomllib;print(tomllib.load(open(sys.argv[1],"rb"))["project"]["version"])' "$REPO/pyproject.toml")"
NAME="linegram-$VERSION-arm64"
WORK="$OUT/work"
ROOTFS="$WORK/rootfs"
BOOT_MB=256
DATA_MB=64

log() { printf '[image %s] %s\n' "$(date +%T)" "$*" >&2; }
step_start=0
step() { step_start=$(date +%s); log "$*"; }
step_done() { printf 'TIMING %-10s %4ss\n' "$1" "$(( $(date +%s) - step_start ))" | tee -a "$OUT/timings.txt" >&2; }

if [[ "$(id -u)" -ne 0 ]]; then
    echo "make image needs root (mmdebstrap --mode=root and chroot); run it with sudo" >&2
    exit 1
fi

packages() {  # the package names of a list file, comma-separated
    sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' "$1" | paste -sd, -
}

# -- the host runs arm64 programs through qemu-user ------------------------------------------
if [[ ! -e /proc/sys/fs/binfmt_misc/register ]]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
update-binfmts --enable qemu-aarch64 2>/dev/null || true
if ! arch-test arm64 >/dev/null; then
    echo "this machine cannot run arm64 programs (qemu-user-static and binfmt-support installed?)" >&2
    exit 1
fi

started=$(date +%s)
rm -rf "$WORK"
mkdir -p "$WORK" "$OUT"
: > "$OUT/timings.txt"

# -- the app as a wheel ------------------------------------------------------------------------
step "building the linegram wheel"
src="$WORK/src"
# A copy of what git tracks, so a developer's var/ or build/ never lands in the wheel.
mkdir -p "$src"
git -C "$REPO" ls-files -z --cached --others --exclude-standard | (cd "$REPO" && xargs -0 cp --parents -t "$src" 2>/dev/null) || true
"${PYTHON:-$REPO/.venv/bin/python}" -m pip wheel --quiet --no-deps --wheel-dir "$WORK/wheels" "$src"
wheel="$(ls "$WORK"/wheels/linegram-*.whl)"
step_done wheel

# -- the root file system ----------------------------------------------------------------------
step "mmdebstrap: Debian bookworm arm64"
mmdebstrap --mode=root --architectures=arm64 --variant=apt \
    --components="main non-free-firmware" \
    --include="$(packages "$HERE/packages.txt"),$(packages "$HERE/build-packages.txt")" \
    --setup-hook='mkdir -p "$1/boot/firmware"' \
    --setup-hook="\"$HERE/initramfs.sh\" \"\$1\"" \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --customize-hook="\"$HERE/venv.sh\" \"\$1\" \"$wheel\" \"$REPO/tools/constraints.txt\" \"$HERE/build-packages.txt\"" \
    --customize-hook="\"$HERE/customize.sh\" \"\$1\" \"$REPO\"" \
    bookworm "$ROOTFS" \
    "deb $MIRROR bookworm main non-free-firmware" \
    "deb $MIRROR bookworm-updates main non-free-firmware" \
    "deb $SECURITY_MIRROR bookworm-security main non-free-firmware" 2>&1 \
    | while IFS= read -r line; do printf '%s %s\n' "$(date +%T)" "$line"; done
step_done rootfs

# -- strip the venv's shared objects (ntgcalls ships 116 MB of debug info) --------------------
step "stripping the venv"
find "$ROOTFS/opt/linegram/venv" -name '*.so*' -type f -size +64k \
    -exec aarch64-linux-gnu-strip --strip-debug {} +
step_done strip
du -sxm "$ROOTFS" | awk '{print "SIZE rootfs_mb " $1}' | tee -a "$OUT/timings.txt" >&2
du -sxm "$ROOTFS/opt/linegram/venv" | awk '{print "SIZE venv_mb " $1}' | tee -a "$OUT/timings.txt" >&2

# -- partitions and the disk image -------------------------------------------------------------
step "genimage: three partitions"
"$HERE/disk.sh" "$ROOTFS" "$WORK/$NAME.img" "$BOOT_MB" "$DATA_MB"
step_done disk

step "xz"
rm -f "$OUT/$NAME.img.xz"
xz -T0 "-${XZ_LEVEL:-6}" --stdout "$WORK/$NAME.img" > "$OUT/$NAME.img.xz.tmp"
mv "$OUT/$NAME.img.xz.tmp" "$OUT/$NAME.img.xz"
(cd "$OUT" && sha256sum "$NAME.img.xz" > "$NAME.img.xz.sha256")
step_done xz
if [[ "${KEEP_RAW:-0}" == 1 ]]; then
    mv "$WORK/$NAME.img" "$OUT/$NAME.img"
fi
stat -c 'SIZE image_bytes %s' "$OUT/$NAME.img.xz" | tee -a "$OUT/timings.txt" >&2
printf 'TIMING %-10s %4ss\n' total "$(( $(date +%s) - started ))" | tee -a "$OUT/timings.txt" >&2
rm -rf "$WORK"
log "built $OUT/$NAME.img.xz"
