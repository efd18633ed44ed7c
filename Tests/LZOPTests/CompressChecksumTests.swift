import Foundation
import TestSupport
import XCTest
@testable import LZOP

/// The vectorised Adler-32 against zlib's, on every length and alignment
/// edge around its 16-byte chunks and 4096-chunk runs.
final class CompressChecksumTests: XCTestCase {
    func testVectorAdler32EqualsZlib() {
        let data = pseudoRandomBytes(300_000, seed: 21)
        var ff = Data(repeating: 0xFF, count: 262_144 + 33)
        ff.append(data.prefix(1000))
        for sample in [data, ff, Data(count: 70_000)] {
            sample.withUnsafeBytes { raw in
                for length in [0, 1, 15, 16, 17, 31, 65_535, 65_536, 65_537, 5552, 262_144, raw.count - 3] {
                    for offset in [0, 1, 3] where offset + length <= raw.count {
                        let p = raw.baseAddress! + offset
                        XCTAssertEqual(LzopChecksum.adler32Vector(p, length), LzopChecksum.zlibAdler32(UnsafeRawBufferPointer(start: p, count: length)),
                                       "length \(length) offset \(offset)")
                    }
                }
                XCTAssertEqual(LzopChecksum.adler32Vector(raw.baseAddress!, 100, initial: 0x1234_5678 % 65521),
                               UInt32(truncatingIfNeeded: zlibAdler(0x1234_5678 % 65521, raw.baseAddress!, 100)))
            }
        }
    }

    private func zlibAdler(_ seed: UInt32, _ p: UnsafeRawPointer, _ n: Int) -> UInt {
        // Continue zlib's adler32 from `seed` via our scalar wrapper's building block.
        var s1 = UInt(seed & 0xFFFF), s2 = UInt(seed >> 16)
        for i in 0..<n { s1 = (s1 + UInt(p.load(fromByteOffset: i, as: UInt8.self))) % 65521; s2 = (s2 + s1) % 65521 }
        return s2 << 16 | s1
    }
}
