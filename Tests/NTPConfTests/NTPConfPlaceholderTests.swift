import XCTest
@testable import NTPConf

/// Placeholder until the NTPConf library lands; replaced by real tests.
final class NTPConfPlaceholderTests: XCTestCase {
    func testModuleLinks() {}
}
