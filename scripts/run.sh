#!/usr/bin/env bash
# Sets up and runs the main job: installs the build dependencies, builds kata-vmm
# (release), then boots the probe guest and, when ../shared/guest-kernel is present,
# the Linux test kernel with a busybox initramfs that reports what it sees and powers off,
# and finally runs a busybox container in its own microVM with kata-runtime (the guest
# agent's initramfs is built on the way).
# Usage: scripts/run.sh [--probe-only]
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d /opt/swift/usr/bin ] && export PATH=/opt/swift/usr/bin:$PATH
scripts/install-deps.sh
swift build -c release --static-swift-stdlib --product kata-vmm
vmm=$(swift build -c release --static-swift-stdlib --show-bin-path)/kata-vmm
work=${KATA_WORK_DIR:-$PWD/.build/run}
mkdir -p "$work"

echo "== probe guest (PVH, 2 vCPUs) =="
guest/probe/build.sh "$work/probe.elf"
set +e
"$vmm" --kernel "$work/probe.elf" --cpus 2 --memory 256 --cmdline "console=ttyS0 probe.demo=1"
echo "kata-vmm exited with $? (2 = guest reset, which is how the probe ends)"
set -e

[ "${1:-}" = "--probe-only" ] && exit 0
shared=${KATA_SHARED_DIR:-$PWD/../shared}
if [ ! -f "$shared/guest-kernel/vmlinux.xz" ]; then
  echo "no $shared/guest-kernel/vmlinux.xz: skipping the Linux boot"
  exit 0
fi
echo "== Linux $(basename "$shared")/guest-kernel (64-bit boot protocol, 2 vCPUs; about a minute here) =="
[ -f "$work/vmlinux" ] || xz -dc "$shared/guest-kernel/vmlinux.xz" > "$work/vmlinux"
guest/linux-test/build-initramfs.sh "$work/initramfs.cpio"
options="nopvspin noxsave nokaslr clearcpuid=popcnt,cx16,rdrand,rdseed,sse4_2,pclmulqdq,aes,avx,avx2,avx512f,movbe,smap,pku,ospke,fsgsbase,rdpid,pcid,invpcid,serialize,waitpkg,rdtscp,xsave,xsaves,xsaveopt,xsavec"
"$vmm" --kernel "$work/vmlinux" --initrd "$work/initramfs.cpio" --cpus 2 --memory 256 \
  --cmdline "console=ttyS0 reboot=k panic=-1 pci=off quiet $options"
echo "kata-vmm exited with $? (0 = guest powered off)"

echo "== a busybox container in its own microVM: kata-runtime run (the guest boots first: a few minutes here) =="
swift build -c release --static-swift-stdlib --product kata-runtime
runtime=$(swift build -c release --static-swift-stdlib --show-bin-path)/kata-runtime
guest/build-initramfs.sh "$work/agent.cpio"
bundle="$work/bundle"
rm -rf "$bundle" && mkdir -p "$bundle"/rootfs/{bin,dev,proc,sys,tmp,etc}
cp /bin/busybox "$bundle/rootfs/bin/busybox"
for applet in sh echo uname cat; do ln -s busybox "$bundle/rootfs/bin/$applet"; done
"$runtime" spec --bundle "$bundle"
sed -i -e '/"args" : \[/,/\]/ s|^      "sh"$|      "sh", "-c", "echo hello from a container in a microVM; uname -sr; echo exit status 3 next; exit 3"|' \
       -e 's/"terminal" : true/"terminal" : false/' "$bundle/config.json"
cat > "$work/configuration.toml" <<TOML
[hypervisor.kata]
kernel = "$work/vmlinux"
initrd = "$work/agent.cpio"
kernel_params = "$options"
default_vcpus = 2
default_memory = 512
TOML
set +e
time "$runtime" --config "$work/configuration.toml" --root "$work/runtime-root" run --bundle "$bundle" "demo-$$" </dev/null
echo "kata-runtime run exited with $? (the container's own exit status: 3)"
