import CZlib

/// The encoder's checksums: zlib's adler32(1, ...) and crc32(0, ...) give
/// exactly lzop's lzo_adler32 and lzo_crc32 values.
enum EncoderChecksum {
    @inline(__always)
    static func adler32(_ pointer: UnsafeRawPointer, _ count: Int) -> UInt32 {
        var value: UInt = CZlib.adler32(0, nil, 0)  // 1
        var p = pointer.assumingMemoryBound(to: UInt8.self)
        var left = count
        // zlib takes a uInt length; blocks are small, but stay correct for any size.
        while left > 0 {
            let n = min(left, 1 << 30)
            value = CZlib.adler32(value, p, UInt32(n))
            p += n
            left -= n
        }
        return UInt32(truncatingIfNeeded: value)
    }

    @inline(__always)
    static func crc32(_ pointer: UnsafeRawPointer, _ count: Int) -> UInt32 {
        var value: UInt = CZlib.crc32(0, nil, 0)  // 0
        var p = pointer.assumingMemoryBound(to: UInt8.self)
        var left = count
        while left > 0 {
            let n = min(left, 1 << 30)
            value = CZlib.crc32(value, p, UInt32(n))
            p += n
            left -= n
        }
        return UInt32(truncatingIfNeeded: value)
    }
}

/// Big-endian stores into raw memory (the lzop container is big-endian).
@inline(__always)
func storeBigEndian32(_ value: UInt32, at pointer: UnsafeMutableRawPointer) {
    pointer.storeBytes(of: value.bigEndian, as: UInt32.self)
}
