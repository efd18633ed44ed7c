import ArgumentParser
import RescueCore
#if canImport(Glibc)
import Glibc
#endif

/// The version `--version` prints and manifests record.
public let rescueboxVersion = "0.1.0"

/// Every applet, in the order `--list` and `--help` show them.
public let allApplets: [ParsableCommand.Type] = [
    Ddz.self, FtpPut.self, FtpGet.self, ZeroFillCommand.self, NtpLeap.self, Backup.self, Restore.self, Mount.self,
]

public func applet(named name: String) -> ParsableCommand.Type? {
    allApplets.first { $0.configuration.commandName == name }
}

/// Parses `arguments` for `type`, runs it and exits. Errors print as one
/// line `rescuebox APPLET: OBJECT: OPERATION: REASON` and exit with the
/// documented code; cleanup actions run before exit.
public func runApplet(_ type: ParsableCommand.Type, arguments: [String]) -> Never {
    let name = type.configuration.commandName ?? "rescuebox"
    Program.appletName = name
    Cleanup.installSignalHandling()
    do {
        let arguments = (type as? NormalizesArguments.Type)?.normalize(arguments) ?? arguments
        var command = try type.parseAsRoot(arguments)
        try command.run()
        Cleanup.exitProcess(ExitCode.success)
    } catch let error as RescueError {
        Cleanup.runAll()
        let hint = error.exitCode == ExitCode.usage ? " (see 'rescuebox \(name) --help')" : ""
        printError(error.description + hint)
        Cleanup.exitProcess(error.exitCode)
    } catch let error as AppletExit {
        Cleanup.runAll()
        Cleanup.exitProcess(error.code)
    } catch {
        let code = type.exitCode(for: error)
        if code == .success {
            // --help, --version
            printStdout(type.fullMessage(for: error))
            Cleanup.exitProcess(ExitCode.success)
        }
        Cleanup.runAll()
        if code == .validationFailure {
            printError(type.message(for: error) + " (see 'rescuebox \(name) --help')")
            Cleanup.exitProcess(ExitCode.usage)
        }
        let message = type.message(for: error)
        if !message.isEmpty { printError(message) }
        Cleanup.exitProcess(code.rawValue)
    }
}

/// An applet whose command line needs rewriting before ArgumentParser
/// sees it (busybox's glued `-pPASS`).
public protocol NormalizesArguments {
    static func normalize(_ arguments: [String]) -> [String]
}

/// Ends an applet quietly with a given code after it printed its own
/// verdict (e.g. `ntpleap --check` answering "change needed" with 1).
public struct AppletExit: Error {
    public let code: Int32
    public init(_ code: Int32) { self.code = code }
}

/// Sizes on the command line: `--bs 4M`, `--count 2GiB`.
public struct ByteCount: ExpressibleByArgument, CustomStringConvertible {
    public let bytes: UInt64
    public init(_ bytes: UInt64) { self.bytes = bytes }
    public init?(argument: String) {
        guard let value = try? parseByteSize(argument) else { return nil }
        bytes = value
    }
    public var description: String { String(bytes) }
    public var defaultValueDescription: String { String(bytes) }
}
