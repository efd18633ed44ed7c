#if canImport(Glibc)
import Glibc
#endif
import RescueCore
import SystemPackage

/// Choices for `FileDownload` (ftpget).
public struct FileDownloadOptions {
    /// Continue LOCAL.part (or LOCAL itself, as busybox -c does) with REST.
    public var resume = false
    /// Keep LOCAL.part when the download fails (always with `resume`).
    public var keepPartial = false
    /// Show progress even when stderr is not a terminal.
    public var progress = false

    public init() {}
}

public struct FileDownloadResult {
    /// Bytes received in this run.
    public var bytesReceived: UInt64
    /// Where the run started (bytes LOCAL.part had already).
    public var resumedAt: UInt64
    public var seconds: Double
}

/// ftpget's job: one `SafeDownload` into LOCAL.part, renamed to LOCAL only
/// when complete (or straight into stdout for "-"), zero-copy where the
/// kernel allows it. On failure LOCAL.part is removed unless kept; the
/// session ends with ABOR before QUIT.
public final class FileDownload {
    public let server: FTPServerConfig
    public let remotePath: String
    /// A file path, or "-" for stdout.
    public let local: String
    public let options: FileDownloadOptions

    public init(server: FTPServerConfig, remotePath: String, local: String, options: FileDownloadOptions) {
        self.server = server
        self.remotePath = remotePath
        self.local = local
        self.options = options
    }

    private var toStdout: Bool { local == "-" }
    private var partPath: String { local + ".part" }
    private var keep: Bool { options.keepPartial || options.resume }

    public func run() throws -> FileDownloadResult {
        if options.resume && toStdout { throw RescueError.usage("-c cannot resume into stdout") }
        var offset: UInt64 = 0
        let output = try openOutput(offset: &offset)
        let partPath = self.partPath
        let cleanupToken: Int? = toStdout || keep ? nil : Cleanup.register { unlink(partPath) }
        defer { if let cleanupToken { Cleanup.unregister(cleanupToken) } }

        let client: FTPClient
        do {
            client = try FTPClient.openSession(server)
        } catch {
            abandon(output)
            throw error
        }
        let download = SafeDownload(client: client, remotePath: remotePath)
        let clock = Stopwatch()
        var meter: ProgressMeter?
        do {
            try download.start(at: offset)
            if offset > 0 { printError("resuming \(download.displayName) at byte \(offset)") }
            meter = ProgressMeter(label: "ftpget", total: download.expectedSize, forced: options.progress)
            try copy(download, to: output, offset: offset, meter: meter)
            try download.finish()
            if !toStdout {
                try output.close()
                if rename(partPath, local) != 0 { throw RescueError(partPath, "rename to \(local)", errno: lastErrno()) }
            }
        } catch {
            meter?.finish()
            let failure = download.fail(error)
            client.quit()
            abandon(output)
            throw failure
        }
        meter?.finish()
        client.quit()
        return FileDownloadResult(bytesReceived: download.bytesReceived, resumedAt: offset, seconds: clock.elapsed)
    }

    /// LOCAL.part (continued with `resume`, else truncated), or stdout.
    private func openOutput(offset: inout UInt64) throws -> OpenFile {
        if toStdout { return OpenFile.standardOutput }
        if options.resume, access(partPath, F_OK) != 0, access(local, F_OK) == 0 {
            // busybox -c continues LOCAL itself: adopt it as the partial file.
            if rename(local, partPath) != 0 { throw RescueError(local, "rename to \(partPath)", errno: lastErrno()) }
        }
        let openOptions: FileDescriptor.OpenOptions = options.resume ? [.create] : [.create, .truncate]
        let output = try OpenFile.open(partPath, .writeOnly, options: openOptions,
                                       permissions: [.ownerReadWrite, .groupRead, .otherRead])
        if options.resume {
            offset = try output.size() ?? 0
            try output.seek(to: offset)
        }
        return output
    }

    /// Zero-copy (splice) into a file or a pipe when the kernel allows it,
    /// else 1 MiB reads and writes.
    private func copy(_ download: SafeDownload, to output: OpenFile, offset: UInt64, meter: ProgressMeter?) throws {
        let kind = try output.kind()
        if kind == .regular || kind == .pipe {
            do {
                try download.splice(to: output.fd, isPipe: kind == .pipe, output: output.path) {
                    meter?.update(processed: offset + $0)
                }
            } catch let error as RescueError where error.kind == .zeroCopyUnsupported && download.bytesReceived == 0 {
                printVerbose("splice refused (\(error.reason)); copying through a buffer")
            }
        }
        let buffer = AlignedBuffer(capacity: 1 << 20)
        var total = offset + download.bytesReceived
        while true {
            let n = try download.read(into: buffer.bytes)
            if n == 0 { break }
            try output.writeAll(UnsafeRawBufferPointer(rebasing: buffer.bytes[0..<n]))
            total += UInt64(n)
            meter?.update(processed: total)
        }
    }

    /// After a failure: LOCAL.part is kept for -c / --keep-partial, else removed.
    private func abandon(_ output: OpenFile) {
        guard !toStdout else { return }
        try? output.close()
        if keep {
            printError("kept the partial download \(partPath) (resume with -c)")
        } else {
            unlink(partPath)
        }
    }
}
