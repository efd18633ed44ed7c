#if canImport(Glibc)
import Glibc
#endif
import CShim
import RescueCore

/// What zerofill knows about a filesystem type (statfs f_type magic).
public struct FilesystemKind: Equatable, Sendable {
    public enum Verdict: Equatable, Sendable {
        /// Free space is real disk space that zeros overwrite.
        case fill
        /// There is no disk behind it (tmpfs, proc...): refuse.
        case pointless(String)
        /// Compression or deduplication stores zeros without overwriting:
        /// refuse unless --force, with the right advice.
        case compressing(String)
    }

    public let magic: UInt64
    public let name: String
    public let verdict: Verdict

    /// Fill files must get FS_NOCOW_FL before the first write (btrfs).
    public var wantsNoCOW: Bool { magic == 0x9123_683E }
    /// No O_TMPFILE; file size capped at 4 GiB - 1 (FAT).
    public var isFAT: Bool { magic == 0x4D44 }

    public static func identify(_ magic: UInt64) -> FilesystemKind {
        let m = magic & 0xFFFF_FFFF
        if let entry = table.first(where: { $0.0 == m }) {
            return FilesystemKind(magic: m, name: entry.1, verdict: entry.2)
        }
        return FilesystemKind(magic: m, name: "filesystem type 0x" + String(m, radix: 16), verdict: .fill)
    }

    private static func memory(_ name: String) -> Verdict {
        .pointless("\(name) keeps its files in memory; there is no disk space to clean")
    }

    private static func virtual(_ name: String) -> Verdict {
        .pointless("\(name) is a virtual filesystem with no disk behind it")
    }

    private static func readOnlyImage(_ name: String) -> Verdict {
        .pointless("\(name) is a read-only image format; it has no free space to clean")
    }

    private static let table: [(UInt64, String, Verdict)] = [
        (0xEF53, "ext2/3/4", .fill),
        (0x9123_683E, "btrfs", .fill),
        (0x5846_5342, "xfs", .fill),
        (0xF2F5_2010, "f2fs", .fill),
        (0x4D44, "vfat", .fill),
        (0x2011_BAB0, "exfat", .fill),
        (0x5346_544E, "ntfs3", .fill),
        (0x6573_5546, "fuse", .fill),
        (0x5265_4973, "reiserfs", .fill),
        (0x3153_464A, "jfs", .fill),
        (0x6969, "nfs", .fill),
        (0xFF53_4D42, "cifs", .fill),
        (0xFE53_4D42, "smb2", .fill),
        (0x0102_1994, "tmpfs", memory("tmpfs")),
        (0x8584_58F6, "ramfs", memory("ramfs")),
        (0x9584_58F6, "hugetlbfs", memory("hugetlbfs")),
        (0x9FA0, "proc", virtual("proc")),
        (0x6265_6572, "sysfs", virtual("sysfs")),
        (0x1CD1, "devpts", virtual("devpts")),
        (0x0027_E0EB, "cgroup", virtual("cgroup")),
        (0x6367_7270, "cgroup2", virtual("cgroup2")),
        (0x6462_6720, "debugfs", virtual("debugfs")),
        (0x7472_6163, "tracefs", virtual("tracefs")),
        (0x7363_6673, "securityfs", virtual("securityfs")),
        (0x6165_676C, "pstore", virtual("pstore")),
        (0xCAFE_4A11, "bpf", virtual("bpf")),
        (0x1980_0202, "mqueue", virtual("mqueue")),
        (0x4249_4E4D, "binfmt_misc", virtual("binfmt_misc")),
        (0x6265_6570, "configfs", virtual("configfs")),
        (0xDE5E_81E4, "efivarfs", virtual("efivarfs")),
        (0x6E73_6673, "nsfs", virtual("nsfs")),
        (0x7371_7368, "squashfs", readOnlyImage("squashfs")),
        (0xE0F5_E1E2, "erofs", readOnlyImage("erofs")),
        (0x28CD_3D45, "cramfs", readOnlyImage("cramfs")),
        (0x9660, "iso9660", readOnlyImage("iso9660")),
        (0x794C_7630, "overlay", .fill),
        (0x2FC1_2FC1, "zfs", .compressing(
            "ZFS compresses and deduplicates, so zeros do not overwrite freed blocks; "
            + "use 'zpool trim POOL' (SSD or thin disk) or 'zpool initialize POOL' (writes over free space) instead")),
        (0xCA45_1A4E, "bcachefs", .compressing(
            "bcachefs may compress, so zeros need not overwrite freed blocks; use 'fstrim' on a thin or SSD disk instead")),
    ]
}

/// One line of /proc/self/mountinfo: the mount of a device, its type and
/// options (the filesystem's own "super" options come after " - ").
public struct MountEntry: Equatable {
    public let device: (major: UInt32, minor: UInt32)
    public let mountPoint: String
    public let fsType: String
    public let source: String
    public let mountOptions: [String]
    public let superOptions: [String]

    public static func == (a: MountEntry, b: MountEntry) -> Bool {
        a.device == b.device && a.mountPoint == b.mountPoint && a.fsType == b.fsType
            && a.source == b.source && a.mountOptions == b.mountOptions && a.superOptions == b.superOptions
    }

    /// Parses one mountinfo line; nil when it is malformed.
    public static func parse(_ line: Substring) -> MountEntry? {
        let fields = line.split(separator: " ", omittingEmptySubsequences: false)
        guard let dash = fields.firstIndex(of: "-"), dash >= 6, fields.count >= dash + 4 else { return nil }
        let numbers = fields[2].split(separator: ":")
        guard numbers.count == 2, let major = UInt32(numbers[0]), let minor = UInt32(numbers[1]) else { return nil }
        return MountEntry(
            device: (major, minor), mountPoint: unescape(fields[4]), fsType: String(fields[dash + 1]),
            source: unescape(fields[dash + 2]),
            mountOptions: fields[5].split(separator: ",").map(String.init),
            superOptions: splitOptions(fields[dash + 3]))
    }

    /// The value of a `key=value` super option (e.g. overlay's upperdir).
    public func superOption(_ key: String) -> String? {
        for option in superOptions where option.hasPrefix(key + "=") {
            return String(option.dropFirst(key.count + 1))
        }
        return nil
    }

    public func hasOption(prefix: String) -> Bool {
        (mountOptions + superOptions).contains { $0 == prefix || $0.hasPrefix(prefix + "=") || $0.hasPrefix(prefix + ":") }
    }

    /// Super options are comma-separated; overlay escapes a comma inside a
    /// path with a backslash.
    static func splitOptions(_ text: Substring) -> [String] {
        var options: [String] = []
        var current = ""
        var escaped = false
        for ch in unescape(text) {
            if escaped { current.append(ch); escaped = false; continue }
            if ch == "\\" { escaped = true; continue }
            if ch == "," { options.append(current); current = ""; continue }
            current.append(ch)
        }
        options.append(current)
        return options.filter { !$0.isEmpty }
    }

    /// mountinfo writes space, tab, newline and backslash as \ooo.
    static func unescape(_ text: Substring) -> String {
        var bytes: [UInt8] = []
        let utf8 = Array(text.utf8)
        var i = 0
        while i < utf8.count {
            if utf8[i] == UInt8(ascii: "\\"), i + 3 < utf8.count,
               utf8[(i + 1)...(i + 3)].allSatisfy({ $0 >= 0x30 && $0 <= 0x37 }) {
                let d = utf8[(i + 1)...(i + 3)].map { Int($0 - 0x30) }
                bytes.append(UInt8(truncatingIfNeeded: d[0] * 64 + d[1] * 8 + d[2]))
                i += 4
                continue
            }
            bytes.append(utf8[i])
            i += 1
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The mount entry for the device `dev` (st_dev), from mountinfo text;
    /// the last match wins (the most recent mount).
    public static func find(device dev: UInt64, in text: String) -> MountEntry? {
        let major = UInt32(truncatingIfNeeded: ((dev >> 8) & 0xFFF) | ((dev >> 32) & ~UInt64(0xFFF)))
        let minor = UInt32(truncatingIfNeeded: (dev & 0xFF) | ((dev >> 12) & ~UInt64(0xFF)))
        var found: MountEntry?
        for line in text.split(separator: "\n") {
            if let entry = parse(line), entry.device == (major, minor) { found = entry }
        }
        return found
    }

    public static func readMountInfo() -> String? {
        let fd = Glibc.open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { Glibc.close(fd) }
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 { if lastErrno() == EINTR { continue }; return nil }
            if n == 0 { break }
            data.append(contentsOf: chunk[0..<n])
        }
        return String(decoding: data, as: UTF8.self)
    }
}

/// The state of the filesystem holding a directory, as zerofill sees it.
public struct FilesystemSurvey {
    public let kind: FilesystemKind
    /// statvfs f_frsize: the unit of the block counts.
    public let fragmentSize: UInt64
    /// statvfs f_bsize: the preferred I/O size (the filesystem block).
    public let blockSize: UInt64
    /// Free blocks for root and for everyone else, in bytes.
    public let freeBytes: UInt64
    public let availableBytes: UInt64
    public let readOnly: Bool
    public let mount: MountEntry?

    /// Space this process can fill: df's "available", plus ext4's blocks
    /// reserved for root when running as root (btrfs's f_bfree counts
    /// metadata space that file data can never use, so only ext gets this).
    public var usableBytes: UInt64 { Self.usable(free: freeBytes, available: availableBytes, kind: kind) }
    /// Blocks reserved for root (ext4's -m) that an ordinary user cannot fill.
    public var rootReservedBytes: UInt64 {
        kind.magic == 0xEF53 && freeBytes > availableBytes ? freeBytes - availableBytes : 0
    }

    static func usable(free: UInt64, available: UInt64, kind: FilesystemKind) -> UInt64 {
        if geteuid() == 0, kind.magic == 0xEF53, free > available { return free }
        return available
    }

    public static func take(fd: Int32, path: String, mountInfo: String? = MountEntry.readMountInfo()) throws -> FilesystemSurvey {
        var vfs = statvfs()
        if fstatvfs(fd, &vfs) != 0 { throw RescueError(path, "statvfs", errno: lastErrno()) }
        let magic = rb_fstatfs_type(fd)
        if magic == -1 { throw RescueError(path, "statfs", errno: lastErrno()) }
        var st = stat()
        if fstat(fd, &st) != 0 { throw RescueError(path, "stat", errno: lastErrno()) }
        let frsize = UInt64(vfs.f_frsize > 0 ? vfs.f_frsize : vfs.f_bsize)
        return FilesystemSurvey(
            kind: .identify(UInt64(UInt(bitPattern: magic))),
            fragmentSize: frsize, blockSize: UInt64(max(vfs.f_bsize, 512)),
            freeBytes: UInt64(vfs.f_bfree) * frsize, availableBytes: UInt64(vfs.f_bavail) * frsize,
            readOnly: vfs.f_flag & UInt(ST_RDONLY) != 0,
            mount: mountInfo.flatMap { MountEntry.find(device: UInt64(st.st_dev), in: $0) })
    }

    /// Current free space for this process (a cheap statvfs), or nil.
    public static func usableBytes(fd: Int32, kind: FilesystemKind) -> UInt64? {
        var vfs = statvfs()
        guard fstatvfs(fd, &vfs) == 0 else { return nil }
        let frsize = UInt64(vfs.f_frsize > 0 ? vfs.f_frsize : vfs.f_bsize)
        return usable(free: UInt64(vfs.f_bfree) * frsize, available: UInt64(vfs.f_bavail) * frsize, kind: kind)
    }
}
