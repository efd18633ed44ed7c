import ArgumentParser
import RescueCore

public struct FtpGet: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "ftpget",
        abstract: "Download a file from an FTP server, verified and resumable."
    )

    public init() {}

    public func run() throws {
        throw RescueError("", "", "not implemented yet")
    }
}
