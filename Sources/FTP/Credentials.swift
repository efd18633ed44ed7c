#if canImport(Glibc)
import Glibc
#endif
import RescueCore

/// A user name and password, and where they came from (for -v; never the
/// password itself).
public struct FTPCredentials: Equatable {
    public var user: String
    public var password: String
    public var source: String

    public static let anonymous = FTPCredentials(user: "anonymous", password: "anonymous@", source: "anonymous")
}

/// Finds the credentials for a server, in this order:
///
/// - user: the URL's user, else `-u`, else the netrc entry for the host,
///   else anonymous;
/// - password: `-p` or the URL (the applet wipes it from argv), else the
///   `FTP_PASSWORD` environment variable, else the netrc entry for the
///   host and user, else a prompt on the terminal with echo off.
///
/// A netrc file (`~/.netrc`, or `--netrc-file`) that group or others can
/// read or write is refused, as is one owned by another user.
public struct CredentialsResolver {
    public var urlUser: String?
    public var optionUser: String?
    /// From -p or the URL.
    public var commandLinePassword: String?
    /// An explicit --netrc-file (must exist); else `$HOME/.netrc` if present.
    public var netrcFile: String?
    public var useDefaultNetrc = true
    public var environmentPassword: String? = CredentialsResolver.environment("FTP_PASSWORD")
    /// Ask on /dev/tty when nothing else gave a password.
    public var allowPrompt = true

    public init() {}

    public static func environment(_ name: String) -> String? {
        guard let value = getenv(name) else { return nil }
        return String(cString: value)
    }

    public func resolve(host: String) throws -> FTPCredentials {
        var user = urlUser ?? optionUser
        var netrcEntry: NetrcEntry?
        if let path = netrcPath() {
            netrcEntry = try NetrcFile.load(path).entry(host: host, user: user)
            if netrcEntry != nil && user == nil { user = netrcEntry?.login }
        }
        guard let user else { return .anonymous }
        try checkSafeForControl(user, what: "user name")
        let anonymousUser = user == "anonymous" || user == "ftp"
        if let p = commandLinePassword { return try checked(user, p, "command line") }
        if let p = environmentPassword, !anonymousUser { return try checked(user, p, "FTP_PASSWORD") }
        if let entry = netrcEntry, let p = entry.password, entry.login == nil || entry.login == user {
            return try checked(user, p, "netrc")
        }
        if anonymousUser { return FTPCredentials(user: user, password: "anonymous@", source: "anonymous") }
        guard allowPrompt else {
            throw RescueError(host, "login as \(user)", "no password (give it in FTP_PASSWORD, ~/.netrc or --netrc-file, or run on a terminal)")
        }
        return try checked(user, try promptPassword(prompt: "Password for \(user)@\(host): "), "terminal")
    }

    private func checked(_ user: String, _ password: String, _ source: String) throws -> FTPCredentials {
        try checkSafeForControl(password, what: "password")
        return FTPCredentials(user: user, password: password, source: source)
    }

    private func netrcPath() -> String? {
        if let netrcFile { return netrcFile }
        guard useDefaultNetrc, let home = CredentialsResolver.environment("HOME"), !home.isEmpty else { return nil }
        let path = home + "/.netrc"
        return access(path, F_OK) == 0 ? path : nil
    }
}

/// Reads a password from the controlling terminal with echo off.
public func promptPassword(prompt: String) throws -> String {
    let fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY)
    guard fd >= 0 else {
        throw RescueError("/dev/tty", "ask for the password",
                          "no terminal (give the password in FTP_PASSWORD, ~/.netrc or --netrc-file)")
    }
    defer { close(fd) }
    var saved = termios()
    let haveTermios = tcgetattr(fd, &saved) == 0
    var restore = saved
    let token = Cleanup.register { if haveTermios { _ = tcsetattr(fd, TCSAFLUSH, &restore) } }
    defer { Cleanup.unregister(token) }
    if haveTermios {
        var quiet = saved
        quiet.c_lflag &= ~tcflag_t(ECHO)
        quiet.c_lflag |= tcflag_t(ICANON)
        tcsetattr(fd, TCSAFLUSH, &quiet)
    }
    writeText(prompt, to: fd)
    var bytes: [UInt8] = []
    var c: UInt8 = 0
    while bytes.count < 4096 {
        let n = read(fd, &c, 1)
        if n < 0 && lastErrno() == EINTR { continue }
        if n <= 0 || c == 0x0A { break }
        bytes.append(c)
    }
    if haveTermios { tcsetattr(fd, TCSAFLUSH, &restore) }
    writeText("\n", to: fd)
    if bytes.last == 0x0D { bytes.removeLast() }
    return String(decoding: bytes, as: UTF8.self)
}

public struct NetrcEntry: Equatable {
    /// nil for `default`.
    public var machine: String?
    public var login: String?
    public var password: String?
}

/// The ~/.netrc format: `machine HOST login USER password PASS`, `default
/// ...`, `macdef NAME` (skipped to the next blank line); double-quoted
/// tokens with backslash escapes.
public struct NetrcFile: Equatable {
    public var entries: [NetrcEntry] = []

    /// Loads and parses `path`, refusing files readable or writable by
    /// group/others or owned by another user.
    public static func load(_ path: String) throws -> NetrcFile {
        var st = stat()
        guard stat(path, &st) == 0 else { throw RescueError(path, "read netrc", errno: lastErrno()) }
        if st.st_mode & 0o077 != 0 {
            throw RescueError(path, "read netrc", "refused: readable or writable by group or others (chmod 600 \(path))")
        }
        if st.st_uid != getuid() {
            throw RescueError(path, "read netrc", "refused: owned by another user")
        }
        do {
            return parse(try readSmallFile(path))
        } catch let error as RescueError {
            throw RescueError(path, "read netrc", error.reason)
        }
    }

    public static func parse(_ text: String) -> NetrcFile {
        var file = NetrcFile()
        var tokens: [String] = []
        // Tokenize, dropping macdef bodies.
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        var inMacro = false
        for line in lines {
            if inMacro {
                if line.trimmingWhitespace().isEmpty { inMacro = false }
                continue
            }
            let lineTokens = tokenize(String(line))
            if let m = lineTokens.firstIndex(of: "macdef") {
                tokens += lineTokens[..<m]
                inMacro = true
                continue
            }
            tokens += lineTokens
        }
        var i = 0
        var current: NetrcEntry?
        while i < tokens.count {
            let t = tokens[i]
            func value() -> String? { i + 1 < tokens.count ? tokens[i + 1] : nil }
            switch t {
            case "machine":
                if let c = current { file.entries.append(c) }
                current = NetrcEntry(machine: value(), login: nil, password: nil)
                i += 2
            case "default":
                if let c = current { file.entries.append(c) }
                current = NetrcEntry(machine: nil, login: nil, password: nil)
                i += 1
            case "login":
                current?.login = value(); i += 2
            case "password":
                current?.password = value(); i += 2
            case "account":
                i += 2
            default:
                i += 1
            }
        }
        if let c = current { file.entries.append(c) }
        return file
    }

    private static func tokenize(_ line: String) -> [String] {
        var tokens: [String] = []
        var chars = Array(line)[...]
        while let c = chars.first {
            if c == " " || c == "\t" || c == "\r" { chars.removeFirst(); continue }
            if c == "#" && tokens.isEmpty { break }
            var token = ""
            if c == "\"" {
                chars.removeFirst()
                while let d = chars.first, d != "\"" {
                    chars.removeFirst()
                    if d == "\\", let e = chars.first { token.append(e); chars.removeFirst() } else { token.append(d) }
                }
                if !chars.isEmpty { chars.removeFirst() }
            } else {
                while let d = chars.first, d != " " && d != "\t" && d != "\r" { token.append(d); chars.removeFirst() }
            }
            tokens.append(token)
        }
        return tokens
    }

    /// The entry for `host` (and `user`, when given), else `default`.
    public func entry(host: String, user: String?) -> NetrcEntry? {
        let lower = host.lowercased()
        let matches = entries.filter { $0.machine?.lowercased() == lower }
        if let user {
            if let exact = matches.first(where: { $0.login == user }) { return exact }
            if let anyUser = matches.first(where: { $0.login == nil }) { return anyUser }
        } else if let first = matches.first {
            return first
        }
        return entries.first { $0.machine == nil && (user == nil || $0.login == nil || $0.login == user) }
    }
}
