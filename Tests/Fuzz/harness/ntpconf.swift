// libFuzzer target for the ntp.conf/chrony.conf parser and rewriter
// (NTPConf's pure files only, no I/O). Build and run:
//   swiftc -sanitize=fuzzer,address -parse-as-library -O \
//     Sources/NTPConf/{ConfText,NtpRules,ChronyRules,UnifiedDiff}.swift \
//     Tests/Fuzz/harness/ntpconf.swift -o .build/fuzz-ntpconf
//   .build/fuzz-ntpconf -max_total_time=60 -max_len=4096 Tests/Fuzz/corpus/ntpconf
// NtpFuzz.check traps when an invariant breaks (see README "### ntpleap").
@_cdecl("LLVMFuzzerTestOneInput")
public func ntpconfFuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data else { return 0 }
    NtpFuzz.check(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}
