import Testing

extension Fixtures {
    /// A test whose fixture (the shared kernel, a tool, root) is not here: a failure in
    /// CI, where every fixture must be present, and a skip elsewhere. Never a pass.
    public static func missing(_ what: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> Never {
        if isCI {
            Issue.record("\(what) is missing in CI", sourceLocation: sourceLocation)
            throw FixtureError("\(what) is missing")
        }
        try Test.cancel("skipped: \(what) is missing", sourceLocation: sourceLocation)
    }
}
