#if canImport(Glibc)
import Glibc
#endif
import FTP
import RescueCore

/// Where and how `backup` uploads: the server, the login, the remote name.
public struct UploadTarget {
    public var host: String
    public var port: UInt16
    public var credentials: FTPCredentials
    public var remotePath: String
    public var timeouts: FTPTimeouts
    public var mkdirs: Bool
    public var inPlace: Bool
    /// With -v: the protocol trace (passwords shown as ****).
    public var trace: ((String) -> Void)?
    /// TLS for every session the job opens (--tls, ftps://).
    public var tls = FTPTLSOptions()

    public init(host: String, port: UInt16, credentials: FTPCredentials, remotePath: String,
                timeouts: FTPTimeouts, mkdirs: Bool, inPlace: Bool) {
        self.host = host
        self.port = port
        self.credentials = credentials
        self.remotePath = remotePath
        self.timeouts = timeouts
        self.mkdirs = mkdirs
        self.inPlace = inPlace
    }

    public var tempPath: String { inPlace ? remotePath : remotePath + ".part" }
    public var label: String { FTPClient.label(host: host, port: port) }
    public var displayName: String { "ftp://\(label)/\(remotePath)" }
}

/// The FTP side of `backup`: an upload to REMOTE.part that can be resumed
/// in a new session (REST+STOR, or APPE where REST is refused) from the
/// byte the server confirms, paused while the source stalls, verified with
/// SIZE and renamed into place at the end.
///
/// Pausing: vsftpd drops a data connection that carries nothing for 300 s
/// (data_connection_timeout). When no byte was written for `idleLimit`
/// seconds, the keep-alive thread ends the transfer cleanly (226, so the
/// server keeps every byte), sends NOOP on the control connection every
/// 30 s, and the next write reopens the transfer at the same offset.
final class ResumableUpload: ByteSink {
    let target: UploadTarget
    /// Stream offset of the next byte to send (= bytes the server will hold).
    private(set) var position: UInt64 = 0
    var idleLimit: Double
    private var client: FTPClient?
    private var stream: FTPDataStream?
    private let monitor = Monitor()
    private var lastActivity = monotonicSeconds()
    private var paused = false
    private var madeDirectories = false

    init(target: UploadTarget, idleLimit: Double) {
        self.target = target
        self.idleLimit = idleLimit
    }

    /// A fresh, logged-in session (the old one, if any, is dropped).
    func connect() throws {
        monitor.locked { client?.disconnect(); client = nil; stream = nil; paused = false }
        let c = FTPClient(timeouts: target.timeouts)
        c.trace = target.trace
        c.tls = target.tls
        try c.connect(host: target.host, port: target.port)
        try c.login(user: target.credentials.user, password: target.credentials.password)
        try c.setBinary()
        if target.mkdirs && !madeDirectories, let slash = target.remotePath.lastIndex(of: "/"),
           slash != target.remotePath.startIndex {
            try c.mkdirs(String(target.remotePath[..<slash]))
            madeDirectories = true
        }
        monitor.locked { client = c }
    }

    /// Bytes the server holds at the temp name (0 when there is none).
    func serverSize() throws -> UInt64 {
        guard let client else { throw RescueError(target.label, "SIZE", "not connected") }
        return try client.size(target.tempPath) ?? 0
    }

    /// Opens the transfer so that the next byte written lands at `offset`.
    func begin(at offset: UInt64) throws {
        try monitor.locked { try open(at: offset) }
    }

    private func open(at offset: UInt64) throws {
        guard let client else { throw RescueError(target.label, "STOR", "not connected") }
        if offset == 0 {
            stream = try client.openStore(target.tempPath)
        } else {
            do {
                stream = try client.openStore(target.tempPath, restAt: offset)
            } catch let error as RescueError where error.operation.hasPrefix("REST") && client.isConnected {
                printVerbose("REST refused (\(error.reason)); appending with APPE")
                stream = try client.openStore(target.tempPath, append: true)
            }
        }
        position = offset
        paused = false
        lastActivity = monotonicSeconds()
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        try monitor.locked {
            if paused {
                printVerbose("source readable again: resuming the upload at byte \(position)")
                try open(at: position)
            }
            guard let stream else { throw RescueError(target.displayName, "write", "upload not started") }
            try stream.write(bytes)
            position += UInt64(bytes.count)
            lastActivity = monotonicSeconds()
        }
    }

    /// Called about once a second by the keep-alive thread.
    func keepAlive() {
        monitor.locked {
            let idle = monotonicSeconds() - lastActivity
            if let stream, !paused, idle >= idleLimit {
                do {
                    try stream.finish()
                    self.stream = nil
                    paused = true
                    lastActivity = monotonicSeconds()
                    printError("the source gave nothing for \(Int(idle)) s; paused the upload at byte \(position) "
                               + "(the server keeps it; it resumes when data comes)")
                } catch {
                    // The next write reports the broken connection and the job retries.
                }
            } else if paused, idle >= 30, let client {
                _ = try? client.command("NOOP")
                lastActivity = monotonicSeconds()
            }
        }
    }

    /// Ends the transfer, checks that the server holds exactly `expected`
    /// bytes and renames the temp file into place.
    func complete(expected: UInt64) throws {
        try monitor.locked {
            guard let client else { throw RescueError(target.label, "STOR", "not connected") }
            if let stream, !paused { try stream.finish() }
            stream = nil
            paused = false
            let stored = try client.size(target.tempPath)
            if let stored, stored != expected {
                throw RescueError(target.displayName, "verify",
                                  "the server stored \(stored) bytes of the \(expected) sent (SIZE after 226)")
            }
            if stored == nil { printError("warning: \(target.label) does not answer SIZE; the upload could not be verified") }
            if target.tempPath != target.remotePath {
                try client.rename(from: target.tempPath, to: target.remotePath)
            }
        }
    }

    /// Stores a small file (the manifest) with temp name, SIZE check and rename.
    func storeSmallFile(_ path: String, contents: [UInt8]) throws {
        guard let client else { throw RescueError(target.label, "STOR", "not connected") }
        let temp = path + ".part"
        let stream = try client.openStore(temp)
        try contents.withUnsafeBytes { try stream.write($0) }
        try stream.finish()
        if let stored = try client.size(temp), stored != UInt64(contents.count) {
            throw RescueError("ftp://\(target.label)/\(path)", "verify", "the server stored \(stored) of \(contents.count) bytes")
        }
        try client.rename(from: temp, to: path)
    }

    /// Gives up: drops the transfer; deletes the partial file (from a new
    /// session if this one is broken) unless `keep`. Returns what the
    /// server held, when it could be asked.
    @discardableResult
    func abandon(keep: Bool) -> UInt64? {
        let old: FTPClient? = monitor.locked {
            stream?.abort()
            stream = nil
            defer { client = nil }
            return client
        }
        // The old session may be dead without knowing it: fall back to a new one.
        var session = old
        var held: UInt64? = nil
        if let old, old.isConnected, let size = try? old.size(target.tempPath) {
            held = size
        } else {
            old?.disconnect()
            session = try? reconnectBriefly()
            held = (try? session?.size(target.tempPath)).flatMap { $0 }
        }
        if !keep, let session, held != nil {
            if (try? session.delete(target.tempPath)) != nil {
                printError("removed the partial upload \(target.tempPath)")
            }
        }
        session?.quit()
        return held
    }

    func quit() {
        monitor.locked { client?.quit(); client = nil }
    }

    private func reconnectBriefly() throws -> FTPClient {
        let c = FTPClient(timeouts: FTPTimeouts(connect: 5, reply: 5, stall: 5))
        c.tls = target.tls
        try c.connect(host: target.host, port: target.port)
        try c.login(user: target.credentials.user, password: target.credentials.password)
        return c
    }
}
