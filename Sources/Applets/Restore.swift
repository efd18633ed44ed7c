import ArgumentParser
import FTP
import Imaging
import RescueCore

public struct Restore: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Write an image from an FTP server or file back to a disk.",
        discussion: """
        Downloads (or reads) an lzop image, verifies every block's checksum and \
        writes it to TARGET in one pass: a block device with O_DIRECT, or a \
        file with holes for zero blocks. Replaces \
        `curl ftp://… | lzop -dc | dd of=DEV oflag=direct`.
        SOURCE is ftp://[USER@]HOST[:PORT]/PATH.lzo, a local .lzo file, or - for \
        stdin. TARGET is a block device or a file (an existing file is \
        overwritten).
        Refused unless --force: a TARGET that is mounted (or holds a mounted \
        partition), and a device smaller than the image when the image's \
        manifest (SOURCE.json, written by backup --manifest) gives its size. \
        The kernel refuses a device in use whatever --force says.
        The download's length is checked against SIZE; a short or corrupt \
        image ends with an error naming the byte offset, and a file TARGET \
        that restore created is removed again.
        EXAMPLES:
          rescuebox restore ftp://admin@nas/images/pc7.sda.2026-11-26.lzo /dev/sda
          rescuebox restore /mnt/usb/sda.lzo /dev/sdb
          rescuebox restore ftp://admin@nas/images/sda.lzo /var/tmp/sda.img
          rescuebox restore --tls ftp://admin@nas/images/sda.lzo /dev/sda
        """
    )

    @OptionGroup var connection: FTPConnectionOptions

    @Option(name: [.customShort("T"), .customLong("threads")], help: "Decompressor threads (default: online CPUs).")
    var threads: Int?

    @Flag(name: .customLong("no-sparse"), help: "Into a file: write zero blocks instead of making holes.")
    var noSparse = false

    @Flag(name: [.customShort("f"), .customLong("force")], help: "Write to a mounted or too-small target anyway.")
    var force = false

    @Argument(help: "ftp://[USER@]HOST[:PORT]/PATH.lzo, a local .lzo file, or -.")
    var source: String

    @Argument(help: "The block device or file to write.")
    var target: String

    public init() {}

    public func run() throws {
        Program.verbose = connection.verbose
        if let threads, !(1...1024).contains(threads) { throw RescueError.usage("--threads must be between 1 and 1024") }
        var options = RestoreOptions(target: target)
        options.threads = threads ?? WorkerThread.onlineProcessors
        options.sparse = !noSparse
        options.force = force
        options.progress = connection.progress
        if FTPURL.looksLikeURL(source) {
            let url = try connection.target(source, path: nil)
            connection.protectPassword(urlPassword: url.password)
            guard !url.path.isEmpty, !url.path.hasSuffix("/") else { throw RescueError.usage("the URL names no image file") }
            let credentials = try connection.credentials(for: url)
            var remote = UploadTarget(host: url.host, port: url.port, credentials: credentials, remotePath: url.path,
                                      timeouts: try connection.timeouts(), mkdirs: false, inPlace: true)
            if connection.verbose { remote.trace = { printError($0) } }
            remote.tls = try connection.tlsOptions(for: url)
            options.download = remote
        } else {
            options.localSource = source
        }
        let result = try RestoreJob(options: options).run()
        printStderr(summaryLine(bytes: result.imageBytes, seconds: result.seconds, verb: "restored")
                    + " from \(result.compressedBytes) compressed bytes ("
                    + formatRate(bytes: result.compressedBytes, seconds: result.seconds) + " on the wire)")
    }
}
