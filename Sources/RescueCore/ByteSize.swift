/// Parses sizes as admins write them: `512`, `4K`, `1M`, `2GiB`, `1T`, `10MB`.
/// K/M/G/T/P/E and KiB... are powers of 1024 (as dd's K); KB/MB/... are
/// powers of 1000. A trailing `B` alone means bytes. Exact integer
/// arithmetic: garbage, negatives, fractions and overflow are rejected.
public func parseByteSize(_ text: String) throws -> UInt64 {
    let invalid = RescueError.usage("invalid size '\(text)' (expected e.g. 512, 4K, 1M, 2GiB, 10MB)")
    let chars = Array(text.utf8)
    var i = 0
    var value: UInt64 = 0
    while i < chars.count, chars[i] >= 0x30, chars[i] <= 0x39 {
        let (m, o1) = value.multipliedReportingOverflow(by: 10)
        let (s, o2) = m.addingReportingOverflow(UInt64(chars[i] - 0x30))
        if o1 || o2 { throw RescueError.usage("size '\(text)' is too large") }
        value = s
        i += 1
    }
    guard i > 0 else { throw invalid }
    let suffix = String(decoding: chars[i...], as: UTF8.self)
    let multiplier: UInt64
    switch suffix {
    case "", "B", "b", "c": multiplier = 1
    default:
        let units = "KMGTPE"
        var s = Array(suffix.uppercased())
        guard let unitIndex = units.firstIndex(of: s[0]) else { throw invalid }
        let power = units.distance(from: units.startIndex, to: unitIndex) + 1
        s.removeFirst()
        let base: UInt64
        switch String(s) {
        case "", "IB", "I": base = 1024
        case "B": base = 1000
        default: throw invalid
        }
        var m: UInt64 = 1
        for _ in 0..<power { m *= base }
        multiplier = m
    }
    let (result, overflow) = value.multipliedReportingOverflow(by: multiplier)
    if overflow { throw RescueError.usage("size '\(text)' is too large") }
    return result
}
