import Foundation
import Glibc
import TestSupport
import XCTest

/// `backup --used` to a real vsftpd on 127.0.0.1: the server's session is
/// killed mid-transfer; the resumed image must be byte-identical to an
/// unbroken `ddz -1 --used` of the same disk, and restore the used data.
final class UsedBackupTests: XCTestCase {
    let pattern = "RESCUEBOX-USED-BACKUP-DELETED"

    /// 32 MiB MBR disk: ext4 (random files and a deleted pattern) in 1-17 MiB,
    /// unpartitioned space after it (read in full).
    func makeDisk(_ image: String) throws -> (start: UInt64, length: UInt64) {
        try shOK("truncate -s 32M '\(image)' && printf 'label: dos\\nstart=2048, size=16M, type=83\\n' | sfdisk -q '\(image)'")
        let start: UInt64 = 1 << 20, length: UInt64 = 16 << 20
        let dev = try shOK("losetup -f --show -o \(start) --sizelimit \(length) '\(image)'")
        defer { _ = try? sh("losetup -d \(dev)") }
        let mp = image + ".mnt"
        try shOK("mkdir -p '\(mp)' && mkfs.ext4 -q -F \(dev) && mount \(dev) '\(mp)'")
        defer { _ = try? sh("umount '\(mp)'") }
        try shOK("head -c 6M /dev/urandom > '\(mp)/random' && cp /usr/bin/ls '\(mp)/' && "
                 + "yes '\(pattern)' | head -c 4M > '\(mp)/gone' && sync && rm '\(mp)/gone' && sync")
        // Something to read in the unpartitioned tail (where the source stalls).
        try shOK("head -c 1M /dev/urandom | dd of='\(image)' bs=1M seek=24 conv=notrunc status=none")
        return (start, length)
    }

    func environment(_ ftp: VsftpdServer) -> [String: String] {
        var env = ProcessInfo.processInfo.environment
        env["FTP_PASSWORD"] = ftp.password
        return env
    }

    func headerLength(_ data: Data) -> Int {
        let b = [UInt8](data.prefix(64))
        let flags = UInt32(b[17]) << 24 | UInt32(b[18]) << 16 | UInt32(b[19]) << 8 | UInt32(b[20])
        let filter = flags & 0x800 != 0 ? 4 : 0
        return 34 + filter + Int(b[33 + filter]) + 4
    }

    func testBackupUsedResumesByteExactAfterTheSessionIsKilled() throws {
        try requireRoot("loop devices and FUSE")
        let bin = try rescueboxBinary()
        let ftp = try VsftpdServer.start()
        defer { ftp.stop() }
        let dir = TempDir("rescuebox-usedbackup")
        let image = dir.file("disk.img")
        let part = try makeDisk(image)
        let before = try shOK("sha256sum < '\(image)'")
        // Reads of the tail stall, after the ext4 data has been sent.
        let faulty = try FaultyDisk(image: image, mountPoint: dir.file("fuse"), stall: (24 << 20, (24 << 20) + 1, 4))
        defer { faulty.stop() }

        // The upload begins, the source stalls in the tail, the session is killed.
        let result = try backupWithKilledSession(bin, ["--used", "--retries", "3", faulty.disk, "\(ftp.urlBase)/disk.lzo"],
                                                 ftp: ftp, faulty: faulty, part: ftp.home + "/disk.lzo.part",
                                                 stallAt: "24 MiB", environment: environment(ftp))
        let stderr = result.stderr
        XCTAssertEqual(result.status, 0, stderr)
        XCTAssertTrue(stderr.contains("resuming at byte"), stderr)
        XCTAssertTrue(stderr.contains("disk.img1 ext4 17 MB, "), stderr)
        XCTAssertTrue(stderr.contains("used: used blocks only"), stderr)
        XCTAssertTrue(stderr.contains("--used: "), stderr)
        faulty.stop()
        XCTAssertEqual(try shOK("sha256sum < '\(image)'"), before, "the source is unchanged")

        // An unbroken run of the same map: ddz -1 --used.
        try shOK("'\(bin)' ddz -1 --used '\(image)' > '\(dir.file("ref.lzo"))' 2>/dev/null")
        let stored = try Data(contentsOf: URL(fileURLWithPath: ftp.home + "/disk.lzo"))
        let reference = try Data(contentsOf: URL(fileURLWithPath: dir.file("ref.lzo")))
        XCTAssertTrue(stored.suffix(from: headerLength(stored)) == reference.suffix(from: headerLength(reference)),
                      "the resumed image differs from an unbroken run")
        // Restored: the filesystem checks clean, the tail is intact, the pattern is gone.
        let restored = dir.file("restored.img")
        try shOK("lzop -dc '\(ftp.home)/disk.lzo' > '\(restored)'")
        try shOK("cmp -i \(part.start + part.length) '\(image)' '\(restored)'")
        XCTAssertEqual(try sh("grep -c -a '\(pattern)' '\(restored)'").stdoutText.trimmingCharacters(in: .whitespacesAndNewlines), "0")
        let dev = try shOK("losetup -f --show -r -o \(part.start) --sizelimit \(part.length) '\(restored)'")
        defer { _ = try? sh("losetup -d \(dev)") }
        let fsck = try sh("e2fsck -fn \(dev) 2>&1")
        XCTAssertEqual(fsck.status, 0, fsck.stdoutText)
        let mp = dir.file("check")
        try shOK("mkdir -p '\(mp)' && mount -o ro \(dev) '\(mp)'")
        defer { _ = try? sh("umount '\(mp)'") }
        try shOK("cmp '\(mp)/ls' /usr/bin/ls")
    }

    /// A bad sector in free space is never read (no --noerror needed); one in
    /// a used range is zeroed and reported with --noerror, as without --used.
    func testBadSectorInFreeSpaceIsNeverRead() throws {
        try requireRoot("loop devices and FUSE")
        let bin = try rescueboxBinary()
        let dir = TempDir("rescuebox-usedbad")
        let image = dir.file("disk.img")
        let part = try makeDisk(image)
        // A free block in the middle of ext4's last free extent (dumpe2fs's view, not ours).
        let free = try shOK("losetup -f --show -r -o \(part.start) --sizelimit \(part.length) '\(image)'")
        defer { _ = try? sh("losetup -d \(free)") }
        let extents = try shOK("dumpe2fs \(free) 2>/dev/null | sed -n 's/^  Free blocks: //p' | tr ',' '\\n' | grep - | tail -1")
        let bounds = extents.trimmingCharacters(in: .whitespaces).split(separator: "-").compactMap { UInt64($0) }
        XCTAssertEqual(bounds.count, 2, extents)
        let blockSize = UInt64(try shOK("dumpe2fs -h \(free) 2>/dev/null | sed -n 's/^Block size: *//p'"))!
        let badFree = part.start + (bounds[0] + bounds[1]) / 2 * blockSize
        let badUsed: UInt64 = (24 << 20) + 4096   // in the unpartitioned tail: always read
        let reference = dir.file("ref.lzo")
        try shOK("'\(bin)' ddz -1 --used '\(image)' -o '\(reference)' 2>/dev/null")

        let faulty = try FaultyDisk(image: image, mountPoint: dir.file("fuse"), bad: "\(badFree)-\(badFree + 512)")
        let out = dir.file("free.lzo")
        let r = try runProgram(bin, ["ddz", "-1", "--used", faulty.disk, "-o", out])
        XCTAssertEqual(r.status, 0, r.stderr)
        try shOK("lzop -dc '\(out)' > '\(dir.file("a"))' && lzop -dc '\(reference)' > '\(dir.file("b"))' && cmp '\(dir.file("a"))' '\(dir.file("b"))'")
        let plain = try runProgram(bin, ["ddz", "-1", faulty.disk, "-o", dir.file("plain.lzo")])
        XCTAssertEqual(plain.status, 1, "without --used the bad sector is read: \(plain.stderr)")
        faulty.stop()

        let both = try FaultyDisk(image: image, mountPoint: dir.file("fuse2"),
                                  bad: "\(badFree)-\(badFree + 512),\(badUsed)-\(badUsed + 512)")
        defer { both.stop() }
        let out2 = dir.file("both.lzo"), map = dir.file("bad.map")
        let n = try runProgram(bin, ["ddz", "-1", "--used", "--noerror", "--badmap", map, both.disk, "-o", out2])
        XCTAssertEqual(n.status, 1, n.stderr)
        XCTAssertTrue(n.stderr.contains("unreadable: bytes \(badUsed)-\(badUsed + 511) (512 bytes) written as zeros"), n.stderr)
        XCTAssertFalse(n.stderr.contains("bytes \(badFree)-"), n.stderr)
        // The reference with exactly that sector zeroed.
        try shOK("dd if=/dev/zero of='\(dir.file("b"))' bs=512 seek=\(badUsed / 512) count=1 conv=notrunc status=none")
        try shOK("lzop -dc '\(out2)' > '\(dir.file("c"))' && cmp '\(dir.file("c"))' '\(dir.file("b"))'")
        XCTAssertTrue(try String(contentsOfFile: map, encoding: .utf8).contains("0x\(String(badUsed, radix: 16, uppercase: true).leftPad(8))  0x00000200  -"))
    }
}

extension String {
    func leftPad(_ n: Int) -> String { String(repeating: "0", count: max(0, n - count)) + self }
}
