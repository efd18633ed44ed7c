/// The leap-second rules for ntp.conf (ntpd 4.2.x and ntpsec).
///
/// ntpd hands an announced leap second to the kernel unless its kernel
/// discipline is off (`disable kernel`, or `ntpd -x`). ntpd >= 4.2.6 and
/// ntpsec apply all `enable` lines, then all `disable` lines; ntpd <= 4.2.4
/// applies them in order (the last one wins). A file is *safe* when the kernel
/// discipline ends up off under both models and no active `enable` names
/// `kernel`.
///
/// Conservative by construction:
/// - a `kernel` flag on an active `enable` line counts as enabling it when it
///   comes before any unknown word (ntpd 4.2.4 applies the flags before a
///   bad one);
/// - a `disable` line counts only when every flag on it is one that every
///   ntpd and ntpsec accept (`calibrate kernel monitor ntp stats`): a line
///   ntpd rejects as a syntax error disables nothing.
public enum NtpRules {
    /// Flags every ntpd (4.2.x) and ntpsec accept on enable/disable lines.
    public static let portableFlags: Set<String> = ["calibrate", "kernel", "monitor", "ntp", "stats"]

    /// The line `ntpleap` appends (without terminator).
    public static let appendedLine = "disable kernel # added by rescuebox ntpleap: the kernel must not insert leap seconds itself (kernel leap-second bugs); keep this line last"

    /// Every flag some ntpd (4.2.4 .. 4.2.8) or ntpsec knows.
    public static let knownFlags: Set<String> = [
        "auth", "bclient", "calibrate", "kernel", "mode7", "monitor", "ntp", "stats", "pps",
        "peer_clear_digest_early", "unpeer_crypto_early", "unpeer_crypto_nak_early", "unpeer_digest_early",
    ]

    /// An active `enable` line: the indices (into `line.tokens`) of the
    /// `kernel` flags some ntpd would apply. ntpd <= 4.2.4 applies flags up
    /// to the first unknown one; newer ones reject the whole line. So a
    /// `kernel` after an unknown word (a prose line "enable the kernel ...")
    /// enables nothing and is left alone.
    public static func enableKernelTokens(_ line: ConfLine) -> [Int] {
        guard line.keyword == "enable" else { return [] }
        var found: [Int] = []
        for (k, t) in line.tokens.enumerated() where k > 0 {
            if t.quoted || !knownFlags.contains(t.text) { break }
            if t.text == "kernel" { found.append(k) }
        }
        return found
    }

    /// An active `disable` line that certainly turns the kernel discipline
    /// off under both ntpd models.
    public static func disablesKernel(_ line: ConfLine) -> Bool {
        guard line.keyword == "disable", line.tokens.count > 1 else { return false }
        var kernel = false
        for t in line.tokens.dropFirst() {
            if t.quoted || !portableFlags.contains(t.text) { return false }
            if t.text == "kernel" { kernel = true }
        }
        return kernel
    }

    /// An `includefile` line's path, or nil.
    public static func includePath(_ line: ConfLine) -> String? {
        guard line.keyword == "includefile", line.tokens.count >= 2 else { return nil }
        let path = line.tokens[1].text
        return path.isEmpty ? nil : path
    }
}

/// A kernel-related directive in processing order (includes expanded).
public struct KernelDirective: Equatable, Sendable {
    public enum Kind: Equatable, Sendable { case enable, disable }
    public var kind: Kind
    /// Index of the file in the chain (0 is the main file).
    public var file: Int
    /// 1-based line number.
    public var line: Int
    public init(kind: Kind, file: Int, line: Int) { self.kind = kind; self.file = file; self.line = line }
}

/// What ntpd makes of a sequence of kernel directives (includes expanded in
/// place), under both enable/disable models.
public struct NtpVerdict: Equatable, Sendable {
    public var directives: [KernelDirective]
    /// ntpd >= 4.2.6 / ntpsec: any disable wins.
    public var kernelOffAllThenDisables: Bool {
        directives.contains { $0.kind == .disable }
    }
    /// ntpd <= 4.2.4: the last directive wins; the default is on.
    public var kernelOffInOrder: Bool { directives.last?.kind == .disable }
    public var enables: [KernelDirective] { directives.filter { $0.kind == .enable } }
    /// Kernel discipline off under both models, and no enable names kernel.
    public var isSafe: Bool { kernelOffAllThenDisables && kernelOffInOrder && enables.isEmpty }
    /// Kernel discipline off under both models (enables may remain, overridden).
    public var kernelOff: Bool { kernelOffAllThenDisables && kernelOffInOrder }
    public init(directives: [KernelDirective]) { self.directives = directives }
}

/// The kernel directives of one file, in order, ignoring includes.
public func kernelDirectives(_ text: ConfText, file: Int = 0) -> [KernelDirective] {
    var out: [KernelDirective] = []
    for line in text.lines {
        if !NtpRules.enableKernelTokens(line).isEmpty {
            out.append(KernelDirective(kind: .enable, file: file, line: line.number))
        } else if NtpRules.disablesKernel(line) {
            out.append(KernelDirective(kind: .disable, file: file, line: line.number))
        }
    }
    return out
}

/// Removes `kernel` from every active `enable` line of `text`: the line is
/// dropped when no flag remains (a trailing comment stays, with the line's
/// indentation). Every other byte is kept.
public func removeEnableKernel(_ text: ConfText, into edits: inout FileEdits) {
    for (i, line) in text.lines.enumerated() {
        let kernels = NtpRules.enableKernelTokens(line)
        if kernels.isEmpty { continue }
        let remaining = line.tokens.count - 1 - kernels.count
        if remaining == 0 {
            if let comment = line.commentStart {
                let indent = text.bytes[line.start..<line.tokens[0].start]
                edits.changes[i] = .replace(Array(indent) + Array(text.bytes[comment..<line.contentEnd]))
                edits.notes.append("line \(line.number): '\(String(decoding: text.bytes[line.start..<line.contentEnd], as: UTF8.self))' -> only its comment kept")
            } else {
                edits.changes[i] = .delete
                edits.notes.append("line \(line.number): removed '\(String(decoding: text.bytes[line.start..<line.contentEnd], as: UTF8.self))'")
            }
            continue
        }
        // Cut each kernel token together with the blanks before it.
        var content: [UInt8] = []
        var pos = line.start
        for k in kernels {
            content += text.bytes[pos..<line.tokens[k - 1].end]
            pos = line.tokens[k].end
        }
        content += text.bytes[pos..<line.contentEnd]
        edits.changes[i] = .replace(content)
        edits.notes.append("line \(line.number): removed kernel from '\(String(decoding: text.bytes[line.start..<line.contentEnd], as: UTF8.self))'")
    }
}

/// Appends the `disable kernel` line (with the file's line ending).
public func appendDisableKernel(_ text: ConfText, into edits: inout FileEdits) {
    edits.appended.append(Array(NtpRules.appendedLine.utf8) + text.lineEnding.bytes)
    let lineNumber = text.lines.count - edits.changes.values.filter { $0 == .delete }.count + 1
    edits.notes.append("line \(lineNumber): appended 'disable kernel'")
}

/// The pure rewrite of one ntp.conf (no includes): the entry point for
/// fuzzing and the core of `ntpleap`. `laterEnables` says that directives
/// this file does not control (e.g. an included file left alone) enable the
/// kernel after its last line, so only an appended `disable kernel` makes it
/// safe under the in-order model.
///
/// Guarantees (checked by the fuzz target, Fuzz/NTPConf): the result
/// parses as safe, a second rewrite changes nothing, and only `enable` lines
/// naming kernel, the last line's missing terminator and the appended line
/// differ.
public func rewriteNtpConf(_ text: ConfText, otherDirectives: [KernelDirective] = []) -> FileEdits {
    var edits = FileEdits()
    removeEnableKernel(text, into: &edits)
    let own = kernelDirectives(text).filter { $0.kind == .disable }
    let after = NtpVerdict(directives: own + otherDirectives)
    if !after.kernelOff { appendDisableKernel(text, into: &edits) }
    return edits
}

/// Convenience over bytes: the rewritten bytes (equal to the input when it
/// is already safe).
public func rewriteNtpConf(bytes: [UInt8]) -> [UInt8] {
    let text = ConfText(bytes)
    return apply(rewriteNtpConf(text), to: text).result
}
