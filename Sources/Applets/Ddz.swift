import ArgumentParser
import DiskLayout
import Imaging
import LZOP
import RescueCore
#if canImport(Glibc)
import Glibc
#endif

public struct Ddz: ParsableCommand, VerboseApplet {
    public var isVerbose: Bool { imaging.report.verbose }

    public static let configuration = CommandConfiguration(
        commandName: "ddz",
        abstract: "Image a disk or file into an lzop stream, or restore one (-d).",
        discussion: """
        Compress (default): reads INPUT (a block device, a file, or stdin) with
        O_DIRECT in large requests, compresses 256 KiB blocks on all cores and
        writes one lzop member to stdout or -o FILE. The block stream is
        byte-identical to lzop's at the same level; lzop and the kernel's unlzo
        read it. All-zero blocks take a fast path. Replaces
        `dd if=DEV iflag=direct bs=1M | lzop -1 -c`.

        Header: a regular file gets its mode, mtime and name (as lzop); stdin
        gets the STDIN flag, no name, and the current time (or the file's when
        stdin is a redirected file); a block device gets mode 0 (nothing to
        restore), the current time and the device's base name.

        -o FILE also gets FILE.index, the block index `rescuebox mount` uses
        (hadoop-lzo's .lzo.index layout). --index FILE builds one for an
        existing lzop file (lzop's own too) from its block headers alone; it
        supports one member whose blocks all have the same size but the last.

        -o FILE is created with mode 0600 and not overwritten unless -f (as
        lzop); a partial output file is removed when compression fails or is
        interrupted. Compressed data is never written to a terminal unless -f.
        When the reader of stdout goes away (`ddz DISK | head -c1`), ddz stops
        every thread and ends with one line "stdout: write: Broken pipe", exit 1.

        Exit status: 0 done, 1 failed (message names device, offset, reason;
        also after --noerror replaced unreadable sectors), 2 bad usage,
        128+N killed by signal N.

        EXAMPLES:
          ddz -1 /dev/sda > sda.img.lzo            image a disk, fastest level
          ddz /dev/sda | ssh backup 'cat > sda.lzo'
          ddz --skip 1M --count 512M /dev/sdb -o part.lzo
          ddz -9 --crc32 -T 4 disk.img -o disk.img.lzo
          ddz --noerror --badmap sdc.map /dev/sdc -o rescued.lzo   # dying disk
          lzop -t sda.img.lzo && lzop -dc sda.img.lzo | cmp - /dev/sda
          ddz -d sda.img.lzo -o /dev/sda           restore
          ddz --used /dev/sda -o sda.lzo           read only what the filesystems use
          ddz --index sda.img.lzo                  write sda.img.lzo.index (for mount)

        --used reads the partition table and each filesystem's allocation map
        (ext2/3/4, NTFS, FAT12/16/32, exFAT, swap) and reads only the blocks in
        use; free space comes out as zeros, never read, as if zerofill had run.
        The table, gaps, other filesystems (xfs, btrfs, LVM, LUKS, unknown)
        and any filesystem that is not clean are read in full; one line per
        partition says which. A device with a filesystem mounted read-write is
        refused. Still use zerofill, then ddz without --used, for a mounted
        filesystem you cannot unmount, or to shrink an unsupported one.
        """
    )

    enum Level: Int, EnumerableFlag {
        case level1 = 1, level2, level3, level4, level5, level6, level7, level8, level9

        static func name(for value: Level) -> NameSpecification {
            .customShort(Character(String(value.rawValue)))
        }

        static func help(for value: Level) -> ArgumentHelp? {
            switch value {
            case .level1: return "Fastest: LZO1X-1(15), as lzop -1."
            case .level3: return "Default: LZO1X-1, as lzop -3 (-2..-6 are the same)."
            case .level7, .level8: return ArgumentHelp("LZO1X-999 level \(value.rawValue), as lzop -\(value.rawValue).")
            case .level9: return "Best and slowest: LZO1X-999 level 9, as lzop -9."
            default: return ArgumentHelp("Same as -3.", visibility: .hidden)
            }
        }
    }

    @Flag(name: [.customShort("d"), .customLong("decompress")], help: "Decompress (restore) an lzop stream.")
    var decompress = false

    @Flag(name: [.customShort("t"), .customLong("test")], help: "Test an lzop stream's integrity; write nothing.")
    var test = false

    @Flag(name: .customLong("index"), help: "Write INPUT.index, the block index of the lzop file INPUT; nothing else.")
    var index = false

    @Flag(exclusivity: .chooseLast, help: "Compression level (lzop's).")
    var level: Level = .level3

    @Flag(name: .customLong("crc32"), help: "CRC-32 instead of Adler-32 checksums (data and header), as lzop --crc32.")
    var crc32 = false

    @Flag(name: [.customShort("F"), .customLong("no-checksum")],
          help: "No data checksums, as lzop -F (levels 7-9 still write one, as lzop does).")
    var noChecksum = false

    @Option(name: [.customShort("o"), .customLong("output")], help: "Write to FILE or device instead of stdout.")
    var output: String?

    @Option(name: .customLong("skip"), help: ArgumentHelp("Start reading at this input offset (e.g. 1M).", valueName: "size"))
    var skip: ByteCount?

    @Option(name: .customLong("count"), help: ArgumentHelp("Read at most this many bytes (e.g. 2G).", valueName: "size"))
    var count: ByteCount?

    @OptionGroup var imaging: ImagingOptions<LocalWording>

    @Option(name: .customLong("badmap"),
            help: ArgumentHelp("After the run, write a GNU ddrescue map file of what was read and what was unreadable.",
                               valueName: "file"))
    var badMap: String?

    @Flag(name: .customLong("used"),
          help: "Read only the blocks the filesystems use; free space becomes zeros without being read.")
    var used = false

    @Option(name: .customLong("used-map"),
            help: ArgumentHelp("With --used: write the ranges read as a GNU ddrescue domain file (as partclone -D).",
                               valueName: "file"))
    var usedMap: String?

    @Flag(name: .customLong("no-sparse"), help: "With -d into a regular file: write zero blocks instead of making holes.")
    var noSparse = false

    @Flag(name: [.customShort("f"), .customLong("force")], help: "Write compressed data to a terminal; overwrite an existing output file; image a source mounted read-write.")
    var force = false

    @Argument(help: "Input: a block device, a file, or - (default) for stdin.")
    var input: String?

    public init() {}

    public func validate() throws {
        if decompress || test {
            if imaging.anyGiven || skip != nil || count != nil || badMap != nil {
                throw ValidationError("--bs, --skip, --count, --noerror, --badmap and --no-direct apply to compression only")
            }
        }
        if used || usedMap != nil {
            if decompress || test { throw ValidationError("--used applies to compression only") }
            if !used { throw ValidationError("--used-map needs --used") }
            if input == nil || input == "-" { throw ValidationError("--used needs a device or image file, not stdin") }
            if skip != nil || count != nil { throw ValidationError("--used reads a whole device: no --skip or --count") }
        }
    }

    public func run() throws {
        if index {
            guard let input, input != "-", output == nil, !decompress, !test else {
                throw RescueError.usage("--index needs one lzop FILE (and no -o, -d or -t)")
            }
            try writeLzopIndexFile(for: input)
            return
        }
        if decompress || test {
            try DdzDecompressJob(input: input, output: output, testOnly: test, sparse: !noSparse,
                                 threads: imaging.threads, progress: imaging.report.progress, force: force).run()
            return
        }
        let badBytes = try DdzCompressJob(
            input: input == "-" ? nil : input, output: output == "-" ? nil : output,
            options: LzopCompressionOptions(level: level.rawValue, crc32: crc32, dataChecksums: !noChecksum),
            threads: imaging.workerThreads, requestSize: imaging.requestSize,
            skip: skip?.bytes ?? 0, count: count?.bytes, direct: imaging.direct, noError: imaging.noError,
            badMap: badMap, progress: imaging.report.progress, force: force, used: used, usedMap: usedMap
        ).run()
        if badBytes > 0 { throw AppletExit(ExitCode.failure) }
    }
}

