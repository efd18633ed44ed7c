import Foundation
import TestSupport
import XCTest

/// Helpers for the mount tests: mounts, waits, file trees, an MBR disk.
class MountTestCase: XCTestCase {
    var cleanups: [() -> Void] = []

    override func tearDown() {
        for c in cleanups.reversed() { c() }
        cleanups = []
        super.tearDown()
    }

    // MARK: helpers

    /// Runs a bash command line (process substitution) that must succeed.
    @discardableResult
    func bash(_ command: String, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let r = try runProgram("/bin/bash", ["-c", command])
        XCTAssertEqual(r.status, 0, "\(command): \(r.stdoutText) \(r.stderr)", file: file, line: line)
        return r.stdoutText
    }

    /// umount, retried while the kernel still holds the FUSE file from an
    /// asynchronous release ("target is busy").
    func unmount(_ dir: String) throws {
        var last = ""
        do {
            try waitFor("umount \(dir)") {
                let r = try sh("umount '\(dir)'")
                last = r.stderr
                return r.status == 0
            }
        } catch {
            XCTFail("umount \(dir): \(last)")
            throw error
        }
    }

    /// After umount of a loop mount: the loop device detaches later and may
    /// still write to the image; wait until none is attached to it.
    func waitForLoopDetached(_ image: String) throws {
        try waitFor("every loop device on \(image) to detach") {
            try shOK("losetup -j '\(image)'").trimmingCharacters(in: .whitespacesAndNewlines).isEmpty
        }
    }

    func isMounted(_ dir: String) -> Bool {
        let mounts = (try? String(contentsOfFile: "/proc/mounts", encoding: .utf8)) ?? ""
        let resolved = URL(fileURLWithPath: dir).resolvingSymlinksInPath().path
        return mounts.split(separator: "\n").contains { $0.split(separator: " ").dropFirst().first.map(String.init) == resolved }
    }

    /// PIDs of rescuebox processes whose arguments mention `text`.
    func processes(mentioning text: String) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { Int32($0) }.filter { pid in
            guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
            let args = String(decoding: data, as: UTF8.self).split(separator: "\0").map(String.init)
            return args.contains("mount") && args.contains { $0.contains(text) } && (args.first ?? "").hasSuffix("rescuebox")
        }
    }

    /// `rescuebox mount -f ARGS` as our child (stderr captured while it
    /// runs); registers a cleanup that ends it by PID (SIGINT, so it
    /// unmounts) and lazily unmounts what a killed one left behind.
    func startForegroundMount(_ arguments: [String], on dir: String, env: [String: String]? = nil) throws -> BackgroundProcess {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let process = try BackgroundProcess.start(try rescueboxBinary(), ["mount", "-f"] + arguments + [dir], environment: env)
        cleanups.append { [unowned self] in
            if process.isRunning {
                process.signal(SIGINT)
                _ = try? process.wait(timeout: 30)
            }
            process.stop()
            if self.isMounted(dir) { _ = try? sh("umount -l '\(dir)'") }
        }
        return process
    }

    /// Waits until `dir` is mounted by `process`; fails with its stderr if it exits first.
    func waitForMount(_ dir: String, by process: BackgroundProcess) throws {
        try waitFor("the foreground mount on \(dir)") {
            guard process.isRunning else { throw prerequisiteFailed("rescuebox mount exited (\(process.command)): \(process.stderr)") }
            return isMounted(dir)
        }
    }

    /// Mounts in the background (the default); registers an unmount.
    func mountImage(_ source: String, on dir: String, extra: [String] = [], env: [String: String]? = nil) throws -> RunResult {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let r = try runProgram(try rescueboxBinary(), ["mount"] + extra + [source, dir], environment: env, timeout: 300)
        if r.status == 0 {
            cleanups.append { [unowned self] in
                if self.isMounted(dir) { _ = try? sh("umount '\(dir)' || umount -l '\(dir)'") }
            }
        }
        return r
    }

    func loopMount(_ image: String, on dir: String, type: String) throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let command = type == "ntfs" ? "ntfs-3g -o ro '\(image)' '\(dir)'" : "mount -t \(type) -o loop,ro '\(image)' '\(dir)'"
        _ = try shOK(command)
        cleanups.append { _ = try? sh("umount '\(dir)'") }
    }

    /// "sha  ./path" lines for every file under `dir`, sorted.
    func checksums(_ dir: String, excluding: String = "") throws -> String {
        try shOK("cd '\(dir)' && find . -type f ! -name '\(excluding)' ! -path './$RECYCLE.BIN/*' ! -path './System Volume Information/*' -print0 | sort -z | xargs -0 -r sha256sum")
    }

    /// A file tree with `filler` MiB of random data in large files.
    func fillTree(_ dir: String, filler: Int, seed: Int) throws {
        _ = try shOK("""
            cd '\(dir)' && mkdir -p docs/letters 'photos/2026 summer' src/deep/er/still && \
            for i in $(seq 1 40); do echo "letter $i seed \(seed)" > docs/letters/l$i.txt; done && \
            head -c 8388608 /dev/urandom > photos/big8.bin && \
            head -c 300001 /dev/urandom > 'photos/2026 summer/odd size.jpg' && \
            cp /etc/services src/deep/er/still/services.txt && \
            n=0; while [ $n -lt \(filler) ]; do head -c 33554432 /dev/urandom > filler$n.bin; n=$((n + 32)); done; sync
            """)
    }

    struct Disk { var path: String; var sums: [String]; var parts: [(start: UInt64, size: UInt64)] }

    /// An MBR disk: p1 ext4, p2 NTFS, each with a file tree.
    func makeMBRDisk(_ dir: TempDir, ext4MiB: Int, ntfsMiB: Int, fillerMiB: (Int, Int)) throws -> Disk {
        try requireRoot("loop devices and mounts")
        let path = dir.file("disk.raw")
        let total = 1 + ext4MiB + ntfsMiB + 1
        _ = try shOK("truncate -s \(total)M '\(path)' && printf 'label: dos\\nstart=2048, size=\(ext4MiB * 2048), type=83\\nstart=\((1 + ext4MiB) * 2048), size=\(ntfsMiB * 2048), type=7\\n' | sfdisk -q '\(path)'")
        let parts: [(UInt64, UInt64)] = [(1 << 20, UInt64(ext4MiB) << 20), (UInt64(1 + ext4MiB) << 20, UInt64(ntfsMiB) << 20)]
        var sums: [String] = []
        for (i, (start, size)) in parts.enumerated() {
            let dev = try shOK("losetup -o \(start) --sizelimit \(size) --find --show '\(path)'").trimmingCharacters(in: .whitespacesAndNewlines)
            defer { _ = try? sh("losetup -d \(dev)") }
            let mnt = dir.file("src\(i)")
            try FileManager.default.createDirectory(atPath: mnt, withIntermediateDirectories: true)
            if i == 0 {
                _ = try shOK("mkfs.ext4 -q -F \(dev) && mount \(dev) '\(mnt)'")
            } else {
                _ = try shOK("mkntfs -Q -F -q \(dev) && ntfs-3g \(dev) '\(mnt)'")
            }
            do {
                try fillTree(mnt, filler: i == 0 ? fillerMiB.0 : fillerMiB.1, seed: i)
                sums.append(try checksums(mnt))
            } catch {
                _ = try? sh("umount '\(mnt)'")
                throw error
            }
            _ = try shOK("umount '\(mnt)'")
        }
        try waitForLoopDetached(path)
        return Disk(path: path, sums: sums, parts: parts)
    }

}

/// `rescuebox mount` with the built binary, real filesystems on loop
/// devices over the FUSE files, real lzop and a real vsftpd.
final class MountTests: MountTestCase {

    /// An image made by lzop itself, indexed with ddz --index, mounted;
    /// stat, dd at odd offsets, a read past the end; umount ends it.
    func testLocalLzopImageAfterDdzIndex() throws {
        try requireRoot("FUSE mounts")
        let dir = TempDir()
        let raw = dir.file("fs.img")
        _ = try shOK("truncate -s 40M '\(raw)' && mkfs.ext4 -q -F '\(raw)' && mkdir -p '\(dir.file("src"))' && mount -o loop '\(raw)' '\(dir.file("src"))'")
        try fillTree(dir.file("src"), filler: 0, seed: 3)
        let sums = try checksums(dir.file("src"))
        _ = try shOK("umount '\(dir.file("src"))'")
        try waitForLoopDetached(raw)
        _ = try shOK("head -c 12345 /dev/urandom >> '\(raw)' && lzop -1 -o '\(raw).lzo' '\(raw)'")
        let bin = try rescueboxBinary()
        // No index yet: ddz --index builds it from the block headers.
        let index = try runProgram(bin, ["ddz", "--index", raw + ".lzo"])
        XCTAssertEqual(index.status, 0, index.stderr)
        let blocks = (40 * 1048576 + 12345 + 262143) / 262144
        XCTAssertEqual((try FileManager.default.attributesOfItem(atPath: raw + ".lzo.index")[.size] as? Int), 8 * blocks)

        // ddz -o writes FILE.index as the stream goes by: the same as --index.
        _ = try shOK("'\(bin)' ddz -9 --crc32 '\(raw)' -o '\(dir.file("d.lzo"))' 2>/dev/null && cp '\(dir.file("d.lzo"))' '\(dir.file("e.lzo"))' && '\(bin)' ddz --index '\(dir.file("e.lzo"))' && cmp '\(dir.file("d.lzo.index"))' '\(dir.file("e.lzo.index"))'")
        // Concatenated members: refused, saying what is supported.
        let twice = try runProgram("/bin/bash", ["-c", "cat '\(raw).lzo' '\(raw).lzo' > '\(dir.file("twice.lzo"))' && '\(bin)' ddz --index '\(dir.file("twice.lzo"))'"])
        XCTAssertEqual(twice.status, 1)
        XCTAssertTrue(twice.stderr.contains("a second lzop member starts here") && twice.stderr.contains("supported: one lzop member"), twice.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.file("twice.lzo.index")))

        let mnt = dir.file("mnt")
        let r = try mountImage(raw + ".lzo", on: mnt)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(isMounted(mnt))
        XCTAssertEqual(try shOK("stat -c '%s %A' '\(mnt)/disk.img'").trimmingCharacters(in: .whitespacesAndNewlines),
                       "\(40 * 1048576 + 12345) -r--r--r--")
        XCTAssertEqual(try shOK("ls '\(mnt)'").trimmingCharacters(in: .whitespacesAndNewlines), "disk.img", "no partition table, no p*.img")
        // dd at odd offsets and sizes, across block edges.
        for (skip, count) in [(1, 777), (262143, 3), (262_100, 600_001), (41_943_000, 99)] {
            let dd = "bs=65536 iflag=skip_bytes,count_bytes skip=\(skip) count=\(count) 2>/dev/null"
            try bash("cmp <(dd if='\(mnt)/disk.img' \(dd)) <(dd if='\(raw)' \(dd))")
        }
        try bash("cmp <(dd if='\(mnt)/disk.img' bs=4099 skip=5 count=77 2>/dev/null) <(dd if='\(raw)' bs=4099 skip=5 count=77 2>/dev/null)")
        // Past the end: a short read, no error.
        let tail = try shOK("dd if='\(mnt)/disk.img' bs=1000 skip=\((40 * 1048576 + 12345) / 1000) count=5 2>/dev/null | wc -c")
        XCTAssertEqual(tail.trimmingCharacters(in: .whitespacesAndNewlines), "\((40 * 1048576 + 12345) % 1000)")
        XCTAssertEqual(try shOK("dd if='\(mnt)/disk.img' bs=4096 skip=100000 count=1 2>/dev/null | wc -c").trimmingCharacters(in: .whitespacesAndNewlines), "0")
        _ = try shOK("cmp '\(mnt)/disk.img' '\(raw)'")
        // Writing is refused.
        XCTAssertNotEqual(try sh("echo x >> '\(mnt)/disk.img'").status, 0)
        // The filesystem inside, loop-mounted read-only: every file intact.
        try loopMount(mnt + "/disk.img", on: dir.file("fs"), type: "ext4")
        XCTAssertEqual(try checksums(dir.file("fs")), sums)
        try unmount(dir.file("fs"))
        // umount ends the process.
        XCTAssertFalse(processes(mentioning: mnt).isEmpty, "the background process serves the mount")
        try unmount(mnt)
        try waitFor("the mount process to exit after umount") { processes(mentioning: mnt).isEmpty }
        XCTAssertFalse(isMounted(mnt))
    }

    /// The default serves direct I/O: reads (also MAP_PRIVATE mmap) are
    /// exact, shared mmap is refused (ENODEV). --page-cache serves through
    /// the kernel's page cache, where shared mmap works too.
    func testDirectIOByDefaultAndPageCacheOnRequest() throws {
        try requireRoot("FUSE mounts")
        let dir = TempDir()
        let raw = dir.file("data")
        _ = try dir.writeRandom("data", count: 3_000_000)
        XCTAssertEqual(try runProgram(try rescueboxBinary(), ["ddz", raw, "-o", raw + ".lzo"]).status, 0)
        // "shared private": what each mmap gave, as python sees it.
        let probe = """
            import mmap, os, sys
            fd = os.open(sys.argv[1], os.O_RDONLY)
            want = open(sys.argv[2], "rb").read()
            out = []
            for flags in (mmap.MAP_SHARED, mmap.MAP_PRIVATE):
                try:
                    m = mmap.mmap(fd, 0, flags=flags, prot=mmap.PROT_READ)
                    out.append("same" if m[:] == want else "differs")
                except OSError as e:
                    out.append("errno%d" % e.errno)
            print(" ".join(out))
            """
        for (extra, expected) in [([String](), "errno\(ENODEV) same"), (["--page-cache"], "same same")] {
            let mnt = dir.file("mnt")
            let r = try mountImage(raw + ".lzo", on: mnt, extra: extra)
            XCTAssertEqual(r.status, 0, r.stderr)
            _ = try shOK("cmp '\(mnt)/disk.img' '\(raw)'")
            let got = try runProgram("/usr/bin/python3", ["-c", probe, mnt + "/disk.img", raw])
            XCTAssertEqual(got.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines), expected, "mount \(extra): \(got.stderr)")
            try unmount(mnt)
            try waitFor("the mount process to exit after umount") { processes(mentioning: mnt).isEmpty }
        }
    }

    /// -f stays in the foreground; Ctrl-C (SIGINT) unmounts and exits 130 (128+SIGINT).
    func testForegroundCtrlCUnmounts() throws {
        try requireRoot("FUSE mounts")
        let dir = TempDir()
        let raw = dir.file("data")
        try pseudoRandomBytes(3_000_000, seed: 5).write(to: URL(fileURLWithPath: raw))
        XCTAssertEqual(try runProgram(try rescueboxBinary(), ["ddz", raw, "-o", raw + ".lzo"]).status, 0)
        let mnt = dir.file("mnt")
        let process = try startForegroundMount([raw + ".lzo"], on: mnt)
        try waitForMount(mnt, by: process)
        _ = try shOK("cmp '\(mnt)/disk.img' '\(raw)'")
        process.signal(SIGINT)
        let r = try process.wait(timeout: 60)
        XCTAssertEqual(r.status, 128 + SIGINT, r.stderr)
        XCTAssertFalse(isMounted(mnt), "Ctrl-C unmounts")
        XCTAssertTrue(processes(mentioning: mnt).isEmpty)
    }

    /// One flipped byte in one block: reads of that block's range fail with
    /// EIO and one line names block and offset; the rest reads fine.
    func testCorruptBlockGivesEIOForItsRangeOnly() throws {
        try requireRoot("FUSE mounts")
        let dir = TempDir()
        let raw = dir.file("fs.img")
        let src = dir.file("src")
        _ = try shOK("truncate -s 48M '\(raw)' && mkfs.ext4 -q -F -b 4096 '\(raw)' && mkdir -p '\(src)' && mount -o loop '\(raw)' '\(src)'")
        try fillTree(src, filler: 0, seed: 4)
        // The physical 4K block 1024 of the 8 MiB file (debugfs after umount).
        let sums = try checksums(src, excluding: "big8.bin")
        _ = try shOK("umount '\(src)'")
        try waitForLoopDetached(raw)
        let bmap = try shOK("debugfs -R 'bmap /photos/big8.bin 1024' '\(raw)' 2>/dev/null")
        let physical = try XCTUnwrap(UInt64(bmap.trimmingCharacters(in: .whitespacesAndNewlines)), bmap)
        let badBlock = Int(physical * 4096 / 262144)
        let bin = try rescueboxBinary()
        XCTAssertEqual(try runProgram(bin, ["ddz", raw, "-o", raw + ".lzo"]).status, 0)
        // Flip a payload byte of block badBlock (offsets from the index).
        let index = try Data(contentsOf: URL(fileURLWithPath: raw + ".lzo.index"))
        let offset = index[(badBlock * 8)..<(badBlock * 8 + 8)].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        _ = try shOK("printf '\\x5a' | dd of='\(raw).lzo' bs=1 seek=\(offset + 100) conv=notrunc 2>/dev/null")

        let mnt = dir.file("mnt")
        let process = try startForegroundMount([raw + ".lzo"], on: mnt)
        try waitForMount(mnt, by: process)
        let bs = 262144
        let inside = try sh("dd if='\(mnt)/disk.img' of=/dev/null bs=4096 skip=\(badBlock * bs / 4096 + 3) count=1")
        XCTAssertNotEqual(inside.status, 0)
        XCTAssertTrue(inside.stderr.contains("Input/output error"), inside.stderr)
        // The neighbours, up to the edges.
        try bash("cmp <(dd if='\(mnt)/disk.img' bs=4096 skip=\(badBlock * bs / 4096 - 64) count=64 2>/dev/null) <(dd if='\(raw)' bs=4096 skip=\(badBlock * bs / 4096 - 64) count=64 2>/dev/null)")
        try bash("cmp <(dd if='\(mnt)/disk.img' bs=4096 skip=\((badBlock + 1) * bs / 4096) count=64 2>/dev/null) <(dd if='\(raw)' bs=4096 skip=\((badBlock + 1) * bs / 4096) count=64 2>/dev/null)")
        // Through the filesystem: the damaged file fails, all others are intact.
        try loopMount(mnt + "/disk.img", on: dir.file("fs"), type: "ext4")
        let cat = try sh("cat '\(dir.file("fs"))/photos/big8.bin' > /dev/null")
        XCTAssertNotEqual(cat.status, 0)
        XCTAssertTrue(cat.stderr.contains("Input/output error"), cat.stderr)
        let after = try checksums(dir.file("fs"), excluding: "big8.bin")
        XCTAssertEqual(after, sums)
        try unmount(dir.file("fs"))
        process.signal(SIGINT)
        let exited = try process.wait(timeout: 60)
        XCTAssertEqual(exited.status, 128 + SIGINT, exited.stderr)
        let lines = exited.stderr.split(separator: "\n")
        let named = lines.filter { $0.contains("block \(badBlock) at compressed offset \(offset)") }
        XCTAssertEqual(named.count, 1, "one line for the corrupt block: \(lines)")
        XCTAssertTrue(named.first?.hasPrefix("rescuebox mount: ") ?? false, "\(lines)")
    }

    /// Without an index on the server: a clear message offering --scan;
    /// with --scan it reads the image once and serves it.
    func testFTPWithoutIndexOffersScan() throws {
        let server = try VsftpdServer.start()
        defer { server.stop() }
        let dir = TempDir()
        let raw = dir.file("data")
        try pseudoRandomBytes(2_000_000, seed: 11).write(to: URL(fileURLWithPath: raw))
        let bin = try rescueboxBinary()
        XCTAssertEqual(try runProgram(bin, ["ddz", raw, "-o", server.home + "/data.lzo"]).status, 0)
        try FileManager.default.removeItem(atPath: server.home + "/data.lzo.index")
        _ = try shOK("chown \(server.user) '\(server.home)/data.lzo'")
        let env = ["FTP_PASSWORD": server.password]
        let mnt = dir.file("mnt")
        let refused = try mountImage("\(server.urlBase)/data.lzo", on: mnt, env: env)
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.stderr.contains("data.lzo.index") && refused.stderr.contains("--scan"), refused.stderr)
        XCTAssertEqual(refused.stderr.split(separator: "\n").count, 1, refused.stderr)
        XCTAssertFalse(isMounted(mnt))
        let r = try mountImage("\(server.urlBase)/data.lzo", on: mnt, extra: ["--scan"], env: env)
        XCTAssertEqual(r.status, 0, r.stderr)
        _ = try shOK("cmp '\(mnt)/disk.img' '\(raw)'")
        XCTAssertFalse(try shOK("grep ' \(mnt) ' /proc/mounts").contains(server.password), "no password in /proc/mounts")
        try unmount(mnt)
        try waitFor("the mount process to exit") { processes(mentioning: mnt).isEmpty }
    }

    /// The FTP sessions killed in the middle of a long read: the read
    /// completes (reconnect and retry) with the right bytes.
    func testFTPSessionKilledMidReadCompletes() throws {
        let server = try VsftpdServer.start()
        defer { server.stop() }
        let dir = TempDir()
        let raw = dir.file("data")
        try pseudoRandomBytes(96 << 20, seed: 12).write(to: URL(fileURLWithPath: raw))
        let bin = try rescueboxBinary()
        XCTAssertEqual(try runProgram(bin, ["ddz", raw, "-o", server.home + "/data.lzo"]).status, 0)
        _ = try shOK("chown \(server.user) '\(server.home)'/data.lzo*")
        let mnt = dir.file("mnt")
        let mount = try startForegroundMount(["--cache", "8M", "--sessions", "2", "\(server.urlBase)/data.lzo"], on: mnt,
                                             env: ["FTP_PASSWORD": server.password])
        try waitForMount(mnt, by: mount)
        // A slow reader (1 MiB at a time) while the sessions are killed.
        let copy = dir.file("copy")
        let reader = try BackgroundProcess.start(try python3Path(), ["-c", """
            import sys, time
            with open(sys.argv[1], 'rb') as f, open(sys.argv[2], 'wb') as out:
                while True:
                    b = f.read(1 << 20)
                    if not b: break
                    out.write(b); out.flush(); time.sleep(0.02)
            """, mnt + "/disk.img", copy])
        cleanups.append { reader.stop() }
        try waitFor("the reader to get going") {
            guard reader.isRunning else { throw prerequisiteFailed("the reader exited early: \(reader.stderr)") }
            let size = (try? FileManager.default.attributesOfItem(atPath: copy))?[.size] as? Int ?? 0
            return size > 8 << 20
        }
        // vsftpd's per-session processes are the children of its listener.
        // A session killed between two transfers is replaced without a
        // failed read; kill them again until one dies mid-transfer and
        // the read is retried.
        let retried = "reconnecting and retrying the read"
        var kills = 0
        try waitFor("a read to be retried after its session was killed", detail: { "\(kills) rounds of kills" }) {
            if ((try? String(contentsOfFile: mount.stderrPath, encoding: .utf8)) ?? "").contains(retried) { return true }
            guard reader.isRunning else { throw prerequisiteFailed("the reader finished before a read was retried (\(kills) rounds of kills)") }
            if !(try shOK("for p in $(pgrep -P \(server.pid)); do kill -9 $p 2>/dev/null && echo $p; done")).isEmpty { kills += 1 }
            return false
        }
        let read = try reader.wait(timeout: 120)
        XCTAssertEqual(read.status, 0, read.stderr)
        _ = try shOK("cmp '\(copy)' '\(raw)'")
        mount.signal(SIGINT)
        let exited = try mount.wait(timeout: 60)
        XCTAssertEqual(exited.status, 128 + SIGINT, exited.stderr)
        XCTAssertTrue(exited.stderr.contains(retried), exited.stderr)
    }

    /// The static binary alone in an empty chroot (only /dev/fuse bound in)
    /// mounts as root with mount(2): no fusermount, no shared libraries.
    func testStaticBinaryMountsInEmptyChroot() throws {
        try requireRoot("chroot and FUSE")
        let bin = try rescueboxBinary()
        guard try shOK("file -L '\(bin)'").contains("statically linked") else {
            throw XCTSkip("\(bin) is not the static binary (scripts/test.sh sets RESCUEBOX_BIN=dist/rescuebox)")
        }
        let root = TempDir("rescuebox-chroot")
        try pseudoRandomBytes(3_000_000, seed: 21).write(to: URL(fileURLWithPath: root.file("data")))
        _ = try shOK("mkdir '\(root.file("dev"))' '\(root.file("mnt"))' && touch '\(root.file("dev/fuse"))' && mount --bind /dev/fuse '\(root.file("dev/fuse"))' && cp '\(bin)' '\(root.file("rescuebox"))'")
        cleanups.append { _ = try? sh("umount '\(root.file("mnt"))'; umount '\(root.file("dev/fuse"))'") }
        XCTAssertEqual(try runProgram(bin, ["ddz", root.file("data"), "-o", root.file("data.lzo")]).status, 0)
        let r = try runProgram("/usr/sbin/chroot", [root.path, "/rescuebox", "mount", "/data.lzo", "/mnt"])
        XCTAssertEqual(r.status, 0, r.stderr)
        _ = try shOK("cmp '\(root.file("mnt/disk.img"))' '\(root.file("data"))'")
        try unmount(root.file("mnt"))
        try waitFor("the chrooted mount process to exit") {
            processes(mentioning: "/data.lzo").allSatisfy {
                (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\($0)/root")) != root.path
            }
        }
    }
}
