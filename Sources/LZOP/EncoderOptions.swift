/// What the lzop encoder writes: the compression level (as lzop's -1..-9)
/// and the checksum options (lzop's --crc32 and -F). The mapping to method,
/// header level and flags is lzop 1.04's, so the same options give the same
/// block stream as `lzop` byte for byte.
public struct LzopCompressionOptions: Sendable, Equatable {
    /// lzop's level option: 1 (fastest), 2...6 (all the same: lzop -3),
    /// 7, 8, 9 (slow, best). Default 3.
    public var level: Int
    /// lzop --crc32: CRC-32 instead of Adler-32 for the data and the header.
    public var crc32: Bool
    /// lzop's default; false is lzop -F. Levels 7-9 always write a data
    /// checksum (lzop forces it for LZO1X-999), so false changes nothing there.
    public var dataChecksums: Bool

    public init(level: Int = 3, crc32: Bool = false, dataChecksums: Bool = true) {
        precondition((1...9).contains(level), "lzop level must be 1...9")
        self.level = level
        self.crc32 = crc32
        self.dataChecksums = dataChecksums
    }

    /// The method byte of the header: 2 for -1, 1 for -2..-6, 3 for -7..-9.
    public var method: LzopFormat.Method {
        if level == 1 { return .lzo1x_1_15 }
        if level <= 6 { return .lzo1x_1 }
        return .lzo1x_999
    }

    /// The level byte lzop writes: 1, 5 (for any of -2..-6), or 7/8/9.
    public var headerLevel: UInt8 {
        switch method {
        case .lzo1x_1_15: return 1
        case .lzo1x_1: return 5
        case .lzo1x_999: return UInt8(level)
        }
    }

    /// Data checksums after lzop's rule for LZO1X-999.
    public var writesDataChecksum: Bool { dataChecksums || method == .lzo1x_999 }

    /// Header flags for the checksums (the OS and stdin/stdout bits are the
    /// header's business).
    public var checksumFlags: LzopFormat.Flags {
        var flags: LzopFormat.Flags = []
        if writesDataChecksum { flags.insert(crc32 ? .crc32Data : .adler32Data) }
        if crc32 { flags.insert(.headerCRC32) }
        return flags
    }

    /// version_needed_to_extract as lzop writes it: 0x1001 with --crc32.
    public var versionNeeded: UInt16 { crc32 ? 0x1001 : LzopFormat.versionNeeded }
}
