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
/// ends it and removes its directory. The common shape of the test servers
/// (`TestFTPServer`, `ScriptedFTPServer`) is in FTPTestServers.swift.
///
///     let ftp = try VsftpdServer.start()
///     defer { ftp.stop() }
///     ... ftp://\(ftp.user)@\(ftp.host):\(ftp.port)/file, password ftp.password,
///     ... the file lands in \(ftp.home)/file
public final class VsftpdServer: ScriptedFTPServer {
    public static func start(ipv6: Bool = false) throws -> VsftpdServer {
        guard FileManager.default.isExecutableFile(atPath: "/usr/sbin/vsftpd") else {
            try requireRoot("vsftpd needs root to run and a local user to be created")
            throw XCTSkip("vsftpd is not installed")
        }
        return try start(FTPServerOptions(ipv6: ipv6))
    }

    /// With vsftpd-start.sh's TLS options (`--tls`, `--tls-cert FILE
    /// --tls-key FILE`, `--tls-implicit`, `--tls-force`).
    public static func start(options scriptOptions: [String]) throws -> VsftpdServer {
        var options = FTPServerOptions()
        options.scriptOptions = scriptOptions
        return try start(options)
    }

    public static func start(_ options: FTPServerOptions) throws -> VsftpdServer {
        try launch(.vsftpd, options) as! VsftpdServer
    }
}

/// The scripted fault server (see fault_ftpd.py for the scenarios). It
/// records every command line it receives; `log` returns them.
public final class FaultFTPServer {
    public let port: Int
    public let logPath: String
    private let process: BackgroundProcess
    private let dir = TempDir("rescuebox-faultftpd")

    public init(scenario: String) throws {
        let script = repositoryRoot() + "/Tests/FTPTests/fault_ftpd.py"
        logPath = dir.file("commands.log")
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        process = try BackgroundProcess.start(try python3Path(), [script, scenario, logPath])
        let server = process
        try waitFor("fault_ftpd.py to print its port", timeout: 30) {
            server.stdoutText.contains("\n") || !server.isRunning
        }
        let text = server.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
        guard text.hasPrefix("PORT "), let port = Int(text.dropFirst(5)) else {
            let err = server.stderr
            server.stop()
            throw prerequisiteFailed("fault_ftpd.py did not start: \(text); its stderr: \(err)")
        }
        self.port = port
    }

    /// Command lines received so far (Python repr of the bytes), plus
    /// CONNECT / DATA-CONNECT markers.
    public var log: [String] {
        ((try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    public func stop() {
        guard process.isRunning else { return }
        process.signal(SIGTERM)
        if (try? process.wait(timeout: 10)) == nil { process.stop() }
    }

    deinit { stop() }
}

/// Debian's python3 (the fault server and test responders need only the
/// standard library).
public func python3Path() throws -> String {
    if FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") { return "/usr/bin/python3" }
    return try which("python3")
}
