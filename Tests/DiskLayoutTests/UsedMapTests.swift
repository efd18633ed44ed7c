import DiskLayout
import Foundation
import TestSupport
import XCTest

/// The map builder on filesystem images made by the real mkfs tools
/// (files, no devices): what is proven free, and every reason to read in full.
final class UsedMapTests: XCTestCase {
    let tmp = TempDir("rescuebox-usedmap")

    override func tearDown() { tmp.remove() }

    func map(_ path: String) throws -> UsedMap { try buildUsedMap(path: path, name: "img") }

    func patch(_ path: String, at offset: UInt64, _ bytes: [UInt8]) throws {
        let h = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        try h.seek(toOffset: offset)
        h.write(Data(bytes))
        try h.close()
    }

    func testFat16MapsFreeClustersAndKeepsMetadata() throws {
        let img = tmp.file("fat16.img")
        try shOK("mkfs.vfat -F 16 -C '\(img)' 32768 >/dev/null")
        let m = try map(img)
        XCTAssertEqual(m.plans.count, 1)
        XCTAssertNil(m.plans[0].fullReason, m.plans[0].line)
        XCTAssertEqual(m.plans[0].filesystem, "vfat")
        // Boot sector, FATs and root directory (reserved 4 + 2 FATs + 32 root sectors at least) are read.
        XCTAssertEqual(m.ranges.first?.lowerBound, 0)
        XCTAssertGreaterThan(m.ranges.first!.upperBound, 4 * 512)
        XCTAssertLessThan(m.readBytes, 1 << 20, "an empty 32 MiB FAT16 reads only its metadata")
        XCTAssertTrue(m.plans[0].line.hasPrefix("img vfat 34 MB, "), m.plans[0].line)
    }

    func testFatCopiesThatDifferAreReadInFull() throws {
        let img = tmp.file("fatdiff.img")
        try shOK("mkfs.vfat -F 16 -C '\(img)' 16384 >/dev/null")
        let bs = try FileHandle(forReadingFrom: URL(fileURLWithPath: img)).readData(ofLength: 512)
        let reserved = UInt64(bs[14]) | UInt64(bs[15]) << 8
        let fatSectors = UInt64(bs[22]) | UInt64(bs[23]) << 8
        // Mark cluster 10 used in the second FAT only.
        try patch(img, at: (reserved + fatSectors) * 512 + 20, [0xFF, 0xFF])
        let m = try map(img)
        XCTAssertEqual(m.plans[0].fullReason, "FAT16: the FAT copies differ")
        XCTAssertEqual(m.ranges, [0..<m.size])
    }

    func testFatMarkedDirtyIsReadInFull() throws {
        let img = tmp.file("fatdirty.img")
        try shOK("mkfs.vfat -F 32 -s 1 -C '\(img)' 66000 >/dev/null 2>&1")
        try patch(img, at: 65, [0x01])   // the state byte Linux sets while mounted
        let m = try map(img)
        XCTAssertEqual(m.plans[0].fullReason, "FAT32 marked dirty (not cleanly unmounted)")
    }

    func testExfatDirtyIsReadInFull() throws {
        let img = tmp.file("exfat.img")
        try shOK("truncate -s 32M '\(img)' && mkfs.exfat '\(img)' >/dev/null")
        XCTAssertNil(try map(img).plans[0].fullReason)
        XCTAssertEqual(try map(img).plans[0].filesystem, "exfat")
        // VolumeFlags is outside the boot checksum: set VolumeDirty.
        try patch(img, at: 106, [0x02, 0x00])
        XCTAssertEqual(try map(img).plans[0].fullReason, "marked dirty (not cleanly unmounted)")
        // A changed byte inside the checksummed region.
        try patch(img, at: 106, [0x00, 0x00])
        try patch(img, at: 120, [0x5A])
        XCTAssertEqual(try map(img).plans[0].fullReason, "boot region checksum mismatch")
    }

    func testSwapHeaderOnlyAndHibernationReadInFull() throws {
        let img = tmp.file("swap.img")
        try shOK("truncate -s 16M '\(img)' && mkswap '\(img)' >/dev/null")
        var m = try map(img)
        XCTAssertEqual(m.plans[0].filesystem, "swap")
        XCTAssertEqual(m.ranges, [0..<4096])
        try patch(img, at: 4096 - 10, Array("S1SUSPEND\0".utf8))
        m = try map(img)
        XCTAssertEqual(m.plans[0].fullReason, "it holds a hibernation image")
        XCTAssertEqual(m.ranges, [0..<m.size])
    }

    func testExt4SizeLargerThanPartitionIsReadInFull() throws {
        let img = tmp.file("ext4.img")
        try shOK("truncate -s 64M '\(img)' && mkfs.ext4 -q -F '\(img)' && truncate -s 48M '\(img)'")
        let m = try map(img)
        XCTAssertNotNil(m.plans[0].fullReason)
        XCTAssertEqual(m.ranges, [0..<m.size])
    }

    func testExt4BigallocIsReadInFull() throws {
        let img = tmp.file("bigalloc.img")
        try shOK("truncate -s 64M '\(img)' && mkfs.ext4 -q -F -O bigalloc -C 65536 '\(img)' 2>/dev/null")
        XCTAssertEqual(try map(img).plans[0].fullReason, "bigalloc is not supported")
    }

    func testExt4CleanIsMappedAndTailIsRead() throws {
        let img = tmp.file("ext4tail.img")
        // The filesystem is 32 MiB of a 40 MiB "partition": its tail is not proven free.
        try shOK("truncate -s 40M '\(img)' && mkfs.ext4 -q -F '\(img)' 32M")
        let m = try map(img)
        XCTAssertNil(m.plans[0].fullReason, m.plans[0].line)
        XCTAssertEqual(m.ranges.last, (32 << 20)..<(40 << 20))
        XCTAssertLessThan(m.readBytes, 16 << 20)
    }

    func testUnknownAndAmbiguousAreReadInFull() throws {
        let img = tmp.file("zero.img")
        try shOK("truncate -s 8M '\(img)'")
        XCTAssertEqual(try map(img).plans[0].fullReason, "no filesystem recognised")
        // ext4 with a stale swap signature left in its first page.
        let both = tmp.file("both.img")
        try shOK("truncate -s 16M '\(both)' && mkfs.ext4 -q -F '\(both)'")
        try patch(both, at: 4096 - 10, Array("SWAPSPACE2".utf8))
        XCTAssertEqual(try map(both).plans[0].fullReason, "ambiguous: ext and swap signatures")
    }

    func testDomainFileFormat() throws {
        let img = tmp.file("swapdom.img")
        try shOK("truncate -s 1M '\(img)' && mkswap '\(img)' >/dev/null 2>&1")
        let text = try map(img).ddrescueDomain
        XCTAssertTrue(text.hasSuffix("0x00000000  0x00001000  +\n0x00001000  0x000FF000  ?\n"), text)
    }
}
