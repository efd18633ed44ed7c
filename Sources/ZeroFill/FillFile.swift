#if canImport(Glibc)
import Glibc
#endif
import CShim
import RescueCore
import Synchronization

/// One fill file: open, already nameless (O_TMPFILE, or unlinked right
/// after creation), so it cannot outlive the process; closing it (or the
/// process ending in any way) gives its space back.
final class FillFile {
    let fd: Int32
    /// For messages: "DIR/(O_TMPFILE #1)" or the hidden name it had.
    let label: String
    let anonymous: Bool
    var isDirect: Bool
    var size: UInt64 = 0

    init(fd: Int32, label: String, anonymous: Bool, direct: Bool) {
        self.fd = fd
        self.label = label
        self.anonymous = anonymous
        isDirect = direct
    }

    /// Turns O_DIRECT off for the rest of this file.
    func dropDirect() {
        if isDirect, rb_set_direct(fd, 0) == 0 { isDirect = false }
    }
}

/// Creates fill files in one directory and remembers them until `release`.
/// Thread-safe: the signal thread's cleanup may run `release` at any time.
final class FillFileFactory: @unchecked Sendable {
    let directory: String
    let dirFD: Int32
    let kind: FilesystemKind
    let force: Bool
    /// What the signal thread's `release` shares with the creating thread.
    private struct Shared {
        var files: [FillFile] = []
        /// Hidden names created but not yet unlinked (the cleanup removes them).
        var pendingNames: [String] = []
        var released = false
        var tmpfileWorks: Bool
    }
    private let shared: Mutex<Shared>
    private var directWorks = true
    private var serial = 0

    init(directory: String, dirFD: Int32, kind: FilesystemKind, force: Bool) {
        self.directory = directory
        self.dirFD = dirFD
        self.kind = kind
        self.force = force
        shared = Mutex(Shared(tmpfileWorks: !kind.isFAT))
    }

    var count: Int { shared.withLock { $0.files.count } }
    var all: [FillFile] { shared.withLock { $0.files } }
    var usesTmpfile: Bool { shared.withLock { $0.tmpfileWorks } }

    private func named(_ name: String) -> String {
        joinPath(directory, name)
    }

    /// A new empty fill file, or nil when the filesystem has no room even
    /// for that (ENOSPC/EDQUOT on creation: the fill is complete).
    func create() throws -> FillFile? {
        serial += 1
        var fd: Int32 = -1
        var direct = directWorks
        var anonymous = false
        var label = ""
        let base = O_WRONLY | O_CLOEXEC
        let directFlag = rb_o_direct()

        if usesTmpfile {
            let flags = base | rb_o_tmpfile()
            fd = openat(dirFD, ".", flags | (direct ? directFlag : 0), 0o600)
            if fd < 0, lastErrno() == EINVAL, direct {
                fd = openat(dirFD, ".", flags, 0o600)
                if fd >= 0 { direct = false; directWorks = false }
            }
            if fd >= 0 {
                anonymous = true
                label = named("(O_TMPFILE #\(serial))")
            } else {
                let err = lastErrno()
                switch err {
                case ENOSPC, EDQUOT: return nil
                case EOPNOTSUPP, EISDIR, EINVAL, ENOENT:
                    // No O_TMPFILE here (FUSE, FAT, old kernels): hidden name.
                    shared.withLock { $0.tmpfileWorks = false }
                    printVerbose("\(directory): O_TMPFILE not supported (\(systemReason(err))); using hidden unlinked files")
                default:
                    throw RescueError(directory, "create fill file (O_TMPFILE)", errno: err)
                }
            }
        }

        if fd < 0 {
            var attempt = 0
            while true {
                attempt += 1
                let name = ".rescuebox-zerofill.\(getpid()).\(serial).\(attempt)"
                // Registered before the name exists, so a signal cannot leave it behind.
                shared.withLock { $0.pendingNames.append(name) }
                let flags = base | O_CREAT | O_EXCL | O_NOFOLLOW
                fd = openat(dirFD, name, flags | (direct ? directFlag : 0), 0o600)
                if fd < 0, lastErrno() == EINVAL, direct {
                    fd = openat(dirFD, name, flags, 0o600)
                    if fd >= 0 { direct = false; directWorks = false }
                }
                if fd < 0 {
                    let err = lastErrno()
                    shared.withLock { $0.pendingNames.removeAll { $0 == name } }
                    if err == EEXIST && attempt < 100 { continue }
                    if err == ENOSPC || err == EDQUOT { return nil }
                    throw RescueError(named(name), "create fill file", errno: err)
                }
                if unlinkat(dirFD, name, 0) != 0 {
                    let err = lastErrno()
                    Glibc.close(fd)
                    // The pending cleanup retries the unlink on exit.
                    throw RescueError(named(name), "unlink fill file", errno: err)
                }
                shared.withLock { $0.pendingNames.removeAll { $0 == name } }
                label = named(name)
                break
            }
        }

        let file = FillFile(fd: fd, label: label, anonymous: anonymous, direct: direct)
        shared.withLock { $0.files.append(file) }
        if kind.wantsNoCOW { try setNoCOW(file) }
        return file
    }

    /// btrfs: FS_NOCOW_FL on the still empty file makes the zeros
    /// overwrite free blocks in place, uncompressed, whatever compress= says.
    private func setNoCOW(_ file: FillFile) throws {
        var flags: Int32 = 0
        if rb_get_inode_flags(file.fd, &flags) == 0, rb_set_inode_flags(file.fd, flags | rb_fs_nocow_fl()) == 0 {
            return
        }
        let err = lastErrno()
        if force {
            printError("\(directory): cannot set no-copy-on-write on the fill file (\(systemReason(err))); "
                + "with compression the zeros may not overwrite free space (--force given, going on)")
            return
        }
        throw RescueError(directory, "set no-copy-on-write (FS_NOCOW_FL) on the fill file",
                          systemReason(err) + "; without it btrfs compression stores zeros without overwriting (use --force to fill anyway)")
    }

    /// fsync every fill file (each once is enough; `syncFile` did the earlier ones).
    func syncFile(_ file: FillFile) throws {
        while fsync(file.fd) != 0 {
            let err = lastErrno()
            if err == EINTR { continue }
            throw RescueError(file.label, "fsync", errno: err)
        }
    }

    /// Closes every fill file: the space is free again. Idempotent; safe
    /// from the signal thread (which then exits at once).
    func release() {
        let (open, names): ([FillFile], [String]) = shared.withLock { state in
            if state.released { return ([], []) }
            state.released = true
            return (state.files, state.pendingNames)
        }
        for name in names { unlinkat(dirFD, name, 0) }
        for file in open { Glibc.close(file.fd) }
    }
}
