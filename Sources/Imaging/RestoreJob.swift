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
    /// The server and the image's path on it, when restoring from FTP.
    public var server: FTPServerConfig?
    public var remotePath = ""
    public var retries = 5
    /// First wait before a reconnect; doubles each time, at most 60 s.
    public var retryDelay = 2.0
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
    public var reconnects: Int
}

/// `rescuebox restore`: FTP download (or a local file) -> lzop decoder ->
/// ImageWriter (O_DIRECT on a device, holes in a file), in one pass. Every
/// block is verified (checksums) before it is written.
public final class RestoreJob {
    public let options: RestoreOptions

    public init(options: RestoreOptions) { self.options = options }

    public func run() throws -> RestoreResult {
        // Everything that can refuse the target is checked before any
        // transfer starts: mounted, too small, an existing file without -f.
        try refuseUnsafeTarget()
        var remote: ResumingDownload?
        let source: ByteSource
        let sourceName: String
        var compressedSize: UInt64?
        var imageSize: UInt64?
        if let server = options.server {
            let r = ResumingDownload(server: server, remotePath: options.remotePath, retries: options.retries,
                                     retryDelay: options.retryDelay)
            remote = r
            imageSize = manifestSourceSize(ftp: try r.session(), path: options.remotePath + ".json")
            source = r
            sourceName = r.displayName
        } else {
            let path = options.localSource ?? "-"
            if path == "-" && isTerminal(0) { throw RescueError.usage("no input: name a .lzo file or ftp:// URL") }
            let file = path == "-" ? OpenFile.standardInput : try OpenFile.open(path)
            compressedSize = try file.size()
            imageSize = (try? readSmallFile(path + ".json")).flatMap(Manifest.sourceSize(inJSON:))
            source = file
            sourceName = path == "-" ? "stdin" : path
        }
        if let imageSize { try refuseTooSmall(imageSize: imageSize) }
        let writer: ImageWriter
        do {
            writer = try ImageWriter.open(options.target, sparse: options.sparse, force: options.force)
        } catch {
            remote?.close()
            throw error
        }

        let clock = Stopwatch()
        var meter: ProgressMeter?
        do {
            if let remote {
                try remote.start()
                compressedSize = remote.expectedSize
            }
            let m = ProgressMeter(label: "restore", total: compressedSize, forced: options.progress)
            m.expanding = true
            meter = m
            let decoder = LzopDecoder(threads: options.threads)
            let stats = try decoder.decode(from: source, to: writer) { bytesIn, _ in
                m.update(processed: bytesIn, written: writer.position)
            }
            try writer.finish()
            m.finish()
            remote?.close()
            return RestoreResult(compressedBytes: stats.bytesIn, imageBytes: stats.bytesOut, seconds: clock.elapsed,
                                 reconnects: remote?.reconnects ?? 0)
        } catch let error as LzopFormatError {
            meter?.finish()
            writer.abandon()
            remote?.close()
            throw error.rescueError(object: sourceName)
        } catch {
            meter?.finish()
            writer.abandon()
            remote?.close()
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
        guard let size = (try? client.remoteSize(path))?.value, size < 65536,
              let stream = try? client.openRetrieve(path) else { return nil }
        var bytes = [UInt8](repeating: 0, count: Int(size))
        let n = (try? bytes.withUnsafeMutableBytes { try stream.read(into: $0) }) ?? 0
        _ = try? stream.finish()
        return Manifest.sourceSize(inJSON: String(decoding: bytes[0..<n], as: UTF8.self))
    }
}
