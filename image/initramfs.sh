#!/usr/bin/env bash
# mmdebstrap setup hook: a lean initramfs, before the kernel is installed.
#
# MODULES=most copies hundreds of modules, each through emulated cp/modinfo: about 8.5
# minutes per update-initramfs run under qemu-user and a 36 MB initrd.  This list (the
# root and data file systems, the overlay, the Pi's SD and USB controllers, QEMU's virtio)
# takes about 36 s and gives a 7 MB initrd.
set -euo pipefail
root="$1"
mkdir -p "$root/etc/initramfs-tools/conf.d" "$root/etc/initramfs-tools/hooks"
echo 'MODULES=list' > "$root/etc/initramfs-tools/conf.d/linegram-modules.conf"
cat > "$root/etc/initramfs-tools/hooks/linegram-modules" <<'HOOK'
#!/bin/sh
[ "$1" = prereqs ] && exit 0
. /usr/share/initramfs-tools/hook-functions
# ext4/vfat/overlay; Pi 4 emmc2 (sdhci_iproc), Pi 3 sdhost/SD (mmc_bcm2835, bcm2835),
# Pi USB boot (dwc2, xhci, usb_storage, uas); QEMU virt (virtio)
manual_add_modules ext4 vfat nls_cp437 nls_ascii overlay \
    sdhci_iproc sdhci_pltfm mmc_bcm2835 bcm2835 reset_raspberrypi \
    usb_storage uas xhci_pci xhci_plat_hcd dwc2 \
    virtio_blk virtio_pci virtio_mmio
HOOK
chmod 755 "$root/etc/initramfs-tools/hooks/linegram-modules"
