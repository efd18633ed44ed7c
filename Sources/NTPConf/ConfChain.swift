#if canImport(Glibc)
import Glibc
#endif
import RescueCore

/// A main configuration file and every file it includes, in processing order.
public struct ConfChain: Sendable {
    public struct File: Sendable {
        public var config: ConfigFile
        public var text: ConfText
        /// "FILE line N" that included it (nil for the main file).
        public var includedFrom: String?
    }
    public var dialect: ConfDialect
    /// files[0] is the main file; each included file appears once.
    public var files: [File]
    /// ntp: kernel directives in processing order (file = index into files).
    /// An include that could not be read counts as an `enable` at its line.
    public var directives: [KernelDirective] = []
    /// chrony: leapsecmode settings in processing order.
    public var settings: [ChronyVerdict.Setting] = []
    /// Includes that could not be read, cycles, depth: said to the user.
    public var notes: [String] = []
    /// Directives standing for unreadable includes (file index, line).
    public var unknownIncludes: [KernelDirective] = []
    /// chrony: lines chronyd refuses (a fatal parse error for it).
    public var invalidLines: [InvalidLine] = []
}

/// A line the daemon itself refuses to start with.
public struct InvalidLine: Equatable, Sendable {
    public var file: Int
    public var line: Int
    public var reason: String
}

/// ntpd's include depth limit (MAXINCLUDELEVEL).
let maxIncludeDepth = 5

/// Resolves an include argument: absolute paths live under `root`, relative
/// ones next to the including file (ntpsec's rule; classic ntpd resolves
/// them from its working directory, which is / for a daemon).
func resolveInclude(_ argument: String, from including: String, root: SystemRoot) -> String {
    if argument.hasPrefix("/") { return root.host(argument) }
    return directoryName(including) + "/" + argument
}

/// Loads a chain of ntp.conf (`includefile`; a directory means its *.conf)
/// or chrony.conf (`include GLOB`, `confdir DIR...`) files.
public func loadChain(_ mainPath: String, dialect: ConfDialect, root: SystemRoot) throws -> ConfChain {
    let main = try readConfigFile(mainPath, root: root)
    var chain = ConfChain(dialect: dialect, files: [])
    var index: [String: Int] = [:]
    var stack: [String] = []

    func add(_ config: ConfigFile, from: String?) -> Int {
        if let i = index[config.identity] { return i }
        chain.files.append(ConfChain.File(config: config, text: ConfText(config.bytes, dialect: dialect), includedFrom: from))
        index[config.identity] = chain.files.count - 1
        return chain.files.count - 1
    }

    func visit(_ fileIndex: Int, depth: Int) {
        let file = chain.files[fileIndex]
        stack.append(file.config.identity)
        defer { stack.removeLast() }
        for line in file.text.lines {
            let whereText = "\(file.config.path) line \(line.number)"
            var targets: [String] = []
            switch dialect {
            case .ntp:
                if !NtpRules.enableKernelTokens(line).isEmpty {
                    chain.directives.append(KernelDirective(kind: .enable, file: fileIndex, line: line.number))
                } else if NtpRules.disablesKernel(line) {
                    chain.directives.append(KernelDirective(kind: .disable, file: fileIndex, line: line.number))
                }
                guard let arg = NtpRules.includePath(line) else { continue }
                let path = resolveInclude(arg, from: file.config.realPath, root: root)
                if root.isDirectory(path) {
                    targets = (root.entries(path) ?? []).filter { $0.hasSuffix(".conf") }.map { path + "/" + $0 }
                } else {
                    targets = [path]
                }
            case .chrony:
                if let mode = ChronyRules.leapMode(line) {
                    chain.settings.append(ChronyVerdict.Setting(mode: mode, file: fileIndex, line: line.number))
                }
                if let refusal = ChronyRules.refusal(line) {
                    chain.invalidLines.append(InvalidLine(file: fileIndex, line: line.number, reason: refusal))
                }
                switch ChronyRules.inclusion(line) {
                case .pattern(let pattern)?:
                    targets = globPaths(resolveInclude(pattern, from: file.config.realPath, root: root), root: root)
                case .directories(let dirs)?:
                    // Files of the same name: the first directory wins.
                    var seen = Set<String>()
                    for dir in dirs {
                        let d = resolveInclude(dir, from: file.config.realPath, root: root)
                        for name in (root.entries(d) ?? []) where name.hasSuffix(".conf") && !seen.contains(name) {
                            seen.insert(name)
                            targets.append(d + "/" + name)
                        }
                    }
                    targets.sort { baseName($0) < baseName($1) }
                case nil:
                    continue
                }
            }
            for target in targets {
                if depth + 1 > maxIncludeDepth {
                    chain.notes.append("\(whereText): include \(target) nested too deep (ntpd stops at \(maxIncludeDepth)); not read")
                    continue
                }
                let config: ConfigFile
                do { config = try readConfigFile(target, root: root) } catch let e as RescueError {
                    chain.notes.append("\(whereText): include \(e.description); treated as if it enabled the kernel")
                    let unknown = KernelDirective(kind: .enable, file: fileIndex, line: line.number)
                    if dialect == .ntp { chain.directives.append(unknown) } else {
                        chain.settings.append(ChronyVerdict.Setting(mode: "unknown", file: fileIndex, line: line.number))
                    }
                    chain.unknownIncludes.append(unknown)
                    continue
                } catch { continue }
                if stack.contains(config.identity) {
                    chain.notes.append("\(whereText): include \(target) is a loop; not read again")
                    continue
                }
                let child = add(config, from: whereText)
                visit(child, depth: depth + 1)
            }
        }
    }
    visit(add(main, from: nil), depth: 0)
    return chain
}

/// glob(3) without tilde or brace expansion: the sorted matching paths.
/// The directory part is resolved inside the root first, so a link in it
/// is followed the way chroot would.
func globPaths(_ pattern: String, root: SystemRoot) -> [String] {
    var pattern = pattern
    let dir = directoryName(pattern)
    if !dir.contains(where: { "*?[".contains($0) }), let real = try? root.resolve(dir) {
        pattern = real + "/" + baseName(pattern)
    }
    var g = glob_t()
    defer { globfree(&g) }
    guard glob(pattern, 0, nil, &g) == 0 else { return [] }
    var out: [String] = []
    for i in 0..<Int(g.gl_pathc) {
        if let p = g.gl_pathv[i] { out.append(String(cString: p)) }
    }
    return out.sorted()
}

/// The plan for one chain: edits per file (only files that change), and
/// whether the chain is safe before them.
public struct ChainPlan: Sendable {
    public var chain: ConfChain
    /// Safe as it is: nothing to do.
    public var isSafe: Bool
    /// Lines the daemon itself refuses: the file is neither safe nor
    /// fixable by ntpleap (chrony would not start, before or after).
    public var refused: [InvalidLine] = []
    /// Edits for files[i] (absent: unchanged).
    public var edits: [Int: FileEdits]
    /// Kernel enables in included files that are left as they are (no
    /// --follow-includes): overridden by the main file's disable.
    public var untouchedIncludeEnables: [KernelDirective]
}

/// Decides what to change. The main file is always in scope; included files
/// only with `followIncludes`.
public func planChain(_ chain: ConfChain, followIncludes: Bool) -> ChainPlan {
    func inScope(_ file: Int) -> Bool { file == 0 || followIncludes }
    var edits: [Int: FileEdits] = [:]
    switch chain.dialect {
    case .ntp:
        let realEnables = chain.directives.filter { d in
            d.kind == .enable && !chain.unknownIncludes.contains(d)
        }
        let all = NtpVerdict(directives: chain.directives)
        let scopedEnables = realEnables.filter { inScope($0.file) }
        let safe = all.kernelOff && scopedEnables.isEmpty
        let untouched = realEnables.filter { !inScope($0.file) }
        if safe { return ChainPlan(chain: chain, isSafe: true, edits: [:], untouchedIncludeEnables: untouched) }
        for (i, file) in chain.files.enumerated() where inScope(i) {
            var e = FileEdits()
            removeEnableKernel(file.text, into: &e)
            if !e.isEmpty { edits[i] = e }
        }
        let after = chain.directives.filter { !($0.kind == .enable && inScope($0.file) && !chain.unknownIncludes.contains($0)) }
        if !NtpVerdict(directives: after).kernelOff {
            var e = edits[0] ?? FileEdits()
            appendDisableKernel(chain.files[0].text, into: &e)
            edits[0] = e
        }
        return ChainPlan(chain: chain, isSafe: false, edits: edits, untouchedIncludeEnables: untouched)
    case .chrony:
        if !chain.invalidLines.isEmpty {
            var plan = ChainPlan(chain: chain, isSafe: false, edits: [:], untouchedIncludeEnables: [])
            plan.refused = chain.invalidLines
            return plan
        }
        if ChronyVerdict(settings: chain.settings).isSafe {
            return ChainPlan(chain: chain, isSafe: true, edits: [:], untouchedIncludeEnables: [])
        }
        var settings = chain.settings
        for (i, file) in chain.files.enumerated() where inScope(i) {
            var e = FileEdits()
            replaceChronySystemMode(file.text, into: &e)
            if !e.isEmpty { edits[i] = e }
        }
        for k in settings.indices where inScope(settings[k].file) && settings[k].mode == "system" {
            settings[k].mode = "slew"
        }
        if !ChronyVerdict(settings: settings).isSafe {
            let text = chain.files[0].text
            var e = edits[0] ?? FileEdits()
            e.appended.append(Array(ChronyRules.appendedComment.utf8) + text.lineEnding.bytes)
            e.appended.append(Array("leapsecmode slew".utf8) + text.lineEnding.bytes)
            e.notes.append("appended 'leapsecmode slew' at the end")
            edits[0] = e
        }
        let untouched = chain.settings.filter { !inScope($0.file) && $0.mode == "system" }
            .map { KernelDirective(kind: .enable, file: $0.file, line: $0.line) }
        return ChainPlan(chain: chain, isSafe: false, edits: edits, untouchedIncludeEnables: untouched)
    }
}
