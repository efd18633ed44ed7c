import Foundation
import XCTest
@testable import FTP
import RescueCore
import TestSupport

/// The client library against the scripted fault server: what vsftpd will
/// not do on request.
final class FaultServerTests: XCTestCase {
    func session(_ server: FaultFTPServer, timeouts: FTPTimeouts = FTPTimeouts(all: 10)) throws -> FTPClient {
        let client = FTPClient(timeouts: timeouts)
        try client.connect(host: "127.0.0.1", port: UInt16(server.port))
        try client.login(user: "u", password: "secret")
        return client
    }

    /// What an earlier run leaves behind: the first `count` bytes of `data`
    /// in NAME.part, its transfer ended cleanly (226, kept to resume). Then
    /// this run's resuming upload of NAME, and the offset it resumes at.
    func resumeAfterAnEarlierRun(_ client: FTPClient, _ name: String, _ data: Data,
                                 kept count: Int) throws -> (SafeUpload, UInt64) {
        var keep = SafeUploadOptions()
        keep.keepPartial = true
        let earlier = SafeUpload(client: client, remotePath: name, options: keep)
        try earlier.start()
        try data.prefix(count).withUnsafeBytes { try earlier.write($0) }
        try earlier.pause()
        var resume = SafeUploadOptions()
        resume.resume = true
        let later = SafeUpload(client: client, remotePath: name, options: resume)
        return (later, try later.resumeOffset(sourceSize: UInt64(data.count)))
    }

    @discardableResult
    func upload(_ client: FTPClient, _ path: String, bytes: Int, options: SafeUploadOptions = SafeUploadOptions()) throws -> UploadOutcome {
        let up = SafeUpload(client: client, remotePath: path, options: options)
        let data = pseudoRandomBytes(bytes)
        do {
            try up.start()
            try data.withUnsafeBytes { try up.write($0) }
            return try up.commit()
        } catch {
            throw up.fail(error)
        }
    }

    func testEPSVRefusedFallsBackToPASVAndIgnoresItsAddress() throws {
        let server = try FaultFTPServer(scenario: "no-epsv")
        let client = try session(server)
        let up = try upload(client, "x.bin", bytes: 100_000)
        XCTAssertEqual(up.size, 100_000)
        XCTAssertEqual(up.verification, .confirmed)
        // Second transfer goes straight to PASV.
        let d = SafeDownload(client: client, remotePath: "x.bin")
        try d.start()
        var buffer = [UInt8](repeating: 0, count: 200_000)
        let n = try buffer.withUnsafeMutableBytes { try d.read(into: $0) }
        XCTAssertEqual(n, 100_000)
        XCTAssertEqual(try d.finish(), 100_000)
        client.quit()
        let log = server.log
        XCTAssertEqual(log.filter { $0.contains("EPSV") }.count, 1, "\(log)")
        XCTAssertEqual(log.filter { $0.contains("PASV") && !$0.contains("EPSV") }.count, 2)
        // The 227 named 127.0.0.2; every data connection came from 127.0.0.1
        // to the control peer, none to 127.0.0.2.
        let data = log.filter { $0.hasPrefix("DATA-CONNECT") }
        XCTAssertEqual(data, ["DATA-CONNECT 127.0.0.1", "DATA-CONNECT 127.0.0.1"])
        XCTAssertTrue(log.contains("b'RNFR x.bin.part\\r\\n'"), "\(log)")
    }

    func testShortStoreCaughtBySize() throws {
        let server = try FaultFTPServer(scenario: "short-store")
        let client = try session(server)
        XCTAssertThrowsError(try upload(client, "y.bin", bytes: 50_000)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("the server stored 49990 bytes of the 50000 sent"), text)
            XCTAssertTrue(text.contains("partial file deleted"), text)
        }
        XCTAssertFalse(server.log.contains { $0.contains("RNFR") }, "must not rename a short file")
        XCTAssertTrue(server.log.contains("b'DELE y.bin.part\\r\\n'"))
    }

    func testShortRetrieveIsAnError() throws {
        let server = try FaultFTPServer(scenario: "short-retr")
        let client = try session(server)
        let d = SafeDownload(client: client, remotePath: "data.bin")
        try d.start()
        XCTAssertEqual(d.expectedSize, 1024 * 1024 + 7)
        var buffer = [UInt8](repeating: 0, count: 2 << 20)
        _ = try buffer.withUnsafeMutableBytes { try d.read(into: $0) }
        XCTAssertThrowsError(try d.finish()) {
            XCTAssertTrue("\($0)".contains("short transfer: 1048573 of 1048583 bytes"), "\($0)")
        }
    }

    func testServerErrorsMidTransfer() throws {
        for (code, reason) in [(421, "Service closing"), (451, "Local error"), (552, "Exceeded storage")] {
            let server = try FaultFTPServer(scenario: "fail\(code)")
            let client = try session(server)
            XCTAssertThrowsError(try upload(client, "z.bin", bytes: 8 << 20), "\(code)") { error in
                let text = "\(error)"
                XCTAssertTrue(text.contains("\(code) \(reason)"), text)
                XCTAssertTrue(text.contains("bytes sent"), text)
                if code != 421 {
                    XCTAssertTrue(text.contains("partial file deleted"), text)
                }
            }
            // Also after 421 (control closed) the partial file is deleted,
            // through a second session.
            XCTAssertTrue(server.log.contains("b'DELE z.bin.part\\r\\n'"), "\(code): \(server.log)")
        }
    }

    func testStallTimeoutFires() throws {
        let server = try FaultFTPServer(scenario: "stall")
        let client = try session(server, timeouts: FTPTimeouts(connect: 5, reply: 2, stall: 2))
        let started = Date()
        XCTAssertThrowsError(try upload(client, "s.bin", bytes: 64 << 20)) { error in
            XCTAssertTrue("\(error)".contains("stall timeout"), "\(error)")
        }
        // Bounded, not a hang (generous: no timing assertion beyond "ended").
        XCTAssertLessThan(Date().timeIntervalSince(started), 120)
    }

    func testDownloadStallTimeoutFires() throws {
        let server = try FaultFTPServer(scenario: "stall")
        let client = try session(server, timeouts: FTPTimeouts(connect: 5, reply: 2, stall: 2))
        let d = SafeDownload(client: client, remotePath: "data.bin")
        try d.start()
        var buffer = [UInt8](repeating: 0, count: 2 << 20)
        XCTAssertThrowsError(try buffer.withUnsafeMutableBytes { try d.read(into: $0) }) { error in
            let text = "\(d.fail(error))"
            XCTAssertTrue(text.contains("stall timeout"), text)
            XCTAssertTrue(text.contains("100000 bytes received of 1048583"), text)
        }
    }

    func testMultiLineRepliesWithDigitLines() throws {
        let server = try FaultFTPServer(scenario: "multiline")
        let client = try session(server)
        let up = try upload(client, "m.bin", bytes: 1234)
        XCTAssertEqual(up.size, 1234)
        XCTAssertEqual(up.verification, .confirmed)
        XCTAssertEqual(try client.remoteSize("m.bin"), .bytes(1234))
    }

    func testResumeWithRest() throws {
        let server = try FaultFTPServer(scenario: "normal")
        let client = try session(server)
        let full = pseudoRandomBytes(300_000)
        let (second, offset) = try resumeAfterAnEarlierRun(client, "r.bin", full, kept: 100_000)
        XCTAssertEqual(offset, 100_000)
        try second.start(at: offset)
        try full.dropFirst(Int(offset)).withUnsafeBytes { try second.write($0) }
        XCTAssertEqual(try second.commit().size, 300_000)
        XCTAssertTrue(server.log.contains("b'REST 100000\\r\\n'"))
        let d = SafeDownload(client: client, remotePath: "r.bin")
        try d.start()
        var buffer = [UInt8](repeating: 0, count: 400_000)
        let n = try buffer.withUnsafeMutableBytes { try d.read(into: $0) }
        try d.finish()
        XCTAssertEqual(Data(buffer[0..<n]), full)
    }

    /// A resume onto a .part that an earlier run stored, failing mid-way
    /// without keepPartial: that .part is not this run's alone, so it stays
    /// (no DELE), and the error says so. The same failure on a .part this
    /// run started does delete it.
    func testFailedResumeOntoAnEarlierRunsPartKeepsIt() throws {
        let server = try FaultFTPServer(scenario: "fail451")
        let client = try session(server)
        let full = pseudoRandomBytes(2 << 20)
        // This run continues the earlier run's r.bin.part; the server fails
        // after 256 KiB more (seen at the latest by commit).
        let (later, offset) = try resumeAfterAnEarlierRun(client, "r.bin", full, kept: 100_000)
        XCTAssertEqual(try client.remoteSize("r.bin.part"), .bytes(100_000))
        XCTAssertEqual(offset, 100_000)
        try later.start(at: offset)
        XCTAssertEqual(later.earlierRunBytes, 100_000)
        XCTAssertThrowsError(try { try full.dropFirst(Int(offset)).withUnsafeBytes { try later.write($0) }; try later.commit() }()) { error in
            let text = "\(later.fail(error))"
            XCTAssertTrue(text.contains("451"), text)
            XCTAssertTrue(text.contains("r.bin.part kept: its first 100000 bytes are an earlier run's"), text)
        }
        XCTAssertFalse(server.log.contains("b'DELE r.bin.part\\r\\n'"), "\(server.log)")
        guard case .bytes(let held)? = try? session(server).remoteSize("r.bin.part") else {
            return XCTFail("r.bin.part is gone")
        }
        XCTAssertGreaterThanOrEqual(held, 100_000)
        // A .part this run started from 0 is this run's: the same failure deletes it.
        let fresh = SafeUpload(client: try session(server), remotePath: "f.bin")
        try fresh.start()
        XCTAssertEqual(fresh.earlierRunBytes, 0)
        XCTAssertThrowsError(try { try full.withUnsafeBytes { try fresh.write($0) }; try fresh.commit() }()) { error in
            XCTAssertTrue("\(fresh.fail(error))".contains("partial file deleted"), "\(error)")
        }
        XCTAssertTrue(server.log.contains("b'DELE f.bin.part\\r\\n'"), "\(server.log)")
    }

    func testInjectionRefusedBeforeSending() throws {
        let server = try FaultFTPServer(scenario: "normal")
        let client = try session(server)
        let before = server.log.count
        XCTAssertThrowsError(try client.remoteSize("a\r\nDELE data.bin"))
        XCTAssertThrowsError(try client.openStore("x\nDELE data.bin"))
        XCTAssertThrowsError(try client.rename(from: "data.bin", to: "y\0z"))
        XCTAssertThrowsError(try client.login(user: "u\r\nDELE data.bin", password: "p"))
        client.quit()
        XCTAssertEqual(server.log.count, before + 1, "only QUIT was sent: \(server.log)")
    }
}
