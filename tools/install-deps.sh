#!/usr/bin/env bash
# Host packages Forkd and its tests need on Debian 12 (idempotent). Run as root.
set -euo pipefail
need=()
# libzstd1: packs use the system libzstd when it loads. lz4: tests check the kernel LZ4 decoder against the reference CLI;
# cpio: tests read our initramfs with it; nftables: NAT for per-child networks.
# mmdebstrap, e2fsprogs (mkfs.ext4 -d, debugfs), squashfs-tools: root disks of big recipes.
for pkg in qemu-system-x86 zstd libzstd1 busybox-static cpio lz4 python3 iproute2 e2fsprogs nftables mmdebstrap squashfs-tools; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# Node.js runs the warm-up bridge tests on the host and npm vendors packages into root disks. A machine
# may already have Node from elsewhere (NodeSource); Debian's nodejs/npm only when there is none.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
