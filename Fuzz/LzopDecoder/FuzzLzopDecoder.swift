// libFuzzer target: the lzop decoder on any bytes must return or throw an
// LzopFormatError, never crash or hang. Built by scripts/fuzz.sh.
import LZOP

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzLzopDecoder(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data else { return 0 }
    _ = try? lzopDecodeAll(UnsafeRawBufferPointer(start: data, count: size), into: nil)
    return 0
}
