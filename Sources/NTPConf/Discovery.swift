#if canImport(Glibc)
import Glibc
#endif
import RescueCore

/// A configuration file the running system uses, and why we think so.
public struct DiscoveredConfig: Equatable, Sendable {
    /// Path on this machine (under the root directory when one is given).
    public var path: String
    public var why: String
    public init(path: String, why: String) { self.path = path; self.why = why }
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
public func readShellVariable(_ path: String, names: [String]) -> (name: String, words: [String])? {
    guard let file = try? readConfigFile(path) else { return nil }
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
        if let (name, words) = readShellVariable(root + path, names: names) {
            out.append((family, DaemonOptions(source: "\(root + path) \(name)", words: words)))
        }
    }
    return out
}

/// The ntp.conf files the running distribution uses: the main file (or the
/// `-c FILE` of the options file), the DHCP copy ntpd reads instead when it
/// exists, and the `-c` file of a running ntpd.
public func discoverNtpConfigs(root: String) -> [DiscoveredConfig] {
    var found: [DiscoveredConfig] = []
    func add(_ path: String, _ why: String) {
        guard fileExists(path), !found.contains(where: { $0.path == path }) else { return }
        found.append(DiscoveredConfig(path: path, why: why))
    }
    let options = ntpdOptionFiles(root: root)
    for (family, main, dhcp) in [("ntp", "/etc/ntp.conf", ["/run/ntp.conf.dhcp", "/var/lib/ntp/ntp.conf.dhcp"]),
                                 ("ntpsec", "/etc/ntpsec/ntp.conf", ["/run/ntpsec/ntp.conf.dhcp"])] {
        var mainPath = root + main
        var why = "main configuration"
        for (f, o) in options where f == family {
            if let c = o.configFile {
                mainPath = c.hasPrefix("/") ? root + c : root + "/" + c
                why = "-c in \(o.source)"
            }
        }
        add(mainPath, why)
        for d in dhcp {
            add(root + d, "DHCP copy that ntpd reads instead of \(root + main) while it exists")
        }
    }
    for p in runningProcesses(root: root) where p.name == "ntpd" {
        if let c = ntpdConfigArgument(Array(p.arguments.dropFirst())) {
            add(c.hasPrefix("/") ? root + c : root + "/" + c, "-c of the running ntpd (pid \(p.pid))")
        }
    }
    return found
}

/// chrony.conf of the running distribution: Debian /etc/chrony/chrony.conf,
/// RHEL/SUSE /etc/chrony.conf, or `-f FILE` in the options file.
public func discoverChronyConfigs(root: String) -> [DiscoveredConfig] {
    var found: [DiscoveredConfig] = []
    func add(_ path: String, _ why: String) {
        guard fileExists(path), !found.contains(where: { $0.path == path }) else { return }
        found.append(DiscoveredConfig(path: path, why: why))
    }
    for (path, names) in [("/etc/default/chrony", ["DAEMON_OPTS"]), ("/etc/sysconfig/chronyd", ["OPTIONS"])] {
        if let (name, words) = readShellVariable(root + path, names: names), let i = words.firstIndex(of: "-f"),
           i + 1 < words.count {
            add(root + words[i + 1], "-f in \(root + path) \(name)")
        }
    }
    if found.isEmpty {
        add(root + "/etc/chrony/chrony.conf", "main configuration")
        add(root + "/etc/chrony.conf", "main configuration")
    }
    for p in runningProcesses(root: root) where p.name == "chronyd" {
        if let i = p.arguments.firstIndex(of: "-f"), i + 1 < p.arguments.count {
            let c = p.arguments[i + 1]
            add(c.hasPrefix("/") ? root + c : root + "/" + c, "-f of the running chronyd (pid \(p.pid))")
        }
    }
    return found
}
