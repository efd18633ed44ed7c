// The free-space filler: writes zeros into nameless fill files until the
// filesystem is full, makes them durable, then gives the space back.
#if canImport(Glibc)
import Glibc
#endif
import CShim
import RescueCore

public struct ZeroFillOptions {
    /// Leave at least this much free (a live system keeps breathing).
    public var reserve: UInt64 = 0
    /// Write at most this many bytes.
    public var maximum: UInt64?
    /// Bytes per second at most (nil: as fast as the disk takes them).
    public var rate: UInt64?
    /// Fill even where zeros may not overwrite (compressing filesystems).
    public var force = false
    /// FITRIM the filesystem first.
    public var trim = false
    /// Size of each big (O_DIRECT) write.
    public var chunkSize = 8 << 20
    public init() {}
}

public struct ZeroFillReport {
    public var bytesZeroed: UInt64 = 0
    public var seconds: Double = 0
    /// Free space this process could fill (root: including reserved blocks).
    public var freeBefore: UInt64 = 0
    public var freeAfter: UInt64 = 0
    /// Free space left when the fill stopped (what could not be zeroed).
    public var freeWhenFull: UInt64 = 0
    public var files = 0
    public var stopReason = FillStop.filesystemFull
    public var trimmed: UInt64?
    public var filesystem = ""
}

/// Why one fill file stopped growing.
enum FileEnd { case full, fileSizeLimit, budget, reserve }

/// Why the whole fill stopped; its description is what the summary says.
public enum FillStop: Equatable, CustomStringConvertible, Sendable {
    case filesystemFull, fileSizeLimit, maximumReached, reserveReached

    public var description: String {
        switch self {
        case .filesystemFull: return "filesystem full"
        case .fileSizeLimit: return "file size limit"
        case .maximumReached: return "--max reached"
        case .reserveReached: return "--reserve reached"
        }
    }
}

public final class ZeroFiller {
    public let directory: String
    public let options: ZeroFillOptions
    public let survey: FilesystemSurvey
    /// Where notes go ("root-reserved blocks stay dirty", trim results).
    public var note: (String) -> Void = { printError($0) }
    private let dirFD: Int32
    private var closed = false

    /// Opens DIR and decides whether filling it makes sense; throws a
    /// RescueError with the reason when it does not.
    public init(directory: String, options: ZeroFillOptions) throws {
        self.directory = directory
        self.options = options
        let fd = Glibc.open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd < 0 {
            let err = lastErrno()
            if err == ENOTDIR { throw RescueError(directory, "refused", "not a directory (give a directory on the filesystem to clean)") }
            throw RescueError(directory, "open", errno: err)
        }
        dirFD = fd
        do {
            survey = try FilesystemSurvey.take(fd: fd, path: directory)
            try Self.check(survey, directory: directory, force: options.force)
        } catch {
            Glibc.close(fd)
            throw error
        }
    }

    deinit { if !closed { Glibc.close(dirFD) } }

    /// The refusals: pointless filesystems, read-only mounts, compression.
    static func check(_ survey: FilesystemSurvey, directory: String, force: Bool) throws {
        let kind = survey.kind
        if case .pointless(let why) = kind.verdict {
            throw RescueError(directory, "refused", why)
        }
        if kind.name == "overlay", let upper = survey.mount?.superOption("upperdir") {
            let upperKind = FilesystemKind.identify(UInt64(UInt(bitPattern: rb_statfs_type(upper))))
            if case .pointless = upperKind.verdict {
                throw RescueError(directory, "refused",
                                  "overlay whose upper layer (\(upper)) is on \(upperKind.name): there is no disk space to clean")
            }
        }
        if survey.readOnly {
            throw RescueError(directory, "refused", "the filesystem is mounted read-only")
        }
        if case .compressing(let advice) = kind.verdict, !force {
            throw RescueError(directory, "refused", advice + " (--force fills anyway)")
        }
    }

    /// Runs the fill. `progress` gets the bytes written so far.
    public func run(progress: ProgressMeter? = nil) throws -> ZeroFillReport {
        var report = ZeroFillReport()
        report.filesystem = survey.kind.name
        let clock = Stopwatch()
        signal(SIGXFSZ, SIG_IGN)  // RLIMIT_FSIZE: EFBIG, then the next file
        raiseOpenFileLimit()

        if options.trim { report.trimmed = trim() }
        if geteuid() != 0, survey.rootReservedBytes > 0 {
            note("\(formatBytes(survey.rootReservedBytes)) of blocks reserved for root stay unzeroed (run as root to zero them too)")
        }
        report.freeBefore = FilesystemSurvey.usableBytes(fd: dirFD, kind: survey.kind) ?? survey.usableBytes

        let factory = FillFileFactory(directory: directory, dirFD: dirFD, kind: survey.kind, force: options.force)
        let token = Cleanup.register { factory.release() }
        defer { Cleanup.unregister(token) }
        do {
            try fill(factory, progress: progress, report: &report)
            for file in factory.all { try factory.syncFile(file) }
        } catch {
            factory.release()
            throw error
        }
        report.freeWhenFull = FilesystemSurvey.usableBytes(fd: dirFD, kind: survey.kind) ?? 0
        report.files = factory.count
        factory.release()
        if rb_syncfs(dirFD) != 0 {
            throw RescueError(directory, "syncfs", errno: lastErrno())
        }
        report.freeAfter = FilesystemSurvey.usableBytes(fd: dirFD, kind: survey.kind) ?? 0
        report.seconds = clock.elapsed
        return report
    }

    private func fill(_ factory: FillFileFactory, progress: ProgressMeter?, report: inout ZeroFillReport) throws {
        let align: UInt64 = 4096
        let blockSize = max(Int(survey.blockSize), 512)
        var budget: UInt64?
        if let maximum = options.maximum { budget = maximum / align * align }
        var chunk = max(blockSize, options.chunkSize / blockSize * blockSize)
        if let rate = options.rate {
            // Small writes keep a rate-limited fill smooth.
            chunk = min(chunk, max(blockSize, Int(rate / 8) / blockSize * blockSize))
        }
        let buffer = AlignedBuffer(capacity: chunk)
        memset(buffer.pointer, 0, chunk)
        let clock = Stopwatch()
        var total: UInt64 = 0

        fileLoop: while true {
            if budget == 0 { report.stopReason = .maximumReached; break }
            guard let file = try factory.create() else {
                report.stopReason = .filesystemFull
                break
            }
            printVerbose("fill file \(factory.count): \(file.label)\(file.isDirect ? ", O_DIRECT" : "")")
            var size = chunk
            var end = FileEnd.full
            writeLoop: while true {
                var want = UInt64(size)
                if let left = budget {
                    if left == 0 { end = .budget; break writeLoop }
                    want = min(want, left)
                }
                if options.reserve > 0 {
                    let free = FilesystemSurvey.usableBytes(fd: dirFD, kind: survey.kind) ?? 0
                    if free <= options.reserve { end = .reserve; break writeLoop }
                    let room = (free - options.reserve) / UInt64(blockSize) * UInt64(blockSize)
                    if room == 0 { end = .reserve; break writeLoop }
                    want = min(want, room)
                }
                if file.isDirect && want % align != 0 { file.dropDirect() }
                let n = Glibc.write(file.fd, buffer.pointer, Int(want))
                if n > 0 {
                    file.size += UInt64(n)
                    total += UInt64(n)
                    if budget != nil { budget! -= min(budget!, UInt64(n)) }
                    progress?.update(processed: total)
                    if let rate = options.rate, rate > 0 {
                        let due = Double(total) / Double(rate) - clock.elapsed
                        if due > 0 { usleep(UInt32(min(due, 1.0) * 1e6)) }
                    }
                    continue
                }
                let err = n == 0 ? ENOSPC : lastErrno()
                switch err {
                case EINTR, EAGAIN:
                    continue
                case EINVAL where file.isDirect:
                    // The filesystem took O_DIRECT at open but not this write
                    // (or the write crosses a file size limit unaligned).
                    file.dropDirect()
                case ENOSPC, EDQUOT:
                    // The big writes are done; the tail gets shrinking
                    // buffered writes down to one block, so it is zeroed too.
                    file.dropDirect()
                    if size > blockSize {
                        size = max(blockSize, size / 2 / blockSize * blockSize)
                        continue
                    }
                    end = .full
                    break writeLoop
                case EFBIG:
                    end = .fileSizeLimit
                    break writeLoop
                default:
                    throw RescueError(file.label, "write at offset \(file.size)", errno: err)
                }
            }
            // Durable before moving on: deleting (closing) a file whose
            // dirty pages never reached the disk would throw the zeros away.
            do {
                try factory.syncFile(file)
            } catch let error as RescueError where error.errno == ENOSPC || error.errno == EDQUOT {
                // Space allocated at writeback (NFS, thin volumes): the last
                // buffered zeros found no room. What did reach the disk counts.
                note("\(error.description) (the last buffered zeros found no room; the fill is complete)")
            }
            switch end {
            case .fileSizeLimit:
                if file.size == 0 {
                    note("a new fill file cannot grow at all (file size limit); stopping")
                    report.stopReason = .fileSizeLimit
                    break fileLoop
                }
                printVerbose("fill file \(factory.count) reached the file size limit at \(file.size) bytes; starting another")
                continue fileLoop
            case .full: report.stopReason = .filesystemFull
            case .budget: report.stopReason = .maximumReached
            case .reserve: report.stopReason = .reserveReached
            }
            break fileLoop
        }
        progress?.finish()
        report.bytesZeroed = total
    }

    /// FITRIM the whole filesystem; reports and returns what was trimmed.
    private func trim() -> UInt64? {
        var trimmed: UInt64 = 0
        if rb_fitrim(dirFD, 0, &trimmed) == 0 {
            note("trimmed \(formatBytes(trimmed)) (\(trimmed) bytes) of free space")
            return trimmed
        }
        let err = lastErrno()
        switch err {
        case EOPNOTSUPP, ENOTTY, EINVAL:
            note("--trim: FITRIM is not supported by this filesystem or its device (\(systemReason(err)))")
        case EPERM, EACCES:
            note("--trim: FITRIM needs root (\(systemReason(err)))")
        default:
            note("--trim: FITRIM failed: \(systemReason(err))")
        }
        return nil
    }

    /// Many fill files (FAT32's 4 GiB each) must stay open at once.
    private func raiseOpenFileLimit() {
        var limit = rlimit()
        let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        if getrlimit(resource, &limit) == 0, limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max
            setrlimit(resource, &limit)
        }
    }
}
