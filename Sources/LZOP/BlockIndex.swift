// The block index of an lzop file: where every block starts, so a reader can
// reach uncompressed byte N by reading one block. The file beside an image,
// `NAME.lzo.index`, uses hadoop-lzo's `.lzo.index` layout: one big-endian
// u64 per block, the offset of its dlen field (nothing else: no header, no
// count). Supported: one member whose blocks all hold the same number of
// uncompressed bytes except the last (what lzop and ddz write); anything else
// is refused with a LzopIndexError saying why.
import RescueCore

#if canImport(Glibc)
import Glibc
#endif

/// Why a file cannot be indexed (or an index does not fit its file).
/// A block index's refusals are lzop format errors too (same offset and
/// message, same one-line form); the name says where they come from.
public typealias LzopIndexError = LzopFormatError

extension LzopFormatError {
    static let supported = "supported: one lzop member whose blocks all have the same uncompressed size except the last (as lzop and ddz write)"
}

/// Random access to the bytes of a compressed file (pread, or ranged FTP).
public protocol LzopRandomAccess: AnyObject {
    /// Total size in bytes.
    var size: UInt64 { get }
    /// Fills `buffer` from `offset` (short only at the end of the data).
    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int
}

/// The layout of one block header, from the member's flags.
public struct LzopBlockLayout: Sendable, Equatable {
    public var flags: LzopFormat.Flags
    public var filter: Int

    public init(header: LzopMemberHeader) {
        flags = header.has
        filter = header.has.contains(.filter) ? Int(header.filter) : 0
    }

    /// Bytes of the block header (dlen, clen, checksums) before the payload.
    public func headerLength(dlen: UInt32, clen: UInt32) -> Int {
        var n = 8
        if flags.contains(.adler32Data) { n += 4 }
        if flags.contains(.crc32Data) { n += 4 }
        if clen < dlen {
            if flags.contains(.adler32Compressed) { n += 4 }
            if flags.contains(.crc32Compressed) { n += 4 }
        }
        return n
    }

    /// The longest block header: read this many bytes to know a block's size.
    public static let maxHeaderLength = 24
}

/// An lzop file's index: its member header and every block's offset.
public struct LzopBlockIndex: Sendable, Equatable {
    public var header: LzopMemberHeader
    public var layout: LzopBlockLayout
    /// Offset of every block's dlen field (what the .index file holds).
    public var blockOffsets: [UInt64]
    /// Uncompressed bytes of every block but the last.
    public var blockSize: Int
    /// Uncompressed bytes of the last block.
    public var lastBlockSize: Int
    /// Offset of the end marker (the 4 zero bytes after the last block).
    public var endOffset: UInt64

    public var blockCount: Int { blockOffsets.count }
    public var uncompressedSize: UInt64 {
        blockOffsets.isEmpty ? 0 : UInt64(blockCount - 1) * UInt64(blockSize) + UInt64(lastBlockSize)
    }

    /// Compressed bytes of block `i`, header included.
    public func compressedLength(_ i: Int) -> UInt64 {
        (i + 1 < blockCount ? blockOffsets[i + 1] : endOffset) - blockOffsets[i]
    }

    /// hadoop-lzo's `.lzo.index` bytes.
    public func serialized() -> [UInt8] {
        LzopBlockIndex.serialize(blockOffsets)
    }

    public static func serialize(_ offsets: [UInt64]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(offsets.count * 8)
        for o in offsets { for s in stride(from: 56, through: 0, by: -8) { out.append(UInt8((o >> UInt64(s)) & 0xFF)) } }
        return out
    }

    /// Parses an `.lzo.index` file's bytes: ascending big-endian u64s.
    public static func parseOffsets(_ bytes: [UInt8]) throws -> [UInt64] {
        guard bytes.count % 8 == 0 else {
            throw LzopIndexError(.badIndexFile, at: UInt64(bytes.count),
                                 "index length \(bytes.count) is not a multiple of 8 (not a hadoop-lzo .lzo.index)")
        }
        var offsets: [UInt64] = []
        offsets.reserveCapacity(bytes.count / 8)
        var i = 0
        while i < bytes.count {
            var v: UInt64 = 0
            for k in 0..<8 { v = v << 8 | UInt64(bytes[i + k]) }
            if let last = offsets.last, v <= last {
                throw LzopIndexError(.badIndexFile, at: UInt64(i), "index entry \(i / 8) (\(v)) is not after the previous one (\(last))")
            }
            offsets.append(v)
            i += 8
        }
        return offsets
    }

    /// Reads the member header at offset 0 of `source`.
    public static func readHeader(_ source: LzopRandomAccess) throws -> (LzopMemberHeader, UInt64) {
        let input = DecoderInput(RandomAccessStream(source, at: 0), bufferSize: 64 << 10)
        let got = try input.fill(LzopFormat.magic.count)
        if got == 0 { throw LzopFormatError(.badMagic, at: 0, "not an lzop file (empty input)") }
        if let problem = DecoderHeaderReader.diagnoseMagic(Array(input.pending.prefix(LzopFormat.magic.count))) {
            throw LzopFormatError(.badMagic, at: 0, problem)
        }
        input.consume(LzopFormat.magic.count)
        let header = try DecoderHeaderReader.read(input, memberOffset: 0)
        return (header, input.offset)
    }

    /// Builds the index of `source` by walking the block headers with
    /// random reads (one small read per block; no payload is read and
    /// nothing is decompressed).
    public static func build(_ source: LzopRandomAccess) throws -> LzopBlockIndex {
        let (header, firstBlock) = try readHeader(source)
        var builder = LzopBlockIndexAccumulator(header: header)
        var offset = firstBlock
        var buffer = [UInt8](repeating: 0, count: LzopBlockLayout.maxHeaderLength)
        while true {
            let got = try buffer.withUnsafeMutableBytes { try source.read(at: offset, into: $0) }
            let parsed = try parseBlockHeader(buffer, available: got, at: offset, layout: builder.layout)
            guard let (dlen, clen, headerLength) = parsed else {
                builder.endOffset = offset
                try checkTail(source, after: offset + 4)
                return try builder.finish()
            }
            try builder.add(offset: offset, dlen: Int(dlen))
            offset += UInt64(headerLength) + UInt64(clen)
            if offset > source.size {
                throw LzopFormatError(.truncated, at: source.size, "unexpected end of file (in block data)")
            }
        }
    }

    /// Checks what follows a member's end marker: nothing or zero padding
    /// is fine; another member is refused (not supported), garbage too.
    static func checkTail(_ source: LzopRandomAccess, after offset: UInt64) throws {
        var at = offset
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        while at < source.size {
            let got = try chunk.withUnsafeMutableBytes { try source.read(at: at, into: $0) }
            if got == 0 { return }
            if at == offset, got >= LzopFormat.magic.count, Array(chunk[0..<LzopFormat.magic.count]) == LzopFormat.magic {
                throw LzopIndexError(.severalMembers, at: at,
                    "a second lzop member starts here (concatenated files): not supported; \(LzopIndexError.supported)")
            }
            if let k = chunk[0..<got].firstIndex(where: { $0 != 0 }) {
                throw LzopFormatError(.trailingGarbage, at: at + UInt64(k),
                    "trailing garbage after the member (the stream is damaged or not lzop)")
            }
            at += UInt64(got)
        }
    }

    /// Parses a block header from `bytes` (the first `available` valid):
    /// nil for the end marker, else (dlen, clen, header length). Checks as
    /// the decoder does: split file, size limit, clen range, truncation.
    public static func parseBlockHeader(_ bytes: [UInt8], available: Int, at offset: UInt64,
                                        layout: LzopBlockLayout) throws -> (UInt32, UInt32, Int)? {
        func be32(_ i: Int) -> UInt32 {
            UInt32(bytes[i]) << 24 | UInt32(bytes[i + 1]) << 16 | UInt32(bytes[i + 2]) << 8 | UInt32(bytes[i + 3])
        }
        guard available >= 4 else {
            throw LzopFormatError(.truncated, at: offset + UInt64(available), "unexpected end of file (in block header)")
        }
        let dlen = be32(0)
        if dlen == 0 { return nil }
        if dlen == 0xFFFF_FFFF {
            throw LzopFormatError(.splitFile, at: offset, "this is a split lzop file (not supported by lzop either)")
        }
        if dlen > LzopFormat.maxBlockSize {
            throw LzopFormatError(.blockTooLarge, at: offset, "block claims \(dlen) bytes, more than lzop's limit of 64 MiB: file corrupted")
        }
        guard available >= 8 else {
            throw LzopFormatError(.truncated, at: offset + UInt64(available), "unexpected end of file (in block header)")
        }
        let clen = be32(4)
        if clen == 0 || clen > dlen {
            throw LzopFormatError(.badBlockLength, at: offset,
                "block has \(clen) compressed bytes for \(dlen) bytes (must be 1 to \(dlen)): file corrupted")
        }
        let length = layout.headerLength(dlen: dlen, clen: clen)
        guard available >= length else {
            throw LzopFormatError(.truncated, at: offset + UInt64(available), "unexpected end of file (in block header)")
        }
        return (dlen, clen, length)
    }
}

/// Collects block offsets and checks the supported shape (same block size
/// but for the last).
struct LzopBlockIndexAccumulator {
    let header: LzopMemberHeader
    let layout: LzopBlockLayout
    var offsets: [UInt64] = []
    var blockSize = 0
    var lastSize = 0
    var endOffset: UInt64 = 0

    init(header: LzopMemberHeader) {
        self.header = header
        layout = LzopBlockLayout(header: header)
    }

    mutating func add(offset: UInt64, dlen: Int) throws {
        if offsets.isEmpty {
            blockSize = dlen
        } else if lastSize != blockSize {
            throw LzopIndexError(.varyingBlockSize, at: offsets.last!,
                "block \(offsets.count - 1) holds \(lastSize) bytes, block 0 holds \(blockSize): block sizes vary; \(LzopIndexError.supported)")
        } else if dlen > blockSize {
            throw LzopIndexError(.varyingBlockSize, at: offset,
                "block \(offsets.count) holds \(dlen) bytes, block 0 holds \(blockSize): block sizes vary; \(LzopIndexError.supported)")
        }
        offsets.append(offset)
        lastSize = dlen
    }

    func finish() throws -> LzopBlockIndex {
        LzopBlockIndex(header: header, layout: layout, blockOffsets: offsets,
                       blockSize: blockSize, lastBlockSize: lastSize, endOffset: endOffset)
    }
}

/// A sequential ByteSource over random access, from `offset` on.
final class RandomAccessStream: ByteSource {
    private let source: LzopRandomAccess
    private var offset: UInt64
    init(_ source: LzopRandomAccess, at offset: UInt64) {
        self.source = source
        self.offset = offset
    }
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = try source.read(at: offset, into: buffer)
        offset += UInt64(n)
        return n
    }
}

/// Builds the index of a stream as its bytes go by (a ByteSink wrapper:
/// every byte written to it is passed on to `next`, if any). For outputs
/// that cannot be read back: `ddz -o`, an FTP upload, `mount --scan`.
/// Call `finish()` after the last byte.
public final class LzopStreamIndexer: ByteSink {
    private let next: ByteSink?
    private var position: UInt64 = 0
    private var pending: [UInt8] = []
    private var accumulator: LzopBlockIndexAccumulator?
    /// Payload bytes still to pass before the next block header.
    private var skip: UInt64 = 0
    private var ended = false
    private var endOffset: UInt64 = 0
    private var tailStart: UInt64 = 0

    public init(passingTo next: ByteSink? = nil) { self.next = next }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        try next?.write(bytes)
        try consume(bytes)
    }

    /// Feeds bytes without passing them on.
    public func consume(_ bytes: UnsafeRawBufferPointer) throws {
        var i = 0
        while i < bytes.count {
            if ended {
                // After the end marker: only zero padding is accepted.
                let rest = UnsafeRawBufferPointer(rebasing: bytes[i...])
                if position == tailStart, rest.count > 0, rest[0] == LzopFormat.magic[0] {
                    throw LzopIndexError(.severalMembers, at: position,
                        "a second lzop member starts here (concatenated files): not supported; \(LzopIndexError.supported)")
                }
                if let k = rest.firstIndex(where: { $0 != 0 }) {
                    throw LzopFormatError(.trailingGarbage, at: position + UInt64(k),
                        "trailing garbage after the member (the stream is damaged or not lzop)")
                }
                position += UInt64(rest.count)
                return
            }
            if skip > 0 {
                let n = Int(min(skip, UInt64(bytes.count - i)))
                skip -= UInt64(n)
                i += n
                position += UInt64(n)
                continue
            }
            pending.append(bytes[i])
            i += 1
            position += 1
            try parsePending()
        }
    }

    private func parsePending() throws {
        let start = position - UInt64(pending.count)
        guard let acc = accumulator else {
            // The member header: parse once enough bytes are there.
            // Every shorter prefix failed as truncated, so a success
            // means `pending` is exactly the header.
            if pending.count < 13 { return }
            do {
                let header: LzopMemberHeader = try pending.withUnsafeBytes { raw in
                    let input = DecoderInput(LzopMemorySource(raw), bufferSize: max(raw.count, 64))
                    let got = try input.fill(LzopFormat.magic.count)
                    if let problem = DecoderHeaderReader.diagnoseMagic(Array(input.pending.prefix(min(got, LzopFormat.magic.count)))) {
                        throw LzopFormatError(.badMagic, at: 0, problem)
                    }
                    input.consume(LzopFormat.magic.count)
                    return try DecoderHeaderReader.read(input, memberOffset: 0)
                }
                accumulator = LzopBlockIndexAccumulator(header: header)
                pending.removeAll(keepingCapacity: true)
            } catch let error as LzopFormatError where error.kind == .truncated {
                if pending.count > 1 << 20 { throw error }
            }
            return
        }
        if pending.count < 4 { return }
        if pending.count == 4, pending == [0, 0, 0, 0] {
            ended = true
            endOffset = start
            tailStart = position
            pending.removeAll()
            return
        }
        if pending.count < 8 { return }
        do {
            guard let (dlen, clen, length) = try LzopBlockIndex.parseBlockHeader(pending, available: pending.count,
                                                                                 at: start, layout: acc.layout) else { return }
            guard pending.count == length else { return }
            try accumulator!.add(offset: start, dlen: Int(dlen))
            skip = UInt64(clen)
            pending.removeAll(keepingCapacity: true)
        } catch let error as LzopFormatError where error.kind == .truncated {
            return
        }
    }

    /// The index, once the whole stream went by.
    public func finish() throws -> LzopBlockIndex {
        guard var acc = accumulator, ended else {
            throw LzopFormatError(.truncated, at: position, "unexpected end of file (before the end marker)")
        }
        acc.endOffset = endOffset
        return try acc.finish()
    }
}

/// A local file as LzopRandomAccess (pread).
public final class LzopFileAccess: LzopRandomAccess {
    public let file: OpenFile
    public let size: UInt64
    public init(_ file: OpenFile) throws {
        self.file = file
        size = try file.size() ?? 0
    }
    public func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        try file.readFull(into: buffer, offset: offset)
    }
}

/// Writes `index` to `path` (0644, replacing an older one), through a
/// temporary name so no half-written index is ever left.
public func writeLzopIndexFile(_ index: LzopBlockIndex, to path: String) throws {
    let temp = path + ".tmp\(getpid())"
    let file = try OpenFile.open(temp, .writeOnly, options: [.create, .truncate],
                                 permissions: [.ownerReadWrite, .groupRead, .otherRead])
    do {
        try file.writeAll(index.serialized())
        try file.close()
        guard rename(temp, path) == 0 else { throw RescueError(path, "rename", errno: errno) }
    } catch {
        _ = unlink(temp)
        throw error
    }
}

/// PATH.index (or `indexPath`) for the lzop file PATH, from its block
/// headers (pread). Errors are RescueErrors naming PATH.
public func writeLzopIndexFile(for path: String, indexPath: String? = nil) throws {
    let file = try OpenFile.open(path, .readOnly)
    let index: LzopBlockIndex
    do {
        index = try LzopBlockIndex.build(try LzopFileAccess(file))
    } catch let error as LzopFormatError {
        throw error.rescueError(object: path)
    }
    try writeLzopIndexFile(index, to: indexPath ?? path + ".index")
}

extension LzopBlockIndex {
    /// The `.lzo.index` bytes from the frame offsets a compressor reports
    /// (ParallelCompressor.BlockRecord.outputOffset, in block order): what
    /// an upload that cannot read its output back stores beside the image.
    public static func serialize(frameOffsets: [UInt64]) -> [UInt8] { serialize(frameOffsets) }
}

extension LzopBlockIndex {
    /// An index from stored offsets (an `.lzo.index` file), checked
    /// against the file with a few small reads: the header, the first and
    /// the last block header, the end marker. Throws LzopIndexError
    /// (.indexMismatch) when they do not fit.
    public static func load(offsets: [UInt64], source: LzopRandomAccess) throws -> LzopBlockIndex {
        // Two reads in all (each may be a network transfer): the first
        // 64 KiB (header, first block header) and the file's tail from the
        // last block on (it ends at the end of the file, not cut short).
        let head = try LzopBytesAccess(reading: source, at: 0, count: 64 << 10)
        let (header, firstBlock) = try readHeader(head)
        let layout = LzopBlockLayout(header: header)
        guard let first = offsets.first else {
            throw LzopIndexError(.noBlocks, at: firstBlock, "the index lists no blocks")
        }
        guard first == firstBlock else {
            throw LzopIndexError(.indexMismatch, at: first,
                "the index's first block is at \(first), the file's at \(firstBlock): the index belongs to another file")
        }
        let lastOffset = offsets[offsets.count - 1]
        guard lastOffset < source.size else {
            throw LzopIndexError(.indexMismatch, at: lastOffset, "the index names a block past the end of the file (\(source.size) bytes)")
        }
        let tailCount = Int(min(source.size - lastOffset, UInt64(LzopFormat.blockSize) + 64))
        let tail = try LzopBytesAccess(reading: source, at: lastOffset, count: tailCount)
        func blockHeader(_ access: LzopRandomAccess, _ at: UInt64, _ shown: UInt64) throws -> (UInt32, UInt32, Int) {
            var buffer = [UInt8](repeating: 0, count: LzopBlockLayout.maxHeaderLength)
            let got = try buffer.withUnsafeMutableBytes { try access.read(at: at, into: $0) }
            guard let parsed = try parseBlockHeader(buffer, available: got, at: shown, layout: layout) else {
                throw LzopIndexError(.indexMismatch, at: shown, "the index names a block here but the file has its end marker: the index belongs to another file")
            }
            return parsed
        }
        let (dlen0, _, _) = try blockHeader(head, first, first)
        let (dlenN, clenN, lengthN) = try blockHeader(tail, 0, lastOffset)
        let end = lastOffset + UInt64(lengthN) + UInt64(clenN)
        var marker = [UInt8](repeating: 0xFF, count: 4)
        let got = try marker.withUnsafeMutableBytes { try tail.read(at: end - lastOffset, into: $0) }
        guard got == 4, marker == [0, 0, 0, 0], dlenN <= dlen0 else {
            throw LzopIndexError(.indexMismatch, at: end,
                "no end marker after the index's last block: the index is stale or belongs to another file")
        }
        return LzopBlockIndex(header: header, layout: layout, blockOffsets: offsets, blockSize: Int(dlen0),
                              lastBlockSize: Int(dlenN), endOffset: end)
    }
}

/// Bytes read once from another source, served from memory (offsets
/// relative to where they were read).
final class LzopBytesAccess: LzopRandomAccess {
    private var bytes: [UInt8]
    let size: UInt64
    init(reading source: LzopRandomAccess, at offset: UInt64, count: Int) throws {
        bytes = [UInt8](repeating: 0, count: count)
        let got = try bytes.withUnsafeMutableBytes { try source.read(at: offset, into: $0) }
        bytes.removeLast(count - got)
        size = UInt64(got)
    }
    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard offset < size else { return 0 }
        let n = min(buffer.count, Int(size - offset))
        bytes.withUnsafeBytes { _ = memcpy(buffer.baseAddress!, $0.baseAddress! + Int(offset), n) }
        return n
    }
}
