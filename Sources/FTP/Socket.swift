#if canImport(Glibc)
import Glibc
#endif
import RescueCore

/// An IPv4 or IPv6 address with a port. Built from literals with
/// inet_pton (no name service involved).
public struct FTPAddress: Equatable, CustomStringConvertible, Sendable {
    /// 4 bytes (IPv4) or 16 bytes (IPv6), network order.
    public let bytes: [UInt8]
    public var port: UInt16

    public init?(bytes: [UInt8], port: UInt16) {
        guard bytes.count == 4 || bytes.count == 16 else { return nil }
        self.bytes = bytes
        self.port = port
    }

    /// Parses a numeric literal: `192.0.2.1`, `::1`, `[::1]`.
    public init?(literal: String, port: UInt16) {
        var text = literal
        if text.hasPrefix("[") && text.hasSuffix("]") { text = String(text.dropFirst().dropLast()) }
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            self.init(bytes: withUnsafeBytes(of: &v4) { Array($0) }, port: port)
            return
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            self.init(bytes: withUnsafeBytes(of: &v6) { Array($0) }, port: port)
            return
        }
        return nil
    }

    public var isIPv6: Bool { bytes.count == 16 }

    /// 127.0.0.0/8, ::1 or ::ffff:127.x.x.x.
    public var isLoopback: Bool {
        if !isIPv6 { return bytes[0] == 127 }
        if bytes[0..<15].allSatisfy({ $0 == 0 }) && bytes[15] == 1 { return true }
        return bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xFF && bytes[11] == 0xFF && bytes[12] == 127
    }

    /// `127.0.0.1` or `::1`.
    public var host: String {
        var text = [CChar](repeating: 0, count: 64)
        bytes.withUnsafeBytes { raw in
            _ = inet_ntop(isIPv6 ? AF_INET6 : AF_INET, raw.baseAddress, &text, socklen_t(text.count))
        }
        return String(cString: text)
    }

    /// `127.0.0.1:21` or `[::1]:21`.
    public var description: String { isIPv6 ? "[\(host)]:\(port)" : "\(host):\(port)" }

    func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        if isIPv6 {
            var sa = sockaddr_in6()
            sa.sin6_family = sa_family_t(AF_INET6)
            sa.sin6_port = port.bigEndian
            withUnsafeMutableBytes(of: &sa.sin6_addr) { $0.copyBytes(from: bytes) }
            return Self.asSockaddr(&sa, body)
        }
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = port.bigEndian
        withUnsafeMutableBytes(of: &sa.sin_addr) { $0.copyBytes(from: bytes) }
        return Self.asSockaddr(&sa, body)
    }

    /// A sockaddr_in or sockaddr_in6 seen as the generic sockaddr and its length.
    private static func asSockaddr<S, R>(_ sa: inout S, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<S>.size)) }
        }
    }

    static func from(_ storage: sockaddr_storage) -> FTPAddress? {
        var copy = storage
        switch Int32(storage.ss_family) {
        case AF_INET:
            return withUnsafePointer(to: &copy) {
                $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { p in
                    var a = p.pointee.sin_addr
                    return FTPAddress(bytes: withUnsafeBytes(of: &a) { Array($0) }, port: UInt16(bigEndian: p.pointee.sin_port))
                }
            }
        case AF_INET6:
            return withUnsafePointer(to: &copy) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { p in
                    var a = p.pointee.sin6_addr
                    return FTPAddress(bytes: withUnsafeBytes(of: &a) { Array($0) }, port: UInt16(bigEndian: p.pointee.sin6_port))
                }
            }
        default: return nil
        }
    }
}

/// What a wait on a socket ended with.
enum SocketWait { case ready, otherReady, timedOut }

/// A non-blocking TCP (or UDP) socket whose every wait goes through poll()
/// with a timeout, so nothing the server does (or fails to do) can hang
/// the client. Errors name `label` ("127.0.0.1:21 data connection").
final class Socket {
    let fd: Int32
    let label: String
    /// TLS on this connection (TLS.swift), once started: sends and
    /// receives then go through it.
    var tls: TLSStream?
    private var closed = false

    init(fd: Int32, label: String) {
        self.fd = fd
        self.label = label
    }

    deinit { close() }

    func close() {
        guard !closed else { return }
        closed = true
        _ = Glibc.close(fd)
    }

    static func socketType(_ type: __socket_type) -> Int32 {
        Int32(type.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue)
    }

    /// Connects within `timeout` seconds.
    /// `limit` (receive buffer, segment size) caps what a peer can have in
    /// flight towards us: for reads that end early (FTPClient.rangedReceiveLimit).
    static func connect(to address: FTPAddress, timeout: Double, label: String, bufferSize: Int? = nil,
                        limit: (receiveBuffer: Int, segmentSize: Int?)? = nil) throws -> Socket {
        let fd = Glibc.socket(address.isIPv6 ? AF_INET6 : AF_INET, socketType(SOCK_STREAM), 0)
        guard fd >= 0 else { throw RescueError(label, "socket", errno: lastErrno()).with(kind: .connection) }
        let socket = Socket(fd: fd, label: label)
        if let limit {
            var buffer = Int32(clamping: limit.receiveBuffer)
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buffer, socklen_t(MemoryLayout<Int32>.size))
            if let segmentSize = limit.segmentSize {
                var segment = Int32(clamping: segmentSize)
                setsockopt(fd, Int32(IPPROTO_TCP), TCP_MAXSEG, &segment, socklen_t(MemoryLayout<Int32>.size))
            }
        } else if let bufferSize {
            socket.setBufferSize(bufferSize)
        }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        let rc = address.withSockaddr { Glibc.connect(fd, $0, $1) }
        if rc != 0 {
            let err = lastErrno()
            guard err == EINPROGRESS || err == EINTR else {
                throw RescueError(label, "connect to \(address)", errno: err).with(kind: .connection)
            }
            switch try socket.wait(events: Int16(POLLOUT), timeout: timeout) {
            case .ready: break
            case .timedOut, .otherReady:
                throw RescueError(label, "connect to \(address)", "no answer within \(formatSeconds(timeout)) (connect timeout)").with(kind: .connection)
            }
            var soError: Int32 = 0
            var len = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &soError, &len)
            if soError != 0 { throw RescueError(label, "connect to \(address)", errno: soError).with(kind: .connection) }
        }
        return socket
    }

    /// The kernel's TCP autotuning limits (third field of tcp_wmem /
    /// tcp_rmem); 0 when unknown (no /proc in a chroot).
    static let autotuneLimits: (send: Int, receive: Int) = {
        func third(_ path: String) -> Int {
            guard let text = try? readSmallFile(path) else { return 0 }
            let fields = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" })
            return fields.count >= 3 ? Int(fields[2]) ?? 0 : 0
        }
        return (third("/proc/sys/net/ipv4/tcp_wmem"), third("/proc/sys/net/ipv4/tcp_rmem"))
    }()

    /// Asks for `size`-byte kernel buffers where the kernel's autotuning
    /// would not grow them that far by itself. A fixed size switches
    /// autotuning off, so it is only set when it helps, and only raised.
    func setBufferSize(_ size: Int) {
        let limits = Socket.autotuneLimits
        for (option, autotune) in [(SO_SNDBUF, limits.send), (SO_RCVBUF, limits.receive)] {
            if autotune >= size { continue }
            var current: Int32 = 0
            var len = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, option, &current, &len)
            if Int(current) < size {
                var value = Int32(clamping: size)
                setsockopt(fd, SOL_SOCKET, option, &value, socklen_t(MemoryLayout<Int32>.size))
            }
        }
    }

    var peerAddress: FTPAddress? { address(getpeername) }
    var localAddress: FTPAddress? { address(getsockname) }

    private func address(_ call: (Int32, UnsafeMutablePointer<sockaddr>, UnsafeMutablePointer<socklen_t>) -> Int32) -> FTPAddress? {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { call(fd, $0, &len) }
        }
        return rc == 0 ? FTPAddress.from(storage) : nil
    }

    /// The peer runs on this host: a loopback address, or our own address
    /// (a connection to the host's LAN address stays on the host too).
    var peerIsThisHost: Bool {
        guard let peer = peerAddress else { return false }
        return peer.isLoopback || peer.bytes == localAddress?.bytes
    }

    /// Waits for `events` on this socket (and POLLIN on `other`, when given)
    /// at most `timeout` seconds.
    func wait(events: Int16, timeout: Double, other: Int32? = nil) throws -> SocketWait {
        let deadline = monotonicSeconds() + timeout
        while true {
            var fds = [pollfd(fd: fd, events: events, revents: 0)]
            if let other { fds.append(pollfd(fd: other, events: Int16(POLLIN), revents: 0)) }
            let remaining = deadline - monotonicSeconds()
            if remaining <= 0 { return .timedOut }
            let ms = Int32(min(remaining * 1000 + 1, 2_000_000_000))
            let rc = poll(&fds, nfds_t(fds.count), ms)
            if rc < 0 {
                let err = lastErrno()
                if err == EINTR { continue }
                throw RescueError(label, "poll", errno: err).with(kind: .connection)
            }
            if rc == 0 { continue }
            if fds[0].revents != 0 { return .ready }
            if fds.count > 1 && fds[1].revents != 0 { return .otherReady }
        }
    }

    /// Sends all of `bytes`; fails when no byte could be sent for `timeout`
    /// seconds. With `watch`, returns early (false) when that descriptor
    /// becomes readable while the socket is blocked (the server answered on
    /// the control connection mid-transfer).
    func sendAll(_ bytes: UnsafeRawBufferPointer, timeout: Double, what: String = "send", watch: Int32? = nil) throws -> Bool {
        if let tls { return try tls.send(bytes, timeout: timeout, what: what, watch: watch) }
        var done = 0
        while done < bytes.count {
            let n = Glibc.send(fd, bytes.baseAddress! + done, bytes.count - done, Int32(MSG_NOSIGNAL))
            if n >= 0 { done += n; continue }
            let err = lastErrno()
            if err == EINTR { continue }
            guard err == EAGAIN || err == EWOULDBLOCK else { throw RescueError(label, what, errno: err).with(kind: .connection) }
            switch try wait(events: Int16(POLLOUT), timeout: timeout, other: watch) {
            case .ready: continue
            case .otherReady: return false
            case .timedOut:
                throw RescueError(label, what, "no progress for \(formatSeconds(timeout)) (stall timeout)").with(kind: .connection)
            }
        }
        return true
    }

    /// Receives up to `buffer.count` bytes, waiting at most `timeout`
    /// seconds for the first; 0 at end of stream.
    func receive(into buffer: UnsafeMutableRawBufferPointer, timeout: Double, what: String = "receive", timeoutReason: String) throws -> Int {
        if let tls { return try tls.receive(into: buffer, timeout: timeout, what: what, timeoutReason: timeoutReason) }
        while true {
            let n = Glibc.recv(fd, buffer.baseAddress, buffer.count, 0)
            if n >= 0 { return n }
            let err = lastErrno()
            if err == EINTR { continue }
            guard err == EAGAIN || err == EWOULDBLOCK else { throw RescueError(label, what, errno: err).with(kind: .connection) }
            if try wait(events: Int16(POLLIN), timeout: timeout) == .timedOut {
                throw RescueError(label, what, timeoutReason).with(kind: .connection)
            }
        }
    }
}

/// "30 s", "0.5 s".
func formatSeconds(_ seconds: Double) -> String {
    seconds == seconds.rounded() ? "\(Int(seconds)) s" : "\(formatFixed(seconds, decimals: 1)) s"
}

/// What a download that is ended early may have in flight past the bytes
/// wanted (FTPClient.rangedReceiveLimit). A read of less than 64 receive
/// buffers (8 MiB for 128 KiB) gets the small receive buffer and small
/// segments, which also keep the server's send buffer small; a long one (a
/// run of blocks read ahead for a sequential reader) gets a receive buffer
/// of a quarter of its size (at most 4 MiB) and full-size segments, so it
/// streams, and what the server sends past its end stays a small part.
public struct RangedReceiveLimit: Sendable, Equatable {
    public var receiveBuffer: Int
    public var segmentSize: Int
    public init(receiveBuffer: Int, segmentSize: Int) {
        self.receiveBuffer = receiveBuffer
        self.segmentSize = segmentSize
    }

    /// The socket options for a transfer that reads `expected` bytes.
    public func socketLimit(forBytes expected: Int?) -> (receiveBuffer: Int, segmentSize: Int?) {
        guard let expected, expected >= 64 * receiveBuffer else { return (receiveBuffer, segmentSize) }
        return (min(expected / 4, 4 << 20), nil)
    }
}
