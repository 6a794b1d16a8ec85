import HostInput
import Testing

@Suite struct StrictJSONTests {
    func refusal(_ text: String) -> HostInputError? {
        do { try StrictJSON.check(Array(text.utf8)) } catch let error as HostInputError { return error } catch { return nil }
        return nil
    }

    @Test func acceptsOrdinaryDocuments() {
        #expect(refusal(#"{"a":1,"b":{"a":2},"c":[{"a":3},{"a":4}],"d":"x\"y\\z","e":"\u00e9"}"#) == nil)
        #expect(refusal(#"[{"k":1},{"k":2}]"#) == nil)
        #expect(refusal(#"{"a":"\u0001"}"#) == nil)
    }

    @Test func namesTheDuplicateKey() {
        #expect(refusal(#"{"a":1,"a":2}"#) == .duplicateKey(field: "a"))
        #expect(refusal(#"{"drives":[{"id":1},{"id":2,"path_on_host":"x", "path_on_host":"y"}]}"#)
            == .duplicateKey(field: "drives[1].path_on_host"))
        #expect(refusal(#"{"m":{"x":{"y":1}}, "m":2}"#) == .duplicateKey(field: "m"))
    }

    @Test func escapedKeysCompareByValue() {
        #expect(refusal(#"{"ab":1,"\u0061b":2}"#) == .duplicateKey(field: "ab"))
        #expect(refusal(#"{"\ud83d\ude00":1,"😀":2}"#) == .duplicateKey(field: "😀"))
    }

    @Test func refusesNulInValuesAndKeys() {
        #expect(refusal(#"{"root":{"path":"rootfs\u0000/x"}}"#) == .nulCharacter(field: "root.path"))
        #expect(refusal(#"{"process":{"args":["sh","a\u0000"]}}"#) == .nulCharacter(field: "process.args[1]"))
        #expect(refusal(#"{"a":{"b\u0000":1}}"#) == .nulCharacter(field: "a key in a"))
        #expect(refusal(#"["\u0000"]"#) == .nulCharacter(field: "[0]"))
    }

    @Test func refusesDeepNesting() {
        let deep = String(repeating: "[", count: 600) + String(repeating: "]", count: 600)
        guard case .nestedTooDeep = refusal(deep) else { Issue.record("not refused"); return }
    }

    @Test func malformedTextIsLeftToTheParser() {
        for text in [#"{"a":"#, #"{"a":"\u00"#, "}}]]", #"{"a"1,"a"2"#, "\"\\", ""] {
            _ = refusal(text)  // must not crash or hang; what it says is the parser's business
        }
        #expect(refusal(#"}{"a":1,"a":2}"#) == nil)
    }
}
