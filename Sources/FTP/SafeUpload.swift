#if canImport(Glibc)
import Glibc
#endif
import RescueCore

/// Choices for `SafeUpload`.
public struct SafeUploadOptions {
    /// Write REMOTE directly instead of REMOTE.part + rename.
    public var inPlace = false
    /// Leave a partial remote file behind on failure (default: delete it).
    public var keepPartial = false
    /// Continue an earlier upload (see `SafeUpload.resumeOffset`); a
    /// failed resumed upload keeps its partial file for the next attempt.
    public var resume = false
    /// Create missing remote directories first.
    public var mkdirs = false
    public var tempSuffix = ".part"

    public init() {}
}

/// An upload that either lands complete under its final name or fails
/// loudly and leaves nothing behind:
///
/// 1. (`mkdirs`) create the missing directories;
/// 2. STOR to `REMOTE.part` (or REST+STOR / APPE there when resuming);
/// 3. after the server's 226, ask SIZE and compare with the bytes sent;
/// 4. only then RNFR/RNTO to REMOTE.
///
/// On any failure — a 4xx/5xx reply, a dropped or stalled data
/// connection, a SIZE mismatch, a failed source — `fail(_:)` asks the
/// server how many bytes it holds, deletes the partial file (unless
/// `keepPartial` or `resume`) and returns an error saying all of that. On
/// SIGINT/SIGTERM/SIGHUP a Cleanup action deletes it from a second session
/// (best effort).
///
///     let up = SafeUpload(client: ftp, remotePath: "img/sda.lzo", options: opts)
///     do {
///         try up.start(at: try up.resumeOffset(sourceSize: size))
///         try up.write(chunk) ...          // or up.sendFile(descriptor:)
///         try up.commit()
///     } catch { throw up.fail(error) }
public final class SafeUpload: ByteSink {
    public let client: FTPClient
    public let remotePath: String
    public let options: SafeUploadOptions
    /// Where the bytes go until the rename: REMOTE.part, or REMOTE in place.
    public let tempPath: String
    /// Bytes already on the server before this session (resume).
    public private(set) var startOffset: UInt64 = 0
    /// Bytes sent in this session.
    public var bytesSent: UInt64 { stream?.bytesTransferred ?? finishedBytes }
    /// What the server confirmed after the 226 (SIZE), once known.
    public private(set) var confirmedSize: UInt64?

    private var stream: FTPDataStream?
    private var finishedBytes: UInt64 = 0
    private var cleanupToken: Int?
    private var failed: RescueError?
    private var committed = false
    private var started = false

    public init(client: FTPClient, remotePath: String, options: SafeUploadOptions = SafeUploadOptions()) {
        self.client = client
        self.remotePath = remotePath
        self.options = options
        tempPath = options.inPlace ? remotePath : remotePath + options.tempSuffix
    }

    /// `ftp://host:port/path` for messages.
    public var displayName: String { "ftp://\(client.label)/\(remotePath)" }

    /// Checks every name for CR/LF/NUL; call before connecting.
    public static func validate(remotePath: String, options: SafeUploadOptions = SafeUploadOptions()) throws {
        guard !remotePath.isEmpty, !remotePath.hasSuffix("/") else {
            throw RescueError.usage("remote path '\(sanitizeForDisplay(remotePath))' names no file")
        }
        try checkSafeForControl(remotePath, what: "remote path")
        try checkSafeForControl(remotePath + options.tempSuffix, what: "remote path")
    }

    /// With `resume`: how many bytes of an earlier attempt the server holds
    /// at the temp path (SIZE), 0 when none. Fails when the server holds
    /// more than the source has (`sourceSize`), which means another file.
    public func resumeOffset(sourceSize: UInt64?) throws -> UInt64 {
        guard options.resume else { return 0 }
        try prepareDirectories()
        guard let existing = try client.size(tempPath) else { return 0 }
        if let sourceSize, existing > sourceSize {
            throw RescueError(displayName, "resume", "the server already has \(existing) bytes at \(tempPath), more than the \(sourceSize) bytes to send")
        }
        return existing
    }

    /// Opens the data connection at `offset` (REST+STOR, or APPE when the
    /// server refuses REST) and arms the Cleanup action.
    public func start(at offset: UInt64 = 0) throws {
        precondition(!started, "SafeUpload.start called twice")
        started = true
        try SafeUpload.validate(remotePath: remotePath, options: options)
        if !options.resume { try prepareDirectories() }
        startOffset = offset
        if !(options.keepPartial || options.resume) {
            let client = self.client, path = tempPath
            cleanupToken = Cleanup.register {
                // Another session: this one may be mid-command on another thread.
                let short = FTPTimeouts(connect: 5, reply: 5, stall: 5)
                if let other = try? client.openAnotherSession(timeouts: short) {
                    if (try? other.delete(path)) != nil { printError("removed the partial upload \(path)") }
                    other.disconnect()
                }
            }
        }
        if offset > 0 {
            do {
                stream = try client.openStore(tempPath, restAt: offset, append: false)
            } catch let error as RescueError where error.operation.hasPrefix("REST") && client.isConnected {
                printVerbose("REST refused (\(error.reason)); appending with APPE")
                stream = try client.openStore(tempPath, restAt: nil, append: true)
            }
        } else {
            stream = try client.openStore(tempPath, restAt: nil, append: false)
        }
    }

    private var preparedDirectories = false
    private func prepareDirectories() throws {
        guard options.mkdirs, !preparedDirectories else { return }
        preparedDirectories = true
        if let slash = remotePath.lastIndex(of: "/"), slash != remotePath.startIndex {
            try client.mkdirs(String(remotePath[..<slash]))
        }
    }

    /// Sends bytes (the stall timeout applies; a server error reply ends it).
    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard let stream else { throw RescueError(displayName, "write", "upload not started") }
        try stream.write(bytes)
    }

    /// Sends a regular file from its current offset with sendfile(2).
    @discardableResult
    public func sendFile(descriptor: Int32, progress: ((UInt64) -> Void)? = nil) throws -> UInt64 {
        guard let stream else { throw RescueError(displayName, "write", "upload not started") }
        return try stream.sendFile(descriptor: descriptor, progress: progress)
    }

    /// Sends from a pipe or a file with splice(2) (see FTPDataStream.splice).
    @discardableResult
    public func splice(from descriptor: Int32, isPipe: Bool, progress: ((UInt64) -> Void)? = nil) throws -> UInt64 {
        guard let stream else { throw RescueError(displayName, "write", "upload not started") }
        return try stream.splice(from: descriptor, isPipe: isPipe, progress: progress)
    }

    /// Ends the transfer: waits for the 226, checks SIZE against the bytes
    /// sent, renames the temp file into place. Returns the final size.
    @discardableResult
    public func commit() throws -> UInt64 {
        guard let stream else { throw RescueError(displayName, "commit", "upload not started") }
        let expected = startOffset + stream.bytesTransferred
        finishedBytes = stream.bytesTransferred
        try stream.finish()
        self.stream = nil
        let reply = try client.command("SIZE \(tempPath)")
        if reply.code == 213, let value = UInt64(reply.text.split(separator: " ").first ?? "") {
            confirmedSize = value
            guard value == expected else {
                throw RescueError(displayName, "verify", "the server stored \(value) bytes of the \(expected) sent (SIZE after 226)")
            }
        } else if reply.code == 500 || reply.code == 502 || reply.code == 504 {
            printError("warning: \(client.label) does not support SIZE (\(reply)); the upload could not be verified")
        } else {
            throw RescueError(displayName, "verify", "SIZE \(tempPath) after the upload: server replied \(reply)")
        }
        if tempPath != remotePath {
            try client.rename(from: tempPath, to: remotePath)
        }
        committed = true
        if let cleanupToken { Cleanup.unregister(cleanupToken) }
        cleanupToken = nil
        return expected
    }

    /// Call with whatever ended the upload: closes the data connection,
    /// asks the server how many bytes it holds, deletes the partial file
    /// (unless kept) and returns the error to report. Idempotent.
    public func fail(_ error: Error) -> RescueError {
        if let failed { return failed }
        var base: RescueError
        if let e = error as? RescueError {
            base = e
        } else {
            base = RescueError(displayName, "upload", "\(error)")
        }
        if base.exitCode == ExitCode.usage || !started {
            if let cleanupToken { Cleanup.unregister(cleanupToken) }
            failed = base
            return base
        }
        if let stream {
            finishedBytes = stream.bytesTransferred
            stream.abort()
            self.stream = nil
        }
        if let cleanupToken { Cleanup.unregister(cleanupToken) }
        cleanupToken = nil
        var session: FTPClient? = client.isConnected ? client : nil
        var ownSession = false
        if session == nil {
            session = try? client.openAnotherSession(timeouts: FTPTimeouts(connect: 10, reply: 10, stall: 10))
            ownSession = session != nil
        }
        var notes: [String] = ["\(startOffset + finishedBytes) bytes sent"]
        if startOffset > 0 { notes[0] += " (from offset \(startOffset))" }
        if committed {
            notes.append("the upload itself completed")
        } else if let session {
            var held: UInt64?
            do {
                held = try session.size(tempPath)
                if let held { notes.append("server confirmed \(held) bytes in \(tempPath)") }
                else { notes.append("server holds no \(tempPath)") }
            } catch {
                notes.append("could not ask the server what it holds: \((error as? RescueError)?.reason ?? "\(error)")")
            }
            if held != nil {
                if options.keepPartial || options.resume {
                    notes.append("partial file kept (resume with -c)")
                } else if (try? session.delete(tempPath)) != nil {
                    notes.append("partial file deleted")
                } else {
                    notes.append("could not delete the partial file \(tempPath)")
                }
            }
        } else {
            notes.append("server unreachable: could not check or delete \(tempPath)")
        }
        if ownSession { session?.disconnect() }
        base.reason += " (" + notes.joined(separator: "; ") + ")"
        if base.object.hasPrefix(client.label) {
            if base.object != client.label { base.operation = "data connection: " + base.operation }
            base.object = displayName
        }
        failed = base
        return base
    }
}
