import RescueCore

/// How one partition (or an unpartitioned device) will be read.
public struct PartitionPlan: Equatable, Sendable {
    /// "sda1", "loop0p2", or the device's name when it has no table.
    public var label: String
    /// Bytes of the device.
    public var range: Range<UInt64>
    /// "ext4", "vfat", "exfat", "swap", "ntfs", "xfs", "unknown", ...
    public var filesystem: String
    /// Bytes that will be read from it; nil: all of it.
    public var usedBytes: UInt64?
    /// Why it is read in full; nil: used blocks only.
    public var fullReason: String?

    /// `sda1 ext4 180 GB, 52 GB used: used blocks only` /
    /// `sda2 xfs: read in full (no block map for xfs)`.
    public var line: String {
        let length = UInt64(range.count)
        if let fullReason {
            return "\(label) \(filesystem) \(formatBytes(length)): read in full (\(fullReason))"
        }
        return "\(label) \(filesystem) \(formatBytes(length)), \(formatBytes(usedBytes ?? length)) used: used blocks only"
    }
}

/// The ranges of a whole device that must be read: everything not proven
/// free by a filesystem's own allocation map (docs/used-blocks.md).
public struct UsedMap: Equatable, Sendable {
    public var size: UInt64
    public var table: PartitionTable
    public var plans: [PartitionPlan]
    /// Sorted, disjoint: the bytes to read (the reader widens its requests
    /// to whole 4 KiB pages and zeroes what it read beyond these).
    public var ranges: [Range<UInt64>]

    public var readBytes: UInt64 { ranges.reduce(0) { $0 + UInt64($1.count) } }
    public var skippedBytes: UInt64 { size - readBytes }

    /// The ranges as a GNU ddrescue map ("domain" file, like partclone -D):
    /// every byte of the device, `+` read, `?` skipped.
    public var ddrescueDomain: String {
        func hex(_ v: UInt64) -> String {
            var digits = String(v, radix: 16, uppercase: true)
            while digits.count < 8 { digits = "0" + digits }
            return "0x" + digits
        }
        var lines = ["# Domain logfile written by rescuebox (ranges read by --used)",
                     "# current_pos  current_status  current_pass", "0x00000000     +               1",
                     "#      pos        size  status"]
        var pos: UInt64 = 0
        for r in ranges {
            if r.lowerBound > pos { lines.append("\(hex(pos))  \(hex(r.lowerBound - pos))  ?") }
            lines.append("\(hex(r.lowerBound))  \(hex(UInt64(r.count)))  +")
            pos = r.upperBound
        }
        if pos < size { lines.append("\(hex(pos))  \(hex(size - pos))  ?") }
        return lines.joined(separator: "\n") + "\n"
    }
}

/// Builds the map of `path` (a whole disk, a partition or an image file);
/// `name` labels the partitions ("sda" gives "sda1", "loop0" "loop0p1").
public func buildUsedMap(path: String, name: String) throws -> UsedMap {
    let source = try FileRangeReader(path: path)
    return try buildUsedMap(source, path: path, name: name)
}

func buildUsedMap(_ source: ByteRangeReader, path: String, name: String) throws -> UsedMap {
    let size = source.size
    let table = try readPartitionTable(source)
    var plans: [PartitionPlan] = []
    var free: [Range<UInt64>] = []

    func plan(_ label: String, _ range: Range<UInt64>, _ result: BlockMapResult) {
        switch result {
        case .full(let fs, let reason):
            plans.append(PartitionPlan(label: label, range: range, filesystem: fs, usedBytes: nil, fullReason: reason))
        case .map(let fs, let fsSize, let fsFree):
            var proven: [Range<UInt64>] = []
            for f in normalized(fsFree) {
                let lo = range.lowerBound + f.lowerBound, hi = range.lowerBound + min(f.upperBound, fsSize)
                if lo < hi { proven.append(lo..<hi) }
            }
            let freeBytes = proven.reduce(0) { $0 + UInt64($1.count) }
            free += proven
            plans.append(PartitionPlan(label: label, range: range, filesystem: fs,
                                       usedBytes: UInt64(range.count) - freeBytes, fullReason: nil))
        }
    }

    if table.scheme == .none {
        plan(name, 0..<size, blockMap(source, path: path, offset: 0))
    } else {
        let separator = name.last?.isNumber == true ? "p" : ""
        for p in table.partitions {
            let label = "\(name)\(separator)\(p.number)"
            let end = min(p.end, size)
            guard p.start < end else {
                plans.append(PartitionPlan(label: label, range: p.start..<p.start, filesystem: "unknown", usedBytes: nil,
                                           fullReason: "it lies beyond the end of the device"))
                continue
            }
            let range = p.start..<end
            let others = table.partitions.filter { $0.number != p.number && $0.start < end && p.start < $0.end }
            if let o = others.first {
                plans.append(PartitionPlan(label: label, range: range, filesystem: "unknown", usedBytes: nil,
                                           fullReason: "it overlaps partition \(o.number)"))
                continue
            }
            if table.metadataRanges.contains(where: { $0.overlaps(range) }) {
                plans.append(PartitionPlan(label: label, range: range, filesystem: "unknown", usedBytes: nil,
                                           fullReason: "it overlaps the partition table"))
                continue
            }
            if p.end > size {
                plans.append(PartitionPlan(label: label, range: range, filesystem: "unknown", usedBytes: nil,
                                           fullReason: "it extends beyond the end of the device"))
                continue
            }
            if case .mbr(let t) = p.type, t == 0x05 || t == 0x0F || t == 0x85 { continue }
            plan(label, range, blockMap(SliceReader(base: source, start: p.start, size: UInt64(range.count)),
                                        path: path, offset: p.start))
        }
    }
    // Read = the complement of the proven-free ranges.
    var ranges: [Range<UInt64>] = []
    var pos: UInt64 = 0
    for f in normalized(free) {
        if f.lowerBound > pos { ranges.append(pos..<f.lowerBound) }
        pos = max(pos, f.upperBound)
    }
    if pos < size { ranges.append(pos..<size) }
    return UsedMap(size: size, table: table, plans: plans, ranges: ranges)
}
