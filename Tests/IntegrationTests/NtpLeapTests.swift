import Foundation
import XCTest
import TestSupport
import RescueCore

/// `rescuebox ntpleap` as an admin runs it: real files, real patch(1), a
/// read-only mount, a process killed between the temp write and the rename.
final class NtpLeapTests: XCTestCase {
    let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("NTPConfTests/Fixtures").path
    let appended = "disable kernel # added by rescuebox ntpleap: the kernel must not insert leap seconds itself (kernel leap-second bugs); keep this line last"

    func ntpleap(_ args: [String], env: [String: String] = [:]) throws -> RunResult {
        var environment = ProcessInfo.processInfo.environment
        for (k, v) in env { environment[k] = v }
        return try runProgram(try rescueboxBinary(), ["ntpleap"] + args, environment: environment)
    }

    func read(_ path: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: path)) }
    func write(_ path: String, _ text: String) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
    }

    func statOf(_ path: String) -> stat {
        var st = stat()
        XCTAssertEqual(stat(path, &st), 0)
        return st
    }

    /// Fixture table through the binary: --check codes, --diff applied by
    /// patch(1) equals the rewrite, mode/owner kept, backup equals the
    /// original, the second run changes nothing.
    func testFixtureTable() throws {
        _ = try which("patch")
        let names = try FileManager.default.contentsOfDirectory(atPath: fixtures).filter { !$0.contains("chrony") }.sorted()
        XCTAssertGreaterThanOrEqual(names.count, 10)
        for name in names {
            let dir = TempDir()
            let conf = dir.file("ntp.conf")
            let original = try read("\(fixtures)/\(name)")
            try original.write(to: URL(fileURLWithPath: conf))
            chmod(conf, 0o640)
            if getuid() == 0 { XCTAssertEqual(chown(conf, 4242, 4343), 0) }
            let before = statOf(conf)
            let safe = name.hasPrefix("already-safe")

            let check = try ntpleap(["--check", conf])
            XCTAssertEqual(check.status, safe ? 0 : 1, "\(name): \(check.stdoutText)\(check.stderr)")
            let diff = try ntpleap(["--diff", conf])
            XCTAssertEqual(diff.status, 0, "\(name): \(diff.stderr)")
            XCTAssertEqual(try read(conf), original, "\(name): --diff changed the file")
            XCTAssertEqual(diff.stdout.isEmpty, safe, name)

            let run = try ntpleap([conf])
            XCTAssertEqual(run.status, 0, "\(name): \(run.stderr)")
            let result = try read(conf)
            if safe {
                XCTAssertEqual(result, original, name)
                XCTAssertTrue(run.stdoutText.contains("already safe"), run.stdoutText)
                XCTAssertFalse(FileManager.default.fileExists(atPath: conf + ".rescuebox-bak"), name)
                continue
            }
            XCTAssertTrue(run.stdoutText.contains("\(conf): changed:"), run.stdoutText)
            XCTAssertTrue(String(decoding: result, as: UTF8.self).hasSuffix(appended + "\n"), name)
            // The diff, applied by GNU patch to the original, gives exactly the result.
            try original.write(to: URL(fileURLWithPath: dir.file("copy")))
            try diff.stdout.write(to: URL(fileURLWithPath: dir.file("p.diff")))
            try shOK("cd '\(dir.path)' && patch -s copy < p.diff")
            XCTAssertEqual(try read(dir.file("copy")), result, name)
            // Mode, owner, group kept; the backup is the original, with the same owner.
            let after = statOf(conf)
            XCTAssertEqual(after.st_mode, before.st_mode, name)
            XCTAssertEqual(after.st_uid, before.st_uid, name)
            XCTAssertEqual(after.st_gid, before.st_gid, name)
            XCTAssertEqual(try read(conf + ".rescuebox-bak"), original, name)
            XCTAssertEqual(statOf(conf + ".rescuebox-bak").st_uid, before.st_uid, name)
            // Idempotent: the second run and --check see a safe file.
            let again = try ntpleap([conf])
            XCTAssertEqual(again.status, 0)
            XCTAssertTrue(again.stdoutText.contains("already safe"), again.stdoutText)
            XCTAssertEqual(try read(conf), result, name)
            XCTAssertEqual(try ntpleap(["--check", conf]).status, 0, name)
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted(),
                           ["copy", "ntp.conf", "ntp.conf.rescuebox-bak", "p.diff"], name)
        }
    }

    func testCRLFNoFinalNewlineAndEnableStatsComment() throws {
        let dir = TempDir()
        let cases: [(String, String)] = [
            ("server a\r\nenable kernel stats # pps\r\nserver b\r\n", "server a\r\nenable stats # pps\r\nserver b\r\n\(appended)\r\n"),
            ("server a\nserver b", "server a\nserver b\n\(appended)\n"),
            ("enable kernel\nserver a\n#disable kernel\n", "server a\n#disable kernel\n\(appended)\n"),
        ]
        for (input, expected) in cases {
            let conf = dir.file("ntp.conf")
            try? FileManager.default.removeItem(atPath: conf + ".rescuebox-bak")
            try write(conf, input)
            XCTAssertEqual(try ntpleap(["--check", conf]).status, 1)
            XCTAssertEqual(try ntpleap([conf]).status, 0)
            XCTAssertEqual(String(decoding: try read(conf), as: UTF8.self), expected)
            XCTAssertEqual(String(decoding: try read(conf + ".rescuebox-bak"), as: UTF8.self), input)
            XCTAssertEqual(try ntpleap(["--check", conf]).status, 0)
        }
    }

    func testIncludedFileEnablingKernel() throws {
        let root = TempDir()
        try write(root.file("etc/ntp.conf"), "server a\nincludefile /etc/ntp/local.conf\ndisable kernel\n")
        try write(root.file("etc/ntp/local.conf"), "enable kernel stats\n")
        // Safe under both models already (the disable comes last), but the include names kernel:
        // reported; without --follow-includes it is left alone and nothing changes.
        let check = try ntpleap(["--root", root.path, "--check"])
        XCTAssertEqual(check.status, 0, check.stdoutText + check.stderr)
        XCTAssertTrue(check.stdoutText.contains("local.conf line 1: enable kernel left as it is"), check.stdoutText)
        // Put the include after the disable: now the in-order model enables the kernel.
        try write(root.file("etc/ntp.conf"), "server a\ndisable kernel\nincludefile /etc/ntp/local.conf\n")
        XCTAssertEqual(try ntpleap(["--root", root.path, "--check"]).status, 1)
        XCTAssertEqual(try ntpleap(["--root", root.path, "--check", "--follow-includes"]).status, 1)
        let run = try ntpleap(["--root", root.path, "--follow-includes"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertEqual(String(decoding: try read(root.file("etc/ntp/local.conf")), as: UTF8.self), "enable stats\n")
        XCTAssertEqual(String(decoding: try read(root.file("etc/ntp.conf")), as: UTF8.self), "server a\ndisable kernel\nincludefile /etc/ntp/local.conf\n")
        XCTAssertEqual(String(decoding: try read(root.file("etc/ntp/local.conf.rescuebox-bak")), as: UTF8.self), "enable kernel stats\n")
        XCTAssertEqual(try ntpleap(["--root", root.path, "--check", "--follow-includes"]).status, 0)
    }

    func testDiscoveryActsOnMainFileAndDhcpCopy() throws {
        let root = TempDir()
        try write(root.file("etc/ntp.conf"), "server a\nenable kernel\n")
        try write(root.file("run/ntp.conf.dhcp"), "server dhcp\nenable kernel\n")
        try write(root.file("etc/default/ntp"), "NTPD_OPTS='-g'\n")
        try FileManager.default.createDirectory(atPath: root.file("run/systemd/system"), withIntermediateDirectories: true)
        try write(root.file("lib/systemd/system/ntp.service"), "")
        let run = try ntpleap(["--root", root.path])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stdoutText.contains("\(root.file("etc/ntp.conf")): changed:"), run.stdoutText)
        XCTAssertTrue(run.stdoutText.contains("\(root.file("run/ntp.conf.dhcp")): changed:"), run.stdoutText)
        XCTAssertTrue(run.stdoutText.contains("DHCP copy"), run.stdoutText)
        XCTAssertTrue(run.stdoutText.contains("restart ntpd to apply (systemd): systemctl restart ntp"), run.stdoutText)
        XCTAssertEqual(try ntpleap(["--root", root.path, "--check"]).status, 0)
        // Nothing found at all: exit 2 under --check, 1 otherwise.
        let empty = TempDir()
        XCTAssertEqual(try ntpleap(["--root", empty.path, "--check"]).status, 2)
        let none = try ntpleap(["--root", empty.path])
        XCTAssertEqual(none.status, 1)
        XCTAssertTrue(none.stderr.contains("none found"), none.stderr)
    }

    func testErrorsAreOneLineAndChangeNothing() throws {
        let dir = TempDir()
        try Data([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0, 0, 0]).write(to: URL(fileURLWithPath: dir.file("binary")))
        let cases: [(String, String)] = [
            (dir.file("missing.conf"), "open: No such file or directory"),
            (dir.path, "Is a directory"),
            (dir.file("binary"), "not a text file (NUL byte at offset 7)"),
        ]
        for (path, reason) in cases {
            let r = try ntpleap([path])
            XCTAssertEqual(r.status, 1, path)
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
            XCTAssertTrue(r.stderr.hasPrefix("rescuebox ntpleap: \(path)"), r.stderr)
            XCTAssertTrue(r.stderr.contains(reason), r.stderr)
            XCTAssertEqual(try ntpleap(["--check", path]).status, 2, path)
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["binary"])
        // Unreadable: as an unprivileged user (root reads everything).
        try write(dir.file("secret.conf"), "enable kernel\n")
        chmod(dir.file("secret.conf"), 0)
        chmod(dir.path, 0o755)
        var command = [try rescueboxBinary(), "ntpleap", dir.file("secret.conf")]
        if getuid() == 0 {
            command = [try which("setpriv"), "--reuid=65534", "--regid=65534", "--clear-groups"] + command
        }
        let denied = try runProgram(command[0], Array(command.dropFirst()))
        XCTAssertEqual(denied.status, 1, denied.stderr)
        XCTAssertEqual(denied.stderr, "rescuebox ntpleap: \(dir.file("secret.conf")): open: Permission denied\n")
        XCTAssertEqual(String(decoding: try read(dir.file("secret.conf")), as: UTF8.self), "enable kernel\n")
    }

    func testDifferentBackupIsKeptUnlessForced() throws {
        let dir = TempDir()
        let conf = dir.file("ntp.conf")
        try write(conf, "enable kernel\n")
        try write(conf + ".rescuebox-bak", "an older backup\n")
        let r = try ntpleap([conf])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("a different backup already exists"), r.stderr)
        XCTAssertEqual(String(decoding: try read(conf), as: UTF8.self), "enable kernel\n")
        XCTAssertEqual(String(decoding: try read(conf + ".rescuebox-bak"), as: UTF8.self), "an older backup\n")
        // Another suffix, or --force.
        XCTAssertEqual(try ntpleap(["--backup", ".pre-leap", conf]).status, 0)
        XCTAssertEqual(String(decoding: try read(conf + ".pre-leap"), as: UTF8.self), "enable kernel\n")
        XCTAssertEqual(try ntpleap(["--restore", "--backup", ".pre-leap", conf]).status, 0)
        XCTAssertEqual(try ntpleap(["--force", conf]).status, 0)
        XCTAssertEqual(String(decoding: try read(conf + ".rescuebox-bak"), as: UTF8.self), "enable kernel\n")
    }

    func testRestorePutsTheBackupBack() throws {
        let dir = TempDir()
        let conf = dir.file("ntp.conf")
        try write(conf, "server a\r\nenable kernel\r\n")
        chmod(conf, 0o600)
        XCTAssertEqual(try ntpleap([conf]).status, 0)
        let r = try ntpleap(["--restore", conf])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdoutText.contains("restored from"), r.stdoutText)
        XCTAssertEqual(String(decoding: try read(conf), as: UTF8.self), "server a\r\nenable kernel\r\n")
        XCTAssertEqual(statOf(conf).st_mode & 0o7777, 0o600)
        XCTAssertTrue(try ntpleap(["--restore", conf]).stdoutText.contains("already equal"))
        let none = try ntpleap(["--restore", dir.file("other.conf")])
        XCTAssertEqual(none.status, 1)
        XCTAssertTrue(none.stderr.contains("other.conf.rescuebox-bak: open: No such file or directory"), none.stderr)
    }

    /// A read-only filesystem: a clear one-line error, nothing changed; --check still answers.
    func testReadOnlyMountFailsCleanly() throws {
        try requireRoot("mounting a tmpfs read-only")
        let dir = TempDir()
        let mnt = dir.file("mnt")
        try FileManager.default.createDirectory(atPath: mnt, withIntermediateDirectories: true)
        guard try sh("mount -t tmpfs -o size=1m tmpfs '\(mnt)'").status == 0 else { throw XCTSkip("cannot mount tmpfs here") }
        defer { _ = try? sh("umount '\(mnt)'") }
        let conf = "\(mnt)/ntp.conf"
        try write(conf, "enable kernel\n")
        guard try sh("mount -o remount,ro '\(mnt)'").status == 0 else { throw XCTSkip("cannot remount read-only") }
        let r = try ntpleap([conf])
        XCTAssertEqual(r.status, 1)
        XCTAssertEqual(r.stderr, "rescuebox ntpleap: \(mnt): write: Read-only file system\n")
        XCTAssertEqual(String(decoding: try read(conf), as: UTF8.self), "enable kernel\n")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: mnt), ["ntp.conf"])
        XCTAssertEqual(try ntpleap(["--check", conf]).status, 1)
    }

    /// RESCUEBOX_NTPLEAP_CRASH=after-temp makes ntpleap SIGKILL itself after
    /// the temporary file is written and synced, before the rename: the
    /// original stays, and the next run cleans the leftover and succeeds.
    func testKilledBetweenTempWriteAndRename() throws {
        let dir = TempDir()
        let conf = dir.file("ntp.conf")
        let original = "server a\nenable kernel stats\n"
        try write(conf, original)
        let crashed = try ntpleap([conf], env: ["RESCUEBOX_NTPLEAP_CRASH": "after-temp"])
        XCTAssertEqual(crashed.status, 128 + SIGKILL, crashed.stderr)  // runProgram reports a signal as a shell does
        XCTAssertEqual(String(decoding: try read(conf), as: UTF8.self), original)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.contains("rescuebox-tmp") }
        XCTAssertEqual(leftovers.count, 1, "the killed run leaves its temporary file")
        XCTAssertEqual(try ntpleap(["--check", conf]).status, 1)
        let r = try ntpleap([conf])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("\(leftovers[0]): removed (a temporary file left by an interrupted run)"), r.stderr)
        XCTAssertEqual(String(decoding: try read(conf), as: UTF8.self), "server a\nenable stats\n\(appended)\n")
        XCTAssertEqual(String(decoding: try read(conf + ".rescuebox-bak"), as: UTF8.self), original)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted(), ["ntp.conf", "ntp.conf.rescuebox-bak"])
    }

    func testStatusAndClearKernelLeapRefusedWhileNtpdRuns() throws {
        let root = TempDir()
        try write(root.file("etc/ntp.conf"), "server a\n")
        try write(root.file("etc/chrony/chrony.conf"), "pool p\n")
        try write(root.file("proc/77/cmdline"), "/usr/sbin/ntpd\0-p\0/run/ntpd.pid\0-gx\0")
        try write(root.file("etc/init.d/ntp"), "#!/bin/sh\n")
        try write(root.file("etc/init.d/chrony"), "#!/bin/sh\n")
        let status = try ntpleap(["--root", root.path, "--status"])
        XCTAssertEqual(status.status, 0, status.stderr)
        let out = status.stdoutText
        XCTAssertTrue(out.contains("ntp.conf \(root.file("etc/ntp.conf")) (main configuration): CHANGE NEEDED"), out)
        XCTAssertTrue(out.contains("chrony.conf \(root.file("etc/chrony/chrony.conf")) (main configuration): CHANGE NEEDED: no leapsecmode"), out)
        XCTAssertTrue(out.contains("ntpd: running (pid 77) with -x"), out)
        XCTAssertTrue(out.contains("chrony in use: yes"), out)
        // The kernel lines are the running kernel's, said so, never the image's: exactly one
        // of the two adjtimex outcomes, under that label.
        let whose = "  running kernel (the rescue system's, not the system under \(root.path))"
        let kernelLines = out.components(separatedBy: "\n").filter { $0.hasPrefix(whose) }
        XCTAssertEqual(kernelLines.count, 2, out)
        XCTAssertTrue(kernelLines[0].hasPrefix(whose + " \(try unameRelease()): leap-second defect: "), out)
        let state = kernelLines[1]
        XCTAssertTrue(state.hasPrefix(whose + ": no leap second armed in the kernel (adjtimex time state ")
                      || state.hasPrefix(whose + ": a leap second INSERTION is armed")
                      || state.hasPrefix(whose + ": a leap second DELETION is armed")
                      || state.hasPrefix(whose + ": leap state unknown: kernel clock: adjtimex (read): "), state)
        XCTAssertTrue(out.contains("restart (sysvinit):\n  service ntp restart\n  service chrony restart"), out)

        let clear = try ntpleap(["--root", root.path, "--clear-kernel-leap"])
        XCTAssertEqual(clear.status, 1)
        XCTAssertTrue(clear.stderr.contains("ntpd is running (pid 77)"), clear.stderr)
        XCTAssertTrue(clear.stderr.contains("service ntp stop"), clear.stderr)
        // No daemon (an empty root): reading the kernel state is harmless; with no
        // leap armed there is nothing to clear. (Never arm a leap on the test host.)
        let empty = TempDir()
        let noProc = try ntpleap(["--root", empty.path, "--clear-kernel-leap"])
        XCTAssertEqual(noProc.status, 1)
        XCTAssertTrue(noProc.stderr.contains("cannot tell whether ntpd or chronyd runs"), noProc.stderr)
        try FileManager.default.createDirectory(atPath: empty.file("proc"), withIntermediateDirectories: true)
        let idle = try ntpleap(["--root", empty.path, "--clear-kernel-leap"])
        if idle.stdoutText.contains("is armed in the kernel") { throw XCTSkip("a leap second is armed on this host") }
        if idle.status != 0 && idle.stderr.contains("adjtimex") { throw XCTSkip("adjtimex not readable here: \(idle.stderr)") }
        XCTAssertEqual(idle.status, 0, idle.stderr)
        XCTAssertTrue(idle.stdoutText.contains("no leap second armed in the kernel; nothing to clear"), idle.stdoutText)
    }

    func testChrony() throws {
        let root = TempDir()
        let conf = root.file("etc/chrony.conf")
        try write(conf, "server a iburst\nleapsecmode system\nrtcsync")
        XCTAssertEqual(try ntpleap(["--root", root.path, "--chrony", "--check"]).status, 1)
        let r = try ntpleap(["--root", root.path, "--chrony"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(String(decoding: try read(conf), as: UTF8.self), "server a iburst\nleapsecmode slew\nrtcsync")
        XCTAssertEqual(try ntpleap(["--root", root.path, "--chrony", "--check"]).status, 0)
        try write(conf, "server a iburst\n")
        try? FileManager.default.removeItem(atPath: conf + ".rescuebox-bak")
        XCTAssertEqual(try ntpleap(["--chrony", conf]).status, 0)
        XCTAssertTrue(String(decoding: try read(conf), as: UTF8.self).hasSuffix("\nleapsecmode slew\n"))
    }

    func testHelpAndBadOptions() throws {
        let help = try ntpleap(["--help"])
        XCTAssertEqual(help.status, 0)
        XCTAssertTrue(help.stdoutText.contains("EXAMPLES:"), help.stdoutText)
        XCTAssertTrue(help.stdoutText.contains("--follow-includes"))
        let both = try ntpleap(["--check", "--diff"])
        XCTAssertEqual(both.status, 2)
        XCTAssertEqual(both.stderr.split(separator: "\n").count, 1, both.stderr)
        XCTAssertEqual(try ntpleap(["--restart", "--root", "/tmp"]).status, 2)
    }
}

extension NtpLeapTests {
    func unameRelease() throws -> String { try shOK("uname -r") }

    /// Runs ntpleap in a private mount namespace whose /etc/init.d is `initd`
    /// (a bind mount: the host's /etc/init.d is never changed), with `bin`
    /// first on PATH.
    func ntpleapWithInitScripts(_ initd: String, bin: String, _ args: [String]) throws -> RunResult {
        try requireRoot("a private mount namespace (unshare -m) for a stand-in /etc/init.d")
        let quoted = args.map { "'\($0)'" }.joined(separator: " ")
        let path = bin + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")
        return try sh("PATH='\(path)' unshare -m --propagation private sh -c \"mount --bind '\(initd)' /etc/init.d && exec '\(try rescueboxBinary())' ntpleap \(quoted)\"")
    }

    /// --restart runs the init system's restart command (a recording stand-in
    /// first on PATH here), only after a change; and the service is the one
    /// whose init script exists (issue 14, defect 7: a host with only
    /// /etc/init.d/ntpsec is told `service ntpsec restart`, never `ntp`).
    func testRestartRunsTheCommandAfterAChange() throws {
        try requireRoot("a private mount namespace (unshare -m) for a stand-in /etc/init.d")
        let dir = TempDir()
        let bin = dir.file("bin")
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        for tool in ["systemctl", "service", "rc-service"] {
            try write("\(bin)/\(tool)", "#!/bin/sh\necho \"\(tool) $*\" >> '\(dir.file("calls"))'\n")
            chmod("\(bin)/\(tool)", 0o755)
        }
        let initd = dir.file("init.d")
        try write(initd + "/ntpsec", "#!/bin/sh\n")
        let conf = dir.file("ntp.conf")
        try write(conf, "enable kernel\n")
        // The hint without --restart: from the init script that exists.
        let hint = try ntpleapWithInitScripts(initd, bin: bin, [conf])
        XCTAssertEqual(hint.status, 0, hint.stderr)
        XCTAssertTrue(hint.stdoutText.hasSuffix("restart ntpd to apply (\(try initSystemOfHost())): \(try restartOfHost("ntpsec"))\n"), hint.stdoutText)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.file("calls")))
        try write(conf, "enable kernel\n")
        try FileManager.default.removeItem(atPath: conf + ".rescuebox-bak")
        let r = try ntpleapWithInitScripts(initd, bin: bin, ["--restart", conf])
        XCTAssertEqual(r.status, 0, r.stderr)
        let calls = String(decoding: try read(dir.file("calls")), as: UTF8.self)
        XCTAssertEqual(calls, try restartOfHost("ntpsec") + "\n")
        XCTAssertTrue(r.stdoutText.contains("restarting: \(try restartOfHost("ntpsec"))"), r.stdoutText)
        // Already safe: no restart.
        XCTAssertEqual(try ntpleapWithInitScripts(initd, bin: bin, ["--restart", conf]).status, 0)
        XCTAssertEqual(String(decoding: try read(dir.file("calls")), as: UTF8.self), calls)
        // No init script or unit at all: the hint says so instead of inventing one.
        try FileManager.default.removeItem(atPath: initd + "/ntpsec")
        try write(conf, "enable kernel\n")
        try FileManager.default.removeItem(atPath: conf + ".rescuebox-bak")
        let none = try ntpleapWithInitScripts(initd, bin: bin, [conf])
        XCTAssertEqual(none.status, 0, none.stderr)
        if try restartOfHost("ntpsec").hasPrefix("service") {
            XCTAssertTrue(none.stdoutText.contains("restart ntpd to apply: no unit or init script found for it (looked for ntp, ntpd, ntpsec)"), none.stdoutText)
        }
    }

    /// This host's init system as ntpleap sees it, and its restart command for `service`.
    func initSystemOfHost() throws -> String {
        FileManager.default.fileExists(atPath: "/run/systemd/system") ? "systemd" : "sysvinit"
    }
    func restartOfHost(_ service: String) throws -> String {
        try initSystemOfHost() == "systemd" ? "systemctl restart \(service)" : "service \(service) restart"
    }
}

extension NtpLeapTests {
    func testRestoreWithoutFileRestoresWhatWasChanged() throws {
        let root = TempDir()
        try write(root.file("etc/ntp.conf"), "server a\nenable kernel\n")
        try write(root.file("run/ntp.conf.dhcp"), "server dhcp\ndisable kernel\n")
        let run = try ntpleap(["--root", root.path])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stdoutText.contains("\(root.file("run/ntp.conf.dhcp")): already safe"), run.stdoutText)
        let restore = try ntpleap(["--root", root.path, "--restore"])
        XCTAssertEqual(restore.status, 0, restore.stderr)
        XCTAssertTrue(restore.stdoutText.contains("\(root.file("etc/ntp.conf")): restored from"), restore.stdoutText)
        XCTAssertTrue(restore.stdoutText.contains("\(root.file("run/ntp.conf.dhcp")): no backup"), restore.stdoutText)
        XCTAssertEqual(String(decoding: try read(root.file("etc/ntp.conf")), as: UTF8.self), "server a\nenable kernel\n")
    }

    /// Two files, the second on a read-only mount: the first is not changed either.
    func testReadOnlySecondFileChangesNothing() throws {
        try requireRoot("mounting a tmpfs read-only")
        let root = TempDir()
        try write(root.file("etc/ntp.conf"), "enable kernel\n")
        let run = root.file("run")
        try FileManager.default.createDirectory(atPath: run, withIntermediateDirectories: true)
        guard try sh("mount -t tmpfs -o size=1m tmpfs '\(run)'").status == 0 else { throw XCTSkip("cannot mount tmpfs here") }
        defer { _ = try? sh("umount '\(run)'") }
        try write(root.file("run/ntp.conf.dhcp"), "enable kernel\n")
        guard try sh("mount -o remount,ro '\(run)'").status == 0 else { throw XCTSkip("cannot remount read-only") }
        let r = try ntpleap(["--root", root.path])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.hasSuffix("\(run): write: Read-only file system\n"), r.stderr)
        XCTAssertEqual(String(decoding: try read(root.file("etc/ntp.conf")), as: UTF8.self), "enable kernel\n")
        XCTAssertFalse(FileManager.default.fileExists(atPath: root.file("etc/ntp.conf.rescuebox-bak")))
    }
}

/// Issue 14: --root never touches the host; DHCP gap; chrony trailing text;
/// FIFOs; --json.
extension NtpLeapTests {
    /// Defects 1 and 2: a FILE argument and an absolute link inside the image
    /// both resolve inside --root; the host's file of the same name is never
    /// read or written; a link that leaves the root is refused in one line.
    func testRootConfinesFileArgumentsAndAbsoluteLinks() throws {
        let host = TempDir()  // stands for the rescue system's own files
        let root = TempDir()
        let hostConf = host.file("etc-ntp.conf")
        try write(hostConf, "enable kernel\n")
        try write(root.path + hostConf, "enable kernel\n")  // the same path, inside the image
        let named = try ntpleap(["--root", root.path, hostConf])
        XCTAssertEqual(named.status, 0, named.stderr)
        XCTAssertEqual(String(decoding: try read(hostConf), as: UTF8.self), "enable kernel\n", "the host's file was changed")
        XCTAssertFalse(FileManager.default.fileExists(atPath: hostConf + ".rescuebox-bak"))
        XCTAssertEqual(String(decoding: try read(root.path + hostConf), as: UTF8.self), "\(appended)\n")
        XCTAssertEqual(try ntpleap(["--root", root.path, "--check", hostConf]).status, 0)
        XCTAssertEqual(try ntpleap(["--check", hostConf]).status, 1, "without --root it is the host's file")
        let restored = try ntpleap(["--root", root.path, "--restore", hostConf])
        XCTAssertEqual(restored.status, 0, restored.stderr)
        XCTAssertEqual(String(decoding: try read(root.path + hostConf), as: UTF8.self), "enable kernel\n")
        XCTAssertEqual(String(decoding: try read(hostConf), as: UTF8.self), "enable kernel\n")

        // R/etc/ntpsec/ntp.conf -> /HOST/x.conf (absolute): chroot reads R/HOST/x.conf.
        let hostTarget = host.file("x.conf")
        try write(hostTarget, "enable kernel\n")
        try write(root.path + hostTarget, "server a\nenable kernel\n")
        try FileManager.default.createDirectory(atPath: root.file("etc/ntpsec"), withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: root.file("etc/ntpsec/ntp.conf"), withDestinationPath: hostTarget)
        let run = try ntpleap(["--root", root.path])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stdoutText.contains("\(root.file("etc/ntpsec/ntp.conf")) (via \(root.path + hostTarget)): changed:"), run.stdoutText)
        XCTAssertEqual(String(decoding: try read(hostTarget), as: UTF8.self), "enable kernel\n", "the host's link target was changed")
        XCTAssertEqual(String(decoding: try read(root.path + hostTarget), as: UTF8.self), "server a\n\(appended)\n")
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: root.file("etc/ntpsec/ntp.conf")), hostTarget)
        XCTAssertEqual(String(decoding: try read(root.file("etc/ntpsec/ntp.conf.rescuebox-bak")), as: UTF8.self), "server a\nenable kernel\n")

        // A link that climbs out of the root: refused, one line, nothing written.
        let escape = TempDir()
        try FileManager.default.createDirectory(atPath: escape.file("etc"), withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: escape.file("etc/ntp.conf"), withDestinationPath: "../../../../../../../../../.." + hostConf)
        let refused = try ntpleap(["--root", escape.path])
        XCTAssertEqual(refused.status, 1)
        XCTAssertEqual(refused.stderr, "rescuebox ntpleap: \(escape.file("etc/ntp.conf")): resolve symbolic link: its target leaves \(escape.path) (refused: under --root every path stays inside it)\n")
        XCTAssertEqual(try ntpleap(["--root", escape.path, "--check"]).status, 2)
        XCTAssertEqual(String(decoding: try read(hostConf), as: UTF8.self), "enable kernel\n")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: escape.file("etc")), ["ntp.conf"])
    }

    /// Defect 3: with an admin -c file and a DHCP copy, the file Debian's
    /// dhclient hook rebuilds the copy from is fixed too.
    func testDhcpCopyAndTheHookSourceAreBothFixed() throws {
        let root = TempDir()
        try write(root.file("etc/default/ntpsec"), "NTPD_OPTS=\"-g -N -c /etc/ntpsec/custom.conf\"\nIGNORE_DHCP=\"\"\n")
        for f in ["etc/ntpsec/custom.conf", "etc/ntpsec/ntp.conf", "run/ntpsec/ntp.conf.dhcp"] {
            try write(root.file(f), "server a\nenable kernel\n")
        }
        let run = try ntpleap(["--root", root.path])
        XCTAssertEqual(run.status, 0, run.stderr)
        for f in ["etc/ntpsec/custom.conf", "etc/ntpsec/ntp.conf", "run/ntpsec/ntp.conf.dhcp"] {
            XCTAssertEqual(String(decoding: try read(root.file(f)), as: UTF8.self), "server a\n\(appended)\n", f)
        }
        XCTAssertTrue(run.stdoutText.contains("\(root.file("etc/ntpsec/ntp.conf")): the dhclient hook rebuilds \(root.file("run/ntpsec/ntp.conf.dhcp")) from it at every lease"), run.stdoutText)
        XCTAssertTrue(run.stdoutText.contains("\(root.file("run/ntpsec/ntp.conf.dhcp")): DHCP copy that ntpd reads instead of \(root.file("etc/ntpsec/custom.conf"))"), run.stdoutText)
        // IGNORE_DHCP=yes: the copy is not "what ntpd reads", and the hook's source is not in play.
        let ignored = TempDir()
        try write(ignored.file("etc/default/ntpsec"), "NTPD_OPTS=\"-g -N -c /etc/ntpsec/custom.conf\"\nIGNORE_DHCP=\"yes\"\n")
        for f in ["etc/ntpsec/custom.conf", "etc/ntpsec/ntp.conf", "run/ntpsec/ntp.conf.dhcp"] {
            try write(ignored.file(f), "server a\nenable kernel\n")
        }
        let check = try ntpleap(["--root", ignored.path, "--check"])
        XCTAssertEqual(check.status, 1)
        XCTAssertFalse(check.stdoutText.contains("ntpd reads instead"), check.stdoutText)
        XCTAssertTrue(check.stdoutText.contains("\(ignored.file("run/ntpsec/ntp.conf.dhcp")): DHCP copy, not read by ntpd (IGNORE_DHCP=yes in \(ignored.file("etc/default/ntpsec")))"), check.stdoutText)
        XCTAssertFalse(check.stdoutText.contains("\(ignored.file("etc/ntpsec/ntp.conf")):"), check.stdoutText)
    }

    /// Defect 4: chrony has no trailing comments; chronyd refuses such a
    /// line, so ntpleap neither rewrites the file nor calls it safe.
    func testChronyTrailingTextIsAnErrorNeverSafe() throws {
        for line in ["leapsecmode system # note", "leapsecmode slew extra"] {
            let root = TempDir()
            let conf = root.file("etc/chrony.conf")
            try write(conf, "server a iburst\n\(line)\n")
            let check = try ntpleap(["--root", root.path, "--chrony", "--check"])
            XCTAssertEqual(check.status, 2, line + check.stdoutText)
            XCTAssertEqual(check.stderr, "rescuebox ntpleap: \(conf) line 2: check: chronyd refuses it (\"Could not parse leapsecmode directive\"): text after the mode (chrony has no trailing comments); it takes exactly one of system, slew, step, ignore; fix this line by hand (nothing changed)\n")
            XCTAssertFalse(check.stdoutText.contains("safe"), check.stdoutText)
            let run = try ntpleap(["--root", root.path, "--chrony"])
            XCTAssertEqual(run.status, 1)
            XCTAssertEqual(String(decoding: try read(conf), as: UTF8.self), "server a iburst\n\(line)\n")
            XCTAssertFalse(FileManager.default.fileExists(atPath: conf + ".rescuebox-bak"))
            let status = try ntpleap(["--root", root.path, "--chrony", "--status"])
            XCTAssertTrue(status.stdoutText.contains("chrony.conf \(conf) (main configuration): ERROR (chronyd would not start): \(conf) line 2: chronyd refuses it"), status.stdoutText)
        }
    }

    /// Defect 5: a FIFO is a one-line error at once, never a hang in open(2).
    func testFifoIsAnErrorNotAHang() throws {
        let dir = TempDir()
        XCTAssertEqual(mkfifo(dir.file("ntp.conf"), 0o644), 0)
        let check = try runProgram(try rescueboxBinary(), ["ntpleap", "--check", dir.file("ntp.conf")], timeout: 30)
        XCTAssertEqual(check.status, 2)
        XCTAssertEqual(check.stderr, "rescuebox ntpleap: \(dir.file("ntp.conf")): read: not a regular file (a FIFO)\n")
        let run = try runProgram(try rescueboxBinary(), ["ntpleap", dir.file("ntp.conf")], timeout: 30)
        XCTAssertEqual(run.status, 1)
    }

    /// --json: one object with every file, why it was chosen, the verdict,
    /// the changes needed, and the kernel facts.
    func testJsonForCheckAndStatus() throws {
        let root = TempDir()
        try write(root.file("etc/ntp.conf"), "server a\nenable kernel\n")
        try write(root.file("run/ntp.conf.dhcp"), "server b\ndisable kernel\n")
        try write(root.file("etc/init.d/ntp"), "#!/bin/sh\n")
        let check = try ntpleap(["--root", root.path, "--check", "--json"])
        XCTAssertEqual(check.status, 1, check.stderr)
        XCTAssertEqual(check.stdoutText.split(separator: "\n").count, 1, check.stdoutText)
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: check.stdout) as? [String: Any])
        let files = try XCTUnwrap(object["files"] as? [[String: Any]])
        XCTAssertEqual(files.map { $0["path"] as? String }, [root.file("etc/ntp.conf"), root.file("run/ntp.conf.dhcp"), root.file("etc/ntp.conf")].prefix(2).map { $0 })
        XCTAssertEqual(files[0]["verdict"] as? String, "change-needed")
        XCTAssertEqual(files[0]["origin"] as? String, "main")
        XCTAssertEqual(files[0]["daemon"] as? String, "ntp")
        XCTAssertEqual(files[0]["changes"] as? [String], ["\(root.file("etc/ntp.conf")): line 2: removed 'enable kernel'", "\(root.file("etc/ntp.conf")): line 2: appended 'disable kernel'"])
        XCTAssertEqual(files[1]["verdict"] as? String, "safe")
        XCTAssertEqual(files[1]["origin"] as? String, "dhcp-copy")
        XCTAssertTrue((files[1]["why"] as? String ?? "").hasPrefix("DHCP copy that ntpd reads instead of"))
        XCTAssertEqual(object["exit"] as? Int, 1)
        XCTAssertEqual(String(decoding: try read(root.file("etc/ntp.conf")), as: UTF8.self), "server a\nenable kernel\n")

        let status = try ntpleap(["--root", root.path, "--status", "--json"])
        XCTAssertEqual(status.status, 0, status.stderr)
        let s = try XCTUnwrap(try JSONSerialization.jsonObject(with: status.stdout) as? [String: Any])
        let kernel = try XCTUnwrap(s["kernel"] as? [String: Any])
        XCTAssertEqual(kernel["release"] as? String, try unameRelease())
        XCTAssertEqual(kernel["whose"] as? String, "running kernel")
        let defect = try XCTUnwrap(kernel["leap_second_defect"] as? [String: Any])
        XCTAssertTrue(["affected", "not affected", "unknown"].contains(defect["verdict"] as? String ?? ""), "\(defect)")
        XCTAssertEqual(s["restart"] as? [String], [try restartOfHost("ntp")])
        XCTAssertEqual((s["files"] as? [[String: Any]])?.count, 2)
        // --json needs --check or --status; --live needs --status.
        XCTAssertEqual(try ntpleap(["--json"]).status, 2)
        XCTAssertEqual(try ntpleap(["--live", "--check"]).status, 2)
    }

    /// The kernel verdict is information, not an alarm, when the configuration
    /// is safe; kernels installed in the image are judged by their names.
    func testStatusJudgesImageKernelsByName() throws {
        let root = TempDir()
        try write(root.file("etc/ntp.conf"), "server a\ndisable kernel\n")
        for k in ["2.6.32-279.el6.x86_64", "2.6.32-358.el6.x86_64"] {
            try FileManager.default.createDirectory(atPath: root.file("lib/modules/\(k)"), withIntermediateDirectories: true)
        }
        let status = try ntpleap(["--root", root.path, "--status"])
        XCTAssertEqual(status.status, 0, status.stderr)
        let out = status.stdoutText
        XCTAssertTrue(out.contains("  installed under \(root.path): 2.6.32-279.el6.x86_64: leap-second defect: affected: RHEL 6 kernel before 2.6.32-358.el6"), out)
        XCTAssertTrue(out.contains("  installed under \(root.path): 2.6.32-358.el6.x86_64: leap-second defect: not affected"), out)
        XCTAssertFalse(out.contains("WARNING"), out)
    }
}

/// The real daemons as judges (issue 14): ntpsec's ntpd runs every rewritten
/// fixture in `unshare -n -i -m` (loopback only, its own SysV IPC, tmpfs over
/// /var/log and /var/lib) with CAP_SYS_TIME dropped by capsh, so it can never
/// adjust the clock; `chronyd -p` parses every rewritten chrony.conf. Both
/// come unpacked from their Debian packages (they conflict with each other
/// and with systemd-timesyncd as installed packages; unpacking starts no
/// service): scripts/test.sh prepares them in .build/time-daemons.
extension NtpLeapTests {
    var packageDirectory: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    }

    /// The directory holding usr/sbin/ntpd (ntpsec) and usr/sbin/chronyd.
    func timeDaemons() throws -> String {
        let dir = ProcessInfo.processInfo.environment["RESCUEBOX_TIME_DAEMONS"] ?? packageDirectory + "/.build/time-daemons"
        let fm = FileManager.default
        if !fm.isExecutableFile(atPath: dir + "/usr/sbin/ntpd") || !fm.isExecutableFile(atPath: dir + "/usr/sbin/chronyd") {
            let fetched = try sh("mkdir -p '\(dir)/debs' && cd '\(dir)/debs' && apt-get download ntpsec chrony >/dev/null 2>&1 && for f in *.deb; do dpkg -x \"$f\" ..; done")
            if fetched.status != 0 { throw XCTSkip("ntpsec and chrony cannot be installed here (apt-get download failed): \(fetched.stderr)") }
        }
        return dir
    }

    /// An ntpsec ntpd in its own network, IPC and mount namespaces, without
    /// CAP_SYS_TIME. Stopped by its PID.
    final class SandboxedNtpd {
        let pid: pid_t
        let log: String
        var stopped = false
        init(ntpd: String, config: String, in dir: TempDir, name: String) throws {
            log = dir.file("\(name).log")
            let script = dir.file("\(name).sh")
            try Data("""
                set -e
                ip link set lo up
                mount -t tmpfs tmpfs /var/log
                mount -t tmpfs tmpfs /var/lib
                exec capsh --drop=cap_sys_time -- -c 'exec "$0" "$@"' '\(ntpd)' -n -c '\(config)' -l '\(log)'

                """.utf8).write(to: URL(fileURLWithPath: script))
            let out = open(dir.file("\(name).out"), O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            defer { close(out) }
            pid = try spawnProcess([try which("unshare"), "-n", "-i", "-m", "--propagation", "private", "/bin/sh", script], stdout: out)
        }
        /// The log, and the file a `logfile` line switched it to (read through
        /// /proc/PID/root: it is inside the daemon's own /var/log tmpfs).
        func logText() -> String {
            var text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            let marker = "LOG: switching logging to file "
            for line in text.split(separator: "\n") {
                guard let r = line.range(of: marker) else { continue }
                let path = "/proc/\(pid)/root" + String(line[r.upperBound...])
                text += (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
            }
            return text
        }
        func stop() {
            guard !stopped else { return }
            stopped = true
            kill(pid, SIGTERM)
            _ = waitForProcess(pid)
        }
        deinit { if !stopped { kill(pid, SIGKILL); _ = waitForProcess(pid) } }
    }

    /// capsh really leaves CAP_SYS_TIME (bit 25) out of what the daemon gets.
    func assertCapSysTimeDropped() throws {
        let r = try sh("unshare -n -i -m --propagation private sh -c \"exec capsh --drop=cap_sys_time -- -c 'grep ^CapEff: /proc/self/status'\"")
        XCTAssertEqual(r.status, 0, r.stderr)
        let hex = r.stdoutText.split(separator: "\t").last.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) } ?? ""
        let eff = try XCTUnwrap(UInt64(hex, radix: 16), r.stdoutText)
        XCTAssertEqual(eff & (1 << 25), 0, "CAP_SYS_TIME still effective: \(r.stdoutText)")
        if eff & (1 << 25) != 0 { throw XCTSkip("refusing to start a daemon that could adjust the clock") }
    }

    /// ntpd's configuration complaints, without line numbers (lines shift
    /// when an enable line goes) or timestamps.
    func configComplaints(_ log: String) -> Set<String> {
        var out = Set<String>()
        for line in log.split(separator: "\n") where line.contains("CONFIG:") && !line.contains("readconfig: parsing file") {
            var text = String(line[line.range(of: "CONFIG:")!.lowerBound...])
            text = text.replacingOccurrences(of: #"line \d+,? column \d+"#, with: "line L", options: .regularExpression)
            text = text.replacingOccurrences(of: #"(original|rewritten)\.conf"#, with: "CONF", options: .regularExpression)
            text = text.replacingOccurrences(of: #"/var/tmp/rescuebox-test\.[^/ ]+/"#, with: "DIR/", options: .regularExpression)
            out.insert(text)
        }
        return out
    }

    func runNtpd(_ ntpd: String, config text: String, dir: TempDir, name: String) throws -> String {
        let config = dir.file("\(name).conf")
        // Every event logged (freq_set among them); ntpleap's line stays last.
        try Data(("logconfig =all\n" + text).utf8).write(to: URL(fileURLWithPath: config))
        let daemon = try SandboxedNtpd(ntpd: ntpd, config: config, in: dir, name: name)
        defer { daemon.stop() }
        try waitFor("ntpd to log freq_set (\(name))", timeout: 30, detail: {
            "log:\n\(daemon.logText())\noutput:\n\((try? String(contentsOfFile: dir.file("\(name).out"), encoding: .utf8)) ?? "")"
        }) { daemon.logText().contains(" freq_set ") }
        return daemon.logText()
    }

    /// ntpsec accepts every rewritten fixture with no new config error, and
    /// uses its own discipline: `freq_set ntpd` (the original, with the kernel
    /// discipline on, logs `freq_set kernel`).
    func testNtpsecAcceptsEveryRewrittenFixture() throws {
        try requireRoot("network and mount namespaces for ntpd")
        let ntpd = try timeDaemons() + "/usr/sbin/ntpd"
        let version = try runProgram(ntpd, ["--version"])
        XCTAssertEqual(version.status, 0, version.stderr)
        XCTAssertTrue(version.stdoutText.contains("ntpsec"), version.stdoutText)
        try assertCapSysTimeDropped()
        let names = try FileManager.default.contentsOfDirectory(atPath: fixtures).filter { !$0.contains("chrony") }.sorted()
        XCTAssertGreaterThanOrEqual(names.count, 10)
        for name in names {
            let dir = TempDir()
            let original = String(decoding: try read("\(fixtures)/\(name)"), as: UTF8.self)
            let conf = dir.file("ntp.conf")
            try write(conf, original)
            XCTAssertEqual(try ntpleap([conf]).status, 0, name)
            let rewritten = String(decoding: try read(conf), as: UTF8.self)
            let before = try runNtpd(ntpd, config: original, dir: dir, name: "original")
            let after = try runNtpd(ntpd, config: rewritten, dir: dir, name: "rewritten")
            let new = configComplaints(after).subtracting(configComplaints(before))
            XCTAssertTrue(new.isEmpty, "\(name): new config errors after the rewrite: \(new)")
            XCTAssertTrue(after.contains(" freq_set ntpd "), "\(name): \(after)")
            XCTAssertFalse(after.contains(" freq_set kernel "), name)
            let disabled = original.split(separator: "\n").contains { $0.hasPrefix("disable") && $0.contains("kernel") }
            if !disabled { XCTAssertTrue(before.contains(" freq_set kernel "), "\(name): the original should use the kernel: \(before)") }
        }
    }

    /// `chronyd -p` accepts every rewritten chrony fixture and prints
    /// `leapsecmode slew`; a line it refuses is refused by ntpleap as well.
    func testChronydParsesEveryRewrittenChronyFixture() throws {
        let chronyd = try timeDaemons() + "/usr/sbin/chronyd"
        let dir = TempDir()
        var inputs: [(String, String)] = try FileManager.default.contentsOfDirectory(atPath: fixtures)
            .filter { $0.contains("chrony") }.sorted()
            .map { ($0, String(decoding: try read("\(fixtures)/\($0)"), as: UTF8.self)) }
        inputs += [("crlf", "server a iburst\r\nleapsecmode system\r\n"), ("none", "pool p iburst"),
                   ("twice", "leapsecmode slew\nLEAPSECMODE System\n"), ("step", "leapsecmode step\n")]
        XCTAssertGreaterThanOrEqual(inputs.count, 6)
        for (name, text) in inputs {
            let conf = dir.file("\(name).conf")
            try write(conf, text)
            let original = try runProgram(chronyd, ["-p", "-f", conf])
            XCTAssertEqual(original.status, 0, "\(name): \(original.stderr)")
            XCTAssertEqual(try ntpleap(["--chrony", conf]).status, 0, name)
            let parsed = try runProgram(chronyd, ["-p", "-f", conf])
            XCTAssertEqual(parsed.status, 0, "\(name): \(parsed.stderr)")
            let modes = parsed.stdoutText.split(whereSeparator: { $0 == "\n" || $0 == "\r" })
                .filter { $0.lowercased().hasPrefix("leapsecmode") }.map { $0.lowercased() }
            let expected = name == "step" ? "leapsecmode step" : "leapsecmode slew"
            XCTAssertEqual(modes.last, expected, "\(name): \(parsed.stdoutText)")
            XCTAssertEqual(try ntpleap(["--chrony", "--check", conf]).status, 0, name)
        }
        for bad in ["leapsecmode system # note", "leapsecmode slew extra", "leapsecmode smear"] {
            let conf = dir.file("bad.conf")
            try write(conf, "server a\n\(bad)\n")
            let parsed = try runProgram(chronyd, ["-p", "-f", conf])
            XCTAssertNotEqual(parsed.status, 0, bad)
            XCTAssertTrue(parsed.stderr.contains("Could not parse leapsecmode directive at line 2"), parsed.stderr)
            XCTAssertEqual(try ntpleap(["--chrony", "--check", conf]).status, 2, bad)
        }
    }

    /// --status --live asks a real ntpsec over mode 6 (inside its network
    /// namespace, on loopback): the leap indicator, first 11 (not
    /// synchronized), then 00 once an SHM refclock feeds it, and the kernel
    /// discipline (off: `disable kernel`, and no CAP_SYS_TIME).
    func testStatusLiveAsksTheRunningNtpsec() throws {
        try requireRoot("network, IPC and mount namespaces for ntpd")
        let ntpd = try timeDaemons() + "/usr/sbin/ntpd"
        try assertCapSysTimeDropped()
        let dir = TempDir()
        let root = TempDir()
        let text = """
            leapfile /usr/share/zoneinfo/leap-seconds.list
            refclock shm unit 0 refid SHM0 minpoll 0 maxpoll 0
            restrict default kod nomodify noquery limited
            restrict 127.0.0.1
            restrict ::1

            """
        try write(root.file("etc/ntpsec/ntp.conf"), text)
        XCTAssertEqual(try ntpleap(["--root", root.path]).status, 0)
        let config = dir.file("live.conf")
        try FileManager.default.copyItem(atPath: root.file("etc/ntpsec/ntp.conf"), toPath: config)
        let daemon = try SandboxedNtpd(ntpd: ntpd, config: config, in: dir, name: "live")
        defer { daemon.stop() }
        try waitFor("ntpd to listen on 127.0.0.1", timeout: 30) { daemon.logText().contains("Listen normally on 2 lo 127.0.0.1:123") }
        let bin = try rescueboxBinary()
        func live(_ extra: [String] = []) throws -> RunResult {
            try runProgram(try which("nsenter"), ["-t", String(daemon.pid), "-n", bin, "ntpleap", "--root", root.path, "--status", "--live"] + extra)
        }
        let first = try live()
        XCTAssertEqual(first.status, 0, first.stderr)
        XCTAssertTrue(first.stdoutText.contains("  ntpd running here (not the system under \(root.path)) at 127.0.0.1 (mode 6): ntpd ntpsec-1.2.2: leap=11: not synchronized (alarm)\n"), first.stdoutText)
        XCTAssertTrue(first.stdoutText.contains("  kernel discipline: not in use (kernel status \""), first.stdoutText)
        XCTAssertTrue(first.stdoutText.contains("safe: disable kernel at"), first.stdoutText)
        // Feed the SHM refclock with this machine's own time (ntpd cannot set the clock anyway).
        let feeder = dir.file("shm.py")
        try write(feeder, """
            import ctypes, struct, time
            libc = ctypes.CDLL(None, use_errno=True)
            libc.shmat.restype = ctypes.c_void_p
            sid = libc.shmget(0x4e545030, 96, 0)
            assert sid >= 0, "no SHM segment"
            buf = (ctypes.c_char * 96).from_address(libc.shmat(sid, None, 0))
            count = 0
            while True:
                t = time.time(); s = int(t); ns = int((t - s) * 1e9); count += 1
                struct.pack_into("<ii", buf, 0, 1, count)
                struct.pack_into("<qi", buf, 8, s, ns // 1000)
                struct.pack_into("<qi", buf, 24, s, ns // 1000)
                struct.pack_into("<iii", buf, 36, 0, -20, 3)
                struct.pack_into("<II", buf, 52, ns, ns)
                struct.pack_into("<i", buf, 48, 1)
                time.sleep(0.25)

            """)
        let feederPid = try spawnProcess([try which("nsenter"), "-t", String(daemon.pid), "-i", try which("python3"), feeder])
        defer { kill(feederPid, SIGTERM); _ = waitForProcess(feederPid) }
        var last = first
        try waitFor("ntpd to synchronize to the SHM refclock (leap=00)", timeout: 60) {
            last = try live(["--json"])
            return last.stdoutText.contains("\"leap\":\"00\"")
        }
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: last.stdout) as? [String: Any])
        let facts = try XCTUnwrap(object["daemon"] as? [String: Any])
        XCTAssertEqual(facts["address"] as? String, "127.0.0.1")
        XCTAssertEqual(facts["kernel_discipline"] as? Bool, false)
        let variables = try XCTUnwrap(facts["variables"] as? [String: String])
        XCTAssertEqual(variables["refid"], "SHM0")
        XCTAssertEqual(variables["leap"], "0", "the status word and the leap variable agree")
        XCTAssertEqual(variables["version"], "ntpd ntpsec-1.2.2")
        // Outside the daemon's namespace nothing answers on loopback: one line, exit still 0.
        let away = try ntpleap(["--root", root.path, "--status", "--live"])
        XCTAssertEqual(away.status, 0, away.stderr)
        XCTAssertTrue(away.stdoutText.contains("  ntpd (mode 6 on 127.0.0.1 and ::1): ntpd at ::1: "), away.stdoutText)
    }
}
