#!/usr/bin/env bash
# Builds a test initramfs whose only program is a static /init compiled from one C file
# (guest/virtio-test/init.c, guest/net-test/init.c): one process does every check, since
# each new process risks the stale-page flaw of the PVM test hosts. Uncompressed newc cpio.
# Usage: build-static-initramfs.sh INIT.c OUTPUT.cpio
set -euo pipefail
source=${1:?usage: build-static-initramfs.sh INIT.c OUTPUT.cpio}
out=${2:?usage: build-static-initramfs.sh INIT.c OUTPUT.cpio}
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{dev,proc,sys}
"${CC:-gcc}" -static -O2 -Wall -Werror -o "$root/init" "$source"
(cd "$root" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet) > "$out.tmp"
mv "$out.tmp" "$out"
