/// Where a stream of bytes goes: a file, a device, stdout, an FTP data
/// connection. Lets the compressor feed a socket as easily as a file.
public protocol ByteSink: AnyObject {
    /// Writes all of `bytes` or throws a RescueError naming the object.
    func write(_ bytes: UnsafeRawBufferPointer) throws
}

/// Where a stream of bytes comes from: a file, stdin, an FTP download.
public protocol ByteSource: AnyObject {
    /// Fills as much of `buffer` as it can before end of stream; returns the
    /// byte count, 0 only at the end. Throws a RescueError naming the object.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int
}

extension OpenFile: ByteSink, ByteSource {
    public func write(_ bytes: UnsafeRawBufferPointer) throws { try writeAll(bytes) }
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int { try readFull(into: buffer) }
}
