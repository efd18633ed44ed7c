#if canImport(Glibc)
import Glibc
#endif

/// Whether a kernel release (uname -r) is one with a known defect when the
/// kernel itself inserts a leap second. The ranges, and where they come
/// from, are in README.md ("### ntpleap", "Affected kernels"):
/// - RHEL/CentOS 6 before 2.6.32-358.el6 (hrtimer livelock and load spike,
///   Red Hat bug 836803); the 6.3 z-stream fixed it in 2.6.32-279.9.1.el6
///   (RHSA-2012:1304);
/// - RHEL/CentOS 7 before 3.10.0-514.2.2.el7 (RHBA-2016:2862);
/// - mainline 2.6.22 up to the July 2012 fixes ("timekeeping: Fix
///   leapsecond triggered load spike issue" and its series): fixed in 3.5,
///   and in the stable series 3.0.38, 3.2.24 and 3.4.6.
/// A distribution kernel (a suffix after X.Y.Z) in the affected mainline
/// range cannot be judged from its name: its fixes may be backported.
public enum KernelVerdict: Equatable, Sendable {
    case affected(reason: String)
    case notAffected(reason: String)
    case unknown(reason: String)

    public var word: String {
        switch self {
        case .affected: return "affected"
        case .notAffected: return "not affected"
        case .unknown: return "unknown"
        }
    }
    public var reason: String {
        switch self {
        case .affected(let r), .notAffected(let r), .unknown(let r): return r
        }
    }
}

/// The numeric fields of a version string ("279.9.1" -> [279, 9, 1]),
/// up to the first field that is not a number.
func versionNumbers<S: StringProtocol>(_ text: S) -> [Int] {
    var out: [Int] = []
    for part in text.split(separator: ".", omittingEmptySubsequences: false) {
        guard let n = Int(part) else { break }
        out.append(n)
    }
    return out
}

/// Compares version number lists, missing fields counting as 0.
func compareVersions(_ a: [Int], _ b: [Int]) -> Int {
    for i in 0..<max(a.count, b.count) {
        let x = i < a.count ? a[i] : 0, y = i < b.count ? b[i] : 0
        if x != y { return x < y ? -1 : 1 }
    }
    return 0
}

public func kernelLeapVerdict(release: String) -> KernelVerdict {
    // "2.6.32-279.5.2.el6.x86_64": the upstream part, then the package release.
    let dash = release.firstIndex(of: "-")
    let upstreamText = dash.map { String(release[..<$0]) } ?? release
    let packageRelease = dash.map { String(release[release.index(after: $0)...]) }
    let upstream = versionNumbers(upstreamText)
    guard upstream.count >= 2 else { return .unknown(reason: "cannot read the version of \(release)") }

    if let rel = packageRelease, rel.contains(".el6") || rel.contains(".el7") {
        let n = versionNumbers(rel)
        if rel.contains(".el6") && upstream == [2, 6, 32] {
            if compareVersions(n, [358]) >= 0 { return .notAffected(reason: "RHEL 6 kernel 2.6.32-358.el6 or later") }
            if n.first == 279 && compareVersions(n, [279, 9, 1]) >= 0 {
                return .notAffected(reason: "RHEL 6.3 z-stream kernel 2.6.32-279.9.1.el6 or later (RHSA-2012:1304)")
            }
            return .affected(reason: "RHEL 6 kernel before 2.6.32-358.el6 (hrtimer livelock / load spike, Red Hat bug 836803)")
        }
        if rel.contains(".el7") && upstream == [3, 10, 0] {
            if compareVersions(n, [514, 2, 2]) >= 0 { return .notAffected(reason: "RHEL 7 kernel 3.10.0-514.2.2.el7 or later") }
            return .affected(reason: "RHEL 7 kernel before 3.10.0-514.2.2.el7 (RHBA-2016:2862)")
        }
        return .unknown(reason: "a Red Hat kernel outside the known RHEL 6/7 ranges")
    }

    if compareVersions(upstream, [2, 6, 22]) < 0 {
        return .unknown(reason: "older than 2.6.22: the ranges known here start there")
    }
    if compareVersions(upstream, [3, 5]) >= 0 {
        return .notAffected(reason: "3.5 or later (the July 2012 fixes are in mainline 3.5)")
    }
    // Stable series that received the July 2012 fixes, with the first fixed release.
    let fixedStable: [[Int]: [Int]] = [[3, 0]: [3, 0, 38], [3, 2]: [3, 2, 24], [3, 4]: [3, 4, 6]]
    let series = Array(upstream.prefix(2))
    let vendorSuffix = packageRelease != nil
    if let fixed = fixedStable[series] {
        let name = fixed.map(String.init).joined(separator: ".")
        if compareVersions(upstream, fixed) >= 0 { return .notAffected(reason: "\(name) or later in its stable series") }
        if vendorSuffix {
            return .unknown(reason: "a distribution kernel of the \(series.map(String.init).joined(separator: ".")) series: the fix (\(name)) may be backported; ask the vendor")
        }
        return .affected(reason: "before \(name), the first \(series.map(String.init).joined(separator: ".")).y with the July 2012 leap-second fixes")
    }
    if vendorSuffix || series == [2, 6] && upstream.count >= 3 && [32, 34].contains(upstream[2]) {
        return .unknown(reason: "between 2.6.22 and 3.5, in a series whose fixes cannot be told from the name")
    }
    return .affected(reason: "between 2.6.22 and 3.5, a series that never received the July 2012 leap-second fixes")
}

/// The running kernel's release (uname -r).
public func runningKernelRelease() -> String {
    var u = utsname()
    guard uname(&u) == 0 else { return "" }
    return withUnsafeBytes(of: u.release) { raw in
        String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
    }
}
