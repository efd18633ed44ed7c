import XCTest
import TestSupport
import Glibc
@testable import RescueCore

final class OpenFileTests: XCTestCase {
    /// A writer that dribbles bytes into a pipe in tiny pieces: readFull
    /// must still fill the whole buffer.
    func testReadFullOverShortPipeReads() throws {
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&fds), 0)
        let payload = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let writer = WorkerThread {
            var offset = 0
            while offset < payload.count {
                let n = min(13, payload.count - offset)
                _ = payload[offset..<offset + n].withUnsafeBytes { write(fds[1], $0.baseAddress, n) }
                offset += n
                if offset % 1300 == 0 { usleep(100) }
            }
            close(fds[1])
        }
        let reader = OpenFile(descriptor: fds[0], path: "pipe", owns: true)
        let buffer = AlignedBuffer(capacity: 65536)
        let first = try reader.readFull(into: buffer.bytes)
        XCTAssertEqual(first, 65536)
        XCTAssertEqual(Array(UnsafeRawBufferPointer(rebasing: buffer.bytes.prefix(first))), Array(payload[0..<65536]))
        XCTAssertTrue(memcmp(buffer.pointer, payload, 65536) == 0)
        let second = try reader.readFull(into: buffer.bytes)
        XCTAssertEqual(second, 100_000 - 65536)
        XCTAssertEqual(Array(UnsafeRawBufferPointer(rebasing: buffer.bytes.prefix(second))), Array(payload[65536...]))
        XCTAssertEqual(try reader.readFull(into: buffer.bytes), 0)
        writer.join()
    }

    /// writeAll over a pipe whose reader takes small pieces (forces short writes).
    func testWriteAllOverPipe() throws {
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&fds), 0)
        let total = 1 << 20
        var received = 0
        let reader = WorkerThread {
            var chunk = [UInt8](repeating: 0, count: 777)
            while true {
                let n = read(fds[0], &chunk, chunk.count)
                if n <= 0 { break }
                received += n
            }
        }
        let out = OpenFile(descriptor: fds[1], path: "pipe", owns: true)
        try out.writeAll([UInt8](repeating: 0xAB, count: total))
        try out.close()
        reader.join()
        close(fds[0])
        XCTAssertEqual(received, total)
    }

    func testWriteToClosedPipeIsEPIPE() throws {
        signal(SIGPIPE, SIG_IGN)
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&fds), 0)
        close(fds[0])
        let out = OpenFile(descriptor: fds[1], path: "stdout", owns: true)
        XCTAssertThrowsError(try out.writeAll([1, 2, 3])) { error in
            XCTAssertEqual((error as? RescueError)?.errno, EPIPE)
            XCTAssertEqual("\(error)", "stdout: write: Broken pipe")
        }
    }

    func testOpenMissingFileNamesPathAndReason() {
        XCTAssertThrowsError(try OpenFile.open("/nonexistent/x")) { error in
            XCTAssertEqual("\(error)", "/nonexistent/x: open: No such file or directory")
        }
    }

    /// ramfs refuses O_DIRECT at open (EINVAL); tmpfs no longer does on
    /// current kernels. open must fall back to buffered I/O.
    func testDirectFallbackOnRamfs() throws {
        try requireRoot("mounting a ramfs")
        let dir = TempDir()
        try shOK("mount -t ramfs ramfs '\(dir.path)'")
        defer { _ = try? sh("umount '\(dir.path)'") }
        let path = dir.file("file")
        let f = try OpenFile.open(path, .readWrite, options: [.create, .truncate], permissions: [.ownerReadWrite], direct: true)
        XCTAssertFalse(f.isDirect)
        try f.writeAll([UInt8](repeating: 1, count: 5000))
        XCTAssertEqual(try f.size(), 5000)
        XCTAssertEqual(try f.kind(), .regular)
        try f.close()
        let r = try OpenFile.open(path, direct: true)
        XCTAssertFalse(r.isDirect)
        let buffer = AlignedBuffer(capacity: 8192)
        XCTAssertEqual(try r.readFull(into: buffer.bytes), 5000)
    }

    /// A filesystem that takes O_DIRECT: aligned reads of a regular file.
    func testDirectReadOfRegularFile() throws {
        let path = "/var/tmp/rescuebox-direct-\(getpid())"
        defer { unlink(path) }
        let data = (0..<(1 << 20) + 100).map { UInt8(truncatingIfNeeded: $0 % 251) }
        let w = try OpenFile.open(path, .writeOnly, options: [.create, .truncate], permissions: [.ownerReadWrite])
        try w.writeAll(data)
        try w.close()
        let r = try OpenFile.open(path, direct: true)
        let buffer = AlignedBuffer(capacity: 1 << 20)
        XCTAssertEqual(try r.readFull(into: buffer.bytes), 1 << 20)
        XCTAssertEqual(memcmp(buffer.pointer, data, 1 << 20), 0)
        // The unaligned 100-byte tail: a short direct read at EOF.
        let n = try r.readFull(into: buffer.bytes)
        XCTAssertEqual(n, 100)
        XCTAssertEqual(memcmp(buffer.pointer, Array(data[(1 << 20)...]), 100), 0)
    }

    func testIsAllZero() {
        var bytes = [UInt8](repeating: 0, count: 4099)
        XCTAssertTrue(bytes.withUnsafeBytes { isAllZero($0) })
        for i in [0, 7, 8, 63, 64, 4000, 4098] {
            bytes[i] = 1
            XCTAssertFalse(bytes.withUnsafeBytes { isAllZero($0) }, "\(i)")
            bytes[i] = 0
        }
    }

    func testBlockingQueueBoundedAndOrdered() {
        let q = BlockingQueue<Int>(capacity: 3)
        var seen: [Int] = []
        let consumer = WorkerThread { while let x = q.pop() { seen.append(x) } }
        for i in 0..<1000 { q.push(i) }
        q.close()
        consumer.join()
        XCTAssertEqual(seen, Array(0..<1000))
        XCTAssertFalse(q.push(1))
    }

    func testCleanupRunsOnceInReverseOrder() {
        var order: [Int] = []
        let a = Cleanup.register { order.append(1) }
        Cleanup.register { order.append(2) }
        Cleanup.unregister(a)
        Cleanup.register { order.append(3) }
        Cleanup.runAll()
        Cleanup.runAll()
        XCTAssertEqual(order, [3, 2])
    }
}
