// The NTPConf library: ntp.conf and chrony.conf as lines and tokens that keep
// every byte, the leap-second safety rules, the rewriter, config discovery
// and the atomic safe write. See ../../README.md ("### ntpleap").
#if canImport(Glibc)
import Glibc
#endif

/// A file's line-ending style: what an appended line ends with.
public enum LineEnding: Equatable, Sendable {
    case lf, crlf
    public var bytes: [UInt8] { self == .lf ? [10] : [13, 10] }
}

/// The comment syntax of a configuration language.
public enum ConfDialect: Sendable {
    /// ntp.conf (ntpd, ntpsec): `#` starts a comment anywhere outside double
    /// quotes; a double-quoted string is one token.
    case ntp
    /// chrony.conf: a line whose first non-blank character is one of `!;#%`
    /// is a comment; no quoting, no trailing comments.
    case chrony
}

/// One whitespace-separated word of a line. Offsets index the file's bytes.
public struct ConfToken: Equatable, Sendable {
    public var start: Int
    public var end: Int
    public var quoted: Bool
    /// The word (without the quotes of a quoted token), decoded as UTF-8.
    public var text: String
}

/// One line: content, terminator and tokens, as offsets into the file.
public struct ConfLine: Sendable {
    /// 1-based line number.
    public var number: Int
    public var start: Int
    /// End of the content: where "\n" or "\r\n" starts (or the end of file).
    public var contentEnd: Int
    /// After the terminator.
    public var end: Int
    public var tokens: [ConfToken]
    /// Offset of the `#` starting a comment, if any.
    public var commentStart: Int?
    public var hasTerminator: Bool { end > contentEnd }
    /// The directive keyword (first token, unquoted), or nil.
    public var keyword: String? {
        guard let first = tokens.first, !first.quoted else { return nil }
        return first.text
    }
}

/// A configuration file split into lines and tokens; `bytes` is never
/// modified: edits are made by the rewriters from offsets.
public struct ConfText: Sendable {
    public let bytes: [UInt8]
    public let dialect: ConfDialect
    public let lines: [ConfLine]
    public let lineEnding: LineEnding

    public init(_ bytes: [UInt8], dialect: ConfDialect = .ntp) {
        self.bytes = bytes
        self.dialect = dialect
        var lines: [ConfLine] = []
        var crlf = 0, lf = 0
        var start = 0
        let n = bytes.count
        while start < n {
            var i = start
            while i < n && bytes[i] != 10 { i += 1 }
            let end = i < n ? i + 1 : n
            var contentEnd = i
            if i < n {
                if i > start && bytes[i - 1] == 13 { contentEnd = i - 1; crlf += 1 } else { lf += 1 }
            }
            lines.append(ConfText.tokenize(bytes, start: start, contentEnd: contentEnd, end: end,
                                           number: lines.count + 1, dialect: dialect))
            start = end
        }
        self.lines = lines
        lineEnding = crlf > lf ? .crlf : .lf
    }

    @inline(__always) static func isBlank(_ b: UInt8) -> Bool {
        b == 32 || b == 9 || b == 13 || b == 11 || b == 12
    }

    static func tokenize(_ bytes: [UInt8], start: Int, contentEnd: Int, end: Int, number: Int,
                         dialect: ConfDialect) -> ConfLine {
        var tokens: [ConfToken] = []
        var comment: Int? = nil
        var i = start
        func text(_ a: Int, _ b: Int) -> String { String(decoding: bytes[a..<b], as: UTF8.self) }
        switch dialect {
        case .ntp:
            while i < contentEnd {
                let b = bytes[i]
                if isBlank(b) { i += 1; continue }
                if b == 35 { comment = i; break }  // '#'
                if b == 34 {  // '"': up to the closing quote or the end of the line
                    var j = i + 1
                    while j < contentEnd && bytes[j] != 34 { j += 1 }
                    let close = j < contentEnd ? j + 1 : j
                    tokens.append(ConfToken(start: i, end: close, quoted: true, text: text(i + 1, j)))
                    i = close
                    continue
                }
                var j = i
                while j < contentEnd && !isBlank(bytes[j]) && bytes[j] != 35 && bytes[j] != 34 { j += 1 }
                tokens.append(ConfToken(start: i, end: j, quoted: false, text: text(i, j)))
                i = j
            }
        case .chrony:
            var first = true
            while i < contentEnd {
                let b = bytes[i]
                if isBlank(b) { i += 1; continue }
                if first && (b == 33 || b == 59 || b == 35 || b == 37) { comment = i; break }  // ! ; # %
                first = false
                var j = i
                while j < contentEnd && !isBlank(bytes[j]) { j += 1 }
                tokens.append(ConfToken(start: i, end: j, quoted: false, text: text(i, j)))
                i = j
            }
        }
        return ConfLine(number: number, start: start, contentEnd: contentEnd, end: end,
                        tokens: tokens, commentStart: comment)
    }
}

/// Why a byte string is not a configuration file, or nil when it is text:
/// NUL bytes mean binary (a config never has them).
public func notTextReason(_ bytes: [UInt8]) -> String? {
    if let nul = bytes.firstIndex(of: 0) { return "not a text file (NUL byte at offset \(nul))" }
    return nil
}

/// What a rewriter does to one line.
public enum LineChange: Equatable, Sendable {
    /// New content (without terminator); the line keeps its terminator.
    case replace([UInt8])
    case delete
}

/// The edits to one file and the bytes they produce. Lines are indexed from
/// 0 (ConfLine.number - 1). `appended` holds whole lines added at the end,
/// each with its terminator; when there is something to append and the last
/// kept line has no terminator, it gets the file's line ending first.
public struct FileEdits: Sendable {
    public var changes: [Int: LineChange] = [:]
    public var appended: [[UInt8]] = []
    /// Human-readable descriptions, one per change ("line 12: removed kernel from enable").
    public var notes: [String] = []
    public var isEmpty: Bool { changes.isEmpty && appended.isEmpty }
    public init() {}
}

/// The result of applying edits: the new bytes, and the line operations for
/// the unified diff.
public struct AppliedEdits: Sendable {
    public enum Op: Equatable, Sendable {
        case keep(old: Int)
        case delete(old: Int)
        /// A line of the new file (a replaced line's new text or an appended one), with terminator.
        case insert([UInt8])
    }
    public var result: [UInt8]
    public var ops: [Op]
}

public func apply(_ edits: FileEdits, to text: ConfText) -> AppliedEdits {
    var result: [UInt8] = []
    result.reserveCapacity(text.bytes.count + 200)
    var ops: [AppliedEdits.Op] = []
    // The last line that survives: it may need a terminator before appended lines.
    var lastKept = -1
    for (i, _) in text.lines.enumerated() where edits.changes[i] != .delete { lastKept = i }
    for (i, line) in text.lines.enumerated() {
        let needsTerminator = !edits.appended.isEmpty && i == lastKept && !line.hasTerminator
        var terminator = Array(text.bytes[line.contentEnd..<line.end])
        if needsTerminator {
            // A last line ending in a bare CR in a CRLF file only lacks the LF.
            if text.lineEnding == .crlf && line.contentEnd > line.start && text.bytes[line.contentEnd - 1] == 13 {
                terminator = [10]
            } else {
                terminator = text.lineEnding.bytes
            }
        }
        switch edits.changes[i] {
        case .delete?:
            ops.append(.delete(old: i))
        case .replace(let content)?:
            ops.append(.delete(old: i))
            let newLine = content + terminator
            ops.append(.insert(newLine))
            result += newLine
        case nil:
            if needsTerminator {
                ops.append(.delete(old: i))
                let newLine = Array(text.bytes[line.start..<line.contentEnd]) + terminator
                ops.append(.insert(newLine))
                result += newLine
            } else {
                ops.append(.keep(old: i))
                result += text.bytes[line.start..<line.end]
            }
        }
    }
    for line in edits.appended {
        ops.append(.insert(line))
        result += line
    }
    // Group each run of deletes before its inserts (diff order: '-' then '+').
    var ordered: [AppliedEdits.Op] = []
    var pendingInserts: [AppliedEdits.Op] = []
    for op in ops {
        switch op {
        case .keep:
            ordered += pendingInserts; pendingInserts = []
            ordered.append(op)
        case .delete:
            ordered.append(op)
        case .insert:
            pendingInserts.append(op)
        }
    }
    ordered += pendingInserts
    return AppliedEdits(result: result, ops: ordered)
}
