// `rescuebox mount`: an lzop image (local, or on an FTP server) as a
// read-only FUSE directory: disk.img (the whole uncompressed disk) and,
// when it holds an MBR or GPT, p1.img, p2.img... windows onto each
// partition.
import CFuse
import DiskLayout
import FTP
import LZOP
import RescueCore

#if canImport(Glibc)
import Glibc
#endif

/// Where the image is.
public enum MountSource {
    case local(path: String)
    /// `connect` opens one logged-in binary session; `label` names the
    /// file in messages (`host:port/path`).
    case ftp(path: String, label: String, connect: () throws -> FTPClient)
}

public struct MountOptions {
    public var image = SeekableImageOptions()
    public var foreground = false
    /// Without an index over FTP: stream the image once to build one.
    public var scan = false
    /// Parallel FTP sessions.
    public var sessions = 4
    /// Serve the files through the kernel's page cache (shared mmap works,
    /// repeated small reads are answered by the kernel) instead of direct
    /// I/O, where every read comes to the block cache and a sequential
    /// reader streams without the page cache's second copy.
    public var pageCache = false
    public init() {}
}

/// One file in the mounted directory: a window onto the image.
public struct MountedFile: Equatable {
    public var name: String
    public var start: UInt64
    public var length: UInt64
}

/// The files for an image: disk.img, then pN.img per partition (partitions
/// reaching past the image's end are cut at the end).
public func mountedFiles(imageSize: UInt64, table: PartitionTable?) -> [MountedFile] {
    var files = [MountedFile(name: "disk.img", start: 0, length: imageSize)]
    guard let table, table.scheme != .none else { return files }
    for p in table.partitions where p.start < imageSize && p.length > 0 {
        files.append(MountedFile(name: "p\(p.number).img", start: p.start, length: min(p.length, imageSize - p.start)))
    }
    return files
}

/// The image as DiskLayout's ByteRangeReader (the partition-table reader).
struct ImageRangeReader: ByteRangeReader {
    let image: SeekableImage
    var size: UInt64 { image.size }
    func read(at offset: UInt64, count: Int) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        let n = try bytes.withUnsafeMutableBytes { try image.read(at: offset, count: count, into: $0.baseAddress!) }
        return Array(bytes.prefix(n))
    }
}

/// Opens the image and its index (errors before anything is mounted).
public func openSeekableImage(_ source: MountSource, options: MountOptions) throws -> SeekableImage {
    func indexError(_ error: Error, _ object: String) -> Error {
        if let e = error as? LzopFormatError { return e.rescueError(object: object) }
        return error
    }
    switch source {
    case .local(let path):
        let file = try OpenFile.open(path, .readOnly)
        let access = try LzopFileAccess(file)
        var index: LzopBlockIndex
        do {
            if let bytes = try? readSmallFileBytes(path + ".index", limit: 1 << 30) {
                index = try LzopBlockIndex.load(offsets: try LzopBlockIndex.parseOffsets(bytes), source: access)
            } else {
                printVerbose("\(path).index: not found; walking the block headers (ddz --index \(path) saves this)")
                index = try LzopBlockIndex.build(access)
            }
        } catch {
            throw indexError(error, path)
        }
        return SeekableImage(source: access, index: index, name: path, options: options.image)
    case .ftp(let path, let label, let connect):
        let remote = try FTPRangeSource(path: path, name: label, sessions: options.sessions, connect: connect)
        remote.onRetry = { error in
            printError("\(label): \(error); reconnecting and retrying the read")
        }
        var index: LzopBlockIndex
        do {
            if let bytes = try remote.fetchSmallFile(path + ".index") {
                index = try LzopBlockIndex.load(offsets: try LzopBlockIndex.parseOffsets(bytes), source: remote)
            } else if options.scan {
                printError("\(label).index: not on the server; reading the whole image once to build the index (--scan)")
                let indexer = LzopStreamIndexer()
                try remote.streamAll { try indexer.consume($0) }
                index = try indexer.finish()
            } else {
                throw RescueError(label + ".index", "SIZE",
                    "no index beside the image on the server: add --scan to read the whole image once and build it "
                    + "(or upload one made with 'ddz --index' next to the image)")
            }
        } catch {
            throw indexError(error, label)
        }
        return SeekableImage(source: remote, index: index, name: label, options: options.image)
    }
}

// The FUSE callback reaches the image through these (one mount per process).
nonisolated(unsafe) private var servedImage: SeekableImage?
nonisolated(unsafe) private var servedFiles: [MountedFile] = []
nonisolated(unsafe) private var ioErrorReported = false

private let fuseRead: rb_fuse_read_fn = { file, buffer, size, offset, _ in
    guard let image = servedImage, let buffer, Int(file) < servedFiles.count else { return -EIO }
    let window = servedFiles[Int(file)]
    guard offset < window.length else { return 0 }
    let count = Int(min(UInt64(size), window.length - offset))
    do {
        return Int32(try image.read(at: window.start + offset, count: count, into: UnsafeMutableRawPointer(buffer)))
    } catch is CorruptBlockError {
        return -EIO   // reported once per block by the image
    } catch {
        printError("\(window.name): read at \(offset): \(error)")
        return -EIO
    }
}

/// Mounts `image` on `directory` and serves it until unmounted (umount,
/// or SIGINT/SIGTERM/SIGHUP in the foreground). In the background the
/// parent process exits 0 once the mount is in place.
public func serveMount(_ image: SeekableImage, on directory: String, fsName: String, options: MountOptions) throws {
    var st = stat()
    guard stat(directory, &st) == 0 else { throw RescueError(directory, "stat", errno: errno) }
    guard st.st_mode & S_IFMT == S_IFDIR else { throw RescueError(directory, "mount", errno: ENOTDIR) }

    image.readAheadEnabled = false
    var table: PartitionTable?
    do {
        table = try readPartitionTable(ImageRangeReader(image: image))
    } catch {
        printError("\(image.name): partition table: \(error); only disk.img is served")
    }
    let files = mountedFiles(imageSize: image.size, table: table)
    image.onCorruptBlock = { printError($0) }
    servedImage = image
    servedFiles = files
    let cFiles = UnsafeMutablePointer<rb_fuse_file>.allocate(capacity: files.count)
    for (i, f) in files.enumerated() { cFiles[i] = rb_fuse_file(name: strdup(f.name), size: f.length) }
    var reason: UnsafePointer<CChar>?
    guard rb_fuse_mount(directory, fsName, cFiles, Int32(files.count), options.pageCache ? 0 : 1, fuseRead, nil, &reason) == 0 else {
        throw RescueError(directory, "mount", reason.map { String(cString: $0) } ?? "failed")
    }
    printVerbose("\(directory): " + files.map { "\($0.name) (\($0.length) bytes)" }.joined(separator: ", "))
    if !options.foreground {
        guard rb_fuse_daemonize() == 0 else { throw RescueError(directory, "fork", errno: errno) }
    }
    image.readAheadEnabled = true
    // In the foreground the applet's signal thread takes Ctrl-C: unmount
    // there, then it exits 128+N as every applet does.
    let interrupted = Monitor()
    var signalled = false
    let token = options.foreground ? Cleanup.register {
        interrupted.locked { signalled = true }
        rb_fuse_unmount_now()
    } : nil
    let r = rb_fuse_serve()
    if let token { Cleanup.unregister(token) }
    if interrupted.locked({ signalled }) {
        // The signal thread exits 128+N once its cleanup is done.
        while true { pause() }
    }
    image.stop()
    if r < 0 { throw RescueError(directory, "serve", errno: -r) }
}
