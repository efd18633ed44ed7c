import ArgumentParser
import RescueCore

public struct FtpPut: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "ftpput",
        abstract: "Upload a file, stdin or a command's output to an FTP server, safely."
    )

    public init() {}

    public func run() throws {
        throw RescueError("", "", "not implemented yet")
    }
}
