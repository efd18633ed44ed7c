import XCTest
import TestSupport
@testable import RescueCore

final class SHA256Tests: XCTestCase {
    func hex(_ bytes: [UInt8]) -> String { var h = SHA256(); h.update(bytes); return h.finalizeHex() }

    func testKnownVectors() {
        XCTAssertEqual(hex([]), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(hex(Array("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    }

    /// Any split of the input gives the digest sha256sum computes.
    func testStreamingMatchesSha256sum() throws {
        let data = [UInt8](pseudoRandomBytes(1_000_003))
        let dir = TempDir()
        _ = FileManager.default.createFile(atPath: dir.file("d"), contents: Data(data))
        let expected = try shOK("sha256sum '\(dir.file("d"))' | cut -d' ' -f1")
        var h = SHA256()
        var offset = 0
        // 44 then 4: a small write that does not fill the pending block.
        for step in [44, 4, 1, 63, 64, 65, 4096, 100_000, 7, 3] where offset < data.count {
            let end = min(data.count, offset + step)
            data[offset..<end].withUnsafeBytes { h.update($0) }
            offset = end
        }
        data[offset...].withUnsafeBytes { h.update($0) }
        XCTAssertEqual(h.finalizeHex(), expected)
    }
}
