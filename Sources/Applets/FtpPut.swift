import ArgumentParser
import FTP
import RescueCore
#if canImport(Glibc)
import Glibc
#endif

public struct FtpPut: ParsableCommand, NormalizesArguments, VerboseApplet {
    public var isVerbose: Bool { report.verbose }

    public static func normalize(_ arguments: [String]) -> [String] { FTPConnectionOptions.splitGluedValues(arguments) }

    public static let configuration = CommandConfiguration(
        commandName: "ftpput",
        abstract: "Upload a file, stdin or a command's output to an FTP server, safely.",
        usage: """
        ftpput [OPTIONS] HOST[:PORT] REMOTE [LOCAL | - | '|COMMAND']
          ftpput [OPTIONS] ftp://[USER@]HOST[:PORT]/PATH [LOCAL | - | '|COMMAND']
        """,
        discussion: """
        LOCAL is a file or device; '-' or nothing reads stdin; '|COMMAND' runs \
        COMMAND with /bin/sh and uploads its output (the command failing fails \
        the upload). The order HOST REMOTE LOCAL is busybox ftpput's. With no \
        LOCAL and stdin on a terminal ftpput refuses (busybox would upload a \
        file named REMOTE: give it twice).

        Safety: the bytes go to REMOTE.part; after the server's 226 ftpput asks \
        SIZE, compares it with the bytes sent, and only then renames to REMOTE. \
        On any failure it exits non-zero saying what happened and how many \
        bytes the server confirmed, and deletes the partial file (also on \
        Ctrl-C) unless --keep-partial or -c. CR, LF or NUL in any name, user or \
        password is refused before anything is sent.

        Credentials: URL user or -u; password from FTP_PASSWORD, ~/.netrc (or \
        --netrc-file; refused unless mode 600), else asked on the terminal. \
        -p works but is wiped from the process's arguments at once. No user \
        means anonymous. Data connections use EPSV, then PASV, always to the \
        control connection's address.

        EXAMPLES:
          ftpput backup.lan images/sda.img.lzo /var/tmp/sda.img.lzo
          FTP_PASSWORD=s3cret ftpput -u admin nas:2121 "dir/my file.bin" file.bin
          ftpput ftp://admin@nas/images/sda.lzo '|ddz /dev/sda'
          ddz /dev/sda | ftpput --mkdirs --progress ftp://admin@nas/2026/sda.lzo
          ftpput -c ftp://admin@nas/images/big.iso big.iso      # resume
          ftpput --timeout 20 -v ftp://[::1]:2121/x.bin x.bin
          ftpput --tls --cacert nas-ca.pem ftp://admin@nas/images/sda.lzo sda.lzo
        """
    )

    @OptionGroup public var connection: FTPConnectionOptions

    @OptionGroup var report: ReportOptions<FTPWording>

    @Flag(name: [.customShort("c"), .customLong("continue")],
          help: "Resume an interrupted upload of the same file or device (SIZE, then REST+STOR or APPE).")
    var resume = false

    @OptionGroup var remote: RemoteFileOptions

    @Argument(parsing: .allUnrecognized, help: ArgumentHelp("HOST[:PORT] REMOTE [LOCAL], or URL [LOCAL].", valueName: "ARGS"))
    var arguments: [String] = []

    public init() {}

    public func run() throws {
        // Everything is checked before anything is sent.
        var (url, local) = try connection.transferArguments(arguments, usage: "ftpput HOST REMOTE [LOCAL]",
                                                            remoteIndex: 0)
        if url.path.isEmpty || url.path.hasSuffix("/") {
            guard let local, local != "-", !local.hasPrefix("|") else {
                throw RescueError.usage("the URL names no remote file (end it with a file name)")
            }
            url.path += baseName(local)
        }
        if local == nil || local == "-", isTerminal(0) {
            throw RescueError.usage("no LOCAL file given and stdin is a terminal (to upload a file of the same name, give it twice: ftpput HOST NAME NAME)")
        }
        var options = remote.uploadOptions
        options.keepPartial = options.keepPartial || resume  // a failed -c run keeps its partial file for the next one
        options.resume = resume
        try SafeUpload.validate(remotePath: url.path, options: options)
        if let local { try checkSafeForControl(local, what: "local name") }
        let credentials = try connection.credentials(for: url)

        let source = try UploadSource.open(local)
        if resume && !source.isSeekable {
            source.cancel()
            throw RescueError.usage("-c needs a file or device to resume from, not \(source.name)")
        }
        let client: FTPClient
        do {
            client = try connection.session(url, credentials)
        } catch {
            source.cancel()
            throw error
        }
        let upload = SafeUpload(client: client, remotePath: url.path, options: options)
        let meter = ProgressMeter(label: "ftpput", total: source.size, forced: report.progress)
        let clock = Stopwatch()
        var outcome: UploadOutcome
        do {
            var offset = try upload.resumeOffset(sourceSize: source.size)
            if offset > 0 {
                try source.file.seek(to: offset)
                printError("resuming \(upload.displayName) at byte \(offset)")
            }
            do {
                try upload.start(at: offset)
            } catch let error as RescueError where error.kind == .resumeRefused {
                printError("\(upload.displayName): \(error.reason); uploading it again from the start")
                offset = 0
                try source.file.seek(to: 0)
                try upload.start(at: 0)
            }
            try upload.send(from: source) { meter.update(processed: offset + $0) }
            try source.finish()
            outcome = try upload.commit()
        } catch {
            source.cancel()
            meter.finish()
            let failure = upload.fail(error)
            client.quit()
            throw failure
        }
        meter.finish()
        client.quit()
        let sent = upload.bytesSent
        printStderr(summaryLine(bytes: sent, seconds: clock.elapsed, verb: "uploaded")
                    + (upload.startOffset > 0 ? " (resumed at \(upload.startOffset))" : "")
                    + uploadNotes(outcome, remote: url.path))
        if sent == 0 && upload.startOffset == 0 { printError("warning: \(source.name) was empty: stored an empty \(url.path)") }
    }
}
