import Foundation
import XCTest
import TestSupport

/// The password prompt on a terminal (a pty made by script(1)): asked with
/// echo off, never shown, and the upload works.
final class FtpPromptTests: XCTestCase {
    func testPasswordPromptedWithEchoOff() throws {
        let bin = try rescueboxBinary()
        let script = try which("script")
        let ftp = try VsftpdServer.start()
        defer { ftp.stop() }
        let dir = TempDir()
        try "hello\n".write(toFile: dir.file("f"), atomically: false, encoding: .utf8)
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "FTP_PASSWORD")
        env["HOME"] = dir.path  // no ~/.netrc
        let command = "'\(bin)' ftpput -u \(ftp.user) \(ftp.hostPort) prompted.txt '\(dir.file("f"))'"
        // script(1) runs the command on a pty and copies what it shows to
        // stdout; type the password once the prompt is there (echo is off by then).
        let session = try BackgroundProcess.start(script, ["-qec", command, "/dev/null"], environment: env, stdin: .pipe)
        try waitFor("the password prompt on the terminal") {
            guard session.isRunning else { throw prerequisiteFailed("script ended before the prompt: \(session.stdoutText)\(session.stderr)") }
            return session.stdoutText.contains("Password for \(ftp.user)@")
        }
        try session.write(Data("\(ftp.password)\n".utf8))
        let r = try session.wait(timeout: 60)
        XCTAssertEqual(r.status, 0, r.stdoutText + r.stderr)
        XCTAssertTrue(r.stdoutText.contains("Password for \(ftp.user)@"), r.stdoutText)
        XCTAssertFalse(r.stdoutText.contains(ftp.password), "the password was echoed: \(r.stdoutText)")
        XCTAssertEqual(try String(contentsOfFile: ftp.home + "/prompted.txt", encoding: .utf8), "hello\n")
    }
}
