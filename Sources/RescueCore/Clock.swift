#if canImport(Glibc)
import Glibc
#endif

/// Seconds on the monotonic clock, for rates and timeouts.
public func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// Measures elapsed time from creation.
public struct Stopwatch {
    public let start = monotonicSeconds()
    public init() {}
    public var elapsed: Double { monotonicSeconds() - start }
}
