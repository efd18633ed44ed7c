// Real FTP servers for tests, in one shape: vsftpd (Debian's package),
// proftpd and pure-ftpd (Debian's packages unpacked by scripts/ftpd-unpack.sh,
// since all three conflict as installed packages). Each is started by its
// scripts/NAME-start.sh on 127.0.0.1 or ::1 and a free port, with the local
// user rbftp, a password and a temporary home, and stopped by
// scripts/ftpd-stop.sh. Loopback only.
import Foundation
import XCTest

/// The servers the interop matrix runs against.
public enum FTPServerKind: String, CaseIterable, CustomStringConvertible, Sendable {
    case vsftpd, proftpd, pureftpd

    public var description: String { rawValue }
    /// scripts/NAME (the start script).
    var startScript: String { "\(rawValue)-start.sh" }
    /// Every one of them listens on ::1 too.
    public var supportsIPv6: Bool { true }
    /// Only proftpd can be told to refuse SIZE (`<Limit SIZE> DenyAll`).
    public var canDenySize: Bool { self == .proftpd }
}

/// How a test server is set up (the start scripts' options).
public struct FTPServerOptions: Sendable {
    /// Listen on ::1 instead of 127.0.0.1.
    public var ipv6: Bool
    /// The home is a tmpfs of this size ("2M"): uploads fill the server's disk.
    public var homeSize: String?
    /// Transfers limited to about this many bytes per second (to act mid-transfer).
    public var maxRate: Int?
    /// proftpd only: `<Limit SIZE> DenyAll` (SIZE answers 550).
    public var denySize: Bool
    /// proftpd only: `AllowStoreRestart on`. Off (proftpd's default) refuses REST before STOR, and APPE.
    public var allowStoreRestart: Bool
    /// More options for the start script as they are: vsftpd's TLS ones
    /// (`--tls`, `--tls-cert FILE`, `--tls-key FILE`, `--tls-implicit`, `--tls-force`).
    public var scriptOptions: [String] = []

    public init(ipv6: Bool = false, homeSize: String? = nil, maxRate: Int? = nil,
                denySize: Bool = false, allowStoreRestart: Bool = false) {
        self.ipv6 = ipv6
        self.homeSize = homeSize
        self.maxRate = maxRate
        self.denySize = denySize
        self.allowStoreRestart = allowStoreRestart
    }

    var scriptArguments: [String] {
        var args: [String] = []
        if ipv6 { args.append("--ipv6") }
        if let homeSize { args += ["--home-size", homeSize] }
        if let maxRate { args += ["--max-rate", String(maxRate)] }
        if denySize { args.append("--deny-size") }
        if allowStoreRestart { args.append("--allow-store-restart") }
        return args + scriptOptions
    }
}

/// What every test server offers.
public protocol TestFTPServer: AnyObject {
    var kind: FTPServerKind { get }
    var host: String { get }
    var port: Int { get }
    var user: String { get }
    var password: String { get }
    /// The user's login directory: uploads land here.
    var home: String { get }
    /// The server's temporary directory (config, logs, home).
    var directory: String { get }
    /// The listening process; sessions are its descendants.
    var pid: Int32 { get }
    func stop()
}

public enum FTPServerError: Error, CustomStringConvertible {
    case didNotStart(String)
    case noSession(String)
    public var description: String {
        switch self {
        case .didNotStart(let why): return why
        case .noSession(let why): return why
        }
    }
}

extension TestFTPServer {
    /// `host:port` for the busybox-style argument (`[::1]:port` for IPv6).
    public var hostPort: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
    /// `ftp://user@host:port` (no trailing slash, no password).
    public var urlBase: String { "ftp://\(user)@\(hostPort)" }
    /// "proftpd on ::1", for messages.
    public var label: String { "\(kind) on \(host)" }

    /// The session processes: every descendant of the listener (vsftpd and
    /// proftpd fork one process per connection, vsftpd and pure-ftpd one more
    /// for privilege separation), found from /proc.
    public func sessionProcesses() -> [Int32] {
        var parent: [Int32: Int32] = [:]
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let p = Int32(entry),
                  let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { continue }
            // "pid (comm) state ppid ...": comm may hold spaces, so split after ')'.
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            if fields.count > 1, let ppid = Int32(fields[1]) { parent[p] = ppid }
        }
        var result: [Int32] = []
        var frontier: Set<Int32> = [pid]
        while !frontier.isEmpty {
            let children = parent.filter { frontier.contains($0.value) }.map(\.key)
            result += children
            frontier = Set(children)
        }
        return result.sorted()
    }

    /// Kills (SIGKILL) every session of this server, the listener stays:
    /// the client sees its connections drop mid-transfer. Returns the pids.
    @discardableResult
    public func killSessions() throws -> [Int32] {
        let sessions = sessionProcesses()
        guard !sessions.isEmpty else { throw FTPServerError.noSession("\(label): no session process to kill") }
        for p in sessions { kill(p, SIGKILL) }
        return sessions
    }

    /// Whether the server lets a client continue an upload (REST+STOR or
    /// APPE). proftpd with AllowStoreRestart off (its default) refuses both:
    /// "451 NAME: Append/Restart not permitted, try again".
    public var allowsUploadResume: Bool {
        guard let scripted = self as? ScriptedFTPServer else { return true }
        return kind != .proftpd || scripted.options.allowStoreRestart
    }

    /// A file in the home that the server's user owns, as if an earlier
    /// session had stored it.
    public func storeAsServerUser(_ name: String, _ data: Data) throws {
        let path = home + "/" + name
        try data.write(to: URL(fileURLWithPath: path))
        var st = stat()
        guard stat(home, &st) == 0, chown(path, st.st_uid, st.st_gid) == 0 else {
            throw FTPServerError.didNotStart("cannot give \(path) to the server's user")
        }
    }

    /// A file in the home that the server's user may not write (root's, mode
    /// 0444), in a directory it may write: STOR on it is refused.
    public func putReadOnlyFile(_ name: String, _ contents: Data) throws {
        let path = home + "/" + name
        try contents.write(to: URL(fileURLWithPath: path))
        guard chown(path, 0, 0) == 0, chmod(path, 0o444) == 0 else {
            throw FTPServerError.didNotStart("cannot make \(path) read-only: \(String(cString: strerror(errno)))")
        }
    }
}

/// A server started by one of scripts/*ftpd-start.sh.
public class ScriptedFTPServer: TestFTPServer {
    public let kind: FTPServerKind
    public let options: FTPServerOptions
    public let host: String
    public let port: Int
    public let user: String
    public let password: String
    public let home: String
    /// Anonymous users read from here (vsftpd only serves it).
    public let anonymousRoot: String
    public let directory: String
    public let pid: Int32
    private var stopped = false

    /// Starts a server of `kind`. Skips only when not root or when the server
    /// cannot be installed; a server that does not start is an error.
    public static func launch(_ kind: FTPServerKind, _ options: FTPServerOptions = FTPServerOptions()) throws -> ScriptedFTPServer {
        try requireRoot("\(kind) needs root to run and a local user to be created")
        if options.denySize || options.allowStoreRestart, kind != .proftpd {
            throw FTPServerError.didNotStart("\(kind): --deny-size/--allow-store-restart are proftpd's")
        }
        let script = repositoryRoot() + "/scripts/" + kind.startScript
        var r = try runProgram("/bin/bash", [script] + options.scriptArguments, timeout: 60)
        if r.status == 77, kind != .vsftpd {
            // Not unpacked yet (a run outside scripts/test.sh): unpack now.
            let unpack = try runProgram("/bin/bash", [repositoryRoot() + "/scripts/ftpd-unpack.sh"], timeout: 300)
            guard unpack.status == 0 else { throw XCTSkip("\(kind) cannot be installed: \(unpack.stderr)") }
            r = try runProgram("/bin/bash", [script] + options.scriptArguments, timeout: 60)
        }
        if r.status == 77 { throw XCTSkip("\(kind.startScript): \(r.stderr)") }
        guard r.status == 0 else { throw FTPServerError.didNotStart("\(kind) did not start: \(r.stderr)") }
        var values: [String: String] = [:]
        for line in r.stdoutText.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1).map(String.init)
            if parts.count == 2 { values[parts[0]] = parts[1].replacingOccurrences(of: "\\", with: "") }
        }
        guard let dir = values["FTP_DIR"], let host = values["FTP_HOST"], let port = Int(values["FTP_PORT"] ?? ""),
              let user = values["FTP_USER"], let pass = values["FTP_PASS"], let home = values["FTP_HOME"],
              let anon = values["FTP_ANON"], let pid = Int32(values["FTP_PID"] ?? "") else {
            throw FTPServerError.didNotStart("\(kind.startScript) printed something unexpected: \(r.stdoutText)")
        }
        let server: ScriptedFTPServer
        switch kind {
        case .vsftpd: server = VsftpdServer(kind, options, host, port, user, pass, home, anon, dir, pid)
        case .proftpd: server = ProftpdServer(kind, options, host, port, user, pass, home, anon, dir, pid)
        case .pureftpd: server = PureFtpdServer(kind, options, host, port, user, pass, home, anon, dir, pid)
        }
        return server
    }

    /// Every server kind over IPv4, and over IPv6 too when `ipv6` (where the
    /// server supports it): the interop matrix's rows.
    public static func all(ipv6: Bool) -> [(FTPServerKind, FTPServerOptions)] {
        FTPServerKind.allCases.flatMap { kind in
            [(kind, FTPServerOptions())] + (ipv6 && kind.supportsIPv6 ? [(kind, FTPServerOptions(ipv6: true))] : [])
        }
    }

    required init(_ kind: FTPServerKind, _ options: FTPServerOptions, _ host: String, _ port: Int, _ user: String,
                  _ password: String, _ home: String, _ anonymousRoot: String, _ directory: String, _ pid: Int32) {
        self.kind = kind
        self.options = options
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.home = home
        self.anonymousRoot = anonymousRoot
        self.directory = directory
        self.pid = pid
    }

    /// The server's own log (proftpd's SystemLog, vsftpd's log file), for
    /// failure messages.
    public var serverLog: String {
        let name = [FTPServerKind.vsftpd: "vsftpd.log", .proftpd: "proftpd.log", .pureftpd: "stderr"][kind]!
        return (try? String(contentsOfFile: directory + "/" + name, encoding: .utf8)) ?? ""
    }

    public func stop() {
        guard !stopped else { return }
        stopped = true
        _ = try? runProgram("/bin/bash", [repositoryRoot() + "/scripts/ftpd-stop.sh", directory], timeout: 30)
    }

    deinit { stop() }
}

/// A private proftpd 1.3.8 (`proftpd -n -c CONF`): AuthUserFile, DefaultRoot,
/// AllowOverwrite on, AllowStoreRestart off unless asked.
public final class ProftpdServer: ScriptedFTPServer {
    public static func start(_ options: FTPServerOptions = FTPServerOptions()) throws -> ProftpdServer {
        try launch(.proftpd, options) as! ProftpdServer
    }
}

/// A private pure-ftpd 1.0.50 from its command-line options: a PureDB
/// virtual user chrooted into the home, no anonymous login.
public final class PureFtpdServer: ScriptedFTPServer {
    public static func start(_ options: FTPServerOptions = FTPServerOptions()) throws -> PureFtpdServer {
        try launch(.pureftpd, options) as! PureFtpdServer
    }
}
