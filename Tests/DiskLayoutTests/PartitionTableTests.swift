import DiskLayout
import Foundation
import TestSupport
import XCTest

/// A file as a ByteRangeReader (tests only).
struct FileBytes: ByteRangeReader {
    let data: Data
    init(_ path: String) throws { data = try Data(contentsOf: URL(fileURLWithPath: path)) }
    var size: UInt64 { UInt64(data.count) }
    func read(at offset: UInt64, count: Int) throws -> [UInt8] {
        guard offset < size else { return [] }
        let end = min(Int(offset) + count, data.count)
        return [UInt8](data[Int(offset)..<end])
    }
}

/// Tables written by sfdisk and sgdisk onto sparse files, read back.
final class PartitionTableTests: XCTestCase {
    let tmp = TempDir("rescuebox-ptable")
    let mib: UInt64 = 1 << 20

    override func tearDown() { tmp.remove() }

    func image(_ name: String, mib count: UInt64) throws -> String {
        let path = tmp.file(name)
        try shOK("truncate -s \(count)M '\(path)'")
        return path
    }

    func sfdisk(_ path: String, _ script: String) throws {
        try shOK("printf '\(script)' | sfdisk -q '\(path)'")
    }

    func testMBRPrimariesAndExtendedChain() throws {
        let path = try image("mbr.img", mib: 64)
        try sfdisk(path, "label: dos\\nstart=2048, size=8M, type=83\\nsize=8M, type=7\\nsize=4M, type=c\\nsize=30M, type=5\\nsize=4M, type=82\\nsize=4M, type=83\\nsize=4M, type=83\\n")
        let t = try readPartitionTable(try FileBytes(path))
        XCTAssertEqual(t.scheme, .mbr)
        XCTAssertEqual(t.sectorSize, 512)
        XCTAssertEqual(t.partitions.map(\.number), [1, 2, 3, 5, 6, 7])
        XCTAssertEqual(t.partitions.map(\.type), [.mbr(0x83), .mbr(0x07), .mbr(0x0c), .mbr(0x82), .mbr(0x83), .mbr(0x83)])
        XCTAssertEqual(t.partitions[0].start, 1 * mib)
        XCTAssertEqual(t.partitions[0].length, 8 * mib)
        XCTAssertEqual(t.partitions[1].start, 9 * mib)
        XCTAssertTrue(t.partitions.allSatisfy { $0.name == "" })
        // What sfdisk itself says about the same table.
        let dump = try shOK("sfdisk -d '\(path)'")
        for p in t.partitions {
            let line = dump.split(separator: "\n").first { $0.hasPrefix("\(path)\(p.number) ") }
            XCTAssertNotNil(line, "sfdisk lists partition \(p.number)")
            XCTAssertNotNil(line!.range(of: "start= *\(p.start / 512),", options: .regularExpression), "start of \(p.number): \(line!)")
            XCTAssertNotNil(line!.range(of: "size= *\(p.length / 512),", options: .regularExpression), "size of \(p.number): \(line!)")
        }
        // The MBR and three EBRs, one sector each.
        XCTAssertEqual(t.metadataRanges.count, 4)
        XCTAssertEqual(t.metadataRanges.first, 0..<512)
        XCTAssertTrue(t.metadataRanges.allSatisfy { $0.count == 512 })
        XCTAssertEqual(t.notes, [])
    }

    func testMBRChainLoopStops() throws {
        let path = try image("loop.img", mib: 32)
        try sfdisk(path, "label: dos\\nstart=2048, size=4M, type=83\\nsize=20M, type=5\\nsize=2M, type=83\\nsize=2M, type=83\\nsize=4M, type=83\\nsize=4M, type=83\\n")
        var t = try readPartitionTable(try FileBytes(path))
        XCTAssertEqual(t.partitions.map(\.number), [1, 5, 6, 3, 4])
        // Point the second EBR's link back at the first EBR (relative 0 would
        // end the chain; use the first EBR's own offset inside the extended).
        let ebrs = t.metadataRanges.dropFirst().map(\.lowerBound)
        let ext = ebrs[0]
        var data = try Data(contentsOf: URL(fileURLWithPath: path))
        let link = Int(ebrs[1]) + 446 + 16
        data[link + 4] = 0x05
        // relative LBA of the first EBR (0) would end the chain: loop to the second itself.
        let rel = UInt32((ebrs[1] - ext) / 512)
        for k in 0..<4 { data[link + 8 + k] = UInt8(truncatingIfNeeded: rel >> (8 * k)) }
        data[link + 12] = 1
        try data.write(to: URL(fileURLWithPath: path))
        t = try readPartitionTable(try FileBytes(path))
        XCTAssertEqual(t.partitions.map(\.number), [1, 5, 6, 3, 4])
        XCTAssertTrue(t.notes.contains { $0.contains("loops") }, "\(t.notes)")
    }

    func testGPTWithNamesAndCRCs() throws {
        let path = try image("gpt.img", mib: 64)
        try shOK("sgdisk -o -n 1:2048:+8M -t 1:8300 -c 1:root -n 2:0:+16M -t 2:0700 -c 2:Daten -n 4:0:+4M -t 4:8200 '\(path)' >/dev/null")
        let t = try readPartitionTable(try FileBytes(path))
        XCTAssertEqual(t.scheme, .gpt)
        XCTAssertEqual(t.sectorSize, 512)
        XCTAssertEqual(t.partitions.map(\.number), [1, 2, 4])
        XCTAssertEqual(t.partitions.map(\.name), ["root", "Daten", ""])
        XCTAssertEqual(t.partitions.map(\.type), [.gpt("0fc63daf-8483-4772-8e79-3d69d8477de4"),
                                                   .gpt("ebd0a0a2-b9e5-4433-87c0-68b6b72699c7"),
                                                   .gpt("0657fd6d-a4ab-43c4-84e5-0933c84b4f4f")])
        XCTAssertEqual(t.partitions[0].start, 1 * mib)
        XCTAssertEqual(t.partitions[0].length, 8 * mib)
        XCTAssertEqual(t.partitions[1].start, 9 * mib)
        XCTAssertEqual(t.partitions[1].length, 16 * mib)
        XCTAssertEqual(t.notes, [])
        // Protective MBR, primary header + array (LBA 1-33), backup array + header (last 33 sectors).
        let size = 64 * mib
        XCTAssertEqual(t.metadataRanges, [0..<34 * 512, size - 33 * 512..<size])
    }

    func testCorruptPrimaryGPTUsesBackupAndSaysSo() throws {
        let path = try image("gptbad.img", mib: 32)
        try shOK("sgdisk -o -n 1:2048:+8M -t 1:8300 -n 2:0:0 -t 2:8300 '\(path)' >/dev/null")
        let good = try readPartitionTable(try FileBytes(path))
        // Flip a byte inside the primary header (its disk GUID).
        try shOK("printf '\\x42' | dd of='\(path)' bs=1 seek=\(512 + 60) conv=notrunc status=none")
        let t = try readPartitionTable(try FileBytes(path))
        XCTAssertEqual(t.scheme, .gpt)
        XCTAssertEqual(t.partitions, good.partitions)
        XCTAssertTrue(t.notes.contains("primary GPT header corrupt (CRC); using the backup header"), "\(t.notes)")
        XCTAssertTrue(t.metadataRanges.contains { $0.contains(512) }, "the primary's place is still table bytes")
    }

    func testCorruptPrimaryEntryArrayUsesBackup() throws {
        let path = try image("gptarr.img", mib: 32)
        try shOK("sgdisk -o -n 1:2048:+8M -t 1:8300 '\(path)' >/dev/null")
        try shOK("printf '\\x42' | dd of='\(path)' bs=1 seek=\(1024 + 20) conv=notrunc status=none")
        let t = try readPartitionTable(try FileBytes(path))
        XCTAssertEqual(t.scheme, .gpt)
        XCTAssertEqual(t.partitions.count, 1)
        XCTAssertTrue(t.notes.contains("primary GPT header corrupt (entry array CRC); using the backup header"), "\(t.notes)")
    }

    func testBothGPTHeadersCorruptIsUnpartitioned() throws {
        let path = try image("gptboth.img", mib: 32)
        try shOK("sgdisk -o -n 1:2048:+8M -t 1:8300 '\(path)' >/dev/null")
        try shOK("printf '\\x42' | dd of='\(path)' bs=1 seek=\(512 + 60) conv=notrunc status=none")
        try shOK("printf '\\x42' | dd of='\(path)' bs=1 seek=\(32 * mib - 512 + 60) conv=notrunc status=none")
        let t = try readPartitionTable(try FileBytes(path))
        XCTAssertEqual(t.scheme, .none)
        XCTAssertTrue(t.partitions.isEmpty)
        XCTAssertTrue(t.notes.contains { $0.contains("protective MBR but no valid GPT header") }, "\(t.notes)")
    }

    func testGPTWith4096ByteSectors() throws {
        let path = try image("gpt4k.img", mib: 64)
        let loop = try LoopDevice(image: path, size: 64 * mib)
        defer { loop.detach() }
        // A loop device with 4 KiB logical sectors, so sgdisk writes a 4Kn table.
        try shOK("losetup -d \(loop.device); losetup --sector-size 4096 \(loop.device) '\(path)'")
        try shOK("sgdisk -o -n 1:256:+8M -t 1:8300 -c 1:four '\(loop.device)' >/dev/null")
        let t = try readPartitionTable(try FileBytes(path))
        XCTAssertEqual(t.scheme, .gpt)
        XCTAssertEqual(t.sectorSize, 4096)
        XCTAssertEqual(t.partitions.map(\.start), [1 * mib])
        XCTAssertEqual(t.partitions.map(\.length), [8 * mib])
        XCTAssertEqual(t.partitions.map(\.name), ["four"])
    }

    func testNoTable() throws {
        let blank = try image("blank.img", mib: 8)
        XCTAssertEqual(try readPartitionTable(try FileBytes(blank)).scheme, .none)
        // A filesystem on the whole device: its boot sector ends in 55 AA too.
        let fat = tmp.file("fat.img")
        try shOK("mkfs.vfat -C '\(fat)' 8192 >/dev/null")
        let t = try readPartitionTable(try FileBytes(fat))
        XCTAssertEqual(t.scheme, .none)
        XCTAssertTrue(t.partitions.isEmpty)
        let ext4 = try image("ext4.img", mib: 16)
        try shOK("mkfs.ext4 -q -F '\(ext4)'")
        XCTAssertEqual(try readPartitionTable(try FileBytes(ext4)).scheme, .none)
    }

    func testStaleGPTUnderMBRUsesMBR() throws {
        let path = try image("stale.img", mib: 32)
        try shOK("sgdisk -o -n 1:2048:+8M -t 1:8300 '\(path)' >/dev/null")
        // Rewrite only the MBR as a DOS table (sfdisk would wipe the GPT; write sector 0 by hand).
        let other = try image("dos.img", mib: 32)
        try sfdisk(other, "label: dos\\nstart=4096, size=4M, type=83\\n")
        try shOK("dd if='\(other)' of='\(path)' bs=512 count=1 conv=notrunc status=none")
        let t = try readPartitionTable(try FileBytes(path))
        XCTAssertEqual(t.scheme, .mbr)
        XCTAssertEqual(t.partitions.map(\.start), [2 * mib])
        XCTAssertTrue(t.notes.contains { $0.contains("stale") }, "\(t.notes)")
    }
}
