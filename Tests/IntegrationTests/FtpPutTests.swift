import Foundation
import XCTest
import TestSupport

/// Shared helpers for the ftpput/ftpget tests against a real vsftpd.
class FtpTestCase: XCTestCase {
    var server: VsftpdServer!

    override func setUpWithError() throws {
        // Input fed to a child that exits early must not kill the test runner.
        signal(SIGPIPE, SIG_IGN)
        server = try VsftpdServer.start()
    }

    override func tearDown() {
        server?.stop()
        server = nil
    }

    func environment(password: String? = nil) -> [String: String] {
        var env = ProcessInfo.processInfo.environment
        env["FTP_PASSWORD"] = password ?? server.password
        env["HOME"] = "/nonexistent-home"
        return env
    }

    /// Runs `rescuebox APPLET args` with FTP_PASSWORD set.
    @discardableResult
    func run(_ applet: String, _ args: [String], input: Data? = nil, password: String? = nil) throws -> RunResult {
        try runProgram(try rescueboxBinary(), [applet] + args, input: input, environment: environment(password: password))
    }

    func home(_ name: String) -> String { server.home + "/" + name }

    func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: path) }

    func assertNoPassword(_ r: RunResult, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertFalse(r.stderr.contains(server.password), "password shown: \(r.stderr)", file: file, line: line)
        XCTAssertFalse(r.stdoutText.contains(server.password), file: file, line: line)
    }
}

final class FtpPutTests: FtpTestCase {
    func testUploadFileStdinAndCommand() throws {
        let dir = TempDir()
        let payload = try dir.writeRandom("src.bin", count: 3_000_001)
        // A file, to a name with spaces and UTF-8, in the busybox form.
        var r = try run("ftpput", ["-u", server.user, server.hostPort, "my file ü.bin", dir.file("src.bin")])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: home("my file ü.bin"))), payload)
        XCTAssertTrue(r.stderr.contains("3000001 bytes (3.0 MB, 2.9 MiB) uploaded"), r.stderr)
        // stdin, URL form with percent escapes.
        r = try run("ftpput", ["\(server.urlBase)/stdin%20copy.bin"], input: payload)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: home("stdin copy.bin"))), payload)
        // stdin given as '-'.
        r = try run("ftpput", ["-u", server.user, server.hostPort, "dash.bin", "-"], input: payload)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: home("dash.bin"))), payload)
        // A command's output.
        r = try run("ftpput", ["\(server.urlBase)/cmd.txt", "|seq 1 100000"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try String(contentsOfFile: home("cmd.txt"), encoding: .utf8), try shOK("seq 1 100000") + "\n")
        // A URL ending in / takes LOCAL's name.
        r = try run("ftpput", ["\(server.urlBase)/", dir.file("src.bin")])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(exists(home("src.bin")))
        // Nothing temporary left behind.
        let names = try FileManager.default.contentsOfDirectory(atPath: server.home)
        XCTAssertFalse(names.contains { $0.hasSuffix(".part") }, "\(names)")
    }

    /// To a server on this host the bytes are copied (send), not spliced:
    /// zero-copy makes a same-host server slower. RESCUEBOX_ZERO_COPY
    /// overrides it both ways. strace counts the syscalls that moved them.
    func testLoopbackUploadsCopyUnlessZeroCopyIsForced() throws {
        let strace = try which("strace")
        let dir = TempDir()
        let payload = try dir.writeRandom("src.bin", count: 4_000_003, seed: 16)
        for (policy, local) in [("auto", dir.file("src.bin")), ("auto", "|cat '\(dir.file("src.bin"))'"),
                                ("always", dir.file("src.bin")), ("always", "|cat '\(dir.file("src.bin"))'"),
                                ("never", dir.file("src.bin"))] {
            var env = environment()
            env["RESCUEBOX_ZERO_COPY"] = policy
            let log = dir.file("trace")
            let r = try runProgram(strace, ["-qq", "-e", "trace=splice,sendfile,sendto", "-o", log, try rescueboxBinary(),
                                            "ftpput", "\(server.urlBase)/z.bin", local], environment: env)
            XCTAssertEqual(r.status, 0, "\(policy) \(local): \(r.stderr)")
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: home("z.bin"))), payload, "\(policy) \(local)")
            let trace = try String(contentsOfFile: log, encoding: .utf8)
            let spliced = trace.contains("splice(") || trace.contains("sendfile(")
            XCTAssertEqual(spliced, policy == "always", "\(policy) \(local): \(trace.prefix(2000))")
        }
    }

    func testZeroBytes() throws {
        let r = try run("ftpput", ["\(server.urlBase)/empty", "-"], input: Data())
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: home("empty"))[.size] as? Int, 0)
        let dir = TempDir()
        _ = FileManager.default.createFile(atPath: dir.file("e"), contents: nil)
        XCTAssertEqual(try run("ftpput", ["\(server.urlBase)/empty2", dir.file("e")]).status, 0)
        XCTAssertTrue(exists(home("empty2")))
    }

    func testCommandFailureFailsUpload() throws {
        let r = try run("ftpput", ["\(server.urlBase)/bad.txt", "|seq 1 1000; exit 3"])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("exited with status 3"), r.stderr)
        XCTAssertTrue(r.stderr.contains("partial file deleted"), r.stderr)
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
        XCTAssertFalse(exists(home("bad.txt")))
        XCTAssertFalse(exists(home("bad.txt.part")))
        // Killed by a signal counts as failure too.
        let k = try run("ftpput", ["\(server.urlBase)/killed.txt", "|echo x; kill -9 $$"])
        XCTAssertEqual(k.status, 1)
        XCTAssertTrue(k.stderr.contains("killed by signal 9"), k.stderr)
        XCTAssertFalse(exists(home("killed.txt")))
    }

    func testWrongPasswordIs530AndNeverShown() throws {
        let r = try run("ftpput", ["-v", "\(server.urlBase)/x", "-"], input: Data("x".utf8), password: "not-the-password")
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("530"), r.stderr)
        XCTAssertTrue(r.stderr.contains("PASS ****"), r.stderr)
        XCTAssertFalse(r.stderr.contains("not-the-password"), r.stderr)
        // -p works (with a warning), and -v never shows it.
        let ok = try runProgram(try rescueboxBinary(), ["ftpput", "-v", "-u", server.user, "-p", server.password,
                                                         server.hostPort, "viaP", "-"], input: Data("y".utf8))
        XCTAssertEqual(ok.status, 0, ok.stderr)
        XCTAssertTrue(ok.stderr.contains("warning: a password on the command line"), ok.stderr)
        assertNoPassword(ok)
    }

    func testMissingDirectoryAndMkdirs() throws {
        var r = try run("ftpput", ["\(server.urlBase)/no/such/dir/f", "-"], input: Data("abc".utf8))
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("553"), r.stderr)
        XCTAssertTrue(r.stderr.contains("(no bytes sent; nothing was stored, nothing deleted)"), r.stderr)
        r = try run("ftpput", ["--mkdirs", "\(server.urlBase)/no/such/dir ü/f", "-"], input: Data("abc".utf8))
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try String(contentsOfFile: home("no/such/dir ü/f"), encoding: .utf8), "abc")
        // Again: the directories exist now, which is fine.
        r = try run("ftpput", ["--mkdirs", "\(server.urlBase)/no/such/dir ü/g", "-"], input: Data("d".utf8))
        XCTAssertEqual(r.status, 0, r.stderr)
    }

    func testResume() throws {
        let dir = TempDir()
        let payload = try dir.writeRandom("big", count: 5_000_000, seed: 7)
        // An earlier attempt left 1.5 MB in big.part.
        try server.storeAsServerUser("big.part", payload.prefix(1_500_000))
        let r = try run("ftpput", ["-c", "\(server.urlBase)/big", dir.file("big")])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("resuming"), r.stderr)
        XCTAssertTrue(r.stderr.contains("3500000 bytes"), r.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: home("big"))), payload)
        XCTAssertFalse(exists(home("big.part")))
        // -c on a pipe is refused up front.
        let p = try run("ftpput", ["-c", "\(server.urlBase)/p", "|echo x"])
        XCTAssertEqual(p.status, 2, p.stderr)
    }

    func testInPlaceAndKeepPartial() throws {
        var r = try run("ftpput", ["--in-place", "\(server.urlBase)/direct", "|echo hello"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try String(contentsOfFile: home("direct"), encoding: .utf8), "hello\n")
        r = try run("ftpput", ["--keep-partial", "\(server.urlBase)/kept", "|echo partial; exit 1"])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("partial file kept"), r.stderr)
        XCTAssertEqual(try String(contentsOfFile: home("kept.part"), encoding: .utf8), "partial\n")
    }

    /// While the data flows: REMOTE.part exists, REMOTE does not, and the
    /// -p password is gone from /proc/PID/cmdline. Afterwards: renamed.
    func testTempThenRenameAndPasswordWipedFromCmdline() throws {
        let dir = TempDir()
        let fifo = dir.file("fifo")
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        let process = try BackgroundProcess.start(try rescueboxBinary(), ["ftpput", "-u", server.user, "-p", server.password,
                                                                          server.hostPort, "slow.bin", "|cat '\(fifo)'"])
        try waitFor("slow.bin.part on the server") { exists(home("slow.bin.part")) }
        let cmdline = try Data(contentsOf: URL(fileURLWithPath: "/proc/\(process.pid)/cmdline"))
        XCTAssertNil(cmdline.range(of: Data(server.password.utf8)), "password visible in cmdline")
        XCTAssertNotNil(cmdline.range(of: Data("slow.bin".utf8)))
        XCTAssertFalse(exists(home("slow.bin")))
        let writer = try FileHandle(forWritingTo: URL(fileURLWithPath: fifo))
        try writer.write(contentsOf: pseudoRandomBytes(2_000_000))
        try writer.close()
        let result = try process.wait(timeout: 120)
        let stderr = result.stderr
        XCTAssertEqual(result.status, 0, stderr)
        XCTAssertFalse(stderr.contains(server.password))
        XCTAssertTrue(exists(home("slow.bin")))
        XCTAssertFalse(exists(home("slow.bin.part")))
    }

    /// Ctrl-C mid-upload: the partial remote file is removed.
    func testInterruptDeletesPartial() throws {
        let dir = TempDir()
        let fifo = dir.file("fifo")
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        let process = try BackgroundProcess.start(try rescueboxBinary(), ["ftpput", "\(server.urlBase)/int.bin", "|cat '\(fifo)'"],
                                                  environment: environment())
        // Keep the pipe open (no EOF) so the upload is in progress.
        let writer = try FileHandle(forWritingTo: URL(fileURLWithPath: fifo))
        try writer.write(contentsOf: Data(count: 100_000))
        try waitFor("int.bin.part on the server") { exists(home("int.bin.part")) }
        process.signal(SIGINT)
        try waitFor("ftpput to exit") { !process.isRunning }
        try? writer.close()
        let result = try process.wait(timeout: 60)
        let stderr = result.stderr
        XCTAssertEqual(result.status, 130, stderr)
        XCTAssertTrue(stderr.contains("interrupted by SIGINT"), stderr)
        try waitFor("int.bin.part removed") { !exists(home("int.bin.part")) }
        XCTAssertFalse(exists(home("int.bin")))
    }

    /// Ctrl-C while replacing a file the run did not write: only this run's
    /// .part goes, the server's existing file stays byte for byte.
    func testInterruptKeepsTheExistingFile() throws {
        let existing = pseudoRandomBytes(300_000, seed: 31)
        try existing.write(to: URL(fileURLWithPath: home("old.bin")))
        let dir = TempDir()
        let fifo = dir.file("fifo")
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        let process = try BackgroundProcess.start(try rescueboxBinary(), ["ftpput", "\(server.urlBase)/old.bin", "|cat '\(fifo)'"],
                                                  environment: environment())
        let writer = try FileHandle(forWritingTo: URL(fileURLWithPath: fifo))
        try writer.write(contentsOf: Data(count: 100_000))
        try waitFor("old.bin.part on the server") { exists(home("old.bin.part")) }
        process.signal(SIGINT)
        try waitFor("ftpput to exit") { !process.isRunning }
        try? writer.close()
        let result = try process.wait(timeout: 60)
        XCTAssertEqual(result.status, 130, result.stderr)
        XCTAssertTrue(result.stderr.contains("interrupted by SIGINT"), result.stderr)
        try waitFor("old.bin.part removed") { !exists(home("old.bin.part")) }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: home("old.bin"))), existing)
    }

    // MARK: Ctrl-C during `ftpput -c` onto an earlier run's .part

    /// The earlier run's NAME.part comes from a first `ftpput -c` that was
    /// interrupted; a second `-c` is interrupted while it sends; a third
    /// completes. Nothing of the .part is ever lost: after each interrupt it
    /// is still there, a prefix of the source, never shorter than before.
    func testInterruptedResumeKeepsThePartThenCompletes() throws {
        try restartWithRateLimit()
        let dir = TempDir()
        let payload = try dir.writeRandom("big.iso", count: resumeSourceSize, seed: 41)
        let part = home("big.iso.part")
        // First run: -c with nothing on the server yet starts at 0; Ctrl-C keeps what it sent.
        let first = try interruptResumingUpload("big.iso", dir.file("big.iso"), onceThePartExceeds: 1 << 20)
        XCTAssertEqual(first.status, 130, first.stderr)
        XCTAssertEqual(nonEmptyLines(first.stderr), ["rescuebox ftpput: interrupted by SIGINT"], first.stderr)
        let earlier = try assertPrefix(part, of: payload, atLeast: 1 << 20, "after the first run")
        XCTAssertFalse(exists(home("big.iso")))

        // Second run: resumes at `earlier`, Ctrl-C while its own bytes land.
        let kept = try interruptResume("big.iso", dir.file("big.iso"), from: earlier, payload: payload)
        XCTAssertFalse(exists(home("big.iso")))

        // Third run: completes from what the second left.
        try assertResumeCompletes("big.iso", dir.file("big.iso"), from: kept)
    }

    /// As above, with the earlier .part stored the way `-c` expects (a
    /// prefix of the source, the server user's file) and an older complete
    /// NAME on the server: the interrupted resume leaves that NAME byte for
    /// byte; only the completed one replaces it.
    func testInterruptedResumeKeepsTheExistingFile() throws {
        try restartWithRateLimit()
        let dir = TempDir()
        let payload = try dir.writeRandom("disk.img", count: resumeSourceSize, seed: 43)
        let older = pseudoRandomBytes(700_001, seed: 44)
        let earlier = 1_500_000
        try server.storeAsServerUser("disk.img", older)
        try server.storeAsServerUser("disk.img.part", payload.prefix(earlier))

        let kept = try interruptResume("disk.img", dir.file("disk.img"), from: earlier, payload: payload)
        XCTAssertEqual(FileManager.default.contents(atPath: home("disk.img")), older,
                       "the interrupted resume changed the server's existing disk.img")

        let done = try assertResumeCompletes("disk.img", dir.file("disk.img"), from: kept)
        XCTAssertTrue(done.stderr.contains("replaced an existing 700001-byte disk.img"), done.stderr)
    }

    /// A `-c` run resuming NAME.part at `earlier`, interrupted once 256 KiB
    /// of its own have landed: exit 130, the resume notice and the interrupt
    /// line only, and NAME.part still a prefix of `payload`, longer than
    /// before and short of the end. Returns its length.
    private func interruptResume(_ name: String, _ local: String, from earlier: Int, payload: Data,
                                 file: StaticString = #filePath, line: UInt = #line) throws -> Int {
        let run = try interruptResumingUpload(name, local, onceThePartExceeds: earlier + (256 << 10))
        XCTAssertEqual(run.status, 130, run.stderr, file: file, line: line)
        XCTAssertEqual(nonEmptyLines(run.stderr), ["rescuebox ftpput: resuming ftp://\(server.hostPort)/\(name) at byte \(earlier)",
                                           "rescuebox ftpput: interrupted by SIGINT"], run.stderr, file: file, line: line)
        let kept = try assertPrefix(home(name + ".part"), of: payload, atLeast: earlier + (256 << 10), "after the interrupted resume")
        XCTAssertLessThan(kept, payload.count, "the interrupted resume had sent everything: the interrupt came too late",
                          file: file, line: line)
        return kept
    }

    /// Big enough that both interrupted runs, and what the server drains from
    /// the socket buffers after each, stay well short of the end.
    private var resumeSourceSize: Int { 24 << 20 }

    /// A vsftpd limited to 4 MiB/s instead of setUp's: uploads last seconds.
    private func restartWithRateLimit() throws {
        server.stop()
        server = try VsftpdServer.start(FTPServerOptions(maxRate: 4 << 20))
    }

    /// Starts `ftpput -c NAME LOCAL`, waits until the server's NAME.part
    /// holds more than `bytes` (so this run is sending), SIGINTs it, waits
    /// for it to exit and for the server's session to end (so the server
    /// has written every byte it received). Returns ftpput's result.
    private func interruptResumingUpload(_ name: String, _ local: String, onceThePartExceeds bytes: Int) throws -> RunResult {
        let part = home(name + ".part")
        let process = try BackgroundProcess.start(try rescueboxBinary(), ["ftpput", "-c", "\(server.urlBase)/\(name)", local],
                                                  environment: environment())
        try waitFor("\(name).part beyond \(bytes) bytes while ftpput -c sends",
                    detail: { "\(fileSize(part)) bytes; ftpput: \(process.stderr)" }) {
            fileSize(part) > bytes || !process.isRunning
        }
        guard process.isRunning else {
            throw prerequisiteFailed("ftpput -c ended before the interrupt (\(fileSize(part)) bytes in \(name).part): \(process.stderr)")
        }
        process.signal(SIGINT)
        let result = try process.wait(timeout: 60)
        let server = self.server!
        try waitFor("the server's session to end", detail: { "sessions \(server.sessionProcesses())" }) {
            server.sessionProcesses().isEmpty
        }
        return result
    }

    /// The file at `path` is the first N bytes of `source`, N >= `minimum`; returns N.
    @discardableResult
    private func assertPrefix(_ path: String, of source: Data, atLeast minimum: Int, _ when: String,
                              file: StaticString = #filePath, line: UInt = #line) throws -> Int {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw prerequisiteFailed("\(when): \(path) is gone", file: file, line: line)
        }
        XCTAssertGreaterThanOrEqual(data.count, minimum, "\(when): \(path) shrank", file: file, line: line)
        XCTAssertLessThanOrEqual(data.count, source.count, "\(when): \(path) is longer than the source", file: file, line: line)
        XCTAssertTrue(data == source.prefix(data.count), "\(when): \(path) is not the source's first \(data.count) bytes",
                      file: file, line: line)
        return data.count
    }

    /// `ftpput -c NAME LOCAL` completes from the `offset` bytes in NAME.part:
    /// NAME's sha256 is LOCAL's, no .part remains. Returns ftpput's result.
    @discardableResult
    private func assertResumeCompletes(_ name: String, _ local: String, from offset: Int,
                                       file: StaticString = #filePath, line: UInt = #line) throws -> RunResult {
        let r = try run("ftpput", ["-c", "\(server.urlBase)/\(name)", local])
        XCTAssertEqual(r.status, 0, r.stderr, file: file, line: line)
        XCTAssertTrue(r.stderr.contains("resuming ftp://\(server.hostPort)/\(name) at byte \(offset)"), r.stderr, file: file, line: line)
        XCTAssertTrue(r.stderr.contains("(resumed at \(offset))"), r.stderr, file: file, line: line)
        XCTAssertEqual(try shOK("sha256sum < '\(home(name))'"), try shOK("sha256sum < '\(local)'"),
                       "\(name) on the server differs from the source", file: file, line: line)
        XCTAssertFalse(exists(home(name + ".part")), "\(name).part left behind", file: file, line: line)
        return r
    }

    func testNetrc() throws {
        let dir = TempDir()
        let netrc = dir.file("netrc")
        try "machine 127.0.0.1 login \(server.user) password \(server.password)\n".write(toFile: netrc, atomically: false, encoding: .utf8)
        chmod(netrc, 0o644)
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "FTP_PASSWORD")
        let bin = try rescueboxBinary()
        let refused = try runProgram(bin, ["ftpput", "--netrc-file", netrc, server.hostPort, "n", "-"], input: Data("n".utf8), environment: env)
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.stderr.contains("refused: readable or writable by group or others"), refused.stderr)
        chmod(netrc, 0o600)
        let ok = try runProgram(bin, ["ftpput", "--netrc-file", netrc, server.hostPort, "n", "-"], input: Data("n".utf8), environment: env)
        XCTAssertEqual(ok.status, 0, ok.stderr)
        XCTAssertTrue(exists(home("n")))
        // $HOME/.netrc is read by default.
        try FileManager.default.copyItem(atPath: netrc, toPath: dir.file(".netrc"))
        env["HOME"] = dir.path
        let viaHome = try runProgram(bin, ["ftpput", server.hostPort, "h", "-"], input: Data("h".utf8), environment: env)
        XCTAssertEqual(viaHome.status, 0, viaHome.stderr)
        XCTAssertTrue(exists(home("h")))
    }

    func testIPv6() throws {
        let v6 = try VsftpdServer.start(ipv6: true)
        defer { v6.stop() }
        let r = try runProgram(try rescueboxBinary(), ["ftpput", "-u", v6.user, v6.hostPort, "six", "-"],
                               input: Data("over ipv6".utf8), environment: environment(password: v6.password))
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try String(contentsOfFile: v6.home + "/six", encoding: .utf8), "over ipv6")
        let g = try runProgram(try rescueboxBinary(), ["ftpget", "\(v6.urlBase)/six", "-"],
                               environment: environment(password: v6.password))
        XCTAssertEqual(g.status, 0, g.stderr)
        XCTAssertEqual(g.stdoutText, "over ipv6")
    }

    func testBadArgumentsAreOneLineUsageErrors() throws {
        for args in [[String](), ["127.0.0.1:1"], ["ftp://"], ["ftp://h:0/x", "-"], ["--timeout", "0", "ftp://h/x", "-"],
                     ["ftp://h/", "-"], ["a", "b", "c", "d"]] {
            let r = try run("ftpput", args, input: Data())
            XCTAssertEqual(r.status, 2, "\(args): \(r.stderr)")
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, "\(args): \(r.stderr)")
        }
        let missing = try run("ftpput", ["\(server.urlBase)/x", "/nonexistent/file"])
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.stderr.contains("/nonexistent/file: open: No such file or directory"), missing.stderr)
        let refused = try run("ftpput", ["--connect-timeout", "5", "127.0.0.1:1", "x", "-"], input: Data())
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.stderr.contains("Connection refused"), refused.stderr)
        // (No unknown-host case here: it would query the system's DNS server,
        // which is not on loopback. The chroot test covers names.)
    }
}

/// Injection attempts against the fault server, which records what it got:
/// nothing may be sent at all.
final class FtpInjectionTests: XCTestCase {
    override func setUp() { signal(SIGPIPE, SIG_IGN) }

    func testCRLFRefusedBeforeAnythingIsSent() throws {
        let server = try FaultFTPServer(scenario: "normal")
        let bin = try rescueboxBinary()
        let host = "127.0.0.1:\(server.port)"
        var env = ProcessInfo.processInfo.environment
        env["FTP_PASSWORD"] = "pw"
        let attempts: [[String]] = [
            ["ftpput", host, "a\r\nDELE data.bin", "-"],
            ["ftpput", host, "a\nDELE data.bin", "-"],
            ["ftpput", "-u", "u\r\nDELE data.bin", host, "x", "-"],
            ["ftpput", "-u", "u", "-p", "p\r\nDELE data.bin", host, "x", "-"],
            ["ftpput", "ftp://\(host)/x%0D%0ADELE%20data.bin", "-"],
            ["ftpget", host, "-", "data.bin\r\nDELE data.bin"],
            ["ftpget", "ftp://u%0A@\(host)/data.bin", "-"],
        ]
        for args in attempts {
            let r = try runProgram(bin, args, input: Data("x".utf8), environment: env)
            XCTAssertEqual(r.status, 2, "\(args): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains("CR, LF or NUL"), "\(args): \(r.stderr)")
        }
        var badEnv = env
        badEnv["FTP_PASSWORD"] = "pw\r\nDELE data.bin"
        let r = try runProgram(bin, ["ftpput", "-u", "u", host, "x", "-"], input: Data("x".utf8), environment: badEnv)
        XCTAssertEqual(r.status, 2, r.stderr)
        XCTAssertEqual(server.log, [], "something reached the server")
    }
}

/// The binary's upload paths against the fault server: mid-transfer errors
/// and short stores, with zero-copy (splice from a file and from a pipe,
/// RESCUEBOX_ZERO_COPY=always; loopback alone would copy) and without.
final class FtpFaultBinaryTests: XCTestCase {
    override func setUp() { signal(SIGPIPE, SIG_IGN) }

    func testSpliceUploadsReportServerErrorsAndShortStores() throws {
        let bin = try rescueboxBinary()
        let dir = TempDir()
        try pseudoRandomBytes(8 << 20).write(to: URL(fileURLWithPath: dir.file("src")))
        var env = ProcessInfo.processInfo.environment
        env["FTP_PASSWORD"] = "pw"
        for scenario in ["fail552", "fail451", "short-store", "normal"] {
            let server = try FaultFTPServer(scenario: scenario)
            for (local, zeroCopy) in [(dir.file("src"), "always"), ("|cat '\(dir.file("src"))'", "always"),
                                      (dir.file("src"), "auto"), ("|cat '\(dir.file("src"))'", "auto")] {
                env["RESCUEBOX_ZERO_COPY"] = zeroCopy
                let r = try runProgram(bin, ["ftpput", "-u", "u", "--timeout", "10", "127.0.0.1:\(server.port)", "up.bin", local],
                                       environment: env)
                switch scenario {
                case "normal":
                    XCTAssertEqual(r.status, 0, "\(local): \(r.stderr)")
                    XCTAssertTrue(r.stderr.contains("8388608 bytes"), r.stderr)
                case "short-store":
                    XCTAssertEqual(r.status, 1, r.stderr)
                    XCTAssertTrue(r.stderr.contains("the server stored 8388598 bytes of the 8388608 sent"), r.stderr)
                    XCTAssertTrue(r.stderr.contains("partial file deleted"), r.stderr)
                default:
                    XCTAssertEqual(r.status, 1, r.stderr)
                    XCTAssertTrue(r.stderr.contains(String(scenario.dropFirst(4))), "\(local): \(r.stderr)")
                    XCTAssertTrue(r.stderr.contains("partial file deleted"), "\(local): \(r.stderr)")
                }
                XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
            }
        }
    }

    func testSpliceDownloadsCatchShortTransfers() throws {
        let bin = try rescueboxBinary()
        let dir = TempDir()
        let server = try FaultFTPServer(scenario: "short-retr")
        var env = ProcessInfo.processInfo.environment
        env["FTP_PASSWORD"] = "pw"
        // Into a file (splice through a pipe) and into stdout (a pipe).
        for local in [dir.file("got"), "-"] {
            let r = try runProgram(bin, ["ftpget", "-u", "u", "127.0.0.1:\(server.port)", local, "data.bin"], environment: env)
            XCTAssertEqual(r.status, 1, r.stderr)
            XCTAssertTrue(r.stderr.contains("short transfer: 1048573 of 1048583 bytes"), r.stderr)
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.file("got")))
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.file("got.part")))
    }
}
