#if canImport(Glibc)
import Glibc
#endif
import RescueCore

/// Paths of the system ntpleap acts on: the running one (prefix "") or one
/// mounted under a directory (`--root DIR`). Under a root every path, given
/// or discovered, lives inside it, and symbolic links are resolved the way
/// `chroot DIR` would see them: an absolute target starts again at DIR. A
/// relative target whose `..` would climb above DIR escapes it and is
/// refused; the host is never read or written through a link.
public struct SystemRoot: Sendable, Equatable {
    /// "" for the running system, else the directory without trailing '/'.
    public let prefix: String

    public init(_ directory: String?) {
        guard var r = directory, !r.isEmpty else { prefix = ""; return }
        while r.count > 1 && r.hasSuffix("/") { r.removeLast() }
        prefix = r == "/" ? "" : r
    }

    public var isHost: Bool { prefix.isEmpty }

    /// The host path of `path` as the system under the root names it
    /// (absolute; a relative name counts from the root's `/`).
    public func host(_ path: String) -> String {
        path.hasPrefix("/") ? prefix + path : prefix + "/" + path
    }

    /// A FILE named on the command line: inside the root under --root;
    /// otherwise relative to the working directory, as given.
    public func named(_ path: String) -> String { isHost ? path : host(path) }

    /// `hostPath` without the prefix ("/" for the root itself), or nil when
    /// it is not inside the root.
    func inside(_ hostPath: String) -> String? {
        if prefix.isEmpty { return hostPath }
        if hostPath == prefix { return "/" }
        guard hostPath.hasPrefix(prefix + "/") else { return nil }
        return String(hostPath.dropFirst(prefix.count))
    }

    /// Resolves every symbolic link of `hostPath` inside the root; with
    /// `keepLast` the last component stays as it is (the name a backup goes
    /// beside). Missing components end the resolution (open reports them).
    /// Throws a one-line error for a link that leaves the root, or a loop.
    public func resolve(_ hostPath: String, keepLast: Bool = false) throws -> String {
        if prefix.isEmpty && !hostPath.hasPrefix("/") {
            // The running system: a relative name counts from the working directory.
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            guard getcwd(&buffer, buffer.count) != nil else { return hostPath }
            let cwd = String(cString: buffer)
            return try resolve((cwd == "/" ? "" : cwd) + "/" + hostPath, keepLast: keepLast)
        }
        guard let start = inside(hostPath) else { return hostPath }
        // Pending components; `link` names the link whose target they came from.
        var pending: [(name: Substring, link: String?)] = start.split(separator: "/").map { ($0, nil) }
        var done: [Substring] = []
        var links = 0
        func current() -> String { prefix + "/" + done.joined(separator: "/") }
        while !pending.isEmpty {
            let (name, link) = pending.removeFirst()
            if name == "." { continue }
            if name == ".." {
                if done.isEmpty {
                    if let link, !prefix.isEmpty {
                        throw RescueError(link, "resolve symbolic link", "its target leaves \(prefix) (refused: under --root every path stays inside it)")
                    }
                    continue  // like chroot: ".." of "/" is "/"
                }
                done.removeLast()
                continue
            }
            if keepLast && pending.isEmpty {
                done.append(name)
                break
            }
            let candidate = (done.isEmpty ? prefix : current()) + "/" + name
            var st = stat()
            guard lstat(candidate, &st) == 0 else {
                // Missing: keep the rest as it is.
                done.append(name)
                done += pending.map(\.name)
                pending = []
                break
            }
            guard st.st_mode & S_IFMT == S_IFLNK else { done.append(name); continue }
            links += 1
            if links > 40 { throw RescueError(hostPath, "resolve symbolic links", errno: ELOOP) }
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let n = readlink(candidate, &buffer, buffer.count - 1)
            if n < 0 { throw RescueError(candidate, "read symbolic link", errno: lastErrno()) }
            let target = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if target.hasPrefix("/") { done = [] }
            let via = link ?? candidate
            pending = target.split(separator: "/").map { ($0, via) } + pending
        }
        return done.isEmpty ? (prefix.isEmpty ? "/" : prefix) : current()
    }

    /// Whether `hostPath` names something (a link counts, even one that
    /// leaves the root: reading it then says why), directories resolved
    /// inside the root.
    public func exists(_ hostPath: String) -> Bool {
        guard let name = try? resolve(hostPath, keepLast: true) else { return true }
        var st = stat()
        return lstat(name, &st) == 0
    }

    /// Whether `hostPath` is a directory, links resolved inside the root.
    public func isDirectory(_ hostPath: String) -> Bool {
        guard let real = try? resolve(hostPath) else { return false }
        var st = stat()
        return lstat(real, &st) == 0 && st.st_mode & S_IFMT == S_IFDIR
    }

    /// The directory's entries (sorted), links resolved inside the root.
    public func entries(_ hostPath: String) -> [String]? {
        guard let real = try? resolve(hostPath), isDirectory(real) else { return nil }
        return directoryEntries(real)
    }
}
