// libFuzzer target: the FTP reply parser (bounded lines, multi-line
// replies), the EPSV/PASV parsers and the DNS answer parser. Any bytes
// must parse or be refused without a crash; feeding the bytes in two
// pieces must give the same replies as feeding them at once; every reply
// has a code in 100...599 and at most maxLines lines. Built by
// scripts/fuzz.sh (FuzzFTPReply, corpus Tests/Fuzz/corpus/ftpreply).
import FTP

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFTPReply(_ data: UnsafePointer<UInt8>?, _ count: Int) -> Int32 {
    guard let data else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: count))
    let whole = Result { try FTPReplyParser.parseAll(bytes, maxLineLength: 256, maxLines: 16) }

    // The same bytes in two pieces, taking replies as they complete.
    var parser = FTPReplyParser(maxLineLength: 256, maxLines: 16)
    let cut = bytes.isEmpty ? 0 : Int(bytes[0]) % (bytes.count + 1)
    var pieces: [FTPReply] = []
    var failed = false
    for part in [bytes[..<cut], bytes[cut...]] where !failed {
        parser.feed(Array(part))
        do {
            while let reply = try parser.next() { pieces.append(reply) }
        } catch {
            failed = true
        }
    }
    switch whole {
    case .success(let replies):
        precondition(!failed && replies == pieces, "split feeding changed the result")
        for r in replies {
            precondition(r.code >= 100 && r.code <= 599 && !r.lines.isEmpty && r.lines.count <= 16)
        }
    case .failure:
        // The incremental parser may only have failed too, or still be
        // waiting (a line too long is detected once enough bytes arrive).
        break
    }

    let text = String(decoding: bytes, as: UTF8.self)
    if let port = parseEPSV(text) { precondition(port > 0) }
    if let pasv = parsePASV(text) { precondition(pasv.address.count == 4 && pasv.port > 0) }
    if case .addresses(let list) = DNSMessage.parseAnswer(bytes, id: UInt16(bytes.first ?? 0) << 8 | UInt16(bytes.count > 1 ? bytes[1] : 0), type: DNSMessage.typeA) {
        precondition(list.allSatisfy { $0.count == 4 })
    }
    _ = sanitizeForDisplay(text)
    return 0
}
