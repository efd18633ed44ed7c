/// What the map builder learnt about one filesystem (offsets relative to
/// its first byte). docs/used-blocks.md describes each format's facts.
enum BlockMapResult: Equatable {
    /// `free`: ranges proven free, inside [0, size). Everything else is read.
    case map(filesystem: String, size: UInt64, free: [Range<UInt64>])
    /// Read the whole partition, for `reason`.
    case full(filesystem: String, reason: String)
}

/// The filesystem signatures found at the start of a partition.
enum Signature: Equatable {
    case ext, fat, exfat, ntfs, swap, xfs, btrfs, lvm, luks, hibernatedSwap

    var name: String {
        switch self {
        case .ext: return "ext"
        case .fat: return "vfat"
        case .exfat: return "exfat"
        case .ntfs: return "ntfs"
        case .swap, .hibernatedSwap: return "swap"
        case .xfs: return "xfs"
        case .btrfs: return "btrfs"
        case .lvm: return "LVM2_member"
        case .luks: return "crypto_LUKS"
        }
    }
}

let swapPageSizes: [Int] = [4096, 8192, 16384, 65536]
let hibernationSignatures = ["S1SUSPEND", "S2SUSPEND", "ULSUSPEND", "LINHIB0001"]

func text(_ b: [UInt8], _ range: Range<Int>) -> String {
    guard range.upperBound <= b.count else { return "" }
    return String(decoding: b[range], as: UTF8.self)
}

/// Every signature present (more than one: ambiguous, read in full).
func probeSignatures(_ r: ByteRangeReader) throws -> [Signature] {
    let head = try r.read(at: 0, count: 65536)
    var found: [Signature] = []
    if head.count >= 1082, head[1080] == 0x53, head[1081] == 0xEF { found.append(.ext) }
    let oem = text(head, 3..<11)
    if oem == "NTFS    " { found.append(.ntfs) }
    if oem == "EXFAT   " { found.append(.exfat) }
    if head.count >= 512, oem != "NTFS    ", oem != "EXFAT   ", FATBootSector(head) != nil { found.append(.fat) }
    if text(head, 0..<4) == "XFSB" { found.append(.xfs) }
    if head.count >= 6, Array(head[0..<6]) == [0x4C, 0x55, 0x4B, 0x53, 0xBA, 0xBE] { found.append(.luks) }
    if text(head, 512..<520) == "LABELONE" || text(head, 24..<32) == "LVM2 001" { found.append(.lvm) }
    if text(try r.read(at: 0x10040, count: 8), 0..<8) == "_BHRfS_M" { found.append(.btrfs) }
    for page in swapPageSizes where head.count >= page {
        let sig10 = text(head, page - 10..<page)
        if sig10 == "SWAPSPACE2" || sig10 == "SWAP-SPACE" { found.append(.swap); break }
        if hibernationSignatures.contains(where: { sig10.hasSuffix($0) || text(head, page - 10..<page - 10 + $0.count) == $0 }) {
            found.append(.hibernatedSwap); break
        }
    }
    return found
}

/// The block map of the filesystem in `r` (a partition, or a whole
/// unpartitioned device). `path`/`offset` let libext2fs open it itself.
func blockMap(_ r: ByteRangeReader, path: String, offset: UInt64) -> BlockMapResult {
    let signatures: [Signature]
    do { signatures = try probeSignatures(r) } catch {
        return .full(filesystem: "unknown", reason: "cannot read its first bytes")
    }
    guard let first = signatures.first else {
        return .full(filesystem: "unknown", reason: "no filesystem recognised")
    }
    if signatures.count > 1 {
        let names = signatures.map(\.name).joined(separator: " and ")
        return .full(filesystem: "unknown", reason: "ambiguous: \(names) signatures")
    }
    do {
        switch first {
        case .ext: return extBlockMap(path: path, offset: offset, length: r.size)
        case .fat: return try fatBlockMap(r)
        case .exfat: return try exfatBlockMap(r)
        case .swap: return try swapBlockMap(r)
        case .hibernatedSwap: return .full(filesystem: "swap", reason: "it holds a hibernation image")
        case .ntfs: return ntfsBlockMap(path: path, offset: offset, length: r.size)
        default: return .full(filesystem: first.name, reason: "no block map for \(first.name)")
        }
    } catch {
        return .full(filesystem: first.name, reason: "its metadata cannot be read")
    }
}

// MARK: - swap

func swapBlockMap(_ r: ByteRangeReader) throws -> BlockMapResult {
    let head = try r.read(at: 0, count: 65536)
    for page in swapPageSizes where head.count >= page {
        let sig = text(head, page - 10..<page)
        if sig == "SWAP-SPACE" { return .full(filesystem: "swap", reason: "old swap format (version 0)") }
        guard sig == "SWAPSPACE2" else { continue }
        // union swap_header: bootbits[1024], version u32, last_page u32, ...
        let version = le32(head, 1024), lastPage = UInt64(le32(head, 1028))
        guard version == 1, lastPage > 0 else { return .full(filesystem: "swap", reason: "unknown swap header version \(version)") }
        let size = (lastPage + 1) * UInt64(page)
        guard size <= r.size else { return .full(filesystem: "swap", reason: "its size (\(size) bytes) disagrees with the partition (\(r.size) bytes)") }
        return .map(filesystem: "swap", size: size, free: [UInt64(page)..<size])
    }
    return .full(filesystem: "swap", reason: "no swap header found")
}
