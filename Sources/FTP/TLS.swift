#if canImport(Glibc)
import Glibc
#endif
import COpenSSL
import RescueCore

/// FTP over TLS (RFC 4217, and implicit TLS on port 990): what the
/// ftpput, ftpget, backup and restore options `--tls`, `--tls-control-only`,
/// `--cacert`, `--pin`, `--insecure` and an `ftps://` URL ask for. The same
/// value goes to every session a job opens (reconnects, cleanup sessions).
public struct FTPTLSOptions: Sendable, Equatable {
    public enum Mode: Sendable, Equatable {
        /// Plain FTP.
        case off
        /// `AUTH TLS` after the greeting; a server without TLS is refused
        /// before USER is sent (curl's --ssl-reqd).
        case explicit
        /// TLS from the first byte (`ftps://`, port 990).
        case implicit
    }
    public var mode: Mode = .off
    /// PROT P (data connections encrypted); false is PROT C (--tls-control-only).
    public var protectData = true
    /// --cacert: trust only the CA certificates in this PEM file.
    public var caFile: String?
    /// --pin: accepted public-key pins, `sha256//BASE64` (curl's
    /// --pinnedpubkey format). A matching pin is trusted without a CA chain
    /// (a NAS with a self-signed certificate); host name and chain are then
    /// not checked.
    public var pins: [String] = []
    /// --insecure: go on whatever the certificate (a warning every time).
    public var insecure = false

    public init(mode: Mode = .off) { self.mode = mode }

    public var isEnabled: Bool { mode != .off }

    /// Checks a `--pin` value: `sha256//BASE64[;sha256//BASE64...]`.
    public static func parsePins(_ text: String) throws -> [String] {
        let pins = text.split(separator: ";").map { String($0.trimmingWhitespace()) }
        for pin in pins {
            let body = pin.hasPrefix("sha256//") ? pin.dropFirst(8) : ""
            guard body.count == 44, body.hasSuffix("="),
                  body.utf8.allSatisfy({ isBase64Character($0) }) else {
                throw RescueError.usage("--pin wants sha256//BASE64 (44 characters of base64, as curl's --pinnedpubkey), not '\(sanitizeForDisplay(pin))'")
            }
        }
        if pins.isEmpty { throw RescueError.usage("--pin wants sha256//BASE64") }
        return pins
    }
}

private func isBase64Character(_ c: UInt8) -> Bool {
    (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || (c >= 0x30 && c <= 0x39) || c == 0x2B || c == 0x2F || c == 0x3D
}

/// The latest OpenSSL error as text ("wrong version number").
private func openSSLReason(_ fallback: String) -> String {
    var last: UInt = 0
    while true {
        let e = ERR_get_error()
        if e == 0 { break }
        last = e
    }
    guard last != 0 else { return fallback }
    if let reason = ERR_reason_error_string(last) { return String(cString: reason) }
    var text = [CChar](repeating: 0, count: 256)
    ERR_error_string_n(last, &text, text.count)
    return String(cString: text)
}

/// One TLS client configuration (SSL_CTX) per FTP session: protocol
/// versions, trust store, options. OpenSSL is started without reading
/// openssl.cnf, so nothing (engines, providers) is loaded from disk.
final class TLSContext {
    let ctx: OpaquePointer
    let options: FTPTLSOptions
    /// Where the trusted CA certificates came from, for messages.
    let trustSource: String

    init(options: FTPTLSOptions) throws {
        guard rb_openssl_init() == 1, let ctx = SSL_CTX_new(TLS_client_method()) else {
            throw RescueError("TLS", "initialise OpenSSL", openSSLReason("failed"))
        }
        self.ctx = ctx
        self.options = options
        _ = rb_ssl_ctx_set_min_tls12(ctx)
        // AES-128-GCM first (OpenSSL prefers AES-256): as safe, and cheaper
        // for both ends, on a link where the server's decryption is the limit.
        _ = SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256")
        _ = rb_ssl_ctx_set_partial_writes(ctx)
        // Verification runs during the handshake, but its verdict is judged
        // afterwards (verifyPeer), so a refusal can name the server's pin.
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nil)
        // A data connection ends with the server closing it; the 226 and
        // the SIZE check judge completeness, not the close_notify.
        _ = SSL_CTX_set_options(ctx, rb_ssl_option_ignore_unexpected_eof() | rb_ssl_option_no_compression())

        if let file = options.caFile {
            guard SSL_CTX_load_verify_locations(ctx, file, nil) == 1 else {
                let reason = openSSLReason("no certificates in it")
                SSL_CTX_free(ctx)
                throw RescueError(file, "load CA certificates (--cacert)", reason)
            }
            trustSource = file
        } else {
            var sources: [String] = []
            let env = { (name: String) -> String? in getenv(name).map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 } }
            let file = env("SSL_CERT_FILE") ?? "/etc/ssl/certs/ca-certificates.crt"
            let dir = env("SSL_CERT_DIR") ?? "/etc/ssl/certs"
            if access(file, R_OK) == 0, SSL_CTX_load_verify_locations(ctx, file, nil) == 1 { sources.append(file) }
            if access(dir, R_OK) == 0, SSL_CTX_load_verify_locations(ctx, nil, dir) == 1 { sources.append(dir) }
            ERR_clear_error()
            trustSource = sources.isEmpty ? "" : sources.joined(separator: " and ")
        }
    }

    deinit { SSL_CTX_free(ctx) }
}

/// TLS on one non-blocking socket (control or data connection). Every wait
/// goes through the socket's poll with a timeout, like plain sends and
/// receives. The socket keeps owning the descriptor.
final class TLSStream {
    let ssl: OpaquePointer
    private unowned let socket: Socket
    private let context: TLSContext
    private let serverName: String
    private(set) var isHandshaken = false
    /// Set when the socket was made blocking with SO_RCVTIMEO (downloads):
    /// a read that wants more then means that timeout has passed.
    var blockingReads = false

    /// `reuse`: the control connection whose TLS session a data connection
    /// resumes (vsftpd's require_ssl_reuse).
    init(context: TLSContext, socket: Socket, serverName: String, reuse: TLSStream? = nil) throws {
        guard let ssl = SSL_new(context.ctx) else { throw RescueError(socket.label, "TLS", openSSLReason("SSL_new failed")) }
        self.ssl = ssl
        self.socket = socket
        self.context = context
        self.serverName = serverName
        _ = SSL_set_fd(ssl, socket.fd)
        let isLiteral = FTPAddress(literal: serverName, port: 0) != nil
        if isLiteral {
            let literal = serverName.hasPrefix("[") ? String(serverName.dropFirst().dropLast()) : serverName
            _ = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), literal)
        } else {
            _ = rb_ssl_set_sni(ssl, serverName)
            _ = SSL_set1_host(ssl, serverName)
        }
        if let reuse, let session = SSL_get1_session(reuse.ssl) {
            _ = SSL_set_session(ssl, session)
            SSL_SESSION_free(session)
            // A data connection: let OpenSSL read many records per recv.
            SSL_set_read_ahead(ssl, 1)
        }
    }

    deinit { SSL_free(ssl) }

    /// Runs one OpenSSL call until it succeeds, waiting for the socket as
    /// it asks. Returns the call's positive result, 0 at a clean end of
    /// stream, or nil when `watch` became readable first.
    private func drive(_ what: String, timeout: Double, timeoutReason: String, watch: Int32? = nil,
                       _ call: () -> Int32) throws -> Int32? {
        while true {
            ERR_clear_error()
            let rc = call()
            if rc > 0 { return rc }
            let code = SSL_get_error(ssl, rc)
            let events: Int16
            switch code {
            case SSL_ERROR_WANT_READ:
                if blockingReads { throw RescueError(socket.label, what, timeoutReason).with(kind: .connection) }
                events = Int16(POLLIN)
            case SSL_ERROR_WANT_WRITE: events = Int16(POLLOUT)
            case SSL_ERROR_ZERO_RETURN: return 0
            case SSL_ERROR_SYSCALL:
                // The connection broke (reset, closed): worth a reconnect.
                let err = lastErrno()
                if err == EINTR { continue }
                let reason = openSSLReason(err != 0 ? systemReason(err) : "the server closed the connection")
                throw RescueError(socket.label, what, reason).with(kind: .connection)
            default:
                // A TLS protocol failure (no TLS there, no common version or
                // cipher, a fatal alert): the same next time.
                throw RescueError(socket.label, what, openSSLReason("TLS error \(code)"))
            }
            switch try socket.wait(events: events, timeout: timeout, other: watch) {
            case .ready: continue
            case .otherReady: return nil
            case .timedOut: throw RescueError(socket.label, what, timeoutReason).with(kind: .connection)
            }
        }
    }

    /// The TLS handshake, then the certificate verdict (`verifyPeer`).
    /// A data connection (`isData`) is judged the same way, without
    /// repeating the control connection's trace and warning.
    func handshake(timeout: Double, trace: ((String) -> Void)?, isData: Bool = false) throws {
        guard !isHandshaken else { return }
        _ = try drive("TLS handshake", timeout: timeout,
                      timeoutReason: "no progress for \(formatSeconds(timeout)) (connect timeout)") { SSL_connect(ssl) }
        isHandshaken = true
        if isData {
            trace?("(data connection: TLS \(summary), session \(sessionReused ? "reused" : "NOT reused"))")
            try verifyPeer(trace: nil, quiet: true)
        } else {
            try verifyPeer(trace: trace, quiet: false)
        }
    }

    /// `sha256//BASE64` of the server certificate's public key (curl's
    /// --pinnedpubkey format).
    var peerPin: String? {
        guard let cert = rb_ssl_peer_certificate(ssl) else { return nil }
        defer { X509_free(cert) }
        guard let key = X509_get0_pubkey(cert) else { return nil }
        let length = i2d_PUBKEY(key, nil)
        guard length > 0 else { return nil }
        var der = [UInt8](repeating: 0, count: Int(length))
        der.withUnsafeMutableBufferPointer { buffer in
            var p: UnsafeMutablePointer<UInt8>? = buffer.baseAddress
            _ = i2d_PUBKEY(key, &p)
        }
        var digest = [UInt8](repeating: 0, count: 32)
        _ = COpenSSL.SHA256(der, der.count, &digest)
        var text = [UInt8](repeating: 0, count: 48)
        let n = EVP_EncodeBlock(&text, digest, 32)
        return "sha256//" + String(decoding: text[0..<Int(n)], as: UTF8.self)
    }

    var summary: String {
        let version = String(cString: SSL_get_version(ssl))
        let cipher = SSL_get_current_cipher(ssl).flatMap { SSL_CIPHER_get_name($0) }.map { String(cString: $0) } ?? "?"
        return "\(version), \(cipher)"
    }

    var sessionReused: Bool { SSL_session_reused(ssl) == 1 }

    /// Trusted when a --pin matches; else when the chain and host name
    /// verified; else only with --insecure (and a warning). A refusal is
    /// one line with OpenSSL's reason and the pin to trust it with.
    private func verifyPeer(trace: ((String) -> Void)?, quiet: Bool) throws {
        let options = context.options
        let pin = peerPin ?? "none"
        let result = SSL_get_verify_result(ssl)
        let reason = result == X509_V_OK ? "ok" : String(cString: X509_verify_cert_error_string(result))
        trace?("TLS \(summary), server's public-key pin \(pin), certificate check: \(reason)")
        if !options.pins.isEmpty {
            guard options.pins.contains(pin) else {
                throw RescueError(socket.label, "TLS certificate",
                                  "the server's public-key pin \(pin) matches no --pin; refused (nothing more was sent)")
            }
            return
        }
        if options.insecure {
            // Every use warns, whether or not this certificate would pass.
            if !quiet {
                printError("warning: \(socket.label): --insecure: the server's certificate is not relied on (its check: \(reason)); its public-key pin is \(pin)")
            }
            return
        }
        if result == X509_V_OK { return }
        let store = options.caFile == nil && context.trustSource.isEmpty ? " (no CA certificates found: give --cacert FILE)" : ""
        throw RescueError(socket.label, "TLS certificate",
                          "\(reason)\(store); refused (nothing more was sent); the server's public-key pin is \(pin) (--pin \(pin) trusts it)")
    }

    /// Sends all of `bytes`; false when `watch` became readable while
    /// blocked (see Socket.sendAll). `progress` gets each accepted count.
    func send(_ bytes: UnsafeRawBufferPointer, timeout: Double, what: String, watch: Int32?,
              progress: ((Int) -> Void)? = nil) throws -> Bool {
        var done = 0
        while done < bytes.count {
            let want = Int32(clamping: bytes.count - done)
            guard let n = try drive(what, timeout: timeout,
                                    timeoutReason: "no progress for \(formatSeconds(timeout)) (stall timeout)", watch: watch,
                                    { SSL_write(ssl, bytes.baseAddress! + done, want) }) else { return false }
            if n == 0 { throw RescueError(socket.label, what, "the server closed the TLS connection").with(kind: .connection) }
            done += Int(n)
            progress?(Int(n))
        }
        return true
    }

    /// Receives up to `buffer.count` bytes (what one TLS record holds, at
    /// most), waiting at most `timeout` seconds; 0 at end of stream.
    func receive(into buffer: UnsafeMutableRawBufferPointer, timeout: Double, what: String, timeoutReason: String) throws -> Int {
        let want = Int32(clamping: buffer.count)
        return Int(try drive(what, timeout: timeout, timeoutReason: timeoutReason) { SSL_read(ssl, buffer.baseAddress, want) } ?? 0)
    }

    /// Decrypted bytes waiting in OpenSSL (the socket itself may be quiet).
    var hasPendingInput: Bool { SSL_has_pending(ssl) == 1 }

    /// An upload's clean end: sends close_notify, then reads (and drops)
    /// whatever the server still sends (TLS 1.3 session tickets) until it
    /// closes its side. Closing with those bytes unread would make the
    /// kernel reset the connection, and the server would lose the data
    /// still in flight. Errors are ignored: the 226 is the verdict.
    func shutdown(timeout: Double) {
        guard isHandshaken else { return }
        _ = try? drive("TLS shutdown", timeout: timeout, timeoutReason: "timeout") {
            let rc = SSL_shutdown(ssl)
            return rc >= 0 ? 1 : rc
        }
        var scratch = [UInt8](repeating: 0, count: 16384)
        while true {
            let n = try? scratch.withUnsafeMutableBytes {
                try receive(into: $0, timeout: timeout, what: "TLS shutdown", timeoutReason: "timeout")
            }
            guard let n, n > 0 else { break }
        }
    }
}
