import Foundation
import Machine
import TestSupport
import Testing
import VMM

/// `track_dirty_pages` on a running guest: KVM's log holds what the vCPUs wrote, the VMM's
/// bitmap what its devices wrote, and reading them clears both, so a paused VM reads empty
/// the second time.
@Suite struct DirtyPageTrackingTests {
    static func bits(_ regions: [(guestAddress: UInt64, bitmap: [UInt64])]) -> Int {
        regions.reduce(0) { $0 + $1.bitmap.reduce(0) { $0 + $1.nonzeroBitCount } }
    }

    @Test func theGuestsAndTheDevicesWritesAreLoggedAndClearedWhenRead() throws {
        let probe = try Fixtures.probeGuest().path
        // The probe's I/O loop on virtio-rng: the device writes entropy into the guest's buffers.
        var config = VmConfig(kernelPath: probe, cmdline: "probe.mode=io probe.io=rng", memoryMiB: 64, serial: .none)
        config.rng = true
        config.trackDirtyPages = true
        let vm = try MicroVM(config: config)
        defer { vm.stop(.signal(SIGTERM)); _ = vm.waitForExit(); vm.shutdown() }
        try vm.start()
        usleep(1_000_000)
        vm.pause()
        let devices = try #require(vm.memory.dirtyPages).take(region: 0).reduce(0) { $0 + $1.nonzeroBitCount }
        #expect(devices > 0, "virtio-rng wrote guest buffers and used rings")
        let first = Self.bits(try vm.takeDirtyPages())
        let pages = Int(vm.memory.totalSize / DirtyPageBitmap.pageSize)
        #expect(first > 0 && first < pages / 10, "\(first) of \(pages) pages")
        print("dirty pages after 1 s of the rng loop: \(first) of \(pages) (the devices' share: \(devices))")
        #expect(Self.bits(try vm.takeDirtyPages()) == 0, "nothing ran since the last read")
        vm.resume()
        usleep(300_000)
        vm.pause()
        #expect(Self.bits(try vm.takeDirtyPages()) > 0)
        vm.resume()
    }
}
