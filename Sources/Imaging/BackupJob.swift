#if canImport(Glibc)
import Glibc
#endif
import DiskLayout
import FTP
import LZOP
import RescueCore
import Synchronization

/// Everything `rescuebox backup` was asked to do.
public struct BackupOptions {
    public var source: String
    /// nil: stdout; a path: a local file (written as FILE.part, then renamed).
    public var localOutput: String?
    public var upload: UploadTarget?
    public var compression = LzopCompressionOptions(level: 1)
    public var threads = WorkerThread.onlineProcessors
    public var requestSize = DiskReader.defaultRequestSize
    public var direct = true
    public var noError = false
    public var retries = 5
    /// First wait before a retry; doubles each time, at most 60 s.
    public var retryDelay = 2.0
    public var idleLimit = 120.0
    public var manifest = false
    public var progress = false
    public var toolVersion = ""
    /// Start at this source offset; read at most `count` bytes.
    public var skip: UInt64 = 0
    public var count: UInt64?
    /// Image a source that is mounted read-write anyway.
    public var force = false
    /// --used: read only the blocks the filesystems use (DiskLayout).
    public var used = false
    /// --used-map FILE: the ranges read, as a GNU ddrescue domain file.
    public var usedMap: String?

    public init(source: String) { self.source = source }
}

/// What a backup did, for the summary line.
public struct BackupResult {
    public var inputBytes: UInt64
    public var outputBytes: UInt64
    public var seconds: Double
    public var reconnects: Int
    public var badBytes: UInt64
    /// SHA-256 of the compressed stream (computed only for --manifest).
    public var sha256: String?
    /// How the FTP upload was verified and what it replaced (nil for files).
    public var upload: UploadOutcome?
    /// --used: bytes read and skipped.
    public var usedSummary: String?
}

/// `rescuebox backup`: DiskReader -> ParallelCompressor -> FTP data
/// connection (or a file), in one process with no pipes.
///
/// Resume: the compressor is deterministic, so when the connection drops
/// the job reconnects (bounded retries, doubling waits), asks the server
/// how many bytes of REMOTE.part it holds (SIZE), and regenerates the
/// stream from the block boundary at or before that byte: it re-reads the
/// source from that block, drops the bytes the server already has, and
/// sends the rest with REST+STOR (or APPE). The frame length of every block
/// written is kept (4 bytes per 256 KiB block: 16 MiB per TiB of source) to
/// find that boundary. The result is byte-identical to an unbroken run.
public final class BackupJob {
    public let options: BackupOptions
    private var frameLengths: [UInt32] = []
    /// Known once the compressor has read the whole source.
    private var totalBlocks: UInt64?
    private let endMarker: [UInt8] = [0, 0, 0, 0]
    private var hasher = SHA256()
    private var hashedUpTo: UInt64 = 0

    public init(options: BackupOptions) { self.options = options }

    public func run() throws -> BackupResult {
        try MountTable.refuseMountedReadWrite(options.source, force: options.force)
        let reader = try DiskReader.open(options.source, skip: options.skip, count: options.count,
                                         requestSize: options.requestSize, direct: options.direct)
        reader.noError = options.noError
        if options.used {
            let map = try prepareUsedRead(reader, path: options.source)
            if let usedMap = options.usedMap { try writeUsedMap(map, to: usedMap) }
        }
        let header = LzopEncoderHeader.forInput(options: options.compression, path: reader.isStandardInput ? nil : options.source,
                                                status: reader.status, toStdout: false)
        let meter = ProgressMeter(label: "backup", total: reader.totalSize, forced: options.progress)
        reader.reportBadRanges(meter: meter)
        let started = Int(time(nil))
        let clock = Stopwatch()
        var result: BackupResult
        if let target = options.upload {
            result = try uploadWithResume(reader: reader, header: header, target: target, meter: meter)
        } else {
            result = try writeLocally(reader: reader, header: header, meter: meter)
        }
        meter.finish()
        result.seconds = clock.elapsed
        result.badBytes = reader.badBytes
        if result.inputBytes == 0 {
            printError("warning: \(reader.name) gave no data: the image is empty")
        }
        if options.used { result.usedSummary = usedSummaryLine(reader) }
        if options.upload != nil {
            try storeIndex(headerLength: UInt64(header.bytes().count))
        }
        if options.manifest {
            var manifest = Manifest(image: imageName, source: options.source, sourceSize: reader.sourceSize,
                                    started: started, finished: Int(time(nil)), compressedSize: result.outputBytes,
                                    sha256: result.sha256 ?? "", toolVersion: options.toolVersion)
            manifest.badBytes = reader.badBytes
            try storeManifest(Array(manifest.json.utf8))
        }
        return result
    }

    private var imageName: String {
        let path = options.upload?.remotePath ?? options.localOutput ?? "-"
        return baseName(path)
    }

    // MARK: FTP

    private var uploader: ResumableUpload?

    private func uploadWithResume(reader: DiskReader, header: LzopEncoderHeader, target: UploadTarget,
                                  meter: ProgressMeter) throws -> BackupResult {
        let upload = ResumableUpload(target: target, idleLimit: options.idleLimit)
        uploader = upload
        let headerBytes = header.bytes()
        // A NOOP every second on a paused session; woken at once to stop
        // (the job's end must not wait for a sleeping thread).
        let keepAliveState = Monitor()
        var stopKeepAlive = false
        let keepAlive = WorkerThread {
            while true {
                let stop = keepAliveState.locked {
                    if !stopKeepAlive { keepAliveState.wait(seconds: 1) }
                    return stopKeepAlive
                }
                if stop { return }
                upload.keepAlive()
            }
        }
        defer {
            keepAliveState.locked { stopKeepAlive = true; keepAliveState.broadcast() }
            keepAlive.join()
        }

        var attempt = 0
        var everTransferred = false
        var delay = options.retryDelay
        var inputBytes: UInt64 = 0
        /// The most the server held after any failure: a retry must get further.
        var bestHeld: UInt64?
        /// The server's holding was already judged when the last attempt failed.
        var judgedAtFailure = false
        /// The server refuses REST+STOR and APPE: every session starts at 0.
        var resumeRefused = false
        while true {
            var transferring = false
            var opening: OverlappedOpen?
            do {
                // Where to start: 0 the first time; later what the server holds.
                var offset: UInt64 = 0
                if attempt == 0 {
                    // The first session logs in and opens its STOR on its own
                    // thread while the compressor starts.
                    opening = OverlappedOpen(inner: upload) {
                        try upload.connect()
                        try upload.begin(at: 0)
                    }
                } else {
                    try upload.connect()
                    switch try upload.serverHolds() {
                    case .bytes(let n): offset = n
                    case .absent: offset = 0
                    case .unknown(let why):
                        throw RescueError(target.displayName, "resume", "cannot learn how much of \(target.tempPath) the server holds (\(why))")
                            .with(kind: .serverRefused)
                    }
                    if !judgedAtFailure {
                        if let best = bestHeld, offset <= best {
                            throw RescueError(target.displayName, "resume",
                                              "no progress: the server still holds \(offset) bytes of \(target.tempPath) after reconnecting")
                                .with(kind: .serverRefused)
                        }
                        bestHeld = max(bestHeld ?? 0, offset)
                    }
                    if offset < UInt64(headerBytes.count) || resumeRefused { offset = 0 }
                    judgedAtFailure = false
                    if offset > 0 {
                        do {
                            try upload.begin(at: offset)
                        } catch let error as RescueError where error.kind == .resumeRefused {
                            printError("\(target.displayName): \(error.reason); sending the image again from the start")
                            resumeRefused = true
                            offset = 0
                        }
                    }
                    if offset == 0 { try upload.begin(at: 0) }
                    transferring = true
                    everTransferred = true
                }
                let (block, blockStart) = resumePoint(for: offset, headerLength: UInt64(headerBytes.count))
                if offset > 0 {
                    printError("resuming at byte \(offset) (block \(block), source offset \(block * UInt64(LzopFormat.blockSize)))")
                }
                let sink = RegeneratingSink(inner: opening ?? upload, position: offset == 0 ? 0 : blockStart, skipUntil: offset,
                                            hash: options.manifest ? { [unowned self] in hash($0, at: $1) } : nil)
                if let blocks = totalBlocks, block >= blocks {
                    // Every block is on the server: at most the end marker is missing.
                    try endMarker.withUnsafeBytes { try sink.write($0) }
                } else {
                    let compressor = ParallelCompressor(options: options.compression, threads: options.threads,
                                                        header: offset == 0 ? header : nil)
                    compressor.firstBlock = offset == 0 ? 0 : block
                    compressor.outputOffset = offset == 0 ? 0 : blockStart
                    try compressor.run(reader: reader, sink: sink, onBlock: { [unowned self] record in
                        if record.index == UInt64(frameLengths.count) { frameLengths.append(UInt32(record.outputLength)) }
                    }, onProgress: { inBytes, _ in
                        meter.update(processed: block * UInt64(LzopFormat.blockSize) + inBytes, written: sink.position)
                    })
                    inputBytes = reader.position
                    totalBlocks = UInt64(frameLengths.count)
                }
                try opening?.waitUntilOpen()
                let outcome = try upload.complete()
                return BackupResult(inputBytes: inputBytes, outputBytes: outcome.size, seconds: 0, reconnects: attempt,
                                    badBytes: 0, sha256: options.manifest ? hasher.finalizeHex() : nil, upload: outcome)
            } catch {
                var error = error
                if let opening {
                    // A failed login or STOR is reported as such (nothing was
                    // open to retry); else the transfer was open when it failed.
                    if let openError = opening.openError() {
                        error = openError
                    } else {
                        transferring = true
                        everTransferred = true
                    }
                }
                let rescue = error as? RescueError ?? RescueError(target.displayName, "upload", "\(error)")
                var retry = !Cleanup.isInterrupted && reader.isSeekable && everTransferred && attempt < options.retries
                    && BackupJob.isWorthRetrying(rescue, transferring: transferring)
                meter.finish()
                // A server that refused the data but kept the session (451 on a
                // full disk) is asked at once whether this attempt got further.
                var final = rescue
                if retry, rescue.kind == .serverRefused, let held = (try? upload.serverHolds())?.value {
                    if let best = bestHeld, held <= best {
                        retry = false
                        final.reason += "; no progress: the server holds \(held) bytes of \(target.tempPath), as after the last failure"
                    }
                    bestHeld = max(bestHeld ?? 0, held)
                    judgedAtFailure = true
                }
                guard retry else {
                    var failure = upload.fail(final, retrying: false)
                    if attempt > 0 && rescue.kind == .connection { failure.reason += " after \(attempt) reconnects" }
                    throw failure
                }
                let failure = upload.fail(rescue, retrying: true)
                attempt += 1
                printError("\(failure); reconnecting in \(formatFixed(delay, decimals: 0)) s (attempt \(attempt) of \(options.retries))")
                usleep(UInt32(delay * 1_000_000))
                delay = min(delay * 2, 60)
            }
        }
    }

    /// A broken connection or a transient server error mid-transfer may go
    /// away by reconnecting. These do not: a source read error (see
    /// --noerror), bad usage, a refused login, a full disk or quota (452,
    /// 552), a permanent refusal before any data moved, and a resume that
    /// made no progress.
    static func isWorthRetrying(_ error: RescueError, transferring: Bool) -> Bool {
        switch error.kind {
        case .source, .interrupted, .resumeRefused: return false
        case .connection: return true
        case .serverRefused:
            guard let code = error.replyCode else { return false }
            if code == 530 || code == 452 || code == 552 { return false }
            if code >= 500 { return transferring && code != 553 && code != 550 }
            return transferring
        case .general, .zeroCopyUnsupported:
            return error.exitCode != ExitCode.usage && transferring
        }
    }

    /// The block whose frame contains stream byte `offset`, and where that
    /// frame starts. Blocks not yet recorded start after the last recorded.
    private func resumePoint(for offset: UInt64, headerLength: UInt64) -> (UInt64, UInt64) {
        var start = headerLength
        for (index, length) in frameLengths.enumerated() {
            if start + UInt64(length) > offset { return (UInt64(index), start) }
            start += UInt64(length)
        }
        return (UInt64(frameLengths.count), start)
    }

    /// Hashes each stream byte once, the first time it is produced.
    private func hash(_ bytes: UnsafeRawBufferPointer, at position: UInt64) {
        let end = position + UInt64(bytes.count)
        guard end > hashedUpTo else { return }
        let from = Int(hashedUpTo > position ? hashedUpTo - position : 0)
        hasher.update(UnsafeRawBufferPointer(rebasing: bytes[from...]))
        hashedUpTo = end
    }

    // MARK: Local file or stdout

    private func writeLocally(reader: DiskReader, header: LzopEncoderHeader, meter: ProgressMeter) throws -> BackupResult {
        let outFile: OpenFile
        var part: OutputFile?
        if let path = options.localOutput {
            // The rule of ddz -o (OutputFile), for DEST.part; DEST itself is
            // replaced at the end only when it did not exist or with -f.
            var st = stat()
            if stat(path, &st) == 0 && !options.force {
                throw RescueError(path, "open", "already exists; not overwritten (use -f)")
            }
            part = try OutputFile(path + ".part", force: options.force, input: reader.isStandardInput ? nil : reader.status)
            outFile = part!.file
        } else {
            if isTerminal(1) { throw RescueError("stdout", "write", "compressed data not written to a terminal (give a file or ftp:// URL)") }
            outFile = .standardOutput
        }
        let sink = RegeneratingSink(inner: outFile, position: 0, skipUntil: 0,
                                    hash: options.manifest ? { [unowned self] in hash($0, at: $1) } : nil)
        let compressor = ParallelCompressor(options: options.compression, threads: options.threads, header: header)
        do {
            try compressor.run(reader: reader, sink: sink, onProgress: { inBytes, _ in
                meter.update(processed: inBytes, written: sink.position)
            })
            if let part, let path = options.localOutput {
                try outFile.sync()
                try outFile.close()
                // The block index (for mount) first: a failure leaves neither.
                try writeLzopIndexFile(for: part.path, indexPath: path + ".index")
                if rename(part.path, path) != 0 {
                    let err = lastErrno()
                    _ = unlink(path + ".index")
                    throw RescueError(path, "rename from \(part.path)", errno: err)
                }
                part.keep()
            }
        } catch {
            part?.discard()
            throw error
        }
        return BackupResult(inputBytes: reader.position, outputBytes: sink.position, seconds: 0, reconnects: 0,
                            badBytes: 0, sha256: options.manifest ? hasher.finalizeHex() : nil)
    }

    /// NAME.lzo.index beside the uploaded image (for `rescuebox mount`):
    /// every block's frame offset, from the frame lengths recorded for
    /// resuming (complete after a resumed upload too).
    private func storeIndex(headerLength: UInt64) throws {
        guard let upload = uploader, let target = options.upload else { return }
        var offsets: [UInt64] = []
        offsets.reserveCapacity(frameLengths.count)
        var at = headerLength
        for length in frameLengths {
            offsets.append(at)
            at += UInt64(length)
        }
        try upload.storeSmallFile(target.remotePath + ".index", contents: LzopBlockIndex.serialize(frameOffsets: offsets))
    }

    private func storeManifest(_ bytes: [UInt8]) throws {
        if let upload = uploader, let target = options.upload {
            try upload.storeSmallFile(target.remotePath + ".json", contents: bytes)
            upload.quit()
        } else if let path = options.localOutput {
            let file = try OpenFile.open(path + ".json", .writeOnly, options: [.create, .truncate],
                                         permissions: [.ownerReadWrite, .groupRead, .otherRead])
            try file.writeAll(bytes)
            try file.close()
        } else {
            printError("--manifest needs a file or ftp:// destination; not written for stdout")
        }
    }
}

/// Passes the regenerated stream on, dropping what the server already
/// holds (`skipUntil`), hashing each byte once, counting the position.
private final class RegeneratingSink: ByteSink {
    let inner: ByteSink
    /// Stream offset of the next byte handed to this sink.
    private(set) var position: UInt64
    let skipUntil: UInt64
    let hash: ((UnsafeRawBufferPointer, UInt64) -> Void)?

    init(inner: ByteSink, position: UInt64, skipUntil: UInt64, hash: ((UnsafeRawBufferPointer, UInt64) -> Void)?) {
        self.inner = inner
        self.position = position
        self.skipUntil = skipUntil
        self.hash = hash
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        let start = position
        position += UInt64(bytes.count)
        guard position > skipUntil else { return }
        let from = Int(skipUntil > start ? skipUntil - start : 0)
        let rest = UnsafeRawBufferPointer(rebasing: bytes[from...])
        hash?(rest, start + UInt64(from))
        try inner.write(rest)
    }
}
