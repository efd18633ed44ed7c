/// The BIOS parameter block of a FAT12/16/32 boot sector (docs/used-blocks.md, "FAT").
struct FATBootSector {
    var bytesPerSector: UInt64
    var sectorsPerCluster: UInt64
    var reservedSectors: UInt64
    var fatCount: UInt64
    var rootEntries: UInt64
    var totalSectors: UInt64
    var fatSectors: UInt64
    var bits: Int            // 12, 16 or 32
    var dirtyFlag: Bool      // the boot sector's "state" byte, bit 0 (Linux sets it while mounted)

    var rootDirSectors: UInt64 { (rootEntries * 32 + bytesPerSector - 1) / bytesPerSector }
    var dataStart: UInt64 { reservedSectors + fatCount * fatSectors + rootDirSectors }
    var clusterCount: UInt64 { (totalSectors - dataStart) / sectorsPerCluster }
    var clusterBytes: UInt64 { sectorsPerCluster * bytesPerSector }

    /// nil unless `b` is a plausible FAT boot sector.
    init?(_ b: [UInt8]) {
        guard b.count >= 512, b[510] == 0x55, b[511] == 0xAA, b[0] == 0xEB || b[0] == 0xE9 else { return nil }
        bytesPerSector = UInt64(le16(b, 11))
        sectorsPerCluster = UInt64(b[13])
        reservedSectors = UInt64(le16(b, 14))
        fatCount = UInt64(b[16])
        rootEntries = UInt64(le16(b, 17))
        let total16 = UInt64(le16(b, 19)), fat16 = UInt64(le16(b, 22))
        totalSectors = total16 != 0 ? total16 : UInt64(le32(b, 32))
        fatSectors = fat16 != 0 ? fat16 : UInt64(le32(b, 36))
        guard [512, 1024, 2048, 4096].contains(bytesPerSector),
              sectorsPerCluster != 0, sectorsPerCluster & (sectorsPerCluster - 1) == 0,
              reservedSectors >= 1, (1...2).contains(fatCount), b[21] >= 0xF0,
              fatSectors > 0, totalSectors > reservedSectors + fatCount * fatSectors + (rootEntries * 32 + bytesPerSector - 1) / bytesPerSector
        else { return nil }
        let clusters = (totalSectors - (reservedSectors + fatCount * fatSectors + (rootEntries * 32 + bytesPerSector - 1) / bytesPerSector)) / sectorsPerCluster
        bits = clusters < 4085 ? 12 : clusters < 65525 ? 16 : 32
        if bits == 32 && (fat16 != 0 || rootEntries != 0) { return nil }
        dirtyFlag = (b[bits == 32 ? 65 : 37] & 1) != 0
        // The FAT must hold an entry for every cluster.
        guard fatSectors * bytesPerSector * 8 >= (clusters + 2) * UInt64(bits) else { return nil }
    }
}

func fatBlockMap(_ r: ByteRangeReader) throws -> BlockMapResult {
    let boot = try r.readExactly(at: 0, count: 512)
    guard let bs = FATBootSector(boot) else { return .full(filesystem: "vfat", reason: "its boot sector is not valid") }
    let name = "vfat"
    let size = bs.totalSectors * bs.bytesPerSector
    guard size <= r.size else {
        return .full(filesystem: name, reason: "its size (\(size) bytes) disagrees with the partition (\(r.size) bytes)")
    }
    if bs.dirtyFlag { return .full(filesystem: name, reason: "FAT\(bs.bits) marked dirty (not cleanly unmounted)") }
    let fatBytes = Int(bs.fatSectors * bs.bytesPerSector)
    guard fatBytes <= 256 << 20 else { return .full(filesystem: name, reason: "FAT larger than 256 MiB") }
    var fats: [[UInt8]] = []
    for i in 0..<bs.fatCount {
        fats.append(try r.readExactly(at: (bs.reservedSectors + i * bs.fatSectors) * bs.bytesPerSector, count: fatBytes))
    }
    if fats.count > 1 && fats.dropFirst().contains(where: { $0 != fats[0] }) {
        return .full(filesystem: name, reason: "FAT\(bs.bits): the FAT copies differ")
    }
    let fat = fats[0]
    func entry(_ k: UInt64) -> UInt32 {
        switch bs.bits {
        case 12:
            let o = Int(k + k / 2)
            let v = UInt32(le16(fat, o))
            return k & 1 == 0 ? v & 0xFFF : v >> 4
        case 16: return UInt32(le16(fat, Int(k * 2)))
        default: return le32(fat, Int(k * 4)) & 0x0FFF_FFFF
        }
    }
    // Entry 1's clean-shutdown bit (FAT16 0x8000, FAT32 0x08000000).
    if bs.bits == 16 && entry(1) & 0x8000 == 0 || bs.bits == 32 && entry(1) & 0x0800_0000 == 0 {
        return .full(filesystem: name, reason: "FAT\(bs.bits) marked dirty (clean-shutdown bit clear)")
    }
    // Free: clusters whose entry is 0. Everything else (reserved sectors,
    // FATs, the FAT12/16 root directory, used and bad clusters, sectors
    // after the last cluster) is read.
    var free: [Range<UInt64>] = []
    let dataStart = bs.dataStart * bs.bytesPerSector
    var k: UInt64 = 2
    let end = bs.clusterCount + 2
    while k < end {
        if entry(k) != 0 { k += 1; continue }
        let first = k
        while k < end && entry(k) == 0 { k += 1 }
        free.append(dataStart + (first - 2) * bs.clusterBytes..<dataStart + (k - 2) * bs.clusterBytes)
    }
    return .map(filesystem: name, size: size, free: free)
}

// MARK: - exFAT

func exfatBlockMap(_ r: ByteRangeReader) throws -> BlockMapResult {
    let name = "exfat"
    let b = try r.readExactly(at: 0, count: 512)
    let bpsShift = UInt64(b[108]), spcShift = UInt64(b[109])
    guard (9...12).contains(bpsShift), bpsShift + spcShift <= 25 else {
        return .full(filesystem: name, reason: "its boot sector is not valid")
    }
    let bps = UInt64(1) << bpsShift, clusterBytes = bps << spcShift
    let volumeLength = le64(b, 72), fatOffset = UInt64(le32(b, 80)), fatLength = UInt64(le32(b, 84))
    let heapOffset = UInt64(le32(b, 88)), clusterCount = UInt64(le32(b, 92)), rootCluster = UInt64(le32(b, 96))
    let flags = le16(b, 106), fatCount = b[110]
    let size = volumeLength * bps
    guard size <= r.size else {
        return .full(filesystem: name, reason: "its size (\(size) bytes) disagrees with the partition (\(r.size) bytes)")
    }
    guard fatCount == 1 else { return .full(filesystem: name, reason: "\(fatCount) FATs (TexFAT) not supported") }
    if flags & 2 != 0 { return .full(filesystem: name, reason: "marked dirty (not cleanly unmounted)") }
    guard fatOffset >= 24, fatLength * bps >= (clusterCount + 2) * 4, heapOffset >= fatOffset + fatLength,
          heapOffset * bps + clusterCount * clusterBytes <= size, (2..<clusterCount + 2).contains(rootCluster) else {
        return .full(filesystem: name, reason: "its boot sector's layout is not consistent")
    }
    // The main boot region's checksum (sector 11 repeats it).
    let region = try r.readExactly(at: 0, count: Int(12 * bps))
    var sum: UInt32 = 0
    for i in 0..<Int(11 * bps) where i != 106 && i != 107 && i != 112 {
        sum = ((sum & 1) != 0 ? 0x8000_0000 : 0) &+ (sum >> 1) &+ UInt32(region[i])
    }
    guard le32(region, Int(11 * bps)) == sum else { return .full(filesystem: name, reason: "boot region checksum mismatch") }
    guard fatLength * bps <= 256 << 20 else { return .full(filesystem: name, reason: "FAT larger than 256 MiB") }
    let fat = try r.readExactly(at: fatOffset * bps, count: Int(fatLength * bps))
    func clusterOffset(_ c: UInt64) -> UInt64 { heapOffset * bps + (c - 2) * clusterBytes }
    /// The FAT chain from `first`; nil when broken or looping.
    func chain(_ first: UInt64, limit: UInt64) -> [UInt64]? {
        var out: [UInt64] = []
        var c = first
        while true {
            guard (2..<clusterCount + 2).contains(c), UInt64(out.count) < limit else { return nil }
            out.append(c)
            let next = UInt64(le32(fat, Int(c * 4)))
            if next == 0xFFFF_FFFF { return out }
            c = next
        }
    }
    guard let rootClusters = chain(rootCluster, limit: 1 << 16) else {
        return .full(filesystem: name, reason: "its root directory's cluster chain is broken")
    }
    var bitmaps: [(first: UInt64, length: UInt64)] = []
    scan: for c in rootClusters {
        let dir = try r.readExactly(at: clusterOffset(c), count: Int(clusterBytes))
        for o in stride(from: 0, to: dir.count, by: 32) {
            let type = dir[o]
            if type == 0 { break scan }
            if type == 0x81 { bitmaps.append((UInt64(le32(dir, o + 20)), le64(dir, o + 24))) }
        }
    }
    guard bitmaps.count == 1, let bm = bitmaps.first, bm.length >= (clusterCount + 7) / 8 else {
        return .full(filesystem: name, reason: "no single allocation bitmap in its root directory")
    }
    let bitmapClusters = (bm.length + clusterBytes - 1) / clusterBytes
    guard let bmChain = chain(bm.first, limit: bitmapClusters), UInt64(bmChain.count) == bitmapClusters else {
        // A contiguous bitmap may be recorded without a FAT chain.
        return .full(filesystem: name, reason: "the allocation bitmap's cluster chain is broken")
    }
    var bitmap: [UInt8] = []
    for c in bmChain { bitmap += try r.readExactly(at: clusterOffset(c), count: Int(clusterBytes)) }
    func allocated(_ i: UInt64) -> Bool { bitmap[Int(i / 8)] & (1 << (i % 8)) != 0 }
    var free: [Range<UInt64>] = []
    var i: UInt64 = 0
    while i < clusterCount {
        if allocated(i) { i += 1; continue }
        let first = i
        while i < clusterCount && !allocated(i) { i += 1 }
        free.append(clusterOffset(first + 2)..<clusterOffset(i + 2))
    }
    return .map(filesystem: name, size: size, free: free)
}
