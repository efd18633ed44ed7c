#if canImport(Glibc)
import Glibc
#endif
import FTP
import LZOP
import RescueCore

/// Everything `rescuebox restore` was asked to do.
public struct RestoreOptions {
    /// A local .lzo file, or nil when `download` is set.
    public var localSource: String?
    public var download: UploadTarget?
    public var target: String
    public var threads = WorkerThread.onlineProcessors
    public var sparse = true
    public var force = false
    public var progress = false

    public init(target: String) { self.target = target }
}

public struct RestoreResult {
    public var compressedBytes: UInt64
    public var imageBytes: UInt64
    public var seconds: Double
}

/// `rescuebox restore`: FTP download (or a local file) -> lzop decoder ->
/// ImageWriter (O_DIRECT on a device, holes in a file), in one pass. Every
/// block is verified (checksums) before it is written.
public final class RestoreJob {
    public let options: RestoreOptions

    public init(options: RestoreOptions) { self.options = options }

    public func run() throws -> RestoreResult {
        let target = options.target
        try refuseUnsafeTarget()

        var client: FTPClient?
        var download: SafeDownload?
        let source: ByteSource
        let sourceName: String
        var compressedSize: UInt64?
        var imageSize: UInt64?
        if let remote = options.download {
            let c = FTPClient(timeouts: remote.timeouts)
            c.trace = remote.trace
            c.tls = remote.tls
            try c.connect(host: remote.host, port: remote.port)
            try c.login(user: remote.credentials.user, password: remote.credentials.password)
            try c.setBinary()
            client = c
            imageSize = manifestSourceSize(ftp: c, path: remote.remotePath + ".json")
            let d = SafeDownload(client: c, remotePath: remote.remotePath)
            try d.start()
            compressedSize = d.expectedSize
            download = d
            source = d
            sourceName = remote.displayName
        } else {
            let path = options.localSource ?? "-"
            let file = path == "-" ? OpenFile.standardInput : try OpenFile.open(path)
            if path == "-" && isTerminal(0) { throw RescueError.usage("no input: name a .lzo file or ftp:// URL") }
            compressedSize = try file.size()
            imageSize = (try? readSmallFile(path + ".json")).flatMap(Manifest.sourceSize(inJSON:))
            source = file
            sourceName = path == "-" ? "stdin" : path
        }
        defer { client?.quit() }

        if let imageSize { try refuseTooSmall(imageSize: imageSize) }

        let writer = try ImageWriter.open(target, sparse: options.sparse, force: true)
        let meter = ProgressMeter(label: "restore", total: compressedSize, forced: options.progress)
        let clock = Stopwatch()
        let decoder = LzopDecoder(threads: options.threads)
        do {
            let stats = try decoder.decode(from: source, to: writer) { bytesIn, _ in
                meter.update(processed: bytesIn, written: writer.position)
            }
            if let download { try download.finish() }
            try writer.finish()
            meter.finish()
            return RestoreResult(compressedBytes: stats.bytesIn, imageBytes: stats.bytesOut, seconds: clock.elapsed)
        } catch let error as LzopFormatError {
            meter.finish()
            writer.abandon()
            if let download { _ = download.fail(error) }
            throw error.rescueError(object: sourceName)
        } catch {
            meter.finish()
            writer.abandon()
            if let download { throw download.fail(error) }
            throw error
        }
    }

    /// A mounted device, or one a mounted partition lives on, is never
    /// overwritten (the kernel's O_EXCL catches most; this names the mount).
    private func refuseUnsafeTarget() throws {
        let mounts = MountTable.mountsUsing(device: options.target)
        if let mount = mounts.first {
            let why = "\(mount.source) is mounted on \(mount.mountPoint); unmount it first"
            if !options.force { throw RescueError(options.target, "restore", why) }
            printError("warning: \(why) (--force given)")
        }
    }

    /// A target smaller than the image (size known from the manifest) would
    /// end in ENOSPC after writing most of the disk.
    private func refuseTooSmall(imageSize: UInt64) throws {
        var st = stat()
        guard stat(options.target, &st) == 0, (st.st_mode & S_IFMT) == S_IFBLK,
              let size = try? OpenFile.open(options.target).size() else { return }
        if size < imageSize {
            let why = "the device has \(size) bytes, the image \(imageSize) (from its manifest)"
            if !options.force { throw RescueError(options.target, "restore", why + "; use --force to write what fits") }
            printError("warning: \(why) (--force given)")
        }
    }

    private func manifestSourceSize(ftp client: FTPClient, path: String) -> UInt64? {
        guard let size = try? client.size(path), size < 65536,
              let stream = try? client.openRetrieve(path) else { return nil }
        var bytes = [UInt8](repeating: 0, count: Int(size))
        let n = (try? bytes.withUnsafeMutableBytes { try stream.read(into: $0) }) ?? 0
        _ = try? stream.finish()
        return Manifest.sourceSize(inJSON: String(decoding: bytes[0..<n], as: UTF8.self))
    }
}
