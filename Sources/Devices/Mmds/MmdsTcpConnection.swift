/// One guest TCP connection to the metadata service: sequence numbers both ways, the
/// request bytes received so far and the one response being sent.
struct MmdsTcpConnection {
    var peerMac: NetworkHeaders.Mac
    var peerIp: UInt32
    var peerPort: UInt16
    /// Until the guest acknowledges the SYN-ACK.
    var synReceived = true
    var iss: UInt32
    var rcvNxt: UInt32
    var sndUna: UInt32
    var sndNxt: UInt32
    var peerWindow: UInt32
    var mss: Int
    var request: [UInt8] = []
    /// Where the search for the end of the request head resumes.
    var scanFrom = 0
    /// The response being sent; `response[0]` is sequence number `responseSeq`.
    var response: [UInt8] = []
    var responseSeq: UInt32
    var closeAfterResponse = false
    var finSent = false
    var peerFin = false
    var duplicateAcks = 0
    var lastActive: UInt64

    var advertisedWindow: UInt16 { UInt16(MmdsNetworkStack.requestCapacity - request.count) }
    var inFlight: UInt32 { sndNxt &- sndUna }
    var unsentOffset: Int { Int(sndNxt &- responseSeq) }
    var hasUnsentData: Bool { !synReceived && unsentOffset < response.count }
    var finDue: Bool { closeAfterResponse && !finSent && !synReceived && unsentOffset >= response.count }
}
