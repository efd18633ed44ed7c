#if canImport(Glibc)
import Glibc
#endif

// Read-ahead for `DiskReader`: more than one request in flight, so the
// device never waits for the caller between requests.
//
// `submit` queues a read of the next bytes into the caller's buffers and
// returns at once; `collect` waits for the oldest queued request and returns
// what `read(into:)` would have returned for it. Requests are planned in
// order on the caller's thread (offsets, the O_DIRECT tail, the --used plan)
// and issued in ascending order by `readAheadDepth` helper threads with
// plain positioned reads, into the caller's buffers (no copy). A request
// whose read fails there is simply read again in `collect`, on the caller's
// thread, with the full error handling — the O_DIRECT fallback and the
// --noerror recovery — so bad sectors are split, zeroed, recorded and
// reported exactly as without read-ahead, in order. Streams (pipes, stdin)
// are not read ahead: `collect` reads them itself.

/// --used: the used parts of one request and what is read for them, in
/// bytes from the request's start.
struct MappedPlan {
    var used: [Range<Int>]
    var reads: [Range<Int>]
}

/// One request: planned by the caller's thread, executed by a read-ahead
/// thread or by `collect`.
final class ReadRequest: @unchecked Sendable {
    let buffers: [UnsafeMutableRawBufferPointer]
    /// The first `length` bytes of `buffers`, flattened.
    let pieces: [(UnsafeMutableRawPointer, Int)]
    /// Input offset, bytes to return, bytes to transfer.
    let at: UInt64
    let want: Int
    let length: Int
    let plan: MappedPlan?
    /// Set by whoever executed it.
    var executed = false
    var failed = false
    /// The error of the failed attempt, when it was a read error.
    var failedErrno: Int32 = 0
    var result = 0
    var readBytes: UInt64 = 0
    var skippedBytes: UInt64 = 0
    /// Set (under the threads' monitor) once a read-ahead thread is done with it.
    var finished = false
    var cancelled = false

    init(buffers: [UnsafeMutableRawBufferPointer], pieces: [(UnsafeMutableRawPointer, Int)],
         at: UInt64, want: Int, length: Int, plan: MappedPlan?) {
        self.buffers = buffers; self.pieces = pieces
        self.at = at; self.want = want; self.length = length; self.plan = plan
    }
}

/// The helper threads: each takes the oldest queued request and reads it.
final class ReadAheadThreads: @unchecked Sendable {
    private let queue: BlockingQueue<ReadRequest>
    private let monitor = Monitor()
    private var threads: [WorkerThread] = []
    private var stopped = false

    /// `fd` and `base` (the reader's `skip`) are all the threads use: they
    /// never touch the reader's state.
    init(fd: Int32, base: UInt64, count: Int) {
        queue = BlockingQueue(capacity: 64)
        for _ in 0..<count {
            threads.append(WorkerThread { [queue, monitor] in
                while let request = queue.pop() {
                    if !monitor.locked({ request.cancelled }) {
                        ReadAheadThreads.run(request, fd: fd, base: base)
                    }
                    monitor.locked {
                        request.finished = true
                        monitor.broadcast()
                    }
                }
            })
        }
    }

    func enqueue(_ request: ReadRequest) { queue.push(request) }

    func wait(for request: ReadRequest) {
        monitor.locked { while !request.finished { monitor.wait() } }
    }

    /// Drops queued requests not started yet, waits for those being read,
    /// ends the threads.
    func stop(cancelling requests: [ReadRequest] = []) {
        guard !stopped else { return }
        stopped = true
        monitor.locked { for r in requests { r.cancelled = true } }
        queue.close()
        for t in threads { t.join() }
    }

    /// A plain attempt: positioned reads, no retry beyond EINTR; any error
    /// marks the request failed for `collect` to read again.
    private static func run(_ request: ReadRequest, fd: Int32, base: UInt64) {
        let read: (UnsafeMutablePointer<iovec>, Int, Int, UInt64) throws -> Int = { vectors, count, length, offset in
            var done = 0, first = 0
            while done < length {
                let n = preadv(fd, vectors + first, Int32(count - first), off_t(base + request.at + offset + UInt64(done)))
                if n < 0 {
                    let err = lastErrno()
                    if err == EINTR || err == EAGAIN { continue }
                    throw ReadAheadFailure(errno: err)
                }
                if n == 0 { break }
                done += n
                DiskReader.advance(vectors, count: count, first: &first, by: n)
            }
            return done
        }
        do {
            if let plan = request.plan {
                try DiskReader.executeMapped(request, plan: plan, read: read)
            } else {
                var iov = DiskReader.slices(request.pieces, from: 0, to: request.length)
                let got = try iov.withUnsafeMutableBufferPointer { v in
                    try read(v.baseAddress!, v.count, request.length, 0)
                }
                request.result = min(request.want, got)
            }
            request.executed = true
        } catch {
            request.failed = true
            request.failedErrno = (error as? ReadAheadFailure)?.errno ?? 0
        }
    }
}

private struct ReadAheadFailure: Error { var errno: Int32 }

extension DiskReader {
    /// How many requests `submit` can usefully keep in flight: 2 for
    /// devices and files, 1 for streams.
    public var readAheadDepth: Int { isSeekable ? 2 : 1 }

    /// Requests queued by `submit` and not collected yet.
    public var queuedReads: Int { pending.count }

    /// Queues a read of the next bytes into `buffers` (after those of the
    /// requests already queued). The buffers must stay untouched until
    /// `collect` has returned this request's count or `endReadAhead` has
    /// returned. Not for `--noerror` recovery order or counts: those are
    /// exactly as with `read(into:)`.
    public func submit<C: Collection>(_ buffers: C) where C.Element == UnsafeMutableRawBufferPointer {
        let list = Array(buffers)
        guard isSeekable else {
            // Streams: remember the buffers; collect reads them.
            pending.append(ReadRequest(buffers: list, pieces: [], at: 0, want: -1, length: 0, plan: nil))
            return
        }
        let at = pending.last.map { $0.at + UInt64($0.want) } ?? position
        let request = makeRequest(list, at: at)
        pending.append(request)
        guard request.want > 0 else { return }
        if readAhead == nil {
            readAhead = ReadAheadThreads(fd: file.fd, base: skip, count: readAheadDepth)
        }
        readAhead!.enqueue(request)
    }

    /// Waits for the oldest queued request and returns its bytes, as
    /// `read(into:)` would: less than asked only at the end of input, 0 at
    /// the end. Read errors are thrown here, in order.
    public func collect() throws -> Int {
        precondition(!pending.isEmpty, "collect() with no read queued")
        let request = pending.removeFirst()
        if request.want < 0 {
            // A stream's request: read it now.
            return try complete(makeRequest(request.buffers, at: position))
        }
        if request.want > 0 { readAhead?.wait(for: request) }
        if pendingEnded { return 0 }
        let got = try complete(request)
        if got < request.want { pendingEnded = true }
        return got
    }

    /// Drops every queued request and waits until no read-ahead thread
    /// touches their buffers; `position` stays after the last collected
    /// request. Call when done with `submit`, also after an error.
    public func endReadAhead() {
        readAhead?.stop(cancelling: pending)
        readAhead = nil
        pending.removeAll()
        pendingEnded = false
    }
}
