#if canImport(Glibc)
import Glibc
#endif
import CShim

/// Reads the input of an imaging job — a block device, a regular file, or a
/// pipe/stdin — from `skip` for at most `count` bytes, in large requests.
///
/// * Block devices and regular files are opened with O_DIRECT (no page-cache
///   pollution, large aligned requests straight from the device) and read
///   with positioned scatter reads (`preadv`) into the caller's aligned
///   buffers. Where O_DIRECT is refused (at open, at the first read, or for an
///   unaligned `skip`/`count` tail) the reader falls back to buffered reads,
///   saying so with -v. Buffers must be page-aligned (`AlignedBuffer`) for
///   O_DIRECT to be used.
/// * Pipes, sockets, character devices and stdin are read with plain
///   `readv` loops; `skip` is then read and discarded.
///
/// Offsets: an *input offset* counts bytes from `skip` (input offset 0 is
/// absolute offset `skip`). `position` is the input offset of the next byte;
/// `seek(to:)` moves it (forward only on streams), which is how a resumed
/// job starts at a block boundary.
///
/// Read errors: by default the first failed read throws a `RescueError`
/// naming the device, the absolute byte offset and the system's reason. With
/// `noError` (dd's conv=noerror,sync, in the spirit of GNU ddrescue) a failed
/// request is re-read in halves down to the logical sector size; sectors that
/// still fail are returned as zeros, recorded in `badRanges` (absolute
/// offsets, adjacent ranges merged) and reported through `onBadRange`, and
/// reading goes on. Only positioned (seekable) inputs can be recovered.
///
/// One thread at a time: the compressor's reader thread owns it.
public final class DiskReader {
    /// A range of unreadable bytes, in absolute offsets of the device/file.
    public struct BadRange: Equatable, Sendable {
        public var offset: UInt64
        public var length: UInt64
        public init(offset: UInt64, length: UInt64) { self.offset = offset; self.length = length }
    }

    public let file: OpenFile
    /// The name used in messages ("/dev/sda", "stdin").
    public var name: String { file.path }
    public let kind: OpenFile.Kind
    public let isStandardInput: Bool
    /// Regular files and block devices: positioned reads, size known.
    public let isSeekable: Bool
    /// fstat of the input at open (for the lzop header's mode and mtime).
    public let status: stat
    /// Size of the whole file or device; nil for streams.
    public let sourceSize: UInt64?
    /// Absolute offset of input offset 0.
    public let skip: UInt64
    /// At most this many bytes from `skip`; nil: to the end.
    public let count: UInt64?
    /// Logical sector size (512 for files and streams): the unit of O_DIRECT and of --noerror.
    public let sectorSize: Int
    /// The request size callers should use (e.g. `--bs`, default 4 MiB).
    public let requestSize: Int
    /// Input offset of the next byte read.
    public internal(set) var position: UInt64 = 0
    /// Re-read failed regions sector by sector and zero what stays unreadable.
    public var noError = false
    /// Called with each unreadable range once the failed request around it
    /// has been recovered (adjacent bad sectors merged into one range).
    public var onBadRange: ((BadRange) -> Void)?

    /// The one way --noerror reports a bad range: the meter's line is
    /// cleared, then `DEV: unreadable: bytes A-B (N bytes) written as zeros`.
    public func reportBadRanges(meter: ProgressMeter) {
        onBadRange = { [name] range in
            meter.finish()
            printError("\(name): unreadable: bytes \(range.offset)-\(range.offset + range.length - 1) "
                       + "(\(range.length) bytes) written as zeros")
        }
    }
    public private(set) var badRanges: [BadRange] = []
    public private(set) var badBytes: UInt64 = 0

    /// --used: the absolute ranges to read (sorted, disjoint, sector
    /// aligned). Bytes outside them are returned as zeros without being
    /// read; nil: read everything. Seekable inputs only.
    public var usedRanges: [Range<UInt64>]? { didSet { nextRange = 0 } }
    /// --used: bytes read from the input, and bytes returned as zeros unread.
    public private(set) var mappedReadBytes: UInt64 = 0
    public private(set) var mappedSkippedBytes: UInt64 = 0
    private var nextRange = 0

    static let maxVectors = 1024
    /// Requests queued by `submit`, oldest first (DiskReadAhead.swift).
    var pending: [ReadRequest] = []
    var readAhead: ReadAheadThreads?
    /// An earlier queued request came up short: the input ended.
    var pendingEnded = false
    private var knownStreamSize: UInt64?

    public var isDirect: Bool { file.isDirect }

    /// Bytes from input offset 0 to the end of input, when known (seekable
    /// inputs, stdin redirected from a file); nil for pipes without --count.
    public var totalSize: UInt64? {
        var size: UInt64? = nil
        if let sourceSize { size = sourceSize > skip ? sourceSize - skip : 0 }
        else if let knownStreamSize { size = knownStreamSize }
        if let count { size = size.map { min($0, count) } ?? count }
        return size
    }

    /// Bytes left from `position`, when known.
    public var remaining: UInt64? { totalSize.map { $0 > position ? $0 - position : 0 } }

    private init(file: OpenFile, kind: OpenFile.Kind, status: stat, isStandardInput: Bool, sourceSize: UInt64?,
                 skip: UInt64, count: UInt64?, sectorSize: Int, requestSize: Int) {
        self.file = file
        self.kind = kind
        self.status = status
        self.isStandardInput = isStandardInput
        self.sourceSize = sourceSize
        isSeekable = sourceSize != nil
        self.skip = skip
        self.count = count
        self.sectorSize = sectorSize
        self.requestSize = requestSize
    }

    deinit {
        readAhead?.stop(cancelling: pending)
        if !isStandardInput { try? file.close() }
    }

    /// The request size when none is given (`--bs`).
    public static let defaultRequestSize = 4 << 20

    /// Whether `size` can be a request size: a multiple of 4 KiB from 4 KiB
    /// to 64 MiB.
    public static func isValidRequestSize(_ size: UInt64) -> Bool {
        size >= 4096 && size % 4096 == 0 && size <= 64 << 20
    }

    /// Opens `path` (nil or "-": standard input) for reading from absolute
    /// offset `skip`, at most `count` bytes, in requests of `requestSize`
    /// bytes (a multiple of 4 KiB). `direct` tries O_DIRECT for block devices
    /// and regular files. `startOffset` positions the reader at that input
    /// offset (resume).
    public static func open(_ path: String?, skip: UInt64 = 0, count: UInt64? = nil,
                            requestSize: Int = defaultRequestSize, direct: Bool = true,
                            startOffset: UInt64 = 0) throws -> DiskReader {
        guard requestSize > 0, isValidRequestSize(UInt64(requestSize)) else {
            throw RescueError.usage("block size must be a multiple of 4 KiB between 4 KiB and 64 MiB, not \(requestSize)")
        }
        let stdin = path == nil || path == "-"
        let file = stdin ? OpenFile(descriptor: 0, path: "stdin") : try OpenFile.open(path!, direct: direct)
        let st = try file.status()
        let kind = try file.kind()
        if kind == .directory { throw RescueError(file.path, "read", errno: EISDIR) }
        var sourceSize: UInt64? = nil
        var streamSize: UInt64? = nil
        if !stdin && (kind == .regular || kind == .blockDevice) {
            sourceSize = try file.size()
        } else {
            file.disableDirect()
            if kind == .regular {
                let here = lseek(file.fd, 0, SEEK_CUR)
                if here >= 0, UInt64(st.st_size) >= UInt64(here) { streamSize = UInt64(st.st_size) - UInt64(here) }
            }
        }
        let sector = max(512, file.sectorSize())
        let reader = DiskReader(file: file, kind: kind, status: st, isStandardInput: stdin, sourceSize: sourceSize,
                                skip: skip, count: count, sectorSize: sector, requestSize: requestSize)
        reader.knownStreamSize = streamSize
        if let sourceSize, skip > sourceSize {
            throw RescueError(file.path, "skip \(skip) bytes", "beyond the end (size \(sourceSize) bytes)")
        }
        if file.isDirect && skip % UInt64(sector) != 0 {
            printVerbose("\(file.path): skip is not a multiple of the \(sector)-byte sector, using buffered reads")
            file.disableDirect()
        }
        if reader.isSeekable {
            if !file.isDirect { _ = posix_fadvise(file.fd, off_t(skip), 0, POSIX_FADV_SEQUENTIAL) }
        } else if skip > 0 {
            try reader.discard(skip, what: "skip")
        }
        if startOffset > 0 { try reader.seek(to: startOffset) }
        return reader
    }

    /// Moves to input offset `offset` (forward only for streams).
    public func seek(to offset: UInt64) throws {
        if let total = totalSize, offset > total {
            throw RescueError(name, "seek to input offset \(offset)", "beyond the end of input (\(total) bytes)")
        }
        if isSeekable {
            position = offset
        } else {
            guard offset >= position else {
                throw RescueError(name, "seek back to input offset \(offset)", "cannot go back in a pipe")
            }
            try discard(offset - position, what: "seek")
            position = offset
        }
    }

    private func discard(_ bytes: UInt64, what: String) throws {
        let scratch = AlignedBuffer(capacity: 1 << 20)
        var left = bytes
        while left > 0 {
            let n = try file.readFull(into: UnsafeMutableRawBufferPointer(rebasing: scratch.bytes[0..<Int(min(left, 1 << 20))]))
            if n == 0 { throw RescueError(name, what, "input ended after \(bytes - left) of \(bytes) bytes") }
            left -= UInt64(n)
        }
    }

    /// Reads into `buffer`; see `read(into:)` for buffer lists.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        try read(into: CollectionOfOne(buffer))
    }

    /// Fills `buffers` in order, each completely before the next, with one
    /// large request (a positioned scatter read where possible). Returns the
    /// bytes read: the total of the buffers, less only at the end of input
    /// (end of file/device, or `count` reached). 0 means the end.
    /// Not while reads are queued with `submit` (see DiskReadAhead.swift).
    public func read<C: Collection>(into buffers: C) throws -> Int where C.Element == UnsafeMutableRawBufferPointer {
        precondition(pending.isEmpty, "read(into:) while reads are queued")
        let request = makeRequest(Array(buffers), at: position)
        return try complete(request)
    }

    /// Describes one request at input offset `at`: how much to return
    /// (`want`), how much to transfer (`length`, `want` rounded up to a
    /// sector for O_DIRECT when the buffers have room) and, with --used,
    /// which parts are read and which are zeros. Advances the --used cursor.
    func makeRequest(_ buffers: [UnsafeMutableRawBufferPointer], at: UInt64) -> ReadRequest {
        var capacity = 0
        for b in buffers { capacity += b.count }
        var want = capacity
        if let total = totalSize { want = Int(min(UInt64(want), total > at ? total - at : 0)) }
        // O_DIRECT moves whole sectors: an unaligned tail (end of a file,
        // --count) is read rounded up when the buffers have room — the
        // extra bytes are never returned — else without O_DIRECT.
        var length = want
        if want > 0 && file.isDirect && want % sectorSize != 0 {
            let rounded = (want + sectorSize - 1) / sectorSize * sectorSize
            if rounded <= capacity { length = rounded } else { file.disableDirect() }
        }
        var pieces: [(UnsafeMutableRawPointer, Int)] = []
        var left = length
        for b in buffers where left > 0 {
            precondition(pieces.count < Self.maxVectors, "too many buffers in one read")
            let take = min(b.count, left)
            pieces.append((b.baseAddress!, take))
            left -= take
        }
        var plan: MappedPlan? = nil
        if want > 0, let usedRanges, isSeekable {
            plan = planMapped(windowStart: skip + at, want: want, length: length, ranges: usedRanges)
        }
        return ReadRequest(buffers: buffers, pieces: pieces, at: at, want: want, length: length, plan: plan)
    }

    /// Executes `request` (again, if a read-ahead attempt failed) unless it
    /// ran already, and moves `position` past what it returned. Failed
    /// reads go through the O_DIRECT fallback and --noerror recovery; a
    /// read error that stays throws.
    func complete(_ request: ReadRequest) throws -> Int {
        guard request.want > 0 else { return 0 }
        if !request.executed || request.failed {
            try execute(request)
        }
        if request.plan != nil {
            mappedReadBytes += request.readBytes
            mappedSkippedBytes += request.skippedBytes
        }
        position = request.at + UInt64(request.result)
        return request.result
    }

    /// Runs `request` on this thread with the full error handling.
    private func execute(_ request: ReadRequest) throws {
        request.failed = false
        defer { request.failedErrno = 0 }
        if let plan = request.plan {
            try Self.executeMapped(request, plan: plan) { vectors, count, length, offset in
                try transfer(vectors: vectors, count: count, length: length, at: request.at + offset)
            }
        } else {
            var iov = Self.slices(request.pieces, from: 0, to: request.length)
            let readError = request.failedErrno
            let got = try iov.withUnsafeMutableBufferPointer { v in
                // A read-ahead attempt that met a read error: --noerror
                // recovers at once rather than failing the whole request
                // again on a sick disk.
                if noError && isSeekable && readError != 0 && readError != EINVAL {
                    recover(vectors: v.baseAddress!, count: v.count, length: request.length, at: request.at)
                    return request.length
                }
                return try transfer(vectors: v.baseAddress!, count: v.count, length: request.length, at: request.at)
            }
            request.result = min(request.want, got)
        }
        request.executed = true
    }

    /// Reads `length` bytes described by `vectors` at input offset `at`
    /// (ignored for streams); loops over short reads; handles the O_DIRECT
    /// fallback and --noerror recovery. Modifies the iovecs.
    private func transfer(vectors: UnsafeMutablePointer<iovec>, count: Int, length: Int, at: UInt64) throws -> Int {
        var done = 0
        var first = 0
        while done < length {
            let n: Int
            if isSeekable {
                n = preadv(file.fd, vectors + first, Int32(count - first), off_t(skip + at + UInt64(done)))
            } else {
                n = readv(file.fd, vectors + first, Int32(count - first))
            }
            if n < 0 {
                let err = lastErrno()
                if err == EINTR || err == EAGAIN { continue }
                if err == EINVAL && file.isDirect { file.disableDirect(); continue }
                if noError && isSeekable {
                    recover(vectors: vectors + first, count: count - first, length: length - done, at: at + UInt64(done))
                    return length
                }
                throw RescueError(name, "read at offset \(skip + at + UInt64(done))", errno: err)
            }
            if n == 0 { break }
            done += n
            Self.advance(vectors, count: count, first: &first, by: n)
        }
        return done
    }

    /// Drops the iovecs (or the part of one) that `n` more bytes filled.
    static func advance(_ vectors: UnsafeMutablePointer<iovec>, count: Int, first: inout Int, by n: Int) {
        var consumed = n
        while consumed > 0 && first < count {
            let len = vectors[first].iov_len
            if consumed >= len {
                consumed -= len
                first += 1
            } else {
                vectors[first].iov_base = vectors[first].iov_base! + consumed
                vectors[first].iov_len = len - consumed
                consumed = 0
            }
        }
    }

    // MARK: --used

    /// The used parts of the window [windowStart, windowStart + want)
    /// (absolute), relative to its start, and what is read for them: the
    /// used parts widened to whole 4 KiB pages (O_DIRECT), merged, in
    /// ascending order. `length` is `want` rounded up to a sector for
    /// O_DIRECT when the buffers have room.
    private func planMapped(windowStart: UInt64, want: Int, length: Int, ranges: [Range<UInt64>]) -> MappedPlan {
        let windowEnd = windowStart + UInt64(want)
        // Ranges are visited in order; a seek backwards (resume) restarts the search.
        if nextRange > 0 && (nextRange >= ranges.count || ranges[nextRange - 1].upperBound > windowStart) { nextRange = 0 }
        while nextRange < ranges.count && ranges[nextRange].upperBound <= windowStart { nextRange += 1 }
        var used: [Range<Int>] = []
        var i = nextRange
        while i < ranges.count && ranges[i].lowerBound < windowEnd {
            used.append(Int(max(ranges[i].lowerBound, windowStart) - windowStart)..<Int(min(ranges[i].upperBound, windowEnd) - windowStart))
            if ranges[i].upperBound > windowEnd { break }
            i += 1
        }
        nextRange = i
        let page: UInt64 = 4096
        var reads: [Range<Int>] = []
        for u in used {
            let lo = Int((windowStart + UInt64(u.lowerBound)) / page * page - windowStart)
            var hi = min(want, Int(((windowStart + UInt64(u.upperBound) + page - 1) / page * page) - windowStart))
            if hi == want { hi = length }
            let r = max(0, lo)..<hi
            if let last = reads.last, r.lowerBound <= last.upperBound {
                reads[reads.count - 1] = last.lowerBound..<max(last.upperBound, r.upperBound)
            } else {
                reads.append(r)
            }
        }
        return MappedPlan(used: used, reads: reads)
    }

    /// Fills a --used request: each of the plan's reads through `read`
    /// (vectors, count, length, offset in the request; returns the bytes
    /// read), then zeros over everything outside the used parts, read or
    /// not. Sets the request's result and byte counts.
    static func executeMapped(_ request: ReadRequest, plan: MappedPlan,
                              read: (UnsafeMutablePointer<iovec>, Int, Int, UInt64) throws -> Int) rethrows {
        let want = request.want
        var end = want
        var readBytes: UInt64 = 0
        for r in plan.reads {
            var iov = slices(request.pieces, from: r.lowerBound, to: r.upperBound)
            let got = try iov.withUnsafeMutableBufferPointer { v in
                try read(v.baseAddress!, v.count, r.count, UInt64(r.lowerBound))
            }
            readBytes += UInt64(min(got, max(0, want - r.lowerBound)))
            if got < r.count {
                // The input ended early (a file shrank): stop there.
                end = min(want, r.lowerBound + got)
                break
            }
        }
        var cursor = 0
        for u in plan.used where u.lowerBound < end {
            if u.lowerBound > cursor { zero(request.pieces, from: cursor, to: u.lowerBound) }
            cursor = max(cursor, u.upperBound)
        }
        if cursor < end { zero(request.pieces, from: cursor, to: end) }
        let readInWindow = plan.reads.reduce(0) { $0 + min($1.upperBound, want) - $1.lowerBound }
        request.result = end
        request.readBytes = readBytes
        request.skippedBytes = UInt64(max(0, end - readInWindow))
    }

    static func zero(_ pieces: [(UnsafeMutableRawPointer, Int)], from: Int, to: Int) {
        for v in Self.slices(pieces, from: from, to: to) { memset(v.iov_base, 0, v.iov_len) }
    }
    // MARK: --noerror

    /// Re-reads `length` bytes (described by `vectors`) at input offset `at`
    /// after a failed request: halves until single sectors; unreadable
    /// sectors become zeros and bad ranges.
    private func recover(vectors: UnsafeMutablePointer<iovec>, count: Int, length: Int, at: UInt64) {
        // Flatten the target into (pointer, length) pieces we can slice freely.
        var pieces: [(UnsafeMutableRawPointer, Int)] = []
        var left = length
        for i in 0..<count where left > 0 {
            let take = min(vectors[i].iov_len, left)
            pieces.append((vectors[i].iov_base!, take))
            left -= take
        }
        foundRanges.removeAll()
        recoverRange(pieces: pieces, from: 0, to: length, at: at, knownBad: true)
        for range in foundRanges { onBadRange?(range) }
        foundRanges.removeAll()
    }

    /// Bad ranges found by the current recovery, merged, reported at its end.
    private var foundRanges: [BadRange] = []

    /// Pointer ranges for bytes [from, to) of the flattened target.
    static func slices(_ pieces: [(UnsafeMutableRawPointer, Int)], from: Int, to: Int) -> [iovec] {
        var result: [iovec] = []
        var base = 0
        for (pointer, len) in pieces {
            let lo = max(from, base), hi = min(to, base + len)
            if lo < hi { result.append(iovec(iov_base: pointer + (lo - base), iov_len: hi - lo)) }
            base += len
            if base >= to { break }
        }
        return result
    }

    private func recoverRange(pieces: [(UnsafeMutableRawPointer, Int)], from: Int, to: Int, at: UInt64, knownBad: Bool) {
        let length = to - from
        guard length > 0 else { return }
        if !knownBad && tryRead(pieces: pieces, from: from, to: to, at: at) { return }
        if length <= sectorSize {
            Self.zero(pieces, from: from, to: to)
            recordBad(offset: skip + at + UInt64(from), length: UInt64(length))
            return
        }
        // Split at a sector boundary (absolute), roughly in the middle.
        let sector = UInt64(sectorSize)
        let absFrom = skip + at + UInt64(from)
        var mid = (absFrom + UInt64(length / 2)) / sector * sector
        if mid <= absFrom { mid = (absFrom / sector + 1) * sector }
        let split = from + Int(mid - absFrom)
        if split >= to {
            // Shorter than a sector after alignment: treat as one sector.
            Self.zero(pieces, from: from, to: to)
            recordBad(offset: absFrom, length: UInt64(length))
            return
        }
        recoverRange(pieces: pieces, from: from, to: split, at: at, knownBad: false)
        recoverRange(pieces: pieces, from: split, to: to, at: at, knownBad: false)
    }

    /// One positioned read of bytes [from, to); true when all of it was read.
    /// A short read (end of device) zero-fills the rest and counts as read.
    private func tryRead(pieces: [(UnsafeMutableRawPointer, Int)], from: Int, to: Int, at: UInt64) -> Bool {
        var iov = Self.slices(pieces, from: from, to: to)
        var done = 0
        var first = 0
        while done < to - from {
            let n = iov.withUnsafeMutableBufferPointer { v in
                preadv(file.fd, v.baseAddress! + first, Int32(v.count - first), off_t(skip + at + UInt64(from + done)))
            }
            if n < 0 {
                let err = lastErrno()
                if err == EINTR || err == EAGAIN { continue }
                if err == EINVAL && file.isDirect { file.disableDirect(); continue }
                return false
            }
            if n == 0 {
                Self.zero(pieces, from: from + done, to: to)
                return true
            }
            done += n
            iov.withUnsafeMutableBufferPointer { v in Self.advance(v.baseAddress!, count: v.count, first: &first, by: n) }
        }
        return true
    }

    private func recordBad(offset: UInt64, length: UInt64) {
        badBytes += length
        Self.merge(BadRange(offset: offset, length: length), into: &badRanges)
        Self.merge(BadRange(offset: offset, length: length), into: &foundRanges)
    }

    private static func merge(_ range: BadRange, into list: inout [BadRange]) {
        if var last = list.last, last.offset + last.length == range.offset {
            last.length += range.length
            list[list.count - 1] = last
        } else {
            list.append(range)
        }
    }
}
