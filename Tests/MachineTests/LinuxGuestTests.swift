import Testing

/// The suites that boot the shared Linux kernel. They run one at a time: each boot keeps
/// both cores of these machines busy under the instruction emulator, and two at once
/// starve the guests into RCU stalls.
@Suite(.serialized) enum LinuxGuestTests {}
