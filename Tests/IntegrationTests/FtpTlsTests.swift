import Foundation
import XCTest
import TestSupport

/// Throwaway certificates made with openssl: a test CA, server
/// certificates it signs (good, wrong host name, expired) and one signed
/// by a CA the client does not know.
final class TestCertificates {
    let dir = TempDir("rescuebox-certs")
    var ca: String { dir.file("ca.crt") }

    init() throws {
        try shOK("""
            cd '\(dir.path)' && \
            openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj /CN=rescuebox-test-ca 2>/dev/null && \
            openssl req -x509 -newkey rsa:2048 -nodes -keyout other.key -out other.crt -days 2 -subj /CN=unknown-ca 2>/dev/null && \
            openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=localhost 2>/dev/null && \
            printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > good.ext && \
            printf 'subjectAltName=DNS:elsewhere.invalid\\n' > wrong.ext && \
            openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile good.ext -out good.crt 2>/dev/null && \
            openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile wrong.ext -out wrong.crt 2>/dev/null && \
            openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days -1 -extfile good.ext -out expired.crt 2>/dev/null && \
            openssl x509 -req -in server.csr -CA other.crt -CAkey other.key -CAcreateserial -days 2 -extfile good.ext -out unknown.crt 2>/dev/null && \
            echo ok
            """)
    }

    /// vsftpd-start.sh options serving `name`.crt with the server key.
    func serverOptions(_ name: String, _ more: [String] = []) -> [String] {
        ["--tls-cert", dir.file("\(name).crt"), "--tls-key", dir.file("server.key")] + more
    }

    /// The pin of `name`.crt's public key (what curl --pinnedpubkey takes).
    func pin(_ name: String) throws -> String {
        "sha256//" + (try shOK("openssl x509 -in '\(dir.file("\(name).crt"))' -pubkey -noout | openssl pkey -pubin -outform der "
                               + "| openssl dgst -sha256 -binary | base64"))
    }
}

/// FTPS against a real vsftpd (ssl_enable=YES, require_ssl_reuse=YES):
/// explicit and implicit TLS, forced data protection, certificate checks.
final class FtpTlsTests: XCTestCase {
    var certs: TestCertificates!
    var servers: [VsftpdServer] = []

    override func setUpWithError() throws {
        signal(SIGPIPE, SIG_IGN)
        certs = try TestCertificates()
    }

    override func tearDown() {
        for s in servers { s.stop() }
        servers = []
        certs = nil
    }

    func start(_ options: [String]) throws -> VsftpdServer {
        let s = try VsftpdServer.start(options: options)
        servers.append(s)
        return s
    }

    func run(_ server: VsftpdServer, _ applet: String, _ args: [String], input: Data? = nil) throws -> RunResult {
        var env = ProcessInfo.processInfo.environment
        env["FTP_PASSWORD"] = server.password
        env["HOME"] = "/nonexistent-home"
        return try runProgram(try rescueboxBinary(), [applet] + args, input: input, environment: env)
    }

    func stderrLines(_ r: RunResult) -> [String] { r.stderr.split(separator: "\n").map(String.init) }

    /// Upload from a file and from stdin, download to a file and to a pipe,
    /// with forced TLS on logins and data and session reuse required.
    func testExplicitTLSUploadAndDownloadByteExact() throws {
        let server = try start(certs.serverOptions("good", ["--tls-force"]))
        let dir = TempDir()
        let payload = try dir.writeRandom("src.bin", count: 5_000_003, seed: 16)
        let url = "ftp://\(server.user)@127.0.0.1:\(server.port)"
        var r = try run(server, "ftpput", ["-v", "--tls", "--cacert", certs.ca, "\(url)/file.bin", dir.file("src.bin")])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: server.home + "/file.bin")), payload)
        XCTAssertTrue(r.stderr.contains("> PROT P"), r.stderr)
        XCTAssertTrue(r.stderr.contains("session reused"), r.stderr)
        XCTAssertTrue(r.stderr.contains("server's public-key pin \(try certs.pin("good"))"), r.stderr)
        XCTAssertFalse(r.stderr.contains(server.password))
        r = try run(server, "ftpput", ["--tls", "--cacert", certs.ca, "\(url)/stdin.bin"], input: payload)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: server.home + "/stdin.bin")), payload)
        // Host name instead of the address: checked against DNS:localhost.
        r = try run(server, "ftpget", ["--tls", "--cacert", certs.ca, "ftp://\(server.user)@localhost:\(server.port)/file.bin", dir.file("back.bin")])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dir.file("back.bin"))), payload)
        r = try run(server, "ftpget", ["--tls", "--cacert", certs.ca, "\(url)/stdin.bin", "-"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, payload)
        // An empty file: the data connection still has its handshake.
        r = try run(server, "ftpput", ["--tls", "--cacert", certs.ca, "\(url)/empty.bin"], input: Data())
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: server.home + "/empty.bin")).count, 0)
        // PROT C: refused by a server forcing data TLS, with the server's reason.
        r = try run(server, "ftpput", ["--tls-control-only", "--cacert", certs.ca, "\(url)/clear.bin", dir.file("src.bin")])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("server replied 522"), r.stderr)
    }

    func testControlOnlyTLSOnAServerThatAllowsIt() throws {
        let server = try start(certs.serverOptions("good"))
        let dir = TempDir()
        let payload = try dir.writeRandom("src.bin", count: 2_000_000, seed: 17)
        let r = try run(server, "ftpput", ["-v", "--tls-control-only", "--cacert", certs.ca,
                                           "ftp://\(server.user)@127.0.0.1:\(server.port)/c.bin", dir.file("src.bin")])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("> PROT C"), r.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: server.home + "/c.bin")), payload)
    }

    func testImplicitTLS() throws {
        let server = try start(certs.serverOptions("good", ["--tls-implicit"]))
        let dir = TempDir()
        let payload = try dir.writeRandom("src.bin", count: 3_000_000, seed: 18)
        let url = "ftps://\(server.user)@127.0.0.1:\(server.port)"
        var r = try run(server, "ftpput", ["--cacert", certs.ca, "\(url)/imp.bin", dir.file("src.bin")])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: server.home + "/imp.bin")), payload)
        r = try run(server, "ftpget", ["--cacert", certs.ca, "\(url)/imp.bin", "-"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, payload)
    }

    /// Wrong host name, expired, unknown CA: one line each with the reason
    /// and the pin; nothing stored, the password never sent.
    func testBadCertificatesRefusedWithOneLine() throws {
        let dir = TempDir()
        try Data("x".utf8).write(to: URL(fileURLWithPath: dir.file("x")))
        // By name (DNS:elsewhere.invalid is not localhost), and by address.
        for (name, host, reason) in [("wrong", "localhost", "hostname mismatch"), ("wrong", "127.0.0.1", "IP address mismatch"),
                                     ("expired", "127.0.0.1", "certificate has expired"),
                                     ("unknown", "127.0.0.1", "unable to get local issuer certificate")] {
            let server = try start(certs.serverOptions(name))
            let r = try run(server, "ftpput", ["-v", "--tls", "--cacert", certs.ca,
                                               "ftp://\(server.user)@\(host):\(server.port)/x", dir.file("x")])
            XCTAssertEqual(r.status, 1, r.stderr)
            XCTAssertFalse(r.stderr.contains("> USER"), "\(name): USER sent: \(r.stderr)")
            let quiet = try run(server, "ftpput", ["--tls", "--cacert", certs.ca,
                                                   "ftp://\(server.user)@\(host):\(server.port)/x", dir.file("x")])
            XCTAssertEqual(quiet.status, 1)
            XCTAssertEqual(stderrLines(quiet).count, 1, quiet.stderr)
            XCTAssertTrue(quiet.stderr.hasPrefix("rescuebox ftpput: \(host):\(server.port): TLS certificate: \(reason)"), quiet.stderr)
            XCTAssertTrue(quiet.stderr.contains("--pin \(try certs.pin(name))"), quiet.stderr)
            XCTAssertFalse(FileManager.default.fileExists(atPath: server.home + "/x"))
            XCTAssertFalse(FileManager.default.fileExists(atPath: server.home + "/x.part"))
        }
        // The system store does not know the test CA either.
        let server = try start(certs.serverOptions("good"))
        let r = try run(server, "ftpget", ["--tls", "ftp://\(server.user)@127.0.0.1:\(server.port)/x", "-"])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertEqual(stderrLines(r).count, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("TLS certificate: unable to get local issuer certificate"), r.stderr)
    }

    func testPinRightWrongAndInsecure() throws {
        let server = try start(certs.serverOptions("unknown"))
        let dir = TempDir()
        let payload = try dir.writeRandom("src.bin", count: 1_000_000, seed: 19)
        let url = "ftp://\(server.user)@127.0.0.1:\(server.port)"
        var r = try run(server, "ftpput", ["--tls", "--pin", try certs.pin("unknown"), "\(url)/p.bin", dir.file("src.bin")])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: server.home + "/p.bin")), payload)
        r = try run(server, "ftpput", ["--tls", "--pin", try certs.pin("good").replacingOccurrences(of: "sha256//", with: "sha256//A").dropLast(2) + "=",
                                       "\(url)/q.bin", dir.file("src.bin")])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertEqual(stderrLines(r).count, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("matches no --pin"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: server.home + "/q.bin"))
        r = try run(server, "ftpput", ["--tls", "--pin", "sha256//short", "\(url)/q.bin", dir.file("src.bin")])
        XCTAssertEqual(r.status, 2, r.stderr)
        r = try run(server, "ftpget", ["--tls", "--insecure", "\(url)/p.bin", "-"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, payload)
        XCTAssertTrue(r.stderr.contains("warning:") && r.stderr.contains("--insecure"), r.stderr)
        // --cacert/--pin/--insecure without TLS are usage errors.
        r = try run(server, "ftpget", ["--insecure", "\(url)/p.bin", "-"])
        XCTAssertEqual(r.status, 2, r.stderr)
    }

    /// A server without TLS: refused after AUTH TLS, before USER.
    func testTLSAgainstPlainServerRefusedBeforeUser() throws {
        let server = try start([])
        let r = try run(server, "ftpget", ["-v", "--tls", "ftp://\(server.user)@127.0.0.1:\(server.port)/x", "-"])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("> AUTH TLS"), r.stderr)
        XCTAssertFalse(r.stderr.contains("> USER"), r.stderr)
        XCTAssertTrue(r.stderr.contains("AUTH TLS: the server offers no TLS"), r.stderr)
        XCTAssertTrue(r.stderr.contains("refused before USER was sent"), r.stderr)
    }

    /// strace of every write the client makes: neither the password nor
    /// any 64-byte piece of the image appears in clear.
    func testNothingCrossesInClear() throws {
        let strace = try which("strace")
        let server = try start(certs.serverOptions("good"))
        let dir = TempDir()
        let payload = try dir.writeRandom("src.bin", count: 2_000_000, seed: 20)
        var env = ProcessInfo.processInfo.environment
        env["FTP_PASSWORD"] = server.password
        func traced(_ tls: [String], _ name: String) throws -> String {
            let log = dir.file("\(name).strace")
            let r = try runProgram(strace, ["-f", "-qq", "-e", "trace=write,writev,send,sendto,sendmsg,sendfile,splice",
                                            "-e", "write=all", "-o", log, try rescueboxBinary(), "ftpput"] + tls
                                   + ["ftp://\(server.user)@127.0.0.1:\(server.port)/\(name)", dir.file("src.bin")],
                                   environment: env)
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: server.home + "/" + name)), payload)
            // -e write=all dumps the bytes as hex and text columns; keep the hex.
            return try shOK("grep -E '^ [|] [0-9a-f]{5} ' '\(log)' | cut -c 11-58 | tr -d ' \\n'")
        }
        func hex(_ bytes: Data) -> String { bytes.map { String(format: "%02x", $0) }.joined() }
        let pieces = stride(from: 100_000, to: 2_000_000, by: 400_000).map { hex(payload.subdata(in: $0..<$0 + 64)) }
        let secret = hex(Data("PASS \(server.password)".utf8))
        // The oracle works: plain FTP shows the password. (On TLS the image
        // bytes must pass through the traced writes, so the size check below
        // shows strace saw them, encrypted.)
        let plainHex = try traced([], "plain.bin")
        XCTAssertTrue(plainHex.contains(secret), "oracle: the plain password was not seen")
        let tlsHex = try traced(["--tls", "--cacert", certs.ca], "tls.bin")
        XCTAssertGreaterThan(tlsHex.count, 2 * payload.count, "strace saw less than the image's size")
        XCTAssertFalse(tlsHex.contains(secret), "the password crossed in clear")
        for piece in pieces { XCTAssertFalse(tlsHex.contains(piece), "image bytes crossed in clear") }

        // OpenSSL loads nothing from disk: no openssl.cnf, engine or provider
        // (judged on the static binary; a debug build loads shared libraries).
        guard try sh("file -L '\(try rescueboxBinary())'").stdoutText.contains("statically linked") else { return }
        let log = dir.file("open.strace")
        let r = try runProgram(strace, ["-f", "-qq", "-e", "trace=open,openat", "-o", log, try rescueboxBinary(), "ftpget",
                                        "--tls", "--cacert", certs.ca, "ftp://\(server.user)@127.0.0.1:\(server.port)/tls.bin", "-"],
                               environment: env)
        XCTAssertEqual(r.status, 0, r.stderr)
        let opened = try String(contentsOfFile: log, encoding: .utf8)
        for name in ["openssl.cnf", ".so", "engines", "ossl-modules"] {
            XCTAssertFalse(opened.contains(name), "opened \(name): \(opened)")
        }
    }

    func testBackupAndRestoreOverTLS() throws {
        let server = try start(certs.serverOptions("good", ["--tls-force"]))
        let dir = TempDir()
        try shOK("seq 1 3000000 > '\(dir.file("disk.img"))'; head -c 8M /dev/urandom >> '\(dir.file("disk.img"))'")
        let url = "ftp://\(server.user)@127.0.0.1:\(server.port)/img/disk.lzo"
        var r = try run(server, "backup", ["--tls", "--cacert", certs.ca, "--mkdirs", "--manifest", "--no-direct", dir.file("disk.img"), url])
        XCTAssertEqual(r.status, 0, r.stderr)
        try shOK("lzop -dc '\(server.home)/img/disk.lzo' | cmp - '\(dir.file("disk.img"))'")
        r = try run(server, "restore", ["--tls", "--cacert", certs.ca, url, dir.file("back.img")])
        XCTAssertEqual(r.status, 0, r.stderr)
        try shOK("cmp '\(dir.file("disk.img"))' '\(dir.file("back.img"))'")
        // Without TLS the server refuses the login (force_local_logins_ssl).
        r = try run(server, "restore", [url, dir.file("back2.img")])
        XCTAssertEqual(r.status, 1, r.stderr)
    }

    /// A TLS backup whose server sessions are killed mid-transfer resumes
    /// in a new TLS session; the stored image is complete.
    func testBackupResumesOverTLSAfterTheSessionIsKilled() throws {
        let bin = try rescueboxBinary()
        let server = try start(certs.serverOptions("good", ["--tls-force"]))
        let dir = TempDir()
        let image = dir.file("disk.img")
        try shOK("seq 1 4000000 > '\(image)'; head -c 8M /dev/urandom >> '\(image)'; truncate -s 48M '\(image)'")
        // The FUSE disk stalls half-way, so the kill lands mid-transfer.
        let faulty = try FaultyDisk(image: image, mountPoint: dir.file("fuse"), stall: (20 << 20, (20 << 20) + 1, 4))
        defer { faulty.stop() }
        var env = ProcessInfo.processInfo.environment
        env["FTP_PASSWORD"] = server.password
        let backup = try BackgroundProcess.start(bin, ["backup", "--tls", "--cacert", certs.ca, "--retries", "3", faulty.disk,
                                                       "ftp://\(server.user)@127.0.0.1:\(server.port)/disk.lzo"], environment: env)
        let part = server.home + "/disk.lzo.part"
        try waitFor("the upload under way (\(part) >= 1 MiB)") {
            guard backup.isRunning else { throw prerequisiteFailed("backup ended before the session could be killed: \(backup.stderr)") }
            return fileSize(part) >= 1 << 20
        }
        XCTAssertTrue(backup.isRunning, "backup ended before the session could be killed")
        try shOK("for p in $(pgrep -P \(server.pid)); do pkill -9 -P $p; kill -9 $p; done; true")
        let result = try backup.wait(timeout: 300)
        let stderr = result.stderr
        XCTAssertEqual(result.status, 0, stderr)
        XCTAssertTrue(stderr.contains("resuming at byte"), stderr)
        try shOK("lzop -dc '\(server.home)/disk.lzo' | cmp - '\(image)'")
        let r = try run(server, "restore", ["--tls", "--cacert", certs.ca, "ftp://\(server.user)@127.0.0.1:\(server.port)/disk.lzo", dir.file("back.img")])
        XCTAssertEqual(r.status, 0, r.stderr)
        try shOK("cmp '\(image)' '\(dir.file("back.img"))'")
    }

    /// The static binary alone in an empty chroot with only the CA file.
    func testStaticBinaryInEmptyChrootWithTLS() throws {
        try requireRoot("chroot")
        let bin = try rescueboxBinary()
        guard try sh("file -L '\(bin)'").stdoutText.contains("statically linked") else {
            throw XCTSkip("\(bin) is not the static build (run build-static.sh; scripts/test.sh sets RESCUEBOX_BIN)")
        }
        let server = try start(certs.serverOptions("good", ["--tls-force"]))
        let root = TempDir("rescuebox-tls-chroot")
        try FileManager.default.copyItem(atPath: bin, toPath: root.file("rescuebox"))
        try FileManager.default.copyItem(atPath: certs.ca, toPath: root.file("ca.crt"))
        let env = ["FTP_PASSWORD": server.password]
        let put = try runProgram("/usr/sbin/chroot", [root.path, "/rescuebox", "ftpput", "--tls", "--cacert", "/ca.crt",
                                                      "ftp://\(server.user)@127.0.0.1:\(server.port)/chroot.bin", "/ca.crt"],
                                 environment: env)
        XCTAssertEqual(put.status, 0, put.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: server.home + "/chroot.bin")),
                       try Data(contentsOf: URL(fileURLWithPath: certs.ca)))
        // No CA store inside: refused with the hint and the pin.
        let bare = try runProgram("/usr/sbin/chroot", [root.path, "/rescuebox", "ftpget", "--tls",
                                                       "ftp://\(server.user)@127.0.0.1:\(server.port)/chroot.bin", "-"],
                                  environment: env)
        XCTAssertEqual(bare.status, 1, bare.stderr)
        XCTAssertTrue(bare.stderr.contains("no CA certificates found"), bare.stderr)
    }
}
