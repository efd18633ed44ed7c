/// A sink whose destination opens on its own thread while the producer
/// already runs: `backup`'s first session logs in and opens its STOR while
/// the compressor starts, instead of the compressor waiting for it (vsftpd's
/// login alone takes about 65 ms: its password hash).
///
/// Until the destination is open, what is written is kept in memory, at
/// most `limit` bytes; a write beyond that waits. The opening thread sends
/// what was kept as soon as the destination is open (a source that then
/// stalls must not leave it in memory), and every later write goes
/// straight through, in order. When the opening fails, the next write (or
/// `waitUntilOpen`) throws its error and nothing reaches `inner`;
/// `openError()` tells the caller that the error came from the opening.
public final class OverlappedOpen: ByteSink {
    private enum Phase {
        case opening
        case open
        case openFailed(Error)
        /// Open, but sending the kept bytes failed: a transfer error.
        case sendFailed(Error)
    }

    private let inner: ByteSink
    private let limit: Int
    private let monitor = Monitor()
    private var phase = Phase.opening
    private var kept: [UInt8] = []
    /// The writer's own copy of "open" (read without the lock).
    private var writerSawOpen = false
    private var opener: WorkerThread?

    public init(inner: ByteSink, limit: Int = 32 << 20, open: @escaping () throws -> Void) {
        self.inner = inner
        self.limit = limit
        // The thread keeps the object alive until the opening has ended.
        opener = WorkerThread { [self] in
            var openError: Error?
            do { try open() } catch { openError = error }
            monitor.locked {
                if let openError {
                    phase = .openFailed(openError)
                } else {
                    do {
                        try kept.withUnsafeBytes { try inner.write($0) }
                        phase = .open
                    } catch {
                        phase = .sendFailed(error)
                    }
                    kept = []
                }
                monitor.broadcast()
            }
        }
    }

    deinit { opener?.join() }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        if !writerSawOpen {
            let keptHere = try monitor.locked { () throws -> Bool in
                while true {
                    switch phase {
                    case .open: return false
                    case .openFailed(let error), .sendFailed(let error): throw error
                    case .opening:
                        if kept.count + bytes.count <= limit {
                            kept.append(contentsOf: bytes)
                            return true
                        }
                        monitor.wait()
                    }
                }
            }
            if keptHere { return }
            writerSawOpen = true
        }
        try inner.write(bytes)
    }

    /// Waits until the destination is open and what was kept is sent;
    /// throws the opening's (or that send's) error. Call it when the
    /// producer is done.
    public func waitUntilOpen() throws {
        opener?.join()
        try monitor.locked {
            switch phase {
            case .open, .opening: return
            case .openFailed(let error), .sendFailed(let error): throw error
            }
        }
    }

    /// Waits for the opening to end; its error, nil when it succeeded (a
    /// failed job asks, to know whether a transfer was open).
    public func openError() -> Error? {
        opener?.join()
        return monitor.locked {
            if case .openFailed(let error) = phase { return error }
            return nil
        }
    }
}
