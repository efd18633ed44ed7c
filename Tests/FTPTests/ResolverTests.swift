import Foundation
import XCTest
@testable import FTP
import TestSupport

final class ResolverTests: XCTestCase {
    func testLiterals() throws {
        let r = NameResolver()
        XCTAssertEqual(try r.resolve("127.0.0.1", port: 21).first?.description, "127.0.0.1:21")
        XCTAssertEqual(try r.resolve("::1", port: 2121).first?.description, "[::1]:2121")
        XCTAssertEqual(try r.resolve("[::1]", port: 1).first?.isIPv6, true)
    }

    func testLoopbackAddresses() throws {
        for (text, loopback) in [("127.0.0.1", true), ("127.9.8.7", true), ("::1", true), ("::ffff:127.0.0.1", true),
                                 ("192.0.2.1", false), ("::2", false), ("::ffff:192.0.2.1", false), ("2001:db8::1", false)] {
            XCTAssertEqual(FTPAddress(literal: text, port: 21)?.isLoopback, loopback, text)
        }
        XCTAssertEqual(ZeroCopyPolicy.auto.allowsZeroCopy(serverIsThisHost: true), false)
        XCTAssertEqual(ZeroCopyPolicy.auto.allowsZeroCopy(serverIsThisHost: false), true)
        XCTAssertEqual(ZeroCopyPolicy.always.allowsZeroCopy(serverIsThisHost: true), true)
        XCTAssertEqual(ZeroCopyPolicy.never.allowsZeroCopy(serverIsThisHost: false), false)
    }

    func testHostsFile() throws {
        let dir = TempDirectory()
        let hosts = dir.path + "/hosts"
        try """
        # comment
        127.0.0.1\tlocalhost
        ::1 backupsrv
        127.0.0.1   backup.lan   BackupSrv # trailing comment
        10.0.0.1 #commented-name
        """.write(toFile: hosts, atomically: false, encoding: .utf8)
        var r = NameResolver()
        r.hostsFile = hosts
        r.resolvConf = dir.path + "/none"
        XCTAssertEqual(try r.resolve("backupsrv", port: 21).map(\.host), ["127.0.0.1", "::1"])
        XCTAssertEqual(try r.resolve("BACKUP.LAN", port: 21).map(\.host), ["127.0.0.1"])
        XCTAssertThrowsError(try r.resolve("commented-name", port: 21))
        XCTAssertThrowsError(try r.resolve("bad name\r\n", port: 21))
        XCTAssertThrowsError(try r.resolve("missing", port: 21)) {
            XCTAssertTrue("\($0)".contains("no nameserver"), "\($0)")
        }
    }

    func testDNSMessages() {
        let q = DNSMessage.query(name: "nas.lan", type: DNSMessage.typeA, id: 0xBEEF)!
        XCTAssertEqual(q, [0xBE, 0xEF, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, 0x6E, 0x61, 0x73, 3, 0x6C, 0x61, 0x6E, 0, 0, 1, 0, 1])
        // Answer: CNAME then A, names compressed.
        var answer = q
        answer[2] = 0x81; answer[3] = 0x80
        answer[7] = 2
        answer += [0xC0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 2, 0xC0, 12]
        answer += [0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 9]
        XCTAssertEqual(DNSMessage.parseAnswer(answer, id: 0xBEEF, type: DNSMessage.typeA), .addresses([[127, 0, 0, 9]]))
        XCTAssertEqual(DNSMessage.parseAnswer(answer, id: 0x1111, type: DNSMessage.typeA), .ignore)
        var nx = q
        nx[2] = 0x81; nx[3] = 0x83
        XCTAssertEqual(DNSMessage.parseAnswer(nx, id: 0xBEEF, type: DNSMessage.typeA), .noSuchName)
        // Truncated records are not read past the end.
        XCTAssertEqual(DNSMessage.parseAnswer(Array(answer.dropLast(3)), id: 0xBEEF, type: DNSMessage.typeA),
                       .noData)
        XCTAssertNil(DNSMessage.query(name: "a..b", type: 1, id: 1))
        XCTAssertNil(DNSMessage.query(name: String(repeating: "a", count: 64), type: 1, id: 1))
    }

    /// A real UDP round trip to a tiny DNS responder on 127.0.0.1.
    func testDNSQueryToLocalResponder() throws {
        let responder = """
        import socket, struct, sys
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1], flush=True)
        while True:
            q, addr = s.recvfrom(512)
            qid, = struct.unpack(">H", q[:2])
            i = 12
            labels = []
            while q[i]:
                labels.append(q[i+1:i+1+q[i]].decode()); i += 1 + q[i]
            qtype, = struct.unpack(">H", q[i+1:i+3])
            name = ".".join(labels)
            question = q[12:i+5]
            if name != "ftp.test.invalid":
                s.sendto(struct.pack(">HHHHHH", qid, 0x8183, 1, 0, 0, 0) + question, addr); continue
            if qtype == 1:
                rr = b"\\xc0\\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + bytes([127, 0, 0, 1])
                s.sendto(struct.pack(">HHHHHH", qid, 0x8180, 1, 1, 0, 0) + question + rr, addr)
            else:
                s.sendto(struct.pack(">HHHHHH", qid, 0x8180, 1, 0, 0, 0) + question, addr)
        """
        let dir = TempDirectory()
        try responder.write(toFile: dir.path + "/dns.py", atomically: false, encoding: .utf8)
        let process = try BackgroundProcess.start(try python3Path(), [dir.path + "/dns.py"])
        try waitFor("the DNS responder to print its port") {
            guard process.isRunning else { throw prerequisiteFailed("the DNS responder exited: \(process.stderr)") }
            return process.stdoutText.contains("\n")
        }
        defer { process.signal(SIGTERM); _ = try? process.wait(timeout: 30) }
        guard let port = UInt16(process.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw prerequisiteFailed("the DNS responder printed no port: \(process.stdoutText)")
        }
        try "nameserver 127.0.0.1\n".write(toFile: dir.path + "/resolv.conf", atomically: false, encoding: .utf8)
        var r = NameResolver()
        r.hostsFile = dir.path + "/nohosts"
        r.resolvConf = dir.path + "/resolv.conf"
        r.dnsPort = port
        r.timeout = 4
        XCTAssertEqual(try r.resolve("ftp.test.invalid", port: 21).map(\.description), ["127.0.0.1:21"])
        XCTAssertThrowsError(try r.resolve("other.test.invalid", port: 21)) {
            XCTAssertTrue("\($0)".contains("no such host") || "\($0)".contains("no address"), "\($0)")
        }
    }
}
