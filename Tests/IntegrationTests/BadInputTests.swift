import Foundation
import XCTest
import TestSupport

/// Bad arguments and hostile environments, table-driven over the built
/// binary: each case exits non-zero with exactly one line on stderr naming
/// the object and the reason, and leaves nothing behind in the work folder.
final class BadInputTests: XCTestCase {
    struct Case {
        let args: [String]
        let status: Int32
        /// The whole stderr line, with WORK standing for the work folder.
        let message: String
        var user: String? = nil
        /// Run in a new, empty network namespace (`unshare -n`): a DNS query
        /// for an unknown host then fails at once and never leaves the machine.
        var isolated = false
    }

    func testTable() throws {
        let bin = try rescueboxBinary()
        let work = TempDir("rescuebox-bad")
        try shOK("echo data > '\(work.file("file"))'; mkdir '\(work.file("dir"))'; chmod 755 '\(work.path)'")
        try shOK("chmod 600 '\(work.file("file"))'")
        let cases: [Case] = [
            Case(args: ["ddz", "WORK/missing"], status: 1,
                 message: "rescuebox ddz: WORK/missing: open: No such file or directory"),
            Case(args: ["ddz", "WORK/dir"], status: 1, message: "rescuebox ddz: WORK/dir: read: Is a directory"),
            Case(args: ["ddz", "WORK/file", "-o", "WORK/dir"], status: 1, message: "rescuebox ddz: WORK/dir: open: Is a directory"),
            Case(args: ["ddz", "--bs", "0", "WORK/file"], status: 2,
                 message: "rescuebox ddz: --bs must be a multiple of 4K between 4K and 64M, not 0 (see 'rescuebox ddz --help')"),
            Case(args: ["ddz", "--bs", "banana", "WORK/file"], status: 2,
                 message: "rescuebox ddz: The value 'banana' is invalid for '--bs <size>' (see 'rescuebox ddz --help')"),
            Case(args: ["ddz", "--skip", "99999999999999999999", "WORK/file"], status: 2,
                 message: "rescuebox ddz: The value '99999999999999999999' is invalid for '--skip <size>' (see 'rescuebox ddz --help')"),
            Case(args: ["ddz", "-T", "0", "WORK/file"], status: 2,
                 message: "rescuebox ddz: --threads must be between 1 and 1024, not 0 (see 'rescuebox ddz --help')"),
            Case(args: ["ddz", "-d", "WORK/file", "-o", "WORK/out"], status: 1,
                 message: "rescuebox ddz: WORK/file: offset 0: not an lzop file (bad magic)"),
            Case(args: ["ddz", "WORK/file"], status: 1, message: "rescuebox ddz: WORK/file: open: Permission denied", user: "nobody"),
            Case(args: ["zerofill", "WORK/missing"], status: 1,
                 message: "rescuebox zerofill: WORK/missing: open: No such file or directory"),
            Case(args: ["zerofill", "WORK/file"], status: 1,
                 message: "rescuebox zerofill: WORK/file: refused: not a directory (give a directory on the filesystem to clean)"),
            Case(args: ["zerofill", "--max", "banana", "WORK/dir"], status: 2,
                 message: "rescuebox zerofill: The value 'banana' is invalid for '--max <SIZE>' (see 'rescuebox zerofill --help')"),
            Case(args: ["ntpleap", "WORK/missing"], status: 1,
                 message: "rescuebox ntpleap: WORK/missing: open: No such file or directory"),
            Case(args: ["ntpleap", "--check", "WORK/missing"], status: 2,
                 message: "rescuebox ntpleap: WORK/missing: open: No such file or directory"),
            Case(args: ["ftpput", "127.0.0.1:1", "x", "WORK/file"], status: 1,
                 message: "rescuebox ftpput: 127.0.0.1:1: connect to 127.0.0.1:1: Connection refused"),
            Case(args: ["ftpget", "127.0.0.1:1", "WORK/out", "x"], status: 1,
                 message: "rescuebox ftpget: 127.0.0.1:1: connect to 127.0.0.1:1: Connection refused"),
            Case(args: ["ftpput", "127.0.0.1:99999", "x", "WORK/file"], status: 2,
                 message: "rescuebox ftpput: invalid port '99999' (see 'rescuebox ftpput --help')"),
            Case(args: ["ftpput", "no-such-host.invalid", "x", "WORK/file"], status: 1,
                 message: "rescuebox ftpput: no-such-host.invalid: resolve: not in /etc/hosts; DNS: Network is unreachable",
                 isolated: true),
            Case(args: ["ftpput", "127.0.0.1", "x", "WORK/missing"], status: 1,
                 message: "rescuebox ftpput: WORK/missing: open: No such file or directory"),
            Case(args: ["backup", "WORK/missing", "WORK/out.lzo"], status: 1,
                 message: "rescuebox backup: WORK/missing: open: No such file or directory"),
            Case(args: ["backup", "WORK/file", "ftp://127.0.0.1:1/x.lzo"], status: 1,
                 message: "rescuebox backup: 127.0.0.1:1: connect to 127.0.0.1:1: Connection refused"),
            Case(args: ["restore", "WORK/missing", "WORK/out"], status: 1,
                 message: "rescuebox restore: WORK/missing: open: No such file or directory"),
            Case(args: ["restore", "WORK/file", "WORK/out"], status: 1,
                 message: "rescuebox restore: WORK/file: offset 0: not an lzop file (bad magic)"),
        ]
        let before = try FileManager.default.contentsOfDirectory(atPath: work.path).sorted()
        for c in cases {
            let args = c.args.map { $0.replacingOccurrences(of: "WORK", with: work.path) }
            let r: RunResult
            if c.isolated {
                guard getuid() == 0 else { continue }
                r = try runProgram("/usr/bin/unshare", ["-n", bin] + args, timeout: 60)
            } else if let user = c.user {
                guard getuid() == 0 else { continue }
                r = try runProgram("/usr/bin/setpriv", ["--reuid=\(user)", "--regid=nogroup", "--clear-groups", bin] + args, timeout: 60)
            } else {
                r = try runProgram(bin, args, timeout: 60)
            }
            let expected = c.message.replacingOccurrences(of: "WORK", with: work.path) + "\n"
            XCTAssertEqual(r.status, c.status, "\(c.args): \(r.stderr)")
            XCTAssertEqual(r.stderr, expected, "\(c.args)")
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: work.path).sorted(), before,
                           "\(c.args) left something behind")
        }
    }

    /// A full output disk: decompress into a 1 MiB tmpfs.
    func testFullOutputDiskIsOneLineAndLeavesNothing() throws {
        try requireRoot("mounting a tmpfs")
        let bin = try rescueboxBinary()
        let work = TempDir("rescuebox-full")
        try shOK("head -c 4M /dev/urandom > '\(work.file("data"))' && '\(bin)' ddz '\(work.file("data"))' -o '\(work.file("data.lzo"))'")
        try shOK("mkdir '\(work.file("tiny"))' && mount -t tmpfs -o size=1m tmpfs '\(work.file("tiny"))'")
        defer { _ = try? sh("umount '\(work.file("tiny"))'") }
        for args in [["ddz", "-d", work.file("data.lzo"), "-o", work.file("tiny/out")],
                     ["restore", work.file("data.lzo"), work.file("tiny/out")],
                     ["backup", work.file("data"), work.file("tiny/out.lzo")]] {
            let r = try runProgram(bin, args)
            XCTAssertEqual(r.status, 1, "\(args): \(r.stderr)")
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, "\(args): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains("No space left on device"), "\(args): \(r.stderr)")
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: work.file("tiny")), [], "\(args) left a file")
        }
    }

    /// The output's reader goes away: one clear line, no crash, no hang.
    func testClosedStdout() throws {
        let bin = try rescueboxBinary()
        let work = TempDir("rescuebox-pipe")
        try shOK("head -c 8M /dev/urandom > '\(work.file("data"))'")
        for command in ["ddz", "backup"] {
            let tail = command == "backup" ? " -" : ""
            // bash: PIPESTATUS is the exit status of rescuebox, not of head.
            let r = try runProgram("/bin/bash", ["-c", "'\(bin)' \(command) '\(work.file("data"))'\(tail) 2>'\(work.file("err"))' "
                                                 + "| head -c1 >/dev/null; echo ${PIPESTATUS[0]}"], timeout: 60)
            XCTAssertEqual(r.stdoutText, "1\n", "\(command): exit status (stderr \(r.stderr))")
            let err = try String(contentsOfFile: work.file("err"), encoding: .utf8)
            XCTAssertEqual(err.split(separator: "\n").count, 1, "\(command): \(err)")
            XCTAssertTrue(err.contains("Broken pipe"), "\(command): \(err)")
        }
    }
}

/// A device that vanishes mid-read: the FUSE disk's server is killed while
/// ddz waits on a stalled read. One line naming the device, the offset and
/// the system's reason; the output file is removed.
final class VanishingDeviceTests: XCTestCase {
    func testDiskVanishesDuringRead() throws {
        let bin = try rescueboxBinary()
        let dir = TempDir("rescuebox-vanish")
        try shOK("head -c 8M /dev/urandom > '\(dir.file("disk.img"))'")
        let disk = try FaultyDisk(image: dir.file("disk.img"), mountPoint: dir.file("fuse"), stall: (4 << 20, (4 << 20) + 1, 30))
        defer { disk.stop() }
        let ddz = try BackgroundProcess.start(bin, ["ddz", disk.disk, "-o", dir.file("out.lzo")])
        try waitFor("ddz to reach the stalled read at 4 MiB", timeout: 180) {
            guard ddz.isRunning else { throw prerequisiteFailed("ddz ended before the stall: \(ddz.stderr)") }
            return disk.isStalling
        }
        disk.kill()
        let result = try ddz.wait(timeout: 120)
        let stderr = result.stderr
        XCTAssertEqual(result.status, 1, stderr)
        XCTAssertEqual(stderr.split(separator: "\n").count, 1, stderr)
        XCTAssertTrue(stderr.hasPrefix("rescuebox ddz: \(disk.disk): read at offset "), stderr)
        XCTAssertTrue(stderr.contains("Transport endpoint is not connected") || stderr.contains("Software caused connection abort"), stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.file("out.lzo")))
    }
}
