/// Number formatting without Foundation.

/// `value` with `decimals` digits after the point, rounded half up.
public func formatFixed(_ value: Double, decimals: Int) -> String {
    guard value.isFinite else { return "-" }
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    let negative = value < 0
    let scaled = (abs(value) * scale).rounded()
    guard scaled < 9.0e18 else { return negative ? "-inf" : "inf" }
    let n = UInt64(scaled)
    let whole = n / UInt64(scale)
    var text = String(whole)
    if decimals > 0 {
        var frac = String(n % UInt64(scale))
        while frac.count < decimals { frac = "0" + frac }
        text += "." + frac
    }
    return negative ? "-" + text : text
}

/// "1.1 GB" / "107 MB" (SI) or "1.0 GiB" (binary): two significant digits
/// below 10, whole numbers above, as dd prints them.
public func formatBytes(_ bytes: UInt64, binary: Bool = false) -> String {
    let base = binary ? 1024.0 : 1000.0
    let units = binary ? ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"] : ["B", "kB", "MB", "GB", "TB", "PB", "EB"]
    var value = Double(bytes)
    var unit = 0
    while value >= base - 0.5 && unit < units.count - 1 { value /= base; unit += 1 }
    if unit == 0 { return "\(bytes) B" }
    return (value < 9.95 ? formatFixed(value, decimals: 1) : formatFixed(value, decimals: 0)) + " " + units[unit]
}

/// "430 MB/s", "1.2 GB/s".
public func formatRate(bytes: UInt64, seconds: Double) -> String {
    guard seconds > 0 else { return "- B/s" }
    let perSecond = Double(bytes) / seconds
    return formatBytes(UInt64(perSecond.rounded())) + "/s"
}

/// "1:02:03" or "2:03" for an ETA.
public func formatDuration(_ seconds: Double) -> String {
    guard seconds.isFinite, seconds >= 0 else { return "--:--" }
    let total = Int(seconds.rounded())
    let h = total / 3600, m = (total / 60) % 60, s = total % 60
    let mm = m < 10 ? "0\(m)" : "\(m)", ss = s < 10 ? "0\(s)" : "\(s)"
    return h > 0 ? "\(h):\(mm):\(ss)" : "\(m):\(ss)"
}

/// The dd-style summary: `N bytes (X GB, Y GiB) copied, S s, R MB/s`.
public func summaryLine(bytes: UInt64, seconds: Double, verb: String = "copied") -> String {
    "\(bytes) bytes (\(formatBytes(bytes)), \(formatBytes(bytes, binary: true))) \(verb), "
        + "\(formatFixed(seconds, decimals: 3)) s, \(formatRate(bytes: bytes, seconds: seconds))"
}

/// "2.41:1" style ratio of input to output, or "-" when nothing was written.
public func formatRatio(input: UInt64, output: UInt64) -> String {
    guard output > 0 else { return "-" }
    return formatFixed(Double(input) / Double(output), decimals: 2) + ":1"
}

/// A JSON string literal with the escapes RFC 8259 requires.
public func jsonString(_ s: String) -> String {
    var out = "\""
    for scalar in s.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case _ where scalar.value < 0x20:
            let hex = Array("0123456789abcdef")
            out += "\\u00" + String(hex[Int(scalar.value >> 4)]) + String(hex[Int(scalar.value & 0xF)])
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out + "\""
}
