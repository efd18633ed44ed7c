import Foundation
import XCTest
import TestSupport
@testable import LZOP
import RescueCore

/// The decoder against real lzop 1.04 output: every level and flag lzop can
/// write, the layouts it can read, and every rejection in docs/lzop-format.md.
final class DecodeTests: XCTestCase {
    lazy var sample = decodeSample()

    override func setUp() {
        // lzop may exit before reading all of a corrupt input we feed it.
        signal(SIGPIPE, SIG_IGN)
    }

    func assertDecodes(_ compressed: Data, to expected: Data, members: Int = 1,
                       file: StaticString = #filePath, line: UInt = #line) throws {
        for threads in [1, 3] {
            let (out, stats) = try decodeInMemory(compressed, threads: threads)
            XCTAssertEqual(out.count, expected.count, "threads \(threads)", file: file, line: line)
            XCTAssertTrue(out == expected, "threads \(threads): output differs", file: file, line: line)
            XCTAssertEqual(stats.bytesOut, UInt64(expected.count), file: file, line: line)
            XCTAssertEqual(stats.bytesIn, UInt64(compressed.count), file: file, line: line)
            XCTAssertEqual(stats.members, members, file: file, line: line)
        }
    }

    func testEveryLevel() throws {
        for level in 1...9 {
            let c = try runLzopForDecode(["-\(level)", "-c"], input: sample)
            try assertDecodes(c, to: sample)
        }
    }

    func testChecksumFlavours() throws {
        for args in [["--crc32"], ["-C"], ["-CC"], ["--crc32", "-CC"], ["-F"], ["-9", "-CC"], ["-1", "--crc32", "-CC"]] {
            let c = try runLzopForDecode(args + ["-c"], input: sample)
            let flags = DecodeMember(parsing: c).flags
            if args.contains("-CC") { XCTAssertNotEqual(flags & 0x202, 0, "\(args)") }
            if args.contains("--crc32") { XCTAssertNotEqual(flags & 0x1000, 0, "\(args)") }
            try assertDecodes(c, to: sample)
        }
    }

    func testFilters() throws {
        for n in [1, 2, 3, 4, 7, 8, 15, 16] {
            let c = try runLzopForDecode(["--filter=\(n)", "-c"], input: sample)
            XCTAssertEqual(DecodeMember(parsing: c).filter, UInt32(n))
            try assertDecodes(c, to: sample)
        }
        // Blocks no longer than the filter width are left as they are (lzop's t_add).
        let tiny = Data([9, 8, 7])
        try assertDecodes(try runLzopForDecode(["--filter=3", "-c"], input: tiny), to: tiny)
        try assertDecodes(try runLzopForDecode(["--filter=1", "-c"], input: Data([5])), to: Data([5]))
    }

    /// lzop 1.04 checks a stored block's bytes against the data checksum
    /// when -CC is on; with a filter those bytes are the filtered ones, so
    /// lzop rejects its own `-CC --filter=N` output of incompressible data.
    /// The compressed-data checksum is only checked where there is
    /// compressed data, so we read these files.
    func testStoredBlocksWithFilterAndCompressedChecksums() throws {
        let random = pseudoRandomBytes(600_000, seed: 99)
        let c = try runLzopForDecode(["-CC", "--filter=3", "-c"], input: random)
        XCTAssertTrue(DecodeMember(parsing: c).blocks().allSatisfy { $0.clen == $0.dlen })
        try assertDecodes(c, to: random)
        XCTAssertNotEqual(try runProgram(try which("lzop"), ["-t", "-"], input: c).status, 0, "lzop 1.04 fixed?")
    }

    func testFilterRoundTripMatchesLzop() throws {
        var bytes = [UInt8](sample.prefix(5000))
        let original = bytes
        bytes.withUnsafeMutableBytes { DecoderBlockWorker.filter($0, width: 4) }
        // A stored block (-1 on random data) keeps the filtered bytes verbatim.
        let random = pseudoRandomBytes(5000, seed: 7)
        let c = try runLzopForDecode(["-1", "--filter=4", "-F", "-c"], input: random)
        let m = DecodeMember(parsing: c)
        let b = m.blocks()[0]
        XCTAssertEqual(b.clen, b.dlen, "expected a stored block")
        var stored = [UInt8](c[b.dataOffset..<b.dataOffset + b.clen])
        var expected = [UInt8](random)
        expected.withUnsafeMutableBytes { DecoderBlockWorker.filter($0, width: 4) }
        XCTAssertEqual(stored, expected, "forward filter differs from lzop's t_sub")
        stored.withUnsafeMutableBytes { DecoderBlockWorker.unfilter($0, width: 4) }
        XCTAssertEqual(stored, [UInt8](random))
        bytes.withUnsafeMutableBytes { DecoderBlockWorker.unfilter($0, width: 4) }
        XCTAssertEqual(bytes, original)
    }

    func testEmptyAndTinyInputs() throws {
        for input in [Data(), Data([0]), Data([1, 2, 3])] {
            let c = try runLzopForDecode(["-c"], input: input)
            try assertDecodes(c, to: input)
        }
        let exact = pseudoRandomBytes(256 * 1024, seed: 3)
        try assertDecodes(try runLzopForDecode(["-c"], input: exact), to: exact)
        let plusOne = pseudoRandomBytes(256 * 1024 + 1, seed: 4)
        try assertDecodes(try runLzopForDecode(["-c"], input: plusOne), to: plusOne)
    }

    func testConcatenatedMembersAndPadding() throws {
        let dir = TempDir()
        let a = sample.prefix(400_000), b = Data("second file\n".utf8)
        try a.write(to: URL(fileURLWithPath: dir.file("a")))
        try b.write(to: URL(fileURLWithPath: dir.file("b")))
        // `lzop -c a b` writes one member per file.
        let archive = try shOK("cd '\(dir.path)' && lzop -c a b > ab.lzo && echo ok")
        XCTAssertEqual(archive, "ok")
        let ab = try Data(contentsOf: URL(fileURLWithPath: dir.file("ab.lzo")))
        try assertDecodes(ab, to: a + b, members: 2)
        let three = ab + (try runLzopForDecode(["-9", "--crc32", "-c"], input: b))
        try assertDecodes(three, to: a + b + b, members: 3)
        // Trailing zeros are padding (a tape or a device rounds up).
        try assertDecodes(three + Data(count: 5000), to: a + b + b, members: 3)
        try assertDecodes(ab + Data(count: 3), to: a + b, members: 2)
    }

    /// lzop 0.9x files (version < 0x0940) have no version-needed, level or
    /// mtime-high fields; lzop 1.04 reads them, and so must we.
    func testOldHeaderLayout() throws {
        for level in ["-1", "-3", "-9"] {
            var m = DecodeMember(parsing: try runLzopForDecode([level, "-c"], input: sample))
            m.version = 0x0930
            let old = m.serialize()
            XCTAssertEqual(old.count, try runLzopForDecode([level, "-c"], input: sample).count - 7)
            try lzopAccepts(old)
            try assertDecodes(old, to: sample)
        }
    }

    func testExtraFieldIsSkipped() throws {
        for crc in [false, true] {
            var m = DecodeMember(parsing: try runLzopForDecode(crc ? ["--crc32", "-c"] : ["-c"], input: sample))
            m.flags |= 0x40
            m.extraField = Array("extra field contents".utf8)
            let data = m.serialize()
            try lzopAccepts(data)
            try assertDecodes(data, to: sample)
            var bad = [UInt8](data)
            bad[m.headerLength - 6] ^= 1  // inside the extra field
            XCTAssertEqual(decodeFormatError(Data(bad))?.kind, .headerCorrupted)
        }
    }

    func lzopAccepts(_ data: Data, file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try runProgram(try which("lzop"), ["-t", "-"], input: data)
        XCTAssertEqual(r.status, 0, "lzop -t refuses the crafted file: \(r.stderr)", file: file, line: line)
    }

    // MARK: - rejections

    struct Case {
        let name: String
        let kind: LzopFormatError.Kind
        let offset: Int?
        let text: String
        let data: Data
    }

    /// Every rejection of docs/lzop-format.md, made from real lzop output.
    func corruptions() throws -> [Case] {
        let base = try runLzopForDecode(["-CC", "-c"], input: sample)            // Adler-32 on data and compressed data
        let crc = try runLzopForDecode(["--crc32", "-CC", "-c"], input: sample)  // CRC-32 on both
        let plain = try runLzopForDecode(["-c"], input: sample)                  // Adler-32 on data only
        let m = DecodeMember(parsing: base)
        let blocks = m.blocks()
        XCTAssertGreaterThan(blocks.count, 3)
        let b1 = blocks[1]
        XCTAssertLessThan(b1.clen, b1.dlen)
        func patched(_ d: Data, _ at: Int, _ bytes: [UInt8]) -> Data {
            var a = [UInt8](d)
            a.replaceSubrange(at..<at + bytes.count, with: bytes)
            return Data(a)
        }
        func header(_ change: (inout DecodeMember) -> Void) -> Data {
            var copy = m
            change(&copy)
            return copy.serialize()
        }
        var cases: [Case] = []
        cases.append(Case(name: "empty", kind: .badMagic, offset: 0, text: "not an lzop file", data: Data()))
        cases.append(Case(name: "not lzop", kind: .badMagic, offset: 0, text: "not an lzop file", data: Data("hello world, not lzop".utf8)))
        cases.append(Case(name: "gzip", kind: .badMagic, offset: 0, text: "not an lzop file", data: Data([0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 3])))
        // FTP ASCII mode: CR LF became LF, so the magic lost its 0D.
        var dos = [UInt8](base); dos.remove(at: 5)
        cases.append(Case(name: "CR LF -> LF", kind: .badMagic, offset: 0, text: "line-end conversion (DOS -> UNIX", data: Data(dos)))
        var unix2dos = [UInt8](base); unix2dos.insert(0x0D, at: 8)
        cases.append(Case(name: "LF -> CR LF", kind: .badMagic, offset: 0, text: "line-end conversion (UNIX -> DOS", data: Data(unix2dos)))
        var seven = [UInt8](base); seven[0] = 0x09
        cases.append(Case(name: "7 bit", kind: .badMagic, offset: 0, text: "7-bit", data: Data(seven)))
        cases.append(Case(name: "header checksum", kind: .headerChecksum, offset: m.headerLength - 4 , text: "header checksum error",
                          data: patched(base, 9 + 14, [0x7F])))
        cases.append(Case(name: "reserved flags", kind: .reservedFlags, offset: 9, text: "unknown header flags 0x00004000",
                          data: header { $0.flags |= 0x4000 }))
        cases.append(Case(name: "method 4", kind: .unknownMethod, offset: 9, text: "unknown compression method 4",
                          data: header { $0.method = 4 }))
        cases.append(Case(name: "method 0", kind: .unknownMethod, offset: 9, text: "unknown compression method 0",
                          data: header { $0.method = 0 }))
        cases.append(Case(name: "level 10", kind: .unknownLevel, offset: 9, text: "unknown compression level 10",
                          data: header { $0.level = 10 }))
        cases.append(Case(name: "version needed", kind: .versionTooNew, offset: 13, text: "needs lzop version 0x2000",
                          data: header { $0.versionNeeded = 0x2000 }))
        cases.append(Case(name: "ancient version", kind: .headerCorrupted, offset: 9, text: "header corrupted",
                          data: header { $0.version = 0x0800 }))
        cases.append(Case(name: "filter 17", kind: .unknownFilter, offset: 9, text: "unknown filter 17",
                          data: header { $0.flags |= 0x800; $0.filter = 17 }))
        // What lzop itself dies on (an assertion): a compressed-data checksum without the data one.
        cases.append(Case(name: "ADLER32_C alone", kind: .inconsistentChecksumFlags, offset: 9, text: "without the data Adler-32",
                          data: header { $0.flags &= ~UInt32(1) }))
        cases.append(Case(name: "CRC32_C alone", kind: .inconsistentChecksumFlags, offset: 9, text: "without the data CRC-32",
                          data: header { $0.flags = ($0.flags & ~UInt32(3)) | 0x200 }))
        cases.append(Case(name: "split file", kind: .splitFile, offset: b1.offset, text: "split lzop file",
                          data: patched(base, b1.offset, [0xFF, 0xFF, 0xFF, 0xFF])))
        cases.append(Case(name: "dlen > 64 MiB", kind: .blockTooLarge, offset: b1.offset, text: "more than lzop's limit of 64 MiB",
                          data: patched(base, b1.offset, decodeBE32(64 << 20 + 1))))
        cases.append(Case(name: "clen 0", kind: .badBlockLength, offset: b1.offset, text: "block has 0 compressed bytes",
                          data: patched(base, b1.offset + 4, decodeBE32(0))))
        cases.append(Case(name: "clen > dlen", kind: .badBlockLength, offset: b1.offset, text: "must be 1 to",
                          data: patched(base, b1.offset + 4, decodeBE32(UInt32(b1.dlen + 1)))))
        cases.append(Case(name: "cut in header", kind: .truncated, offset: 20, text: "unexpected end of file", data: base.prefix(20)))
        cases.append(Case(name: "cut in block", kind: .truncated, offset: b1.dataOffset + 10, text: "unexpected end of file",
                          data: base.prefix(b1.dataOffset + 10)))
        cases.append(Case(name: "no end marker", kind: .truncated, offset: base.count - 4, text: "unexpected end of file",
                          data: base.prefix(base.count - 4)))
        cases.append(Case(name: "compressed Adler-32", kind: .compressedChecksum, offset: b1.offset, text: "checksum error in compressed data (Adler-32",
                          data: patched(base, b1.dataOffset + 100, [base[b1.dataOffset + 100] ^ 0x55])))
        let cm = DecodeMember(parsing: crc), cb = cm.blocks()[1]
        cases.append(Case(name: "compressed CRC-32", kind: .compressedChecksum, offset: cb.offset, text: "checksum error in compressed data (CRC-32",
                          data: patched(crc, cb.dataOffset + 100, [crc[cb.dataOffset + 100] ^ 0x55])))
        cases.append(Case(name: "data CRC-32", kind: .dataChecksum, offset: cb.offset, text: "checksum error in decompressed data (CRC-32",
                          data: patched(crc, cb.checksumOffset, [crc[cb.checksumOffset] ^ 1])))
        cases.append(Case(name: "data Adler-32", kind: .dataChecksum, offset: b1.offset, text: "checksum error in decompressed data (Adler-32",
                          data: patched(base, b1.checksumOffset, [base[b1.checksumOffset] ^ 1])))
        // Without a compressed-data checksum, broken LZO data reaches the
        // safe decompressor: the end-of-stream marker overwritten.
        let pm = DecodeMember(parsing: plain), pb = pm.blocks()[1]
        cases.append(Case(name: "LZO data violation", kind: .dataViolation, offset: pb.offset, text: "compressed data violation",
                          data: patched(plain, pb.dataOffset + pb.clen - 3, [0xFF, 0xFF, 0xFF])))
        // A decompressed length other than dlen.
        let shortened = patched(plain, pb.offset, decodeBE32(UInt32(pb.dlen + 100)))
        cases.append(Case(name: "wrong length", kind: .dataViolation, offset: pb.offset, text: "compressed data violation", data: shortened))
        cases.append(Case(name: "trailing garbage", kind: .trailingGarbage, offset: base.count + 2, text: "trailing garbage",
                          data: base + Data([0, 0, 0x42, 0, 0, 0, 0, 0, 0, 0, 0])))
        var mangledSecond = [UInt8](base + base); mangledSecond.remove(at: base.count + 5)
        cases.append(Case(name: "second member mangled", kind: .badMagic, offset: base.count, text: "line-end conversion",
                          data: Data(mangledSecond)))
        return cases
    }

    func testCorruptionsAreRejectedWithOffsets() throws {
        for c in try corruptions() {
            for threads in [1, 4] {
                guard let e = decodeFormatError(c.data, threads: threads) else {
                    XCTFail("\(c.name): decoded without error (threads \(threads))")
                    continue
                }
                XCTAssertEqual(e.kind, c.kind, "\(c.name): \(e)")
                if let offset = c.offset { XCTAssertEqual(e.offset, UInt64(offset), "\(c.name): \(e)") }
                XCTAssertTrue(e.message.contains(c.text), "\(c.name): \(e.message)")
                XCTAssertFalse(e.description.contains("\n"))
            }
        }
    }

    /// lzop agrees that each of these is bad (exit non-zero), except the
    /// ones it cannot even read without crashing or only warns about.
    func testLzopAlsoRejectsTheCorruptions() throws {
        let lzopPath = try which("lzop")
        for c in try corruptions() where c.data.count > 0 {
            let r = try runProgram(lzopPath, ["-t", "-"], input: c.data)
            XCTAssertNotEqual(r.status, 0, "lzop accepts \(c.name)")
        }
    }

    /// All blocks before a bad one are delivered, in order, then the error:
    /// in parallel mode too, whatever order the workers finish in.
    func testParallelDeliversEverythingBeforeTheFirstError() throws {
        let big = decodeSample(size: 4_000_000)
        let c = try runLzopForDecode(["-c"], input: big)
        let m = DecodeMember(parsing: c)
        let blocks = m.blocks()
        for bad in [0, 5, blocks.count - 1] {
            var a = [UInt8](c)
            a[blocks[bad].checksumOffset] ^= 0xFF
            for (threads, budget) in [(1, 24 << 20), (2, 24 << 20), (4, 1 << 20), (3, 1)] {
                let sink = DecodeCollectSink()
                XCTAssertThrowsError(try Data(a).withUnsafeBytes {
                    try LzopDecoder(threads: threads, memoryBudget: budget).decode(from: LzopMemorySource($0), to: sink)
                }) { error in
                    XCTAssertEqual((error as? LzopFormatError)?.offset, UInt64(blocks[bad].offset))
                }
                XCTAssertEqual(sink.data, big.prefix(bad * LzopFormat.blockSize), "threads \(threads) bad \(bad)")
            }
        }
        // A tiny budget still decodes everything (one block at a time).
        XCTAssertEqual(try decodeInMemory(c, threads: 3, budget: 1).0, big)
    }

    /// A sink failure stops the pipeline and surfaces as the error.
    func testSinkErrorStopsDecoding() throws {
        final class FailingSink: ByteSink {
            var calls = 0
            func write(_ bytes: UnsafeRawBufferPointer) throws {
                calls += 1
                if calls == 3 { throw RescueError("sink", "write", errno: EPIPE) }
            }
        }
        let c = try runLzopForDecode(["-c"], input: decodeSample(size: 3_000_000))
        for threads in [1, 2] {
            let sink = FailingSink()
            XCTAssertThrowsError(try c.withUnsafeBytes {
                try LzopDecoder(threads: threads).decode(from: LzopMemorySource($0), to: sink)
            }) { XCTAssertEqual(($0 as? RescueError)?.errno, EPIPE) }
            XCTAssertEqual(sink.calls, 3)
        }
    }

    func testZeroBlocksUseZeroRuns() throws {
        final class ZeroSink: ZeroRunSink {
            var zeros: UInt64 = 0, data = Data()
            func write(_ bytes: UnsafeRawBufferPointer) throws { data.append(contentsOf: bytes) }
            func writeZeros(_ count: UInt64) throws { zeros += count; data.append(Data(count: Int(count))) }
        }
        let input = Data(count: 10 * LzopFormat.blockSize) + Data("end".utf8)
        for threads in [1, 2] {
            let sink = ZeroSink()
            let c = try runLzopForDecode(["-c"], input: input)
            _ = try c.withUnsafeBytes { try LzopDecoder(threads: threads).decode(from: LzopMemorySource($0), to: sink) }
            XCTAssertEqual(sink.zeros, UInt64(10 * LzopFormat.blockSize))
            XCTAssertEqual(sink.data, input)
        }
    }

    func testProgressReportsInputAndOutput() throws {
        let c = try runLzopForDecode(["-c"], input: sample)
        var last: (UInt64, UInt64) = (0, 0)
        _ = try c.withUnsafeBytes {
            try LzopDecoder(threads: 2).decode(from: LzopMemorySource($0), to: nil) { i, o in last = (i, o) }
        }
        XCTAssertEqual(last.1, UInt64(sample.count))
        XCTAssertEqual(last.0, UInt64(c.count - 4))
    }

    /// Mutated real files: every result is output or a format error, never a
    /// crash or hang (the in-process part of issue 8's fuzzing).
    func testMutationsNeverCrash() throws {
        let seeds = [try runLzopForDecode(["-c"], input: sample.prefix(70_000)),
                     try runLzopForDecode(["-9", "--crc32", "-CC", "-c"], input: sample.prefix(70_000)),
                     try runLzopForDecode(["--filter=2", "-F", "-c"], input: sample.prefix(70_000))]
        var state: UInt64 = 0x1234_5678
        func next() -> Int {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return Int(truncatingIfNeeded: state & 0x7FFF_FFFF)
        }
        var outcomes = [String: Int]()
        // LZOP_MUTATION_ROUNDS=200000 for a longer local run.
        let rounds = Int(ProcessInfo.processInfo.environment["LZOP_MUTATION_ROUNDS"] ?? "") ?? 3000
        for round in 0..<rounds {
            var a = [UInt8](seeds[round % seeds.count])
            for _ in 0..<(1 + next() % 4) {
                switch next() % 4 {
                case 0: a[next() % a.count] = UInt8(truncatingIfNeeded: next())
                case 1: a = Array(a.prefix(next() % a.count))
                case 2: let i = next() % a.count; a.insert(UInt8(truncatingIfNeeded: next()), at: i)
                default: if a.count > 1 { a.remove(at: next() % a.count) }
                }
                if a.isEmpty { break }
            }
            do {
                _ = try a.withUnsafeBytes { try lzopDecodeAll($0, into: nil) }
                outcomes["ok", default: 0] += 1
            } catch let e as LzopFormatError {
                outcomes[e.kind.rawValue, default: 0] += 1
            }
        }
        XCTAssertGreaterThan(outcomes.count, 5, "\(outcomes)")
        if rounds > 3000 { print("mutation outcomes: \(outcomes)") }
    }

    /// The seed corpus in the repo stays decodable.
    func testFuzzCorpusSeedsDecode() throws {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../Fuzz/corpus/lzop").standardized
        let files = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        let lzoFiles = files.filter { $0.hasSuffix(".lzo") }
        guard !lzoFiles.isEmpty else { throw prerequisiteFailed("no corpus at \(dir.path) (it is part of the repository)") }
        for name in lzoFiles {
            let data = try Data(contentsOf: dir.appendingPathComponent(name))
            XCTAssertNoThrow(try decodeInMemory(data), name)
        }
    }
}
