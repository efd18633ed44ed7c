import Foundation
import XCTest
import TestSupport

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
        let status = try ntpleap(["--root", root.path, "--status"])
        XCTAssertEqual(status.status, 0, status.stderr)
        let out = status.stdoutText
        XCTAssertTrue(out.contains("ntp.conf \(root.file("etc/ntp.conf")) (main configuration): CHANGE NEEDED"), out)
        XCTAssertTrue(out.contains("chrony.conf \(root.file("etc/chrony/chrony.conf")) (main configuration): CHANGE NEEDED: no leapsecmode"), out)
        XCTAssertTrue(out.contains("ntpd: running (pid 77) with -x"), out)
        XCTAssertTrue(out.contains("chrony in use: yes"), out)
        XCTAssertTrue(out.contains("leap second") || out.contains("leap state unknown"), out)
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
    /// --restart runs the init system's restart command (a recording stand-in
    /// first on PATH here), only after a change.
    func testRestartRunsTheCommandAfterAChange() throws {
        let dir = TempDir()
        let bin = dir.file("bin")
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        for tool in ["systemctl", "service", "rc-service"] {
            try write("\(bin)/\(tool)", "#!/bin/sh\necho \"\(tool) $*\" >> '\(dir.file("calls"))'\n")
            chmod("\(bin)/\(tool)", 0o755)
        }
        let conf = dir.file("ntp.conf")
        try write(conf, "enable kernel\n")
        let path = bin + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")
        let r = try ntpleap(["--restart", conf], env: ["PATH": path])
        XCTAssertEqual(r.status, 0, r.stderr)
        let calls = String(decoding: try read(dir.file("calls")), as: UTF8.self)
        XCTAssertTrue(["systemctl restart ntp\n", "service ntp restart\n", "rc-service ntp restart\n",
                       "systemctl restart ntpd\n", "service ntpd restart\n", "rc-service ntpd restart\n"].contains(calls), calls)
        XCTAssertTrue(r.stdoutText.contains("restarting: "), r.stdoutText)
        // Already safe: no restart.
        XCTAssertEqual(try ntpleap(["--restart", conf], env: ["PATH": path]).status, 0)
        XCTAssertEqual(String(decoding: try read(dir.file("calls")), as: UTF8.self), calls)
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
