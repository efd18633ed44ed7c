import LZOP
import RescueCore

#if canImport(Glibc)
import Glibc
#endif

/// `ddz -d` / `ddz -t`: decode an lzop stream from `input` (nil or "-": stdin)
/// to `output` (nil or "-": stdout; a regular file gets holes for zero blocks
/// when `sparse`; a block device is written with O_DIRECT where possible).
/// The work is LzopDecoder (Sources/LZOP/Decoder.swift) writing to an
/// ImageWriter (Sources/RescueCore/ImageWriter.swift).
struct DdzDecompressJob {
    var input: String?
    var output: String?
    var testOnly: Bool
    var sparse: Bool
    var threads: Int?
    var progress: Bool
    var force: Bool

    func run() throws {
        if let threads, threads < 1 { throw RescueError.usage("--threads must be 1 or more") }
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
