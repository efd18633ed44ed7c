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
