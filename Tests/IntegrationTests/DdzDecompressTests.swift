import Foundation
import XCTest
import TestSupport

/// `ddz -d` / `ddz -t` through the built binary, with real lzop making the
/// input: every level and flag, members, stdin-made files, holes, devices,
/// corrupt files (one line, exit 1, nothing left behind), closed stdout and
/// a full disk.
final class DdzDecompressTests: XCTestCase {
    var dir: TempDir!
    var bin: String!

    override func setUpWithError() throws {
        signal(SIGPIPE, SIG_IGN)
        bin = try rescueboxBinary()
        _ = try which("lzop")
        dir = TempDir("ddz-d")
    }

    override func tearDown() { dir = nil }

    /// ~1.6 MB: text, a zero run, random bytes, a repeating pattern.
    func sampleData(zeroRun: Int = 600_000) -> Data {
        var d = Data()
        var i = 0
        while d.count < 400_000 { d.append(contentsOf: Array("\(i) the quick brown fox \(i * 7 % 13)\n".utf8)); i += 1 }
        d.append(Data(count: zeroRun))
        d.append(pseudoRandomBytes(300_000, seed: 11))
        for j in 0..<300_000 { d.append(UInt8(truncatingIfNeeded: j / 3)) }
        return d
    }

    func write(_ data: Data, _ name: String) throws -> String {
        let path = dir.file(name)
        try data.write(to: URL(fileURLWithPath: path))
        return path
    }

    func ddz(_ args: [String], input: Data? = nil) throws -> RunResult {
        try runProgram(bin, ["ddz"] + args, input: input)
    }

    func testEveryLevelAndFlagFromFiles() throws {
        let raw = try write(sampleData(), "raw")
        let variants: [[String]] = [["-1"], ["-2"], ["-3"], ["-4"], ["-5"], ["-6"], ["-7"], ["-8"], ["-9"],
                                    ["--crc32"], ["-CC"], ["-9", "--crc32", "-CC"], ["-F"], ["--filter=1"], ["--filter=9", "-1"]]
        for args in variants {
            let lzo = dir.file("in.lzo"), out = dir.file("out")
            try shOK("lzop \(args.joined(separator: " ")) -c '\(raw)' > '\(lzo)'")
            try? FileManager.default.removeItem(atPath: out)
            let r = try ddz(["-d", "-o", out, lzo])
            XCTAssertEqual(r.status, 0, "\(args): \(r.stderr)")
            XCTAssertEqual(try sh("cmp '\(raw)' '\(out)'").status, 0, "\(args)")
            XCTAssertTrue(r.stderr.contains(" decompressed, "), r.stderr)
            XCTAssertTrue(r.stdout.isEmpty)
        }
    }

    func testStdinToStdoutAndMembers() throws {
        let data = sampleData()
        // stdin-made (`cat f | lzop`), decoded from stdin to stdout.
        let made = try runProgram(try which("lzop"), ["-c"], input: data).stdout
        let r = try ddz(["-d"], input: made)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, data)
        let viaDash = try ddz(["-d", "-", "-T", "1"], input: made)
        XCTAssertEqual(viaDash.stdout, data)
        // `lzop -c a b` (a multi-file archive) decodes to a then b.
        let a = try write(data.prefix(300_000), "a"), b = try write(Data("b\n".utf8), "b")
        try shOK("lzop -c '\(a)' '\(b)' > '\(dir.file("ab.lzo"))'")
        let ab = try ddz(["-d", dir.file("ab.lzo")])
        XCTAssertEqual(ab.stdout, data.prefix(300_000) + Data("b\n".utf8))
        XCTAssertTrue(ab.stderr.contains("2 members"), ab.stderr)
        // An empty file compresses to a member with no blocks.
        let empty = try runProgram(try which("lzop"), ["-c"], input: Data()).stdout
        let e = try ddz(["-d", "-o", dir.file("empty.out")], input: empty)
        XCTAssertEqual(e.status, 0, e.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dir.file("empty.out"))).count, 0)
    }

    func allocatedBytes(_ path: String) throws -> (allocated: Int, size: Int) {
        let parts = try shOK("stat -c '%b %B %s' '\(path)'").split(separator: " ").compactMap { Int($0) }
        return (parts[0] * parts[1], parts[2])
    }

    func testZeroBlocksBecomeHolesUnlessNoSparse() throws {
        // 16 MiB of zeros in the middle and 3 MiB at the end (ftruncate makes the length).
        var data = sampleData(zeroRun: 16 << 20)
        data.append(Data(count: 3 << 20))
        let raw = try write(data, "raw")
        try shOK("lzop -c '\(raw)' > '\(dir.file("in.lzo"))'")
        let sparse = dir.file("sparse"), full = dir.file("full")
        XCTAssertEqual(try ddz(["-d", "-o", sparse, dir.file("in.lzo")]).status, 0)
        XCTAssertEqual(try ddz(["-d", "--no-sparse", "-o", full, dir.file("in.lzo")]).status, 0)
        XCTAssertEqual(try sh("cmp '\(raw)' '\(sparse)' && cmp '\(raw)' '\(full)'").status, 0)
        let s = try allocatedBytes(sparse), f = try allocatedBytes(full)
        XCTAssertEqual(s.size, data.count)
        XCTAssertEqual(f.size, data.count)
        XCTAssertLessThan(s.allocated, data.count - (18 << 20), "holes expected: \(s)")
        XCTAssertGreaterThanOrEqual(f.allocated, data.count - 4096, "no holes expected with --no-sparse: \(f)")
    }

    func testExistingOutputAndSameFile() throws {
        let raw = try write(sampleData(), "raw")
        let lzo = dir.file("in.lzo")
        try shOK("lzop -c '\(raw)' > '\(lzo)'")
        let out = try write(Data("keep".utf8), "out")
        let refused = try ddz(["-d", "-o", out, lzo])
        XCTAssertEqual(refused.status, 1)
        XCTAssertEqual(refused.stderr, "rescuebox ddz: \(out): open: file exists (use -f to overwrite it)\n")
        XCTAssertEqual(try String(contentsOfFile: out, encoding: .utf8), "keep")
        XCTAssertEqual(try ddz(["-d", "-f", "-o", out, lzo]).status, 0)
        XCTAssertEqual(try sh("cmp '\(raw)' '\(out)'").status, 0)
        let same = try ddz(["-d", "-f", "-o", lzo, lzo])
        XCTAssertEqual(same.status, 1)
        XCTAssertTrue(same.stderr.contains("is the input file"), same.stderr)
        XCTAssertEqual(try sh("lzop -t '\(lzo)'").status, 0, "input must be intact")
        let dirOut = try ddz(["-d", "-o", dir.path, lzo])
        XCTAssertEqual(dirOut.status, 1)
        XCTAssertTrue(dirOut.stderr.hasSuffix(": open: is a directory\n"), dirOut.stderr)
        let missing = try ddz(["-d", dir.file("nope.lzo")])
        XCTAssertEqual(missing.status, 1)
        XCTAssertEqual(missing.stderr, "rescuebox ddz: \(dir.file("nope.lzo")): open: No such file or directory\n")
    }

    func testTestMode() throws {
        let good = try runProgram(try which("lzop"), ["-c"], input: sampleData()).stdout
        let r = try ddz(["-t", try write(good, "good.lzo")])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.isEmpty)
        XCTAssertTrue(r.stderr.hasSuffix("good.lzo: OK\n"), r.stderr)
        XCTAssertTrue(r.stderr.contains(" verified, "), r.stderr)
        var bad = [UInt8](good)
        bad[46] ^= 1  // the first block's Adler-32
        let b = try ddz(["-t", "-"], input: Data(bad))
        XCTAssertEqual(b.status, 1)
        XCTAssertTrue(b.stderr.hasPrefix("rescuebox ddz: stdin: offset 38: checksum error in decompressed data (Adler-32 0x"), b.stderr)
        XCTAssertTrue(b.stderr.hasSuffix(" computed): file corrupted\n"), b.stderr)
        XCTAssertEqual(b.stderr.filter { $0 == "\n" }.count, 1, b.stderr)
        let withOutput = try ddz(["-t", "-o", dir.file("x"), "-"], input: good)
        XCTAssertEqual(withOutput.status, 2)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.file("x")))
    }

    // MARK: - corrupt input

    func adler32(_ bytes: ArraySlice<UInt8>) -> UInt32 {
        var a: UInt32 = 1, b: UInt32 = 0
        for x in bytes { a = (a + UInt32(x)) % 65521; b = (b + a) % 65521 }
        return b << 16 | a
    }

    /// A stdin-made lzop 1.04 file has a fixed 38-byte header: flags at 17,
    /// name length 0 at 33, header checksum at 34, first block at 38.
    func corruptCases() throws -> [(name: String, data: Data, expect: String)] {
        let lzopPath = try which("lzop")
        let data = sampleData()
        let plain = [UInt8](try runProgram(lzopPath, ["-c"], input: data).stdout)
        let cc = [UInt8](try runProgram(lzopPath, ["-CC", "-c"], input: data).stdout)
        XCTAssertEqual(plain[33], 0)
        XCTAssertEqual(cc[33], 0)
        func fixed(_ b: [UInt8]) -> [UInt8] {
            var b = b
            let sum = adler32(b[9..<34])
            b.replaceSubrange(34..<38, with: [UInt8(sum >> 24), UInt8(sum >> 16 & 0xFF), UInt8(sum >> 8 & 0xFF), UInt8(sum & 0xFF)])
            return b
        }
        func patch(_ b: [UInt8], _ at: Int, _ v: [UInt8], fix: Bool = false) -> Data {
            var b = b
            b.replaceSubrange(at..<at + v.count, with: v)
            return Data(fix ? fixed(b) : b)
        }
        let clen = Int(UInt32(plain[42]) << 24 | UInt32(plain[43]) << 16 | UInt32(plain[44]) << 8 | UInt32(plain[45]))
        var crlf = plain; crlf.remove(at: 5)
        return [
            ("not lzop", Data("plain text\n".utf8), "offset 0: not an lzop file (bad magic)"),
            ("CR LF mangled", Data(crlf), "offset 0: bad magic: the file looks mangled by a line-end conversion (DOS -> UNIX: CR LF became LF)"),
            ("header checksum", patch(plain, 22, [0x55]), "offset 34: header checksum error"),
            ("reserved flags", patch(plain, 19, [plain[19] | 0x40], fix: true), "offset 9: unknown header flags 0x00004000"),
            ("unknown method", patch(plain, 15, [9], fix: true), "offset 9: unknown compression method 9"),
            ("unknown level", patch(plain, 16, [12], fix: true), "offset 9: unknown compression level 12"),
            ("version needed", patch(plain, 13, [0x10, 0x50], fix: true), "offset 13: needs lzop version 0x1050"),
            ("ADLER32_C without ADLER32_D", patch(cc, 20, [cc[20] & ~1], fix: true), "offset 9: header corrupted (compressed-data Adler-32 flag without"),
            ("split file", patch(plain, 38, [0xFF, 0xFF, 0xFF, 0xFF]), "offset 38: this is a split lzop file"),
            ("dlen > 64 MiB", patch(plain, 38, [0x04, 0, 0, 1]), "offset 38: block claims 67108865 bytes"),
            ("clen 0", patch(plain, 42, [0, 0, 0, 0]), "offset 38: block has 0 compressed bytes"),
            ("truncated", Data(plain.prefix(1000)), "offset 1000: unexpected end of file (in block data)"),
            ("compressed checksum", patch(cc, 60, [cc[60] ^ 0xFF]), "offset 38: checksum error in compressed data (Adler-32"),
            ("data violation", patch(plain, 50 + clen - 3, [0xFF, 0xFF, 0xFF]), "offset 38: compressed data violation"),
            ("data checksum", patch(plain, 46, [plain[46] ^ 0xFF]), "offset 38: checksum error in decompressed data (Adler-32"),
        ]
    }

    func testCorruptFilesFailWithOneLineAndLeaveNothing() throws {
        for c in try corruptCases() {
            let input = try write(c.data, "bad.lzo")
            let out = dir.file("restored")
            for threads in ["1", "2"] {
                let r = try ddz(["-d", "-T", threads, "-o", out, input])
                XCTAssertEqual(r.status, 1, "\(c.name): \(r.stderr)")
                XCTAssertTrue(r.stderr.hasPrefix("rescuebox ddz: \(input): \(c.expect)"), "\(c.name): \(r.stderr)")
                XCTAssertEqual(r.stderr.filter { $0 == "\n" }.count, 1, "\(c.name): \(r.stderr)")
                XCTAssertFalse(FileManager.default.fileExists(atPath: out), "\(c.name): partial output left behind")
                try? FileManager.default.removeItem(atPath: out)
            }
            let t = try ddz(["-t", input])
            XCTAssertEqual(t.status, 1, c.name)
            XCTAssertTrue(t.stderr.hasPrefix("rescuebox ddz: \(input): \(c.expect)"), "\(c.name): \(t.stderr)")
            // lzop agrees the file is bad.
            XCTAssertNotEqual(try sh("lzop -t '\(input)' 2>/dev/null").status, 0, c.name)
        }
    }

    func testTrailingZerosIgnoredGarbageRejected() throws {
        let good = try runProgram(try which("lzop"), ["-c"], input: sampleData()).stdout
        let padded = try ddz(["-t", "-"], input: good + Data(count: 10_000))
        XCTAssertEqual(padded.status, 0, padded.stderr)
        let garbage = try ddz(["-d", "-o", dir.file("o"), "-"], input: good + Data("junk".utf8))
        XCTAssertEqual(garbage.status, 1)
        XCTAssertTrue(garbage.stderr.hasPrefix("rescuebox ddz: stdin: offset \(good.count): trailing garbage"), garbage.stderr)
    }

    func testClosedStdoutEndsCleanly() throws {
        let raw = try write(pseudoRandomBytes(6 << 20, seed: 5), "raw")
        try shOK("lzop -1 -c '\(raw)' > '\(dir.file("in.lzo"))'")
        for threads in ["1", "2"] {
            let r = try runProgram("/bin/bash", ["-c", "'\(bin!)' ddz -d -T \(threads) '\(dir.file("in.lzo"))' 2>'\(dir.file("err"))' | head -c1 >/dev/null; echo ${PIPESTATUS[0]}"])
            XCTAssertEqual(r.stdoutText, "1\n")
            let err = try String(contentsOfFile: dir.file("err"), encoding: .utf8)
            XCTAssertTrue(err.hasPrefix("rescuebox ddz: stdout: write at offset "), err)
            XCTAssertTrue(err.hasSuffix(": Broken pipe\n"), err)
            XCTAssertEqual(err.filter { $0 == "\n" }.count, 1, err)
        }
    }

    func testFullDiskGivesOneClearError() throws {
        try requireRoot("mount a tiny tmpfs")
        let mnt = dir.file("tiny")
        try FileManager.default.createDirectory(atPath: mnt, withIntermediateDirectories: true)
        try shOK("mount -t tmpfs -o size=1m tmpfs '\(mnt)'")
        defer { _ = try? sh("umount '\(mnt)'") }
        let raw = try write(pseudoRandomBytes(4 << 20, seed: 9), "raw")
        try shOK("lzop -c '\(raw)' > '\(dir.file("in.lzo"))'")
        for threads in ["1", "2"] {
            let r = try ddz(["-d", "-T", threads, "-o", "\(mnt)/out", dir.file("in.lzo")])
            XCTAssertEqual(r.status, 1)
            XCTAssertTrue(r.stderr.hasPrefix("rescuebox ddz: \(mnt)/out: write at offset "), r.stderr)
            XCTAssertTrue(r.stderr.hasSuffix(": No space left on device\n"), r.stderr)
            XCTAssertEqual(r.stderr.filter { $0 == "\n" }.count, 1, r.stderr)
            XCTAssertFalse(FileManager.default.fileExists(atPath: "\(mnt)/out"), "partial file left on the full disk")
        }
    }

    func testRestoreToBlockDevice() throws {
        let loop = try LoopDevice(image: dir.file("disk.img"), size: 8 << 20)
        defer { loop.detach() }
        // Not a multiple of the sector size at the end: the tail falls back to buffered I/O.
        let data = sampleData() + Data("tail".utf8)
        let raw = try write(data, "raw")
        try shOK("dd if=/dev/urandom of='\(loop.device)' bs=1M count=8 2>/dev/null")
        try shOK("lzop -c '\(raw)' > '\(dir.file("in.lzo"))'")
        let r = try ddz(["-d", "-o", loop.device, dir.file("in.lzo")])
        XCTAssertEqual(r.status, 0, r.stderr)
        // Zeros are written on a device (no holes there).
        XCTAssertEqual(try sh("cmp -n \(data.count) '\(raw)' '\(loop.device)'").status, 0)
        // A device too small for the image: one error naming the device.
        let big = try write(pseudoRandomBytes(9 << 20, seed: 1), "big")
        try shOK("lzop -1 -c '\(big)' > '\(dir.file("big.lzo"))'")
        let full = try ddz(["-d", "-o", loop.device, dir.file("big.lzo")])
        XCTAssertEqual(full.status, 1)
        XCTAssertTrue(full.stderr.hasPrefix("rescuebox ddz: \(loop.device): write at offset "), full.stderr)
        XCTAssertEqual(full.stderr.filter { $0 == "\n" }.count, 1, full.stderr)
    }
}
