// libFuzzer target: the ntp.conf/chrony.conf parser and rewriter. Any
// bytes must parse, rewrite to a safe file, and rewrite again to the same
// bytes; `check` traps when an invariant breaks. Built by scripts/fuzz.sh.
import NTPConf

/// The invariants over arbitrary bytes (README "### ntpleap").
func check(_ bytes: [UInt8]) {
    let text = ConfText(bytes)
    guard text.lines.reduce(0, { $0 + ($1.end - $1.start) }) == bytes.count else {
        fatalError("lines do not cover the input")
    }
    let edits = rewriteNtpConf(text)
    let out = apply(edits, to: text).result
    let again = ConfText(out)
    guard NtpVerdict(directives: kernelDirectives(again)).isSafe else { fatalError("result not safe") }
    guard rewriteNtpConf(again).isEmpty else { fatalError("second rewrite changes the result") }
    if edits.isEmpty, out != bytes { fatalError("no edits but bytes differ") }
    let chrony = ConfText(bytes, dialect: .chrony)
    let chronyEdits = rewriteChronyConf(chrony)
    let chronyOut = ConfText(apply(chronyEdits, to: chrony).result, dialect: .chrony)
    guard chronyLeapMode(chronyOut).isSafe, rewriteChronyConf(chronyOut).isEmpty else {
        fatalError("chrony rewrite not safe or not idempotent")
    }
    // A line chronyd refuses stays refused: the rewrite never hides it.
    let refusedBefore = chrony.lines.filter { ChronyRules.refusal($0) != nil }.count
    let refusedAfter = chronyOut.lines.filter { ChronyRules.refusal($0) != nil }.count
    guard refusedBefore == refusedAfter else { fatalError("chrony rewrite changed a refused line") }
    _ = unifiedDiff(oldName: "a", newName: "b", text: text, applied: apply(edits, to: text))
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNTPConf(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data else { return 0 }
    check(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}
