#!/usr/bin/env bash
# Builds the network end-to-end initramfs: a single static /init (init.c) in an
# uncompressed newc cpio. Usage: build-initramfs.sh OUTPUT.cpio
set -euo pipefail
out=${1:?usage: build-initramfs.sh OUTPUT.cpio}
here=$(cd "$(dirname "$0")" && pwd)
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{dev,proc,sys}
"${CC:-gcc}" -static -O2 -Wall -Werror -o "$root/init" "$here/init.c"
(cd "$root" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet) > "$out.tmp"
mv "$out.tmp" "$out"
