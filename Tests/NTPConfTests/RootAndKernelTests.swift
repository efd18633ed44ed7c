import Foundation
import XCTest
import TestSupport
import RescueCore
@testable import NTPConf

/// Paths under --root resolve like chroot (issue 14, defects 1 and 2).
final class SystemRootTests: XCTestCase {
    func link(_ at: String, _ to: String) throws {
        try FileManager.default.createDirectory(atPath: (at as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: at, withDestinationPath: to)
    }

    func testAbsoluteLinksStartAgainAtTheRoot() throws {
        let root = TempDir()
        let r = SystemRoot(root.path)
        try put(root.file("etc/x.conf"), "x\n")
        try link(root.file("etc/ntpsec/ntp.conf"), "/etc/x.conf")
        XCTAssertEqual(try r.resolve(root.file("etc/ntpsec/ntp.conf")), root.file("etc/x.conf"))
        XCTAssertEqual(try r.resolve(root.file("etc/ntpsec/ntp.conf"), keepLast: true), root.file("etc/ntpsec/ntp.conf"))
        // A directory link, absolute, in the middle of the path.
        try FileManager.default.createDirectory(atPath: root.file("srv/conf"), withIntermediateDirectories: true)
        try put(root.file("srv/conf/ntp.conf"), "y\n")
        try link(root.file("etc/ntp"), "/srv/conf")
        XCTAssertEqual(try r.resolve(root.file("etc/ntp/ntp.conf")), root.file("srv/conf/ntp.conf"))
        XCTAssertEqual(try r.resolve(root.file("etc/ntp/ntp.conf"), keepLast: true), root.file("srv/conf/ntp.conf"))
        // Relative links with ".." that stay inside.
        try link(root.file("etc/rel.conf"), "ntpsec/../x.conf")
        XCTAssertEqual(try r.resolve(root.file("etc/rel.conf")), root.file("etc/x.conf"))
        // The file read is the one inside the root.
        XCTAssertEqual(try readConfigFile(root.file("etc/ntpsec/ntp.conf"), root: r).realPath, root.file("etc/x.conf"))
    }

    func testLinksLeavingTheRootAreRefused() throws {
        let root = TempDir()
        let r = SystemRoot(root.path)
        try link(root.file("etc/ntp.conf"), "../../../../../../../../../../etc/passwd")
        XCTAssertThrowsError(try readConfigFile(root.file("etc/ntp.conf"), root: r)) { error in
            XCTAssertEqual("\(error)", "\(root.file("etc/ntp.conf")): resolve symbolic link: its target leaves \(root.path) (refused: under --root every path stays inside it)")
        }
        // A loop is ELOOP, not a hang.
        try link(root.file("etc/a"), "/etc/b")
        try link(root.file("etc/b"), "/etc/a")
        XCTAssertThrowsError(try r.resolve(root.file("etc/a"))) { XCTAssertTrue("\($0)".contains("Too many levels of symbolic links"), "\($0)") }
        // Named FILEs live inside the root; a relative one counts from its /.
        XCTAssertEqual(r.named("/etc/ntp.conf"), root.file("etc/ntp.conf"))
        XCTAssertEqual(r.named("etc/ntp.conf"), root.file("etc/ntp.conf"))
        XCTAssertEqual(SystemRoot(nil).named("etc/ntp.conf"), "etc/ntp.conf")
        XCTAssertEqual(SystemRoot("/").prefix, "")
        XCTAssertEqual(SystemRoot(root.path + "//").prefix, root.path)
    }

    /// A FIFO is refused by type, never opened blocking (defect 5).
    func testFifoIsRefusedWithoutBlocking() throws {
        let dir = TempDir()
        XCTAssertEqual(mkfifo(dir.file("fifo"), 0o644), 0)
        let started = monotonicSeconds()
        XCTAssertThrowsError(try readConfigFile(dir.file("fifo"))) { error in
            XCTAssertEqual("\(error)", "\(dir.file("fifo")): read: not a regular file (a FIFO)")
        }
        XCTAssertLessThan(monotonicSeconds() - started, 5)
    }

    /// upstart's /proc/1/comm has st_size 0 on procfs: it is read to the end
    /// (defect 8). R/proc/1 points at a real process named "init".
    func testUpstartDetectedFromProcfsComm() throws {
        let dir = TempDir()
        let root = dir.file("root")
        for path in ["sbin/initctl", "etc/init/rc-sysinit.conf"] { try put("\(root)/\(path)", "") }
        try FileManager.default.createDirectory(atPath: "\(root)/proc", withIntermediateDirectories: true)
        XCTAssertEqual(InitSystem.detect(root: root), .upstart, "no /proc (a mounted image) does not rule upstart out")
        try FileManager.default.copyItem(atPath: try which("sleep"), toPath: dir.file("init"))
        let pid = try spawnProcess([dir.file("init"), "120"])
        defer { kill(pid, SIGKILL); _ = waitForProcess(pid) }
        // The kernel sets comm late in exec, after posix_spawn returned: wait for it.
        let deadline = monotonicSeconds() + 30
        while (try? readSmallFile("/proc/\(pid)/comm")) != "init\n" {
            if monotonicSeconds() > deadline { XCTFail("the stand-in never became 'init' in /proc/\(pid)/comm"); return }
            usleep(10_000)
        }
        var st = stat()
        XCTAssertEqual(stat("/proc/\(pid)/comm", &st), 0)
        XCTAssertEqual(st.st_size, 0, "procfs reports size 0: the case st_size-based reading got wrong")
        try FileManager.default.createSymbolicLink(atPath: "\(root)/proc/1", withDestinationPath: "/proc/\(pid)")
        XCTAssertEqual(InitSystem.detect(root: root), .upstart)
        try FileManager.default.removeItem(atPath: "\(root)/proc/1")
        try FileManager.default.createSymbolicLink(atPath: "\(root)/proc/1", withDestinationPath: "/proc/self")
        XCTAssertEqual(InitSystem.detect(root: root), .sysvinit, "pid 1 is not init: not upstart")
    }
}

/// The DHCP copy and the file the dhclient hook rebuilds it from (defect 3).
final class DhcpDiscoveryTests: XCTestCase {
    func testHookSourceIsFixedWheneverTheDhcpCopyIsInPlay() throws {
        let root = TempDir()
        try put(root.file("etc/default/ntpsec"), "NTPD_OPTS=\"-g -N -c /etc/ntpsec/custom.conf\"\nIGNORE_DHCP=\"\"\n")
        try put(root.file("etc/ntpsec/custom.conf"), "enable kernel\n")
        try put(root.file("etc/ntpsec/ntp.conf"), "enable kernel\n")
        try put(root.file("run/ntpsec/ntp.conf.dhcp"), "enable kernel\n")
        let found = discoverNtpConfigs(root: root.path)
        XCTAssertEqual(found.map(\.path), [root.file("etc/ntpsec/custom.conf"), root.file("run/ntpsec/ntp.conf.dhcp"), root.file("etc/ntpsec/ntp.conf")])
        XCTAssertEqual(found.map(\.origin), [
            .optionsFile(source: "\(root.file("etc/default/ntpsec")) NTPD_OPTS", option: "-c"),
            .dhcpCopy(insteadOf: root.file("etc/ntpsec/custom.conf")),
            .dhcpHookSource(copy: root.file("run/ntpsec/ntp.conf.dhcp")),
        ])
        XCTAssertEqual(Set(found.compactMap(\.family)), [.ntpsec])
        // No DHCP copy: the hook's source is not in play.
        try FileManager.default.removeItem(atPath: root.file("run/ntpsec/ntp.conf.dhcp"))
        XCTAssertEqual(discoverNtpConfigs(root: root.path).map(\.path), [root.file("etc/ntpsec/custom.conf")])
    }

    func testIgnoreDhcpIsNotCalledWhatNtpdReads() throws {
        let root = TempDir()
        try put(root.file("etc/default/ntpsec"), "NTPD_OPTS='-g -N'\nIGNORE_DHCP=\"yes\"\n")
        try put(root.file("etc/ntpsec/ntp.conf"), "server a\n")
        try put(root.file("run/ntpsec/ntp.conf.dhcp"), "server b\n")
        let found = discoverNtpConfigs(root: root.path)
        XCTAssertEqual(found.map(\.path), [root.file("etc/ntpsec/ntp.conf"), root.file("run/ntpsec/ntp.conf.dhcp")])
        XCTAssertEqual(found[1].origin, .dhcpCopyIgnored(source: root.file("etc/default/ntpsec")))
        XCTAssertFalse(found[1].why.contains("ntpd reads"), found[1].why)
        XCTAssertTrue(found[1].why.contains("not read by ntpd (IGNORE_DHCP=yes"), found[1].why)
    }
}

/// chrony's own parser: no trailing text on leapsecmode (defect 4).
final class ChronyRefusalTests: XCTestCase {
    func testTrailingTextIsRefusedNeverSafe() throws {
        for bad in ["leapsecmode system # note", "leapsecmode slew extra", "leapsecmode", "leapsecmode smear"] {
            let root = TempDir()
            try put(root.file("etc/chrony.conf"), "server a\n\(bad)\n")
            let chain = try loadChain(root.file("etc/chrony.conf"), dialect: .chrony, root: SystemRoot(root.path))
            let plan = planChain(chain, followIncludes: false)
            XCTAssertFalse(plan.isSafe, bad)
            XCTAssertTrue(plan.edits.isEmpty, bad)
            XCTAssertEqual(plan.refused.map(\.line), [2], bad)
            XCTAssertTrue(plan.refused[0].reason.hasPrefix("chronyd refuses it (\"Could not parse leapsecmode directive\")"), plan.refused[0].reason)
        }
        // Valid spellings stay valid (chronyd compares case-insensitively).
        let ok = ConfText(Array("LeapSecMode Slew\r\n".utf8), dialect: .chrony)
        XCTAssertNil(ChronyRules.refusal(ok.lines[0]))
        XCTAssertEqual(ChronyRules.leapMode(ok.lines[0]), "slew")
    }
}

/// Which kernels have a known leap-second defect (README "Affected kernels").
final class KernelVerdictTests: XCTestCase {
    func testTable() {
        let table: [(String, String)] = [
            ("2.6.32-220.el6.x86_64", "affected"),
            ("2.6.32-279.el6.x86_64", "affected"),
            ("2.6.32-279.5.2.el6.x86_64", "affected"),
            ("2.6.32-279.9.1.el6.x86_64", "not affected"),
            ("2.6.32-358.el6.x86_64", "not affected"),
            ("2.6.32-754.35.1.el6.x86_64", "not affected"),
            ("3.10.0-327.el7.x86_64", "affected"),
            ("3.10.0-514.el7.x86_64", "affected"),
            ("3.10.0-514.2.2.el7.x86_64", "not affected"),
            ("3.10.0-1160.el7.x86_64", "not affected"),
            ("2.6.18-400.el5", "unknown"),
            ("2.6.21", "unknown"),
            ("2.6.26", "affected"),
            ("3.1.10", "affected"),
            ("3.0.37", "affected"),
            ("3.0.38", "not affected"),
            ("3.2.23", "affected"),
            ("3.2.24", "not affected"),
            ("3.4.5", "affected"),
            ("3.4.6", "not affected"),
            ("3.2.0-4-amd64", "unknown"),
            ("3.2.0-29-generic", "unknown"),
            ("2.6.32.59", "unknown"),
            ("3.5.0", "not affected"),
            ("6.1.0-18-amd64", "not affected"),
            ("garbage", "unknown"),
        ]
        for (release, word) in table {
            XCTAssertEqual(kernelLeapVerdict(release: release).word, word, release)
        }
        XCTAssertTrue(kernelLeapVerdict(release: "2.6.32-220.el6.x86_64").reason.contains("836803"))
        XCTAssertTrue(kernelLeapVerdict(release: "3.10.0-327.el7.x86_64").reason.contains("RHBA-2016:2862"))
    }

    func testVerdictIsInformationWhenTheConfigurationIsSafe() {
        let affected = kernelLeapVerdict(release: "2.6.32-279.el6.x86_64")
        XCTAssertEqual(kernelVerdictLine(whose: "running kernel", release: "2.6.32-279.el6.x86_64", verdict: affected, configurationSafe: true),
                       "running kernel 2.6.32-279.el6.x86_64: leap-second defect: affected: RHEL 6 kernel before 2.6.32-358.el6 (hrtimer livelock / load spike, Red Hat bug 836803) (information: the configuration is safe, so the kernel never inserts the leap itself)")
        XCTAssertTrue(kernelVerdictLine(whose: "running kernel", release: "x", verdict: affected, configurationSafe: false).hasSuffix("(WARNING: make the configuration safe: rescuebox ntpleap)"))
        let fine = kernelLeapVerdict(release: "6.1.0-18-amd64")
        XCTAssertEqual(kernelVerdictLine(whose: "running kernel", release: "6.1.0-18-amd64", verdict: fine, configurationSafe: false),
                       "running kernel 6.1.0-18-amd64: leap-second defect: not affected: 3.5 or later (the July 2012 fixes are in mainline 3.5)")
    }

    func testControlVariableText() {
        let v = parseControlVariables("leap=3, stratum=16, version=\"ntpd ntpsec-1.2.2\",\r\nkstflags=\"pll nano\", x")
        XCTAssertEqual(v.map { $0.0 + "=" + $0.1 }, ["leap=3", "stratum=16", "version=ntpd ntpsec-1.2.2", "kstflags=pll nano", "x="])
        let facts = DaemonFacts(address: "127.0.0.1", leap: 1, variables: v)
        XCTAssertEqual(facts.leapBits, "01")
        XCTAssertEqual(facts.kernelDisciplineInUse, true)
        XCTAssertEqual(DaemonFacts(address: "::1", leap: 3, variables: [("kstflags", "unsync")]).kernelDisciplineInUse, false)
        XCTAssertNil(DaemonFacts(address: "::1", leap: 0, variables: []).kernelDisciplineInUse)
    }
}
