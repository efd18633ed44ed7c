/// A GNU ddrescue map file ("mapfile") describing what an imaging run read:
/// `+` for finished (read) ranges and `-` for bad sectors, in absolute byte
/// offsets of the device, covering [start, start + length). ddrescuelog and
/// ddrescue itself read this format, so a later ddrescue pass can retry
/// just the bad sectors of the same device.
public func ddrescueMapfile(start: UInt64, length: UInt64, bad: [DiskReader.BadRange], commandLine: String) -> String {
    func hex(_ v: UInt64) -> String {
        var digits = String(v, radix: 16, uppercase: true)
        while digits.count < 8 { digits = "0" + digits }
        return "0x" + digits
    }
    var lines = [
        "# Mapfile. Created by rescuebox ddz (GNU ddrescue mapfile format)",
        "# Command line: \(commandLine.filter { $0 != "\n" && $0 != "\r" })",
        "# current_pos  current_status  current_pass",
        "\(hex(start + length))     +               1",
        "#      pos        size  status",
    ]
    var at = start
    let end = start + length
    for range in bad.sorted(by: { $0.offset < $1.offset }) where range.length > 0 {
        let lo = max(range.offset, at), hi = min(range.offset + range.length, end)
        guard lo < hi else { continue }
        if lo > at { lines.append("\(hex(at))  \(hex(lo - at))  +") }
        lines.append("\(hex(lo))  \(hex(hi - lo))  -")
        at = hi
    }
    if at < end || length == 0 { lines.append("\(hex(at))  \(hex(end - at))  +") }
    return lines.joined(separator: "\n") + "\n"
}
