import XCTest
@testable import ZeroFill

/// Placeholder until the ZeroFill library lands; replaced by real tests.
final class ZeroFillPlaceholderTests: XCTestCase {
    func testModuleLinks() {}
}
