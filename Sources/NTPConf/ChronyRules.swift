/// The leap-second rules for chrony.conf.
///
/// `leapsecmode system` (chrony's default) lets the kernel insert the leap
/// second: that is the unsafe mode on the affected kernels. `slew` (chronyd
/// slews the clock itself), `step` (chronyd steps it, the kernel's leap code is
/// not used) and `ignore` keep the kernel out of it and are left alone: they
/// are an admin's explicit choice. Directive names and the mode are
/// case-insensitive (chrony compares them with strcasecmp); the last
/// `leapsecmode` line processed wins; `include` and `confdir` files are read
/// where they are named.
///
/// Rewrite: the value of every active `leapsecmode system` line becomes
/// `slew` (the rest of the line is kept); when that leaves the effective mode
/// `system` (no line at all, or one in a file not rewritten), one line
/// `leapsecmode slew` is appended at the end of the main file.
public enum ChronyRules {
    public static let safeModes: Set<String> = ["slew", "step", "ignore"]
    public static let appendedComment = "# added by rescuebox ntpleap: chronyd slews leap seconds itself; the kernel must not insert them (kernel leap-second bugs)"

    public static let modes: Set<String> = ["system", "slew", "step", "ignore"]

    /// The mode of a valid active `leapsecmode` line, lowercased, or nil
    /// (not such a line, or one chronyd refuses: see `refusal`).
    public static func leapMode(_ line: ConfLine) -> String? {
        guard let k = line.keyword, k.lowercased() == "leapsecmode", line.tokens.count == 2 else { return nil }
        let mode = line.tokens[1].text.lowercased()
        return modes.contains(mode) ? mode : nil
    }

    /// Why chronyd refuses this line, judged as chronyd 4.x parses it
    /// (exactly one argument, one of the four modes; no trailing comments:
    /// `leapsecmode system # note` is a fatal "Could not parse leapsecmode
    /// directive"), or nil.
    public static func refusal(_ line: ConfLine) -> String? {
        guard let k = line.keyword, k.lowercased() == "leapsecmode" else { return nil }
        if line.tokens.count == 2 && modes.contains(line.tokens[1].text.lowercased()) { return nil }
        let reason: String
        switch line.tokens.count {
        case 1: reason = "no mode"
        case 2: reason = "unknown mode '\(line.tokens[1].text)'"
        default: reason = "text after the mode (chrony has no trailing comments)"
        }
        return "chronyd refuses it (\"Could not parse leapsecmode directive\"): \(reason); it takes exactly one of system, slew, step, ignore"
    }

    /// `include PATTERN` / `confdir DIR...`: what this line pulls in.
    public enum Inclusion: Equatable { case pattern(String), directories([String]) }
    public static func inclusion(_ line: ConfLine) -> Inclusion? {
        guard let k = line.keyword?.lowercased(), line.tokens.count >= 2 else { return nil }
        if k == "include" { return .pattern(line.tokens[1].text) }
        if k == "confdir" { return .directories(line.tokens.dropFirst().map(\.text)) }
        return nil
    }
}

/// The `leapsecmode` lines in processing order, and the effective mode.
public struct ChronyVerdict: Equatable, Sendable {
    public struct Setting: Equatable, Sendable {
        public var mode: String
        public var file: Int
        public var line: Int
    }
    public var settings: [Setting]
    /// The mode chronyd uses: the last setting, `system` by default.
    public var effectiveMode: String { settings.last?.mode ?? "system" }
    public var isSafe: Bool { ChronyRules.safeModes.contains(effectiveMode) }
    public init(settings: [Setting]) { self.settings = settings }
}

public func chronySettings(_ text: ConfText, file: Int = 0) -> [ChronyVerdict.Setting] {
    text.lines.compactMap { line in
        ChronyRules.leapMode(line).map { ChronyVerdict.Setting(mode: $0, file: file, line: line.number) }
    }
}

public func chronyLeapMode(_ text: ConfText) -> ChronyVerdict {
    ChronyVerdict(settings: chronySettings(text))
}

/// Replaces `system` with `slew` on every active `leapsecmode system` line.
public func replaceChronySystemMode(_ text: ConfText, into edits: inout FileEdits) {
    for (i, line) in text.lines.enumerated() where ChronyRules.leapMode(line) == "system" {
        let value = line.tokens[1]
        let content = Array(text.bytes[line.start..<value.start]) + Array("slew".utf8)
            + Array(text.bytes[value.end..<line.contentEnd])
        edits.changes[i] = .replace(content)
        edits.notes.append("line \(line.number): leapsecmode system -> slew")
    }
}

/// The pure rewrite of one chrony.conf. `otherSettings` are settings
/// processed after this file's last line that it does not control.
public func rewriteChronyConf(_ text: ConfText, otherSettings: [ChronyVerdict.Setting] = []) -> FileEdits {
    var edits = FileEdits()
    replaceChronySystemMode(text, into: &edits)
    var settings = chronySettings(text)
    for k in settings.indices where settings[k].mode == "system" { settings[k].mode = "slew" }
    if !ChronyVerdict(settings: settings + otherSettings).isSafe {
        // chrony has no trailing comments: the reason goes on the line before.
        edits.appended.append(Array(ChronyRules.appendedComment.utf8) + text.lineEnding.bytes)
        edits.appended.append(Array("leapsecmode slew".utf8) + text.lineEnding.bytes)
        let lineNumber = text.lines.count - edits.changes.values.filter { $0 == .delete }.count + 2
        edits.notes.append("line \(lineNumber): appended 'leapsecmode slew'")
    }
    return edits
}
