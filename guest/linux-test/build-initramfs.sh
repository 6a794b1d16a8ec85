#!/usr/bin/env bash
# Builds the end-to-end test initramfs: busybox-static plus guest/linux-test/init, as an
# uncompressed newc cpio (decompressing under this host's instruction emulator is slow).
# Usage: build-initramfs.sh OUTPUT.cpio
set -euo pipefail
out=${1:?usage: build-initramfs.sh OUTPUT.cpio}
here=$(cd "$(dirname "$0")" && pwd)
busybox=$(command -v busybox || true)
[ -x /bin/busybox ] && busybox=/bin/busybox
if [ -z "$busybox" ] || ! file -L "$busybox" 2>/dev/null | grep -q "statically linked"; then
  echo "build-initramfs.sh: needs a static busybox (apt-get install busybox-static)" >&2
  exit 1
fi
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,dev,proc,sys,tmp}
cp "$busybox" "$root/bin/busybox"
ln -s busybox "$root/bin/sh"
install -m 0755 "$here/init" "$root/init"
(cd "$root" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet) > "$out.tmp"
mv "$out.tmp" "$out"
