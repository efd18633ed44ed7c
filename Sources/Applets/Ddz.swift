import ArgumentParser
import RescueCore

public struct Ddz: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "ddz",
        abstract: "Image a disk or file into an lzop stream, or restore one (-d)."
    )

    @Flag(name: [.customShort("d"), .customLong("decompress")], help: "Decompress (restore) an lzop stream.")
    var decompress = false

    @Flag(name: [.customShort("t"), .customLong("test")], help: "Test an lzop stream's integrity; write nothing.")
    var test = false

    @Option(name: [.customShort("o"), .customLong("output")], help: "Write to FILE or device instead of stdout.")
    var output: String?

    @Flag(name: .customLong("no-sparse"), help: "With -d into a regular file: write zero blocks instead of making holes.")
    var noSparse = false

    @Option(name: [.customShort("T"), .customLong("threads")], help: "Worker threads (default: online CPUs).")
    var threads: Int?

    @Flag(name: .customLong("progress"), help: "Show progress even when stderr is not a terminal.")
    var progress = false

    @Flag(name: [.customShort("f"), .customLong("force")], help: "Write compressed data to a terminal; overwrite an existing output file.")
    var force = false

    @Flag(name: [.customShort("v"), .customLong("verbose")], help: "Say more on stderr.")
    var verbose = false

    @Argument(help: "Input: a block device, a file, or - (default) for stdin.")
    var input: String?

    public init() {}

    public func run() throws {
        Program.verbose = verbose
        if decompress || test {
            try DdzDecompressJob(input: input, output: output, testOnly: test, sparse: !noSparse,
                                 threads: threads, progress: progress, force: force).run()
            return
        }
        throw RescueError("", "", "compression is not implemented yet")
    }
}
