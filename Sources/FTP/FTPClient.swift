#if canImport(Glibc)
import Glibc
#endif
import RescueCore

/// How long the client waits before giving up, in seconds.
public struct FTPTimeouts: Sendable {
    /// Establishing the control or data connection.
    public var connect: Double
    /// A server reply to a command (including the 226 after a transfer).
    public var reply: Double
    /// A data transfer making no progress at all.
    public var stall: Double

    public init(connect: Double = 30, reply: Double = 60, stall: Double = 60) {
        self.connect = connect
        self.reply = reply
        self.stall = stall
    }

    /// The same value for all three (`--timeout`).
    public init(all: Double) { self.init(connect: all, reply: all, stall: all) }
}

/// Refuses text that could smuggle a second command onto the control
/// connection: CR, LF or NUL anywhere. Called on every name, user and
/// password before anything is sent (the applets call it before they even
/// connect), and again on every command line as a last guard.
public func checkSafeForControl(_ text: String, what: String) throws {
    if text.utf8.contains(where: { $0 == 0x0D || $0 == 0x0A || $0 == 0 }) {
        throw RescueError.usage("\(what) contains a CR, LF or NUL character; refused (nothing was sent)")
    }
}

/// An FTP client session: one control connection, passive data
/// connections to the control connection's peer (never to the address a
/// 227 reply names), binary transfers, timeouts on every wait.
///
/// Typical use:
///
///     let ftp = FTPClient(timeouts: FTPTimeouts())
///     try ftp.connect(host: "backup.lan", port: 21)
///     try ftp.login(user: "admin", password: secret)
///     try ftp.setBinary()
///     let data = try ftp.openStore("img/sda.lzo.part", restAt: nil, append: false)
///     try data.write(bytes) ...
///     try data.finish()                  // closes, waits for 226
///     let stored = try ftp.size("img/sda.lzo.part")
///
/// All errors are `RescueError`s naming `host:port`, the command and the
/// server's reply. Not thread-safe: one thread drives a session (a cleanup
/// action uses `openAnotherSession()` instead).
public final class FTPClient {
    public let timeouts: FTPTimeouts
    public var resolver = NameResolver()
    /// Called with each protocol line (`> RETR x`, `< 150 ...`), passwords
    /// shown as `PASS ****`. Set it for -v.
    public var trace: ((String) -> Void)?
    /// Kernel socket buffer size asked for on data connections.
    public var socketBufferSize = 4 << 20
    /// For downloads ended early (ranged reads, `mount`): the data
    /// connection's receive buffer and TCP segment size, so the server has
    /// little in flight (and counted as sent) past the bytes wanted. nil:
    /// sized for throughput (socketBufferSize).
    public var rangedReceiveLimit: (receiveBuffer: Int, segmentSize: Int)?

    public private(set) var host = ""
    public private(set) var port: UInt16 = 21
    /// The address the control connection reached; data goes there too.
    public private(set) var peer: FTPAddress?
    private var control: Socket?
    private var parser = FTPReplyParser()
    private var credentials: (user: String, password: String)?
    private var binary = false
    /// Set when EPSV was refused once, so later transfers go straight to PASV.
    private var epsvRefused = false

    public init(timeouts: FTPTimeouts = FTPTimeouts()) {
        self.timeouts = timeouts
    }

    deinit { control?.close() }

    /// `host:port` as used in messages (`[::1]:21` for IPv6 literals).
    public var label: String { Self.label(host: host, port: port) }

    /// "host:port", with an IPv6 literal in brackets: how messages name a server.
    public static func label(host: String, port: UInt16) -> String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    public var isConnected: Bool { control != nil }

    /// Resolves `host` (literal, /etc/hosts, DNS) and connects to the first
    /// address that answers, then reads the server's greeting.
    public func connect(host: String, port: UInt16) throws {
        try checkSafeForControl(host, what: "host name")
        self.host = host
        self.port = port
        let addresses = try resolver.resolve(host, port: port)
        var lastError: Error?
        for address in addresses {
            do {
                let socket = try Socket.connect(to: address, timeout: timeouts.connect, label: label)
                control = socket
                peer = socket.peerAddress ?? address
                parser = FTPReplyParser()
                trace?("connected to \(address)")
                break
            } catch {
                lastError = error
            }
        }
        guard control != nil else { throw lastError ?? RescueError(label, "connect", "no address") }
        var greeting = try readReply(for: "connect")
        while greeting.isPreliminary { greeting = try readReply(for: "connect") }
        guard greeting.isSuccess else { throw failure("connect", greeting) }
    }

    /// USER/PASS. Anonymous: user "anonymous", password "anonymous@".
    public func login(user: String, password: String) throws {
        try checkSafeForControl(user, what: "user name")
        try checkSafeForControl(password, what: "password")
        credentials = (user, password)
        let reply = try command("USER \(user)")
        if reply.code == 230 { return }
        guard reply.code == 331 || reply.code == 332 else { throw failure("USER", reply) }
        let pass = try command("PASS \(password)", traceAs: "PASS ****")
        if pass.code == 230 || pass.code == 202 { return }
        if pass.code == 332 { throw RescueError(label, "login", "the server wants an account (ACCT), which is not supported") }
        throw RescueError(label, "login as \(user)", "server replied \(pass)")
    }

    /// TYPE I: bytes are transferred unchanged.
    public func setBinary() throws {
        if binary { return }
        try expectSuccess("TYPE I")
        binary = true
    }

    /// The size of a remote file (SIZE, RFC 3659), nil when the server says
    /// there is no such file (550). Throws on other failures.
    public func size(_ path: String) throws -> UInt64? {
        try checkSafeForControl(path, what: "remote path")
        try setBinary()
        let reply = try command("SIZE \(path)")
        if reply.code == 213 {
            let text = reply.text.split(separator: " ").first.map(String.init) ?? ""
            guard let value = UInt64(text) else { throw RescueError(label, "SIZE \(path)", "unreadable reply \(reply)") }
            return value
        }
        if reply.code == 550 { return nil }
        throw failure("SIZE \(path)", reply)
    }

    /// Creates every missing directory of `path` (a directory path,
    /// `a/b/c`), like mkdir -p. Existing directories are fine.
    public func mkdirs(_ path: String) throws {
        try checkSafeForControl(path, what: "remote directory")
        let absolute = path.hasPrefix("/")
        var current = absolute ? "/" : ""
        var home: String?
        for part in path.split(separator: "/") where part != "." {
            current += (current.isEmpty || current.hasSuffix("/") ? "" : "/") + part
            let reply = try command("MKD \(current)")
            if reply.code == 257 || reply.code == 250 { continue }
            // 550 "File exists" or similar: fine if it is a directory now.
            // Probe with CWD, then go back where relative paths start (the
            // login directory, which is not "/" on most servers).
            if home == nil { home = try workingDirectory() }
            let cwd = try command("CWD \(current)")
            guard cwd.code == 250 else { throw failure("MKD \(current)", reply) }
            try expectSuccess("CWD \(home!)")
        }
    }

    /// PWD: the current directory from `257 "PATH" ...` ("" inside it is a quote).
    public func workingDirectory() throws -> String {
        let reply = try expectSuccess("PWD")
        let text = Array(reply.text.utf8)
        guard let open = text.firstIndex(of: UInt8(ascii: "\"")) else {
            throw RescueError(label, "PWD", "unreadable reply \(reply)")
        }
        var path: [UInt8] = []
        var i = open + 1
        while i < text.count {
            if text[i] == UInt8(ascii: "\"") {
                if i + 1 < text.count && text[i + 1] == UInt8(ascii: "\"") { path.append(text[i]); i += 2; continue }
                let dir = String(decoding: path, as: UTF8.self)
                try checkSafeForControl(dir, what: "remote directory")
                return dir
            }
            path.append(text[i])
            i += 1
        }
        throw RescueError(label, "PWD", "unreadable reply \(reply)")
    }

    /// RNFR `from`, RNTO `to` (replaces `to` on servers that allow it, as vsftpd does).
    public func rename(from: String, to: String) throws {
        try checkSafeForControl(from, what: "remote path")
        try checkSafeForControl(to, what: "remote path")
        let rnfr = try command("RNFR \(from)")
        guard rnfr.code == 350 else { throw failure("RNFR \(from)", rnfr) }
        try expectSuccess("RNTO \(to)")
    }

    /// DELE `path`.
    public func delete(_ path: String) throws {
        try checkSafeForControl(path, what: "remote path")
        try expectSuccess("DELE \(path)")
    }

    /// Starts an upload: a passive data connection, then (REST `restAt`
    /// and) STOR, or APPE with `append`. Returns once the server accepted
    /// (1xx); write the bytes, then call `finish()` for the 226.
    public func openStore(_ path: String, restAt: UInt64? = nil, append: Bool = false) throws -> FTPDataStream {
        try checkSafeForControl(path, what: "remote path")
        try setBinary()
        let data = try openDataConnection()
        if let restAt, restAt > 0, !append {
            let rest = try command("REST \(restAt)")
            guard rest.code == 350 else { data.close(); throw failure("REST \(restAt)", rest) }
        }
        let verb = append ? "APPE" : "STOR"
        let reply = try command("\(verb) \(path)")
        guard reply.isPreliminary else { data.close(); throw failure("\(verb) \(path)", reply) }
        return FTPDataStream(client: self, socket: data, command: "\(verb) \(path)", upload: true)
    }

    /// Starts a download: a passive data connection, (REST `restAt`,) RETR.
    public func openRetrieve(_ path: String, restAt: UInt64? = nil) throws -> FTPDataStream {
        try checkSafeForControl(path, what: "remote path")
        try setBinary()
        let data = try openDataConnection()
        if let restAt, restAt > 0 {
            let rest = try command("REST \(restAt)")
            guard rest.code == 350 else { data.close(); throw failure("REST \(restAt)", rest) }
        }
        let reply = try command("RETR \(path)")
        guard reply.isPreliminary else { data.close(); throw failure("RETR \(path)", reply) }
        return FTPDataStream(client: self, socket: data, command: "RETR \(path)", upload: false)
    }

    /// QUIT and close (errors ignored: the work is done or lost already).
    public func quit() {
        guard control != nil else { return }
        _ = try? command("QUIT")
        control?.close()
        control = nil
    }

    /// Drops the control connection without a word.
    public func disconnect() {
        control?.close()
        control = nil
    }

    /// A new, logged-in session to the same server with the same
    /// credentials, for cleanup while this one is busy or broken.
    public func openAnotherSession(timeouts: FTPTimeouts? = nil) throws -> FTPClient {
        let other = FTPClient(timeouts: timeouts ?? self.timeouts)
        other.resolver = resolver
        other.trace = trace
        if let peer {
            // Same address as before: no second name lookup.
            try other.connect(host: peer.host, port: peer.port)
            other.host = host
        } else {
            try other.connect(host: host, port: port)
        }
        if let credentials { try other.login(user: credentials.user, password: credentials.password) }
        return other
    }

    // MARK: - Commands and replies

    /// Sends one command and returns the server's final reply whatever its
    /// code (preliminary 1xx replies are returned too: transfers need them).
    @discardableResult
    public func command(_ line: String, traceAs: String? = nil) throws -> FTPReply {
        try checkSafeForControl(line, what: "command")
        guard let control else { throw RescueError(label, line.split(separator: " ").first.map(String.init) ?? line, "not connected") }
        trace?("> " + (traceAs ?? line))
        let verb = traceAs ?? line
        let bytes = Array((line + "\r\n").utf8)
        do {
            _ = try bytes.withUnsafeBytes { try control.sendAll($0, timeout: timeouts.reply, what: verb) }
        } catch let error as RescueError {
            disconnect()
            throw error
        }
        return try readReply(for: verb)
    }

    /// Sends a command that must succeed (2xx).
    @discardableResult
    func expectSuccess(_ line: String) throws -> FTPReply {
        let reply = try command(line)
        guard reply.isSuccess else { throw failure(line, reply) }
        return reply
    }

    /// The next reply on the control connection, waiting at most the reply
    /// timeout.
    public func readReply(for what: String, timeout: Double? = nil) throws -> FTPReply {
        guard let control else { throw RescueError(label, what, "not connected") }
        let limit = timeout ?? timeouts.reply
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            do {
                if let reply = try parser.next() {
                    for line in reply.lines { trace?("< " + sanitizeForDisplay(line)) }
                    if reply.code == 421 { disconnect() }
                    return reply
                }
            } catch let error as FTPReplyError {
                disconnect()
                throw RescueError(label, what, error.description)
            }
            let n: Int
            do {
                n = try chunk.withUnsafeMutableBytes {
                    try control.receive(into: $0, timeout: limit, what: what,
                                        timeoutReason: "no reply within \(formatSeconds(limit)) (reply timeout)")
                }
            } catch {
                disconnect()
                throw error
            }
            if n == 0 {
                disconnect()
                throw RescueError(label, what, "the server closed the control connection")
            }
            chunk.withUnsafeBytes { parser.feed(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        }
    }

    /// True when a reply has arrived (or the connection ended) without waiting.
    func controlHasInput() -> Bool {
        guard let control else { return false }
        return (try? control.wait(events: Int16(POLLIN), timeout: 0)) == .ready
    }

    var controlDescriptor: Int32? { control?.fd }

    func failure(_ what: String, _ reply: FTPReply) -> RescueError {
        var error = RescueError(label, what, "server replied \(reply)")
        error.errno = nil
        return error
    }

    /// EPSV (any address family), falling back to PASV; the connection
    /// always goes to the control peer.
    private func openDataConnection() throws -> Socket {
        guard var target = peer else { throw RescueError(label, "data connection", "not connected") }
        var port: UInt16?
        if !epsvRefused {
            let reply = try command("EPSV")
            if reply.code == 229 {
                port = parseEPSV(reply.lines.last ?? "")
                if port == nil { throw RescueError(label, "EPSV", "unreadable reply \(reply)") }
            } else if reply.code == 421 {
                throw failure("EPSV", reply)
            } else {
                epsvRefused = true
            }
        }
        if port == nil {
            let reply = try command("PASV")
            guard reply.code == 227 else { throw failure("PASV", reply) }
            guard let parsed = parsePASV(reply.lines.last ?? "") else {
                throw RescueError(label, "PASV", "unreadable reply \(reply)")
            }
            if let named = FTPAddress(bytes: parsed.address, port: parsed.port), named.bytes != target.bytes {
                trace?("(PASV named \(named.host); connecting to the control peer \(target.host) instead)")
            }
            port = parsed.port
        }
        target.port = port!
        return try Socket.connect(to: target, timeout: timeouts.connect, label: "\(label) data connection",
                                  bufferSize: socketBufferSize, limit: rangedReceiveLimit)
    }
}
