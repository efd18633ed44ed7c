import ArgumentParser
import FTP
import RescueCore
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

public struct FtpGet: ParsableCommand, NormalizesArguments {
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
          FTP_PASSWORD=s3cret ftpget -u admin nas:2121 "my file.bin" "dir/my file.bin"
        """
    )

    @OptionGroup public var connection: FTPConnectionOptions

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
        let target = local ?? baseName(url.path)
        let toStdout = target == "-"
        if resume && toStdout { throw RescueError.usage("-c cannot resume into stdout") }
        let credentials = try connection.credentials(for: url)

        let partPath = target + ".part"
        var offset: UInt64 = 0
        var output: OpenFile
        if toStdout {
            output = OpenFile.standardOutput
        } else {
            if resume, access(partPath, F_OK) != 0, access(target, F_OK) == 0 {
                // busybox -c continues LOCAL itself: adopt it as the partial file.
                if Glibc.rename(target, partPath) != 0 { throw RescueError(target, "rename to \(partPath)", errno: lastErrno()) }
            }
            let options: FileDescriptor.OpenOptions = resume ? [.create] : [.create, .truncate]
            output = try OpenFile.open(partPath, .writeOnly, options: options, permissions: [.ownerReadWrite, .groupRead, .otherRead])
            if resume {
                offset = try output.size() ?? 0
                try output.seek(to: offset)
            }
        }
        let keep = keepPartial || resume
        let cleanupToken: Int? = toStdout || keep ? nil : Cleanup.register { unlink(partPath) }

        let client: FTPClient
        do {
            client = try connection.session(url, credentials)
        } catch {
            if !toStdout && !keep { unlink(partPath) }
            if let cleanupToken { Cleanup.unregister(cleanupToken) }
            throw error
        }
        let download = SafeDownload(client: client, remotePath: url.path)
        let clock = Stopwatch()
        var meter: ProgressMeter?
        do {
            try download.start(at: offset)
            if offset > 0 { printError("resuming \(download.displayName) at byte \(offset)") }
            meter = ProgressMeter(label: "ftpget", total: download.expectedSize, forced: connection.progress)
            let buffer = AlignedBuffer(capacity: 1 << 20)
            var total = offset
            // Zero-copy into a file or a pipe when the kernel allows it.
            let kind = try output.kind()
            if kind == .regular || kind == .pipe {
                do {
                    total += try download.splice(to: output.fd, isPipe: kind == .pipe, output: output.path) {
                        meter?.update(processed: offset + $0)
                    }
                } catch let error as RescueError where error.kind == .zeroCopyUnsupported && download.bytesReceived == 0 {
                    printVerbose("splice refused (\(error.reason)); copying through a buffer")
                }
            }
            while true {
                let n = try download.read(into: buffer.bytes)
                if n == 0 { break }
                try output.writeAll(UnsafeRawBufferPointer(rebasing: buffer.bytes[0..<n]))
                total += UInt64(n)
                meter?.update(processed: total)
            }
            try download.finish()
            if !toStdout {
                try output.close()
                if Glibc.rename(partPath, target) != 0 { throw RescueError(partPath, "rename to \(target)", errno: lastErrno()) }
            }
        } catch {
            meter?.finish()
            let failure = download.fail(error)
            client.quit()
            if !toStdout {
                try? output.close()
                if keep {
                    printError("kept the partial download \(partPath) (resume with -c)")
                } else {
                    unlink(partPath)
                }
            }
            if let cleanupToken { Cleanup.unregister(cleanupToken) }
            throw failure
        }
        if let cleanupToken { Cleanup.unregister(cleanupToken) }
        meter?.finish()
        client.quit()
        printStderr(summaryLine(bytes: download.bytesReceived, seconds: clock.elapsed, verb: "downloaded")
                    + (offset > 0 ? " (resumed at \(offset))" : ""))
    }
}
