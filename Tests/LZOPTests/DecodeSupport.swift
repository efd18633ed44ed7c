// Helpers for the decoder tests: run real lzop, take its output apart, and
// put it back together with changes (and correct header checksums), so
// every corrupt or unusual file starts as real lzop output.
import Foundation
import XCTest
import TestSupport
@testable import LZOP
import RescueCore

/// Runs lzop with `arguments`, feeding `input` on stdin; returns its stdout.
func runLzopForDecode(_ arguments: [String], input: Data) throws -> Data {
    let path = try which("lzop")
    let r = try runProgram(path, arguments, input: input)
    guard r.status == 0 else { throw prerequisiteFailed("lzop \(arguments) failed: \(r.stderr)") }
    return r.stdout
}

/// Sample data: an executable-like mix, text, zeros, random; several blocks.
func decodeSample(size: Int = 1_300_000) -> Data {
    var d = Data()
    var line = 0
    while d.count < size / 4 { d.append(contentsOf: Array("line \(line) of some text, value=\(line * 7919 % 1000)\n".utf8)); line += 1 }
    d.append(Data(count: 300_000))
    d.append(pseudoRandomBytes(200_000, seed: 42))
    var pattern = Data()
    for i in 0..<4096 { pattern.append(UInt8(truncatingIfNeeded: i * 31 / 7)) }
    while d.count < size { d.append(pattern) }
    return d.prefix(size)
}

func decodeAdler32(_ bytes: [UInt8], seed: UInt32 = 1) -> UInt32 {
    var a = seed & 0xFFFF, b = seed >> 16
    for x in bytes { a = (a + UInt32(x)) % 65521; b = (b + a) % 65521 }
    return b << 16 | a
}

private let decodeCRCTable: [UInt32] = (0..<256).map { n -> UInt32 in
    var c = UInt32(n)
    for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
    return c
}

func decodeCRC32(_ bytes: [UInt8], seed: UInt32 = 0) -> UInt32 {
    var c = ~seed
    for x in bytes { c = decodeCRCTable[Int((c ^ UInt32(x)) & 0xFF)] ^ (c >> 8) }
    return ~c
}

func decodeBE32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
func decodeBE16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xFF)] }
func decodeReadBE32(_ b: [UInt8], _ at: Int) -> UInt32 {
    UInt32(b[at]) << 24 | UInt32(b[at + 1]) << 16 | UInt32(b[at + 2]) << 8 | UInt32(b[at + 3])
}

/// An lzop member taken apart (lzop 1.04 layout, version >= 0x0940 unless
/// `oldLayout`), with its block stream kept as raw bytes.
struct DecodeMember {
    var version: UInt16 = 0x1040
    var libVersion: UInt16 = 0x20A0
    var versionNeeded: UInt16 = 0x0940
    var method: UInt8 = 1
    var level: UInt8 = 5
    var flags: UInt32 = 0
    var filter: UInt32 = 0
    var mode: UInt32 = 0
    var mtimeLow: UInt32 = 0
    var mtimeHigh: UInt32 = 0
    var name: [UInt8] = []
    /// Bytes after the header checksum: blocks and end marker (and whatever follows).
    var rest: [UInt8] = []
    var extraField: [UInt8]? = nil
    var oldLayout: Bool { version < 0x0940 }
    /// Header length including magic and checksum (and extra field).
    var headerLength: Int { serializeHeader().count }

    init(parsing data: Data) {
        let b = [UInt8](data)
        precondition(Array(b[0..<9]) == LzopFormat.magic)
        var i = 9
        func u8() -> UInt8 { defer { i += 1 }; return b[i] }
        func u16() -> UInt16 { defer { i += 2 }; return UInt16(b[i]) << 8 | UInt16(b[i + 1]) }
        func u32() -> UInt32 { defer { i += 4 }; return decodeReadBE32(b, i) }
        version = u16(); libVersion = u16(); versionNeeded = u16()
        method = u8(); level = u8(); flags = u32()
        if flags & 0x800 != 0 { filter = u32() }
        mode = u32(); mtimeLow = u32(); mtimeHigh = u32()
        let n = Int(u8())
        name = Array(b[i..<i + n]); i += n
        i += 4  // checksum
        rest = Array(b[i...])
    }

    func serializeHeader() -> [UInt8] {
        var h: [UInt8] = []
        h += decodeBE16(version); h += decodeBE16(libVersion)
        if !oldLayout { h += decodeBE16(versionNeeded) }
        h.append(method)
        if !oldLayout { h.append(level) }
        h += decodeBE32(flags)
        if flags & 0x800 != 0 { h += decodeBE32(filter) }
        h += decodeBE32(mode); h += decodeBE32(mtimeLow)
        if !oldLayout { h += decodeBE32(mtimeHigh) }
        h.append(UInt8(name.count)); h += name
        let crc = flags & 0x1000 != 0
        h += decodeBE32(crc ? decodeCRC32(h) : decodeAdler32(h))
        var out = LzopFormat.magic + h
        if let extra = extraField {
            let covered = decodeBE32(UInt32(extra.count)) + extra
            out += covered + decodeBE32(crc ? decodeCRC32(covered) : decodeAdler32(covered))
        }
        return out
    }

    func serialize() -> Data { Data(serializeHeader() + rest) }

    struct Block { var offset: Int; var dlen: Int; var clen: Int; var dataOffset: Int; var checksumOffset: Int }

    /// Block positions relative to the start of the member.
    func blocks() -> [Block] {
        var list: [Block] = []
        let base = headerLength
        var i = 0
        while i + 4 <= rest.count {
            let dlen = Int(decodeReadBE32(rest, i))
            if dlen == 0 { break }
            let clen = Int(decodeReadBE32(rest, i + 4))
            var j = i + 8
            let sums = j
            if flags & 0x1 != 0 { j += 4 }
            if flags & 0x100 != 0 { j += 4 }
            if clen < dlen {
                if flags & 0x2 != 0 { j += 4 }
                if flags & 0x200 != 0 { j += 4 }
            }
            list.append(Block(offset: base + i, dlen: dlen, clen: clen, dataOffset: base + j, checksumOffset: base + sums))
            i = j + clen
        }
        return list
    }
}

/// Collects everything written (tests only; the data is small).
final class DecodeCollectSink: ByteSink {
    var data = Data()
    func write(_ bytes: UnsafeRawBufferPointer) throws { data.append(contentsOf: bytes) }
}

/// Decodes `data` in memory; returns output and stats.
func decodeInMemory(_ data: Data, threads: Int = 1, budget: Int = 24 << 20) throws -> (Data, LzopDecodeStats) {
    let sink = DecodeCollectSink()
    let stats: LzopDecodeStats = try data.withUnsafeBytes { raw in
        if threads == 1 { return try lzopDecodeAll(raw, into: sink) }
        return try LzopDecoder(threads: threads, memoryBudget: budget).decode(from: LzopMemorySource(raw), to: sink)
    }
    return (sink.data, stats)
}

/// The format error `data` produces, or nil when it decodes.
func decodeFormatError(_ data: Data, threads: Int = 1) -> LzopFormatError? {
    do {
        _ = try decodeInMemory(data, threads: threads)
        return nil
    } catch let e as LzopFormatError {
        return e
    } catch {
        XCTFail("unexpected error type: \(error)")
        return nil
    }
}
