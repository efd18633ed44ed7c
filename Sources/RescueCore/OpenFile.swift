#if canImport(Glibc)
import Glibc
#endif
import CShim
import SystemPackage

/// An open file, device, pipe or socket with the path it came from, so every
/// error names its object. Reads and writes retry on EINTR and loop over
/// short transfers; failures throw `RescueError` naming the path and offset.
/// The I/O goes through swift-system's `FileDescriptor` (open, read/pread,
/// write/pwrite, seek, ftruncate, close); what it has no call for (fsync,
/// fstat, the O_DIRECT fcntl, block-device ioctls) is Glibc or CShim.
public final class OpenFile {
    public let descriptor: FileDescriptor
    /// The name used in messages ("/dev/sda", "stdin", "ftp data connection").
    public let path: String
    /// O_DIRECT is on for this descriptor.
    public private(set) var isDirect: Bool
    private let ownsDescriptor: Bool
    private var closed = false

    public var fd: Int32 { descriptor.rawValue }

    /// Wraps an existing descriptor (stdin, a socket); not closed by `close()`
    /// unless `owns` is true.
    public init(descriptor: Int32, path: String, owns: Bool = false) {
        self.descriptor = FileDescriptor(rawValue: descriptor)
        self.path = path
        self.isDirect = false
        self.ownsDescriptor = owns
    }

    private init(_ fd: FileDescriptor, path: String, direct: Bool) {
        descriptor = fd
        self.path = path
        isDirect = direct
        ownsDescriptor = true
    }

    deinit { if ownsDescriptor && !closed { try? descriptor.close() } }

    public static let standardInput = OpenFile(descriptor: 0, path: "stdin")
    public static let standardOutput = OpenFile(descriptor: 1, path: "stdout")

    /// Opens `path`. With `direct`, tries O_DIRECT first and falls back to
    /// buffered I/O where the filesystem refuses it (EINVAL, e.g. tmpfs),
    /// saying so once with -v.
    public static func open(
        _ path: String, _ mode: FileDescriptor.AccessMode = .readOnly,
        options: FileDescriptor.OpenOptions = [], permissions: FilePermissions? = nil,
        direct: Bool = false
    ) throws -> OpenFile {
        let opts = options.union(FileDescriptor.OpenOptions(rawValue: rb_o_cloexec()))
        if direct {
            let directOpts = opts.union(FileDescriptor.OpenOptions(rawValue: rb_o_direct()))
            do {
                let fd = try FileDescriptor.open(path, mode, options: directOpts, permissions: permissions)
                return OpenFile(fd, path: path, direct: true)
            } catch let e as Errno where e == .invalidArgument {
                printVerbose("\(path): O_DIRECT refused by the filesystem, using buffered I/O")
            } catch let e as Errno {
                throw RescueError(path, "open", errno: e.rawValue)
            }
        }
        do {
            let fd = try FileDescriptor.open(path, mode, options: opts, permissions: permissions)
            return OpenFile(fd, path: path, direct: false)
        } catch let e as Errno {
            throw RescueError(path, "open", errno: e.rawValue)
        }
    }

    /// Turns O_DIRECT off, e.g. when a read at an unaligned tail fails with
    /// EINVAL or the filesystem accepted the flag at open but refuses reads.
    public func disableDirect() {
        guard isDirect else { return }
        if rb_set_direct(fd, 0) == 0 {
            isDirect = false
            printVerbose("\(path): O_DIRECT read refused, using buffered I/O")
        }
    }

    /// One read(2) at the current position (what a pipe has now, up to
    /// `buffer.count`); 0 at end of file.
    public func readSome(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        while true {
            do { return try descriptor.read(into: buffer) } catch let err as Errno {
                if err == .resourceTemporarilyUnavailable { continue }
                throw RescueError(path, "read", errno: err.rawValue)
            }
        }
    }

    /// Reads until `buffer` is full or end of file; returns the bytes read.
    /// A direct read refused with EINVAL is retried once without O_DIRECT.
    public func readFull(into buffer: UnsafeMutableRawBufferPointer, offset: UInt64? = nil) throws -> Int {
        var done = 0
        while done < buffer.count {
            let part = UnsafeMutableRawBufferPointer(rebasing: buffer[done...])
            let n: Int
            do {
                if let offset {
                    n = try descriptor.read(fromAbsoluteOffset: Int64(offset) + Int64(done), into: part)
                } else {
                    n = try descriptor.read(into: part)
                }
            } catch let err as Errno {
                if err == .resourceTemporarilyUnavailable { continue }
                if err == .invalidArgument && isDirect { disableDirect(); continue }
                let at = (offset ?? 0) + UInt64(done)
                throw RescueError(path, offset == nil && at == 0 ? "read" : "read at offset \(at)", errno: err.rawValue)
            }
            if n == 0 { break }
            done += n
        }
        return done
    }

    /// Writes all of `buffer`; `offset` gives pwrite positioning.
    public func writeAll(_ buffer: UnsafeRawBufferPointer, offset: UInt64? = nil) throws {
        var done = 0
        while done < buffer.count {
            let part = UnsafeRawBufferPointer(rebasing: buffer[done...])
            let n: Int
            do {
                if let offset {
                    n = try descriptor.write(toAbsoluteOffset: Int64(offset) + Int64(done), part)
                } else {
                    n = try descriptor.write(part)
                }
            } catch let err as Errno {
                if err == .resourceTemporarilyUnavailable { continue }
                if err == .invalidArgument && isDirect { disableDirect(); continue }
                throw RescueError(path, "write", errno: err.rawValue)
            }
            done += n
        }
    }

    public func writeAll(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try writeAll($0) }
    }

    public func seek(to offset: UInt64) throws {
        do {
            try descriptor.seek(offset: Int64(offset), from: .start)
        } catch let err as Errno {
            throw RescueError(path, "seek to \(offset)", errno: err.rawValue)
        }
    }

    public func sync() throws {
        if fsync(fd) != 0 { throw RescueError(path, "fsync", errno: lastErrno()) }
    }

    public func truncate(to size: UInt64) throws {
        do {
            try descriptor.resize(to: Int64(size))
        } catch let err as Errno {
            throw RescueError(path, "truncate", errno: err.rawValue)
        }
    }

    public func close() throws {
        guard !closed else { return }
        closed = true
        guard ownsDescriptor else { return }
        do {
            try descriptor.close()
        } catch let err as Errno where err != .interrupted {
            throw RescueError(path, "close", errno: err.rawValue)
        } catch {}
    }

    public func status() throws -> stat {
        var st = stat()
        if fstat(fd, &st) != 0 { throw RescueError(path, "stat", errno: lastErrno()) }
        return st
    }

    public enum Kind { case regular, blockDevice, characterDevice, pipe, socket, directory, other }

    public func kind() throws -> Kind {
        switch try status().st_mode & S_IFMT {
        case S_IFREG: return .regular
        case S_IFBLK: return .blockDevice
        case S_IFCHR: return .characterDevice
        case S_IFIFO: return .pipe
        case S_IFSOCK: return .socket
        case S_IFDIR: return .directory
        default: return .other
        }
    }

    /// Size in bytes of a regular file or block device (BLKGETSIZE64); nil
    /// for pipes, sockets and terminals.
    public func size() throws -> UInt64? {
        let st = try status()
        switch st.st_mode & S_IFMT {
        case S_IFREG: return UInt64(st.st_size)
        case S_IFBLK:
            var bytes: UInt64 = 0
            if rb_blkdev_size(fd, &bytes) != 0 { throw RescueError(path, "get device size", errno: lastErrno()) }
            return bytes
        default: return nil
        }
    }

    /// Logical sector size of a block device (512 for everything else).
    public func sectorSize() -> Int {
        var bytes: Int32 = 0
        if (try? kind()) == .blockDevice, rb_blkdev_sector_size(fd, &bytes) == 0, bytes > 0 { return Int(bytes) }
        return 512
    }
}

/// Reads a small file (proc, sysfs, a config) whole; throws when it is
/// larger than `limit`.
public func readSmallFileBytes(_ path: String, limit: Int = 16 << 20) throws -> [UInt8] {
    let file = try OpenFile.open(path)
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = try chunk.withUnsafeMutableBytes { try file.readFull(into: $0) }
        bytes.append(contentsOf: chunk[0..<n])
        if n < chunk.count { break }
        if bytes.count > limit { throw RescueError(path, "read", "larger than \(limit) bytes") }
    }
    return bytes
}

/// The same as text.
public func readSmallFile(_ path: String, limit: Int = 16 << 20) throws -> String {
    String(decoding: try readSmallFileBytes(path, limit: limit), as: UTF8.self)
}
