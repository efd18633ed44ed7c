import CLZO
import RescueCore
#if canImport(Glibc)
import Glibc
#endif

/// The header of one lzop member as the encoder writes it (lzop 1.04's
/// layout: version 0x1040, lib version, version needed, method, level,
/// flags, mode, mtime low/high, name, header checksum).
///
/// What goes into mode, mtime and name follows lzop for the same kind of
/// input (see `forInput`); only those fields (and the STDIN/STDOUT flags)
/// depend on where the data came from, never the block stream.
public struct LzopEncoderHeader: Sendable, Equatable {
    public var options: LzopCompressionOptions
    /// F_STDIN: the data came from standard input.
    public var fromStdin: Bool
    /// F_STDOUT: the member was written to standard output.
    public var toStdout: Bool
    /// Unix st_mode of a regular input file; 0 when there is nothing to restore.
    public var mode: UInt32
    /// Modification time (seconds since the epoch), 0 for none.
    public var mtime: Int64
    /// The input's base name (at most 255 bytes; longer names are left out, as lzop does).
    public var name: String

    public init(options: LzopCompressionOptions, fromStdin: Bool = false, toStdout: Bool = false,
                mode: UInt32 = 0, mtime: Int64 = 0, name: String = "") {
        self.options = options
        self.fromStdin = fromStdin
        self.toStdout = toStdout
        self.mode = mode
        self.mtime = mtime
        self.name = name
    }

    /// The header lzop would write for this input:
    /// - a regular file named on the command line: its st_mode, st_mtime and base name;
    /// - standard input: F_STDIN, no name; st_mode/st_mtime when stdin is a regular
    ///   file, else mode 0 and the current time (lzop does exactly this);
    /// - a block device (lzop refuses those): mode 0 (lzop -d then leaves the
    ///   restored file's mode alone), the current time (when the image was
    ///   taken) and the device's base name (e.g. "sda").
    public static func forInput(options: LzopCompressionOptions, path: String?, status: stat?,
                                toStdout: Bool, now: Int64 = Int64(time(nil))) -> LzopEncoderHeader {
        var header = LzopEncoderHeader(options: options, toStdout: toStdout)
        let isRegular = status.map { $0.st_mode & S_IFMT == S_IFREG } ?? false
        if path == nil {
            header.fromStdin = true
            header.mode = isRegular ? UInt32(status!.st_mode) : 0
            header.mtime = isRegular ? Int64(status!.st_mtim.tv_sec) : now
        } else {
            header.mode = isRegular ? UInt32(status!.st_mode) : 0
            header.mtime = isRegular ? Int64(status!.st_mtim.tv_sec) : now
            let base = baseName(path!)
            header.name = base.utf8.count <= 255 ? base : ""
        }
        if header.mtime < 0 { header.mtime = 0 }
        return header
    }

    /// The flags word: OS Unix, checksum flags, STDIN/STDOUT.
    public var flags: LzopFormat.Flags {
        var flags = options.checksumFlags.union(.osUnix)
        if fromStdin { flags.insert(.stdin) }
        if toStdout { flags.insert(.stdout) }
        return flags
    }

    /// The version of the linked LZO library (lzo_version() & 0xffff; 0x20A0 for 2.10).
    public static var libraryVersion: UInt16 { UInt16(truncatingIfNeeded: rb_lzo_version()) }

    /// Magic and header, ready to write.
    public func bytes() -> [UInt8] {
        var out = LzopFormat.magic
        var body: [UInt8] = []
        func put16(_ v: UInt16) { body.append(UInt8(v >> 8)); body.append(UInt8(v & 0xFF)) }
        func put32(_ v: UInt32) { for shift in [24, 16, 8, 0] { body.append(UInt8((v >> UInt32(shift)) & 0xFF)) } }
        put16(LzopFormat.version)
        put16(Self.libraryVersion)
        put16(options.versionNeeded)
        body.append(options.method.rawValue)
        body.append(options.headerLevel)
        put32(flags.rawValue)
        put32(mode)
        put32(UInt32(truncatingIfNeeded: mtime))
        put32(UInt32(truncatingIfNeeded: mtime >> 32))
        let nameBytes = Array(name.utf8.prefix(255))
        body.append(UInt8(nameBytes.count))
        body += nameBytes
        let check = body.withUnsafeBytes { raw in
            options.crc32 ? LzopChecksum.crc32(UnsafeRawBufferPointer(raw))
                          : LzopChecksum.adler32(UnsafeRawBufferPointer(raw))
        }
        put32(check)
        out += body
        return out
    }
}
