import Foundation
import XCTest
import Glibc
import TestSupport
import RescueCore
@testable import ZeroFill

final class FilesystemKindTests: XCTestCase {
    func testKnownMagics() {
        XCTAssertEqual(FilesystemKind.identify(0xEF53).name, "ext2/3/4")
        XCTAssertEqual(FilesystemKind.identify(0xEF53).verdict, .fill)
        XCTAssertTrue(FilesystemKind.identify(0x9123_683E).wantsNoCOW)
        XCTAssertTrue(FilesystemKind.identify(0x4D44).isFAT)
        for pointless: UInt64 in [0x0102_1994, 0x8584_58F6, 0x9FA0, 0x6265_6572, 0x7371_7368] {
            guard case .pointless = FilesystemKind.identify(pointless).verdict else {
                return XCTFail("0x\(String(pointless, radix: 16)) should be refused")
            }
        }
        guard case .compressing(let advice) = FilesystemKind.identify(0x2FC1_2FC1).verdict else {
            return XCTFail("zfs should be compressing")
        }
        XCTAssertTrue(advice.contains("zpool trim"), advice)
        XCTAssertTrue(advice.contains("zpool initialize"), advice)
    }

    func testUnknownMagicIsFilledAndNamed() {
        let kind = FilesystemKind.identify(0x1234_5678)
        XCTAssertEqual(kind.verdict, .fill)
        XCTAssertEqual(kind.name, "filesystem type 0x12345678")
        // statfs returns f_type sign-extended on some ABIs.
        XCTAssertEqual(FilesystemKind.identify(UInt64(bitPattern: Int64(Int32(bitPattern: 0x9123_683E)))).name, "btrfs")
    }
}

final class MountInfoTests: XCTestCase {
    let sample = """
    22 1 253:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
    35 22 0:31 / /mnt/my\\040disk rw,nosuid - vfat /dev/sdb1 rw,fmask=0022
    40 22 0:45 / /merged rw,relatime - overlay overlay rw,lowerdir=/lower,upperdir=/run/up\\,per,workdir=/run/work
    41 22 0:46 / /b rw,relatime - btrfs /dev/loop3 rw,compress=zstd:3,space_cache=v2
    """

    func testParseAndFindByDevice() throws {
        let root = try XCTUnwrap(MountEntry.find(device: 253 << 8, in: sample))
        XCTAssertEqual(root.mountPoint, "/")
        XCTAssertEqual(root.fsType, "ext4")
        let vfat = try XCTUnwrap(MountEntry.find(device: 31, in: sample))
        XCTAssertEqual(vfat.mountPoint, "/mnt/my disk")
        XCTAssertEqual(vfat.superOptions, ["rw", "fmask=0022"])
        let overlay = try XCTUnwrap(MountEntry.find(device: 45, in: sample))
        XCTAssertEqual(overlay.superOption("upperdir"), "/run/up,per")
        XCTAssertEqual(overlay.superOption("lowerdir"), "/lower")
        let btrfs = try XCTUnwrap(MountEntry.find(device: 46, in: sample))
        XCTAssertTrue(btrfs.hasOption(prefix: "compress"))
        XCTAssertFalse(btrfs.hasOption(prefix: "nodatacow"))
        XCTAssertNil(MountEntry.find(device: 99, in: sample))
        XCTAssertNil(MountEntry.parse("garbage line"))
    }

    func testOwnMountInfoFindsRoot() throws {
        let text = try XCTUnwrap(MountEntry.readMountInfo())
        var st = stat()
        XCTAssertEqual(stat("/", &st), 0)
        XCTAssertNotNil(MountEntry.find(device: UInt64(st.st_dev), in: text))
    }
}

/// The library on the build machine's own disk: a small capped fill leaves
/// no file behind and gives the space back. No root needed.
final class ZeroFillerTests: XCTestCase {
    func testRefusesNonDirectory() throws {
        let dir = TempDir()
        _ = FileManager.default.createFile(atPath: dir.file("plain"), contents: Data([1]))
        XCTAssertThrowsError(try ZeroFiller(directory: dir.file("plain"), options: ZeroFillOptions())) { error in
            XCTAssertTrue("\(error)".contains("not a directory"), "\(error)")
        }
        XCTAssertThrowsError(try ZeroFiller(directory: dir.file("missing"), options: ZeroFillOptions())) { error in
            XCTAssertTrue("\(error)".contains("No such file"), "\(error)")
        }
    }

    func testRefusesProcAndTmpfs() throws {
        XCTAssertThrowsError(try ZeroFiller(directory: "/proc", options: ZeroFillOptions())) { error in
            XCTAssertTrue("\(error)".contains("proc is a virtual filesystem"), "\(error)")
        }
        if isTmpfs("/dev/shm") {
            XCTAssertThrowsError(try ZeroFiller(directory: "/dev/shm", options: ZeroFillOptions())) { error in
                XCTAssertTrue("\(error)".contains("tmpfs keeps its files in memory"), "\(error)")
            }
        }
    }

    func testCappedFillLeavesNothing() throws {
        let dir = TempDir()
        var options = ZeroFillOptions()
        options.maximum = 24 << 20 + 1000   // not a block multiple: rounded down
        options.chunkSize = 1 << 20
        let filler = try ZeroFiller(directory: dir.path, options: options)
        var notes: [String] = []
        filler.note = { notes.append($0) }
        let report = try filler.run()
        XCTAssertEqual(report.bytesZeroed, 24 << 20)
        XCTAssertEqual(report.stopReason, .maximumReached)
        XCTAssertEqual(report.files, 1)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), [])
        XCTAssertGreaterThan(report.freeBefore, 0)
    }

    func testRateLimitedFillTakesItsTime() throws {
        // 4 MiB at 16 MiB/s: the writes are paced, not a timing assertion on the disk.
        let dir = TempDir()
        var options = ZeroFillOptions()
        options.maximum = 4 << 20
        options.rate = 16 << 20
        let report = try ZeroFiller(directory: dir.path, options: options).run()
        XCTAssertEqual(report.bytesZeroed, 4 << 20)
        XCTAssertGreaterThanOrEqual(report.seconds, 0.2)
    }
}

/// The refusal rules on made-up surveys (no such filesystem needed).
final class RefusalRuleTests: XCTestCase {
    func survey(_ magic: UInt64, readOnly: Bool = false, mount: MountEntry? = nil) -> FilesystemSurvey {
        FilesystemSurvey(kind: .identify(magic), fragmentSize: 4096, blockSize: 4096,
                         freeBytes: 1 << 30, availableBytes: 1 << 30, readOnly: readOnly, mount: mount)
    }

    func testZfsNeedsForceAndGetsAdvice() throws {
        XCTAssertThrowsError(try ZeroFiller.check(survey(0x2FC1_2FC1), directory: "/tank", force: false)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.hasPrefix("/tank: refused: ZFS"), text)
            XCTAssertTrue(text.contains("zpool trim") && text.contains("zpool initialize") && text.contains("--force"), text)
        }
        XCTAssertNoThrow(try ZeroFiller.check(survey(0x2FC1_2FC1), directory: "/tank", force: true))
    }

    func testReadOnlyAndPointlessEvenWithForce() {
        XCTAssertThrowsError(try ZeroFiller.check(survey(0xEF53, readOnly: true), directory: "/mnt", force: true)) { error in
            XCTAssertEqual("\(error)", "/mnt: refused: the filesystem is mounted read-only")
        }
        XCTAssertThrowsError(try ZeroFiller.check(survey(0x0102_1994), directory: "/run", force: true))
        XCTAssertNoThrow(try ZeroFiller.check(survey(0xEF53), directory: "/", force: false))
        XCTAssertNoThrow(try ZeroFiller.check(survey(0x9123_683E), directory: "/", force: false))
    }

    func testOverlayJudgedByItsUpperLayer() throws {
        guard isTmpfs("/dev/shm") else { throw XCTSkip("/dev/shm is not tmpfs here") }
        let onTmpfs = MountEntry.parse("40 22 0:45 / /merged rw - overlay overlay rw,lowerdir=/l,upperdir=/dev/shm,workdir=/w")
        XCTAssertThrowsError(try ZeroFiller.check(survey(0x794C_7630, mount: onTmpfs), directory: "/merged", force: true)) { error in
            XCTAssertTrue("\(error)".contains("upper layer (/dev/shm) is on tmpfs"), "\(error)")
        }
        let onDisk = MountEntry.parse("40 22 0:45 / /merged rw - overlay overlay rw,lowerdir=/l,upperdir=/var/tmp,workdir=/w")
        if !isTmpfs("/var/tmp") {
            XCTAssertNoThrow(try ZeroFiller.check(survey(0x794C_7630, mount: onDisk), directory: "/merged", force: false))
        }
    }
}

private func isTmpfs(_ path: String) -> Bool {
    (try? sh("stat -f -c %T '\(path)'").stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)) == "tmpfs"
}
