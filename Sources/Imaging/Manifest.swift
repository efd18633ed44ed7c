#if canImport(Glibc)
import Glibc
#endif
import RescueCore

/// `NAME.lzo.json`, uploaded beside an image with --manifest: what was
/// imaged, when, and the SHA-256 of the compressed stream as stored.
public struct Manifest {
    public var image: String
    public var source: String
    public var sourceSize: UInt64?
    public var deviceModel: String?
    public var deviceSerial: String?
    public var started: Int
    public var finished: Int
    public var compressedSize: UInt64
    public var sha256: String
    public var badBytes: UInt64 = 0
    public var toolVersion: String

    public init(image: String, source: String, sourceSize: UInt64?, started: Int, finished: Int,
                compressedSize: UInt64, sha256: String, toolVersion: String) {
        self.image = image
        self.source = source
        self.sourceSize = sourceSize
        self.started = started
        self.finished = finished
        self.compressedSize = compressedSize
        self.sha256 = sha256
        self.toolVersion = toolVersion
        (deviceModel, deviceSerial) = DeviceInfo.modelAndSerial(of: source)
    }

    public var json: String {
        var fields: [(String, String)] = [
            ("image", jsonString(image)),
            ("source", jsonString(source)),
            ("source_size", sourceSize.map(String.init) ?? "null"),
            ("device_model", deviceModel.map(jsonString) ?? "null"),
            ("device_serial", deviceSerial.map(jsonString) ?? "null"),
            ("started", jsonString(isoTime(started))),
            ("finished", jsonString(isoTime(finished))),
            ("compressed_size", String(compressedSize)),
            ("sha256", jsonString(sha256)),
            ("format", jsonString("lzop")),
            ("tool", jsonString("rescuebox \(toolVersion)")),
        ]
        if badBytes > 0 { fields.append(("unreadable_bytes", String(badBytes))) }
        return "{\n" + fields.map { "  \(jsonString($0.0)): \($0.1)" }.joined(separator: ",\n") + "\n}\n"
    }

    /// The source size recorded in a manifest's text, if present.
    public static func sourceSize(inJSON text: String) -> UInt64? {
        let key = Array("\"source_size\":".utf8)
        let bytes = Array(text.utf8)
        guard bytes.count >= key.count,
              let start = (0...(bytes.count - key.count)).first(where: { bytes[$0..<($0 + key.count)].elementsEqual(key) })
        else { return nil }
        let digits = bytes[(start + key.count)...].drop { $0 == UInt8(ascii: " ") }.prefix { $0 >= 0x30 && $0 <= 0x39 }
        return UInt64(String(decoding: digits, as: UTF8.self))
    }
}

/// "2026-11-26T14:55:00Z" for a Unix time.
public func isoTime(_ t: Int) -> String {
    var time = time_t(t)
    var tm = Glibc.tm()
    gmtime_r(&time, &tm)
    func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
    return "\(tm.tm_year + 1900)-\(two(tm.tm_mon + 1))-\(two(tm.tm_mday))T\(two(tm.tm_hour)):\(two(tm.tm_min)):\(two(tm.tm_sec))Z"
}

/// Facts about the imaged device from sysfs, and the default image name.
public enum DeviceInfo {
    /// Model and serial of a block device (nil for files or when sysfs has none).
    public static func modelAndSerial(of path: String) -> (String?, String?) {
        var st = stat()
        guard stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFBLK,
              var dir = realPath("/sys/dev/block/\(major(st.st_rdev)):\(minor(st.st_rdev))") else { return (nil, nil) }
        // A partition's facts live on its disk.
        if (try? readSmallFile(dir + "/partition")) != nil { dir = directoryName(dir) }
        func read(_ name: String) -> String? {
            guard let text = try? readSmallFile(dir + "/" + name) else { return nil }
            let trimmed = text.split(whereSeparator: { $0 == "\n" || $0 == "\0" }).first.map { String($0.trimmingWhitespace()) } ?? ""
            return trimmed.isEmpty ? nil : trimmed
        }
        let model = read("device/model")
        let serial = read("device/serial") ?? read("serial") ?? read("device/wwid")
        return (model, serial)
    }

    /// `HOST.DEVICE.YYYY-MM-DD.lzo`, e.g. `pc7.sda.2026-11-26.lzo`.
    public static func defaultImageName(source: String, now: Int) -> String {
        var name = utsname()
        uname(&name)
        let host = withUnsafeBytes(of: name.nodename) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let last = baseName(source)
        let device = last.isEmpty ? "disk" : last
        var time = time_t(now)
        var tm = Glibc.tm()
        localtime_r(&time, &tm)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        let date = "\(tm.tm_year + 1900)-\(two(tm.tm_mon + 1))-\(two(tm.tm_mday))"
        return "\(host.split(separator: ".").first.map(String.init) ?? "host").\(device).\(date).lzo"
    }
}
