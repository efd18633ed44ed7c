import XCTest
@testable import FTP
import RescueCore

final class ReplyParserTests: XCTestCase {
    func parse(_ text: String, maxLineLength: Int = 4096, maxLines: Int = 1000) throws -> [FTPReply] {
        try FTPReplyParser.parseAll(Array(text.utf8), maxLineLength: maxLineLength, maxLines: maxLines)
    }

    func testSingleLineReplies() throws {
        let replies = try parse("220 ready\r\n331 Please specify the password.\r\n230\r\n")
        XCTAssertEqual(replies.map(\.code), [220, 331, 230])
        XCTAssertEqual(replies[1].text, "Please specify the password.")
        XCTAssertTrue(replies[2].isSuccess)
    }

    func testMultiLineWithInnerLinesStartingWithDigits() throws {
        let text = "230-Welcome\r\n231 not the end\r\n230- still not\r\n123 digits\r\n  230 indented\r\n230 Login ok\r\n200 next\r\n"
        let replies = try parse(text)
        XCTAssertEqual(replies.count, 2)
        XCTAssertEqual(replies[0].code, 230)
        XCTAssertEqual(replies[0].lines.count, 6)
        XCTAssertEqual(replies[0].text, "Login ok")
        XCTAssertEqual(replies[1].code, 200)
    }

    func testIncrementalFeeding() throws {
        var parser = FTPReplyParser()
        for byte in Array("150-a\r\n1\r\n150 done\r\n226 ok\r\n".utf8) {
            parser.feed([byte])
        }
        XCTAssertEqual(try parser.next()?.code, 150)
        XCTAssertEqual(try parser.next()?.code, 226)
        XCTAssertNil(try parser.next())
    }

    func testBareLFAccepted() throws {
        XCTAssertEqual(try parse("220 hi\n").first?.code, 220)
    }

    func testBounds() {
        XCTAssertThrowsError(try parse(String(repeating: "x", count: 100) + "\r\n", maxLineLength: 50)) {
            XCTAssertEqual($0 as? FTPReplyError, .lineTooLong(limit: 50))
        }
        // A line that never ends is refused once it is too long.
        XCTAssertThrowsError(try parse("220 " + String(repeating: "x", count: 100), maxLineLength: 50))
        let endless = "220-start\r\n" + String(repeating: "more\r\n", count: 20)
        XCTAssertThrowsError(try parse(endless, maxLines: 10)) {
            XCTAssertEqual($0 as? FTPReplyError, .tooManyLines(limit: 10))
        }
    }

    func testMalformed() {
        for bad in ["hello\r\n", "22\r\n", "2200 x\r\n", "099 x\r\n", "220x\r\n", "600 x\r\n"] {
            XCTAssertThrowsError(try parse(bad), bad)
        }
    }

    func testDisplaySanitizesControlCharacters() {
        let reply = FTPReply(code: 550, lines: ["550 evil\u{1B}[2Jname"])
        XCTAssertEqual(reply.description, "550 evil?[2Jname")
    }

    func testEPSV() {
        XCTAssertEqual(parseEPSV("229 Entering Extended Passive Mode (|||6446|)"), 6446)
        XCTAssertEqual(parseEPSV("229 ok (!!!21!)"), 21)
        XCTAssertNil(parseEPSV("229 Entering Extended Passive Mode (|||0|)"))
        XCTAssertNil(parseEPSV("229 (|||70000|)"))
        XCTAssertNil(parseEPSV("229 (|||6446)"))
        XCTAssertNil(parseEPSV("229 (||6446|)"))
        XCTAssertNil(parseEPSV("229 no parens"))
        XCTAssertNil(parseEPSV("229 (|"))
        XCTAssertNil(parseEPSV("229 (111222|)"))
    }

    func testPASV() {
        let p = parsePASV("227 Entering Passive Mode (192,168,1,2,19,137).")
        XCTAssertEqual(p?.address, [192, 168, 1, 2])
        XCTAssertEqual(p?.port, 19 * 256 + 137)
        XCTAssertEqual(parsePASV("227 =127,0,0,1,4,1")?.port, 1025)
        XCTAssertNil(parsePASV("227 Entering Passive Mode (256,0,0,1,4,1)"))
        XCTAssertNil(parsePASV("227 Entering Passive Mode (1,2,3,4,5)"))
        XCTAssertNil(parsePASV("227 (1,2,3,4,0,0)"))
        XCTAssertNil(parsePASV("227"))
    }

    /// Random bytes never crash the parsers (a quick in-test fuzz; the
    /// libFuzzer targets go deeper).
    func testRandomInputNeverCrashes() {
        var state: UInt64 = 0x1234_5678
        for _ in 0..<2000 {
            var bytes: [UInt8] = []
            for _ in 0..<Int(state % 200) {
                state ^= state << 13; state ^= state >> 7; state ^= state << 17
                let alphabet: [UInt8] = Array("0123456789 -\r\n(|),2".utf8) + [0, 0xFF]
                bytes.append(alphabet[Int(state % UInt64(alphabet.count))])
            }
            _ = try? FTPReplyParser.parseAll(bytes, maxLineLength: 64, maxLines: 8)
            let text = String(decoding: bytes, as: UTF8.self)
            _ = parseEPSV(text)
            _ = parsePASV(text)
            _ = DNSMessage.parseAnswer(bytes, id: 0x3030, type: DNSMessage.typeA)
        }
    }
}

final class URLAndSafetyTests: XCTestCase {
    func testURLForms() throws {
        var u = try FTPURL.parse("ftp://admin@nas.lan:2121/images/sda.lzo")
        XCTAssertEqual(u, FTPURL(user: "admin", host: "nas.lan", port: 2121, path: "images/sda.lzo"))
        u = try FTPURL.parse("FTP://[::1]/a%20b/%C3%BC.bin")
        XCTAssertEqual(u.host, "::1")
        XCTAssertEqual(u.port, 21)
        XCTAssertEqual(u.path, "a b/ü.bin")
        u = try FTPURL.parse("ftp://u:p%40ss@h//srv/x")
        XCTAssertEqual(u.password, "p@ss")
        XCTAssertEqual(u.path, "/srv/x")
        XCTAssertEqual(u.description, "ftp://u@h//srv/x")
        u = try FTPURL.parse("ftp://h")
        XCTAssertEqual(u.path, "")
    }

    func testFTPSURLAndPins() throws {
        var u = try FTPURL.parse("ftps://admin@nas/img/a.lzo")
        XCTAssertTrue(u.implicitTLS)
        XCTAssertEqual(u.port, 990)
        XCTAssertEqual(u.description, "ftps://admin@nas/img/a.lzo")
        u = try FTPURL.parse("FTPS://nas:2990/x")
        XCTAssertEqual(u.port, 2990)
        XCTAssertEqual(u.description, "ftps://nas:2990/x")
        XCTAssertFalse(try FTPURL.parse("ftp://nas/x").implicitTLS)
        let pin = "sha256//CeOZuVApbyOs0Ug1ZdqTQAeTVGUAf5Ymg6qn+Z/XBNw="
        XCTAssertEqual(try FTPTLSOptions.parsePins(pin), [pin])
        XCTAssertEqual(try FTPTLSOptions.parsePins("\(pin);\(pin)").count, 2)
        for bad in ["", "sha256//", "sha1//CeOZuVApbyOs0Ug1ZdqTQAeTVGUAf5Ymg6qn+Z/XBNw=", "sha256//abc", "CeOZuVApbyOs0Ug1ZdqTQAeTVGUAf5Ymg6qn+Z/XBNw="] {
            XCTAssertThrowsError(try FTPTLSOptions.parsePins(bad), bad)
        }
    }

    func testHostPort() throws {
        XCTAssertTrue(try FTPURL.parseHostPort("h:21", defaultPort: 1) == ("h", 21))
        XCTAssertTrue(try FTPURL.parseHostPort("::1", defaultPort: 21) == ("::1", 21))
        XCTAssertTrue(try FTPURL.parseHostPort("[fe80::1]:99", defaultPort: 21) == ("fe80::1", 99))
        XCTAssertThrowsError(try FTPURL.parseHostPort("h:0", defaultPort: 21))
        XCTAssertThrowsError(try FTPURL.parseHostPort("h:99999", defaultPort: 21))
        XCTAssertThrowsError(try FTPURL.parseHostPort("[::1", defaultPort: 21))
    }

    func testInjectionRefused() {
        XCTAssertThrowsError(try FTPURL.parse("ftp://h/a%0D%0ADELE%20x"))
        XCTAssertThrowsError(try FTPURL.parse("ftp://us%0Aer@h/a"))
        XCTAssertThrowsError(try checkSafeForControl("a\rb", what: "x"))
        XCTAssertThrowsError(try checkSafeForControl("a\0b", what: "x"))
        XCTAssertThrowsError(try SafeUpload.validate(remotePath: "x\nDELE y"))
        XCTAssertThrowsError(try SafeUpload.validate(remotePath: "dir/"))
        XCTAssertNoThrow(try SafeUpload.validate(remotePath: "dir/a b ü.bin"))
    }

    func testNetrc() {
        let file = NetrcFile.parse("""
        machine nas login admin password "s3 cret"
        # comment
        machine other
            login bob
            password pw2
        macdef init
        cd /x
        bin

        default login anonymous password me@
        """)
        XCTAssertEqual(file.entries.count, 3)
        XCTAssertEqual(file.entry(host: "NAS", user: nil)?.password, "s3 cret")
        XCTAssertEqual(file.entry(host: "other", user: "bob")?.password, "pw2")
        XCTAssertEqual(file.entry(host: "unknown", user: nil)?.login, "anonymous")
        XCTAssertNil(file.entry(host: "nas", user: "mallory")?.password)
    }

    func testNetrcPermissionsAndResolution() throws {
        let dir = TempDirectory()
        let path = dir.path + "/netrc"
        try "machine h login u password secret\n".write(toFile: path, atomically: false, encoding: .utf8)
        chmod(path, 0o644)
        var resolver = CredentialsResolver()
        resolver.netrcFile = path
        resolver.environmentPassword = nil
        resolver.allowPrompt = false
        XCTAssertThrowsError(try resolver.resolve(host: "h")) {
            XCTAssertTrue("\($0)".contains("readable or writable by group or others"), "\($0)")
        }
        chmod(path, 0o600)
        XCTAssertEqual(try resolver.resolve(host: "h"), FTPCredentials(user: "u", password: "secret", source: "netrc"))
        // Environment beats netrc; -p beats both; no user anywhere: anonymous.
        resolver.environmentPassword = "fromenv"
        XCTAssertEqual(try resolver.resolve(host: "h").password, "fromenv")
        resolver.commandLinePassword = "fromargv"
        XCTAssertEqual(try resolver.resolve(host: "h").password, "fromargv")
        XCTAssertEqual(try resolver.resolve(host: "elsewhere"), .anonymous)
        resolver.commandLinePassword = "bad\r\nDELE x"
        XCTAssertThrowsError(try resolver.resolve(host: "h"))
        // A user but no password and no terminal allowed: a clear error.
        resolver.commandLinePassword = nil
        resolver.environmentPassword = nil
        resolver.optionUser = "someone"
        XCTAssertThrowsError(try resolver.resolve(host: "nohost")) {
            XCTAssertTrue("\($0)".contains("no password"), "\($0)")
        }
    }
}

/// Ranged reads: short ones keep the small receive window and segments
/// (little in flight past the bytes wanted), long ones stream.
final class RangedReceiveLimitTests: XCTestCase {
    func testShortReadsAreCappedAndLongOnesStream() {
        let limit = RangedReceiveLimit(receiveBuffer: 128 << 10, segmentSize: 4096)
        XCTAssertTrue(limit.socketLimit(forBytes: nil) == (128 << 10, 4096))
        XCTAssertTrue(limit.socketLimit(forBytes: 300_000) == (128 << 10, 4096))
        XCTAssertTrue(limit.socketLimit(forBytes: (8 << 20) - 1) == (128 << 10, 4096))
        XCTAssertTrue(limit.socketLimit(forBytes: 8 << 20) == (2 << 20, nil))
        XCTAssertTrue(limit.socketLimit(forBytes: 10 << 20) == (2560 << 10, nil))
        XCTAssertTrue(limit.socketLimit(forBytes: 1 << 30) == (4 << 20, nil), "at most 4 MiB")
    }
}

/// A temp directory for library tests (Foundation is fine in tests).
final class TempDirectory {
    let path: String
    init() {
        var template = Array("/tmp/ftptest.XXXXXX".utf8CString)
        path = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}
