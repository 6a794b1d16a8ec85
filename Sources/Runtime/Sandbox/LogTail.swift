import Foundation

/// The last lines of a sandbox's log, kept for the caller when a failed create removes the
/// state directory that held it.
enum LogTail {
    /// Nil when the file is missing or empty. A serial console ends its lines with CRLF,
    /// which Swift reads as one Character, so lines are split on any newline.
    static func lastLines(of path: String, count: Int) -> String? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8), !text.isEmpty else { return nil }
        return text.split(omittingEmptySubsequences: true, whereSeparator: \.isNewline).suffix(count).joined(separator: "\n")
    }
}
