import CExt2fs

/// ext2/3/4 through libext2fs: the block bitmap (uninitialised groups
/// computed by the library), after checking the filesystem is clean.
func extBlockMap(path: String, offset: UInt64, length: UInt64) -> BlockMapResult {
    var handle: UnsafeMutableRawPointer? = nil
    var info = rb_ext2_info()
    let err = rb_ext2_open(path, offset, &handle, &info)
    guard err == 0, let handle else {
        let why = rb_ext2_error(err).map { String(cString: $0) } ?? "error \(err)"
        return .full(filesystem: "ext", reason: "libext2fs cannot read it (\(why))")
    }
    defer { rb_ext2_close(handle) }
    let name = info.feature_incompat & 0x2C0 != 0 || info.feature_ro_compat & 0x0008 != 0 ? "ext4"
        : info.feature_compat & 0x0004 != 0 ? "ext3" : "ext2"
    if info.feature_incompat & UInt32(RB_EXT3_FEATURE_INCOMPAT_RECOVER) != 0 {
        return .full(filesystem: name, reason: "its journal needs recovery")
    }
    if info.state & UInt16(RB_EXT2_ERROR_FS) != 0 || info.error_count > 0 {
        return .full(filesystem: name, reason: "it has errors recorded")
    }
    if info.state & UInt16(RB_EXT2_VALID_FS) == 0 {
        return .full(filesystem: name, reason: "not cleanly unmounted")
    }
    if info.feature_incompat & UInt32(RB_EXT3_FEATURE_INCOMPAT_JOURNAL_DEV) != 0 {
        return .full(filesystem: name, reason: "it is an external journal device")
    }
    if info.feature_ro_compat & 0x0200 != 0 {
        // bigalloc: the bitmap counts clusters of blocks, not blocks.
        return .full(filesystem: name, reason: "bigalloc is not supported")
    }
    let blockSize = UInt64(info.block_size)
    let size = info.blocks_count * blockSize
    guard size <= length, info.blocks_count > UInt64(info.first_data_block) else {
        return .full(filesystem: name, reason: "its size (\(size) bytes) disagrees with the partition (\(length) bytes)")
    }
    // Bitmap bits of blocks first_data_block ..< blocks_count; bit clear: free.
    var free: [Range<UInt64>] = []
    var freeBlocks: UInt64 = 0
    let chunk: UInt64 = 8 << 16
    var start = UInt64(info.first_data_block)
    var bits = [UInt8](repeating: 0, count: Int(chunk / 8))
    var runStart: UInt64? = nil
    while start < info.blocks_count {
        let n = min(chunk, info.blocks_count - start)
        let e = bits.withUnsafeMutableBytes { rb_ext2_bitmap_range(handle, start, n, $0.baseAddress) }
        if e != 0 { return .full(filesystem: name, reason: "its block bitmap cannot be read") }
        for i in 0..<n {
            let used = bits[Int(i / 8)] & (1 << (i % 8)) != 0
            let block = start + i
            if used {
                if let s = runStart { free.append(s * blockSize..<block * blockSize); runStart = nil }
            } else {
                freeBlocks += 1
                if runStart == nil { runStart = block }
            }
        }
        start += n
    }
    if let s = runStart { free.append(s * blockSize..<info.blocks_count * blockSize) }
    if freeBlocks != info.free_blocks {
        return .full(filesystem: name, reason: "its free-block count (\(info.free_blocks)) disagrees with the bitmap (\(freeBlocks))")
    }
    // The boot block and superblock (block 0 of a 1 KiB-block filesystem
    // is outside the bitmap) are read anyway: never free.
    return .map(filesystem: name, size: size, free: free.map { max($0.lowerBound, 2048)..<$0.upperBound }.filter { !$0.isEmpty })
}
