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

/// Everything needed to open a logged-in session: the server, the login,
/// the timeouts and the -v trace. Jobs keep one and open sessions from it
/// (`FTPClient.openSession`) as often as they reconnect.
public struct FTPServerConfig {
    public var host: String
    public var port: UInt16
    public var credentials: FTPCredentials
    public var timeouts: FTPTimeouts
    /// With -v: the protocol trace (passwords shown as ****).
    public var trace: ((String) -> Void)?
    /// TLS (--tls, ftps://, certificate options): the same for every session.
    public var tls: FTPTLSOptions
    /// The name the server's certificate must carry when `host` is the
    /// address a first session reached (openAnotherSession).
    var tlsServerName: String?

    public init(host: String, port: UInt16, credentials: FTPCredentials, timeouts: FTPTimeouts = FTPTimeouts(),
                trace: ((String) -> Void)? = nil, tls: FTPTLSOptions = FTPTLSOptions()) {
        self.tls = tls
        self.host = host
        self.port = port
        self.credentials = credentials
        self.timeouts = timeouts
        self.trace = trace
    }

    /// `host:port` as messages name the server.
    public var label: String { FTPClient.label(host: host, port: port) }
    /// `ftp://host:port/path` for messages.
    public func displayName(_ path: String) -> String { "ftp://\(label)/\(path)" }
}

/// What the server says about a remote file's size.
public enum RemoteSize: Equatable {
    case bytes(UInt64)
    /// The server says there is no such file.
    case absent
    /// The server would not tell (SIZE, MLST and LIST unsupported or denied).
    case unknown(String)

    public var value: UInt64? { if case .bytes(let n) = self { return n }; return nil }
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
    /// TLS (TLS.swift): explicit (AUTH TLS) or implicit; off by default.
    public var tls = FTPTLSOptions()
    private var tlsContext: TLSContext?
    /// The name the certificate must carry when it differs from `host`
    /// (a second session connects to the first one's address).
    private var tlsServerName: String?
    /// For downloads ended early (ranged reads, `mount`): the data
    /// connection's receive buffer and TCP segment size, so the server has
    /// little in flight (and counted as sent) past the bytes wanted. nil:
    /// sized for throughput (socketBufferSize).
    public var rangedReceiveLimit: RangedReceiveLimit?

    /// The configuration this session was opened from (`openSession`).
    public private(set) var config: FTPServerConfig?
    public private(set) var host = ""
    public private(set) var port: UInt16 = 21
    /// The address the control connection reached; data goes there too.
    public private(set) var peer: FTPAddress?
    private var control: Socket?
    private var parser = FTPReplyParser()
    private var binary = false
    /// Set once SIZE answered with a size: its 550 then means "no such file".
    private var sizeAnswered = false
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
        if tls.mode == .implicit { try startTLS() }
        var greeting = try readReply(for: "connect")
        while greeting.isPreliminary { greeting = try readReply(for: "connect") }
        guard greeting.isSuccess else { throw failure("connect", greeting) }
        if tls.mode == .explicit {
            // RFC 4217: AUTH TLS, then the handshake, before USER.
            let auth = try command("AUTH TLS")
            guard auth.code == 234 else {
                var error = failure("AUTH TLS", auth)
                error.reason = "the server offers no TLS (it replied \(auth)); refused before USER was sent (--tls)"
                disconnect()
                throw error
            }
            try startTLS()
        }
    }

    /// The TLS handshake on the control connection, with the certificate
    /// check; a refusal closes the connection before anything else is sent.
    private func startTLS() throws {
        guard let control else { throw RescueError(label, "TLS handshake", "not connected") }
        do {
            if tlsContext == nil { tlsContext = try TLSContext(options: tls) }
            let stream = try TLSStream(context: tlsContext!, socket: control, serverName: tlsServerName ?? host)
            try stream.handshake(timeout: timeouts.connect, trace: trace)
            control.tls = stream
        } catch {
            disconnect()
            throw error
        }
    }

    /// After login on a TLS session: PBSZ 0, then PROT P (or PROT C with
    /// --tls-control-only).
    private func setDataProtection() throws {
        guard control?.tls != nil else { return }
        try expectSuccess("PBSZ 0")
        try expectSuccess(tls.protectData ? "PROT P" : "PROT C")
    }

    /// The one way to open a session: connect, log in, TYPE I.
    public static func openSession(_ config: FTPServerConfig, timeouts: FTPTimeouts? = nil) throws -> FTPClient {
        let client = FTPClient(timeouts: timeouts ?? config.timeouts)
        client.trace = config.trace
        client.config = config
        client.tls = config.tls
        client.tlsServerName = config.tlsServerName
        try client.connect(host: config.host, port: config.port)
        try client.login(user: config.credentials.user, password: config.credentials.password)
        try client.setBinary()
        return client
    }

    /// USER/PASS. Anonymous: user "anonymous", password "anonymous@".
    /// On a TLS session, then PBSZ/PROT.
    public func login(user: String, password: String) throws {
        try authenticate(user: user, password: password)
        try setDataProtection()
    }

    private func authenticate(user: String, password: String) throws {
        try checkSafeForControl(user, what: "user name")
        try checkSafeForControl(password, what: "password")
        if config == nil {
            config = FTPServerConfig(host: host, port: port, credentials: FTPCredentials(user: user, password: password, source: ""),
                                     timeouts: timeouts, trace: trace, tls: tls)
        }
        let reply = try command("USER \(user)")
        if reply.code == 230 { return }
        guard reply.code == 331 || reply.code == 332 else { throw failure("USER", reply) }
        let pass = try command("PASS \(password)", traceAs: "PASS ****")
        if pass.code == 230 || pass.code == 202 { return }
        if pass.code == 332 { throw RescueError(label, "login", "the server wants an account (ACCT), which is not supported") }
        var error = failure("login as \(user)", pass)
        error.operation = "login as \(user)"
        throw error
    }

    /// TYPE I: bytes are transferred unchanged.
    public func setBinary() throws {
        if binary { return }
        try expectSuccess("TYPE I")
        binary = true
    }

    /// The size of a remote file: SIZE (RFC 3659); where SIZE is not
    /// implemented (500/502/504), denied (550 on a file that exists), or
    /// answered with nonsense, MLST's `size=` fact, then the size column of
    /// LIST. `.absent` only when the server positively says the file is
    /// not there; `.unknown` when it would not tell.
    public func remoteSize(_ path: String) throws -> RemoteSize {
        try checkSafeForControl(path, what: "remote path")
        try setBinary()
        let reply = try command("SIZE \(path)")
        var sizeSaysAbsent = false
        switch parseSizeReply(reply) {
        case .bytes(let n):
            sizeAnswered = true
            return .bytes(n)
        case .absent:
            // Where SIZE has answered with a size before, 550 means no such file.
            if sizeAnswered { return .absent }
            sizeSaysAbsent = true
        case .unsupported: break
        case .nonsense:
            printError("warning: \(label): ignored a SIZE reply that is not a size: \(reply)")
        case .failed: throw failure("SIZE \(path)", reply)
        }
        let mlst = try command("MLST \(path)")
        if mlst.code == 250 {
            if let n = parseMLSTSize(mlst) { return .bytes(n) }
        } else if mlst.code == 421 {
            throw failure("MLST \(path)", mlst)
        }
        switch try listSize(path) {
        case .some(.some(let n)): return .bytes(n)
        case .some(.none): return sizeSaysAbsent ? .absent : .unknown("LIST shows no such file")
        case .none: break
        }
        if sizeSaysAbsent { return .absent }
        return .unknown("the server answers neither SIZE (\(reply.code)) nor MLST (\(mlst.code)) with a size")
    }

    /// LIST of one file: the size column of its line; .some(nil) when the
    /// listing is empty, nil when LIST failed or is unreadable.
    private func listSize(_ path: String) throws -> UInt64?? {
        let stream: FTPDataStream
        do { stream = try openTransfer("LIST \(path)", restAt: nil, upload: false) } catch let e as RescueError where e.kind == .serverRefused {
            if e.replyCode == 450 || e.replyCode == 550 { return .some(nil) }
            return nil
        }
        var bytes = [UInt8](repeating: 0, count: 8192)
        let n = (try? bytes.withUnsafeMutableBytes { try stream.read(into: $0) }) ?? 0
        if n == bytes.count { stream.abort() } else { _ = try? stream.finish() }
        let lines = String(decoding: bytes[0..<n], as: UTF8.self).split(whereSeparator: { $0 == "\n" || $0 == "\r" })
        guard !lines.isEmpty else { return .some(nil) }
        guard lines.count == 1 else { return nil }
        return parseListSize(String(lines[0])).map { .some($0) }
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

    /// Starts an upload: a passive data connection, then STOR (or APPE
    /// with `append`). Returns once the server accepted (1xx); write the
    /// bytes, then call `finish()` for the 226.
    ///
    /// `resumeAt` > 0 continues a file the server holds exactly that many
    /// bytes of: REST+STOR, or APPE where the server refuses REST (some
    /// answer REST with 350 and then refuse the STOR, as proftpd's default
    /// `AllowStoreRestart off` does with 451). Only call it with the size
    /// the server itself reported, since APPE appends at the server's end.
    public func openStore(_ path: String, resumeAt offset: UInt64 = 0, append: Bool = false) throws -> FTPDataStream {
        try checkSafeForControl(path, what: "remote path")
        try setBinary()
        if offset == 0 || append {
            return try openTransfer("\(append ? "APPE" : "STOR") \(path)", restAt: nil, upload: true)
        }
        do {
            return try openTransfer("STOR \(path)", restAt: offset, upload: true)
        } catch let error as RescueError where error.kind == .serverRefused && isConnected
                    && error.replyCode != 452 && error.replyCode != 552 {
            trace?("(REST+STOR refused: \(error.reason); appending with APPE)")
            do {
                return try openTransfer("APPE \(path)", restAt: nil, upload: true)
            } catch var refused as RescueError where refused.kind == .serverRefused && isConnected
                        && refused.replyCode != 452 && refused.replyCode != 552 {
                refused.kind = .resumeRefused
                refused.reason = "the server refuses to continue a file: REST+STOR and APPE refused (\(refused.reason))"
                throw refused
            }
        }
    }

    /// Starts a download: a passive data connection, (REST `restAt`,) RETR.
    /// `expectedBytes`: how much of the file will be read before the
    /// transfer is ended (sizes the rangedReceiveLimit).
    public func openRetrieve(_ path: String, restAt: UInt64? = nil, expectedBytes: Int? = nil) throws -> FTPDataStream {
        try checkSafeForControl(path, what: "remote path")
        try setBinary()
        return try openTransfer("RETR \(path)", restAt: restAt, upload: false, expectedBytes: expectedBytes)
    }

    /// The transfer in progress, if any: `quit()` aborts it first.
    weak var activeTransfer: FTPDataStream?

    private func openTransfer(_ line: String, restAt: UInt64?, upload: Bool, expectedBytes: Int? = nil) throws -> FTPDataStream {
        let data = try openDataConnection(expectedBytes: expectedBytes)
        if let restAt, restAt > 0 {
            let rest = try command("REST \(restAt)")
            guard rest.code == 350 else { data.close(); throw failure("REST \(restAt)", rest) }
        }
        let reply = try command(line)
        guard reply.isPreliminary else {
            data.close()
            var error = failure(line, reply)
            if upload && reply.code == 553 { error.reason += " (does the directory exist? --mkdirs creates it)" }
            throw error
        }
        let stream = FTPDataStream(client: self, socket: data, command: line, upload: upload)
        activeTransfer = stream
        return stream
    }

    /// QUIT and close (errors ignored: the work is done or lost already).
    public func quit() {
        guard control != nil else { return }
        activeTransfer?.abort()
        guard control != nil else { return }
        _ = try? command("QUIT", timeout: min(timeouts.reply, 10))
        control?.close()
        control = nil
    }

    /// After closing a data connection early: ABOR, then NOOP, reading every
    /// reply up to NOOP's 200 (the transfer's 426/226 and ABOR's 225/226
    /// come in between, in whatever number the server sends). A server that
    /// does not answer within 5 s is disconnected.
    func abortTransfer() {
        guard let control else { return }
        activeTransfer = nil
        let limit = min(timeouts.reply, 5)
        do {
            for line in ["ABOR", "NOOP"] {
                trace?("> " + line)
                _ = try Array((line + "\r\n").utf8).withUnsafeBytes { try control.sendAll($0, timeout: limit, what: line) }
            }
            for _ in 0..<6 {
                if try readReply(for: "ABOR", timeout: limit).code == 200 { return }
            }
        } catch {}
        disconnect()
    }

    /// Drops the control connection without a word.
    public func disconnect() {
        control?.close()
        control = nil
    }

    /// A new, logged-in session to the same server with the same
    /// credentials (for cleanup while this one is busy or broken), to the
    /// address this one reached: no second name lookup.
    public func openAnotherSession(timeouts: FTPTimeouts? = nil) throws -> FTPClient {
        guard var config else { throw RescueError(label, "connect", "no session configuration") }
        config.tls = tls
        config.tlsServerName = tlsServerName ?? host
        if let peer { config.host = peer.host; config.port = peer.port }
        let other = try FTPClient.openSession(config, timeouts: timeouts)
        other.host = host
        other.resolver = resolver
        return other
    }

    // MARK: - Commands and replies

    /// Sends one command and returns the server's final reply whatever its
    /// code (preliminary 1xx replies are returned too: transfers need them).
    @discardableResult
    public func command(_ line: String, traceAs: String? = nil, timeout: Double? = nil) throws -> FTPReply {
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
        return try readReply(for: verb, timeout: timeout)
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
                throw RescueError(label, what, error.description).with(kind: .connection)
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
                throw RescueError(label, what, "the server closed the control connection").with(kind: .connection)
            }
            chunk.withUnsafeBytes { parser.feed(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        }
    }

    /// True when a reply has arrived (or the connection ended) without waiting.
    func controlHasInput() -> Bool {
        guard let control else { return false }
        if control.tls?.hasPendingInput == true { return true }
        return (try? control.wait(events: Int16(POLLIN), timeout: 0)) == .ready
    }

    var controlDescriptor: Int32? { control?.fd }

    /// An error of this session restated for `path`: the object becomes
    /// `ftp://host:port/path`; errors of a data connection (whose sockets
    /// are labelled "host:port data connection") say so in the operation.
    public func relabel(_ error: RescueError, path: String) -> RescueError {
        var error = error
        if error.object == label {
            error.object = "ftp://\(label)/\(path)"
        } else if error.object == label + " data connection" {
            error.operation = "data connection: " + error.operation
            error.object = "ftp://\(label)/\(path)"
        }
        return error
    }

    /// The error for a refusing reply: its code, its whole text, and a
    /// hint where the code has a usual cause.
    func failure(_ what: String, _ reply: FTPReply) -> RescueError {
        var error = RescueError(label, what, "server replied \(reply.fullText)")
        // 421 (closing) and 426 (transfer aborted) mean the connection is gone.
        error.kind = reply.code == 421 || reply.code == 426 ? .connection : .serverRefused
        error.replyCode = reply.code
        return error
    }

    /// EPSV (any address family), falling back to PASV; the connection
    /// always goes to the control peer.
    private func openDataConnection(expectedBytes: Int? = nil) throws -> Socket {
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
        let data = try Socket.connect(to: target, timeout: timeouts.connect, label: "\(label) data connection",
                                      bufferSize: socketBufferSize, limit: rangedReceiveLimit?.socketLimit(forBytes: expectedBytes))
        if tls.protectData, let controlTLS = control?.tls, let tlsContext {
            // PROT P: TLS resuming the control connection's session; the
            // handshake follows the server's 1xx (FTPDataStream).
            data.tls = try TLSStream(context: tlsContext, socket: data, serverName: tlsServerName ?? host, reuse: controlTLS)
        }
        return data
    }
}
