import Foundation
import XCTest
import TestSupport
@testable import NTPConf

func put(_ path: String, _ text: String) throws {
    try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    try Data(text.utf8).write(to: URL(fileURLWithPath: path))
}

func contents(_ path: String) throws -> String {
    String(decoding: try Data(contentsOf: URL(fileURLWithPath: path)), as: UTF8.self)
}

final class ChainTests: XCTestCase {
    func testIncludeChainClassicAbsoluteUnderRoot() throws {
        let root = TempDir()
        try put(root.file("etc/ntp.conf"), "server a\ndisable kernel\nincludefile /etc/ntp/local.conf\n")
        try put(root.file("etc/ntp/local.conf"), "enable kernel stats\n")
        let chain = try loadChain(root.file("etc/ntp.conf"), dialect: .ntp, root: SystemRoot(root.path))
        XCTAssertEqual(chain.files.count, 2)
        XCTAssertEqual(chain.directives, [KernelDirective(kind: .disable, file: 0, line: 2),
                                          KernelDirective(kind: .enable, file: 1, line: 1)])
        // Without --follow-includes: the main file gets the disable at its end, the include stays.
        let plan = planChain(chain, followIncludes: false)
        XCTAssertFalse(plan.isSafe)
        XCTAssertEqual(Array(plan.edits.keys), [0])
        XCTAssertEqual(plan.untouchedIncludeEnables, [KernelDirective(kind: .enable, file: 1, line: 1)])
        XCTAssertEqual(plan.edits[0]?.appended.count, 1)
        // With it: the include loses kernel; the main file's disable then suffices.
        let follow = planChain(chain, followIncludes: true)
        XCTAssertEqual(Array(follow.edits.keys), [1])
        XCTAssertEqual(String(decoding: apply(follow.edits[1]!, to: chain.files[1].text).result, as: UTF8.self), "enable stats\n")
    }

    func testNtpsecRelativeAndDirectoryIncludesAndLoops() throws {
        let root = TempDir()
        try put(root.file("etc/ntpsec/ntp.conf"), "includefile ntp.d/\nincludefile extra.conf\nincludefile missing.conf\n")
        try put(root.file("etc/ntpsec/ntp.d/b.conf"), "enable kernel\n")
        try put(root.file("etc/ntpsec/ntp.d/a.conf"), "server a\nincludefile ../ntp.conf\n")  // a loop
        try put(root.file("etc/ntpsec/ntp.d/readme.txt"), "enable kernel\n")  // not *.conf
        try put(root.file("etc/ntpsec/extra.conf"), "disable kernel\n")
        let chain = try loadChain(root.file("etc/ntpsec/ntp.conf"), dialect: .ntp, root: SystemRoot(root.path))
        XCTAssertEqual(chain.files.map { ($0.config.path as NSString).lastPathComponent }, ["ntp.conf", "a.conf", "b.conf", "extra.conf"])
        XCTAssertTrue(chain.notes.contains { $0.contains("is a loop") }, "\(chain.notes)")
        XCTAssertTrue(chain.notes.contains { $0.contains("missing.conf") && $0.contains("No such file") }, "\(chain.notes)")
        // The unreadable include counts as a possible enable after the disable: not safe.
        let plan = planChain(chain, followIncludes: true)
        XCTAssertFalse(plan.isSafe)
        XCTAssertNotNil(plan.edits[2])  // b.conf loses its enable
        XCTAssertEqual(plan.edits[0]?.appended.count, 1)  // the main file gets the disable
    }

    func testDeepIncludesStopAtFive() throws {
        let root = TempDir()
        for i in 0..<8 { try put(root.file("c\(i).conf"), "includefile c\(i + 1).conf\n") }
        try put(root.file("c8.conf"), "enable kernel\n")
        let chain = try loadChain(root.file("c0.conf"), dialect: .ntp, root: SystemRoot(root.path))
        XCTAssertEqual(chain.files.count, 6)
        XCTAssertTrue(chain.notes.contains { $0.contains("nested too deep") })
    }

    func testChronyChainAndRewrite() throws {
        let root = TempDir()
        try put(root.file("etc/chrony/chrony.conf"), "pool p iburst\nconfdir /etc/chrony/conf.d\ninclude /etc/chrony/extra/*.conf\n")
        try put(root.file("etc/chrony/conf.d/leap.conf"), "leapsecmode system\n")
        try put(root.file("etc/chrony/extra/x.conf"), "! comment\nmaxupdateskew 100\n")
        let chain = try loadChain(root.file("etc/chrony/chrony.conf"), dialect: .chrony, root: SystemRoot(root.path))
        XCTAssertEqual(chain.files.count, 3)
        XCTAssertEqual(chain.settings.map(\.mode), ["system"])
        let plan = planChain(chain, followIncludes: false)
        XCTAssertFalse(plan.isSafe)
        XCTAssertEqual(plan.edits[0]?.appended.map { String(decoding: $0, as: UTF8.self) },
                       [ChronyRules.appendedComment + "\n", "leapsecmode slew\n"])
        let follow = planChain(chain, followIncludes: true)
        XCTAssertNil(follow.edits[0])
        XCTAssertEqual(String(decoding: apply(follow.edits[1]!, to: chain.files[1].text).result, as: UTF8.self), "leapsecmode slew\n")
    }

    func testChronyFixturesAndModes() throws {
        func rw(_ s: String) -> String {
            let t = ConfText(Array(s.utf8), dialect: .chrony)
            return String(decoding: apply(rewriteChronyConf(t), to: t).result, as: UTF8.self)
        }
        let debian = String(decoding: try fixture("debian-chrony.conf"), as: UTF8.self)
        XCTAssertEqual(rw(debian), debian + ChronyRules.appendedComment + "\nleapsecmode slew\n")
        let rhel = String(decoding: try fixture("rhel-chrony.conf"), as: UTF8.self)
        XCTAssertEqual(rw(rhel), rhel.replacingOccurrences(of: "LeapSecMode system", with: "LeapSecMode slew"))
        XCTAssertEqual(rw("leapsecmode step\n"), "leapsecmode step\n")
        XCTAssertEqual(rw("leapsecmode ignore\n"), "leapsecmode ignore\n")
        XCTAssertEqual(rw("# leapsecmode slew\nleapsecmode   system  \r\n"), "# leapsecmode slew\nleapsecmode   slew  \r\n")
        XCTAssertEqual(rw("leapsecmode slew\nleapsecmode system"), "leapsecmode slew\nleapsecmode slew")
        XCTAssertEqual(rw("server a\r\nserver b"), "server a\r\nserver b\r\n" + ChronyRules.appendedComment + "\r\nleapsecmode slew\r\n")
        // chrony comments only at the start of a line
        XCTAssertEqual(ConfText(Array("server a # b\n".utf8), dialect: .chrony).lines[0].tokens.count, 4)
    }
}

final class DiscoveryTests: XCTestCase {
    func testDebianWithDhcpCopyAndRunningNtpd() throws {
        let root = TempDir()
        try put(root.file("etc/ntp.conf"), "server a\n")
        try put(root.file("run/ntp.conf.dhcp"), "server b\n")
        try put(root.file("etc/default/ntp"), "NTPD_OPTS='-g'\n")
        try put(root.file("proc/4242/cmdline"), "/usr/sbin/ntpd\0-p\0/var/run/ntpd.pid\0-c\0/etc/ntp-alt.conf\0-g\0")
        try put(root.file("etc/ntp-alt.conf"), "server c\n")
        let found = discoverNtpConfigs(root: root.path)
        XCTAssertEqual(found.map(\.path), [root.file("etc/ntp.conf"), root.file("run/ntp.conf.dhcp"), root.file("etc/ntp-alt.conf")])
        XCTAssertTrue(found[1].why.contains("DHCP"))
        XCTAssertTrue(found[2].why.contains("pid 4242"))
    }

    func testRhelOptionsDashC() throws {
        let root = TempDir()
        try put(root.file("etc/ntp.conf"), "server a\n")
        try put(root.file("etc/ntp/custom.conf"), "server b\n")
        try put(root.file("etc/sysconfig/ntpd"), "# Command line options for ntpd\nOPTIONS=\"-u ntp:ntp -p /var/run/ntpd.pid -g -c /etc/ntp/custom.conf\"\n")
        let found = discoverNtpConfigs(root: root.path)
        XCTAssertEqual(found.map(\.path), [root.file("etc/ntp/custom.conf")])
        XCTAssertEqual(found[0].why, "-c in \(root.file("etc/sysconfig/ntpd")) OPTIONS")
    }

    func testNtpsecAndSuse() throws {
        let root = TempDir()
        try put(root.file("etc/ntpsec/ntp.conf"), "server a\n")
        try put(root.file("run/ntpsec/ntp.conf.dhcp"), "server a\n")
        try put(root.file("etc/sysconfig/ntp"), "NTPD_OPTIONS=\"-g -u ntp:ntp -x\"\n")
        XCTAssertEqual(discoverNtpConfigs(root: root.path).map(\.path), [root.file("etc/ntpsec/ntp.conf"), root.file("run/ntpsec/ntp.conf.dhcp")])
        XCTAssertEqual(ntpdOptionFiles(root: root.path).first?.options.slew, true)
    }

    func testOptionWords() {
        XCTAssertEqual(shellWords(#"'-g' "-c /etc/a b.conf" -x\ y # comment"#), ["-g", "-c /etc/a b.conf", "-x y"])
        XCTAssertEqual(ntpdConfigArgument(["-g", "-c", "/a"]), "/a")
        XCTAssertEqual(ntpdConfigArgument(["-c/b"]), "/b")
        XCTAssertEqual(ntpdConfigArgument(["--configfile=/c"]), "/c")
        XCTAssertNil(ntpdConfigArgument(["-g", "--"]))
        XCTAssertTrue(ntpdHasSlewFlag(["-g", "-x"]))
        XCTAssertTrue(ntpdHasSlewFlag(["-gx"]))
        XCTAssertTrue(ntpdHasSlewFlag(["--slew"]))
        XCTAssertFalse(ntpdHasSlewFlag(["-g", "-p", "/x"]))
        XCTAssertFalse(ntpdHasSlewFlag(["-cx.conf"]))
    }

    func testInitSystemAndRestartCommand() throws {
        let root = TempDir()
        XCTAssertEqual(InitSystem.detect(root: root.path), .sysvinit)
        try put(root.file("etc/init.d/ntpd"), "#!/bin/sh\n")
        XCTAssertEqual(restartCommand(.sysvinit, service: serviceName(family: .ntp, root: root.path)!), ["service", "ntpd", "restart"])
        try FileManager.default.createDirectory(atPath: root.file("run/systemd/system"), withIntermediateDirectories: true)
        try put(root.file("lib/systemd/system/ntpsec.service"), "")
        XCTAssertEqual(InitSystem.detect(root: root.path), .systemd)
        XCTAssertEqual(restartCommand(.systemd, service: serviceName(family: .ntpsec, root: root.path)!), ["systemctl", "restart", "ntpsec"])
        XCTAssertEqual(restartCommand(.openrc, service: "ntpd"), ["rc-service", "ntpd", "restart"])
    }
}

final class SafeWriteTests: XCTestCase {
    func testReplaceKeepsModeOwnerAndBackup() throws {
        let dir = TempDir()
        let path = dir.file("ntp.conf")
        try put(path, "enable kernel\n")
        chmod(path, 0o640)
        if getuid() == 0 { XCTAssertEqual(chown(path, 4242, 4343), 0) }
        let original = try readConfigFile(path)
        XCTAssertEqual(try writeBackup(of: original, to: path + ".bak", force: false), .created)
        XCTAssertEqual(try writeBackup(of: original, to: path + ".bak", force: false), .alreadyThere)
        try replaceAtomically(path, with: Array("disable kernel\n".utf8), like: original)
        let after = try readConfigFile(path)
        XCTAssertEqual(String(decoding: after.bytes, as: UTF8.self), "disable kernel\n")
        XCTAssertEqual(after.mode, 0o640)
        XCTAssertEqual(after.uid, original.uid)
        XCTAssertEqual(after.gid, original.gid)
        let backup = try readConfigFile(path + ".bak")
        XCTAssertEqual(backup.bytes, original.bytes)
        XCTAssertEqual(backup.mode, 0o640)
        XCTAssertEqual(backup.uid, original.uid)
        // A different backup is not overwritten without force.
        XCTAssertThrowsError(try writeBackup(of: after, to: path + ".bak", force: false)) { error in
            XCTAssertTrue("\(error)".contains("a different backup already exists"), "\(error)")
        }
        XCTAssertEqual(try writeBackup(of: after, to: path + ".bak", force: true), .created)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted(), ["ntp.conf", "ntp.conf.bak"])
    }

    func testUserXattrFollows() throws {
        let dir = TempDir()
        let path = dir.file("ntp.conf")
        try put(path, "server a\n")
        guard (try? sh("setfattr -n user.rescuebox -v label '\(path)' 2>/dev/null"))?.status == 0 else {
            throw XCTSkip("setfattr or user xattrs not available")
        }
        try replaceAtomically(path, with: Array("server b\n".utf8), like: try readConfigFile(path))
        XCTAssertEqual(try shOK("getfattr --only-values -n user.rescuebox '\(path)'"), "label")
    }

    /// The SELinux label follows the file (set by hand here: the test host
    /// need not run SELinux; the filesystem stores the attribute anyway).
    func testSelinuxLabelFollows() throws {
        try requireRoot("setting security.* attributes")
        let dir = TempDir()
        let path = dir.file("ntp.conf")
        try put(path, "enable kernel\n")
        let label = "system_u:object_r:net_conf_t:s0"
        guard (try? sh("setfattr -n security.selinux -v '\(label)' '\(path)' 2>/dev/null"))?.status == 0 else {
            throw XCTSkip("this filesystem does not store security.selinux")
        }
        let original = try readConfigFile(path)
        XCTAssertEqual(try writeBackup(of: original, to: path + ".rescuebox-bak", force: false), .created)
        try replaceAtomically(path, with: Array("disable kernel\n".utf8), like: original)
        for file in [path, path + ".rescuebox-bak"] {
            let value = try shOK("getfattr --only-values -n security.selinux '\(file)'")
            XCTAssertEqual(value.trimmingCharacters(in: CharacterSet(charactersIn: "\0")), label, file)
        }
    }

    func testStaleTemporariesOfDeadProcessesAreRemoved() throws {
        let dir = TempDir()
        let path = dir.file("ntp.conf")
        try put(path, "server a\n")
        try put(dir.file(".ntp.conf.rescuebox-tmp.999999999.0"), "half")
        try put(dir.file(".ntp.conf.rescuebox-tmp.\(getpid()).7"), "mine")
        XCTAssertEqual(removeStaleTemporaries(next: path), [dir.file(".ntp.conf.rescuebox-tmp.999999999.0")])
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir.file(".ntp.conf.rescuebox-tmp.\(getpid()).7")))
    }

    func testReadErrors() throws {
        let dir = TempDir()
        XCTAssertThrowsError(try readConfigFile(dir.file("missing"))) { XCTAssertTrue("\($0)".hasSuffix("open: No such file or directory"), "\($0)") }
        XCTAssertThrowsError(try readConfigFile(dir.path)) { XCTAssertTrue("\($0)".contains("Is a directory"), "\($0)") }
        try Data([0x7f, 0x45, 0x4c, 0x46, 0, 1]).write(to: URL(fileURLWithPath: dir.file("bin")))
        XCTAssertThrowsError(try readConfigFile(dir.file("bin"))) { XCTAssertTrue("\($0)".contains("not a text file (NUL byte at offset 4)"), "\($0)") }
    }

    func testSymlinkedConfigIsReplacedBehindTheLink() throws {
        let dir = TempDir()
        try put(dir.file("real.conf"), "enable kernel\n")
        try FileManager.default.createSymbolicLink(atPath: dir.file("ntp.conf"), withDestinationPath: "real.conf")
        let c = try readConfigFile(dir.file("ntp.conf"))
        XCTAssertTrue(c.realPath.hasSuffix("/real.conf"))
        try replaceAtomically(c.realPath, with: Array("x\n".utf8), like: c)
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: dir.file("ntp.conf")), "real.conf")
        XCTAssertEqual(try contents(dir.file("ntp.conf")), "x\n")
    }
}
