#if canImport(Glibc)
import Glibc
#endif
import RescueCore

/// A device or image file read with pread (buffered: the map builder reads
/// only metadata, a few MiB at most).
public final class FileRangeReader: ByteRangeReader {
    public let path: String
    public let size: UInt64
    private let fd: Int32

    public init(path: String) throws {
        fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw RescueError(path, "open", errno: lastErrno()) }
        self.path = path
        var st = stat()
        if fstat(fd, &st) != 0 { let e = lastErrno(); Glibc.close(fd); throw RescueError(path, "stat", errno: e) }
        if (st.st_mode & S_IFMT) == S_IFBLK {
            let end = lseek(fd, 0, SEEK_END)
            if end < 0 { let e = lastErrno(); Glibc.close(fd); throw RescueError(path, "size", errno: e) }
            size = UInt64(end)
        } else {
            size = UInt64(st.st_size)
        }
    }

    deinit { Glibc.close(fd) }

    public func read(at offset: UInt64, count: Int) throws -> [UInt8] {
        guard offset < size, count > 0 else { return [] }
        let want = Int(min(UInt64(count), size - offset))
        var bytes = [UInt8](repeating: 0, count: want)
        var done = 0
        while done < want {
            let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, want - done, off_t(offset) + off_t(done)) }
            if n < 0 {
                if lastErrno() == EINTR { continue }
                throw RescueError(path, "read at offset \(offset + UInt64(done))", errno: lastErrno())
            }
            if n == 0 { break }
            done += n
        }
        return done == want ? bytes : Array(bytes[0..<done])
    }
}

/// Bytes [start, start + length) of another reader, as offsets from 0.
struct SliceReader: ByteRangeReader {
    let base: ByteRangeReader
    let start: UInt64
    let size: UInt64
    func read(at offset: UInt64, count: Int) throws -> [UInt8] {
        guard offset < size else { return [] }
        return try base.read(at: start + offset, count: Int(min(UInt64(count), size - offset)))
    }
}

/// A reader failed to return all the bytes a parser needs.
struct ShortRead: Error {}

extension ByteRangeReader {
    /// Exactly `count` bytes or ShortRead.
    func readExactly(at offset: UInt64, count: Int) throws -> [UInt8] {
        let b = try read(at: offset, count: count)
        guard b.count == count else { throw ShortRead() }
        return b
    }
}
