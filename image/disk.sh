#!/usr/bin/env bash
# Root file system directory -> partitioned disk image, without loop devices or mounts:
# mkfs.vfat -C + mcopy for the firmware partition, mkfs.ext4 -d for root and data, genimage
# for the MBR (the Pi 3's firmware reads MBR only).
#
#   disk.sh ROOTFS IMAGE BOOT_MB DATA_MB
set -euo pipefail
root="$1" image="$2" boot_mb="$3" data_mb="$4"
work="$(mktemp -d "$(dirname "$image")/disk.XXXXXX")"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/input" "$work/genroot" "$work/tmp" "$work/out" "$work/fw" "$work/data"

# 1  firmware: the files raspi-firmware put in /boot/firmware
mkfs.vfat -C -F 32 -n RASPIFIRM -S 512 "$work/input/boot.vfat" $((boot_mb * 1024)) >/dev/null
mcopy -i "$work/input/boot.vfat" -s -p -Q "$root"/boot/firmware/* ::/

# 3  data: what the image puts under /var/lib/linegram (owned by the service user)
owner="$(stat -c %u:%g "$root/var/lib/linegram")"
cp -a "$root/var/lib/linegram/." "$work/data/"
mkfs.ext4 -q -L LGDATA -E root_owner="$owner" -d "$work/data" "$work/input/data.ext4" "${data_mb}M"

# 2  root: /boot/firmware and /var/lib/linegram stay empty mount points.  Size: what is
# used plus 30 % and 200 MiB, so inodes and the ext4 journal fit.
mv "$root/boot/firmware" "$work/fw/firmware"
mkdir -m 0755 "$root/boot/firmware"
mv "$root/var/lib/linegram" "$work/fw/linegram"
install -d -m 0700 -o "${owner%:*}" -g "${owner#*:}" "$root/var/lib/linegram"
restore() {
    rmdir "$root/boot/firmware" "$root/var/lib/linegram" 2>/dev/null || true
    [[ -d "$work/fw/firmware" ]] && mv "$work/fw/firmware" "$root/boot/firmware"
    [[ -d "$work/fw/linegram" ]] && mv "$work/fw/linegram" "$root/var/lib/linegram"
    rm -rf "$work"
}
trap restore EXIT
used_mb="$(du -sxm "$root" | cut -f1)"
root_mb=$((used_mb * 13 / 10 + 200))
mkfs.ext4 -q -L RASPIROOT -E root_owner=0:0 -d "$root" "$work/input/root.ext4" "${root_mb}M"

cat > "$work/genimage.cfg" <<CFG
image $(basename "$image") {
    hdimage { partition-table-type = "mbr" }
    partition firmware { partition-type = 0xC bootable = "true" image = "boot.vfat" offset = 4M }
    partition root { partition-type = 0x83 image = "root.ext4" }
    partition data { partition-type = 0x83 image = "data.ext4" }
}
CFG
genimage --config "$work/genimage.cfg" --inputpath "$work/input" --outputpath "$work/out" \
    --rootpath "$work/genroot" --tmppath "$work/tmp" >/dev/null
mv "$work/out/$(basename "$image")" "$image"
echo "SIZE root_fs_mb $root_mb" >&2
echo "SIZE installed_mb $((boot_mb + root_mb + data_mb))" >&2
