import Foundation
import TestSupport
import XCTest

/// `ddz --noerror` on a real faulty device: a FUSE filesystem (python3-fusepy)
/// serving an image whose chosen byte ranges return EIO, with direct_io so
/// O_DIRECT reads reach it. The output must be the image with zeros exactly
/// in the bad ranges (whole sectors), and stderr must name exactly those.
final class DdzNoErrorTests: XCTestCase {
    static let script = """
    import errno, os, stat, sys
    from fusepy import FUSE, FuseOSError, Operations

    class BadDisk(Operations):
        def __init__(self, backing, bad):
            self.size = os.path.getsize(backing)
            self.bad = bad
            self.fd = os.open(backing, os.O_RDONLY)
        def getattr(self, path, fh=None):
            if path == "/":
                return dict(st_mode=stat.S_IFDIR | 0o755, st_nlink=2)
            if path == "/disk.img":
                return dict(st_mode=stat.S_IFREG | 0o444, st_nlink=1, st_size=self.size)
            raise FuseOSError(errno.ENOENT)
        def readdir(self, path, fh):
            return [".", "..", "disk.img"]
        def open(self, path, flags):
            return 0
        def read(self, path, size, offset, fh):
            for (a, b) in self.bad:
                if offset < b and offset + size > a:
                    raise FuseOSError(errno.EIO)
            return os.pread(self.fd, size, offset)

    bad = [(int(a), int(a) + int(n)) for a, n in (r.split("+") for r in sys.argv[3:])]
    FUSE(BadDisk(sys.argv[1], bad), sys.argv[2], foreground=True, direct_io=True, ro=True, nothreads=True)
    """

    func testNoErrorZeroesExactlyTheBadSectors() throws {
        try requireRoot("FUSE mounts")
        let bin = try rescueboxBinary()
        let lzop = try which("lzop")
        let python = "/usr/bin/python3"
        guard FileManager.default.fileExists(atPath: "/dev/fuse"),
              (try runProgram(python, ["-c", "import fusepy"])).status == 0 else {
            throw XCTSkip("needs /dev/fuse and python3-fusepy")
        }
        let dir = TempDir("ddz-noerror")
        let data = pseudoRandomBytes(3_000_000, seed: 77)
        try data.write(to: URL(fileURLWithPath: dir.file("back.img")))
        try Self.script.write(toFile: dir.file("badfs.py"), atomically: true, encoding: .utf8)
        let mnt = dir.file("mnt")
        try FileManager.default.createDirectory(atPath: mnt, withIntermediateDirectories: true)
        // Two sector-aligned bad ranges: 8 sectors in the first MiB, 1 sector
        // in the second.
        let bad = [(153_600, 4096), (1_052_160, 512)]
        let fs = try BackgroundProcess.start(python, [dir.file("badfs.py"), dir.file("back.img"), mnt] + bad.map { "\($0.0)+\($0.1)" })
        defer {
            _ = try? sh("umount '\(mnt)' 2>/dev/null || fusermount -u '\(mnt)' 2>/dev/null")
            fs.signal(SIGTERM)
            _ = try? fs.wait(timeout: 60)
        }
        let image = mnt + "/disk.img"
        try waitFor("the FUSE filesystem to come up at \(mnt)") {
            guard fs.isRunning else { throw prerequisiteFailed("badfs.py exited: \(fs.stderr)") }
            return FileManager.default.fileExists(atPath: image)
        }

        // Without --noerror: one line naming the file, an offset and EIO; exit 1.
        let plain = try runProgram(bin, ["ddz", "-1", image])
        XCTAssertEqual(plain.status, 1)
        XCTAssertTrue(plain.stderr.hasPrefix("rescuebox ddz: \(image): read at offset "), plain.stderr)
        XCTAssertTrue(plain.stderr.hasSuffix(": Input/output error\n"), plain.stderr)

        // The default 4 MiB request holds both bad ranges; with --bs 1M they
        // are in two requests in flight at once, with 256K in two of many.
        let map = dir.file("disk.map")
        for bs in [nil, "1M", "256K"] as [String?] {
            let r = try runProgram(bin, ["ddz", "-1", "--noerror", "--badmap", map] + (bs.map { ["--bs", $0] } ?? []) + [image])
            XCTAssertEqual(r.status, 1, "bad sectors make the exit status 1 (--bs \(bs ?? "default"))")
            let lines = r.stderr.split(separator: "\n").map(String.init)
            XCTAssertEqual(lines.filter { $0.contains("unreadable: bytes") }, [
                "rescuebox ddz: \(image): unreadable: bytes 153600-157695 (4096 bytes) written as zeros",
                "rescuebox ddz: \(image): unreadable: bytes 1052160-1052671 (512 bytes) written as zeros",
            ], "--bs \(bs ?? "default")")
            XCTAssertTrue(r.stderr.contains("4608 unreadable bytes in 2 ranges written as zeros"), r.stderr)
            let back = try runProgram(lzop, ["-dc"], input: r.stdout)
            XCTAssertEqual(back.status, 0)
            var expected = data
            for (offset, length) in bad { expected.replaceSubrange(offset..<offset + length, with: Data(count: length)) }
            XCTAssertEqual(back.stdout.count, data.count)
            XCTAssertTrue(back.stdout == expected, "output is the image with zeros exactly in the bad ranges (--bs \(bs ?? "default"))")
        }

        // The GNU ddrescue map file names exactly the bad ranges.
        let mapLines = try String(contentsOfFile: map, encoding: .utf8).split(separator: "\n").map(String.init)
        func hex(_ v: Int) -> String { String(format: "0x%08X", v) }
        XCTAssertEqual(mapLines.filter { !$0.hasPrefix("#") }, [
            "\(hex(3_000_000))     +               1",
            "\(hex(0))  \(hex(153_600))  +",
            "\(hex(153_600))  \(hex(4096))  -",
            "\(hex(157_696))  \(hex(1_052_160 - 157_696))  +",
            "\(hex(1_052_160))  \(hex(512))  -",
            "\(hex(1_052_672))  \(hex(3_000_000 - 1_052_672))  +",
        ])
    }
}
