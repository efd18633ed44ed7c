import ArgumentParser
import FTP
import RescueCore
import SeekableImage

public struct Mount: ParsableCommand, VerboseApplet {
    public var isVerbose: Bool { report.verbose }

    public static let configuration = CommandConfiguration(
        commandName: "mount",
        abstract: "Mount an lzop disk image read-only (local or on an FTP server) to read files without a restore.",
        discussion: """
        SOURCE is a local .lzo file or ftp://[USER@]HOST[:PORT]/PATH.lzo. DIR \
        gets disk.img, the whole uncompressed disk, and with an MBR or GPT \
        p1.img, p2.img... (one per partition) to loop-mount read-only. A read \
        decompresses only the 256 KiB blocks it touches (checksums checked); \
        decoded blocks are cached (--cache) and sequential reads are read ahead \
        on all cores. Over FTP each read is one REST+RETR ended once the bytes \
        arrived; dropped connections are reconnected and the read retried.
        The block index SOURCE.index (written by ddz -o, backup, ddz --index) \
        is read first; a local image without one is indexed from its block \
        headers, an FTP image without one needs --scan (reads it all once).
        A corrupt block makes reads of its 256 KiB fail with EIO and prints \
        one line naming the block; everything else stays readable.
        The files are served with direct I/O: the block cache is the only \
        cache, and a whole-disk read streams without a second copy in the \
        kernel's page cache. Programs that mmap a file shared (MAP_SHARED) \
        need --page-cache, which also answers repeated small reads from \
        the kernel.
        Runs in the background once mounted (-f: foreground, Ctrl-C unmounts). \
        `umount DIR` ends it. As root it mounts without fusermount. Passwords \
        as for ftpput (FTP_PASSWORD, ~/.netrc, prompt).
        Exit status: 0 mounted (foreground: unmounted cleanly), 1 failed, 2 bad usage.
        EXAMPLES:
          rescuebox mount ftp://admin@nas/images/sda.lzo /mnt/img
          mount -o loop,ro /mnt/img/p2.img /mnt/p2; cp /mnt/p2/home/ann/thesis.odt .
          ntfs-3g -o ro /mnt/img/p1.img /mnt/win
          rescuebox mount -f --cache 1G sda.img.lzo /mnt/img
          umount /mnt/p2; umount /mnt/img
        """
    )

    @OptionGroup var connection: FTPConnectionOptions

    @OptionGroup var report: ReportOptions<FTPWording>

    @Option(name: .customLong("cache"), help: ArgumentHelp("Decoded blocks kept in memory (default 256M).", valueName: "size"))
    var cache: ByteCount?

    @Option(name: .customLong("sessions"), help: "Parallel FTP sessions (default 4).")
    var sessions: Int = 4

    @Option(name: [.customShort("T"), .customLong("threads")], help: "Read-ahead threads (default: online CPUs).")
    var threads: Int?

    @Flag(name: .customLong("page-cache"), help: "Serve through the kernel's page cache (allows shared mmap), not direct I/O.")
    var pageCache = false

    @Flag(name: .customLong("scan"), help: "No index on the server: read the whole image once to build it.")
    var scan = false

    @Flag(name: [.customShort("f"), .customLong("foreground")], help: "Stay in the foreground; Ctrl-C unmounts.")
    var foreground = false

    @Argument(help: "A local .lzo image or ftp://[USER@]HOST[:PORT]/PATH.lzo.")
    var source: String

    @Argument(help: "The directory to mount on.")
    var directory: String

    public init() {}

    public func validate() throws { try validateThreads(threads) }

    public func run() throws {
        guard (1...64).contains(sessions) else { throw RescueError.usage("--sessions must be between 1 and 64") }
        var options = MountOptions()
        options.foreground = foreground
        options.scan = scan
        options.pageCache = pageCache
        options.sessions = sessions
        if let cache { options.image.cacheBytes = Int(min(cache.bytes, UInt64(Int.max))) }
        if let threads { options.image.threads = threads }
        let mountSource: MountSource
        var fsName = source
        if FTPURL.looksLikeURL(source) {
            let url = try connection.target(source, path: nil)
            connection.protectPassword(urlPassword: url.password)
            guard !url.path.isEmpty, !url.path.hasSuffix("/") else { throw RescueError.usage("the URL names no image file") }
            let credentials = try connection.credentials(for: url)
            let connection = self.connection
            let label = FTPClient.label(host: url.host, port: url.port) + "/" + url.path
            fsName = "ftp://" + label   // never the password (/proc/mounts is world-readable)
            mountSource = .ftp(path: url.path, label: label, connect: {
                let client = try connection.session(url, credentials)
                client.rangedReceiveLimit = RangedReceiveLimit(receiveBuffer: 128 << 10, segmentSize: 4096)
                return client
            })
        } else {
            mountSource = .local(path: source)
        }
        let image = try openSeekableImage(mountSource, options: options)
        try serveMount(image, on: directory, fsName: "rescuebox:" + fsName, options: options)
    }
}
