import Foundation
import Glibc
import XCTest
import TestSupport

/// The same operation matrix against vsftpd, proftpd and pure-ftpd, over
/// IPv4 and IPv6: uploads from a file, stdin and `|cmd`; downloads to a file
/// and stdout; both resumes; --mkdirs; backup and restore with the server's
/// session killed mid-transfer; a full server disk; SIZE denied; an
/// existing file the server will not let us write (--in-place, --no-clobber,
/// the default replace). Every cell is checked and
/// reported on its own ("proftpd on ::1: ftpput -c: ..."), and one failing
/// cell does not stop the others. Each server is a fresh one per cell.
final class FtpInteropTests: XCTestCase {
    /// A row of the matrix: a server kind and how it is set up.
    struct Cell: CustomStringConvertible {
        let kind: FTPServerKind
        let options: FTPServerOptions
        var description: String {
            var s = "\(kind) on \(options.ipv6 ? "::1" : "127.0.0.1")"
            if options.denySize { s += " (SIZE denied)" }
            if options.allowStoreRestart { s += " (AllowStoreRestart on)" }
            return s
        }
    }

    /// Every server, IPv4 and IPv6.
    var everyServer: [Cell] { ScriptedFTPServer.all(ipv6: true).map { Cell(kind: $0.0, options: $0.1) } }
    /// Every server over IPv4 only (the address family does not matter to the case).
    var everyServerIPv4: [Cell] { ScriptedFTPServer.all(ipv6: false).map { Cell(kind: $0.0, options: $0.1) } }

    override func setUp() {
        // Input fed to a child that exits early must not kill the test runner.
        signal(SIGPIPE, SIG_IGN)
    }

    /// Runs `body` once per cell, each with a fresh server, with `tweak`
    /// applied to the cell's options. A cell whose server does not start
    /// fails (or skips the whole test when not root / not installable).
    func forEach(_ cells: [Cell], tweak: (inout FTPServerOptions) -> Void = { _ in },
                 _ body: (String, ScriptedFTPServer) throws -> Void) throws {
        for cell in cells {
            var options = cell.options
            tweak(&options)
            let label = Cell(kind: cell.kind, options: options).description
            let server: ScriptedFTPServer
            do {
                server = try ScriptedFTPServer.launch(cell.kind, options)
            } catch let skip as XCTSkip {
                throw skip
            } catch {
                XCTFail("\(label): \(error)")
                continue
            }
            defer { server.stop() }
            do {
                try body(label, server)
            } catch {
                XCTFail("\(label): \(error)")
            }
        }
    }

    func environment(_ server: TestFTPServer) -> [String: String] {
        var env = ProcessInfo.processInfo.environment
        env["FTP_PASSWORD"] = server.password
        env["HOME"] = "/nonexistent-home"
        return env
    }

    /// `rescuebox APPLET args` with FTP_PASSWORD set.
    func run(_ server: TestFTPServer, _ applet: String, _ args: [String], input: Data? = nil,
             timeout: TimeInterval = 60) throws -> RunResult {
        try runProgram(try rescueboxBinary(), [applet] + args, input: input, environment: environment(server),
                       timeout: timeout)
    }

    func contents(_ path: String) -> Data? { FileManager.default.contents(atPath: path) }

    /// Every file below `dir` (relative names), for "nothing left behind".
    func files(_ dir: String) -> [String] {
        (FileManager.default.enumerator(atPath: dir)?.allObjects as? [String] ?? [])
            .filter { !isDirectory(dir + "/" + $0) }.sorted()
    }

    func isDirectory(_ path: String) -> Bool {
        var dir: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &dir) && dir.boolValue
    }


    /// Polls until `condition` holds; false (after `timeout`) otherwise.
    func poll(timeout: TimeInterval = 30, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while !condition() {
            if Date() > deadline { return false }
            usleep(10_000)
        }
        return true
    }

    /// A program run on a thread of its own, so the test can act while it runs.
    final class Background: @unchecked Sendable {
        private let done = DispatchSemaphore(value: 0)
        private var result: RunResult?
        private var error: Error?

        init(_ executable: String, _ arguments: [String], environment: [String: String], timeout: TimeInterval) {
            let thread = Thread { [self] in
                do { result = try runProgram(executable, arguments, environment: environment, timeout: timeout) }
                catch { self.error = error }
                done.signal()
            }
            thread.start()
        }

        var finished: Bool {
            if done.wait(timeout: .now()) == .success { done.signal(); return true }
            return false
        }

        func wait() throws -> RunResult {
            done.wait()
            done.signal()
            if let error { throw error }
            return result!
        }
    }

    // MARK: - The matrix

    /// ftpput from a file (busybox form), stdin and `|cmd` (URL form), and with --mkdirs.
    func testUploads() throws {
        let dir = TempDir()
        let payload = pseudoRandomBytes(3 << 20 | 12345)
        let local = dir.file("src.bin")
        try payload.write(to: URL(fileURLWithPath: local))
        let expectedSeq = Data((1...200_000).map { "\($0)\n" }.joined().utf8)
        try forEach(everyServer) { cell, server in
            var r = try run(server, "ftpput", ["-u", server.user, server.hostPort, "file.bin", local])
            XCTAssertEqual(r.status, 0, "\(cell): ftpput HOST REMOTE FILE: \(r.stderr)")
            XCTAssertTrue(contents(server.home + "/file.bin") == payload, "\(cell): ftpput from a file: content differs")

            r = try run(server, "ftpput", ["\(server.urlBase)/stdin.bin"], input: payload)
            XCTAssertEqual(r.status, 0, "\(cell): ftpput URL < stdin: \(r.stderr)")
            XCTAssertTrue(contents(server.home + "/stdin.bin") == payload, "\(cell): ftpput from stdin: content differs")

            r = try run(server, "ftpput", ["\(server.urlBase)/cmd.txt", "|seq 1 200000"])
            XCTAssertEqual(r.status, 0, "\(cell): ftpput URL '|seq': \(r.stderr)")
            XCTAssertTrue(contents(server.home + "/cmd.txt") == expectedSeq, "\(cell): ftpput from |cmd: content differs")

            r = try run(server, "ftpput", ["--mkdirs", "\(server.urlBase)/a/b c/d/m.bin", local])
            XCTAssertEqual(r.status, 0, "\(cell): ftpput --mkdirs: \(r.stderr)")
            XCTAssertTrue(contents(server.home + "/a/b c/d/m.bin") == payload, "\(cell): ftpput --mkdirs: content differs")

            XCTAssertEqual(files(server.home), ["a/b c/d/m.bin", "cmd.txt", "file.bin", "stdin.bin"], "\(cell): left behind")
        }
    }

    /// ftpget to a file (busybox order), to stdout (URL form), and -c.
    func testDownloads() throws {
        let payload = pseudoRandomBytes(3 << 20 | 777, seed: 7)
        try forEach(everyServer) { cell, server in
            let dir = TempDir()
            try server.storeAsServerUser("get.bin", payload)
            // busybox order: HOST LOCAL REMOTE.
            var r = try run(server, "ftpget", ["-u", server.user, server.hostPort, dir.file("got.bin"), "get.bin"])
            XCTAssertEqual(r.status, 0, "\(cell): ftpget HOST LOCAL REMOTE: \(r.stderr)")
            XCTAssertTrue(contents(dir.file("got.bin")) == payload, "\(cell): ftpget to a file: content differs")
            XCTAssertEqual(files(dir.path), ["got.bin"], "\(cell): ftpget left behind")

            r = try run(server, "ftpget", ["\(server.urlBase)/get.bin", "-"])
            XCTAssertEqual(r.status, 0, "\(cell): ftpget URL -: \(r.stderr)")
            XCTAssertTrue(r.stdout == payload, "\(cell): ftpget to stdout: \(r.stdout.count) of \(payload.count) bytes")

            // -c continues LOCAL.part with REST.
            try payload.prefix(1 << 20 | 5).write(to: URL(fileURLWithPath: dir.file("big.bin.part")))
            r = try run(server, "ftpget", ["-c", "\(server.urlBase)/get.bin", dir.file("big.bin")])
            XCTAssertEqual(r.status, 0, "\(cell): ftpget -c: \(r.stderr)")
            XCTAssertTrue(r.stderr.contains(String(1 << 20 | 5)), "\(cell): ftpget -c did not resume at the .part's end: \(r.stderr)")
            XCTAssertTrue(contents(dir.file("big.bin")) == payload, "\(cell): ftpget -c: content differs")
            XCTAssertEqual(files(dir.path), ["big.bin", "got.bin"], "\(cell): ftpget -c left behind")
        }
    }

    /// ftpput -c continues REMOTE.part. proftpd's default (AllowStoreRestart
    /// off) refuses REST before STOR, and APPE as well (both "451 NAME:
    /// Append/Restart not permitted, try again"): there the upload must still
    /// succeed (APPE, else from the start), only the offset is not checked.
    func testUploadResume() throws {
        let dir = TempDir()
        let payload = pseudoRandomBytes(3 << 20 | 4321, seed: 11)
        let local = dir.file("src.bin")
        try payload.write(to: URL(fileURLWithPath: local))
        let cells = everyServer + [Cell(kind: .proftpd, options: FTPServerOptions(allowStoreRestart: true))]
        try forEach(cells) { cell, server in
            try server.storeAsServerUser("res.bin.part", payload.prefix(1 << 20 | 999))
            let r = try run(server, "ftpput", ["-c", "\(server.urlBase)/res.bin", local])
            XCTAssertEqual(r.status, 0, "\(cell): ftpput -c: \(r.stderr)")
            if server.allowsUploadResume {
                XCTAssertTrue(r.stderr.contains(String(1 << 20 | 999)), "\(cell): ftpput -c did not resume at the .part's end: \(r.stderr)")
            }
            XCTAssertTrue(contents(server.home + "/res.bin") == payload,
                          "\(cell): ftpput -c: res.bin is \(fileSize(server.home + "/res.bin")) bytes, content differs")
            XCTAssertEqual(files(server.home), ["res.bin"], "\(cell): ftpput -c left behind")
        }
    }

    /// An existing remote file the server will not let us open for writing
    /// (root's, mode 0444, in the user's directory):
    /// - `--in-place` fails (vsftpd 553, proftpd 550, pure-ftpd 553) and the
    ///   file is exactly as it was: never DELEd, this run stored nothing in it;
    /// - `--no-clobber` refuses and keeps it;
    /// - the default (.part, then RNTO over it) replaces it, as curl and
    ///   busybox would, and says so ("replaced an existing 300000-byte ...").
    func testExistingReadOnlyFile() throws {
        let dir = TempDir()
        let new = pseudoRandomBytes(1 << 20, seed: 19)
        try new.write(to: URL(fileURLWithPath: dir.file("new.bin")))
        let old = pseudoRandomBytes(300_000, seed: 23)
        try forEach(everyServerIPv4) { cell, server in
            let keep = server.home + "/keep.bin"
            try server.putReadOnlyFile("keep.bin", old)
            var r = try run(server, "ftpput", ["--in-place", "\(server.urlBase)/keep.bin", dir.file("new.bin")])
            XCTAssertEqual(r.status, 1, "\(cell): ftpput --in-place over a read-only file: \(r.stderr)")
            XCTAssertEqual(nonEmptyLines(r.stderr).count, 1, "\(cell): ftpput --in-place: not one line: \(r.stderr)")
            XCTAssertTrue(contents(keep) == old, "\(cell): ftpput --in-place destroyed keep.bin (\(fileSize(keep)) bytes): \(r.stderr)")
            try? FileManager.default.removeItem(atPath: keep)

            try server.putReadOnlyFile("keep.bin", old)
            r = try run(server, "ftpput", ["--no-clobber", "\(server.urlBase)/keep.bin", dir.file("new.bin")])
            XCTAssertEqual(r.status, 1, "\(cell): ftpput --no-clobber over an existing file: \(r.stderr)")
            XCTAssertTrue(contents(keep) == old, "\(cell): ftpput --no-clobber replaced keep.bin (\(fileSize(keep)) bytes): \(r.stderr)")
            XCTAssertEqual(files(server.home), ["keep.bin"], "\(cell): ftpput --no-clobber left behind")

            r = try run(server, "ftpput", ["\(server.urlBase)/keep.bin", dir.file("new.bin")])
            XCTAssertEqual(r.status, 0, "\(cell): ftpput over a read-only file: \(r.stderr)")
            XCTAssertTrue(contents(keep) == new, "\(cell): ftpput over a read-only file: keep.bin not replaced")
            XCTAssertTrue(r.stderr.contains("replaced") && r.stderr.contains("300000"),
                          "\(cell): ftpput does not say it replaced an existing 300000-byte file: \(r.stderr)")
            XCTAssertEqual(files(server.home), ["keep.bin"], "\(cell): ftpput left behind")
        }
    }

    /// backup of an image file while the server's session is killed
    /// mid-transfer: backup reconnects and resumes (on proftpd's default,
    /// which refuses REST+STOR and APPE, it may start over), the image is
    /// complete.
    /// restore of an image (made locally, so this half does not depend on
    /// the first), the session killed mid-download: restore resumes and the
    /// result is byte-exact.
    func testBackupAndRestoreWithDroppedSessions() throws {
        let bin = try rescueboxBinary()
        let dir = TempDir()
        let image = dir.file("disk.img")
        // Random (stored as is by lzop) then zeros: about 2 MiB on the wire.
        var data = pseudoRandomBytes(2 << 20, seed: 29)
        data.append(Data(count: 1 << 20))
        try data.write(to: URL(fileURLWithPath: image))
        try shOK("'\(bin)' ddz -1 '\(image)' > '\(dir.file("ref.lzo"))'")
        let reference = try Data(contentsOf: URL(fileURLWithPath: dir.file("ref.lzo")))
        // About 1 MiB/s: the transfer lasts seconds, the kill lands mid-way.
        let cells = everyServer + [Cell(kind: .proftpd, options: FTPServerOptions(allowStoreRestart: true))]
        var cellNumber = 0
        try forEach(cells, tweak: { $0.maxRate = 1 << 20 }) { cell, server in
            let backup = Background(bin, ["backup", "--retries", "3", image, "\(server.urlBase)/disk.lzo"],
                                    environment: environment(server), timeout: 60)
            let sending = poll { backup.finished || files(server.home).contains { fileSize(server.home + "/" + $0) >= 512 << 10 } }
            XCTAssertTrue(sending && !backup.finished, "\(cell): backup: no upload in progress after 30 s")
            if !backup.finished { try server.killSessions() }
            var r = try backup.wait()
            XCTAssertEqual(r.status, 0, "\(cell): backup with a dropped session: \(r.stderr)")
            if server.allowsUploadResume {
                XCTAssertTrue(r.stderr.contains("resuming at byte"), "\(cell): backup did not resume: \(r.stderr)")
            }
            // The image and its block index (for rescuebox mount), nothing else.
            XCTAssertEqual(files(server.home), ["disk.lzo", "disk.lzo.index"], "\(cell): backup left behind")
            let check = try sh("lzop -dc '\(server.home)/disk.lzo' | cmp - '\(image)'")
            XCTAssertEqual(check.status, 0, "\(cell): backup's image does not decompress to the source: \(check.stderr)")

            try server.storeAsServerUser("ref.lzo", reference)
            let target = dir.file("restored-\(cellNumber).img")
            cellNumber += 1
            let restore = Background(bin, ["restore", "\(server.urlBase)/ref.lzo", target],
                                     environment: environment(server), timeout: 60)
            let reading = poll { restore.finished || fileSize(target) >= 512 << 10 || fileSize(target + ".part") >= 512 << 10 }
            XCTAssertTrue(reading && !restore.finished, "\(cell): restore: no download in progress after 30 s")
            if !restore.finished { try server.killSessions() }
            r = try restore.wait()
            XCTAssertEqual(r.status, 0, "\(cell): restore with a dropped session: \(r.stderr)")
            XCTAssertTrue(contents(target) == data, "\(cell): restore with a dropped session: \(fileSize(target)) bytes, differs")
        }
    }

    /// The server's disk fills up (a 2 MiB tmpfs home): vsftpd and pure-ftpd
    /// answer 451, proftpd 451 or 452 (when the write fails, not at close),
    /// none 552. ftpput fails with one line quoting the server's whole reply,
    /// exit 1. backup may reconnect once after a 451 (it may be transient);
    /// a second refusal at the same offset ends it: its last line quotes
    /// the server's whole reply, exit 1. Nothing is left on the server.
    func testFullDiskFailsFast() throws {
        let dir = TempDir()
        _ = try dir.writeRandom("big.bin", count: 4 << 20, seed: 31)
        // What each server's reply says (pure-ftpd's reply is three lines:
        // "451-Error during write to file", "451-Transfer aborted", then a
        // rate line; the whole reply must be quoted, not just its last line).
        let reason: [FTPServerKind: String] = [.vsftpd: "Failure writing to local file",
                                               .proftpd: "Transfer aborted", .pureftpd: "Error during write to file"]
        func quotesServer(_ text: String, _ kind: FTPServerKind) -> Bool {
            ["451", "452", "552"].contains { text.contains($0) } && text.contains(reason[kind]!)
        }
        try forEach(everyServerIPv4, tweak: { $0.homeSize = "2M" }) { cell, server in
            var began = Date()
            var r = try run(server, "ftpput", ["\(server.urlBase)/full.bin", dir.file("big.bin")], timeout: 15)
            XCTAssertEqual(r.status, 1, "\(cell): ftpput to a full disk: \(r.stderr)")
            XCTAssertEqual(nonEmptyLines(r.stderr).count, 1, "\(cell): ftpput to a full disk: not one line: \(r.stderr)")
            XCTAssertTrue(r.stderr.hasPrefix("rescuebox ftpput: ") && quotesServer(r.stderr, server.kind),
                          "\(cell): ftpput to a full disk does not quote the server's reply: \(r.stderr)")
            XCTAssertLessThan(Date().timeIntervalSince(began), 10, "\(cell): ftpput to a full disk took long")
            XCTAssertEqual(files(server.home), [], "\(cell): ftpput to a full disk left behind")

            began = Date()
            r = try run(server, "backup", [dir.file("big.bin"), "\(server.urlBase)/full.lzo"], timeout: 15)
            XCTAssertEqual(r.status, 1, "\(cell): backup to a full disk: \(r.stderr)")
            // A first 451 may be transient: one reconnect is allowed; a second
            // refusal at the same offset is final, and so is a 452/552 at once.
            let out = nonEmptyLines(r.stderr)
            let reconnects = out.filter { $0.contains("reconnecting") }
            XCTAssertLessThanOrEqual(reconnects.count, 1, "\(cell): backup to a full disk retried without progress: \(r.stderr)")
            if let first = out.first, first.contains(" 452 ") || first.contains(" 552 ") {
                XCTAssertEqual(out.count, 1, "\(cell): backup to a full disk (452/552) retried: \(r.stderr)")
            }
            XCTAssertLessThanOrEqual(out.count, 1 + 2 * reconnects.count,
                                     "\(cell): backup to a full disk: more than the error and one reconnect: \(r.stderr)")
            let last = out.last ?? ""
            XCTAssertTrue(last.hasPrefix("rescuebox backup: ") && quotesServer(last, server.kind),
                          "\(cell): backup to a full disk: the final line does not quote the server's reply: \(r.stderr)")
            XCTAssertLessThan(Date().timeIntervalSince(began), 10, "\(cell): backup to a full disk took long")
            XCTAssertEqual(files(server.home), [], "\(cell): backup to a full disk left behind")
        }
    }

    /// proftpd with `<Limit SIZE> DenyAll` (SIZE answers 550): every
    /// operation still works; what SIZE would have checked is checked by
    /// other means or said to be unverifiable.
    func testSizeDenied() throws {
        let bin = try rescueboxBinary()
        let dir = TempDir()
        let payload = try dir.writeRandom("sz.bin", count: 2 << 20 | 3, seed: 37)
        let image = dir.file("disk.img")
        var data = pseudoRandomBytes(1 << 20, seed: 41)
        data.append(Data(count: 1 << 20))
        try data.write(to: URL(fileURLWithPath: image))
        let cells = FTPServerKind.allCases.filter(\.canDenySize).flatMap {
            [Cell(kind: $0, options: FTPServerOptions(denySize: true)),
             Cell(kind: $0, options: FTPServerOptions(ipv6: true, denySize: true))]
        }
        // An image made without the server, for restore on its own.
        try shOK("'\(bin)' ddz -1 '\(image)' > '\(dir.file("ref.lzo"))'")
        let reference = try Data(contentsOf: URL(fileURLWithPath: dir.file("ref.lzo")))
        try forEach(cells) { cell, server in
            // Each operation on its own files, so each one's outcome is its own.
            try server.storeAsServerUser("get.bin", payload)
            try server.storeAsServerUser("img.lzo", reference)
            var r = try run(server, "ftpput", ["\(server.urlBase)/sz.bin", dir.file("sz.bin")])
            XCTAssertEqual(r.status, 0, "\(cell): ftpput: \(r.stderr)")
            XCTAssertTrue(contents(server.home + "/sz.bin") == payload, "\(cell): ftpput: no sz.bin or content differs")

            r = try run(server, "ftpget", ["\(server.urlBase)/get.bin", dir.file("got.bin")])
            XCTAssertEqual(r.status, 0, "\(cell): ftpget: \(r.stderr)")
            XCTAssertTrue(contents(dir.file("got.bin")) == payload, "\(cell): ftpget: content differs")
            try? FileManager.default.removeItem(atPath: dir.file("got.bin"))

            r = try run(server, "ftpget", ["\(server.urlBase)/get.bin", "-"])
            XCTAssertEqual(r.status, 0, "\(cell): ftpget to stdout: \(r.stderr)")
            XCTAssertTrue(r.stdout == payload, "\(cell): ftpget to stdout: \(r.stdout.count) bytes")

            r = try runProgram(bin, ["backup", image, "\(server.urlBase)/disk.lzo"], environment: environment(server))
            XCTAssertEqual(r.status, 0, "\(cell): backup: \(r.stderr)")
            let check = try sh("lzop -dc '\(server.home)/disk.lzo' | cmp - '\(image)'")
            XCTAssertEqual(check.status, 0, "\(cell): backup: no disk.lzo or it differs: \(check.stderr)")

            let target = dir.file("restored-\(server.options.ipv6 ? 6 : 4).img")
            r = try runProgram(bin, ["restore", "\(server.urlBase)/img.lzo", target], environment: environment(server))
            XCTAssertEqual(r.status, 0, "\(cell): restore: \(r.stderr)")
            XCTAssertTrue(contents(target) == data, "\(cell): restore: content differs")

            XCTAssertEqual(files(server.home), ["disk.lzo", "disk.lzo.index", "get.bin", "img.lzo", "sz.bin"], "\(cell): left behind")
        }
    }
}
