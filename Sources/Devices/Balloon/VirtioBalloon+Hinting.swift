import Synchronization
import VMM

/// Free page hinting (virtio 1.2, 5.5.6.7), run by the host: a new command id in the
/// config space starts a run, the driver answers with that id and lends its free blocks,
/// whose memory is given back, then sends STOP; DONE (from the host, or at once with
/// `acknowledgeOnStop`) lets it free them.
extension VirtioBalloon {
    /// Where a hinting run stands: the host's last command and the guest's.
    public struct HintingStatus: Sendable, Equatable {
        public var hostCommand: UInt32
        public var guestCommand: UInt32?
    }

    public var hintingStatus: HintingStatus {
        HintingStatus(hostCommand: hostCommand.load(ordering: .acquiring), guestCommand: guestCommand)
    }

    /// Starts a run with a new command id (PATCH /balloon/hinting/start); the caller tells
    /// the driver (a configuration interrupt).
    public func startHinting(acknowledgeOnStop: Bool) {
        self.acknowledgeOnStop = acknowledgeOnStop
        hostCommand.store(nextRun, ordering: .releasing)
        nextRun = nextRun == UInt32.max ? Self.firstRunCommand : nextRun + 1
    }

    /// Ends the run (PATCH /balloon/hinting/stop): DONE lets the driver free the blocks it
    /// lent; the caller tells the driver.
    public func stopHinting() {
        hostCommand.store(Self.doneCommand, ordering: .releasing)
    }

    /// Whether processing changed the configuration (an automatic DONE), which the
    /// transport then announces.
    public func takeConfigurationChange() -> Bool {
        defer { configurationChangePending = false }
        return configurationChangePending
    }

    /// A hinting buffer: a readable one carries the guest's command (the run it answers,
    /// or STOP); writable ones are free blocks of the current run, whose memory is given
    /// back. Blocks sent for any other run are returned untouched: the guest may be using them.
    /// Returns the number of ranges looked at.
    func hint(_ chain: DescriptorChain, _ memory: GuestMemory) -> Int {
        var reader = chain.reader(memory)
        let run = hostCommand.load(ordering: .acquiring)
        if reader.remaining >= 4, let command = reader.read(UInt32.self) {
            let answered = guestCommand
            guestCommand = command
            // Only a STOP that ends the current run is acknowledged: one that ends an older
            // run (the host started a new one meanwhile) must not cancel the new one.
            if command == Self.stopCommand, acknowledgeOnStop, run >= Self.firstRunCommand, answered == run {
                hostCommand.store(Self.doneCommand, ordering: .releasing)
                configurationChangePending = true
            }
        }
        // After a STOP the guest's command is 0, never a run: nothing is given back.
        guard run >= Self.firstRunCommand, guestCommand == run else { return 1 }
        for piece in chain.writable {
            if memory.discard(at: piece.address, length: Int(piece.length)) {
                counters.hintedBytes += UInt64(piece.length)
            } else {
                counters.badRequests += 1
            }
        }
        return max(chain.writable.count, 1)
    }
}
