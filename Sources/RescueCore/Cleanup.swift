#if canImport(Glibc)
import Glibc
#endif

/// Cleanup actions (remove a temp file, release a fill file, delete a partial
/// upload) that must run exactly once: on SIGINT/SIGTERM/SIGHUP, or when an
/// applet fails. Signals are blocked in every thread and taken by one
/// sigwait thread, so the actions run as ordinary code, not in a handler.
public enum Cleanup {
    private static let monitor = Monitor()
    nonisolated(unsafe) private static var actions: [(id: Int, action: () -> Void)] = []
    nonisolated(unsafe) private static var nextID = 0
    nonisolated(unsafe) private static var ran = false

    public static let handledSignals: [Int32] = [SIGINT, SIGTERM, SIGHUP]

    /// Registers an action; returns a token for `unregister` once the work
    /// it protects has completed normally. Actions run last-registered first.
    @discardableResult
    public static func register(_ action: @escaping () -> Void) -> Int {
        monitor.locked {
            nextID += 1
            actions.append((nextID, action))
            return nextID
        }
    }

    public static func unregister(_ token: Int) {
        monitor.locked { actions.removeAll { $0.id == token } }
    }

    /// Runs every registered action once (later calls do nothing).
    public static func runAll() {
        let pending: [() -> Void] = monitor.locked {
            if ran { return [] }
            ran = true
            return actions.reversed().map(\.action)
        }
        for action in pending { action() }
    }

    /// Call once at start-up, before any other thread exists: blocks the
    /// handled signals (threads inherit the mask), ignores SIGPIPE so a
    /// closed pipe or socket is an EPIPE error we can report, and starts the
    /// thread that runs the cleanup and exits with 128+signal.
    public static func installSignalHandling() {
        signal(SIGPIPE, SIG_IGN)
        var set = signalSet()
        pthread_sigmask(SIG_BLOCK, &set, nil)
        _ = WorkerThread {
            var set = signalSet()
            var number: Int32 = 0
            while sigwait(&set, &number) != 0 {}
            writeText("\n", to: 2)
            printError("interrupted by \(signalName(number)), cleaning up")
            runAll()
            _exit(ExitCode.signal(number))
        }
    }

    /// The set of handled signals; children spawned with posix_spawn must
    /// get an empty mask (POSIX_SPAWN_SETSIGMASK) and default SIGPIPE.
    public static func signalSet() -> sigset_t {
        var set = sigset_t()
        sigemptyset(&set)
        for s in handledSignals { sigaddset(&set, s) }
        return set
    }

    public static func signalName(_ number: Int32) -> String {
        switch number {
        case SIGINT: return "SIGINT"
        case SIGTERM: return "SIGTERM"
        case SIGHUP: return "SIGHUP"
        default: return "signal \(number)"
        }
    }
}
