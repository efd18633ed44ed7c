#if canImport(Glibc)
import Glibc
#endif
import SystemPackage

/// A sink that can take a run of zero bytes without being handed them, so it
/// can leave a hole instead of writing (ImageWriter on a regular file).
public protocol ZeroRunSink: ByteSink {
    func writeZeros(_ count: UInt64) throws
}

/// Writes a restored image (a decoded stream) to where the admin wants it:
///
/// - stdout (`nil` or "-"): plain sequential writes; refused on a terminal
///   unless `allowTerminal`.
/// - a regular file: created (or, with `force`, truncated); all-zero 4 KiB
///   pieces are skipped (holes) unless `sparse` is off; `finish()` sets the
///   exact length with ftruncate and fsyncs.
/// - a block device: opened with O_EXCL (the kernel refuses a mounted or
///   otherwise claimed device) and O_DIRECT where possible, written through
///   an aligned 1 MiB staging buffer; the unaligned tail falls back to
///   buffered I/O. Every byte is written (a device has no holes). fsync at
///   the end.
/// - anything else (character device, FIFO): plain writes.
///
/// On failure call `abandon()`: a file this writer created or truncated is
/// removed (also done on SIGINT/TERM/HUP through Cleanup), so no partial
/// image is left behind. Errors name the path and the byte offset.
public final class ImageWriter: ZeroRunSink {
    public enum Kind: Sendable { case standardOutput, regularFile, blockDevice, other }

    public let path: String
    public let kind: Kind
    public let sparse: Bool
    /// Bytes of image written so far (holes included): the next offset.
    public private(set) var position: UInt64 = 0

    private let file: OpenFile
    private var stage: AlignedBuffer?
    private var stageOffset: UInt64 = 0
    private var cleanupToken: Int?
    private var done = false
    private lazy var zeroChunk: AlignedBuffer = {
        let b = AlignedBuffer(capacity: 1 << 20)
        memset(b.pointer, 0, b.capacity)
        return b
    }()

    /// Hole granularity (the usual filesystem block size).
    public static let holeChunk = 4096
    static let stageSize = 1 << 20

    private init(file: OpenFile, path: String, kind: Kind, sparse: Bool, removeOnFailure: Bool) {
        self.file = file
        self.path = path
        self.kind = kind
        self.sparse = sparse && kind == .regularFile
        if kind == .blockDevice && file.isDirect { stage = AlignedBuffer(capacity: Self.stageSize) }
        if removeOnFailure {
            let p = path
            cleanupToken = Cleanup.register { _ = unlink(p) }
        }
    }

    /// Opens the destination. `target` nil or "-" is stdout.
    public static func open(_ target: String?, sparse: Bool = true, force: Bool = false,
                            direct: Bool = true, allowTerminal: Bool = false) throws -> ImageWriter {
        guard let target, target != "-" else {
            if isTerminal(1) && !allowTerminal {
                throw RescueError("stdout", "write", "refusing to write image data to a terminal (use -o FILE, a pipe, or -f)")
            }
            return ImageWriter(file: .standardOutput, path: "stdout", kind: .standardOutput, sparse: false, removeOnFailure: false)
        }
        var st = stat()
        if stat(target, &st) != 0 {
            let err = lastErrno()
            guard err == ENOENT else { throw RescueError(target, "stat", errno: err) }
            let f = try OpenFile.open(target, .writeOnly, options: [.create, .exclusiveCreate], permissions: [
                .ownerReadWrite, .groupReadWrite, .otherReadWrite,
            ])
            return ImageWriter(file: f, path: target, kind: .regularFile, sparse: sparse, removeOnFailure: true)
        }
        switch st.st_mode & S_IFMT {
        case S_IFDIR:
            throw RescueError(target, "open", "is a directory")
        case S_IFREG:
            guard force else { throw RescueError(target, "open", "file exists (use -f to overwrite it)") }
            let f = try OpenFile.open(target, .writeOnly, options: [.truncate])
            // Not created by this run: a failure leaves it, never deletes it.
            return ImageWriter(file: f, path: target, kind: .regularFile, sparse: sparse, removeOnFailure: false)
        case S_IFBLK:
            do {
                let f = try OpenFile.open(target, .writeOnly, options: [.exclusiveCreate], direct: direct)
                return ImageWriter(file: f, path: target, kind: .blockDevice, sparse: false, removeOnFailure: false)
            } catch var e as RescueError where e.errno == EBUSY {
                e.reason += " (mounted or in use; unmount it first)"
                throw e
            }
        default:
            let f = try OpenFile.open(target, .writeOnly)
            return ImageWriter(file: f, path: target, kind: .other, sparse: false, removeOnFailure: false)
        }
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard bytes.count > 0 else { return }
        if stage != nil {
            try writeStaged(bytes)
        } else if sparse {
            try writeSparse(bytes)
        } else {
            try writeAt(bytes, offset: kind == .regularFile ? position : nil)
            position += UInt64(bytes.count)
        }
    }

    public func writeZeros(_ count: UInt64) throws {
        guard count > 0 else { return }
        if sparse && stage == nil {
            position += count
            return
        }
        let chunk = zeroChunk
        var left = count
        while left > 0 {
            let n = Int(min(left, UInt64(chunk.capacity)))
            try write(UnsafeRawBufferPointer(start: chunk.pointer, count: n))
            left -= UInt64(n)
        }
    }

    /// Flushes, sets the final length (regular files), fsyncs files and
    /// devices, closes. The image is complete when this returns.
    public func finish() throws {
        guard !done else { return }
        try flushStage()
        if kind == .regularFile {
            do { try file.truncate(to: position) } catch var e as RescueError {
                e.operation = "set length to \(position)"
                throw e
            }
        }
        if kind == .regularFile || kind == .blockDevice { try file.sync() }
        if kind != .standardOutput { try file.close() }
        done = true
        if let cleanupToken { Cleanup.unregister(cleanupToken) }
        cleanupToken = nil
    }

    /// After a failure: closes and removes a file this writer created or
    /// truncated. Devices and stdout keep what was written.
    public func abandon() {
        guard !done else { return }
        done = true
        if kind != .standardOutput { try? file.close() }
        if let cleanupToken {
            Cleanup.unregister(cleanupToken)
            _ = unlink(path)
        }
        cleanupToken = nil
    }

    // MARK: - paths

    private func writeAt(_ bytes: UnsafeRawBufferPointer, offset: UInt64?) throws {
        do {
            try file.writeAll(bytes, offset: offset)
        } catch var e as RescueError {
            e.operation = "write at offset \(offset ?? position)"
            throw e
        }
    }

    /// Data runs are written with pwrite; zero runs are skipped (the file
    /// was empty, so they read back as zeros), in pieces aligned to 4 KiB of
    /// the image so whole filesystem blocks become holes.
    private func writeSparse(_ bytes: UnsafeRawBufferPointer) throws {
        let chunk = UInt64(Self.holeChunk)
        var index = 0
        var runStart = 0
        var runIsZero: Bool? = nil
        var runOffset = position
        func flush(_ end: Int) throws {
            guard let zero = runIsZero, end > runStart else { return }
            if !zero {
                try writeAt(UnsafeRawBufferPointer(rebasing: bytes[runStart..<end]), offset: runOffset)
            }
            runOffset += UInt64(end - runStart)
        }
        while index < bytes.count {
            let at = position + UInt64(index)
            let len = min(Int(chunk - at % chunk), bytes.count - index)
            let zero = isAllZero(UnsafeRawBufferPointer(rebasing: bytes[index..<index + len]))
            if zero != runIsZero {
                try flush(index)
                runStart = index
                runIsZero = zero
            }
            index += len
        }
        try flush(bytes.count)
        position += UInt64(bytes.count)
    }

    private func writeStaged(_ bytes: UnsafeRawBufferPointer) throws {
        guard let stage else { return }
        var index = 0
        while index < bytes.count {
            let n = min(stage.capacity - stage.count, bytes.count - index)
            memcpy(stage.pointer + stage.count, bytes.baseAddress! + index, n)
            stage.count += n
            index += n
            position += UInt64(n)
            if stage.count == stage.capacity { try flushStage() }
        }
    }

    private func flushStage() throws {
        guard let stage, stage.count > 0 else { return }
        if stage.count % file.sectorSize() != 0 { file.disableDirect() }
        try writeAt(stage.valid, offset: stageOffset)
        stageOffset += UInt64(stage.count)
        stage.count = 0
    }
}

/// The one rule for a compressed output file (`ddz -o FILE`, `backup
/// SOURCE FILE`): a new file is created with O_EXCL; an existing one is
/// replaced only with `force` (never the input itself, never a directory);
/// a device is written in place. A file this run created or truncated is
/// removed again if the job fails or is interrupted, until `keep()`.
public final class OutputFile {
    public let path: String
    public let file: OpenFile
    /// A regular file (it gets a `.index` beside it, and is removed on failure).
    public let isRegular: Bool
    private var cleanupToken: Int?

    public init(_ path: String, force: Bool, input: stat? = nil) throws {
        var st = stat()
        let exists = stat(path, &st) == 0
        if exists {
            if let input, st.st_dev == input.st_dev, st.st_ino == input.st_ino {
                throw RescueError(path, "open", "is the input; refusing to overwrite it")
            }
            if st.st_mode & S_IFMT == S_IFDIR { throw RescueError(path, "open", errno: EISDIR) }
            if !force { throw RescueError(path, "open", "already exists; not overwritten (use -f)") }
        }
        isRegular = !exists || st.st_mode & S_IFMT == S_IFREG
        file = try OpenFile.open(path, .writeOnly,
                                 options: isRegular ? (exists ? [.create, .truncate] : [.create, .exclusiveCreate]) : [],
                                 permissions: [.ownerReadWrite])
        self.path = path
        if isRegular { cleanupToken = Cleanup.register { _ = unlink(path) } }
    }

    /// The job succeeded: the file stays.
    public func keep() {
        if let cleanupToken { Cleanup.unregister(cleanupToken) }
        cleanupToken = nil
    }

    /// The job failed: remove the file now (a device keeps what was written).
    public func discard() {
        try? file.close()
        guard let cleanupToken else { return }
        Cleanup.unregister(cleanupToken)
        self.cleanupToken = nil
        _ = unlink(path)
    }
}
