import ArgumentParser
import FTP
import Imaging
import LZOP
import RescueCore
#if canImport(Glibc)
import Glibc
#endif

public struct Backup: ParsableCommand, NormalizesArguments, VerboseApplet {
    public var isVerbose: Bool { imaging.report.verbose }

    public static func normalize(_ arguments: [String]) -> [String] { FTPConnectionOptions.splitGluedValues(arguments) }

    public static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Image a disk compressed straight to an FTP server or file, resumably.",
        discussion: """
        Reads SOURCE (a block device or file) with O_DIRECT, compresses it on \
        all cores into an lzop stream (lzop -d and ddz -d read it) and sends it \
        over the FTP data connection in the same process: no pipes, no extra \
        copies. Replaces `ftp> put |"dd if=DEV iflag=direct bs=1M | lzop -1 -c" NAME`.
        DEST is ftp://[USER@]HOST[:PORT]/PATH/NAME.lzo, a local file, or - for \
        stdout. A DEST ending in / gets the name HOST.DEVICE.YYYY-MM-DD.lzo.
        Integrity (as ftpput): the stream goes to NAME.lzo.part; after the \
        server's 226 the size is checked with SIZE and only then renamed to \
        NAME.lzo. On failure or Ctrl-C the partial file is deleted unless \
        --keep-partial.
        Resume: when the connection drops, backup reconnects (--retries, waits \
        doubling from 2 s to 60 s), asks how many bytes the server holds, \
        re-reads the source from the 256 KiB block at or before that byte and \
        appends the rest (REST+STOR, or APPE). The compressor is \
        deterministic, so the result is byte-identical to an unbroken run.
        A source that stalls (a dying disk) does not cost the upload: after \
        --idle seconds without data the transfer is ended cleanly, the session \
        kept alive with NOOP, and continued when data comes.
        NAME.lzo.index, the block index `rescuebox mount` reads, is stored \
        beside the image.
        --manifest also stores NAME.lzo.json: source size, device model and \
        serial, start and end time, compressed size, SHA-256 of the stream.
        --used reads only the blocks the filesystems use (ext2/3/4, NTFS, FAT, \
        exFAT, swap), as `ddz --used`: free space is sent as zeros without \
        being read; other filesystems, the table and gaps are read in full. \
        With --used, a device with a filesystem mounted read-write is refused \
        even with -f: for that one, run zerofill and back up without --used.
        Credentials, timeouts and TLS (--tls, ftps://) as ftpput: URL user or -u; FTP_PASSWORD, \
        ~/.netrc, or a terminal prompt; -p is wiped from the arguments.
        A SOURCE mounted read-write (or a disk with such a partition) is \
        refused: the image would be inconsistent (-f goes ahead).
        Exit status: 0 done; 1 failed (one line naming the object, the \
        operation and the reason; also when --noerror zeroed sectors); \
        2 bad usage; 130 on Ctrl-C (143 SIGTERM, 129 SIGHUP), after removing \
        what this run stored.
        EXAMPLES:
          rescuebox backup /dev/sda ftp://admin@nas/images/
          FTP_PASSWORD=s3cret backup --manifest /dev/sda ftp://admin@nas/pc7/
          rescuebox backup -3 --mkdirs /dev/nvme0n1 ftp://admin@[fd00::5]:2121/2026/
          rescuebox backup --noerror /dev/sdb ftp://admin@nas/dying.lzo
          rescuebox backup /dev/sda /mnt/usb/sda.lzo
          rescuebox backup --used /dev/sda ftp://admin@nas/images/
          backup --tls --pin sha256//r1T0...= /dev/sda ftp://admin@nas/img/
          rescuebox restore ftp://admin@nas/images/pc7.sda.2026-11-26.lzo /dev/sda
        """
    )

    @OptionGroup var connection: FTPConnectionOptions

    @Flag(exclusivity: .chooseLast, help: "Compression level, as lzop (default -1, the fastest).")
    var level: Ddz.Level = .level1

    @OptionGroup var imaging: ImagingOptions<FTPWording>

    @Option(name: .customLong("retries"), help: "Reconnect this many times after a dropped connection.")
    var retries = 5

    @Option(name: .customLong("idle"), help: "Seconds without source data before the transfer is paused.")
    var idle: Double = 120

    @Flag(name: .customLong("manifest"), help: "Also store NAME.lzo.json (sizes, device, times, SHA-256).")
    var manifest = false

    @OptionGroup var remote: RemoteFileOptions

    @Flag(name: .customLong("used"), help: "Read only the blocks the filesystems use; free space becomes zeros, unread.")
    var used = false

    @Option(name: .customLong("used-map"),
            help: ArgumentHelp("With --used: write the ranges read as a GNU ddrescue domain file.", valueName: "file"))
    var usedMap: String?

    @Option(name: .customLong("skip"), help: ArgumentHelp("Start reading at this source offset (e.g. 1M).", valueName: "size"))
    var skip: ByteCount?

    @Option(name: .customLong("count"), help: ArgumentHelp("Read at most this many bytes (e.g. 2G).", valueName: "size"))
    var count: ByteCount?

    @Flag(name: [.customShort("f"), .customLong("force")], help: "Image a source that is mounted read-write anyway.")
    var force = false

    @Argument(parsing: .allUnrecognized,
              help: ArgumentHelp("SOURCE (a block device or file) and DEST (ftp://[USER@]HOST[:PORT]/PATH, a file, or -).",
                                 valueName: "SOURCE DEST"))
    var arguments: [String] = []

    public init() {}

    public func validate() throws {
        if retries < 0 { throw ValidationError("--retries must be 0 or more") }
        if usedMap != nil && !used { throw ValidationError("--used-map needs --used") }
        if used && (skip != nil || count != nil) { throw ValidationError("--used reads a whole device: no --skip or --count") }
        if !(idle > 0) { throw ValidationError("--idle must be a positive number of seconds") }
    }

    public func run() throws {
        let names = try FTPConnectionOptions.names(arguments)
        guard names.count == 2 else { throw RescueError.usage("give SOURCE and DEST (got \(names.count) arguments)") }
        let source = names[0], destination = names[1]
        var options = BackupOptions(source: source)
        options.skip = skip?.bytes ?? 0
        options.count = count?.bytes
        options.force = force
        options.compression = LzopCompressionOptions(level: level.rawValue)
        options.threads = imaging.workerThreads
        options.requestSize = imaging.requestSize
        options.direct = imaging.direct
        options.noError = imaging.noError
        options.retries = retries
        options.idleLimit = idle
        options.manifest = manifest
        options.progress = imaging.report.progress
        options.toolVersion = rescueboxVersion
        options.used = used
        options.usedMap = usedMap
        let now = Int(time(nil))
        if FTPURL.looksLikeURL(destination) {
            var url = try connection.target(destination, path: nil)
            connection.protectPassword(urlPassword: url.password)
            if url.path.isEmpty || url.path.hasSuffix("/") {
                url.path += DeviceInfo.defaultImageName(source: source, now: now)
            }
            try SafeUpload.validate(remotePath: url.path)
            let credentials = try connection.credentials(for: url)
            options.upload = UploadTarget(server: try connection.server(url, credentials), remotePath: url.path,
                                          options: remote.uploadOptions)
        } else if destination != "-" {
            options.localOutput = destination.hasSuffix("/")
                ? destination + DeviceInfo.defaultImageName(source: source, now: now) : destination
        }
        let result = try BackupJob(options: options).run()
        var line = summaryLine(bytes: result.inputBytes, seconds: result.seconds, verb: "read")
        line += "; \(result.outputBytes) bytes (\(formatBytes(result.outputBytes))) sent, "
            + formatRate(bytes: result.outputBytes, seconds: result.seconds) + " on the wire, ratio "
            + formatRatio(input: result.inputBytes, output: result.outputBytes)
        if result.reconnects > 0 { line += ", \(result.reconnects) reconnects" }
        if let outcome = result.upload, let remote = options.upload?.remotePath { line += uploadNotes(outcome, remote: remote) }
        printStderr(line)
        if let used = result.usedSummary { printStderr(used) }
        let where_ = options.upload?.displayName ?? options.localOutput ?? "stdout"
        printVerbose("stored \(where_)" + (result.sha256.map { "; SHA-256 \($0)" } ?? ""))
        if result.badBytes > 0 {
            printError("\(source): \(result.badBytes) unreadable bytes written as zeros")
            throw AppletExit(ExitCode.failure)
        }
    }
}
