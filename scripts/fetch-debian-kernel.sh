#!/usr/bin/env bash
# Downloads Debian's cloud kernel package (never installing it) and unpacks it into DIR,
# for the bzImage parsing tests. Prints the path of the vmlinuz.
# Usage: fetch-debian-kernel.sh DIR
set -euo pipefail
dir=${1:?usage: fetch-debian-kernel.sh DIR}
mkdir -p "$dir"
existing=$(ls "$dir"/root/boot/vmlinuz-* 2>/dev/null | head -1 || true)
if [ -n "$existing" ]; then echo "$existing"; exit 0; fi
package=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
if [ -z "$package" ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  package=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
fi
(cd "$dir" && apt-get download -qq "$package" >/dev/null && dpkg-deb -x ./"$package"_*.deb root && rm -f ./*.deb)
ls "$dir"/root/boot/vmlinuz-* | head -1
