#if canImport(Glibc)
import Glibc
#endif
import FTP
import RescueCore
import Synchronization

/// Where and how `backup` uploads: the server and login, the remote name,
/// the upload options (mkdirs, in place, no-clobber, keep partial).
public struct UploadTarget {
    public var server: FTPServerConfig
    public var remotePath: String
    public var options: SafeUploadOptions

    public init(server: FTPServerConfig, remotePath: String, options: SafeUploadOptions = SafeUploadOptions()) {
        self.server = server
        self.remotePath = remotePath
        self.options = options
        // The job registers its own signal cleanup, across reconnects.
        self.options.cleanupOnSignal = false
    }

    public var tempPath: String { options.inPlace ? remotePath : remotePath + options.tempSuffix }
    public var label: String { server.label }
    public var displayName: String { server.displayName(remotePath) }
}

/// The FTP side of `backup`: a retry and pause policy around the one
/// `SafeUpload`. Each session gets a new SafeUpload that continues the
/// temp file at the offset the server confirms (REST+STOR, or APPE), and
/// knows whether this run stored it, so only bytes of this run are deleted.
///
/// Pausing: vsftpd drops a data connection that carries nothing for 300 s
/// (data_connection_timeout). When no byte was written for `idleLimit`
/// seconds, the keep-alive thread ends the transfer cleanly (226, so the
/// server keeps every byte), sends NOOP on the control connection every
/// 30 s, and the next write reopens the transfer at the same offset.
final class ResumableUpload: ByteSink {
    let target: UploadTarget
    var idleLimit: Double
    /// What the writer, the keep-alive thread and the signal cleanup share.
    private struct Session {
        var upload: SafeUpload?
        /// The server accepted a STOR/APPE to the temp file in this run.
        var storedByThisRun = false
        var lastActivity = monotonicSeconds()
    }
    private let session = Mutex(Session())
    private var cleanupToken: Int?

    init(target: UploadTarget, idleLimit: Double) {
        self.target = target
        self.idleLimit = idleLimit
    }

    /// The position on the server of the next byte written.
    var position: UInt64 { session.withLock { $0.upload?.position ?? 0 } }

    /// A fresh, logged-in session (the old one, if any, is dropped).
    func connect() throws {
        let old = takeUpload()
        old?.client.disconnect()
        let client = try FTPClient.openSession(target.server)
        session.withLock {
            $0.upload = SafeUpload(client: client, remotePath: target.remotePath, options: target.options,
                                   storedEarlier: $0.storedByThisRun)
        }
    }

    /// What the server holds at the temp name.
    func serverHolds() throws -> RemoteSize {
        guard let upload = session.withLock({ $0.upload }) else { throw RescueError(target.label, "SIZE", "not connected") }
        return try upload.serverHolds()
    }

    /// Opens the transfer so that the next byte written lands at `offset`.
    func begin(at offset: UInt64) throws {
        try session.withLock { state in
            guard let upload = state.upload else { throw RescueError(target.label, "STOR", "not connected") }
            defer { state.storedByThisRun = upload.storedByThisRun }
            try upload.start(at: offset)
            state.lastActivity = monotonicSeconds()
        }
        armCleanup()
    }

    /// On a signal: delete the temp file if this run stored it (unless kept).
    private func armCleanup() {
        guard cleanupToken == nil, !target.options.keepPartial else { return }
        let server = target.server, path = target.tempPath
        cleanupToken = Cleanup.registerReporting({ [weak self] () -> String? in
            guard let self, self.session.withLock({ $0.storedByThisRun }) else { return nil }
            return ResumableUpload.delete(path, on: server)
        })
    }

    private static func delete(_ path: String, on server: FTPServerConfig) -> String {
        SafeUpload.removePartial(path, over: nil) {
            try FTPClient.openSession(server, timeouts: FTPTimeouts(connect: 5, reply: 5, stall: 5))
        }.signalReport(path)
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        try session.withLock { state in
            guard let upload = state.upload else { throw RescueError(target.displayName, "write", "upload not started") }
            if upload.isPaused { printVerbose("source readable again: resuming the upload at byte \(upload.position)") }
            try upload.write(bytes)
            state.lastActivity = monotonicSeconds()
        }
    }

    /// Called about once a second by the keep-alive thread.
    func keepAlive() {
        session.withLock { state in
            guard let upload = state.upload else { return }
            let idle = monotonicSeconds() - state.lastActivity
            if !upload.isPaused, idle >= idleLimit {
                do {
                    try upload.pause()
                    state.lastActivity = monotonicSeconds()
                    printError("the source gave nothing for \(Int(idle)) s; paused the upload at byte \(upload.position) "
                               + "(the server keeps it; it resumes when data comes)")
                } catch {
                    // The next write reports the broken connection and the job retries.
                }
            } else if upload.isPaused, idle >= 30 {
                try? upload.keepAlive()
                state.lastActivity = monotonicSeconds()
            }
        }
    }

    /// Ends the transfer, checks what the server holds, renames into place.
    func complete() throws -> UploadOutcome {
        try session.withLock { state in
            guard let upload = state.upload else { throw RescueError(target.label, "STOR", "not connected") }
            let outcome = try upload.commit()
            if let cleanupToken { Cleanup.unregister(cleanupToken) }
            cleanupToken = nil
            return outcome
        }
    }

    /// Stores a small file (the manifest) through the same safe upload.
    func storeSmallFile(_ path: String, contents: [UInt8]) throws {
        guard let client = session.withLock({ $0.upload?.client }) else { throw RescueError(target.label, "STOR", "not connected") }
        var options = target.options
        options.cleanupOnSignal = true
        let small = SafeUpload(client: client, remotePath: path, options: options)
        do {
            try small.start()
            try contents.withUnsafeBytes { try small.write($0) }
            try small.commit()
        } catch {
            throw small.fail(error)
        }
    }

    /// Ends this session after `error`: with `retrying` the temp file is
    /// kept for the next session; otherwise it is deleted when this run
    /// stored it (unless --keep-partial). Returns the error to report.
    func fail(_ error: Error, retrying: Bool) -> RescueError {
        let current = session.withLock { $0.upload }
        var failure = current?.fail(error, retrying: retrying)
            ?? ((error as? RescueError) ?? RescueError(target.displayName, "upload", "\(error)"))
        let stored = session.withLock { $0.storedByThisRun }
        if !retrying && stored && !(current?.started ?? false) && failure.exitCode != ExitCode.usage {
            // This session never started a transfer, but an earlier one of this run stored the file.
            failure.reason += target.options.keepPartial ? " (partial file \(target.tempPath) kept)"
                : " (" + ResumableUpload.delete(target.tempPath, on: target.server) + ")"
        }
        if !retrying {
            if let cleanupToken { Cleanup.unregister(cleanupToken) }
            cleanupToken = nil
            quit()
        }
        return failure
    }

    func quit() {
        takeUpload()?.client.quit()
    }

    /// The current session's upload, which this object forgets.
    private func takeUpload() -> SafeUpload? {
        session.withLock { state in defer { state.upload = nil }; return state.upload }
    }
}
