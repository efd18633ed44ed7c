import XCTest
import Glibc
import TestSupport
@testable import RescueCore

/// Root-only: a real loop device reports its size through BLKGETSIZE64 and
/// accepts O_DIRECT reads.
final class LoopDeviceTests: XCTestCase {
    func testLoopDeviceSizeAndDirectRead() throws {
        let dir = TempDir()
        let image = dir.file("disk.img")
        let loop = try LoopDevice(image: image, size: 3 << 20)
        try shOK("printf 'ZZZZ' | dd of='\(loop.device)' bs=512 seek=1 conv=notrunc status=none")
        let dev = try OpenFile.open(loop.device, direct: true)
        XCTAssertEqual(try dev.kind(), .blockDevice)
        XCTAssertEqual(try dev.size(), 3 << 20)
        XCTAssertTrue(dev.isDirect)
        XCTAssertEqual(dev.sectorSize(), 512)
        let buffer = AlignedBuffer(capacity: 1 << 20)
        XCTAssertEqual(try dev.readFull(into: buffer.bytes), 1 << 20)
        XCTAssertEqual(buffer.bytes[512], UInt8(ascii: "Z"))
        XCTAssertEqual(buffer.bytes[12345], 0)
    }
}
