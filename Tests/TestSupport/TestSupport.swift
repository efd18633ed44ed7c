// Helpers shared by the test targets (never linked into the product):
// running the built binary and real tools, temp dirs, root/loop checks.
import Foundation
import XCTest

public struct RunResult {
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
@discardableResult
public func runProgram(_ executable: String, _ arguments: [String], input: Data? = nil,
                environment: [String: String]? = nil, timeout: TimeInterval = 600) throws -> RunResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable.contains("/") ? executable : try which(executable))
    process.arguments = arguments
    if let environment { process.environment = environment }
    let outPipe = Pipe(), errPipe = Pipe()
    process.standardOutput = outPipe
    process.standardError = errPipe
    let inPipe = Pipe()
    process.standardInput = input == nil ? FileHandle.nullDevice : inPipe
    let out = Collected(), err = Collected()
    let group = DispatchGroup()
    group.enter()
    DispatchQueue.global().async { out.data = outPipe.fileHandleForReading.readDataToEndOfFile(); group.leave() }
    group.enter()
    DispatchQueue.global().async { err.data = errPipe.fileHandleForReading.readDataToEndOfFile(); group.leave() }
    try process.run()
    if let input {
        DispatchQueue.global().async {
            try? inPipe.fileHandleForWriting.write(contentsOf: input)
            try? inPipe.fileHandleForWriting.close()
        }
    }
    let deadline = Date().addingTimeInterval(timeout)
    while process.isRunning {
        if Date() > deadline { process.terminate(); XCTFail("timed out: \(executable) \(arguments)"); break }
        usleep(2000)
    }
    process.waitUntilExit()
    group.wait()
    return RunResult(status: process.terminationStatus, stdout: out.data, stderr: String(decoding: err.data, as: UTF8.self))
}

/// Output collected by a reader thread; read only after the group is done.
private final class Collected: @unchecked Sendable { var data = Data() }

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
