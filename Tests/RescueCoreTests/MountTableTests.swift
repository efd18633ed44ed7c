import XCTest
import TestSupport
@testable import RescueCore

final class MountTableTests: XCTestCase {
    func testUnescape() {
        XCTAssertEqual(MountEntry.unescape("/mnt/my\\040disk"), "/mnt/my disk")
        XCTAssertEqual(MountEntry.unescape("/plain"), "/plain")
        XCTAssertEqual(MountEntry.unescape("/odd\\04"), "/odd\\04")
    }

    func testRootIsMounted() {
        XCTAssertTrue(MountTable.entries().contains { $0.mountPoint == "/" })
    }

    /// A loop device with a mounted filesystem is reported in use; after
    /// unmounting it is not.
    func testMountedLoopDeviceIsInUse() throws {
        let dir = TempDir()
        let loop = try LoopDevice(image: dir.file("img"), size: 16 << 20)
        try shOK("mkfs.ext4 -q '\(loop.device)'")
        XCTAssertTrue(MountTable.mountsUsing(device: loop.device).isEmpty)
        let mnt = dir.file("mnt")
        try shOK("mkdir '\(mnt)' && mount '\(loop.device)' '\(mnt)'")
        XCTAssertEqual(MountTable.mountsUsing(device: loop.device).map(\.mountPoint), [mnt])
        try shOK("umount '\(mnt)'")
        XCTAssertTrue(MountTable.mountsUsing(device: loop.device).isEmpty)
    }
}
