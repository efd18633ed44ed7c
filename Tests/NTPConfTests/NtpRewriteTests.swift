import Foundation
import XCTest
import TestSupport
@testable import NTPConf

/// The fixture directory (read through #filePath: the files are data, not resources).
let fixtureDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").path

func fixture(_ name: String) throws -> [UInt8] {
    Array(try Data(contentsOf: URL(fileURLWithPath: "\(fixtureDir)/\(name)")))
}

func lines(_ bytes: [UInt8]) -> [String] {
    String(decoding: bytes, as: UTF8.self).components(separatedBy: "\n")
}

/// What a rewrite must guarantee, for any ntp.conf:
/// - the result is safe under both ntpd models and no enable names kernel;
/// - only enable-kernel lines, the last line's missing terminator and the
///   appended line differ (checked on the diff operations);
/// - a second rewrite changes nothing;
/// - the appended line uses the file's line ending.
func checkRewriteInvariants(_ input: [UInt8], name: String, file: StaticString = #filePath, line: UInt = #line) -> AppliedEdits {
    let text = ConfText(input)
    let edits = rewriteNtpConf(text)
    let applied = apply(edits, to: text)
    let out = ConfText(applied.result)
    let verdict = NtpVerdict(directives: kernelDirectives(out))
    XCTAssertTrue(verdict.kernelOffAllThenDisables, "\(name): kernel on under ntpd >= 4.2.6", file: file, line: line)
    XCTAssertTrue(verdict.kernelOffInOrder, "\(name): kernel on under ntpd <= 4.2.4", file: file, line: line)
    XCTAssertTrue(verdict.enables.isEmpty, "\(name): an enable still names kernel", file: file, line: line)
    XCTAssertTrue(rewriteNtpConf(out).isEmpty, "\(name): second rewrite changes something", file: file, line: line)
    let lastIndex = text.lines.count - 1
    for op in applied.ops {
        if case .delete(let i) = op {
            let l = text.lines[i]
            let intended = !NtpRules.enableKernelTokens(l).isEmpty || (i == lastIndex && !l.hasTerminator)
            XCTAssertTrue(intended, "\(name): line \(l.number) changed but was not an enable kernel line", file: file, line: line)
        }
        if case .insert(let bytes) = op {
            let s = String(decoding: bytes, as: UTF8.self)
            XCTAssertFalse(s.hasPrefix("enable") && ConfText(bytes).lines.first.map { !NtpRules.enableKernelTokens($0).isEmpty } == true,
                           "\(name): inserted an enable kernel line", file: file, line: line)
            if s.hasPrefix(NtpRules.appendedLine) {
                XCTAssertEqual(s, NtpRules.appendedLine + String(decoding: text.lineEnding.bytes, as: UTF8.self),
                               "\(name): appended line's ending", file: file, line: line)
            }
        }
    }
    if edits.isEmpty { XCTAssertEqual(applied.result, input, file: file, line: line) }
    return applied
}

/// The fuzz target's invariants (Fuzz/NTPConf), as test assertions.
func fuzzInvariants(_ bytes: [UInt8], file: StaticString = #filePath, line: UInt = #line) {
    _ = checkRewriteInvariants(bytes, name: "mutation", file: file, line: line)
    let chrony = ConfText(bytes, dialect: .chrony)
    let out = ConfText(apply(rewriteChronyConf(chrony), to: chrony).result, dialect: .chrony)
    XCTAssertTrue(chronyLeapMode(out).isSafe, "chrony rewrite not safe", file: file, line: line)
    XCTAssertTrue(rewriteChronyConf(out).isEmpty, "chrony rewrite not idempotent", file: file, line: line)
    XCTAssertEqual(chrony.lines.filter { ChronyRules.refusal($0) != nil }.count,
                   out.lines.filter { ChronyRules.refusal($0) != nil }.count, "a refused chrony line changed", file: file, line: line)
}

final class NtpRewriteTests: XCTestCase {
    /// (fixture, change expected, lines of the original that change)
    let table: [(String, Bool, [Int])] = [
        ("debian-ntp-4.2.6.conf", true, []),
        ("debian-ntp-4.2.8.conf", true, []),
        ("debian-ntpsec.conf", true, []),
        ("rhel6-ntp.conf", true, []),
        ("rhel7-ntp.conf", true, []),
        ("freebsd-quoted.conf", true, [35]),
        ("refclock-gps-pps.conf", true, [20]),
        ("ntpsec-refclock.conf", true, [11]),
        ("prose-syntax-error.conf", true, []),
        ("already-safe.conf", false, []),
    ]

    func testFixtureTable() throws {
        for (name, changes, changedLines) in table {
            let input = try fixture(name)
            let text = ConfText(input)
            XCTAssertEqual(text.lines.reduce(0) { $0 + $1.end - $1.start }, input.count, name)
            let applied = checkRewriteInvariants(input, name: name)
            XCTAssertEqual(applied.result != input, changes, name)
            let deleted = applied.ops.compactMap { op -> Int? in if case .delete(let i) = op { return i + 1 }; return nil }
            XCTAssertEqual(deleted, changedLines, name)
            if changes {
                XCTAssertTrue(String(decoding: applied.result, as: UTF8.self).hasSuffix(NtpRules.appendedLine + "\n"), name)
                // Everything before the appended line is the original minus the changed lines.
                XCTAssertEqual(lines(applied.result).count, lines(input).count + 1, name)
            }
        }
    }

    func testFreeBSDQuotedPathsAndInlineComment() throws {
        let text = ConfText(try fixture("freebsd-quoted.conf"))
        let logfile = text.lines.first { $0.keyword == "logfile" }!
        XCTAssertEqual(logfile.tokens.map(\.text), ["logfile", "/var/log/ntp #1.log"])
        XCTAssertNotNil(logfile.commentStart)
        let out = String(decoding: rewriteNtpConf(bytes: text.bytes), as: UTF8.self)
        XCTAssertTrue(out.contains("\nenable calibrate\t# the PLL wants it \"kernel\"\n"), out)
        XCTAssertTrue(out.contains("logfile \"/var/log/ntp #1.log\"   # a quoted path may hold a '#'\n"))
    }

    func testProseLineIsLeftAlone() throws {
        let input = try fixture("prose-syntax-error.conf")
        let out = String(decoding: rewriteNtpConf(bytes: input), as: UTF8.self)
        XCTAssertTrue(out.hasPrefix(String(decoding: input, as: UTF8.self)))
        XCTAssertTrue(out.contains("enable the kernel discipline only after talking to the network team\n"))
    }

    func rewrite(_ s: String) -> String { String(decoding: rewriteNtpConf(bytes: Array(s.utf8)), as: UTF8.self) }
    let appended = NtpRules.appendedLine

    func testVariants() {
        let base = "driftfile /var/lib/ntp/ntp.drift\nserver 0.pool.ntp.org iburst\nrestrict 127.0.0.1\n"
        let cases: [(String, String, String)] = [
            ("enable kernel at the top", "enable kernel\n" + base, base + appended + "\n"),
            ("enable kernel at the end", base + "enable kernel\n", base + appended + "\n"),
            ("enable kernel stats # comment", base + "enable kernel stats # comment\n",
             base + "enable stats # comment\n" + appended + "\n"),
            ("enable stats kernel monitor", "enable\tstats  kernel monitor\n", "enable\tstats monitor\n" + appended + "\n"),
            ("only kernel, comment kept", "  enable kernel   # for PPS\n" + base, "  # for PPS\n" + base + appended + "\n"),
            ("CRLF", base.replacingOccurrences(of: "\n", with: "\r\n") + "enable kernel\r\n",
             base.replacingOccurrences(of: "\n", with: "\r\n") + appended + "\r\n"),
            ("no final newline", base + "restrict ::1", base + "restrict ::1\n" + appended + "\n"),
            ("no final newline, CRLF", "server a\r\nserver b", "server a\r\nserver b\r\n" + appended + "\r\n"),
            ("#disable kernel commented out", base + "#disable kernel\n", base + "#disable kernel\n" + appended + "\n"),
            ("disable kernel then enable kernel", "disable kernel\n" + base + "enable kernel\n", "disable kernel\n" + base),
            ("enable kernel then disable kernel", "enable kernel\n" + base + "disable kernel\n", base + "disable kernel\n"),
            ("already safe", base + "disable kernel\n", base + "disable kernel\n"),
            ("disable with an unknown flag counts for nothing", base + "disable kernel bogus\n",
             base + "disable kernel bogus\n" + appended + "\n"),
            ("disable kernel mode7 (ntpsec rejects mode7)", base + "disable kernel mode7\n",
             base + "disable kernel mode7\n" + appended + "\n"),
            ("Enable is not a keyword", "Enable kernel\n", "Enable kernel\n" + appended + "\n"),
            ("quoted kernel is not a flag", "enable \"kernel\"\n", "enable \"kernel\"\n" + appended + "\n"),
            ("twice kernel", "enable kernel kernel stats\n", "enable stats\n" + appended + "\n"),
            ("empty file", "", appended + "\n"),
            ("last line enable kernel without newline", "server a\nenable kernel", "server a\n" + appended + "\n"),
        ]
        for (name, input, expected) in cases {
            XCTAssertEqual(rewrite(input), expected, name)
            _ = checkRewriteInvariants(Array(input.utf8), name: name)
        }
    }

    func testTwoModels() {
        // enable after disable: on under <= 4.2.4, off under >= 4.2.6.
        let v = NtpVerdict(directives: kernelDirectives(ConfText(Array("disable kernel\nenable kernel\n".utf8))))
        XCTAssertTrue(v.kernelOffAllThenDisables)
        XCTAssertFalse(v.kernelOffInOrder)
        XCTAssertFalse(v.isSafe)
        XCTAssertFalse(NtpVerdict(directives: []).kernelOff)
    }

    func testDiffExactAndPatchRoundTrip() throws {
        let input = "driftfile /x\nenable kernel stats # pps\nserver a\nb\nc\nd\ne\nf\ng\nh\ni\nrestrict ::1"
        let text = ConfText(Array(input.utf8))
        let applied = apply(rewriteNtpConf(text), to: text)
        let diff = String(decoding: unifiedDiff(oldName: "ntp.conf", newName: "ntp.conf", text: text, applied: applied), as: UTF8.self)
        XCTAssertEqual(diff, """
        --- ntp.conf
        +++ ntp.conf
        @@ -1,5 +1,5 @@
         driftfile /x
        -enable kernel stats # pps
        +enable stats # pps
         server a
         b
         c
        @@ -9,4 +9,5 @@
         g
         h
         i
        -restrict ::1
        \\ No newline at end of file
        +restrict ::1
        +\(appended)

        """)
        // GNU patch applies it and produces exactly the rewrite.
        let dir = TempDir()
        try Data(input.utf8).write(to: URL(fileURLWithPath: dir.file("ntp.conf")))
        try Data(diff.utf8).write(to: URL(fileURLWithPath: dir.file("p.diff")))
        _ = try which("patch")
        try shOK("cd '\(dir.path)' && patch -s ntp.conf < p.diff")
        XCTAssertEqual(Array(try Data(contentsOf: URL(fileURLWithPath: dir.file("ntp.conf")))), applied.result)
    }

    func testDiffPatchRoundTripOnFixturesAndCRLF() throws {
        _ = try which("patch")
        let dir = TempDir()
        var inputs = try table.map { ($0.0, try fixture($0.0)) }
        inputs.append(("crlf", Array("server a\r\nenable kernel\r\nserver b\r\n".utf8)))
        for (name, input) in inputs {
            let text = ConfText(input)
            let applied = apply(rewriteNtpConf(text), to: text)
            let diff = unifiedDiff(oldName: "f", newName: "f", text: text, applied: applied)
            if applied.result == input { XCTAssertTrue(diff.isEmpty, name); continue }
            try Data(input).write(to: URL(fileURLWithPath: dir.file("f")))
            try Data(diff).write(to: URL(fileURLWithPath: dir.file("p.diff")))
            try shOK("cd '\(dir.path)' && patch -s --binary f < p.diff")
            XCTAssertEqual(Array(try Data(contentsOf: URL(fileURLWithPath: dir.file("f")))), applied.result, name)
        }
    }

    func testNotText() {
        XCTAssertEqual(notTextReason([0x65, 0, 1]), "not a text file (NUL byte at offset 1)")
        XCTAssertNil(notTextReason(Array("server a\n\u{e9}\n".utf8)))
    }

    func testFuzzInvariantsOnCorpusAndMutations() throws {
        let corpus = URL(fileURLWithPath: fixtureDir).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fuzz/corpus/ntpconf").path
        var seeds: [[UInt8]] = []
        for name in try FileManager.default.contentsOfDirectory(atPath: corpus).sorted() {
            seeds.append(Array(try Data(contentsOf: URL(fileURLWithPath: "\(corpus)/\(name)"))))
        }
        XCTAssertGreaterThanOrEqual(seeds.count, 5)
        for (name, _, _) in table { seeds.append(try fixture(name)) }
        // Deterministic mutations: splice words and separators that matter.
        let pieces: [[UInt8]] = ["enable", "disable", "kernel", "stats", " ", "\t", "\r", "\n", "\r\n", "#", "\"",
                                 "includefile", "leapsecmode", "system", "!", "\u{e9}"].map { Array($0.utf8) } + [[0xff], [0xc3]]
        let random = pseudoRandomBytes(64 * 1024, seed: 42)
        var r = 0
        func next() -> Int { r += 1; return Int(random[r % random.count]) }
        for seed in seeds {
            fuzzInvariants(seed)
            for _ in 0..<40 {
                var m = seed
                for _ in 0..<(1 + next() % 6) {
                    let at = m.isEmpty ? 0 : (next() * 256 + next()) % (m.count + 1)
                    if next() % 3 == 0 && !m.isEmpty {
                        m.remove(at: min(at, m.count - 1))
                    } else {
                        m.insert(contentsOf: pieces[next() % pieces.count], at: at)
                    }
                }
                if notTextReason(m) == nil { fuzzInvariants(m) }
            }
        }
    }
}
