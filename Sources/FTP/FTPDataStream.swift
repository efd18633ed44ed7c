#if canImport(Glibc)
import Glibc
#endif
import RescueCore
import CShim

/// One passive data connection, opened by `FTPClient.openStore` or
/// `openRetrieve`. As a `ByteSink` it sends (with the stall timeout; a
/// reply the server sends on the control connection meanwhile, such as
/// 552 or 451, ends the transfer with that reason); as a `ByteSource` it
/// receives. `finish()` closes it and waits for the server's 226.
public final class FTPDataStream: ByteSink, ByteSource {
    public let client: FTPClient
    /// "STOR path" / "RETR path", for messages.
    public let command: String
    public let isUpload: Bool
    /// Bytes sent or received so far on this connection.
    public private(set) var bytesTransferred: UInt64 = 0
    private let socket: Socket
    private var done = false

    init(client: FTPClient, socket: Socket, command: String, upload: Bool) {
        self.client = client
        self.socket = socket
        self.command = command
        self.isUpload = upload
    }

    deinit { socket.close() }

    /// TLS on this data connection: bytes go through SSL_write/SSL_read.
    public var isEncrypted: Bool { socket.tls != nil }
    /// The server runs on this host (loopback, or our own address).
    public var serverIsThisHost: Bool { socket.peerIsThisHost }

    /// Sends all of `bytes`.
    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < bytes.count {
            let rest = UnsafeRawBufferPointer(rebasing: bytes[offset...])
            let before = bytesTransferred
            do {
                let complete = try sendTracking(rest)
                if complete { return }
            } catch let error as RescueError {
                throw explain(error)
            }
            offset += Int(bytesTransferred - before)
            try checkControl()
        }
    }

    /// send() loop that counts every byte accepted by the kernel; false when
    /// it stopped early because the control connection has something to say.
    private func sendTracking(_ bytes: UnsafeRawBufferPointer) throws -> Bool {
        let watch = client.controlDescriptor
        if let tls = socket.tls {
            try secure(tls)
            return try tls.send(bytes, timeout: client.timeouts.stall, what: "send", watch: watch) {
                self.bytesTransferred += UInt64($0)
            }
        }
        var done = 0
        while done < bytes.count {
            let n = Glibc.send(socket.fd, bytes.baseAddress! + done, bytes.count - done, Int32(MSG_NOSIGNAL))
            if n >= 0 { done += n; bytesTransferred += UInt64(n); continue }
            let err = lastErrno()
            if err == EINTR { continue }
            guard err == EAGAIN || err == EWOULDBLOCK else { throw RescueError(socket.label, "send", errno: err).with(kind: .connection) }
            switch try socket.wait(events: Int16(POLLOUT), timeout: client.timeouts.stall, other: watch) {
            case .ready: continue
            case .otherReady: return false
            case .timedOut: throw stallError()
            }
        }
        return true
    }

    /// Sends a regular file's bytes from its current offset with
    /// sendfile(2) (no copy through user space) until end of file or
    /// `limit` bytes; returns the bytes sent. `progress` gets the running
    /// total of this call.
    public func sendFile(descriptor: Int32, limit: UInt64? = nil, progress: ((UInt64) -> Void)? = nil) throws -> UInt64 {
        try refuseZeroCopyOnTLS("sendfile")
        var sent: UInt64 = 0
        let watch = client.controlDescriptor
        let chunk: UInt64 = 8 << 20
        while limit == nil || sent < limit! {
            let want = Int(min(chunk, (limit ?? UInt64.max) - sent))
            let n = Glibc.sendfile(socket.fd, descriptor, nil, want)
            if n > 0 {
                sent += UInt64(n)
                bytesTransferred += UInt64(n)
                progress?(sent)
                continue
            }
            if n == 0 { break }
            let err = lastErrno()
            if err == EINTR { continue }
            if err == EAGAIN || err == EWOULDBLOCK {
                switch try socket.wait(events: Int16(POLLOUT), timeout: client.timeouts.stall, other: watch) {
                case .ready: continue
                case .otherReady: try checkControl(); continue
                case .timedOut: throw stallError()
                }
            }
            if err == EINVAL || err == ENOSYS {
                throw RescueError(socket.label, "sendfile", errno: err).with(kind: .zeroCopyUnsupported)
            }
            throw explain(RescueError(socket.label, "send", errno: err).with(kind: .connection))
        }
        return sent
    }

    /// Moves bytes to the data connection with splice(2), without copying
    /// them through user space: straight from `descriptor` when it is a
    /// pipe (stdin or a `|COMMAND`), else (a regular file, from its current
    /// offset) through an intermediate 1 MiB pipe. Stops at end of input;
    /// returns the bytes sent. Throws a RescueError with operation "splice"
    /// when the kernel refuses before anything was sent (use `write`).
    public func splice(from descriptor: Int32, isPipe: Bool, progress: ((UInt64) -> Void)? = nil) throws -> UInt64 {
        try refuseZeroCopyOnTLS("splice")
        let chunk = 1 << 20
        var sent: UInt64 = 0
        if isPipe {
            _ = rb_set_pipe_size(descriptor, Int32(chunk))
            while true {
                let n = rb_splice(descriptor, socket.fd, UInt(chunk), 1)
                if n > 0 {
                    sent += UInt64(n); bytesTransferred += UInt64(n); progress?(sent)
                    continue
                }
                if n == 0 { return sent }
                try handleSpliceError(lastErrno(), sent: sent)
            }
        }
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw RescueError(socket.label, "splice", errno: lastErrno()).with(kind: .zeroCopyUnsupported) }
        defer { _ = Glibc.close(fds[0]); _ = Glibc.close(fds[1]) }
        _ = rb_set_pipe_size(fds[1], Int32(chunk))
        while true {
            let n = rb_splice(descriptor, fds[1], UInt(chunk), 0)
            if n == 0 { return sent }
            if n < 0 {
                let err = lastErrno()
                if err == EINTR { continue }
                if sent == 0 && (err == EINVAL || err == ENOSYS) { throw RescueError(socket.label, "splice", errno: err).with(kind: .zeroCopyUnsupported) }
                throw RescueError("input", "read at offset \(sent)", errno: err).with(kind: .source)
            }
            var inPipe = n
            while inPipe > 0 {
                let m = rb_splice(fds[0], socket.fd, UInt(inPipe), 1)
                if m > 0 {
                    inPipe -= m
                    sent += UInt64(m); bytesTransferred += UInt64(m); progress?(sent)
                    continue
                }
                try handleSpliceError(m == 0 ? EPIPE : lastErrno(), sent: sent)
            }
        }
    }

    /// EINTR/EAGAIN: wait (stall timeout, watching the control connection);
    /// anything else throws.
    private func handleSpliceError(_ err: Int32, sent: UInt64) throws {
        if err == EINTR { return }
        if err == EAGAIN || err == EWOULDBLOCK {
            switch try socket.wait(events: Int16(POLLOUT), timeout: client.timeouts.stall, other: client.controlDescriptor) {
            case .ready: return
            case .otherReady: try checkControl(); return
            case .timedOut: throw stallError()
            }
        }
        if sent == 0 && (err == EINVAL || err == ENOSYS) { throw RescueError(socket.label, "splice", errno: err).with(kind: .zeroCopyUnsupported) }
        throw explain(RescueError(socket.label, "send", errno: err).with(kind: .connection))
    }

    /// Receives until `buffer` is full or the server closes the data
    /// connection (end of file); fails when nothing arrives for the stall
    /// timeout.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        var filled = 0
        if let tls = socket.tls {
            try secure(tls)
            // As plain downloads: a blocking socket with SO_RCVTIMEO, so
            // SSL_read waits in recv instead of a poll per record.
            makeReceiveBlocking()
            tls.blockingReads = true
            while filled < buffer.count {
                let n = try tls.receive(into: UnsafeMutableRawBufferPointer(rebasing: buffer[filled...]),
                                        timeout: client.timeouts.stall, what: "receive",
                                        timeoutReason: "no progress for \(formatSeconds(client.timeouts.stall)) (stall timeout)")
                if n == 0 { break }
                filled += n
                bytesTransferred += UInt64(n)
            }
            return filled
        }
        makeReceiveBlocking()
        while filled < buffer.count {
            let n = Glibc.recv(socket.fd, buffer.baseAddress! + filled, buffer.count - filled, Int32(MSG_WAITALL))
            if n == 0 { break }
            if n < 0 {
                let err = lastErrno()
                if err == EINTR { continue }
                if err == EAGAIN || err == EWOULDBLOCK { throw stallError() }
                throw RescueError(socket.label, "receive", errno: err).with(kind: .connection)
            }
            filled += n
            bytesTransferred += UInt64(n)
        }
        return filled
    }

    /// Receives to `descriptor` with splice(2), without copying through
    /// user space: straight into it when it is a pipe (stdout into `ddz
    /// -d`), else (a regular file, at its current offset) through a 1 MiB
    /// pipe. Runs to the end of the data; returns the bytes received.
    /// Throws a RescueError with operation "splice" when the kernel refuses
    /// before anything was received (use `read`). `output` names the
    /// descriptor in errors.
    public func splice(to descriptor: Int32, isPipe: Bool, output: String, progress: ((UInt64) -> Void)? = nil) throws -> UInt64 {
        try refuseZeroCopyOnTLS("splice")
        makeReceiveBlocking()
        let chunk = 1 << 20
        var received: UInt64 = 0
        func fail(_ err: Int32, reading: Bool) throws -> Never {
            if received == 0 && (err == EINVAL || err == ENOSYS) { throw RescueError(socket.label, "splice", errno: err).with(kind: .zeroCopyUnsupported) }
            if reading {
                if err == EAGAIN || err == EWOULDBLOCK { throw stallError() }
                throw RescueError(socket.label, "receive", errno: err).with(kind: .connection)
            }
            throw RescueError(output, "write", errno: err)
        }
        if isPipe {
            while true {
                let n = rb_splice(socket.fd, descriptor, UInt(chunk), 1)
                if n > 0 { received += UInt64(n); bytesTransferred += UInt64(n); progress?(received); continue }
                if n == 0 { return received }
                let err = lastErrno()
                if err == EINTR { continue }
                // Which side failed: EAGAIN/ECONNRESET are the socket's.
                try fail(err, reading: err == EAGAIN || err == EWOULDBLOCK || err == ECONNRESET || err == ETIMEDOUT)
            }
        }
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw RescueError(socket.label, "splice", errno: lastErrno()).with(kind: .zeroCopyUnsupported) }
        defer { _ = Glibc.close(fds[0]); _ = Glibc.close(fds[1]) }
        _ = rb_set_pipe_size(fds[1], Int32(chunk))
        while true {
            let n = rb_splice(socket.fd, fds[1], UInt(chunk), 1)
            if n == 0 { return received }
            if n < 0 {
                let err = lastErrno()
                if err == EINTR { continue }
                try fail(err, reading: true)
            }
            var inPipe = n
            while inPipe > 0 {
                let m = rb_splice(fds[0], descriptor, UInt(inPipe), 0)
                if m > 0 {
                    inPipe -= m
                    received += UInt64(m); bytesTransferred += UInt64(m); progress?(received)
                    continue
                }
                let err = m == 0 ? EIO : lastErrno()
                if err == EINTR { continue }
                try fail(err, reading: false)
            }
        }
    }

    private func makeReceiveBlocking() {
        if !blockingReceive {
            // Downloads: a blocking socket with SO_RCVTIMEO and MSG_WAITALL
            // fills the buffer in one call (no poll per packet); the
            // timeout, restarted by every byte, is the stall timeout.
            blockingReceive = true
            let flags = fcntl(socket.fd, F_GETFL)
            _ = fcntl(socket.fd, F_SETFL, flags & ~O_NONBLOCK)
            let stall = client.timeouts.stall
            var tv = timeval(tv_sec: Int(stall), tv_usec: Int((stall - Double(Int(stall))) * 1e6))
            setsockopt(socket.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        }
    }
    private var blockingReceive = false

    /// Closes the data connection and waits for the server's verdict
    /// (226/250). Throws the server's reply when it is anything else.
    @discardableResult
    public func finish() throws -> FTPReply {
        guard !done else { throw RescueError(client.label, command, "transfer already finished") }
        if let tls = socket.tls {
            // Even an empty transfer has its handshake; an upload ends with close_notify.
            try secure(tls)
            if isUpload { tls.shutdown(timeout: min(client.timeouts.stall, 5)) }
        }
        done = true
        socket.close()
        var reply = try client.readReply(for: command)
        while reply.isPreliminary { reply = try client.readReply(for: command) }
        guard reply.isSuccess else { throw client.failure(command, reply) }
        return reply
    }

    /// Ends the transfer early: closes the data connection, sends ABOR and
    /// reads whatever the transfer and the ABOR were answered with, up to
    /// the reply to a NOOP, so the control connection is in step again (or
    /// dropped when the server does not answer). Errors are ignored.
    public func abort() {
        guard !done else { return }
        done = true
        socket.close()
        client.abortTransfer()
    }

    /// The data connection's TLS handshake (after the server's 1xx, as
    /// RFC 4217 orders it), resuming the control connection's session.
    private func secure(_ tls: TLSStream) throws {
        guard !tls.isHandshaken else { return }
        do {
            try tls.handshake(timeout: client.timeouts.connect, trace: client.trace, isData: true)
        } catch let error as RescueError {
            throw explain(error)
        }
    }

    /// splice/sendfile move plaintext: a TLS data connection refuses them
    /// (kind .zeroCopyUnsupported, nothing sent) so callers copy through
    /// `write`/`read`, which go through SSL_write/SSL_read.
    private func refuseZeroCopyOnTLS(_ operation: String) throws {
        if socket.tls != nil {
            throw RescueError(socket.label, operation, "not used on a TLS data connection (bytes go through SSL_write)")
                .with(kind: .zeroCopyUnsupported)
        }
    }

    private func stallError() -> RescueError {
        RescueError(client.label, command, "no progress for \(formatSeconds(client.timeouts.stall)) (stall timeout)")
            .with(kind: .connection)
    }

    /// A reply arrived on the control connection mid-transfer: an error
    /// reply ends the upload with the server's reason.
    private func checkControl() throws {
        guard client.controlHasInput() else { return }
        let reply = try client.readReply(for: command)
        if reply.isPreliminary { return }
        done = true
        socket.close()
        if reply.isSuccess {
            throw RescueError(client.label, command, "the server ended the transfer early: \(reply)").with(kind: .connection)
        }
        throw client.failure(command, reply)
    }

    /// A failed send: ask the control connection why (the server's reply,
    /// such as 552 or 426, beats "Broken pipe").
    private func explain(_ error: RescueError) -> RescueError {
        guard !done, client.isConnected else { return error }
        done = true
        socket.close()
        if let reply = try? client.readReply(for: command, timeout: min(client.timeouts.reply, 5)), !reply.isSuccess {
            var refused = client.failure(command, reply)
            refused.reason += " (data connection: \(error.reason))"
            return refused
        }
        return error
    }
}
