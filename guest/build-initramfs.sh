#!/usr/bin/env bash
# Builds the sandbox guest image: a deterministic newc cpio whose /init is the static
# kata-agent, plus the few entries the kernel and the agent need (/dev/console for the
# kernel's initial console, mount points). Uncompressed by default: on hosts that emulate
# the guest kernel, decompressing takes longer than reading the bytes.
#
# Usage: guest/build-initramfs.sh [--gzip] [--agent STATIC_BINARY] OUTPUT
#   --agent   use this static kata-agent instead of building one with
#             `swift build -c release --product kata-agent -Xswiftc -static-executable
#             -Xswiftc -Osize` (size over speed: the guest kernel copies every byte of
#             the initramfs, slowly on emulating hosts)
#             (scratch path .build/guest-agent, so the normal build is left alone)
#   --gzip    compress with gzip -n (no name, no time stamp)
# Determinism: entries sorted by name, owner 0:0, every mtime SOURCE_DATE_EPOCH (0 if
# unset), cpio --reproducible (sequential inode numbers). Same agent, same bytes.
set -euo pipefail
usage() { echo "usage: build-initramfs.sh [--gzip] [--agent STATIC_BINARY] OUTPUT" >&2; exit 2; }
gzip=0
agent=""
out=""
while (($#)); do
  case "$1" in
    --gzip) gzip=1 ;;
    --agent) shift; agent=${1:-}; [ -n "$agent" ] || usage ;;
    -*) usage ;;
    *) [ -z "$out" ] || usage; out=$1 ;;
  esac
  shift
done
[ -n "$out" ] || usage
root=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "$agent" ]; then
  scratch="$root/.build/guest-agent"
  (cd "$root" && swift build -c release --product kata-agent --scratch-path "$scratch" \
     -Xswiftc -static-executable -Xswiftc -Osize >&2)
  agent="$scratch/release/kata-agent"
fi
[ -x "$agent" ] || { echo "build-initramfs.sh: no agent binary at $agent" >&2; exit 1; }
if ! file -L "$agent" | grep -Eq "statically linked|static-pie linked"; then
  echo "build-initramfs.sh: $agent is not a static executable" >&2
  exit 1
fi
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{dev,proc,sys,run,tmp,etc}
strip --strip-all -o "$stage/init" "$agent"
chmod 0755 "$stage/init"
mknod -m 0600 "$stage/dev/console" c 5 1
mknod -m 0666 "$stage/dev/null" c 1 3
# The static Swift runtime finds its own path at start-up with dladdr, which static glibc
# cannot answer, then with readlink("/proc/self/exe"), before the agent has mounted proc.
# This stand-in answers "/init"; the agent's proc mount then hides it.
mkdir -p "$stage/proc/self"
ln -s /init "$stage/proc/self/exe"
epoch=${SOURCE_DATE_EPOCH:-0}
find "$stage" -exec touch -h -d "@$epoch" {} +
(cd "$stage" && find . -mindepth 1 -print0 | LC_ALL=C sort -z |
  cpio --null -o -H newc --owner=0:0 --reproducible --quiet) > "$out.tmp"
if ((gzip)); then
  gzip -n -9 -c "$out.tmp" > "$out.tmp.gz"
  mv "$out.tmp.gz" "$out.tmp"
fi
mv "$out.tmp" "$out"
