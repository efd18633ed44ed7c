#if canImport(Glibc)
import Glibc
#endif

/// Starts a program as a shell would: rescuebox blocks SIGINT/TERM/HUP in
/// every thread and ignores SIGPIPE, so the child gets an empty signal mask
/// and the default action for those signals. `stdout` replaces its standard
/// output; `ownProcessGroup` lets the caller stop a whole pipeline with
/// kill(-pid). The child's environment is ours without FTP_PASSWORD.
/// Throws RescueError(argv[0], "run", errno) when it cannot start.
public func spawnProcess(_ argv: [String], searchPath: Bool = false, stdout: Int32? = nil,
                         ownProcessGroup: Bool = false) throws -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    if let stdout { posix_spawn_file_actions_adddup2(&actions, stdout, 1) }
    var attr = posix_spawnattr_t()
    posix_spawnattr_init(&attr)
    defer { posix_spawnattr_destroy(&attr) }
    var empty = sigset_t()
    sigemptyset(&empty)
    posix_spawnattr_setsigmask(&attr, &empty)
    var defaults = Cleanup.signalSet()
    sigaddset(&defaults, SIGPIPE)
    posix_spawnattr_setsigdefault(&attr, &defaults)
    var flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF
    if ownProcessGroup {
        posix_spawnattr_setpgroup(&attr, 0)
        flags |= POSIX_SPAWN_SETPGROUP
    }
    posix_spawnattr_setflags(&attr, Int16(flags))
    let cargs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
    defer { for p in cargs { free(p) } }
    // Secrets stay with us: children never see FTP_PASSWORD.
    var env: [UnsafeMutablePointer<CChar>?] = []
    var index = 0
    while let entry = environ[index] {
        if strncmp(entry, "FTP_PASSWORD=", 13) != 0 { env.append(entry) }
        index += 1
    }
    env.append(nil)
    var pid: pid_t = 0
    let rc = searchPath ? posix_spawnp(&pid, argv[0], &actions, &attr, cargs, env)
                        : posix_spawn(&pid, argv[0], &actions, &attr, cargs, env)
    if rc != 0 { throw RescueError(argv[0], "run", errno: rc) }
    return pid
}

/// How a child ended, decoded from its wait status (WIFEXITED etc.).
public enum ProcessEnd: Equatable, Sendable {
    /// It exited with this status (0: success).
    case exited(Int32)
    /// A signal killed it.
    case killed(signal: Int32)

    public init(waitStatus status: Int32) {
        let signal = status & 0x7F
        self = signal == 0 ? .exited((status >> 8) & 0xFF) : .killed(signal: signal)
    }

    public var succeeded: Bool { self == .exited(0) }
}

/// Waits for a child and says how it ended.
@discardableResult
public func waitForProcess(_ pid: pid_t) -> ProcessEnd {
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && lastErrno() == EINTR {}
    return ProcessEnd(waitStatus: status)
}
