import COpenSSL

/// SHA-256 (FIPS 180-4), streaming, for manifests of uploaded images:
/// libcrypto's implementation (SHA-NI or AVX2 where the CPU has them; see
/// scripts/bench-sha256.sh for the figures against the old hand-written one).
public struct SHA256 {
    private final class Context {
        let ctx: OpaquePointer
        init() {
            ctx = EVP_MD_CTX_new()!
            // EVP_sha256 is libcrypto's built-in default provider: no file is loaded.
            precondition(EVP_DigestInit_ex(ctx, EVP_sha256(), nil) == 1, "EVP_DigestInit_ex(SHA-256) failed")
        }
        deinit { EVP_MD_CTX_free(ctx) }
    }
    private var context = Context()

    public init() {}

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        _ = EVP_DigestUpdate(context.ctx, base, bytes.count)
    }

    public mutating func update(_ bytes: [UInt8]) { bytes.withUnsafeBytes { update($0) } }

    /// The digest as 64 lowercase hex digits. The hasher starts over afterwards.
    public mutating func finalizeHex() -> String {
        var digest = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        _ = EVP_DigestFinal_ex(context.ctx, &digest, &length)
        context = Context()
        let hex = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for byte in digest { out.append(hex[Int(byte >> 4)]); out.append(hex[Int(byte & 0xF)]) }
        return String(decoding: out, as: UTF8.self)
    }
}
