// The lzop decoder, part 1: errors, buffered input and the member header.
// Behaviour follows lzop 1.04's read_header()/check_magic()/p_magic() (see
// docs/lzop-format.md); where lzop asserts or aborts, we reject.
import CZlib
import RescueCore

#if canImport(Glibc)
import Glibc
#endif

/// A problem with the lzop data itself (not with reading or writing it).
/// `offset` is the byte offset in the input stream where the bad structure
/// starts (a member's magic, a header field, a block's length field, or the
/// end of input for truncation).
public struct LzopFormatError: Error, CustomStringConvertible, Equatable, Sendable {
    public enum Kind: String, Sendable {
        case badMagic, headerCorrupted, headerChecksum, versionTooNew
        case unknownMethod, unknownLevel, reservedFlags, unknownFilter, inconsistentChecksumFlags
        case splitFile, blockTooLarge, badBlockLength, truncated
        case compressedChecksum, dataViolation, dataChecksum, trailingGarbage
        // What a block index (BlockIndex.swift) refuses.
        case severalMembers, varyingBlockSize, noBlocks, badIndexFile, indexMismatch
    }

    public let kind: Kind
    public let offset: UInt64
    public let message: String

    public init(_ kind: Kind, at offset: UInt64, _ message: String) {
        self.kind = kind
        self.offset = offset
        self.message = message
    }

    public var description: String { "offset \(offset): \(message)" }

    /// The one-line error of the applets: `OBJECT: offset N: MESSAGE`.
    public func rescueError(object: String) -> RescueError {
        RescueError(object, "offset \(offset)", message)
    }
}

/// One member's header, as read from the stream.
public struct LzopMemberHeader: Sendable, Equatable {
    /// Offset of the member's magic in the input stream.
    public var offset: UInt64 = 0
    public var version: UInt16 = 0
    public var libVersion: UInt16 = 0
    /// 0x0900 for files older than 0x0940 (the field is absent there).
    public var versionNeeded: UInt16 = 0x0900
    public var method: UInt8 = 0
    /// 0 when absent (old layout): the method's default level.
    public var level: UInt8 = 0
    public var flags: UInt32 = 0
    /// Delta filter width 1...16, 0 for none.
    public var filter: UInt32 = 0
    public var mode: UInt32 = 0
    public var mtime: UInt64 = 0
    public var name: String = ""
    /// Length of the extra field that was skipped (0 if none).
    public var extraFieldLength: UInt32 = 0

    public var has: LzopFormat.Flags { LzopFormat.Flags(rawValue: flags) }
}

/// Reads a ByteSource through a buffer and counts the bytes consumed, so
/// every error can name its offset.
final class DecoderInput {
    private let source: ByteSource
    private let storage: AlignedBuffer
    private var start = 0
    private var end = 0
    private(set) var atEnd = false
    /// Bytes consumed so far: the offset of the next byte.
    private(set) var offset: UInt64 = 0

    init(_ source: ByteSource, bufferSize: Int = 1 << 20) {
        self.source = source
        storage = AlignedBuffer(capacity: bufferSize)
    }

    var available: Int { end - start }
    var pending: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: storage.pointer + start, count: end - start)
    }

    /// Makes at least `n` bytes (n <= buffer size) available unless the
    /// stream ends first; returns how many are available.
    @discardableResult
    func fill(_ n: Int) throws -> Int {
        if end - start >= n || atEnd { return end - start }
        if start > 0 {
            if end > start { memmove(storage.pointer, storage.pointer + start, end - start) }
            end -= start
            start = 0
        }
        while end < n && !atEnd {
            let got = try source.read(into: UnsafeMutableRawBufferPointer(start: storage.pointer + end, count: storage.capacity - end))
            if got == 0 { atEnd = true } else { end += got }
        }
        return end - start
    }

    func consume(_ n: Int) {
        precondition(n <= end - start)
        start += n
        offset += UInt64(n)
    }

    /// A truncation error at the current end of the data.
    func truncated(_ what: String) -> LzopFormatError {
        LzopFormatError(.truncated, at: offset + UInt64(available), "unexpected end of file (in \(what))")
    }

    func readByte(_ what: String) throws -> UInt8 {
        guard try fill(1) >= 1 else { throw truncated(what) }
        let b = pending[0]
        consume(1)
        return b
    }

    func readBE16(_ what: String) throws -> UInt16 {
        guard try fill(2) >= 2 else { throw truncated(what) }
        let p = pending
        let v = UInt16(p[0]) << 8 | UInt16(p[1])
        consume(2)
        return v
    }

    func readBE32(_ what: String) throws -> UInt32 {
        guard try fill(4) >= 4 else { throw truncated(what) }
        let p = pending
        let v = UInt32(p[0]) << 24 | UInt32(p[1]) << 16 | UInt32(p[2]) << 8 | UInt32(p[3])
        consume(4)
        return v
    }

    /// Copies exactly `destination.count` bytes into `destination`.
    func read(into destination: UnsafeMutableRawBufferPointer, _ what: String) throws {
        var done = 0
        while done < destination.count {
            if available == 0 {
                guard try fill(min(storage.capacity, destination.count - done)) > 0 else { throw truncated(what) }
            }
            let n = min(available, destination.count - done)
            memcpy(destination.baseAddress! + done, storage.pointer + start, n)
            consume(n)
            done += n
        }
    }

    /// Skips `count` bytes, feeding them to `body` (e.g. a checksum).
    func skip(_ count: UInt64, _ what: String, _ body: (UnsafeRawBufferPointer) -> Void) throws {
        var left = count
        while left > 0 {
            if available == 0 {
                guard try fill(Int(min(UInt64(storage.capacity), left))) > 0 else { throw truncated(what) }
            }
            let n = Int(min(UInt64(available), left))
            body(UnsafeRawBufferPointer(start: storage.pointer + start, count: n))
            consume(n)
            left -= UInt64(n)
        }
    }

    /// Consumes the rest of the input; true when every byte is zero.
    /// Returns false at the first non-zero byte (left unconsumed).
    func consumeZerosToEnd() throws -> Bool {
        while true {
            if available == 0, try fill(storage.capacity) == 0 { return true }
            let p = pending
            var i = 0
            while i < p.count && p[i] == 0 { i += 1 }
            consume(i)
            if i < p.count { return false }
        }
    }
}

enum DecoderHeaderReader {
    /// What lzop 1.04 can extract (its own version); newer "version needed" is refused.
    static let newestReadable: UInt16 = 0x1040

    /// lzop's check_magic(): nil when `m` is the magic, else why not.
    static func diagnoseMagic(_ m: [UInt8]) -> String? {
        let magic = LzopFormat.magic
        if m == magic { return nil }
        let notLzop = "not an lzop file (bad magic)"
        guard m.count == magic.count else { return notLzop }
        if Array(m[1...3]) != Array(magic[1...3]) || m[4] != magic[4] { return notLzop }
        let tail = Array(m[5...])
        func starts(_ p: [UInt8]) -> Bool { tail.starts(with: p) }
        let conversion: String?
        if starts([0x0A, 0x0A, 0x1A]) { conversion = "Mac -> UNIX" }
        else if starts([0x0A, 0x0A]) || starts([0x0A, 0x1A]) { conversion = "DOS -> UNIX: CR LF became LF" }
        else if starts([0x0D, 0x0A, 0x0A]) { conversion = "DOS EOF: the 1A byte was removed" }
        else if starts([0x0D, 0x0A, 0x1A, 0x0D]) || starts([0x0D, 0x0D, 0x0A, 0x1A]) { conversion = "UNIX -> DOS: LF became CR LF" }
        else if starts([0x0D, 0x0D, 0x1A]) { conversion = "UNIX -> Mac: LF became CR" }
        else if starts([0x0D, 0x1A]) { conversion = "DOS -> Mac: CR LF became CR" }
        else if tail != Array(magic[5...]) { conversion = "text mode" }
        else { conversion = nil }
        if let conversion {
            return "bad magic: the file looks mangled by a line-end conversion (\(conversion)); "
                + "transfer it in binary mode (FTP: TYPE I)"
        }
        if m[0] == magic[0] & 0x7F {
            return "bad magic: the high bit of byte 0 is cleared (sent through a 7-bit channel?)"
        }
        return m[0] != magic[0] ? "bad magic: the file looks mangled by a text-mode transfer" : "header corrupted (bad magic)"
    }

    /// Reads one member header after its magic (already consumed) at
    /// `memberOffset`, validating it the way lzop 1.04 does, in this order:
    /// version, version needed, header checksum, reserved flags, method and
    /// level, filter, checksum flags, extra field (with its own checksum).
    static func read(_ input: DecoderInput, memberOffset: UInt64) throws -> LzopMemberHeader {
        var h = LzopMemberHeader()
        h.offset = memberOffset
        var bytes: [UInt8] = []
        bytes.reserveCapacity(64)
        let what = "header"
        func u8() throws -> UInt8 { let v = try input.readByte(what); bytes.append(v); return v }
        func u16() throws -> UInt16 {
            let v = try input.readBE16(what)
            bytes.append(UInt8(v >> 8)); bytes.append(UInt8(v & 0xFF))
            return v
        }
        func u32() throws -> UInt32 {
            let v = try input.readBE32(what)
            for s in [24, 16, 8, 0] { bytes.append(UInt8((v >> UInt32(s)) & 0xFF)) }
            return v
        }
        let headerStart = input.offset
        h.version = try u16()
        if h.version < 0x0900 {
            throw LzopFormatError(.headerCorrupted, at: headerStart, "header corrupted (version 0x\(decoderHex(h.version)) is older than any lzop)")
        }
        h.libVersion = try u16()
        if h.version >= 0x0940 {
            let at = input.offset
            h.versionNeeded = try u16()
            if h.versionNeeded > newestReadable {
                throw LzopFormatError(.versionTooNew, at: at,
                    "needs lzop version 0x\(decoderHex(h.versionNeeded)) to extract; this reader handles lzop 1.04 (0x1040) format")
            }
            if h.versionNeeded < 0x0900 {
                throw LzopFormatError(.headerCorrupted, at: at, "header corrupted (version needed 0x\(decoderHex(h.versionNeeded)))")
            }
        }
        h.method = try u8()
        if h.version >= 0x0940 { h.level = try u8() }
        h.flags = try u32()
        if h.has.contains(.filter) { h.filter = try u32() }
        h.mode = try u32()
        let mtimeLow = try u32()
        var mtimeHigh: UInt32 = 0
        if h.version >= 0x0940 { mtimeHigh = try u32() }
        h.mtime = UInt64(mtimeHigh) << 32 | UInt64(mtimeLow)
        let nameLength = Int(try u8())
        if nameLength > 0 {
            var name = [UInt8](repeating: 0, count: nameLength)
            try name.withUnsafeMutableBytes { try input.read(into: $0, what) }
            bytes.append(contentsOf: name)
            h.name = String(decoding: name, as: UTF8.self)
        }
        let useCRC = h.has.contains(.headerCRC32)
        let expected = bytes.withUnsafeBytes { useCRC ? LzopChecksum.crc32($0) : LzopChecksum.adler32($0) }
        let checksumAt = input.offset
        let stored = try input.readBE32(what)
        if stored != expected {
            throw LzopFormatError(.headerChecksum, at: checksumAt,
                "header checksum error (\(useCRC ? "CRC-32" : "Adler-32") 0x\(decoderHex(stored)) stored, 0x\(decoderHex(expected)) computed): header corrupted")
        }
        let reserved = h.flags & LzopFormat.Flags.reservedMask
        if reserved != 0 {
            throw LzopFormatError(.reservedFlags, at: headerStart,
                "unknown header flags 0x\(decoderHex(reserved)) (reserved bits set): made by a newer lzop, or corrupted")
        }
        switch h.method {
        case LzopFormat.Method.lzo1x_1.rawValue, LzopFormat.Method.lzo1x_1_15.rawValue, LzopFormat.Method.lzo1x_999.rawValue:
            break
        default:
            throw LzopFormatError(.unknownMethod, at: headerStart, "unknown compression method \(h.method) (lzop knows 1, 2, 3)")
        }
        if h.level > 9 {
            throw LzopFormatError(.unknownLevel, at: headerStart, "unknown compression level \(h.level) (lzop knows 1 to 9)")
        }
        if h.has.contains(.filter) && h.filter > 16 {
            throw LzopFormatError(.unknownFilter, at: headerStart, "unknown filter \(h.filter) (lzop knows 1 to 16)")
        }
        // lzop 1.04 dies on an assertion for these; they cannot be written by it.
        if h.has.contains(.adler32Compressed) && !h.has.contains(.adler32Data) {
            throw LzopFormatError(.inconsistentChecksumFlags, at: headerStart,
                "header corrupted (compressed-data Adler-32 flag without the data Adler-32 flag)")
        }
        if h.has.contains(.crc32Compressed) && !h.has.contains(.crc32Data) {
            throw LzopFormatError(.inconsistentChecksumFlags, at: headerStart,
                "header corrupted (compressed-data CRC-32 flag without the data CRC-32 flag)")
        }
        if h.has.contains(.extraField) {
            // The extra field's checksum covers its length and its bytes.
            let at = input.offset
            var adler: UInt32 = 1
            var crc: UInt32 = 0
            let length = try input.readBE32("extra field")
            withUnsafeBytes(of: length.bigEndian) { adler = LzopChecksum.adler32($0, seed: adler); crc = LzopChecksum.crc32($0, seed: crc) }
            try input.skip(UInt64(length), "extra field") { part in
                adler = LzopChecksum.adler32(part, seed: adler)
                crc = LzopChecksum.crc32(part, seed: crc)
            }
            let stored = try input.readBE32("extra field")
            if stored != (useCRC ? crc : adler) {
                throw LzopFormatError(.headerCorrupted, at: at, "header corrupted (extra field checksum error)")
            }
            h.extraFieldLength = length
        }
        return h
    }
}

@inline(__always) func decoderHex<T: BinaryInteger>(_ v: T) -> String {
    let s = String(v, radix: 16, uppercase: true)
    let width = MemoryLayout<T>.size * 2
    return s.count < width ? String(repeating: "0", count: width - s.count) + s : s
}
