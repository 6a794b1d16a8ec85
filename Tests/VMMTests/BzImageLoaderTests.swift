import Foundation
import TestSupport
import Testing
@testable import VMM

@Suite struct BzImageLoaderTests {
    @Test func parsesTheSetupHeader() throws {
        let header = try BzImageLoader.parseHeader(ByteReader(TestImages.bzImage(setupSects: 0)))
        #expect(header.setupSects == 4)  // 0 means 4, per the protocol
        #expect(header.kernelOffset == 5 * 512)
        #expect(header.version == 0x020F)
        #expect(header.prefAddress == 0x100_0000)
        #expect(header.relocatable)
        #expect(header.rawHeader.count == 0x268 - 0x1F1)
        #expect(header.rawHeader[0x202 - 0x1F1] == UInt8(ascii: "H"))
    }

    @Test func loadsAtPrefAddressAndEntersAt0x200() throws {
        let payload = (0..<8192).map { UInt8(truncatingIfNeeded: $0) }
        let memory = try GuestMemory(ranges: X86MemoryLayout.ramRanges(size: 64 << 20))
        let loaded = try KernelImage.load(TestImages.bzImage(setupSects: 3, payload: payload), into: memory)
        #expect(loaded.format == .bzImage)
        #expect(loaded.loadStart == 0x100_0000)
        #expect(loaded.linux64Entry == 0x100_0200)
        #expect(loaded.loadEnd == 0x100_0000 + 0x10_0000)  // init_size exceeds the payload
        #expect(try memory.read(at: 0x100_0000, length: 8192) == payload)
        #expect(loaded.initrdAddressMax == 0x7FFF_FFFF)
        #expect(loaded.cmdlineMaxLength == 2047)
    }

    /// The decompressor runs at pref_address whatever the load address: init_size must fit there.
    @Test func needsInitSizeAtPrefAddress() throws {
        let memory = try GuestMemory(ranges: X86MemoryLayout.ramRanges(size: 24 << 20))
        #expect(try KernelImage.load(TestImages.bzImage(initSize: 0x80_0000), into: memory).loadEnd == 0x180_0000)
        #expect(throws: KernelImageError.self) { try KernelImage.load(TestImages.bzImage(initSize: 0x80_1000), into: memory) }
        #expect(throws: KernelImageError.self) { try KernelImage.load(TestImages.bzImage(prefAddress: 0x8_0000), into: memory) }
    }

    @Test func rejectsWhatTheProtocolDoesNotAllow() throws {
        let memory = try GuestMemory(ranges: X86MemoryLayout.ramRanges(size: 64 << 20))
        func expectError(_ image: [UInt8], _ fragment: String, sourceLocation: SourceLocation = #_sourceLocation) {
            do {
                _ = try KernelImage.load(image, into: memory)
                Issue.record("loaded a bad bzImage (\(fragment))", sourceLocation: sourceLocation)
            } catch {
                #expect("\(error)".contains(fragment), "\(error)", sourceLocation: sourceLocation)
            }
        }
        expectError(TestImages.bzImage(version: 0x0204), "older than 2.06")
        expectError(TestImages.bzImage(loadflags: 0), "zImage")
        expectError(TestImages.bzImage(xloadflags: 0), "no 64-bit entry point")
        expectError(TestImages.bzImage(initSize: 0x1000_0000), "does not fit")
        var badFlag = TestImages.bzImage(); badFlag[0x1FE] = 0
        expectError(badFlag, "boot_flag")
        expectError(Array(TestImages.bzImage().prefix(0x200)), "not a kernel image")
        expectError(Array(TestImages.bzImage().prefix(0x262)), "shorter than its setup header")
        expectError(Array(TestImages.bzImage(setupSects: 60).prefix(4096)), "past the end")
    }

    /// Debian's cloud kernel, unpacked by .ci/run from the linux-image-*-cloud-amd64 package.
    @Test func parsesDebiansCloudKernel() throws {
        guard let url = Fixtures.debianBzImage else { try Fixtures.missing("KATA_TEST_DEBIAN_BZIMAGE (Debian's vmlinuz)") }
        let image = try [UInt8](Data(contentsOf: url))
        let header = try BzImageLoader.parseHeader(ByteReader(image))
        #expect(header.version >= 0x020F)
        #expect(header.loadflags & 0x01 != 0)  // LOADED_HIGH
        #expect(header.xloadflags & 0x01 != 0)  // XLF_KERNEL_64
        #expect(header.relocatable)
        #expect(header.kernelAlignment == 0x20_0000)
        #expect(header.prefAddress == 0x100_0000)
        #expect(header.initSize > 0)
        #expect(header.cmdlineSize == 2047)
        #expect(header.initrdAddressMax == 0x7FFF_FFFF)
        let memory = try GuestMemory(ranges: X86MemoryLayout.ramRanges(size: 512 << 20))
        let loaded = try KernelImage.load(image, into: memory)
        #expect(loaded.linux64Entry == 0x100_0200)
        #expect(loaded.loadEnd == 0x100_0000 + UInt64(header.initSize))
        // The protected-mode code starts with the 32-bit startup (cld; cli ...) right after setup.
        #expect(try memory.read(at: 0x100_0000, length: 64) == Array(image[header.kernelOffset..<header.kernelOffset + 64]))
    }
}
