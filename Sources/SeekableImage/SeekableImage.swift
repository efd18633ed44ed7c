// An lzop image read at random through its block index: a read decodes
// only the blocks it touches (checksums verified), decoded blocks stay in
// an LRU cache of bounded size, and sequential reading is detected and
// read ahead on worker threads (one per core). Adjacent missing blocks are
// fetched with one source read (one FTP transfer).
import LZOP
import RescueCore

#if canImport(Glibc)
import Glibc
#endif

/// A read that met a corrupt block: EIO for the range, the rest is fine.
public struct CorruptBlockError: Error, CustomStringConvertible {
    public let block: Int
    /// Offset of the block's dlen field in the compressed file.
    public let compressedOffset: UInt64
    /// Offset of the block's first byte in the uncompressed image.
    public let imageOffset: UInt64
    public let reason: String
    public var description: String {
        "block \(block) (compressed offset \(compressedOffset), image bytes \(imageOffset)-): \(reason)"
    }
}

public struct SeekableImageOptions: Sendable {
    /// Bytes of decoded blocks kept (at least a few blocks).
    public var cacheBytes: Int = 256 << 20
    /// Worker threads for read-ahead (decoding on all cores).
    public var threads: Int = WorkerThread.onlineProcessors
    /// Most blocks one source read covers (one FTP transfer: fewer,
    /// longer transfers cost the server and us less per byte), and most
    /// compressed bytes (the run's buffer).
    public var runBlocks: Int = 128
    public var runBytes: UInt64 = 16 << 20
    /// Blocks read ahead of a sequential reader (at most half the cache;
    /// runs are then at most a quarter of that).
    public var readAheadBlocks: Int = 512
    public init() {}
}

public final class SeekableImage: @unchecked Sendable {
    public let source: LzopRandomAccess
    public let index: LzopBlockIndex
    /// How messages name the image.
    public let name: String
    public let options: SeekableImageOptions
    /// Called once per corrupt block with the line to print.
    public var onCorruptBlock: ((String) -> Void)?
    /// Off until a mount has forked into the background: threads do not
    /// survive fork, so none may start before.
    public var readAheadEnabled = true

    public var size: UInt64 { index.uncompressedSize }

    private final class Block {
        let data: AlignedBuffer?   // nil: all zeros
        let count: Int
        init(data: AlignedBuffer?, count: Int) { self.data = data; self.count = count }
    }
    private enum Entry {
        case loading
        case ready(Block)
        case corrupt(CorruptBlockError)
    }

    private let monitor = Monitor()
    private var entries: [Int: Entry] = [:]
    private var lastUse: [Int: UInt64] = [:]
    private var tick: UInt64 = 0
    private let cacheBlocks: Int
    /// The read-ahead window and run length, fitted to the cache.
    private let readAheadBlocks: Int
    private let runBlocks: Int
    private var decoders: [LzopSingleBlockDecoder] = []
    private var previousLast = -2
    private var streak = 0
    private var queue: BlockingQueue<[Int]>?
    private var workers: [WorkerThread] = []
    private var hits = 0
    private var misses = 0
    /// Bytes of each cached block handed out so far (drop-behind).
    private var served: [Int: Int] = [:]
    /// What all-zero blocks (stored without data) read as.
    private let zeroBlock: AlignedBuffer

    public init(source: LzopRandomAccess, index: LzopBlockIndex, name: String, options: SeekableImageOptions = SeekableImageOptions()) {
        self.source = source
        self.index = index
        self.name = name
        self.options = options
        zeroBlock = AlignedBuffer(capacity: max(1, index.blockSize))
        memset(zeroBlock.pointer, 0, zeroBlock.capacity)
        cacheBlocks = max(options.cacheBytes / max(1, index.blockSize), 64)
        readAheadBlocks = min(options.readAheadBlocks, cacheBlocks / 2)
        runBlocks = max(1, min(options.runBlocks, max(4, readAheadBlocks) / 4))
    }

    deinit { stop() }

    /// Ends the read-ahead threads.
    public func stop() {
        let (q, w): (BlockingQueue<[Int]>?, [WorkerThread]) = monitor.locked {
            defer { queue = nil; workers = [] }
            return (queue, workers)
        }
        q?.close()
        for t in w { t.join() }
    }

    /// Cache hits and misses (blocks), for -v and benchmarks.
    public var statistics: (hits: Int, misses: Int) { monitor.locked { (hits, misses) } }

    /// Copies up to `count` bytes from `offset` to `destination`; returns
    /// fewer only at the end of the image (0 at or past it). Throws
    /// CorruptBlockError when a block in the range is corrupt, or the
    /// source's error.
    public func read(at offset: UInt64, count: Int, into destination: UnsafeMutableRawPointer) throws -> Int {
        try withSlices(at: offset, count: count) { slices in
            var done = 0
            for slice in slices {
                memcpy(destination + done, slice.baseAddress!, slice.count)
                done += slice.count
            }
            return done
        }
    }

    /// Calls `body` with the bytes from `offset` (up to `count`, fewer only
    /// at the end of the image) as pieces of the cached blocks, valid only
    /// during the call: a reader can hand them on without copying them
    /// first (the FUSE reply). Throws as `read`.
    public func withSlices<R>(at offset: UInt64, count: Int, _ body: ([UnsafeRawBufferPointer]) throws -> R) throws -> R {
        guard offset < size, count > 0 else { return try body([]) }
        let end = min(offset + UInt64(count), size)
        let bs = UInt64(index.blockSize)
        let first = Int(offset / bs), last = Int((end - 1) / bs)
        let blocks = try obtain(first...last)
        readAhead(after: first...last)
        var slices: [UnsafeRawBufferPointer] = []
        slices.reserveCapacity(blocks.count)
        var position = offset
        for (i, block) in zip(first...last, blocks) {
            let blockStart = UInt64(i) * bs
            let from = Int(position - blockStart)
            let n = Int(min(end, blockStart + UInt64(block.count)) - position)
            let bytes = block.data?.pointer ?? zeroBlock.pointer
            slices.append(UnsafeRawBufferPointer(start: bytes + (block.data == nil ? 0 : from), count: n))
            position += UInt64(n)
        }
        defer { dropBehind(first...last, from: offset, to: end) }
        // The blocks (and so their bytes) stay alive until body returns,
        // even when the cache drops them meanwhile.
        return try withExtendedLifetime(blocks) { try body(slices) }
    }

    /// Drop-behind: a block whose every byte has been handed out (a
    /// sequential reader went past it) leaves the cache at once. A long
    /// sequential read then neither pushes out the blocks random readers
    /// use nor decodes into cold memory; a read of a dropped block decodes
    /// it again (with `mount --page-cache` the kernel keeps what was read
    /// for re-reads).
    private func dropBehind(_ range: ClosedRange<Int>, from offset: UInt64, to end: UInt64) {
        let bs = UInt64(index.blockSize)
        monitor.locked {
            for b in range {
                let start = UInt64(b) * bs, stop = min(start + bs, size)
                let total = served[b, default: 0] + Int(min(end, stop) - max(offset, start))
                guard total >= Int(stop - start) else { served[b] = total; continue }
                served[b] = nil
                if case .ready = entries[b] {
                    entries[b] = nil
                    lastUse[b] = nil
                }
            }
        }
    }

    /// The decoded blocks of `range`, fetching the missing ones on this
    /// thread and waiting for those another thread is fetching.
    private func obtain(_ range: ClosedRange<Int>) throws -> [Block] {
        while true {
            var mine: [Int] = []
            let result: [Block]? = try monitor.locked {
                var pending = false
                var found: [Block] = []
                for b in range {
                    switch entries[b] {
                    case nil:
                        entries[b] = .loading
                        mine.append(b)
                        misses += 1
                    case .loading:
                        pending = true
                    case .ready(let block):
                        found.append(block)
                        tick += 1
                        lastUse[b] = tick
                    case .corrupt(let error):
                        if mine.isEmpty { throw error }
                    }
                }
                if mine.isEmpty && !pending {
                    hits += found.count
                    return found
                }
                if mine.isEmpty { monitor.wait() }
                return nil
            }
            if let result { return result }
            if !mine.isEmpty { try fetch(mine) }
        }
    }

    /// `blocks` (ascending) as runs of adjacent blocks, each at most
    /// runBlocks blocks and (past its first block) runBytes compressed bytes.
    private func runs(of blocks: [Int]) -> [[Int]] {
        var runs: [[Int]] = []
        var run: [Int] = []
        for b in blocks {
            if let first = run.first, let last = run.last,
               last + 1 != b || run.count >= runBlocks
                || index.blockOffsets[b] + index.compressedLength(b) - index.blockOffsets[first] > options.runBytes {
                runs.append(run)
                run = []
            }
            run.append(b)
        }
        if !run.isEmpty { runs.append(run) }
        return runs
    }

    /// Fetches and decodes `blocks` (ascending), in runs of adjacent blocks.
    private func fetch(_ blocks: [Int]) throws {
        var firstError: Error?
        for run in runs(of: blocks) {
            do { try fetchRun(run) } catch { if firstError == nil { firstError = error } }
        }
        if let firstError { throw firstError }
    }

    private func fetchRun(_ run: [Int]) throws {
        let start = index.blockOffsets[run[0]]
        let last = run[run.count - 1]
        let end = index.blockOffsets[last] + index.compressedLength(last)
        let raw = AlignedBuffer(capacity: Int(end - start))
        do {
            let got = try source.read(at: start, into: UnsafeMutableRawBufferPointer(start: raw.pointer, count: raw.capacity))
            if got < raw.capacity {
                throw RescueError(name, "read at \(start + UInt64(got))", "the compressed file ends before the index's last block")
            }
        } catch {
            monitor.locked {
                for b in run { entries[b] = nil }
                monitor.broadcast()
            }
            throw error
        }
        let decoder = try takeDecoder()
        defer { monitor.locked { decoders.append(decoder) } }
        // Each block is published as soon as it is decoded: a reader
        // waiting for the first block of a run does not wait for the rest.
        for b in run {
            let at = index.blockOffsets[b]
            let slice = UnsafeRawBufferPointer(start: raw.pointer + Int(at - start), count: Int(index.compressedLength(b)))
            let entry: Entry
            do {
                let r = try decoder.decode(slice, offset: at)
                guard r.count <= index.blockSize else {
                    throw LzopFormatError(.badBlockLength, at: at, "block holds \(r.count) bytes, more than the index's block size \(index.blockSize)")
                }
                entry = .ready(Block(data: r.data, count: r.count))
            } catch {
                let reason = (error as? LzopFormatError)?.message ?? "\(error)"
                let e = CorruptBlockError(block: b, compressedOffset: at, imageOffset: UInt64(b) * UInt64(index.blockSize), reason: reason)
                entry = .corrupt(e)
                onCorruptBlock?("\(name): block \(b) at compressed offset \(at) (image offset \(e.imageOffset), \(index.blockSize) bytes): \(reason); reads of that range fail with EIO")
            }
            monitor.locked {
                entries[b] = entry
                tick += 1
                lastUse[b] = tick
                if b == last { evict() }
                monitor.broadcast()
            }
        }
    }

    /// Drops the least recently used decoded blocks above the bound.
    private func evict() {
        let over = lastUse.count - cacheBlocks
        guard over > 0 else { return }
        let victims = lastUse.sorted { $0.value < $1.value }.prefix(over + cacheBlocks / 8)
        for (b, _) in victims {
            served[b] = nil
            if case .ready = entries[b] {
                entries[b] = nil
                lastUse[b] = nil
            } else if case .corrupt = entries[b] {
                lastUse[b] = nil   // stays known as corrupt
            }
        }
    }

    private func takeDecoder() throws -> LzopSingleBlockDecoder {
        if let d = monitor.locked({ decoders.popLast() }) { return d }
        return try LzopSingleBlockDecoder(layout: index.layout)
    }

    /// After a read of `range`: when the reads go forward block after
    /// block, queue the next blocks for the workers.
    private func readAhead(after range: ClosedRange<Int>) {
        guard readAheadBlocks > 0, readAheadEnabled else { return }
        var wanted: [Int] = []
        let q: BlockingQueue<[Int]>? = monitor.locked {
            let sequential = range.lowerBound == previousLast || range.lowerBound == previousLast + 1
            // streak: blocks read one after another so far.
            streak = sequential ? streak + (range.upperBound - previousLast) : 0
            previousLast = range.upperBound
            guard streak >= 2 else { return nil }
            // The window grows with the streak; new blocks are queued only
            // when less than half of it is left, in whole runs, so each
            // transfer covers many blocks.
            let window = min(readAheadBlocks, max(4, streak / 2))
            let limit = min(index.blockCount - 1, range.upperBound + window)
            var next = range.upperBound + 1
            while next <= limit && entries[next] != nil { next += 1 }
            guard next <= limit, next - range.upperBound <= window / 2 else { return nil }
            for b in next...limit where entries[b] == nil {
                entries[b] = .loading
                wanted.append(b)
            }
            guard !wanted.isEmpty else { return nil }
            if queue == nil { startWorkers() }
            return queue
        }
        guard let q else { return }
        for run in runs(of: wanted) { q.push(run) }
    }

    /// Called with the monitor held.
    private func startWorkers() {
        let q = BlockingQueue<[Int]>(capacity: 1 << 16)
        queue = q
        for _ in 0..<max(1, options.threads) {
            workers.append(WorkerThread { [unowned self] in
                while let run = q.pop() {
                    try? self.fetchRun(run)
                }
            })
        }
    }
}
