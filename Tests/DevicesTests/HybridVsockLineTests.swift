import HybridVsock
import Testing

/// The hybrid vsock handshake lines, byte by byte: the device parses CONNECT and writes
/// OK, the runtime the other way round, both through `HybridVsockLine`.
@Suite struct HybridVsockLineTests {
    @Test func connectLineParsing() {
        func parse(_ s: String) -> HybridVsockLine.Parse { HybridVsockLine.parseConnect(Array(s.utf8)) }
        #expect(parse("CONNECT 52\n") == .line(port: 52, length: 11))
        #expect(parse("CONNECT 52\r\n") == .line(port: 52, length: 12))
        #expect(parse("CONNECT 4294967295\nmore data") == .line(port: UInt32.max, length: 19))
        #expect(parse("CONNECT 4294967296\n") == .invalid)
        #expect(parse("CONNECT 99999999999\n") == .invalid)
        #expect(parse("CONN") == .incomplete)
        #expect(parse("CONNECT 12") == .incomplete)
        #expect(parse("") == .incomplete)
        #expect(parse("connect 52\n") == .invalid)
        #expect(parse("GET / HTTP/1.1") == .invalid)
        #expect(parse("CONNECT \n") == .invalid)
        #expect(parse("CONNECT -1\n") == .invalid)
        #expect(parse("CONNECT 1 2\n") == .invalid)
        #expect(parse("CONNECT 0000000000000000000000001") == .invalid)  // 32 bytes and no newline
        #expect(parse("OK 52\n") == .invalid)
    }

    @Test func okLineParsing() {
        func parse(_ s: String) -> HybridVsockLine.Parse { HybridVsockLine.parseOK(Array(s.utf8)) }
        #expect(parse("OK 1073741824\n") == .line(port: 1 << 30, length: 14))
        #expect(parse("OK 7\r\nstream") == .line(port: 7, length: 6))
        #expect(parse("OK ") == .incomplete)
        #expect(parse("OK\n") == .invalid)
        #expect(parse("OK x\n") == .invalid)
        #expect(parse("CONNECT 7\n") == .invalid)
        #expect(parse("OK " + String(repeating: "1", count: 29)) == .invalid)  // 32 bytes and no newline
    }

    @Test func linesAreWhatTheParsersAccept() {
        #expect(HybridVsockLine.connect(port: 1024) == Array("CONNECT 1024\n".utf8))
        #expect(HybridVsockLine.ok(port: 1 << 30) == Array("OK 1073741824\n".utf8))
        for port: UInt32 in [0, 1, 1024, UInt32.max] {
            let connect = HybridVsockLine.connect(port: port), ok = HybridVsockLine.ok(port: port)
            #expect(HybridVsockLine.parseConnect(connect) == .line(port: port, length: connect.count))
            #expect(HybridVsockLine.parseOK(ok) == .line(port: port, length: ok.count))
            #expect(connect.count <= HybridVsockLine.maxLength && ok.count <= HybridVsockLine.maxLength)
        }
    }
}
