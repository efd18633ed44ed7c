#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Cleanup actions (remove a temp file, release a fill file, delete a partial
/// upload) that must run exactly once: on SIGINT/SIGTERM/SIGHUP, or when an
/// applet fails. Signals are blocked in every thread and taken by one
/// sigwait thread, so the actions run as ordinary code, not in a handler.
///
/// An interrupt is one outcome: from the moment the signal is taken, the
/// other threads print nothing, start no retry (`isInterrupted`) and cannot
/// exit on their own (`exitProcess` waits); the signal thread runs the
/// actions, prints one line and exits with 128+signal.
public enum Cleanup {
    private struct State {
        var actions: [(id: Int, action: () -> String?)] = []
        var nextID = 0
        var ran = false
        var interruptSignal: Int32 = 0
        var signalThread = pthread_t()
        var completedWork: String?
    }
    private static let state = Mutex(State())
    /// Held while the actions run, so a second caller of `runAll` waits for them.
    private static let running = Mutex(())

    public static let handledSignals: [Int32] = [SIGINT, SIGTERM, SIGHUP]

    /// Registers an action; returns a token for `unregister` once the work
    /// it protects has completed normally. Actions run last-registered first.
    /// The action returns what it did ("removed the partial upload x.part"),
    /// which an interrupt reports on its one line, or nil.
    @discardableResult
    public static func registerReporting(_ action: @escaping () -> String?) -> Int {
        state.withLock {
            $0.nextID += 1
            $0.actions.append(($0.nextID, action))
            return $0.nextID
        }
    }

    /// An action with nothing to report.
    @discardableResult
    public static func register(_ action: @escaping () -> Void) -> Int {
        registerReporting({ () -> String? in action(); return nil })
    }

    public static func unregister(_ token: Int) {
        state.withLock { $0.actions.removeAll { $0.id == token } }
    }

    /// Says that the job's result is complete and in place (a renamed
    /// upload): a signal from now on is reported as arriving after it.
    public static func markCompleted(_ what: String) {
        state.withLock { $0.completedWork = what }
    }

    /// The signal that interrupted the process, once one has.
    public static var interruptedBy: Int32? {
        let number = state.withLock { $0.interruptSignal }
        return number == 0 ? nil : number
    }

    public static var isInterrupted: Bool { interruptedBy != nil }

    /// True on the thread that handles the interrupt.
    public static var isSignalThread: Bool {
        interruptedBy != nil && pthread_equal(pthread_self(), state.withLock { $0.signalThread }) != 0
    }

    /// Runs every registered action once (later calls wait until the first
    /// has finished, then do nothing); returns their reports.
    @discardableResult
    public static func runAll() -> [String] {
        running.withLock { _ in
            let pending: [() -> String?] = state.withLock {
                if $0.ran { return [] }
                $0.ran = true
                return $0.actions.reversed().map(\.action)
            }
            return pending.compactMap { $0() }
        }
    }

    /// Exits the process with `code`, unless an interrupt is being handled:
    /// then this thread waits for good and the signal thread's exit wins.
    public static func exitProcess(_ code: Int32) -> Never {
        exitGate.close()
        exit(code)
    }

    /// Closed once, by whoever ends the process first; never opened again
    /// (a pthread mutex locked and never unlocked: Mutex only lends its lock
    /// for the length of a closure).
    private final class Gate: @unchecked Sendable {
        private var mutex = pthread_mutex_t()
        init() { pthread_mutex_init(&mutex, nil) }
        func close() { pthread_mutex_lock(&mutex) }
    }
    private static let exitGate = Gate()

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
            exitGate.close()  // nobody else exits from now on
            let done: String? = state.withLock {
                $0.signalThread = pthread_self()
                $0.interruptSignal = number
                return $0.completedWork
            }
            let reports = runAll()
            writeText("\n", to: 2)
            var line = "interrupted by \(signalName(number))"
            if let done { line += " after the work had completed (\(done))" }
            if !reports.isEmpty { line += "; " + reports.joined(separator: "; ") }
            printError(line)
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
