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

        Under --root DIR every FILE and every path found lives inside DIR, and
        symbolic links resolve there as under chroot; a link leaving DIR is refused.

        Exit codes: 0 done (or safe), 1 error; with --check: 0 safe, 1 change needed,
        2 error (also: a line the daemon itself refuses, like chrony's
        `leapsecmode system # note`).

        EXAMPLES:
          rescuebox ntpleap --check          # 0 safe, 1 change needed, 2 error
          rescuebox ntpleap --diff           # the change, as a unified diff
          rescuebox ntpleap                  # fix the config(s) in use
          rescuebox ntpleap --restart        # ... and restart ntpd if changed
          rescuebox ntpleap --follow-includes /etc/ntp.conf
          rescuebox ntpleap --status         # config, -x, kernel leap, chrony
          rescuebox ntpleap --status --live  # ... and ask the running ntpd (mode 6)
          rescuebox ntpleap --check --json   # one JSON object, for Ansible
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

    @Option(help: ArgumentHelp("Act on the system under DIR (its /etc, /run, /proc); FILE and links resolve inside it.",
                               valueName: "DIR"))
    var root: String?

    @Flag(help: "With --status: ask the running ntpd over NTP mode 6 on 127.0.0.1/::1 (leap indicator, kernel discipline).")
    var live = false

    @Flag(help: "With --check or --status: one JSON object (files, verdicts, changes, kernel and daemon facts).")
    var json = false

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
        if live && !status { throw ValidationError("--live goes with --status") }
        if json && !(check || status) { throw ValidationError("--json goes with --check or --status") }
    }

    var options: LeapOptions {
        var o = LeapOptions()
        o.action = status ? .status : clearKernelLeap ? .clearKernelLeap : restore ? .restore
            : check ? .check : diff ? .diff : .rewrite
        o.files = files
        o.chrony = chrony
        o.followIncludes = followIncludes
        o.backupSuffix = backup
        o.force = force
        o.restart = restart
        o.root = SystemRoot(root)
        o.live = live
        return o
    }

    public func run() throws {
        Program.verbose = verbose
        let report = LeapJob(options).run()
        if json {
            // Errors stay one line on stderr; everything else is in the object.
            for case .err(let line) in report.items { printStderr(line) }
            printStdout(report.json())
        } else {
            for item in report.items {
                switch item {
                case .out(let line): printStdout(line)
                case .err(let line): printStderr(line)
                case .bytes(let bytes): try OpenFile.standardOutput.writeAll(bytes)
                }
            }
        }
        if restart && report.exitCode == 0 {
            for command in report.restartCommands { try runRestartCommand(command) }
        }
        if report.exitCode != 0 { throw AppletExit(report.exitCode) }
    }
}
