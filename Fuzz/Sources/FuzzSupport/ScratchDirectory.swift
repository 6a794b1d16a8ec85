import Glibc

/// A private directory for the sockets and images a target needs, made once per process
/// (never per input) and removed at exit.
public enum ScratchDirectory {
    public static let path: String = {
        var template = Array("/tmp/kata-fuzz-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { fatalError("mkdtemp: \(String(cString: strerror(errno)))") }
        let path = String(cString: made)
        atexit { ScratchDirectory.remove() }
        return path
    }()

    /// `name` inside the directory.
    public static func file(_ name: String) -> String { path + "/" + name }

    static func remove() {
        guard let dir = opendir(path) else { return }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if name != "." && name != ".." { unlink(file(name)) }
        }
        closedir(dir)
        rmdir(path)
    }
}
