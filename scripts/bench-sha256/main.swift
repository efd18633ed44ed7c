// scripts/bench-sha256.sh's driver: hashes MIB MiB from memory with the
// libcrypto SHA-256 rescuebox uses now, or the hand-written one it replaced.
#if canImport(Glibc)
import Glibc
#endif

let args = CommandLine.arguments
guard args.count == 3, let mib = Int(args[2]) else { print("usage: sha256bench libcrypto|portable MIB"); exit(2) }
var buffer = [UInt8](repeating: 0, count: 1 << 20)
var x: UInt32 = 12345
for i in 0..<buffer.count { x = x &* 1103515245 &+ 12345; buffer[i] = UInt8(truncatingIfNeeded: x >> 16) }
func now() -> Double { var t = timespec(); clock_gettime(CLOCK_MONOTONIC, &t); return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9 }
let start = now()
var hex = ""
if args[1] == "portable" {
    var h = PortableSHA256()
    for _ in 0..<mib { buffer.withUnsafeBytes { h.update($0) } }
    hex = h.finalizeHex()
} else {
    var h = SHA256()
    for _ in 0..<mib { buffer.withUnsafeBytes { h.update($0) } }
    hex = h.finalizeHex()
}
let seconds = now() - start
print("\(seconds) \(hex)")
