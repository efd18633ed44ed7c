import RescueCore

/// `ftp://[USER[:PASSWORD]@]HOST[:PORT]/PATH` (`ftps://` for implicit TLS,
/// port 990 by default), or the busybox-style
/// `HOST[:PORT]` plus a separate path. Percent escapes (`%20`) are decoded
/// in the user, password and path. As curl does, the path is relative to
/// the login directory (`ftp://h/dir/f`); a second slash makes it absolute
/// (`ftp://h//srv/f` is `/srv/f`). IPv6 literals go in brackets.
public struct FTPURL: Equatable, CustomStringConvertible {
    public var user: String?
    public var password: String?
    public var host: String
    public var port: UInt16
    public var path: String
    /// `ftps://`: TLS from the first byte (implicit FTPS).
    public var implicitTLS = false

    public init(user: String? = nil, password: String? = nil, host: String, port: UInt16 = 21, path: String,
                implicitTLS: Bool = false) {
        self.implicitTLS = implicitTLS
        self.user = user
        self.password = password
        self.host = host
        self.port = port
        self.path = path
    }

    /// True when `text` starts with `ftp://` or `ftps://` (any case).
    public static func looksLikeURL(_ text: String) -> Bool {
        let lower = text.lowercased()
        return lower.hasPrefix("ftp://") || lower.hasPrefix("ftps://")
    }

    /// Parses a full URL. Throws a usage error for anything malformed.
    public static func parse(_ text: String) throws -> FTPURL {
        guard looksLikeURL(text) else { throw RescueError.usage("'\(sanitizeForDisplay(text))' is not an ftp:// URL") }
        let implicitTLS = text.lowercased().hasPrefix("ftps://")
        var rest = Substring(text.dropFirst(implicitTLS ? 7 : 6))
        var authority: Substring
        var path = ""
        if let slash = rest.firstIndex(of: "/") {
            authority = rest[..<slash]
            path = String(rest[rest.index(after: slash)...])
        } else {
            authority = rest
        }
        rest = ""
        var user: String?
        var password: String?
        if let at = authority.lastIndex(of: "@") {
            let userInfo = authority[..<at]
            authority = authority[authority.index(after: at)...]
            if let colon = userInfo.firstIndex(of: ":") {
                user = try percentDecode(String(userInfo[..<colon]), what: "URL user")
                password = try percentDecode(String(userInfo[userInfo.index(after: colon)...]), what: "URL password")
            } else {
                user = try percentDecode(String(userInfo), what: "URL user")
            }
            if user == "" { user = nil }
        }
        let (host, port) = try parseHostPort(String(authority), defaultPort: implicitTLS ? 990 : 21)
        return FTPURL(user: user, password: password, host: host, port: port,
                      path: try percentDecode(path, what: "URL path"), implicitTLS: implicitTLS)
    }

    /// `host`, `host:port`, `[v6]`, `[v6]:port`, or a bare IPv6 literal.
    public static func parseHostPort(_ text: String, defaultPort: UInt16) throws -> (String, UInt16) {
        guard !text.isEmpty else { throw RescueError.usage("no host given") }
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { throw RescueError.usage("unclosed '[' in host '\(sanitizeForDisplay(text))'") }
            let host = String(text[text.index(after: text.startIndex)..<close])
            let after = text[text.index(after: close)...]
            if after.isEmpty { return (host, defaultPort) }
            guard after.hasPrefix(":") else { throw RescueError.usage("unexpected text after ']' in '\(sanitizeForDisplay(text))'") }
            return (host, try parsePort(String(after.dropFirst())))
        }
        let colons = text.filter { $0 == ":" }.count
        if colons == 1, let colon = text.firstIndex(of: ":") {
            return (String(text[..<colon]), try parsePort(String(text[text.index(after: colon)...])))
        }
        return (text, defaultPort)
    }

    public static func parsePort(_ text: String) throws -> UInt16 {
        guard let value = UInt16(text), value > 0 else { throw RescueError.usage("invalid port '\(sanitizeForDisplay(text))'") }
        return value
    }

    /// The URL again, without the password.
    public var description: String {
        let h = host.contains(":") ? "[\(host)]" : host
        let u = user.map { "\($0)@" } ?? ""
        if implicitTLS { return "ftps://\(u)\(h)\(port == 990 ? "" : ":\(port)")/\(path)" }
        return "ftp://\(u)\(h)\(port == 21 ? "" : ":\(port)")/\(path)"
    }
}

/// Decodes `%XX` escapes; a bad escape or an escape producing CR/LF/NUL is
/// refused.
public func percentDecode(_ text: String, what: String) throws -> String {
    var out: [UInt8] = []
    let bytes = Array(text.utf8)
    var i = 0
    func hex(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x41...0x46: return c - 0x41 + 10
        case 0x61...0x66: return c - 0x61 + 10
        default: return nil
        }
    }
    while i < bytes.count {
        if bytes[i] == 0x25 {
            guard i + 2 < bytes.count, let h = hex(bytes[i + 1]), let l = hex(bytes[i + 2]) else {
                throw RescueError.usage("bad %-escape in \(what)")
            }
            out.append(h << 4 | l)
            i += 3
        } else {
            out.append(bytes[i])
            i += 1
        }
    }
    let decoded = String(decoding: out, as: UTF8.self)
    try checkSafeForControl(decoded, what: what)
    return decoded
}
