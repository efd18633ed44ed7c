#if canImport(Glibc)
import Glibc
#endif
import RescueCore

/// A download that knows how many bytes to expect (SIZE before RETR) and
/// calls a short transfer an error, even when the server says 226.
///
///     let down = SafeDownload(client: ftp, remotePath: "img/sda.lzo")
///     try down.start(at: alreadyHave)          // SIZE, REST, RETR
///     while case let n = try down.read(into: buf), n > 0 { ... }
///     try down.finish()                        // 226 and the byte count
public final class SafeDownload: ByteSource {
    public let client: FTPClient
    public let remotePath: String
    /// SIZE before the transfer; nil when the server does not say.
    public private(set) var expectedSize: UInt64?
    public private(set) var startOffset: UInt64 = 0
    private var stream: FTPDataStream?
    private var received: UInt64 = 0

    public init(client: FTPClient, remotePath: String) {
        self.client = client
        self.remotePath = remotePath
    }

    public var displayName: String { "ftp://\(client.label)/\(remotePath)" }

    /// Bytes received in this session.
    public var bytesReceived: UInt64 { stream?.bytesTransferred ?? received }

    /// Learns the size (SIZE, else MLST, else LIST; a server that tells
    /// none is downloaded unchecked, and the caller relies on the data's
    /// own checks), then REST `offset` and RETR (a missing file fails there,
    /// with the server's reply).
    public func start(at offset: UInt64 = 0) throws {
        try checkSafeForControl(remotePath, what: "remote path")
        if expectedSize == nil {
            switch try client.remoteSize(remotePath) {
            case .bytes(let n): expectedSize = n
            case .absent: printVerbose("\(remotePath): the server says no such file; trying RETR anyway")
            case .unknown(let why): printVerbose("\(remotePath): \(why); the download's length cannot be checked")
            }
        }
        if let expectedSize, offset > expectedSize {
            throw RescueError(displayName, "resume", "the local partial file has \(offset) bytes, more than the \(expectedSize) on the server")
        }
        startOffset = offset
        received = 0
        stream = try client.openRetrieve(remotePath, restAt: offset > 0 ? offset : nil)
    }

    /// The size to expect, when the caller already knows it (a resumed
    /// download in a new session).
    public func expect(size: UInt64?) { expectedSize = size }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard let stream else { return 0 }
        return try stream.read(into: buffer)
    }

    /// Receives everything into `descriptor` with splice(2) (see
    /// FTPDataStream.splice(to:)).
    @discardableResult
    public func splice(to descriptor: Int32, isPipe: Bool, output: String, progress: ((UInt64) -> Void)? = nil) throws -> UInt64 {
        guard let stream else { return 0 }
        return try stream.splice(to: descriptor, isPipe: isPipe, output: output, progress: progress)
    }

    /// Waits for the 226 and checks the total against SIZE. Returns the
    /// total size (start offset + bytes received).
    @discardableResult
    public func finish() throws -> UInt64 {
        guard let stream else { throw RescueError(displayName, "finish", "download not started") }
        received = stream.bytesTransferred
        self.stream = nil
        try stream.finish()
        let total = startOffset + received
        if let expectedSize, total < expectedSize {
            throw RescueError(displayName, "RETR", "short transfer: \(total) of \(expectedSize) bytes (the server said 226)")
                .with(kind: .connection)
        }
        if let expectedSize, total > expectedSize {
            throw RescueError(displayName, "RETR", "received \(total) bytes, more than the \(expectedSize) the server announced")
        }
        return total
    }

    /// Ends the transfer early (ABOR), without a verdict.
    public func abandon() {
        if let stream {
            received = stream.bytesTransferred
            stream.abort()
            self.stream = nil
        }
    }

    /// Ends a failed download and returns the error to report, with the
    /// byte count.
    public func fail(_ error: Error) -> RescueError {
        var base = (error as? RescueError) ?? RescueError(displayName, "download", "\(error)")
        if let stream {
            received = stream.bytesTransferred
            stream.abort()
            self.stream = nil
        }
        if base.exitCode == ExitCode.usage { return base }
        base = client.relabel(base, path: remotePath)
        let total = startOffset + received
        base.reason += " (\(total) bytes received" + (expectedSize.map { " of \($0)" } ?? "") + ")"
        return base
    }
}
