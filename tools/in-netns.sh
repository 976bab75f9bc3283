#!/usr/bin/env bash
# Run a command inside a private network namespace that no packet can leave.
#
#   tools/in-netns.sh CMD [ARGS...]
#
# The namespace has `lo` up and a veth pair lg0 10.77.0.1/24 <-> lg1 10.77.0.2/24 with
# both ends inside it.  WebRTC (ntgcalls) ignores the loopback adapter, so media tests
# need a non-loopback interface for their host candidates; the veth gives them one
# without any route to the outside.  The simulated cloud listens on 127.0.0.1.
#
# LINEGRAM_NETNS marks a namespace this script made (it holds the namespace's inode);
# simcloud.netns.private_netns_ready() checks it.  Inside such a namespace the command is
# simply exec'd, so nesting (make telegram -> pytest -> tools/in-netns.sh) is harmless.
# Needs root (or CAP_SYS_ADMIN + CAP_NET_ADMIN), unshare (util-linux) and ip (iproute2).
set -euo pipefail

if [ $# -eq 0 ]; then
    echo "usage: $0 CMD [ARGS...]" >&2
    exit 2
fi

current_netns() { readlink /proc/self/ns/net; }

if [ -n "${LINEGRAM_NETNS:-}" ] && [ "${LINEGRAM_NETNS}" = "$(current_netns)" ]; then
    exec "$@"
fi

# Stage 1 (outside): check the tools, then re-run this script in a new namespace.  Stage 2
# knows it is inside because its namespace differs from the one stage 1 recorded, so the
# veth pair can never be created in the host's namespace.
if [ -z "${LINEGRAM_NETNS_OUTER:-}" ] || [ "${LINEGRAM_NETNS_OUTER}" = "$(current_netns)" ]; then
    for tool in unshare ip; do
        if ! command -v "$tool" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$tool" ] \
            && [ ! -x "/sbin/$tool" ]; then
            echo "$0: '$tool' not found; install util-linux (unshare) and iproute2 (ip)" >&2
            exit 127
        fi
    done
    if ! unshare --net true 2>/dev/null; then
        echo "$0: 'unshare --net' failed; media tests need root or CAP_SYS_ADMIN" >&2
        exit 126
    fi
    LINEGRAM_NETNS_OUTER="$(current_netns)" exec unshare --net -- "$0" "$@"
fi

# Stage 2: the first process in the new namespace.
unset LINEGRAM_NETNS_OUTER
PATH="$PATH:/usr/sbin:/sbin"
ip link set lo up
ip link add lg0 type veth peer name lg1
ip addr add 10.77.0.1/24 dev lg0
ip addr add 10.77.0.2/24 dev lg1
ip link set lg0 up
ip link set lg1 up
LINEGRAM_NETNS="$(current_netns)"
export LINEGRAM_NETNS
exec "$@"
