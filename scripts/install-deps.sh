#!/usr/bin/env bash
# Installs the Debian 12 packages the build, the guests and the tests need. Idempotent.
set -euo pipefail
packages=(
  gcc libc6-dev binutils      # the probe guest (gcc -m32 -ffreestanding) and the C shim
  libaio-dev                  # virtio-blk's Linux AIO engine
  busybox-static cpio         # the end-to-end test initramfs
  xz-utils file               # the shared guest kernel is xz-compressed
  acpica-tools                # iasl: validates the ACPI tables in the tests
  util-linux                  # unshare/setpriv: the /dev/kvm error-path tests
  iproute2                    # network namespaces and taps for the virtio-net tests
  qemu-system-x86             # kata-bench measures QEMU microvm beside kata-vmm
  qemu-system-common          # /usr/lib/qemu/virtiofsd: the vhost-user backend of virtio-fs
  gnuplot-nox                 # kata-bench --plot draws its PNG charts
  curl                        # the API tests drive kata-vmm's API socket with curl --unix-socket
  e2fsprogs                   # mke2fs -d: the agent's end-to-end virtio-block rootfs image
)
missing=()
for p in "${packages[@]}"; do
  [[ $p == \#* ]] && continue
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
