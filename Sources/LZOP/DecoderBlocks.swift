// The lzop decoder, part 2: one block at a time. Pure functions of the block
// (no shared state except a thread-safe buffer pool), so workers can run
// them in parallel.
import CLZO
import RescueCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One block as the reader found it: lengths, stored checksums, payload.
struct DecoderBlock {
    var sequence: Int
    /// Offset of the block's dlen field.
    var offset: UInt64
    /// Offset just after the block (progress).
    var inputEnd: UInt64
    var dlen: Int
    var clen: Int
    var dataAdler: UInt32?
    var dataCRC: UInt32?
    var compressedAdler: UInt32?
    var compressedCRC: UInt32?
    var filter: Int
    var payload: AlignedBuffer
    /// Bytes of buffer memory this block may hold while in flight.
    var cost: Int
}

/// What a block decodes to: bytes in a buffer, or a run of zeros.
enum DecodedBlock {
    case data(AlignedBuffer, count: Int)
    case zeros(count: Int)

    var count: Int {
        switch self {
        case .data(_, let n): return n
        case .zeros(let n): return n
        }
    }
}

/// Reuses the block-sized buffers (256 KiB) instead of mapping fresh memory
/// for every block; larger blocks get their own allocation.
final class DecoderBufferPool: @unchecked Sendable {
    static let standardSize = LzopFormat.blockSize
    private let free = Mutex<[AlignedBuffer]>([])
    private let maxFree: Int

    init(maxFree: Int = 64) { self.maxFree = maxFree }

    static func capacity(for count: Int) -> Int { max(count, standardSize) }

    func get(_ count: Int) -> AlignedBuffer {
        if count <= Self.standardSize, let b = free.withLock({ $0.popLast() }) { return b }
        return AlignedBuffer(capacity: Self.capacity(for: count))
    }

    func put(_ buffer: AlignedBuffer) {
        guard buffer.capacity == Self.standardSize else { return }
        free.withLock { if $0.count < maxFree { $0.append(buffer) } }
    }
}

/// Decodes blocks; one per thread (it remembers the last all-zero block so
/// the next identical one — the common case in disk images — is recognised
/// by comparing a few compressed bytes instead of decompressing 256 KiB).
final class DecoderBlockWorker {
    private struct ZeroKey: Equatable {
        var dlen: Int, clen: Int, filter: Int
        var dataAdler: UInt32?, dataCRC: UInt32?, compressedAdler: UInt32?, compressedCRC: UInt32?
    }
    private var zeroKey: ZeroKey?
    private var zeroPayload: [UInt8] = []
    private let pool: DecoderBufferPool

    init(pool: DecoderBufferPool) { self.pool = pool }

    /// Verifies and decodes `block`, in lzop's order: compressed-data
    /// checksum, lzo1x_decompress_safe and its length, reverse filter,
    /// data checksum. Takes ownership of the payload buffer.
    func decode(_ block: DecoderBlock) throws -> DecodedBlock {
        let payload = UnsafeMutableRawBufferPointer(start: block.payload.pointer, count: block.clen)
        let key = ZeroKey(dlen: block.dlen, clen: block.clen, filter: block.filter,
                          dataAdler: block.dataAdler, dataCRC: block.dataCRC,
                          compressedAdler: block.compressedAdler, compressedCRC: block.compressedCRC)
        if let zeroKey, zeroKey == key,
           zeroPayload.withUnsafeBytes({ memcmp($0.baseAddress!, payload.baseAddress!, block.clen) == 0 }) {
            pool.put(block.payload)
            return .zeros(count: block.dlen)
        }

        let data: AlignedBuffer
        if block.clen < block.dlen {
            let view = UnsafeRawBufferPointer(payload)
            try verifyChecksum(block.compressedAdler, .adler32, of: view, compressed: true, at: block.offset) { pool.put(block.payload) }
            try verifyChecksum(block.compressedCRC, .crc32, of: view, compressed: true, at: block.offset) { pool.put(block.payload) }
            let out = pool.get(block.dlen)
            var produced = lzo_uint(block.dlen)
            let r = lzo1x_decompress_safe(block.payload.pointer.assumingMemoryBound(to: UInt8.self), lzo_uint(block.clen),
                                          out.pointer.assumingMemoryBound(to: UInt8.self), &produced, nil)
            if r != LZO_E_OK || produced != lzo_uint(block.dlen) {
                pool.put(block.payload)
                pool.put(out)
                let why = r != LZO_E_OK ? "LZO error \(r) (\(decoderLZOErrorName(r)))"
                    : "it decompresses to \(produced) bytes, the block header says \(block.dlen)"
                throw LzopFormatError(.dataViolation, at: block.offset, "compressed data violation: \(why): file corrupted")
            }
            data = out
        } else {
            data = block.payload
        }

        let bytes = UnsafeMutableRawBufferPointer(start: data.pointer, count: block.dlen)
        if block.filter > 0 { Self.unfilter(bytes, width: block.filter) }
        let view = UnsafeRawBufferPointer(bytes)
        try verifyChecksum(block.dataAdler, .adler32, of: view, compressed: false, at: block.offset) { releaseAfterFailure(block, data) }
        try verifyChecksum(block.dataCRC, .crc32, of: view, compressed: false, at: block.offset) { releaseAfterFailure(block, data) }
        if block.clen < block.dlen {
            defer { pool.put(block.payload) }
            if isAllZero(view) {
                // Identical compressed bytes (and stored checksums) decode
                // to identical output, so the next match needs no work.
                zeroKey = key
                zeroPayload = Array(UnsafeRawBufferPointer(payload))
                pool.put(data)
                return .zeros(count: block.dlen)
            }
        }
        return .data(data, count: block.dlen)
    }

    private func releaseAfterFailure(_ block: DecoderBlock, _ data: AlignedBuffer) {
        pool.put(data)
        if data !== block.payload { pool.put(block.payload) }
    }

    /// Reverses lzop's delta filter (filter.c t_add1/t_add): each byte adds
    /// the decoded byte `width` positions back; blocks of at most `width`
    /// bytes are left as they are, exactly as lzop does.
    static func unfilter(_ bytes: UnsafeMutableRawBufferPointer, width: Int) {
        guard width > 0, bytes.count > width else { return }
        let p = bytes.baseAddress!.assumingMemoryBound(to: UInt8.self)
        for k in width..<bytes.count { p[k] &+= p[k - width] }
    }

    /// The forward filter (t_sub1/t_sub), for tests.
    static func filter(_ bytes: UnsafeMutableRawBufferPointer, width: Int) {
        guard width > 0, bytes.count > width else { return }
        let p = bytes.baseAddress!.assumingMemoryBound(to: UInt8.self)
        var k = bytes.count - 1
        while k >= width { p[k] &-= p[k - width]; k -= 1 }
    }
}

func decoderLZOErrorName(_ r: Int32) -> String {
    switch r {
    case LZO_E_ERROR: return "error"
    case LZO_E_INPUT_OVERRUN: return "input overrun"
    case LZO_E_OUTPUT_OVERRUN: return "output overrun"
    case LZO_E_LOOKBEHIND_OVERRUN: return "lookbehind overrun"
    case LZO_E_EOF_NOT_FOUND: return "end marker not found"
    case LZO_E_INPUT_NOT_CONSUMED: return "input not consumed"
    default: return "unknown"
    }
}

private enum BlockChecksum { case adler32, crc32 }

/// Throws lzop's checksum error when `stored` is there and `view` does not
/// match it; `release` first gives back the block's buffers.
private func verifyChecksum(_ stored: UInt32?, _ kind: BlockChecksum, of view: UnsafeRawBufferPointer, compressed: Bool,
                            at offset: UInt64, release: () -> Void) throws {
    guard let stored else { return }
    let computed = kind == .adler32 ? LzopChecksum.adler32(view) : LzopChecksum.crc32(view)
    guard computed != stored else { return }
    release()
    throw LzopFormatError(compressed ? .compressedChecksum : .dataChecksum, at: offset,
        "checksum error in \(compressed ? "compressed" : "decompressed") data (\(kind == .adler32 ? "Adler-32" : "CRC-32") "
        + "0x\(decoderHex(stored)) stored, 0x\(decoderHex(computed)) computed): file corrupted")
}
