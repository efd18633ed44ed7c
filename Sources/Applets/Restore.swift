import ArgumentParser
import FTP
import Imaging
import RescueCore

public struct Restore: ParsableCommand, NormalizesArguments, VerboseApplet {
    public var isVerbose: Bool { report.verbose }

    public static func normalize(_ arguments: [String]) -> [String] { FTPConnectionOptions.splitGluedValues(arguments) }

    public static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Write an image from an FTP server or file back to a disk.",
        discussion: """
        Downloads (or reads) an lzop image, verifies every block's checksum and \
        writes it to TARGET in one pass: a block device with O_DIRECT, or a \
        file with holes for zero blocks. Replaces \
        `curl ftp://… | lzop -dc | dd of=DEV oflag=direct`.
        SOURCE is ftp://[USER@]HOST[:PORT]/PATH.lzo, a local .lzo file, or - for \
        stdin. TARGET is a block device or a file.
        Refused unless --force: a TARGET that is mounted (or holds a mounted \
        partition), and a device smaller than the image when the image's \
        manifest (SOURCE.json, written by backup --manifest) gives its size. \
        The kernel refuses a device in use whatever --force says.
        The download's length is checked against SIZE; a short or corrupt \
        image ends with an error naming the byte offset, and a file TARGET \
        that restore created is removed again.
        A dropped connection is resumed: restore reconnects (--retries, waits \
        doubling from 2 s) and continues at the exact byte with REST, so the \
        result is byte-exact; a reconnect that brings no new byte gives up.
        An existing TARGET file is not overwritten without -f; a failed \
        restore removes only a file it created.
        Exit status: 0 done; 1 failed (one line naming the object, the \
        operation and the reason); 2 bad usage; 130 on Ctrl-C (143 SIGTERM, \
        129 SIGHUP).
        EXAMPLES:
          rescuebox restore ftp://admin@nas/images/pc7.sda.2026-11-26.lzo /dev/sda
          rescuebox restore /mnt/usb/sda.lzo /dev/sdb
          rescuebox restore ftp://admin@nas/images/sda.lzo /var/tmp/sda.img
        """
    )

    @OptionGroup var connection: FTPConnectionOptions

    @OptionGroup var report: ReportOptions<FTPWording>

    @Option(name: [.customShort("T"), .customLong("threads")], help: "Decompressor threads (default: online CPUs).")
    var threads: Int?

    @Flag(name: .customLong("no-sparse"), help: "Into a file: write zero blocks instead of making holes.")
    var noSparse = false

    @Flag(name: [.customShort("f"), .customLong("force")],
          help: "Overwrite an existing file; write to a mounted or too-small device anyway.")
    var force = false

    @Option(name: .customLong("retries"), help: "Reconnect this many times after a dropped connection (default 5).")
    var retries = 5

    @Argument(parsing: .allUnrecognized,
              help: ArgumentHelp("SOURCE (ftp://[USER@]HOST[:PORT]/PATH.lzo, a .lzo file, or -) and TARGET (a device or file).",
                                 valueName: "SOURCE TARGET"))
    var arguments: [String] = []

    public init() {}

    public func validate() throws { try validateThreads(threads) }

    public func run() throws {
        let names = try FTPConnectionOptions.names(arguments)
        guard names.count == 2 else { throw RescueError.usage("give SOURCE and TARGET (got \(names.count) arguments)") }
        let source = names[0], target = names[1]
        if retries < 0 { throw RescueError.usage("--retries must be 0 or more") }
        var options = RestoreOptions(target: target)
        options.threads = threads ?? WorkerThread.onlineProcessors
        options.sparse = !noSparse
        options.force = force
        options.progress = report.progress
        if FTPURL.looksLikeURL(source) {
            let url = try connection.target(source, path: nil)
            connection.protectPassword(urlPassword: url.password)
            guard !url.path.isEmpty, !url.path.hasSuffix("/") else { throw RescueError.usage("the URL names no image file") }
            let credentials = try connection.credentials(for: url)
            options.server = try connection.server(url, credentials)
            options.remotePath = url.path
            options.retries = retries
        } else {
            options.localSource = source
        }
        let result = try RestoreJob(options: options).run()
        printStderr(summaryLine(bytes: result.imageBytes, seconds: result.seconds, verb: "restored")
                    + " from \(result.compressedBytes) compressed bytes ("
                    + formatRate(bytes: result.compressedBytes, seconds: result.seconds) + " on the wire)"
                    + (result.reconnects > 0 ? ", \(result.reconnects) reconnects" : ""))
    }
}
