import AgentProtocol
import Foundation
import Testing
@testable import AgentCore

@Suite struct MountTests {
    @Test func optionsSplitIntoFlagsPropagationAndData() {
        let options = MountOptions(["ro", "nosuid", "nodev", "rbind", "rslave", "size=64m", "mode=1777"])
        #expect(options.flags == UInt(MS_RDONLY | MS_NOSUID | MS_NODEV | MS_BIND | MS_REC))
        #expect(options.propagation == UInt(MS_SLAVE | MS_REC))
        #expect(options.dataString == "size=64m,mode=1777")
        #expect(options.isBind && options.isReadOnly)
        // Later options win, as mount(8) reads them.
        let reopened = MountOptions(["ro", "rw", "noexec", "exec"])
        #expect(reopened.flags == 0 && !reopened.isReadOnly && reopened.dataString == nil)
    }

    @Test func storageOutsideAnAbsolutePathOrOfUnknownKindIsRefused() throws {
        func refusal(_ edit: (inout Grpc_Storage) -> Void) -> String {
            var storage = Grpc_Storage()
            edit(&storage)
            do {
                _ = try StorageMount.mount(storage)
                return "accepted"
            } catch {
                return "\(error)"
            }
        }
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("storage-\(UUID().uuidString)").path
        #expect(refusal { $0.driver = "local"; $0.mountPoint = "relative/dir" }.contains("absolute path"))
        #expect(refusal { $0.driver = "local"; $0.mountPoint = scratch + "/../escape" }.contains("without '..'"))
        #expect(refusal { $0.driver = "nfs"; $0.mountPoint = scratch + "/nfs" }.contains("unknown storage driver nfs"))
        #expect(refusal { $0.driver = "bind"; $0.source = "relative"; $0.mountPoint = scratch + "/bind" }.contains("absolute source"))
        #expect(refusal { $0.driver = "blk"; $0.source = "../sda"; $0.mountPoint = scratch + "/blk" }.contains("needs a source"))
        #expect(refusal { $0.driver = "virtio-fs"; $0.mountPoint = scratch + "/fs" }.contains("tag of 1 to 36 bytes"))
        #expect(refusal { $0.driver = "virtio-fs"; $0.source = String(repeating: "t", count: 37); $0.mountPoint = scratch + "/fs" }
            .contains("tag of 1 to 36 bytes"))
        // A tag no device has: the kernel's error, named.
        #expect(refusal { $0.driver = "virtio-fs"; $0.source = "noSuchTag"; $0.mountPoint = scratch + "/fs" }.contains("mount virtio-fs noSuchTag"))
        var local = Grpc_Storage()
        local.driver = "local"
        local.mountPoint = scratch + "/local/volume"
        #expect(try StorageMount.mount(local) == nil)
        var isDirectory: ObjCBool = false
        #expect(FileManager.default.fileExists(atPath: local.mountPoint, isDirectory: &isDirectory) && isDirectory.boolValue)
    }
}
