import Foundation
import TestSupport
import XCTest
@testable import LZOP
import RescueCore

/// The encoder against the real lzop: the whole output (header included,
/// since the header of a named regular file depends only on the file) must
/// be byte-identical at every level and checksum option.
final class CompressIdentityTests: XCTestCase {
    var dir: TempDir!
    var files: [(String, String)] = []  // (name, path)

    override func setUpWithError() throws {
        _ = try which("lzop")
        dir = TempDir("ddz-compress")
        for (name, data) in CompressTestData.all() {
            let path = dir.file(name)
            try data.write(to: URL(fileURLWithPath: path))
            files.append((name, path))
        }
    }

    override func tearDown() { dir = nil }

    func check(_ options: LzopCompressionOptions, only names: Set<String>? = nil,
               file: StaticString = #filePath, line: UInt = #line) throws {
        for (name, path) in files where names?.contains(name) ?? true {
            let (ours, _) = try compressFile(path, options: options)
            let theirs = try lzopOutput(path, lzopArgs(options))
            XCTAssertEqual(ours.count, theirs.count, "\(name) \(lzopArgs(options)) size", file: file, line: line)
            XCTAssertTrue(ours == theirs, "\(name) \(lzopArgs(options)): output differs from lzop", file: file, line: line)
        }
    }

    func testLevel1IdenticalToLzop() throws { try check(LzopCompressionOptions(level: 1)) }
    func testLevel3IdenticalToLzop() throws { try check(LzopCompressionOptions(level: 3)) }
    /// lzop -2..-6 all mean LZO1X-1 (method 1, level 5 in the header): each
    /// of our levels 2..6 must give lzop -3's bytes exactly, and lzop's own
    /// bytes at that level.
    func testLevels2To6AreLevel3() throws {
        for (name, path) in files where ["mixed", "text", "block+1"].contains(name) {
            let level3 = try lzopOutput(path, ["-3"])
            XCTAssertFalse(level3.isEmpty, name)
            for level in 2...6 {
                let (ours, _) = try compressFile(path, options: LzopCompressionOptions(level: level))
                XCTAssertEqual(ours.count, level3.count, "\(name) -\(level) size against lzop -3")
                XCTAssertTrue(ours == level3, "\(name): -\(level) differs from lzop -3")
            }
        }
        try check(LzopCompressionOptions(level: 2), only: ["mixed"])
        try check(LzopCompressionOptions(level: 6), only: ["mixed"])
    }
    func testLevel7IdenticalToLzop() throws {
        try check(LzopCompressionOptions(level: 7), only: ["one", "block+1", "mixed", "zeros"])
    }
    func testLevel8IdenticalToLzop() throws { try check(LzopCompressionOptions(level: 8), only: ["block", "mixed"]) }
    func testLevel9IdenticalToLzop() throws {
        try check(LzopCompressionOptions(level: 9), only: ["empty", "one", "block", "block+1", "random", "zeros+tail", "mixed"])
    }

    func testCRC32IdenticalToLzop() throws {
        try check(LzopCompressionOptions(level: 1, crc32: true))
        try check(LzopCompressionOptions(level: 3, crc32: true), only: ["mixed", "empty"])
        try check(LzopCompressionOptions(level: 9, crc32: true), only: ["mixed"])
    }

    func testNoChecksumIdenticalToLzop() throws {
        try check(LzopCompressionOptions(level: 1, dataChecksums: false))
        try check(LzopCompressionOptions(level: 3, dataChecksums: false), only: ["mixed", "block+1"])
        // lzop keeps the checksum for LZO1X-999 even with -F; so do we.
        try check(LzopCompressionOptions(level: 9, dataChecksums: false), only: ["mixed"])
        try check(LzopCompressionOptions(level: 1, crc32: true, dataChecksums: false), only: ["mixed"])
    }

    /// lzop -t and lzop -dc accept what we write, and give the input back.
    func testLzopDecodesOurOutput() throws {
        let lzop = try which("lzop")
        for (name, path) in files {
            for options in [LzopCompressionOptions(level: 1), LzopCompressionOptions(level: 3, crc32: true)] {
                let (ours, _) = try compressFile(path, options: options)
                let out = dir.file("\(name).lzo")
                try ours.write(to: URL(fileURLWithPath: out))
                XCTAssertEqual(try runProgram(lzop, ["-t", out]).status, 0, name)
                let back = try runProgram(lzop, ["-dc", out])
                XCTAssertEqual(back.status, 0, back.stderr)
                XCTAssertTrue(back.stdout == (try Data(contentsOf: URL(fileURLWithPath: path))), "\(name) round trip")
            }
        }
    }

    /// The header for stdin from a pipe: F_STDIN, mode 0, no name, the
    /// current time — lzop's bytes except the time (and so the checksum).
    func testStdinPipeHeaderMatchesLzopButTime() throws {
        let lzop = try which("lzop")
        let r = try runProgram(lzop, ["-1", "-c"], input: Data("hello\n".utf8))
        let theirs = [UInt8](r.stdout)
        var st = stat()
        st.st_mode = S_IFIFO | 0o600
        let header = LzopEncoderHeader.forInput(options: LzopCompressionOptions(level: 1), path: nil, status: st,
                                                toStdout: true, now: 0x1234_5678)
        let ours = header.bytes()
        XCTAssertEqual(ours.count, 9 + 24 + 1 + 4)  // magic, fixed fields, empty name, checksum
        XCTAssertEqual(Array(ours[0..<25]), Array(theirs[0..<25]), "magic .. mode")
        XCTAssertEqual(Array(ours[25..<29]), [0x12, 0x34, 0x56, 0x78])
        XCTAssertEqual(Array(ours[29..<34]), Array(theirs[29..<34]), "mtime high, name length")
        XCTAssertEqual(header.flags.rawValue, 0x0300_000D)
    }

    func testHeaderFields() throws {
        let o = LzopCompressionOptions(level: 9, crc32: true)
        XCTAssertEqual(o.method, .lzo1x_999)
        XCTAssertEqual(o.headerLevel, 9)
        XCTAssertEqual(o.versionNeeded, 0x1001)
        XCTAssertEqual(LzopCompressionOptions(level: 4).headerLevel, 5)
        XCTAssertEqual(LzopCompressionOptions(level: 1).method, .lzo1x_1_15)
        XCTAssertEqual(LzopEncoderHeader.libraryVersion, 0x20A0)
        var st = stat()
        st.st_mode = S_IFBLK | 0o660
        let dev = LzopEncoderHeader.forInput(options: LzopCompressionOptions(), path: "/dev/sda", status: st,
                                             toStdout: false, now: 1_700_000_000)
        XCTAssertEqual(dev.mode, 0)
        XCTAssertEqual(dev.name, "sda")
        XCTAssertEqual(dev.mtime, 1_700_000_000)
        XCTAssertEqual(dev.flags.rawValue, 0x0300_0001)
        XCTAssertEqual(baseName("/a/b/"), "b")
    }
}
