// FTP replies (RFC 959 section 4.2) and the passive-mode answers
// (EPSV, RFC 2428; PASV, RFC 959). Pure functions over bytes: no I/O, so
// they are unit-tested and fuzzed directly.

/// One complete server reply: a three-digit code and its text lines.
public struct FTPReply: Equatable, CustomStringConvertible {
    public let code: Int
    /// The text of each line, without CR/LF (the first keeps its "NNN-").
    public let lines: [String]

    public init(code: Int, lines: [String]) {
        self.code = code
        self.lines = lines
    }

    public var isPreliminary: Bool { code >= 100 && code < 200 }
    public var isSuccess: Bool { code >= 200 && code < 300 }
    public var isIntermediate: Bool { code >= 300 && code < 400 }
    public var isTransientFailure: Bool { code >= 400 && code < 500 }
    public var isPermanentFailure: Bool { code >= 500 }

    /// The last line ("226 Transfer complete."), which carries the code
    /// and usually the reason; control characters replaced.
    public var description: String { sanitizeForDisplay(String((lines.last ?? String(code)).prefix(300))) }

    /// Every line of the reply, joined with " / " (a multi-line 451 from
    /// pure-ftpd says why only on its first lines); control characters replaced.
    public var fullText: String {
        sanitizeForDisplay(String(lines.joined(separator: " / ").prefix(1000)))
    }

    /// The text after the code on the last line ("Transfer complete.").
    public var text: String {
        let utf8 = Array((lines.last ?? "").utf8)
        return utf8.count > 4 ? sanitizeForDisplay(String(decoding: utf8[4...], as: UTF8.self)) : ""
    }
}

/// Replaces control characters (a hostile server's escape sequences) with '?'.
public func sanitizeForDisplay(_ text: String) -> String {
    String(String.UnicodeScalarView(text.unicodeScalars.map {
        ($0.value < 0x20 || ($0.value >= 0x7F && $0.value < 0xA0)) ? "?" : $0
    }))
}

/// Why a reply stream was rejected.
public enum FTPReplyError: Error, Equatable, CustomStringConvertible {
    case lineTooLong(limit: Int)
    case tooManyLines(limit: Int)
    case malformed(String)

    public var description: String {
        switch self {
        case .lineTooLong(let limit): return "server reply line longer than \(limit) bytes"
        case .tooManyLines(let limit): return "multi-line server reply longer than \(limit) lines"
        case .malformed(let line): return "malformed server reply '\(sanitizeForDisplay(String(line.prefix(80))))'"
        }
    }
}

/// Incremental reply parser with bounds: a line may be at most
/// `maxLineLength` bytes and a multi-line reply at most `maxLines` lines,
/// so a hostile or broken server cannot make the client buffer without
/// limit. Feed bytes as they arrive; take complete replies with `next()`.
///
/// Multi-line replies start with `NNN-` and end at the first line that
/// begins with the same `NNN` followed by a space (or nothing); inner lines
/// may start with anything, digits and other codes included.
public struct FTPReplyParser {
    public let maxLineLength: Int
    public let maxLines: Int

    private var buffer: [UInt8] = []
    private var start = 0
    private var scan = 0
    private var pendingCode: Int? = nil
    private var pendingLines: [String] = []

    public init(maxLineLength: Int = 4096, maxLines: Int = 1000) {
        self.maxLineLength = maxLineLength
        self.maxLines = maxLines
    }

    /// Bytes received but not yet part of a complete line.
    public var bufferedCount: Int { buffer.count - start }

    public mutating func feed(_ bytes: UnsafeRawBufferPointer) {
        compact()
        buffer.append(contentsOf: bytes)
    }

    public mutating func feed(_ bytes: [UInt8]) {
        compact()
        buffer.append(contentsOf: bytes)
    }

    private mutating func compact() {
        if start > 0 {
            buffer.removeFirst(start)
            scan -= start
            start = 0
        }
    }

    /// The next complete reply, nil when more bytes are needed. Throws when
    /// a bound is exceeded or a line is not a reply.
    public mutating func next() throws -> FTPReply? {
        while true {
            guard let line = try takeLine() else { return nil }
            if let reply = try consume(line) { return reply }
        }
    }

    /// One line without its terminator (LF, optionally preceded by CR).
    private mutating func takeLine() throws -> ArraySlice<UInt8>? {
        while scan < buffer.count {
            if buffer[scan] == 0x0A {
                var end = scan
                if end > start && buffer[end - 1] == 0x0D { end -= 1 }
                let line = buffer[start..<end]
                scan += 1
                start = scan
                if line.count > maxLineLength { throw FTPReplyError.lineTooLong(limit: maxLineLength) }
                return line
            }
            scan += 1
            if scan - start > maxLineLength + 1 { throw FTPReplyError.lineTooLong(limit: maxLineLength) }
        }
        return nil
    }

    private static func code(of line: ArraySlice<UInt8>) -> Int? {
        guard line.count >= 3 else { return nil }
        var value = 0
        for c in line.prefix(3) {
            guard c >= 0x30 && c <= 0x39 else { return nil }
            value = value * 10 + Int(c - 0x30)
        }
        guard value >= 100 && value < 600 else { return nil }
        return value
    }

    private static func isFinal(_ line: ArraySlice<UInt8>) -> Bool {
        line.count == 3 || line[line.startIndex + 3] == 0x20
    }

    private mutating func consume(_ line: ArraySlice<UInt8>) throws -> FTPReply? {
        let text = String(decoding: line, as: UTF8.self)
        if let code = pendingCode {
            pendingLines.append(text)
            if pendingLines.count > maxLines { throw FTPReplyError.tooManyLines(limit: maxLines) }
            if FTPReplyParser.code(of: line) == code && FTPReplyParser.isFinal(line) {
                let reply = FTPReply(code: code, lines: pendingLines)
                pendingCode = nil
                pendingLines = []
                return reply
            }
            return nil
        }
        guard let code = FTPReplyParser.code(of: line) else { throw FTPReplyError.malformed(text) }
        if FTPReplyParser.isFinal(line) { return FTPReply(code: code, lines: [text]) }
        if line[line.startIndex + 3] == 0x2D {
            pendingCode = code
            pendingLines = [text]
            return nil
        }
        throw FTPReplyError.malformed(text)
    }

    /// Parses a whole byte string into replies (for tests and fuzzing);
    /// trailing incomplete bytes are ignored.
    public static func parseAll(_ bytes: [UInt8], maxLineLength: Int = 4096, maxLines: Int = 1000) throws -> [FTPReply] {
        var parser = FTPReplyParser(maxLineLength: maxLineLength, maxLines: maxLines)
        parser.feed(bytes)
        var replies: [FTPReply] = []
        while let reply = try parser.next() { replies.append(reply) }
        return replies
    }
}

/// The port in an EPSV reply, `229 Entering Extended Passive Mode (|||6446|)`:
/// the text inside the parentheses is d d d PORT d for a delimiter d
/// (printable ASCII 33-126, not a digit). Nil when the reply has no such part.
public func parseEPSV(_ text: String) -> UInt16? {
    let bytes = Array(text.utf8)
    guard let open = bytes.firstIndex(of: 0x28) else { return nil }
    var i = open + 1
    guard i + 3 < bytes.count else { return nil }
    let d = bytes[i]
    guard d >= 33 && d <= 126, !(d >= 0x30 && d <= 0x39) else { return nil }
    guard bytes[i + 1] == d, bytes[i + 2] == d else { return nil }
    i += 3
    var port = 0
    var digits = 0
    while i < bytes.count, bytes[i] >= 0x30, bytes[i] <= 0x39 {
        port = port * 10 + Int(bytes[i] - 0x30)
        digits += 1
        if digits > 5 || port > 65535 { return nil }
        i += 1
    }
    guard digits > 0, port > 0, i + 1 < bytes.count, bytes[i] == d, bytes[i + 1] == 0x29 else { return nil }
    return UInt16(port)
}

/// The address and port in a PASV reply, `227 Entering Passive Mode
/// (h1,h2,h3,h4,p1,p2)` (parentheses optional: some servers omit them).
/// The address is returned only so callers can log it: the data connection
/// always goes to the control connection's peer.
public func parsePASV(_ text: String) -> (address: [UInt8], port: UInt16)? {
    let bytes = Array(text.utf8)
    var start = bytes.count >= 4 ? 4 : 0
    while start < bytes.count {
        if let numbers = sixNumbers(bytes, from: start) {
            let port = Int(numbers[4]) * 256 + Int(numbers[5])
            guard port > 0 else { return nil }
            return (Array(numbers[0..<4]), UInt16(port))
        }
        start += 1
    }
    return nil
}

private func sixNumbers(_ bytes: [UInt8], from start: Int) -> [UInt8]? {
    func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }
    guard start < bytes.count, isDigit(bytes[start]) else { return nil }
    if start > 0, isDigit(bytes[start - 1]) { return nil }
    var numbers: [UInt8] = []
    var i = start
    while numbers.count < 6 {
        var value = 0
        var digits = 0
        while i < bytes.count, isDigit(bytes[i]) {
            value = value * 10 + Int(bytes[i] - 0x30)
            digits += 1
            if digits > 3 || value > 255 { return nil }
            i += 1
        }
        guard digits > 0 else { return nil }
        numbers.append(UInt8(value))
        if numbers.count < 6 {
            guard i < bytes.count, bytes[i] == 0x2C else { return nil }
            i += 1
        }
    }
    if i < bytes.count, isDigit(bytes[i]) { return nil }
    return numbers
}

/// A SIZE reply (RFC 3659 section 4), read in one place.
public enum SizeReply: Equatable {
    case bytes(UInt64)
    /// 550: no such file (or, on some servers, SIZE denied).
    case absent
    /// 500/502/504: the server does not implement SIZE.
    case unsupported
    /// 213 with something that is not a size (`213 -5`, 20 digits).
    case nonsense
    /// Any other code: a real error (421, 530, ...).
    case failed
}

public func parseSizeReply(_ reply: FTPReply) -> SizeReply {
    switch reply.code {
    case 213:
        let text = reply.text.split(separator: " ").first.map(String.init) ?? ""
        guard !text.isEmpty, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let value = UInt64(text) else {
            return .nonsense
        }
        return .bytes(value)
    case 550: return .absent
    case 500, 501, 502, 504: return .unsupported
    default: return .failed
    }
}

/// The `size=` fact of an MLST reply (RFC 3659 section 7): the line that
/// starts with a space inside the 250 reply, `size=123;type=file; name`.
public func parseMLSTSize(_ reply: FTPReply) -> UInt64? {
    for line in reply.lines where line.hasPrefix(" ") {
        let facts = line.dropFirst().split(separator: " ", maxSplits: 1).first ?? ""
        for fact in facts.split(separator: ";") {
            let pair = fact.split(separator: "=", maxSplits: 1)
            if pair.count == 2, pair[0].lowercased() == "size", pair[1].utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) {
                return UInt64(pair[1])
            }
        }
    }
    return nil
}

/// The size column of a Unix `ls -l` style LIST line
/// (`-rw-r--r--   1 user group   1048576 Nov 30 12:00 name`), the format
/// vsftpd, proftpd and pure-ftpd all use. Only regular files count.
public func parseListSize(_ line: String) -> UInt64? {
    let fields = line.split(separator: " ", omittingEmptySubsequences: true)
    guard fields.count >= 9, fields[0].first == "-" else { return nil }
    let size = fields[4]
    guard size.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
    return UInt64(size)
}
