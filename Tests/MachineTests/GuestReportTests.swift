import TestSupport
import Testing

/// The Linux tests' reader of guest reports: a line still being written is not a value.
@Suite struct GuestReportTests {
    @Test func aLineStillBeingWrittenIsNotReadYet() {
        let partial = "KATA-VSOCK hshut=eof\nKATA-VSOCK gshut=wrote=0 shut=0 "
        #expect(GuestReport(partial, prefix: "KATA-VSOCK")["gshut"] == nil)
        #expect(GuestReport(partial, prefix: "KATA-VSOCK")["hshut"] == "eof")
        let whole = partial + "reply=reply then=eof\n"
        #expect(GuestReport(whole, prefix: "KATA-VSOCK")["gshut"] == "wrote=0 shut=0 reply=reply then=eof")
    }

    @Test func serialLineEndsAndKernelMessagesAround() {
        let console = "[ 1.0] virtio_net: up\r\n[ 2.0] rcu: x KATA-NET eth0=up\r\nKATA-NET-BEGIN\r\nKATA-NETX a=b\r\n"
            + "KATA-NET iomem=1\r\nKATA-NET iomem=2\r\nKATA-NET novalue\r\n"
        let report = GuestReport(console, prefix: "KATA-NET")
        #expect(report["eth0"] == "up")
        #expect(report.values["iomem"] == ["1", "2"] && report["iomem"] == "2")
        #expect(report.values.count == 2)
    }
}
