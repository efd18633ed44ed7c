#if canImport(Glibc)
import Glibc
#endif

/// A heap buffer aligned for O_DIRECT (page alignment satisfies every
/// logical sector size). Owned by one thread at a time; passed between
/// pipeline stages, never shared concurrently.
public final class AlignedBuffer: @unchecked Sendable {
    public static let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))

    public let pointer: UnsafeMutableRawPointer
    public let capacity: Int
    /// How many bytes at the start are valid.
    public var count: Int = 0

    public init(capacity: Int, alignment: Int = AlignedBuffer.pageSize) {
        var raw: UnsafeMutableRawPointer?
        let rounded = max(alignment, (capacity + alignment - 1) / alignment * alignment)
        guard posix_memalign(&raw, alignment, rounded) == 0, let raw else {
            fatalError("out of memory allocating \(rounded) bytes")
        }
        pointer = raw
        self.capacity = capacity
    }

    deinit { free(pointer) }

    public var bytes: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: pointer, count: capacity)
    }

    public var valid: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: pointer, count: count)
    }
}

/// True when every byte is zero; fast (word-wise) since it runs on every block.
public func isAllZero(_ buffer: UnsafeRawBufferPointer) -> Bool {
    guard var p = buffer.baseAddress else { return true }
    var n = buffer.count
    while n > 0 && Int(bitPattern: p) & 7 != 0 {
        if p.load(as: UInt8.self) != 0 { return false }
        p += 1; n -= 1
    }
    while n >= 64 {
        let w = p.assumingMemoryBound(to: UInt64.self)
        if (w[0] | w[1] | w[2] | w[3] | w[4] | w[5] | w[6] | w[7]) != 0 { return false }
        p += 64; n -= 64
    }
    while n > 0 {
        if p.load(as: UInt8.self) != 0 { return false }
        p += 1; n -= 1
    }
    return true
}
