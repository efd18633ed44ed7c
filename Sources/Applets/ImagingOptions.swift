import ArgumentParser
import RescueCore

/// How an imaging applet reads its source and reports: ddz and backup share
/// these options, their help and their checks.
public struct ImagingOptions<Wording: VerboseWording>: ParsableArguments {
    @Option(name: [.customShort("T"), .customLong("threads")], help: "Worker threads (default: online CPUs).")
    public var threads: Int?

    @Option(name: .customLong("bs"), help: ArgumentHelp("Read request size (multiple of 4K, up to 64M; default 4M).", valueName: "size"))
    public var bs: ByteCount?

    @Flag(name: .customLong("no-direct"), help: "Read through the page cache instead of O_DIRECT.")
    public var noDirect = false

    @Flag(name: .customLong("noerror"),
          help: "On read errors, re-read sector by sector, write zeros for unreadable sectors and go on.")
    public var noError = false

    @OptionGroup public var report: ReportOptions<Wording>

    public init() {}

    public func validate() throws {
        try validateThreads(threads)
        if let bs, !DiskReader.isValidRequestSize(bs.bytes) {
            throw ValidationError("--bs must be a multiple of 4K between 4K and 64M, not \(bs.bytes)")
        }
    }

    /// --threads, or one per online CPU.
    public var workerThreads: Int { threads ?? WorkerThread.onlineProcessors }

    /// --bs, or DiskReader's default.
    public var requestSize: Int { bs.map { Int($0.bytes) } ?? DiskReader.defaultRequestSize }

    /// O_DIRECT unless --no-direct.
    public var direct: Bool { !noDirect }

    /// Whether any source-reading option was given (they apply to reading a source only).
    public var anyGiven: Bool { bs != nil || noDirect || noError }
}
