import Foundation
import TestSupport
import XCTest
@testable import LZOP
import RescueCore

/// The parallel pipeline: same bytes whatever the threads, pool and
/// request sizes; resume from a block; block records; failures stop it.
final class CompressPipelineTests: XCTestCase {
    var dir: TempDir!
    var path: String!
    let block = LzopFormat.blockSize

    override func setUpWithError() throws {
        dir = TempDir("ddz-pipeline")
        path = dir.file("mixed")
        var data = CompressTestData.mixed()
        data.append(CompressTestData.mixed())
        try data.write(to: URL(fileURLWithPath: path))
    }

    override func tearDown() { dir = nil }

    func testDeterministicAcrossThreadsPoolsAndRequestSizes() throws {
        let options = LzopCompressionOptions(level: 1)
        let (reference, summary) = try compressFile(path, options: options, threads: 1)
        XCTAssertEqual(summary.inputBytes, UInt64(try Data(contentsOf: URL(fileURLWithPath: path)).count))
        XCTAssertEqual(summary.outputBytes, UInt64(reference.count))
        XCTAssertEqual(summary.zeroBlocks, 4)
        for (threads, request, pool) in [(2, 1 << 20, nil), (3, 4096, nil), (8, 64 << 10, 2), (2, 300 << 10, nil),
                                         (1, 4 << 20, 3), (4, block, 2)] as [(Int, Int, Int?)] {
            let (again, s) = try compressFile(path, options: options, threads: threads, requestSize: request, poolSlots: pool)
            XCTAssertTrue(again == reference, "threads \(threads) request \(request) pool \(String(describing: pool))")
            XCTAssertEqual(s, summary)
        }
    }

    func testBlockRecordsTileTheOutput() throws {
        let options = LzopCompressionOptions(level: 3)
        let reader = try DiskReader.open(path)
        let header = LzopEncoderHeader.forInput(options: options, path: path, status: reader.status, toStdout: true)
        let compressor = ParallelCompressor(options: options, threads: 2, header: header)
        let sink = MemorySink()
        var records: [ParallelCompressor.BlockRecord] = []
        var progress: [(UInt64, UInt64)] = []
        let summary = try compressor.run(reader: reader, sink: sink, onBlock: { records.append($0) },
                                         onProgress: { progress.append(($0, $1)) })
        XCTAssertEqual(UInt64(records.count), summary.blocks)
        var out = UInt64(header.bytes().count)
        var inOffset: UInt64 = 0
        for (i, r) in records.enumerated() {
            XCTAssertEqual(r.index, UInt64(i))
            XCTAssertEqual(r.inputOffset, inOffset)
            XCTAssertEqual(r.outputOffset, out)
            // The frame starts with dlen = inputLength.
            let dlen = sink.data[Int(r.outputOffset)..<Int(r.outputOffset) + 4].reduce(0) { $0 << 8 | Int($1) }
            XCTAssertEqual(dlen, r.inputLength)
            out += UInt64(r.outputLength)
            inOffset += UInt64(r.inputLength)
        }
        XCTAssertEqual(out + 4, UInt64(sink.data.count), "end marker follows the last block")
        XCTAssertEqual(progress.last?.0, summary.inputBytes)
        XCTAssertEqual(progress.last?.1, summary.outputBytes)
    }

    /// Resume: no header, start at block K, output offsets continue from the
    /// bytes already stored. Prefix + resumed part == the whole stream.
    func testResumeFromBlockGivesTheSameStream() throws {
        let options = LzopCompressionOptions(level: 1)
        let reader = try DiskReader.open(path)
        let header = LzopEncoderHeader.forInput(options: options, path: path, status: reader.status, toStdout: true)
        let full = ParallelCompressor(options: options, threads: 2, header: header)
        let sink = MemorySink()
        var records: [ParallelCompressor.BlockRecord] = []
        try full.run(reader: reader, sink: sink, onBlock: { records.append($0) })

        for k in [1, 4, records.count - 1, records.count] {
            let stored = k < records.count ? records[k].outputOffset : UInt64(sink.data.count - 4)
            let resumed = ParallelCompressor(options: options, threads: 2, header: nil)
            resumed.firstBlock = UInt64(k)
            resumed.outputOffset = stored
            let rest = MemorySink()
            var resumedRecords: [ParallelCompressor.BlockRecord] = []
            let reader2 = try DiskReader.open(path)
            let summary = try resumed.run(reader: reader2, sink: rest, onBlock: { resumedRecords.append($0) })
            XCTAssertTrue(sink.data.prefix(Int(stored)) + rest.data == sink.data, "resume at block \(k)")
            XCTAssertEqual(resumedRecords, Array(records[k...]))
            XCTAssertEqual(summary.outputBytes, UInt64(rest.data.count))
        }
    }

    func testFailingSinkStopsEveryThreadAndThrows() throws {
        for failAfter in [0, 100, 300_000] {
            let options = LzopCompressionOptions(level: 1)
            let reader = try DiskReader.open(path, requestSize: 64 << 10)
            let compressor = ParallelCompressor(options: options, threads: 3, header: LzopEncoderHeader(options: options))
            let sink = MemorySink()
            sink.failAfter = failAfter
            XCTAssertThrowsError(try compressor.run(reader: reader, sink: sink)) { error in
                XCTAssertEqual((error as? RescueError)?.errno, EPIPE)
            }
            XCTAssertLessThanOrEqual(sink.data.count, failAfter)
        }
    }

    func testFailingCallbackStopsTheRun() throws {
        struct Stop: Error {}
        let options = LzopCompressionOptions(level: 1)
        let compressor = ParallelCompressor(options: options, threads: 2, header: nil)
        var seen = 0
        XCTAssertThrowsError(try compressor.run(reader: try DiskReader.open(path), sink: MemorySink(), onBlock: { _ in
            seen += 1
            if seen == 3 { throw Stop() }
        })) { XCTAssertTrue($0 is Stop) }
        XCTAssertEqual(seen, 3)
    }

    /// A pipe as input (plain reads, unknown size): the same blocks as the
    /// file gives.
    func testPipeInputGivesTheSameBlocks() throws {
        let options = LzopCompressionOptions(level: 1)
        let (fromFile, _) = try compressFile(path, options: options)
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&fds), 0)
        let feeder = WorkerThread {
            data.withUnsafeBytes { raw in
                var off = 0
                while off < raw.count {
                    let n = write(fds[1], raw.baseAddress! + off, min(10_000, raw.count - off))
                    if n <= 0 { break }
                    off += n
                }
            }
            close(fds[1])
        }
        let saved = dup(0)
        dup2(fds[0], 0)
        close(fds[0])
        defer { dup2(saved, 0); close(saved) }
        let reader = try DiskReader.open(nil)
        XCTAssertNil(reader.totalSize)
        XCTAssertFalse(reader.isSeekable)
        let compressor = ParallelCompressor(options: options, threads: 2, header: nil)
        let sink = MemorySink()
        try compressor.run(reader: reader, sink: sink)
        feeder.join()
        let headerCount = LzopEncoderHeader.forInput(options: options, path: path, status: reader.status, toStdout: true)
            .bytes().count
        XCTAssertTrue(sink.data == fromFile.dropFirst(headerCount))
    }
}
