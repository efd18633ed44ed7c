import Foundation
import XCTest
import TestSupport

final class FtpGetTests: FtpTestCase {
    /// Puts `data` at `name` in the FTP user's home, owned by the user.
    func serve(_ data: Data, as name: String) throws {
        let path = home(name)
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try data.write(to: URL(fileURLWithPath: path))
        try shOK("chown -R \(server.user) '\(server.home)'")
    }

    func testDownloadBusyboxOrderURLAndStdout() throws {
        let payload = pseudoRandomBytes(2_345_678, seed: 3)
        try serve(payload, as: "dir ü/a b.bin")
        let dir = TempDir()
        // busybox order: HOST LOCAL REMOTE.
        var r = try run("ftpget", ["-u", server.user, server.hostPort, dir.file("local.bin"), "dir ü/a b.bin"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dir.file("local.bin"))), payload)
        XCTAssertTrue(r.stderr.contains("2345678 bytes"), r.stderr)
        XCTAssertFalse(exists(dir.file("local.bin.part")))
        // URL form to stdout.
        r = try run("ftpget", ["\(server.urlBase)/dir%20%C3%BC/a%20b.bin", "-"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, payload)
        // No LOCAL: the remote name in the current directory.
        r = try runProgram("/bin/sh", ["-c", "cd '\(dir.path)' && exec '\(try rescueboxBinary())' ftpget '\(server.urlBase)/dir%20%C3%BC/a%20b.bin'"],
                           environment: environment())
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dir.file("a b.bin"))), payload)
    }

    func testZeroBytesAndAnonymous() throws {
        try serve(Data(), as: "empty")
        let dir = TempDir()
        var r = try run("ftpget", ["\(server.urlBase)/empty", dir.file("e")])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dir.file("e"))).count, 0)
        // Anonymous (no user anywhere) reads the anonymous root.
        try Data("public".utf8).write(to: URL(fileURLWithPath: server.anonymousRoot + "/pub.txt"))
        r = try runProgram(try rescueboxBinary(), ["ftpget", "-v", server.hostPort, "-", "pub.txt"],
                           environment: ["PATH": "/usr/bin:/bin", "HOME": "/nonexistent"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdoutText, "public")
        XCTAssertTrue(r.stderr.contains("USER anonymous"), r.stderr)
    }

    func testMissingRemoteLeavesNothing() throws {
        let dir = TempDir()
        let r = try run("ftpget", ["\(server.urlBase)/nope", dir.file("x")])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("550"), r.stderr)
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
        XCTAssertFalse(exists(dir.file("x")))
        XCTAssertFalse(exists(dir.file("x.part")))
        let bad = try run("ftpget", ["\(server.urlBase)/nope", dir.file("y")], password: "wrong")
        XCTAssertEqual(bad.status, 1)
        XCTAssertTrue(bad.stderr.contains("530"), bad.stderr)
        XCTAssertFalse(bad.stderr.contains("wrong"))
        XCTAssertFalse(exists(dir.file("y.part")))
    }

    func testResume() throws {
        let payload = pseudoRandomBytes(4_000_000, seed: 11)
        try serve(payload, as: "r.bin")
        let dir = TempDir()
        try payload.prefix(1_000_000).write(to: URL(fileURLWithPath: dir.file("r.bin.part")))
        var r = try run("ftpget", ["-c", "\(server.urlBase)/r.bin", dir.file("r.bin")])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("resuming"), r.stderr)
        XCTAssertTrue(r.stderr.contains("3000000 bytes"), r.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dir.file("r.bin"))), payload)
        // busybox style: -c continues LOCAL itself.
        try payload.prefix(123).write(to: URL(fileURLWithPath: dir.file("b.bin")))
        r = try run("ftpget", ["-c", "-u", server.user, server.hostPort, dir.file("b.bin"), "r.bin"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dir.file("b.bin"))), payload)
    }
}

/// >= 1 GiB each way, streamed from a generator (never kept longer than
/// the test), and the static binary in a chroot reaching the server by a
/// name from the chroot's /etc/hosts.
final class FtpLargeAndStaticTests: FtpTestCase {
    func testOneGiBUploadFromCommandAndDownload() throws {
        let size = 1 << 30
        let generator = "seq 1 130000000 | head -c \(size)"
        let r = try run("ftpput", ["\(server.urlBase)/gib.txt", "|\(generator)"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("\(size) bytes"), r.stderr)
        try shOK("\(generator) | cmp - '\(home("gib.txt"))'")
        // Download it again (regular file: verify against the server copy).
        let dir = TempDir()
        let g = try run("ftpget", ["\(server.urlBase)/gib.txt", dir.file("gib.txt")])
        XCTAssertEqual(g.status, 0, g.stderr)
        try shOK("cmp '\(home("gib.txt"))' '\(dir.file("gib.txt"))'")
        try FileManager.default.removeItem(atPath: dir.file("gib.txt"))
        // Upload the server's copy as a regular file (the sendfile path).
        let f = try run("ftpput", ["\(server.urlBase)/gib2.txt", home("gib.txt")])
        XCTAssertEqual(f.status, 0, f.stderr)
        try shOK("cmp '\(home("gib.txt"))' '\(home("gib2.txt"))'")
        try? FileManager.default.removeItem(atPath: home("gib.txt"))
        try? FileManager.default.removeItem(atPath: home("gib2.txt"))
    }

    func testStaticBinaryInChrootByHostsName() throws {
        let bin = try rescueboxBinary()
        guard try sh("file -L '\(bin)'").stdoutText.contains("statically linked") else {
            throw XCTSkip("\(bin) is not the static build (run build-static.sh; scripts/test.sh sets RESCUEBOX_BIN)")
        }
        let root = TempDir("rescuebox-ftp-chroot")
        try FileManager.default.copyItem(atPath: bin, toPath: root.file("rescuebox"))
        try FileManager.default.createDirectory(atPath: root.file("etc"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: root.file("files"), withIntermediateDirectories: true)
        try "127.0.0.1 backupsrv\n".write(toFile: root.file("etc/hosts"), atomically: false, encoding: .utf8)
        let payload = pseudoRandomBytes(3_000_000, seed: 5)
        try payload.write(to: URL(fileURLWithPath: root.file("files/disk.img")))
        let env = ["FTP_PASSWORD": server.password]
        let put = try runProgram("/usr/sbin/chroot", [root.path, "/rescuebox", "ftpput", "-u", server.user,
                                                      "backupsrv:\(server.port)", "from-chroot.img", "/files/disk.img"],
                                 environment: env)
        XCTAssertEqual(put.status, 0, put.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: home("from-chroot.img"))), payload)
        let get = try runProgram("/usr/sbin/chroot", [root.path, "/rescuebox", "ftpget",
                                                      "ftp://\(server.user)@backupsrv:\(server.port)/from-chroot.img", "/files/back.img"],
                                 environment: env)
        XCTAssertEqual(get.status, 0, get.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: root.file("files/back.img"))), payload)
        // A name in neither hosts nor (absent) resolv.conf: one clear line.
        let unknown = try runProgram("/usr/sbin/chroot", [root.path, "/rescuebox", "ftpget", "ftp://nosuchhost/x", "-"], environment: env)
        XCTAssertEqual(unknown.status, 1)
        XCTAssertTrue(unknown.stderr.contains("nosuchhost: resolve:"), unknown.stderr)
    }
}
