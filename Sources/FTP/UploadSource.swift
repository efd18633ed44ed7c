#if canImport(Glibc)
import Glibc
#endif
import RescueCore

/// What ftpput reads: a file or device, stdin, or the output of a shell
/// command (`|COMMAND`, as the classic ftp client's `put |cmd name`).
public final class UploadSource {
    public let file: OpenFile
    /// Shown in messages: the path, "stdin" or "|COMMAND".
    public let name: String
    /// Bytes to send in total, when known (regular files, devices).
    public let size: UInt64?
    /// A regular file: sendfile(2) works and resuming can seek.
    public let isRegularFile: Bool
    public let isSeekable: Bool
    /// A pipe or FIFO: splice(2) can move its bytes to the socket directly.
    public let isPipe: Bool
    private var child: pid_t?
    private var cleanupToken: Int?

    private init(file: OpenFile, name: String, child: pid_t? = nil) throws {
        self.file = file
        self.name = name
        self.child = child
        let kind = try file.kind()
        isRegularFile = kind == .regular
        isSeekable = kind == .regular || kind == .blockDevice
        isPipe = kind == .pipe
        size = isSeekable ? try file.size() : nil
        if kind == .directory { throw RescueError(name, "read", "is a directory") }
        if let child {
            // Interrupted: the command must not outlive us.
            cleanupToken = Cleanup.register { kill(-child, SIGTERM) }
        }
    }

    /// `-` (or nil) is stdin, `|COMMAND` runs COMMAND with /bin/sh -c,
    /// anything else is opened as a file or device.
    public static func open(_ spec: String?) throws -> UploadSource {
        guard let spec, spec != "-" else { return try UploadSource(file: OpenFile.standardInput, name: "stdin") }
        if spec.hasPrefix("|") {
            let command = String(spec.dropFirst())
            guard !command.trimmingWhitespace().isEmpty else { throw RescueError.usage("'|' needs a command after it") }
            return try spawn(command)
        }
        return try UploadSource(file: OpenFile.open(spec), name: spec)
    }

    /// Starts `/bin/sh -c COMMAND` with its stdout on a pipe, with the signal
    /// state of a normal shell (see spawnProcess).
    static func spawn(_ command: String) throws -> UploadSource {
        let label = "|" + command
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw RescueError(label, "pipe", errno: lastErrno()) }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        // Its own process group, so a failed or interrupted upload can stop
        // the whole pipeline (kill(-pid)), not just the shell.
        let pid: pid_t
        do {
            pid = try spawnProcess(["/bin/sh", "-c", command], stdout: fds[1], ownProcessGroup: true)
        } catch let error as RescueError {
            close(fds[0]); close(fds[1])
            throw RescueError(label, "run /bin/sh", error.reason)
        }
        close(fds[1])
        return try UploadSource(file: OpenFile(descriptor: fds[0], path: label, owns: true), name: label, child: pid)
    }

    /// For a command: waits for it and throws when it failed (non-zero
    /// status or a signal). Call after reading to the end.
    public func finish() throws {
        guard let pid = child else { return }
        child = nil
        if let cleanupToken { Cleanup.unregister(cleanupToken) }
        try? file.close()
        switch waitForProcess(pid) {
        case .exited(0): return
        case .exited(let code): throw RescueError(name, "run", "exited with status \(code); the upload is incomplete")
        case .killed(let signal): throw RescueError(name, "run", "killed by signal \(signal); the upload is incomplete")
        }
    }

    /// Stops a command early (the upload failed): closes the pipe, sends
    /// SIGTERM to its process group and reaps it.
    public func cancel() {
        guard let pid = child else { return }
        child = nil
        if let cleanupToken { Cleanup.unregister(cleanupToken) }
        try? file.close()
        kill(-pid, SIGTERM)
        waitForProcess(pid)
    }
}
