/// The lzop container format (lzop 1.04 / LZO 2.10), shared by the encoder
/// and the decoder. All integers are big-endian. See docs/lzop-format.md.
public enum LzopFormat {
    /// Every member starts with these 9 bytes.
    public static let magic: [UInt8] = [0x89, 0x4C, 0x5A, 0x4F, 0x00, 0x0D, 0x0A, 0x1A, 0x0A]
    /// What lzop 1.04 writes as its version, and needs to read ours.
    public static let version: UInt16 = 0x1040
    public static let versionNeeded: UInt16 = 0x0940
    /// Uncompressed bytes per block; lzop 1.04 and the kernel's unlzo refuse larger.
    public static let blockSize = 256 * 1024
    /// A decoder refuses blocks claiming more than this (lzop's MAX_BLOCK_SIZE).
    public static let maxBlockSize: UInt32 = 64 * 1024 * 1024

    public enum Method: UInt8 {
        case lzo1x_1 = 1        // lzop -2..-6 (default -3), level 5
        case lzo1x_1_15 = 2     // lzop -1, level 1
        case lzo1x_999 = 3      // lzop -7..-9, level 7..9
    }

    public struct Flags: OptionSet, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        public static let adler32Data = Flags(rawValue: 0x0000_0001)
        public static let adler32Compressed = Flags(rawValue: 0x0000_0002)
        public static let stdin = Flags(rawValue: 0x0000_0004)
        public static let stdout = Flags(rawValue: 0x0000_0008)
        public static let nameDefault = Flags(rawValue: 0x0000_0010)
        public static let dosish = Flags(rawValue: 0x0000_0020)
        public static let extraField = Flags(rawValue: 0x0000_0040)
        public static let gmtDiff = Flags(rawValue: 0x0000_0080)
        public static let crc32Data = Flags(rawValue: 0x0000_0100)
        public static let crc32Compressed = Flags(rawValue: 0x0000_0200)
        public static let multipart = Flags(rawValue: 0x0000_0400)
        public static let filter = Flags(rawValue: 0x0000_0800)
        public static let headerCRC32 = Flags(rawValue: 0x0000_1000)
        public static let pathname = Flags(rawValue: 0x0000_2000)
        /// Bits a valid file never sets.
        public static let reservedMask: UInt32 = 0x000F_C000
        /// Operating system in bits 24-31; Unix = 3.
        public static let osUnix = Flags(rawValue: 0x0300_0000)
    }
}
