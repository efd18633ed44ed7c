// libFuzzer target: the ntp.conf/chrony.conf parser and rewriter. Any
// bytes must parse, rewrite to a safe file, and rewrite again to the same
// bytes; NtpFuzz.check traps when an invariant breaks. Built by scripts/fuzz.sh.
import NTPConf

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNTPConf(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data else { return 0 }
    NtpFuzz.check(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}
