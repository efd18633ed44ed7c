import XCTest
@testable import LZOP

/// Placeholder until the LZOP library lands; replaced by real tests.
final class LZOPPlaceholderTests: XCTestCase {
    func testModuleLinks() {}
}
