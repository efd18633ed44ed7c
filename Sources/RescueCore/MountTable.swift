#if canImport(Glibc)
import Glibc
#endif

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
    public static func unescape(_ text: Substring) -> String {
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
        let key = (major(dev_t(dev)), minor(dev_t(dev)))
        var found: MountEntry?
        for line in text.split(separator: "\n") {
            if let entry = parse(line), entry.device == key { found = entry }
        }
        return found
    }

    public static func readMountInfo() -> String? {
        try? readSmallFile("/proc/self/mountinfo")
    }
}

/// The kernel's table of mounts, and whether a block device is in use.
public enum MountTable {
    public static func entries() -> [MountEntry] {
        (MountEntry.readMountInfo() ?? "").split(separator: "\n").compactMap(MountEntry.parse)
    }

    /// Mounts whose source is `device`, one of its partitions, or a device
    /// stacked on it (dm/LVM holders). Empty when `device` is not a block device.
    public static func mountsUsing(device: String) -> [MountEntry] {
        var st = stat()
        guard stat(device, &st) == 0, (st.st_mode & S_IFMT) == S_IFBLK else { return [] }
        let target = sysfsName(st.st_rdev)
        return entries().filter { entry in
            if entry.device == (major(st.st_rdev), minor(st.st_rdev)) { return true }
            guard let target, let path = realPath("/sys/dev/block/\(entry.device.major):\(entry.device.minor)") else { return false }
            // A partition's sysfs directory sits inside its disk's.
            let isPartition = baseName(directoryName(path)) == target
            return isPartition || holders(of: target).contains(baseName(path))
        }
    }

    /// A mount of `device` (or of a partition or holder of it) through which
    /// its filesystem can change: the mount or its superblock is read-write.
    public static func readWriteMount(using device: String) -> MountEntry? {
        mountsUsing(device: device).first { $0.mountOptions.contains("rw") || $0.superOptions.contains("rw") }
    }

    /// Refuses to image `source` while it, one of its partitions or a device
    /// stacked on it is mounted read-write (the image would be inconsistent);
    /// with `force` it only warns. Read-only mounts are fine.
    public static func refuseMountedReadWrite(_ source: String, force: Bool) throws {
        guard let mount = readWriteMount(using: source) else { return }
        let why = "\(mount.source) is mounted read-write on \(mount.mountPoint): the image would be inconsistent"
        guard force else {
            throw RescueError(source, "read", why + " (unmount it, remount it read-only, or use --force)")
        }
        printError("warning: \(why) (--force given)")
    }

    /// Devices stacked on `name` (e.g. dm-0 on sda2), from sysfs.
    static func holders(of name: String) -> [String] {
        directoryEntries("/sys/class/block/\(name)/holders") ?? []
    }

    static func sysfsName(_ dev: dev_t) -> String? {
        realPath("/sys/dev/block/\(major(dev)):\(minor(dev))").map(baseName)
    }

}

/// gnu_dev_major / gnu_dev_minor (macros in C).
public func major(_ dev: dev_t) -> UInt32 { UInt32(((dev >> 8) & 0xfff) | ((dev >> 32) & 0xffff_f000)) }
public func minor(_ dev: dev_t) -> UInt32 { UInt32((dev & 0xff) | ((dev >> 12) & 0xffff_ff00)) }

