import ArgumentParser
import NTPConf
import RescueCore
#if canImport(Glibc)
import Glibc
#endif

public struct NtpLeap: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "ntpleap",
        abstract: "Make ntpd leap-second safe (disable kernel), idempotently, with a backup.",
        discussion: """
        Some kernels hang or spin when the kernel itself inserts a leap second. ntpd
        hands the announced leap to the kernel unless its kernel discipline is off.
        ntpleap removes `kernel` from every active `enable` line (the line goes only
        when no flag remains; its comment stays) and appends one `disable kernel`
        line with a comment at the end of the main file, in the file's own line
        endings. Every other byte stays. A safe file is left alone ("already safe").
        ntpd >= 4.2.6 and ntpsec apply disables after enables, ntpd <= 4.2.4 applies
        lines in order: the appended line is right under both.

        Without FILE it acts on what the running distribution uses: /etc/ntp.conf
        and/or /etc/ntpsec/ntp.conf, or `-c FILE` from NTPD_OPTS in /etc/default/ntp
        or /etc/default/ntpsec, OPTIONS in /etc/sysconfig/ntpd (RHEL), NTPD_OPTIONS in
        /etc/sysconfig/ntp (SUSE) or a running ntpd; plus the DHCP copy
        /run/ntp.conf.dhcp (/run/ntpsec/ntp.conf.dhcp) that ntpd reads instead while
        it exists. It says which file(s) it acted on.

        `includefile` chains are followed (relative to the including file; a directory
        means its *.conf); an `enable kernel` there is reported, and rewritten with
        --follow-includes. The write is atomic: a temporary file in the same
        directory with the same mode, owner, group and SELinux label, fsync, rename,
        fsync of the directory; the original goes to FILE.rescuebox-bak first.

        With --chrony the same rules apply to chrony.conf: `leapsecmode system` (the
        default) becomes `leapsecmode slew`; `slew`, `step` and `ignore` are left alone.

        Exit codes: 0 done (or safe), 1 error; with --check: 0 safe, 1 change needed,
        2 error.

        EXAMPLES:
          rescuebox ntpleap --check          # 0 safe, 1 change needed, 2 error
          rescuebox ntpleap --diff           # the change, as a unified diff
          rescuebox ntpleap                  # fix the config(s) in use
          rescuebox ntpleap --restart        # ... and restart ntpd if changed
          rescuebox ntpleap --follow-includes /etc/ntp.conf
          rescuebox ntpleap --status         # config, -x, kernel leap, chrony
          rescuebox ntpleap --restore        # put FILE.rescuebox-bak back
          rescuebox ntpleap --chrony --check
          rescuebox ntpleap --root /mnt/sysimage   # a mounted system
          systemctl stop ntp
          rescuebox ntpleap --clear-kernel-leap    # a leap already armed
          systemctl start ntp
          for h in $(cat hosts); do ssh $h rescuebox ntpleap --check || echo $h; done
        """
    )

    @Argument(help: "Configuration file(s) to act on (default: the ones the running system uses).")
    var files: [String] = []

    @Flag(help: "Change nothing; exit 0 when safe, 1 when a change is needed, 2 on error.")
    var check = false

    @Flag(help: "Print the unified diff it would apply; change nothing.")
    var diff = false

    @Flag(help: "Also rewrite `enable kernel` in included files (they are always checked).")
    var followIncludes = false

    @Option(help: ArgumentHelp("Backup suffix.", valueName: "SUFFIX"))
    var backup = ".rescuebox-bak"

    @Flag(help: "Replace an existing backup that differs from the current file.")
    var force = false

    @Flag(help: "Put FILE.rescuebox-bak (or the --backup SUFFIX) back, atomically; the backup stays.")
    var restore = false

    @Flag(help: "Report: config verdict, ntpd -x, kernel leap armed, chrony, the restart command.")
    var status = false

    @Flag(help: "Clear a leap second armed in the kernel (STA_INS/STA_DEL); refused while ntpd or chronyd runs.")
    var clearKernelLeap = false

    @Flag(help: "Run the restart command after a change (default: print it).")
    var restart = false

    @Flag(help: "Act on chrony.conf: `leapsecmode slew`.")
    var chrony = false

    @Option(help: ArgumentHelp("Act on the system under DIR (its /etc, /run, /proc): a mounted image, or tests.",
                               valueName: "DIR"))
    var root: String?

    @Flag(name: .shortAndLong, help: "Say more.")
    var verbose = false

    public init() {}

    public func validate() throws {
        let modes = [check, diff, restore, status, clearKernelLeap].filter { $0 }.count
        if modes > 1 { throw ValidationError("--check, --diff, --restore, --status and --clear-kernel-leap exclude each other") }
        if restart && (check || diff || status || clearKernelLeap) {
            throw ValidationError("--restart goes with a rewrite or --restore")
        }
        if restart && root != nil { throw ValidationError("--restart cannot restart a system under --root") }
        if backup.isEmpty || backup.contains("/") { throw ValidationError("--backup SUFFIX must be non-empty without '/'") }
        if let root, root.isEmpty { throw ValidationError("--root DIR must not be empty") }
    }

    var rootPrefix: String {
        guard var r = root else { return "" }
        while r.count > 1 && r.hasSuffix("/") { r.removeLast() }
        return r == "/" ? "" : r
    }

    var dialect: ConfDialect { chrony ? .chrony : .ntp }

    public func run() throws {
        Program.verbose = verbose
        do {
            if status { return try runStatus() }
            if clearKernelLeap { return try runClearKernelLeap() }
            if restore { return try runRestore() }
            try runRewrite()
        } catch let error as RescueError where check {
            // --check: any error is "could not decide" (2), without a usage hint.
            printError(error.description)
            throw AppletExit(2)
        }
    }

    // MARK: targets

    func targets() throws -> [DiscoveredConfig] {
        if !files.isEmpty { return files.map { DiscoveredConfig(path: $0, why: "named on the command line") } }
        let found = chrony ? discoverChronyConfigs(root: rootPrefix) : discoverNtpConfigs(root: rootPrefix)
        if found.isEmpty {
            let looked = chrony ? "/etc/chrony/chrony.conf, /etc/chrony.conf"
                : "/etc/ntp.conf, /etc/ntpsec/ntp.conf, -c in /etc/default/ntp(sec), /etc/sysconfig/ntpd"
            throw RescueError(chrony ? "chrony.conf" : "ntp.conf", "find", "none found (looked for \(looked)\(root == nil ? "" : " under \(rootPrefix)")); name the file")
        }
        return found
    }

    func describe(_ d: KernelDirective, in chain: ConfChain) -> String {
        "\(chain.files[d.file].config.path) line \(d.line)"
    }

    /// One line on why a chain is (not) safe.
    func verdict(_ plan: ChainPlan) -> String {
        let chain = plan.chain
        if chain.dialect == .chrony {
            let v = ChronyVerdict(settings: chain.settings)
            if let last = v.settings.last {
                return "leapsecmode \(last.mode) (\(describe(KernelDirective(kind: .disable, file: last.file, line: last.line), in: chain)))"
            }
            return "no leapsecmode (chrony's default is system: the kernel inserts the leap)"
        }
        let v = NtpVerdict(directives: chain.directives)
        var parts: [String] = []
        let enables = v.enables.filter { !chain.unknownIncludes.contains($0) }
        if !enables.isEmpty { parts.append("enable kernel at " + enables.map { describe($0, in: chain) }.joined(separator: ", ")) }
        if let d = v.directives.last(where: { $0.kind == .disable }) {
            parts.append("disable kernel at \(describe(d, in: chain))")
            if !v.kernelOffInOrder { parts.append("but a later enable wins under ntpd <= 4.2.4") }
        } else {
            parts.append("no disable kernel (the kernel discipline is on by default)")
        }
        return parts.joined(separator: "; ")
    }

    struct Target {
        var config: DiscoveredConfig
        var plan: ChainPlan
    }

    func loadPlans() throws -> [Target] {
        try targets().map { t in
            let chain = try loadChain(t.path, dialect: dialect, root: rootPrefix)
            return Target(config: t, plan: planChain(chain, followIncludes: followIncludes))
        }
    }

    // MARK: rewrite, --check, --diff

    func runRewrite() throws {
        let plans = try loadPlans()
        var needed = false
        var changedFamilies: [String] = []
        var toWrite: [Target] = []
        for target in plans {
            let plan = target.plan
            let main = target.config.path
            let say: (String) -> Void = diff ? { printStderr($0) } : { printStdout($0) }
            if target.config.why != "named on the command line" { say("\(main): \(target.config.why)") }
            for note in plan.chain.notes { say("\(main): note: \(note)") }
            for d in plan.untouchedIncludeEnables {
                say("\(main): \(describe(d, in: plan.chain)): \(chrony ? "leapsecmode system" : "enable kernel") left as it is (overridden by the main file; --follow-includes rewrites it)")
            }
            if plan.isSafe {
                say("\(main): already safe: \(verdict(plan)); no change")
                continue
            }
            needed = true
            if check {
                say("\(main): change needed: \(verdict(plan))")
                continue
            }
            for (i, edits) in plan.edits.sorted(by: { $0.key < $1.key }) {
                let file = plan.chain.files[i]
                let applied = apply(edits, to: file.text)
                if diff {
                    let patch = unifiedDiff(oldName: file.config.path, newName: file.config.path, text: file.text, applied: applied)
                    try OpenFile.standardOutput.writeAll(patch)
                }
            }
            if diff { say("\(main): change needed: \(verdict(plan))"); continue }
            toWrite.append(target)
        }
        // Every directory is checked before the first write: a read-only
        // filesystem under any of the files changes nothing at all.
        for target in toWrite {
            for (i, _) in target.plan.edits {
                let file = target.plan.chain.files[i].config
                try checkWritableDirectory(of: file.realPath)
                try checkWritableDirectory(of: file.path + backup)
            }
        }
        for target in toWrite {
            try write(target.plan)
            changedFamilies.append(chrony ? "chrony" : (target.config.path.contains("/ntpsec/") ? "ntpsec" : "ntp"))
        }
        if check && needed { throw AppletExit(1) }
        if !changedFamilies.isEmpty { try afterChange(families: changedFamilies) }
        if !check && !diff { warnArmedLeap() }
    }

    /// Backups, then the atomic replacements (the directories were checked
    /// before: a read-only filesystem changes nothing).
    func write(_ plan: ChainPlan) throws {
        let changed = plan.edits.sorted(by: { $0.key < $1.key })
        for (i, edits) in changed {
            let file = plan.chain.files[i]
            let applied = apply(edits, to: file.text)
            let backupPath = file.config.path + backup
            let outcome = try writeBackup(of: file.config, to: backupPath, force: force)
            do {
                try replaceAtomically(file.config.realPath, with: applied.result, like: file.config, crashHook: true)
            } catch {
                if outcome == .created { unlink(backupPath) }
                throw error
            }
            let via = file.config.realPath == file.config.path ? "" : " (via \(file.config.realPath))"
            printStdout("\(file.config.path)\(via): changed: \(edits.notes.joined(separator: "; ")); backup \(backupPath)\(outcome == .alreadyThere ? " (already there)" : "")")
        }
    }

    func afterChange(families: [String]) throws {
        let initSystem = InitSystem.detect(root: rootPrefix)
        var seen = Set<String>()
        for family in families where !seen.contains(family) {
            seen.insert(family)
            let command = restartCommand(initSystem, service: serviceName(family: family, root: rootPrefix))
            if restart {
                printStdout("restarting: \(command.joined(separator: " "))")
                try runCommand(command)
            } else {
                let daemon = family == "chrony" ? "chronyd" : "ntpd"
                printStdout("restart \(daemon) to apply (\(initSystem.rawValue)): \(command.joined(separator: " "))")
            }
        }
    }

    func warnArmedLeap() {
        guard root == nil, let state = try? readKernelLeapState(), state.armed else { return }
        printStdout("warning: \(state.description); restarting does not clear it: stop the daemon, run 'rescuebox ntpleap --clear-kernel-leap', start it")
    }

    // MARK: --restore

    func runRestore() throws {
        let list = try targets()
        // Read everything first: a missing backup changes nothing at all.
        var work: [(String, ConfigFile, ConfigFile?)] = []
        for t in list {
            let backupPath = t.path + backup
            // A discovered file ntpleap never changed (no backup) is left alone;
            // a named one must have its backup.
            if files.isEmpty && !fileExistsAt(backupPath) && list.count > 1 {
                printStdout("\(t.path): no backup \(backupPath); left alone")
                continue
            }
            let backupFile = try readConfigFile(backupPath)
            let current = try? readConfigFile(t.path)
            work.append((t.path, backupFile, current))
        }
        var restored = false
        for (path, backupFile, current) in work {
            if let current, current.bytes == backupFile.bytes {
                printStdout("\(path): already equal to \(backupFile.path); no change")
                continue
            }
            let target = current?.realPath ?? path
            try checkWritableDirectory(of: target)
            try replaceAtomically(target, with: backupFile.bytes, like: current ?? backupFile, crashHook: true)
            printStdout("\(path): restored from \(backupFile.path) (backup kept)")
            restored = true
        }
        if restored {
            try afterChange(families: list.map { chrony ? "chrony" : ($0.path.contains("/ntpsec/") ? "ntpsec" : "ntp") })
        }
    }

    func fileExistsAt(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }

    // MARK: --status

    func runStatus() throws {
        let procs = runningProcesses(root: rootPrefix)
        let ntpds = procs.filter { $0.name == "ntpd" }
        let chronyds = procs.filter { $0.name == "chronyd" }
        printStdout("configuration:")
        let ntpConfigs = chrony ? [] : (files.isEmpty ? discoverNtpConfigs(root: rootPrefix)
            : files.map { DiscoveredConfig(path: $0, why: "named on the command line") })
        if !chrony && ntpConfigs.isEmpty { printStdout("  ntp.conf: none found") }
        for c in ntpConfigs { statusLine(c, dialect: .ntp) }
        let chronyConfigs = chrony && !files.isEmpty ? files.map { DiscoveredConfig(path: $0, why: "named on the command line") }
            : discoverChronyConfigs(root: rootPrefix)
        for c in chronyConfigs { statusLine(c, dialect: .chrony) }
        if chrony && chronyConfigs.isEmpty { printStdout("  chrony.conf: none found") }

        printStdout("daemons:")
        let seeProcs = processTableReadable(root: rootPrefix)
        if !seeProcs { printStdout("  processes: unknown (cannot read \(rootPrefix)/proc)") }
        if ntpds.isEmpty && seeProcs { printStdout("  ntpd: not running") }
        for p in ntpds {
            let x = ntpdHasSlewFlag(Array(p.arguments.dropFirst()))
            printStdout("  ntpd: running (pid \(p.pid)) \(x ? "with -x: kernel discipline off whatever the config says" : "without -x"): \(p.arguments.joined(separator: " "))")
        }
        for (_, o) in ntpdOptionFiles(root: rootPrefix) where o.slew {
            printStdout("  ntpd options: -x in \(o.source)")
        }
        let chronyInUse = !chronyds.isEmpty || !chronyConfigs.isEmpty
        if chronyds.isEmpty && seeProcs {
            printStdout("  chronyd: not running\(chronyConfigs.isEmpty ? ", no chrony.conf" : " (chrony.conf present)")")
        }
        for p in chronyds { printStdout("  chronyd: running (pid \(p.pid))") }
        printStdout("  chrony in use: \(chronyInUse ? "yes" : "no")")

        printStdout("kernel:")
        do {
            let state = try readKernelLeapState()
            printStdout("  \(state.description) (adjtimex time state \(state.timeState), status 0x\(String(state.status, radix: 16)))")
        } catch let e as RescueError {
            printStdout("  leap state unknown: \(e.description)")
        }
        let initSystem = InitSystem.detect(root: rootPrefix)
        printStdout("restart (\(initSystem.rawValue)):")
        var families: [String] = []
        if !ntpConfigs.isEmpty || !ntpds.isEmpty {
            families.append(ntpConfigs.contains { $0.path.contains("/ntpsec/") } && !ntpConfigs.contains { !$0.path.contains("/ntpsec/") } ? "ntpsec" : "ntp")
        }
        if chronyInUse { families.append("chrony") }
        if families.isEmpty { printStdout("  no time daemon found") }
        for f in families {
            printStdout("  " + restartCommand(initSystem, service: serviceName(family: f, root: rootPrefix)).joined(separator: " "))
        }
    }

    func statusLine(_ c: DiscoveredConfig, dialect: ConfDialect) {
        let name = dialect == .chrony ? "chrony.conf" : "ntp.conf"
        do {
            let plan = planChain(try loadChain(c.path, dialect: dialect, root: rootPrefix), followIncludes: followIncludes)
            printStdout("  \(name) \(c.path) (\(c.why)): \(plan.isSafe ? "safe" : "CHANGE NEEDED"): \(verdict(plan))")
        } catch let e as RescueError {
            printStdout("  \(name) \(c.path) (\(c.why)): error: \(e.description)")
        } catch {
            printStdout("  \(name) \(c.path): error: \(error)")
        }
    }

    // MARK: --clear-kernel-leap

    func runClearKernelLeap() throws {
        let procs = runningProcesses(root: rootPrefix).filter { $0.name == "ntpd" || $0.name == "chronyd" }
        if let p = procs.first {
            let command = restartCommand(InitSystem.detect(root: rootPrefix),
                                         service: serviceName(family: p.name == "chronyd" ? "chrony" : "ntp", root: rootPrefix))
            let stop = command.map { $0 == "restart" ? "stop" : $0 }.joined(separator: " ")
            throw RescueError("kernel leap second", "clear",
                              "\(p.name) is running (pid \(p.pid)) and would arm it again; stop it first (\(stop)), clear, then start it with the safe config")
        }
        if !processTableReadable(root: rootPrefix) {
            throw RescueError("kernel leap second", "clear", "cannot tell whether ntpd or chronyd runs (cannot read \(rootPrefix)/proc)")
        }
        let state = try readKernelLeapState()
        guard state.armed else {
            printStdout("\(state.description); nothing to clear")
            return
        }
        let after = try NTPConf.clearKernelLeap(state)
        if after.armed { throw RescueError("kernel leap second", "clear", "still armed after adjtimex (status 0x\(String(after.status, radix: 16)))") }
        printStdout("cleared: \(state.insertArmed ? "STA_INS" : "STA_DEL") removed from the kernel status; \(after.description)")
    }

    // MARK: running the restart command

    func runCommand(_ argv: [String]) throws {
        let status = waitForProcess(try spawnProcess(argv, searchPath: true))
        let exited = status & 0x7f == 0
        let code = (status >> 8) & 0xff
        if !exited || code != 0 {
            throw RescueError(argv.joined(separator: " "), "run", exited ? "exit status \(code)" : "killed by signal \(status & 0x7f)")
        }
    }
}
