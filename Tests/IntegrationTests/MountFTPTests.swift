import Foundation
import TestSupport
import XCTest

/// The whole rescue: back up an MBR disk (ext4 + NTFS) to a real vsftpd,
/// mount the image straight from the server, loop-mount both partitions
/// read-only, and get the files back; count what the server sent.
final class MountFTPTests: MountTestCase {
    /// vsftpd-start.sh turns the transfer log off; restart the same server
    /// (same directory, port and user) with the wu-ftpd style xferlog on,
    /// which records the bytes of every transfer, aborted ones included.
    /// The new listener is our child, stopped by PID in tearDown, and its
    /// PID goes to listener.pid, so `server.stop()` (ftpd-stop.sh) ends it
    /// and its sessions too: a leftover pid file there once left one
    /// listener per run behind.
    func restartWithTransferLog(_ server: VsftpdServer) throws -> String {
        let conf = server.directory + "/vsftpd.conf"
        let log = server.directory + "/xferlog"
        kill(server.pid, SIGTERM)
        try waitFor("vsftpd to stop") { kill(server.pid, 0) != 0 }
        var text = try String(contentsOfFile: conf, encoding: .utf8)
        text = text.replacingOccurrences(of: "xferlog_enable=NO", with: "xferlog_enable=YES\nxferlog_std_format=YES\nxferlog_file=\(log)")
        try text.write(toFile: conf, atomically: true, encoding: .utf8)
        let listener = try BackgroundProcess.start("/usr/sbin/vsftpd", [conf])
        cleanups.append { listener.stop() }
        for name in ["listener.pid", "vsftpd.pid"] {
            try "\(listener.pid)\n".write(toFile: server.directory + "/" + name, atomically: true, encoding: .utf8)
        }
        try waitFor("vsftpd to answer again") {
            guard listener.isRunning else { throw prerequisiteFailed("vsftpd exited: \(listener.stderr)") }
            return ((try? runProgram("/bin/bash", ["-c", "exec 3<>/dev/tcp/\(server.host)/\(server.port) && head -c 3 <&3"]))?.stdoutText ?? "") == "220"
        }
        return log
    }

    /// Bytes of every transfer in the xferlog (field 8 of the wu-ftpd format).
    func bytesSent(_ log: String) -> UInt64 {
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").reduce(0) { sum, line in
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            return sum + (fields.count > 7 ? UInt64(fields[7]) ?? 0 : 0)
        }
    }

    func testBackupToFTPThenMountAndGetFilesBack() throws {
        try requireRoot("loop devices, FUSE and vsftpd")
        let dir = TempDir()
        // About 1.25 GiB, nearly all random data: the image is over 1 GiB compressed.
        let disk = try makeMBRDisk(dir, ext4MiB: 680, ntfsMiB: 560, fillerMiB: (576, 448))
        let server = try VsftpdServer.start()
        defer { server.stop() }
        let bin = try rescueboxBinary()
        let env = ["FTP_PASSWORD": server.password]
        let url = "\(server.urlBase)/disk.lzo"
        let backup = try runProgram(bin, ["backup", disk.path, url], environment: env, timeout: 1200)
        XCTAssertEqual(backup.status, 0, backup.stderr)
        let image = server.home + "/disk.lzo"
        XCTAssertTrue(FileManager.default.fileExists(atPath: image + ".index"), "backup stores the block index beside the image")
        let imageSize = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: image)[.size] as? UInt64)
        XCTAssertGreaterThan(imageSize, 1 << 30, "the test needs a 1 GiB-plus image")

        let xferlog = try restartWithTransferLog(server)
        let mnt = dir.file("mnt")
        let r = try mountImage(url, on: mnt, env: env)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try shOK("ls '\(mnt)'").split(separator: "\n"), ["disk.img", "p1.img", "p2.img"])
        XCTAssertEqual(try shOK("stat -c %s '\(mnt)/p1.img' '\(mnt)/p2.img'").split(separator: "\n").map { UInt64($0) },
                       disk.parts.map { $0.size })

        // One 8 MiB file out of the ext4 partition: a small part of the image moves.
        try loopMount(mnt + "/p1.img", on: dir.file("ext4"), type: "ext4")
        let one = try shOK("sha256sum < '\(dir.file("ext4"))/photos/big8.bin'").prefix(64)
        XCTAssertTrue(disk.sums[0].contains(one + "  ./photos/big8.bin"), "the 8 MiB file's sha256")
        let moved = bytesSent(xferlog)
        let share = Double(moved) / Double(imageSize)
        print("mount: one 8 MiB file from a \(imageSize)-byte image moved \(moved) bytes (\(String(format: "%.2f", share * 100))%)")
        XCTAssertGreaterThan(moved, 0, "the xferlog counts transfers")
        XCTAssertLessThan(share, 0.05, "one 8 MiB file moved \(moved) of \(imageSize) bytes")

        // Every file of both filesystems, ext4 loop-mounted and NTFS with ntfs-3g, read-only.
        XCTAssertEqual(try checksums(dir.file("ext4")), disk.sums[0])
        try loopMount(mnt + "/p2.img", on: dir.file("ntfs"), type: "ntfs")
        XCTAssertEqual(try checksums(dir.file("ntfs")), disk.sums[1])
        try unmount(dir.file("ntfs"))
        try unmount(dir.file("ext4"))
        try unmount(mnt)
        try waitFor("the mount process to exit after umount") { processes(mentioning: mnt).isEmpty }
        XCTAssertFalse(isMounted(mnt))
    }
}
