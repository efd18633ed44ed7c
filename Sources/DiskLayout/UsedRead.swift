import RescueCore

/// `--used` before any data moves: refuses a device with a filesystem
/// mounted read-write, builds the map, prints the table's notes and one
/// line per partition on stderr, and hands the ranges to `reader`.
public func prepareUsedRead(_ reader: DiskReader, path: String) throws -> UsedMap {
    guard reader.isSeekable, reader.skip == 0, reader.count == nil else {
        throw RescueError.usage("--used needs a whole device or image file (no stdin, --skip or --count)")
    }
    // Even with -f: a map of a changing filesystem would miss blocks.
    if let m = MountTable.readWriteMount(using: path) {
        throw RescueError(path, "--used", "\(m.source) is mounted read-write on \(m.mountPoint); "
                          + "unmount it or remount it read-only (or use zerofill, then image without --used)")
    }
    let name = baseName(path)
    let map = try buildUsedMap(path: path, name: name)
    for note in map.table.notes { printStderr("\(name): \(note)") }
    for plan in map.plans { printStderr(plan.line) }
    if map.table.scheme != .none {
        let outside = map.size - map.plans.reduce(0) { $0 + UInt64($1.range.count) }
        if outside > 0 { printStderr("\(name): \(formatBytes(outside)) outside partitions (table, gaps): read in full") }
    }
    reader.usedRanges = map.ranges
    return map
}

/// `--used: 1.2 GB read, 30 GB skipped (free space, written as zeros)`.
public func usedSummaryLine(_ reader: DiskReader) -> String {
    "--used: \(reader.mappedReadBytes) bytes (\(formatBytes(reader.mappedReadBytes))) read, "
        + "\(reader.mappedSkippedBytes) bytes (\(formatBytes(reader.mappedSkippedBytes))) skipped as free space"
}

/// Writes `map`'s ranges as a GNU ddrescue domain file (as partclone -D).
public func writeUsedMap(_ map: UsedMap, to path: String) throws {
    let file = try OpenFile.open(path, .writeOnly, options: [.create, .truncate], permissions: [.ownerReadWrite])
    try file.writeAll(Array(map.ddrescueDomain.utf8))
    try file.close()
}
