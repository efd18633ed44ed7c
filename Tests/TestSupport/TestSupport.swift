// Helpers shared by the test targets (never linked into the product):
// running the built binary and real tools, temp dirs, root/loop checks.
import Foundation
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
    throw XCTSkip("rescuebox binary not built (run scripts/test.sh or swift build)")
}

/// Runs a program to completion. `input` is fed on stdin (nil: /dev/null).
/// posix_spawn + poll + waitpid of our own: Foundation's Process sometimes
/// never notices a child's exit here, which hung whole test runs.
@discardableResult
public func runProgram(_ executable: String, _ arguments: [String], input: Data? = nil,
                       environment: [String: String]? = nil, timeout: TimeInterval = 600) throws -> RunResult {
    let path = executable.contains("/") ? executable : try which(executable)
    var outPipe: [Int32] = [0, 0], errPipe: [Int32] = [0, 0], inPipe: [Int32] = [0, 0]
    guard pipe(&outPipe) == 0, pipe(&errPipe) == 0, pipe(&inPipe) == 0 else { throw XCTSkip("pipe() failed") }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    if input == nil {
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    } else {
        posix_spawn_file_actions_adddup2(&actions, inPipe[0], 0)
    }
    posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
    posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
    for fd in [outPipe[0], outPipe[1], errPipe[0], errPipe[1], inPipe[0], inPipe[1]] {
        posix_spawn_file_actions_addclose(&actions, fd)
    }
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
    close(outPipe[1]); close(errPipe[1]); close(inPipe[0])
    guard rc == 0 else {
        [outPipe[0], errPipe[0], inPipe[1]].forEach { close($0) }
        throw XCTSkip("cannot run \(path): \(String(cString: strerror(rc)))")
    }
    let feeder: Thread? = input.map { data in
        let fd = inPipe[1]
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
    if feeder == nil { close(inPipe[1]) }
    var out = Data(), err = Data()
    var open: [Int32] = [outPipe[0], errPipe[0]]
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
                if f.fd == outPipe[0] { out.append(contentsOf: buffer[0..<n]) } else { err.append(contentsOf: buffer[0..<n]) }
            } else if n == 0 || (errno != EINTR && errno != EAGAIN) {
                open.removeAll { $0 == f.fd }
            }
        }
    }
    close(outPipe[0]); close(errPipe[0])
    if !exited { while waitpid(pid, &status, 0) < 0 && errno == EINTR {} }
    feeder?.cancel()
    let exitCode: Int32 = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    return RunResult(status: exitCode, stdout: out, stderr: String(decoding: err, as: UTF8.self))
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
        XCTFail("command failed (\(r.status)): \(command)\n\(r.stderr)", file: file, line: line)
        throw XCTSkip("prerequisite command failed: \(command)")
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

/// A temporary directory removed when the object goes away.
public final class TempDir {
    public let path: String
    public init(_ prefix: String = "rescuebox-test", under base: String = "/var/tmp") {
        var template = Array("\(base)/\(prefix).XXXXXX".utf8CString)
        path = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
    }
    public func file(_ name: String) -> String { "\(path)/\(name)" }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// Deterministic pseudo-random bytes (xorshift), fast enough for hundreds of MiB.
public func pseudoRandomBytes(_ count: Int, seed: UInt64 = 0x9E37_79B9_7F4A_7C15) -> Data {
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
              truncate(image, off_t(size)) == 0 else { throw XCTSkip("cannot create \(image)") }
        let r = try sh("losetup --find --show '\(image)'")
        guard r.status == 0 else { throw XCTSkip("no loop device available: \(r.stderr)") }
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
