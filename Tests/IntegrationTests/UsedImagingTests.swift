import Foundation
import TestSupport
import XCTest

/// `ddz --used` on generated whole disks (MBR and GPT) in loop images, read
/// from a read-only loop device, restored onto a blank one, and judged by
/// the real tools: fsck of every restored filesystem, every file's sha256,
/// the deleted pattern gone, and partclone's used-block domain contained in
/// ours (at most 1% larger).
final class UsedImagingTests: XCTestCase {
    enum FS: String {
        case ext4, ext4k1 = "ext4-1k", ext2, fat12, fat16, fat32, exfat, swap, xfs, ntfs, unknown
    }

    struct Part {
        var fs: FS
        var mib: UInt64
        /// Filled in once the table exists: bytes.
        var start: UInt64 = 0
        var length: UInt64 = 0
        var number = 0
        init(_ fs: FS, _ mib: UInt64) { self.fs = fs; self.mib = mib }
    }

    static let deletedPattern = "RESCUEBOX-DELETED-PATTERN-"

    let tmp = TempDir("rescuebox-used")
    var loops: [String] = []

    override func tearDown() {
        for l in loops.reversed() { _ = try? sh("umount -l '\(tmp.path)'/m* 2>/dev/null; losetup -d \(l) 2>/dev/null") }
        loops.removeAll()
        tmp.remove()
    }

    func attach(_ image: String, offset: UInt64 = 0, size: UInt64? = nil, readOnly: Bool = false) throws -> String {
        var args = "losetup -f --show"
        if readOnly { args += " -r" }
        if offset > 0 { args += " -o \(offset)" }
        if let size { args += " --sizelimit \(size)" }
        let dev = try shOK("\(args) '\(image)'").trimmingCharacters(in: .whitespacesAndNewlines)
        loops.append(dev)
        return dev
    }

    /// A loop device still busy when detached goes away later (autoclear),
    /// and may still write: wait until no loop device uses `image`.
    func waitUntilDetached(_ image: String) throws {
        try waitFor("no loop device left on \(image) (losetup -j)") { try shOK("losetup -j '\(image)'").isEmpty }
        try shOK("sync")
    }

    func detach(_ dev: String) throws {
        try shOK("losetup -d \(dev)")
        loops.removeAll { $0 == dev }
    }

    // MARK: - building disks

    /// Writes the table (sfdisk for MBR, sgdisk for GPT) and returns the parts with their places.
    func makeDisk(_ image: String, gpt: Bool, parts: [Part], extendedFrom: Int? = nil) throws -> [Part] {
        let total = parts.reduce(UInt64(4)) { $0 + $1.mib + 1 } + 4
        try shOK("truncate -s \(total)M '\(image)'")
        var parts = parts
        if gpt {
            var cmd = "sgdisk -o"
            for (i, p) in parts.enumerated() {
                let code: String
                switch p.fs {
                case .ext4, .ext4k1, .ext2, .xfs: code = "8300"
                case .fat12, .fat16, .fat32, .exfat, .ntfs: code = "0700"
                case .swap: code = "8200"
                case .unknown: code = "a500"
                }
                cmd += " -n \(i + 1):0:+\(p.mib)M -t \(i + 1):\(code) -c \(i + 1):\(p.fs.rawValue)"
            }
            try shOK("\(cmd) '\(image)' >/dev/null")
        } else {
            var script = "label: dos\n"
            for (i, p) in parts.enumerated() {
                if let e = extendedFrom, i == e {
                    let rest = parts[e...].reduce(0) { $0 + $1.mib + 2 }
                    script += "size=\(rest)M, type=5\n"
                }
                let type: String
                switch p.fs {
                case .ext4, .ext4k1, .ext2, .xfs: type = "83"
                case .fat12: type = "1"
                case .fat16: type = "6"
                case .fat32: type = "c"
                case .exfat, .ntfs: type = "7"
                case .swap: type = "82"
                case .unknown: type = "da"
                }
                script += "size=\(p.mib)M, type=\(type)\n"
            }
            try shOK("printf '\(script.replacingOccurrences(of: "\n", with: "\\n"))' | sfdisk -q '\(image)'")
        }
        // Places from sfdisk's own dump (works for both labels).
        let dump = try shOK("sfdisk -d '\(image)'")
        var listed: [(Int, UInt64, UInt64, String)] = []
        for line in dump.split(separator: "\n") where line.hasPrefix(image) {
            let name = line.split(separator: " ").first!
            let number = Int(name.dropFirst(image.count))!
            func field(_ key: String) -> String {
                let r = line.range(of: "\(key)=")!
                return String(line[r.upperBound...].drop { $0 == " " }.prefix { $0 != "," })
            }
            listed.append((number, UInt64(field("start"))! * 512, UInt64(field("size"))! * 512, field("type")))
        }
        listed = listed.filter { !["5", "f", "85"].contains($0.3) }.sorted { $0.1 < $1.1 }
        XCTAssertEqual(listed.count, parts.count, dump)
        for i in parts.indices {
            parts[i].number = listed[i].0
            parts[i].start = listed[i].1
            parts[i].length = listed[i].2
        }
        return parts
    }

    func makeFilesystem(_ image: String, _ p: Part, seed: Int) throws {
        let mt = "MTOOLS_SKIP_CHECK=1 mtools_skip_check=1"
        switch p.fs {
        case .fat12, .fat16, .fat32:
            let bits = p.fs == .fat12 ? "12" : p.fs == .fat16 ? "16" : "32"
            let extra = p.fs == .fat32 ? "-s 1" : ""
            try shOK("mkfs.vfat -F \(bits) \(extra) --offset \(p.start / 512) '\(image)' \(p.length / 1024) >/dev/null 2>&1")
            try populateFAT(image, p, seed: seed)
            _ = mt
        default:
            let dev = try attach(image, offset: p.start, size: p.length)
            defer { try? detach(dev) }
            switch p.fs {
            case .ext4: try shOK("mkfs.ext4 -q -F -b 4096 -O metadata_csum \(dev)")
            case .ext4k1: try shOK("mkfs.ext4 -q -F -b 1024 -O ^flex_bg \(dev)")
            case .ext2: try shOK("mkfs.ext2 -q -F \(dev)")
            case .exfat: try shOK("mkfs.exfat \(dev) >/dev/null")
            case .swap: try shOK("mkswap \(dev) >/dev/null")
            case .xfs: try shOK("mkfs.xfs -q -f \(dev)")
            case .ntfs: try shOK("mkntfs -q -f -F \(dev) >/dev/null 2>&1")
            case .unknown: try shOK("head -c 1M /dev/urandom > \(dev)")
            default: break
            }
            if [.ext4, .ext4k1, .ext2, .exfat, .xfs, .ntfs].contains(p.fs) {
                let mp = tmp.file("m\(seed)")
                try shOK("mkdir -p '\(mp)'")
                let mount = p.fs == .exfat ? "mount.exfat-fuse \(dev) '\(mp)'" : p.fs == .ntfs ? "ntfs-3g \(dev) '\(mp)'" : "mount \(dev) '\(mp)'"
                try shOK(mount)
                try populate(mp, seed: seed, mib: p.length >> 20)
                try shOK("umount '\(mp)'")
            }
        }
    }

    /// Random trees, two files grown in turns (fragmented), and a deleted
    /// file full of the pattern.
    func populate(_ mp: String, seed: Int, mib: UInt64) throws {
        let budget = max(2, Int(mib) / 8)
        try shOK("""
            cd '\(mp)' && mkdir -p a/b/c d && \
            head -c \(budget)M /dev/urandom > a/big && \
            for i in 1 2 3 4 5 6 7 8; do head -c $((i * 7919)) /dev/urandom > a/b/f$i; head -c $((i * 3001)) /dev/urandom > a/b/c/g$i; done && \
            for i in $(seq 1 12); do head -c 40000 /dev/urandom >> d/frag1; sync; head -c 40000 /dev/urandom >> d/frag2; sync; done && \
            yes '\(Self.deletedPattern)' | head -c \(budget)M > deleted && sync && rm deleted && sync
            """)
    }

    func populateFAT(_ image: String, _ p: Part, seed: Int) throws {
        let i = "'\(image)'@@\(p.start)"
        let src = tmp.file("fatsrc\(seed)")
        let budget = max(1, Int(p.length >> 20) / 4)
        try shOK("""
            export MTOOLS_SKIP_CHECK=1; mkdir -p '\(src)/a/b' && cd '\(src)' && \
            head -c \(budget)M /dev/urandom > a/big && for k in 1 2 3 4 5; do head -c $((k * 5003)) /dev/urandom > a/b/f$k; done && \
            head -c 30000 /dev/urandom > one && head -c 30000 /dev/urandom > two && \
            yes '\(Self.deletedPattern)' | head -c \(budget)M > deleted && \
            mcopy -s -i \(i) a one two deleted :: && mdel -i \(i) ::/deleted ::/one && \
            head -c 196608 /dev/urandom > frag && mcopy -i \(i) frag ::
            """)
    }

    // MARK: - judging

    /// `+` ranges of a ddrescue domain file, shifted by `base`.
    func domain(_ path: String, base: UInt64 = 0) throws -> [Range<UInt64>] {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").compactMap { line in
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            guard f.count == 3, f[2] == "+", let pos = UInt64(f[0].dropFirst(2), radix: 16),
                  let size = UInt64(f[1].dropFirst(2), radix: 16), !line.hasPrefix("#") else { return nil }
            return base + pos..<base + pos + size
        }.filter { !$0.isEmpty }
    }

    func covered(_ r: Range<UInt64>, by set: [Range<UInt64>]) -> Bool {
        var pos = r.lowerBound
        for s in set where s.upperBound > pos && s.lowerBound <= pos {
            pos = s.upperBound
            if pos >= r.upperBound { return true }
        }
        return pos >= r.upperBound
    }

    func bytes(in set: [Range<UInt64>], within r: Range<UInt64>) -> UInt64 {
        set.reduce(0) { $0 + UInt64(max(0, Int64(min($1.upperBound, r.upperBound)) - Int64(max($1.lowerBound, r.lowerBound)))) }
    }

    /// sha256 of every file, by relative path.
    func fileHashes(_ image: String, _ p: Part, tag: String) throws -> String {
        switch p.fs {
        case .fat12, .fat16, .fat32:
            let out = tmp.file("out-\(tag)")
            try shOK("rm -rf '\(out)'; mkdir -p '\(out)' && MTOOLS_SKIP_CHECK=1 mcopy -s -i '\(image)'@@\(p.start) '::*' '\(out)/'")
            return try shOK("cd '\(out)' && find . -type f -exec sha256sum {} + | sort -k2")
        default:
            let dev = try attach(image, offset: p.start, size: p.length, readOnly: true)
            defer { try? detach(dev) }
            let mp = tmp.file("m-\(tag)")
            try shOK("mkdir -p '\(mp)'")
            let mount = p.fs == .exfat ? "mount.exfat-fuse -o ro \(dev) '\(mp)'"
                : p.fs == .ntfs ? "ntfs-3g -o ro \(dev) '\(mp)'"
                : p.fs == .xfs ? "mount -o ro,norecovery \(dev) '\(mp)'" : "mount -o ro \(dev) '\(mp)'"
            try shOK(mount)
            defer { _ = try? sh("umount '\(mp)'") }
            return try shOK("cd '\(mp)' && find . -type f -exec sha256sum {} + | sort -k2")
        }
    }

    func fsck(_ image: String, _ p: Part) throws {
        switch p.fs {
        case .fat12, .fat16, .fat32:
            let dev = try attach(image, offset: p.start, size: p.length, readOnly: true)
            defer { try? detach(dev) }
            let r = try sh("fsck.vfat -n \(dev)")
            XCTAssertEqual(r.status, 0, "fsck.vfat \(p.fs): \(r.stdoutText) \(r.stderr)")
        case .unknown, .swap: break
        default:
            let dev = try attach(image, offset: p.start, size: p.length, readOnly: true)
            defer { try? detach(dev) }
            let cmd: String
            switch p.fs {
            case .exfat: cmd = "fsck.exfat -n \(dev)"
            case .xfs: cmd = "xfs_repair -n \(dev)"
            case .ntfs: cmd = "ntfsfix -n \(dev)"
            default: cmd = "e2fsck -fn \(dev)"
            }
            let r = try sh(cmd + " 2>&1")
            XCTAssertEqual(r.status, 0, "\(cmd): \(r.stdoutText)")
            if p.fs == .ntfs { XCTAssertFalse(r.stdoutText.contains("BAD"), r.stdoutText) }
        }
    }

    func partcloneDomain(_ image: String, _ p: Part) throws -> [Range<UInt64>]? {
        let tool: String
        switch p.fs {
        case .ext4, .ext4k1, .ext2: tool = "partclone.extfs"
        // partclone 0.3.23's FAT12 domain is wrong (it misses clusters of a
        // 2 MiB file that fsck.vfat and mtools read back): FAT16/32 only.
        case .fat16, .fat32: tool = "partclone.fat"
        case .exfat: tool = "partclone.exfat"
        case .ntfs: tool = "partclone.ntfs"
        default: return nil
        }
        let dev = try attach(image, offset: p.start, size: p.length, readOnly: true)
        defer { try? detach(dev) }
        let out = tmp.file("pc-\(p.number).dom")
        try shOK("\(tool) -q -D -s \(dev) -o '\(out)' >/dev/null 2>&1")
        return try domain(out, base: p.start)
    }

    /// Images `image` with `ddz --used` from a read-only loop device,
    /// restores it onto a blank device and judges every partition.
    @discardableResult
    func imageAndJudge(_ image: String, parts: [Part], extraArgs: [String] = []) throws -> String {
        try waitUntilDetached(image)
        let before = try shOK("sha256sum < '\(image)'")
        let src = try attach(image, readOnly: true)
        let lzo = tmp.file("disk.lzo"), map = tmp.file("used.map")
        let r = try runProgram(try rescueboxBinary(), ["ddz", "--used", "--used-map", map] + extraArgs + [src, "-o", lzo])
        XCTAssertEqual(r.status, 0, r.stderr)
        try detach(src)
        XCTAssertEqual(try shOK("sha256sum < '\(image)'"), before, "the source is unchanged")
        let size = try FileManager.default.attributesOfItem(atPath: image)[.size] as! UInt64
        let restored = tmp.file("restored.img")
        try shOK("rm -f '\(restored)'; truncate -s \(size) '\(restored)'")
        let dst = try attach(restored)
        let d = try runProgram(try rescueboxBinary(), ["ddz", "-d", lzo, "-o", dst, "-f"])
        XCTAssertEqual(d.status, 0, d.stderr)
        try detach(dst)
        let used = try domain(map)
        // Outside the partitions: byte-identical (table, gaps).
        var outside: [Range<UInt64>] = []
        var pos: UInt64 = 0
        for p in parts.sorted(by: { $0.start < $1.start }) {
            if p.start > pos { outside.append(pos..<p.start) }
            pos = max(pos, p.start + p.length)
        }
        if pos < size { outside.append(pos..<size) }
        for o in outside {
            XCTAssertTrue(covered(o, by: used), "bytes \(o) outside partitions are read")
        }
        for p in parts {
            let range = p.start..<p.start + p.length
            let tag = "\(p.number)"
            switch p.fs {
            case .xfs, .unknown:
                XCTAssertTrue(covered(range, by: used), "\(p.fs) read in full")
                XCTAssertTrue(r.stderr.contains("read in full"), r.stderr)
                try shOK("cmp -i \(p.start) -n \(p.length) '\(image)' '\(restored)'")
            case .swap:
                try shOK("cmp -i \(p.start) -n 4096 '\(image)' '\(restored)'")
                XCTAssertLessThanOrEqual(bytes(in: used, within: range), 4096, "swap: the header page only")
            default:
                XCTAssertEqual(try fileHashes(restored, p, tag: "r\(tag)"), try fileHashes(image, p, tag: "s\(tag)"), "\(p.fs) files")
                let left = try sh("tail -c +\(p.start + 1) '\(restored)' | head -c \(p.length) | grep -c -a '\(Self.deletedPattern)'")
                XCTAssertEqual(left.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines), "0", "\(p.fs): the deleted pattern is gone")
                let was = try sh("tail -c +\(p.start + 1) '\(image)' | head -c \(p.length) | grep -c -a '\(Self.deletedPattern)'")
                XCTAssertNotEqual(was.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines), "0", "\(p.fs): the pattern was on the source")
            }
            try fsck(restored, p)
            if let theirs = try partcloneDomain(image, p) {
                let missing = theirs.filter { !covered($0, by: used) }
                XCTAssertEqual(missing, [], "\(p.fs): partclone's used ranges not in ours")
                let ours = bytes(in: used, within: range), their = bytes(in: theirs, within: range)
                XCTAssertLessThanOrEqual(Double(ours), Double(their) * 1.01 + 65536,
                                         "\(p.fs): ours \(ours) bytes, partclone's \(their)")
                let line = r.stderr.split(separator: "\n").first { $0.contains("p\(p.number) ") }
                XCTAssertTrue(line?.hasSuffix("used: used blocks only") == true, "\(p.fs): \(r.stderr)")
            }
        }
        return r.stderr
    }

    // MARK: - tests

    func testMBRDiskWithExt4FatSwapXfsAndUnknown() throws {
        try requireRoot("loop devices and mounts")
        let image = tmp.file("mbr.img")
        var parts = [Part(.ext4, 64), Part(.fat16, 40), Part(.swap, 16),
                     Part(.ext4k1, 160), Part(.fat12, 8), Part(.xfs, 300), Part(.unknown, 4)]
        parts = try makeDisk(image, gpt: false, parts: parts, extendedFrom: 3)
        XCTAssertEqual(parts.map(\.number), [1, 2, 3, 5, 6, 7, 8])
        for (i, p) in parts.enumerated() { try makeFilesystem(image, p, seed: i) }
        // The 1 KiB-block ext4 keeps block groups uninitialised (libext2fs computes their bitmaps).
        let k1 = try attach(image, offset: parts[3].start, size: parts[3].length, readOnly: true)
        XCTAssertTrue(try shOK("dumpe2fs \(k1) 2>/dev/null").contains("BLOCK_UNINIT"))
        try detach(k1)
        let stderr = try imageAndJudge(image, parts: parts)
        XCTAssertTrue(stderr.contains("p7 xfs"), stderr)
        XCTAssertTrue(stderr.contains("read in full (no block map for xfs)"), stderr)
        XCTAssertTrue(stderr.contains("p3 swap"), stderr)
        XCTAssertTrue(stderr.contains("--used: "), stderr)
    }

    func testGPTDiskWithExt2Fat32ExfatNtfsAndExt4() throws {
        try requireRoot("loop devices and mounts")
        let image = tmp.file("gpt.img")
        var parts = [Part(.ext2, 32), Part(.fat32, 64), Part(.exfat, 48), Part(.ntfs, 24), Part(.ext4, 96)]
        parts = try makeDisk(image, gpt: true, parts: parts)
        for (i, p) in parts.enumerated() { try makeFilesystem(image, p, seed: 10 + i) }
        let stderr = try imageAndJudge(image, parts: parts)
        XCTAssertTrue(stderr.contains("p3 exfat"), stderr)
        XCTAssertTrue(stderr.contains("p4 ntfs"), stderr)
    }

    /// Sets VOLUME_IS_DIRTY in $Volume's $VOLUME_INFORMATION (MFT record 3,
    /// in $MFT and in $MFTMirr), as Windows leaves it after a crash.
    static let markNtfsDirty = """
        import struct, sys
        path, off = sys.argv[1], int(sys.argv[2])
        f = open(path, 'r+b')
        f.seek(off); bs = f.read(512)
        cluster = struct.unpack_from('<H', bs, 11)[0] * bs[13]
        cpr = struct.unpack_from('<b', bs, 64)[0]
        rec = 2 ** (-cpr) if cpr < 0 else cpr * cluster
        for lcn in (struct.unpack_from('<q', bs, 48)[0], struct.unpack_from('<q', bs, 56)[0]):
            pos = off + lcn * cluster + 3 * rec
            f.seek(pos); r = bytearray(f.read(rec))
            assert r[:4] == b'FILE'
            a = struct.unpack_from('<H', r, 20)[0]
            while True:
                t, ln = struct.unpack_from('<II', r, a)
                assert t != 0xFFFFFFFF, 'no $VOLUME_INFORMATION'
                if t == 0x70:
                    v = a + struct.unpack_from('<H', r, a + 20)[0]
                    struct.pack_into('<H', r, v + 10, struct.unpack_from('<H', r, v + 10)[0] | 1)
                    break
                a += ln
            f.seek(pos); f.write(r)
        f.close()
        """

    func testDirtyAndHibernatedNtfsAreReadInFull() throws {
        try requireRoot("loop devices and ntfs-3g")
        let image = tmp.file("ntfs.img")
        var parts = try makeDisk(image, gpt: false, parts: [Part(.ntfs, 24), Part(.ntfs, 24)])
        for (i, p) in parts.enumerated() { try makeFilesystem(image, p, seed: 30 + i) }
        let script = tmp.file("dirty.py")
        try Self.markNtfsDirty.write(toFile: script, atomically: true, encoding: .utf8)
        try shOK("python3 '\(script)' '\(image)' \(parts[0].start)")
        // Windows' hibernation (and fast startup) image: hiberfil.sys starting "HIBR".
        let dev = try attach(image, offset: parts[1].start, size: parts[1].length)
        let mp = tmp.file("mhib")
        try shOK("mkdir -p '\(mp)' && ntfs-3g \(dev) '\(mp)' && (printf HIBR; head -c 8188 /dev/zero) > '\(mp)/hiberfil.sys' && umount '\(mp)'")
        try detach(dev)
        parts[0].fs = .unknown
        parts[1].fs = .unknown  // both judged byte for byte
        let stderr = try imageAndJudge(image, parts: parts)
        XCTAssertTrue(stderr.contains("p1 ntfs 25 MB: read in full (marked dirty)"), stderr)
        XCTAssertTrue(stderr.contains("p2 ntfs 25 MB: read in full (Windows is hibernated or fast-started on it (hiberfil.sys))"), stderr)
    }

    func testDirtyExt4IsReadInFull() throws {
        try requireRoot("loop devices and mounts")
        let image = tmp.file("dirty.img")
        var parts = try makeDisk(image, gpt: false, parts: [Part(.ext4, 64)])
        try makeFilesystem(image, parts[0], seed: 1)
        // Leave the journal needing recovery: shut the filesystem down with
        // writes in flight, then unmount.
        let dev = try attach(image, offset: parts[0].start, size: parts[0].length)
        let mp = tmp.file("mdirty")
        try shOK("mkdir -p '\(mp)' && mount \(dev) '\(mp)' && head -c 1M /dev/urandom > '\(mp)/late' && sync "
                 + "&& touch '\(mp)/after' && xfs_io -x -c 'shutdown' '\(mp)' && umount '\(mp)'")
        try detach(dev)
        try waitUntilDetached(image)
        parts[0].fs = .unknown  // judged byte for byte
        let stderr = try imageAndJudge(image, parts: parts)
        XCTAssertTrue(stderr.contains("ext4 67 MB: read in full (its journal needs recovery)"), stderr)
    }

    func testCorruptPrimaryGPTUsesBackupHeader() throws {
        try requireRoot("loop devices and mounts")
        let image = tmp.file("badgpt.img")
        let parts = try makeDisk(image, gpt: true, parts: [Part(.ext4, 48), Part(.fat16, 32)])
        for (i, p) in parts.enumerated() { try makeFilesystem(image, p, seed: 20 + i) }
        try shOK("printf '\\x42' | dd of='\(image)' bs=1 seek=\(512 + 60) conv=notrunc status=none")
        let stderr = try imageAndJudge(image, parts: parts)
        XCTAssertTrue(stderr.contains("primary GPT header corrupt (CRC); using the backup header"), stderr)
    }

    func testRefusesReadWriteMountedDevice() throws {
        try requireRoot("loop devices and mounts")
        let image = tmp.file("whole.img")
        try shOK("truncate -s 32M '\(image)' && mkfs.ext4 -q -F '\(image)'")
        let dev = try attach(image)
        let mp = tmp.file("mrw")
        try shOK("mkdir -p '\(mp)' && mount \(dev) '\(mp)'")
        defer { _ = try? sh("umount '\(mp)'") }
        let out = tmp.file("x.lzo")
        let r = try runProgram(try rescueboxBinary(), ["ddz", "--used", dev, "-o", out])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("mounted read-write"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
        // Read-only is fine: an unpartitioned device is one filesystem.
        try shOK("mount -o remount,ro '\(mp)'")
        let ro = try runProgram(try rescueboxBinary(), ["ddz", "--used", dev, "-o", out])
        XCTAssertEqual(ro.status, 0, ro.stderr)
        XCTAssertTrue(ro.stderr.contains("ext4 34 MB, "), ro.stderr)
    }
}
