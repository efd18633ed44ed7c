import Foundation
import TestSupport
import XCTest

/// `rescuebox ddz` (compress) as a user runs it, with the real lzop as the
/// oracle: lzop -t and lzop -dc | cmp, block-stream identity, options,
/// devices, and the ways it must end cleanly.
final class DdzCompressTests: XCTestCase {
    var bin: String!
    var lzop: String!
    var dir: TempDir!

    override func setUpWithError() throws {
        bin = try rescueboxBinary()
        lzop = try which("lzop")
        dir = TempDir("ddz-it")
    }

    override func tearDown() { dir = nil }

    func text(_ count: Int) -> Data {
        var out = Data()
        var i = 0
        while out.count < count {
            out.append(contentsOf: Array("\(i) lorem ipsum dolor sit amet, consectetur \(i % 97)\n".utf8))
            i += 1
        }
        return out.prefix(count)
    }

    func inputs() -> [(String, Data)] {
        let block = 256 * 1024
        var mixed = text(400_000)
        mixed.append(Data(count: 2 * block))
        mixed.append(pseudoRandomBytes(300_000, seed: 9))
        mixed.append((try? Data(contentsOf: URL(fileURLWithPath: "/bin/sh"))) ?? Data())
        mixed.append(Data(count: block + 3))
        return [
            ("empty", Data()), ("one", Data([7])), ("block", text(block)), ("block+1", text(block + 1)),
            ("random", pseudoRandomBytes(600_000, seed: 4)), ("text", text(1_000_000)),
            ("zeros", Data(count: 3 * block)), ("mixed", mixed),
        ]
    }

    func write(_ data: Data, _ name: String) throws -> String {
        let path = dir.file(name)
        try data.write(to: URL(fileURLWithPath: path))
        return path
    }

    /// Offset of the first block: magic + fixed header + name + checksum.
    func headerLength(_ d: Data) -> Int {
        let bytes = [UInt8](d.prefix(64))
        let flags = UInt32(bytes[17]) << 24 | UInt32(bytes[18]) << 16 | UInt32(bytes[19]) << 8 | UInt32(bytes[20])
        let filter = flags & 0x800 != 0 ? 4 : 0
        let nameLength = Int(bytes[33 + filter])
        return 34 + filter + nameLength + 4
    }

    /// lzop -t and lzop -dc | cmp for every input, from a file and from stdin.
    func testLzopTestsAndRestoresEveryInput() throws {
        for (name, data) in inputs() {
            let path = try write(data, name)
            for args in [[path], ["-1", path], ["-9", "--crc32", path]] {
                let r = try runProgram(bin, ["ddz"] + args)
                XCTAssertEqual(r.status, 0, "\(name) \(args): \(r.stderr)")
                let out = try write(r.stdout, "\(name).lzo")
                XCTAssertEqual(try runProgram(lzop, ["-t", out]).status, 0, "\(name) \(args)")
                let back = try runProgram(lzop, ["-dc", out])
                XCTAssertTrue(back.stdout == data, "\(name) \(args): lzop -dc differs from the input")
            }
            let piped = try runProgram(bin, ["ddz", "-1"], input: data)
            XCTAssertEqual(piped.status, 0, piped.stderr)
            let back = try runProgram(lzop, ["-dc"], input: piped.stdout)
            XCTAssertTrue(back.stdout == data, "\(name) from stdin")
        }
    }

    /// After the header, ddz's stream equals lzop's at -1, -3, -7, -9 and
    /// with --crc32 and -F; stdin input included (header differs by time only).
    func testBlockStreamIdenticalToLzop() throws {
        let data = inputs().last!.1
        let path = try write(data, "mixed")
        for args in [["-1"], ["-3"], ["-7"], ["-9"], ["-1", "--crc32"], ["-3", "-F"], ["-9", "-F"], ["-1", "-F", "--crc32"]] {
            let ours = try runProgram(bin, ["ddz"] + args + [path])
            let theirs = try runProgram(lzop, args + ["-c", path])
            XCTAssertEqual(ours.status, 0, ours.stderr)
            XCTAssertTrue(ours.stdout == theirs.stdout, "\(args): whole file differs from lzop's")
            let oursPiped = try runProgram(bin, ["ddz"] + args, input: data)
            let theirsPiped = try runProgram(lzop, args + ["-c"], input: data)
            let a = oursPiped.stdout, b = theirsPiped.stdout
            XCTAssertEqual(headerLength(a), headerLength(b))
            XCTAssertTrue(a.dropFirst(headerLength(a)) == b.dropFirst(headerLength(b)), "\(args) from stdin: blocks differ")
            XCTAssertTrue(a.prefix(25) == b.prefix(25), "\(args): header up to mode")
        }
    }

    func testSkipAndCountMatchDd() throws {
        let data = pseudoRandomBytes(3_000_000, seed: 2)
        let path = try write(data, "input")
        for (skip, count) in [("4096", "1M"), ("1000", "12345"), ("1M", nil), ("0", "1")] as [(String, String?)] {
            var args = ["ddz", "--skip", skip, path]
            if let count { args += ["--count", count] }
            let r = try runProgram(bin, args)
            XCTAssertEqual(r.status, 0, r.stderr)
            let back = try runProgram(lzop, ["-dc"], input: r.stdout)
            let s = Int(try shOK("numfmt --from=iec \(skip)"))!
            let c = count.map { Int(try! shOK("numfmt --from=iec \($0)"))! } ?? data.count
            XCTAssertTrue(back.stdout == data[s..<min(data.count, s + c)], "skip \(skip) count \(String(describing: count))")
        }
        let bad = try runProgram(bin, ["ddz", "--bs", "banana", path])
        XCTAssertEqual(bad.status, 2)
        XCTAssertEqual(try runProgram(bin, ["ddz", "--bs", "1000", path]).status, 2)
        XCTAssertEqual(try runProgram(bin, ["ddz", "-T", "0", path]).status, 2)
    }

    func testOutputFileIsNotOverwrittenWithoutForce() throws {
        let path = try write(text(500_000), "input")
        let out = dir.file("out.lzo")
        XCTAssertEqual(try runProgram(bin, ["ddz", path, "-o", out]).status, 0)
        XCTAssertEqual(try runProgram(lzop, ["-t", out]).status, 0)
        let again = try runProgram(bin, ["ddz", "-1", path, "-o", out])
        XCTAssertEqual(again.status, 1)
        XCTAssertEqual(again.stderr, "rescuebox ddz: \(out): open: already exists; not overwritten (use -f)\n")
        XCTAssertEqual(try runProgram(bin, ["ddz", "-1", "-f", path, "-o", out]).status, 0)
        XCTAssertEqual(try runProgram(lzop, ["-t", out]).status, 0)
        // -o output is not stdout: no F_STDOUT flag, as lzop -o.
        let d = try Data(contentsOf: URL(fileURLWithPath: out))
        XCTAssertEqual(d[20] & 0x08, 0)
        let same = try runProgram(bin, ["ddz", "-f", path, "-o", path])
        XCTAssertEqual(same.status, 1)
        XCTAssertTrue(same.stderr.contains("is the input"), same.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)).count, 500_000)
    }

    func testErrorsAreOneLine() throws {
        let missing = try runProgram(bin, ["ddz", "/nonexistent/disk"])
        XCTAssertEqual(missing.status, 1)
        XCTAssertEqual(missing.stderr, "rescuebox ddz: /nonexistent/disk: open: No such file or directory\n")
        let directory = try runProgram(bin, ["ddz", dir.path])
        XCTAssertEqual(directory.status, 1)
        XCTAssertEqual(directory.stderr, "rescuebox ddz: \(dir.path): read: Is a directory\n")
        let path = try write(Data(count: 1000), "small")
        let skip = try runProgram(bin, ["ddz", "--skip", "1M", path])
        XCTAssertEqual(skip.status, 1)
        XCTAssertEqual(skip.stderr.split(separator: "\n").count, 1, skip.stderr)
        XCTAssertTrue(skip.stderr.contains("beyond the end"), skip.stderr)
        let noOut = try runProgram(bin, ["ddz", path, "-o", dir.file("nodir/x.lzo")])
        XCTAssertEqual(noOut.status, 1)
        XCTAssertTrue(noOut.stderr.hasSuffix(": open: No such file or directory\n"), noOut.stderr)
    }

    /// `ddz file | head -c1`: no crash, no hang, one line, exit 1.
    func testClosedStdoutEndsCleanly() throws {
        let path = try write(pseudoRandomBytes(8 << 20, seed: 1), "big")
        let bash = try which("bash")
        let r = try runProgram(bash, ["-c", "'\(bin!)' ddz -1 '\(path)' | head -c1 >/dev/null; echo \"${PIPESTATUS[0]}\""])
        XCTAssertEqual(r.stdoutText, "1\n")
        XCTAssertEqual(r.stderr, "rescuebox ddz: stdout: write: Broken pipe\n")
    }

    /// Compressed data is not written to a terminal unless -f.
    func testRefusesTerminal() throws {
        _ = try which("script")
        let path = try write(text(1000), "t")
        let r = try sh("script -qec \"'\(bin!)' ddz '\(path)'\" /dev/null")
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stdoutText.contains("compressed data not written to a terminal"), r.stdoutText)
    }

    /// Interrupted: the partial -o file is removed.
    func testInterruptRemovesPartialOutput() throws {
        let path = try write(pseudoRandomBytes(64 << 20, seed: 8), "big")
        let out = dir.file("partial.lzo")
        let ddz = try BackgroundProcess.start(bin, ["ddz", "-9", "-T", "1", path, "-o", out])
        try waitFor("ddz to start writing \(out)") {
            guard ddz.isRunning else { throw prerequisiteFailed("ddz ended before it could be interrupted: \(ddz.stderr)") }
            return fileSize(out) > 0
        }
        ddz.signal(SIGTERM)
        let r = try ddz.wait(timeout: 120)
        XCTAssertEqual(r.status, 143, r.stderr)
        XCTAssertTrue(r.stderr.contains("interrupted by SIGTERM"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
    }

    func testSummaryAndVerbose() throws {
        let path = try write(Data(count: 1 << 20), "zeros")
        let r = try runProgram(bin, ["ddz", "-v", path, "-o", dir.file("z.lzo")])
        XCTAssertEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("1048576 bytes (1.0 MB, 1.0 MiB) read"), r.stderr)
        XCTAssertTrue(r.stderr.contains("4 blocks: 4 all-zero"), r.stderr)
    }

    /// A block device read with O_DIRECT (root: loop device).
    func testLoopDeviceWithDirectIO() throws {
        try requireRoot("loop devices")
        let loop = try LoopDevice(image: dir.file("disk.img"), size: 16 << 20)
        defer { loop.detach() }
        let data = inputs().last!.1
        try shOK("dd if='\(try write(data, "payload"))' of='\(loop.device)' bs=1M oflag=direct status=none")
        let r = try runProgram(bin, ["ddz", "-v", "-1", loop.device])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("reading with O_DIRECT"), r.stderr)
        XCTAssertTrue(r.stderr.contains("O_DIRECT on"), r.stderr)
        let back = try runProgram(lzop, ["-dc"], input: r.stdout)
        var expected = data
        expected.append(Data(count: (16 << 20) - data.count))
        XCTAssertTrue(back.stdout == expected)
        // Device header: no stdin flag, mode 0, the device's name.
        let name = String(loop.device.split(separator: "/").last!)
        XCTAssertEqual(r.stdout[33], UInt8(name.utf8.count))
        XCTAssertEqual([UInt8](r.stdout[21..<25]), [0, 0, 0, 0])
    }

    /// ramfs refuses O_DIRECT: ddz falls back to buffered reads and says so with -v.
    func testFallbackOnRamfs() throws {
        try requireRoot("mounting a ramfs")
        let mnt = TempDir("ddz-ramfs")
        try shOK("mount -t ramfs ramfs '\(mnt.path)'")
        defer { _ = try? sh("umount '\(mnt.path)'") }
        let data = text(700_000)
        let path = mnt.file("file")
        try data.write(to: URL(fileURLWithPath: path))
        let r = try runProgram(bin, ["ddz", "-v", path])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("O_DIRECT refused"), r.stderr)
        XCTAssertTrue(try runProgram(lzop, ["-dc"], input: r.stdout).stdout == data)
    }
}
