import Foundation
import TestSupport
import XCTest
@testable import LZOP
import RescueCore

/// Inputs the compress tests run over, as named files in a temp dir.
enum CompressTestData {
    static let block = LzopFormat.blockSize

    /// Text that compresses well (but not trivially).
    static func text(_ count: Int) -> Data {
        var out = Data()
        var i = 0
        while out.count < count {
            out.append(contentsOf: Array("line \(i): the quick brown fox jumps over the lazy dog \(i * 7919 % 1013)\n".utf8))
            i += 1
        }
        return out.prefix(count)
    }

    /// A disk-like mix: text, zeros (whole zero blocks), random, a binary.
    static func mixed() -> Data {
        var d = Data()
        d.append(text(300_000))
        d.append(Data(count: 3 * block))
        d.append(pseudoRandomBytes(200_000, seed: 7))
        let binary = (try? Data(contentsOf: URL(fileURLWithPath: "/bin/ls"))) ?? pseudoRandomBytes(100_000)
        d.append(binary.prefix(400_000))
        d.append(Data(count: block + 17))
        d.append(text(5000))
        return d
    }

    /// The oracle's inputs: name -> bytes.
    static func all() -> [(String, Data)] {
        [
            ("empty", Data()),
            ("one", Data([0x41])),
            ("block", text(block)),
            ("block+1", text(block + 1)),
            ("random", pseudoRandomBytes(700_000, seed: 3)),
            ("text", text(900_000)),
            ("zeros", Data(count: 4 * block)),
            ("zeros+tail", Data(count: 2 * block + 100)),
            ("mixed", mixed()),
        ]
    }
}

/// A sink collecting everything in memory.
final class MemorySink: ByteSink {
    var data = Data()
    var writes = 0
    /// Throw EPIPE once more than `failAfter` bytes would have been written.
    var failAfter: Int?
    func write(_ bytes: UnsafeRawBufferPointer) throws {
        writes += 1
        if let failAfter, data.count + bytes.count > failAfter {
            throw RescueError("memory sink", "write", errno: EPIPE)
        }
        data.append(contentsOf: bytes)
    }
}

/// Compresses a file with the library as ddz does.
func compressFile(_ path: String, options: LzopCompressionOptions, threads: Int = 2, requestSize: Int = 1 << 20,
                  poolSlots: Int? = nil, toStdout: Bool = true) throws -> (Data, ParallelCompressor.Summary) {
    let reader = try DiskReader.open(path, requestSize: requestSize)
    let header = LzopEncoderHeader.forInput(options: options, path: path, status: reader.status, toStdout: toStdout)
    let compressor = ParallelCompressor(options: options, threads: threads, header: header)
    compressor.poolSlots = poolSlots
    let sink = MemorySink()
    let summary = try compressor.run(reader: reader, sink: sink)
    return (sink.data, summary)
}

/// lzop's output for a file, with the given options.
func lzopOutput(_ path: String, _ args: [String]) throws -> Data {
    let lzop = try which("lzop")
    let r = try runProgram(lzop, args + ["-c", path])
    XCTAssertEqual(r.status, 0, r.stderr)
    return r.stdout
}

func lzopArgs(_ o: LzopCompressionOptions) -> [String] {
    var a = ["-\(o.level)"]
    if o.crc32 { a.append("--crc32") }
    if !o.dataChecksums { a.append("-F") }
    return a
}
