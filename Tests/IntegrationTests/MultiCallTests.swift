import Foundation
import XCTest
import TestSupport

/// The built binary as a user meets it: dispatch, --list, --install, links,
/// and the static binary alone in an empty chroot.
final class MultiCallTests: XCTestCase {
    let applets = ["ddz", "ftpput", "ftpget", "zerofill", "ntpleap", "backup", "restore", "mount"]

    func testListAndVersion() throws {
        let bin = try rescueboxBinary()
        let list = try runProgram(bin, ["--list"])
        XCTAssertEqual(list.status, 0)
        XCTAssertEqual(list.stdoutText.split(separator: "\n").map(String.init), applets)
        XCTAssertTrue(try runProgram(bin, ["--version"]).stdoutText.hasPrefix("rescuebox "))
        let help = try runProgram(bin, ["--help"])
        XCTAssertEqual(help.status, 0)
        for name in applets { XCTAssertTrue(help.stdoutText.contains("  \(name) "), name) }
    }

    func testUnknownAppletIsUsageError() throws {
        let r = try runProgram(try rescueboxBinary(), ["frobnicate"])
        XCTAssertEqual(r.status, 2)
        XCTAssertEqual(r.stderr, "rescuebox: unknown applet 'frobnicate' (known: \(applets.joined(separator: ", ")))\n")
        let none = try runProgram(try rescueboxBinary(), [])
        XCTAssertEqual(none.status, 2)
    }

    func testBadOptionIsOneLineUsageError() throws {
        let r = try runProgram(try rescueboxBinary(), ["ddz", "--no-such-option"])
        XCTAssertEqual(r.status, 2)
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
        XCTAssertTrue(r.stderr.hasPrefix("rescuebox ddz: "), r.stderr)
    }

    func testDispatchThroughSymlinkAndInstall() throws {
        let bin = try rescueboxBinary()
        let dir = TempDir()
        let r = try runProgram(bin, ["--install", dir.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        for name in applets {
            let link = dir.file(name)
            XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: link),
                           URL(fileURLWithPath: bin).resolvingSymlinksInPath().path)
            let help = try runProgram(link, ["--help"])
            XCTAssertEqual(help.status, 0, name)
            XCTAssertTrue(help.stdoutText.contains("USAGE: \(name)"), help.stdoutText)
        }
        // Installing again replaces our own links.
        XCTAssertEqual(try runProgram(bin, ["--install", dir.path]).status, 0)
        // A foreign file is not replaced without -f.
        try FileManager.default.removeItem(atPath: dir.file("ddz"))
        try "keep me".write(toFile: dir.file("ddz"), atomically: false, encoding: .utf8)
        let refused = try runProgram(bin, ["--install", dir.path])
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.stderr.contains("\(dir.file("ddz")): install: exists and is not a rescuebox link"), refused.stderr)
        XCTAssertEqual(try String(contentsOfFile: dir.file("ddz"), encoding: .utf8), "keep me")
        XCTAssertEqual(try runProgram(bin, ["--install", dir.path, "-f"]).status, 0)
        XCTAssertNotNil(try? FileManager.default.destinationOfSymbolicLink(atPath: dir.file("ddz")))
    }

    /// The static binary copied alone into an empty directory runs under
    /// chroot: --list and every applet's --help.
    func testStaticBinaryInEmptyChroot() throws {
        try requireRoot("chroot")
        let bin = try rescueboxBinary()
        let file = try sh("file -L '\(bin)'").stdoutText
        guard file.contains("statically linked") else { throw XCTSkip("\(bin) is not the static build (run build-static.sh)") }
        let root = TempDir("rescuebox-chroot")
        try FileManager.default.copyItem(atPath: bin, toPath: root.file("rescuebox"))
        let list = try runProgram("/usr/sbin/chroot", [root.path, "/rescuebox", "--list"])
        XCTAssertEqual(list.status, 0, list.stderr)
        XCTAssertEqual(list.stdoutText.split(separator: "\n").map(String.init), applets)
        for name in applets {
            let help = try runProgram("/usr/sbin/chroot", [root.path, "/rescuebox", name, "--help"])
            XCTAssertEqual(help.status, 0, "\(name): \(help.stderr)")
            XCTAssertTrue(help.stdoutText.contains("USAGE: \(name)"), name)
        }
    }
}
