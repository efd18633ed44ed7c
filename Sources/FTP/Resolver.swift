#if canImport(Glibc)
import Glibc
#endif
import RescueCore

/// Host name resolution that works in the static binary on any live CD:
/// a numeric literal, then the hosts file, then a DNS query (UDP, A and
/// AAAA records) to each `nameserver` in resolv.conf. Written by hand so
/// glibc's getaddrinfo/gethostbyname, which would dlopen the running
/// system's NSS modules into the static binary, are never called.
public struct NameResolver {
    public var hostsFile = "/etc/hosts"
    public var resolvConf = "/etc/resolv.conf"
    /// The DNS port (tests point it at a local responder).
    public var dnsPort: UInt16 = 53
    /// Seconds to wait for each DNS server's answer.
    public var timeout: Double = 3

    public init() {}

    /// Every address for `host`, IPv4 first. Throws a RescueError naming
    /// the host when nothing is found.
    public func resolve(_ host: String, port: UInt16) throws -> [FTPAddress] {
        if let literal = FTPAddress(literal: host, port: port) { return [literal] }
        guard isValidHostName(host) else {
            throw RescueError(host, "resolve", "not a valid host name or address")
        }
        let fromHosts = lookupHostsFile(host).compactMap { FTPAddress(literal: $0, port: port) }
        if !fromHosts.isEmpty { return fromHosts.sorted { !$0.isIPv6 && $1.isIPv6 } }
        let servers = nameServers()
        guard !servers.isEmpty else {
            throw RescueError(host, "resolve", "not in \(hostsFile) and no nameserver in \(resolvConf)")
        }
        var lastProblem = "no answer"
        for server in servers {
            do {
                var found: [FTPAddress] = []
                for type in [DNSMessage.typeA, DNSMessage.typeAAAA] {
                    // nil: the server answered that there is no such record.
                    if let addresses = try query(host, type: type, server: server) {
                        found += addresses.compactMap { FTPAddress(bytes: $0, port: port) }
                    }
                }
                if !found.isEmpty { return found }
                throw RescueError(host, "resolve", "no such host (not in \(hostsFile); DNS \(server.host) has no address)")
            } catch let error as RescueError where error.kind == .connection {  // this server failed: try the next
                lastProblem = error.reason
            }
        }
        throw RescueError(host, "resolve", "not in \(hostsFile); DNS: \(lastProblem)")
    }

    /// Addresses listed for `name` in the hosts file (case-insensitive).
    public func lookupHostsFile(_ name: String) -> [String] {
        guard let text = try? readSmallFile(hostsFile) else { return [] }
        let wanted = name.lowercased()
        var result: [String] = []
        for rawLine in text.split(separator: "\n") {
            let line = rawLine.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
            guard fields.count >= 2 else { continue }
            if fields.dropFirst().contains(where: { $0.lowercased() == wanted }) {
                result.append(String(fields[0]))
            }
        }
        return result
    }

    /// The `nameserver` lines of resolv.conf (numeric addresses only).
    public func nameServers() -> [FTPAddress] {
        guard let text = try? readSmallFile(resolvConf) else { return [] }
        var result: [FTPAddress] = []
        for rawLine in text.split(separator: "\n") {
            let fields = rawLine.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
            if fields.count >= 2, fields[0] == "nameserver",
               let address = FTPAddress(literal: String(fields[1].split(separator: "%").first ?? ""), port: dnsPort) {
                result.append(address)
            }
        }
        return result
    }

    /// One UDP query; nil when the server says the name has no such record
    /// type, the addresses otherwise. Throws RescueError("dns", ...) of kind .connection when the
    /// server does not answer usefully.
    func query(_ name: String, type: UInt16, server: FTPAddress) throws -> [[UInt8]]? {
        var idBytes: UInt16 = 0
        let urandom = Glibc.open("/dev/urandom", O_RDONLY | O_CLOEXEC)
        if urandom >= 0 { _ = Glibc.read(urandom, &idBytes, 2); _ = Glibc.close(urandom) }
        let id = idBytes ^ UInt16(truncatingIfNeeded: Int(monotonicSeconds() * 1e6))
        guard let packet = DNSMessage.query(name: name, type: type, id: id) else {
            throw RescueError(name, "resolve", "not a valid host name")
        }
        let fd = Glibc.socket(server.isIPv6 ? AF_INET6 : AF_INET, Socket.socketType(SOCK_DGRAM), 0)
        guard fd >= 0 else { throw RescueError("dns", "socket", errno: lastErrno()) }
        let socket = Socket(fd: fd, label: "DNS \(server.host)")
        // A connected UDP socket only accepts answers from that server.
        guard server.withSockaddr({ Glibc.connect(fd, $0, $1) }) == 0 else {
            throw RescueError("dns", "connect to \(server)", systemReason(lastErrno())).with(kind: .connection)
        }
        for _ in 0..<2 {
            guard packet.withUnsafeBytes({ Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == packet.count else {
                throw RescueError("dns", "send to \(server.host)", systemReason(lastErrno())).with(kind: .connection)
            }
            let deadline = monotonicSeconds() + timeout / 2
            while monotonicSeconds() < deadline {
                guard try socket.wait(events: Int16(POLLIN), timeout: deadline - monotonicSeconds()) == .ready else { break }
                var buffer = [UInt8](repeating: 0, count: 4096)
                let n = buffer.withUnsafeMutableBytes { Glibc.recv(fd, $0.baseAddress, $0.count, 0) }
                if n < 0 {
                    let err = lastErrno()
                    if err == EAGAIN || err == EINTR { continue }
                    throw RescueError("dns", "receive from \(server.host)", systemReason(err)).with(kind: .connection)
                }
                switch DNSMessage.parseAnswer(Array(buffer[0..<n]), id: id, type: type) {
                case .addresses(let list): return list
                case .noSuchName, .noData: return nil
                case .serverFailure(let code): throw RescueError("dns", "query", "server \(server.host) answered with error \(code)").with(kind: .connection)
                case .ignore: continue
                }
            }
        }
        throw RescueError("dns", "query", "\(server.host) did not answer within \(formatSeconds(timeout))").with(kind: .connection)
    }
}

/// Host names: letters, digits, '-', '_', '.', at most 253 bytes, labels of
/// 1-63 bytes. Anything else (CR, LF, spaces, '/') is refused up front.
public func isValidHostName(_ name: String) -> Bool {
    var text = name
    if text.hasSuffix(".") { text.removeLast() }
    let bytes = Array(text.utf8)
    guard !bytes.isEmpty, bytes.count <= 253 else { return false }
    for label in bytes.split(separator: 0x2E, omittingEmptySubsequences: false) {
        guard !label.isEmpty, label.count <= 63 else { return false }
        for c in label {
            let ok = (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x2D || c == 0x5F
            if !ok { return false }
        }
    }
    return true
}

/// Building a DNS query and reading the addresses out of the answer
/// (RFC 1035). Pure functions; every length is checked.
public enum DNSMessage {
    public static let typeA: UInt16 = 1
    public static let typeAAAA: UInt16 = 28

    public enum Answer: Equatable {
        case addresses([[UInt8]])
        case noSuchName
        case noData
        case serverFailure(Int)
        /// Not an answer to our query (wrong id, not a response): keep waiting.
        case ignore
    }

    public static func query(name: String, type: UInt16, id: UInt16) -> [UInt8]? {
        guard isValidHostName(name) else { return nil }
        var packet: [UInt8] = [UInt8(id >> 8), UInt8(id & 0xFF), 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]
        for label in name.utf8.split(separator: 0x2E) {
            packet.append(UInt8(label.count))
            packet += label
        }
        packet += [0, UInt8(type >> 8), UInt8(type & 0xFF), 0, 1]
        return packet
    }

    /// Skips a (possibly compressed) name; nil when it runs past the end.
    static func skipName(_ p: [UInt8], _ start: Int) -> Int? {
        var i = start
        var steps = 0
        while i < p.count {
            steps += 1
            if steps > 128 { return nil }
            let len = Int(p[i])
            if len == 0 { return i + 1 }
            if len & 0xC0 == 0xC0 { return i + 2 <= p.count ? i + 2 : nil }
            if len & 0xC0 != 0 { return nil }
            i += 1 + len
        }
        return nil
    }

    public static func parseAnswer(_ p: [UInt8], id: UInt16, type: UInt16) -> Answer {
        guard p.count >= 12 else { return .ignore }
        func u16(_ i: Int) -> Int { Int(p[i]) << 8 | Int(p[i + 1]) }
        guard u16(0) == Int(id), p[2] & 0x80 != 0 else { return .ignore }
        let rcode = Int(p[3] & 0x0F)
        if rcode == 3 { return .noSuchName }
        if rcode != 0 { return .serverFailure(rcode) }
        let questions = u16(4), answers = u16(6)
        var i = 12
        for _ in 0..<questions {
            guard let end = skipName(p, i), end + 4 <= p.count else { return .ignore }
            guard u16(end) == Int(type) else { return .ignore }
            i = end + 4
        }
        var result: [[UInt8]] = []
        for _ in 0..<answers {
            guard let end = skipName(p, i), end + 10 <= p.count else { break }
            let rtype = u16(end), rclass = u16(end + 2), rdlength = u16(end + 8)
            let data = end + 10
            guard data + rdlength <= p.count else { break }
            if rclass == 1 && rtype == Int(type) && rdlength == (type == typeA ? 4 : 16) {
                result.append(Array(p[data..<(data + rdlength)]))
            }
            i = data + rdlength
        }
        return result.isEmpty ? .noData : .addresses(result)
    }
}
