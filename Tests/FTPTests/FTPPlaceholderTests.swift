import XCTest
@testable import FTP

/// Placeholder until the FTP library lands; replaced by real tests.
final class FTPPlaceholderTests: XCTestCase {
    func testModuleLinks() {}
}
