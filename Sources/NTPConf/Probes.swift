#if canImport(Glibc)
import Glibc
#endif
import CShim
import RescueCore

/// A process seen in /proc (under the root directory when one is given).
public struct ProcessInfoLite: Sendable {
    public var pid: Int
    public var arguments: [String]
    /// basename of argv[0].
    public var name: String { baseName(arguments.first ?? "") }
}

/// Whether /proc (under the root directory) can be listed: without it,
/// "not running" cannot be told from "cannot see".
public func processTableReadable(root: String) -> Bool { directoryEntries(root + "/proc") != nil }

/// Every process whose /proc/PID/cmdline can be read.
public func runningProcesses(root: String) -> [ProcessInfoLite] {
    let proc = root + "/proc"
    var out: [ProcessInfoLite] = []
    for entry in directoryEntries(proc) ?? [] {
        guard let pid = Int(entry), let file = try? readSmallFileBytes("\(proc)/\(entry)/cmdline") else { continue }
        let args = file.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        var trimmed = args
        while trimmed.last == "" { trimmed.removeLast() }
        if !trimmed.isEmpty { out.append(ProcessInfoLite(pid: pid, arguments: trimmed)) }
    }
    return out
}

/// The kernel's leap-second state (adjtimex, read-only).
public struct KernelLeapState: Sendable {
    public var status: Int32
    /// adjtimex's return: TIME_OK 0, TIME_INS 1, TIME_DEL 2, TIME_OOP 3, TIME_WAIT 4, TIME_ERROR 5.
    public var timeState: Int32
    public var insertArmed: Bool { status & rb_sta_ins() != 0 }
    public var deleteArmed: Bool { status & rb_sta_del() != 0 }
    public var armed: Bool { insertArmed || deleteArmed }
    public var description: String {
        if insertArmed { return "a leap second INSERTION is armed in the kernel (STA_INS)" }
        if deleteArmed { return "a leap second DELETION is armed in the kernel (STA_DEL)" }
        return "no leap second armed in the kernel"
    }
}

public func readKernelLeapState() throws -> KernelLeapState {
    var status: Int32 = 0, state: Int32 = 0
    if rb_adjtimex_status(0, 0, &status, &state) != 0 {
        throw RescueError("kernel clock", "adjtimex (read)", errno: lastErrno())
    }
    return KernelLeapState(status: status, timeState: state)
}

/// Clears STA_INS and STA_DEL (what `ntptime -s 0` does for them), keeping
/// the other status bits.
public func clearKernelLeap(_ current: KernelLeapState) throws -> KernelLeapState {
    var status: Int32 = 0, state: Int32 = 0
    let newStatus = current.status & ~(rb_sta_ins() | rb_sta_del())
    if rb_adjtimex_status(1, newStatus, &status, &state) != 0 {
        throw RescueError("kernel clock", "adjtimex (clear STA_INS/STA_DEL)", errno: lastErrno())
    }
    return try readKernelLeapState()
}

/// The init system, from the marks it leaves.
public enum InitSystem: String, Sendable {
    case systemd, upstart, openrc, sysvinit

    /// The marks are looked up inside the root (links resolved there);
    /// /proc is the running kernel's, read as it is mounted.
    public static func detect(root: String) -> InitSystem {
        let r = SystemRoot(root)
        if r.isDirectory(r.host("/run/systemd/system")) { return .systemd }
        if r.isDirectory(r.host("/run/openrc")) || r.exists(r.host("/sbin/openrc-run")) { return .openrc }
        if r.exists(r.host("/sbin/initctl")) && r.isDirectory(r.host("/etc/init"))
            && r.exists(r.host("/etc/init/rc-sysinit.conf")) && pidOneLooksLikeUpstart(root: root) {
            return .upstart
        }
        return .sysvinit
    }

    /// /proc/1/comm is "init" under upstart. procfs reports size 0, so it
    /// is read to the end (readSmallFileBytes), never by st_size. No /proc
    /// (a mounted image) does not rule upstart out.
    static func pidOneLooksLikeUpstart(root: String) -> Bool {
        guard let comm = try? readSmallFileBytes(root + "/proc/1/comm", limit: 4096) else { return true }
        return String(decoding: comm, as: UTF8.self).hasPrefix("init")
    }
}

/// Where units and init scripts live.
let systemdUnitDirectories = ["/etc/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system"]

/// The service names a family's daemon may be installed as, in order of preference.
public func serviceCandidates(_ family: DaemonFamily?) -> [String] {
    switch family {
    case .chrony?: return ["chrony", "chronyd"]
    case .ntpsec?: return ["ntpsec", "ntpd", "ntp"]
    case .ntp?: return ["ntp", "ntpd", "ntpsec"]
    case nil: return ["ntp", "ntpd", "ntpsec"]
    }
}

/// The service of `family`'s daemon (nil: an ntpd of either kind): the
/// first candidate with a systemd unit, an init script or an upstart job
/// under `root`; nil when none exists.
public func serviceName(family: DaemonFamily?, root: String) -> String? {
    let r = SystemRoot(root)
    for name in serviceCandidates(family) {
        for d in systemdUnitDirectories where r.exists(r.host("\(d)/\(name).service")) { return name }
        if r.exists(r.host("/etc/init.d/\(name)")) || r.exists(r.host("/etc/init/\(name).conf"))
            || r.exists(r.host("/etc/rc.d/init.d/\(name)")) {
            return name
        }
    }
    return nil
}

/// The command that restarts `service` under `initSystem`, as argv.
public func restartCommand(_ initSystem: InitSystem, service: String) -> [String] {
    switch initSystem {
    case .systemd: return ["systemctl", "restart", service]
    case .openrc: return ["rc-service", service, "restart"]
    case .upstart, .sysvinit: return ["service", service, "restart"]
    }
}
