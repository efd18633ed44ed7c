import RescueCore
#if canImport(Glibc)
import Glibc
#endif

/// Compresses a `DiskReader`'s input into an lzop member on all cores.
///
/// The pipeline: one reader thread fills page-aligned 256 KiB block buffers
/// with large requests (`reader.requestSize`, one scatter read per request,
/// two in flight on devices and files: `DiskReader.submit`/`collect`);
/// `threads` worker threads compress blocks, each with its own LZO work
/// memory; the calling thread writes the frames strictly in block order.
/// Every queue is bounded and the block buffers come from a fixed pool, so
/// memory stays the same however large the input (about 0.6 MiB per pool
/// slot; the pool holds 2 x threads + (depth + 1) x blocks-per-request + 2
/// slots, depth being the requests in flight).
///
/// All-zero 256 KiB blocks (unused disk space) take a fast path: their frame
/// is computed once per run and reused, so they cost one scan.
///
/// The output is deterministic and, after the header, byte-identical to
/// `lzop` at the same level and checksum options: blocks are independent,
/// compressed with lzop's functions and parameters, and written in order.
///
/// For `rescuebox backup`: omit the header and start at block K to resume
/// an interrupted upload (`header = nil`, `firstBlock = K`, `outputOffset` =
/// bytes already stored); `onBlock` maps every block to its place in the
/// output; `onProgress` reports input and output byte counts.
public final class ParallelCompressor {
    /// Where one block went, reported in block order after the block's bytes
    /// were handed to the sink.
    public struct BlockRecord: Sendable, Equatable {
        /// Block number; its input starts at `index * LzopFormat.blockSize`.
        public var index: UInt64
        /// Input offset (from the reader's input offset 0) of the block.
        public var inputOffset: UInt64
        /// Uncompressed length (256 KiB except for the last block).
        public var inputLength: Int
        /// Offset in the output stream of the block's frame (dlen field),
        /// counted from the start of the whole stream (`outputOffset` base).
        public var outputOffset: UInt64
        /// Length of the frame: dlen, clen, checksums and data.
        public var outputLength: Int
    }

    /// What a run did.
    public struct Summary: Sendable, Equatable {
        /// Uncompressed bytes compressed in this run.
        public var inputBytes: UInt64 = 0
        /// Bytes written to the sink in this run (header, frames, end marker).
        public var outputBytes: UInt64 = 0
        public var blocks: UInt64 = 0
        /// Blocks that took the all-zero fast path.
        public var zeroBlocks: UInt64 = 0
        /// Blocks stored raw because they did not shrink.
        public var storedBlocks: UInt64 = 0
    }

    public let options: LzopCompressionOptions
    /// Worker threads (at least 1); default: online CPUs.
    public var threads: Int
    /// The member header to write first; nil writes none (resume).
    public var header: LzopEncoderHeader?
    /// The first block to compress: the reader is moved to input offset
    /// `firstBlock * LzopFormat.blockSize` if it is not there yet.
    public var firstBlock: UInt64 = 0
    /// Bytes already in the output before this run (for `BlockRecord.outputOffset`).
    public var outputOffset: UInt64 = 0
    /// Write the end-of-member marker (four zero bytes) after the last block.
    public var writeEndMarker = true
    /// Pool size override (tests); default 2 x threads + 2 x blocks per
    /// request + 2, never less than blocks per request + 1.
    public var poolSlots: Int?

    public init(options: LzopCompressionOptions, threads: Int = WorkerThread.onlineProcessors,
                header: LzopEncoderHeader?) {
        self.options = options
        self.threads = max(1, threads)
        self.header = header
    }

    /// Reads `reader` to its end and writes header, blocks and end marker,
    /// in order, to `sink`. Throws the first error of any stage (read, the
    /// sink, a callback) after stopping every thread; nothing is written
    /// after a failure.
    @discardableResult
    public func run(reader: DiskReader, sink: ByteSink,
                    onBlock: ((BlockRecord) throws -> Void)? = nil,
                    onProgress: ((_ inputBytes: UInt64, _ outputBytes: UInt64) -> Void)? = nil) throws -> Summary {
        let blockSize = LzopFormat.blockSize
        var startOffset = firstBlock * UInt64(blockSize)
        // Resuming after the (short) last block: only the end marker is left.
        if let total = reader.totalSize, startOffset > total, startOffset - total < UInt64(blockSize) {
            startOffset = total
        }
        if reader.position != startOffset { try reader.seek(to: startOffset) }

        let blocksPerRequest = max(1, (reader.requestSize + blockSize - 1) / blockSize)
        let depth = Self.readDepth(reader: reader, blockSize: blockSize)
        // The reader holds the slots of `depth` requests in flight (one
        // request may also span a partly filled block) until they return:
        // fewer slots than that would deadlock.
        let held = depth * blocksPerRequest + 1
        let slotCount = max(held, poolSlots ?? (2 * threads + held + blocksPerRequest + 1))
        let pool = BlockingQueue<CompressSlot>(capacity: slotCount)
        let work = BlockingQueue<CompressSlot>(capacity: slotCount)
        var slots: [CompressSlot] = []
        for _ in 0..<slotCount {
            let slot = CompressSlot(blockSize: blockSize)
            slots.append(slot)
            pool.push(slot)
        }
        let state = PipelineState(capacity: slotCount, pool: pool, work: work)
        let zeroFrame = ZeroFrame(options: options, blockSize: blockSize)

        let writer = StagedWriter(sink: sink, base: outputOffset, onBlock: onBlock)
        var summary = Summary()

        // Header first, so even a failing read leaves a recognisable member.
        if let header {
            let bytes = header.bytes()
            try bytes.withUnsafeBytes { try writer.emit($0.baseAddress!, $0.count) }
        }

        let readerThread = WorkerThread { [firstBlock] in
            Self.readLoop(reader: reader, depth: depth, pool: pool, work: work, state: state,
                          blockSize: blockSize, firstIndex: firstBlock)
        }
        var workers: [WorkerThread] = []
        for _ in 0..<threads {
            let options = self.options
            workers.append(WorkerThread {
                Self.workLoop(options: options, work: work, state: state, zeroFrame: zeroFrame, blockSize: blockSize)
            })
        }

        func stop(_ error: Error) -> Error {
            state.fail(error)
            for w in workers { w.join() }
            // A reader stuck in a pipe read cannot be woken; it exits by
            // itself once its read returns (the queues are closed).
            if reader.isSeekable { readerThread.join() }
            return error
        }

        var next = firstBlock
        var inputBytes: UInt64 = 0
        do {
            while let slot = try state.waitFor(next) {
                let frame = slot.frame
                let inputLength = slot.length
                try writer.emitBlock(index: next, inputOffset: next * UInt64(blockSize), inputLength: inputLength,
                                     frame: frame, count: slot.frameCount)
                summary.blocks += 1
                if slot.isZero { summary.zeroBlocks += 1 }
                if slot.stored { summary.storedBlocks += 1 }
                inputBytes += UInt64(inputLength)
                pool.push(slot)
                next += 1
                onProgress?(inputBytes, writer.position - outputOffset)
            }
            if writeEndMarker {
                var zero: UInt32 = 0
                try withUnsafeBytes(of: &zero) { try writer.emit($0.baseAddress!, 4) }
            }
            try writer.flush()
        } catch {
            throw stop(error)
        }
        readerThread.join()
        for w in workers { w.join() }
        summary.inputBytes = inputBytes
        summary.outputBytes = writer.position - outputOffset
        onProgress?(inputBytes, summary.outputBytes)
        withExtendedLifetime(slots) {}
        return summary
    }

    // MARK: reader thread

    /// Requests the reader keeps in flight: its read-ahead depth when every
    /// request fills whole blocks (--bs a multiple of 256 KiB, at most
    /// 16 MiB), else one at a time.
    static func readDepth(reader: DiskReader, blockSize: Int) -> Int {
        reader.requestSize % blockSize == 0 && reader.requestSize <= 16 << 20 ? reader.readAheadDepth : 1
    }

    private static func readLoop(reader: DiskReader, depth: Int, pool: BlockingQueue<CompressSlot>, work: BlockingQueue<CompressSlot>,
                                 state: PipelineState, blockSize: Int, firstIndex: UInt64) {
        var index = firstIndex
        var filling: CompressSlot? = nil   // a block partly filled by earlier requests (--bs < 256K)
        // Requests queued with the reader, oldest first: their slots and buffers.
        var queued: [(parts: [CompressSlot], buffers: [UnsafeMutableRawBufferPointer])] = []
        let requested = reader.requestSize
        defer { reader.endReadAhead() }
        do {
            reading: while !state.isFailed {
                // Keep `depth` requests in flight. A partly filled block
                // (only with depth 1) is completed by the next request.
                while queued.count < depth {
                    var parts: [CompressSlot] = []
                    var buffers: [UnsafeMutableRawBufferPointer] = []
                    var need = requested
                    if let f = filling {
                        let take = min(need, blockSize - f.length)
                        parts.append(f)
                        buffers.append(UnsafeMutableRawBufferPointer(start: f.input + f.length, count: take))
                        need -= take
                        filling = nil
                    }
                    while need > 0 {
                        guard let s = pool.pop() else { break reading }
                        s.length = 0
                        let take = min(need, blockSize)
                        parts.append(s)
                        buffers.append(UnsafeMutableRawBufferPointer(start: s.input, count: take))
                        need -= take
                    }
                    reader.submit(buffers)
                    queued.append((parts, buffers))
                }
                let (parts, buffers) = queued.removeFirst()
                var got = try reader.collect()
                let atEnd = got < requested
                for (i, s) in parts.enumerated() {
                    let n = min(got, buffers[i].count)
                    got -= n
                    s.length += n
                    if s.length == blockSize || (atEnd && s.length > 0) {
                        s.index = index
                        index += 1
                        if !work.push(s) { break reading }
                    } else if s.length > 0 {
                        filling = s
                    } else {
                        pool.push(s)
                    }
                }
                if atEnd { break }
            }
            reader.endReadAhead()
            // Slots of requests dropped after the end go back to the pool.
            for q in queued { for s in q.parts where s !== filling { pool.push(s) } }
            state.finish(endIndex: index)
        } catch {
            // Whatever the reader throws is the source's failure, not the sink's.
            state.fail((error as? RescueError)?.with(kind: .source) ?? error)
        }
        work.close()
    }

    // MARK: worker threads

    private static func workLoop(options: LzopCompressionOptions, work: BlockingQueue<CompressSlot>,
                                 state: PipelineState, zeroFrame: ZeroFrame, blockSize: Int) {
        let compressor = LzopBlockCompressor(options: options)
        while let slot = work.pop() {
            if state.isFailed { continue }
            if slot.length == blockSize && isAllZero(UnsafeRawBufferPointer(start: slot.input, count: blockSize)) {
                slot.frame = UnsafeRawPointer(zeroFrame.pointer)
                slot.frameCount = zeroFrame.count
                slot.isZero = true
                slot.stored = false
            } else {
                let f = compressor.compress(input: slot.input, length: slot.length, output: slot.output)
                slot.frame = f.start
                slot.frameCount = f.count
                slot.isZero = false
                slot.stored = f.stored
            }
            state.complete(slot)
        }
    }
}

/// One block's buffers: the input (page-aligned for O_DIRECT, with room in
/// front for a stored block's frame header) and the compressor's output.
final class CompressSlot: @unchecked Sendable {
    private let inputAllocation: UnsafeMutableRawPointer
    let input: UnsafeMutableRawPointer
    let output: UnsafeMutableRawPointer
    var index: UInt64 = 0
    var length = 0
    var frame = UnsafeRawPointer(bitPattern: 1)!
    var frameCount = 0
    var isZero = false
    var stored = false

    init(blockSize: Int) {
        let page = AlignedBuffer.pageSize
        inputAllocation = Self.allocate(page + blockSize)
        input = inputAllocation + page
        output = Self.allocate(LzopBlockCompressor.frameHeaderRoom + LzopBlockCompressor.maxCompressedSize(blockSize))
    }

    deinit {
        free(inputAllocation)
        free(output)
    }

    static func allocate(_ size: Int) -> UnsafeMutableRawPointer {
        var raw: UnsafeMutableRawPointer?
        guard posix_memalign(&raw, AlignedBuffer.pageSize, size) == 0, let raw else {
            fatalError("out of memory allocating \(size) bytes")
        }
        return raw
    }
}

/// The frame of an all-zero full block, computed once per run.
final class ZeroFrame: @unchecked Sendable {
    let pointer: UnsafeMutableRawPointer
    let count: Int

    init(options: LzopCompressionOptions, blockSize: Int) {
        let slot = CompressSlot(blockSize: blockSize)
        memset(slot.input, 0, blockSize)
        let frame = LzopBlockCompressor(options: options).compress(input: slot.input, length: blockSize, output: slot.output)
        count = frame.count
        pointer = CompressSlot.allocate(frame.count)
        memcpy(pointer, frame.start, frame.count)
    }

    deinit { free(pointer) }
}

/// Completed blocks waiting for the writer, the end index, and the first failure.
final class PipelineState: @unchecked Sendable {
    private let monitor = Monitor()
    private var done: [CompressSlot?]
    private var endIndex: UInt64?
    private var failure: Error?
    private var failedFlag = false
    private let pool: BlockingQueue<CompressSlot>
    private let work: BlockingQueue<CompressSlot>

    init(capacity: Int, pool: BlockingQueue<CompressSlot>, work: BlockingQueue<CompressSlot>) {
        done = Array(repeating: nil, count: capacity)
        self.pool = pool
        self.work = work
    }

    var isFailed: Bool { monitor.locked { failedFlag } }

    func complete(_ slot: CompressSlot) {
        monitor.locked {
            done[Int(slot.index % UInt64(done.count))] = slot
            monitor.broadcast()
        }
    }

    func finish(endIndex: UInt64) {
        monitor.locked {
            self.endIndex = endIndex
            monitor.broadcast()
        }
    }

    /// The first error wins; every thread is woken and the queues closed.
    func fail(_ error: Error) {
        monitor.locked {
            if failure == nil { failure = error }
            failedFlag = true
            monitor.broadcast()
        }
        pool.close()
        work.close()
    }

    /// Blocks until block `index` is compressed (returns it), the input ended
    /// before it (nil), or a stage failed (throws that error).
    func waitFor(_ index: UInt64) throws -> CompressSlot? {
        try monitor.locked {
            let i = Int(index % UInt64(done.count))
            while true {
                if let failure { throw failure }
                if let slot = done[i], slot.index == index {
                    done[i] = nil
                    return slot
                }
                if let endIndex, index >= endIndex { return nil }
                monitor.wait()
            }
        }
    }
}

/// Hands bytes to the sink: small pieces (zero-block frames, headers,
/// well-compressed blocks) are gathered into one buffer, large frames go out
/// directly — fewer system calls without copying big blocks. Block records
/// are reported once their bytes have reached the sink.
final class StagedWriter {
    private let sink: ByteSink
    private let buffer: UnsafeMutableRawPointer
    private let capacity = 512 * 1024
    private let directThreshold = 64 * 1024
    private var used = 0
    /// Output offset of the next byte emitted (staged or not).
    private(set) var position: UInt64
    private var flushed: UInt64
    private let onBlock: ((ParallelCompressor.BlockRecord) throws -> Void)?
    private let pending: UnsafeMutablePointer<ParallelCompressor.BlockRecord>
    private let pendingCapacity = 1024
    private var pendingCount = 0

    init(sink: ByteSink, base: UInt64, onBlock: ((ParallelCompressor.BlockRecord) throws -> Void)?) {
        self.sink = sink
        position = base
        flushed = base
        self.onBlock = onBlock
        buffer = CompressSlot.allocate(capacity)
        pending = .allocate(capacity: pendingCapacity)
    }

    deinit {
        free(buffer)
        pending.deallocate()
    }

    func emit(_ pointer: UnsafeRawPointer, _ count: Int) throws {
        if count >= directThreshold {
            try flush()
            try sink.write(UnsafeRawBufferPointer(start: pointer, count: count))
            position += UInt64(count)
            flushed = position
        } else {
            if used + count > capacity { try flush() }
            memcpy(buffer + used, pointer, count)
            used += count
            position += UInt64(count)
        }
    }

    func emitBlock(index: UInt64, inputOffset: UInt64, inputLength: Int, frame: UnsafeRawPointer, count: Int) throws {
        let record = ParallelCompressor.BlockRecord(index: index, inputOffset: inputOffset, inputLength: inputLength,
                                                    outputOffset: position, outputLength: count)
        try emit(frame, count)
        guard let onBlock else { return }
        if flushed == position {
            try reportPending()
            try onBlock(record)
        } else {
            if pendingCount == pendingCapacity { try flush() }
            if flushed == position {
                try onBlock(record)
            } else {
                pending[pendingCount] = record
                pendingCount += 1
            }
        }
    }

    func flush() throws {
        if used > 0 {
            try sink.write(UnsafeRawBufferPointer(start: buffer, count: used))
            used = 0
            flushed = position
        }
        try reportPending()
    }

    private func reportPending() throws {
        guard pendingCount > 0, let onBlock else { return }
        let n = pendingCount
        pendingCount = 0
        for i in 0..<n { try onBlock(pending[i]) }
    }
}
