import Foundation
import XCTest
import TestSupport
import RescueCore

/// ImageWriter (the decoder's output, shared with `restore`) on regular
/// files: holes only where whole 4 KiB pieces are zero, exact length, no
/// partial file after abandon().
final class DecodeImageWriterTests: XCTestCase {
    func allocated(_ path: String) throws -> Int {
        var st = stat()
        XCTAssertEqual(stat(path, &st), 0)
        return Int(st.st_blocks) * 512
    }

    func testSparseWritesKeepContentAndMakeHoles() throws {
        let dir = TempDir("imagewriter")
        let path = dir.file("img")
        let w = try ImageWriter.open(path)
        XCTAssertEqual(w.kind, .regularFile)
        var expected = Data()
        // Unaligned pieces: data, a zero run crossing many 4 KiB boundaries, data, zeros.
        let pieces: [Data] = [pseudoRandomBytes(1000, seed: 1), Data(count: 3 << 20), pseudoRandomBytes(5000, seed: 2),
                              Data(count: 100), Data([1]), Data(count: 2 << 20)]
        for p in pieces {
            try p.withUnsafeBytes { try w.write($0) }
            expected.append(p)
        }
        try w.writeZeros(1 << 20)
        expected.append(Data(count: 1 << 20))
        try w.finish()
        let got = try Data(contentsOf: URL(fileURLWithPath: path))
        XCTAssertEqual(got.count, expected.count)
        XCTAssertTrue(got == expected)
        XCTAssertLessThan(try allocated(path), 64 << 10, "zero runs must be holes")
    }

    func testNoSparseWritesEverything() throws {
        let dir = TempDir("imagewriter")
        let path = dir.file("img")
        let w = try ImageWriter.open(path, sparse: false)
        try Data(count: 1 << 20).withUnsafeBytes { try w.write($0) }
        try w.writeZeros(1 << 20)
        try w.finish()
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), Data(count: 2 << 20))
        XCTAssertGreaterThanOrEqual(try allocated(path), 2 << 20)
    }

    /// An existing file is replaced only with -f, and a failure leaves it
    /// (this run did not create it); a file this run created is removed.
    func testExistingFileNeedsForceAndAbandonRemovesOnlyWhatItCreated() throws {
        let dir = TempDir("imagewriter")
        let path = dir.file("img")
        try Data("old".utf8).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try ImageWriter.open(path)) {
            XCTAssertEqual(($0 as? RescueError)?.description, "\(path): open: file exists (use -f to overwrite it)")
        }
        let w = try ImageWriter.open(path, force: true)
        try Data("new".utf8).withUnsafeBytes { try w.write($0) }
        w.abandon()
        XCTAssertTrue(FileManager.default.fileExists(atPath: path))
        let created = dir.file("created")
        let c = try ImageWriter.open(created)
        try Data("new".utf8).withUnsafeBytes { try c.write($0) }
        c.abandon()
        XCTAssertFalse(FileManager.default.fileExists(atPath: created))
        XCTAssertThrowsError(try ImageWriter.open(dir.path)) {
            XCTAssertEqual(($0 as? RescueError)?.description, "\(dir.path): open: is a directory")
        }
        let missingDir = dir.file("no/such/img")
        XCTAssertThrowsError(try ImageWriter.open(missingDir)) {
            XCTAssertEqual(($0 as? RescueError)?.errno, ENOENT)
        }
    }

    func testCharacterDeviceIsWrittenPlainly() throws {
        let w = try ImageWriter.open("/dev/null")
        XCTAssertEqual(w.kind, .other)
        try Data(count: 10_000).withUnsafeBytes { try w.write($0) }
        try w.writeZeros(5000)
        try w.finish()
        XCTAssertEqual(w.position, 15_000)
    }
}
