#if canImport(Glibc)
import Glibc
#endif
import FTP
import RescueCore

/// The FTP side of `restore`: a retry policy around the one `SafeDownload`.
/// The decoder reads a plain byte stream from it; when the connection
/// drops (or the server ends the transfer short of SIZE), it reconnects
/// with doubling waits and continues with REST at the exact byte where the
/// stream stopped, so the decoder never notices and the output is
/// byte-exact. End of data counts only once the server's 226 (and SIZE,
/// when known) agree. A reconnect that brings no new byte ends the job.
final class ResumingDownload: ByteSource {
    let server: FTPServerConfig
    let remotePath: String
    let retries: Int
    let firstDelay: Double
    private(set) var reconnects = 0
    /// Stream bytes handed to the reader so far.
    private(set) var position: UInt64 = 0
    private(set) var expectedSize: UInt64?
    private var client: FTPClient?
    private var download: SafeDownload?
    private var finished = false
    private var lastFailureAt: UInt64?

    init(server: FTPServerConfig, remotePath: String, retries: Int, retryDelay: Double) {
        self.server = server
        self.remotePath = remotePath
        self.retries = retries
        self.firstDelay = retryDelay
    }

    var displayName: String { server.displayName(remotePath) }

    /// An open session for small requests before the transfer (the manifest).
    func session() throws -> FTPClient {
        if let client, client.isConnected { return client }
        let c = try FTPClient.openSession(server)
        client = c
        return c
    }

    /// Learns the size and starts the transfer at byte 0.
    func start() throws {
        let d = SafeDownload(client: try session(), remotePath: remotePath)
        try d.start(at: 0)
        expectedSize = d.expectedSize
        download = d
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        var delay = firstDelay
        while true {
            if finished { return 0 }
            var verdict = false
            do {
                guard let download else {
                    throw reopenError ?? RescueError(displayName, "RETR", "not connected").with(kind: .connection)
                }
                let n = try download.read(into: buffer)
                if n > 0 {
                    position += UInt64(n)
                    return n
                }
                verdict = true
                try download.finish()
                finished = true
                return 0
            } catch let error as RescueError where ResumingDownload.mayResume(error, afterData: verdict) {
                // A reconnect that could not even connect is not judged by
                // progress (the server may be restarting); one that resumed is.
                let resumed = download != nil
                download?.abandon()
                let progressed = !resumed || (lastFailureAt.map { position > $0 } ?? true)
                if resumed { lastFailureAt = position }
                guard progressed, reconnects < retries, !Cleanup.isInterrupted else {
                    var final = error
                    final.object = displayName
                    final.operation = "RETR"
                    final.reason = "connection lost after \(position)" + (expectedSize.map { " of \($0)" } ?? "")
                        + " bytes" + (reconnects > 0 ? " and \(reconnects) reconnects" : "") + ": \(error.reason)"
                    throw final
                }
                reconnects += 1
                printError("\(displayName): connection lost after \(position) bytes (\(error.reason)); "
                           + "reconnecting in \(formatFixed(delay, decimals: 0)) s (attempt \(reconnects) of \(retries))")
                usleep(UInt32(delay * 1_000_000))
                delay = min(delay * 2, 60)
                reopen()
            }
        }
    }

    /// A lost connection, a transient (4xx) reply, or any bad verdict after
    /// the data connection ended (vsftpd's "500 OOPS: child died" when its
    /// session process is killed) may go away in a new session. A refusal
    /// to start (550, 530) does not.
    static func mayResume(_ error: RescueError, afterData: Bool) -> Bool {
        switch error.kind {
        case .connection: return true
        case .serverRefused: return afterData || (400..<500).contains(error.replyCode ?? 0)
        default: return false
        }
    }

    private var reopenError: RescueError?

    /// A new session continuing at `position`. A failure here leaves
    /// `download` nil and its error for the next read to judge.
    private func reopen() {
        client?.disconnect()
        client = nil
        download = nil
        reopenError = nil
        do {
            let d = SafeDownload(client: try session(), remotePath: remotePath)
            d.expect(size: expectedSize)
            try d.start(at: position)
            download = d
        } catch {
            reopenError = (error as? RescueError) ?? RescueError(displayName, "RETR", "\(error)")
            client?.disconnect()
            client = nil
        }
    }

    /// Ends a failed restore: aborts the transfer (ABOR) and leaves the session.
    func close() {
        download?.abandon()
        client?.quit()
        client = nil
    }
}
