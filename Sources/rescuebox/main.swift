// rescuebox: one static binary, many applets (busybox-style).
// The applet comes from argv[0]'s basename (a link named `ddz`) or from the
// first argument (`rescuebox ddz ...`).
import Applets
import RescueCore
#if canImport(Glibc)
import Glibc
#endif

let version = rescueboxVersion
let argv = processArguments()
let calledAs = baseName(argv.first ?? "")
let invokedAs = calledAs.isEmpty ? "rescuebox" : calledAs

if let type = applet(named: invokedAs) {
    runApplet(type, arguments: Array(argv.dropFirst()))
}

func appletNames() -> [String] { allApplets.compactMap { $0.configuration.commandName } }

func usage() -> String {
    var text = """
    rescuebox \(version): disk imaging, FTP transfer, free-space zeroing and ntpd
    leap-second safety in one static binary.

    Usage: rescuebox APPLET [ARGS...]     (or through a link named after the applet)
           rescuebox --list               applet names, one per line
           rescuebox --install DIR [-f]   a symlink per applet in DIR
           rescuebox --version
           rescuebox APPLET --help        an applet's options and examples

    Applets:

    """
    let width = appletNames().map(\.count).max() ?? 0
    for type in allApplets {
        let name = type.configuration.commandName ?? ""
        text += "  " + name + String(repeating: " ", count: width - name.count + 2) + type.configuration.abstract + "\n"
    }
    return text
}

var rest = Array(argv.dropFirst())
guard let first = rest.first else {
    writeText(usage(), to: 2)
    exit(ExitCode.usage)
}
rest.removeFirst()

switch first {
case "--help", "-h", "help":
    writeText(usage(), to: 1)
case "--version":
    printStdout("rescuebox \(version)")
    printStdout("Licence GPL-3.0-or-later <https://gnu.org/licenses/gpl.html>; no warranty.")
    printStdout("Statically linked: liblzo2, libntfs-3g (GPL-2.0-or-later), libext2fs, zlib, OpenSSL 3 (Apache-2.0).")
case "--list":
    for name in appletNames() { printStdout(name) }
case "--install":
    let force = rest.contains("-f") || rest.contains("--force")
    let dirs = rest.filter { $0 != "-f" && $0 != "--force" }
    guard dirs.count == 1 else {
        printError("--install takes one directory (and -f)")
        exit(ExitCode.usage)
    }
    guard let executable = executablePath(argv0: argv[0]) else {
        printError("cannot tell where this binary is (no /proc/self/exe; run it by its full path)")
        exit(ExitCode.failure)
    }
    do {
        for link in try installAppletLinks(into: dirs[0], executable: executable, force: force) {
            printStdout("\(link) -> \(executable)")
        }
    } catch {
        printError("\(error)")
        exit(ExitCode.failure)
    }
default:
    guard let type = applet(named: first) else {
        printError("unknown applet '\(first)' (known: \(appletNames().joined(separator: ", ")))")
        exit(ExitCode.usage)
    }
    runApplet(type, arguments: rest)
}
exit(ExitCode.success)
