#if canImport(Glibc)
import Glibc
#endif
import RescueCore

/// The time daemon a configuration belongs to.
public enum DaemonFamily: String, Sendable, Equatable, CaseIterable {
    /// Classic ntpd (ntp.org 4.2.x).
    case ntp
    case ntpsec
    case chrony

    /// The daemon's process name.
    public var daemonName: String { self == .chrony ? "chronyd" : "ntpd" }

    /// The family of an ntp.conf from where it lives: ntpsec keeps its
    /// files in /etc/ntpsec and /run/ntpsec; anything else is unknown
    /// (nil): an explicit file may belong to either ntpd.
    public static func ofNtpConfig(insidePath: String) -> DaemonFamily? {
        if insidePath.hasPrefix("/etc/ntpsec/") || insidePath.hasPrefix("/run/ntpsec/") { return .ntpsec }
        if insidePath == "/etc/ntp.conf" || insidePath.hasPrefix("/etc/ntp/") || insidePath.hasPrefix("/run/ntp.conf")
            || insidePath.hasPrefix("/var/lib/ntp/") { return .ntp }
        return nil
    }
}

/// Why a configuration file was chosen.
public enum ConfigOrigin: Sendable, Equatable {
    case commandLine
    /// The distribution's default path.
    case mainConfiguration
    /// `-c FILE` / `-f FILE` in an options file ("/etc/default/ntp NTPD_OPTS").
    case optionsFile(source: String, option: String)
    /// The DHCP copy ntpd reads instead of `insteadOf` while it exists.
    case dhcpCopy(insteadOf: String)
    /// A DHCP copy ntpd does not read (IGNORE_DHCP=yes in `source`).
    case dhcpCopyIgnored(source: String)
    /// The file the dhclient hook regenerates the DHCP copy `copy` from.
    case dhcpHookSource(copy: String)
    /// `-c`/`-f` of a running daemon.
    case runningDaemon(pid: Int, option: String)

    public var description: String {
        switch self {
        case .commandLine: return "named on the command line"
        case .mainConfiguration: return "main configuration"
        case .optionsFile(let source, let option): return "\(option) in \(source)"
        case .dhcpCopy(let main): return "DHCP copy that ntpd reads instead of \(main) while it exists"
        case .dhcpCopyIgnored(let source):
            return "DHCP copy, not read by ntpd (IGNORE_DHCP=yes in \(source)); kept safe all the same"
        case .dhcpHookSource(let copy):
            return "the dhclient hook rebuilds \(copy) from it at every lease"
        case .runningDaemon(let pid, let option):
            return "\(option) of the running \(option == "-f" ? "chronyd" : "ntpd") (pid \(pid))"
        }
    }

    /// A short stable name for --json.
    public var kind: String {
        switch self {
        case .commandLine: return "command-line"
        case .mainConfiguration: return "main"
        case .optionsFile: return "options-file"
        case .dhcpCopy: return "dhcp-copy"
        case .dhcpCopyIgnored: return "dhcp-copy-ignored"
        case .dhcpHookSource: return "dhcp-hook-source"
        case .runningDaemon: return "running-daemon"
        }
    }
}

/// A configuration file the running system uses, and why we think so.
public struct DiscoveredConfig: Equatable, Sendable {
    /// Path on this machine (under the root directory when one is given).
    public var path: String
    public var origin: ConfigOrigin
    /// The daemon it belongs to (nil: an ntp.conf of either ntpd).
    public var family: DaemonFamily?
    public var why: String { origin.description }
    public init(path: String, origin: ConfigOrigin, family: DaemonFamily?) {
        self.path = path; self.origin = origin; self.family = family
    }
}

/// What the distribution's options files say about ntpd.
public struct DaemonOptions: Equatable, Sendable {
    /// The options file and variable (e.g. "/etc/default/ntp NTPD_OPTS").
    public var source: String
    public var words: [String]
    /// `-c FILE` / `-cFILE` / `--configfile=FILE`.
    public var configFile: String? { ntpdConfigArgument(words) }
    /// `-x` (kernel discipline off, ntpd slews).
    public var slew: Bool { ntpdHasSlewFlag(words) }
}

/// The config file named on an ntpd command line, if any.
public func ntpdConfigArgument(_ words: [String]) -> String? {
    var i = 0
    while i < words.count {
        let w = words[i]
        if w == "-c" || w == "--configfile" { return i + 1 < words.count ? words[i + 1] : nil }
        if w.hasPrefix("--configfile=") { return String(w.dropFirst("--configfile=".count)) }
        if w.hasPrefix("-c") && !w.hasPrefix("--") { return String(w.dropFirst(2)) }
        i += 1
    }
    return nil
}

/// ntpd options that take no argument, so `-gx` means `-g -x`.
let ntpdNoArgumentFlags = Set("46aAbdgLmnNqx")

/// Whether an ntpd command line has -x / --slew (also inside `-gx`).
public func ntpdHasSlewFlag(_ words: [String]) -> Bool {
    for w in words {
        if w == "--slew" || w == "-x" { return true }
        if w.hasPrefix("-") && !w.hasPrefix("--") && w.count > 2 {
            let letters = w.dropFirst()
            if letters.contains("x") && letters.allSatisfy({ ntpdNoArgumentFlags.contains($0) }) { return true }
        }
    }
    return false
}

/// Splits a shell word list as a simple sh would: quotes and backslashes.
/// No expansions (an options file using `$VAR` is taken literally).
public func shellWords(_ text: String) -> [String] {
    var words: [String] = []
    var current = ""
    var inWord = false
    var quote: Character? = nil
    var escaped = false
    for ch in text {
        if escaped { current.append(ch); escaped = false; inWord = true; continue }
        if let q = quote {
            if ch == q { quote = nil } else if ch == "\\" && q == "\"" { escaped = true } else { current.append(ch) }
            continue
        }
        switch ch {
        case "'", "\"": quote = ch; inWord = true
        case "\\": escaped = true
        case " ", "\t":
            if inWord { words.append(current); current = ""; inWord = false }
        case "#" where !inWord:
            return words
        default: current.append(ch); inWord = true
        }
    }
    if inWord { words.append(current) }
    return words
}

/// Reads `NAME=value` assignments (last one wins) from a sh-style options file.
public func readShellVariable(_ path: String, names: [String], root: SystemRoot = SystemRoot(nil)) -> (name: String, words: [String])? {
    guard let file = try? readConfigFile(path, root: root) else { return nil }
    var found: (String, [String])? = nil
    for rawLine in String(decoding: file.bytes, as: UTF8.self).split(separator: "\n") {
        var line = rawLine.drop { $0 == " " || $0 == "\t" }
        if line.hasPrefix("export ") { line = line.dropFirst(7).drop { $0 == " " } }
        guard let eq = line.firstIndex(of: "=") else { continue }
        let name = String(line[..<eq])
        guard names.contains(name) else { continue }
        // The value as the shell assigns it, then split again the way an
        // unquoted $OPTIONS is when the init script uses it.
        let value = shellWords(String(line[line.index(after: eq)...]).replacingCRs()).joined(separator: " ")
        found = (name, value.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).map(String.init))
    }
    return found
}

extension String {
    func replacingCRs() -> String { String(self.filter { $0 != "\r" }) }
}

/// The ntpd options of the distribution's options files (Debian/Ubuntu
/// /etc/default/ntp and /etc/default/ntpsec, RHEL /etc/sysconfig/ntpd, SUSE
/// /etc/sysconfig/ntp).
public func ntpdOptionFiles(root: String) -> [(family: String, options: DaemonOptions)] {
    let files: [(String, String, [String])] = [
        ("ntp", "/etc/default/ntp", ["NTPD_OPTS"]),
        ("ntp", "/etc/sysconfig/ntpd", ["OPTIONS"]),
        ("ntp", "/etc/sysconfig/ntp", ["NTPD_OPTIONS", "OPTIONS"]),
        ("ntpsec", "/etc/default/ntpsec", ["NTPD_OPTS"]),
    ]
    var out: [(String, DaemonOptions)] = []
    for (family, path, names) in files {
        if let (name, words) = readShellVariable(root + path, names: names, root: SystemRoot(root)) {
            out.append((family, DaemonOptions(source: "\(root + path) \(name)", words: words)))
        }
    }
    return out
}

/// The ntp.conf files the running distribution uses: the main file (or the
/// `-c FILE` of the options file); the DHCP copy ntpd reads instead while
/// it exists, with the file Debian's dhclient hook rebuilds it from (the
/// copy is regenerated from that file at every lease, so it must be safe
/// too); and the `-c` file of a running ntpd. IGNORE_DHCP=yes in
/// /etc/default/ntp(sec) makes the init script ignore the copy.
public func discoverNtpConfigs(root: String) -> [DiscoveredConfig] {
    let root = SystemRoot(root)
    var found: [DiscoveredConfig] = []
    func add(_ path: String, _ origin: ConfigOrigin, _ family: DaemonFamily?) {
        guard root.exists(path), !found.contains(where: { $0.path == path }) else { return }
        found.append(DiscoveredConfig(path: path, origin: origin, family: family))
    }
    let options = ntpdOptionFiles(root: root.prefix)
    let families: [(DaemonFamily, String, [String], String)] = [
        (.ntp, "/etc/ntp.conf", ["/run/ntp.conf.dhcp", "/var/lib/ntp/ntp.conf.dhcp"], "/etc/default/ntp"),
        (.ntpsec, "/etc/ntpsec/ntp.conf", ["/run/ntpsec/ntp.conf.dhcp"], "/etc/default/ntpsec"),
    ]
    for (family, main, dhcp, defaults) in families {
        var mainPath = root.host(main)
        var origin = ConfigOrigin.mainConfiguration
        for (f, o) in options where f == family.rawValue {
            if let c = o.configFile {
                mainPath = root.host(c)
                origin = .optionsFile(source: o.source, option: "-c")
            }
        }
        add(mainPath, origin, family)
        let ignore = readShellVariable(root.host(defaults), names: ["IGNORE_DHCP"], root: root)?.words == ["yes"]
        for d in dhcp where root.exists(root.host(d)) {
            if ignore {
                add(root.host(d), .dhcpCopyIgnored(source: root.host(defaults)), family)
            } else {
                add(root.host(d), .dhcpCopy(insteadOf: mainPath), family)
                // The hook copies from the distribution's default path, whatever -c says.
                add(root.host(main), .dhcpHookSource(copy: root.host(d)), family)
            }
        }
    }
    for p in runningProcesses(root: root.prefix) where p.name == "ntpd" {
        if let c = ntpdConfigArgument(Array(p.arguments.dropFirst())) {
            add(root.host(c), .runningDaemon(pid: p.pid, option: "-c"), DaemonFamily.ofNtpConfig(insidePath: c))
        }
    }
    return found
}

/// chrony.conf of the running distribution: Debian /etc/chrony/chrony.conf,
/// RHEL/SUSE /etc/chrony.conf, or `-f FILE` in the options file.
public func discoverChronyConfigs(root: String) -> [DiscoveredConfig] {
    let root = SystemRoot(root)
    var found: [DiscoveredConfig] = []
    func add(_ path: String, _ origin: ConfigOrigin) {
        guard root.exists(path), !found.contains(where: { $0.path == path }) else { return }
        found.append(DiscoveredConfig(path: path, origin: origin, family: .chrony))
    }
    for (path, names) in [("/etc/default/chrony", ["DAEMON_OPTS"]), ("/etc/sysconfig/chronyd", ["OPTIONS"])] {
        if let (name, words) = readShellVariable(root.host(path), names: names, root: root), let i = words.firstIndex(of: "-f"),
           i + 1 < words.count {
            add(root.host(words[i + 1]), .optionsFile(source: "\(root.host(path)) \(name)", option: "-f"))
        }
    }
    if found.isEmpty {
        add(root.host("/etc/chrony/chrony.conf"), .mainConfiguration)
        add(root.host("/etc/chrony.conf"), .mainConfiguration)
    }
    for p in runningProcesses(root: root.prefix) where p.name == "chronyd" {
        if let i = p.arguments.firstIndex(of: "-f"), i + 1 < p.arguments.count {
            add(root.host(p.arguments[i + 1]), .runningDaemon(pid: p.pid, option: "-f"))
        }
    }
    return found
}
