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
}
