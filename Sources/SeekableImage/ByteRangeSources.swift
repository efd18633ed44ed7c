// Random-access byte sources for a seekable image: a local file (pread,
// LZOP's LzopFileAccess) and a file on an FTP server (REST + RETR, each
// transfer ended as soon as the bytes needed have arrived).
import FTP
import LZOP
import RescueCore

#if canImport(Glibc)
import Glibc
#endif

/// A file on an FTP server read at random: REST offset, RETR, read the
/// bytes wanted, then close the data connection (the server answers 426,
/// or 226 when it had sent everything already) so the session can go on.
/// A small pool of logged-in sessions serves parallel reads. A dropped
/// connection (or any failed transfer) is reconnected and the read retried
/// from where it stopped, up to `retries` times.
public final class FTPRangeSource: LzopRandomAccess, @unchecked Sendable {
    public let path: String
    /// How messages name it: `host:port/path`.
    public let name: String
    public let size: UInt64
    public let retries: Int
    /// Called (from the reading thread) before each reconnect.
    public var onRetry: ((Error) -> Void)?

    private let connect: () throws -> FTPClient
    private let monitor = Monitor()
    private var idle: [FTPClient] = []
    private var open = 0
    private let maxSessions: Int
    private var received: UInt64 = 0
    private var transfers = 0

    /// `connect` opens one logged-in binary session (the applet's
    /// credentials and timeouts). The first session is opened here and asks
    /// for the file's SIZE.
    public init(path: String, name: String, sessions: Int, retries: Int = 5,
                connect: @escaping () throws -> FTPClient) throws {
        self.path = path
        self.name = name
        self.retries = retries
        self.connect = connect
        maxSessions = max(1, sessions)
        let first = try connect()
        switch try first.remoteSize(path) {
        case .bytes(let n): size = n
        case .absent: throw RescueError(name, "SIZE", "no such file on the server")
        case .unknown(let why): throw RescueError(name, "SIZE", "the image's size is needed for random reads: \(why)")
        }
        idle = [first]
        open = 1
    }

    /// Bytes received on data connections, and transfers started.
    public var statistics: (bytes: UInt64, transfers: Int) { monitor.locked { (received, transfers) } }

    /// The whole of a small file beside the image (its index), or nil when
    /// the server has no such file.
    public func fetchSmallFile(_ remote: String, limit: Int = 1 << 30) throws -> [UInt8]? {
        let client = try take()
        var keep = false
        defer { give(keep ? client : nil) }
        if case .absent = try client.remoteSize(remote) { keep = true; return nil }
        let stream = try client.openRetrieve(remote)
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = try chunk.withUnsafeMutableBytes { try stream.read(into: $0) }
            if n == 0 { break }
            bytes += chunk[0..<n]
            guard bytes.count <= limit else {
                stream.abort()
                throw RescueError(remote, "RETR", "more than \(limit) bytes: too large for an index")
            }
        }
        try stream.finish()
        keep = true
        return bytes
    }

    /// Streams the whole image once through `consume` (mount --scan).
    public func streamAll(_ consume: (UnsafeRawBufferPointer) throws -> Void) throws {
        let client = try take()
        var keep = false
        defer { give(keep ? client : nil) }
        let stream = try client.openRetrieve(path)
        let chunk = AlignedBuffer(capacity: 1 << 20)
        while true {
            let n = try stream.read(into: UnsafeMutableRawBufferPointer(start: chunk.pointer, count: chunk.capacity))
            if n == 0 { break }
            monitor.locked { received += UInt64(n) }
            try consume(UnsafeRawBufferPointer(start: chunk.pointer, count: n))
        }
        try stream.finish()
        keep = true
    }

    public func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard offset < size, buffer.count > 0 else { return 0 }
        let want = Int(min(UInt64(buffer.count), size - offset))
        var filled = 0
        var failures = 0
        while true {
            var client: FTPClient?
            do {
                client = try take()
                monitor.locked { transfers += 1 }
                let stream = try client!.openRetrieve(path, restAt: offset + UInt64(filled), expectedBytes: want - filled)
                let n = try stream.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[filled..<want]))
                filled += n
                monitor.locked { received += stream.bytesTransferred }
                if filled < want {
                    // The data connection ended early: a 226 means the file
                    // is shorter than SIZE said; anything else is a drop.
                    try stream.finish()
                    give(client)
                    throw FTPRangeShortFile(got: offset + UInt64(filled))
                }
                stream.abort()
                give(client)
                return filled
            } catch let error as FTPRangeShortFile {
                throw RescueError(name, "RETR at \(offset)", "the file ended at \(error.got) bytes, SIZE said \(size)")
            } catch {
                client?.disconnect()
                if client != nil { give(nil) }
                failures += 1
                if failures > retries { throw error }
                onRetry?(error)
                usleep(useconds_t(min(failures, 5)) * 200_000)
            }
        }
    }

    private struct FTPRangeShortFile: Error { var got: UInt64 }

    private func take() throws -> FTPClient {
        let reuse: FTPClient? = monitor.locked {
            while idle.isEmpty && open >= maxSessions { monitor.wait() }
            if let c = idle.popLast() { return c }
            open += 1
            return nil
        }
        if let reuse { return reuse }
        do {
            return try connect()
        } catch {
            give(nil)
            throw error
        }
    }

    /// Returns a session to the pool; nil (or a disconnected one) frees its slot.
    private func give(_ client: FTPClient?) {
        monitor.locked {
            if let client, client.isConnected { idle.append(client) } else { open -= 1 }
            monitor.broadcast()
        }
    }

    /// QUIT on every idle session.
    public func close() {
        let sessions: [FTPClient] = monitor.locked { defer { idle.removeAll() }; return idle }
        for s in sessions { s.quit() }
    }
}
