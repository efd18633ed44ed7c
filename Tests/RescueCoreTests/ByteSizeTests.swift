import XCTest
@testable import RescueCore

final class ByteSizeTests: XCTestCase {
    func testValidSizes() throws {
        let table: [(String, UInt64)] = [
            ("0", 0), ("512", 512), ("512B", 512), ("4K", 4096), ("4k", 4096), ("4KiB", 4096),
            ("4KB", 4000), ("1M", 1 << 20), ("1MiB", 1 << 20), ("10MB", 10_000_000),
            ("2GiB", 2 << 30), ("2G", 2 << 30), ("1T", 1 << 40), ("1TB", 1_000_000_000_000),
            ("1P", 1 << 50), ("7E", 7 << 60), ("18446744073709551615", UInt64.max),
        ]
        for (text, expected) in table {
            XCTAssertEqual(try parseByteSize(text), expected, text)
        }
    }

    func testInvalidSizes() {
        for text in ["", "banana", "-1", "1.5M", "M", "4X", "4KK", "4 K", " 4", "4Kb8", "16E", "99999999999999999999", "0x10", "1MiBB"] {
            XCTAssertThrowsError(try parseByteSize(text), text) { error in
                XCTAssertEqual((error as? RescueError)?.exitCode, ExitCode.usage, text)
            }
        }
    }
}

final class FormattingTests: XCTestCase {
    func testBytes() {
        XCTAssertEqual(formatBytes(0), "0 B")
        XCTAssertEqual(formatBytes(999), "999 B")
        XCTAssertEqual(formatBytes(1_073_741_824), "1.1 GB")
        XCTAssertEqual(formatBytes(1_073_741_824, binary: true), "1.0 GiB")
        XCTAssertEqual(formatBytes(107_000_000), "107 MB")
        XCTAssertEqual(formatBytes(9_960_000), "10 MB")
    }

    func testSummaryLineLooksLikeDd() {
        XCTAssertEqual(summaryLine(bytes: 1_073_741_824, seconds: 2.5),
                       "1073741824 bytes (1.1 GB, 1.0 GiB) copied, 2.500 s, 429 MB/s")
    }

    func testFixedAndDuration() {
        XCTAssertEqual(formatFixed(2.0049, decimals: 2), "2.00")
        XCTAssertEqual(formatFixed(0.5, decimals: 0), "1")
        XCTAssertEqual(formatFixed(-1.25, decimals: 1), "-1.3")
        XCTAssertEqual(formatDuration(3723), "1:02:03")
        XCTAssertEqual(formatDuration(65), "1:05")
        XCTAssertEqual(formatRatio(input: 300, output: 100), "3.00:1")
    }

    func testErrorFormat() {
        let e = RescueError("/dev/sda", "read at offset 4096", errno: EIO)
        XCTAssertEqual(e.description, "/dev/sda: read at offset 4096: Input/output error")
        XCTAssertEqual(e.exitCode, ExitCode.failure)
    }
}
