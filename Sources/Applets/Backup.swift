import ArgumentParser
import RescueCore

public struct Backup: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Image a disk compressed straight to an FTP server or file, resumably."
    )

    public init() {}

    public func run() throws {
        throw RescueError("", "", "not implemented yet")
    }
}
