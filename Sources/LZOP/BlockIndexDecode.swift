// Decoding single blocks found through the index: the decoder's own block
// worker (checksums, lzo1x_decompress_safe, filter), fed one block's bytes.
import CLZO
import RescueCore

#if canImport(Glibc)
import Glibc
#endif

private let blockDecoderLZOStatus: Int32 = rb_lzo_init()

/// Decodes blocks of one indexed member. One per thread (it keeps the
/// decoder's per-thread state).
public final class LzopSingleBlockDecoder {
    private let layout: LzopBlockLayout
    private let worker: DecoderBlockWorker
    private let pool = DecoderBufferPool(maxFree: 4)

    public init(layout: LzopBlockLayout) throws {
        guard blockDecoderLZOStatus == LZO_E_OK else {
            throw RescueError("liblzo2", "lzo_init", "failed (\(blockDecoderLZOStatus)): library mismatch")
        }
        self.layout = layout
        worker = DecoderBlockWorker(pool: pool)
    }

    /// Decodes the block whose bytes (header and payload, as in the file,
    /// starting at `offset`) are `raw`: its bytes in a buffer of its own
    /// (nil when the block is all zeros) and its length. Throws
    /// LzopFormatError for a corrupt block.
    public func decode(_ raw: UnsafeRawBufferPointer, offset: UInt64) throws -> (data: AlignedBuffer?, count: Int) {
        let head = Array(raw.prefix(LzopBlockLayout.maxHeaderLength))
        guard let (dlen, clen, length) = try LzopBlockIndex.parseBlockHeader(head, available: head.count, at: offset, layout: layout) else {
            throw LzopFormatError(.badBlockLength, at: offset, "an end marker where the index says a block starts: index and file do not match")
        }
        guard raw.count >= length + Int(clen) else {
            throw LzopFormatError(.truncated, at: offset + UInt64(raw.count), "unexpected end of file (in block data)")
        }
        func be32(_ i: Int) -> UInt32 {
            UInt32(head[i]) << 24 | UInt32(head[i + 1]) << 16 | UInt32(head[i + 2]) << 8 | UInt32(head[i + 3])
        }
        var field = 8
        func next() -> UInt32 { defer { field += 4 }; return be32(field) }
        let flags = layout.flags
        let dataAdler = flags.contains(.adler32Data) ? next() : nil
        let dataCRC = flags.contains(.crc32Data) ? next() : nil
        var compressedAdler: UInt32?, compressedCRC: UInt32?
        if clen < dlen {
            if flags.contains(.adler32Compressed) { compressedAdler = next() }
            if flags.contains(.crc32Compressed) { compressedCRC = next() }
        }
        // A buffer of its own for every block (the caller keeps it).
        let payload = AlignedBuffer(capacity: max(Int(clen), Int(dlen)))
        memcpy(payload.pointer, raw.baseAddress! + length, Int(clen))
        let block = DecoderBlock(sequence: 0, offset: offset, inputEnd: offset + UInt64(length) + UInt64(clen),
                                 dlen: Int(dlen), clen: Int(clen), dataAdler: dataAdler, dataCRC: dataCRC,
                                 compressedAdler: compressedAdler, compressedCRC: compressedCRC,
                                 filter: layout.filter, payload: payload, cost: 0)
        switch try worker.decode(block) {
        case .zeros(let n): return (nil, n)
        case .data(let buffer, let n): return (buffer, n)
        }
    }
}
