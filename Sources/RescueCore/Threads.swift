#if canImport(Glibc)
import Glibc
#endif

/// A dedicated OS thread for blocking work (O_DIRECT reads, socket writes,
/// fsync) that must not sit on Swift's cooperative pool.
public final class WorkerThread {
    private var thread = pthread_t()
    private var joined = false

    private final class Box { let body: () -> Void; init(_ b: @escaping () -> Void) { body = b } }

    public init(_ body: @escaping () -> Void) {
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        let rc = pthread_create(&thread, nil, { arg in
            let box = Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue()
            box.body()
            return nil
        }, box)
        precondition(rc == 0, "pthread_create failed: \(systemReason(rc))")
    }

    public func join() {
        guard !joined else { return }
        joined = true
        pthread_join(thread, nil)
    }

    public static var onlineProcessors: Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }
}

/// A pthread mutex with a condition variable, for state that threads wait
/// on (the blocking queues, the pipelines' ordering). Synchronization's
/// Mutex has no condition variable; state that is only guarded, never
/// waited for, uses Mutex instead.
public final class Monitor: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    private var cond = pthread_cond_t()

    public init() {
        pthread_mutex_init(&mutex, nil)
        // Timed waits run on the monotonic clock (a clock step must not
        // stretch or cut them).
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(&cond, &attributes)
        pthread_condattr_destroy(&attributes)
    }
    deinit {
        pthread_cond_destroy(&cond)
        pthread_mutex_destroy(&mutex)
    }

    public func locked<R>(_ body: () throws -> R) rethrows -> R {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return try body()
    }

    /// Call with the lock held (inside `locked`).
    public func wait() { pthread_cond_wait(&cond, &mutex) }
    /// Like `wait`, but returns after `seconds` at the latest.
    public func wait(seconds: Double) {
        var deadline = timespec()
        clock_gettime(CLOCK_MONOTONIC, &deadline)
        let nanoseconds = Int(deadline.tv_nsec) + Int(seconds * 1e9)
        deadline.tv_sec += nanoseconds / 1_000_000_000
        deadline.tv_nsec = nanoseconds % 1_000_000_000
        pthread_cond_timedwait(&cond, &mutex, &deadline)
    }
    public func broadcast() { pthread_cond_broadcast(&cond) }
}

/// A bounded FIFO between pipeline threads: `push` blocks while full, `pop`
/// blocks while empty. `close()` wakes everyone: later pushes are dropped
/// (return false) and pops drain what is left, then return nil. Memory stays
/// bounded however much data flows through.
public final class BlockingQueue<Element>: @unchecked Sendable {
    private let monitor = Monitor()
    private var items: [Element?]
    private var head = 0
    private var count = 0
    private var isClosed = false
    public let capacity: Int

    public init(capacity: Int) {
        precondition(capacity > 0)
        self.capacity = capacity
        items = Array(repeating: nil, count: capacity)
    }

    @discardableResult
    public func push(_ item: Element) -> Bool {
        monitor.locked {
            while count == capacity && !isClosed { monitor.wait() }
            if isClosed { return false }
            items[(head + count) % capacity] = item
            count += 1
            monitor.broadcast()
            return true
        }
    }

    public func pop() -> Element? {
        monitor.locked {
            while count == 0 && !isClosed { monitor.wait() }
            if count == 0 { return nil }
            let item = items[head]
            items[head] = nil
            head = (head + 1) % capacity
            count -= 1
            monitor.broadcast()
            return item
        }
    }

    /// No more pushes; pops drain then return nil.
    public func close() {
        monitor.locked {
            isClosed = true
            monitor.broadcast()
        }
    }
}
