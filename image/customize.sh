#!/usr/bin/env bash
# mmdebstrap customize hook: turn the Debian root into the Linegram appliance.
#
#   customize.sh ROOTFS REPO
set -euo pipefail
root="$1" repo="$2"
here="$repo/image"
in_root() { chroot "$root" "$@"; }

# -- file systems: read-only root (overlayroot), FAT firmware, the data partition -------------
cat > "$root/etc/fstab" <<'EOF'
# The root is read-only under a RAM overlay (overlayroot=tmpfs:recurse=0 on the kernel
# command line): writes outside /var/lib/linegram vanish at the next boot.
LABEL=RASPIROOT  /                  ext4   ro,noatime                              0 1
LABEL=RASPIFIRM  /boot/firmware     vfat   ro,noatime,umask=0077,shortname=mixed   0 2
LABEL=LGDATA     /var/lib/linegram  ext4   rw,noatime,nosuid,nodev,noexec          0 2
tmpfs            /tmp               tmpfs  nosuid,nodev,size=64M                   0 0
EOF

echo linegram > "$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tlinegram\n::1\tlocalhost ip6-localhost ip6-loopback\n' \
    > "$root/etc/hosts"

# -- network: DHCP on wired and Wi-Fi, announced as <hostname>.local ----------------------------
mkdir -p "$root/etc/systemd/network" "$root/etc/systemd/resolved.conf.d" \
    "$root/etc/systemd/journald.conf.d"
cat > "$root/etc/systemd/network/80-linegram.network" <<'EOF'
[Match]
Name=e* wl*

[Network]
DHCP=yes
MulticastDNS=yes

[DHCPv4]
# The address follows the network card, not the machine-id (which the read-only root
# regenerates at every boot), so the router keeps giving the box the same address.
ClientIdentifier=mac
EOF
cat > "$root/etc/systemd/resolved.conf.d/linegram.conf" <<'EOF'
[Resolve]
# Answer for <hostname>.local: households browse to http://linegram.local
MulticastDNS=yes
EOF
ln -sf ../run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf"

# Logs live in RAM (the SD card is spared); the call log is in the database on LGDATA.
cat > "$root/etc/systemd/journald.conf.d/linegram.conf" <<'EOF'
[Journal]
Storage=volatile
RuntimeMaxUse=32M
EOF

# -- the service user, GPIO without root ------------------------------------------------------
# Debian has no gpio group: make one and give it the GPIO character devices.
in_root groupadd --system gpio
in_root useradd --system --user-group --home-dir /var/lib/linegram --no-create-home \
    --shell /usr/sbin/nologin --groups gpio,audio --comment "Linegram gateway" linegram
mkdir -p "$root/etc/udev/rules.d"
cat > "$root/etc/udev/rules.d/60-linegram-gpio.rules" <<'EOF'
# Linegram's status LEDs and button (gpiozero/lgpio) run as the linegram user.
SUBSYSTEM=="gpio", KERNEL=="gpiochip*", GROUP="gpio", MODE="0660"
KERNEL=="gpiomem", GROUP="gpio", MODE="0660"
EOF
install -d -m 0700 -o "$(in_root id -u linegram)" -g "$(in_root id -g linegram)" \
    "$root/var/lib/linegram"

# -- our files and units ----------------------------------------------------------------------
cp -a "$here/rootfs/." "$root/"
chown -R 0:0 "$root/usr/lib/linegram" "$root/usr/share/linegram" 2>/dev/null || true
install -m 0644 -t "$root/usr/lib/systemd/system" "$repo"/systemd/*.service
in_root systemctl enable systemd-networkd.service systemd-resolved.service \
    linegram-firstboot.service linegram-gateway.service linegram-webui.service
# SSH stays off until linegram.txt gives a key (the first-boot service starts it then).
in_root systemctl disable ssh.service
rm -f "$root"/etc/ssh/ssh_host_*

# An empty machine-id: systemd makes a transient one at each boot (the root is read-only).
rm -f "$root/var/lib/dbus/machine-id"
: > "$root/etc/machine-id"
# Nobody logs in with a password; root is locked.
in_root passwd --lock root >/dev/null

# -- the Pi's boot: root by label, read-only under the overlay ----------------------------------
# raspi-firmware rewrites cmdline.txt from these on kernel updates.
sed -i 's/^#\?ROOTPART=.*/ROOTPART=LABEL=RASPIROOT/' "$root/etc/default/raspi-firmware"
grep -q '^ROOTPART=' "$root/etc/default/raspi-firmware" \
    || echo 'ROOTPART=LABEL=RASPIROOT' >> "$root/etc/default/raspi-firmware"
echo 'overlayroot=tmpfs:recurse=0' > "$root/etc/default/raspi-extra-cmdline"
cmdline="$root/boot/firmware/cmdline.txt"
sed -i -e 's#root=[^ ]*#root=LABEL=RASPIROOT#' -e 's/ rw / ro /' "$cmdline"
grep -q 'overlayroot=' "$cmdline" || sed -i 's/$/ overlayroot=tmpfs:recurse=0/' "$cmdline"
grep -q ' ro ' "$cmdline" || sed -i 's/rootwait/ro rootwait/' "$cmdline"

# A Wi-Fi box with its Ethernet port unplugged must not wait two minutes for a link that
# never comes: one link up is enough.
mkdir -p "$root/etc/systemd/system/systemd-networkd-wait-online.service.d"
cat > "$root/etc/systemd/system/systemd-networkd-wait-online.service.d/linegram.conf" <<'EOF2'
[Service]
ExecStart=
ExecStart=/lib/systemd/systemd-networkd-wait-online --any --timeout=30
EOF2
