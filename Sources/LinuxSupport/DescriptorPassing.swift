#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// File descriptors sent along with bytes over a Unix socket (SCM_RIGHTS): the console
/// socket's pty (runc's --console-socket), guest memory and eventfds for a vhost-user
/// backend.
public enum DescriptorPassing {
    /// The most descriptors one message carries here (vhost-user's memory table: 8).
    public static let maxDescriptors = 8

    /// Sends `payload` (not empty) with `fds` in one sendmsg.
    public static func send(on socket: Int32, payload: [UInt8], fds: [Int32]) throws(SystemError) {
        precondition(!payload.isEmpty && fds.count <= maxDescriptors)
        let headerLength = MemoryLayout<cmsghdr>.size
        let dataLength = fds.count * MemoryLayout<Int32>.size
        var control = [UInt8](repeating: 0, count: fds.isEmpty ? 0 : headerLength + ((dataLength + 7) & ~7))
        if !fds.isEmpty {
            control.withUnsafeMutableBytes { raw in
                let header = raw.baseAddress!.assumingMemoryBound(to: cmsghdr.self)
                header.pointee.cmsg_len = headerLength + dataLength
                header.pointee.cmsg_level = SOL_SOCKET
                header.pointee.cmsg_type = Int32(SCM_RIGHTS)
                for (index, value) in fds.enumerated() {
                    raw.storeBytes(of: value, toByteOffset: headerLength + index * 4, as: Int32.self)
                }
            }
        }
        var payload = payload
        while true {
            let sent = withMessage(payload: &payload, control: &control) { sendmsg(socket, &$0, Int32(MSG_NOSIGNAL)) }
            if sent < 0 && errno == EINTR { continue }
            guard sent >= 0 else { throw SystemError("sendmsg") }
            // A stream socket takes a small message whole or not at all here; a short
            // send would split a message from its descriptors.
            guard sent == payload.count else { throw SystemError("sendmsg: \(sent) of \(payload.count) bytes sent", errno: EMSGSIZE) }
            return
        }
    }

    /// Receives one message of at most `maxPayload` bytes and the descriptors that came
    /// with it (made close-on-exec); an empty payload means end of stream.
    public static func receive(on socket: Int32, maxFds: Int = maxDescriptors, maxPayload: Int = 4096) throws(SystemError) -> (payload: [UInt8], fds: [Int32]) {
        let headerLength = MemoryLayout<cmsghdr>.size
        var control = [UInt8](repeating: 0, count: headerLength + ((maxFds * 4 + 7) & ~7))
        var payload = [UInt8](repeating: 0, count: maxPayload)
        var controlLength = 0
        var received = 0
        while true {
            received = withMessage(payload: &payload, control: &control) { message -> Int in
                let count = recvmsg(socket, &message, Int32(MSG_CMSG_CLOEXEC))
                controlLength = message.msg_controllen
                return count
            }
            if received < 0 && errno == EINTR { continue }
            guard received >= 0 else { throw SystemError("recvmsg") }
            break
        }
        var fds: [Int32] = []
        if controlLength >= headerLength {
            control.withUnsafeBytes { raw in
                let length = raw.load(as: Int.self)  // cmsg_len
                let level = raw.load(fromByteOffset: 8, as: Int32.self)
                let type = raw.load(fromByteOffset: 12, as: Int32.self)
                guard level == SOL_SOCKET, type == Int32(SCM_RIGHTS), length >= headerLength, length <= raw.count else { return }
                for index in 0..<(length - headerLength) / 4 {
                    fds.append(raw.load(fromByteOffset: headerLength + index * 4, as: Int32.self))
                }
            }
        }
        return (Array(payload[0..<received]), fds)
    }

    /// A msghdr over one payload buffer and a control buffer, for sendmsg and recvmsg.
    private static func withMessage(payload: inout [UInt8], control: inout [UInt8], _ body: (inout msghdr) -> Int) -> Int {
        payload.withUnsafeMutableBytes { data in
            control.withUnsafeMutableBytes { controlRaw in
                var vector = iovec(iov_base: data.baseAddress, iov_len: data.count)
                return withUnsafeMutablePointer(to: &vector) { vectorPointer in
                    var message = msghdr()
                    message.msg_iov = vectorPointer
                    message.msg_iovlen = 1
                    message.msg_control = controlRaw.count == 0 ? nil : controlRaw.baseAddress
                    message.msg_controllen = controlRaw.count
                    return body(&message)
                }
            }
        }
    }
}
