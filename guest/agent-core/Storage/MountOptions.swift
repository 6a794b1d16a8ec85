#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// mount(8)-style options ("ro", "nosuid", "rbind", "rprivate", "size=64m") split into
/// mount(2) flags, propagation flags and the data string, as runc does.
struct MountOptions: Equatable {
    var flags: UInt = 0
    var propagation: UInt = 0
    var data: [String] = []
    var isBind: Bool { flags & UInt(MS_BIND) != 0 }
    var isReadOnly: Bool { flags & UInt(MS_RDONLY) != 0 }

    init(_ options: [String]) {
        for option in options {
            if let (set, flag) = MountOptions.flagTable[option] {
                if set { flags |= flag } else { flags &= ~flag }
            } else if let flag = MountOptions.propagationTable[option] {
                propagation |= flag
            } else {
                data.append(option)
            }
        }
    }

    var dataString: String? { data.isEmpty ? nil : data.joined(separator: ",") }

    private static let flagTable: [String: (Bool, UInt)] = [
        "ro": (true, UInt(MS_RDONLY)), "rw": (false, UInt(MS_RDONLY)),
        "nosuid": (true, UInt(MS_NOSUID)), "suid": (false, UInt(MS_NOSUID)),
        "nodev": (true, UInt(MS_NODEV)), "dev": (false, UInt(MS_NODEV)),
        "noexec": (true, UInt(MS_NOEXEC)), "exec": (false, UInt(MS_NOEXEC)),
        "sync": (true, UInt(MS_SYNCHRONOUS)), "async": (false, UInt(MS_SYNCHRONOUS)),
        "dirsync": (true, UInt(MS_DIRSYNC)),
        "remount": (true, UInt(MS_REMOUNT)),
        "mand": (true, UInt(MS_MANDLOCK)), "nomand": (false, UInt(MS_MANDLOCK)),
        "noatime": (true, UInt(MS_NOATIME)), "atime": (false, UInt(MS_NOATIME)),
        "nodiratime": (true, UInt(MS_NODIRATIME)), "diratime": (false, UInt(MS_NODIRATIME)),
        "relatime": (true, UInt(MS_RELATIME)), "norelatime": (false, UInt(MS_RELATIME)),
        "strictatime": (true, UInt(MS_STRICTATIME)), "nostrictatime": (false, UInt(MS_STRICTATIME)),
        "bind": (true, UInt(MS_BIND)), "rbind": (true, UInt(MS_BIND | MS_REC)),
    ]

    private static let propagationTable: [String: UInt] = [
        "private": UInt(MS_PRIVATE), "rprivate": UInt(MS_PRIVATE | MS_REC),
        "shared": UInt(MS_SHARED), "rshared": UInt(MS_SHARED | MS_REC),
        "slave": UInt(MS_SLAVE), "rslave": UInt(MS_SLAVE | MS_REC),
        "unbindable": UInt(MS_UNBINDABLE), "runbindable": UInt(MS_UNBINDABLE | MS_REC),
    ]
}
