#if canImport(Glibc)
import Glibc
#endif
import RescueCore

/// What `ntpleap` is asked to do.
public enum LeapAction: Sendable { case rewrite, check, diff, restore, status, clearKernelLeap }

public struct LeapOptions: Sendable {
    public var action: LeapAction = .rewrite
    /// FILE arguments (inside the root under --root).
    public var files: [String] = []
    public var chrony = false
    public var followIncludes = false
    public var backupSuffix = ".rescuebox-bak"
    public var force = false
    /// Run the restart command(s) after a change.
    public var restart = false
    public var root = SystemRoot(nil)
    /// --status: also ask the running ntpd over NTP mode 6.
    public var live = false
    public init() {}
    var dialect: ConfDialect { chrony ? .chrony : .ntp }
}

/// One output item, in order: a line for stdout or stderr, or raw bytes
/// for stdout (a diff).
public enum ReportItem: Equatable, Sendable {
    case out(String)
    case err(String)
    case bytes([UInt8])
}

/// One file's facts, for the lines and for --json.
public struct FileReport: Sendable {
    public enum Verdict: String, Sendable { case safe, changeNeeded = "change-needed", changed, refused, error }
    public var path: String
    public var origin: ConfigOrigin
    public var family: DaemonFamily?
    public var dialect: ConfDialect
    public var verdict: Verdict
    /// Why: the directives that decide it, or the error.
    public var detail: String
    /// The changes needed (or made), one per edit.
    public var changes: [String] = []
}

/// The kernel facts --status reports.
public struct KernelReport: Sendable {
    public var release: String
    public var verdict: KernelVerdict
    /// Leap second armed in the running kernel (nil: cannot read adjtimex).
    public var leapState: KernelLeapState?
    public var leapStateError: String?
    /// Kernels installed under --root (lib/modules), each judged.
    public var imageKernels: [(String, KernelVerdict)] = []
}

/// Everything one run found and did. The applet prints `items` (or
/// `json()`), then exits with `exitCode`.
public struct LeapReport: Sendable {
    public var items: [ReportItem] = []
    public var files: [FileReport] = []
    public var kernel: KernelReport?
    public var daemon: DaemonFacts?
    public var daemonError: String?
    public var processes: [String] = []
    public var restartCommands: [[String]] = []
    /// The error that ended the run, already in `items` as its last line.
    public var error: RescueError?
    public var exitCode: Int32 = 0

    mutating func out(_ s: String) { items.append(.out(s)) }
    mutating func err(_ s: String) { items.append(.err(s)) }
}

/// The ntpleap job: discovery, plans, the rewrite, --check, --diff,
/// --restore, --status and --clear-kernel-leap, as a report.
public struct LeapJob {
    public var options: LeapOptions
    public init(_ options: LeapOptions) { self.options = options }

    var root: SystemRoot { options.root }

    public func run() -> LeapReport {
        var report = LeapReport()
        do {
            switch options.action {
            case .status: try status(&report)
            case .clearKernelLeap: try clearKernelLeapArmed(&report)
            case .restore: try restore(&report)
            case .rewrite, .check, .diff: try rewrite(&report)
            }
        } catch let error as RescueError {
            report.error = error
            report.items.append(.err("\(Program.messagePrefix): \(error.description)"))
            // --check: any error is "could not decide" (2).
            report.exitCode = options.action == .check ? 2 : 1
        } catch {
            report.items.append(.err("\(Program.messagePrefix): \(error)"))
            report.exitCode = options.action == .check ? 2 : 1
        }
        return report
    }

    // MARK: targets

    func named() -> [DiscoveredConfig] {
        options.files.map { f in
            let path = root.named(f)
            let inside = root.inside(path) ?? path
            let family: DaemonFamily? = options.chrony ? .chrony : DaemonFamily.ofNtpConfig(insidePath: inside)
            return DiscoveredConfig(path: path, origin: .commandLine, family: family)
        }
    }

    func targets() throws -> [DiscoveredConfig] {
        if !options.files.isEmpty { return named() }
        let found = options.chrony ? discoverChronyConfigs(root: root.prefix) : discoverNtpConfigs(root: root.prefix)
        if found.isEmpty {
            let looked = options.chrony ? "/etc/chrony/chrony.conf, /etc/chrony.conf"
                : "/etc/ntp.conf, /etc/ntpsec/ntp.conf, -c in /etc/default/ntp(sec), /etc/sysconfig/ntpd"
            throw RescueError(options.chrony ? "chrony.conf" : "ntp.conf", "find",
                              "none found (looked for \(looked)\(root.isHost ? "" : " under \(root.prefix)")); name the file")
        }
        return found
    }

    func describe(_ file: Int, _ line: Int, in chain: ConfChain) -> String {
        "\(chain.files[file].config.path) line \(line)"
    }

    /// One line on why a chain is (not) safe.
    func verdictText(_ plan: ChainPlan) -> String {
        let chain = plan.chain
        if !plan.refused.isEmpty {
            return plan.refused.map { "\(describe($0.file, $0.line, in: chain)): \($0.reason)" }.joined(separator: "; ")
        }
        if chain.dialect == .chrony {
            if let last = chain.settings.last {
                return "leapsecmode \(last.mode) (\(describe(last.file, last.line, in: chain)))"
            }
            return "no leapsecmode (chrony's default is system: the kernel inserts the leap)"
        }
        let v = NtpVerdict(directives: chain.directives)
        var parts: [String] = []
        let enables = v.enables.filter { !chain.unknownIncludes.contains($0) }
        if !enables.isEmpty { parts.append("enable kernel at " + enables.map { describe($0.file, $0.line, in: chain) }.joined(separator: ", ")) }
        if let d = v.directives.last(where: { $0.kind == .disable }) {
            parts.append("disable kernel at \(describe(d.file, d.line, in: chain))")
            if !v.kernelOffInOrder { parts.append("but a later enable wins under ntpd <= 4.2.4") }
        } else {
            parts.append("no disable kernel (the kernel discipline is on by default)")
        }
        return parts.joined(separator: "; ")
    }

    func plan(_ config: DiscoveredConfig, dialect: ConfDialect) throws -> ChainPlan {
        planChain(try loadChain(config.path, dialect: dialect, root: root), followIncludes: options.followIncludes)
    }

    func fileReport(_ c: DiscoveredConfig, _ plan: ChainPlan, dialect: ConfDialect) -> FileReport {
        let verdict: FileReport.Verdict = !plan.refused.isEmpty ? .refused : (plan.isSafe ? .safe : .changeNeeded)
        let changes = plan.edits.sorted { $0.key < $1.key }.flatMap { (i, e) in
            e.notes.map { "\(plan.chain.files[i].config.path): \($0)" }
        }
        return FileReport(path: c.path, origin: c.origin, family: c.family, dialect: dialect,
                          verdict: verdict, detail: verdictText(plan), changes: changes)
    }

    // MARK: rewrite, --check, --diff

    func rewrite(_ report: inout LeapReport) throws {
        let check = options.action == .check, diff = options.action == .diff
        var plans: [(DiscoveredConfig, ChainPlan)] = []
        var failed: RescueError? = nil
        for t in try targets() {
            do {
                plans.append((t, try plan(t, dialect: options.dialect)))
            } catch let e as RescueError {
                // --check answers for every file; otherwise the first error stops the run.
                guard check else { throw e }
                report.files.append(FileReport(path: t.path, origin: t.origin, family: t.family, dialect: options.dialect,
                                               verdict: .error, detail: e.description))
                report.err("\(Program.messagePrefix): \(e.description)")
                failed = failed ?? e
            }
        }
        var needed = false
        var refused: RescueError? = nil
        var toWrite: [(DiscoveredConfig, ChainPlan)] = []
        for (target, plan) in plans {
            let main = target.path
            func say(_ s: String) { if diff { report.err(s) } else { report.out(s) } }
            if target.origin != .commandLine { say("\(main): \(target.why)") }
            for note in plan.chain.notes { say("\(main): note: \(note)") }
            for d in plan.untouchedIncludeEnables {
                say("\(main): \(describe(d.file, d.line, in: plan.chain)): \(options.chrony ? "leapsecmode system" : "enable kernel") left as it is (overridden by the main file; --follow-includes rewrites it)")
            }
            report.files.append(fileReport(target, plan, dialect: options.dialect))
            if !plan.refused.isEmpty {
                // chronyd itself refuses the file: neither safe nor something ntpleap can fix.
                let first = plan.refused[0]
                let error = RescueError(describe(first.file, first.line, in: plan.chain), "check", "\(first.reason); fix this line by hand (nothing changed)")
                report.err("\(Program.messagePrefix): \(error.description)")
                refused = refused ?? error
                continue
            }
            if plan.isSafe {
                say("\(main): already safe: \(verdictText(plan)); no change")
                continue
            }
            needed = true
            if check {
                say("\(main): change needed: \(verdictText(plan))")
                continue
            }
            if diff {
                for (i, edits) in plan.edits.sorted(by: { $0.key < $1.key }) {
                    let file = plan.chain.files[i]
                    let applied = apply(edits, to: file.text)
                    report.items.append(.bytes(unifiedDiff(oldName: file.config.path, newName: file.config.path, text: file.text, applied: applied)))
                }
                say("\(main): change needed: \(verdictText(plan))")
                continue
            }
            toWrite.append((target, plan))
        }
        if let failed = failed ?? refused {
            // Nothing is written at all when a file cannot be judged.
            report.error = failed
            report.exitCode = check ? 2 : 1
            return
        }
        // Every directory is checked before the first write: a read-only
        // filesystem under any of the files changes nothing at all.
        for (_, plan) in toWrite {
            for (i, _) in plan.edits {
                let file = plan.chain.files[i].config
                try checkWritableDirectory(of: file.realPath)
                try checkWritableDirectory(of: file.namePath + options.backupSuffix)
            }
        }
        var changed: [DaemonFamily?] = []
        for (target, plan) in toWrite {
            try write(plan, &report)
            if let k = report.files.firstIndex(where: { $0.path == target.path }) { report.files[k].verdict = .changed }
            changed.append(target.family)
        }
        if check && needed { report.exitCode = 1; return }
        if !changed.isEmpty { try afterChange(families: changed, &report) }
        if !check && !diff { warnArmedLeap(&report) }
    }

    /// Backups, then the atomic replacements.
    func write(_ plan: ChainPlan, _ report: inout LeapReport) throws {
        for (i, edits) in plan.edits.sorted(by: { $0.key < $1.key }) {
            let file = plan.chain.files[i]
            let applied = apply(edits, to: file.text)
            let backupPath = file.config.namePath + options.backupSuffix
            let outcome = try writeBackup(of: file.config, to: backupPath, force: options.force, root: root)
            do {
                try replaceAtomically(file.config.realPath, with: applied.result, like: file.config, crashHook: true)
            } catch {
                if outcome == .created { unlink(backupPath) }
                throw error
            }
            let via = file.config.realPath == file.config.namePath ? "" : " (via \(file.config.realPath))"
            report.out("\(file.config.path)\(via): changed: \(edits.notes.joined(separator: "; ")); backup \(backupPath)\(outcome == .alreadyThere ? " (already there)" : "")")
        }
    }

    /// The restart hint (or the restart) for each family changed.
    func afterChange(families: [DaemonFamily?], _ report: inout LeapReport) throws {
        let initSystem = InitSystem.detect(root: root.prefix)
        var seen = Set<String>()
        for family in families {
            let daemon = family?.daemonName ?? "ntpd"
            guard let service = serviceName(family: family, root: root.prefix) else {
                let key = "none:" + daemon
                if seen.insert(key).inserted {
                    report.out("restart \(daemon) to apply: no unit or init script found for it (looked for \(serviceCandidates(family).joined(separator: ", ")))")
                }
                continue
            }
            guard seen.insert(service).inserted else { continue }
            let command = restartCommand(initSystem, service: service)
            report.restartCommands.append(command)
            if options.restart {
                report.out("restarting: \(command.joined(separator: " "))")
            } else {
                report.out("restart \(daemon) to apply (\(initSystem.rawValue)): \(command.joined(separator: " "))")
            }
        }
    }

    func warnArmedLeap(_ report: inout LeapReport) {
        guard root.isHost, let state = try? readKernelLeapState(), state.armed else { return }
        report.out("warning: \(state.description); restarting does not clear it: stop the daemon, run 'rescuebox ntpleap --clear-kernel-leap', start it")
    }

    // MARK: --restore

    func restore(_ report: inout LeapReport) throws {
        let list = try targets()
        // Read everything first: a missing backup changes nothing at all.
        var work: [(DiscoveredConfig, String, ConfigFile, ConfigFile?)] = []
        for t in list {
            let backupPath = try root.resolve(t.path, keepLast: true) + options.backupSuffix
            // A discovered file ntpleap never changed (no backup) is left alone;
            // a named one must have its backup.
            if options.files.isEmpty && !fileExists(backupPath) && list.count > 1 {
                report.out("\(t.path): no backup \(backupPath); left alone")
                continue
            }
            let backupFile = try readConfigFile(backupPath, root: root)
            let current = try? readConfigFile(t.path, root: root)
            work.append((t, backupPath, backupFile, current))
        }
        var families: [DaemonFamily?] = []
        for (t, _, backupFile, current) in work {
            if let current, current.bytes == backupFile.bytes {
                report.out("\(t.path): already equal to \(backupFile.path); no change")
                continue
            }
            let target = try current?.realPath ?? root.resolve(t.path)
            try checkWritableDirectory(of: target)
            try replaceAtomically(target, with: backupFile.bytes, like: current ?? backupFile, crashHook: true)
            report.out("\(t.path): restored from \(backupFile.path) (backup kept)")
            families.append(t.family)
        }
        if !families.isEmpty { try afterChange(families: families, &report) }
    }

    // MARK: --status

    func status(_ report: inout LeapReport) throws {
        let procs = runningProcesses(root: root.prefix)
        let ntpds = procs.filter { $0.name == "ntpd" }
        let chronyds = procs.filter { $0.name == "chronyd" }
        report.out("configuration:")
        let ntpConfigs = options.chrony ? [] : (options.files.isEmpty ? discoverNtpConfigs(root: root.prefix) : named())
        if !options.chrony && ntpConfigs.isEmpty { report.out("  ntp.conf: none found") }
        for c in ntpConfigs { statusLine(c, dialect: .ntp, &report) }
        let chronyConfigs = options.chrony && !options.files.isEmpty ? named() : discoverChronyConfigs(root: root.prefix)
        for c in chronyConfigs { statusLine(c, dialect: .chrony, &report) }
        if options.chrony && chronyConfigs.isEmpty { report.out("  chrony.conf: none found") }
        let allSafe = !report.files.isEmpty && report.files.allSatisfy { $0.verdict == .safe }

        report.out("daemons:")
        let seeProcs = processTableReadable(root: root.prefix)
        if !seeProcs { report.out("  processes: unknown (cannot read \(root.prefix)/proc)") }
        if ntpds.isEmpty && seeProcs { report.out("  ntpd: not running") }
        for p in ntpds {
            let x = ntpdHasSlewFlag(Array(p.arguments.dropFirst()))
            report.out("  ntpd: running (pid \(p.pid)) \(x ? "with -x: kernel discipline off whatever the config says" : "without -x"): \(p.arguments.joined(separator: " "))")
            report.processes.append("ntpd \(p.pid)")
        }
        for (_, o) in ntpdOptionFiles(root: root.prefix) where o.slew {
            report.out("  ntpd options: -x in \(o.source)")
        }
        let chronyInUse = !chronyds.isEmpty || !chronyConfigs.isEmpty
        if chronyds.isEmpty && seeProcs {
            report.out("  chronyd: not running\(chronyConfigs.isEmpty ? ", no chrony.conf" : " (chrony.conf present)")")
        }
        for p in chronyds {
            report.out("  chronyd: running (pid \(p.pid))")
            report.processes.append("chronyd \(p.pid)")
        }
        report.out("  chrony in use: \(chronyInUse ? "yes" : "no")")
        if options.live { live(&report) }

        kernelStatus(allSafe: allSafe, &report)

        let initSystem = InitSystem.detect(root: root.prefix)
        report.out("restart (\(initSystem.rawValue)):")
        var families: [DaemonFamily?] = []
        if !ntpConfigs.isEmpty || !ntpds.isEmpty {
            let known = Set(ntpConfigs.compactMap(\.family))
            families.append(known.count == 1 ? known.first : nil)
        }
        if chronyInUse { families.append(.chrony) }
        if families.isEmpty { report.out("  no time daemon found") }
        var seen = Set<String>()
        for f in families {
            guard let service = serviceName(family: f, root: root.prefix) else {
                report.out("  \(f?.daemonName ?? "ntpd"): no unit or init script found (looked for \(serviceCandidates(f).joined(separator: ", ")))")
                continue
            }
            guard seen.insert(service).inserted else { continue }
            let command = restartCommand(initSystem, service: service)
            report.restartCommands.append(command)
            report.out("  " + command.joined(separator: " "))
        }
    }

    func statusLine(_ c: DiscoveredConfig, dialect: ConfDialect, _ report: inout LeapReport) {
        let name = dialect == .chrony ? "chrony.conf" : "ntp.conf"
        do {
            let plan = try plan(c, dialect: dialect)
            let r = fileReport(c, plan, dialect: dialect)
            report.files.append(r)
            let word = r.verdict == .refused ? "ERROR (chronyd would not start)" : (plan.isSafe ? "safe" : "CHANGE NEEDED")
            report.out("  \(name) \(c.path) (\(c.why)): \(word): \(r.detail)")
        } catch let e as RescueError {
            report.files.append(FileReport(path: c.path, origin: c.origin, family: c.family, dialect: dialect,
                                           verdict: .error, detail: e.description))
            report.out("  \(name) \(c.path) (\(c.why)): error: \(e.description)")
        } catch {
            report.out("  \(name) \(c.path): error: \(error)")
        }
    }

    func live(_ report: inout LeapReport) {
        do {
            let facts = try queryRunningDaemon()
            report.daemon = facts
            let whose = root.isHost ? "ntpd" : "ntpd running here (not the system under \(root.prefix))"
            report.out("  \(whose) at \(facts.address) (mode 6): \(facts.value("version") ?? "version unknown"): leap=\(facts.leapBits): \(facts.leapMeaning)")
            switch facts.kernelDisciplineInUse {
            case true?: report.out("  kernel discipline: IN USE (kernel status \(facts.value("kstflags") ?? "")): the kernel would insert an announced leap")
            case false?: report.out("  kernel discipline: not in use (kernel status \"\(facts.value("kstflags") ?? "")\": no PLL/FLL)")
            case nil: report.out("  kernel discipline: unknown (the daemon exports no kernel status)")
            }
        } catch let e as RescueError {
            report.daemonError = e.description
            report.out("  ntpd (mode 6 on 127.0.0.1 and ::1): \(e.description)")
        } catch {}
    }

    func kernelStatus(allSafe: Bool, _ report: inout LeapReport) {
        let release = runningKernelRelease()
        var k = KernelReport(release: release, verdict: kernelLeapVerdict(release: release))
        let whose = root.isHost ? "running kernel" : "running kernel (the rescue system's, not the system under \(root.prefix))"
        report.out("kernel:")
        report.out("  " + kernelVerdictLine(whose: whose, release: release, verdict: k.verdict, configurationSafe: allSafe))
        do {
            let state = try readKernelLeapState()
            k.leapState = state
            report.out("  \(whose): \(state.description) (adjtimex time state \(state.timeState), status 0x\(String(state.status, radix: 16)))")
        } catch let e as RescueError {
            k.leapStateError = e.description
            report.out("  \(whose): leap state unknown: \(e.description)")
        } catch {}
        if !root.isHost {
            for name in directoryEntries(root.prefix + "/lib/modules") ?? [] {
                let v = kernelLeapVerdict(release: name)
                k.imageKernels.append((name, v))
                report.out("  installed under \(root.prefix): \(name): leap-second defect: \(v.word): \(v.reason)")
            }
        }
        report.kernel = k
    }

    // MARK: --clear-kernel-leap

    func clearKernelLeapArmed(_ report: inout LeapReport) throws {
        let procs = runningProcesses(root: root.prefix).filter { $0.name == "ntpd" || $0.name == "chronyd" }
        if let p = procs.first {
            let family: DaemonFamily? = p.name == "chronyd" ? .chrony : nil
            let service = serviceName(family: family, root: root.prefix) ?? serviceCandidates(family)[0]
            let command = restartCommand(InitSystem.detect(root: root.prefix), service: service)
            let stop = command.map { $0 == "restart" ? "stop" : $0 }.joined(separator: " ")
            throw RescueError("kernel leap second", "clear",
                              "\(p.name) is running (pid \(p.pid)) and would arm it again; stop it first (\(stop)), clear, then start it with the safe config")
        }
        if !processTableReadable(root: root.prefix) {
            throw RescueError("kernel leap second", "clear", "cannot tell whether ntpd or chronyd runs (cannot read \(root.prefix)/proc)")
        }
        let state = try readKernelLeapState()
        guard state.armed else {
            report.out("\(state.description); nothing to clear")
            return
        }
        let after = try clearKernelLeap(state)
        if after.armed { throw RescueError("kernel leap second", "clear", "still armed after adjtimex (status 0x\(String(after.status, radix: 16)))") }
        report.out("cleared: \(state.insertArmed ? "STA_INS" : "STA_DEL") removed from the kernel status; \(after.description)")
    }
}

/// The --status line on the kernel's leap-second defect: information when
/// the configuration is already safe (the kernel never inserts the leap
/// itself then), a warning when it is not.
public func kernelVerdictLine(whose: String, release: String, verdict: KernelVerdict, configurationSafe: Bool) -> String {
    var line = "\(whose) \(release): leap-second defect: \(verdict.word): \(verdict.reason)"
    if case .affected = verdict {
        line += configurationSafe ? " (information: the configuration is safe, so the kernel never inserts the leap itself)"
            : " (WARNING: make the configuration safe: rescuebox ntpleap)"
    }
    return line
}

/// Runs a restart command; a failure is one RescueError.
public func runRestartCommand(_ argv: [String]) throws {
    switch waitForProcess(try spawnProcess(argv, searchPath: true)) {
    case .exited(0): return
    case .exited(let code): throw RescueError(argv.joined(separator: " "), "run", "exit status \(code)")
    case .killed(let signal): throw RescueError(argv.joined(separator: " "), "run", "killed by signal \(signal)")
    }
}
