#if canImport(Glibc)
import Glibc
#endif

/// Program-wide facts set once at start-up, before any thread is spawned.
public enum Program {
    /// The applet being run, for message prefixes ("rescuebox ddz: ...").
    nonisolated(unsafe) public static var appletName = ""
    /// -v: say more on stderr.
    nonisolated(unsafe) public static var verbose = false

    public static var messagePrefix: String {
        appletName.isEmpty ? "rescuebox" : "rescuebox \(appletName)"
    }
}

/// Writes all of `text` to a descriptor, ignoring errors (used for stderr).
public func writeText(_ text: String, to fd: Int32) {
    var copy = text
    copy.withUTF8 { bytes in
        var offset = 0
        while offset < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0 { if Glibc.errno == EINTR { continue }; return }
            offset += n
        }
    }
}

/// One line on stderr, prefixed with "rescuebox APPLET: ".
public func printError(_ message: String) {
    // After an interrupt only the signal thread speaks: one line.
    if Cleanup.isInterrupted && !Cleanup.isSignalThread { return }
    writeText("\(Program.messagePrefix): \(message)\n", to: 2)
}

/// One line on stderr, only with -v.
public func printVerbose(_ message: String) {
    if Program.verbose { printError(message) }
}

/// A line on stderr with no prefix (summaries, progress end lines).
public func printStderr(_ line: String) {
    if Cleanup.isInterrupted && !Cleanup.isSignalThread { return }
    writeText(line + "\n", to: 2)
}

/// A line on stdout.
public func printStdout(_ line: String) {
    writeText(line + "\n", to: 1)
}

public func isTerminal(_ fd: Int32) -> Bool { isatty(fd) == 1 }
