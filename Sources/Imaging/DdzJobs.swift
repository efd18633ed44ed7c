#if canImport(Glibc)
import Glibc
#endif
import DiskLayout
import LZOP
import RescueCore

// The ddz jobs, beside backup's and restore's.

/// `ddz` compression: input -> DiskReader -> ParallelCompressor -> stdout or -o FILE.
public struct DdzCompressJob {
    public var input: String?
    public var output: String?
    public var options: LzopCompressionOptions
    public var threads: Int
    public var requestSize: Int
    public var skip: UInt64
    public var count: UInt64?
    public var direct: Bool
    public var noError: Bool
    public var badMap: String?
    public var progress: Bool
    public var force: Bool
    public var used = false
    public var usedMap: String? = nil

    public init(input: String?, output: String?, options: LzopCompressionOptions, threads: Int, requestSize: Int,
                skip: UInt64, count: UInt64?, direct: Bool, noError: Bool, badMap: String?, progress: Bool, force: Bool,
                used: Bool = false, usedMap: String? = nil) {
        self.input = input; self.output = output; self.options = options; self.threads = threads
        self.requestSize = requestSize; self.skip = skip; self.count = count; self.direct = direct
        self.noError = noError; self.badMap = badMap; self.progress = progress; self.force = force
        self.used = used; self.usedMap = usedMap
    }

    /// Compresses; prints the summary. Returns the unreadable bytes that
    /// --noerror wrote as zeros (the applet exits 1 when there were any).
    public func run() throws -> UInt64 {
        if input == nil && isTerminal(0) {
            throw RescueError.usage("no input: name a device or file, or pipe data into stdin")
        }
        if output == nil && isTerminal(1) && !force {
            throw RescueError("stdout", "write", "compressed data not written to a terminal (use -o FILE, a pipe, or -f)")
        }
        if let input, input != "-" { try MountTable.refuseMountedReadWrite(input, force: force) }
        let reader = try DiskReader.open(input, skip: skip, count: count, requestSize: requestSize, direct: direct)
        reader.noError = noError
        if used, let input {
            let map = try prepareUsedRead(reader, path: input)
            if let usedMap { try writeUsedMap(map, to: usedMap) }
        }
        if noError && !reader.isSeekable {
            printError("\(reader.name): --noerror needs a device or file; read errors on a pipe stop the job")
        }
        if reader.isDirect {
            printVerbose("\(reader.name): reading with O_DIRECT in \(formatBytes(UInt64(requestSize), binary: true)) requests")
        }

        let out = try output.map { try OutputFile($0, force: force, input: reader.isStandardInput ? nil : reader.status) }
        // A regular file gets its block index beside it (FILE.index).
        var sink: ByteSink = OpenFile.standardOutput
        if let out { sink = out.isRegular ? LzopStreamIndexer(passingTo: out.file) : out.file }
        let header = LzopEncoderHeader.forInput(options: options, path: reader.isStandardInput ? nil : input,
                                                status: reader.status, toStdout: output == nil)
        let compressor = ParallelCompressor(options: options, threads: threads, header: header)

        let meter = ProgressMeter(label: "ddz", total: reader.totalSize, forced: progress)
        reader.reportBadRanges(meter: meter)
        let stopwatch = Stopwatch()
        let summary: ParallelCompressor.Summary
        do {
            summary = try compressor.run(reader: reader, sink: sink, onProgress: { inBytes, outBytes in
                meter.update(processed: inBytes, written: outBytes)
            })
            if let out { try out.file.close() }
            // The index before the output counts as done: a failure removes both.
            if let indexer = sink as? LzopStreamIndexer, let output {
                try writeLzopIndexFile(try indexer.finish(), to: output + ".index")
            }
        } catch {
            meter.finish()
            out?.discard()
            throw error
        }
        out?.keep()
        let seconds = stopwatch.elapsed
        meter.finish()
        var line = summaryLine(bytes: summary.inputBytes, seconds: seconds, verb: "read")
        line += "; \(summary.outputBytes) bytes (\(formatBytes(summary.outputBytes))) written"
        line += ", ratio \(formatRatio(input: summary.inputBytes, output: summary.outputBytes))"
        printStderr(line)
        if used { printStderr(usedSummaryLine(reader)) }
        printVerbose("\(summary.blocks) blocks: \(summary.zeroBlocks) all-zero, \(summary.storedBlocks) stored raw; "
                     + "\(threads) worker threads, O_DIRECT \(reader.isDirect ? "on" : "off")")
        if let badMap {
            let map = ddrescueMapfile(start: reader.skip, length: summary.inputBytes, bad: reader.badRanges,
                                      commandLine: processArguments().joined(separator: " "))
            let file = try OpenFile.open(badMap, .writeOnly, options: [.create, .truncate], permissions: [.ownerReadWrite])
            try file.writeAll(Array(map.utf8))
            try file.close()
        }
        if reader.badBytes > 0 {
            printError("\(reader.name): \(reader.badBytes) unreadable bytes in \(reader.badRanges.count) ranges written as zeros")
        }
        return reader.badBytes
    }
}

/// `ddz -d` / `ddz -t`: decode an lzop stream from `input` (nil or "-": stdin)
/// to `output` (nil or "-": stdout; a regular file gets holes for zero blocks
/// when `sparse`; a block device is written with O_DIRECT where possible).
/// The work is LzopDecoder (Sources/LZOP/Decoder.swift) writing to an
/// ImageWriter (Sources/RescueCore/ImageWriter.swift).
public struct DdzDecompressJob {
    public var input: String?
    public var output: String?
    public var testOnly: Bool
    public var sparse: Bool
    public var threads: Int?
    public var progress: Bool
    public var force: Bool

    public init(input: String?, output: String?, testOnly: Bool, sparse: Bool, threads: Int?, progress: Bool, force: Bool) {
        self.input = input; self.output = output; self.testOnly = testOnly; self.sparse = sparse
        self.threads = threads; self.progress = progress; self.force = force
    }

    public func run() throws {
        if testOnly, let output, output != "-" {
            throw RescueError.usage("-t only tests and writes nothing; drop -o \(output)")
        }
        let fromStdin = input == nil || input == "-"
        let inputName = fromStdin ? "stdin" : input!
        let source: OpenFile
        if fromStdin {
            if isTerminal(0) && !force {
                throw RescueError("stdin", "read", "refusing to read compressed data from a terminal (give a file or a pipe)")
            }
            source = .standardInput
        } else {
            source = try OpenFile.open(inputName)
            if try source.kind() == .directory { throw RescueError(inputName, "open", "is a directory") }
        }

        var writer: ImageWriter? = nil
        if !testOnly {
            if let output, output != "-" { try refuseSameFile(source, output) }
            writer = try ImageWriter.open(output, sparse: sparse, force: force, allowTerminal: force)
        }

        let total = try? source.size()
        let meter = ProgressMeter(label: testOnly ? "ddz -t \(inputName)" : "ddz -d \(inputName)",
                                  total: total ?? nil, forced: progress)
        let decoder = LzopDecoder(threads: threads ?? WorkerThread.onlineProcessors)
        let clock = Stopwatch()
        let stats: LzopDecodeStats
        do {
            stats = try decoder.decode(from: source, to: writer) { bytesIn, _ in
                meter.update(processed: bytesIn)
            }
            try writer?.finish()
        } catch let error as LzopFormatError {
            meter.finish()
            writer?.abandon()
            throw error.rescueError(object: inputName)
        } catch {
            meter.finish()
            writer?.abandon()
            throw error
        }
        meter.finish()
        let seconds = clock.elapsed
        let members = stats.members == 1 ? "1 member" : "\(stats.members) members"
        printStderr(summaryLine(bytes: stats.bytesOut, seconds: seconds, verb: testOnly ? "verified" : "decompressed")
            + " (from \(stats.bytesIn) bytes, \(members), \(stats.blocks) blocks, ratio "
            + formatRatio(input: stats.bytesOut, output: stats.bytesIn) + ")")
        if testOnly { printStderr("\(inputName): OK") }
    }

    /// `ddz -d -f -o x.lzo x.lzo` would truncate its own input.
    private func refuseSameFile(_ source: OpenFile, _ output: String) throws {
        var st = stat()
        guard stat(output, &st) == 0, let input = try? source.status() else { return }
        if st.st_dev == input.st_dev && st.st_ino == input.st_ino {
            throw RescueError(output, "open", "is the input file; refusing to overwrite it")
        }
    }
}
