import CLZO
import RescueCore
#if canImport(Glibc)
import Glibc
#endif

/// lzo_init() once per process (checks the library's ABI against the headers).
let lzoInitialized: Bool = rb_lzo_init() == 0 /* LZO_E_OK */

/// Compresses single lzop blocks exactly as lzop 1.04 does: the same LZO
/// function and parameters per level, lzo1x_optimize after LZO1X-999, a block
/// that does not shrink stored raw, and the same frame (dlen, clen, data
/// checksums, data). One instance per thread: it owns its LZO work memory.
public final class LzopBlockCompressor {
    public let options: LzopCompressionOptions
    private let workMemory: UnsafeMutableRawPointer
    private let method: LzopFormat.Method
    private let adler: Bool
    private let crc: Bool

    /// Bytes of frame header before the block data: dlen, clen and one u32
    /// per data checksum (12 with the default Adler-32, 8 with -F).
    public let frameHeaderSize: Int

    /// lzop's bound on LZO output for `n` input bytes (incompressible data grows a little).
    public static func maxCompressedSize(_ n: Int) -> Int { n + n / 16 + 64 + 3 }

    /// Room an output buffer needs before the compressed data for the frame header.
    public static let frameHeaderRoom = 16

    public init(options: LzopCompressionOptions) {
        precondition(lzoInitialized, "lzo_init() failed: liblzo2 does not match its headers")
        self.options = options
        method = options.method
        let size: Int
        switch method {
        case .lzo1x_1: size = Int(rb_lzo1x_1_mem())
        case .lzo1x_1_15: size = Int(rb_lzo1x_1_15_mem())
        case .lzo1x_999: size = Int(rb_lzo1x_999_mem())
        }
        var raw: UnsafeMutableRawPointer?
        guard posix_memalign(&raw, 4096, max(size, 4096)) == 0, let raw else {
            fatalError("out of memory allocating LZO work memory")
        }
        workMemory = raw
        adler = options.writesDataChecksum && !options.crc32
        crc = options.writesDataChecksum && options.crc32
        frameHeaderSize = 8 + (adler ? 4 : 0) + (crc ? 4 : 0)
    }

    deinit { free(workMemory) }

    /// The encoded frame of one block: `start` points at dlen, `count` bytes long.
    public struct Frame {
        public var start: UnsafeRawPointer
        public var count: Int
        /// The block went in raw (clen == dlen).
        public var stored: Bool
        public var buffer: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: start, count: count) }
    }

    /// Compresses `length` bytes at `input` (1...LzopFormat.blockSize).
    ///
    /// `output` must have `frameHeaderRoom + maxCompressedSize(length)` bytes;
    /// the compressed data goes to `output + frameHeaderRoom`. When the block
    /// is stored raw, the frame is built in place right before `input`, which
    /// therefore needs `frameHeaderRoom` writable bytes in front of it — so no
    /// block is ever copied. The frame is contiguous either way. For LZO1X-999
    /// the input is rewritten by lzo1x_optimize with identical bytes, as in lzop.
    public func compress(input: UnsafeMutableRawPointer, length: Int, output: UnsafeMutableRawPointer) -> Frame {
        precondition(length > 0 && length <= LzopFormat.blockSize)
        var dataAdler: UInt32 = 0, dataCRC: UInt32 = 0
        if adler { dataAdler = LzopChecksum.adler32Vector(input, length) }
        if crc { dataCRC = LzopChecksum.crc32(UnsafeRawBufferPointer(start: input, count: length)) }

        let src = input.assumingMemoryBound(to: UInt8.self)
        let dst = (output + Self.frameHeaderRoom).assumingMemoryBound(to: UInt8.self)
        var outLength: lzo_uint = 0
        let rc: Int32
        switch method {
        case .lzo1x_1:
            rc = lzo1x_1_compress(src, lzo_uint(length), dst, &outLength, workMemory)
        case .lzo1x_1_15:
            rc = lzo1x_1_15_compress(src, lzo_uint(length), dst, &outLength, workMemory)
        case .lzo1x_999:
            rc = lzo1x_999_compress_level(src, lzo_uint(length), dst, &outLength, workMemory,
                                          nil, 0, nil, Int32(options.level))
        }
        // LZO cannot fail on valid buffers; a failure here is a broken library.
        precondition(rc == 0 && Int(outLength) <= Self.maxCompressedSize(length), "LZO compression failed (\(rc))")
        if method == .lzo1x_999 && Int(outLength) < length {
            var newLength = lzo_uint(length)
            let orc = lzo1x_optimize(dst, outLength, src, &newLength, nil)
            precondition(orc == 0 && Int(newLength) == length, "lzo1x_optimize failed (\(orc))")
        }

        let stored = Int(outLength) >= length
        let dataStart: UnsafeMutableRawPointer = stored ? input : output + Self.frameHeaderRoom
        let clen = stored ? length : Int(outLength)
        let start = dataStart - frameHeaderSize
        storeBigEndian32(UInt32(length), at: start)
        storeBigEndian32(UInt32(clen), at: start + 4)
        var p = start + 8
        if adler { storeBigEndian32(dataAdler, at: p); p += 4 }
        if crc { storeBigEndian32(dataCRC, at: p); p += 4 }
        return Frame(start: UnsafeRawPointer(start), count: frameHeaderSize + clen, stored: stored)
    }
}
