import ArgumentParser
import FTP
import RescueCore
#if canImport(Glibc)
import Glibc
#endif

public struct FtpGet: ParsableCommand, NormalizesArguments, VerboseApplet {
    public var isVerbose: Bool { report.verbose }

    public static func normalize(_ arguments: [String]) -> [String] { FTPConnectionOptions.splitGluedValues(arguments) }

    public static let configuration = CommandConfiguration(
        commandName: "ftpget",
        abstract: "Download a file from an FTP server, verified and resumable.",
        usage: """
        ftpget [OPTIONS] HOST[:PORT] [LOCAL | -] REMOTE
          ftpget [OPTIONS] ftp://[USER@]HOST[:PORT]/PATH [LOCAL | -]
        """,
        discussion: """
        The HOST form keeps busybox ftpget's order: LOCAL before REMOTE. LOCAL \
        defaults to REMOTE's last component in the current directory; '-' \
        writes to stdout.

        ftpget asks SIZE first and calls a short transfer an error even when \
        the server says 226. The bytes go to LOCAL.part, renamed to LOCAL only \
        when complete; on failure LOCAL.part is deleted unless --keep-partial \
        or -c. -c continues from LOCAL.part (or from LOCAL, as busybox does) \
        with REST. Credentials, timeouts and -v work as for ftpput.

        EXAMPLES:
          ftpget backup.lan sda.img.lzo images/sda.img.lzo
          ftpget ftp://admin@nas/images/sda.lzo - | ddz -d -o /dev/sda
          ftpget -c --progress ftp://admin@nas/images/big.iso
          ftpget --pin sha256//r1T0...= ftps://admin@nas/sda.lzo - | ddz -d
          FTP_PASSWORD=s3cret ftpget -u admin nas:2121 "my file.bin" "dir/my file.bin"
        """
    )

    @OptionGroup public var connection: FTPConnectionOptions

    @OptionGroup var report: ReportOptions<FTPWording>

    @Flag(name: [.customShort("c"), .customLong("continue")], help: "Resume into LOCAL.part (or LOCAL) with REST.")
    var resume = false

    @Flag(name: .customLong("keep-partial"), help: "Keep LOCAL.part when the download fails.")
    var keepPartial = false

    @Argument(parsing: .allUnrecognized, help: ArgumentHelp("HOST[:PORT] [LOCAL] REMOTE, or URL [LOCAL].", valueName: "ARGS"))
    var arguments: [String] = []

    public init() {}

    public func run() throws {
        let (url, local) = try connection.transferArguments(arguments, usage: "ftpget HOST [LOCAL] REMOTE",
                                                            remoteIndex: -1)
        guard !url.path.isEmpty, !url.path.hasSuffix("/") else { throw RescueError.usage("no remote file named") }
        var options = FileDownloadOptions()
        options.resume = resume
        options.keepPartial = keepPartial
        options.progress = report.progress
        let server = try connection.server(url, try connection.credentials(for: url))
        let result = try FileDownload(server: server, remotePath: url.path, local: local ?? baseName(url.path),
                                      options: options).run()
        printStderr(summaryLine(bytes: result.bytesReceived, seconds: result.seconds, verb: "downloaded")
                    + (result.resumedAt > 0 ? " (resumed at \(result.resumedAt))" : ""))
    }
}
