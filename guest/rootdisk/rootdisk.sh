# forkd rootdisk stage, sourced by forkd-init (PID 1, busybox sh) in a root-disk image's small
# initramfs. Mounts the shared read-only root disk under an overlay whose upper layer is guest RAM,
# so every child's writes stay in its own copy-on-write memory and the disk image is never written,
# then switches to it and runs the disk's own /sbin/forkd-init (which starts the agent).
# Kernel arguments: forkd.root=<dev> (default vda), forkd.rootfstype=<ext4|squashfs> (default auto).
# Returns only on failure; forkd-init then goes on in the initramfs and reports no agent.

rootdisk_arg() {
    for word in $(cat /proc/cmdline); do
        case "$word" in "$1="*) echo "${word#*=}"; return 0 ;; esac
    done
    return 1
}

rootdisk_main() {
    for m in virtio_blk overlay squashfs; do
        [ -f "/lib/modules/$m.ko" ] && insmod "/lib/modules/$m.ko" 2>/dev/null
    done
    dev=$(rootdisk_arg forkd.root) || dev=vda
    fstype=$(rootdisk_arg forkd.rootfstype) || fstype=
    # The block device shows up asynchronously after virtio_blk binds.
    tries=0
    while [ ! -b "/dev/$dev" ] && [ $tries -lt 100 ]; do sleep 0.1; tries=$((tries + 1)); done
    if [ ! -b "/dev/$dev" ]; then
        echo "forkd-rootdisk: ERROR: root disk /dev/$dev did not appear (is virtio_blk in the image?)" >&2
        return 1
    fi
    mkdir -p /forkd-lower /forkd-rw /forkd-root
    if ! mount -o ro ${fstype:+-t "$fstype"} "/dev/$dev" /forkd-lower; then
        echo "forkd-rootdisk: ERROR: cannot mount /dev/$dev read-only" >&2
        return 1
    fi
    # Upper layer in RAM: private to this VM (and to each child, through the copy-on-write memory image).
    mount -t tmpfs -o mode=0755 tmpfs /forkd-rw && mkdir -p /forkd-rw/upper /forkd-rw/work
    if ! mount -t overlay overlay -o lowerdir=/forkd-lower,upperdir=/forkd-rw/upper,workdir=/forkd-rw/work /forkd-root; then
        echo "forkd-rootdisk: ERROR: cannot mount the overlay (is the overlay module in the image?)" >&2
        umount /forkd-rw /forkd-lower 2>/dev/null
        return 1
    fi
    if [ ! -x /forkd-root/sbin/forkd-init ]; then
        echo "forkd-rootdisk: ERROR: the root disk has no /sbin/forkd-init" >&2
        umount /forkd-root /forkd-rw /forkd-lower 2>/dev/null
        return 1
    fi
    umount /tmp /dev/shm /dev/pts 2>/dev/null
    for fs in dev proc sys; do
        mkdir -p "/forkd-root/$fs"
        mount --move "/$fs" "/forkd-root/$fs"
    done
    echo "forkd-rootdisk: root disk /dev/$dev mounted read-only under a RAM overlay"
    exec switch_root /forkd-root /sbin/forkd-init
}

rootdisk_main
