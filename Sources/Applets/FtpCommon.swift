import ArgumentParser
import FTP
import RescueCore
#if canImport(Glibc)
import Glibc
#endif

/// The connection options ftpput, ftpget (and backup/restore) share:
/// credentials, port, timeouts, verbosity.
public struct FTPConnectionOptions: ParsableArguments {
    @Option(name: [.customShort("u"), .customLong("user")], help: "User name (default: the URL's user, the netrc entry, else anonymous).")
    public var user: String?

    @Option(name: [.customShort("p"), .customLong("password")],
            help: "Password (busybox style; visible to other users until wiped from argv at start-up: prefer FTP_PASSWORD or ~/.netrc).")
    public var password: String?

    @Option(name: [.customShort("P"), .customLong("port")], help: "Server port (default 21, or the one in HOST:PORT).")
    public var port: UInt16?

    @Option(name: .customLong("netrc-file"), help: "Read credentials from FILE instead of ~/.netrc (must be private: mode 600).")
    public var netrcFile: String?

    @Option(name: .customLong("timeout"), help: "Sets the connect, reply and stall timeouts at once (seconds).")
    public var timeout: Double?

    @Option(name: .customLong("connect-timeout"), help: "Seconds to establish a connection (default 30).")
    public var connectTimeout: Double?

    @Option(name: .customLong("reply-timeout"), help: "Seconds to wait for a server reply (default 60).")
    public var replyTimeout: Double?

    @Option(name: .customLong("stall-timeout"), help: "Seconds a transfer may make no progress (default 60).")
    public var stallTimeout: Double?

    @Flag(name: .customLong("tls"), help: "Require TLS (AUTH TLS, PBSZ 0, PROT P); refused before USER when the server has none.")
    public var tls = false

    @Flag(name: .customLong("tls-control-only"), help: "TLS on the control connection only (PROT C): the password is protected, the data is not.")
    public var tlsControlOnly = false

    @Option(name: .customLong("cacert"), help: ArgumentHelp("Trust the CA certificates in this PEM file instead of the system store.", valueName: "file"))
    public var caFile: String?

    @Option(name: .customLong("pin"), help: ArgumentHelp("Trust the server whose public key has this pin (curl's --pinnedpubkey form).", valueName: "sha256//BASE64"))
    public var pin: String?

    @Flag(name: .customLong("insecure"), help: "Accept any TLS certificate (warns every time; prefer --pin).")
    public var insecure = false

    public init() {}

    /// Wipes a command-line password from argv (ps, /proc/PID/cmdline) and
    /// warns once. Call first thing in run().
    public func protectPassword() {
        if let password { protect(password) }
    }

    /// Both at once: -p and the URL's password (as backup/restore call it).
    public func protectPassword(urlPassword: String?) {
        protectPassword()
        if let urlPassword { protect(urlPassword) }
    }

    /// The same for a password given in an ftp://user:pass@ URL.
    public func protectURLPassword(_ url: FTPURL) {
        if let secret = url.password { protect(secret) }
    }

    private func protect(_ secret: String) {
        guard !secret.isEmpty else { return }
        wipeArgumentsContaining(secret)
        printError("warning: a password on the command line can be seen by other users until it is wiped; prefer FTP_PASSWORD or ~/.netrc")
    }

    public func timeouts() throws -> FTPTimeouts {
        var t = timeout.map { FTPTimeouts(all: $0) } ?? FTPTimeouts()
        if let connectTimeout { t.connect = connectTimeout }
        if let replyTimeout { t.reply = replyTimeout }
        if let stallTimeout { t.stall = stallTimeout }
        for value in [t.connect, t.reply, t.stall] where !(value > 0 && value < 1e7) {
            throw RescueError.usage("timeouts must be positive numbers of seconds")
        }
        return t
    }

    /// Splits `HOST[:PORT]` or `ftp://...` into a URL; `path` is the
    /// busybox-form REMOTE argument (ignored for URLs).
    public func target(_ text: String, path: String?) throws -> FTPURL {
        try checkSafeForControl(text, what: "host")
        var url: FTPURL
        if FTPURL.looksLikeURL(text) {
            url = try FTPURL.parse(text)
        } else {
            let (host, port) = try FTPURL.parseHostPort(text, defaultPort: 21)
            url = FTPURL(host: host, port: port, path: path ?? "")
        }
        if let port { url.port = port }
        if url.host.isEmpty { throw RescueError.usage("no host given") }
        try checkSafeForControl(url.path, what: "remote path")
        return url
    }

    /// Resolves credentials and validates every name before anything is sent.
    public func credentials(for url: FTPURL) throws -> FTPCredentials {
        if let user { try checkSafeForControl(user, what: "user name") }
        if let password { try checkSafeForControl(password, what: "password") }
        var resolver = CredentialsResolver()
        resolver.urlUser = url.user
        resolver.optionUser = user
        resolver.commandLinePassword = password ?? url.password
        resolver.netrcFile = netrcFile
        return try resolver.resolve(host: url.host)
    }

    /// The TLS options for `url`: implicit for ftps://, explicit with
    /// --tls or --tls-control-only (or any certificate option), else off.
    public func tlsOptions(for url: FTPURL) throws -> FTPTLSOptions {
        var options = FTPTLSOptions()
        if url.implicitTLS { options.mode = .implicit } else if tls || tlsControlOnly { options.mode = .explicit }
        options.protectData = !tlsControlOnly
        options.caFile = caFile
        options.insecure = insecure
        if let pin { options.pins = try FTPTLSOptions.parsePins(pin) }
        if !options.isEnabled && (caFile != nil || pin != nil || insecure) {
            throw RescueError.usage("--cacert, --pin and --insecure need --tls, --tls-control-only or an ftps:// URL")
        }
        if insecure && pin != nil { throw RescueError.usage("--insecure and --pin contradict each other: give one") }
        return options
    }

    /// The server, login, timeouts and -v trace for `url`: what every
    /// session of the job is opened from.
    public func server(_ url: FTPURL, _ credentials: FTPCredentials) throws -> FTPServerConfig {
        return FTPServerConfig(host: url.host, port: url.port, credentials: credentials, timeouts: try timeouts(),
                               trace: Program.verbose ? { printError($0) } : nil, tls: try tlsOptions(for: url))
    }

    /// Connects, logs in, switches to binary.
    public func session(_ url: FTPURL, _ credentials: FTPCredentials) throws -> FTPClient {
        let config = try server(url, credentials)
        printVerbose("logging in as \(credentials.user) (password from \(credentials.source))")
        return try FTPClient.openSession(config)
    }

    /// The first steps of ftpput and ftpget: wipe command-line passwords,
    /// check the timeouts, and read `HOST[:PORT] NAME [NAME]` (busybox
    /// order: REMOTE at `remoteIndex` of the names after HOST, 0 or -1 for
    /// the last) or `URL [LOCAL]` into the URL and the LOCAL argument.
    public func transferArguments(_ raw: [String], usage: String, remoteIndex: Int) throws -> (FTPURL, String?) {
        protectPassword()
        _ = try timeouts()
        let arguments = try FTPConnectionOptions.names(raw)
        guard let first = arguments.first else { throw RescueError.usage("no HOST or URL given") }
        let rest = Array(arguments.dropFirst())
        var remote: String?
        var local: String?
        if FTPURL.looksLikeURL(first) {
            guard rest.count <= 1 else { throw RescueError.usage("too many arguments after the URL") }
            local = rest.first
        } else {
            guard !rest.isEmpty else { throw RescueError.usage("no REMOTE name given (\(usage))") }
            guard rest.count <= 2 else { throw RescueError.usage("too many arguments (\(usage))") }
            let index = remoteIndex >= 0 ? remoteIndex : rest.count - 1
            remote = rest[index]
            local = rest.count == 2 ? rest[1 - index] : nil
        }
        let url = try target(first, path: remote)
        protectURLPassword(url)
        return (url, local)
    }

    /// busybox's glued short options (`-pS3cret`, `-uadmin`, `-P2121`) as
    /// two arguments, so they parse and the value is never echoed in an
    /// error. Other arguments are left alone; after `--` nothing changes.
    public static func splitGluedValues(_ arguments: [String]) -> [String] {
        var result: [String] = []
        var rest = false
        for argument in arguments {
            if rest || argument == "--" { rest = true; result.append(argument); continue }
            let bytes = Array(argument.utf8)
            if bytes.count > 2, bytes[0] == UInt8(ascii: "-"), [UInt8(ascii: "p"), UInt8(ascii: "u"), UInt8(ascii: "P")].contains(bytes[1]) {
                result.append(String(decoding: bytes[0..<2], as: UTF8.self))
                result.append(String(decoding: bytes[2...], as: UTF8.self))
            } else {
                result.append(argument)
            }
        }
        return result
    }

    /// The positional arguments of an applet that captures unrecognised
    /// words as names (`ftpput HOST -dash.bin FILE`): a word that starts
    /// with `--` or is a lone `-x` is an unknown option (exit 2); a longer
    /// word that starts with one dash is a name.
    public static func names(_ arguments: [String]) throws -> [String] {
        for argument in arguments where argument.hasPrefix("-") && argument != "-" {
            if argument.hasPrefix("--") || argument.utf8.count == 2 {
                throw RescueError.usage("unknown option '\(sanitizeForDisplay(String(argument.prefix(40))))'")
            }
        }
        return arguments
    }
}

/// The summary's words about an upload's outcome: what it replaced and
/// whether it could be verified.
func uploadNotes(_ outcome: UploadOutcome, remote: String) -> String {
    var notes = ""
    switch outcome.replaced {
    case .bytes(let n)?: notes += "; replaced an existing \(n)-byte \(remote)"
    case .unknown?: notes += "; replaced \(remote) if it existed (the server does not tell sizes)"
    case .absent?, nil: break
    }
    if case .unverifiable = outcome.verification { notes += "; not verified (the server does not tell sizes)" }
    return notes
}

/// How a remote file is written, for every applet that uploads (ftpput, backup).
public struct RemoteFileOptions: ParsableArguments {
    @Flag(name: .customLong("mkdirs"), help: "Create missing remote directories.")
    public var mkdirs = false

    @Flag(name: .customLong("in-place"), help: "Write the remote file directly instead of NAME.part, then rename.")
    public var inPlace = false

    @Flag(name: .customLong("keep-partial"), help: "Keep the partial remote file when the transfer fails.")
    public var keepPartial = false

    @Flag(name: .customLong("no-clobber"), help: "Refuse to replace an existing remote file (by default the rename replaces it).")
    public var noClobber = false

    public init() {}

    /// The FTP library's options for these flags.
    public var uploadOptions: SafeUploadOptions {
        var options = SafeUploadOptions()
        options.mkdirs = mkdirs
        options.inPlace = inPlace
        options.keepPartial = keepPartial
        options.noClobber = noClobber
        return options
    }
}
