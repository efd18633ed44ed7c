// libFuzzer target: size parsing must never crash, and what it accepts
// must be a number followed by a known unit. Built by scripts/fuzz.sh.
import RescueCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSizeParser(_ data: UnsafePointer<UInt8>?, _ count: Int) -> Int32 {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: count), as: UTF8.self)
    if let value = try? parseByteSize(text) {
        precondition(text.first?.isNumber == true, "accepted '\(text)'")
        if text.allSatisfy({ $0.isASCII && $0.isNumber }) {
            let digits = text.drop { $0 == "0" }
            precondition(String(value) == (digits.isEmpty ? "0" : String(digits)), "'\(text)' parsed as \(value)")
        }
    }
    return 0
}
