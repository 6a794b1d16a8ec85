import Devices
import Foundation
import Machine

/// Firecracker's metrics: a JSON line every minute and on FlushMetrics, from the VM's
/// counters and the API's request counts, named as Firecracker names them.
extension VmController {
    func openMetrics(_ path: String) throws {
        try metrics.open(path)
        let timer = DispatchSource.makeTimerSource(queue: queue)
        let interval = DispatchTimeInterval.seconds(Self.metricsInterval)
        timer.schedule(deadline: .now() + interval, repeating: interval)
        timer.setEventHandler { [weak self] in
            guard let self else { return }
            self.metrics.flush(self.metricSections())
        }
        timer.resume()
        metricsTimer?.cancel()
        metricsTimer = timer
    }

    /// Cumulative counters by section; the writer turns them into deltas.
    func metricSections() -> [String: [String: UInt64]] {
        var sections = requestCounters
        for section in ["get_api_requests", "put_api_requests", "patch_api_requests"] where sections[section] == nil {
            sections[section] = [:]
        }
        let counters = vm?.counters() ?? MachineCounters()
        var vcpu = counters.vcpuExits
        for name in MachineCounters.vcpuExitNames where vcpu[name] == nil { vcpu[name] = 0 }
        sections["vcpu"] = vcpu
        var block: [String: UInt64] = ["read_bytes": 0, "write_bytes": 0, "queue_event_count": 0, "execute_fails": 0,
                                       "rate_limiter_throttled_events": 0, "rate_limiter_event_count": 0]
        for disk in counters.disks {
            let fields: [String: UInt64] = ["read_bytes": disk.readBytes, "write_bytes": disk.writeBytes,
                                            "queue_event_count": disk.requests, "execute_fails": disk.failedRequests,
                                            "rate_limiter_throttled_events": disk.rateLimiter.throttled,
                                            "rate_limiter_event_count": disk.rateLimiter.timerEvents]
            sections["block_" + disk.id] = fields
            for (key, value) in fields { block[key, default: 0] += value }
        }
        sections["block"] = block
        var net: [String: UInt64] = ["rx_bytes_count": 0, "tx_bytes_count": 0, "rx_packets_count": 0, "tx_packets_count": 0,
                                     "rx_dropped": 0, "tx_dropped": 0, "rx_rate_limiter_throttled": 0,
                                     "tx_rate_limiter_throttled": 0, "rx_event_rate_limiter_count": 0,
                                     "tx_rate_limiter_event_count": 0]
        for iface in counters.nets {
            let fields: [String: UInt64] = ["rx_bytes_count": iface.rxBytes, "tx_bytes_count": iface.txBytes,
                                            "rx_packets_count": iface.rxPackets, "tx_packets_count": iface.txPackets,
                                            "rx_dropped": iface.rxDropped, "tx_dropped": iface.txDropped,
                                            "rx_rate_limiter_throttled": iface.rxRateLimiter.throttled,
                                            "tx_rate_limiter_throttled": iface.txRateLimiter.throttled,
                                            "rx_event_rate_limiter_count": iface.rxRateLimiter.timerEvents,
                                            "tx_rate_limiter_event_count": iface.txRateLimiter.timerEvents]
            sections["net_" + iface.id] = fields
            for (key, value) in fields { net[key, default: 0] += value }
        }
        sections["net"] = net
        let entropy = counters.entropy
        sections["entropy"] = ["entropy_bytes": entropy?.bytes ?? 0, "entropy_event_fails": entropy?.badRequests ?? 0,
                               "entropy_rate_limiter_throttled": entropy?.rateLimiter.throttled ?? 0,
                               "rate_limiter_event_count": entropy?.rateLimiter.timerEvents ?? 0]
        let balloon = counters.balloon ?? VirtioBalloon.Counters()
        sections["balloon"] = ["inflate_count": balloon.inflatedPages, "deflate_count": balloon.deflatedPages,
                               "stats_updates_count": balloon.statsUpdates, "free_page_report_freed": balloon.reportedBytes,
                               "free_page_hint_freed": balloon.hintedBytes,
                               "event_fails": balloon.badRequests]
        // Firecracker's names; its rx_accepted_unusual (frames it parsed but did not expect)
        // has no counterpart here and stays 0.
        let mmds = counters.mmds ?? MmdsCounters()
        sections["mmds"] = ["rx_accepted": mmds.framesIn - mmds.dropped, "rx_accepted_err": mmds.dropped,
                            "rx_accepted_unusual": 0, "rx_bad_eth": 0, "rx_count": mmds.framesIn,
                            "tx_bytes": mmds.bytesOut, "tx_count": mmds.requests, "tx_errors": 0, "tx_frames": mmds.framesOut,
                            "connections_created": mmds.connectionsCreated, "connections_destroyed": mmds.connectionsDestroyed]
        sections["logger"] = ["missed_metrics_count": metrics.failedWrites]
        sections["api_server"] = ["process_startup_time_us": apiServerStartup.wallMicros,
                                  "process_startup_time_cpu_us": apiServerStartup.cpuMicros]
        return sections
    }
}
