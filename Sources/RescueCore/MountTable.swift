#if canImport(Glibc)
import Glibc
#endif

/// One line of /proc/self/mounts.
public struct MountEntry: Equatable {
    public let source: String
    public let mountPoint: String
    public let fsType: String
    public let options: [String]
    public var isReadOnly: Bool { options.contains("ro") }
}

/// The kernel's table of mounts, and whether a block device is in use.
public enum MountTable {
    public static func entries(path: String = "/proc/self/mounts") -> [MountEntry] {
        guard let text = try? readSmallFile(path) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ", omittingEmptySubsequences: true).map { unescape(String($0)) }
            guard fields.count >= 4 else { return nil }
            return MountEntry(source: fields[0], mountPoint: fields[1], fsType: fields[2],
                              options: fields[3].split(separator: ",").map(String.init))
        }
    }

    /// Mounts whose source is `device`, one of its partitions, or a device
    /// stacked on it (dm/LVM holders). Empty when `device` is not a block device.
    public static func mountsUsing(device: String) -> [MountEntry] {
        var st = stat()
        guard stat(device, &st) == 0, (st.st_mode & S_IFMT) == S_IFBLK else { return [] }
        let target = sysfsName(st.st_rdev)
        return entries().filter { entry in
            var es = stat()
            guard entry.source.hasPrefix("/"), stat(entry.source, &es) == 0, (es.st_mode & S_IFMT) == S_IFBLK else { return false }
            if es.st_rdev == st.st_rdev { return true }
            guard let target, let path = realPath("/sys/dev/block/\(major(es.st_rdev)):\(minor(es.st_rdev))") else { return false }
            let parts = path.split(separator: "/")
            let name = parts.last.map(String.init) ?? ""
            // A partition's sysfs directory sits inside its disk's.
            let isPartition = parts.count >= 2 && parts[parts.count - 2] == target
            return isPartition || holders(of: target).contains(name)
        }
    }

    /// Devices stacked on `name` (e.g. dm-0 on sda2), from sysfs.
    static func holders(of name: String) -> [String] {
        var result: [String] = []
        guard let dir = opendir("/sys/class/block/\(name)/holders") else { return result }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let n = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if n != "." && n != ".." { result.append(n) }
        }
        return result
    }

    static func sysfsName(_ dev: dev_t) -> String? {
        realPath("/sys/dev/block/\(major(dev)):\(minor(dev))").flatMap { $0.split(separator: "/").last.map(String.init) }
    }

    /// /proc/mounts writes space, tab, newline and backslash as \ooo.
    static func unescape(_ field: String) -> String {
        guard field.contains("\\") else { return field }
        var out: [UInt8] = []
        let b = Array(field.utf8)
        var i = 0
        while i < b.count {
            if b[i] == UInt8(ascii: "\\"), i + 3 < b.count,
               let v = UInt8(String(decoding: b[(i + 1)...(i + 3)], as: UTF8.self), radix: 8) {
                out.append(v); i += 4
            } else {
                out.append(b[i]); i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

public func major(_ dev: dev_t) -> UInt32 { UInt32(((dev >> 8) & 0xfff) | ((dev >> 32) & 0xffff_f000)) }
public func minor(_ dev: dev_t) -> UInt32 { UInt32((dev & 0xff) | ((dev >> 12) & 0xffff_ff00)) }

public func realPath(_ path: String) -> String? {
    guard let p = realpath(path, nil) else { return nil }
    defer { free(p) }
    return String(cString: p)
}

/// Reads a small text file (proc, sysfs, configs) whole.
public func readSmallFile(_ path: String, limit: Int = 16 << 20) throws -> String {
    let file = try OpenFile.open(path)
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = try chunk.withUnsafeMutableBytes { try file.readFull(into: $0) }
        bytes.append(contentsOf: chunk[0..<n])
        if n < chunk.count { break }
        if bytes.count > limit { throw RescueError(path, "read", "larger than \(limit) bytes") }
    }
    return String(decoding: bytes, as: UTF8.self)
}
