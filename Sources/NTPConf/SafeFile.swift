#if canImport(Glibc)
import Glibc
#endif
import CShim
import RescueCore

/// A configuration file as read: its real path (symlinks resolved: the
/// rewrite replaces the file a link points to, never the link), its bytes and
/// its stat (mode, owner, group for the replacement).
public struct ConfigFile: Sendable {
    /// The name given (or discovered).
    public var path: String
    /// The file actually read and written (symlinks resolved inside the root).
    public var realPath: String
    /// `path` with its directories resolved inside the root but its last
    /// component kept: the backup goes beside this name.
    public var namePath: String
    public var bytes: [UInt8]
    public var mode: mode_t
    public var uid: uid_t
    public var gid: gid_t
    /// "device:inode": the file's identity (include loops, duplicates).
    public var identity: String
}

/// Configuration files larger than this are refused (not a config).
public let maxConfigBytes = 16 << 20

/// Reads a configuration file: must exist, be a readable regular text file.
/// Symbolic links are resolved inside `root` (see SystemRoot). The type is
/// checked before open, and open never blocks (O_NONBLOCK): a FIFO or a
/// device is a one-line error, never a hang.
public func readConfigFile(_ path: String, root: SystemRoot = SystemRoot(nil)) throws -> ConfigFile {
    let real = try root.resolve(path)
    let name = try root.resolve(path, keepLast: true)
    var pre = stat()
    if stat(real, &pre) == 0 {
        if pre.st_mode & S_IFMT == S_IFDIR { throw RescueError(path, "read", errno: EISDIR) }
        if pre.st_mode & S_IFMT != S_IFREG { throw RescueError(path, "read", "not a regular file (\(fileTypeName(pre.st_mode)))") }
    }
    let fd = open(real, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | (root.isHost ? 0 : O_NOFOLLOW))
    if fd < 0 { throw RescueError(path, "open", errno: lastErrno()) }
    defer { close(fd) }
    var st = stat()
    if fstat(fd, &st) != 0 { throw RescueError(path, "stat", errno: lastErrno()) }
    if st.st_mode & S_IFMT == S_IFDIR { throw RescueError(path, "read", errno: EISDIR) }
    if st.st_mode & S_IFMT != S_IFREG { throw RescueError(path, "read", "not a regular file (\(fileTypeName(st.st_mode)))") }
    if st.st_size > maxConfigBytes {
        throw RescueError(path, "read", "not a text file (\(st.st_size) bytes; a config is under \(maxConfigBytes >> 20) MiB)")
    }
    var bytes = [UInt8](repeating: 0, count: Int(st.st_size))
    let done = try bytes.withUnsafeMutableBytes { try OpenFile(descriptor: fd, path: path).readFull(into: $0) }
    bytes.removeLast(bytes.count - done)
    if let reason = notTextReason(bytes) { throw RescueError(path, "read", reason) }
    return ConfigFile(path: path, realPath: real, namePath: name, bytes: bytes, mode: st.st_mode & 0o7777,
                      uid: st.st_uid, gid: st.st_gid, identity: "\(st.st_dev):\(st.st_ino)")
}

func fileTypeName(_ mode: mode_t) -> String {
    switch mode & S_IFMT {
    case S_IFIFO: return "a FIFO"
    case S_IFCHR: return "a character device"
    case S_IFBLK: return "a block device"
    case S_IFSOCK: return "a socket"
    case S_IFLNK: return "a symbolic link"
    default: return "not a regular file"
    }
}

/// The prefix of ntpleap's temporary files next to `target`.
func tempPrefix(_ target: String) -> String { ".\(baseName(target)).rescuebox-tmp." }

/// Removes temporary files a killed ntpleap left next to `target` (their
/// name carries the pid; a live process's file is left alone). Returns the
/// names removed.
@discardableResult
public func removeStaleTemporaries(next target: String) -> [String] {
    let dir = directoryName(target), prefix = tempPrefix(target)
    var removed: [String] = []
    for name in directoryEntries(dir) ?? [] where name.hasPrefix(prefix) {
        let rest = name.dropFirst(prefix.count)
        guard let pidText = rest.split(separator: ".").first, let pid = pid_t(pidText) else { continue }
        if pid == getpid() || (kill(pid, 0) == 0 || lastErrno() == EPERM) { continue }
        if unlink("\(dir)/\(name)") == 0 { removed.append("\(dir)/\(name)") }
    }
    return removed
}

/// Test hook (documented in README "### ntpleap"): with
/// RESCUEBOX_NTPLEAP_CRASH=after-temp the process SIGKILLs itself after
/// writing and syncing the config's temporary file, before the rename.
func crashHookArmed() -> Bool {
    guard let value = getenv("RESCUEBOX_NTPLEAP_CRASH") else { return false }
    return String(cString: value) == "after-temp"
}

/// Copies the extended attributes of `source` to `target` (both open): the
/// SELinux label and POSIX ACLs must follow the file, or ntpd may be denied
/// it. Failing to copy those two is an error; others are reported.
func copyExtendedAttributes(from source: Int32, to target: Int32, path: String) throws {
    let size = rb_flistxattr(source, nil, 0)
    if size <= 0 { return }  // none, or not supported by the filesystem
    var list = [CChar](repeating: 0, count: size + 1)
    let got = rb_flistxattr(source, &list, size)
    if got <= 0 { return }
    var names: [String] = []
    var start = 0
    for i in 0..<got where list[i] == 0 {
        names.append(list[start..<i].withUnsafeBufferPointer { p in
            String(decoding: UnsafeRawBufferPointer(p), as: UTF8.self)
        })
        start = i + 1
    }
    for name in names where !name.isEmpty {
        let vsize = rb_fgetxattr(source, name, nil, 0)
        if vsize < 0 { continue }
        var value = [UInt8](repeating: 0, count: max(vsize, 1))
        let vgot = rb_fgetxattr(source, name, &value, vsize)
        if vgot < 0 { continue }
        if rb_fsetxattr(target, name, value, vgot) != 0 {
            let err = lastErrno()
            if name == "security.selinux" || name.hasPrefix("system.posix_acl") {
                throw RescueError(path, "copy extended attribute \(name)", errno: err)
            }
            printError("\(path): copy extended attribute \(name): \(systemReason(err)) (continuing)")
        }
    }
}

/// Replaces `target` with `contents` atomically: a temporary file in the
/// same directory (O_EXCL, mode 0600 while written), the mode, owner, group
/// and extended attributes (SELinux label) of `like`, fsync, rename over the
/// target, fsync of the directory. On any failure the temporary file is
/// removed and the target is untouched.
public func replaceAtomically(_ target: String, with contents: [UInt8], like template: ConfigFile,
                              crashHook: Bool = false) throws {
    let dir = directoryName(target)
    for stale in removeStaleTemporaries(next: target) {
        printError("\(stale): removed (a temporary file left by an interrupted run)")
    }
    var tempPath = ""
    var fd: Int32 = -1
    for attempt in 0..<1000 {
        tempPath = "\(dir)/\(tempPrefix(target))\(getpid()).\(attempt)"
        fd = open(tempPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
        if fd >= 0 { break }
        let err = lastErrno()
        if err == EEXIST { continue }
        throw RescueError(dir, "create temporary file", errno: err)
    }
    if fd < 0 { throw RescueError(dir, "create temporary file", errno: EEXIST) }
    let path = tempPath
    let token = Cleanup.register { unlink(path) }
    var closed = false
    func fail(_ error: RescueError) -> RescueError {
        if !closed { close(fd) }
        unlink(path)
        Cleanup.unregister(token)
        return error
    }
    do {
        try OpenFile(descriptor: fd, path: path).writeAll(contents)
    } catch let error as RescueError {
        throw fail(error)
    }
    var st = stat()
    if fstat(fd, &st) != 0 { throw fail(RescueError(path, "stat", errno: lastErrno())) }
    if st.st_uid != template.uid || st.st_gid != template.gid {
        if fchown(fd, template.uid, template.gid) != 0 {
            throw fail(RescueError(path, "set owner \(template.uid):\(template.gid)", errno: lastErrno()))
        }
    }
    // After chown, which clears set-id bits.
    if fchmod(fd, template.mode) != 0 { throw fail(RescueError(path, "set mode", errno: lastErrno())) }
    let source = open(template.realPath, O_RDONLY | O_CLOEXEC | O_NOCTTY)
    if source >= 0 {
        defer { close(source) }
        do { try copyExtendedAttributes(from: source, to: fd, path: target) } catch let e as RescueError { throw fail(e) }
    }
    if fsync(fd) != 0 { throw fail(RescueError(path, "fsync", errno: lastErrno())) }
    if close(fd) != 0 { closed = true; throw fail(RescueError(path, "close", errno: lastErrno())) }
    closed = true
    if crashHook && crashHookArmed() { kill(getpid(), SIGKILL) }
    if rename(path, target) != 0 { throw fail(RescueError(target, "rename \(path) over it", errno: lastErrno())) }
    Cleanup.unregister(token)
    let dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    if dfd >= 0 {
        defer { close(dfd) }
        if fsync(dfd) != 0 && lastErrno() != EINVAL {
            throw RescueError(dir, "fsync directory", errno: lastErrno())
        }
    }
}

/// Checks that the directory of `path` can take a new file, before any
/// change (a read-only filesystem fails here, with nothing written).
public func checkWritableDirectory(of path: String) throws {
    let dir = directoryName(path)
    if access(dir, W_OK) != 0 {
        throw RescueError(dir, "write", errno: lastErrno())
    }
}

public enum BackupOutcome: Equatable, Sendable {
    case created
    /// A backup with the same bytes was already there.
    case alreadyThere
}

/// Writes `original`'s bytes to `backupPath` (atomically, same mode and
/// owner). An existing backup with other bytes is an error unless `force`.
public func writeBackup(of original: ConfigFile, to backupPath: String, force: Bool,
                        root: SystemRoot = SystemRoot(nil)) throws -> BackupOutcome {
    if fileExists(backupPath) {
        let existing = try readConfigFile(backupPath, root: root)
        if existing.bytes == original.bytes { return .alreadyThere }
        if !force {
            throw RescueError(backupPath, "write backup",
                              "a different backup already exists (keep it and choose another --backup SUFFIX, or --force to replace it)")
        }
    }
    try replaceAtomically(backupPath, with: original.bytes, like: original)
    return .created
}
