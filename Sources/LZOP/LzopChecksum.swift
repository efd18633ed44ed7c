import CZlib

/// lzop's checksums, for the encoder and the decoder: zlib's adler32(1, ...)
/// and crc32(0, ...) give exactly lzop's lzo_adler32 and lzo_crc32 values.
enum LzopChecksum {
    /// Adler-32 with `seed` (1 starts a new one): the vector version below.
    @inline(__always)
    static func adler32(_ bytes: UnsafeRawBufferPointer, seed: UInt32 = 1) -> UInt32 {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return seed }
        return adler32Vector(base, bytes.count, initial: seed)
    }

    /// zlib's scalar Adler-32: the reference the vector version is tested against.
    static func zlibAdler32(_ bytes: UnsafeRawBufferPointer, seed: UInt32 = 1) -> UInt32 {
        chunked(bytes, seed) { CZlib.adler32($0, $1, $2) }
    }

    /// CRC-32 with `seed` (0 starts a new one), zlib's.
    @inline(__always)
    static func crc32(_ bytes: UnsafeRawBufferPointer, seed: UInt32 = 0) -> UInt32 {
        chunked(bytes, seed) { CZlib.crc32($0, $1, $2) }
    }

    /// zlib takes a uInt length; stay correct for any size.
    @inline(__always)
    private static func chunked(_ bytes: UnsafeRawBufferPointer, _ seed: UInt32,
                                _ update: (UInt, UnsafePointer<UInt8>, UInt32) -> UInt) -> UInt32 {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return seed }
        var value = UInt(seed)
        var p = base.assumingMemoryBound(to: UInt8.self)
        var left = bytes.count
        while left > 0 {
            let n = min(left, 1 << 30)
            value = update(value, p, UInt32(n))
            p += n
            left -= n
        }
        return UInt32(truncatingIfNeeded: value)
    }

    /// Adler-32 (zlib's value, seed `initial`), computed 16 bytes at a time
    /// in vector lanes: for a run of K 16-byte chunks, lane i keeps
    /// P[i] = sum of its bytes and Q[i] = sum over chunks k of (K - k) * byte,
    /// from which s1 += sum(P) and s2 += n*s1 + 16*sum(Q) - sum(i*P[i]).
    /// Runs of at most 4096 chunks keep every lane below 2^32; the modulo
    /// is taken once per run instead of every 5552 bytes. Several times
    /// faster than zlib's scalar loop, same result.
    static func adler32Vector(_ pointer: UnsafeRawPointer, _ count: Int, initial: UInt32 = 1) -> UInt32 {
        let base: UInt64 = 65521
        var s1 = UInt64(initial & 0xFFFF)
        var s2 = UInt64(initial >> 16)
        var p = pointer
        var left = count
        let weights = SIMD16<UInt32>(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
        while left >= 16 {
            let chunks = min(left / 16, 4096)
            var sums = SIMD16<UInt32>(repeating: 0)
            var weighted = SIMD16<UInt32>(repeating: 0)
            for _ in 0..<chunks {
                let bytes = p.loadUnaligned(as: SIMD16<UInt8>.self)
                sums &+= SIMD16<UInt32>(truncatingIfNeeded: bytes)
                weighted &+= sums
                p += 16
            }
            let n = UInt64(chunks * 16)
            let sumP = SIMD16<UInt64>(truncatingIfNeeded: sums).wrappedSum()
            let sumQ = SIMD16<UInt64>(truncatingIfNeeded: weighted).wrappedSum()
            let sumIP = SIMD16<UInt64>(truncatingIfNeeded: sums &* weights).wrappedSum()
            s2 = (s2 + n * s1 + 16 * sumQ - sumIP) % base
            s1 = (s1 + sumP) % base
            left -= chunks * 16
        }
        while left > 0 {
            s1 += UInt64(p.load(as: UInt8.self))
            s2 += s1
            p += 1
            left -= 1
        }
        s1 %= base
        s2 %= base
        return UInt32(s2 << 16 | s1)
    }
}

/// Big-endian stores into raw memory (the lzop container is big-endian).
@inline(__always)
func storeBigEndian32(_ value: UInt32, at pointer: UnsafeMutableRawPointer) {
    pointer.storeBytes(of: value.bigEndian, as: UInt32.self)
}
