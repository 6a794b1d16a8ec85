#!/usr/bin/env bash
# Builds the probe guest: a 32-bit freestanding ELF with a PVH entry note.
# Usage: build.sh OUTPUT.elf   (needs gcc and binutils; no multilib packages)
set -euo pipefail
out=${1:?usage: build.sh OUTPUT.elf}
here=$(cd "$(dirname "$0")" && pwd)
cc=${CC:-gcc}
flags=(-m32 -march=i686 -ffreestanding -fno-pic -fno-pie -fno-stack-protector -fno-asynchronous-unwind-tables
       -mno-sse -mno-mmx -mno-80387 -mgeneral-regs-only -O2 -Wall -Werror -nostdlib -nostartfiles -static
       -no-pie -Wl,--build-id=none -Wl,--no-warn-rwx-segments -Wl,-T,"$here/probe.ld" -Wl,-m,elf_i386)
"$cc" "${flags[@]}" -o "$out.tmp" "$here/entry.S" "$here/probe.c" "$here/virtio.c" "$here/hostile.c" "$here/io.c" "$here/balloon.c"
mv "$out.tmp" "$out"
