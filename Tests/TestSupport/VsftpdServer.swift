// FTP servers for tests: a real vsftpd (scripts/vsftpd-start.sh) and the
// scripted fault server (Tests/FTPTests/fault_ftpd.py). Both listen on
// loopback only.
import Foundation
import XCTest

/// The repository's root, found from this file's location.
public func repositoryRoot() -> String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
}

/// A private vsftpd on 127.0.0.1 (or ::1) and a free port, with a local
/// user, a password and a temporary home; anonymous read-only access to
/// `anonymousRoot`. Needs root (skips otherwise). `stop()` (or deinit)
/// ends it and removes its directory.
///
///     let ftp = try VsftpdServer.start()
///     defer { ftp.stop() }
///     ... ftp://\(ftp.user)@\(ftp.host):\(ftp.port)/file, password ftp.password,
///     ... the file lands in \(ftp.home)/file
public final class VsftpdServer {
    public let host: String
    public let port: Int
    public let user: String
    public let password: String
    /// The user's login directory: uploads land here.
    public let home: String
    /// Anonymous users read from here.
    public let anonymousRoot: String
    public let directory: String
    public let pid: Int32
    /// The server's certificate (PEM) when started with TLS options.
    public let certificate: String?
    private var stopped = false

    /// `host:port` for the busybox-style argument (`[::1]:port` for IPv6).
    public var hostPort: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
    /// `ftp://user@host:port` (no trailing slash, no password).
    public var urlBase: String { "ftp://\(user)@\(hostPort)" }

    /// `options`: more vsftpd-start.sh options, such as `--tls`,
    /// `--tls-cert FILE --tls-key FILE`, `--tls-implicit`, `--tls-force`.
    public static func start(ipv6: Bool = false, options: [String] = []) throws -> VsftpdServer {
        try requireRoot("vsftpd needs root to run and a local user to be created")
        guard FileManager.default.isExecutableFile(atPath: "/usr/sbin/vsftpd") else {
            throw XCTSkip("vsftpd is not installed")
        }
        let script = repositoryRoot() + "/scripts/vsftpd-start.sh"
        let r = try runProgram("/bin/bash", [script] + (ipv6 ? ["--ipv6"] : []) + options, timeout: 60)
        if r.status == 77 { throw XCTSkip("vsftpd-start.sh: \(r.stderr)") }
        guard r.status == 0 else { throw XCTSkip("vsftpd did not start: \(r.stderr)") }
        var values: [String: String] = [:]
        for line in r.stdoutText.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1).map(String.init)
            if parts.count == 2 { values[parts[0]] = parts[1].replacingOccurrences(of: "\\", with: "") }
        }
        guard let dir = values["FTP_DIR"], let host = values["FTP_HOST"], let port = Int(values["FTP_PORT"] ?? ""),
              let user = values["FTP_USER"], let pass = values["FTP_PASS"], let home = values["FTP_HOME"],
              let anon = values["FTP_ANON"], let pid = Int32(values["FTP_PID"] ?? "") else {
            throw XCTSkip("vsftpd-start.sh printed something unexpected: \(r.stdoutText)")
        }
        let cert = values["FTP_CERT"].flatMap { $0.isEmpty || $0 == "''" ? nil : $0 }
        return VsftpdServer(host: host, port: port, user: user, password: pass, home: home,
                            anonymousRoot: anon, directory: dir, pid: pid, certificate: cert)
    }

    private init(host: String, port: Int, user: String, password: String, home: String,
                 anonymousRoot: String, directory: String, pid: Int32, certificate: String?) {
        self.certificate = certificate
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.home = home
        self.anonymousRoot = anonymousRoot
        self.directory = directory
        self.pid = pid
    }

    public func stop() {
        guard !stopped else { return }
        stopped = true
        _ = try? runProgram("/bin/bash", [repositoryRoot() + "/scripts/vsftpd-stop.sh", directory], timeout: 30)
    }

    deinit { stop() }
}

/// The scripted fault server (see fault_ftpd.py for the scenarios). It
/// records every command line it receives; `log` returns them.
public final class FaultFTPServer {
    public let port: Int
    public let logPath: String
    private let process: Process
    private let dir = TempDir("rescuebox-faultftpd")

    public init(scenario: String) throws {
        let script = repositoryRoot() + "/Tests/FTPTests/fault_ftpd.py"
        logPath = dir.file("commands.log")
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        process = Process()
        process.executableURL = URL(fileURLWithPath: try python3Path())
        process.arguments = [script, scenario, logPath]
        let out = Pipe()
        process.standardOutput = out
        process.standardInput = FileHandle.nullDevice
        try process.run()
        var line = Data()
        while !line.contains(0x0A) {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            line += chunk
        }
        let text = String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard text.hasPrefix("PORT "), let port = Int(text.dropFirst(5)) else {
            process.terminate()
            throw XCTSkip("fault_ftpd.py did not start: \(text)")
        }
        self.port = port
    }

    /// Command lines received so far (Python repr of the bytes), plus
    /// CONNECT / DATA-CONNECT markers.
    public var log: [String] {
        ((try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    public func stop() {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
    }

    deinit { stop() }
}

/// Debian's python3 (the fault server and test responders need only the
/// standard library).
public func python3Path() throws -> String {
    if FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") { return "/usr/bin/python3" }
    return try which("python3")
}
