#if canImport(Glibc)
import Glibc
#endif
import RescueCore

/// What a running ntpd or ntpsec says about itself over NTP mode 6
/// (RFC 1305 appendix B, "control messages"), the protocol `ntpq -c rv`
/// speaks: one READVAR of the system variables, then the kernel variables
/// (the ones `ntpq -c kerninfo` shows). Only ever sent to the loopback
/// address (127.0.0.1 or ::1), UDP port 123.
public struct DaemonFacts: Equatable, Sendable {
    /// The address that answered ("127.0.0.1" or "::1").
    public var address: String
    /// The leap indicator, 0...3: 01 announces an insertion, 10 a
    /// deletion, 11 means not synchronized.
    public var leap: Int
    /// System variables as `name=value` text, in the daemon's order.
    public var variables: [(String, String)]
    public static func == (a: DaemonFacts, b: DaemonFacts) -> Bool {
        a.address == b.address && a.leap == b.leap && a.variables.map { $0.0 + "=" + $0.1 } == b.variables.map { $0.0 + "=" + $0.1 }
    }

    public func value(_ name: String) -> String? { variables.first { $0.0 == name }?.1 }

    public var leapBits: String { String(leap >> 1) + String(leap & 1) }

    public var leapMeaning: String {
        switch leap {
        case 0: return "no leap second announced"
        case 1: return "a leap second INSERTION is announced"
        case 2: return "a leap second DELETION is announced"
        default: return "not synchronized (alarm)"
        }
    }

    /// The kernel status flags ntpd reports (kstflags, e.g. "pll nano"),
    /// or nil when it does not export them.
    public var kernelFlags: [String]? {
        value("kstflags").map { $0.split(separator: " ").map(String.init) }
    }

    /// Whether the kernel discipline is in use: the kernel's PLL or FLL
    /// status bit, which ntpd sets only when it hands the clock to the kernel.
    public var kernelDisciplineInUse: Bool? {
        guard let flags = kernelFlags else { return nil }
        return flags.contains("pll") || flags.contains("fll")
    }
}

/// Splits mode-6 variable text: `a=1, b="x, y", c` (quoted values may hold commas).
public func parseControlVariables(_ text: String) -> [(String, String)] {
    var out: [(String, String)] = []
    var name = "", value = "", inValue = false, quoted = false
    func flush() {
        let n = String(name.trimmingWhitespace())
        if !n.isEmpty { out.append((n, String(value.trimmingWhitespace()))) }
        name = ""; value = ""; inValue = false
    }
    for ch in text.unicodeScalars {
        if quoted {
            if ch == "\"" { quoted = false } else { value.unicodeScalars.append(ch) }
            continue
        }
        switch ch {
        case "\"" where inValue: quoted = true
        case "=" where !inValue: inValue = true
        case ",": flush()
        case "\r", "\n", "\0": if inValue { value.append(" ") } else { name.append(" ") }
        default: if inValue { value.unicodeScalars.append(ch) } else { name.unicodeScalars.append(ch) }
        }
    }
    flush()
    return out
}

/// One mode-6 READVAR exchange with the daemon at `address` (a loopback
/// literal), reassembling fragments. Returns the status word and the text.
func controlReadVariables(address: String, names: String, sequence: UInt16,
                          timeoutMilliseconds: Int32) throws -> (status: UInt16, text: String) {
    let v6 = address.contains(":")
    let fd = socket(v6 ? AF_INET6 : AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    if fd < 0 { throw RescueError("ntpd at \(address)", "socket", errno: lastErrno()) }
    defer { close(fd) }
    var connected: Int32
    if v6 {
        var sa = sockaddr_in6()
        sa.sin6_family = sa_family_t(AF_INET6)
        sa.sin6_port = UInt16(123).bigEndian
        sa.sin6_addr = in6addr_loopback
        connected = withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
        }
    } else {
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = UInt16(123).bigEndian
        sa.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        connected = withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
    }
    if connected != 0 { throw RescueError("ntpd at \(address)", "connect", errno: lastErrno()) }
    // Header: LI 0, version 2, mode 6; READVAR (2); sequence; status 0;
    // association 0 (the system); offset 0; count; then the names, padded to 4.
    let data = Array(names.utf8)
    var packet: [UInt8] = [0x16, 2, UInt8(sequence >> 8), UInt8(sequence & 0xff), 0, 0, 0, 0, 0, 0,
                           UInt8(data.count >> 8), UInt8(data.count & 0xff)] + data
    while packet.count % 4 != 0 { packet.append(0) }
    if send(fd, packet, packet.count, 0) < 0 {
        throw RescueError("ntpd at \(address)", "send mode 6 readvar", errno: lastErrno())
    }
    var fragments: [Int: [UInt8]] = [:]
    var status: UInt16 = 0
    var last: Int? = nil
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let ready = poll(&pfd, 1, timeoutMilliseconds)
        if ready < 0 && lastErrno() == EINTR { continue }
        if ready <= 0 {
            throw RescueError("ntpd at \(address)", "mode 6 readvar", "no answer within \(timeoutMilliseconds) ms (not running, or queries refused by 'restrict ... noquery')")
        }
        let n = recv(fd, &buffer, buffer.count, 0)
        if n < 0 {
            let err = lastErrno()
            if err == EINTR { continue }
            throw RescueError("ntpd at \(address)", "receive mode 6 answer", errno: err)
        }
        guard n >= 12 else { continue }
        let op = buffer[1]
        let seq = UInt16(buffer[2]) << 8 | UInt16(buffer[3])
        guard buffer[0] & 0x7 == 6, op & 0x80 != 0, op & 0x1f == 2, seq == sequence else { continue }
        status = UInt16(buffer[4]) << 8 | UInt16(buffer[5])
        if op & 0x40 != 0 {
            throw RescueError("ntpd at \(address)", "mode 6 readvar", "error \(status >> 8) from the daemon")
        }
        let offset = Int(buffer[8]) << 8 | Int(buffer[9])
        let count = min(Int(buffer[10]) << 8 | Int(buffer[11]), n - 12)
        fragments[offset] = Array(buffer[12..<(12 + count)])
        if op & 0x20 == 0 { last = offset + count }
        if let end = last {
            // Complete when the fragments cover 0..<end without a gap.
            var covered = 0
            for (o, bytes) in fragments.sorted(by: { $0.key < $1.key }) where o <= covered {
                covered = max(covered, o + bytes.count)
            }
            if covered >= end { break }
        }
    }
    var text: [UInt8] = []
    for (_, bytes) in fragments.sorted(by: { $0.key < $1.key }) { text += bytes }
    return (status, String(decoding: text, as: UTF8.self))
}

/// Asks the daemon on 127.0.0.1, then ::1: the system variables and the
/// kernel variables. Throws the last error when neither answers.
public func queryRunningDaemon(timeoutMilliseconds: Int32 = 2000) throws -> DaemonFacts {
    var lastError = RescueError("ntpd", "mode 6 readvar", "no loopback address answered")
    for address in ["127.0.0.1", "::1"] {
        do {
            let system = try controlReadVariables(address: address, names: "", sequence: 1,
                                                  timeoutMilliseconds: timeoutMilliseconds)
            var variables = parseControlVariables(system.text)
            let kernelNames = "koffset,kfreq,kmaxerr,kesterr,kstflags,ktimeconst,kprecis"
            if let kernel = try? controlReadVariables(address: address, names: kernelNames, sequence: 2,
                                                      timeoutMilliseconds: timeoutMilliseconds) {
                for (k, v) in parseControlVariables(kernel.text) where !variables.contains(where: { $0.0 == k }) {
                    variables.append((k, v))
                }
            }
            // The system status word carries the leap indicator in its top two bits.
            return DaemonFacts(address: address, leap: Int(system.status >> 14), variables: variables)
        } catch let e as RescueError {
            lastError = e
        }
    }
    throw lastError
}
