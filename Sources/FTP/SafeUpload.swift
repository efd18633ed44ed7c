#if canImport(Glibc)
import Glibc
#endif
import RescueCore
import CShim

/// Choices for `SafeUpload`.
public struct SafeUploadOptions {
    /// Write REMOTE directly instead of REMOTE.part + rename.
    public var inPlace = false
    /// Leave a partial remote file behind on failure (default: delete it).
    public var keepPartial = false
    /// Continue an earlier upload (see `SafeUpload.resumeOffset`).
    public var resume = false
    /// Create missing remote directories first.
    public var mkdirs = false
    /// Refuse to replace an existing REMOTE.
    public var noClobber = false
    public var tempSuffix = ".part"
    /// Register the Cleanup action that deletes the partial file on a
    /// signal. A job that reconnects registers one of its own instead.
    public var cleanupOnSignal = true

    public init() {}
}

/// How the server confirmed what landed.
public enum UploadVerification: Equatable {
    /// The server's size (SIZE, MLST or LIST) equals the bytes sent.
    case confirmed
    /// The server would not tell its size: nothing could be compared.
    case unverifiable(String)
}

/// What a committed upload did.
public struct UploadOutcome: Equatable {
    /// Bytes the remote file holds (start offset + bytes sent).
    public var size: UInt64
    public var verification: UploadVerification
    /// An existing REMOTE that the rename replaced: its size, when known.
    public var replaced: RemoteSize?
}

/// The one upload of rescuebox: it either lands complete under its final
/// name or fails loudly, and it never deletes what it did not write.
///
/// 1. (`mkdirs`) create the missing directories; (`noClobber`) refuse when
///    REMOTE exists;
/// 2. STOR to `REMOTE.part` (or REST+STOR / APPE there when resuming);
/// 3. after the server's 226, compare the server's size with the bytes
///    sent (SIZE, else MLST, else LIST; a server that tells none of them is
///    reported as unverifiable, not as failed);
/// 4. only then RNFR/RNTO to REMOTE, saying when that replaced a file.
///
/// Only bytes this run stored are ever deleted: the temp file counts as
/// ours once the server accepted a STOR/APPE to it (a 1xx reply) in this
/// run (`storedByThisRun`; a job that reconnects passes it on as
/// `storedEarlier`). A refused STOR, a refused passive mode or a login
/// failure leaves whatever was on the server untouched. A resume onto a
/// temp file this run had not stored (`earlierRunBytes`) is never deleted:
/// its first bytes are another run's.
///
///     let up = SafeUpload(client: ftp, remotePath: "img/sda.lzo", options: opts)
///     do {
///         try up.start(at: try up.resumeOffset(sourceSize: size))
///         try up.write(chunk) ...          // or up.sendFile / up.splice
///         let outcome = try up.commit()
///     } catch { throw up.fail(error) }
public final class SafeUpload: ByteSink {
    public let client: FTPClient
    public let remotePath: String
    public let options: SafeUploadOptions
    /// Where the bytes go until the rename: REMOTE.part, or REMOTE in place.
    public let tempPath: String
    /// Bytes on the server before this session's first byte (resume).
    public private(set) var startOffset: UInt64 = 0
    /// True once the server accepted a STOR/APPE to `tempPath` in this run.
    public private(set) var storedByThisRun: Bool
    /// Bytes at the head of `tempPath` that an earlier run stored: `start(at:)`
    /// continued a file this run had not stored. Non-zero means never delete it.
    public private(set) var earlierRunBytes: UInt64 = 0

    private var stream: FTPDataStream?
    /// Bytes sent by the transfers of this session that have ended.
    private var finishedBytes: UInt64 = 0
    private var cleanupToken: Int?
    private var failed: RescueError?
    private var committed = false
    /// `start` was called (a transfer was attempted in this session).
    public private(set) var started = false
    /// A transfer ended cleanly on purpose (`pause`); the next write reopens it.
    public private(set) var isPaused = false

    public init(client: FTPClient, remotePath: String, options: SafeUploadOptions = SafeUploadOptions(),
                storedEarlier: Bool = false) {
        self.client = client
        self.remotePath = remotePath
        self.options = options
        self.storedByThisRun = storedEarlier
        tempPath = options.inPlace ? remotePath : remotePath + options.tempSuffix
    }

    /// `ftp://host:port/path` for messages.
    public var displayName: String { "ftp://\(client.label)/\(remotePath)" }

    /// Bytes sent in this session.
    public var bytesSent: UInt64 { finishedBytes + (stream?.bytesTransferred ?? 0) }
    /// The offset on the server of the next byte written.
    public var position: UInt64 { startOffset + bytesSent }

    /// Checks every name for CR/LF/NUL; call before connecting.
    public static func validate(remotePath: String, options: SafeUploadOptions = SafeUploadOptions()) throws {
        guard !remotePath.isEmpty, !remotePath.hasSuffix("/") else {
            throw RescueError.usage("remote path '\(sanitizeForDisplay(remotePath))' names no file")
        }
        try checkSafeForControl(remotePath, what: "remote path")
        try checkSafeForControl(remotePath + options.tempSuffix, what: "remote path")
    }

    /// What the server holds at the temp path.
    public func serverHolds() throws -> RemoteSize {
        try prepareDirectories()
        return try client.remoteSize(tempPath)
    }

    /// With `resume`: how many bytes of an earlier attempt the server holds
    /// at the temp path, 0 when none. Fails when the server holds more than
    /// the source has (`sourceSize`), which means another file, or will not
    /// tell its size.
    public func resumeOffset(sourceSize: UInt64?) throws -> UInt64 {
        guard options.resume else { return 0 }
        switch try serverHolds() {
        case .absent: return 0
        case .unknown(let why):
            throw RescueError(displayName, "resume", "cannot learn how much of \(tempPath) the server holds: \(why)")
        case .bytes(let existing):
            if let sourceSize, existing > sourceSize {
                throw RescueError(displayName, "resume", "the server already has \(existing) bytes at \(tempPath), more than the \(sourceSize) bytes to send")
            }
            return existing
        }
    }

    /// Opens the data connection at `offset` (REST+STOR, or APPE where the
    /// server refuses a restarted STOR) and arms the Cleanup action.
    ///
    /// A server that refuses to continue a file (`.resumeRefused`) leaves
    /// the upload unstarted: the caller may rewind its source and call
    /// `start(at: 0)` again.
    public func start(at offset: UInt64 = 0) throws {
        precondition(stream == nil && !isPaused, "SafeUpload.start while a transfer is open")
        started = true
        try SafeUpload.validate(remotePath: remotePath, options: options)
        try prepareDirectories()
        if options.noClobber { try refuseExisting() }
        startOffset = offset
        earlierRunBytes = storedByThisRun ? 0 : offset
        try open(at: offset)
        if options.cleanupOnSignal && !options.keepPartial && earlierRunBytes == 0 && cleanupToken == nil {
            let client = self.client, path = tempPath
            cleanupToken = Cleanup.registerReporting({
                // Another session: this one may be mid-command on another thread.
                SafeUpload.removePartial(path, over: nil) {
                    try client.openAnotherSession(timeouts: FTPTimeouts(connect: 5, reply: 5, stall: 5))
                }.signalReport(path)
            })
        }
    }

    private func open(at offset: UInt64) throws {
        stream = try client.openStore(tempPath, resumeAt: offset)
        storedByThisRun = true
        isPaused = false
    }

    private var preparedDirectories = false
    private func prepareDirectories() throws {
        guard options.mkdirs, !preparedDirectories else { return }
        preparedDirectories = true
        let directory = directoryName(remotePath)
        if directory != "." && directory != "/" { try client.mkdirs(directory) }
    }

    private func refuseExisting() throws {
        switch try client.remoteSize(remotePath) {
        case .absent: return
        case .bytes(let n):
            throw RescueError(displayName, "upload", "exists (\(n) bytes); not replaced (--no-clobber)")
        case .unknown(let why):
            throw RescueError(displayName, "upload", "cannot tell whether it exists (\(why)); not uploaded (--no-clobber)")
        }
    }

    private func activeStream() throws -> FTPDataStream {
        if isPaused { try open(at: position) }
        guard let stream else { throw RescueError(displayName, "write", "upload not started") }
        return stream
    }

    /// Sends bytes (the stall timeout applies; a server error reply ends it).
    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        try activeStream().write(bytes)
    }

    /// Sends a regular file from its current offset with sendfile(2).
    @discardableResult
    public func sendFile(descriptor: Int32, progress: ((UInt64) -> Void)? = nil) throws -> UInt64 {
        try activeStream().sendFile(descriptor: descriptor, progress: progress)
    }

    /// Sends from a pipe or a file with splice(2) (see FTPDataStream.splice).
    @discardableResult
    public func splice(from descriptor: Int32, isPipe: Bool, progress: ((UInt64) -> Void)? = nil) throws -> UInt64 {
        try activeStream().splice(from: descriptor, isPipe: isPipe, progress: progress)
    }

    /// Sends `source` from its current position to its end, the cheapest
    /// way that is also the fastest for the connection; `progress` gets the
    /// running total of this call.
    ///
    /// - To another host: zero-copy, splice(2) from pipes and files, then
    ///   sendfile(2), then a buffer.
    /// - To this host (loopback, the usual benchmark and a local server): a
    ///   256 KiB buffer, read(2) + send(2). Zero-copy hands the receiving
    ///   server the source's own pages (4 KiB pipe pages, page-cache pages)
    ///   instead of freshly copied socket buffers, and on the same host that
    ///   server pays for it: measured on a tmpfs-rooted vsftpd (the
    ///   bottleneck there) +25 % CPU for spliced files and +40-60 % for
    ///   spliced pipes, which made ftpput slower than curl in wall time.
    /// - TLS: a 1 MiB buffer through SSL_write.
    ///
    /// RESCUEBOX_ZERO_COPY=always|never overrides the choice (ZeroCopyPolicy).
    public func send(from source: UploadSource, progress: ((UInt64) -> Void)? = nil) throws {
        let stream = try activeStream()
        let fd = source.file.fd
        if !stream.isEncrypted && ZeroCopyPolicy.current.allowsZeroCopy(serverIsThisHost: stream.serverIsThisHost) {
            if source.isRegularFile || source.isPipe {
                do {
                    _ = try stream.splice(from: fd, isPipe: source.isPipe, progress: progress)
                    return
                } catch let error as RescueError where error.kind == .zeroCopyUnsupported && stream.bytesTransferred == 0 {
                    printVerbose("splice refused (\(error.reason)); trying another way")
                }
            }
            if source.isRegularFile {
                do {
                    _ = try stream.sendFile(descriptor: fd, progress: progress)
                    return
                } catch let error as RescueError where error.kind == .zeroCopyUnsupported && stream.bytesTransferred == 0 {
                    printVerbose("sendfile refused (\(error.reason)); copying through a buffer")
                }
            }
        }
        let buffer = AlignedBuffer(capacity: stream.isEncrypted ? 1 << 20 : 256 << 10)
        // A 64 KiB pipe (the default) would hand over 64 KiB per read.
        if source.isPipe { _ = rb_set_pipe_size(fd, 1 << 20) }
        var total: UInt64 = 0
        while true {
            // A pipe is sent as it comes (one read), a file in whole buffers.
            let n = source.isPipe ? try source.file.readSome(into: buffer.bytes) : try source.file.readFull(into: buffer.bytes)
            if n == 0 { break }
            try stream.write(UnsafeRawBufferPointer(rebasing: buffer.bytes[0..<n]))
            total += UInt64(n)
            progress?(total)
            if n < buffer.capacity && source.isRegularFile { break }
        }
    }

    /// Ends the current transfer cleanly (226: the server keeps every byte)
    /// without committing; the next write continues at the same offset.
    public func pause() throws {
        guard let stream, !isPaused else { return }
        finishedBytes += stream.bytesTransferred
        self.stream = nil
        isPaused = true
        try stream.finish()
    }

    /// Sends a NOOP (keeps a paused session alive).
    public func keepAlive() throws {
        try client.command("NOOP")
    }

    /// Ends the transfer: waits for the 226, compares the server's size
    /// with the bytes sent, renames the temp file into place.
    @discardableResult
    public func commit() throws -> UploadOutcome {
        guard started else { throw RescueError(displayName, "commit", "upload not started") }
        if let stream {
            finishedBytes += stream.bytesTransferred
            self.stream = nil
            try stream.finish()
        }
        isPaused = false
        let expected = position
        var verification = UploadVerification.confirmed
        switch try client.remoteSize(tempPath) {
        case .bytes(let value):
            guard value == expected else {
                throw RescueError(displayName, "verify", "the server stored \(value) bytes of the \(expected) sent")
            }
        case .absent:
            // A 550 to SIZE on a file just stored: SIZE is denied, not the file gone.
            verification = .unverifiable("the server denies SIZE and MLST on \(tempPath)")
        case .unknown(let why):
            verification = .unverifiable(why)
        }
        if case .unverifiable(let why) = verification {
            printError("warning: \(displayName): the upload could not be verified: \(why)")
        }
        var replaced: RemoteSize?
        if tempPath != remotePath {
            if options.noClobber { try refuseExisting() }
            let existing = try client.remoteSize(remotePath)
            if existing != .absent { replaced = existing }
            try client.rename(from: tempPath, to: remotePath)
        }
        committed = true
        if let cleanupToken { Cleanup.unregister(cleanupToken) }
        cleanupToken = nil
        Cleanup.markCompleted("\(displayName) is complete")
        return UploadOutcome(size: expected, verification: verification, replaced: replaced)
    }

    /// Call with whatever ended the upload: closes the data connection and,
    /// when this run stored the temp file and it is not to be kept
    /// (`keepPartial`, `retrying` for a job that will resume it, or
    /// `earlierRunBytes` of another run at its head), deletes it. Returns
    /// the error to report, saying all of that. Idempotent.
    public func fail(_ error: Error, retrying: Bool = false) -> RescueError {
        if let failed { return failed }
        var base = (error as? RescueError) ?? RescueError(displayName, "upload", "\(error)")
        if let cleanupToken { Cleanup.unregister(cleanupToken) }
        cleanupToken = nil
        if base.exitCode == ExitCode.usage || !started {
            failed = base
            return base
        }
        if let stream {
            finishedBytes += stream.bytesTransferred
            stream.abort()
            self.stream = nil
        }
        var notes: [String] = [bytesSent == 0 ? "no bytes sent" : "\(bytesSent) bytes sent"]
        if startOffset > 0 && bytesSent > 0 { notes[0] += " (from offset \(startOffset))" }
        if committed {
            notes.append("the upload itself completed")
        } else if !storedByThisRun {
            notes.append("nothing was stored, nothing deleted")
        } else if retrying {
            notes.append("\(tempPath) kept to resume")
        } else if options.keepPartial {
            notes.append("partial file kept (resume with -c)")
        } else if earlierRunBytes > 0 {
            notes.append("\(tempPath) kept: its first \(earlierRunBytes) bytes are an earlier run's (resume with -c)")
        } else {
            notes.append(deletePartial())
        }
        base.reason += " (" + notes.joined(separator: "; ") + ")"
        base = client.relabel(base, path: remotePath)
        failed = base
        return base
    }

    /// Deletes the temp file this run stored, from this session or a new one.
    private func deletePartial() -> String {
        let removal = SafeUpload.removePartial(tempPath, over: client.isConnected ? client : nil) {
            try client.openAnotherSession(timeouts: FTPTimeouts(connect: 10, reply: 10, stall: 10))
        }
        switch removal {
        case .deleted: return "partial file deleted"
        case .refused: return "could not delete the partial file \(tempPath)"
        case .unreachable: return "server unreachable: could not delete \(tempPath)"
        }
    }

    /// The one way a partial upload this run stored is removed: DELE over
    /// `session` when it is usable, else over a new one from `open` (closed
    /// again after). Used on failure, on a signal, and by jobs that reconnect.
    public static func removePartial(_ path: String, over session: FTPClient?,
                                     open: () throws -> FTPClient) -> PartialRemoval {
        var own: FTPClient?
        if session == nil { own = try? open() }
        guard let used = session ?? own else { return .unreachable }
        defer { own?.disconnect() }
        return (try? used.delete(path)) != nil ? .deleted : .refused
    }
}

/// Whether plain uploads use splice(2)/sendfile(2) (`SafeUpload.send`):
/// `auto` when the server is on another host, `always`, `never`. Set with
/// the environment variable RESCUEBOX_ZERO_COPY (anything else is `auto`).
public enum ZeroCopyPolicy: String, Sendable {
    case auto, always, never

    public static let current: ZeroCopyPolicy = {
        guard let value = getenv("RESCUEBOX_ZERO_COPY") else { return .auto }
        return ZeroCopyPolicy(rawValue: String(cString: value)) ?? .auto
    }()

    public func allowsZeroCopy(serverIsThisHost: Bool) -> Bool {
        switch self {
        case .auto: return !serverIsThisHost
        case .always: return true
        case .never: return false
        }
    }
}

/// How removing a partial upload went (`SafeUpload.removePartial`).
public enum PartialRemoval: Equatable {
    case deleted, refused, unreachable

    /// The words an interrupt's one line uses for it.
    public func signalReport(_ path: String) -> String {
        switch self {
        case .deleted: return "removed the partial upload \(path)"
        case .refused: return "could not remove the partial upload \(path)"
        case .unreachable: return "could not reach the server to remove the partial upload \(path)"
        }
    }
}
