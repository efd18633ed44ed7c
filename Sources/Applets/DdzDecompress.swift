import RescueCore

/// `ddz -d` / `ddz -t`: decode an lzop stream from `input` (nil or "-": stdin)
/// to `output` (nil or "-": stdout; a regular file gets holes for zero blocks
/// when `sparse`; a block device is written with O_DIRECT where possible).
struct DdzDecompressJob {
    var input: String?
    var output: String?
    var testOnly: Bool
    var sparse: Bool
    var threads: Int?
    var progress: Bool
    var force: Bool

    func run() throws {
        throw RescueError("", "", "decompression is not implemented yet")
    }
}
