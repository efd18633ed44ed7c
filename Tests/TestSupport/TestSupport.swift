// Helpers shared by the test targets (never linked into the product):
// running the built binary and real tools, children in the background,
// waiting for events, temp dirs, root/loop checks.
import Foundation
import Glibc
import Synchronization
import XCTest

public struct RunResult {
    /// The exit status, or 128 + N when killed by signal N (as a shell says).
    public let status: Int32
    public let stdout: Data
    public let stderr: String
    public var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
}

/// The binary under test: $RESCUEBOX_BIN (scripts/test.sh sets it to the
/// static dist/rescuebox), else the debug build next to the test bundle.
public func rescueboxBinary() throws -> String {
    if let path = ProcessInfo.processInfo.environment["RESCUEBOX_BIN"], FileManager.default.isExecutableFile(atPath: path) {
        return path
    }
    var dir = URL(fileURLWithPath: Bundle.main.bundlePath)
    for _ in 0..<4 {
        let candidate = dir.appendingPathComponent("rescuebox").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        dir.deleteLastPathComponent()
    }
    let fallback = FileManager.default.currentDirectoryPath + "/.build/debug/rescuebox"
    if FileManager.default.isExecutableFile(atPath: fallback) { return fallback }
    throw prerequisiteFailed("rescuebox binary not built (run scripts/test.sh or swift build)")
}

/// A prerequisite or a wait that failed inside a test: recorded with
/// XCTFail where it happened, then thrown to end the test. Never a skip.
public struct TestFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Records `message` as a test failure at the caller and returns the error
/// to throw: `throw prerequisiteFailed("cannot mount ...")`.
public func prerequisiteFailed(_ message: String, file: StaticString = #filePath, line: UInt = #line) -> TestFailure {
    XCTFail(message, file: file, line: line)
    return TestFailure(message)
}

/// Polls `condition` until it holds. On timeout the test FAILS (XCTFail,
/// then a thrown TestFailure); it never skips. A condition may throw to
/// end the wait early (a child that died, say).
/// `detail` adds what helps to see why (a log) to the failure message.
public func waitFor(_ what: String, timeout: TimeInterval = 60, detail: () -> String = { "" },
                    file: StaticString = #filePath, line: UInt = #line, _ condition: () throws -> Bool) throws {
    let deadline = Date().addingTimeInterval(timeout)
    var pause: useconds_t = 5_000
    while try !condition() {
        if Date() > deadline {
            let more = detail()
            throw prerequisiteFailed("timed out after \(Int(timeout)) s waiting for \(what)" + (more.isEmpty ? "" : "\n" + more),
                                     file: file, line: line)
        }
        usleep(pause)
        pause = min(pause * 2, 100_000)
    }
}

/// The exit status as a shell reports it: the code, or 128 + N for signal N.
func shellStatus(_ status: Int32) -> Int32 {
    (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
}

/// What a child's descriptor 0, 1 or 2 is.
enum ChildDescriptor {
    case devNull
    /// dup2 of one of our descriptors (opened O_CLOEXEC, so no other child inherits it).
    case descriptor(Int32)
    /// A file opened in the child.
    case file(String, flags: Int32)
}

/// posix_spawn with descriptors 0-2 as given, an empty signal mask and
/// SIGPIPE at its default. The one way tests start a child: Foundation's
/// Process sometimes never notices a child's exit here, which hung whole
/// test runs.
func spawnChild(_ path: String, _ arguments: [String], environment: [String: String]?,
                stdin: ChildDescriptor, stdout: ChildDescriptor, stderr: ChildDescriptor) throws -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    for (target, what) in [(Int32(0), stdin), (1, stdout), (2, stderr)] {
        switch what {
        case .devNull: posix_spawn_file_actions_addopen(&actions, target, "/dev/null", target == 0 ? O_RDONLY : O_WRONLY, 0)
        case .descriptor(let fd): posix_spawn_file_actions_adddup2(&actions, fd, target)
        case .file(let name, let flags): posix_spawn_file_actions_addopen(&actions, target, name, flags, 0o600)
        }
    }
    // The child keeps only 0-2: a daemon it leaves behind (ntfs-3g, FUSE)
    // then holds nothing of ours open.
    if let closeFrom = spawnCloseFrom { _ = closeFrom(&actions, 3) }
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var noSignals = sigset_t()
    sigemptyset(&noSignals)
    posix_spawnattr_setsigmask(&attributes, &noSignals)
    var defaults = sigset_t()
    sigemptyset(&defaults)
    sigaddset(&defaults, SIGPIPE)
    posix_spawnattr_setsigdefault(&attributes, &defaults)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
    let env = (environment ?? ProcessInfo.processInfo.environment).map { "\($0.key)=\($0.value)" }
    let argv = ([path] + arguments).map { strdup($0) } + [nil]
    let envp = env.map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) }; envp.forEach { free($0) } }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, path, &actions, &attributes, argv, envp)
    guard rc == 0 else {
        let reason = "cannot run \(path): \(String(cString: strerror(rc)))"
        if rc == ENOENT { throw XCTSkip(reason) }
        throw prerequisiteFailed(reason)
    }
    return pid
}

/// glibc's posix_spawn_file_actions_addclosefrom_np (2.34+), which Swift's
/// Glibc module does not declare (it is _GNU_SOURCE only).
private let spawnCloseFrom: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32)? = {
    guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") else { return nil }
    return unsafeBitCast(symbol, to: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32).self)
}()

/// A pipe whose both ends are close-on-exec (a child gets one end by dup2 only).
func closeOnExecPipe() throws -> (read: Int32, write: Int32) {
    var fds: [Int32] = [0, 0]
    // (pipe2 is not in Swift's Glibc module; no child is spawned in between.)
    guard pipe(&fds) == 0 else { throw prerequisiteFailed("pipe: \(String(cString: strerror(errno)))") }
    for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
    return (fds[0], fds[1])
}

/// Runs a program to completion. `input` is fed on stdin (nil: /dev/null).
/// posix_spawn + poll + waitpid of our own (see spawnChild).
@discardableResult
public func runProgram(_ executable: String, _ arguments: [String], input: Data? = nil,
                       environment: [String: String]? = nil, timeout: TimeInterval = 600) throws -> RunResult {
    let path = executable.contains("/") ? executable : try which(executable)
    let outPipe = try closeOnExecPipe(), errPipe = try closeOnExecPipe()
    let inPipe = input == nil ? nil : try closeOnExecPipe()
    let pid: pid_t
    do {
        pid = try spawnChild(path, arguments, environment: environment,
                             stdin: inPipe.map { .descriptor($0.read) } ?? .devNull,
                             stdout: .descriptor(outPipe.write), stderr: .descriptor(errPipe.write))
    } catch {
        [outPipe.read, outPipe.write, errPipe.read, errPipe.write].forEach { close($0) }
        if let inPipe { close(inPipe.read); close(inPipe.write) }
        throw error
    }
    close(outPipe.write); close(errPipe.write)
    if let inPipe { close(inPipe.read) }
    let feeder: Thread? = input.map { data in
        let fd = inPipe!.write
        let t = Thread {
            data.withUnsafeBytes { raw in
                var off = 0
                while off < raw.count {
                    let n = write(fd, raw.baseAddress! + off, raw.count - off)
                    if n <= 0 { if errno == EINTR { continue }; break }
                    off += n
                }
            }
            close(fd)
        }
        t.start()
        return t
    }
    var out = Data(), err = Data()
    var open: [Int32] = [outPipe.read, errPipe.read]
    let deadline = Date().addingTimeInterval(timeout)
    var buffer = [UInt8](repeating: 0, count: 65536)
    var status: Int32 = 0
    var exited = false
    var drainUntil = Date.distantFuture
    while true {
        if !exited, waitpid(pid, &status, WNOHANG) == pid {
            exited = true
            // A background grandchild may keep the pipes open: read what is
            // there for a moment, then stop waiting for end of file.
            drainUntil = Date().addingTimeInterval(0.5)
        }
        if open.isEmpty || Date() > drainUntil { if exited { break } }
        if Date() > deadline {
            kill(pid, SIGKILL)
            XCTFail("timed out after \(Int(timeout)) s: \(executable) \(arguments)")
            break
        }
        if open.isEmpty { usleep(2000); continue }
        var fds = open.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        if poll(&fds, nfds_t(fds.count), 50) < 0 && errno != EINTR { break }
        for f in fds where f.revents != 0 {
            let n = read(f.fd, &buffer, buffer.count)
            if n > 0 {
                if f.fd == outPipe.read { out.append(contentsOf: buffer[0..<n]) } else { err.append(contentsOf: buffer[0..<n]) }
            } else if n == 0 || (errno != EINTR && errno != EAGAIN) {
                open.removeAll { $0 == f.fd }
            }
        }
    }
    close(outPipe.read); close(errPipe.read)
    if !exited { while waitpid(pid, &status, 0) < 0 && errno == EINTR {} }
    feeder?.cancel()
    return RunResult(status: shellStatus(status), stdout: out, stderr: String(decoding: err, as: UTF8.self))
}

/// A child running beside the test (a FUSE server, a slow upload, a fill to
/// interrupt): started with the same posix_spawn as runProgram, its stdout
/// and stderr captured into files while it runs (read them at any time),
/// stopped by PID (SIGKILL) in deinit if the test did not wait for it.
///
///     let fs = try BackgroundProcess.start("/usr/bin/python3", [script, mnt])
///     try waitFor("the FUSE mount") { FileManager.default.fileExists(atPath: mnt + "/disk.img") }
///     fs.signal(SIGTERM)
///     let r = try fs.wait(timeout: 30)
public final class BackgroundProcess {
    public enum Input {
        case null
        /// These bytes, then end of file.
        case data(Data)
        /// A pipe: `write(_:)`, then `closeInput()`.
        case pipe
    }

    public let pid: pid_t
    public let command: String
    private let captures: TempDir
    private var inputFD: Int32 = -1
    private var exitStatus: Int32?

    public var stdoutPath: String { captures.file("stdout") }
    public var stderrPath: String { captures.file("stderr") }

    private init(pid: pid_t, command: String, captures: TempDir, inputFD: Int32) {
        self.pid = pid
        self.command = command
        self.captures = captures
        self.inputFD = inputFD
    }

    /// Starts `executable` (a path, or a name looked up in $PATH).
    public static func start(_ executable: String, _ arguments: [String], environment: [String: String]? = nil,
                             stdin: Input = .null) throws -> BackgroundProcess {
        let path = executable.contains("/") ? executable : try which(executable)
        let captures = TempDir("rescuebox-child")
        var input = ChildDescriptor.devNull
        var pipeEnds: (read: Int32, write: Int32)?
        switch stdin {
        case .null: break
        case .data(let data):
            let file = captures.file("stdin")
            guard FileManager.default.createFile(atPath: file, contents: data) else {
                throw prerequisiteFailed("cannot write \(file)")
            }
            input = .file(file, flags: O_RDONLY)
        case .pipe:
            pipeEnds = try closeOnExecPipe()
            input = .descriptor(pipeEnds!.read)
        }
        let flags = O_WRONLY | O_CREAT | O_TRUNC | O_APPEND
        let pid: pid_t
        do {
            pid = try spawnChild(path, arguments, environment: environment, stdin: input,
                                 stdout: .file(captures.file("stdout"), flags: flags),
                                 stderr: .file(captures.file("stderr"), flags: flags))
        } catch {
            if let pipeEnds { close(pipeEnds.read); close(pipeEnds.write) }
            throw error
        }
        if let pipeEnds { close(pipeEnds.read) }
        return BackgroundProcess(pid: pid, command: ([path] + arguments).joined(separator: " "), captures: captures,
                                 inputFD: pipeEnds?.write ?? -1)
    }

    /// False once the child has exited (it is then reaped; `wait` returns at once).
    public var isRunning: Bool {
        if exitStatus != nil { return false }
        var status: Int32 = 0
        let r = waitpid(pid, &status, WNOHANG)
        if r == pid { exitStatus = shellStatus(status); return false }
        return r == 0
    }

    /// Sends `signal` to the child (nothing once it has been reaped, so the
    /// PID can never be someone else's).
    public func signal(_ signal: Int32) {
        if exitStatus == nil { kill(pid, signal) }
    }

    /// Everything the child wrote to stdout / stderr so far.
    public var stdout: Data { FileManager.default.contents(atPath: stdoutPath) ?? Data() }
    public var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
    public var stderr: String { String(decoding: FileManager.default.contents(atPath: stderrPath) ?? Data(), as: UTF8.self) }

    /// Writes to the child's stdin (started with `stdin: .pipe`).
    public func write(_ data: Data) throws {
        guard inputFD >= 0 else { throw prerequisiteFailed("\(command): stdin is not a pipe (or was closed)") }
        try data.withUnsafeBytes { raw in
            var off = 0
            while off < raw.count {
                let n = Glibc.write(inputFD, raw.baseAddress! + off, raw.count - off)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw prerequisiteFailed("\(command): write to stdin: \(String(cString: strerror(errno)))") }
                off += n
            }
        }
    }

    /// End of file on the child's stdin.
    public func closeInput() {
        if inputFD >= 0 { close(inputFD); inputFD = -1 }
    }

    /// Waits for the child to exit. On timeout the test fails: the child is
    /// killed and a TestFailure thrown.
    @discardableResult
    public func wait(timeout: TimeInterval = 600, file: StaticString = #filePath, line: UInt = #line) throws -> RunResult {
        closeInput()
        let deadline = Date().addingTimeInterval(timeout)
        var pause: useconds_t = 2_000
        while isRunning {
            if Date() > deadline {
                let err = stderr
                stop()
                throw prerequisiteFailed("timed out after \(Int(timeout)) s waiting for \(command) to exit; its stderr: \(err)",
                                         file: file, line: line)
            }
            usleep(pause)
            pause = min(pause * 2, 50_000)
        }
        return RunResult(status: exitStatus ?? -1, stdout: stdout, stderr: stderr)
    }

    /// SIGKILL by PID and reap, if it still runs.
    public func stop() {
        closeInput()
        guard exitStatus == nil else { return }
        kill(pid, SIGKILL)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        exitStatus = shellStatus(status)
    }

    deinit { stop() }
}

/// Runs a shell command line; returns its result.
@discardableResult
public func sh(_ command: String, input: Data? = nil, timeout: TimeInterval = 600) throws -> RunResult {
    try runProgram("/bin/sh", ["-c", command], input: input, timeout: timeout)
}

/// Runs a shell command that must succeed; returns trimmed stdout.
@discardableResult
public func shOK(_ command: String, file: StaticString = #filePath, line: UInt = #line) throws -> String {
    let r = try sh(command)
    if r.status != 0 {
        throw prerequisiteFailed("command failed (\(r.status)): \(command)\n\(r.stderr)", file: file, line: line)
    }
    return r.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
}

public func which(_ program: String) throws -> String {
    for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin:/usr/sbin:/sbin").split(separator: ":").map(String.init) + ["/usr/sbin", "/sbin"] {
        let candidate = "\(dir)/\(program)"
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    throw XCTSkip("\(program) is not installed")
}

public func requireRoot(_ why: String) throws {
    guard getuid() == 0 else { throw XCTSkip("needs root: \(why)") }
}

/// The size of the file at `path`, -1 when there is none (for polling a file that grows).
public func fileSize(_ path: String) -> Int {
    var st = stat()
    return stat(path, &st) == 0 ? Int(st.st_size) : -1
}

/// The lines of a program's stderr, empty ones dropped (an interrupt or a
/// finished progress meter starts a new line first).
public func nonEmptyLines(_ text: String) -> [String] {
    text.split(separator: "\n").map { String($0) }.filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
}

/// A temporary directory, removed by `remove()`, when the object goes away,
/// or at the latest when the test process exits: XCTest keeps every test
/// case object (and so a TempDir stored in one) alive until the end of the
/// run, so classes that store one remove it in tearDown. A directory with
/// something still mounted under it is left alone (never delete through a
/// mount), with a warning.
public final class TempDir {
    public let path: String
    public init(_ prefix: String = "rescuebox-test", under base: String = "/var/tmp") {
        var template = Array("\(base)/\(prefix).XXXXXX".utf8CString)
        path = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
        _ = TempDir.sweepAtExit
        TempDir.live.withLock { _ = $0.insert(path) }
    }

    /// Removes the directory and everything in it (once).
    public func remove() {
        guard TempDir.live.withLock({ $0.remove(path) != nil }) else { return }
        TempDir.removeTree(path)
    }

    private static let live = Mutex(Set<String>())
    private static let sweepAtExit: Void = { atexit { TempDir.removeLeftovers() } }()

    private static func removeLeftovers() {
        for path in live.withLock({ live in defer { live.removeAll() }; return live }) { removeTree(path) }
    }

    private static func removeTree(_ path: String) {
        let mounts = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
        let mounted = mounts.split(separator: "\n").contains { line in
            let fields = line.split(separator: " ")
            return fields.count > 4 && (fields[4] == path || fields[4].hasPrefix(path + "/"))
        }
        if mounted {
            FileHandle.standardError.write(Data("TempDir: \(path) left in place: something is still mounted under it\n".utf8))
            return
        }
        try? FileManager.default.removeItem(atPath: path)
    }
    public func file(_ name: String) -> String { "\(path)/\(name)" }
    /// Writes `count` pseudo-random bytes (`pseudoRandomBytes`) to `name` here and returns them.
    public func writeRandom(_ name: String, count: Int, seed: UInt64 = pseudoRandomSeed) throws -> Data {
        let data = pseudoRandomBytes(count, seed: seed)
        try data.write(to: URL(fileURLWithPath: file(name)))
        return data
    }
    deinit { remove() }
}

/// The seed `pseudoRandomBytes` uses unless told.
public let pseudoRandomSeed: UInt64 = 0x9E37_79B9_7F4A_7C15

/// Deterministic pseudo-random bytes (xorshift), fast enough for hundreds of MiB.
public func pseudoRandomBytes(_ count: Int, seed: UInt64 = pseudoRandomSeed) -> Data {
    var state = seed | 1
    var data = Data(count: count)
    data.withUnsafeMutableBytes { raw in
        let words = raw.bindMemory(to: UInt64.self)
        for i in 0..<words.count {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            words[i] = state
        }
        for i in (words.count * 8)..<count {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            raw[i] = UInt8(truncatingIfNeeded: state)
        }
    }
    return data
}

/// A file image attached to a loop device; detached on `detach()` or deinit.
public final class LoopDevice {
    public let image: String
    public let device: String
    private var attached = true

    public init(image: String, size: UInt64) throws {
        try requireRoot("loop devices")
        guard FileManager.default.createFile(atPath: image, contents: nil),
              truncate(image, off_t(size)) == 0 else { throw prerequisiteFailed("cannot create \(image)") }
        let r = try sh("losetup --find --show '\(image)'")
        guard r.status == 0 else { throw prerequisiteFailed("no loop device available: \(r.stderr)") }
        self.image = image
        device = r.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    public func detach() {
        guard attached else { return }
        attached = false
        _ = try? sh("losetup -d '\(device)'")
    }

    deinit { detach() }
}
