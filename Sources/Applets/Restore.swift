import ArgumentParser
import RescueCore

public struct Restore: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Write an image from an FTP server or file back to a disk."
    )

    public init() {}

    public func run() throws {
        throw RescueError("", "", "not implemented yet")
    }
}
