import Foundation
import XCTest
import TestSupport

/// zerofill on real filesystems in loop images (root only; skips otherwise):
/// the zeroed image must compress (lzop -1) like one cleaned the classic way
/// (`dd if=/dev/zero of=F; sync; rm F`), leave no file and give the space back.
final class ZeroFillFilesystemTests: XCTestCase {
    // MARK: - filesystems

    func testExt4MatchesDdAndLeavesNothing() throws {
        try compareWithDd(fs: .ext4)
    }

    func testNtfs3gHiddenFillFilesMatchDd() throws {
        let r = try compareWithDd(fs: .ntfs)
        XCTAssertTrue(r.stderr.contains("hidden unlinked files"), r.stderr)  // no O_TMPFILE on FUSE
    }

    func testFat32MatchesDd() throws {
        // The kernel's vfat: no O_TMPFILE, 4 GiB file limit. (Debian's fusefat
        // is no substitute: it reports 0 free and fails a full disk with EPERM.)
        try compareWithDd(fs: .vfat)
    }

    func testExt4FileSizeLimitRollsOverToNewFiles() throws {
        // RLIMIT_FSIZE = 16 MiB - 1, unaligned like FAT32's 4 GiB - 1: the last
        // O_DIRECT write of each file is cut short (EINVAL, finished buffered),
        // then EFBIG (SIGXFSZ ignored) and another file.
        let r = try compareWithDd(fs: .ext4, wrapper: ["prlimit", "--fsize=\((16 << 20) - 1)", "--"])
        let files = r.stderr.components(separatedBy: " in ").last.flatMap { Int($0.prefix { $0.isNumber }) } ?? 0
        XCTAssertGreaterThanOrEqual(files, 5, r.stderr)
        XCTAssertTrue(r.stderr.contains("reached the file size limit"), r.stderr)
    }

    func testBtrfsCompressedRandomDataIsGone() throws {
        try requireRoot("loop-mounted btrfs")
        try requireFilesystem(.btrfs)
        let dir = TempDir("zerofill-btrfs")
        let image = dir.file("btrfs.img")
        try makeImage(.btrfs, image, size: 256 << 20)
        let mp = dir.file("mnt")
        // nodiscard: the loop device must not punch the deleted data away by itself.
        let m = try Mounted(image: image, fs: .btrfs, at: mp, options: "compress=zstd,nodiscard")
        // Incompressible blocks that each carry a marker to search for in the image.
        let marker = "RESCUEBOX-ZEROFILL-MARKER"
        for i in 0..<4 {
            var data = Data()
            for block in 0..<(16 << 8) {
                data.append(Data(marker.utf8))
                data.append(pseudoRandomBytes(4096 - marker.utf8.count, seed: UInt64(i * 100_000 + block + 1)))
            }
            try data.write(to: URL(fileURLWithPath: "\(mp)/random\(i)"))
        }
        try shOK("sync && rm '\(mp)'/random* && sync")
        XCTAssertEqual(try sh("grep -q -a '\(marker)' '\(image)'").status, 0, "the deleted data should still be on disk")
        let r = try runProgram(try rescueboxBinary(), ["zerofill", "-v", mp])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("zeroed"), r.stderr)
        try m.unmount()
        XCTAssertEqual(try sh("grep -q -a '\(marker)' '\(image)'").status, 1, "deleted random data survived zerofill")
        let again = try Mounted(image: image, fs: .btrfs, at: mp, options: "compress=zstd,nodiscard")
        XCTAssertEqual(try listing(mp), [])
        try again.unmount()
    }

    // MARK: - interruption and refusals

    func testInterruptedFillLeavesNothingAndFreesTheSpace() throws {
        try interruptMidFill(fs: .ext4, signal: SIGINT, name: "SIGINT")
    }

    func testTerminatedNtfsFillLeavesNoHiddenFile() throws {
        // The hidden-name path (no O_TMPFILE on FUSE), killed with SIGTERM.
        try interruptMidFill(fs: .ntfs, signal: SIGTERM, name: "SIGTERM")
    }

    func interruptMidFill(fs: FS, signal: Int32, name: String) throws {
        try requireRoot("loop-mounted \(fs.rawValue)")
        try requireFilesystem(fs)
        let dir = TempDir("zerofill-int")
        let image = dir.file("img")
        try makeImage(fs, image, size: 128 << 20)
        let mp = dir.file("mnt")
        let m = try Mounted(image: image, fs: fs, at: mp)
        defer { try? m.unmount() }
        let baseline = try listing(mp)
        let freeBefore = try freeBytes(mp)
        // --rate keeps the fill slow enough to interrupt it mid-way for sure.
        let process = try BackgroundProcess.start(try rescueboxBinary(), ["zerofill", "--rate", "16M", mp])
        var sawFill = false
        try waitFor("the fill to take 16 MiB of \(mp)", timeout: 120) {
            if try freeBytes(mp) + (16 << 20) <= freeBefore { sawFill = true; return true }
            return !process.isRunning
        }
        XCTAssertTrue(sawFill, "the fill never started")
        XCTAssertTrue(process.isRunning, "the fill ended before it could be interrupted")
        process.signal(signal)
        let result = try process.wait(timeout: 120)
        let stderr = result.stderr
        XCTAssertEqual(result.status, 128 + signal, stderr)
        XCTAssertTrue(stderr.contains("interrupted by \(name)"), stderr)
        // The space is back at once, before any unmount.
        XCTAssertGreaterThanOrEqual(try freeBytes(mp) + (1 << 20), freeBefore)
        XCTAssertEqual(try listing(mp), baseline)
        try m.unmount()
        if fs == .ext4 { try shOK("e2fsck -fn '\(image)'") }
        let again = try Mounted(image: image, fs: fs, at: mp)
        XCTAssertEqual(try listing(mp), baseline, "a fill file remained on disk")
        try again.unmount()
    }

    func testReadOnlyMountFailsCleanly() throws {
        try requireRoot("loop-mounted ext4")
        try requireFilesystem(.ext4)
        let dir = TempDir("zerofill-ro")
        let image = dir.file("ext4.img")
        try makeImage(.ext4, image, size: 64 << 20)
        let mp = dir.file("mnt")
        let m = try Mounted(image: image, fs: .ext4, at: mp, options: "ro")
        defer { try? m.unmount() }
        let r = try runProgram(try rescueboxBinary(), ["zerofill", mp])
        XCTAssertEqual(r.status, 1)
        XCTAssertEqual(r.stderr, "rescuebox zerofill: \(mp): refused: the filesystem is mounted read-only\n")
    }

    func testTmpfsAndOverlayOnTmpfsRefused() throws {
        try requireRoot("mounting tmpfs and overlay")
        let dir = TempDir("zerofill-tmpfs")
        let t = dir.file("t")
        try shOK("mkdir '\(t)' && mount -t tmpfs -o size=16m tmpfs '\(t)'")
        defer { _ = try? sh("umount '\(t)/merged' 2>/dev/null; umount '\(t)'") }
        let r = try runProgram(try rescueboxBinary(), ["zerofill", t])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("refused: tmpfs keeps its files in memory"), r.stderr)
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)

        try requireKernelFilesystem("overlay")
        try shOK("cd '\(t)' && mkdir lower upper work merged && mount -t overlay overlay -o lowerdir=\(t)/lower,upperdir=\(t)/upper,workdir=\(t)/work \(t)/merged")
        let o = try runProgram(try rescueboxBinary(), ["zerofill", "\(t)/merged"])
        XCTAssertEqual(o.status, 1)
        XCTAssertTrue(o.stderr.contains("overlay whose upper layer"), o.stderr)
        XCTAssertTrue(o.stderr.contains("is on tmpfs"), o.stderr)
    }

    func testNotADirectoryAndHelp() throws {
        let dir = TempDir()
        _ = FileManager.default.createFile(atPath: dir.file("f"), contents: Data([1]))
        let r = try runProgram(try rescueboxBinary(), ["zerofill", dir.file("f")])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.hasPrefix("rescuebox zerofill: \(dir.file("f")): refused: not a directory"), r.stderr)
        let bad = try runProgram(try rescueboxBinary(), ["zerofill", "--max", "lots", dir.path])
        XCTAssertEqual(bad.status, 2)
        let help = try runProgram(try rescueboxBinary(), ["zerofill", "--help"])
        XCTAssertEqual(help.status, 0)
        for word in ["EXAMPLES", "--reserve", "--max", "--trim", "--force", "--progress", "O_TMPFILE"] {
            XCTAssertTrue(help.stdoutText.contains(word), word)
        }
    }

    func testMaxAndReserveAndTrim() throws {
        try requireRoot("loop-mounted ext4")
        try requireFilesystem(.ext4)
        let dir = TempDir("zerofill-opts")
        let image = dir.file("ext4.img")
        try makeImage(.ext4, image, size: 128 << 20)
        let mp = dir.file("mnt")
        let m = try Mounted(image: image, fs: .ext4, at: mp)
        defer { try? m.unmount() }
        let bin = try rescueboxBinary()
        let capped = try runProgram(bin, ["zerofill", "--max", "10M", mp])
        XCTAssertEqual(capped.status, 0, capped.stderr)
        XCTAssertTrue(capped.stderr.hasPrefix("10485760 bytes (10 MB, 10 MiB) zeroed"), capped.stderr)
        XCTAssertTrue(capped.stderr.contains("--max reached"), capped.stderr)

        let free = try freeBytes(mp)
        let reserve = UInt64(100 << 20)
        let reserved = try runProgram(bin, ["zerofill", "--reserve", "100M", "--trim", mp])
        XCTAssertEqual(reserved.status, 0, reserved.stderr)
        XCTAssertTrue(reserved.stderr.contains("--reserve reached"), reserved.stderr)
        XCTAssertTrue(reserved.stderr.contains("trimmed"), reserved.stderr)
        let summary = reserved.stderr.split(separator: "\n").first { $0.contains(" zeroed, ") } ?? ""
        let zeroed = UInt64(summary.prefix { $0.isNumber }) ?? 0
        XCTAssertLessThanOrEqual(zeroed, free - reserve)
        XCTAssertGreaterThan(zeroed, 0)
        XCTAssertEqual(try listing(mp), ["lost+found"])
    }

    func testRootReservedBlocksReportedForUsers() throws {
        try requireRoot("loop-mounted ext4 and setpriv")
        try requireFilesystem(.ext4)
        let dir = TempDir("zerofill-user")
        let image = dir.file("ext4.img")
        try makeImage(.ext4, image, size: 64 << 20)
        let mp = dir.file("mnt")
        let m = try Mounted(image: image, fs: .ext4, at: mp)
        defer { try? m.unmount() }
        try shOK("chmod 1777 '\(mp)' && chmod 755 '\(dir.path)'")
        let bin = try rescueboxBinary()
        let r = try sh("setpriv --reuid=65534 --regid=65534 --clear-groups '\(bin)' zerofill --max 1M '\(mp)'")
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("reserved for root stay unzeroed"), r.stderr)
    }

    // MARK: - the comparison

    enum FS: String { case ext4, ntfs, vfat, btrfs }

    /// Two identical images with deleted random data; one zerofilled, one
    /// cleaned with dd. Returns zerofill's result.
    @discardableResult
    func compareWithDd(fs: FS, wrapper: [String] = [], size: Int = 128 << 20) throws -> RunResult {
        try requireRoot("loop-mounted \(fs.rawValue)")
        try requireFilesystem(fs)
        _ = try which("lzop")
        let dir = TempDir("zerofill-\(fs.rawValue)")
        let a = dir.file("a.img"), b = dir.file("b.img"), mp = dir.file("mnt")
        try makeImage(fs, a, size: size)
        var m = try Mounted(image: a, fs: fs, at: mp)
        let baseline = try listing(mp)
        try shOK("mkdir '\(mp)/keep' && echo kept > '\(mp)/keep/note.txt'")
        let randomBytes = size * 5 / 8
        for i in 0..<5 {
            try pseudoRandomBytes(randomBytes / 5, seed: UInt64(i + 7)).write(to: URL(fileURLWithPath: "\(mp)/random\(i).bin"))
        }
        try shOK("sync && rm '\(mp)'/random*.bin && sync")
        let expected = (baseline + ["keep"]).sorted()
        try m.unmount()
        try shOK("cp --sparse=never '\(a)' '\(b)'")

        m = try Mounted(image: a, fs: fs, at: mp)
        let freeBefore = try freeBytes(mp)
        let r = try runProgram("/usr/bin/env", wrapper + [try rescueboxBinary(), "zerofill", "-v", mp])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("(filesystem full"), r.stderr)
        XCTAssertEqual(try listing(mp), expected, "a fill file remained")
        XCTAssertGreaterThanOrEqual(try freeBytes(mp) + (1 << 20), freeBefore, "free space did not come back")
        try m.unmount()

        m = try Mounted(image: b, fs: fs, at: mp)
        _ = try sh("dd if=/dev/zero of='\(mp)/F' bs=1M status=none")
        try shOK("sync && rm '\(mp)/F' && sync")
        try m.unmount()

        // Nothing left after the unmount either.
        m = try Mounted(image: a, fs: fs, at: mp)
        XCTAssertEqual(try listing(mp), expected, "a fill file remained on disk")
        XCTAssertEqual(try String(contentsOfFile: "\(mp)/keep/note.txt", encoding: .utf8), "kept\n")
        try m.unmount()

        let zerofilled = try UInt64(shOK("lzop -1 -c '\(a)' | wc -c")) ?? 0
        let ddCleaned = try UInt64(shOK("lzop -1 -c '\(b)' | wc -c")) ?? 0
        print("zerofill \(fs.rawValue): lzop -1 of the image: zerofill \(zerofilled) bytes, dd \(ddCleaned) bytes")
        XCTAssertGreaterThan(zerofilled, 0)
        XCTAssertLessThanOrEqual(Double(zerofilled), Double(ddCleaned) * 1.01,
                                 "zerofilled image compresses worse than the dd-cleaned one")
        XCTAssertLessThan(zerofilled, UInt64(randomBytes / 4), "the deleted random data is still there")
        return r
    }

    // MARK: - helpers

    func requireFilesystem(_ fs: FS) throws {
        switch fs {
        case .ext4: _ = try which("mkfs.ext4")
        case .btrfs:
            _ = try which("mkfs.btrfs")
            try requireKernelFilesystem("btrfs")
        case .vfat:
            _ = try which("mkfs.vfat")
            try requireKernelFilesystem("vfat")
        case .ntfs:
            _ = try which("mkntfs")
            _ = try which("ntfs-3g")
            guard FileManager.default.fileExists(atPath: "/dev/fuse") else { throw XCTSkip("no /dev/fuse for ntfs-3g") }
        }
    }

    func requireKernelFilesystem(_ name: String) throws {
        let known = (try? String(contentsOfFile: "/proc/filesystems", encoding: .utf8)) ?? ""
        let names = known.split(separator: "\n").compactMap { $0.split(separator: "\t").last.map(String.init) }
        guard names.contains(name) else { throw XCTSkip("the kernel has no \(name) filesystem (not in /proc/filesystems)") }
    }

    func makeImage(_ fs: FS, _ image: String, size: Int) throws {
        try shOK("truncate -s \(size) '\(image)'")
        switch fs {
        case .ext4: try shOK("mkfs.ext4 -q -F -b 4096 '\(image)'")
        case .btrfs: try shOK("mkfs.btrfs -q -f '\(image)'")
        case .vfat: try shOK("mkfs.vfat -F 32 '\(image)' >/dev/null")
        case .ntfs: try shOK("mkntfs -q -F -Q '\(image)' >/dev/null")
        }
    }

    /// Free bytes for root (statvfs f_bfree * f_frsize, as zerofill fills as root).
    func freeBytes(_ path: String) throws -> UInt64 {
        let parts = try shOK("stat -f -c '%f %S' '\(path)'").split(separator: " ").compactMap { UInt64($0) }
        guard parts.count == 2 else { throw prerequisiteFailed("cannot stat -f \(path)") }
        return parts[0] * parts[1]
    }

    /// Every name in the tree, hidden ones included, relative to `path`.
    func listing(_ path: String) throws -> [String] {
        let out = try shOK("cd '\(path)' && find . -mindepth 1 -maxdepth 1 -printf '%P\\n' | sort")
        return out.isEmpty ? [] : out.split(separator: "\n").map(String.init)
    }

    /// Runs a shell command whose children may stay behind (a FUSE daemon):
    /// no pipes to wait on (stdout and stderr go to files), only the exit status.
    static func detached(_ command: String) throws -> Int32 {
        try BackgroundProcess.start("/bin/bash", ["-c", command]).wait(timeout: 300).status
    }

    /// A loop-mounted image; ntfs-3g goes through a loop device so the
    /// mount is fuseblk and unmounting waits for the daemon to finish.
    final class Mounted {
        let point: String
        private var mounted = true

        init(image: String, fs: FS, at point: String, options: String = "") throws {
            self.point = point
            try? FileManager.default.createDirectory(atPath: point, withIntermediateDirectories: true)
            var status: Int32 = 0
            var errText = ""
            if fs == .ntfs {
                let attach = try sh("losetup --find --show '\(image)'")
                guard attach.status == 0 else { throw prerequisiteFailed("no loop device: \(attach.stderr)") }
                let device = attach.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
                // The daemon must not inherit our pipes (runProgram waits for their EOF).
                let log = point + ".ntfs-3g.log"
                status = try ZeroFillFilesystemTests.detached("ntfs-3g \(options.isEmpty ? "" : "-o \(options)") '\(device)' '\(point)' </dev/null >/dev/null 2>'\(log)'")
                errText = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
                if status != 0 { _ = try? sh("losetup -d '\(device)'") } else { loopDevice = device }
            } else {
                let r = try sh("mount -t \(fs.rawValue) -o loop\(options.isEmpty ? "" : ",\(options)") '\(image)' '\(point)'")
                status = r.status
                errText = r.stderr
            }
            guard status == 0 else { throw prerequisiteFailed("cannot mount \(fs.rawValue) image: \(errText)") }
        }

        private var loopDevice: String?

        func unmount() throws {
            guard mounted else { return }
            mounted = false
            try shOK("umount '\(point)'")
            if let loopDevice {
                // ntfs-3g may still hold the device for a moment after umount.
                try waitFor("ntfs-3g to let go of \(loopDevice) (losetup -d)") {
                    try sh("losetup -d '\(loopDevice)'").status == 0
                }
            }
        }

        deinit { try? unmount() }
    }
}
