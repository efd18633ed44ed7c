import Foundation
import Glibc
import XCTest
import TestSupport

/// Regression tests for the FTP-reliability defects: never delete what this
/// run did not store, no retry without progress, one outcome for Ctrl-C,
/// restore that resumes and checks first, servers without SIZE, proftpd's
/// REST refusal, names with a leading dash, passwords, mounted sources.
/// Real vsftpd where it can show the fault; the scripted server where a
/// real one will not produce it.
final class FtpReliabilityTests: XCTestCase {
    override func setUp() { signal(SIGPIPE, SIG_IGN) }

    func env(_ password: String = "pw") -> [String: String] {
        var env = ProcessInfo.processInfo.environment
        env["FTP_PASSWORD"] = password
        env["HOME"] = "/nonexistent-home"
        return env
    }

    func rescuebox(_ args: [String], input: Data? = nil, password: String = "pw") throws -> RunResult {
        try runProgram(try rescueboxBinary(), args, input: input, environment: env(password))
    }

    func deletes(_ server: FaultFTPServer) -> [String] { server.log.filter { $0.contains("DELE") } }

    func lines(_ text: String) -> [Substring] { text.split(separator: "\n") }

    // MARK: 1. Never delete what this run did not write

    /// vsftpd refuses STOR to a read-only file of another owner (553): the
    /// file stays exactly as it was, and nothing says it was deleted.
    func testRefusedStoreInPlaceKeepsTheExistingFile() throws {
        let ftp = try VsftpdServer.start()
        defer { ftp.stop() }
        let dir = TempDir()
        try pseudoRandomBytes(1 << 20, seed: 7).write(to: URL(fileURLWithPath: dir.file("new.bin")))
        let keep = ftp.home + "/keep.bin"
        try pseudoRandomBytes(20 << 20, seed: 9).write(to: URL(fileURLWithPath: keep))
        try shOK("chown root:root '\(keep)' && chmod 444 '\(keep)'")
        let before = try shOK("sha256sum '\(keep)'")
        let r = try rescuebox(["ftpput", "--in-place", "-u", ftp.user, ftp.hostPort, "keep.bin", dir.file("new.bin")],
                              password: ftp.password)
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("STOR keep.bin: server replied 553"), r.stderr)
        XCTAssertTrue(r.stderr.contains("nothing was stored, nothing deleted"), r.stderr)
        XCTAssertFalse(r.stderr.contains("partial file deleted"), r.stderr)
        XCTAssertEqual(lines(r.stderr).count, 1, r.stderr)
        XCTAssertEqual(try shOK("sha256sum '\(keep)'"), before)

        // The default .part + rename replaces it (as curl and busybox do) and says so.
        let replace = try rescuebox(["ftpput", "-u", ftp.user, ftp.hostPort, "keep.bin", dir.file("new.bin")],
                                    password: ftp.password)
        XCTAssertEqual(replace.status, 0, replace.stderr)
        XCTAssertTrue(replace.stderr.contains("replaced an existing 20971520-byte keep.bin"), replace.stderr)
        try shOK("cmp '\(keep)' '\(dir.file("new.bin"))'")

        // --no-clobber refuses before anything is stored.
        let refuse = try rescuebox(["ftpput", "--no-clobber", "-u", ftp.user, ftp.hostPort, "keep.bin", dir.file("new.bin")],
                                   password: ftp.password)
        XCTAssertEqual(refuse.status, 1, refuse.stderr)
        XCTAssertTrue(refuse.stderr.contains("exists (1048576 bytes); not replaced (--no-clobber)"), refuse.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: keep + ".part"))
    }

    /// The scripted server refuses STOR to keep.bin; SIZE says 20 MiB. No DELE.
    func testRefusedStoreSendsNoDele() throws {
        let server = try FaultFTPServer(scenario: "readonly")
        defer { server.stop() }
        let r = try rescuebox(["ftpput", "--in-place", "-u", "u", "127.0.0.1:\(server.port)", "keep.bin", "-"],
                              input: pseudoRandomBytes(100_000))
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertEqual(deletes(server), [], r.stderr)
    }

    /// A server that refuses passive mode: no transfer is possible, so no
    /// existing file (in place) and no earlier run's .part is deleted.
    func testRefusedPassiveModeDeletesNothing() throws {
        let server = try FaultFTPServer(scenario: "no-pasv")
        defer { server.stop() }
        for extra in [["--in-place"], [], ["-c"]] {
            let dir = TempDir()
            try pseudoRandomBytes(100_000).write(to: URL(fileURLWithPath: dir.file("src")))
            let r = try rescuebox(["ftpput"] + extra + ["-u", "u", "127.0.0.1:\(server.port)", "data.bin", dir.file("src")])
            XCTAssertEqual(r.status, 1, "\(extra): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains("PASV: server replied 500"), r.stderr)
            XCTAssertEqual(lines(r.stderr).count, 1, r.stderr)
        }
        let backup = try rescuebox(["backup", "--in-place", "/dev/null", "ftp://u@127.0.0.1:\(server.port)/data.bin"])
        XCTAssertEqual(backup.status, 1, backup.stderr)
        XCTAssertEqual(deletes(server), [])
    }

    // MARK: 2. No progress, no retry; full disk is final

    func testFullServerDiskEndsTheBackupWithTheWholeReply() throws {
        let server = try FaultFTPServer(scenario: "full")
        defer { server.stop() }
        let dir = TempDir()
        try pseudoRandomBytes(4 << 20).write(to: URL(fileURLWithPath: dir.file("disk.img")))
        let r = try rescuebox(["backup", dir.file("disk.img"), "ftp://u@127.0.0.1:\(server.port)/img.lzo"])
        XCTAssertEqual(r.status, 1, r.stderr)
        let last = String(lines(r.stderr).last ?? "")
        XCTAssertTrue(last.contains("451-Error during write to file / 451 Transfer aborted: No space left on device")
                      || last.contains("no progress"), r.stderr)
        // At most one reconnect that found new bytes, then it stops: never 5 retries at one byte.
        let reconnects = lines(r.stderr).filter { $0.contains("reconnecting in") }.count
        XCTAssertLessThanOrEqual(reconnects, 2, r.stderr)
        XCTAssertTrue(r.stderr.contains("451-Error during write to file"), r.stderr)
        // It stored the .part, so it removes it.
        XCTAssertEqual(deletes(server).count, 1, "\(server.log)")
    }

    // MARK: 3. Ctrl-C is one outcome

    func testInterruptedBackupExits130WithOneLineAndRemovesItsPart() throws {
        let ftp = try VsftpdServer.start()
        defer { ftp.stop() }
        let bin = try rescueboxBinary()
        for round in 0..<3 {
            let dir = TempDir()
            let part = ftp.home + "/i\(round).lzo.part"
            // A FIFO that gives 2 MiB, then nothing until the writer is ended.
            let script = """
            mkfifo '\(dir.file("src"))'
            ( head -c 2M /dev/urandom; exec sleep 120 ) > '\(dir.file("src"))' & writer=$!
            FTP_PASSWORD='\(ftp.password)' '\(bin)' backup '\(dir.file("src"))' '\(ftp.urlBase)/i\(round).lzo' 2> '\(dir.file("err"))' & job=$!
            n=0; while [ "$(stat -c %s '\(part)' 2>/dev/null || echo 0)" -lt 1000000 ] && [ $n -lt 600 ]; do sleep 0.05; n=$((n+1)); done
            [ $n -lt 600 ] || echo "the upload never started"
            kill -INT $job; wait $job; echo "status=$?"
            pkill -P $writer; kill $writer; wait $writer 2>/dev/null; true
            """
            let out = try shOK(script)
            let err = try String(contentsOfFile: dir.file("err"), encoding: .utf8)
            XCTAssertTrue(out.contains("status=130"), "round \(round): \(out) \(err)")
            XCTAssertEqual(lines(err).count, 1, "round \(round): \(err)")
            XCTAssertTrue(err.contains("interrupted by SIGINT"), err)
            XCTAssertTrue(err.contains("removed the partial upload i\(round).lzo.part"), err)
            XCTAssertFalse(err.contains("reconnecting"), err)
            XCTAssertFalse(FileManager.default.fileExists(atPath: part), "round \(round)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: ftp.home + "/i\(round).lzo"), "round \(round)")
        }
    }

    // MARK: 4-6. Restore resumes, checks first, keeps existing files

    func testRestoreResumesAfterTheSessionIsKilled() throws {
        let ftp = try VsftpdServer.start()
        defer { ftp.stop() }
        let bin = try rescueboxBinary()
        let dir = TempDir()
        // Incompressible: the image is as large as the source, so the
        // transfer is still running when the session is killed.
        try pseudoRandomBytes(48 << 20, seed: 3).write(to: URL(fileURLWithPath: dir.file("src.img")))
        try shOK("FTP_PASSWORD='\(ftp.password)' '\(bin)' backup '\(dir.file("src.img"))' '\(ftp.urlBase)/r.lzo'")
        // The target is a FIFO the test reads: 4 MiB, then the vsftpd
        // session processes are killed, then the rest.
        let reader = """
        import sys
        f = open(sys.argv[1], 'rb'); out = open(sys.argv[2], 'wb'); got = 0
        while got < (4 << 20):
            b = f.read(65536)
            if not b: break
            out.write(b); got += len(b)
        out.flush(); open(sys.argv[3], 'w').close()
        import os, time
        while not os.path.exists(sys.argv[4]): time.sleep(0.02)
        while True:
            b = f.read(1 << 20)
            if not b: break
            out.write(b)
        """
        try reader.write(toFile: dir.file("reader.py"), atomically: true, encoding: .utf8)
        let script = """
        mkfifo '\(dir.file("fifo"))'
        python3 '\(dir.file("reader.py"))' '\(dir.file("fifo"))' '\(dir.file("out"))' '\(dir.file("half"))' '\(dir.file("go"))' & rd=$!
        FTP_PASSWORD='\(ftp.password)' '\(bin)' restore '\(ftp.urlBase)/r.lzo' '\(dir.file("fifo"))' 2> '\(dir.file("err"))' & job=$!
        n=0; while [ ! -e '\(dir.file("half"))' ] && [ $n -lt 1200 ]; do sleep 0.05; n=$((n+1)); done
        for p in $(pgrep -P \(ftp.pid)); do pkill -9 -P $p; kill -9 $p; done
        touch '\(dir.file("go"))'
        wait $job; echo "status=$?"; wait $rd
        """
        let out = try shOK(script)
        let err = try String(contentsOfFile: dir.file("err"), encoding: .utf8)
        XCTAssertTrue(out.contains("status=0"), "\(out) \(err)")
        XCTAssertTrue(err.contains("connection lost after"), err)
        XCTAssertTrue(err.contains("reconnecting in"), err)
        try shOK("cmp '\(dir.file("out"))' '\(dir.file("src.img"))'")
    }

    func testRestoreChecksTheTargetBeforeAnyTransfer() throws {
        let ftp = try VsftpdServer.start()
        defer { ftp.stop() }
        let bin = try rescueboxBinary()
        let dir = TempDir()
        try pseudoRandomBytes(3 << 20).write(to: URL(fileURLWithPath: dir.file("src.img")))
        try shOK("FTP_PASSWORD='\(ftp.password)' '\(bin)' backup --manifest '\(dir.file("src.img"))' '\(ftp.urlBase)/c.lzo'")
        // An existing file is not overwritten without -f; no RETR of the image was sent.
        try Data("precious".utf8).write(to: URL(fileURLWithPath: dir.file("old.img")))
        var r = try rescuebox(["restore", "-v", "\(ftp.urlBase)/c.lzo", dir.file("old.img")], password: ftp.password)
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("file exists (use -f to overwrite it)"), r.stderr)
        XCTAssertFalse(r.stderr.contains("> RETR c.lzo\n"), r.stderr)
        XCTAssertEqual(try String(contentsOfFile: dir.file("old.img"), encoding: .utf8), "precious")
        // A device smaller than the manifest's size: refused before RETR.
        let small = try LoopDevice(image: dir.file("small.img"), size: 1 << 20)
        defer { small.detach() }
        r = try rescuebox(["restore", "-v", "\(ftp.urlBase)/c.lzo", small.device], password: ftp.password)
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("the device has 1048576 bytes, the image 3145728"), r.stderr)
        XCTAssertFalse(r.stderr.contains("> RETR c.lzo\n"), r.stderr)
        // A corrupt image restored over an existing file with -f: the file is not deleted.
        let image = ftp.home + "/c.lzo"
        try shOK("printf 'XXXX' | dd of='\(image)' bs=1 seek=200000 conv=notrunc 2>/dev/null")
        r = try rescuebox(["restore", "-f", "\(ftp.urlBase)/c.lzo", dir.file("old.img")], password: ftp.password)
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir.file("old.img")), r.stderr)
        // A new file that restore created is removed after the failure.
        r = try rescuebox(["restore", "\(ftp.urlBase)/c.lzo", dir.file("new.img")], password: ftp.password)
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.file("new.img")), r.stderr)
    }

    // MARK: 7-8. Servers without SIZE; REST before STOR refused

    func testServersWithoutSizeUploadAndDownload() throws {
        let dir = TempDir()
        let payload = try dir.writeRandom("src", count: 600_000)
        for scenario in ["no-size", "size-denied"] {
            let server = try FaultFTPServer(scenario: scenario)
            defer { server.stop() }
            let host = "127.0.0.1:\(server.port)"
            var r = try rescuebox(["ftpput", "-u", "u", host, "s.bin", dir.file("src")])
            XCTAssertEqual(r.status, 0, "\(scenario): \(r.stderr)")
            if scenario == "no-size" {
                XCTAssertTrue(r.stderr.contains("the upload could not be verified"), r.stderr)
            } else {
                // LIST still tells the size: verified.
                XCTAssertFalse(r.stderr.contains("could not be verified"), r.stderr)
            }
            r = try rescuebox(["ftpget", "-u", "u", host, dir.file("got-\(scenario)"), "s.bin"])
            XCTAssertEqual(r.status, 0, "\(scenario): \(r.stderr)")
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dir.file("got-\(scenario)"))), payload)
            // backup and restore through it.
            r = try rescuebox(["backup", dir.file("src"), "ftp://u@\(host)/b.lzo"])
            XCTAssertEqual(r.status, 0, "\(scenario): \(r.stderr)")
            r = try rescuebox(["restore", "ftp://u@\(host)/b.lzo", dir.file("restored-\(scenario)")])
            XCTAssertEqual(r.status, 0, "\(scenario): \(r.stderr)")
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dir.file("restored-\(scenario)"))), payload)
            XCTAssertEqual(deletes(server), [])
        }
    }

    func testHostileSizeIsWarnedAbout() throws {
        let server = try FaultFTPServer(scenario: "hostile-size")
        defer { server.stop() }
        let r = try rescuebox(["ftpput", "-u", "u", "127.0.0.1:\(server.port)", "h.bin", "-"], input: Data("hello".utf8))
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("ignored a SIZE reply that is not a size: 213 -5"), r.stderr)
    }

    func testRestRefusedBeforeStorFallsBackToAppend() throws {
        let server = try FaultFTPServer(scenario: "rest-stor-refused")
        defer { server.stop() }
        let dir = TempDir()
        let payload = try dir.writeRandom("src", count: 500_000)
        let host = "127.0.0.1:\(server.port)"
        // A first run leaves 200 000 bytes at r.bin.part (the same bytes).
        try payload.prefix(200_000).write(to: URL(fileURLWithPath: dir.file("head")))
        var r = try rescuebox(["ftpput", "--in-place", "-u", "u", host, "r.bin.part", dir.file("head")])
        XCTAssertEqual(r.status, 0, r.stderr)
        r = try rescuebox(["ftpput", "-c", "-u", "u", host, "r.bin", dir.file("src")])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(server.log.contains("b'APPE r.bin.part\\r\\n'"), "\(server.log)")
        r = try rescuebox(["ftpget", "-u", "u", host, dir.file("back"), "r.bin"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dir.file("back"))), payload)
    }

    // MARK: 9-10. Names with a dash; passwords

    func testNamesWithALeadingDashAndUnknownOptions() throws {
        let ftp = try VsftpdServer.start()
        defer { ftp.stop() }
        let dir = TempDir()
        try Data("dash".utf8).write(to: URL(fileURLWithPath: dir.file("f")))
        var r = try rescuebox(["ftpput", "-u", ftp.user, ftp.hostPort, "-dash.bin", dir.file("f")], password: ftp.password)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout.count, 0, r.stdoutText)
        XCTAssertEqual(try String(contentsOfFile: ftp.home + "/-dash.bin", encoding: .utf8), "dash")
        r = try rescuebox(["backup", dir.file("f"), dir.file("-h.lzo")])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir.file("-h.lzo")))
        r = try rescuebox(["ftpput", "--nope", ftp.hostPort, "x", dir.file("f")])
        XCTAssertEqual(r.status, 2, r.stderr)
        XCTAssertTrue(r.stderr.contains("unknown option '--nope'"), r.stderr)
        XCTAssertEqual(r.stdout.count, 0, r.stdoutText)
    }

    func testGluedPasswordWorksAndChildrenNeverSeeFtpPassword() throws {
        let ftp = try VsftpdServer.start()
        defer { ftp.stop() }
        // busybox's glued -pPASS: accepted, wiped, never echoed.
        var r = try runProgram(try rescueboxBinary(), ["ftpput", "-u", ftp.user, "-p\(ftp.password)", ftp.hostPort, "g.txt", "-"],
                               input: Data("glued".utf8), environment: ["PATH": "/usr/bin:/bin"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertFalse(r.stderr.contains(ftp.password), r.stderr)
        r = try runProgram(try rescueboxBinary(), ["ftpput", "-p\(ftp.password)", "--bogus", ftp.hostPort, "g.txt", "-"],
                           input: Data("x".utf8), environment: ["PATH": "/usr/bin:/bin"])
        XCTAssertEqual(r.status, 2, r.stderr)
        XCTAssertFalse(r.stderr.contains(ftp.password), r.stderr)
        // A |COMMAND child gets no FTP_PASSWORD.
        r = try rescuebox(["ftpput", "\(ftp.urlBase)/env.txt", "|env"], password: ftp.password)
        XCTAssertEqual(r.status, 0, r.stderr)
        let childEnv = try String(contentsOfFile: ftp.home + "/env.txt", encoding: .utf8)
        XCTAssertFalse(childEnv.contains("FTP_PASSWORD"), childEnv)
        XCTAssertFalse(childEnv.contains(ftp.password), childEnv)
        XCTAssertTrue(childEnv.contains("PATH="), childEnv)
    }

    // MARK: 11. Mounted sources

    func testMountedReadWriteSourceIsRefusedUnlessForced() throws {
        try requireRoot("loop devices and mounts")
        let dir = TempDir()
        let loop = try LoopDevice(image: dir.file("disk.img"), size: 16 << 20)
        defer { loop.detach() }
        try shOK("mkfs.ext4 -q -F '\(loop.device)' && mkdir -p '\(dir.file("m"))' && mount '\(loop.device)' '\(dir.file("m"))'")
        defer { _ = try? sh("umount '\(dir.file("m"))'") }
        for applet in [["backup", loop.device, dir.file("b.lzo")], ["ddz", loop.device, "-o", dir.file("d.lzo")]] {
            let r = try rescuebox(applet)
            XCTAssertEqual(r.status, 1, "\(applet): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains("is mounted read-write on \(dir.file("m"))"), r.stderr)
            XCTAssertFalse(FileManager.default.fileExists(atPath: applet.last!))
            let forced = try rescuebox([applet[0], "-f"] + applet.dropFirst())
            XCTAssertEqual(forced.status, 0, forced.stderr)
            XCTAssertTrue(forced.stderr.contains("warning:"), forced.stderr)
        }
        try shOK("mount -o remount,ro '\(dir.file("m"))'")
        let ro = try rescuebox(["backup", loop.device, dir.file("ro.lzo")])
        XCTAssertEqual(ro.status, 0, ro.stderr)
    }

    // MARK: 12. Smaller ones

    func testStoreInAMissingDirectoryHintsAtMkdirs() throws {
        let ftp = try VsftpdServer.start()
        defer { ftp.stop() }
        let r = try rescuebox(["ftpput", "\(ftp.urlBase)/no/such/dir/x.bin", "-"], input: Data("x".utf8), password: ftp.password)
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("553") && r.stderr.contains("--mkdirs"), r.stderr)
    }

    func testBackupSkipCountAndEmptySource() throws {
        let dir = TempDir()
        try pseudoRandomBytes(5 << 20).write(to: URL(fileURLWithPath: dir.file("src")))
        var r = try rescuebox(["backup", "--skip", "1M", "--count", "2M", dir.file("src"), dir.file("part.lzo")])
        XCTAssertEqual(r.status, 0, r.stderr)
        try shOK("dd if='\(dir.file("src"))' of='\(dir.file("ref"))' bs=1M skip=1 count=2 2>/dev/null && "
                 + "lzop -dc '\(dir.file("part.lzo"))' | cmp - '\(dir.file("ref"))'")
        r = try rescuebox(["backup", "/dev/null", dir.file("empty.lzo")])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("gave no data: the image is empty"), r.stderr)
    }

    func testHelpExamplesFitOnALine() throws {
        for applet in ["ddz", "ftpput", "ftpget", "zerofill", "ntpleap", "backup", "restore"] {
            let r = try runProgram(try rescueboxBinary(), [applet, "--help"], environment: ["COLUMNS": "80"])
            XCTAssertEqual(r.status, 0, r.stderr)
            var inExamples = false
            for line in r.stdoutText.split(separator: "\n", omittingEmptySubsequences: false) {
                if line.hasPrefix("EXAMPLES") { inExamples = true; continue }
                if line.hasPrefix("USAGE") || line.isEmpty { inExamples = false; continue }
                if inExamples {
                    XCTAssertTrue(line.hasPrefix("  "), "\(applet): an example wrapped: '\(line)'")
                }
            }
        }
        for applet in ["backup", "restore"] {
            let r = try runProgram(try rescueboxBinary(), [applet, "--help"], environment: ["COLUMNS": "80"])
            XCTAssertTrue(r.stdoutText.contains("Exit status: 0"), "\(applet) --help lists no exit codes")
        }
    }
}
