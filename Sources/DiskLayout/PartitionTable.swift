import CZlib
import RescueCore

/// Random access to the bytes of a device or image: what the partition and
/// filesystem parsers read through. Reads past the end return fewer bytes.
public protocol ByteRangeReader {
    var size: UInt64 { get }
    func read(at offset: UInt64, count: Int) throws -> [UInt8]
}

public enum PartitionScheme: Equatable, Sendable { case none, mbr, gpt }

public enum PartitionType: Equatable, Sendable {
    /// The MBR system id byte (0x83 Linux, 0x07 NTFS/exFAT, 0x0c FAT32 LBA, ...).
    case mbr(UInt8)
    /// The GPT partition type GUID, lowercase canonical text.
    case gpt(String)
}

public struct PartitionEntry: Equatable, Sendable {
    /// Linux numbering: MBR primaries 1-4, logical 5.., GPT entry index + 1.
    public var number: Int
    /// Bytes from the start of the device.
    public var start: UInt64
    /// Bytes.
    public var length: UInt64
    public var type: PartitionType
    /// "" for MBR; the GPT partition name.
    public var name: String

    public init(number: Int, start: UInt64, length: UInt64, type: PartitionType, name: String) {
        self.number = number
        self.start = start
        self.length = length
        self.type = type
        self.name = name
    }

    public var end: UInt64 { start + length }
}

public struct PartitionTable: Equatable, Sendable {
    public var scheme: PartitionScheme
    /// 512, or 4096 for a GPT found at LBA 1 of 4096-byte sectors.
    public var sectorSize: Int
    /// Sorted by start. The MBR extended container itself is not listed
    /// (its EBRs are in `metadataRanges`); its logical partitions are.
    public var partitions: [PartitionEntry]
    /// The table's own bytes: MBR, EBRs, GPT headers and entry arrays.
    public var metadataRanges: [Range<UInt64>]
    /// What was odd and what was done about it, one sentence each.
    public var notes: [String]

    public init(scheme: PartitionScheme, sectorSize: Int, partitions: [PartitionEntry],
                metadataRanges: [Range<UInt64>], notes: [String]) {
        self.scheme = scheme
        self.sectorSize = sectorSize
        self.partitions = partitions
        self.metadataRanges = metadataRanges
        self.notes = notes
    }
}

/// Reads the partition table of a whole device (docs/used-blocks.md,
/// "Partition tables"). GPT (header and entry-array CRCs checked, backup
/// header used when the primary is bad) when the MBR is protective, else
/// MBR with its extended chain; no table: scheme `.none` (the device is one
/// filesystem). Throws only when the source cannot be read.
public func readPartitionTable(_ source: ByteRangeReader) throws -> PartitionTable {
    var notes: [String] = []
    let size = source.size
    let none = { (notes: [String]) in
        PartitionTable(scheme: .none, sectorSize: 512, partitions: [], metadataRanges: [], notes: notes)
    }
    guard size >= 512 else { return none(notes) }
    let sector0 = try source.read(at: 0, count: 512)
    guard sector0.count == 512 else { return none(notes) }
    let mbr = MBRSector(sector0)

    let gptFound = try findGPT(source, notes: &notes)
    if mbr.hasSignature && mbr.hasProtectiveEntry {
        if let gpt = gptFound { return gpt.table(notes: notes) }
        notes.append("protective MBR but no valid GPT header (primary or backup); treating the device as unpartitioned")
        return none(notes)
    }
    if let gpt = gptFound {
        if !mbr.hasSignature {
            notes.append("GPT without a protective MBR; using the GPT")
            return gpt.table(notes: notes)
        }
        notes.append("GPT headers found but the MBR is not protective; using the MBR (the GPT is stale)")
    }
    guard mbr.hasSignature else { return none(notes) }
    if mbr.looksLikeFilesystemBootSector {
        return none(notes)
    }
    return try readMBR(source, mbr: mbr, notes: notes) ?? none(notes)
}

// MARK: - Little-endian fields

@inline(__always) func le16(_ b: [UInt8], _ o: Int) -> UInt16 {
    UInt16(b[o]) | UInt16(b[o + 1]) << 8
}
@inline(__always) func le32(_ b: [UInt8], _ o: Int) -> UInt32 {
    UInt32(b[o]) | UInt32(b[o + 1]) << 8 | UInt32(b[o + 2]) << 16 | UInt32(b[o + 3]) << 24
}
@inline(__always) func le64(_ b: [UInt8], _ o: Int) -> UInt64 {
    UInt64(le32(b, o)) | UInt64(le32(b, o + 4)) << 32
}

func crc32Of(_ bytes: [UInt8]) -> UInt32 {
    bytes.withUnsafeBufferPointer { p in
        UInt32(truncatingIfNeeded: CZlib.crc32(0, p.baseAddress, uInt(p.count)))
    }
}

// MARK: - MBR

struct MBRSector {
    struct Slot { var bootIndicator: UInt8; var type: UInt8; var firstLBA: UInt32; var sectors: UInt32 }
    let bytes: [UInt8]
    let slots: [Slot]

    init(_ bytes: [UInt8]) {
        self.bytes = bytes
        slots = (0..<4).map { i in
            let o = 446 + 16 * i
            return Slot(bootIndicator: bytes[o], type: bytes[o + 4], firstLBA: le32(bytes, o + 8), sectors: le32(bytes, o + 12))
        }
    }

    var hasSignature: Bool { bytes[510] == 0x55 && bytes[511] == 0xAA }
    var hasProtectiveEntry: Bool { slots.contains { $0.type == 0xEE } }
    /// Every boot indicator is 0 or 0x80 (the kernel's test for a table).
    var bootIndicatorsValid: Bool { slots.allSatisfy { $0.bootIndicator == 0 || $0.bootIndicator == 0x80 } }

    /// A FAT, exFAT or NTFS boot sector (a "superfloppy": filesystem on the
    /// whole device) also ends in 55 AA; its boot code is no partition table.
    var looksLikeFilesystemBootSector: Bool {
        let oem = String(decoding: bytes[3..<11], as: UTF8.self)
        if oem == "NTFS    " || oem == "EXFAT   " { return true }
        let jump = bytes[0] == 0xEB || bytes[0] == 0xE9
        let bytesPerSector = le16(bytes, 11)
        let perCluster = bytes[13]
        let validBPB = jump && [512, 1024, 2048, 4096].contains(bytesPerSector)
            && perCluster != 0 && perCluster & (perCluster - 1) == 0
            && le16(bytes, 14) >= 1 && (1...2).contains(bytes[16]) && bytes[21] >= 0xF0
        if !validBPB { return false }
        let fat1x = String(decoding: bytes[54..<62], as: UTF8.self)
        let fat32 = String(decoding: bytes[82..<90], as: UTF8.self)
        return fat1x.hasPrefix("FAT") || fat32.hasPrefix("FAT") || !bootIndicatorsValid
    }
}

private func isExtended(_ type: UInt8) -> Bool { type == 0x05 || type == 0x0F || type == 0x85 }

/// The most logical partitions followed in one extended chain.
let maxLogicalPartitions = 256

private func readMBR(_ source: ByteRangeReader, mbr: MBRSector, notes: [String]) throws -> PartitionTable? {
    var notes = notes
    guard mbr.bootIndicatorsValid else { return nil }
    let sector: UInt64 = 512
    let size = source.size
    var partitions: [PartitionEntry] = []
    var metadata: [Range<UInt64>] = [0..<sector]
    var extended: [(start: UInt64, length: UInt64)] = []
    for (i, slot) in mbr.slots.enumerated() where slot.type != 0 && slot.sectors != 0 {
        let start = UInt64(slot.firstLBA) * sector, length = UInt64(slot.sectors) * sector
        if isExtended(slot.type) {
            extended.append((start, length))
        } else {
            partitions.append(PartitionEntry(number: i + 1, start: start, length: length, type: .mbr(slot.type), name: ""))
        }
    }
    if partitions.isEmpty && extended.isEmpty { return nil }
    if extended.count > 1 { notes.append("more than one extended partition; following the first only") }
    if let ext = extended.first {
        // The chain: each EBR's first slot is a logical partition (relative
        // to that EBR), its second slot the next EBR (relative to the
        // extended partition's start). Bounded and loop-safe.
        var ebr = ext.start
        var seen: Set<UInt64> = []
        var number = 5
        while true {
            if seen.contains(ebr) { notes.append("extended partition chain loops at byte \(ebr); stopped there"); break }
            if seen.count >= maxLogicalPartitions { notes.append("more than \(maxLogicalPartitions) logical partitions; stopped"); break }
            guard ebr + sector <= size, ebr >= ext.start, ebr < ext.start + ext.length else {
                notes.append("extended partition chain points outside the extended partition (byte \(ebr)); stopped there")
                break
            }
            seen.insert(ebr)
            let bytes = try source.read(at: ebr, count: 512)
            guard bytes.count == 512 else { break }
            let e = MBRSector(bytes)
            guard e.hasSignature else { notes.append("EBR at byte \(ebr) has no 55 AA signature; chain stopped there"); break }
            metadata.append(ebr..<ebr + sector)
            let logical = e.slots[0]
            if logical.type != 0 && logical.sectors != 0 && !isExtended(logical.type) {
                partitions.append(PartitionEntry(number: number, start: ebr + UInt64(logical.firstLBA) * sector,
                                                 length: UInt64(logical.sectors) * sector, type: .mbr(logical.type), name: ""))
            }
            number += 1
            let next = e.slots[1]
            guard next.type != 0, next.firstLBA != 0 else { break }
            ebr = ext.start + UInt64(next.firstLBA) * sector
        }
    }
    partitions.sort { ($0.start, $0.number) < ($1.start, $1.number) }
    notes += sanityNotes(partitions, size: size)
    return PartitionTable(scheme: .mbr, sectorSize: 512, partitions: partitions, metadataRanges: metadata, notes: notes)
}

/// Partitions beyond the end of the device, or overlapping one another.
func sanityNotes(_ partitions: [PartitionEntry], size: UInt64) -> [String] {
    var notes: [String] = []
    for p in partitions where p.end > size {
        notes.append("partition \(p.number) ends at byte \(p.end), beyond the end of the device (\(size) bytes)")
    }
    for (a, b) in zip(partitions, partitions.dropFirst()) where b.start < a.end {
        notes.append("partitions \(a.number) and \(b.number) overlap")
    }
    return notes
}

// MARK: - GPT

struct GPTHeader {
    var sectorSize: UInt64
    var myLBA: UInt64
    var alternateLBA: UInt64
    var firstUsable: UInt64
    var lastUsable: UInt64
    var entriesLBA: UInt64
    var entryCount: UInt32
    var entrySize: UInt32
    var entriesCRC: UInt32

    var entriesRange: Range<UInt64> {
        let start = entriesLBA * sectorSize
        let bytes = UInt64(entryCount) * UInt64(entrySize)
        let rounded = (bytes + sectorSize - 1) / sectorSize * sectorSize
        return start..<start + rounded
    }
    var headerRange: Range<UInt64> { myLBA * sectorSize..<(myLBA + 1) * sectorSize }
}

/// The largest entry array accepted (sgdisk's default is 16 KiB).
let maxGPTEntryArrayBytes = 4 << 20

enum HeaderResult { case missing, corrupt(String), valid(GPTHeader, entries: [UInt8]) }

/// Reads and checks the GPT header at `lba` and its entry array.
func readGPTHeader(_ source: ByteRangeReader, lba: UInt64, sectorSize: UInt64) throws -> HeaderResult {
    guard (lba + 1) * sectorSize <= source.size else { return .missing }
    let bytes = try source.read(at: lba * sectorSize, count: Int(sectorSize))
    guard bytes.count == Int(sectorSize), Array(bytes[0..<8]) == Array("EFI PART".utf8) else { return .missing }
    let headerSize = Int(le32(bytes, 12))
    guard headerSize >= 92, headerSize <= Int(sectorSize) else { return .corrupt("header size \(headerSize)") }
    var forCRC = Array(bytes[0..<headerSize])
    forCRC.replaceSubrange(16..<20, with: [0, 0, 0, 0])
    guard crc32Of(forCRC) == le32(bytes, 16) else { return .corrupt("CRC") }
    let h = GPTHeader(sectorSize: sectorSize, myLBA: le64(bytes, 24), alternateLBA: le64(bytes, 32),
                      firstUsable: le64(bytes, 40), lastUsable: le64(bytes, 48), entriesLBA: le64(bytes, 72),
                      entryCount: le32(bytes, 80), entrySize: le32(bytes, 84), entriesCRC: le32(bytes, 88))
    guard h.myLBA == lba else { return .corrupt("it names LBA \(h.myLBA) as its own") }
    guard h.entrySize >= 128, h.entrySize % 8 == 0, h.entryCount > 0,
          UInt64(h.entryCount) * UInt64(h.entrySize) <= UInt64(maxGPTEntryArrayBytes) else {
        return .corrupt("entry array of \(h.entryCount) entries of \(h.entrySize) bytes")
    }
    let lastLBA = source.size / sectorSize - 1
    guard h.firstUsable <= h.lastUsable + 1, h.lastUsable <= lastLBA, h.entriesRange.upperBound <= source.size,
          h.entriesLBA >= 1 else {
        return .corrupt("usable area or entry array outside the device")
    }
    let arrayBytes = Int(h.entryCount) * Int(h.entrySize)
    let entries = try source.read(at: h.entriesLBA * sectorSize, count: arrayBytes)
    guard entries.count == arrayBytes, crc32Of(entries) == h.entriesCRC else { return .corrupt("entry array CRC") }
    return .valid(h, entries: entries)
}

struct FoundGPT {
    var header: GPTHeader
    var entries: [UInt8]
    var metadata: [Range<UInt64>]
    var size: UInt64

    func table(notes: [String]) -> PartitionTable {
        var notes = notes
        let ss = header.sectorSize
        var partitions: [PartitionEntry] = []
        for i in 0..<Int(header.entryCount) {
            let o = i * Int(header.entrySize)
            let typeBytes = Array(entries[o..<o + 16])
            if typeBytes.allSatisfy({ $0 == 0 }) { continue }
            let first = le64(entries, o + 32), last = le64(entries, o + 40)
            guard last >= first else {
                notes.append("GPT entry \(i + 1) ends before it starts; ignored")
                continue
            }
            if first < header.firstUsable || last > header.lastUsable {
                notes.append("GPT entry \(i + 1) lies outside the usable area")
            }
            var units: [UInt16] = []
            for k in stride(from: o + 56, to: o + 128, by: 2) {
                let u = le16(entries, k)
                if u == 0 { break }
                units.append(u)
            }
            partitions.append(PartitionEntry(number: i + 1, start: first * ss, length: (last - first + 1) * ss,
                                             type: .gpt(guidString(typeBytes)),
                                             name: String(decoding: units, as: UTF16.self)))
        }
        partitions.sort { ($0.start, $0.number) < ($1.start, $1.number) }
        notes += sanityNotes(partitions, size: size)
        return PartitionTable(scheme: .gpt, sectorSize: Int(ss), partitions: partitions,
                              metadataRanges: metadata, notes: notes)
    }
}

/// Canonical text of a GUID stored in the mixed-endian on-disk form.
func guidString(_ b: [UInt8]) -> String {
    func hex(_ bytes: [UInt8]) -> String {
        bytes.map { let s = String($0, radix: 16); return s.count == 1 ? "0" + s : s }.joined()
    }
    return [hex(b[0..<4].reversed()), hex(b[4..<6].reversed()), hex(b[6..<8].reversed()),
            hex(Array(b[8..<10])), hex(Array(b[10..<16]))].joined(separator: "-")
}

/// Looks for a GPT with 512-byte, then 4096-byte sectors: the primary
/// header at LBA 1, else the backup header at the last LBA.
func findGPT(_ source: ByteRangeReader, notes: inout [String]) throws -> FoundGPT? {
    for ss in [UInt64(512), 4096] {
        guard source.size >= 3 * ss else { continue }
        let lastLBA = source.size / ss - 1
        let primary = try readGPTHeader(source, lba: 1, sectorSize: ss)
        var backupLBA = lastLBA
        if case .valid(let h, _) = primary, h.alternateLBA <= lastLBA, h.alternateLBA > 1 { backupLBA = h.alternateLBA }
        let backup = try readGPTHeader(source, lba: backupLBA, sectorSize: ss)
        var metadata: [Range<UInt64>] = [0..<ss]
        switch (primary, backup) {
        case (.valid(let h, let entries), _):
            metadata += [h.headerRange, h.entriesRange]
            switch backup {
            case .valid(let b, _): metadata += [b.entriesRange, b.headerRange]
            case .corrupt(let why): notes.append("backup GPT header corrupt (\(why)); using the primary header")
            case .missing: notes.append("no backup GPT header at the end of the device; using the primary header")
            }
            return FoundGPT(header: h, entries: entries, metadata: normalized(metadata), size: source.size)
        case (_, .valid(let b, let entries)):
            if case .corrupt(let why) = primary {
                notes.append("primary GPT header corrupt (\(why)); using the backup header")
            } else {
                notes.append("primary GPT header missing; using the backup header")
            }
            // The primary's places, where a valid one would be: LBA 1 and
            // the array after it (read in full as table bytes either way).
            metadata += [ss..<2 * ss, b.entriesRange, b.headerRange]
            let primaryArray = 2 * ss..<min(2 * ss + (b.entriesRange.upperBound - b.entriesRange.lowerBound), source.size)
            metadata.append(primaryArray)
            return FoundGPT(header: b, entries: entries, metadata: normalized(metadata), size: source.size)
        case (.corrupt(let why), _):
            notes.append("primary GPT header (\(ss)-byte sectors) corrupt (\(why)) and no valid backup header")
        default:
            continue
        }
    }
    return nil
}

/// Sorted, merged ranges.
public func normalized(_ ranges: [Range<UInt64>]) -> [Range<UInt64>] {
    let sorted = ranges.filter { !$0.isEmpty }.sorted { $0.lowerBound < $1.lowerBound }
    var out: [Range<UInt64>] = []
    for r in sorted {
        if let last = out.last, r.lowerBound <= last.upperBound {
            out[out.count - 1] = last.lowerBound..<max(last.upperBound, r.upperBound)
        } else {
            out.append(r)
        }
    }
    return out
}
