// The lzop decoder, part 3: the stream (members, blocks) and the pipeline.
//
// Public entry points:
//   LzopDecoder(threads:).decode(from: ByteSource, to: ByteSink?, progress:)
//       streaming, bounded memory; what `ddz -d/-t` and `restore` use.
//   lzopDecodeAll(_: UnsafeRawBufferPointer, into: ByteSink?)
//       the same decoder over bytes in memory, single-threaded (fuzzing, tests).
import CLZO
import RescueCore

#if canImport(Glibc)
import Glibc
#endif

/// What a decode did.
public struct LzopDecodeStats: Sendable, Equatable {
    /// Compressed bytes consumed (including trailing zero padding).
    public var bytesIn: UInt64 = 0
    /// Decompressed bytes produced (written to the sink, or verified with none).
    public var bytesOut: UInt64 = 0
    /// Members (concatenated lzop files) decoded.
    public var members = 0
    /// Data blocks decoded.
    public var blocks = 0
    public init() {}
}

/// Zeros for sinks that are not ZeroRunSink (ImageWriter is one and makes
/// holes instead). Read-only; never given to the buffer pool.
private let decoderZeroChunk: AlignedBuffer = {
    let b = AlignedBuffer(capacity: LzopFormat.blockSize)
    memset(b.pointer, 0, b.capacity)
    return b
}()

func decoderWriteZeros(_ count: Int, to sink: ByteSink) throws {
    if let zeroSink = sink as? ZeroRunSink {
        try zeroSink.writeZeros(UInt64(count))
        return
    }
    var left = count
    while left > 0 {
        let n = min(left, decoderZeroChunk.capacity)
        try sink.write(UnsafeRawBufferPointer(start: decoderZeroChunk.pointer, count: n))
        left -= n
    }
}

private let decoderLZOStatus: Int32 = rb_lzo_init()

/// Decodes an lzop stream: every member, every block, verified as lzop 1.04
/// verifies it (see LzopFormatError for what is rejected), always with
/// lzo1x_decompress_safe. Output goes to `sink` in order; with no sink the
/// data is only verified (`ddz -t`).
///
/// With `threads` > 1 the calling thread parses and reads the input, that
/// many worker threads verify and decompress blocks, and one writer thread
/// writes them to the sink in order. Memory stays bounded: blocks in flight
/// are limited by `memoryBudget` (one block over budget is let through
/// alone), queues are bounded. With 1 thread everything runs on the caller.
///
/// Errors: LzopFormatError for bad data (the first one in stream order; all
/// blocks before it were written), the source's or sink's RescueError for
/// I/O. The sink may have received part of the data when it throws.
public final class LzopDecoder {
    public let threads: Int
    /// Bytes of block buffers that may be in flight (parallel mode).
    public var memoryBudget: Int

    public init(threads: Int = 1, memoryBudget: Int = 24 << 20) {
        // More workers than this cannot help (the writer is one thread) and
        // must not exhaust the process's threads.
        self.threads = min(max(1, threads), 64)
        self.memoryBudget = memoryBudget
    }

    /// `progress(bytesIn, bytesOut)` is called after each block is written
    /// (from the writer thread in parallel mode).
    public func decode(from source: ByteSource, to sink: ByteSink?,
                       progress: ((UInt64, UInt64) -> Void)? = nil) throws -> LzopDecodeStats {
        guard decoderLZOStatus == LZO_E_OK else {
            throw RescueError("liblzo2", "lzo_init", "failed (\(decoderLZOStatus)): library mismatch")
        }
        let pool = DecoderBufferPool(maxFree: max(16, threads * 4))
        let engine: DecoderEngine = threads > 1
            ? DecoderParallelEngine(threads: threads, sink: sink, pool: pool, budget: memoryBudget, progress: progress)
            : DecoderSerialEngine(sink: sink, pool: pool, progress: progress)
        let input = DecoderInput(source)
        var stats = LzopDecodeStats()
        var readerError: Error?
        do {
            try readStream(input, engine: engine, pool: pool, stats: &stats)
        } catch {
            readerError = error
        }
        stats.bytesOut = try engine.finish(readerError: readerError)
        stats.bytesIn = input.offset
        return stats
    }

    private func readStream(_ input: DecoderInput, engine: DecoderEngine, pool: DecoderBufferPool,
                            stats: inout LzopDecodeStats) throws {
        var sequence = 0
        let magicCount = LzopFormat.magic.count
        while true {
            let memberOffset = input.offset
            let got = try input.fill(magicCount)
            let head = Array(input.pending.prefix(magicCount))
            if stats.members == 0 {
                if got == 0 { throw LzopFormatError(.badMagic, at: 0, "not an lzop file (empty input)") }
                if let problem = DecoderHeaderReader.diagnoseMagic(head) {
                    throw LzopFormatError(.badMagic, at: memberOffset, problem)
                }
            } else {
                if got == 0 { return }
                if let problem = DecoderHeaderReader.diagnoseMagic(head) {
                    // lzop: zeros after the last member are padding; anything
                    // else that is not a mangled magic is trailing garbage.
                    if problem.hasPrefix("not an lzop file") {
                        if try input.consumeZerosToEnd() { return }
                        throw LzopFormatError(.trailingGarbage, at: input.offset,
                            "trailing garbage after member \(stats.members) (lzop ignores it with a warning; the stream is damaged or not lzop)")
                    }
                    throw LzopFormatError(.badMagic, at: memberOffset, problem)
                }
            }
            input.consume(magicCount)
            let header = try DecoderHeaderReader.read(input, memberOffset: memberOffset)
            stats.members += 1
            let flags = header.has
            let filter = flags.contains(.filter) ? Int(header.filter) : 0

            while true {
                let blockOffset = input.offset
                let dlen = try input.readBE32("block header")
                if dlen == 0 { break }
                if dlen == 0xFFFF_FFFF {
                    throw LzopFormatError(.splitFile, at: blockOffset, "this is a split lzop file (not supported by lzop either)")
                }
                if dlen > LzopFormat.maxBlockSize {
                    throw LzopFormatError(.blockTooLarge, at: blockOffset,
                        "block claims \(dlen) bytes, more than lzop's limit of 64 MiB: file corrupted")
                }
                let clen = try input.readBE32("block header")
                if clen == 0 || clen > dlen {
                    throw LzopFormatError(.badBlockLength, at: blockOffset,
                        "block has \(clen) compressed bytes for \(dlen) bytes (must be 1 to \(dlen)): file corrupted")
                }
                var dataAdler: UInt32?, dataCRC: UInt32?, compressedAdler: UInt32?, compressedCRC: UInt32?
                if flags.contains(.adler32Data) { dataAdler = try input.readBE32("block header") }
                if flags.contains(.crc32Data) { dataCRC = try input.readBE32("block header") }
                if clen < dlen {
                    if flags.contains(.adler32Compressed) { compressedAdler = try input.readBE32("block header") }
                    if flags.contains(.crc32Compressed) { compressedCRC = try input.readBE32("block header") }
                }
                let cost = DecoderBufferPool.capacity(for: Int(clen))
                    + (clen < dlen ? DecoderBufferPool.capacity(for: Int(dlen)) : 0)
                try engine.acquire(cost: cost)
                let payload = pool.get(Int(clen))
                do {
                    try input.read(into: UnsafeMutableRawBufferPointer(start: payload.pointer, count: Int(clen)), "block data")
                } catch {
                    engine.release(cost: cost)
                    throw error
                }
                let block = DecoderBlock(sequence: sequence, offset: blockOffset, inputEnd: input.offset,
                                         dlen: Int(dlen), clen: Int(clen),
                                         dataAdler: dataAdler, dataCRC: dataCRC,
                                         compressedAdler: compressedAdler, compressedCRC: compressedCRC,
                                         filter: filter, payload: payload, cost: cost)
                try engine.submit(block)
                sequence += 1
                stats.blocks += 1
            }
        }
    }
}

/// Decodes an lzop stream held in memory (all members), single-threaded,
/// writing to `sink` (nil: verify only). The fuzzing entry point: any input
/// must end in a result or a thrown LzopFormatError, never a crash or hang.
@discardableResult
public func lzopDecodeAll(_ data: UnsafeRawBufferPointer, into sink: ByteSink?) throws -> LzopDecodeStats {
    try LzopDecoder(threads: 1).decode(from: LzopMemorySource(data), to: sink)
}

/// A ByteSource over bytes in memory (not copied; keep them alive).
public final class LzopMemorySource: ByteSource {
    private let data: UnsafeRawBufferPointer
    private var position = 0
    public init(_ data: UnsafeRawBufferPointer) { self.data = data }
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = min(buffer.count, data.count - position)
        if n > 0 { memcpy(buffer.baseAddress!, data.baseAddress! + position, n) }
        position += n
        return n
    }
}

// MARK: - Engines

/// Raised inside the reader when the writer side already failed.
private struct DecoderCancelled: Error {}

protocol DecoderEngine: AnyObject {
    /// Waits until `cost` bytes of buffers may be in flight.
    func acquire(cost: Int) throws
    func release(cost: Int)
    func submit(_ block: DecoderBlock) throws
    /// The reader is done; `readerError` happened after every submitted
    /// block. Returns the bytes written or throws the first error in order.
    func finish(readerError: Error?) throws -> UInt64
}

/// Everything on the calling thread, block by block.
final class DecoderSerialEngine: DecoderEngine {
    private let worker: DecoderBlockWorker
    private let sink: ByteSink?
    private let pool: DecoderBufferPool
    private let progress: ((UInt64, UInt64) -> Void)?
    private var written: UInt64 = 0

    init(sink: ByteSink?, pool: DecoderBufferPool, progress: ((UInt64, UInt64) -> Void)?) {
        self.sink = sink
        self.pool = pool
        self.progress = progress
        worker = DecoderBlockWorker(pool: pool)
    }

    func acquire(cost: Int) throws {}
    func release(cost: Int) {}

    func submit(_ block: DecoderBlock) throws {
        let decoded = try worker.decode(block)
        try decoderEmit(decoded, to: sink, pool: pool)
        written += UInt64(decoded.count)
        progress?(block.inputEnd, written)
    }

    func finish(readerError: Error?) throws -> UInt64 {
        if let readerError { throw readerError }
        return written
    }
}

func decoderEmit(_ decoded: DecodedBlock, to sink: ByteSink?, pool: DecoderBufferPool) throws {
    switch decoded {
    case .zeros(let count):
        if let sink { try decoderWriteZeros(count, to: sink) }
    case .data(let buffer, let count):
        defer { pool.put(buffer) }
        if let sink { try sink.write(UnsafeRawBufferPointer(start: buffer.pointer, count: count)) }
    }
}

/// Reader (caller) -> N workers -> writer thread, in order, bounded.
final class DecoderParallelEngine: DecoderEngine, @unchecked Sendable {
    private let monitor = Monitor()
    private let jobs: BlockingQueue<DecoderBlock>
    private var results: [Int: (Result<DecodedBlock, Error>, DecoderBlock?)] = [:]
    private var inFlight = 0
    private var cancelled = false
    private var submitted = 0
    private var readerDone = false
    private var firstError: Error?
    private var written: UInt64 = 0
    private let budget: Int
    private var workers: [WorkerThread] = []
    private var writer: WorkerThread?

    init(threads: Int, sink: ByteSink?, pool: DecoderBufferPool, budget: Int,
         progress: ((UInt64, UInt64) -> Void)?) {
        self.budget = budget
        jobs = BlockingQueue(capacity: threads * 2)
        for _ in 0..<threads {
            workers.append(WorkerThread { [self] in
                let worker = DecoderBlockWorker(pool: pool)
                while let block = jobs.pop() {
                    if monitor.locked({ cancelled }) { continue }
                    let result = Result { try worker.decode(block) }
                    monitor.locked {
                        results[block.sequence] = (result, block)
                        monitor.broadcast()
                    }
                }
            })
        }
        writer = WorkerThread { [self] in
            var next = 0
            while true {
                let item: (Result<DecodedBlock, Error>, DecoderBlock?)? = monitor.locked {
                    while results[next] == nil && !cancelled && !(readerDone && next >= submitted) { monitor.wait() }
                    if cancelled { return nil }
                    return results.removeValue(forKey: next)
                }
                guard let (result, block) = item else { return }
                do {
                    let decoded = try result.get()
                    try decoderEmit(decoded, to: sink, pool: pool)
                    let total: UInt64 = monitor.locked {
                        written += UInt64(decoded.count)
                        inFlight -= block?.cost ?? 0
                        monitor.broadcast()
                        return written
                    }
                    if let block { progress?(block.inputEnd, total) }
                } catch {
                    monitor.locked {
                        if firstError == nil { firstError = error }
                        cancelled = true
                        monitor.broadcast()
                    }
                    return
                }
                next += 1
            }
        }
    }

    func acquire(cost: Int) throws {
        try monitor.locked {
            while !cancelled && inFlight > 0 && inFlight + cost > budget { monitor.wait() }
            if cancelled { throw DecoderCancelled() }
            inFlight += cost
        }
    }

    func release(cost: Int) {
        monitor.locked {
            inFlight -= cost
            monitor.broadcast()
        }
    }

    func submit(_ block: DecoderBlock) throws {
        monitor.locked { submitted += 1 }
        jobs.push(block)
    }

    func finish(readerError: Error?) throws -> UInt64 {
        monitor.locked {
            if let readerError, !(readerError is DecoderCancelled) {
                // Reported only when every block before it was written.
                results[submitted] = (.failure(readerError), nil)
            }
            readerDone = true
            monitor.broadcast()
        }
        jobs.close()
        writer?.join()
        for w in workers { w.join() }
        return try monitor.locked {
            if let firstError { throw firstError }
            return written
        }
    }
}
