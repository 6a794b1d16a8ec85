import CFuzzDriver

/// What a target's `main` does: hands `testOneInput` (its LLVMFuzzerTestOneInput) to
/// libFuzzer's driver. SwiftPM links every executable with `main` renamed to
/// `<module>_main` (for testable executables), so libFuzzer's own `main` is not used and
/// each target defines that symbol with `@_cdecl` and calls this.
public func runFuzzer(_ argc: Int32, _ argv: FuzzArguments,
                      _ testOneInput: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32 {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv, testOneInput)
}

/// `main`'s argv, as libFuzzer's driver takes it.
public typealias FuzzArguments = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
