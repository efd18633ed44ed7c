#if canImport(Glibc)
import Glibc
#endif
import CNtfs3g

/// NTFS through libntfs-3g: the cluster bitmap ($Bitmap), after checking
/// the volume is clean and not hibernated. The backup boot sector in the
/// partition's last sector lies beyond the last cluster, so it is read.
func ntfsBlockMap(path: String, offset: UInt64, length: UInt64) -> BlockMapResult {
    let name = "ntfs"
    var handle: UnsafeMutableRawPointer? = nil
    var info = rb_ntfs_info()
    let err = rb_ntfs_open(path, offset, length, &handle, &info)
    guard err == 0, let handle else {
        return .full(filesystem: name, reason: "libntfs-3g cannot open it (\(String(cString: strerror(err))))")
    }
    defer { rb_ntfs_close(handle) }
    if info.hibernated != 0 { return .full(filesystem: name, reason: "Windows is hibernated or fast-started on it (hiberfil.sys)") }
    if info.dirty != 0 { return .full(filesystem: name, reason: "marked dirty") }
    if info.logfile_dirty != 0 { return .full(filesystem: name, reason: "its $LogFile is not clean") }
    let clusterSize = UInt64(info.cluster_size)
    let size = info.nr_clusters * clusterSize
    guard info.nr_clusters > 0, size <= length else {
        return .full(filesystem: name, reason: "its size (\(size) bytes) disagrees with the partition (\(length) bytes)")
    }
    var free: [Range<UInt64>] = []
    var runStart: UInt64? = nil
    let chunk: UInt64 = 1 << 20
    var bytes = [UInt8](repeating: 0, count: Int(chunk))
    var cluster: UInt64 = 0
    var byteOffset: UInt64 = 0
    while cluster < info.nr_clusters {
        let want = min(chunk, (info.nr_clusters - cluster + 7) / 8)
        let got = bytes.withUnsafeMutableBytes { rb_ntfs_bitmap(handle, byteOffset, want, $0.baseAddress) }
        guard got == Int64(want) else { return .full(filesystem: name, reason: "its cluster bitmap cannot be read") }
        for i in 0..<want * 8 where cluster + i < info.nr_clusters {
            let c = cluster + i
            if bytes[Int(i / 8)] & (1 << (i % 8)) != 0 {
                if let s = runStart { free.append(s * clusterSize..<c * clusterSize); runStart = nil }
            } else if runStart == nil {
                runStart = c
            }
        }
        cluster += want * 8
        byteOffset += want
    }
    if let s = runStart { free.append(s * clusterSize..<info.nr_clusters * clusterSize) }
    return .map(filesystem: name, size: size, free: free)
}
