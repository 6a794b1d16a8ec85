import Foundation
import Runtime
import TestSupport

extension RuntimeHarness {
    /// Everything the runtime may have left for `id`: its state dir, its socket dir.
    func leftovers(_ id: String) -> [String] {
        let store = StateStore(root: root)
        return [store.directory(of: id), store.socketDirectory(of: id)].filter { FileManager.default.fileExists(atPath: $0) }
    }

}
