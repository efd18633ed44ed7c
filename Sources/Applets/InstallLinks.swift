import RescueCore
#if canImport(Glibc)
import Glibc
#endif

/// `rescuebox --install DIR [-f]`: one symlink per applet pointing at this
/// executable. An existing entry is replaced only when it is already a
/// symlink to a rescuebox binary, or with `force`.
public func installAppletLinks(into directory: String, executable: String, force: Bool) throws -> [String] {
    var made: [String] = []
    for type in allApplets {
        guard let name = type.configuration.commandName else { continue }
        let link = directory + "/" + name
        var st = stat()
        if lstat(link, &st) == 0 {
            let isOurLink = (st.st_mode & S_IFMT) == S_IFLNK && linkTarget(link).hasSuffix("rescuebox")
            guard isOurLink || force else {
                throw RescueError(link, "install", "exists and is not a rescuebox link (use -f to replace it)")
            }
            if unlink(link) != 0 { throw RescueError(link, "remove", errno: lastErrno()) }
        }
        if symlink(executable, link) != 0 { throw RescueError(link, "symlink", errno: lastErrno()) }
        made.append(link)
    }
    return made
}

func linkTarget(_ path: String) -> String {
    var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    let n = readlink(path, &buffer, buffer.count - 1)
    guard n > 0 else { return "" }
    return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// Absolute path of the running binary: /proc/self/exe, else argv[0]
/// resolved (a chroot may have no /proc).
public func executablePath(argv0: String) -> String? {
    let viaProc = linkTarget("/proc/self/exe")
    if !viaProc.isEmpty { return viaProc }
    guard argv0.contains("/") else { return nil }
    return realPath(argv0)
}
