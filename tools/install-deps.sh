#!/usr/bin/env bash
# Host packages Forkd and its tests need on Debian 12 (idempotent). Run as root.
set -euo pipefail
need=()
# lz4: tests check the kernel LZ4 decoder against the reference CLI; cpio: tests read our initramfs with it.
for pkg in qemu-system-x86 zstd busybox-static cpio lz4 python3 iproute2 e2fsprogs; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
