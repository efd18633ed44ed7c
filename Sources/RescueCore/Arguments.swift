#if canImport(Glibc)
import Glibc
#endif
import CShim

/// The command line as the kernel passed it (see cshim.c for why not
/// CommandLine.arguments).
public func processArguments() -> [String] {
    guard let argv = rb_argv() else { return CommandLine.arguments }
    return (0..<Int(rb_argc())).compactMap { argv[$0].map { String(cString: $0) } }
}

/// Overwrites every argument equal to `secret` (or containing it, as in
/// `-pSECRET` or `--password=SECRET`) in the process's own argv memory, so
/// `ps` and /proc/PID/cmdline stop showing it.
public func wipeArgumentsContaining(_ secret: String) {
    guard !secret.isEmpty, let argv = rb_argv() else { return }
    for i in 1..<Int(rb_argc()) {
        guard let arg = argv[i] else { continue }
        if String(cString: arg).contains(secret) {
            memset(arg, Int32(UInt8(ascii: "x")), strlen(arg))
        }
    }
}
