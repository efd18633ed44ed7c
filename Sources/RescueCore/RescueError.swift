#if canImport(Glibc)
import Glibc
#endif

/// Process exit codes, documented in README.md ("Exit codes").
public enum ExitCode {
    public static let success: Int32 = 0
    /// The operation failed: I/O error, corrupt input, server refused, ...
    public static let failure: Int32 = 1
    /// Bad options or arguments.
    public static let usage: Int32 = 2
    /// Killed by a signal we caught: 128 + signal number (130 for SIGINT).
    public static func signal(_ number: Int32) -> Int32 { 128 + number }
}

/// The one error type of rescuebox. It prints as
/// `rescuebox APPLET: OBJECT: OPERATION: REASON` (empty parts are left out).
public struct RescueError: Error, CustomStringConvertible, Equatable {
    /// What the error is about: a file, a device, a host.
    public var object: String
    /// What was being done: "open", "read at offset 4096", "STOR".
    public var operation: String
    /// Why it failed: the system's reason (strerror) or the server's reply.
    public var reason: String
    public var exitCode: Int32
    /// The errno behind the error, when there is one.
    public var errno: Int32?
    /// What kind of failure this is, for callers that decide what to do next
    /// (retry, fall back, give up) without reading the message.
    public var kind: RescueErrorKind = .general
    /// The FTP server's reply code, when a reply caused the error.
    public var replyCode: Int?

    public init(_ object: String, _ operation: String, _ reason: String, exitCode: Int32 = ExitCode.failure) {
        self.object = object
        self.operation = operation
        self.reason = reason
        self.exitCode = exitCode
        self.errno = nil
    }

    /// An error from a failed system call: the reason is strerror(errno).
    public init(_ object: String, _ operation: String, errno code: Int32, exitCode: Int32 = ExitCode.failure) {
        self.init(object, operation, systemReason(code), exitCode: exitCode)
        self.errno = code
    }

    /// A usage error: bad option value or argument.
    public static func usage(_ message: String) -> RescueError {
        RescueError("", "", message, exitCode: ExitCode.usage)
    }

    /// The same error with another kind.
    public func with(kind: RescueErrorKind) -> RescueError {
        var copy = self
        copy.kind = kind
        return copy
    }

    public var description: String {
        [object, operation, reason].filter { !$0.isEmpty }.joined(separator: ": ")
    }
}

/// Why an operation failed, as far as the caller's next step is concerned.
public enum RescueErrorKind: Sendable, Equatable {
    case general
    /// The data source (disk, file, pipe, command) failed, not the destination.
    case source
    /// The kernel refused a zero-copy path (splice, sendfile) before any byte
    /// moved: a plain read/write copy may still work.
    case zeroCopyUnsupported
    /// A network connection failed, broke, timed out or was never made.
    case connection
    /// The server answered with a reply code that refuses the request
    /// (`replyCode` says which).
    case serverRefused
    /// The server will not continue a file where it ends (REST+STOR and
    /// APPE both refused, as proftpd's default does): send it again from 0.
    case resumeRefused
    /// The job was interrupted by a signal.
    case interrupted
}

/// strerror() as a Swift string.
public func systemReason(_ code: Int32) -> String {
    guard let text = strerror(code) else { return "error \(code)" }
    return String(cString: text)
}

/// The errno of the last failed call (Glibc's `errno` as a function for clarity).
@inline(__always) public func lastErrno() -> Int32 { Glibc.errno }
