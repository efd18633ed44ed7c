import ArgumentParser
import RescueCore
import ZeroFill

public struct ZeroFillCommand: ParsableCommand, VerboseApplet {
    public var isVerbose: Bool { report.verbose }

    public static let configuration = CommandConfiguration(
        commandName: "zerofill",
        abstract: "Overwrite a mounted filesystem's free space with zeros.",
        discussion: """
        Before imaging a disk, zeroing its free space makes deleted data compress
        away. zerofill writes zeros into fill files that have no name (O_TMPFILE,
        or a hidden file unlinked right after creation), so they cannot outlive the
        process: an interrupt, a kill or an error gives the space back at once.
        Big writes use O_DIRECT where the filesystem takes it, so the page cache is
        not flooded; when the disk is full the last megabytes are filled with
        shrinking buffered writes down to one block. A file that hits a size limit
        (FAT32's 4 GiB, ulimit -f) is continued in a new one. Every fill file is
        fsync'ed before it is closed (deleting unwritten zeros would throw them
        away), then the filesystem is synced.

        Refused: not a directory, read-only mounts, filesystems without a disk
        (tmpfs, ramfs, proc, sysfs, overlay on tmpfs...). ZFS and bcachefs compress
        or deduplicate, so zeros do not overwrite there: zerofill refuses with advice
        ('zpool trim', 'zpool initialize') unless --force. On btrfs the fill files
        get the no-copy-on-write attribute first, so even with compress= the zeros
        really overwrite. Blocks reserved for root (ext4) can only be zeroed as root.

        The summary (stderr) gives bytes zeroed, seconds, rate, and free space before
        and after. Exit status: 0 done (disk full, --max or --reserve reached), 1
        refused or failed (nothing is left behind), 2 bad usage, 130 interrupted.

        EXAMPLES:
          zerofill /                      zero the free space of the root filesystem
          zerofill --trim /srv            FITRIM first, then zero
          zerofill --reserve 2G /var      leave 2 GiB free on a live system
          zerofill --max 10G --rate 50M /home
                                          zero at most 10 GiB at 50 MB/s at most
          zerofill /mnt/usb && umount /mnt/usb && ddz /dev/sdb1 > usb.img.lzo
        """
    )

    @Option(name: .customLong("reserve"), help: ArgumentHelp("Leave at least SIZE free (e.g. 2G).", valueName: "SIZE"))
    var reserve: ByteCount?

    @Option(name: .customLong("max"), help: ArgumentHelp("Write at most SIZE of zeros.", valueName: "SIZE"))
    var maximum: ByteCount?

    @Option(name: .customLong("rate"), help: ArgumentHelp("Write at most SIZE per second (e.g. 50M), to spare a live system.", valueName: "SIZE"))
    var rate: ByteCount?

    @Flag(name: .customLong("trim"), help: "FITRIM the filesystem first and report what it trimmed.")
    var trim = false

    @Flag(name: [.customShort("f"), .customLong("force")], help: "Fill even where zeros may not overwrite free space (ZFS, bcachefs, btrfs without no-copy-on-write).")
    var force = false

    @OptionGroup var report: ReportOptions<LocalWording>

    @Argument(help: "A directory on the mounted filesystem to clean.")
    var directory: String

    public init() {}

    public func validate() throws {
        if let rate, rate.bytes == 0 { throw ValidationError("--rate must be more than 0") }
    }

    public func run() throws {
        var options = ZeroFillOptions()
        options.reserve = reserve?.bytes ?? 0
        options.maximum = maximum?.bytes
        options.rate = rate?.bytes
        options.force = force
        options.trim = trim
        let filler = try ZeroFiller(directory: directory, options: options)
        let survey = filler.survey
        printVerbose("\(directory): \(survey.kind.name), \(formatBytes(survey.usableBytes)) free, block size \(survey.blockSize)")
        var total = survey.usableBytes > options.reserve ? survey.usableBytes - options.reserve : 0
        if let maximum = options.maximum { total = min(total, maximum) }
        let meter = ProgressMeter(label: "zerofill", total: total, forced: report.progress)
        let report = try filler.run(progress: meter)
        var line = summaryLine(bytes: report.bytesZeroed, seconds: report.seconds, verb: "zeroed")
        if report.files > 1 { line += " in \(report.files) files" }
        line += "; free \(formatBytes(report.freeBefore)) before, \(formatBytes(report.freeAfter)) after"
        line += " (\(report.stopReason)"
        if report.stopReason == .filesystemFull && report.freeWhenFull > 0 {
            line += ", \(formatBytes(report.freeWhenFull)) left unfillable"
        }
        line += ")"
        printStderr(line)
    }
}
