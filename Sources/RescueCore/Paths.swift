#if canImport(Glibc)
import Glibc
#endif
import SystemPackage

// Small path and text helpers every library shares: one copy each.

/// The last component of `path`, trailing slashes ignored
/// ("dir/a b.img" -> "a b.img", "/a/b/" -> "b"); "" for "/" and "".
public func baseName(_ path: String) -> String {
    FilePath(path).lastComponent?.string ?? ""
}

/// `path` without its last component, as dirname(1): "/a/b" -> "/a",
/// "/a" -> "/", "a" -> ".".
public func directoryName(_ path: String) -> String {
    let parent = FilePath(path).removingLastComponent()
    return parent.isEmpty ? "." : parent.string
}

/// `name` inside `directory` ("dir" + "x" -> "dir/x", "dir/" + "x" -> "dir/x").
public func joinPath(_ directory: String, _ name: String) -> String {
    FilePath(directory).appending(name).string
}

/// Whether `path` names anything (a dangling symbolic link counts).
public func fileExists(_ path: String) -> Bool {
    var st = stat()
    return lstat(path, &st) == 0
}

/// Whether `path` is a directory (symbolic links followed).
public func isDirectory(_ path: String) -> Bool {
    var st = stat()
    return stat(path, &st) == 0 && st.st_mode & S_IFMT == S_IFDIR
}

/// Names in a directory (no "." or ".."), sorted; nil when it cannot be read.
public func directoryEntries(_ path: String) -> [String]? {
    guard let dir = opendir(path) else { return nil }
    defer { closedir(dir) }
    var names: [String] = []
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        if name != "." && name != ".." { names.append(name) }
    }
    return names.sorted()
}

/// The absolute path with every symbolic link resolved (realpath(3)); nil
/// when some component does not exist.
public func realPath(_ path: String) -> String? {
    guard let p = realpath(path, nil) else { return nil }
    defer { free(p) }
    return String(cString: p)
}

extension StringProtocol {
    /// Without leading and trailing blanks (space, tab, CR, LF).
    public func trimmingWhitespace() -> Substring {
        var s = self[...]
        while let c = s.first, isBlank(c) { s.removeFirst() }
        while let c = s.last, isBlank(c) { s.removeLast() }
        return Substring(s)
    }
}

private func isBlank(_ c: Character) -> Bool {
    c == " " || c == "\t" || c == "\r" || c == "\n" || c == "\r\n"
}
