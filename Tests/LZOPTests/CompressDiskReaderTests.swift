import Foundation
import TestSupport
import XCTest
@testable import LZOP
import RescueCore

/// DiskReader: --skip/--count, sizes, scatter reads, O_DIRECT and its
/// fallback.
final class CompressDiskReaderTests: XCTestCase {
    func makeFile(_ dir: TempDir, _ count: Int) throws -> (String, Data) {
        let data = pseudoRandomBytes(count, seed: 11)
        let path = dir.file("input")
        try data.write(to: URL(fileURLWithPath: path))
        return (path, data)
    }

    func readAll(_ reader: DiskReader, piece: Int) throws -> Data {
        let buffer = AlignedBuffer(capacity: piece)
        var out = Data()
        while true {
            let n = try reader.read(into: buffer.bytes)
            if n == 0 { break }
            out.append(Data(bytes: buffer.pointer, count: n))
        }
        return out
    }

    func testWholeFileDirect() throws {
        let dir = TempDir()
        let (path, data) = try makeFile(dir, 3 * 1_048_576 + 1000)
        let reader = try DiskReader.open(path)
        XCTAssertTrue(reader.isSeekable)
        XCTAssertEqual(reader.totalSize, UInt64(data.count))
        XCTAssertTrue(try readAll(reader, piece: 1 << 20) == data)
        XCTAssertEqual(reader.position, UInt64(data.count))
        XCTAssertEqual(reader.remaining, 0)
    }

    func testSkipAndCount() throws {
        let dir = TempDir()
        let (path, data) = try makeFile(dir, 2_000_000)
        for (skip, count) in [(0, 4096), (4096, 100_000), (1_000_000, nil), (513, 70_001), (1_999_999, 5), (2_000_000, nil)]
            as [(Int, Int?)] {
            let reader = try DiskReader.open(path, skip: UInt64(skip), count: count.map(UInt64.init))
            let expected = data[skip..<min(data.count, skip + (count ?? data.count))]
            XCTAssertEqual(reader.totalSize, UInt64(expected.count))
            XCTAssertTrue(try readAll(reader, piece: 65536) == expected, "skip \(skip) count \(String(describing: count))")
        }
        XCTAssertThrowsError(try DiskReader.open(path, skip: 2_000_001)) { error in
            XCTAssertTrue("\(error)".contains("beyond the end"), "\(error)")
        }
    }

    /// Unaligned tails (end of file, --count) are read with O_DIRECT too,
    /// and only the bytes asked for are returned.
    func testUnalignedTailsStayDirect() throws {
        let dir = TempDir()
        let (path, data) = try makeFile(dir, 1_000_003)
        let whole = try DiskReader.open(path)
        let direct = whole.isDirect
        XCTAssertTrue(try readAll(whole, piece: 1 << 20) == data)
        XCTAssertEqual(whole.isDirect, direct, "the 1000003-byte file's tail did not turn O_DIRECT off")
        let counted = try DiskReader.open(path, skip: 4096, count: 777_777)
        XCTAssertTrue(try readAll(counted, piece: 65536) == data[4096..<(4096 + 777_777)])
        XCTAssertEqual(counted.isDirect, direct)
        XCTAssertEqual(counted.position, 777_777)
    }

    func testScatterReadFillsBuffersInOrder() throws {
        let dir = TempDir()
        let (path, data) = try makeFile(dir, 1_000_000)
        let reader = try DiskReader.open(path)
        let a = AlignedBuffer(capacity: 262_144), b = AlignedBuffer(capacity: 262_144)
        XCTAssertEqual(try reader.read(into: [a.bytes, b.bytes]), 524_288)
        XCTAssertTrue(Data(bytes: a.pointer, count: 262_144) == data[0..<262_144])
        XCTAssertTrue(Data(bytes: b.pointer, count: 262_144) == data[262_144..<524_288])
        try reader.seek(to: 900_000)
        XCTAssertEqual(try reader.read(into: [a.bytes, b.bytes]), 100_000)
        XCTAssertTrue(Data(bytes: a.pointer, count: 100_000) == data[900_000...])
    }

    func testDirectoryMissingFileAndBadRequestSize() {
        XCTAssertThrowsError(try DiskReader.open("/")) { XCTAssertEqual("\($0)", "/: read: Is a directory") }
        XCTAssertThrowsError(try DiskReader.open("/nonexistent/disk")) {
            XCTAssertEqual("\($0)", "/nonexistent/disk: open: No such file or directory")
        }
        XCTAssertThrowsError(try DiskReader.open("/dev/null", requestSize: 1000))
    }

    /// ramfs refuses O_DIRECT: the reader falls back to buffered reads.
    func testFallbackWhereDirectIsRefused() throws {
        try requireRoot("mounting a ramfs")
        let dir = TempDir()
        try shOK("mount -t ramfs ramfs '\(dir.path)'")
        defer { _ = try? sh("umount '\(dir.path)'") }
        let (path, data) = try makeFile(dir, 1_500_000)
        let reader = try DiskReader.open(path)
        XCTAssertFalse(reader.isDirect)
        XCTAssertTrue(try readAll(reader, piece: 1 << 20) == data)
    }

    /// A loop device: O_DIRECT stays on, the size comes from BLKGETSIZE64.
    func testDirectReadOfLoopDevice() throws {
        try requireRoot("loop devices")
        let dir = TempDir()
        let data = pseudoRandomBytes(3 << 20, seed: 5)
        let image = dir.file("disk.img")
        let loop = try LoopDevice(image: image, size: 8 << 20)
        defer { loop.detach() }
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: loop.device))
        try h.seek(toOffset: 1 << 20)
        h.write(data)
        try h.synchronize()
        try h.close()
        let reader = try DiskReader.open(loop.device, skip: 1 << 20, count: 3 << 20)
        XCTAssertTrue(reader.isDirect)
        XCTAssertEqual(reader.kind, .blockDevice)
        XCTAssertEqual(reader.sourceSize, 8 << 20)
        XCTAssertTrue(try readAll(reader, piece: 1 << 20) == data)
        XCTAssertTrue(reader.isDirect, "O_DIRECT stayed on for aligned requests")
    }
    /// Reads to the end with `depth` requests queued (submit/collect),
    /// each request `buffers` buffers of `piece` bytes.
    func readAllAhead(_ reader: DiskReader, piece: Int, buffers: Int = 2, depth: Int = 3) throws -> Data {
        let slots = (0..<depth).map { _ in (0..<buffers).map { _ in AlignedBuffer(capacity: piece) } }
        defer { reader.endReadAhead() }
        var out = Data()
        var next = 0
        for d in 0..<depth { reader.submit(slots[d].map(\.bytes)) }
        while true {
            let n = try reader.collect()
            var left = n
            for b in slots[next] where left > 0 {
                out.append(Data(bytes: b.pointer, count: min(left, piece)))
                left -= min(left, piece)
            }
            if n < piece * buffers { break }
            reader.submit(slots[next].map(\.bytes))
            next = (next + 1) % depth
        }
        return out
    }

    /// Read-ahead returns the same bytes as plain reads, for whole files,
    /// unaligned tails, --skip and --count, and ends where they end.
    func testReadAheadReturnsWhatReadsReturn() throws {
        let dir = TempDir()
        let (path, data) = try makeFile(dir, 5 * 1_048_576 + 1000)
        for (skip, count) in [(0, nil), (4096, 1_000_001), (1_048_576, nil), (513, 70_001), (5_243_880, nil)] as [(Int, Int?)] {
            let reader = try DiskReader.open(path, skip: UInt64(skip), count: count.map(UInt64.init))
            let expected = data[skip..<min(data.count, skip + (count ?? data.count))]
            XCTAssertTrue(try readAllAhead(reader, piece: 262_144) == expected, "skip \(skip) count \(String(describing: count))")
            XCTAssertEqual(reader.position, UInt64(expected.count))
            XCTAssertEqual(reader.queuedReads, 0)
        }
        // Requests queued past the end come back empty; the position stays.
        let reader = try DiskReader.open(path, count: 600_000)
        let a = AlignedBuffer(capacity: 524_288), b = AlignedBuffer(capacity: 524_288), c = AlignedBuffer(capacity: 524_288)
        reader.submit(CollectionOfOne(a.bytes)); reader.submit(CollectionOfOne(b.bytes)); reader.submit(CollectionOfOne(c.bytes))
        XCTAssertEqual(try reader.collect(), 524_288)
        XCTAssertEqual(try reader.collect(), 600_000 - 524_288)
        XCTAssertEqual(try reader.collect(), 0)
        XCTAssertEqual(reader.position, 600_000)
        XCTAssertTrue(Data(bytes: b.pointer, count: 600_000 - 524_288) == data[524_288..<600_000])
        reader.endReadAhead()
        // Dropping queued requests leaves the position after the last collected one.
        let early = try DiskReader.open(path)
        early.submit(CollectionOfOne(a.bytes)); early.submit(CollectionOfOne(b.bytes))
        XCTAssertEqual(try early.collect(), 524_288)
        early.endReadAhead()
        XCTAssertEqual(early.position, 524_288)
        XCTAssertEqual(try early.read(into: c.bytes), 524_288)
        XCTAssertTrue(Data(bytes: c.pointer, count: 524_288) == data[524_288..<1_048_576])
    }

    /// --used through read-ahead: the same bytes and the same read/skipped
    /// counts as plain reads; free space comes back as zeros.
    func testReadAheadWithUsedRanges() throws {
        let dir = TempDir()
        let (path, data) = try makeFile(dir, 4 * 1_048_576 + 512)
        let ranges: [Range<UInt64>] = [0..<4096, 10_240..<70_000, 262_144..<1_500_000, 2_097_152..<2_097_664,
                                       3_000_000..<4_194_816]
        var expected = Data(count: data.count)
        for r in ranges { expected.replaceSubrange(Int(r.lowerBound)..<Int(r.upperBound), with: data[Int(r.lowerBound)..<Int(r.upperBound)]) }
        let plain = try DiskReader.open(path)
        plain.usedRanges = ranges
        XCTAssertTrue(try readAll(plain, piece: 1 << 20) == expected)
        for piece in [65_536, 262_144, 1 << 20] {
            let ahead = try DiskReader.open(path)
            ahead.usedRanges = ranges
            XCTAssertTrue(try readAllAhead(ahead, piece: piece) == expected, "piece \(piece)")
            XCTAssertEqual(ahead.mappedReadBytes, plain.mappedReadBytes, "piece \(piece)")
            XCTAssertEqual(ahead.mappedReadBytes + ahead.mappedSkippedBytes, UInt64(data.count), "piece \(piece)")
        }
    }

    /// Streams are not read ahead: collect reads them in order.
    func testReadAheadOfAPipe() throws {
        let data = pseudoRandomBytes(1_500_000, seed: 3)
        let pipe = Pipe()
        let reader = try DiskReader.open("/dev/fd/\(pipe.fileHandleForReading.fileDescriptor)")
        XCTAssertFalse(reader.isSeekable)
        XCTAssertEqual(reader.readAheadDepth, 1)
        let writer = Thread { pipe.fileHandleForWriting.write(data); try? pipe.fileHandleForWriting.close() }
        writer.start()
        var out = Data()
        let buffer = AlignedBuffer(capacity: 262_144)
        while true {
            reader.submit(CollectionOfOne(buffer.bytes))
            let n = try reader.collect()
            if n == 0 { break }
            out.append(Data(bytes: buffer.pointer, count: n))
        }
        reader.endReadAhead()
        XCTAssertTrue(out == data)
    }
}
