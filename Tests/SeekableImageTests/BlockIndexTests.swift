import Foundation
import LZOP
import RescueCore
import SeekableImage
import TestSupport
import XCTest

/// The block index and random reads, over files made by real lzop and by ddz.
final class BlockIndexTests: XCTestCase {
    /// Random data with zero runs: 2.3 MiB, not a multiple of the block size.
    func sample() -> Data {
        var d = pseudoRandomBytes(1_000_000, seed: 7)
        d.append(Data(count: 600_000))
        d.append(pseudoRandomBytes(800_123, seed: 9))
        return d
    }

    func lzopFile(_ dir: TempDir, level: String, extra: [String] = []) throws -> (String, Data) {
        let data = sample()
        let raw = dir.file("raw")
        try data.write(to: URL(fileURLWithPath: raw))
        let out = dir.file("raw\(level).lzo")
        let r = try runProgram("lzop", ["-f", level] + extra + ["-o", out, raw])
        XCTAssertEqual(r.status, 0, r.stderr)
        return (out, data)
    }

    func testIndexOfLzopFilesMatchesTheirBlocks() throws {
        let dir = TempDir()
        for (level, extra) in [("-1", []), ("-3", ["--crc32"]), ("-9", []), ("-3", ["-F"])] as [(String, [String])] {
            let (path, data) = try lzopFile(dir, level: level, extra: extra)
            let file = try OpenFile.open(path, .readOnly)
            let access = try LzopFileAccess(file)
            let index = try LzopBlockIndex.build(access)
            XCTAssertEqual(index.uncompressedSize, UInt64(data.count), "lzop \(level) \(extra)")
            XCTAssertEqual(index.blockSize, 256 * 1024)
            XCTAssertEqual(index.blockCount, (data.count + 256 * 1024 - 1) / (256 * 1024))
            // The streaming indexer sees the same offsets.
            let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
            let streamed = LzopStreamIndexer()
            for start in stride(from: 0, to: bytes.count, by: 7777) {
                try bytes[start..<min(start + 7777, bytes.count)].withUnsafeBytes { try streamed.consume($0) }
            }
            XCTAssertEqual(try streamed.finish(), index)
            // Stored offsets load back to the same index; hadoop layout: 8 bytes each.
            let serialized = index.serialized()
            XCTAssertEqual(serialized.count, 8 * index.blockCount)
            XCTAssertEqual(try LzopBlockIndex.load(offsets: try LzopBlockIndex.parseOffsets(serialized), source: access), index)
            // Every byte reads back through the image, at odd offsets too.
            var options = SeekableImageOptions()
            options.cacheBytes = 1 << 20
            let image = SeekableImage(source: access, index: index, name: path, options: options)
            var out = [UInt8](repeating: 0, count: data.count + 100)
            var at = 0
            var step = 1
            while at < data.count {
                let n = try out.withUnsafeMutableBytes { try image.read(at: UInt64(at), count: step, into: $0.baseAddress! + at) }
                XCTAssertEqual(n, min(step, data.count - at))
                at += n
                step = step * 3 + 17
            }
            XCTAssertEqual(Data(out.prefix(data.count)), data, "lzop \(level) \(extra)")
            let past = try out.withUnsafeMutableBytes { try image.read(at: UInt64(data.count - 10), count: 100, into: $0.baseAddress!) }
            XCTAssertEqual(past, 10, "a read past the end is short")
            image.stop()
        }
    }

    /// Drop-behind: a block read to its last byte leaves the cache (read
    /// again, it is decoded again, with the same bytes); a block only
    /// partly read stays (read again, a hit).
    func testBlocksReadWhollyLeaveTheCache() throws {
        let dir = TempDir()
        let (path, data) = try lzopFile(dir, level: "-1")
        let access = try LzopFileAccess(try OpenFile.open(path, .readOnly))
        let index = try LzopBlockIndex.build(access)
        var options = SeekableImageOptions()
        options.readAheadBlocks = 0
        let image = SeekableImage(source: access, index: index, name: path, options: options)
        defer { image.stop() }
        let bs = index.blockSize
        var out = [UInt8](repeating: 0, count: bs)
        func read(_ at: Int, _ count: Int) throws {
            let n = try out.withUnsafeMutableBytes { try image.read(at: UInt64(at), count: count, into: $0.baseAddress!) }
            XCTAssertEqual(n, count)
            XCTAssertEqual(Data(out.prefix(count)), data[at..<(at + count)])
        }
        // Block 0 in two halves (out of order), then again: decoded twice.
        try read(bs / 2, bs / 2)
        try read(0, bs / 2)
        try read(0, bs)
        XCTAssertEqual(image.statistics.misses, 2)
        // Block 1 partly, then the same bytes again: decoded once, then cached.
        try read(bs + 10, 1000)
        XCTAssertEqual(image.statistics.misses, 3)
        try read(bs + 10, 1000)
        XCTAssertEqual(image.statistics.misses, 3)
    }

    func testConcatenatedMembersAndVaryingBlocksAreRefused() throws {
        let dir = TempDir()
        let (path, _) = try lzopFile(dir, level: "-1")
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        let twice = dir.file("twice.lzo")
        try (bytes + bytes).write(to: URL(fileURLWithPath: twice))
        let access = try LzopFileAccess(try OpenFile.open(twice, .readOnly))
        XCTAssertThrowsError(try LzopBlockIndex.build(access)) { error in
            XCTAssertEqual((error as? LzopIndexError)?.kind, .severalMembers)
        }
        // Stored blocks of 2000, 1000, 2000 bytes after lzop's own header:
        // sizes vary, refused; 2000, 2000, 1000 is the supported shape.
        let header = bytes.prefix(Int(try LzopBlockIndex.build(try LzopFileAccess(try OpenFile.open(path, .readOnly))).blockOffsets[0]))
        func member(_ sizes: [Int]) -> Data {
            var d = Data(header)
            for size in sizes {
                let raw = [UInt8](pseudoRandomBytes(size, seed: UInt64(size)))
                var a: UInt32 = 1, b: UInt32 = 0
                for x in raw { a = (a + UInt32(x)) % 65521; b = (b + a) % 65521 }
                for v in [UInt32(size), UInt32(size), b << 16 | a] { withUnsafeBytes(of: v.bigEndian) { d.append(contentsOf: $0) } }
                d.append(contentsOf: raw)
            }
            d.append(contentsOf: [0, 0, 0, 0])
            return d
        }
        for (sizes, ok) in [([2000, 1000, 2000], false), ([1000, 2000], false), ([2000, 2000, 1000], true)] {
            let file = dir.file("sizes.lzo")
            try member(sizes).write(to: URL(fileURLWithPath: file))
            XCTAssertEqual(try runProgram("lzop", ["-t", file]).status, 0, "lzop accepts \(sizes)")
            let access = try LzopFileAccess(try OpenFile.open(file, .readOnly))
            if ok {
                let index = try LzopBlockIndex.build(access)
                XCTAssertEqual(index.uncompressedSize, 5000)
                XCTAssertEqual(index.blockSize, 2000)
            } else {
                XCTAssertThrowsError(try LzopBlockIndex.build(access), "\(sizes)") { error in
                    XCTAssertEqual((error as? LzopIndexError)?.kind, .varyingBlockSize)
                    XCTAssertTrue("\(error)".contains("supported: one lzop member"), "\(error)")
                }
            }
        }
    }

    func testCorruptBlockFailsOnlyItsRange() throws {
        let dir = TempDir()
        let (path, data) = try lzopFile(dir, level: "-1")
        let access0 = try LzopFileAccess(try OpenFile.open(path, .readOnly))
        let index = try LzopBlockIndex.build(access0)
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        let victim = 2
        let at = Int(index.blockOffsets[victim]) + 40
        bytes[at] ^= 0x55
        let bad = dir.file("bad.lzo")
        try bytes.write(to: URL(fileURLWithPath: bad))
        let access = try LzopFileAccess(try OpenFile.open(bad, .readOnly))
        let image = SeekableImage(source: access, index: index, name: bad)
        var messages: [String] = []
        image.onCorruptBlock = { messages.append($0) }
        var out = [UInt8](repeating: 0, count: 1 << 20)
        let bs = 256 * 1024
        XCTAssertThrowsError(try out.withUnsafeMutableBytes { _ = try image.read(at: UInt64(victim * bs + 5), count: 10, into: $0.baseAddress!) })
        XCTAssertThrowsError(try out.withUnsafeMutableBytes { _ = try image.read(at: UInt64(victim * bs), count: 1, into: $0.baseAddress!) })
        XCTAssertEqual(messages.count, 1, "one line per corrupt block")
        XCTAssertTrue(messages.first?.contains("block \(victim) at compressed offset \(index.blockOffsets[victim])") ?? false, "\(messages)")
        // Neighbours read fine, right up to the bad block's edges.
        let n = try out.withUnsafeMutableBytes { try image.read(at: UInt64(victim * bs - 100), count: 100, into: $0.baseAddress!) }
        XCTAssertEqual(n, 100)
        XCTAssertEqual(Data(out.prefix(100)), data[(victim * bs - 100)..<(victim * bs)])
        let m = try out.withUnsafeMutableBytes { try image.read(at: UInt64((victim + 1) * bs), count: 4096, into: $0.baseAddress!) }
        XCTAssertEqual(Data(out.prefix(m)), data[((victim + 1) * bs)..<((victim + 1) * bs + 4096)])
        image.stop()
    }
}
