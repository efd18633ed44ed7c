import Foundation
import Glibc
import XCTest
import TestSupport

/// `rescuebox backup` / `restore` end to end: loop devices, a real vsftpd on
/// 127.0.0.1, real lzop as the format oracle, and a FUSE disk that stalls
/// on demand so a session can be killed mid-transfer.
final class BackupRestoreTests: XCTestCase {
    /// A disk-like image: an ext4 filesystem with text, binaries and random
    /// files, some deleted (so the image has used, freed and zero space).
    func makeDiskImage(_ path: String, mib: Int) throws {
        try shOK("truncate -s \(mib)M '\(path)' && mkfs.ext4 -q -F '\(path)'")
        let mnt = path + ".mnt"
        try shOK("mkdir -p '\(mnt)' && mount -o loop '\(path)' '\(mnt)'")
        defer { _ = try? sh("umount '\(mnt)'; rmdir '\(mnt)'") }
        try shOK("cp -r /usr/share/doc '\(mnt)/doc' 2>/dev/null; cp /usr/bin/ls /usr/bin/cp '\(mnt)/'; "
                 + "head -c \(mib / 4)M /dev/urandom > '\(mnt)/random'; head -c 4M /dev/urandom > '\(mnt)/gone'; "
                 + "sync; rm '\(mnt)/gone'")
    }

    func environment(_ ftp: VsftpdServer) -> [String: String] {
        var env = ProcessInfo.processInfo.environment
        env["FTP_PASSWORD"] = ftp.password
        return env
    }

    /// A backup that failed as it should: exit 1, one line (containing
    /// `saying`), no reconnect.
    func assertFailsInOneLine(_ r: RunResult, saying text: String? = nil, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(r.status, 1, r.stderr, file: file, line: line)
        XCTAssertEqual(nonEmptyLines(r.stderr).count, 1, r.stderr, file: file, line: line)
        if let text { XCTAssertTrue(r.stderr.contains(text), r.stderr, file: file, line: line) }
        XCTAssertFalse(r.stderr.contains("reconnecting"), r.stderr, file: file, line: line)
    }

    /// The first session logs in while the compressor already runs
    /// (OverlappedOpen): a refused login, an unreachable server and a
    /// refused replacement are still one line, no retry, nothing stored.
    func testRefusedLoginUnreachableServerAndNoClobberStoreNothing() throws {
        let bin = try rescueboxBinary()
        let ftp = try VsftpdServer.start()
        defer { ftp.stop() }
        let dir = TempDir()
        // 64 MiB: far more than the compressor can keep while it waits.
        try shOK("head -c 64M /dev/urandom > '\(dir.file("src"))'")
        var env = environment(ftp)
        env["FTP_PASSWORD"] = "not-the-password"
        let refused = try runProgram(bin, ["backup", dir.file("src"), "\(ftp.urlBase)/a.lzo"], environment: env)
        assertFailsInOneLine(refused, saying: "530")
        XCTAssertFalse(refused.stderr.contains("not-the-password"), refused.stderr)

        let closed = try shOK("python3 -c 'import socket; s=socket.socket(); s.bind((\"127.0.0.1\", 0)); print(s.getsockname()[1])'")
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let unreachable = try runProgram(bin, ["backup", dir.file("src"), "ftp://\(ftp.user)@127.0.0.1:\(closed)/a.lzo"],
                                         environment: environment(ftp))
        assertFailsInOneLine(unreachable, saying: "connect to 127.0.0.1:\(closed)")

        try ftp.storeAsServerUser("kept.lzo", Data("an earlier backup".utf8))
        let clobber = try runProgram(bin, ["backup", "--no-clobber", dir.file("src"), "\(ftp.urlBase)/kept.lzo"],
                                     environment: environment(ftp))
        assertFailsInOneLine(clobber)
        XCTAssertEqual(try String(contentsOfFile: ftp.home + "/kept.lzo", encoding: .utf8), "an earlier backup")
        let left = try FileManager.default.contentsOfDirectory(atPath: ftp.home).sorted()
        XCTAssertEqual(left, ["kept.lzo"], "nothing else may be stored")
    }

    func testRoundTripBetweenLoopDevicesWithManifest() throws {
        let bin = try rescueboxBinary()
        let ftp = try VsftpdServer.start()
        defer { ftp.stop() }
        let dir = TempDir()
        try makeDiskImage(dir.file("a.img"), mib: 48)
        let source = try LoopDevice(image: dir.file("src.img"), size: 48 << 20)
        try shOK("dd if='\(dir.file("a.img"))' of='\(source.device)' bs=1M status=none conv=fsync")
        let target = try LoopDevice(image: dir.file("dst.img"), size: 48 << 20)

        let up = try runProgram(bin, ["backup", "--manifest", "--mkdirs", source.device, "\(ftp.urlBase)/images/"],
                                environment: environment(ftp))
        XCTAssertEqual(up.status, 0, up.stderr)
        XCTAssertTrue(up.stderr.contains("bytes (50 MB, 48 MiB) read"), up.stderr)
        let names = try FileManager.default.contentsOfDirectory(atPath: ftp.home + "/images").sorted()
        XCTAssertEqual(names.count, 3, "image, manifest and block index: \(names)")
        guard let image = names.first(where: { $0.hasSuffix(".lzo") }) else { return XCTFail("no image: \(names)") }
        let device = (source.device as NSString).lastPathComponent
        XCTAssertTrue(image.hasSuffix(".\(device).\(try shOK("date +%Y-%m-%d")).lzo"), image)
        let stored = ftp.home + "/images/" + image
        try shOK("lzop -t '\(stored)'")
        // The uploaded block index is the one ddz --index builds from the image.
        try shOK("cp '\(stored)' '\(dir.file("copy.lzo"))' && '\(bin)' ddz --index '\(dir.file("copy.lzo"))' && cmp '\(dir.file("copy.lzo.index"))' '\(stored).index'")
        let manifest = try String(contentsOfFile: stored + ".json", encoding: .utf8)
        XCTAssertTrue(manifest.contains("\"source_size\": \(48 << 20)"), manifest)
        XCTAssertTrue(manifest.contains("\"sha256\": \"\(try shOK("sha256sum '\(stored)' | cut -d' ' -f1"))\""), manifest)

        let down = try runProgram(bin, ["restore", "\(ftp.urlBase)/images/\(image)", target.device],
                                  environment: environment(ftp))
        XCTAssertEqual(down.status, 0, down.stderr)
        try shOK("cmp '\(source.device)' '\(target.device)'")
    }

    /// The server's session processes are killed while the source stalls in
    /// the middle: backup reconnects, asks SIZE, regenerates from the block
    /// boundary and the stored image is byte-identical to an unbroken run.
    func testResumesAfterTheServerSessionIsKilled() throws {
        let bin = try rescueboxBinary()
        let ftp = try VsftpdServer.start()
        defer { ftp.stop() }
        let dir = TempDir()
        let image = dir.file("disk.img")
        // Small: reads through the Python FUSE disk run at a few MB/s.
        try makeDiskImage(image, mib: 24)
        let faulty = try FaultyDisk(image: image, mountPoint: dir.file("fuse"), stall: (12 << 20, (12 << 20) + 1, 4))
        defer { faulty.stop() }

        let result = try backupWithKilledSession(bin, ["--retries", "3", faulty.disk, "\(ftp.urlBase)/disk.lzo"],
                                                 ftp: ftp, faulty: faulty, part: ftp.home + "/disk.lzo.part",
                                                 stallAt: "12 MiB", environment: environment(ftp))
        let stderr = result.stderr
        XCTAssertEqual(result.status, 0, stderr)
        XCTAssertTrue(stderr.contains("resuming at byte"), stderr)

        // The same source compressed without interruption, by ddz -1.
        try shOK("'\(bin)' ddz -1 '\(image)' > '\(dir.file("ref.lzo"))'")
        try shOK("lzop -t '\(ftp.home)/disk.lzo'")
        // Headers differ only in name and mtime; compare everything after them.
        let stored = try Data(contentsOf: URL(fileURLWithPath: ftp.home + "/disk.lzo"))
        let reference = try Data(contentsOf: URL(fileURLWithPath: dir.file("ref.lzo")))
        XCTAssertEqual(stored.count - headerLength(stored), reference.count - headerLength(reference))
        XCTAssertTrue(stored.suffix(from: headerLength(stored)) == reference.suffix(from: headerLength(reference)),
                      "the resumed image differs from an unbroken run")
        try shOK("lzop -dc '\(ftp.home)/disk.lzo' | cmp - '\(image)'")
    }

    /// A source that stalls longer than --idle: the transfer is paused
    /// cleanly and continued; the image is complete.
    func testStallingSourcePausesAndContinues() throws {
        let bin = try rescueboxBinary()
        let ftp = try VsftpdServer.start()
        defer { ftp.stop() }
        let dir = TempDir()
        let image = dir.file("disk.img")
        try shOK("head -c 8M /dev/urandom > '\(image)'; head -c 8M /dev/zero >> '\(image)'")
        let faulty = try FaultyDisk(image: image, mountPoint: dir.file("fuse"), stall: (4 << 20, (4 << 20) + 1, 4))
        defer { faulty.stop() }
        let r = try runProgram(bin, ["backup", "--idle", "1", faulty.disk, "\(ftp.urlBase)/s.lzo"], environment: environment(ftp))
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("paused the upload"), r.stderr)
        try shOK("lzop -dc '\(ftp.home)/s.lzo' | cmp - '\(image)'")
    }

    func testRestoreRefusesMountedAndTooSmallTargets() throws {
        let bin = try rescueboxBinary()
        let dir = TempDir()
        try shOK("head -c 4M /dev/urandom > '\(dir.file("src"))'")
        let up = try runProgram(bin, ["backup", "--manifest", dir.file("src"), dir.file("src.lzo")])
        XCTAssertEqual(up.status, 0, up.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir.file("src.lzo.json")))

        let small = try LoopDevice(image: dir.file("small.img"), size: 2 << 20)
        let tooSmall = try runProgram(bin, ["restore", dir.file("src.lzo"), small.device])
        XCTAssertEqual(tooSmall.status, 1)
        XCTAssertEqual(tooSmall.stderr, "rescuebox restore: \(small.device): restore: the device has \(2 << 20) bytes, "
                       + "the image \(4 << 20) (from its manifest); use --force to write what fits\n")

        let mounted = try LoopDevice(image: dir.file("m.img"), size: 8 << 20)
        try shOK("mkfs.ext4 -q '\(mounted.device)' && mkdir '\(dir.file("mnt"))' && mount '\(mounted.device)' '\(dir.file("mnt"))'")
        defer { _ = try? sh("umount '\(dir.file("mnt"))'") }
        let busy = try runProgram(bin, ["restore", dir.file("src.lzo"), mounted.device])
        XCTAssertEqual(busy.status, 1)
        XCTAssertEqual(busy.stderr, "rescuebox restore: \(mounted.device): restore: \(mounted.device) is mounted on "
                       + "\(dir.file("mnt")); unmount it first\n")
        // Still a working filesystem.
        try shOK("ls '\(dir.file("mnt"))/lost+found'")
    }

    func testBackupToLocalFileAndRestoreToFile() throws {
        let bin = try rescueboxBinary()
        let dir = TempDir()
        try shOK("head -c 3M /dev/urandom > '\(dir.file("src"))'; head -c 5M /dev/zero >> '\(dir.file("src"))'")
        XCTAssertEqual(try runProgram(bin, ["backup", dir.file("src"), dir.file("src.lzo")]).status, 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.file("src.lzo.part")))
        let r = try runProgram(bin, ["restore", dir.file("src.lzo"), dir.file("copy")])
        XCTAssertEqual(r.status, 0, r.stderr)
        try shOK("cmp '\(dir.file("src"))' '\(dir.file("copy"))'")
        // The zero tail became a hole.
        let blocks = Int(try shOK("stat -c %b '\(dir.file("copy"))'")) ?? 0
        XCTAssertLessThan(blocks * 512, 5 << 20)
    }

    /// A disk unreadable at its first sector fails while the first session
    /// is still logging in (OverlappedOpen): one line naming the read, no
    /// retry, and no .part left on the server.
    func testReadErrorDuringTheLoginLeavesNothingOnTheServer() throws {
        let bin = try rescueboxBinary()
        let ftp = try VsftpdServer.start()
        defer { ftp.stop() }
        let dir = TempDir()
        let image = dir.file("disk.img")
        try shOK("head -c 4M /dev/urandom > '\(image)'")
        let faulty = try FaultyDisk(image: image, mountPoint: dir.file("fuse"), bad: "0-4096")
        defer { faulty.stop() }
        let r = try runProgram(bin, ["backup", faulty.disk, "\(ftp.urlBase)/bad.lzo"], environment: environment(ftp))
        assertFailsInOneLine(r, saying: "read at offset 0")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: ftp.home), [], "nothing may be left on the server")
    }

    /// A failing disk: with --noerror the unreadable sectors become zeros in
    /// the image, stderr and the manifest count them, and the exit status is 1.
    func testNoErrorZeroesUnreadableSectorsAndSaysSo() throws {
        let bin = try rescueboxBinary()
        let dir = TempDir()
        let image = dir.file("disk.img")
        try shOK("head -c 4M /dev/urandom > '\(image)'")
        let bad = (1 << 20) + 512
        let faulty = try FaultyDisk(image: image, mountPoint: dir.file("fuse"), bad: "\(bad)-\(bad + 1024)")
        defer { faulty.stop() }
        let failing = try runProgram(bin, ["backup", faulty.disk, dir.file("out.lzo")])
        XCTAssertEqual(failing.status, 1, failing.stderr)
        XCTAssertTrue(failing.stderr.contains("read at offset"), failing.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.file("out.lzo")))
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.file("out.lzo.part")))

        let r = try runProgram(bin, ["backup", "--noerror", "--manifest", faulty.disk, dir.file("out.lzo")])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("unreadable: bytes \(bad)-\(bad + 1023) (1024 bytes) written as zeros"), r.stderr)
        XCTAssertTrue(try String(contentsOfFile: dir.file("out.lzo.json"), encoding: .utf8).contains("\"unreadable_bytes\": 1024"))
        // The image is the disk with exactly those bytes zeroed.
        try shOK("cp '\(image)' '\(dir.file("expected"))' && dd if=/dev/zero of='\(dir.file("expected"))' bs=512 seek=\(bad / 512) count=2 conv=notrunc status=none")
        try shOK("lzop -dc '\(dir.file("out.lzo"))' | cmp - '\(dir.file("expected"))'")
    }

    /// Length of an lzop member header (magic through header checksum).
    func headerLength(_ data: Data) -> Int {
        let b = [UInt8](data.prefix(64))
        // version >= 0x0940 layout: magic 9, version..level 8, flags 4, mode 4, mtime 8, name len 1.
        let flags = UInt32(b[17]) << 24 | UInt32(b[18]) << 16 | UInt32(b[19]) << 8 | UInt32(b[20])
        let filter = flags & 0x800 != 0 ? 4 : 0
        let nameLength = Int(b[33 + filter])
        return 34 + filter + nameLength + 4
    }
}

/// The resume scenario both backup suites use: `backup ARGS` from a FUSE
/// disk that stalls at `stallAt`; once the upload is under way (the .part
/// holds 1 MiB) and the source stalls, every vsftpd session process is
/// killed; returns what backup did after reconnecting.
func backupWithKilledSession(_ bin: String, _ args: [String], ftp: VsftpdServer, faulty: FaultyDisk,
                             part: String, stallAt: String, environment: [String: String]) throws -> RunResult {
    let backup = try BackgroundProcess.start(bin, ["backup"] + args, environment: environment)
    try waitFor("the upload under way (\(part) >= 1 MiB) and the source stalled at \(stallAt)", timeout: 180) {
        guard backup.isRunning else { throw prerequisiteFailed("backup ended before the stall: \(backup.stderr)") }
        let size = (try? FileManager.default.attributesOfItem(atPath: part)[.size] as? Int) ?? nil
        return faulty.isStalling && (size ?? 0) >= 1 << 20
    }
    _ = try ftp.killSessions()
    return try backup.wait(timeout: 300)
}

/// Tests/Fixtures/faulty_disk.py mounted on `mountPoint`: `disk` reads the
/// image, stalling for the given seconds on every read (FUSE reads are up to
/// 128 KiB) that touches the given byte range.
final class FaultyDisk {
    let mountPoint: String
    let disk: String
    private let process: BackgroundProcess

    init(image: String, mountPoint: String, stall: (Int, Int, Int)? = nil, bad: String = "") throws {
        try requireRoot("FUSE mounts")
        guard FileManager.default.fileExists(atPath: "/dev/fuse") else { throw XCTSkip("no /dev/fuse") }
        guard (try sh("/usr/bin/python3 -c 'import fusepy'")).status == 0 else { throw XCTSkip("python3-fusepy is not installed") }
        self.mountPoint = mountPoint
        let disk = mountPoint + "/disk.img"
        self.disk = disk
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        var args = [repositoryRoot() + "/Tests/Fixtures/faulty_disk.py", image, mountPoint, bad]
        if let stall { args += ["--stall", "\(stall.0)-\(stall.1):\(stall.2)"] }
        let process = try BackgroundProcess.start("/usr/bin/python3", args)
        self.process = process
        do {
            try waitFor("the FUSE disk \(disk) to mount") {
                guard process.isRunning else { throw prerequisiteFailed("faulty_disk.py exited: \(process.stderr)") }
                return FileManager.default.fileExists(atPath: disk)
            }
        } catch {
            stop()
            throw error
        }
    }

    /// The disk's log so far: 'read OFFSET LENGTH ok|EIO' per read, and
    /// 'stall OFFSET LENGTH SECONDS' as a stall begins.
    var log: [String] { process.stderr.split(separator: "\n").map(String.init) }

    /// True while a read is held in a stall (the last thing logged is the stall).
    var isStalling: Bool { log.last?.hasPrefix("stall ") ?? false }

    /// The disk's server dies: reads fail with ENOTCONN, as a pulled disk's do.
    func kill() {
        process.signal(SIGKILL)
    }

    func stop() {
        _ = try? sh("umount '\(mountPoint)' 2>/dev/null || fusermount -u '\(mountPoint)' 2>/dev/null")
        process.signal(SIGTERM)
        _ = try? process.wait(timeout: 60)
    }
}
