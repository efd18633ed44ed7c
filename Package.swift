// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "rescuebox",
    products: [
        .executable(name: "rescuebox", targets: ["rescuebox"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.4.0"),
    ],
    targets: [
        // System libraries, linked statically into the release binary.
        .systemLibrary(name: "CLZO", path: "Sources/CLZO"),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),
        // OpenSSL 3 (libssl-dev): TLS for FTPS, SHA-256 for manifests.
        .systemLibrary(name: "COpenSSL", path: "Sources/COpenSSL"),
        // Variadic or macro-only C interfaces (ioctl, O_TMPFILE, ...) as plain functions.
        .target(name: "CShim", path: "Sources/CShim"),

        // libfuse3 (static from libfuse3-dev): a read-only file system of fixed files, for mount.
        .target(name: "CFuse", path: "Sources/CFuse", cSettings: [.define("_FILE_OFFSET_BITS", to: "64")],
                linkerSettings: [.linkedLibrary("fuse3"), .linkedLibrary("pthread"), .linkedLibrary("dl")]),

        .target(name: "RescueCore", dependencies: [
            "CShim", "COpenSSL", .product(name: "SystemPackage", package: "swift-system"),
        ]),
        .target(name: "LZOP", dependencies: ["RescueCore", "CLZO", "CZlib"]),
        .target(name: "FTP", dependencies: [
            "RescueCore", "CShim", "COpenSSL", .product(name: "SystemPackage", package: "swift-system"),
        ]),
        .target(name: "ZeroFill", dependencies: ["RescueCore", "CShim"]),
        .target(name: "NTPConf", dependencies: ["RescueCore", "CShim"]),
        // Partition tables and filesystem block maps (ddz/backup --used).
        // libext2fs (Debian libext2fs-dev, static .a) behind a small C shim.
        .target(name: "CExt2fs", path: "Sources/CExt2fs",
                linkerSettings: [.linkedLibrary("ext2fs"), .linkedLibrary("com_err")]),
        // libntfs-3g (Debian ntfs-3g-dev, static .a): the NTFS cluster bitmap.
        .target(name: "CNtfs3g", path: "Sources/CNtfs3g", linkerSettings: [.linkedLibrary("ntfs-3g")]),
        .target(name: "DiskLayout", dependencies: ["RescueCore", "CZlib", "CExt2fs", "CNtfs3g"]),
        // backup/restore: the disk -> compressor -> FTP pipeline and back.
        .target(name: "Imaging", dependencies: ["RescueCore", "LZOP", "FTP", "DiskLayout"]),
        // mount: an lzop image read at random through its block index, served over FUSE.
        .target(name: "SeekableImage", dependencies: ["RescueCore", "LZOP", "FTP", "DiskLayout", "CFuse"]),
        .target(name: "Applets", dependencies: [
            "RescueCore", "LZOP", "FTP", "ZeroFill", "NTPConf", "Imaging", "DiskLayout", "SeekableImage",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "rescuebox", dependencies: ["Applets"]),

        // Test-only helpers (Foundation allowed here): processes, temp dirs, loop devices.
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "RescueCoreTests", dependencies: ["RescueCore", "TestSupport"]),
        .testTarget(name: "LZOPTests", dependencies: ["LZOP", "RescueCore", "TestSupport"]),
        .testTarget(name: "FTPTests", dependencies: ["FTP", "RescueCore", "TestSupport"], exclude: ["fault_ftpd.py"]),
        .testTarget(name: "ZeroFillTests", dependencies: ["ZeroFill", "RescueCore", "TestSupport"]),
        .testTarget(name: "SeekableImageTests", dependencies: ["SeekableImage", "LZOP", "RescueCore", "TestSupport"]),
        .testTarget(name: "DiskLayoutTests", dependencies: ["DiskLayout", "RescueCore", "TestSupport"]),
        .testTarget(name: "NTPConfTests", dependencies: ["NTPConf", "RescueCore", "TestSupport"], exclude: ["Fixtures"]),
        // Runs the built `rescuebox` binary against real tools and servers.
        .testTarget(name: "IntegrationTests", dependencies: ["RescueCore", "TestSupport"]),
    ],
    // Swift 5 mode: the threads here are plain pthreads guarded by locks, not actors.
    swiftLanguageModes: [.v5]
)

// libFuzzer targets, only when scripts/fuzz.sh asks for them: each defines
// LLVMFuzzerTestOneInput and libFuzzer provides main, so a normal build must
// not see them (fuzz.sh compiles them with -parse-as-library and links them).
if Context.environment["RESCUEBOX_FUZZ"] == "1" {
    let fuzzTargets: [(String, [Target.Dependency])] = [
        ("FuzzSizeParser", ["RescueCore"]),
        ("FuzzNTPConf", ["NTPConf"]),
        ("FuzzLzopDecoder", ["LZOP"]),
        ("FuzzFTPReply", ["FTP"]),
    ]
    for (name, deps) in fuzzTargets {
        package.targets.append(.executableTarget(name: name, dependencies: deps, path: "Fuzz/\(name.dropFirst(4))"))
    }
}
